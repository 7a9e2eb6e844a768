//! What gets sent to GitLab, and when, for one step: its commit status goes `running` while the
//! step runs and to its final state when it ends, and the merge request's note follows: one live
//! update for a step still running after a second, one verified write after the final state
//! (docs/design.md §5, §6) — unless the step passed and the job's plan has more steps, whose herald
//! then writes the note for both (`job_memory`).
//!
//! Publishing happens on one background thread (worker.rs), started after the step's process, so
//! the step never waits for the network; the HTTP client and TLS roots are built on that thread
//! too. The thread always works towards the newest state wanted: if the step ends before
//! `running` went out, `running` is skipped, and `running` waits `RUNNING_DELAY` for that chance.
//! A state GitLab already has is never posted again (a terminal state posted twice would create a
//! second status). Retryable failures (409 lock, 429, 5xx, no answer)
//! are retried with jittered backoff; once the step has ended, everything must be done within
//! `HERALD_FLUSH_TIMEOUT`, after which herald exits with the step's code regardless.

pub mod baseline;
pub mod findings;
pub mod job_memory;
mod note;
pub mod plan;
pub mod settle;
mod status;
mod worker;

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::PublishContext;
use crate::gitlab::{ApiError, Client};
use crate::step::{StepName, StepOutcome};
pub use note::view::{build_view, Sources};
pub use note::{NoteSync, SyncError, Synced, STEP_ROUNDS};
pub use status::{status_name, FinalState, FinalStatus, StatusName};
use worker::{Ended, Event, Report, Worker};

/// The client for publishing to `context`: the one place a context becomes a client (its API, token,
/// private CA, and dry run). The error is a line to print (a String: every caller prints it, none
/// tells one failure from another).
pub fn client(context: &PublishContext) -> Result<Client, String> {
    Client::new(&context.api_url, context.token.clone(), context.ca_file.as_deref(), context.dry_run)
}

/// The background publisher of one step's status.
pub struct Publisher {
    events: Sender<Event>,
    reports: Receiver<Report>,
    /// Set by the publisher thread once it knows the task name.
    status_name: Arc<Mutex<String>>,
}

impl Publisher {
    /// Starts publishing `running` for the step, in the background. The pipeline's configuration
    /// (task name, planned steps) is read there too, off the supervisor's thread: on a job's first
    /// step it may fetch includes through the API. `named` says whether the step was given `--name`.
    pub fn start(context: PublishContext, step: &StepName, named: bool) -> Publisher {
        // Until the configuration is read, the step is named after its job.
        let started = Instant::now();
        let name = Arc::new(Mutex::new(status_name(&context.status_prefix, &context.job_name, step, false)));
        let (events, event_receiver) = mpsc::channel();
        let (report_sender, reports) = mpsc::channel();
        let (step, shared_name) = (step.clone(), name.clone());
        let spawned = std::thread::Builder::new().name("publisher".into()).spawn(move || {
            crate::fault_injection::maybe_panic("publisher");
            let plan = plan::for_job(&context);
            let job = plan.as_ref().and_then(|plan| plan.job(&context.job_name));
            let task = job.map_or_else(|| context.job_name.clone(), |job| job.task.clone());
            let alone = !named && job.is_some_and(|job| job.steps.len() == 1 && job.steps[0] == step.as_str());
            // A name an earlier step of the job already took gets the next number (`sh (2)`), as
            // in the plan: a repeated name must never hide an earlier step's result.
            let taken: Vec<String> = job_memory::steps(&context).into_iter().map(|step| step.name).collect();
            let (step, name) = (1..)
                .map(|occurrence| {
                    let step = step.numbered(occurrence);
                    let name = status_name(&context.status_prefix, &task, &step, alone && occurrence == 1);
                    (step, name)
                })
                .find(|(_, name)| !taken.contains(name))
                .expect("an unused number exists");
            job_memory::step_started(&context, &name);
            *shared_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = name.clone();
            let worker = Worker::new(context, plan, name, step.to_string(), started, event_receiver);
            let _ = report_sender.send(worker.run());
        });
        if let Err(error) = spawned {
            // Without a thread there is no publishing; the step is unaffected.
            crate::output::say(&format!("herald: the step's status is not published: cannot start a thread: {error}"));
        }
        Publisher { events, reports, status_name: name }
    }

    /// Publishes the step's end, waiting at most `flush_timeout`; prints one line if the status
    /// could not be brought to its final state. `also`, when given, follows the outcome in the
    /// status's description (`failed (exit 1) after 2.0s · 4 findings, 1 on changed lines`).
    pub fn finish(self, outcome: &StepOutcome, excerpt: &[String], also: Option<&str>, flush_timeout: Duration) {
        self.finish_with_summary(outcome, excerpt, also, None, flush_timeout);
    }

    /// `finish`, with the step's summary for the note (report/summary.rs: masked, within the
    /// step's budget).
    pub fn finish_with_summary(
        self,
        outcome: &StepOutcome,
        excerpt: &[String],
        also: Option<&str>,
        summary: Option<String>,
        flush_timeout: Duration,
    ) {
        let status = FinalStatus::of(outcome, excerpt, also);
        // The worker aims a little before the deadline, so that when it gives up, its report (with
        // the last error) still arrives within the flush timeout.
        let margin = (flush_timeout / 20).min(Duration::from_millis(250));
        let deadline = Instant::now() + flush_timeout - margin;
        let ended = Ended { status, exit_code: outcome.exit_code(), summary };
        let _ = self.events.send(Event::Ended { ended, deadline });
        match self.reports.recv_timeout(flush_timeout) {
            Ok(Report::Done) => {}
            // The thread ended without a report: it panicked (a bug), and said so on stderr.
            Err(RecvTimeoutError::Disconnected) => crate::output::say(&format!(
                "herald: status '{}' may be left open: publishing stopped on an internal error; \
                 `herald finalize` (after_script) or `herald note --final` closes it",
                self.status_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
            )),
            Ok(Report::Failed(line)) => crate::output::say(&line),
            Err(RecvTimeoutError::Timeout) => crate::output::say(&format!(
                "herald: status '{}' not published: GitLab did not answer within {} (HERALD_FLUSH_TIMEOUT); \
                 `herald note --final` in a later job can still close it",
                self.status_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
                crate::duration::format_duration(flush_timeout)
            )),
        }
    }
}

/// One line on what a refusal most likely means and what to do about it.
pub fn explain(error: &ApiError, context: &PublishContext, name: &str) -> String {
    let ApiError::Http { status, message, .. } = error else { return error.to_string() };
    match (*status, message.as_str()) {
        (401, _) => format!(
            "GitLab rejected {} (401: {message}); it is unknown, expired or revoked: create a new token \
             with the api scope and update the CI/CD variable",
            context.token_variable
        ),
        (403, m) if m.contains("insufficient_scope") => format!(
            "{} lacks the api scope (403: {message}); read_api cannot post: create a token with the api scope",
            context.token_variable
        ),
        (403, _) => format!(
            "GitLab refused (403: {message}); the token's user needs at least the Developer role on {}, and \
             Maintainer to post to a protected branch",
            context.project
        ),
        (404, m) if m.contains("Project") => {
            format!("project {} was not found, or the token's user cannot see it (404)", context.project)
        }
        (404, m) if m.contains("Commit") || m.contains("References") => {
            format!("commit {} is not in project {} (404: {message})", context.sha, context.project)
        }
        (404, m) if m.contains("Pipeline") => format!(
            "pipeline {} of commit {} was not found (404: {message}); check HERALD_PIPELINE_ID and HERALD_SHA",
            context.pipeline_id.map_or_else(|| "?".into(), |id| id.to_string()),
            context.sha
        ),
        (400, m) if m.contains("has already been taken") => format!(
            "the name '{name}' is taken by a CI job of this pipeline (400); set HERALD_STATUS_PREFIX to something else"
        ),
        // Retried until the time ran out: GitLab kept failing, it did not refuse.
        (500..=599 | 409 | 429, _) => {
            format!("GitLab kept failing ({status}: {message}) until HERALD_FLUSH_TIMEOUT ran out")
        }
        _ => format!("GitLab refused it ({status}: {message})"),
    }
}
