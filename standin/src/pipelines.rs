//! Pipelines (§P): one pipeline, a project's pipelines with GitLab's filters, and a pipeline's
//! status and verdict as GitLab composes them from its jobs and statuses (§J).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::auth::{level, visible_project};
use crate::http::{paginate, Answer, Call};
use crate::records::{Job, JobKind, Pipeline};
use crate::world::{World, PROJECT_ID, PROJECT_PATH};

/// `GET /projects/:id/pipelines`, `GET /projects/:id/pipelines/:pipeline_id`.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let answer = match (call.method, call.path().as_slice()) {
        ("GET", ["projects", project, "pipelines"]) => list_pipelines(world, project, call.user_id, &call.params),
        ("GET", ["projects", project, "pipelines", id]) => match pipeline_of(world, project, id, call.user_id) {
            Ok(pipeline) => Answer::json(200, pipeline_entity(world, &pipeline)),
            Err(answer) => answer,
        },
        _ => return None,
    };
    Some(answer)
}

/// A pipeline of a project the user may read (Reporter and up), or GitLab's 403/404.
pub(crate) fn pipeline_of(world: &World, project: &str, id: &str, user_id: u64) -> Result<Pipeline, Answer> {
    let project = visible_project(world, project, user_id)?;
    if level(&project, user_id) < 20 {
        return Err(Answer::message(403, "403 Forbidden"));
    }
    world
        .pipelines
        .iter()
        .find(|p| p.id.to_string() == id && p.project_id == project.id)
        .cloned()
        .ok_or_else(|| Answer::message(404, "404 Not found"))
}

/// `GET /projects/:id/pipelines` (gitlab.md §P): filters `ref`, `sha`, `scope` (`running`,
/// `pending`, `finished`: `success`, `failed`, `canceled`, `skipped`), `status`; `order_by` (`id`,
/// the default; `updated_at` is taken as `id` here: a later pipeline is updated later) and `sort`
/// (`desc` default); offset pagination (`page`, `per_page`). Reporters and up.
fn list_pipelines(world: &World, project: &str, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let project = match visible_project(world, project, user_id) {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    if level(&project, user_id) < 20 {
        return Answer::message(403, "403 Forbidden");
    }
    let scope = params.get("scope").map(String::as_str);
    if scope.is_some_and(|s| !matches!(s, "running" | "pending" | "finished" | "branches" | "tags")) {
        return Answer::json(400, json!({ "error": "scope does not have a valid value" }));
    }
    let ascending = match params.get("sort").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Answer::json(400, json!({ "error": "sort does not have a valid value" })),
    };
    match params.get("order_by").map(String::as_str) {
        None | Some("id" | "updated_at") => {}
        Some(_) => return Answer::json(400, json!({ "error": "order_by does not have a valid value" })),
    }
    let mut pipelines: Vec<&Pipeline> = world
        .pipelines
        .iter()
        .filter(|p| p.project_id == project.id)
        .filter(|p| params.get("ref").is_none_or(|r| *r == p.reference))
        .filter(|p| params.get("sha").is_none_or(|sha| *sha == p.sha))
        .filter(|p| params.get("status").is_none_or(|status| status == pipeline_status(world, p.id)))
        .filter(|p| match scope {
            Some("running") => pipeline_status(world, p.id) == "running",
            Some("pending") => pipeline_status(world, p.id) == "pending",
            Some("finished") => matches!(pipeline_status(world, p.id), "success" | "failed" | "canceled" | "skipped"),
            Some("branches") => !p.reference.starts_with("refs/"),
            _ => true,
        })
        .collect();
    pipelines.sort_by_key(|p| p.id);
    if !ascending {
        pipelines.reverse();
    }
    paginate(&pipelines, params, |p| pipeline_entity(world, p))
}

/// A pipeline's status, derived from its jobs as GitLab does in the common cases.
fn pipeline_status(world: &World, pipeline_id: u64) -> &'static str {
    let statuses: Vec<&str> =
        world.jobs.iter().filter(|j| j.pipeline_id == pipeline_id && !j.retried).map(|j| j.status.as_str()).collect();
    if statuses.iter().any(|s| matches!(*s, "running" | "pending" | "created")) {
        "running"
    } else if statuses.contains(&"failed") {
        "failed"
    } else if statuses.contains(&"canceled") {
        "canceled"
    } else {
        "success"
    }
}

fn pipeline_entity(world: &World, pipeline: &Pipeline) -> Value {
    json!({
        "id": pipeline.id, "iid": pipeline.id - 1000, "project_id": pipeline.project_id, "sha": pipeline.sha,
        "ref": pipeline.reference, "status": pipeline_status(world, pipeline.id),
        "web_url": format!("https://gitlab.example.com/{PROJECT_PATH}/-/pipelines/{}", pipeline.id),
    })
}

impl World {
    /// Adds a pipeline of the project for a commit (registered as one of its commits), as GitLab
    /// creates one when a runner-side tool such as gitlab-ci-local makes up its own.
    pub fn add_pipeline(&mut self, id: u64, sha: &str, reference: &str) {
        let project = self.projects.iter_mut().find(|p| p.id == PROJECT_ID).expect("the project");
        project.commits.push(sha.into());
        self.pipelines.push(Pipeline { id, project_id: PROJECT_ID, sha: sha.into(), reference: reference.into() });
    }

    /// The pipeline's verdict as GitLab composes it from its latest jobs and statuses
    /// (`Gitlab::Ci::Status::Composite`): running while anything runs; else `failed` if a job
    /// that may not fail failed (a commit status never may, gitlab.md §J), `canceled` if one
    /// was canceled, `success_with_warnings` if an allowed job failed, else `success`.
    pub fn pipeline_verdict(&self, pipeline_id: u64) -> &'static str {
        self.verdict_of(pipeline_id, |_| true)
    }

    /// The verdict GitLab would give on the pipeline's CI jobs alone, without any commit status:
    /// what herald must never make worse.
    pub fn verdict_of_jobs(&self, pipeline_id: u64) -> &'static str {
        self.verdict_of(pipeline_id, |job| job.kind == JobKind::Build)
    }

    fn verdict_of(&self, pipeline_id: u64, counted: impl Fn(&Job) -> bool) -> &'static str {
        let latest: Vec<&Job> =
            self.jobs.iter().filter(|j| j.pipeline_id == pipeline_id && !j.retried && counted(j)).collect();
        let any = |f: &dyn Fn(&Job) -> bool| latest.iter().any(|j| f(j));
        if any(&|j| matches!(j.status.as_str(), "running" | "pending" | "created")) {
            "running"
        } else if any(&|j| j.status == "failed" && !j.allow_failure) {
            "failed"
        } else if any(&|j| j.status == "canceled") {
            "canceled"
        } else if any(&|j| j.status == "failed") {
            "success_with_warnings"
        } else {
            "success"
        }
    }
}
