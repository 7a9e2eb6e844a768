//! Included files from GitLab: another project's files through the repository files API, GitLab's
//! bundled templates through the templates API, both with the token; `remote:` files over plain
//! HTTPS without it. Every request within the overall time GitLab itself allows (30 s, §I.2).

use std::time::{Duration, Instant};

use crate::gitlab::{percent_encode, project_path, Client};

use super::config::Fetch;

/// GitLab resolves all includes of a pipeline within this (reference §I.2).
const INCLUDES_TIME: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub struct GitLabFetch<'c> {
    client: &'c Client,
    deadline: Instant,
}

impl<'c> GitLabFetch<'c> {
    pub fn new(client: &'c Client) -> GitLabFetch<'c> {
        GitLabFetch { client, deadline: Instant::now() + INCLUDES_TIME }
    }

    fn timeout(&self) -> Result<Duration, String> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("out of time: GitLab allows 30 s for all includes".into());
        }
        Ok(left.min(REQUEST_TIMEOUT))
    }
}

impl Fetch for GitLabFetch<'_> {
    fn project_file(&self, project: &str, reference: Option<&str>, path: &str) -> Result<Vec<u8>, String> {
        let reference = reference.map(|r| format!("?ref={}", percent_encode(r))).unwrap_or_default();
        let api = format!("{}/repository/files/{}/raw{reference}", project_path(project), percent_encode(path));
        let reply = self.client.get(&api, self.timeout()?).map_err(|e| e.to_string())?;
        Ok(reply.text.into_bytes())
    }

    fn url(&self, url: &str) -> Result<Vec<u8>, String> {
        self.client.get_public(url, self.timeout()?).map(String::into_bytes).map_err(|e| e.to_string())
    }

    fn template(&self, name: &str) -> Result<Vec<u8>, String> {
        let key = name.strip_suffix(".gitlab-ci.yml").unwrap_or(name);
        let reply = self
            .client
            .get(&format!("/templates/gitlab_ci_ymls/{}", percent_encode(key)), self.timeout()?)
            .map_err(|e| e.to_string())?;
        let content =
            reply.body.get("content").and_then(|c| c.as_str()).ok_or("the template API answered without content")?;
        Ok(content.as_bytes().to_vec())
    }
}
