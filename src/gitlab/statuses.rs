//! Commit statuses (gitlab.md §A): posting one, and listing a pipeline's external statuses.
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{all_pages, get_list, pages_until, percent_encode, project_path, ApiError, Author, Client};

/// A commit status state (gitlab.md §A.1). herald posts `running`, then one final state.
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
    /// Accepted; the author's user id, and when the status ended by GitLab's clock (ISO 8601,
    /// for a final state), when GitLab said.
    Created { author_id: Option<u64>, finished_at: Option<String> },
    /// GitLab already had this state ("Cannot transition … from :<same>"): nothing to do.
    AlreadyThere,
}

/// Posts a status. `Posted::Created` carries the author, which is the token's user.
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
        Ok(reply) => Ok(Posted::Created {
            author_id: reply.body.pointer("/author/id").and_then(serde_json::Value::as_u64),
            finished_at: reply.body.pointer("/finished_at").and_then(serde_json::Value::as_str).map(str::to_owned),
        }),
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

/// One entry of `GET /projects/:id/repository/commits/:sha/statuses` (gitlab.md §A.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CommitStatus {
    pub id: u64,
    pub name: String,
    pub status: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
    #[serde(default)]
    pub pipeline_id: Option<u64>,
    #[serde(default)]
    pub author: Option<Author>,
    /// ISO 8601, GitLab's clock: set when the status started running, and when it ended.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

/// The external statuses (herald's and other tools') of one pipeline, all pages.
pub fn pipeline_statuses(
    client: &Client,
    project: &str,
    sha: &str,
    pipeline_id: u64,
    timeout: Duration,
) -> Result<Vec<CommitStatus>, ApiError> {
    pipeline_statuses_from(client, project, sha, pipeline_id, 0, timeout)
}

/// The external statuses of one pipeline whose id is `from_id` or more (some below it may come
/// too): newest first, page by page, stopping at the first page that reaches below `from_id`.
/// Rows are inserted while pages are read; newest first, that shifts rows onto the next page
/// (read twice), never off it. A server that ignores `sort` (older GitLab) answers oldest first;
/// then every page is read.
pub fn pipeline_statuses_from(
    client: &Client,
    project: &str,
    sha: &str,
    pipeline_id: u64,
    from_id: u64,
    timeout: Duration,
) -> Result<Vec<CommitStatus>, ApiError> {
    let path = format!(
        "{}/repository/commits/{}/statuses?stage=external&pipeline_id={pipeline_id}&order_by=id&sort=desc",
        project_path(project),
        percent_encode(sha)
    );
    let enough = |page: &[CommitStatus]| {
        let newest_first = page.len() >= 2 && page.windows(2).all(|pair| pair[0].id > pair[1].id);
        newest_first && page.last().is_some_and(|oldest| oldest.id < from_id)
    };
    let all: Vec<CommitStatus> = pages_until(client, &path, timeout, enough)?;
    // Older GitLab ignores `pipeline_id`; filter here too.
    Ok(all.into_iter().filter(|s| s.pipeline_id.is_none_or(|id| id == pipeline_id)).collect())
}

/// The newest status of this name in the pipeline (CI jobs of that name included), if any.
pub fn latest_status_named(
    client: &Client,
    project: &str,
    sha: &str,
    pipeline_id: u64,
    name: &str,
    timeout: Duration,
) -> Result<Option<CommitStatus>, ApiError> {
    let path = format!(
        "{}/repository/commits/{}/statuses?name={}&pipeline_id={pipeline_id}&order_by=id&sort=desc",
        project_path(project),
        percent_encode(sha),
        percent_encode(name)
    );
    let all: Vec<CommitStatus> = all_pages(client, &path, timeout)?;
    Ok(all
        .into_iter()
        .filter(|s| s.name == name && s.pipeline_id.is_none_or(|id| id == pipeline_id))
        .max_by_key(|s| s.id))
}

/// The first page (the newest `per_page`, at most 100) of a pipeline's external statuses: one
/// request, for a comparison that may do without the rest.
pub fn pipeline_statuses_first_page(
    client: &Client,
    project: &str,
    sha: &str,
    pipeline_id: u64,
    timeout: Duration,
) -> Result<Vec<CommitStatus>, ApiError> {
    let path = format!(
        "{}/repository/commits/{}/statuses?stage=external&pipeline_id={pipeline_id}&order_by=id&sort=desc&per_page=100",
        project_path(project),
        percent_encode(sha)
    );
    let all: Vec<CommitStatus> = get_list(client, &path, "the pipeline's statuses", timeout)?;
    Ok(all.into_iter().filter(|s| s.pipeline_id.is_none_or(|id| id == pipeline_id)).collect())
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
}
