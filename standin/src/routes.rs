//! Which area answers a request: after authentication and the token's scope (`auth`), each area
//! in turn is offered the call and answers the routes it models; a route no area has is Grape's
//! 404. `ROUTES` lists every route served, for the check against GitLab's API description.

use crate::http::{Answer, Call};
use crate::request::Recorded;
use crate::world::World;
use crate::{auth, discussions, jobs, merge_requests, notes, packages, pipelines, repository, statuses};

/// Every route the stand-in serves (`route`), as `(method, path)` with parameters in braces:
/// `tests/standin.rs` checks each against GitLab's API description, and the stand-in records a
/// violation when it answers a request that none of these covers.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/user"),
    ("GET", "/personal_access_tokens/self"),
    ("GET", "/projects/{id}"),
    ("POST", "/projects/{id}/statuses/{sha}"),
    ("GET", "/projects/{id}/repository/commits/{sha}/statuses"),
    ("GET", "/projects/{id}/pipelines"),
    ("GET", "/projects/{id}/pipelines/{pipeline_id}"),
    ("GET", "/projects/{id}/pipelines/{pipeline_id}/jobs"),
    ("GET", "/projects/{id}/jobs/{job_id}"),
    ("GET", "/projects/{id}/jobs/{job_id}/trace"),
    ("GET", "/projects/{id}/repository/files/{file_path}/raw"),
    ("GET", "/projects/{id}/releases"),
    ("PUT", "/projects/{id}/packages/generic/{package_name}/{package_version}/{file_name}"),
    ("GET", "/projects/{id}/packages/generic/{package_name}/{package_version}/{file_name}"),
    ("GET", "/templates/gitlab_ci_ymls/{key}"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/pipelines"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/versions"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/diffs"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/discussions"),
    ("POST", "/projects/{id}/merge_requests/{merge_request_iid}/discussions"),
    ("PUT", "/projects/{id}/merge_requests/{merge_request_iid}/discussions/{discussion_id}"),
    ("POST", "/projects/{id}/merge_requests/{merge_request_iid}/discussions/{discussion_id}/notes"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/notes"),
    ("POST", "/projects/{id}/merge_requests/{merge_request_iid}/notes"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}"),
    ("PUT", "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}"),
    ("DELETE", "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}"),
];

/// Whether `ROUTES` has a route for this request.
pub(crate) fn listed_route(method: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    ROUTES.iter().any(|(m, template)| {
        let wanted: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        *m == method
            && wanted.len() == segments.len()
            && wanted.iter().zip(&segments).all(|(w, got)| w.starts_with('{') || w == got)
    })
}

/// An area's routes: its answer to a call, or None when the call is not one of its routes.
type Area = fn(&Call, &mut World) -> Option<Answer>;

/// The areas, each answering its own routes (no two share one, so their order is free).
const AREAS: &[Area] = &[
    auth::route,
    statuses::route,
    pipelines::route,
    jobs::route,
    repository::route,
    packages::route,
    merge_requests::route,
    notes::route,
    discussions::route,
];

/// The answer to one request, as GitLab would give it.
pub(crate) fn route(request: &Recorded, world: &mut World) -> Answer {
    let anonymous = !request.headers.contains_key("private-token") && !request.headers.contains_key("authorization");
    if anonymous && request.method == "GET" {
        if let Some(answer) = packages::public_package_file(request, world) {
            return answer;
        }
    }
    let call = match auth::authorize(request, world) {
        Ok((user_id, token)) => Call::new(request, user_id, token),
        Err(answer) => return answer,
    };
    AREAS.iter().find_map(|area| area(&call, world)).unwrap_or_else(Answer::not_found)
}
