//! The pipeline's own configuration: `.gitlab-ci.yml` and its includes, resolved the way GitLab
//! resolves them, for task names and planned steps (docs/design.md §7, gitlab.md §I, §M).

pub mod config;
pub mod fetch;
mod glob;
mod inputs;
pub mod local;
mod rules;
pub mod steps;
pub mod yaml;

pub use config::{load, load_from, AllowFailure, Checkout, Fetch, InMemory, Job, LoadError, Origin, Pipeline, Source};

use std::path::PathBuf;

use crate::context::PublishContext;

/// Where a job keeps the configuration its first step parsed (`job_memory` removes it).
fn cache_of(context: &PublishContext) -> Option<std::path::PathBuf> {
    crate::publish::job_memory::file(context, "pipeline.json")
}

/// The pipeline's configuration for a job that publishes: from the per-job cache when an earlier
/// step of the job parsed it, else parsed now and cached. None outside a checkout; a
/// configuration herald cannot read is reported once per job, and publishing goes on with job
/// names instead of task names.
pub fn for_job(context: &PublishContext) -> Option<Pipeline> {
    let location = context.config.as_ref()?;
    let cache = cache_of(context);
    if let Some(cached) = cache.as_ref().and_then(|path| std::fs::read(path).ok()) {
        return serde_json::from_slice::<Option<Pipeline>>(&cached).ok().flatten();
    }
    // Includes from elsewhere come through the API, with the same token, when there is one.
    let client = (!context.dry_run)
        .then(|| {
            crate::gitlab::Client::new(&context.api_url, context.token.clone(), context.ca_file.as_deref(), false).ok()
        })
        .flatten();
    let fetch = client.as_ref().map(fetch::GitLabFetch::new);
    let loaded = match load(
        &location.project_dir,
        &location.config_path,
        fetch.as_ref().map(|f| f as &dyn Fetch),
        &ci_variables(),
    ) {
        Ok(pipeline) => Some(pipeline),
        Err(error) => {
            crate::output::say(&format!("herald: task names fall back to job names: {error}"));
            None
        }
    };
    if let Some(path) = cache {
        write_cache(&path, &loaded);
    }
    loaded
}

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

/// Written to a temporary name and renamed, so a parallel step never reads half a file.
fn write_cache(path: &PathBuf, pipeline: &Option<Pipeline>) {
    let Ok(bytes) = serde_json::to_vec(pipeline) else { return };
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    if std::fs::write(&temporary, bytes).is_ok() && std::fs::rename(&temporary, path).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}
