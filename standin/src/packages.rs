//! Generic packages (§N): uploads by Developers and up, downloads of the newest upload of a name,
//! and downloads without a token from a public project.

use crate::auth::{level, visible_project};
use crate::http::{Answer, Call};
use crate::request::Recorded;
use crate::world::World;

/// `PUT` and `GET /projects/:id/packages/generic/:name/:version/:file`.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let answer = match (call.method, call.path().as_slice()) {
        ("PUT", ["projects", project, "packages", "generic", name, version, file]) => {
            match visible_project(world, project, call.user_id) {
                Ok(project) if level(&project, call.user_id) < 30 => Answer::message(403, "403 Forbidden"),
                Ok(project) => put_package_file(world, project.id, name, version, file, call.raw_body),
                Err(answer) => answer,
            }
        }
        ("GET", ["projects", project, "packages", "generic", name, version, file]) => {
            match visible_project(world, project, call.user_id) {
                Ok(project) => package_file(world, project.id, name, version, file),
                Err(answer) => answer,
            }
        }
        _ => return None,
    };
    Some(answer)
}

/// `PUT /projects/:id/packages/generic/:name/:version/:file` (gitlab.md §N): the names checked by
/// `Gitlab::Regex::Packages`' generic regexes; a second upload of a name adds a newer file.
fn put_package_file(world: &mut World, project: u64, name: &str, version: &str, file: &str, bytes: &[u8]) -> Answer {
    let name_ok =
        |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    let version_ok = !version.is_empty()
        && !version.contains("..")
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(&b));
    if !name_ok(name) || !name_ok(file) || !version_ok {
        return Answer::message(400, "400 Bad request - package_name, package_version or file_name is invalid");
    }
    world.packages.push((project, name.into(), version.into(), file.into(), bytes.to_vec()));
    Answer::message(201, "201 Created")
}

/// A generic package file's bytes, the newest upload of that name.
fn package_file(world: &World, project: u64, name: &str, version: &str, file: &str) -> Answer {
    match world.packages.iter().rev().find(|(p, n, v, f, _)| *p == project && n == name && v == version && f == file) {
        Some((_, _, _, _, bytes)) => Answer::typed(200, "application/octet-stream", bytes.clone()),
        None => Answer::message(404, "404 Package Not Found"),
    }
}

/// A public project's generic package files can be downloaded without a token.
pub(crate) fn public_package_file(request: &Recorded, world: &World) -> Option<Answer> {
    let segments = request.segments();
    let ["projects", project, "packages", "generic", name, version, file] =
        segments.iter().map(String::as_str).collect::<Vec<_>>()[..]
    else {
        return None;
    };
    let project = world.projects.iter().find(|p| p.public && (p.id.to_string() == project || p.path == project))?;
    Some(package_file(world, project.id, name, version, file))
}
