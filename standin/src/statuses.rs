//! Commit statuses (§A): posting one, following `Ci::CreateCommitStatusService` (the pipeline
//! lookup, the state machine, retried older statuses), and the statuses list of a commit with CI
//! jobs mixed in (§A.2).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

use crate::auth::{level, visible_project};
use crate::clock::{iso8601, unix_now};
use crate::http::{paginate, Answer, Call};
use crate::records::{Job, JobKind, Pipeline};
use crate::world::{Project, World};

/// `POST /projects/:id/statuses/:sha`, `GET /projects/:id/repository/commits/:sha/statuses`.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let answer = match (call.method, call.path().as_slice()) {
        ("POST", ["projects", project, "statuses", sha]) => {
            post_status(world, project, sha, call.user_id, &call.params).unwrap_or_else(|refused| refused)
        }
        ("GET", ["projects", project, "repository", "commits", sha, "statuses"]) => {
            list_statuses(world, project, sha, call.user_id, &call.params)
        }
        _ => return None,
    };
    Some(answer)
}

/// `POST /projects/:id/statuses/:sha` (§A.1), checks in GitLab's order.
/// Simplification: the exclusive lease is not modelled (requests are serialised by the world's
/// lock); its 409 is available as an injected fault.
fn post_status(
    world: &mut World,
    project: &str,
    sha: &str,
    user_id: u64,
    params: &HashMap<String, String>,
) -> Result<Answer, Answer> {
    let project = visible_project(world, project, user_id)?;
    let level = level(&project, user_id);
    if level < 30 {
        return Err(Answer::message(403, "403 Forbidden"));
    }
    let Some(state) = params.get("state") else {
        return Err(Answer::json(400, json!({ "error": "state is missing" })));
    };
    if !["pending", "running", "success", "failed", "canceled", "skipped"].contains(&state.as_str()) {
        return Err(Answer::json(400, json!({ "error": "state does not have a valid value" })));
    }
    if !project.commits.iter().any(|c| c == sha) {
        return Err(Answer::message(404, "404 Commit Not Found"));
    }
    let pipeline = pipeline_for(world, &project, sha, params)?;
    // update_pipeline: a Developer may not update a protected branch's pipeline.
    if project.protected_branches.contains(&pipeline.reference) && level < 40 {
        return Err(Answer::message(403, "403 Forbidden"));
    }
    let name = params.get("name").or_else(|| params.get("context")).cloned().unwrap_or_else(|| "default".into());
    check_fields(world, &pipeline, &name, params)?;
    let index = status_moved(world, &pipeline, sha, &name, state, user_id)?;
    let job_id = world.jobs[index].id;
    let job = &mut world.jobs[index];
    if let Some(description) = params.get("description") {
        job.description = Some(description.clone());
    }
    if let Some(url) = params.get("target_url") {
        job.target_url = Some(url.clone());
    }
    // update_older_statuses_retried!: every other latest job of that name in the pipeline.
    for job in world.jobs.iter_mut() {
        if job.pipeline_id == pipeline.id && job.name == name && job.id != job_id {
            job.retried = true;
        }
    }
    let job = world.jobs[index].clone();
    Ok(Answer::json(201, status_entity(world, &job)))
}

/// The pipeline a status goes to: `first_matching_pipeline` (newest first, filtered by ref and id
/// when given), or a new pipeline with source `external` on the ref asked for, the matching
/// pipeline's or a branch's whose head is the SHA.
fn pipeline_for(
    world: &mut World,
    project: &Project,
    sha: &str,
    params: &HashMap<String, String>,
) -> Result<Pipeline, Answer> {
    let pipeline_id: Option<u64> = params.get("pipeline_id").and_then(|id| id.parse().ok());
    let requested_ref = params.get("ref").cloned();
    let mut candidates: Vec<&Pipeline> =
        world.pipelines.iter().filter(|p| p.project_id == project.id && p.sha == sha).collect();
    candidates.sort_by_key(|p| std::cmp::Reverse(p.id));
    let matching = candidates
        .into_iter()
        .filter(|p| requested_ref.as_ref().is_none_or(|r| &p.reference == r))
        .find(|p| pipeline_id.is_none_or(|id| p.id == id))
        .cloned();
    let branch_with_sha = project.branches.iter().find(|(_, head)| *head == sha).map(|(name, _)| name.clone());
    let Some(reference) =
        requested_ref.clone().or_else(|| matching.as_ref().map(|p| p.reference.clone())).or(branch_with_sha)
    else {
        return Err(Answer::message(404, "404 References for commit Not Found"));
    };
    match (matching, pipeline_id) {
        (Some(pipeline), _) => Ok(pipeline),
        (None, Some(_)) => Err(Answer::message(404, "404 Pipeline for pipeline_id, sha and ref Not Found")),
        (None, None) => {
            let id = world.new_id();
            let pipeline = Pipeline { id, project_id: project.id, sha: sha.into(), reference };
            world.pipelines.push(pipeline.clone());
            Ok(pipeline)
        }
    }
}

/// The validations of a status's name, description and target URL.
fn check_fields(
    world: &World,
    pipeline: &Pipeline,
    name: &str,
    params: &HashMap<String, String>,
) -> Result<(), Answer> {
    if world.jobs.iter().any(|j| j.pipeline_id == pipeline.id && j.kind == JobKind::Build && j.name == name) {
        return Err(Answer::json(400, json!({ "message": { "name": ["has already been taken"] } })));
    }
    if params.get("description").is_some_and(|description| description.chars().count() > 255) {
        return Err(Answer::json(
            400,
            json!({ "message": { "description": ["is too long (maximum is 255 characters)"] } }),
        ));
    }
    if let Some(url) = params.get("target_url") {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 255 {
            return Err(Answer::json(
                400,
                json!({ "message": { "target_url": ["is blocked: Only allowed schemes are http, https"] } }),
            ));
        }
    }
    Ok(())
}

/// Moves the pending or running status of this name, ref and user in the pipeline (or a new one,
/// `created`) to `state`; its index among the world's jobs, or the state machine's 400.
fn status_moved(
    world: &mut World,
    pipeline: &Pipeline,
    sha: &str,
    name: &str,
    state: &str,
    user_id: u64,
) -> Result<usize, Answer> {
    let existing = world.jobs.iter().position(|j| {
        j.kind == JobKind::External
            && j.pipeline_id == pipeline.id
            && j.name == name
            && j.reference == pipeline.reference
            && j.user_id == user_id
            && (j.status == "pending" || j.status == "running")
    });
    let current = existing.map_or("created".to_owned(), |i| world.jobs[i].status.clone());
    let next = transition(&current, state).map_err(|(event, from)| {
        Answer::message(
            400,
            &format!("Cannot transition status via :{event} from :{from} (Reason(s): Status cannot transition via \"{event}\")"),
        )
    })?;
    let index = match existing {
        Some(index) => index,
        None => {
            let id = world.new_id();
            let status = Job { sha: sha.into(), ..Job::new(id, pipeline, JobKind::External, name, "created", user_id) };
            world.jobs.push(status);
            world.jobs.len() - 1
        }
    };
    let job = &mut world.jobs[index];
    job.status = next.into();
    match next {
        "running" => job.started_at = Some(unix_now()),
        "success" | "failed" | "canceled" => job.finished_at = Some(unix_now()),
        _ => {}
    }
    Ok(index)
}

/// GitLab's state machine as the API drives it (§A.1 table). Ok(new state) or Err((event, from)).
fn transition(from: &str, to: &str) -> Result<&'static str, (&'static str, String)> {
    let fail = |event: &'static str| Err((event, from.to_owned()));
    match to {
        "pending" => match from {
            "created" | "skipped" | "manual" | "scheduled" => Ok("pending"),
            _ => fail("enqueue"),
        },
        // `enqueue` (non-raising) then `run!`.
        "running" => match from {
            "created" | "pending" => Ok("running"),
            _ => fail("run"),
        },
        "success" => match from {
            "created" | "pending" | "running" => Ok("success"),
            _ => fail("success"),
        },
        "failed" => match from {
            "created" | "pending" | "running" | "manual" | "scheduled" => Ok("failed"),
            _ => fail("drop"),
        },
        "canceled" => match from {
            "created" | "pending" | "running" | "manual" | "scheduled" => Ok("canceled"),
            _ => fail("cancel"),
        },
        "skipped" => match from {
            "created" | "pending" => Ok("skipped"),
            _ => fail("skip"),
        },
        _ => fail("unknown"),
    }
}

fn status_entity(world: &World, job: &Job) -> Value {
    let author = world.users.iter().find(|u| u.id == job.user_id).unwrap();
    json!({
        "id": job.id, "sha": job.sha, "ref": job.reference, "status": job.status, "name": job.name,
        "target_url": job.target_url, "description": job.description,
        "created_at": "2026-11-21T00:00:00.000Z",
        "started_at": job.started_at.map(iso8601), "finished_at": job.finished_at.map(iso8601),
        "allow_failure": false, "coverage": null, "pipeline_id": job.pipeline_id,
        "author": { "id": author.id, "username": author.username, "name": author.username, "state": "active", "bot": author.bot },
    })
}

/// `GET /projects/:id/repository/commits/:sha/statuses` (§A.2): every job of every pipeline on
/// the SHA, CI jobs included; filters `ref`, `name`, `pipeline_id`, `all`; `order_by` (id or
/// pipeline_id) and `sort`; offset pagination.
fn list_statuses(world: &World, project: &str, sha: &str, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let project = match visible_project(world, project, user_id) {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    if level(&project, user_id) < 20 {
        return Answer::message(403, "403 Forbidden");
    }
    if !project.commits.iter().any(|c| c == sha) {
        return Answer::message(404, "404 Commit Not Found");
    }
    let all = params.get("all").is_some_and(|v| v == "true");
    let newest_first = match (params.get("order_by").map(String::as_str), params.get("sort").map(String::as_str)) {
        (Some("id" | "pipeline_id") | None, Some("desc")) => !world.ignores_status_sort,
        (Some("id" | "pipeline_id") | None, Some("asc") | None) => false,
        (Some(_), _) => return Answer::json(400, json!({ "error": "order_by does not have a valid value" })),
        (_, Some(_)) => return Answer::json(400, json!({ "error": "sort does not have a valid value" })),
    };
    let mut rows: Vec<&Job> = world
        .jobs
        .iter()
        .filter(|j| j.sha == sha && (all || !j.retried))
        .filter(|j| params.get("ref").is_none_or(|r| &j.reference == r))
        .filter(|j| params.get("name").is_none_or(|n| &j.name == n))
        .filter(|j| params.get("pipeline_id").is_none_or(|id| j.pipeline_id.to_string() == *id))
        .filter(|j| params.get("stage").is_none_or(|stage| &j.stage == stage))
        .collect();
    // By id (pipeline ids grow with job ids here, so order_by=pipeline_id sorts the same).
    rows.sort_by_key(|job| job.id);
    if newest_first {
        rows.reverse();
    }
    paginate(&rows, params, |job| status_entity(world, job))
}

impl World {
    /// Adds a commit status of the token's user (100) to a pipeline, as posting it would have.
    pub fn add_status(&mut self, pipeline_id: u64, name: &str, status: &str, target_url: &str) -> u64 {
        let id = self.new_id();
        let pipeline = self.pipelines.iter().find(|p| p.id == pipeline_id).expect("pipeline");
        self.jobs.push(Job {
            description: Some(format!("{status} in 1 s")),
            target_url: Some(target_url.into()),
            started_at: Some(unix_now()),
            finished_at: ["success", "failed", "canceled"].contains(&status).then(unix_now),
            ..Job::new(id, pipeline, JobKind::External, name, status, 100)
        });
        id
    }

    /// Moves the end of status `id` by `seconds` on GitLab's clock (`finished_at`): as if it had
    /// landed that much later (or earlier, negative).
    pub fn shift_finished_at(&mut self, id: u64, seconds: f64) {
        let status = self.jobs.iter_mut().find(|j| j.id == id).expect("status");
        status.finished_at = Some(status.finished_at.unwrap_or_else(unix_now) + seconds);
    }

    /// The external statuses (latest, not retried) of a pipeline, by name.
    pub fn statuses(&self, pipeline_id: u64) -> BTreeMap<String, Job> {
        self.jobs
            .iter()
            .filter(|job| job.pipeline_id == pipeline_id && job.kind == JobKind::External && !job.retried)
            .map(|job| (job.name.clone(), job.clone()))
            .collect()
    }

    /// Every external status of every pipeline, retried ones included.
    pub fn all_statuses(&self) -> Vec<Job> {
        self.jobs.iter().filter(|job| job.kind == JobKind::External).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_matches_the_reference_table() {
        assert_eq!(transition("created", "running"), Ok("running"));
        assert_eq!(transition("pending", "running"), Ok("running"));
        assert_eq!(transition("running", "running"), Err(("run", "running".into())));
        assert_eq!(transition("pending", "pending"), Err(("enqueue", "pending".into())));
        assert_eq!(transition("running", "pending"), Err(("enqueue", "running".into())));
        assert_eq!(transition("running", "skipped"), Err(("skip", "running".into())));
        assert_eq!(transition("running", "success"), Ok("success"));
        assert_eq!(transition("running", "canceled"), Ok("canceled"));
    }
}
