//! What a project's repository holds for includes (§I, §M): files at a ref, GitLab's bundled CI
//! templates; and the project's releases (§N).

use serde_json::json;

use crate::auth::visible_project;
use crate::http::{paginate, Answer, Call};
use crate::world::World;

/// `GET /projects/:id/repository/files/:path/raw?ref=`, `GET /projects/:id/releases`,
/// `GET /templates/gitlab_ci_ymls/:key`.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let answer = match (call.method, call.path().as_slice()) {
        ("GET", ["projects", project, "repository", "files", path, "raw"]) => {
            match visible_project(world, project, call.user_id) {
                Ok(project) => {
                    let reference = call.params.get("ref").cloned().unwrap_or_else(|| "main".into());
                    match world.files.iter().find(|(p, r, f, _)| *p == project.path && *r == reference && f == path) {
                        Some((_, _, _, content)) => Answer::typed(200, "text/plain", content.clone().into()),
                        None => Answer::message(404, "404 File Not Found"),
                    }
                }
                Err(answer) => answer,
            }
        }
        // Newest first, as GitLab sorts them by default (released_at desc).
        ("GET", ["projects", project, "releases"]) => match visible_project(world, project, call.user_id) {
            Ok(project) => {
                let releases: Vec<&(String, String)> =
                    world.releases.iter().rev().filter(|(path, _)| *path == project.path).collect();
                paginate(&releases, &call.params, |(_, tag)| json!({ "tag_name": tag, "name": tag }))
            }
            Err(answer) => answer,
        },
        ("GET", ["templates", "gitlab_ci_ymls", key]) => match world.templates.iter().find(|(k, _)| k == key) {
            Some((name, content)) => Answer::json(200, json!({ "name": name, "content": content })),
            None => Answer::json(404, json!({ "message": "404 Template Not Found" })),
        },
        _ => return None,
    };
    Some(answer)
}

impl World {
    /// Puts a file into a project's repository at a ref.
    pub fn add_file(&mut self, project: &str, reference: &str, path: &str, content: &str) {
        self.files.push((project.into(), reference.into(), path.into(), content.into()));
    }
}
