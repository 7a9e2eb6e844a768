//! The pipeline as herald sees it (`Pipeline`: its jobs, their task names, steps and fate) and
//! `load`, the one way to it (gitlab.md §I, §M). Loading is two passes, each in its own file:
//!
//! 1. the include loader (include.rs) reads `.gitlab-ci.yml` and its includes, in GitLab's order,
//!    into layers of top-level entries (inputs interpolated, include `rules:` applied);
//! 2. the resolver (resolve.rs) merges the layers and makes jobs: `extends`, `default:`,
//!    `!reference`, `parallel:`, and each job's fate from its rules (fate.rs).
//!
//! Where the files come from is a parameter, so loading stays pure: `Source` (a checkout, or files
//! in memory for fuzzing and property tests) and `Fetch` (GitLab, for what is not in the checkout).

use std::path::{Path, PathBuf};

use super::glob;
use super::include::Loader;
use super::resolve::resolve;

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

/// Loads `config_path` (relative to `project_dir`, usually `.gitlab-ci.yml`) and its includes;
/// `fetch` brings the includes that are not in the checkout, when there is a way to.
/// `variables` are the CI/CD variables include `rules:` may use.
pub fn load(
    project_dir: &Path,
    config_path: &str,
    fetch: Option<&dyn Fetch>,
    variables: &[(String, String)],
) -> Result<Pipeline, LoadError> {
    load_from(&Checkout(project_dir.to_path_buf()), config_path, fetch, variables)
}

/// Loads from any source of files: a checkout, or files in memory (fuzzing, property tests).
pub fn load_from(
    source: &dyn Source,
    config_path: &str,
    fetch: Option<&dyn Fetch>,
    variables: &[(String, String)],
) -> Result<Pipeline, LoadError> {
    let mut loader = Loader::new(source, fetch, variables);
    let layers = loader.root(config_path)?;
    let unresolved = loader.take_unresolved();
    // The checkout is listed only if a rule asks whether a file exists.
    resolve(layers, unresolved, variables, &|patterns: &[String]| glob::exists(&loader.files(), patterns))
}

/// Brings included files that are not in the checkout (gitlab.md §I.1). An error is the reason the
/// include is unresolved, shown in `Pipeline::unresolved`; nothing decides on its kind, so it is
/// text.
pub trait Fetch {
    /// A file of a project (id or path) at a ref (None: its default branch).
    fn project_file(&self, project: &str, reference: Option<&str>, path: &str) -> Result<Vec<u8>, String>;
    /// The tag names of a project's releases (a component's versions), in any order.
    fn release_tags(&self, project: &str) -> Result<Vec<String>, String>;
    /// A public URL (`include: remote`), fetched without the token.
    fn url(&self, url: &str) -> Result<Vec<u8>, String>;
    /// A template bundled with GitLab (`include: template`), by its file name.
    fn template(&self, name: &str) -> Result<Vec<u8>, String>;
}

/// Where the configuration's files come from.
pub trait Source {
    /// The file at `path` (relative to the project root), refusing one larger than `limit` bytes.
    /// The error only travels up, after the file's name, into a `LoadError`: text.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String>;
    /// Every file of the project, relative to its root, for globs.
    fn list(&self) -> Vec<String>;
}

/// A checkout on disk.
pub struct Checkout(pub PathBuf);

impl Source for Checkout {
    /// Only regular files, opened without blocking and read to at most `limit` bytes: a FIFO
    /// would block the read forever, and a link to `/dev/zero` never ends (`untrusted_file`, the
    /// one reader of files herald does not trust). Links are followed: a checkout may link its
    /// own files, and `local:` paths are kept inside it by name before this is asked.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        use crate::untrusted_file::{self, Links, Refused};
        let said = |refused: Refused| match refused {
            Refused::Open(e) | Refused::Read(e) => format!("cannot read it: {e}"),
            Refused::NotRegular(_) | Refused::Link => "not a regular file".to_owned(),
            Refused::TooLarge { limit } => format!("more than the {limit} bytes herald reads"),
        };
        let file = untrusted_file::open(&self.0.join(path), Links::Follow).map_err(said)?;
        let size = file.metadata().len();
        if size > limit {
            return Err(format!("{size} bytes, more than the {limit} herald reads"));
        }
        file.read_whole(limit).map_err(said)
    }

    fn list(&self) -> Vec<String> {
        let mut found = Vec::new();
        walk(&self.0, &self.0, &mut found);
        found
    }
}

/// Files in memory: (path, content).
pub struct InMemory(pub Vec<(String, Vec<u8>)>);

impl Source for InMemory {
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        let (_, content) = self.0.iter().find(|(p, _)| p == path).ok_or("cannot read it: no such file")?;
        if content.len() as u64 > limit {
            return Err(format!("{} bytes, more than the {limit} herald reads", content.len()));
        }
        Ok(content.clone())
    }

    fn list(&self) -> Vec<String> {
        self.0.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// Every file below `dir`, as paths relative to `root` (skipping .git).
fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        // Not following symlinks: a link to a parent directory would never end.
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            walk(root, &path, found);
        } else if let Ok(relative) = path.strip_prefix(root) {
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}

#[cfg(test)]
mod tests;
