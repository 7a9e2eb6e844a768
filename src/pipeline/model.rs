//! The pipeline as herald sees it: `Pipeline` (its jobs, their task names, steps and fate), `Job`,
//! how a job may fail and when it runs, and `LoadError`. Data only: the loader (include.rs) and the
//! resolver (resolve.rs, fate.rs) make it, `load` (config.rs) hands it out; none of them is named
//! here, so the loading passes and the model form no loop.

/// Where a job was first defined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    Root,
    /// An include: its short name (the file's stem, or the component's name) and its location.
    Include {
        name: String,
        location: String,
    },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// As GitLab names it, `parallel:` suffix included (`test 2/3`, `build: [linux, amd64]`).
    pub name: String,
    pub stage: String,
    pub origin: Origin,
    /// `<origin>/<job>` for jobs from an include, `<job>` for the root file's.
    pub task: String,
    /// The names of the `herald run` steps in its resolved before_script, script, after_script.
    pub steps: Vec<String>,
    /// Its resolved scripts, `default:` and `!reference` applied, nested lists flattened.
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    /// Whether the job may fail without failing the pipeline, its matching `rules:` entry's
    /// `allow_failure` applied.
    #[serde(default)]
    pub allow_failure: AllowFailure,
    /// When GitLab runs it, from its `rules:` (or `only`/`except`) and `when:`. `Never` jobs are
    /// in `Pipeline::not_created`, never in `Pipeline::jobs`.
    #[serde(default)]
    pub when: When,
    /// What the job needs from an include that was not resolved (`extends` bases, `!reference`
    /// targets): the job is listed with what it has of its own, its name and stage still right
    /// when they are its own. Empty when the job is whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// `allow_failure:` as GitLab reads it (`when: manual` jobs allow failure unless told otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AllowFailure {
    #[default]
    No,
    Yes,
    /// `allow_failure: exit_codes: [...]`: only a job that exits with one of these.
    ExitCodes(Vec<i32>),
    /// The configuration cannot say here (an `allow_failure` inside `rules:` whose match depends
    /// on what is not known, for example): ask GitLab, which knows the job's own answer.
    Unknown,
}

impl AllowFailure {
    /// Whether a job ending with this exit code is allowed to fail. A job's script stops at its
    /// first failing line and exits with that line's code, so a failing step's code is the job's.
    pub fn allows(&self, exit_code: i32) -> bool {
        match self {
            AllowFailure::No => false,
            AllowFailure::Yes => true,
            AllowFailure::ExitCodes(codes) => codes.contains(&exit_code),
            AllowFailure::Unknown => false,
        }
    }
}

/// A job's `when:` as GitLab settles it for this pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
    Manual,
    Delayed,
    /// Not created: its rules, `only` or `except` exclude it.
    Never,
    /// Its rules depend on what herald cannot know here (`changes:`, another project's files):
    /// kept, since GitLab may create it.
    Unknown,
}

impl When {
    pub fn name(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
            When::Delayed => "delayed",
            When::Never => "never",
            When::Unknown => "unknown",
        }
    }
}

/// Whether GitLab would create the pipeline at all (`workflow:rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    /// No `workflow:rules`, or they create it.
    #[default]
    Created,
    /// `workflow:rules` create no pipeline for these variables (no rule holds, or `when: never`).
    NotCreated,
    /// They depend on what herald cannot know here.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pipeline {
    /// The jobs GitLab creates, or may create (`When::Unknown`), in stage order (`.pre` first,
    /// `.post` last), then in the order the merged configuration has them.
    pub jobs: Vec<Job>,
    /// Jobs the configuration has that GitLab would not create for these variables (`rules:`,
    /// `only`/`except`), in the same order. Never planned, never published.
    #[serde(default)]
    pub not_created: Vec<Job>,
    /// What `workflow:rules` say. The jobs are evaluated either way: herald running inside a job
    /// proves the pipeline exists, whatever herald's reading of the rules.
    #[serde(default)]
    pub workflow: Workflow,
    /// The stages in GitLab's order, `.pre` first and `.post` last.
    #[serde(default)]
    pub stages: Vec<String>,
    /// Every job's name, created or not, in stage order (`all_jobs`).
    #[serde(default)]
    pub order: Vec<String>,
    /// Includes not resolved here (no token or network, no such file, a variable not set), each
    /// with the reason.
    pub unresolved: Vec<String>,
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|job| job.name == name)
    }

    /// A job of the configuration by name, whether or not herald's reading of its rules says
    /// GitLab creates it: for a job GitLab has, GitLab is right, and the job's steps still hold.
    pub fn configured(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().chain(&self.not_created).find(|job| job.name == name)
    }

    /// The same, by task (`ci/lint`), for a status of herald's.
    pub fn configured_task(&self, task: &str) -> Option<&Job> {
        self.jobs.iter().chain(&self.not_created).find(|job| job.task == task)
    }

    /// Every job of the configuration, created or not, in stage order.
    pub fn all_jobs(&self) -> Vec<&Job> {
        let mut all: Vec<&Job> = self.jobs.iter().chain(&self.not_created).collect();
        all.sort_by_key(|job| self.order.iter().position(|name| *name == job.name).unwrap_or(usize::MAX));
        all
    }
}

/// A configuration problem, as one line naming the file and position when there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);
