//! What gets sent to GitLab, and when, for one step: its commit status goes `running` while the
//! step runs and to its final state when it ends, and the merge request's note follows: one live
//! update for a step still running after a second, one verified write after the final state
//! (docs/design.md §4) — unless the step passed and the job's plan has more steps, whose herald
//! then writes the note for both (`job_memory`).
//!
//! Publishing happens on one background thread, started after the step's process, so the step
//! never waits for the network; the HTTP client and TLS roots are built on that thread too. The
//! thread always works towards the newest state wanted: if the step ends before `running` went
//! out, `running` is skipped. A state GitLab already has is never posted again (a terminal state
//! posted twice would create a second status). Retryable failures (409 lock, 429, 5xx, no answer)
//! are retried with jittered backoff; once the step has ended, everything must be done within
//! `HERALD_FLUSH_TIMEOUT`, after which herald exits with the step's code regardless.

pub mod job_memory;
mod note;
mod retry;
mod settled;
mod status;

use std::cell::RefCell;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::PublishContext;
use crate::gitlab::{self, ApiError, Client, Posted, StatusPost, StatusState};
use crate::pipeline::Pipeline;
use crate::step::{StepName, StepOutcome};
pub use note::{build_view, job_name_of_status, NoteSync, SyncError, Synced};
use retry::Backoff;
pub use status::{final_status, status_name};

/// Longest a single request may take while the step is still running.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most time spent on the live note update while the step runs.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(20);
/// A step that ends sooner is not shown running in the note: its final write follows at once,
/// and a live write for it would cost requests that no reader sees for long.
const LIVE_GRACE: Duration = Duration::from_secs(1);

/// A state the publisher should bring the status to.
struct Wanted {
    state: StatusState,
    description: String,
}

enum Event {
    /// The step ended: post this final state, all before `deadline`.
    Ended { wanted: Wanted, deadline: Instant },
}

/// How publishing went, for the one line herald prints when it did not go well.
enum Report {
    Done,
    /// Not retryable, or the deadline passed: the line to print.
    Failed(String),
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
        let name = Arc::new(Mutex::new(status_name(&context.status_prefix, &context.job_name, step, false)));
        let (events, event_receiver) = mpsc::channel();
        let (report_sender, reports) = mpsc::channel();
        let (step, shared_name) = (step.clone(), name.clone());
        let spawned = std::thread::Builder::new().name("publisher".into()).spawn(move || {
            crate::fault_injection::maybe_panic("publisher");
            let plan = crate::pipeline::for_job(&context);
            let job = plan.as_ref().and_then(|plan| plan.job(&context.job_name));
            let task = job.map_or_else(|| context.job_name.clone(), |job| job.task.clone());
            let alone = !named && job.is_some_and(|job| job.steps.len() == 1 && job.steps[0] == step.as_str());
            let name = status_name(&context.status_prefix, &task, &step, alone);
            *shared_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = name.clone();
            let worker = Worker {
                context,
                plan,
                name,
                step: step.to_string(),
                events: event_receiver,
                stashed: RefCell::new(None),
            };
            let _ = report_sender.send(worker.run());
        });
        if let Err(error) = spawned {
            // Without a thread there is no publishing; the step is unaffected.
            crate::cli::say(&format!("herald: the step's status is not published: cannot start a thread: {error}"));
        }
        Publisher { events, reports, status_name: name }
    }

    /// Publishes the step's final state, waiting at most `flush_timeout`. Prints one line if the
    /// status could not be brought to its final state.
    pub fn finish(self, outcome: &StepOutcome, excerpt: &[String], flush_timeout: Duration) {
        let (state, description) = final_status(outcome, excerpt);
        // The worker aims a little before the deadline, so that when it gives up, its report (with
        // the last error) still arrives within the flush timeout.
        let margin = (flush_timeout / 20).min(Duration::from_millis(250));
        let deadline = Instant::now() + flush_timeout - margin;
        let _ = self.events.send(Event::Ended { wanted: Wanted { state, description }, deadline });
        match self.reports.recv_timeout(flush_timeout) {
            Ok(Report::Done) => {}
            // The thread ended without a report: it panicked (a bug), and said so on stderr.
            Err(RecvTimeoutError::Disconnected) => crate::cli::say(&format!(
                "herald: status '{}' may be left open: publishing stopped on an internal error; \
                 `herald finalize` (after_script) or `herald note --final` closes it",
                self.status_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
            )),
            Ok(Report::Failed(line)) => crate::cli::say(&line),
            Err(RecvTimeoutError::Timeout) => crate::cli::say(&format!(
                "herald: status '{}' not published: GitLab did not answer within {} (HERALD_FLUSH_TIMEOUT); \
                 `herald note --final` in a later job can still close it",
                self.status_name.lock().unwrap_or_else(|poisoned| poisoned.into_inner()),
                crate::duration::format_duration(flush_timeout)
            )),
        }
    }
}

struct Worker {
    context: PublishContext,
    plan: Option<Pipeline>,
    /// The status's name, and the step's as the note shows it.
    name: String,
    step: String,
    events: Receiver<Event>,
    /// An event taken while a note refresh was checking for one, kept for the main loop.
    stashed: RefCell<Option<Event>>,
}

impl Worker {
    /// The next event, without waiting.
    fn poll(&self) -> Option<Event> {
        self.stashed.borrow_mut().take().or_else(|| self.events.try_recv().ok())
    }

    fn run(self) -> Report {
        let context = &self.context;
        let client =
            match Client::new(&context.api_url, context.token.clone(), context.ca_file.as_deref(), context.dry_run) {
                Ok(client) => client,
                Err(why) => return self.failed(&why),
            };
        let mut note = NoteSync::new(&client, context, self.plan.as_ref());
        if let Some(note) = note.as_mut() {
            note.job_wrote(job_memory::note_last_written(context));
        }
        let mut wanted = Wanted { state: StatusState::Running, description: "running".into() };
        let mut deadline: Option<Instant> = None;
        let mut sent: Option<StatusState> = None;
        let mut backoff = Backoff::new();
        let mut last_error: Option<ApiError> = None;

        loop {
            // The newest wish wins.
            while let Some(Event::Ended { wanted: ended, deadline: at }) = self.poll() {
                (wanted, deadline) = (ended, Some(at));
            }
            if sent == Some(wanted.state) {
                if wanted.state.is_final() {
                    return match (note.as_mut(), deadline) {
                        (Some(_), Some(_)) if wanted.state == StatusState::Success && self.more_steps_follow() => {
                            // The job's next step writes the note after its own status, showing
                            // this one's too; until then a marker says a write is owed.
                            log!(Info, "note: left to the job's next step");
                            job_memory::owe_note(context);
                            Report::Done
                        }
                        (Some(note), Some(at)) => {
                            note.expect_step(context, &self.step, wanted.state.as_str(), &wanted.description);
                            self.settle_note(note, at)
                        }
                        _ => Report::Done,
                    };
                }
                match self.events.recv() {
                    Ok(Event::Ended { wanted: ended, deadline: at }) => (wanted, deadline) = (ended, Some(at)),
                    Err(_) => return Report::Done, // herald is exiting
                }
                continue;
            }

            let left = deadline.map_or(REQUEST_TIMEOUT, |at| at.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                return self.gave_up(last_error);
            }
            let post = StatusPost {
                project: &context.project,
                sha: &context.sha,
                pipeline_id: context.pipeline_id,
                status_ref: context.status_ref.as_deref(),
                name: &self.name,
                state: wanted.state,
                description: &wanted.description,
                target_url: context.job_url.as_deref(),
            };
            match gitlab::post_status(&client, &post, left.min(REQUEST_TIMEOUT)) {
                Ok(posted) => {
                    log!(Info, "status '{}' is {}", self.name, wanted.state.as_str());
                    sent = Some(wanted.state);
                    backoff.reset();
                    if let (Some(note), Posted::Created { author_id: Some(me) }) = (note.as_mut(), posted) {
                        note.know_me(me);
                    }
                    if let (Some(note), StatusState::Running) = (note.as_mut(), wanted.state) {
                        self.live_update(note);
                    }
                }
                Err(error) if error.is_retryable() => {
                    let wait = backoff.next_wait(error.retry_after());
                    log!(Debug, "status '{}': {error}; trying again in {} ms", self.name, wait.as_millis());
                    let retry_at = Instant::now() + wait;
                    last_error = Some(error);
                    // Wait as asked, taking note if the step ends meanwhile; the deadline cuts it short.
                    loop {
                        let until = deadline.map_or(retry_at, |at| retry_at.min(at));
                        let Some(wait) = until.checked_duration_since(Instant::now()) else { break };
                        match self.events.recv_timeout(wait) {
                            Ok(Event::Ended { wanted: ended, deadline: at }) => (wanted, deadline) = (ended, Some(at)),
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return Report::Done,
                        }
                    }
                }
                Err(error) => return self.failed(&explain(&error, context, &self.name)),
            }
        }
    }

    /// Shows the step running in the note, while it runs: once, as soon as the note is older
    /// than `HERALD_MIN_UPDATE_INTERVAL`, and not for a step that ends within `LIVE_GRACE` (its
    /// final state follows at once). Gives way as soon as the step ends. When the job's previous
    /// step saw the note too fresh for a live write, nothing is asked before it may be written.
    fn live_update(&self, note: &mut NoteSync<'_>) {
        let first_look = LIVE_GRACE.max(job_memory::note_fresh_for(&self.context));
        match self.events.recv_timeout(first_look) {
            Ok(event) => {
                *self.stashed.borrow_mut() = Some(event);
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let interrupted = || {
            if self.stashed.borrow().is_none() {
                *self.stashed.borrow_mut() = self.events.try_recv().ok();
            }
            self.stashed.borrow().is_some()
        };
        loop {
            let result = note.refresh(Instant::now() + REFRESH_TIMEOUT, &interrupted);
            log!(Debug, "note, live write: {result:?}");
            self.remember_for_next_step(note);
            match result {
                Ok(Synced::Throttled(wait)) => match self.events.recv_timeout(wait) {
                    Ok(event) => {
                        *self.stashed.borrow_mut() = Some(event);
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                // Written, unchanged, or not possible now: the final write will follow anyway.
                _ => return,
            }
        }
    }

    /// Whether the job's plan has steps after this one: then, when this one passed, the job goes
    /// on to the next, whose herald brings the note up to date. Steps the plan does not know
    /// (or repeats) are not counted on.
    fn more_steps_follow(&self) -> bool {
        let Some(job) = self.plan.as_ref().and_then(|plan| plan.job(&self.context.job_name)) else { return false };
        self.context.job_id.is_some()
            && job.steps.iter().rposition(|step| *step == self.step).is_some_and(|at| at + 1 < job.steps.len())
    }

    /// The final note write for this step.
    fn settle_note(&self, note: &mut NoteSync<'_>, deadline: Instant) -> Report {
        let result = note.settle(deadline, note::STEP_ROUNDS);
        log!(Info, "note, final write: {result:?}");
        self.remember_for_next_step(note);
        if result.is_ok() {
            job_memory::note_paid(&self.context);
        }
        match result {
            // Others kept writing after us; each of them verifies its own write.
            Ok(_) | Err(SyncError::NoAgreement(_)) => Report::Done,
            Err(SyncError::Api(error)) => Report::Failed(format!(
                "herald: the merge request note was not updated: {}",
                explain(&error, &self.context, &self.name)
            )),
            Err(error) => Report::Failed(format!("herald: the merge request note was not updated: {error}")),
        }
    }

    /// Tells the job's next step until when the note takes no live write, and what this job
    /// wrote to it last.
    fn remember_for_next_step(&self, note: &NoteSync<'_>) {
        if let Some(until) = note.fresh_until() {
            job_memory::note_fresh_until(&self.context, until);
        }
        if let Some(hash) = note.job_wrote_last() {
            job_memory::note_written(&self.context, hash);
        }
    }

    fn failed(&self, why: &str) -> Report {
        Report::Failed(format!("herald: status '{}' not published: {why}", self.name))
    }

    fn gave_up(&self, last_error: Option<ApiError>) -> Report {
        let why = last_error.map_or_else(|| "no time left".to_owned(), |e| e.to_string());
        let limit = crate::duration::format_duration(self.context.flush_timeout);
        self.failed(&format!("gave up after {limit} (HERALD_FLUSH_TIMEOUT): {why}"))
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
        _ => format!("GitLab refused the status ({status}: {message})"),
    }
}
