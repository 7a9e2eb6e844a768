//! The pipeline's own configuration: `.gitlab-ci.yml` and its includes, resolved the way GitLab
//! resolves them, for task names and planned steps (docs/design.md §7, gitlab.md §I, §M).

pub mod config;
mod fate;
pub mod fetch;
mod glob;
mod include;
mod inputs;
mod libyaml;
pub mod local;
mod resolve;
mod rules;
pub mod steps;
pub mod yaml;

pub use config::{
    load, load_from, AllowFailure, Checkout, Fetch, InMemory, Job, LoadError, Origin, Pipeline, Source, When, Workflow,
};

/// The CI/CD variables include rules see: the process's, and the job's as the custom executor
/// passes them (`CUSTOM_ENV_<NAME>`), which do not override the process's own.
pub fn ci_variables() -> Vec<(String, String)> {
    let own: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
        .collect();
    let job = own.iter().filter_map(|(k, v)| Some((k.strip_prefix("CUSTOM_ENV_")?.to_owned(), v.clone())));
    // Later entries win in lookups: the job's first, then the process's own.
    job.collect::<Vec<_>>().into_iter().chain(own.iter().cloned()).collect()
}
