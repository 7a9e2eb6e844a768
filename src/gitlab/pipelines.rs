//! Pipelines and their jobs: a pipeline's jobs (earlier attempts included), one job's facts and
//! log, a merge request's pipelines and a branch's latest finished one.
use std::time::Duration;

use serde::Deserialize;

use super::{all_pages, get_list, get_parsed, percent_encode, project_path, ApiError, Client};

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
    get_parsed(client, &format!("{}/jobs/{}", project_path(project), percent_encode(job_id)), "the job", timeout)
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
    let path = format!("{}/merge_requests/{mr_iid}/pipelines", project_path(project));
    get_list(client, &path, "the merge request's pipelines", timeout)
}

/// A pipeline as `GET /projects/:id/pipelines` lists it (gitlab.md §P).
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectPipeline {
    pub id: u64,
    pub sha: String,
    pub status: String,
    #[serde(default)]
    pub web_url: Option<String>,
}

/// The newest finished pipeline of branch `reference` (of commit `sha` when given), if any: one
/// request, `?ref=…&scope=finished&order_by=id&sort=desc&per_page=1` (gitlab.md §P).
pub fn latest_finished_pipeline(
    client: &Client,
    project: &str,
    reference: &str,
    sha: Option<&str>,
    timeout: Duration,
) -> Result<Option<ProjectPipeline>, ApiError> {
    let sha = sha.map(|sha| format!("&sha={}", percent_encode(sha))).unwrap_or_default();
    let path = format!(
        "{}/pipelines?ref={}{sha}&scope=finished&order_by=id&sort=desc&per_page=1",
        project_path(project),
        percent_encode(reference)
    );
    let pipelines: Vec<ProjectPipeline> = get_list(client, &path, "the branch's pipelines", timeout)?;
    Ok(pipelines.into_iter().next())
}

/// The first page (100) of a pipeline's jobs, earlier attempts included: one request.
pub fn pipeline_jobs_first_page(
    client: &Client,
    project: &str,
    pipeline_id: u64,
    timeout: Duration,
) -> Result<Vec<PipelineJob>, ApiError> {
    let path = format!("{}/pipelines/{pipeline_id}/jobs?include_retried=true&per_page=100", project_path(project));
    get_list(client, &path, "the pipeline's jobs", timeout)
}
