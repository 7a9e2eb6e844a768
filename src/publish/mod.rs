//! What gets sent to GitLab, and when, for one step: its commit status goes `running` while the
//! step runs and to its final state when it ends, and the merge request's note follows: one live
//! update for a step still running after a second, one verified write after the final state
//! (docs/design.md §5, §6) — unless the step passed and the job's plan has more steps, whose herald
//! then writes the note for both (`job_memory`).
//!
//! Publishing happens on one background thread, started after the step's process, so the step
//! never waits for the network; the HTTP client and TLS roots are built on that thread too. The
//! thread always works towards the newest state wanted: if the step ends before `running` went
//! out, `running` is skipped, and `running` waits `RUNNING_DELAY` for that chance. A state GitLab already has is never posted again (a terminal state
//! posted twice would create a second status). Retryable failures (409 lock, 429, 5xx, no answer)
//! are retried with jittered backoff; once the step has ended, everything must be done within
//! `HERALD_FLUSH_TIMEOUT`, after which herald exits with the step's code regardless.

pub mod baseline;
mod carried;
pub mod findings;
pub mod job_memory;
mod note;
pub mod plan;
pub mod settle;
mod settled;
mod status;
mod view;

use std::cell::RefCell;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::PublishContext;
use crate::gitlab::retry::{self, GaveUp};
use crate::gitlab::{self, ApiError, Client, Posted, StatusPost, StatusState};
use crate::pipeline::{AllowFailure, Pipeline};
use crate::step::{StepName, StepOutcome};
pub use note::{NoteSync, SyncError, Synced, STEP_ROUNDS};
pub use status::{allowed, final_status, is_allowed, status_name};
pub use view::{build_view, job_name_of_status, Sources};

/// The client for publishing to `context`: the one place a context becomes a client (its API, token,
/// private CA, and dry run).
pub fn client(context: &PublishContext) -> Result<Client, String> {
    Client::new(&context.api_url, context.token.clone(), context.ca_file.as_deref(), context.dry_run)
}

/// Most time spent on the live note update while the step runs.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(20);
/// A step that ends sooner is not shown running in the note: its final write follows at once,
/// and a live write for it would cost requests that no reader sees for long.
const LIVE_GRACE: Duration = Duration::from_secs(1);

/// `running` goes out only once the step has run this long: a step that ends sooner (`true`, a
/// cached build) posts its final state alone, one request instead of two one after another (the
/// final post waited for the `running` in flight). The step itself never waits for this: it
/// runs while the publisher thread waits.
const RUNNING_DELAY: Duration = Duration::from_millis(50);

/// A look at the note this recent stands in for the final write's first one: the note cannot
/// have changed much since. (It was made before the final status was posted, so it cannot show
/// it: the write renders, and its verification catches what changed meanwhile.)
const RECENT_LOOK: Duration = Duration::from_secs(1);

/// A look at the note (`NoteSync::lookup`) made on its own thread, on the spare connection.
struct Look {
    started: Instant,
    answer: Receiver<note::Looked>,
}

impl Look {
    /// None when no thread can be started (then `find` looks, as it would anyway).
    fn start(note: &NoteSync<'_>, spare: &Arc<Client>, deadline: Instant) -> Option<Look> {
        let (lookup, spare) = (note.lookup(), spare.clone());
        let (send, answer) = mpsc::channel();
        let looking = move || {
            match lookup.run(&spare, deadline) {
                Ok(looked) => drop(send.send(looked)),
                Err(error) => log!(Debug, "note: the look on the spare connection failed: {error}"),
            };
        };
        std::thread::Builder::new().name("note look".into()).spawn(looking).ok()?;
        Some(Look { started: Instant::now(), answer })
    }

    /// Its answer and when it was asked, waiting for it until `until` at most; None if it
    /// failed or is not there yet.
    fn answer(self, until: Instant) -> Option<(Instant, note::Looked)> {
        let looked = self.answer.recv_timeout(until.saturating_duration_since(Instant::now())).ok()?;
        Some((self.started, looked))
    }
}

/// A state the publisher should bring the status to.
struct Wanted {
    state: StatusState,
    description: String,
    /// The step's exit code, once it ended.
    exit_code: Option<i32>,
    /// The step's summary for the note, once it ended (report/summary.rs).
    summary: Option<String>,
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
            let worker = Worker {
                context,
                plan,
                name,
                step: step.to_string(),
                started,
                events: event_receiver,
                stashed: RefCell::new(None),
            };
            let _ = report_sender.send(worker.run());
        });
        if let Err(error) = spawned {
            // Without a thread there is no publishing; the step is unaffected.
            crate::output::say(&format!("herald: the step's status is not published: cannot start a thread: {error}"));
        }
        Publisher { events, reports, status_name: name }
    }

    /// Publishes the step's final state, waiting at most `flush_timeout`. Prints one line if the
    /// status could not be brought to its final state.
    /// Publishes the step's end. `also`, when given, follows the outcome in the status's
    /// description (`failed (exit 1) after 2.0s · 4 findings, 1 on changed lines`).
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
        let (state, description) = final_status(outcome, excerpt, also);
        // The worker aims a little before the deadline, so that when it gives up, its report (with
        // the last error) still arrives within the flush timeout.
        let margin = (flush_timeout / 20).min(Duration::from_millis(250));
        let deadline = Instant::now() + flush_timeout - margin;
        let wanted = Wanted { state, description, exit_code: Some(outcome.exit_code()), summary };
        let _ = self.events.send(Event::Ended { wanted, deadline });
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

struct Worker {
    context: PublishContext,
    plan: Option<Pipeline>,
    /// The status's name, and the step's as the note shows it.
    name: String,
    step: String,
    /// When the step started (`RUNNING_DELAY`).
    started: Instant,
    events: Receiver<Event>,
    /// An event taken while a note refresh or a retry's pause was checking for one, kept for the
    /// main loop.
    stashed: RefCell<Option<Event>>,
}

impl Worker {
    /// The next event, without waiting.
    fn poll(&self) -> Option<Event> {
        self.stashed.borrow_mut().take().or_else(|| self.events.try_recv().ok())
    }

    fn run(self) -> Report {
        let context = &self.context;
        let client = match client(context) {
            Ok(client) => client,
            Err(why) => return self.failed(&why),
        };
        // The note's look-ups go on a connection of their own, alongside the status posts and the
        // other reads (`NoteSync::with_spare`); shared with the thread that looks ahead. Made
        // only where there is a note to write (a merge request's pipeline).
        let mut note = NoteSync::new(&client, context, self.plan.as_ref());
        let spare = note.as_ref().and_then(|_| self::client(context).ok()).map(Arc::new);
        if let Some(note) = note.as_mut() {
            note.job_wrote(job_memory::note_last_written(context));
            if let Some(spare) = spare.as_deref() {
                note.with_spare(spare);
            }
        }
        // A look at the note on the spare connection, made on another thread. A step whose end
        // writes the note (no planned step follows) makes the live write's look at once,
        // alongside its `running` post, unless the job knows the note is too fresh for one: that
        // opens the spare connection while the step runs, and the look serves the live write or,
        // for a step that ends sooner, the final write. A final write whose step ran longer looks
        // again while it posts the final status.
        let mut look = match (note.as_ref(), &spare) {
            (Some(note), Some(spare)) if !self.more_steps_follow() && job_memory::note_fresh_for(context).is_zero() => {
                Look::start(note, spare, Instant::now() + REFRESH_TIMEOUT)
            }
            _ => None,
        };
        // A step that ends within RUNNING_DELAY posts only its final state.
        match self.events.recv_timeout((self.started + RUNNING_DELAY).saturating_duration_since(Instant::now())) {
            Ok(event) => *self.stashed.borrow_mut() = Some(event),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Report::Done, // herald is exiting
        }
        let mut wanted =
            Wanted { state: StatusState::Running, description: "running".into(), exit_code: None, summary: None };
        let mut recorded = false;
        let mut deadline: Option<Instant> = None;
        let mut sent: Option<StatusState> = None;
        let mut last_error: Option<ApiError> = None;
        // A pause GitLab asked for (a 429's Retry-After) that the step's end cut short.
        let mut not_before: Option<Instant> = None;

        loop {
            // The newest wish wins.
            while let Some(Event::Ended { wanted: ended, deadline: at }) = self.poll() {
                (wanted, deadline) = (ended, Some(at));
            }
            if let (Some(code), false) = (wanted.exit_code, recorded) {
                wanted = self.allowed_by_the_job(&client, wanted, code, deadline);
                // The evidence `herald finalize` closes the step from if the post never lands.
                job_memory::step_ended(context, &self.name, wanted.state.as_str(), &wanted.description);
                // Whoever writes the note for this step (this process, the job's next step,
                // `finalize`) renders its summary from here.
                job_memory::keep_summary(context, &self.name, wanted.summary.as_deref());
                recorded = true;
            }
            if let (Some(note), Some(spare), Some(at)) = (note.as_ref(), &spare, deadline) {
                let recent = look.as_ref().is_some_and(|look| look.started.elapsed() < RECENT_LOOK);
                if !recent && wanted.state.is_final() && sent != Some(wanted.state) && !self.leaves_note(&wanted) {
                    look = Look::start(note, spare, at);
                }
            }
            if sent == Some(wanted.state) {
                if wanted.state.is_final() {
                    return match (note.as_mut(), deadline) {
                        (Some(note), Some(at)) if self.leaves_note(&wanted) => {
                            // The job's next step writes the note after its own status, showing
                            // this one's too; until then a marker says a write is owed.
                            log!(Info, "note: left to the job's next step");
                            job_memory::owe_note(context);
                            if let Err(error) = note.remove_own_duplicate(at) {
                                log!(Debug, "note: a duplicate of ours may be left: {error}");
                            }
                            Report::Done
                        }
                        (Some(note), Some(at)) => {
                            if let Some((sent, looked)) = look.take().and_then(|look| look.answer(at)) {
                                note.prefetched(sent, looked);
                            }
                            note.expect_step(context, &self.step, wanted.state.as_str(), &wanted.description);
                            note.expect_summary(&self.name, wanted.summary.as_deref());
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

            if let Some(at) = not_before.take() {
                let until = deadline.map_or(at, |deadline| at.min(deadline));
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
            }
            if deadline.is_some_and(|at| Instant::now() >= at) {
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
            // Until the step ends there is no deadline: `running` is tried until the step's end
            // interrupts the pause with a new wish.
            let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
            let mut exiting = false;
            let pause = |wait: Duration| {
                let paused_at = Instant::now();
                match self.events.recv_timeout(wait) {
                    Ok(event) => {
                        // The step ended mid-pause: the new wish goes out, but not before the time
                        // GitLab asked for has passed (nor after the new flush deadline).
                        not_before = Some(paused_at + wait);
                        *self.stashed.borrow_mut() = Some(event);
                        true
                    }
                    Err(RecvTimeoutError::Timeout) => false,
                    Err(RecvTimeoutError::Disconnected) => {
                        exiting = true;
                        true
                    }
                }
            };
            let mut ambiguous = false;
            let attempt = |timeout: Duration| {
                // A final state whose earlier post may have landed unseen (no answer, or a
                // gateway error) is looked up before it is posted again: posted twice, it would
                // make a second status and mark the first retried.
                // The look-up is tried twice within the attempt: were each failed look-up to cost
                // a whole pause, a flaky GitLab would need two lucky requests in a row per try.
                if ambiguous && post.state.is_final() {
                    let landed = self.already_posted(&client, &post, timeout).or_else(|error| {
                        if error.is_retryable() {
                            self.already_posted(&client, &post, timeout)
                        } else {
                            Err(error)
                        }
                    })?;
                    if landed {
                        return Ok(Posted::AlreadyThere);
                    }
                }
                let result = gitlab::post_status(&client, &post, timeout);
                if let Err(error) = &result {
                    ambiguous |= error.may_have_applied();
                    last_error = Some(error.clone());
                }
                result
            };
            match retry::call(until, pause, attempt) {
                Ok(posted) => {
                    log!(Info, "status '{}' is {}", self.name, wanted.state.as_str());
                    sent = Some(wanted.state);
                    if let (Some(note), Posted::Created { author_id: Some(me) }) = (note.as_mut(), posted) {
                        note.know_me(me);
                    }
                    if let (Some(note), StatusState::Running) = (note.as_mut(), wanted.state) {
                        self.live_update(note, &mut look);
                    }
                }
                Err(GaveUp::Interrupted) if exiting => return Report::Done,
                Err(GaveUp::Interrupted) => {} // the step ended: its final state goes out instead
                Err(GaveUp::OutOfTime) => return self.gave_up(last_error),
                Err(GaveUp::Api(error)) if error.is_retryable() => return self.gave_up(Some(error)),
                Err(GaveUp::Api(error)) => return self.failed(&explain(&error, context, &self.name)),
            }
        }
    }

    /// A failed step of a job that may fail (`allow_failure: true`, or `exit_codes` that hold
    /// its code) is posted as an allowed failure: a `failed` status would fail the pipeline that
    /// GitLab itself lets pass (gitlab.md §J). The configuration answers when it can; when it
    /// cannot (no readable `.gitlab-ci.yml`, the job not in it, or `rules:` whose `allow_failure`
    /// depends on what herald does not know), GitLab is asked once, only now that a step failed:
    /// the job's own `allow_failure` as GitLab resolved it for this pipeline. Failures the
    /// configuration does not foresee (`herald run -- x || true`) are settled by `herald
    /// finalize` and `herald note --final`.
    fn allowed_by_the_job(&self, client: &Client, wanted: Wanted, exit_code: i32, deadline: Option<Instant>) -> Wanted {
        if wanted.state != StatusState::Failed {
            return wanted;
        }
        let job = self.plan.as_ref().and_then(|plan| plan.job(&self.context.job_name));
        let may_fail = match job.map(|job| &job.allow_failure) {
            Some(AllowFailure::Unknown) | None => self.job_may_fail(client, deadline),
            Some(configured) => configured.allows(exit_code),
        };
        if may_fail {
            Wanted { state: StatusState::Success, description: allowed(&wanted.description), ..wanted }
        } else {
            wanted
        }
    }

    /// The job's `allow_failure` as GitLab has it, within half the time left for the step's
    /// final post (the post itself needs the rest). Not known (no job id, no answer in time):
    /// false, and the safety net (`herald finalize`, `herald note --final`) settles it.
    fn job_may_fail(&self, client: &Client, deadline: Option<Instant>) -> bool {
        let Some(job_id) = self.context.job_id.as_deref() else { return false };
        let now = Instant::now();
        let until = now + deadline.map_or(REFRESH_TIMEOUT, |at| at.saturating_duration_since(now) / 2);
        let project = &self.context.project;
        match retry::call(until, retry::sleep, |timeout| gitlab::job(client, project, job_id, timeout)) {
            Ok(facts) => {
                log!(Debug, "job {job_id}: GitLab says allow_failure is {}", facts.allow_failure);
                facts.allow_failure
            }
            Err(error) => {
                log!(Info, "job {job_id}: whether it may fail is not known ({error}); the status says failed");
                false
            }
        }
    }

    /// Whether GitLab already has this post's state and description as the newest status of its
    /// name: then an earlier try landed and its answer was lost.
    fn already_posted(&self, client: &Client, post: &StatusPost<'_>, timeout: Duration) -> Result<bool, ApiError> {
        let Some(pipeline_id) = post.pipeline_id else { return Ok(false) };
        let latest = gitlab::latest_status_named(client, post.project, post.sha, pipeline_id, post.name, timeout)?;
        let landed = latest.is_some_and(|status| {
            status.status == post.state.as_str() && status.description.as_deref() == Some(post.description)
        });
        if landed {
            log!(Debug, "status '{}': the earlier {} landed; not posted again", post.name, post.state.as_str());
        }
        Ok(landed)
    }

    /// Shows the step running in the note, while it runs: once, as soon as the note is older
    /// than `HERALD_MIN_UPDATE_INTERVAL`, and not for a step that ends within `LIVE_GRACE` (its
    /// final state follows at once). Gives way as soon as the step ends. When the job's previous
    /// step saw the note too fresh for a live write, nothing is asked before it may be written.
    fn live_update(&self, note: &mut NoteSync<'_>, look: &mut Option<Look>) {
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
        // The look made as the step started, if it has its answer: the live write's look.
        if let Some((sent, looked)) = look.take().and_then(|look| look.answer(Instant::now())) {
            note.prefetched(sent, looked);
        }
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

    /// Whether the note is left to the job's next step: this one passed (not only allowed to
    /// fail) and the plan has more steps, whose herald writes the note after its own status,
    /// showing this one's too.
    fn leaves_note(&self, wanted: &Wanted) -> bool {
        wanted.state == StatusState::Success && !is_allowed(&wanted.description) && self.more_steps_follow()
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
        match &result {
            Ok(_) => job_memory::note_paid(&self.context),
            // Not written for lack of time (a 429 storm, a short flush budget): the job owes
            // it, and `herald finalize`, with time of its own, pays it.
            Err(SyncError::OutOfTime | SyncError::Api(_)) => job_memory::owe_note(&self.context),
            Err(_) => {}
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
        // Retried until the time ran out: GitLab kept failing, it did not refuse.
        (500..=599 | 409 | 429, _) => {
            format!("GitLab kept failing ({status}: {message}) until HERALD_FLUSH_TIMEOUT ran out")
        }
        _ => format!("GitLab refused it ({status}: {message})"),
    }
}
