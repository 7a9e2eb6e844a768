//! Authentication and authorization (§C): the token's user and scopes, the 401 and 403 shapes,
//! which projects a user can see; and the routes about the token's own user and project
//! (`/user`, `/personal_access_tokens/self`, `/projects/:id`).

use serde_json::json;

use crate::clock::date_in_days;
use crate::http::{Answer, Call};
use crate::request::Recorded;
use crate::world::{Project, TokenRecord, World};

/// The request's user and token, once its token is known, valid and of a scope that allows the
/// request (§C.2); or the answer GitLab gives instead.
pub(crate) fn authorize(request: &Recorded, world: &World) -> Result<(u64, TokenRecord), Answer> {
    let token = authenticate(request, world)?;
    if !scope_allows(&token.scopes, &request.method, &request.path) {
        let scope = if request.method == "GET" { "api read_api" } else { "api" };
        return Err(Answer::json(
            403,
            json!({
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": scope
            }),
        ));
    }
    Ok((token.user_id, token))
}

/// Authentication (§C): the token's record, or the error answer.
fn authenticate(request: &Recorded, world: &World) -> Result<TokenRecord, Answer> {
    let secret =
        request.headers.get("private-token").cloned().or_else(|| {
            request.headers.get("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::to_owned)
        });
    let unauthorized = || Answer::message(401, "401 Unauthorized");
    let Some(secret) = secret else { return Err(unauthorized()) };
    // A job token sent as PRIVATE-TOKEN is ignored (§A.1), so it is simply unknown here.
    let Some(record) = world.tokens.get(&secret) else { return Err(unauthorized()) };
    let invalid_token = |description: &str| {
        let mut answer = Answer::json(401, json!({ "error": "invalid_token", "error_description": description }));
        answer.headers.push((
            "WWW-Authenticate".into(),
            format!("Bearer realm=\"The API\", error=\"invalid_token\", error_description=\"{description}\""),
        ));
        answer
    };
    if record.revoked {
        return Err(invalid_token("Token was revoked. You have to re-authorize from the user."));
    }
    if record.expires_in_days.is_some_and(|days| days < 0) {
        return Err(invalid_token("Token is expired. You can either do re-authorization or token refresh."));
    }
    Ok(record.clone())
}

/// Scope check (§C.2): `api` allows all; `read_api` only GET/HEAD; `read_user` only `/user` reads.
/// `/personal_access_tokens/self` accepts any scope (§C.4).
fn scope_allows(scopes: &[&str], method: &str, path: &str) -> bool {
    path == "/personal_access_tokens/self"
        || scopes.contains(&"api")
        || (method == "GET" && scopes.contains(&"read_api"))
        || (method == "GET" && path == "/user" && scopes.contains(&"read_user"))
}

/// The project by id or path, if the user can see it (private project: members only, §C.2).
pub(crate) fn visible_project(world: &World, id_or_path: &str, user_id: u64) -> Result<Project, Answer> {
    world
        .projects
        .iter()
        .find(|p| p.id.to_string() == id_or_path || p.path == id_or_path)
        .filter(|p| p.members.contains_key(&user_id))
        .cloned()
        .ok_or_else(|| Answer::message(404, "404 Project Not Found"))
}

/// The user's access level in the project (0: none).
pub(crate) fn level(project: &Project, user_id: u64) -> u32 {
    project.members.get(&user_id).copied().unwrap_or(0)
}

/// `/user`, `/personal_access_tokens/self`, `/projects/:id`.
pub(crate) fn route(call: &Call, world: &mut World) -> Option<Answer> {
    let answer = match (call.method, call.path().as_slice()) {
        ("GET", ["user"]) => {
            let user = world.users.iter().find(|u| u.id == call.user_id).unwrap();
            Answer::json(
                200,
                json!({ "id": user.id, "username": user.username, "name": user.username, "state": "active", "bot": user.bot }),
            )
        }
        ("GET", ["personal_access_tokens", "self"]) => {
            let token = &call.token;
            Answer::json(
                200,
                json!({
                    "id": 1, "name": token.name, "revoked": false, "active": true, "expired": false,
                    "scopes": token.scopes, "user_id": token.user_id,
                    "created_at": "2026-01-01T00:00:00.000Z", "last_used_at": null,
                    "expires_at": token.expires_in_days.map(date_in_days),
                }),
            )
        }
        ("GET", ["projects", project]) => match visible_project(world, project, call.user_id) {
            Ok(project) => {
                let level = project.members.get(&call.user_id).copied();
                Answer::json(
                    200,
                    json!({
                        "id": project.id, "path_with_namespace": project.path,
                        "permissions": { "project_access": level.map(|l| json!({"access_level": l, "notification_level": 3})), "group_access": null }
                    }),
                )
            }
            Err(answer) => answer,
        },
        _ => return None,
    };
    Some(answer)
}
