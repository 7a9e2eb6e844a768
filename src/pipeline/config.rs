//! `load`, the one way to the pipeline as herald sees it (`Pipeline`, model.rs) (gitlab.md §I,
//! §M). Loading is two passes, each in its own file:
//!
//! 1. the include loader (include.rs) reads `.gitlab-ci.yml` and its includes, in GitLab's order,
//!    into layers of top-level entries (inputs interpolated, include `rules:` applied);
//! 2. the resolver (resolve.rs) merges the layers and makes jobs: `extends`, `default:`,
//!    `!reference`, `parallel:`, and each job's fate from its rules (fate.rs).
//!
//! Where the files come from is a parameter, so loading stays pure: `Source` (a checkout, or files
//! in memory for fuzzing and property tests) and `Fetch` (GitLab, for what is not in the checkout).

use std::path::Path;

use super::glob;
use super::include::Loader;
use super::model::{LoadError, Pipeline};
use super::resolve::resolve;
use super::source::{Checkout, Fetch, Source};

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

#[cfg(test)]
mod tests;
