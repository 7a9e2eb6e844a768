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

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use crate::context::PublishContext;
use crate::gitlab::{self, ApiError, Client, CommitStatus, Note, PipelineJob};
use crate::pipeline::Pipeline;
use crate::report::note::{self as view, PastPipeline};
use crate::report::{excerpt, joblog, summary};

use super::baseline::{self, Baseline};
use super::carried::Carried;
use super::settled::Settled;
use super::view::{build_view, job_id_of_url, project_url_of_job, Sources};
use crate::gitlab::retry::{self, Backoff, GaveUp};

/// Longest a single request may take.
/// The first pause before verifying a write: long enough for a concurrent writer's request to
/// land, short enough not to hold up the job (pauses double, jittered, up to 800 ms).
const FIRST_PAUSE: Duration = Duration::from_millis(30);
/// A note written this recently is busy: many steps are ending together.
const BUSY_WINDOW: Duration = Duration::from_secs(2);
/// How long a writer whose claim was a duplicate waits on a busy note before looking again
/// (jittered between half and all of it): long enough for the keeper's render to cover its step.
const BUSY_PAUSE: Duration = Duration::from_millis(500);
/// A duplicate note of ours unchanged for this many seconds has no live creator to remove it.
const OLD_DUPLICATE: f64 = 30.0;
/// Writers that found no note look again after a random moment up to this long before creating
/// one, so that of those that found none at once, the first one's note is seen by the others.
const CLAIM_SPREAD: Duration = Duration::from_millis(200);
/// A look at the note made on another thread is used only this soon after it was sent.
const YOUNG_LOOK: Duration = Duration::from_secs(2);
/// The share of the time left that a create may take: the rest is the budget of the list (and
/// delete of a duplicate) that must follow it, so that a create slowed down by a 429 storm does
/// not leave its duplicate behind for lack of time.
const CREATE_SHARE: f64 = 0.4;
/// Less time left than this, and no note is created: there would be no time to remove it again
/// if it turned out a duplicate. A later writer, `herald finalize` (the job then owes the note)
/// or `herald note` creates it.
const LEAST_TIME_TO_CREATE: Duration = Duration::from_secs(2);
/// Room left in a note besides its visible text and the settled statuses (GitLab counts
/// characters, this counts bytes: there is room to spare).
const SETTLED_MARGIN: usize = 10_000;
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
    /// A second client, with its own connection: the note is looked up on it, so that the look
    /// can go out alongside a request on the first (see `alongside`). None: one connection.
    spare: Option<&'c Client>,
    /// A look at the note made on another thread, and when it was sent: the next `find`'s
    /// (`prefetched`), if it is still young then.
    prefetched: Option<(Instant, Looked)>,
    /// When this process last sent a create: a look sent before it cannot show that note.
    last_create: Option<Instant>,
    plan: Option<&'c Pipeline>,
    project: String,
    mr_iid: u64,
    pipeline_id: u64,
    sha: String,
    status_prefix: String,
    /// The merge request's target branch and diff base: where the baseline comes from.
    target_branch: Option<String>,
    diff_base_sha: Option<String>,
    /// This job's URL: the claim links the pipeline from it.
    job_url: Option<String>,
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
    /// The verdict of the last render, for the one line `herald note` prints.
    verdict: std::cell::RefCell<Option<String>>,
    /// Where this job's steps keep their summaries (job memory): rendered from there, carried on.
    job: PublishContext,
    /// This process's step's status name and summary: a note that shows the step without this
    /// summary is not yet right.
    own_summary: Option<(String, Option<String>)>,
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
            spare: None,
            prefetched: None,
            last_create: None,
            plan,
            project: context.project.clone(),
            mr_iid: context.mr_iid?,
            pipeline_id: context.pipeline_id?,
            sha: context.sha.clone(),
            status_prefix: context.status_prefix.clone(),
            target_branch: context.target_branch.clone(),
            diff_base_sha: context.diff_base_sha.clone(),
            job_url: context.job_url.clone(),
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
            verdict: std::cell::RefCell::new(None),
            job: context.clone(),
            own_summary: None,
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

    /// The look-up `find` would make now, to be made on another thread (as the step starts, or
    /// while its final status is posted); its answer goes to `prefetched`.
    pub fn lookup(&self) -> Lookup {
        Lookup { project: self.project.clone(), mr_iid: self.mr_iid, note_id: self.known_id() }
    }

    /// The answer to `lookup`, sent at `sent`: the next `find` takes it as its look, unless this
    /// process has learnt a different way to look since, has created a note since it was sent
    /// (the list after a create must be made after it), or it is older than `YOUNG_LOOK` by
    /// then (a final post slowed down by a 429 storm: a list that old may miss a note another
    /// writer created meanwhile, and this process would create one more). Made before the final
    /// status landed, it cannot show this step's final state: the write renders, and its
    /// verification (`sync`) catches what changed meanwhile.
    pub fn prefetched(&mut self, sent: Instant, looked: Looked) {
        self.prefetched = Some((sent, looked));
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

    /// The pipeline's verdict as the note last rendered it, and the note's address, for one line
    /// in the job log: `pipeline #1003 failed: 2 failed · 10 passed · … — https://…#note_5005`.
    pub fn summary(&self) -> Option<String> {
        let verdict = self.verdict.borrow().clone()?;
        let base = self.job_url.as_deref().and_then(project_url_of_job);
        Some(match (base, self.note_id) {
            (Some(base), Some(id)) => format!("{verdict} — {base}/-/merge_requests/{}#note_{id}", self.mr_iid),
            _ => verdict,
        })
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
        // Looks left at a busy note before rendering (only after a duplicate claim, below).
        let mut looks_left = 0;
        // The final statuses the body last rendered was made from, and those of what this
        // process wrote last (see the verification below).
        let mut rendered_finals: Option<Vec<(u64, String)>> = None;
        let mut written_finals: Option<Vec<(u64, String)>> = None;
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
            let verifying = written.is_some() && !just_created;
            // Verifying a write: the statuses are read alongside the note, from where our own
            // text says they settle (which is where the note's says, if it still holds our
            // text). When another writer has taken over, the read is wasted (one request, off
            // the critical path); read after the look, it would cost every last step a round
            // trip whenever other jobs write the note too (issue #27).
            let (mut note, mut statuses) = match &written {
                Some(ours) if verifying && self.spare.is_some() => {
                    let from = self.settled_in(Some(ours)).below;
                    // The look goes on the spare connection, the read on the first.
                    let (looked, statuses) =
                        self.alongside(deadline, || self.look(&guard), Some(self.client), self.statuses_from(from));
                    (self.found(&guard, me, looked?)?, Some(statuses?))
                }
                _ => (self.find(&guard, me)?, None),
            };
            let mut body = None;
            if let (Some(ours), true) = (&written, verifying) {
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
                        if jobs.is_none() {
                            jobs = Some(self.call(&guard, |c, t| {
                                gitlab::pipeline_jobs_with_retries(c, &self.project, self.pipeline_id, t)
                            })?);
                        }
                        let known = self.settled_in(Some(&found.body));
                        let fresh = match statuses.take() {
                            Some(fresh) => fresh,
                            None => self.call(&guard, self.statuses_from(known.below))?,
                        };
                        let now_statuses = known.merge(fresh);
                        // No status has become final since our render, or only passed steps
                        // whose jobs have later planned steps (`counted`): what else changed is
                        // steps starting, whose rows may lag as live writes may (each step's
                        // final state is followed by its own writer's sync). Writing again for
                        // them would keep the last writer of a busy pipeline rewriting.
                        let finals = finals_of(&now_statuses);
                        let counted = written_finals.as_deref().map(|before| self.counted(&now_statuses, before));
                        if written_finals.is_some() && written_finals == counted {
                            log!(
                                Debug,
                                "note !{}: round {}, no status became final since our write",
                                self.mr_iid,
                                round + 1
                            );
                            return Ok(Synced::Written);
                        }
                        rendered_finals = Some(finals);
                        let now =
                            self.render(&guard, jobs.as_deref().unwrap_or_default(), Some(found), now_statuses)?;
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
            // The pipeline's state read for the claim, which the render then uses too.
            let mut claimed_from: Option<(Vec<PipelineJob>, Vec<CommitStatus>)> = None;
            if note.is_none() {
                // None of ours yet: claim it (see `view::claim`), from the pipeline as GitLab has
                // it: the claim is the version GitLab e-mails, so it shows GitLab's own jobs
                // (manual, skipped, not yet created ones as they are), never one GitLab does not
                // have, and the steps each will run, so that no later version shrinks.
                // Whoever holds the kept claim renders at once, from the same reads; a writer
                // whose claim was a duplicate posted its status before the kept one was created,
                // so the keeper's render shows it: waiting for that (below) is cheaper than
                // rendering.
                let state = self.read_state(&guard, None)?;
                // Those reads took a round trip, in which another writer may have claimed it:
                // look again right before creating, so that the window in which two writers
                // both create is one request wide, as without them. Writers that found no note
                // at the same moment (jobs started together reach their live write together)
                // look again at spread-out moments: the first one's note is there for the rest.
                let spread = Backoff::starting_at(CLAIM_SPREAD * 2).next_wait(None).saturating_sub(CLAIM_SPREAD);
                if Instant::now() + spread < deadline && !interrupted() {
                    std::thread::sleep(spread);
                }
                note = self.find(&guard, me)?;
                if note.is_none() {
                    note = self.claim(&guard, me, &state.0, &state.1)?;
                    let kept_ours =
                        note.as_ref().is_some_and(|kept| self.created_bodies.iter().any(|b| b == kept.body.trim_end()));
                    looks_left = if kept_ours { 0 } else { COVERED_LOOKS };
                    claimed_from = kept_ours.then_some(state);
                } else if let Some(newer) = self.newer_pipeline(note.as_ref()) {
                    return Ok(Synced::NewerPipeline(newer));
                }
            }
            // A step's final write: nothing to do if another writer has shown it already. A
            // busy note (written in the last BUSY_WINDOW) is not waited on: the wait held every
            // job's end and rarely found its step covered (issue #27); the verification (4.)
            // keeps the note converging whoever writes. Only a writer whose claim was a
            // duplicate waits, up to COVERED_LOOKS times, for the keeper's render, which shows
            // its step (its status predates the kept claim). The keeper itself renders: its
            // bare claim shows the step but not the rest of the note.
            while self.own_step.is_some() && written.is_none() && claimed_from.is_none() {
                let busy = match &note {
                    Some(found) if self.shows_own_step(found) => return Ok(Synced::Unchanged),
                    Some(found) => self.is_busy(found),
                    None => false,
                };
                let pause = Backoff::starting_at(BUSY_PAUSE).next_wait(None);
                if looks_left == 0 || !busy || Instant::now() + pause >= deadline {
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
                    let (read, statuses) = match claimed_from.take() {
                        Some(state) => state,
                        None => self.read_state(&guard, note.as_ref())?,
                    };
                    rendered_finals = Some(finals_of(&statuses));
                    let body = self.render(&guard, &read, note.as_ref(), statuses)?;
                    jobs = Some(read);
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
                    // A create whose answer is lost may still have happened, and its retry then
                    // makes a second note; both are ours to remove.
                    if self.create(&guard, me, &body)?.is_some() {
                        continue; // another writer's appeared: the next round writes there
                    }
                    self.fresh_until = Some(SystemTime::now() + self.min_interval);
                }
            }
            if rounds == 1 {
                return Ok(Synced::Written);
            }
            written = Some(body);
            written_finals = rendered_finals.take();
        }
        Err(SyncError::NoAgreement(rounds))
    }

    /// The pipeline's jobs (earlier attempts included) and herald's statuses, those `note` knows
    /// to be final merged with those read from where they end. The two reads do not depend on
    /// each other: they go together, on both connections.
    fn read_state(
        &self,
        guard: &Guard,
        note: Option<&Note>,
    ) -> Result<(Vec<PipelineJob>, Vec<CommitStatus>), SyncError> {
        let known = self.settled_in(note.map(|n| n.body.as_str()));
        let (read, statuses) = self.alongside(
            guard.deadline,
            || self.call(guard, |c, t| gitlab::pipeline_jobs_with_retries(c, &self.project, self.pipeline_id, t)),
            self.spare,
            self.statuses_from(known.below),
        );
        Ok((read?, known.merge(statuses?)))
    }

    /// Creates the note with a claim and lists the notes again: another writer may have created one
    /// at the same time. Returns the one kept (the oldest), whosever it is. The claim shows the
    /// pipeline's `jobs` and `statuses` as read (no excerpts, no history: those cost reads).
    fn claim(
        &mut self,
        guard: &Guard,
        me: u64,
        jobs: &[PipelineJob],
        statuses: &[CommitStatus],
    ) -> Result<Option<Note>, SyncError> {
        let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let nonce = format!("{:x}-{:x}", std::process::id(), now.as_nanos());
        let first = build_view(&Sources {
            pipeline_id: self.pipeline_id,
            sha: &self.sha,
            prefix: &self.status_prefix,
            jobs,
            statuses,
            plan: self.plan,
            history: &[],
            excerpts: &BTreeMap::new(),
            baseline: None,
            summaries: &BTreeMap::new(),
        });
        let body = view::claim(&first, &nonce);
        log!(Debug, "note !{}: none of ours yet: claiming it", self.mr_iid);
        match self.create(guard, me, &body)? {
            // Not created: another writer's note appeared while GitLab refused ours.
            Some(looked) => self.found(guard, me, looked),
            None => self.find(guard, me),
        }
    }

    /// Creates a note with `body`, within `CREATE_SHARE` of the time left: the list (and the
    /// delete of a duplicate of ours) that must follow a create keeps the rest. When the create
    /// fails in a way that may have left a note (a lost answer, time running out between
    /// tries), that list is made here, within the rest, before the error is returned. Some(look):
    /// no note was created, as another writer's appeared while GitLab refused ours.
    fn create(&mut self, guard: &Guard, me: u64, body: &str) -> Result<Option<Looked>, SyncError> {
        if guard.deadline.saturating_duration_since(Instant::now()) < LEAST_TIME_TO_CREATE {
            log!(Debug, "note !{}: too little time left to create the note and check it", self.mr_iid);
            return Err(SyncError::OutOfTime);
        }
        // Remembered before sending: a create whose answer is lost may still have happened.
        self.created_bodies.push(body.trim_end().to_owned());
        self.unchecked_create = true;
        self.last_create = Some(Instant::now());
        let left = guard.deadline.saturating_duration_since(Instant::now());
        let create_guard =
            Guard { deadline: Instant::now() + left.mul_f64(CREATE_SHARE), interrupted: guard.interrupted };
        match self.create_unless_another_appears(&create_guard, me, body) {
            Ok(Some(looked)) => Ok(Some(looked)),
            Ok(None) => Ok(None),
            // The step ended mid-create: its final write lists first (`unchecked_create`).
            Err(SyncError::Interrupted) => Err(SyncError::Interrupted),
            Err(error) => {
                log!(Debug, "note !{}: the create failed ({error}); looking for a note it may have left", self.mr_iid);
                let cleanup = Guard { deadline: guard.deadline, interrupted: &|| false };
                if let Err(cleanup_error) = self.find(&cleanup, me) {
                    log!(Debug, "note !{}: a duplicate of ours may be left: {cleanup_error}", self.mr_iid);
                }
                Err(error)
            }
        }
    }

    /// The create, tried again while GitLab refuses it in a way that applied nothing (a 429, a
    /// 409), but only after a look: if another writer's note has appeared meanwhile, this one
    /// creates none (each created note may e-mail every participant) and returns that look.
    /// None when it created the note (`note_id`).
    fn create_unless_another_appears(
        &mut self,
        guard: &Guard,
        me: u64,
        body: &str,
    ) -> Result<Option<Looked>, SyncError> {
        let mut backoff = Backoff::new();
        loop {
            if (guard.interrupted)() {
                return Err(SyncError::Interrupted);
            }
            let left = guard.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SyncError::OutOfTime);
            }
            let timeout = left.min(retry::REQUEST_TIMEOUT);
            let error = match gitlab::create_note(self.client, &self.project, self.mr_iid, body, timeout) {
                Ok(created) => {
                    self.note_id = created.map(|n| n.id);
                    return Ok(None);
                }
                Err(error) if error.is_retryable() => error,
                Err(error) => return Err(SyncError::Api(error)),
            };
            let wait = backoff.next_wait(error.retry_after());
            if Instant::now() + wait >= guard.deadline {
                return Err(SyncError::Api(error));
            }
            log!(Debug, "note !{}: the create failed ({error}); trying again in {} ms", self.mr_iid, wait.as_millis());
            std::thread::sleep(wait);
            if error.may_have_applied() {
                continue; // it may be there: the list after the create tells
            }
            let looked = self.look(guard)?;
            let another = match &looked {
                Looked::All(notes) => {
                    notes.iter().any(|n| n.author.id == me && !n.system && view::pipeline_of(&n.body).is_some())
                }
                Looked::One(..) => false,
            };
            if another {
                log!(Debug, "note !{}: another writer created the note meanwhile; ours is not made", self.mr_iid);
                return Ok(Some(looked));
            }
        }
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

    /// The final statuses among `statuses` that call for writing again over a write rendered
    /// from the final ones `before`: all but those newly final that passed and whose job's plan
    /// has a later step. That step's writer writes the note after its own final post, which
    /// shows this one too (a passing step with more to come leaves its note to it, mod.rs), and
    /// its own final state, once posted, is newly final and counts (issue #27: rewrites for
    /// them were most of a big pipeline's). A job that stops after such a step owes the note,
    /// and `herald finalize` pays it, as without this rule.
    fn counted(&self, statuses: &[CommitStatus], before: &[(u64, String)]) -> Vec<(u64, String)> {
        let newly_passed_with_more_to_come = |status: &CommitStatus| {
            !before.iter().any(|(id, _)| *id == status.id)
                && status.status == "success"
                && !super::is_allowed(status.description.as_deref().unwrap_or_default())
                && self.more_steps_follow(&status.name)
        };
        let kept: Vec<CommitStatus> =
            statuses.iter().filter(|status| !newly_passed_with_more_to_come(status)).cloned().collect();
        finals_of(&kept)
    }

    /// Whether the plan has steps after the one the status `name` is for, in its job.
    fn more_steps_follow(&self, name: &str) -> bool {
        let Some(plan) = self.plan else { return false };
        let Some(task_and_step) = name.strip_prefix(&self.status_prefix).and_then(|n| n.strip_prefix('/')) else {
            return false;
        };
        let (task, _) = super::view::split_task(task_and_step);
        let Some(job) = plan.configured_task(task) else { return false };
        let Some((step, occurrence)) = super::settle::step_of(name, &self.status_prefix, self.plan) else {
            return false;
        };
        let at =
            job.steps.iter().enumerate().filter(|(_, planned)| **planned == step).nth(occurrence.saturating_sub(1));
        at.is_some_and(|(at, _)| at + 1 < job.steps.len())
    }

    /// The summary this process's step wrote (status `name`): the note must carry it too.
    pub fn expect_summary(&mut self, name: &str, summary: Option<&str>) {
        self.own_summary = Some((name.to_owned(), summary.map(str::to_owned)));
    }

    /// Whether `note` shows this process's step in its final state (see `expect_step`), with its
    /// summary (see `expect_summary`).
    fn shows_own_step(&self, note: &Note) -> bool {
        let Some(own) = &self.own_step else { return false };
        if let Some((name, summary)) = &self.own_summary {
            let carried = Carried::from_note(&note.body, self.pipeline_id);
            if carried.summaries().get(name) != summary.as_ref() {
                return false;
            }
        }
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
        // GitLab's clock as of the latest answer on either connection.
        let now = match (self.client.server_time(), self.spare.and_then(Client::server_time)) {
            (Some(main), Some(spare)) => main.max(spare),
            (main, spare) => main.or(spare)?,
        };
        Some(now - updated)
    }

    /// How much longer the note is too young for a live write, by GitLab's own clock.
    fn too_fresh(&self, note: &Note) -> Option<Duration> {
        if self.min_interval.is_zero() {
            return None; // the throttle is off
        }
        let left = self.min_interval.as_secs_f64() - self.age(note)?;
        (left > 0.0).then(|| Duration::from_secs_f64(left.min(self.min_interval.as_secs_f64())))
    }

    /// Our note: by id when this process knows it, else by listing (and removing duplicates).
    /// After creating one, always by listing: what this process created may be a duplicate.
    fn find(&mut self, guard: &Guard, me: u64) -> Result<Option<Note>, SyncError> {
        let looked = match self.prefetched.take() {
            // Made for what this process knows now, after its last create, and young.
            Some((sent, looked))
                if looked.id() == self.known_id()
                    && !self.unchecked_create
                    && self.last_create.is_none_or(|created| sent > created)
                    && sent.elapsed() < YOUNG_LOOK =>
            {
                looked
            }
            Some(_) => {
                log!(Debug, "note !{}: the look made earlier is too old or predates our create", self.mr_iid);
                self.look(guard)?
            }
            None => self.look(guard)?,
        };
        self.found(guard, me, looked)
    }

    /// The note's id, when this process knows it and may look it up by id.
    fn known_id(&self) -> Option<u64> {
        self.note_id.filter(|_| !self.unchecked_create)
    }

    /// The look-up of `find`, on the spare connection when there is one.
    fn look(&self, guard: &Guard) -> Result<Looked, SyncError> {
        let client = self.spare.unwrap_or(self.client);
        let lookup = self.lookup();
        call_with(client, guard, |c, t| lookup.request(c, t))
    }

    /// What a look-up found: the note by its id, or (when it is gone, or none is known) ours among
    /// all the notes, duplicates removed.
    fn found(&mut self, guard: &Guard, me: u64, looked: Looked) -> Result<Option<Note>, SyncError> {
        let notes = match looked {
            Looked::One(_, Some(note)) => {
                self.saw(&note);
                return Ok(Some(note));
            }
            // Deleted (by a writer removing duplicates): look for the one that was kept.
            Looked::One(_, None) => self.call(guard, |c, t| gitlab::list_notes(c, &self.project, self.mr_iid, t))?,
            Looked::All(notes) => notes,
        };
        let mut ours: Vec<Note> = notes
            .into_iter()
            .filter(|n| n.author.id == me && !n.system && view::pipeline_of(&n.body).is_some())
            .collect();
        ours.sort_by_key(|n| n.id);
        // A duplicate is removed by whoever created it (it lists again after creating), by
        // `herald note`, by anyone while it is still a bare claim (nobody wrote into it: its
        // creator, listing, will keep the lowest one), or by anyone once it is old (its creator
        // died before cleaning up).
        let removable = |n: &Note| {
            self.all_duplicates
                || self.created_bodies.iter().any(|body| body == n.body.trim_end())
                || view::is_claim(&n.body)
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

    /// The note's body for the pipeline as it is now: its `jobs` and herald's `statuses` — those
    /// the note `current` already knew to be final (`settled_in`) merged with those read from
    /// where they end, newest first (`herald note` reads them all). The excerpts and history
    /// already known are taken from `current` too.
    fn render(
        &self,
        guard: &Guard,
        jobs: &[PipelineJob],
        current: Option<&Note>,
        statuses: Vec<CommitStatus>,
    ) -> Result<String, SyncError> {
        let mut carried = match current {
            Some(note) if !self.read_everything => Carried::from_note(&note.body, self.pipeline_id),
            _ => Carried::new(self.pipeline_id),
        };
        let history = match carried.history() {
            Some(history) => history,
            None => match self.history(guard) {
                Ok(history) => {
                    carried.set_history(&history);
                    history
                }
                // The history is a nicety: a GitLab that refuses it (an older version, a token
                // without access) gets a note without it, and is not asked again.
                Err(SyncError::Api(error)) if !error.is_retryable() => {
                    log!(Debug, "note: no earlier pipelines: {error}");
                    carried.set_history(&[]);
                    Vec::new()
                }
                Err(error) => return Err(error),
            },
        };
        if carried.baseline().is_none() {
            // A finished pipeline never changes: even `herald note`, which reads all else
            // again, keeps the baseline the note carries.
            let known = current.map(|note| Carried::from_note(&note.body, self.pipeline_id));
            match known.as_ref().and_then(Carried::baseline) {
                Some(baseline) => carried.set_baseline(baseline.cloned()),
                None => carried.set_baseline(self.baseline(guard.deadline)),
            }
        }
        let mut logs: BTreeMap<u64, String> = BTreeMap::new();
        self.read_excerpts(guard, jobs, &statuses, &mut carried, &mut logs)?;
        let excerpts: BTreeMap<u64, Vec<String>> =
            statuses.iter().filter_map(|s| Some((s.id, carried.excerpt(s.id)?.clone()))).collect();
        // Summaries: this job's from job memory (the newest word on its own steps), the others'
        // as the note carries them; only for statuses the pipeline still has.
        for (name, summary) in super::job_memory::summaries(&self.job) {
            carried.keep_summary(&name, Some(summary));
        }
        // This process's own (also when there is no job memory: no CI_JOB_ID, no private dir).
        if let Some((name, Some(summary))) = &self.own_summary {
            carried.keep_summary(name, Some(summary.clone()));
        }
        carried.retain_summaries(|name| statuses.iter().any(|s| s.name == name));
        self.read_summaries(guard, jobs, &statuses, &mut carried, &mut logs)?;
        let summaries = carried.summaries().clone();
        let view = build_view(&Sources {
            pipeline_id: self.pipeline_id,
            sha: &self.sha,
            prefix: &self.status_prefix,
            jobs,
            statuses: &statuses,
            plan: self.plan,
            history: &history,
            excerpts: &excerpts,
            baseline: carried.baseline().flatten(),
            summaries: &summaries,
        });
        let visible = view::render(&view);
        *self.verdict.borrow_mut() = Some(view::verdict_line(&view));
        let mut room = view::GITLAB_NOTE_LIMIT.saturating_sub(visible.len() + SETTLED_MARGIN);
        let carried = carried.block(room / 2);
        room = room.saturating_sub(carried.len());
        let settled = Settled::of(&statuses, &self.status_prefix).block(self.pipeline_id, &self.status_prefix, room);
        let hidden = format!("{carried}{settled}");
        Ok(if hidden.is_empty() { visible } else { format!("{}\n\n{hidden}", visible.trim_end()) })
    }

    /// The statuses a note's `body` knows to be final (none for `herald note`, which reads them
    /// all): the rest are read from `below` up.
    fn settled_in(&self, body: Option<&str>) -> Settled {
        match body {
            Some(body) if !self.read_everything => Settled::from_note(body, self.pipeline_id, &self.status_prefix),
            _ => Settled::nothing(),
        }
    }

    /// The read of the pipeline's statuses from id `from` up, on whichever client runs it.
    fn statuses_from(&self, from: u64) -> impl FnMut(&Client, Duration) -> Result<Vec<CommitStatus>, ApiError> + Send {
        let (project, sha, pipeline_id) = (self.project.clone(), self.sha.clone(), self.pipeline_id);
        move |c, t| gitlab::pipeline_statuses_from(c, &project, &sha, pipeline_id, from, t)
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

    /// The target branch's pipeline to compare with (publish/baseline.rs), read once per pipeline
    /// (`carried`) within `baseline::BUDGET` of the time left: None when there is none, or it
    /// cannot be read in time or at all. Quietly: a comparison is a nicety.
    fn baseline(&self, deadline: Instant) -> Option<Baseline> {
        let branch = self.target_branch.as_deref()?;
        let deadline = deadline.min(Instant::now() + baseline::BUDGET);
        let base = self.diff_base_sha.as_deref();
        match baseline::read(self.client, &self.project, branch, base, &self.status_prefix, deadline) {
            Ok(found) => found,
            Err(error) => {
                log!(Debug, "note: no baseline from {branch}: {error}");
                None
            }
        }
    }

    /// The merge request's earlier pipelines, oldest first (read once per pipeline, `carried`).
    fn history(&self, guard: &Guard) -> Result<Vec<PastPipeline>, SyncError> {
        let pipelines = self.call(guard, |c, t| gitlab::merge_request_pipelines(c, &self.project, self.mr_iid, t))?;
        let mut earlier: Vec<PastPipeline> = pipelines
            .into_iter()
            .filter(|p| p.id < self.pipeline_id)
            .take(view::HISTORY)
            .map(|p| PastPipeline { id: p.id, status: p.status, web_url: p.web_url })
            .collect();
        earlier.reverse();
        Ok(earlier)
    }

    /// Excerpts for the failed steps that have none yet, from their job's log as GitLab holds it
    /// (gitlab.md §K), read once the job is over: the log is complete then (while it runs, the
    /// runner sends it in increments), and one read per job is kept for every later writer
    /// (`carried`). Only failed steps' jobs are read, so a green pipeline reads no log; until
    /// the read, the step's own description stands in.
    fn read_excerpts(
        &self,
        guard: &Guard,
        jobs: &[PipelineJob],
        statuses: &[CommitStatus],
        carried: &mut Carried,
        logs: &mut BTreeMap<u64, String>,
    ) -> Result<(), SyncError> {
        let own_prefix = format!("{}/", self.status_prefix);
        carried.retain_excerpts(|id| statuses.iter().any(|s| s.id == id));
        let over = |job_id: u64| {
            jobs.iter().any(|job| job.id == job_id && matches!(job.status.as_str(), "success" | "failed" | "canceled"))
        };
        for status in statuses.iter().filter(|s| s.name.starts_with(&own_prefix) && s.status == "failed") {
            let Some(job_id) = status.target_url.as_deref().and_then(job_id_of_url) else { continue };
            if carried.excerpt(status.id).is_some() || !over(job_id) {
                continue;
            }
            let log = self.job_log(guard, logs, job_id)?;
            let step = super::settle::step_of(&status.name, &self.status_prefix, self.plan);
            let found = step.and_then(|(step, occurrence)| joblog::step_log(log, &step, occurrence));
            let lines: Vec<String> = found.map_or_else(Vec::new, |found| {
                excerpt::anchored(&found.lines, excerpt::ANCHORED_LINES)
                    .iter()
                    .map(|line| self.client.mask(line))
                    .collect()
            });
            // Kept even when empty: the log is complete, reading it again would find nothing more.
            carried.keep_excerpt(status.id, lines);
        }
        Ok(())
    }

    /// The log of a job that is over, read once per render for excerpts and summaries alike.
    /// No log to read (gone, or no permission) is an empty one: the description stands in.
    fn job_log<'l>(
        &self,
        guard: &Guard,
        logs: &'l mut BTreeMap<u64, String>,
        job_id: u64,
    ) -> Result<&'l str, SyncError> {
        if let std::collections::btree_map::Entry::Vacant(entry) = logs.entry(job_id) {
            entry.insert(match self.call(guard, |c, t| gitlab::job_log(c, &self.project, job_id, t)) {
                Ok(log) => log,
                Err(SyncError::Api(error)) if !error.is_retryable() => String::new(),
                Err(error) => return Err(error),
            });
        }
        Ok(&logs[&job_id])
    }

    /// Summaries the note does not carry, of steps whose description says they wrote one, from
    /// their job's log once the job is over (as excerpts are): so a summary lost to a concurrent
    /// writer (which renders summaries from the note it read) comes back by the pipeline's end at
    /// the latest (`herald note`). Kept once read, even as nothing, since the log is complete.
    fn read_summaries(
        &self,
        guard: &Guard,
        jobs: &[PipelineJob],
        statuses: &[CommitStatus],
        carried: &mut Carried,
        logs: &mut BTreeMap<u64, String>,
    ) -> Result<(), SyncError> {
        let own_prefix = format!("{}/", self.status_prefix);
        let over = |job_id: u64| {
            jobs.iter().any(|job| job.id == job_id && matches!(job.status.as_str(), "success" | "failed" | "canceled"))
        };
        for status in statuses.iter().filter(|s| s.name.starts_with(&own_prefix)) {
            let marked =
                status.description.as_deref().is_some_and(|d| view::headline(d).ends_with(joblog::SUMMARY_MARK));
            let Some(job_id) = status.target_url.as_deref().and_then(job_id_of_url) else { continue };
            if !marked || carried.summaries().contains_key(&status.name) || !over(job_id) {
                continue;
            }
            let log = self.job_log(guard, logs, job_id)?;
            let step = super::settle::step_of(&status.name, &self.status_prefix, self.plan);
            let found = step.and_then(|(step, occurrence)| joblog::summary_log(log, &step, occurrence));
            let text = found.map_or_else(String::new, |found| self.client.mask(&found.lines.join("\n")));
            let summary = if text.trim().is_empty() {
                "herald: the summary is not in the job log (cut, or removed); see the job.".to_owned()
            } else {
                summary::for_note(&text, text.len() as u64, summary::STEP_BUDGET)
            };
            carried.keep_summary(&status.name, Some(summary));
        }
        Ok(())
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

/// How the note is looked up: by its id when known, else among all the merge request's notes.
/// Sent to another thread to run while the final status is posted (`NoteSync::lookup`).
pub struct Lookup {
    project: String,
    mr_iid: u64,
    note_id: Option<u64>,
}

impl Lookup {
    /// Makes the look-up on `client`, retried until `deadline`.
    pub fn run(&self, client: &Client, deadline: Instant) -> Result<Looked, SyncError> {
        call_with(client, &Guard { deadline, interrupted: &|| false }, |c, t| self.request(c, t))
    }

    fn request(&self, client: &Client, timeout: Duration) -> Result<Looked, ApiError> {
        Ok(match self.note_id {
            Some(id) => Looked::One(id, gitlab::get_note(client, &self.project, self.mr_iid, id, timeout)?),
            None => Looked::All(gitlab::list_notes(client, &self.project, self.mr_iid, timeout)?),
        })
    }
}

/// What a look-up found (see `Lookup`).
pub enum Looked {
    /// The note of this id, or None: it is gone.
    One(u64, Option<Note>),
    /// Every note of the merge request.
    All(Vec<Note>),
}

impl Looked {
    /// The id it was looked up by.
    fn id(&self) -> Option<u64> {
        match self {
            Looked::One(id, _) => Some(*id),
            Looked::All(_) => None,
        }
    }
}

/// The statuses among `statuses` in a final state, (id, state) by id: what a render showed as
/// ended, for telling whether a step has ended since.
fn finals_of(statuses: &[CommitStatus]) -> Vec<(u64, String)> {
    let mut finals: Vec<(u64, String)> = statuses
        .iter()
        .filter(|status| super::settled::is_final(status))
        .map(|status| (status.id, status.status.clone()))
        .collect();
    finals.sort();
    finals
}

/// A body's fingerprint, to recognise it again in a later process of the same job.
fn body_hash(body: &str) -> u64 {
    crate::persist::stable_hash(body.trim_end().as_bytes())
}

struct Guard<'a> {
    deadline: Instant,
    interrupted: &'a dyn Fn() -> bool,
}
