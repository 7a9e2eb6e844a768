//! Merge-request notes (§B.1–B.4): the list with GitLab's default order and filters, one note,
//! creating (quick actions run, the length and `notes_create` rate limits, §D.1), updating (quick
//! actions again; a body of commands only deletes the note) and deleting, with GitLab's rights:
//! the author or a Maintainer, never on a system note.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::clock::{iso8601, unix_now};
use crate::http::{paginate, Answer, Call};
use crate::merge_requests::merge_request_access;
use crate::records::Note;
use crate::world::World;

const TOO_LONG: &str = "400 Bad request - Note {:note=>[\"is too long (maximum is 1000000 characters)\"]}";

/// `/projects/:id/merge_requests/:iid/notes` and `/notes/:note_id`.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let path = call.path();
    let ["projects", project, "merge_requests", iid, "notes", rest @ ..] = path.as_slice() else { return None };
    let (iid, level) = match merge_request_access(world, project, iid, call.user_id) {
        Ok(access) => access,
        Err(answer) => return Some(answer),
    };
    let note_index = match rest
        .first()
        .map(|id| id.parse::<u64>().ok().and_then(|id| world.notes.iter().position(|n| n.id == id && n.mr_iid == iid)))
    {
        Some(None) => return Some(Answer::message(404, "404 Note Not Found")),
        Some(Some(index)) => Some(index),
        None => None,
    };
    // admin_note: the author, or a Maintainer; never a system note (§B.2).
    let may_admin = |note: &Note| !note.system && (note.author_id == call.user_id || level >= 40);
    let answer = match (call.method, note_index) {
        ("GET", None) => list_notes(world, iid, &call.params),
        ("GET", Some(index)) => Answer::json(200, note_entity(world, &world.notes[index])),
        ("POST", None) => create_note(world, iid, call.user_id, &call.params),
        ("PUT", Some(index)) if !may_admin(&world.notes[index]) => Answer::message(403, "403 Forbidden"),
        ("PUT", Some(index)) => update_note(world, index, call.user_id, &call.params),
        ("DELETE", Some(index)) if !may_admin(&world.notes[index]) => Answer::message(403, "403 Forbidden"),
        ("DELETE", Some(index)) => {
            world.notes.remove(index);
            Answer { status: 204, headers: Vec::new(), body: Vec::new() }
        }
        _ => Answer::not_found(),
    };
    Some(answer)
}

/// The list: `activity_filter`; `order_by` created_at (by id) or updated_at; `sort` desc by
/// default (§B.1); paginated.
fn list_notes(world: &World, iid: u64, params: &HashMap<String, String>) -> Answer {
    let filter = params.get("activity_filter").map(String::as_str).unwrap_or("all_notes");
    let mut list: Vec<&Note> = world
        .notes
        .iter()
        .filter(|n| n.mr_iid == iid)
        .filter(|n| match filter {
            "only_comments" => !n.system,
            "only_activity" => n.system,
            _ => true,
        })
        .collect();
    // order_by created_at is ordering by id; default sort is desc (§B.1).
    let by_updated = params.get("order_by").is_some_and(|o| o == "updated_at");
    list.sort_by_key(|n| if by_updated { (n.updated, n.id) } else { (n.id, 0) });
    if params.get("sort").is_none_or(|s| s != "asc") {
        list.reverse();
    }
    paginate(&list, params, |n| note_entity(world, n))
}

fn create_note(world: &mut World, iid: u64, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let Some(body) = params.get("body").filter(|b| !b.is_empty()) else {
        return Answer::json(400, json!({ "error": "body is missing" }));
    };
    if let Some(refused) = notes_create_limit(world, user_id) {
        return refused;
    }
    if body.chars().count() > 1_000_000 {
        return Answer::message(400, TOO_LONG);
    }
    let remaining = run_quick_actions(world, body, user_id);
    if remaining.trim().is_empty() {
        return Answer::json(202, json!({ "commands_changes": {}, "summary": ["Commands applied"] }));
    }
    let id = world.add_note(iid, user_id, body);
    world.notes_created_by_api.push((iid, body.clone()));
    let note = world.notes.iter().find(|n| n.id == id).unwrap().clone();
    Answer::json(201, note_entity(world, &note))
}

fn update_note(world: &mut World, index: usize, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let Some(body) = params.get("body").filter(|b| !b.is_empty()) else {
        return Answer::json(400, json!({ "error": "body is empty" }));
    };
    if body.chars().count() > 1_000_000 {
        return Answer::message(400, TOO_LONG);
    }
    let remaining = run_quick_actions(world, body, user_id);
    let note = world.notes[index].clone();
    if remaining.trim().is_empty() {
        // Notes::UpdateService: only commands left, so the note is deleted (§B.3).
        world.notes.remove(index);
        return Answer::json(200, note_entity(world, &note));
    }
    if &world.notes[index].body != body {
        let updated = world.tick();
        let stored = &mut world.notes[index];
        stored.body = body.clone();
        stored.updated = updated;
        stored.updated_at = unix_now();
    }
    let note = world.notes[index].clone();
    Answer::json(200, note_entity(world, &note))
}

/// Runs (records) the quick actions in a body, as GitLab does on create and update; returns the
/// body without them. Lines starting with `/word` outside fenced code blocks are commands.
pub(crate) fn run_quick_actions(world: &mut World, body: &str, user_id: u64) -> String {
    let mut in_code = false;
    let mut kept = Vec::new();
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let command =
            !in_code && line.starts_with('/') && line[1..].chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if command {
            world.quick_actions.push((line.to_owned(), user_id));
        } else {
            kept.push(line);
        }
    }
    kept.join("\n")
}

/// The `notes_create` rate limit (§D.1), for notes and threads alike: the 429 when this user has
/// used it up within the last minute, else None (and the creation is counted).
pub(crate) fn notes_create_limit(world: &mut World, user_id: u64) -> Option<Answer> {
    let limit = world.notes_create_per_minute?;
    let now = Instant::now();
    world.notes_created.retain(|(_, at)| now.duration_since(*at) < Duration::from_secs(60));
    if world.notes_created.iter().filter(|(user, _)| *user == user_id).count() >= limit {
        return Some(Answer::json(
            429,
            json!({ "message": { "error": "This endpoint has been requested too many times. Try again later." } }),
        ));
    }
    world.notes_created.push((user_id, now));
    None
}

fn note_entity(world: &World, note: &Note) -> Value {
    let author = world.users.iter().find(|u| u.id == note.author_id).unwrap();
    json!({
        "id": note.id, "type": null, "body": note.body, "system": note.system,
        "author": { "id": author.id, "username": author.username, "name": author.username, "state": "active", "bot": author.bot },
        "created_at": "2026-11-21T00:00:00.000Z", "updated_at": iso8601(note.updated_at),
        "noteable_type": "MergeRequest", "noteable_iid": note.mr_iid, "resolvable": false, "confidential": false,
        "internal": false, "commands_changes": {},
    })
}

impl World {
    /// The notes of a merge request that herald wrote (its marker) — whoever the author.
    pub fn herald_notes(&self, mr_iid: u64) -> Vec<Note> {
        self.notes.iter().filter(|n| n.mr_iid == mr_iid && n.body.starts_with("<!-- herald:note")).cloned().collect()
    }

    /// Adds a note as `author_id` wrote it (e.g. a person quoting herald's marker).
    pub fn add_note(&mut self, mr_iid: u64, author_id: u64, body: &str) -> u64 {
        let id = self.new_id();
        let updated = self.tick();
        self.notes.push(Note {
            id,
            mr_iid,
            body: body.into(),
            author_id,
            system: false,
            updated,
            updated_at: unix_now(),
        });
        id
    }

    /// Makes a note look `seconds` older, as if time had passed since its last edit.
    pub fn age_note(&mut self, id: u64, seconds: f64) {
        self.notes.iter_mut().filter(|n| n.id == id).for_each(|n| n.updated_at -= seconds);
    }
}
