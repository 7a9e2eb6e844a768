//! `herald tasks`: the pipeline's jobs with their include origin, task names and planned steps,
//! as herald will publish them.

use std::path::PathBuf;

use serde_json::json;

use crate::cli::{say, EXIT_HERALD_FAILED};
use crate::config::{Env, ProcessEnv};
use crate::gitlab::Client;
use crate::pipeline::fetch::GitLabFetch;
use crate::pipeline::{self, Fetch, Origin};

pub fn run(json: bool, file: Option<PathBuf>) -> i32 {
    let env = &ProcessEnv;
    let (dir, config) = match file {
        Some(path) => {
            let dir = path.parent().map(PathBuf::from).unwrap_or_default();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir }, name)
        }
        None => (
            env.non_empty("CI_PROJECT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from),
            env.non_empty("CI_CONFIG_PATH")
                .map_or_else(|| ".gitlab-ci.yml".to_owned(), |p| p.to_string_lossy().into_owned()),
        ),
    };
    // Includes from elsewhere come through the API when a token and API URL are configured.
    let client = crate::context::api_access(env)
        .and_then(|(api, token, ca)| Client::new(&api, token, ca.as_deref(), false).ok());
    let fetch = client.as_ref().map(GitLabFetch::new);
    let pipeline =
        match pipeline::load(&dir, &config, fetch.as_ref().map(|f| f as &dyn Fetch), &pipeline::ci_variables()) {
            Ok(pipeline) => pipeline,
            Err(error) => {
                say(&format!("herald tasks: {error}"));
                return EXIT_HERALD_FAILED;
            }
        };
    let origin = |origin: &Origin| match origin {
        Origin::Root => "(root)".to_owned(),
        Origin::Include { location, .. } => location.clone(),
    };
    if json {
        let jobs: Vec<_> = pipeline
            .jobs
            .iter()
            .map(|job| {
                json!({
                    "name": job.name, "stage": job.stage, "origin": origin(&job.origin), "task": job.task, "steps": job.steps,
                    "before_script": job.before_script, "script": job.script, "after_script": job.after_script,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "jobs": jobs, "unresolved_includes": pipeline.unresolved })).unwrap()
        );
        return 0;
    }
    let rows: Vec<[String; 5]> = pipeline
        .jobs
        .iter()
        .map(|job| [job.name.clone(), job.stage.clone(), origin(&job.origin), job.task.clone(), job.steps.join(", ")])
        .collect();
    let header = ["JOB", "STAGE", "ORIGIN", "TASK", "PLANNED STEPS"].map(String::from);
    let widths: Vec<usize> =
        (0..5).map(|i| rows.iter().chain([&header]).map(|row| row[i].chars().count()).max().unwrap_or(0)).collect();
    for row in [&header].into_iter().chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
    for include in &pipeline.unresolved {
        println!("not resolved (no token or API to fetch it, or it failed): {include}");
    }
    0
}
