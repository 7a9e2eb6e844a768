//! CI jobs (`Ci::Build`) and the commit statuses posted through the API (`GenericCommitStatus`),
//! which GitLab keeps side by side as a pipeline's jobs: a pipeline's CI jobs, one job, and its
//! log (§K).

use serde_json::{json, Value};

use crate::auth::visible_project;
use crate::http::{paginate, Answer, Call};
use crate::pipelines::pipeline_of;
use crate::records::{Job, JobKind};
use crate::world::{job_url, World};

/// `GET /projects/:id/pipelines/:pipeline_id/jobs`, `GET /projects/:id/jobs/:job_id` and its
/// `/trace`.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let answer = match (call.method, call.path().as_slice()) {
        ("GET", ["projects", project, "pipelines", id, "jobs"]) => {
            match pipeline_of(world, project, id, call.user_id) {
                Ok(pipeline) => {
                    let retried_too = call.params.get("include_retried").is_some_and(|v| v == "true");
                    let jobs: Vec<&Job> = world
                        .jobs
                        .iter()
                        .filter(|j| j.pipeline_id == pipeline.id && j.kind == JobKind::Build)
                        .filter(|j| !j.retried || retried_too)
                        .collect();
                    paginate(&jobs, &call.params, |job| job_entity(job))
                }
                Err(answer) => answer,
            }
        }
        // One job (`lib/api/jobs.rb`): the same entity as the pipeline's list.
        ("GET", ["projects", project, "jobs", id]) => match ci_job(world, project, id, call.user_id) {
            Ok(job) => Answer::json(200, job_entity(job)),
            Err(answer) => answer,
        },
        ("GET", ["projects", project, "jobs", id, "trace"]) => match ci_job(world, project, id, call.user_id) {
            Ok(job) => Answer::typed(200, "text/plain", job.trace.clone().into()),
            Err(answer) => answer,
        },
        _ => return None,
    };
    Some(answer)
}

/// A CI job of a project the user can see, or GitLab's 404.
fn ci_job<'w>(world: &'w World, project: &str, id: &str, user_id: u64) -> Result<&'w Job, Answer> {
    let project = visible_project(world, project, user_id)?;
    world
        .jobs
        .iter()
        .find(|j| {
            j.id.to_string() == id
                && j.kind == JobKind::Build
                && world.pipelines.iter().any(|p| p.id == j.pipeline_id && p.project_id == project.id)
        })
        .ok_or_else(|| Answer::message(404, "404 Not found"))
}

fn job_entity(job: &Job) -> Value {
    json!({
        "id": job.id, "name": job.name, "stage": job.stage, "status": job.status, "ref": job.reference,
        "allow_failure": job.allow_failure, "web_url": job_url(job.id), "pipeline": { "id": job.pipeline_id },
        "started_at": null, "finished_at": null, "duration": null,
    })
}
