//! `herald tasks`: the pipeline's jobs with their include origin, task names and planned steps,
//! as herald will publish them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use serde_json::json;

use crate::env::{Env, ProcessEnv};
use crate::gitlab::Client;
use crate::output::{Failure, Outcome};
use crate::pipeline::fetch::GitLabFetch;
use crate::pipeline::{self, AllowFailure, Fetch, Job, Origin, Pipeline, When, Workflow};

/// GitLab's longest job name (`Ci::Build` validates `name` to 255 characters); a longer one (a
/// long matrix value, say) may make GitLab refuse the pipeline.
const LONGEST_JOB_NAME: usize = 255;

/// The assumed variables the text output names (the JSON output has them all).
const ASSUMED_SHOWN: [&str; 4] = ["CI_PIPELINE_SOURCE", "CI_COMMIT_BRANCH", "CI_DEFAULT_BRANCH", "CI_PROJECT_PATH"];

pub fn run(json: bool, file: Option<PathBuf>, overrides: &[String]) -> Outcome {
    let env = &ProcessEnv;
    let given = given_variables(overrides)?;
    let (dir, config) = config_location(file, env);
    // Includes from elsewhere come through the API when a token and API URL are configured.
    let client = crate::context::api_access(env)
        .and_then(|(api, token, ca)| Client::new(&api, token, ca.as_deref(), false).ok());
    let fetch = client.as_ref().map(GitLabFetch::new);
    // Outside a CI job, what GitLab would set for a push of this branch (from git); then the
    // environment's own; then --variable. Later entries win.
    let in_ci = env.non_empty("GITLAB_CI").is_some();
    let assumed: Vec<(String, String)> = if in_ci {
        Vec::new()
    } else {
        let own = crate::env::ci_variables(env);
        pipeline::local::assumed_variables(&dir)
            .into_iter()
            .filter(|(name, _)| !own.iter().any(|(n, _)| n == name) && !given.iter().any(|(n, _)| n == name))
            .collect()
    };
    let variables: Vec<(String, String)> =
        assumed.iter().cloned().chain(crate::env::ci_variables(env)).chain(given.iter().cloned()).collect();
    let pipeline = pipeline::load(&dir, &config, fetch.as_ref().map(|f| f as &dyn Fetch), &variables)
        .map_err(|error| Failure::setup(format!("herald tasks: {error}")))?;
    // Outside CI, the report names what it assumed.
    let assumed = (!in_ci).then_some(assumed.as_slice());
    emit(&if json { json_report(&pipeline, assumed) } else { text_report(&pipeline, assumed) })
}

/// `--variable NAME=VALUE`, each checked to be a variable's name.
fn given_variables(overrides: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let mut given = Vec::new();
    for pair in overrides {
        match pair.split_once('=') {
            Some((name, value)) if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                given.push((name.to_owned(), value.to_owned()));
            }
            _ => return Err(Failure::setup(format!("herald tasks: --variable takes NAME=VALUE (got '{pair}')"))),
        }
    }
    Ok(given)
}

/// The project's directory and the configuration's path in it: from `--file`, else as GitLab
/// says (`CI_PROJECT_DIR`, `CI_CONFIG_PATH`), else `./.gitlab-ci.yml`.
fn config_location(file: Option<PathBuf>, env: &dyn Env) -> (PathBuf, String) {
    match file {
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
    }
}

fn origin(origin: &Origin) -> String {
    match origin {
        Origin::Root => "(root)".to_owned(),
        Origin::Include { location, .. } => location.clone(),
    }
}

/// What GitLab may refuse: job names over its limit.
fn warnings(pipeline: &Pipeline) -> Vec<String> {
    let too_long = pipeline.jobs.iter().filter(|job| job.name.chars().count() > LONGEST_JOB_NAME);
    too_long
        .map(|job| {
            let shown: String = job.name.chars().take(60).collect();
            format!(
                "job name of {} characters, over GitLab's limit of {LONGEST_JOB_NAME}: GitLab may refuse to create the pipeline: {shown}…",
                job.name.chars().count()
            )
        })
        .collect()
}

/// The JSON report: every job, those GitLab would not create included (`"when": "never"`,
/// nothing planned), and every variable assumed outside CI.
fn json_report(pipeline: &Pipeline, assumed: Option<&[(String, String)]>) -> String {
    let jobs: Vec<_> = pipeline
        .all_jobs()
        .into_iter()
        .map(|job| {
            let planned: &[String] = if job.when == When::Never { &[] } else { &job.steps };
            let mut entry = json!({
                "name": job.name, "stage": job.stage, "when": job.when.name(),
                "allow_failure": allow_failure(&job.allow_failure),
                "origin": origin(&job.origin), "task": job.task, "steps": planned,
                "before_script": job.before_script, "script": job.script, "after_script": job.after_script,
            });
            if !job.missing.is_empty() {
                entry["missing"] = json!(job.missing);
            }
            entry
        })
        .collect();
    let created = match pipeline.workflow {
        Workflow::Created => json!(true),
        Workflow::NotCreated => json!(false),
        Workflow::Unknown => json!("unknown"),
    };
    let mut report = json!({
        "pipeline_created": created, "jobs": jobs, "unresolved_includes": pipeline.unresolved,
        "warnings": warnings(pipeline),
    });
    if let Some(assumed) = assumed {
        report["assumed_variables"] = assumed.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    }
    format!("{}\n", serde_json::to_string_pretty(&report).unwrap_or_default())
}

/// The text report: a table of the jobs GitLab creates, then one line for each thing a reader
/// should know (jobs not created, warnings, includes not resolved, what was assumed outside CI).
fn text_report(pipeline: &Pipeline, assumed: Option<&[(String, String)]>) -> String {
    let mut out = String::new();
    let workflow = match pipeline.workflow {
        Workflow::Created => None,
        Workflow::NotCreated => Some("no pipeline would be created: workflow:rules create none for these variables"),
        Workflow::Unknown => {
            Some("the pipeline may not be created: workflow:rules depend on what herald cannot know here")
        }
    };
    if let Some(line) = workflow {
        let _ = writeln!(out, "{line} (each job below as its own rules say)");
    }
    out.push_str(&job_table(&pipeline.jobs));
    if !pipeline.not_created.is_empty() {
        let names: Vec<&str> = pipeline.not_created.iter().map(|job| job.name.as_str()).collect();
        let _ = writeln!(out, "not created for these variables (rules, only/except): {}", names.join(", "));
    }
    for warning in &warnings(pipeline) {
        let _ = writeln!(out, "warning: {warning}");
    }
    for include in &pipeline.unresolved {
        let _ = writeln!(out, "not resolved (no token or API to fetch it, or it failed): {include}");
    }
    for job in pipeline.jobs.iter().filter(|job| !job.missing.is_empty()) {
        let _ =
            writeln!(out, "incomplete: {} lacks {} (from an include not resolved)", job.name, job.missing.join(", "));
    }
    if let Some(assumed) = assumed {
        let shown: Vec<String> = assumed
            .iter()
            .filter(|(name, _)| ASSUMED_SHOWN.contains(&name.as_str()))
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        let shown = if shown.is_empty() { "nothing (not a git checkout)".to_owned() } else { shown.join(" ") };
        let _ =
            writeln!(out, "outside CI, assumed a push pipeline: {shown} (from git; --variable NAME=VALUE to change)");
    }
    out
}

/// The jobs as a table, one row each, columns as wide as their widest cell.
fn job_table(jobs: &[Job]) -> String {
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|job| {
            let when = job.when.name().to_owned();
            [job.name.clone(), job.stage.clone(), when, origin(&job.origin), job.task.clone(), job.steps.join(", ")]
        })
        .collect();
    let header = ["JOB", "STAGE", "WHEN", "ORIGIN", "TASK", "PLANNED STEPS"].map(String::from);
    let widths: Vec<usize> =
        (0..6).map(|i| rows.iter().chain([&header]).map(|row| row[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in [&header].into_iter().chain(&rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// `allow_failure` as the JSON report gives it: true, false, "unknown", or {"exit_codes": [...]}.
fn allow_failure(allowed: &AllowFailure) -> serde_json::Value {
    match allowed {
        AllowFailure::No => json!(false),
        AllowFailure::Yes => json!(true),
        AllowFailure::ExitCodes(codes) => json!({ "exit_codes": codes }),
        AllowFailure::Unknown => json!("unknown"),
    }
}

/// Writes the report to stdout. A reader that stopped reading (`herald tasks | head`) is not an
/// error; any other write failure is one line.
fn emit(text: &str) -> Outcome {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => Ok(0),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(error) => Err(Failure::not_done(format!("herald tasks: cannot write the report: {error}"))),
    }
}
