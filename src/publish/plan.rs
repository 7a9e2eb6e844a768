//! The pipeline's configuration for a job that publishes: parsed once per job (its first step),
//! kept in the job's memory for the steps after it, fetched includes through the API. The
//! orchestration around `pipeline::load`, which itself stays pure of files, clients and messages.

use std::path::Path;

use crate::context::PublishContext;
use crate::pipeline::fetch::GitLabFetch;
use crate::pipeline::{self, Fetch, Pipeline};

/// From the per-job cache when an earlier step of the job parsed it, else parsed now and cached.
/// None outside a checkout; a configuration herald cannot read is reported once per job, and
/// publishing goes on with job names instead of task names.
pub fn for_job(context: &PublishContext) -> Option<Pipeline> {
    let location = context.config.as_ref()?;
    let cache = super::job_memory::file(context, "pipeline.json");
    if let Some(cached) = cache.as_ref().and_then(|path| std::fs::read(path).ok()) {
        return serde_json::from_slice::<Option<Pipeline>>(&cached).ok().flatten();
    }
    // Includes from elsewhere come through the API, with the same token, when there is one (in a
    // dry run, nothing is fetched: that would send requests).
    let client = (!context.dry_run).then(|| super::client(context).ok()).flatten();
    let fetch = client.as_ref().map(GitLabFetch::new);
    let fetch = fetch.as_ref().map(|f| f as &dyn Fetch);
    let loaded = match pipeline::load(
        &location.project_dir,
        &location.config_path,
        fetch,
        &crate::env::ci_variables(&crate::env::ProcessEnv),
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

/// Whole or not at all: a parallel step never reads half a file.
fn write_cache(path: &Path, pipeline: &Option<Pipeline>) {
    if let Ok(bytes) = serde_json::to_vec(pipeline) {
        let _ = crate::persist::write_atomically(path, bytes);
    }
}
