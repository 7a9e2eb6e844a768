//! Finding the note, claiming it and removing duplicates (protocol steps 2 and 3 of mod.rs):
//! which note of the merge request is ours, the claim's lifecycle (`Claim`), the create that
//! makes one, and the look-ups, on the spare connection or made ahead on another thread.
//! Separate from the render and the write: this is the part that decides *which* note, and it
//! has its own guarantees (one note per merge request, never another's).

use std::time::{Duration, Instant, SystemTime};

use crate::gitlab::retry::{self, Backoff};
use crate::gitlab::{self, ApiError, Client, Note};
use crate::report::note as view;

use super::render::PipelineState;
use super::write::{Progress, COVERED_LOOKS};
use super::{call_with, Guard, NoteSync, SyncError};

/// A bare claim (see `found`) that is not the one kept is its creator's to remove for this many
/// seconds: the creator lists right after creating; a 429 storm may cut that short.
const BARE_CLAIM_GRACE: f64 = 5.0;
/// A duplicate note of ours unchanged for this many seconds has no live creator to remove it.
const OLD_DUPLICATE: f64 = 30.0;
/// Writers that found no note look again after a random moment up to this long before creating
/// one, so that of those that found none at once, the first one's note is seen by the others.
const CLAIM_SPREAD: Duration = Duration::from_millis(200);
/// How long each place in the configuration's order waits for the jobs before it to claim the
/// note in a live write (`claim_turn`): longer than a claim takes (its reads and create, a few
/// round trips), and after how many places they all wait the same: the note of a pipeline
/// whose first jobs make no live write appears at most 3 s later than it would have.
const CLAIM_TURN: Duration = Duration::from_millis(500);
const CLAIM_TURNS: usize = 6;
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

/// The claim's lifecycle: which note this process takes for ours, and whether a note it created
/// may be a duplicate it has not checked for yet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// None known: looked for among all the merge request's notes.
    #[default]
    Unknown,
    /// Found (the one kept among ours): looked up by its id from now on.
    Found(u64),
    /// Created (or perhaps: the answer can be lost after GitLab acted) and not listed since: it
    /// may be a duplicate of another writer's, which this process must remove before writing
    /// again, even when the write that created it was cut off. Its id, when GitLab answered.
    Unchecked(Option<u64>),
}

impl Claim {
    /// The note's id, when this process may look it up by id.
    fn known_id(self) -> Option<u64> {
        match self {
            Claim::Found(id) => Some(id),
            _ => None,
        }
    }

    /// The note's id as last known, checked or not.
    fn id(self) -> Option<u64> {
        match self {
            Claim::Found(id) | Claim::Unchecked(Some(id)) => Some(id),
            _ => None,
        }
    }

    pub(super) fn is_unchecked(self) -> bool {
        matches!(self, Claim::Unchecked(_))
    }

    /// A create is about to be sent: from now on the note must be listed before it is written.
    fn creating(&mut self) {
        *self = Claim::Unchecked(self.id());
    }

    /// GitLab answered the create: the note it made (None: accepted without one, a 202).
    fn created(&mut self, id: Option<u64>) {
        *self = Claim::Unchecked(id);
    }

    /// A list showed which note of ours is kept (None: there is none).
    fn listed(&mut self, kept: Option<u64>) {
        *self = kept.map_or(Claim::Unknown, Claim::Found);
    }

    /// The note was deleted before our write (a duplicate its creator removed).
    pub(super) fn lost(&mut self) {
        *self = if self.is_unchecked() { Claim::Unchecked(None) } else { Claim::Unknown };
    }
}

/// What this process knows about finding the note.
#[derive(Default)]
pub(super) struct Locator {
    /// The token's user: herald's notes are the ones it wrote.
    me: Option<u64>,
    pub(super) claim: Claim,
    /// The texts of the notes this process created (or tried to: an answer can be lost after
    /// GitLab acted): a duplicate with one of them is this process's to remove.
    created_bodies: Vec<String>,
    /// When this process last sent a create: a look sent before it cannot show that note.
    last_create: Option<Instant>,
    /// A look at the note made on another thread, and when it was sent: the next `find`'s, if it
    /// is still young then.
    prefetched: Option<(Instant, Looked)>,
    /// A live write found no note and waited its turn to claim it (`claim_turn`).
    waited_turn: bool,
}

impl Locator {
    /// The note found or created by this process, for its address.
    pub(super) fn note_id(&self) -> Option<u64> {
        self.claim.id()
    }

    /// Whether `body` is that of a note this process created.
    pub(super) fn created(&self, body: &str) -> bool {
        self.created_bodies.iter().any(|created| created == body.trim_end())
    }
}

/// What a claim came to (see `NoteSync::claim`).
pub(super) enum Claimed {
    /// The note found shows a newer pipeline.
    Newer(u64),
    /// Left to a writer whose step's final state landed after this one's (see `claim`).
    LeftToLaterWriter,
    /// The note kept (None: the claim came to nothing), and the state the claim was made from
    /// when the kept note is ours: the render uses it too.
    Note(Option<Note>, Option<PipelineState>),
}

impl NoteSync<'_> {
    /// The token's user id, when already known (a status post's author), saves a `GET /user`.
    pub fn know_me(&mut self, user_id: u64) {
        self.locator.me = Some(user_id);
    }

    /// The token's user, asked once.
    pub(super) fn me(&mut self, guard: &Guard) -> Result<u64, SyncError> {
        if let Some(me) = self.locator.me {
            return Ok(me);
        }
        let me = self.call(guard, gitlab::current_user)?.id;
        self.locator.me = Some(me);
        Ok(me)
    }

    /// The look-up `find` would make now, to be made on another thread (as the step starts, or
    /// while its final status is posted); its answer goes to `prefetched`.
    pub fn lookup(&self) -> Lookup {
        Lookup { project: self.job.project.clone(), mr_iid: self.mr_iid, note_id: self.locator.claim.known_id() }
    }

    /// The answer to `lookup`, sent at `sent`: the next `find` takes it as its look, unless this
    /// process has learnt a different way to look since, has created a note since it was sent
    /// (the list after a create must be made after it), or it is older than `YOUNG_LOOK` by
    /// then (a final post slowed down by a 429 storm: a list that old may miss a note another
    /// writer created meanwhile, and this process would create one more). Made before the final
    /// status landed, it cannot show this step's final state: the write renders, and its
    /// verification (`sync`) catches what changed meanwhile.
    pub fn prefetched(&mut self, sent: Instant, looked: Looked) {
        self.locator.prefetched = Some((sent, looked));
    }

    /// How long a live write that found no note waits before claiming it (None: claim now).
    /// When a pipeline starts, its jobs reach their first live write together, and each that
    /// found no note would read the whole pipeline for its claim (issue #27: 30–100 claims of
    /// 200 jobs, a sixth of their requests). So they take turns by their place in the
    /// configuration: its first job with steps claims at once, the next ones a `CLAIM_TURN` later
    /// each, the rest after `CLAIM_TURNS` turns and a random part of one; each looks again first.
    /// Once: after its wait, a writer claims. A final write never waits (its state must show),
    /// nor a job the configuration does not place.
    pub(super) fn claim_turn(&mut self) -> Option<Duration> {
        use crate::pipeline::When;
        // Every job of the configuration, whatever herald's reading of the rules says of the
        // others (in a merge request pipeline, jobs without rules are not created; a job sees
        // itself created, since it runs): the order must be the same in every job.
        let starts = |job: &&crate::pipeline::Job| {
            !job.steps.is_empty() && !matches!(job.when, When::Manual | When::Delayed | When::OnFailure)
        };
        let place = self.plan?.all_jobs().into_iter().filter(starts).position(|job| job.name == self.job.job_name)?;
        if place == 0 || std::mem::replace(&mut self.locator.waited_turn, true) {
            return None;
        }
        let turns = place.min(CLAIM_TURNS) as u32;
        let spread = if place >= CLAIM_TURNS {
            Backoff::starting_at(CLAIM_TURN * 2).next_wait(None).saturating_sub(CLAIM_TURN)
        } else {
            Duration::ZERO
        };
        log!(
            Debug,
            "note !{}: none yet; the configuration's job #{place} claims it only after {turns} turns",
            self.mr_iid
        );
        Some(CLAIM_TURN * turns + spread)
    }

    /// None of ours yet: claim it (see `view::claim`), from the pipeline as GitLab has it: the
    /// claim is the version GitLab e-mails, so it shows GitLab's own jobs (manual, skipped, not
    /// yet created ones as they are), never one GitLab does not have, and the steps each will
    /// run, so that no later version shrinks. Whoever holds the kept claim renders at once, from
    /// the same reads; a writer whose claim was a duplicate posted its status before the kept
    /// one was created, so the keeper's render shows it: waiting for that (`COVERED_LOOKS`) is
    /// cheaper than rendering.
    pub(super) fn claim(&mut self, guard: &Guard, me: u64, progress: &mut Progress) -> Result<Claimed, SyncError> {
        let state = self.read_state(guard, None)?;
        // A step whose write a later writer makes (write.rs) leaves it the claim too: of the
        // last steps of jobs ending together, which all find no note, only the last to land
        // claims (ten jobs at 150 ms created 7–10 notes, each e-mailed to every participant).
        if self.leaves_it_to_a_later_writer(&state.1) {
            return Ok(Claimed::LeftToLaterWriter);
        }
        // Those reads took a round trip, in which another writer may have claimed it: look
        // again right before creating, so that the window in which two writers both create is
        // one request wide, as without them. Writers that found no note at the same moment
        // (jobs started together reach their live write together) look again at spread-out
        // moments: the first one's note is there for the rest.
        let spread = Backoff::starting_at(CLAIM_SPREAD * 2).next_wait(None).saturating_sub(CLAIM_SPREAD);
        if Instant::now() + spread < guard.deadline && !(guard.interrupted)() {
            std::thread::sleep(spread);
        }
        let found = self.find(guard, me)?;
        if found.is_some() {
            return Ok(match self.newer_pipeline(found.as_ref()) {
                Some(newer) => Claimed::Newer(newer),
                None => Claimed::Note(found, None),
            });
        }
        let kept = self.create_claim(guard, me, &state)?;
        let kept_ours = kept.as_ref().is_some_and(|kept| self.locator.created(&kept.body));
        progress.looks_left = if kept_ours { 0 } else { COVERED_LOOKS };
        Ok(Claimed::Note(kept, kept_ours.then_some(state)))
    }

    /// Creates the note with a claim and lists the notes again: another writer may have created one
    /// at the same time. Returns the one kept (the oldest), whosever it is. The claim shows the
    /// pipeline's jobs and statuses as read (no excerpts, no history: those cost reads).
    fn create_claim(&mut self, guard: &Guard, me: u64, state: &PipelineState) -> Result<Option<Note>, SyncError> {
        let now = SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let nonce = format!("{:x}-{:x}", std::process::id(), now.as_nanos());
        let body = view::claim(&self.claim_view(state), &nonce);
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
    pub(super) fn create(&mut self, guard: &Guard, me: u64, body: &str) -> Result<Option<Looked>, SyncError> {
        if guard.deadline.saturating_duration_since(Instant::now()) < LEAST_TIME_TO_CREATE {
            log!(Debug, "note !{}: too little time left to create the note and check it", self.mr_iid);
            return Err(SyncError::OutOfTime);
        }
        // Remembered before sending: a create whose answer is lost may still have happened.
        self.locator.created_bodies.push(body.trim_end().to_owned());
        self.locator.claim.creating();
        self.locator.last_create = Some(Instant::now());
        let left = guard.deadline.saturating_duration_since(Instant::now());
        let create_guard =
            Guard { deadline: Instant::now() + left.mul_f64(CREATE_SHARE), interrupted: guard.interrupted };
        match self.create_unless_another_appears(&create_guard, me, body) {
            Ok(Some(looked)) => Ok(Some(looked)),
            Ok(None) => Ok(None),
            // The step ended mid-create: its final write lists first (the claim is unchecked).
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
    /// None when it created the note (the claim, unchecked, has its id).
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
            let error = match gitlab::create_note(self.client, &self.job.project, self.mr_iid, body, timeout) {
                Ok(created) => {
                    self.locator.claim.created(created.map(|n| n.id));
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
                Looked::All(notes) => notes.iter().any(|n| is_ours(n, me)),
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
        if !self.locator.claim.is_unchecked() {
            return Ok(());
        }
        let guard = Guard { deadline, interrupted: &|| false };
        let me = match self.locator.me {
            Some(me) => me,
            None => self.call(&guard, gitlab::current_user)?.id,
        };
        self.find(&guard, me).map(drop)
    }

    /// The pipeline `note` shows, when it is newer than ours: then the note is left alone.
    pub(super) fn newer_pipeline(&self, note: Option<&Note>) -> Option<u64> {
        note.and_then(|n| view::pipeline_of(&n.body)).filter(|shown| *shown > self.pipeline_id)
    }

    /// Our note: by id when this process knows it, else by listing (and removing duplicates).
    /// After creating one, always by listing: what this process created may be a duplicate.
    pub(super) fn find(&mut self, guard: &Guard, me: u64) -> Result<Option<Note>, SyncError> {
        let prefetched = self.locator.prefetched.take();
        let locator = &self.locator;
        let looked = match prefetched {
            // Made for what this process knows now, after its last create, and young.
            Some((sent, looked))
                if looked.id() == locator.claim.known_id()
                    && !locator.claim.is_unchecked()
                    && locator.last_create.is_none_or(|created| sent > created)
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

    /// The look-up of `find`, on the spare connection when there is one.
    pub(super) fn look(&self, guard: &Guard) -> Result<Looked, SyncError> {
        let client = self.spare.unwrap_or(self.client);
        let lookup = self.lookup();
        call_with(client, guard, |c, t| lookup.request(c, t))
    }

    /// What a look-up found: the note by its id, or (when it is gone, or none is known) ours among
    /// all the notes, duplicates removed.
    pub(super) fn found(&mut self, guard: &Guard, me: u64, looked: Looked) -> Result<Option<Note>, SyncError> {
        let notes = match looked {
            Looked::One(_, Some(note)) => {
                self.saw(&note);
                return Ok(Some(note));
            }
            // Deleted (by a writer removing duplicates): look for the one that was kept.
            Looked::One(_, None) => {
                self.call(guard, |c, t| gitlab::list_notes(c, &self.job.project, self.mr_iid, t))?
            }
            Looked::All(notes) => notes,
        };
        let mut ours: Vec<Note> = notes.into_iter().filter(|n| is_ours(n, me)).collect();
        ours.sort_by_key(|n| n.id);
        // A duplicate is removed by whoever created it (it lists again after creating), by
        // `herald note`, by anyone while it is still a bare claim (nobody wrote into it: its
        // creator, listing, will keep the lowest one) once its creator has had `BARE_CLAIM_GRACE`
        // to do so itself (or every writer listing meanwhile deletes it too, all but one in vain:
        // 40–90 deletes of 7–10 claims when ten jobs ended together at 150 ms), or by anyone once
        // it is old (its creator died before cleaning up).
        let removable = |n: &Note| {
            let age = self.age(n);
            self.reading.all_duplicates
                || self.locator.created(&n.body)
                || (view::is_claim(&n.body) && age.is_some_and(|age| age > BARE_CLAIM_GRACE))
                || age.is_some_and(|age| age > OLD_DUPLICATE)
        };
        for extra in ours.iter().skip(1).filter(|n| removable(n)) {
            log!(Debug, "note !{}#{}: a duplicate of ours; deleting it", self.mr_iid, extra.id);
            self.call(guard, |c, t| gitlab::delete_note(c, &self.job.project, self.mr_iid, extra.id, t))?;
        }
        let kept = ours.into_iter().next();
        self.locator.claim.listed(kept.as_ref().map(|n| n.id));
        if let Some(found) = &kept {
            self.saw(found);
        }
        Ok(kept)
    }

    /// Remembers how much longer `note` is too fresh for a live write.
    fn saw(&mut self, note: &Note) {
        if let Some(age) = self.age(note) {
            let interval = self.job.min_update_interval.as_secs_f64();
            let left = (interval - age).clamp(0.0, interval);
            self.freshness.until = Some(SystemTime::now() + Duration::from_secs_f64(left));
        }
    }

    /// How much longer the note is too young for a live write, by GitLab's own clock.
    pub(super) fn too_fresh(&self, note: &Note) -> Option<Duration> {
        let interval = self.job.min_update_interval;
        if interval.is_zero() {
            return None; // the throttle is off
        }
        let left = interval.as_secs_f64() - self.age(note)?;
        (left > 0.0).then(|| Duration::from_secs_f64(left.min(interval.as_secs_f64())))
    }

    /// Seconds since `note` last changed, by GitLab's clock.
    pub(super) fn age(&self, note: &Note) -> Option<f64> {
        let updated = note.updated_at.as_deref().and_then(gitlab::parse_iso8601)?;
        // GitLab's clock as of the latest answer on either connection.
        let now = match (self.client.server_time(), self.spare.and_then(Client::server_time)) {
            (Some(main), Some(spare)) => main.max(spare),
            (main, spare) => main.or(spare)?,
        };
        Some(now - updated)
    }
}

/// Whether `note` is one of herald's notes by the token's user `me` (never another's).
fn is_ours(note: &Note, me: u64) -> bool {
    note.author.id == me && !note.system && view::pipeline_of(&note.body).is_some()
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

#[cfg(test)]
mod tests {
    use super::Claim;

    #[test]
    fn a_created_note_is_looked_up_by_id_only_once_a_list_has_kept_it() {
        let mut claim = Claim::default();
        claim.creating();
        claim.created(Some(7));
        assert!(claim.is_unchecked(), "it may be a duplicate");
        assert_eq!((claim.known_id(), claim.id()), (None, Some(7)), "listed, not looked up by id");
        claim.listed(Some(5));
        assert_eq!((claim.known_id(), claim.is_unchecked()), (Some(5), false), "another writer's was kept");
        claim.lost();
        assert_eq!(claim, Claim::Unknown);
        claim.listed(Some(5));
        claim.creating();
        assert_eq!((claim.known_id(), claim.id()), (None, Some(5)), "a create makes the id uncertain");
        claim.lost();
        assert_eq!(claim, Claim::Unchecked(None), "still to be checked for a duplicate");
        claim.listed(None);
        assert_eq!(claim, Claim::Unknown);
    }
}
