//! GitLab's REST API as herald uses it: the client, the token, and typed calls. Facts about the
//! API come from ../shared/docs/gitlab-reference.md, cited by section.

mod client;
mod token;

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

pub use client::{count_certificates, ApiError, Client, Reply};
pub use token::{percent_encode, Token};

/// A commit status state (reference §A.1). herald posts `running`, then one final state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusState {
    Running,
    Success,
    Failed,
    Canceled,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Running => "running",
            StatusState::Success => "success",
            StatusState::Failed => "failed",
            StatusState::Canceled => "canceled",
        }
    }

    pub fn is_final(self) -> bool {
        self != StatusState::Running
    }

    /// The state machine's event for this state, as in GitLab's "Cannot transition status via
    /// :<event> from :<state>" messages.
    fn event(self) -> &'static str {
        match self {
            StatusState::Running => "run",
            StatusState::Success => "success",
            StatusState::Failed => "drop",
            StatusState::Canceled => "cancel",
        }
    }
}

/// One `POST /projects/:id/statuses/:sha`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPost<'a> {
    pub project: &'a str,
    pub sha: &'a str,
    pub pipeline_id: Option<u64>,
    pub status_ref: Option<&'a str>,
    pub name: &'a str,
    pub state: StatusState,
    pub description: &'a str,
    pub target_url: Option<&'a str>,
}

/// What became of a status post that GitLab answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Posted {
    Created,
    /// GitLab already had this state ("Cannot transition … from :<same>"): nothing to do.
    AlreadyThere,
}

pub fn project_path(project: &str) -> String {
    format!("/projects/{}", percent_encode(project))
}

pub fn post_status(client: &Client, post: &StatusPost<'_>, timeout: Duration) -> Result<Posted, ApiError> {
    let mut body = json!({ "state": post.state.as_str(), "name": post.name, "description": post.description });
    if let Some(id) = post.pipeline_id {
        body["pipeline_id"] = json!(id);
    }
    if let Some(reference) = post.status_ref {
        body["ref"] = json!(reference);
    }
    if let Some(url) = post.target_url {
        body["target_url"] = json!(url);
    }
    let path = format!("{}/statuses/{}", project_path(post.project), percent_encode(post.sha));
    match client.post(&path, &body, timeout) {
        Ok(_) => Ok(Posted::Created),
        Err(ApiError::Http { status: 400, message, .. }) if is_same_state(&message, post.state) => {
            Ok(Posted::AlreadyThere)
        }
        Err(error) => Err(error),
    }
}

/// "Cannot transition status via :run from :running …": the state is already what we want.
fn is_same_state(message: &str, state: StatusState) -> bool {
    message.starts_with(&format!("Cannot transition status via :{} from :{} ", state.event(), state.as_str()))
}

/// `GET /user` (reference §C.3).
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: u64,
    pub username: String,
    #[serde(default)]
    pub bot: bool,
}

pub fn current_user(client: &Client, timeout: Duration) -> Result<User, ApiError> {
    parse(client.get("/user", timeout)?, "/user")
}

/// `GET /personal_access_tokens/self` (reference §C.4): also answers for project and group tokens.
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
    parse(client.get("/personal_access_tokens/self", timeout)?, "/personal_access_tokens/self")
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
    parse(client.get(&project_path(project), timeout)?, "the project")
}

fn parse<T: serde::de::DeserializeOwned>(reply: Reply, what: &str) -> Result<T, ApiError> {
    serde_json::from_value(reply.body).map_err(|error| ApiError::Http {
        status: reply.status,
        message: format!("unexpected answer from {what}: {error}"),
        retry_after: None,
    })
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
    use super::*;

    #[test]
    fn recognises_the_same_state_answer() {
        let message =
            "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")";
        assert!(is_same_state(message, StatusState::Running));
        assert!(!is_same_state(message, StatusState::Success));
        let dropped =
            "Cannot transition status via :drop from :failed (Reason(s): Status cannot transition via \"drop\")";
        assert!(is_same_state(dropped, StatusState::Failed));
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
