//! What herald writes on a merge request: its note (gitlab.md §B.5), and the findings' threads on
//! the diff with the diff itself (gitlab.md §B.6, §L).
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{all_pages, get_list, get_parsed, parse, percent_encode, project_path, ApiError, Author, Client};

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
    match get_parsed(client, &format!("{}/{id}", notes_path(project, mr_iid)), "the note", timeout) {
        Ok(note) => Ok(Some(note)),
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
    let path = format!("{}/merge_requests/{mr_iid}/versions", project_path(project));
    Ok(get_list::<DiffVersion>(client, &path, "the merge request's versions", timeout)?.into_iter().next())
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
