//! The records `World` holds for the areas: CI jobs and API statuses, pipelines, notes, and a
//! merge request's diff versions, diffs and threads. Plain data; the areas (`jobs`, `pipelines`,
//! `notes`, `discussions`, …) answer requests about them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A real CI job (Ci::Build).
    Build,
    /// A commit status posted through the API (GenericCommitStatus).
    External,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub pipeline_id: u64,
    pub kind: JobKind,
    /// CI jobs' stage; statuses are in GitLab's `external` stage.
    pub stage: String,
    pub name: String,
    pub status: String,
    pub reference: String,
    pub sha: String,
    pub user_id: u64,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub retried: bool,
    /// CI jobs: may fail without failing the pipeline.
    pub allow_failure: bool,
    /// CI jobs: the log GitLab holds (gitlab.md §K).
    pub trace: String,
    /// Unix seconds, GitLab's clock: set on entering `running` (§A.1 "Timestamps").
    pub started_at: Option<f64>,
    /// Unix seconds: set on entering `success`, `failed` or `canceled`.
    pub finished_at: Option<f64>,
}

impl Job {
    /// A job or status of `pipeline` (its ref and SHA), as it is first made: no description,
    /// link, log or times yet, not retried, not allowed to fail. A status is in the `external`
    /// stage.
    pub fn new(id: u64, pipeline: &Pipeline, kind: JobKind, name: &str, status: &str, user_id: u64) -> Job {
        Job {
            id,
            pipeline_id: pipeline.id,
            kind,
            stage: "external".into(),
            name: name.into(),
            status: status.into(),
            reference: pipeline.reference.clone(),
            sha: pipeline.sha.clone(),
            user_id,
            description: None,
            target_url: None,
            retried: false,
            allow_failure: false,
            trace: String::new(),
            started_at: None,
            finished_at: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: u64,
    pub project_id: u64,
    pub sha: String,
    pub reference: String,
}

/// A note on a merge request.
#[derive(Debug, Clone)]
pub struct Note {
    pub id: u64,
    pub mr_iid: u64,
    pub body: String,
    pub author_id: u64,
    pub system: bool,
    /// Logical clock of the last change (GitLab keeps `updated_at` when a PUT changes nothing).
    pub updated: u64,
    /// `updated_at`, in Unix seconds.
    pub updated_at: f64,
}

/// A version of a merge request's diff: the SHAs a diff position names.
#[derive(Debug, Clone)]
pub struct DiffVersion {
    pub id: u64,
    pub head_commit_sha: String,
    pub base_commit_sha: String,
    pub start_commit_sha: String,
}

/// One changed file of a merge request, with its unified diff.
#[derive(Debug, Clone)]
pub struct FileDiff {
    pub old_path: String,
    pub new_path: String,
    pub new_file: bool,
    pub deleted_file: bool,
    pub diff: String,
}

/// A thread on a merge request: its notes, and whether it is resolved.
#[derive(Debug, Clone)]
pub struct Discussion {
    /// 40 hex characters, as GitLab's.
    pub id: String,
    pub notes: Vec<DiscussionNote>,
    pub resolved: bool,
}

#[derive(Debug, Clone)]
pub struct DiscussionNote {
    pub id: u64,
    pub author_id: u64,
    pub body: String,
    /// The diff position of the thread's first note: (new_path, new_line).
    pub position: Option<(String, u64)>,
}
