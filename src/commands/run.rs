//! `herald run`: start the step at once, supervise it, show its outcome, exit with its code.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::commands::findings::{count, publish, read_reports};
use crate::config::{RunRequest, RunSettings};
use crate::context::Publishing;
use crate::env::ProcessEnv;
use crate::findings::report::Format;
use crate::output::{say, Failure, Outcome};
use crate::publish::{job_memory, Publisher};
use crate::report::joblog::{summary_line, LogSection};
use crate::report::junit;
use crate::step::{StepEnd, StepOutcome, Verdict};
use crate::supervise::{ChildSetup, Supervisor};

pub fn run(args: RunRequest) -> Outcome {
    // Before anything else, so that a signal arriving from now on waits for the step.
    let supervisor = Supervisor::install()
        .map_err(|error| Failure::setup(format!("herald: cannot set up signal handling: {error}")))?;
    let settings =
        RunSettings::resolve(args, &ProcessEnv).map_err(|error| Failure::setup(format!("herald run: {error}")))?;
    Ok(run_step(&supervisor, &settings, &ChildSetup::default()).exit_code())
}

/// One step from start to published end: what `herald run` and the executor driver share.
/// `setup` changes the step's environment and user (the executor keeps its token to itself and
/// runs stages as their own user).
pub(crate) fn run_step(supervisor: &Supervisor, settings: &RunSettings, setup: &ChildSetup) -> StepOutcome {
    let section =
        settings.in_gitlab_ci.then(|| LogSection::for_step(&settings.step, std::process::id(), &settings.secrets));
    if let Some(section) = &section {
        say(&section.start_marker(unix_now()));
    }
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
        (Some(publisher), _) => publisher.finish(&outcome, &excerpt, findings.flatten().as_deref(), flush_timeout),
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

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
