//! A GitLab Runner custom-executor driver (gitlab.md §H): every stage the runner runs for a job
//! (fetch sources, restore cache, the script, after_script, artifacts, ...) becomes a herald step,
//! supervised and published, without changing any `.gitlab-ci.yml`. Stages run with a shell on the
//! runner host, like the shell executor.
//!
//! The token stays on the runner host: herald reads `HERALD_TOKEN` (and its other settings) from
//! the runner's own environment only, never from the job's variables, and removes it from the
//! environment of every stage script. The job's context (project, commit, pipeline, MR) comes from
//! the job's variables, which the runner passes as `CUSTOM_ENV_<NAME>`.
//!
//! ```toml
//! [runners.custom]
//!   config_exec = "herald"
//!   config_args = ["executor", "config"]
//!   prepare_exec = "herald"
//!   prepare_args = ["executor", "prepare"]
//!   run_exec = "herald"
//!   run_args = ["executor", "run"]
//!   cleanup_exec = "herald"
//!   cleanup_args = ["executor", "cleanup"]
//! ```

mod stages;

use std::ffi::OsString;
use std::path::Path;

use serde_json::json;

use crate::config::{RunRequest, RunSettings};
use crate::context::Publishing;
use crate::env::{Env, ProcessEnv};
use crate::output::{Failure, Outcome};
use crate::step::StepEnd;
use crate::supervise::Supervisor;
pub use stages::{step_name, DEFAULT_HIDDEN};

/// The runner's documented defaults (§H.2), used only if its variables are missing.
const DEFAULT_BUILD_FAILURE: i32 = 1;
const DEFAULT_SYSTEM_FAILURE: i32 = 2;

/// The job as the driver sees it: CI variables from `CUSTOM_ENV_*`; herald's own settings from the
/// runner's environment first (the administrator's), then the job's — except the token, which
/// only the runner's environment may provide.
pub struct JobEnv<'e>(pub &'e dyn Env);

impl Env for JobEnv<'_> {
    fn get(&self, key: &str) -> Option<OsString> {
        let from_job = || self.0.get(&format!("CUSTOM_ENV_{key}"));
        match key {
            "HERALD_TOKEN" => self.0.get(key),
            "HERALD_TOKEN_VARIABLE" => None, // a job could point it at one of its own variables
            _ if key.starts_with("HERALD_") => self.0.get(key).or_else(from_job),
            _ => from_job(),
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        let all = self.0.vars();
        let job = all.iter().filter_map(|(k, v)| Some((k.strip_prefix("CUSTOM_ENV_")?.to_owned(), v.clone())));
        job.chain(all.iter().filter(|(k, _)| k.starts_with("HERALD_")).cloned()).collect()
    }
}

/// `herald executor config`: the JSON the runner reads (§H.3). Only what herald decides is set;
/// directories come from the runner's configuration unless `HERALD_EXECUTOR_BUILDS_DIR` /
/// `HERALD_EXECUTOR_CACHE_DIR` override them.
pub fn config() -> i32 {
    let env = &ProcessEnv;
    let mut output = json!({
        "driver": { "name": "herald", "version": env!("CARGO_PKG_VERSION") },
        "shell": shell(env),
    });
    if let Some(dir) = env.non_empty("HERALD_EXECUTOR_BUILDS_DIR") {
        output["builds_dir"] = json!(dir.to_string_lossy());
        output["builds_dir_is_shared"] = json!(false);
    }
    if let Some(dir) = env.non_empty("HERALD_EXECUTOR_CACHE_DIR") {
        output["cache_dir"] = json!(dir.to_string_lossy());
    }
    println!("{output}");
    0
}

/// `herald executor prepare`: checks that stages can run here (§H.4).
pub fn prepare() -> Outcome {
    let env = &ProcessEnv;
    let shell = shell(env);
    if find_program(&shell).is_none() {
        return Err(Failure::with_code(
            format!("herald executor: the shell '{shell}' was not found on this runner host (HERALD_EXECUTOR_SHELL)"),
            exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", DEFAULT_SYSTEM_FAILURE),
        ));
    }
    println!(
        "herald {}: each stage runs with {shell} on this host and is published as a step",
        env!("CARGO_PKG_VERSION")
    );
    Ok(0)
}

/// `herald executor run <script> <stage>`: one stage as a supervised, published step (§H.5),
/// exit codes by the contract (§H.7).
pub fn run(script: &Path, stage: &str) -> Outcome {
    let env = &ProcessEnv;
    let system_failure =
        |line: String| Failure::with_code(line, exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", DEFAULT_SYSTEM_FAILURE));
    let supervisor = Supervisor::install()
        .map_err(|error| system_failure(format!("herald executor: cannot set up signal handling: {error}")))?;
    let job = JobEnv(env);
    let args = RunRequest {
        name: Some(step_name(stage).into()),
        command: vec![OsString::from(shell(env)), script.as_os_str().to_owned()],
        ..RunRequest::default()
    };
    let mut settings =
        RunSettings::resolve(args, &job).map_err(|error| system_failure(format!("herald executor: {error}")))?;
    // The runner already frames each stage in the job log, and a JUnit path would name a file on
    // the runner host: neither applies here.
    settings.in_gitlab_ci = false;
    settings.junit = None;
    if is_hidden(env, stage) {
        settings.publishing = Publishing::Off(None);
    }
    let outcome = crate::commands::run::run_step(&supervisor, &settings, &["HERALD_TOKEN"]);
    match outcome.end {
        // Why it did not start was said already.
        StepEnd::NotStarted { .. } => Ok(exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", DEFAULT_SYSTEM_FAILURE)),
        _ if outcome.exit_code() == 0 => Ok(0),
        _ => {
            // The script's own code, for `allow_failure: exit_codes`.
            if let Some(file) = env.non_empty("BUILD_EXIT_CODE_FILE") {
                std::fs::write(&file, format!("{}\n", outcome.exit_code())).map_err(|error| {
                    system_failure(format!("herald executor: cannot write BUILD_EXIT_CODE_FILE: {error}"))
                })?;
            }
            Ok(exit_code(env, "BUILD_FAILURE_EXIT_CODE", DEFAULT_BUILD_FAILURE))
        }
    }
}

/// `herald executor cleanup`: closes the job's steps left open and settles the note (§H.6). Its
/// exit code never changes the job's result; problems go to the runner's log.
pub fn cleanup() -> i32 {
    // Problems are said (to the runner's log); the code is not the job's business.
    let _ =
        crate::output::exit_code(crate::commands::note::finalize_in("herald executor cleanup", &JobEnv(&ProcessEnv)));
    0
}

fn shell(env: &dyn Env) -> String {
    env.non_empty("HERALD_EXECUTOR_SHELL").map_or_else(|| "bash".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Stages run but not published: `HERALD_EXECUTOR_HIDE` (comma-separated runner stage names).
fn is_hidden(env: &dyn Env, stage: &str) -> bool {
    let hidden = env.get("HERALD_EXECUTOR_HIDE").map(|v| v.to_string_lossy().into_owned());
    let hidden = hidden.as_deref().unwrap_or(DEFAULT_HIDDEN);
    hidden.split(',').map(str::trim).any(|name| name == stage)
}

fn exit_code(env: &dyn Env, name: &str, default: i32) -> i32 {
    env.non_empty(name).and_then(|v| v.to_string_lossy().trim().parse().ok()).unwrap_or(default)
}

/// The program's path: as given when it has a slash, else found on PATH.
fn find_program(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use std::collections::HashMap;

    #[test]
    fn the_token_comes_only_from_the_runner() {
        let runner = MapEnv(HashMap::from([
            ("HERALD_TOKEN", "runner-token"),
            ("CUSTOM_ENV_HERALD_TOKEN", "job-token"),
            ("CUSTOM_ENV_CI_PROJECT_ID", "42"),
            ("CI_PROJECT_ID", "runner's own, not the job's"),
            ("CUSTOM_ENV_HERALD_STATUS_PREFIX", "job-prefix"),
            ("HERALD_MODE", "always"),
            ("CUSTOM_ENV_HERALD_MODE", "off"),
        ]));
        let job = JobEnv(&runner);
        assert_eq!(job.get("HERALD_TOKEN"), Some("runner-token".into()));
        assert_eq!(job.get("CI_PROJECT_ID"), Some("42".into()));
        assert_eq!(job.get("HERALD_STATUS_PREFIX"), Some("job-prefix".into()), "a job may choose its prefix");
        assert_eq!(job.get("HERALD_MODE"), Some("always".into()), "the administrator's setting wins");
        let only_job = MapEnv(HashMap::from([("CUSTOM_ENV_HERALD_TOKEN", "job-token")]));
        assert_eq!(JobEnv(&only_job).get("HERALD_TOKEN"), None, "never the job's");
    }

    #[test]
    fn hidden_stages() {
        let env = MapEnv(HashMap::new());
        assert!(is_hidden(&env, "prepare_script"));
        assert!(!is_hidden(&env, "build_script"));
        let custom = MapEnv(HashMap::from([("HERALD_EXECUTOR_HIDE", "get_sources, restore_cache")]));
        assert!(is_hidden(&custom, "restore_cache"));
        assert!(!is_hidden(&custom, "prepare_script"));
    }
}
