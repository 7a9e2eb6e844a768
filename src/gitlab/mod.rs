//! GitLab's REST API as herald uses it: the client, the token, and typed calls. Facts about the
//! API are in docs/gitlab.md, cited by section ("gitlab.md §A").

mod client;
pub mod retry;
mod time;
mod token;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

pub use client::{count_certificates, proxy_for, ApiError, Client, Reply};
pub use time::{days_from_civil, parse_http_date, parse_iso8601};
pub use token::{Token, MASK};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`): a project path, a
/// file path or a ref as one path segment or query value.
const SEGMENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}

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
    /// Accepted; the author's user id, when GitLab said.
    Created { author_id: Option<u64> },
    /// GitLab already had this state ("Cannot transition … from :<same>"): nothing to do.
    AlreadyThere,
}

pub fn project_path(project: &str) -> String {
    format!("/projects/{}", percent_encode(project))
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
        Ok(reply) => {
            Ok(Posted::Created { author_id: reply.body.pointer("/author/id").and_then(serde_json::Value::as_u64) })
        }
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

/// `GET /user` (gitlab.md §C.3).
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

/// The author of a status or note.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Author {
    pub id: u64,
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

/// A job's log as GitLab holds it (gitlab.md §K): plain text, ANSI codes and section markers kept.
pub fn job_log(client: &Client, project: &str, job_id: u64, timeout: Duration) -> Result<String, ApiError> {
    Ok(client.get(&format!("{}/jobs/{job_id}/trace", project_path(project)), timeout)?.text)
}

/// What herald reads of one job (`GET /projects/:id/jobs/:job_id`, gitlab.md §K's neighbour in
/// `lib/api/jobs.rb`): whether GitLab lets it fail, as its configuration resolved it for this
/// pipeline (`rules:` with `allow_failure` included).
#[derive(Debug, Clone, Deserialize)]
pub struct JobFacts {
    #[serde(default)]
    pub allow_failure: bool,
}

pub fn job(client: &Client, project: &str, job_id: &str, timeout: Duration) -> Result<JobFacts, ApiError> {
    parse(client.get(&format!("{}/jobs/{}", project_path(project), percent_encode(job_id)), timeout)?, "the job")
}

/// One CI job of `GET /projects/:id/pipelines/:id/jobs`.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineJob {
    pub id: u64,
    pub name: String,
    pub stage: String,
    pub status: String,
    #[serde(default)]
    pub web_url: Option<String>,
    #[serde(default)]
    pub allow_failure: bool,
    /// ISO 8601, GitLab's clock; null until the job starts or ends.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
}

pub fn pipeline_jobs(
    client: &Client,
    project: &str,
    pipeline_id: u64,
    timeout: Duration,
) -> Result<Vec<PipelineJob>, ApiError> {
    all_pages(client, &format!("{}/pipelines/{pipeline_id}/jobs?", project_path(project)), timeout)
}

/// The pipeline's jobs with their earlier attempts (`include_retried`): a job that passed on a
/// retry shows its failed attempt too. The latest attempt of a name has the highest id.
pub fn pipeline_jobs_with_retries(
    client: &Client,
    project: &str,
    pipeline_id: u64,
    timeout: Duration,
) -> Result<Vec<PipelineJob>, ApiError> {
    all_pages(client, &format!("{}/pipelines/{pipeline_id}/jobs?include_retried=true", project_path(project)), timeout)
}

/// A pipeline of a merge request, as `GET /projects/:id/merge_requests/:iid/pipelines` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct MergeRequestPipeline {
    pub id: u64,
    pub status: String,
    #[serde(default)]
    pub web_url: Option<String>,
}

/// The merge request's pipelines, newest first (the first page: the recent ones).
pub fn merge_request_pipelines(
    client: &Client,
    project: &str,
    mr_iid: u64,
    timeout: Duration,
) -> Result<Vec<MergeRequestPipeline>, ApiError> {
    // The first page (20, newest first) is more than the note's history shows. No `per_page`:
    // GitLab's API description has no parameter but the path's for this list.
    let reply = client.get(&format!("{}/merge_requests/{mr_iid}/pipelines", project_path(project)), timeout)?;
    if reply.body.is_null() {
        return Ok(Vec::new()); // dry run
    }
    parse(reply, "the merge request's pipelines")
}

/// A merge-request note (gitlab.md §B.5).
#[derive(Debug, Clone, Deserialize)]
pub struct Note {
    pub id: u64,
    pub body: String,
    pub author: Author,
    #[serde(default)]
    pub system: bool,
    #[serde(default)]
    pub updated_at: Option<String>,
}

fn notes_path(project: &str, mr_iid: u64) -> String {
    format!("{}/merge_requests/{mr_iid}/notes", project_path(project))
}

/// Every comment (system notes excluded) of a merge request, oldest first.
pub fn list_notes(client: &Client, project: &str, mr_iid: u64, timeout: Duration) -> Result<Vec<Note>, ApiError> {
    let path = format!("{}?activity_filter=only_comments&sort=asc&order_by=created_at", notes_path(project, mr_iid));
    all_pages(client, &path, timeout)
}

/// One note; None when it no longer exists.
pub fn get_note(
    client: &Client,
    project: &str,
    mr_iid: u64,
    id: u64,
    timeout: Duration,
) -> Result<Option<Note>, ApiError> {
    match client.get(&format!("{}/{id}", notes_path(project, mr_iid)), timeout) {
        Ok(reply) => parse(reply, "the note").map(Some),
        Err(ApiError::Http { status: 404, .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Creates a note; returns it, or None when GitLab kept nothing (a body of quick actions only).
pub fn create_note(
    client: &Client,
    project: &str,
    mr_iid: u64,
    body: &str,
    timeout: Duration,
) -> Result<Option<Note>, ApiError> {
    let reply = client.post(&notes_path(project, mr_iid), &json!({ "body": body }), timeout)?;
    if reply.status == 202 || reply.body.is_null() {
        return Ok(None);
    }
    parse(reply, "the new note").map(Some)
}

/// Replaces a note's body; false when the note is gone.
pub fn update_note(
    client: &Client,
    project: &str,
    mr_iid: u64,
    id: u64,
    body: &str,
    timeout: Duration,
) -> Result<bool, ApiError> {
    match client.put(&format!("{}/{id}", notes_path(project, mr_iid)), &json!({ "body": body }), timeout) {
        Ok(_) => Ok(true),
        Err(ApiError::Http { status: 404, .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Deletes a note; one that is already gone counts as deleted.
pub fn delete_note(client: &Client, project: &str, mr_iid: u64, id: u64, timeout: Duration) -> Result<(), ApiError> {
    match client.delete(&format!("{}/{id}", notes_path(project, mr_iid)), timeout) {
        Ok(_) | Err(ApiError::Http { status: 404, .. }) => Ok(()),
        Err(error) => Err(error),
    }
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

/// A version of a merge request's diff (gitlab.md §L): the SHAs a diff position names.
#[derive(Debug, Clone, Deserialize)]
pub struct DiffVersion {
    pub head_commit_sha: String,
    pub base_commit_sha: String,
    pub start_commit_sha: String,
}

/// The merge request's newest diff version, if it has one.
pub fn latest_diff_version(
    client: &Client,
    project: &str,
    mr_iid: u64,
    timeout: Duration,
) -> Result<Option<DiffVersion>, ApiError> {
    let reply = client.get(&format!("{}/merge_requests/{mr_iid}/versions", project_path(project)), timeout)?;
    if reply.body.is_null() {
        return Ok(None); // dry run
    }
    Ok(parse::<Vec<DiffVersion>>(reply, "the merge request's versions")?.into_iter().next())
}

/// One changed file of a merge request, with its unified diff.
#[derive(Debug, Clone, Deserialize)]
pub struct FileDiff {
    #[serde(default)]
    pub old_path: String,
    pub new_path: String,
    #[serde(default)]
    pub deleted_file: bool,
    #[serde(default)]
    pub diff: String,
}

pub fn merge_request_diffs(
    client: &Client,
    project: &str,
    mr_iid: u64,
    timeout: Duration,
) -> Result<Vec<FileDiff>, ApiError> {
    all_pages(client, &format!("{}/merge_requests/{mr_iid}/diffs", project_path(project)), timeout)
}

/// A thread on a merge request (gitlab.md §B.6, §L).
#[derive(Debug, Clone, Deserialize)]
pub struct Discussion {
    pub id: String,
    pub notes: Vec<DiscussionNote>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DiscussionNote {
    pub body: String,
    pub author: Author,
    #[serde(default)]
    pub resolved: bool,
}

pub fn list_discussions(
    client: &Client,
    project: &str,
    mr_iid: u64,
    timeout: Duration,
) -> Result<Vec<Discussion>, ApiError> {
    all_pages(client, &format!("{}/merge_requests/{mr_iid}/discussions", project_path(project)), timeout)
}

/// Starts a thread on a line of the diff. `Ok(false)`: GitLab refused the position (the line is
/// not in the diff).
pub fn create_diff_discussion(
    client: &Client,
    project: &str,
    mr_iid: u64,
    body: &str,
    position: &Value,
    timeout: Duration,
) -> Result<bool, ApiError> {
    let path = format!("{}/merge_requests/{mr_iid}/discussions", project_path(project));
    match client.post(&path, &json!({ "body": body, "position": position }), timeout) {
        Ok(_) => Ok(true),
        Err(ApiError::Http { status: 400, .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

fn discussion_path(project: &str, mr_iid: u64, discussion: &str) -> String {
    format!("{}/merge_requests/{mr_iid}/discussions/{}", project_path(project), percent_encode(discussion))
}

/// Replies in a thread.
pub fn reply_to_discussion(
    client: &Client,
    project: &str,
    mr_iid: u64,
    discussion: &str,
    body: &str,
    timeout: Duration,
) -> Result<(), ApiError> {
    client
        .post(&format!("{}/notes", discussion_path(project, mr_iid, discussion)), &json!({ "body": body }), timeout)
        .map(drop)
}

/// Resolves a thread (Developer or more, or the merge request's author).
pub fn resolve_discussion(
    client: &Client,
    project: &str,
    mr_iid: u64,
    discussion: &str,
    timeout: Duration,
) -> Result<(), ApiError> {
    client.put(&discussion_path(project, mr_iid, discussion), &json!({ "resolved": true }), timeout).map(drop)
}

/// Opens a resolved thread again (a finding herald called fixed is reported again).
pub fn unresolve_discussion(
    client: &Client,
    project: &str,
    mr_iid: u64,
    discussion: &str,
    timeout: Duration,
) -> Result<(), ApiError> {
    client.put(&discussion_path(project, mr_iid, discussion), &json!({ "resolved": false }), timeout).map(drop)
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
    use super::*;

    #[test]
    fn encodes_paths_as_one_segment() {
        assert_eq!(percent_encode("group/sub group/proj.x~ü"), "group%2Fsub%20group%2Fproj.x~%C3%BC");
    }

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
