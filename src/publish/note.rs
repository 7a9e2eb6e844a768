//! Keeps the one herald note on a merge request true while many jobs, on many runners, write to
//! it at once (docs/design.md §6; gitlab.md §B.4: GitLab has no compare-and-swap for notes).
//!
//! The protocol every writer follows:
//! 1. Render from authoritative state only: the pipeline's jobs and herald's commit statuses.
//!    Never from the note's own text, so a stale note cannot propagate itself. The one exception
//!    is proven safe: statuses already final, which never change, listed in a hidden block of the
//!    note by the writer that read them (`settled`); the rest are read newest first.
//! 2. Find the note by herald's marker *and* the token's user as author; never adopt someone
//!    else's note. None yet: claim it (create it with a short text and a nonce) before reading
//!    the pipeline, then list again. Several of ours (writers claimed at once): keep the lowest
//!    id; the others are deleted by their creators, by `herald note`, or by anyone once they are
//!    old. A creator lists again before it writes again, even when the write that created the
//!    note was cut off (its step ended): it never writes into its own duplicate. Only the keeper renders at once; the others' statuses predate the kept claim, so the
//!    keeper's render shows them, and they wait for it.
//! 3. A note showing a newer pipeline is left alone: an older pipeline's late job never
//!    overwrites it.
//! 4. Skip the write when the body is already right; otherwise write, wait a jittered moment, read
//!    the note again: if another writer has replaced our text, verifying is now its part; if not,
//!    read the state again and write again if it moved on — a bounded number of rounds. Every
//!    state change (a status) happens before its writer's sync, and the last writer of all finds
//!    its own text and checks it against the state, so the note ends true.
//! 5. A step's final write first looks whether the note already shows that step in its final
//!    state (another writer rendered it after the status was posted): then there is nothing to
//!    write. When the note is busy (written in the last two seconds, many steps are ending
//!    together), it waits a jittered moment once and looks again before rendering itself.
//!    This is what keeps requests per step low in big pipelines (docs/benchmarks.md).

use std::time::{Duration, Instant, SystemTime};

use crate::context::PublishContext;
use crate::gitlab::{self, ApiError, Client, CommitStatus, Note, PipelineJob};
use crate::pipeline::Pipeline;
use crate::report::note::{self as view, JobView, NoteView, PipelineView, StepState, StepView};

use super::settled::Settled;
use crate::gitlab::retry::{self, Backoff, GaveUp};

/// Longest a single request may take.
/// The first pause before verifying a write: long enough for a concurrent writer's request to
/// land, short enough not to hold up the job (pauses double, jittered, up to 800 ms).
const FIRST_PAUSE: Duration = Duration::from_millis(30);
/// A note written this recently is busy: many steps are ending together.
const BUSY_WINDOW: Duration = Duration::from_secs(2);
/// How long a step's final write waits, once, on a busy note before looking again (jittered
/// between half and all of it): long enough for another writer's render to cover this step.
const BUSY_PAUSE: Duration = Duration::from_millis(500);
/// A duplicate note of ours unchanged for this many seconds has no live creator to remove it.
const OLD_DUPLICATE: f64 = 30.0;
/// Room left in a note besides its visible text and the settled statuses (GitLab counts
/// characters, this counts bytes: there is room to spare).
const SETTLED_MARGIN: usize = 10_000;
/// How many times a step's final write looks again at a busy note before writing itself.
const BUSY_LOOKS: u32 = 1;
/// How many times a writer whose claim was a duplicate looks for the keeper's render to show its
/// step, before rendering itself.
const COVERED_LOOKS: u32 = 4;
/// Write-and-verify rounds before a step's writer gives up; each round after the first follows
/// a jittered pause. Giving up is safe: the note kept changing because other writers kept
/// writing, and each of them verifies its own write.
pub const STEP_ROUNDS: u32 = 8;

/// What a sync did.
#[derive(Debug, PartialEq, Eq)]
pub enum Synced {
    /// The note already said this; nothing written.
    Unchanged,
    Written,
    /// The note shows a newer pipeline; left alone.
    NewerPipeline(u64),
    /// A live write skipped: the note changed less than `HERALD_MIN_UPDATE_INTERVAL` ago. Try
    /// again after this long.
    Throttled(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("no time left (HERALD_FLUSH_TIMEOUT)")]
    OutOfTime,
    #[error("interrupted")]
    Interrupted,
    #[error("other writers kept changing it; gave up after {0} rounds")]
    NoAgreement(u32),
}

/// The note of one pipeline on one merge request, as seen by this process.
pub struct NoteSync<'c> {
    client: &'c Client,
    plan: Option<&'c Pipeline>,
    project: String,
    mr_iid: u64,
    pipeline_id: u64,
    sha: String,
    status_prefix: String,
    min_interval: Duration,
    /// The token's user: herald's notes are the ones it wrote.
    me: Option<u64>,
    /// The note found or created earlier by this process.
    note_id: Option<u64>,
    backoff: Backoff,
    /// The step this process published, as the note shows it once it has its final state.
    own_step: Option<OwnStep>,
    /// The texts of the notes this process created (or tried to: an answer can be lost after
    /// GitLab acted): a duplicate with one of them is this process's to remove.
    created_bodies: Vec<String>,
    /// This process created a note (or may have: the answer can be lost) and has not listed the
    /// notes since: it may be a duplicate of another writer's, which this process must remove
    /// before writing again, even when the write that created it was cut off.
    unchecked_create: bool,
    /// Remove every duplicate of ours, not only our own (`herald note`, the pipeline's last word).
    all_duplicates: bool,
    /// Read every status rather than take the settled ones from the note (`herald note`).
    read_everything: bool,
    /// Until when the note is too fresh for a live write, by this machine's clock, as last seen.
    fresh_until: Option<SystemTime>,
    /// The hash of the body this job wrote last (by this process or an earlier step's).
    job_wrote: Option<u64>,
}

/// A step's row as the note shows it (see `report::note::shows_step`).
struct OwnStep {
    job_name: String,
    job_url: Option<String>,
    step: String,
    state: String,
    description: String,
}

impl<'c> NoteSync<'c> {
    /// None when there is no merge request or pipeline to write about. `plan`, the pipeline's
    /// configuration, adds the steps not started yet.
    pub fn new(client: &'c Client, context: &PublishContext, plan: Option<&'c Pipeline>) -> Option<NoteSync<'c>> {
        Some(NoteSync {
            client,
            plan,
            project: context.project.clone(),
            mr_iid: context.mr_iid?,
            pipeline_id: context.pipeline_id?,
            sha: context.sha.clone(),
            status_prefix: context.status_prefix.clone(),
            min_interval: context.min_update_interval,
            me: None,
            note_id: None,
            backoff: Backoff::starting_at(FIRST_PAUSE),
            own_step: None,
            created_bodies: Vec::new(),
            unchecked_create: false,
            all_duplicates: false,
            read_everything: false,
            fresh_until: None,
            job_wrote: None,
        })
    }

    /// Removes every duplicate note of ours when it finds them, whoever created them. Writers of
    /// steps only remove the one they created themselves: when a pipeline's first steps end
    /// together, dozens of writers may each create a note, and each removing all the others'
    /// would multiply the deletes.
    pub fn remove_all_duplicates(&mut self) {
        self.all_duplicates = true;
    }

    /// Reads every status of the pipeline, never taking settled ones from the note: the
    /// pipeline's last word does not depend on what earlier writers recorded.
    pub fn read_everything(&mut self) {
        self.read_everything = true;
    }

    /// The final state this process just posted for its step: a note that already shows it needs
    /// no write from this process (another writer rendered it after the post).
    pub fn expect_step(&mut self, context: &PublishContext, step: &str, state: &str, description: &str) {
        self.own_step = Some(OwnStep {
            job_name: context.job_name.clone(),
            job_url: context.job_url.clone(),
            step: step.to_owned(),
            state: state.to_owned(),
            description: description.to_owned(),
        });
    }

    /// Until when the note takes no live write (`HERALD_MIN_UPDATE_INTERVAL`), as this process
    /// last saw it: the job's next step need not ask before then.
    pub fn fresh_until(&self) -> Option<SystemTime> {
        self.fresh_until
    }

    /// What the job wrote last (`body_hash`): a note still holding it is not busy with others.
    pub fn job_wrote(&mut self, body_hash: Option<u64>) {
        self.job_wrote = body_hash;
    }

    /// The hash of the body this job wrote last, for the job's next step.
    pub fn job_wrote_last(&self) -> Option<u64> {
        self.job_wrote
    }

    /// The token's user id, when already known (a status post's author), saves a `GET /user`.
    pub fn know_me(&mut self, user_id: u64) {
        self.me = Some(user_id);
    }

    /// Brings the note up to date and verifies it, in at most `rounds` rounds, until `deadline`.
    /// For final writes.
    pub fn settle(&mut self, deadline: Instant, rounds: u32) -> Result<Synced, SyncError> {
        self.sync(deadline, rounds, &|| false)
    }

    /// Writes the note once, without verifying: a live update while a step runs. Skipped while
    /// the note is younger than `HERALD_MIN_UPDATE_INTERVAL` by GitLab's clock. Stops early when
    /// `interrupted` says so (the step ended: its final state matters more).
    pub fn refresh(&mut self, deadline: Instant, interrupted: &dyn Fn() -> bool) -> Result<Synced, SyncError> {
        self.sync(deadline, 1, interrupted)
    }

    /// Rounds of: find the note, render, write if different. With more than one round, every
    /// write is followed by another round that checks it (the verification): if the note no
    /// longer holds what this process wrote, a later writer has taken over, and verifying is its
    /// part; otherwise the state is read again and its render compared with what was written.
    fn sync(&mut self, deadline: Instant, rounds: u32, interrupted: &dyn Fn() -> bool) -> Result<Synced, SyncError> {
        // What this process wrote last, while verifying it, and the jobs it was rendered from.
        let mut written: Option<String> = None;
        let mut jobs: Option<Vec<PipelineJob>> = None;
        let mut looks_left = BUSY_LOOKS;
        for round in 0..rounds {
            if round > 0 {
                // Let concurrent writers land before looking again; the jitter spreads them out.
                let pause = self.backoff.next_wait(None).min(Duration::from_millis(800));
                if Instant::now() + pause >= deadline {
                    return Err(SyncError::OutOfTime);
                }
                std::thread::sleep(pause);
            }
            let guard = Guard { deadline, interrupted };
            let me = match self.me {
                Some(me) => me,
                None => {
                    let me = self.call(&guard, gitlab::current_user)?.id;
                    self.me = Some(me);
                    me
                }
            };
            // After creating a note, `find` lists again (another writer may have created one at
            // the same time) and the note found may be another's: nothing of ours to verify.
            let just_created = self.unchecked_create;
            let mut note = self.find(&guard, me)?;
            let mut body = None;
            if let (Some(ours), false) = (&written, just_created) {
                match &note {
                    // Someone wrote after us: verifying the note is now that writer's part. (The
                    // last writer always finds its own text, and checks it against the state.)
                    Some(found) if found.body.trim_end() != ours.trim_end() => {
                        log!(Debug, "note !{}: round {}, a later writer took over", self.mr_iid, round + 1);
                        return Ok(Synced::Written);
                    }
                    Some(found) => {
                        // The statuses only: they are what other writers change. A job's own state
                        // changing meanwhile is shown by the next write (at the latest by
                        // `herald note --final`).
                        let now = self.render(&guard, jobs.as_deref(), Some(found))?;
                        if now.trim_end() == ours.trim_end() {
                            log!(Debug, "note !{}: round {}, our write still holds", self.mr_iid, round + 1);
                            return Ok(Synced::Written);
                        }
                        body = Some(now); // the state moved on: write again
                    }
                    None => {} // gone (a person deleted it): written afresh below
                }
            }
            if let Some(newer) = self.newer_pipeline(note.as_ref()) {
                return Ok(Synced::NewerPipeline(newer));
            }
            if rounds == 1 {
                if let Some(wait) = note.as_ref().and_then(|n| self.too_fresh(n)) {
                    return Ok(Synced::Throttled(wait));
                }
            }
            if note.is_none() {
                // None of ours yet: claim it before reading the pipeline (see `view::claim`).
                // Whoever holds the kept claim renders at once; a writer whose claim was a
                // duplicate posted its status before the kept one was created, so the keeper's
                // render shows it: waiting for that (below) is cheaper than rendering.
                note = self.claim(&guard, me)?;
                let kept_ours =
                    note.as_ref().is_some_and(|kept| self.created_bodies.iter().any(|b| b == kept.body.trim_end()));
                looks_left = if kept_ours { 0 } else { COVERED_LOOKS };
            }
            // A step's final write: nothing to do if another writer has shown it already. While
            // the note is busy (written in the last BUSY_WINDOW), wait a moment and look again,
            // up to BUSY_LOOKS times: among many writers finishing together, one render covers
            // the others.
            while self.own_step.is_some() && written.is_none() && looks_left > 0 {
                let busy = match &note {
                    Some(found) if self.shows_own_step(found) => return Ok(Synced::Unchanged),
                    Some(found) => self.is_busy(found),
                    None => false,
                };
                let pause = Backoff::starting_at(BUSY_PAUSE).next_wait(None);
                if !busy || Instant::now() + pause >= deadline {
                    break;
                }
                looks_left -= 1;
                log!(Debug, "note !{}: busy; looking again in {} ms", self.mr_iid, pause.as_millis());
                std::thread::sleep(pause);
                note = self.find(&guard, me)?;
                if let Some(newer) = self.newer_pipeline(note.as_ref()) {
                    return Ok(Synced::NewerPipeline(newer));
                }
            }
            let body = match body {
                Some(body) => body,
                None => {
                    let fresh =
                        self.call(&guard, |c, t| gitlab::pipeline_jobs(c, &self.project, self.pipeline_id, t))?;
                    let body = self.render(&guard, Some(&fresh), note.as_ref())?;
                    jobs = Some(fresh);
                    body
                }
            };
            match &note {
                Some(note) if note.body.trim_end() == body.trim_end() => {
                    log!(Debug, "note !{}#{}: round {}, already right", self.mr_iid, note.id, round + 1);
                    return Ok(if written.is_some() { Synced::Written } else { Synced::Unchanged });
                }
                Some(note) => {
                    let id = note.id;
                    log!(Debug, "note !{}#{id}: round {}, updating it ({} bytes)", self.mr_iid, round + 1, body.len());
                    let updated =
                        self.call(&guard, |c, t| gitlab::update_note(c, &self.project, self.mr_iid, id, &body, t))?;
                    if !updated {
                        // Deleted meanwhile (a duplicate its creator removed): the next round
                        // finds the one kept and writes there.
                        log!(Debug, "note !{}#{id}: gone before our write; looking again", self.mr_iid);
                        self.note_id = None;
                        written = None;
                        continue;
                    }
                    self.fresh_until = Some(SystemTime::now() + self.min_interval);
                    self.job_wrote = Some(body_hash(&body));
                }
                None => {
                    // The claim came to nothing (GitLab answered 202, or it vanished at once).
                    log!(Debug, "note !{}: round {}, none of ours yet: creating it", self.mr_iid, round + 1);
                    // Remembered before sending: a create whose answer is lost may still have
                    // happened, and its retry then makes a second note; both are ours to remove.
                    self.created_bodies.push(body.trim_end().to_owned());
                    self.unchecked_create = true;
                    let created =
                        self.call(&guard, |c, t| gitlab::create_note(c, &self.project, self.mr_iid, &body, t))?;
                    self.note_id = created.map(|n| n.id);
                    self.fresh_until = Some(SystemTime::now() + self.min_interval);
                }
            }
            if rounds == 1 {
                return Ok(Synced::Written);
            }
            written = Some(body);
        }
        Err(SyncError::NoAgreement(rounds))
    }

    /// Creates the note with a claim and lists the notes again: another writer may have created one
    /// at the same time. Returns the one kept (the oldest), whosever it is.
    fn claim(&mut self, guard: &Guard, me: u64) -> Result<Option<Note>, SyncError> {
        let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let nonce = format!("{:x}-{:x}", std::process::id(), now.as_nanos());
        let body = view::claim(self.pipeline_id, &nonce);
        log!(Debug, "note !{}: none of ours yet: claiming it", self.mr_iid);
        // Remembered before sending: a create whose answer is lost may still have happened.
        self.created_bodies.push(body.trim_end().to_owned());
        self.unchecked_create = true;
        let created = self.call(guard, |c, t| gitlab::create_note(c, &self.project, self.mr_iid, &body, t))?;
        self.note_id = created.map(|n| n.id);
        self.find(guard, me)
    }

    /// Removes the duplicate this process may have created when the write that created it was
    /// cut off before it listed the notes again (the step ended): for a step whose final write is
    /// left to the job's next step. Without it, the duplicate would stay until it is old.
    pub fn remove_own_duplicate(&mut self, deadline: Instant) -> Result<(), SyncError> {
        if !self.unchecked_create {
            return Ok(());
        }
        let guard = Guard { deadline, interrupted: &|| false };
        let me = match self.me {
            Some(me) => me,
            None => self.call(&guard, gitlab::current_user)?.id,
        };
        self.find(&guard, me).map(drop)
    }

    /// The pipeline `note` shows, when it is newer than ours: then the note is left alone.
    fn newer_pipeline(&self, note: Option<&Note>) -> Option<u64> {
        note.and_then(|n| view::pipeline_of(&n.body)).filter(|shown| *shown > self.pipeline_id)
    }

    /// Whether `note` shows this process's step in its final state (see `expect_step`).
    fn shows_own_step(&self, note: &Note) -> bool {
        let Some(own) = &self.own_step else { return false };
        let shown = view::shows_step(
            Settled::visible(&note.body),
            &own.job_name,
            own.job_url.as_deref(),
            &own.step,
            &own.state,
            &own.description,
        );
        if shown {
            log!(Debug, "note !{}#{}: already shows this step as {}", self.mr_iid, note.id, own.state);
        }
        shown
    }

    /// Whether other writers are at work: the note changed within `BUSY_WINDOW`, by GitLab's clock,
    /// and not only by this job (whose previous step wrote it, as one job's steps do in turn).
    fn is_busy(&self, note: &Note) -> bool {
        let ours = self.job_wrote.is_some_and(|hash| hash == body_hash(&note.body));
        !ours && self.age(note).is_some_and(|age| age < BUSY_WINDOW.as_secs_f64())
    }

    /// Seconds since `note` last changed, by GitLab's clock.
    fn age(&self, note: &Note) -> Option<f64> {
        let updated = note.updated_at.as_deref().and_then(gitlab::parse_iso8601)?;
        Some(self.client.server_time()? - updated)
    }

    /// How much longer the note is too young for a live write, by GitLab's own clock.
    fn too_fresh(&self, note: &Note) -> Option<Duration> {
        let left = self.min_interval.as_secs_f64() - self.age(note)?;
        (left > 0.0).then(|| Duration::from_secs_f64(left.min(self.min_interval.as_secs_f64())))
    }

    /// Our note: by id when this process knows it, else by listing (and removing duplicates).
    /// After creating one, always by listing: what this process created may be a duplicate.
    fn find(&mut self, guard: &Guard, me: u64) -> Result<Option<Note>, SyncError> {
        if let (Some(id), false) = (self.note_id, self.unchecked_create) {
            let note = self.call(guard, |c, t| gitlab::get_note(c, &self.project, self.mr_iid, id, t))?;
            if let Some(found) = &note {
                self.saw(found);
                return Ok(note);
            }
            // Deleted (by a writer removing duplicates): look for the one that was kept.
        }
        let notes = self.call(guard, |c, t| gitlab::list_notes(c, &self.project, self.mr_iid, t))?;
        let mut ours: Vec<Note> = notes
            .into_iter()
            .filter(|n| n.author.id == me && !n.system && view::pipeline_of(&n.body).is_some())
            .collect();
        ours.sort_by_key(|n| n.id);
        // A duplicate is removed by whoever created it (it lists again after creating), by
        // `herald note`, or by anyone once it is old (its creator died before cleaning up).
        let removable = |n: &Note| {
            self.all_duplicates
                || self.created_bodies.iter().any(|body| body == n.body.trim_end())
                || self.age(n).is_some_and(|age| age > OLD_DUPLICATE)
        };
        for extra in ours.iter().skip(1).filter(|n| removable(n)) {
            log!(Debug, "note !{}#{}: a duplicate of ours; deleting it", self.mr_iid, extra.id);
            self.call(guard, |c, t| gitlab::delete_note(c, &self.project, self.mr_iid, extra.id, t))?;
        }
        self.unchecked_create = false;
        let kept = ours.into_iter().next();
        self.note_id = kept.as_ref().map(|n| n.id);
        if let Some(found) = &kept {
            self.saw(found);
        }
        Ok(kept)
    }

    /// Remembers how much longer `note` is too fresh for a live write.
    fn saw(&mut self, note: &Note) {
        if let Some(age) = self.age(note) {
            let left = (self.min_interval.as_secs_f64() - age).clamp(0.0, self.min_interval.as_secs_f64());
            self.fresh_until = Some(SystemTime::now() + Duration::from_secs_f64(left));
        }
    }

    /// The note's body for the pipeline as it is now: its jobs (read now unless given) and
    /// herald's statuses. The statuses the note `current` already knows to be final are taken from
    /// it, the rest read newest first (`settled`); `herald note` reads them all.
    fn render(&self, guard: &Guard, jobs: Option<&[PipelineJob]>, current: Option<&Note>) -> Result<String, SyncError> {
        let read;
        let jobs = match jobs {
            Some(jobs) => jobs,
            None => {
                read = self.call(guard, |c, t| gitlab::pipeline_jobs(c, &self.project, self.pipeline_id, t))?;
                &read
            }
        };
        let known = match current {
            Some(note) if !self.read_everything => {
                Settled::from_note(&note.body, self.pipeline_id, &self.status_prefix)
            }
            _ => Settled::nothing(),
        };
        let fresh = self.call(guard, |c, t| {
            gitlab::pipeline_statuses_from(c, &self.project, &self.sha, self.pipeline_id, known.below, t)
        })?;
        let statuses = known.merge(fresh);
        let view = build_view(self.pipeline_id, &self.sha, &self.status_prefix, jobs, &statuses, self.plan);
        let visible = view::render(&view);
        let room = view::GITLAB_NOTE_LIMIT.saturating_sub(visible.len() + SETTLED_MARGIN);
        let settled = Settled::of(&statuses, &self.status_prefix).block(self.pipeline_id, &self.status_prefix, room);
        Ok(if settled.is_empty() { visible } else { format!("{}\n\n{settled}", visible.trim_end()) })
    }

    /// One API call through `gitlab::retry`, within the guard's deadline, giving way when the
    /// guard says so.
    fn call<T>(
        &self,
        guard: &Guard,
        mut request: impl FnMut(&Client, Duration) -> Result<T, ApiError>,
    ) -> Result<T, SyncError> {
        if (guard.interrupted)() {
            return Err(SyncError::Interrupted);
        }
        let pause = |wait| {
            std::thread::sleep(wait);
            (guard.interrupted)()
        };
        retry::call(guard.deadline, pause, |timeout| request(self.client, timeout)).map_err(|gave_up| match gave_up {
            GaveUp::Api(error) => SyncError::Api(error),
            GaveUp::OutOfTime => SyncError::OutOfTime,
            GaveUp::Interrupted => SyncError::Interrupted,
        })
    }
}

/// A body's fingerprint, to recognise it again in a later process of the same job.
fn body_hash(body: &str) -> u64 {
    super::job_memory::stable_hash(body.trim_end().as_bytes())
}

struct Guard<'a> {
    deadline: Instant,
    interrupted: &'a dyn Fn() -> bool,
}

/// The note's content from GitLab's answers and the configuration's plan (steps not started yet,
/// task names back to jobs). Pure, so that every writer, given the same state, renders the same
/// note.
/// `lint/lint › fmt` → (`lint/lint`, Some(`fmt`)); a single unnamed step has no ` › ` part.
fn split_task(task_and_step: &str) -> (&str, Option<&str>) {
    task_and_step.split_once(" › ").map_or((task_and_step, None), |(task, step)| (task, Some(step)))
}

/// The name of the job a status of herald's belongs to, from its name: the task's job in the plan
/// (`ci/lint` → `lint`), else the task itself. For statuses without a job link (`target_url`).
pub fn job_name_of_status<'a>(status_name: &'a str, prefix: &str, plan: Option<&'a Pipeline>) -> Option<&'a str> {
    let (task, _) = split_task(status_name.strip_prefix(prefix)?.strip_prefix('/')?);
    let planned = plan.and_then(|plan| plan.jobs.iter().find(|job| job.task == task));
    Some(planned.map_or(task, |job| job.name.as_str()))
}

pub fn build_view(
    pipeline_id: u64,
    sha: &str,
    prefix: &str,
    jobs: &[PipelineJob],
    statuses: &[CommitStatus],
    plan: Option<&Pipeline>,
) -> NoteView {
    let mut jobs: Vec<&PipelineJob> = jobs.iter().collect();
    jobs.sort_by_key(|job| job.id);
    let mut job_views: Vec<JobView> = jobs
        .iter()
        .map(|job| JobView {
            id: job.id,
            name: job.name.clone(),
            status: job.status.clone(),
            web_url: job.web_url.clone(),
            steps: Vec::new(),
            planned: Vec::new(),
        })
        .collect();

    let own_prefix = format!("{prefix}/");
    let mut ours: Vec<&CommitStatus> = statuses.iter().filter(|s| s.name.starts_with(&own_prefix)).collect();
    ours.sort_by_key(|status| status.id);
    let mut unattached = Vec::new();
    for status in ours {
        let task_and_step = &status.name[own_prefix.len()..];
        let (task, step) = split_task(task_and_step);
        let planned = plan.and_then(|plan| plan.jobs.iter().find(|job| job.task == task));
        let job_name = planned.map_or(task, |job| job.name.as_str());
        // `<prefix>/<task>` alone is a job's single step: named as the plan names it.
        let step_name = match (step, planned) {
            (Some(step), _) => step.to_owned(),
            (None, Some(job)) if job.steps.len() == 1 => job.steps[0].clone(),
            (None, _) => task.to_owned(),
        };
        let step = StepView {
            name: step_name,
            state: StepState::of_step(&status.status, status.description.as_deref().unwrap_or_default()),
            description: status.description.clone().unwrap_or_else(|| status.status.clone()),
        };
        // The job is the one the status links to (CI_JOB_URL), else the one its name names.
        let by_url =
            status.target_url.as_ref().and_then(|url| job_views.iter().position(|j| j.web_url.as_ref() == Some(url)));
        let index = by_url.or_else(|| job_views.iter().position(|j| j.name == job_name));
        match index {
            Some(index) => job_views[index].steps.push(step),
            None => unattached.push(step),
        }
    }

    // Planned steps not started yet, for jobs that have not finished.
    if let Some(plan) = plan {
        for view in job_views.iter_mut().filter(|view| {
            matches!(
                view.status.as_str(),
                "created" | "pending" | "running" | "manual" | "scheduled" | "waiting_for_resource" | "preparing"
            )
        }) {
            if let Some(job) = plan.job(&view.name) {
                let started: Vec<&str> = view.steps.iter().map(|step| step.name.as_str()).collect();
                view.planned = job.steps.iter().filter(|step| !started.contains(&step.as_str())).cloned().collect();
            }
        }
    }

    // A `.post` job without steps is herald's own note job (or a cleanup): it would only ever show
    // as "running", since it is running while it writes the note.
    let post_jobs: Vec<u64> = jobs.iter().filter(|job| job.stage == ".post").map(|job| job.id).collect();
    job_views.retain(|view| !(post_jobs.contains(&view.id) && view.steps.is_empty() && view.planned.is_empty()));

    let web_url = jobs.iter().find_map(|job| {
        let url = job.web_url.as_ref()?;
        let base = &url[..url.rfind("/-/jobs/")?];
        Some(format!("{base}/-/pipelines/{pipeline_id}"))
    });
    NoteView {
        pipeline: PipelineView { id: pipeline_id, status: pipeline_status(&jobs), web_url, sha: sha.to_owned() },
        jobs: job_views,
        unattached,
    }
}

/// The pipeline's state from its jobs. Jobs of the `.post` stage are left out: herald's own
/// final job runs there, and the pipeline is "running" for as long as it does.
fn pipeline_status(jobs: &[&PipelineJob]) -> String {
    let counted: Vec<&&PipelineJob> = jobs.iter().filter(|job| job.stage != ".post").collect();
    let any = |statuses: &[&str]| counted.iter().any(|job| statuses.contains(&job.status.as_str()));
    let status = if any(&["running"]) {
        "running"
    } else if any(&["pending", "created", "waiting_for_resource", "preparing", "scheduled"]) {
        if counted.iter().any(|job| job.status != "created" && job.status != "pending") {
            "running"
        } else {
            "pending"
        }
    } else if counted.iter().any(|job| job.status == "failed" && !job.allow_failure) {
        "failed"
    } else if any(&["canceled", "canceling"]) {
        "canceled"
    } else if any(&["manual"]) && !any(&["success", "failed"]) {
        "manual"
    } else {
        "success"
    };
    status.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, name: &str, stage: &str, status: &str) -> PipelineJob {
        PipelineJob {
            id,
            name: name.into(),
            stage: stage.into(),
            status: status.into(),
            web_url: Some(format!("https://gitlab.example.com/g/p/-/jobs/{id}")),
            allow_failure: false,
        }
    }

    fn status(id: u64, name: &str, state: &str, job: Option<u64>) -> CommitStatus {
        CommitStatus {
            id,
            name: name.into(),
            status: state.into(),
            description: Some(format!("{state} description")),
            target_url: job.map(|j| format!("https://gitlab.example.com/g/p/-/jobs/{j}")),
            pipeline_id: Some(9),
            author: None,
        }
    }

    #[test]
    fn statuses_go_to_their_jobs_in_order() {
        let jobs = [job(2, "test", "test", "running"), job(1, "lint", "test", "success")];
        let statuses = [
            status(12, "herald/test › integration", "running", Some(2)),
            status(10, "herald/test › unit", "success", Some(2)),
            status(11, "herald/lint", "success", None),
            status(13, "herald/gone › x", "failed", Some(99)),
            status(14, "other-tool/check", "success", None),
        ];
        let view = build_view(9, "abc", "herald", &jobs, &statuses, None);
        assert_eq!(view.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["lint", "test"], "pipeline order");
        assert_eq!(view.jobs[0].steps[0].name, "lint", "a job's single step by name");
        let test_steps: Vec<&str> = view.jobs[1].steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(test_steps, ["unit", "integration"], "in the order they started");
        assert_eq!(view.unattached.len(), 1, "a status of a job not in this pipeline");
        assert_eq!(view.pipeline.web_url.as_deref(), Some("https://gitlab.example.com/g/p/-/pipelines/9"));
        assert_eq!(view.pipeline.status, "running");
    }

    #[test]
    fn the_post_stage_does_not_keep_the_pipeline_running() {
        let jobs = [job(1, "test", "test", "failed"), job(2, "herald-note", ".post", "running")];
        assert_eq!(build_view(9, "abc", "herald", &jobs, &[], None).pipeline.status, "failed");
        let jobs = [job(1, "test", "test", "success"), job(2, "herald-note", ".post", "running")];
        let view = build_view(9, "abc", "herald", &jobs, &[], None);
        assert_eq!(view.pipeline.status, "success");
        assert_eq!(view.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["test"], "not the note job");
        let mut allowed = job(1, "flaky", "test", "failed");
        allowed.allow_failure = true;
        assert_eq!(build_view(9, "abc", "herald", &[allowed], &[], None).pipeline.status, "success");
    }
}
