//! A merge request's diff versions, diffs and discussions (threads on its diff, §L): positions
//! are checked against the newest version's SHAs and its diff (a line that is not an added line
//! of the diff is refused with GitLab's 400); creating a thread or a reply counts against the
//! notes rate limit and runs quick actions like any note; a body that holds a secret-looking
//! value is recorded as a violation.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::http::{paginate, Answer, Call};
use crate::merge_requests::merge_request_access;
use crate::notes::{notes_create_limit, run_quick_actions};
use crate::records::{Discussion, DiscussionNote};
use crate::world::World;

/// `/projects/:id/merge_requests/:iid/versions`, `/diffs`, `/discussions` and below.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let path = call.path();
    let ["projects", project, "merge_requests", iid, what @ ("versions" | "diffs" | "discussions"), rest @ ..] =
        path.as_slice()
    else {
        return None;
    };
    let level = match merge_request_access(world, project, iid, call.user_id) {
        Ok((_, level)) => level,
        Err(answer) => return Some(answer),
    };
    let answer = match (call.method, *what, rest) {
        ("GET", "versions", []) => {
            let versions: Vec<Value> = world
                .mr_versions
                .iter()
                .rev()
                .map(|v| {
                    json!({ "id": v.id, "head_commit_sha": v.head_commit_sha, "base_commit_sha": v.base_commit_sha,
                                 "start_commit_sha": v.start_commit_sha, "state": "collected" })
                })
                .collect();
            Answer::json(200, Value::Array(versions))
        }
        ("GET", "diffs", []) => paginate(&world.mr_diffs, &call.params, |d| {
            json!({ "old_path": d.old_path, "new_path": d.new_path, "new_file": d.new_file, "renamed_file": d.old_path != d.new_path,
                    "deleted_file": d.deleted_file, "diff": d.diff })
        }),
        ("GET", "discussions", []) => paginate(&world.discussions, &call.params, |d| discussion_entity(world, d)),
        ("POST", "discussions", []) => create_thread(world, call.user_id, &call.params),
        ("POST", "discussions", [discussion, "notes"]) => reply(world, discussion, call.user_id, &call.params),
        // resolve_note: Developer or more, or the MR's author (§B.6).
        ("PUT", "discussions", [discussion]) => resolve(world, discussion, level, &call.params),
        _ => Answer::not_found(),
    };
    Some(answer)
}

/// The body of a new thread's or reply's note, once the rate limit let it through and its quick
/// actions ran; or GitLab's answer instead.
fn new_note_body(world: &mut World, user_id: u64, params: &HashMap<String, String>) -> Result<String, Answer> {
    let Some(body) = params.get("body").filter(|b| !b.is_empty()) else {
        return Err(Answer::json(400, json!({ "error": "body is missing" })));
    };
    if let Some(refused) = notes_create_limit(world, user_id) {
        return Err(refused);
    }
    let body = body.clone();
    if let Some(secret) = secret_looking(world, &body) {
        world.secrets_in_threads.push((secret, body.clone()));
    }
    run_quick_actions(world, &body, user_id);
    Ok(body)
}

/// `POST …/discussions`: a new thread, on the diff when it has a position.
fn create_thread(world: &mut World, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let body = match new_note_body(world, user_id, params) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let id = world.new_id();
    let position = match params.get("position").map(|p| serde_json::from_str::<Value>(p)) {
        None => None,
        Some(Ok(position)) => match check_position(world, &position) {
            Ok(at) => Some(at),
            Err(answer) => return answer,
        },
        Some(Err(_)) => return Answer::json(400, json!({ "error": "position is invalid" })),
    };
    let thread = Discussion {
        id: format!("{id:040x}"),
        notes: vec![DiscussionNote { id, author_id: user_id, body, position }],
        resolved: false,
    };
    world.discussions.push(thread.clone());
    Answer::json(201, discussion_entity(world, &thread))
}

/// `POST …/discussions/:discussion_id/notes`: a reply in a thread.
fn reply(world: &mut World, discussion: &str, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let body = match new_note_body(world, user_id, params) {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let id = world.new_id();
    let Some(thread) = world.discussions.iter_mut().find(|d| d.id == discussion) else {
        return Answer::message(404, "404 Not found");
    };
    thread.notes.push(DiscussionNote { id, author_id: user_id, body, position: None });
    let note = thread.notes.last().unwrap().clone();
    let resolved = thread.resolved;
    Answer::json(201, note_entity(world, &note, resolved))
}

/// `PUT …/discussions/:discussion_id?resolved=`: resolves or reopens a thread.
fn resolve(world: &mut World, discussion: &str, level: u32, params: &HashMap<String, String>) -> Answer {
    let Some(index) = world.discussions.iter().position(|d| d.id == discussion) else {
        return Answer::message(404, "404 Not found");
    };
    if level < 30 {
        return Answer::message(403, "403 Forbidden");
    }
    match params.get("resolved").map(String::as_str) {
        Some("true") => world.discussions[index].resolved = true,
        Some("false") => world.discussions[index].resolved = false,
        _ => return Answer::json(400, json!({ "error": "resolved is missing" })),
    }
    let thread = world.discussions[index].clone();
    Answer::json(200, discussion_entity(world, &thread))
}

fn discussion_entity(world: &World, thread: &Discussion) -> Value {
    json!({ "id": thread.id, "individual_note": false,
            "notes": thread.notes.iter().map(|n| note_entity(world, n, thread.resolved)).collect::<Vec<_>>() })
}

fn note_entity(world: &World, note: &DiscussionNote, resolved: bool) -> Value {
    let author = world.users.iter().find(|u| u.id == note.author_id).unwrap();
    json!({
        "id": note.id, "type": "DiffNote", "body": note.body, "system": false, "resolvable": true, "resolved": resolved,
        "author": { "id": author.id, "username": author.username },
        "position": note.position.as_ref().map(|(path, line)| json!({ "new_path": path, "new_line": line })),
    })
}

/// The secret-looking value in `body`, if any: a token of the world, whole or its part after
/// `test-token-` (`developer-0001`), or anything shaped like a GitLab token (`glpat-` and 20 or
/// more token characters).
fn secret_looking(world: &World, body: &str) -> Option<String> {
    for token in world.tokens.keys() {
        let tail = token.strip_prefix("test-token-").unwrap_or(token);
        if body.contains(token.as_str()) || body.contains(tail) {
            return Some(token.clone());
        }
    }
    let bytes = body.as_bytes();
    for (start, _) in body.match_indices("gl") {
        let rest = &bytes[start + 2..];
        let letters = rest.iter().take_while(|b| b.is_ascii_lowercase()).count();
        if (2..=6).contains(&letters) && rest.get(letters) == Some(&b'-') {
            let run = rest[letters + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || b"_-".contains(b)).count();
            if run >= 20 {
                return Some(String::from_utf8_lossy(&bytes[start..start + 3 + letters + run]).into_owned());
            }
        }
    }
    None
}

/// A diff position herald may post on: the newest version's SHAs, a file of its diff, and an added
/// line of that file's hunks. Anything else is GitLab's 400 for a line that is not in the diff.
fn check_position(world: &World, position: &Value) -> Result<(String, u64), Answer> {
    let text = |key: &str| position.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let refused = || {
        Answer::message(400, "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}")
    };
    let Some(version) = world.mr_versions.last() else { return Err(refused()) };
    if text("base_sha") != version.base_commit_sha
        || text("head_sha") != version.head_commit_sha
        || text("start_sha") != version.start_commit_sha
        || text("position_type") != "text"
    {
        return Err(refused());
    }
    let path = text("new_path");
    let line = position.get("new_line").and_then(|l| l.as_u64().or_else(|| l.as_str()?.parse().ok()));
    let (Some(line), Some(diff)) = (line, world.mr_diffs.iter().find(|d| d.new_path == path)) else {
        return Err(refused());
    };
    // A renamed file's position names both its paths.
    let old_path = text("old_path");
    if !added_lines(&diff.diff).contains(&line) || (!old_path.is_empty() && old_path != diff.old_path) {
        return Err(refused());
    }
    Ok((path, line))
}

/// The new-file line numbers of a unified diff's added lines.
pub fn added_lines(diff: &str) -> Vec<u64> {
    let mut added = Vec::new();
    let mut new_line = 0u64;
    for line in diff.lines() {
        if let Some(header) = line.strip_prefix("@@ ") {
            // @@ -a,b +c,d @@
            let start = header.split_whitespace().find_map(|part| part.strip_prefix('+'));
            new_line = start.and_then(|s| s.split(',').next()?.parse().ok()).unwrap_or(1);
        } else if line.starts_with('+') {
            added.push(new_line);
            new_line += 1;
        } else if line.starts_with('-') || line.starts_with('\\') {
        } else {
            new_line += 1;
        }
    }
    added
}
