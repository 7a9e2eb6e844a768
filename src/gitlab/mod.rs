//! GitLab's REST API as herald uses it: the client, the token, and typed calls. Facts about the
//! API are in docs/gitlab.md, cited by section ("gitlab.md §A").
//!
//! The typed calls are one flat API (`gitlab::post_status`), kept in files by resource:
//! `statuses.rs`, `pipelines.rs` (and their jobs), `merge_request.rs` (the note, the diff and
//! threads); the user, token and project calls and the helpers every call shares (one GET and
//! parse, paging) are here.

mod client;
mod merge_request;
mod pipelines;
pub mod retry;
mod statuses;
mod time;
mod token;

use std::time::Duration;

use serde::Deserialize;

pub use client::{count_certificates, proxy_for, ApiError, Client, Reply};
pub use merge_request::*;
pub use pipelines::*;
pub use statuses::*;
pub use time::{days_from_civil, parse_http_date, parse_iso8601};
pub use token::{Token, MASK};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`): a project path, a
/// file path or a ref as one path segment or query value.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

pub fn project_path(project: &str) -> String {
    format!("/projects/{}", percent_encode(project))
}

/// `GET /user` (gitlab.md §C.3).
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    #[serde(default)]
    pub bot: bool,
}

pub fn current_user(client: &Client, timeout: Duration) -> Result<User, ApiError> {
    get_parsed(client, "/user", "/user", timeout)
}

/// `GET /personal_access_tokens/self` (gitlab.md §C.4): also answers for project and group tokens.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub revoked: bool,
    /// `YYYY-MM-DD`, or none for a token that never expires.
    pub expires_at: Option<String>,
}

fn yes() -> bool {
    true
}

pub fn token_info(client: &Client, timeout: Duration) -> Result<TokenInfo, ApiError> {
    get_parsed(client, "/personal_access_tokens/self", "/personal_access_tokens/self", timeout)
}

/// The parts of `GET /projects/:id` herald reads: the caller's access level.
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub path_with_namespace: String,
    #[serde(default)]
    pub permissions: Option<Permissions>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Permissions {
    pub project_access: Option<Access>,
    pub group_access: Option<Access>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Access {
    pub access_level: u32,
}

impl Project {
    /// The caller's highest access level (Developer is 30), from the project or its group.
    pub fn access_level(&self) -> Option<u32> {
        let permissions = self.permissions.as_ref()?;
        let levels = [&permissions.project_access, &permissions.group_access];
        levels.iter().filter_map(|access| access.as_ref().map(|a| a.access_level)).max()
    }
}

pub fn project(client: &Client, project: &str, timeout: Duration) -> Result<Project, ApiError> {
    get_parsed(client, &project_path(project), "the project", timeout)
}

fn parse<T: serde::de::DeserializeOwned>(reply: Reply, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(reply.body).map_err(|error| ApiError::Http {
        status: reply.status,
        message: format!("unexpected answer from {what}: {error}"),
        retry_after: None,
    })
}

/// One `GET path`, its answer read as `T`; an answer of another shape is an error naming `what`.
fn get_parsed<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    what: &str,
    timeout: Duration,
) -> Result<T, ApiError> {
    parse(client.get(path, timeout)?, what)
}

/// One `GET path` of a list (one page, as the path asks), read as `Vec<T>`; empty on a dry run
/// (no answer).
fn get_list<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    what: &str,
    timeout: Duration,
) -> Result<Vec<T>, ApiError> {
    let reply = client.get(path, timeout)?;
    if reply.body.is_null() {
        return Ok(Vec::new()); // dry run
    }
    parse(reply, what)
}

/// The author of a status or note.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Author {
    pub id: u64,
}

/// The tag names of a project's releases, newest first.
pub fn release_tags(client: &Client, project: &str, timeout: Duration) -> Result<Vec<String>, ApiError> {
    #[derive(serde::Deserialize)]
    struct Release {
        tag_name: String,
    }
    let releases: Vec<Release> = all_pages(client, &format!("{}/releases", project_path(project)), timeout)?;
    Ok(releases.into_iter().map(|release| release.tag_name).collect())
}

/// Follows `x-next-page` through a list, 100 items a page (GitLab's maximum, §B.8).
fn all_pages<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    timeout: Duration,
) -> Result<Vec<T>, ApiError> {
    pages_until(client, path, timeout, |_| false)
}

/// Pages of a list, until the last page or until `enough` says a page was the last one needed.
fn pages_until<T: serde::de::DeserializeOwned>(
    client: &Client,
    path: &str,
    timeout: Duration,
    enough: impl Fn(&[T]) -> bool,
) -> Result<Vec<T>, ApiError> {
    /// A bound against a server that never says "last page": 1,000 pages of 100.
    const MAX_PAGES: u32 = 1000;
    let separator = match path.find('?') {
        None => "?",
        Some(at) if at + 1 == path.len() => "",
        Some(_) => "&",
    };
    let mut items = Vec::new();
    let mut page = 1;
    while page <= MAX_PAGES {
        let reply = client.get(&format!("{path}{separator}per_page=100&page={page}"), timeout)?;
        let next = reply.next_page;
        if reply.body.is_null() {
            break; // dry run
        }
        let rows = parse::<Vec<T>>(reply, path)?;
        let done = enough(&rows);
        items.extend(rows);
        match next {
            Some(next) if next > page && !done => page = next,
            _ => break,
        }
    }
    Ok(items)
}

/// GitLab's role names for access levels.
pub fn role_name(level: u32) -> &'static str {
    match level {
        0..=9 => "no access",
        10..=14 => "Guest",
        15..=19 => "Planner",
        20..=29 => "Reporter",
        30..=39 => "Developer",
        40..=49 => "Maintainer",
        _ => "Owner",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn encodes_paths_as_one_segment() {
        assert_eq!(percent_encode("group/sub group/proj.x~ü"), "group%2Fsub%20group%2Fproj.x~%C3%BC");
    }

    #[test]
    fn project_paths_are_encoded() {
        assert_eq!(project_path("42"), "/projects/42");
        assert_eq!(project_path("group/sub/app"), "/projects/group%2Fsub%2Fapp");
    }

    #[test]
    fn access_level_takes_the_highest() {
        let project: Project = serde_json::from_value(json!({
            "path_with_namespace": "g/p",
            "permissions": {"project_access": {"access_level": 20}, "group_access": {"access_level": 30}}
        }))
        .unwrap();
        assert_eq!(project.access_level(), Some(30));
    }
}
