//! Included files from GitLab: another project's files through the repository files API, GitLab's
//! bundled templates through the templates API, both with the token; `remote:` files over plain
//! HTTPS without it. Every request within the overall time GitLab itself allows (30 s, §I.2).

use std::time::{Duration, Instant};

use crate::gitlab::retry::{self, GaveUp};
use crate::gitlab::{percent_encode, project_path, ApiError, Client};

use super::source::Fetch;

/// GitLab resolves all includes of a pipeline within this (gitlab.md §I.2).
const INCLUDES_TIME: Duration = Duration::from_secs(30);

pub struct GitLabFetch<'c> {
    client: &'c Client,
    deadline: Instant,
}

impl<'c> GitLabFetch<'c> {
    pub fn new(client: &'c Client) -> GitLabFetch<'c> {
        GitLabFetch { client, deadline: Instant::now() + INCLUDES_TIME }
    }

    /// One request through `gitlab::retry`, within the time left for all includes. The error is the
    /// reason shown for the unresolved include (`Fetch`): text.
    fn call<T>(&self, request: impl FnMut(Duration) -> Result<T, ApiError>) -> Result<T, String> {
        retry::call(self.deadline, retry::sleep, request).map_err(|gave_up| match gave_up {
            GaveUp::OutOfTime => "out of time: GitLab allows 30 s for all includes".to_owned(),
            other => other.to_string(),
        })
    }
}

impl Fetch for GitLabFetch<'_> {
    fn project_file(&self, project: &str, reference: Option<&str>, path: &str) -> Result<Vec<u8>, String> {
        let reference = reference.map(|r| format!("?ref={}", percent_encode(r))).unwrap_or_default();
        let api = format!("{}/repository/files/{}/raw{reference}", project_path(project), percent_encode(path));
        let reply = self.call(|timeout| self.client.get(&api, timeout))?;
        Ok(reply.text.into_bytes())
    }

    fn release_tags(&self, project: &str) -> Result<Vec<String>, String> {
        self.call(|timeout| crate::gitlab::release_tags(self.client, project, timeout))
    }

    fn url(&self, url: &str) -> Result<Vec<u8>, String> {
        self.call(|timeout| self.client.get_public(url, timeout)).map(String::into_bytes)
    }

    fn template(&self, name: &str) -> Result<Vec<u8>, String> {
        let key = name.strip_suffix(".gitlab-ci.yml").unwrap_or(name);
        let path = format!("/templates/gitlab_ci_ymls/{}", percent_encode(key));
        let reply = self.call(|timeout| self.client.get(&path, timeout))?;
        let content =
            reply.body.get("content").and_then(|c| c.as_str()).ok_or("the template API answered without content")?;
        Ok(content.as_bytes().to_vec())
    }
}
