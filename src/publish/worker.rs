//! The publisher thread's work for one step (mod.rs starts it): post `running` once the step has
//! run `RUNNING_DELAY`, show it running in the note after `LIVE_GRACE`, and when the step ends,
//! decide its final state once (`FinalStatus`, allowed to fail when its job may fail), record
//! it in job memory, post it, and write the note (or leave the write to the job's next step).
//! Separate from mod.rs, which is the step's side of the channel: this is the thread's side.

use std::cell::RefCell;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::context::PublishContext;
use crate::gitlab::retry::{self, GaveUp};
use crate::gitlab::{self, ApiError, Client, Posted, StatusPost, StatusState};
use crate::pipeline::{AllowFailure, Pipeline};

use super::note::{self, NoteSync, SyncError, Synced};
use super::status::{FinalState, FinalStatus};
use super::{client, explain, job_memory};

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

/// How the step ended, as the publisher is to publish it.
pub(super) struct Ended {
    /// Its final status, as the outcome gives it (before the job's `allow_failure` is applied).
    pub(super) status: FinalStatus,
    pub(super) exit_code: i32,
    /// The step's summary for the note (report/summary.rs).
    pub(super) summary: Option<String>,
}

pub(super) enum Event {
    /// The step ended: post its final state, all before `deadline`.
    Ended { ended: Ended, deadline: Instant },
}

/// How publishing went, for the one line herald prints when it did not go well.
pub(super) enum Report {
    Done,
    /// Not retryable, or the deadline passed: the line to print.
    Failed(String),
}

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

/// The events from the step's side, and one taken early (while a note refresh or a retry's
/// pause was checking for one), kept for the main loop. Interior: the checks run inside
/// callbacks that only borrow it.
struct Inbox {
    events: Receiver<Event>,
    stashed: RefCell<Option<Event>>,
}

/// What waiting on the inbox came to.
enum Heard {
    /// An event arrived (kept for the main loop).
    Event,
    Nothing,
    /// The step's side is gone: herald is exiting.
    Closed,
}

impl Inbox {
    /// The next event, without waiting.
    fn poll(&self) -> Option<Event> {
        self.stashed.borrow_mut().take().or_else(|| self.events.try_recv().ok())
    }

    /// Waits up to `wait` for an event, which is kept for `poll`.
    fn wait(&self, wait: Duration) -> Heard {
        match self.events.recv_timeout(wait) {
            Ok(event) => {
                *self.stashed.borrow_mut() = Some(event);
                Heard::Event
            }
            Err(RecvTimeoutError::Timeout) => Heard::Nothing,
            Err(RecvTimeoutError::Disconnected) => Heard::Closed,
        }
    }

    /// Whether an event is waiting (it is kept for `poll`).
    fn has_news(&self) -> bool {
        if self.stashed.borrow().is_none() {
            *self.stashed.borrow_mut() = self.events.try_recv().ok();
        }
        self.stashed.borrow().is_some()
    }
}

/// What the worker is bringing the status to, and how far it got.
struct Posting {
    /// How the step ended, once it has, and when publishing it must be done: until then the
    /// state wanted is `running`.
    ended: Option<(Ended, Instant)>,
    /// The final status decided (the job's `allow_failure` applied) and recorded in job memory.
    decided: Option<FinalStatus>,
    /// The state GitLab has from us.
    sent: Option<StatusState>,
    last_error: Option<ApiError>,
    /// A pause GitLab asked for (a 429's Retry-After) that the step's end cut short.
    not_before: Option<Instant>,
    /// When the final state landed, by GitLab's clock (its `finished_at`), when GitLab said.
    landed_at: Option<String>,
}

impl Posting {
    /// The state to post now.
    fn state(&self) -> StatusState {
        self.decided.as_ref().map_or(StatusState::Running, FinalStatus::posted_state)
    }

    fn description(&self) -> String {
        self.decided.as_ref().map_or_else(|| "running".to_owned(), FinalStatus::description)
    }

    fn deadline(&self) -> Option<Instant> {
        self.ended.as_ref().map(|(_, at)| *at)
    }

    /// Whether GitLab already has the state wanted.
    fn is_sent(&self) -> bool {
        self.sent == Some(self.state())
    }
}

/// The publisher thread of one step.
pub(super) struct Worker {
    pub(super) context: PublishContext,
    pub(super) plan: Option<Pipeline>,
    /// The status's name, and the step's as the note shows it.
    pub(super) name: String,
    pub(super) step: String,
    /// When the step started (`RUNNING_DELAY`).
    pub(super) started: Instant,
    inbox: Inbox,
}

/// What one post's tries came to.
enum Tried {
    Posted(Posted),
    /// The step ended meanwhile: its final state goes out instead.
    Superseded,
    Over(Report),
}

impl Worker {
    pub(super) fn new(
        context: PublishContext,
        plan: Option<Pipeline>,
        name: String,
        step: String,
        started: Instant,
        events: Receiver<Event>,
    ) -> Worker {
        Worker { context, plan, name, step, started, inbox: Inbox { events, stashed: RefCell::new(None) } }
    }

    /// Posts `running`, then the final state once the step ends, then writes the note.
    pub(super) fn run(self) -> Report {
        let client = match client(&self.context) {
            Ok(client) => client,
            Err(why) => return self.failed(&why),
        };
        // The note's look-ups go on a connection of their own, alongside the status posts and the
        // other reads (`NoteSync::with_spare`); shared with the thread that looks ahead. Made
        // only where there is a note to write (a merge request's pipeline).
        let mut note = NoteSync::new(&client, &self.context, self.plan.as_ref());
        let spare = note.as_ref().and_then(|_| super::client(&self.context).ok()).map(Arc::new);
        if let Some(note) = note.as_mut() {
            note.job_wrote(job_memory::note_last_written(&self.context));
            if let Some(spare) = spare.as_deref() {
                note.with_spare(spare);
            }
        }
        let mut look = self.first_look(note.as_ref(), spare.as_ref());
        // A step that ends within RUNNING_DELAY posts only its final state.
        if let Heard::Closed = self.inbox.wait((self.started + RUNNING_DELAY).saturating_duration_since(Instant::now()))
        {
            return Report::Done; // herald is exiting
        }
        let mut posting =
            Posting { ended: None, decided: None, sent: None, last_error: None, not_before: None, landed_at: None };
        loop {
            // The newest wish wins.
            while let Some(Event::Ended { ended, deadline }) = self.inbox.poll() {
                posting.ended = Some((ended, deadline));
            }
            self.decide(&client, &mut posting);
            if let (Some(note), Some(spare), Some(at)) = (note.as_ref(), &spare, posting.deadline()) {
                // A final write whose step ran longer looks again while it posts the final status.
                let recent = look.as_ref().is_some_and(|look| look.started.elapsed() < RECENT_LOOK);
                if !recent && !posting.is_sent() && posting.decided.as_ref().is_some_and(|s| !self.leaves_note(s)) {
                    look = Look::start(note, spare, at);
                }
            }
            if posting.is_sent() {
                if posting.decided.is_some() {
                    return self.after_final_post(note.as_mut(), look, &posting);
                }
                match self.inbox.events.recv() {
                    Ok(Event::Ended { ended, deadline }) => posting.ended = Some((ended, deadline)),
                    Err(_) => return Report::Done, // herald is exiting
                }
                continue;
            }
            match self.post(&client, &mut posting) {
                Tried::Posted(posted) => {
                    log!(Info, "status '{}' is {}", self.name, posting.state().as_str());
                    posting.sent = Some(posting.state());
                    if let Posted::Created { author_id, finished_at } = posted {
                        if let (Some(note), Some(me)) = (note.as_mut(), author_id) {
                            note.know_me(me);
                        }
                        posting.landed_at = finished_at;
                    }
                    if let (Some(note), StatusState::Running) = (note.as_mut(), posting.state()) {
                        self.live_update(note, &mut look);
                    }
                }
                Tried::Superseded => {}
                Tried::Over(report) => return report,
            }
        }
    }

    /// A look at the note on the spare connection, made on another thread. A step whose end
    /// writes the note (no planned step follows) makes the live write's look at once, alongside
    /// its `running` post, unless the job knows the note is too fresh for one: that opens the
    /// spare connection while the step runs, and the look serves the live write or, for a step
    /// that ends sooner, the final write.
    fn first_look(&self, note: Option<&NoteSync<'_>>, spare: Option<&Arc<Client>>) -> Option<Look> {
        let (note, spare) = (note?, spare?);
        let writes_note = !self.more_steps_follow() && job_memory::note_fresh_for(&self.context).is_zero();
        writes_note.then(|| Look::start(note, spare, Instant::now() + REFRESH_TIMEOUT)).flatten()
    }

    /// Once the step has ended: its final state, decided once (the job's `allow_failure`
    /// applied), and recorded before it is posted.
    fn decide(&self, client: &Client, posting: &mut Posting) {
        let Some((ended, deadline)) = &posting.ended else { return };
        if posting.decided.is_some() {
            return;
        }
        let status = self.allowed_by_the_job(client, ended.status.clone(), ended.exit_code, Some(*deadline));
        // The evidence `herald finalize` closes the step from if the post never lands.
        job_memory::step_ended(&self.context, &self.name, status.posted_state().as_str(), &status.description());
        // Whoever writes the note for this step (this process, the job's next step, `finalize`)
        // renders its summary from here.
        job_memory::keep_summary(&self.context, &self.name, ended.summary.as_deref());
        posting.decided = Some(status);
    }

    /// The final state is posted: the note's final write, or, when the job's next step writes
    /// it, a marker that the write is owed.
    fn after_final_post(&self, note: Option<&mut NoteSync<'_>>, look: Option<Look>, posting: &Posting) -> Report {
        let (Some(note), Some((ended, at)), Some(decided)) = (note, &posting.ended, &posting.decided) else {
            return Report::Done;
        };
        let at = *at;
        if self.leaves_note(decided) {
            // The job's next step writes the note after its own status, showing this one's too;
            // until then a marker says a write is owed.
            log!(Info, "note: left to the job's next step");
            job_memory::owe_note(&self.context);
            if let Err(error) = note.remove_own_duplicate(at) {
                log!(Debug, "note: a duplicate of ours may be left: {error}");
            }
            return Report::Done;
        }
        if let Some((sent, looked)) = look.and_then(|look| look.answer(at)) {
            note.prefetched(sent, looked);
        }
        note.expect_step(&self.context, &self.step, decided.posted_state().as_str(), &decided.description());
        note.landed_at(posting.landed_at.as_deref());
        note.expect_summary(&self.name, ended.summary.as_deref());
        self.settle_note(note, at)
    }

    /// Tries to post the state wanted until it is posted, the step's end supersedes it, or it
    /// cannot be. Until the step ends there is no deadline: `running` is tried until the step's
    /// end interrupts the pause with a new wish.
    fn post(&self, client: &Client, posting: &mut Posting) -> Tried {
        if let Some(at) = posting.not_before.take() {
            let until = posting.deadline().map_or(at, |deadline| at.min(deadline));
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
        }
        if posting.deadline().is_some_and(|at| Instant::now() >= at) {
            return Tried::Over(self.gave_up(posting.last_error.take()));
        }
        let description = posting.description();
        let post = StatusPost {
            project: &self.context.project,
            sha: &self.context.sha,
            pipeline_id: self.context.pipeline_id,
            status_ref: self.context.status_ref.as_deref(),
            name: &self.name,
            state: posting.state(),
            description: &description,
            target_url: self.context.job_url.as_deref(),
        };
        let until = posting.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
        let (mut exiting, mut not_before, mut last_error) = (false, None, None);
        let pause = |wait: Duration| {
            let paused_at = Instant::now();
            match self.inbox.wait(wait) {
                Heard::Event => {
                    // The step ended mid-pause: the new wish goes out, but not before the time
                    // GitLab asked for has passed (nor after the new flush deadline).
                    not_before = Some(paused_at + wait);
                    true
                }
                Heard::Nothing => false,
                Heard::Closed => {
                    exiting = true;
                    true
                }
            }
        };
        let mut ambiguous = false;
        let attempt = |timeout: Duration| {
            // A final state whose earlier post may have landed unseen (no answer, or a gateway
            // error) is looked up before it is posted again: posted twice, it would make a
            // second status and mark the first retried.
            if ambiguous && post.state.is_final() && self.already_posted_twice_tried(client, &post, timeout)? {
                return Ok(Posted::AlreadyThere);
            }
            let result = gitlab::post_status(client, &post, timeout);
            if let Err(error) = &result {
                ambiguous |= error.may_have_applied();
                last_error = Some(error.clone());
            }
            result
        };
        let result = retry::call(until, pause, attempt);
        posting.not_before = not_before;
        if last_error.is_some() {
            posting.last_error = last_error;
        }
        match result {
            Ok(posted) => Tried::Posted(posted),
            Err(GaveUp::Interrupted) if exiting => Tried::Over(Report::Done),
            Err(GaveUp::Interrupted) => Tried::Superseded,
            Err(GaveUp::OutOfTime) => Tried::Over(self.gave_up(posting.last_error.take())),
            Err(GaveUp::Api(error)) if error.is_retryable() => Tried::Over(self.gave_up(Some(error))),
            Err(GaveUp::Api(error)) => Tried::Over(self.failed(&explain(&error, &self.context, &self.name))),
        }
    }

    /// `already_posted`, tried twice within the attempt: were each failed look-up to cost a
    /// whole pause, a flaky GitLab would need two lucky requests in a row per try.
    fn already_posted_twice_tried(
        &self,
        client: &Client,
        post: &StatusPost<'_>,
        timeout: Duration,
    ) -> Result<bool, ApiError> {
        self.already_posted(client, post, timeout).or_else(|error| {
            if error.is_retryable() {
                self.already_posted(client, post, timeout)
            } else {
                Err(error)
            }
        })
    }

    /// A failed step of a job that may fail (`allow_failure: true`, or `exit_codes` that hold
    /// its code) is posted as an allowed failure: a `failed` status would fail the pipeline that
    /// GitLab itself lets pass (gitlab.md §J). The configuration answers when it can; when it
    /// cannot (no readable `.gitlab-ci.yml`, the job not in it, or `rules:` whose `allow_failure`
    /// depends on what herald does not know), GitLab is asked once, only now that a step failed:
    /// the job's own `allow_failure` as GitLab resolved it for this pipeline. Failures the
    /// configuration does not foresee (`herald run -- x || true`) are settled by `herald
    /// finalize` and `herald note --final`.
    fn allowed_by_the_job(
        &self,
        client: &Client,
        status: FinalStatus,
        exit_code: i32,
        deadline: Option<Instant>,
    ) -> FinalStatus {
        if status.state != FinalState::Failed {
            return status;
        }
        let job = self.plan.as_ref().and_then(|plan| plan.job(&self.context.job_name));
        let may_fail = match job.map(|job| &job.allow_failure) {
            Some(AllowFailure::Unknown) | None => self.job_may_fail(client, deadline),
            Some(configured) => configured.allows(exit_code),
        };
        if may_fail {
            status.allow()
        } else {
            status
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
        if !matches!(self.inbox.wait(first_look), Heard::Nothing) {
            return;
        }
        // The look made as the step started, if it has its answer: the live write's look.
        if let Some((sent, looked)) = look.take().and_then(|look| look.answer(Instant::now())) {
            note.prefetched(sent, looked);
        }
        loop {
            let result = note.refresh(Instant::now() + REFRESH_TIMEOUT, &|| self.inbox.has_news());
            log!(Debug, "note, live write: {result:?}");
            self.remember_for_next_step(note);
            match result {
                Ok(Synced::Throttled(wait)) if matches!(self.inbox.wait(wait), Heard::Nothing) => continue,
                // Written, unchanged, or not possible now: the final write will follow anyway.
                _ => return,
            }
        }
    }

    /// Whether the note is left to the job's next step: this one passed (not only allowed to
    /// fail) and the plan has more steps, whose herald writes the note after its own status,
    /// showing this one's too.
    fn leaves_note(&self, decided: &FinalStatus) -> bool {
        decided.state == FinalState::Passed && self.more_steps_follow()
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
