//! The lifecycle of a step and the end of a job, below the commands that wire them: `herald run`
//! and the executor's `run` stage both run one step here (spawn → supervise → report → publish),
//! `herald run --findings` and `herald findings` share the findings wiring (`findings.rs`), and
//! `herald finalize`, `herald note` and the executor's `cleanup` share the job's end
//! (`job_end.rs`). Separate from `commands/` so that each command is a leaf: no command's module
//! uses another's.

pub(crate) mod findings;
pub(crate) mod job_end;
mod summary_file;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::RunSettings;
use crate::context::Publishing;
use crate::env::ProcessEnv;
use crate::findings::report::Format;
use crate::output::say;
use crate::publish::{job_memory, Publisher};
use crate::report::joblog::{self, summary_line, LogSection};
use crate::report::junit;
use crate::report::summary::{self, Summary};
use crate::step::{StepEnd, StepOutcome, Verdict};
use crate::supervise::{ChildSetup, Supervisor};
use findings::{count, publish, read_reports};
use summary_file::SummaryFile;

/// One step from start to published end: what `herald run` and the executor driver share.
/// `setup` changes the step's environment and user (the executor keeps its token to itself and
/// runs stages as their own user).
pub(crate) fn run_step(supervisor: &Supervisor, settings: &RunSettings, setup: &ChildSetup) -> StepOutcome {
    let section =
        settings.in_gitlab_ci.then(|| LogSection::for_step(&settings.step, std::process::id(), &settings.secrets));
    if let Some(section) = &section {
        say(&section.start_marker(unix_now()));
    }
    let (summary_file, summary_vars) = summary_file_for(settings, setup);
    let mut vars = setup.vars.clone();
    vars.extend(summary_vars);
    let setup = &ChildSetup { hidden_vars: setup.hidden_vars, vars, run_as: setup.run_as.clone() };
    let spawned = supervisor.spawn(&settings.command, settings.failure_tail, setup);
    // Only now, with the step already running, does anything touch the network.
    let (publisher, flush_timeout) = match &settings.publishing {
        Publishing::On(context) => {
            let publisher = Publisher::start(context.as_ref().clone(), &settings.step, settings.named);
            (Some(publisher), context.flush_timeout)
        }
        Publishing::Off(_) => (None, Default::default()),
    };
    let (outcome, tail) = match spawned {
        Ok(running) => running.wait(&settings.limits),
        Err(error) => {
            say(&format!("herald: {error}"));
            let outcome =
                StepOutcome { end: StepEnd::NotStarted { exit_code: error.exit_code() }, elapsed: Default::default() };
            (outcome, Vec::new())
        }
    };
    let excerpt: Vec<String> = match outcome.verdict() {
        Verdict::Passed => Vec::new(),
        _ => crate::report::excerpt::publishable(&tail, &settings.secrets),
    };
    if let Some(section) = &section {
        say(&section.end_marker(unix_now()));
    }
    let summary = summary_file.as_ref().and_then(|file| step_summary(settings, file));
    drop(summary_file);
    if section.is_some() {
        say(&summary_line(&settings.step, &outcome));
    }
    // The local report first: it is instant, and the job may be killed during the network flush.
    if let Some(path) = &settings.junit {
        let description = outcome.describe();
        let case = junit::TestCase {
            classname: &settings.job_name,
            name: settings.step.as_str(),
            time: outcome.elapsed,
            failure: (outcome.verdict() != Verdict::Passed).then_some(description.as_str()),
            output: &excerpt,
        };
        junit::append_or_warn(path, &case);
    }
    let findings = (!settings.findings.is_empty()).then(|| publish_findings_contained(settings, flush_timeout));
    match (publisher, &settings.publishing) {
        (Some(publisher), _) => {
            // The description says a summary exists, so that any note writer can find it in the
            // job log (report/joblog.rs `summary_log`).
            let also = match (findings.flatten(), &summary) {
                (Some(findings), Some(_)) => Some(format!("{findings} · {}", joblog::SUMMARY_MARK)),
                (None, Some(_)) => Some(joblog::SUMMARY_MARK.to_owned()),
                (findings, None) => findings,
            };
            publisher.finish_with_summary(&outcome, &excerpt, also.as_deref(), summary, flush_timeout)
        }
        // Why herald does not publish is the same on every step: said once per job.
        (None, Publishing::Off(Some(why))) if job_memory::first_telling(&ProcessEnv, why) => say(why),
        (None, _) => {}
    }
    outcome
}

/// `publish_findings`, with a panic in it (a bug) caught: the step's exit code and its final
/// status come after it, whatever happened to its findings.
fn publish_findings_contained(settings: &RunSettings, flush_timeout: Duration) -> Option<String> {
    let publish = std::panic::AssertUnwindSafe(|| publish_findings(settings, flush_timeout));
    std::panic::catch_unwind(publish).unwrap_or_else(|_| {
        say("herald: findings: not published: an internal error (a bug, described above); the step's result stands");
        None
    })
}

/// `--findings`: the step's reports as threads on the merge request's changed lines, within half
/// the flush timeout (the step's final status takes the rest); the summary for its description.
fn publish_findings(settings: &RunSettings, flush_timeout: Duration) -> Option<String> {
    crate::fault_injection::maybe_panic("findings");
    let (found, tools) = match read_reports(&settings.findings, Format::Auto, &settings.project_dir, &settings.secrets)
    {
        Ok(read) => read,
        Err(line) => {
            say(&format!("herald: findings: {line}; nothing published"));
            return None;
        }
    };
    let summary = match &settings.publishing {
        Publishing::On(context) => publish(context, &found, &tools, Instant::now() + flush_timeout / 2),
        Publishing::Off(_) => Ok(format!("{} (not published)", count(&found))),
    };
    match summary {
        Ok(summary) => {
            say(&format!("herald: findings: {summary}"));
            Some(summary)
        }
        Err(line) => {
            say(&format!("herald: findings: {line}"));
            None
        }
    }
}

/// The step's own, empty summary file (report/summary.rs), and the variables that name it to the
/// step. Without one (no private file could be made), the step runs all the same. Under the
/// stage's own TMPDIR when the executor gives it one: a stage user may not be able to reach
/// herald's. Where nothing reads a summary (outside GitLab CI, nothing to publish), the variables
/// name /dev/null: a script's `>> "$HERALD_STEP_SUMMARY"` still works, and a plain supervisor
/// makes no file per step.
fn summary_file_for(settings: &RunSettings, setup: &ChildSetup) -> (Option<SummaryFile>, Vec<(String, OsString)>) {
    let (file, path) = if summary_is_read(settings) {
        let stage_tmp = setup.vars.iter().find(|(name, _)| name == "TMPDIR").map(|(_, dir)| PathBuf::from(dir));
        let file = SummaryFile::create(stage_tmp.unwrap_or_else(std::env::temp_dir), setup.run_as.as_ref());
        let path = file.as_ref().map(|file| file.path.clone().into_os_string());
        (file, path)
    } else {
        (None, Some(OsString::from("/dev/null")))
    };
    let mut vars = Vec::new();
    if let Some(path) = path {
        vars.push(("HERALD_STEP_SUMMARY".to_owned(), path.clone()));
        if !settings.github_summary_set {
            vars.push(("GITHUB_STEP_SUMMARY".to_owned(), path));
        }
    }
    (file, vars)
}

/// Whether anything reads the step's summary: the job log (in GitLab CI) or the note.
fn summary_is_read(settings: &RunSettings) -> bool {
    settings.summary_to_log || matches!(settings.publishing, Publishing::On(_))
}

/// What the step wrote to its summary file, in the job log whole (a collapsed section) and, for the
/// note, within the step's budget. A file herald refuses is one line, and the note says so.
fn step_summary(settings: &RunSettings, file: &SummaryFile) -> Option<String> {
    match summary::read(&file.path, &settings.secrets) {
        Summary::Empty => None,
        Summary::Text { text, size } => {
            if settings.summary_to_log {
                let section = joblog::summary_section(&settings.step, std::process::id(), unix_now(), &text);
                say(section.trim_end());
            }
            Some(summary::for_note(&text, size, summary::STEP_BUDGET))
        }
        Summary::Refused(notice) => {
            say(&format!("herald: step summary: {notice}"));
            Some(format!("herald: {notice}."))
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
