//! Merge requests: who may see one (the project first, then the merge request), and a merge
//! request's pipelines. Its notes and threads are `notes` and `discussions`.

use serde_json::{json, Value};

use crate::auth::{level, visible_project};
use crate::http::{paginate, Answer, Call};
use crate::records::Pipeline;
use crate::world::World;

/// A merge request of a project the user can see: its iid and the user's access level, or the
/// 404 GitLab answers (project first, then merge request).
pub(crate) fn merge_request_access(
    world: &World,
    project: &str,
    iid: &str,
    user_id: u64,
) -> Result<(u64, u32), Answer> {
    let project = visible_project(world, project, user_id)?;
    let level = level(&project, user_id);
    match iid.parse::<u64>().ok().filter(|iid| world.merge_requests.contains(iid)) {
        Some(iid) => Ok((iid, level)),
        None => Err(Answer::message(404, "404 Merge Request Not Found")),
    }
}

/// `GET /projects/:id/merge_requests/:iid/pipelines`: the merge request's pipelines, newest first:
/// its own (refs/merge-requests/<iid>/…) and its source branch's (`MergeRequest#all_pipelines`).
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let path = call.path();
    let ("GET", ["projects", project, "merge_requests", iid, "pipelines"]) = (call.method, path.as_slice()) else {
        return None;
    };
    let project = match visible_project(world, project, call.user_id) {
        Ok(project) => project,
        Err(answer) => return Some(answer),
    };
    if !iid.parse::<u64>().is_ok_and(|iid| world.merge_requests.contains(&iid)) {
        return Some(Answer::message(404, "404 Merge Request Not Found"));
    }
    let own = format!("refs/merge-requests/{iid}/");
    let mut pipelines: Vec<&Pipeline> = world
        .pipelines
        .iter()
        .filter(|p| p.project_id == project.id && (p.reference.starts_with(&own) || p.reference == "feature"))
        .collect();
    pipelines.sort_by_key(|p| std::cmp::Reverse(p.id));
    let rows: Vec<Value> = pipelines
        .iter()
        .map(|p| {
            json!({ "id": p.id, "sha": p.sha, "ref": p.reference, "status": world.pipeline_verdict(p.id),
                    "web_url": format!("https://gitlab.example.com/{}/-/pipelines/{}", project.path, p.id) })
        })
        .collect();
    Some(paginate(&rows, &call.params, Clone::clone))
}
