//! Keeps the one herald note on a merge request true while many jobs, on many runners, write to
//! it at once (docs/design.md §6; gitlab.md §B.4: GitLab has no compare-and-swap for notes).
//!
//! The protocol every writer follows:
//! 1. Render from authoritative state only: the pipeline's jobs and herald's commit statuses.
//!    Never from the note's own text, so a stale note cannot propagate itself. The exceptions are
//!    proven safe, things that never change once known, in hidden blocks of the note: statuses
//!    already final (`settled`; the rest are read newest first), and failure excerpts from
//!    complete job logs and the MR's earlier pipelines (`carried`).
//! 2. Find the note by herald's marker *and* the token's user as author; never adopt someone
//!    else's note. None yet: claim it (create it with a nonce, showing the pipeline's jobs and
//!    statuses as GitLab has them: the version GitLab e-mails), then list again. Several of ours (writers claimed at once): keep the lowest
//!    id; the others are deleted by their creators, by `herald note`, or by anyone once they are
//!    old. A creator lists again before it writes again, even when the write that created the
//!    note was cut off (its step ended): it never writes into its own duplicate. Only the keeper
//!    renders at once; the others' statuses predate the kept claim, so the keeper's render shows
//!    them, and they wait for it.
//! 3. A note showing a newer pipeline is left alone: an older pipeline's late job never
//!    overwrites it.
//! 4. Skip the write when the body is already right; otherwise write, wait a jittered moment, read
//!    the note again: if another writer has replaced our text, verifying is now its part; if not,
//!    read the state again and write again if a status became final since our render — a
//!    bounded number of rounds. Every final state (a status) is posted before its writer's sync,
//!    and the last writer of all finds its own text and checks it against the state, so the note
//!    ends true. Steps that only started meanwhile do not count: their rows may lag, as live
//!    writes may, and in a busy pipeline they would keep the last writer rewriting.
//! 5. A step's final write first looks whether the note already shows that step in its final
//!    state (another writer rendered it after the status was posted): then there is nothing to
//!    write. It does not wait for a busy note (written in the last two seconds) to cover it:
//!    that wait held every job's end for half a second and rarely saved the write (issue #27).
//!    It leaves the write to a later writer when the statuses it reads show another step's final
//!    state that landed after its own and whose writer renders at once: that writer reads the
//!    statuses after its own post, so after this one's, and verifies (4.); the last of such a
//!    chain renders (write.rs, `left_to_a_later_writer`).
//!
//! Where each part lives: `locate.rs` finds the note, claims it and removes duplicates (the
//! claim's lifecycle is `locate::Claim`); `render.rs` reads the pipeline's state and renders the
//! body; `write.rs` puts it and verifies it. What a note carries besides its visible text is
//! `settled.rs` (statuses already final) and `carried.rs` (excerpts, history, baseline,
//! summaries); `view.rs` turns GitLab's answers into what `report::note` renders.

mod carried;
mod locate;
mod render;
mod settled;
pub mod view;
mod write;

use std::cell::RefCell;
use std::time::{Duration, Instant, SystemTime};

use crate::context::PublishContext;
use crate::gitlab::retry::{self, Backoff, GaveUp};
use crate::gitlab::{ApiError, Client};
use crate::pipeline::Pipeline;

use locate::Locator;
pub use locate::Looked;
use view::project_url_of_job;
use write::{Expected, Progress};

/// The first pause before verifying a write: long enough for a concurrent writer's request to
/// land, short enough not to hold up the job (pauses double, jittered, up to 800 ms).
const FIRST_PAUSE: Duration = Duration::from_millis(30);
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
    /// Nothing written: another step's final state landed after this one's, and its writer,
    /// which renders at once, reads the statuses after ours (write.rs, `left_to_a_later_writer`).
    LeftToLaterWriter,
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
    /// A second client, with its own connection: the note is looked up on it, so that the look
    /// can go out alongside a request on the first (see `alongside`). None: one connection.
    spare: Option<&'c Client>,
    /// The job writing: project, commit, status prefix, job link, target branch, and where its
    /// steps keep their summaries (job memory).
    job: PublishContext,
    mr_iid: u64,
    pipeline_id: u64,
    plan: Option<&'c Pipeline>,
    /// Who we are, which note is ours, and what this process created (locate.rs).
    locator: Locator,
    /// How much of the note's own record to trust: all of it for a step, none for `herald note`.
    reading: Reading,
    /// When the note last changed, as this process and its job know it.
    freshness: Freshness,
    /// This process's step as the note shows it once it has its final state (write.rs).
    expected: Expected,
    backoff: Backoff,
    /// The verdict of the last render, for the one line `herald note` prints.
    verdict: RefCell<Option<String>>,
}

/// How `herald note`, the pipeline's last word, differs from a step's writer.
#[derive(Default)]
struct Reading {
    /// Remove every duplicate of ours, not only our own.
    all_duplicates: bool,
    /// Read every status rather than take the settled ones from the note.
    everything: bool,
}

/// When the note last changed, as far as this process and its job know.
#[derive(Default)]
struct Freshness {
    /// Until when the note is too fresh for a live write, by this machine's clock, as last seen.
    until: Option<SystemTime>,
    /// The hash of the body this job wrote last (by this process or an earlier step's).
    job_wrote: Option<u64>,
}

impl<'c> NoteSync<'c> {
    /// None when there is no merge request or pipeline to write about. `plan`, the pipeline's
    /// configuration, adds the steps not started yet.
    pub fn new(client: &'c Client, context: &PublishContext, plan: Option<&'c Pipeline>) -> Option<NoteSync<'c>> {
        Some(NoteSync {
            client,
            spare: None,
            mr_iid: context.mr_iid?,
            pipeline_id: context.pipeline_id?,
            job: context.clone(),
            plan,
            locator: Locator::default(),
            reading: Reading::default(),
            freshness: Freshness::default(),
            expected: Expected::default(),
            backoff: Backoff::starting_at(FIRST_PAUSE),
            verdict: RefCell::new(None),
        })
    }

    /// Looks the note up on `spare`, a client of its own, and reads alongside it on both. At a
    /// distance a request costs a round trip, and HTTP/1.1 carries one at a time per connection:
    /// the reads of a render that do not depend on each other go out together only on two
    /// connections, and a second connection opened when it is needed costs two round trips of
    /// handshakes first. The spare one is opened by the first look at the note (while the step
    /// runs, for a step that runs a second or more) and is warm when the step ends.
    pub fn with_spare(&mut self, spare: &'c Client) {
        self.spare = Some(spare);
    }

    /// Removes every duplicate note of ours when it finds them, whoever created them. Writers of
    /// steps only remove the one they created themselves: when a pipeline's first steps end
    /// together, dozens of writers may each create a note, and each removing all the others'
    /// would multiply the deletes.
    pub fn remove_all_duplicates(&mut self) {
        self.reading.all_duplicates = true;
    }

    /// Reads every status of the pipeline, never taking settled ones from the note: the
    /// pipeline's last word does not depend on what earlier writers recorded.
    pub fn read_everything(&mut self) {
        self.reading.everything = true;
    }

    /// Until when the note takes no live write (`HERALD_MIN_UPDATE_INTERVAL`), as this process
    /// last saw it: the job's next step need not ask before then.
    pub fn fresh_until(&self) -> Option<SystemTime> {
        self.freshness.until
    }

    /// What the job wrote last (`body_hash`): a note still holding it is not busy with others.
    pub fn job_wrote(&mut self, body_hash: Option<u64>) {
        self.freshness.job_wrote = body_hash;
    }

    /// The hash of the body this job wrote last, for the job's next step.
    pub fn job_wrote_last(&self) -> Option<u64> {
        self.freshness.job_wrote
    }

    /// The pipeline's verdict as the note last rendered it, and the note's address, for one line
    /// in the job log: `pipeline #1003 failed: 2 failed · 10 passed · … — https://…#note_5005`.
    pub fn summary(&self) -> Option<String> {
        let verdict = self.verdict.borrow().clone()?;
        let base = self.job.job_url.as_deref().and_then(project_url_of_job);
        Some(match (base, self.locator.note_id()) {
            (Some(base), Some(id)) => format!("{verdict} — {base}/-/merge_requests/{}#note_{id}", self.mr_iid),
            _ => verdict,
        })
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

    /// Rounds of the protocol (the module comment): find the note (2.), leave a newer pipeline's
    /// alone (3.), claim it if there is none, leave it when it already shows this step (5.),
    /// render and write it if different (4.). With more than one round, every write is followed
    /// by another round that checks it (the verification): if the note no longer holds what
    /// this process wrote, a later writer has taken over, and verifying is its part; otherwise
    /// the state is read again and its render compared with what was written.
    fn sync(&mut self, deadline: Instant, rounds: u32, interrupted: &dyn Fn() -> bool) -> Result<Synced, SyncError> {
        let mut progress = Progress::default();
        for round in 1..=rounds {
            if round > 1 {
                self.pause_between_rounds(deadline)?;
            }
            let guard = Guard { deadline, interrupted };
            let me = self.me(&guard)?;
            // After creating a note, `find` lists again (another writer may have created one at
            // the same time) and the note found may be another's: nothing of ours to verify.
            let verifying = progress.written.is_some() && !self.locator.claim.is_unchecked();
            let (mut note, mut body) = if verifying {
                match self.verify(&guard, me, &mut progress, round)? {
                    write::Verified::Holds => return Ok(Synced::Written),
                    write::Verified::Moved(note, body) => (Some(note), Some(body)),
                    write::Verified::Gone => (None, None),
                }
            } else {
                (self.find(&guard, me)?, None)
            };
            if let Some(newer) = self.newer_pipeline(note.as_ref()) {
                return Ok(Synced::NewerPipeline(newer));
            }
            if rounds == 1 {
                if let Some(wait) = note.as_ref().and_then(|n| self.too_fresh(n)) {
                    return Ok(Synced::Throttled(wait));
                }
            }
            // The pipeline's state read for the claim, which the render then uses too.
            let mut claimed_from = None;
            if note.is_none() {
                if let Some(wait) = (rounds == 1).then(|| self.claim_turn()).flatten() {
                    return Ok(Synced::Throttled(wait));
                }
                match self.claim(&guard, me, &mut progress)? {
                    locate::Claimed::Newer(newer) => return Ok(Synced::NewerPipeline(newer)),
                    locate::Claimed::LeftToLaterWriter => return Ok(Synced::LeftToLaterWriter),
                    locate::Claimed::Note(kept, ours_from) => (note, claimed_from) = (kept, ours_from),
                }
            }
            if progress.written.is_none() && claimed_from.is_none() {
                match self.wait_until_covered(&guard, me, note, &mut progress)? {
                    write::Waited::Stop(synced) => return Ok(synced),
                    write::Waited::Write(found) => note = found,
                }
            }
            let body = match body.take() {
                Some(body) => body,
                None => match self.render_now(&guard, note.as_ref(), claimed_from, &mut progress)? {
                    Some(body) => body,
                    None => return Ok(Synced::LeftToLaterWriter),
                },
            };
            match self.put(&guard, me, note.as_ref(), &body, round)? {
                write::Put::AlreadyRight if progress.written.is_some() => return Ok(Synced::Written),
                write::Put::AlreadyRight => return Ok(Synced::Unchanged),
                write::Put::Gone => progress.written = None,
                write::Put::AnotherAppeared => {}
                write::Put::Done if rounds == 1 => return Ok(Synced::Written),
                write::Put::Done => progress.wrote(body),
            }
        }
        Err(SyncError::NoAgreement(rounds))
    }

    /// Lets concurrent writers land before looking again; the jitter spreads them out.
    fn pause_between_rounds(&mut self, deadline: Instant) -> Result<(), SyncError> {
        let pause = self.backoff.next_wait(None).min(Duration::from_millis(800));
        if Instant::now() + pause >= deadline {
            return Err(SyncError::OutOfTime);
        }
        std::thread::sleep(pause);
        Ok(())
    }

    /// Runs `here` on this thread and the read `there` on `other`, the client `here` does not use,
    /// at the same time: one round trip for both. Without a spare client (`other` None, or no
    /// spare at all), one after the other on the first. `there` is not interrupted: it is one
    /// read, bounded by `deadline`.
    fn alongside<A, B: Send>(
        &self,
        deadline: Instant,
        here: impl FnOnce() -> A,
        other: Option<&Client>,
        there: impl FnMut(&Client, Duration) -> Result<B, ApiError> + Send,
    ) -> (A, Result<B, SyncError>) {
        let (Some(other), Some(_)) = (other, self.spare) else {
            let a = here();
            let guard = Guard { deadline, interrupted: &|| false };
            return (a, call_with(self.client, &guard, there));
        };
        std::thread::scope(|scope| {
            let read = scope.spawn(move || {
                let guard = Guard { deadline, interrupted: &|| false };
                call_with(other, &guard, there)
            });
            let a = here();
            (a, read.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        })
    }

    /// One API call through `gitlab::retry`, within the guard's deadline, giving way when the
    /// guard says so.
    fn call<T>(
        &self,
        guard: &Guard,
        request: impl FnMut(&Client, Duration) -> Result<T, ApiError>,
    ) -> Result<T, SyncError> {
        call_with(self.client, guard, request)
    }
}

/// One API call on `client` through `gitlab::retry`, within the guard's deadline, giving way when
/// the guard says so.
fn call_with<T>(
    client: &Client,
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
    retry::call(guard.deadline, pause, |timeout| request(client, timeout)).map_err(|gave_up| match gave_up {
        GaveUp::Api(error) => SyncError::Api(error),
        GaveUp::OutOfTime => SyncError::OutOfTime,
        GaveUp::Interrupted => SyncError::Interrupted,
    })
}

/// Until when a sync's requests may run, and whether to give way (the step ended).
struct Guard<'a> {
    deadline: Instant,
    interrupted: &'a dyn Fn() -> bool,
}
