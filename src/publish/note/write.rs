//! Putting the body and verifying it (protocol steps 4 and 5 of mod.rs): whether the note
//! already shows this process's step, the write itself (update, or create when the claim came to
//! nothing), and the verification that follows a write — whether a later writer took over,
//! whether a status became final since the render. Separate from locating the note and from
//! rendering it: this is the part that decides *whether* to write again.

use std::time::{Duration, Instant, SystemTime};

use crate::context::PublishContext;
use crate::gitlab::retry::Backoff;
use crate::gitlab::{self, Client, CommitStatus, Note, PipelineJob};
use crate::publish::status::{FinalState, FinalStatus, StatusName};
use crate::report::note as view;

use super::carried::Carried;
use super::settled::{self, Settled};
use super::{Guard, NoteSync, SyncError, Synced};

/// A note written this recently is busy: many steps are ending together.
const BUSY_WINDOW: Duration = Duration::from_secs(2);
/// How long a writer whose claim was a duplicate waits on a busy note before looking again
/// (jittered between half and all of it): long enough for the keeper's render to cover its step.
const BUSY_PAUSE: Duration = Duration::from_millis(500);
/// How many times a writer whose claim was a duplicate looks for the keeper's render to show its
/// step, before rendering itself.
pub(super) const COVERED_LOOKS: u32 = 4;

/// Steps running, as the note shows them, from which a busy note is taken for many steps ending
/// (`many_ending`): with fewer, a later writer's final state rarely lands in the round trip
/// before the render's reads, and reading the jobs after the statuses would cost that trip.
const MANY_RUNNING: usize = 10;

/// The final statuses of a render, (id, state) by id.
type Finals = Vec<(u64, String)>;

/// What one sync has done so far, across its rounds.
#[derive(Default)]
pub(super) struct Progress {
    /// What this process wrote last, while verifying it.
    pub(super) written: Option<String>,
    /// The jobs the last render was made from: a verification reads the statuses again only.
    pub(super) jobs: Option<Vec<PipelineJob>>,
    /// Looks left at a busy note before rendering (only after a duplicate claim).
    pub(super) looks_left: u32,
    /// The final statuses the body last rendered was made from.
    pub(super) rendered_finals: Option<Finals>,
    /// Those of what this process wrote last (see `verify`).
    written_finals: Option<Finals>,
}

impl Progress {
    /// `body` was written: the next round verifies it.
    pub(super) fn wrote(&mut self, body: String) {
        self.written = Some(body);
        self.written_finals = self.rendered_finals.take();
    }
}

/// What the verification of a write found.
pub(super) enum Verified {
    /// Nothing more to do: a later writer took over, or our write still holds.
    Holds,
    /// The state moved on: this body is to be written into this note.
    Moved(Note, String),
    /// The note is gone (a person deleted it): written afresh.
    Gone,
}

/// What waiting for another writer to show this step came to.
pub(super) enum Waited {
    /// The sync is over.
    Stop(Synced),
    /// Render and write, into this note (None: none of ours).
    Write(Option<Note>),
}

/// What a put did.
pub(super) enum Put {
    /// The note already holds the body.
    AlreadyRight,
    Done,
    /// Deleted before our write (a duplicate its creator removed): the next round finds the one
    /// kept and writes there.
    Gone,
    /// None was created: another writer's note appeared; the next round writes there.
    AnotherAppeared,
}

/// The step this process published, as the note shows it once it has its final state.
#[derive(Default)]
pub(super) struct Expected {
    step: Option<OwnStep>,
    /// This step's status name and summary: a note that shows the step without this summary is
    /// not yet right.
    pub(super) summary: Option<(String, Option<String>)>,
    /// When this step's final state landed, by GitLab's clock (Unix seconds, its `finished_at`).
    landed_at: Option<f64>,
}

/// A step's row as the note shows it (see `report::note::shows_step`).
struct OwnStep {
    job_name: String,
    job_url: Option<String>,
    step: String,
    state: String,
    description: String,
}

impl NoteSync<'_> {
    /// The final state this process just posted for its step: a note that already shows it needs
    /// no write from this process (another writer rendered it after the post).
    pub fn expect_step(&mut self, context: &PublishContext, step: &str, state: &str, description: &str) {
        self.expected.step = Some(OwnStep {
            job_name: context.job_name.clone(),
            job_url: context.job_url.clone(),
            step: step.to_owned(),
            state: state.to_owned(),
            description: description.to_owned(),
        });
    }

    /// When this process's final status landed, as GitLab's answer to the post said
    /// (`finished_at`): a writer whose own final status landed later reads the statuses after
    /// it (see `left_to_a_later_writer`).
    pub fn landed_at(&mut self, finished_at: Option<&str>) {
        self.expected.landed_at = finished_at.and_then(gitlab::parse_iso8601);
    }

    /// The summary this process's step wrote (status `name`): the note must carry it too.
    pub fn expect_summary(&mut self, name: &str, summary: Option<&str>) {
        self.expected.summary = Some((name.to_owned(), summary.map(str::to_owned)));
    }

    /// Looks at the note this process wrote: if another writer has replaced our text, verifying
    /// is now its part (the last writer always finds its own text, and checks it against the
    /// state); if not, renders the state again, and what changed is written again. The
    /// statuses are read alongside the note, from where our own text says they settle (which is
    /// where the note's says, if it still holds our text). When another writer has taken over,
    /// the read is wasted (one request, off the critical path); read after the look, it would
    /// cost every last step a round trip whenever other jobs write the note too (issue #27).
    pub(super) fn verify(
        &mut self,
        guard: &Guard,
        me: u64,
        progress: &mut Progress,
        round: u32,
    ) -> Result<Verified, SyncError> {
        let ours = progress.written.as_deref().unwrap_or_default();
        let (note, mut statuses) = if self.spare.is_some() {
            let from = self.settled_in(Some(ours)).below;
            // The look goes on the spare connection, the read on the first.
            let (looked, statuses) =
                self.alongside(guard.deadline, || self.look(guard), Some(self.client), self.statuses_from(from));
            (self.found(guard, me, looked?)?, Some(statuses?))
        } else {
            (self.find(guard, me)?, None)
        };
        let Some(found) = note else { return Ok(Verified::Gone) };
        if found.body.trim_end() != ours.trim_end() {
            log!(Debug, "note !{}: round {round}, a later writer took over", self.mr_iid);
            return Ok(Verified::Holds);
        }
        // The statuses only: they are what other writers change. A job's own state changing
        // meanwhile is shown by the next write (at the latest by `herald note --final`).
        if progress.jobs.is_none() {
            progress.jobs = Some(self.read_jobs(guard)?);
        }
        let known = self.settled_in(Some(&found.body));
        let fresh = match statuses.take() {
            Some(fresh) => fresh,
            None => self.call(guard, self.statuses_from(known.below))?,
        };
        let now_statuses = known.merge(fresh);
        // No status has become final since our render, or only passed steps whose jobs have
        // later planned steps (`counted`): what else changed is steps starting, whose rows may
        // lag as live writes may (each step's final state is followed by its own writer's
        // sync). Writing again for them would keep the last writer of a busy pipeline rewriting.
        let finals = finals_of(&now_statuses);
        let counted = progress.written_finals.as_deref().map(|before| self.counted(&now_statuses, before));
        if progress.written_finals.is_some() && progress.written_finals == counted {
            log!(Debug, "note !{}: round {round}, no status became final since our write", self.mr_iid);
            return Ok(Verified::Holds);
        }
        progress.rendered_finals = Some(finals);
        let now = self.render(guard, progress.jobs.as_deref().unwrap_or_default(), Some(&found), now_statuses)?;
        if now.trim_end() == ours.trim_end() {
            log!(Debug, "note !{}: round {round}, our write still holds", self.mr_iid);
            return Ok(Verified::Holds);
        }
        Ok(Verified::Moved(found, now))
    }

    /// A step's final write: nothing to do if another writer has shown it already. A busy note
    /// (written in the last BUSY_WINDOW) is not waited on: the wait held every job's end and
    /// rarely found its step covered (issue #27); the verification keeps the note converging
    /// whoever writes. Only a writer whose claim was a duplicate waits, up to COVERED_LOOKS
    /// times (`progress.looks_left`), for the keeper's render, which shows its step (its status
    /// predates the kept claim). The keeper itself renders: its bare claim shows the step but
    /// not the rest of the note.
    pub(super) fn wait_until_covered(
        &mut self,
        guard: &Guard,
        me: u64,
        mut note: Option<Note>,
        progress: &mut Progress,
    ) -> Result<Waited, SyncError> {
        while self.expected.step.is_some() {
            let busy = match &note {
                Some(found) if self.shows_own_step(found) => return Ok(Waited::Stop(Synced::Unchanged)),
                Some(found) => self.is_busy(found),
                None => false,
            };
            let pause = Backoff::starting_at(BUSY_PAUSE).next_wait(None);
            if progress.looks_left == 0 || !busy || Instant::now() + pause >= guard.deadline {
                break;
            }
            progress.looks_left -= 1;
            log!(Debug, "note !{}: busy; looking again in {} ms", self.mr_iid, pause.as_millis());
            std::thread::sleep(pause);
            note = self.find(guard, me)?;
            if let Some(newer) = self.newer_pipeline(note.as_ref()) {
                return Ok(Waited::Stop(Synced::NewerPipeline(newer)));
            }
        }
        Ok(Waited::Write(note))
    }

    /// Writes `body` into `note`, or creates the note when there is none of ours (the claim came
    /// to nothing: GitLab answered 202, or it vanished at once).
    pub(super) fn put(
        &mut self,
        guard: &Guard,
        me: u64,
        note: Option<&Note>,
        body: &str,
        round: u32,
    ) -> Result<Put, SyncError> {
        let mr_iid = self.mr_iid;
        match note {
            Some(note) if note.body.trim_end() == body.trim_end() => {
                log!(Debug, "note !{mr_iid}#{}: round {round}, already right", note.id);
                return Ok(Put::AlreadyRight);
            }
            Some(note) => {
                let id = note.id;
                log!(Debug, "note !{mr_iid}#{id}: round {round}, updating it ({} bytes)", body.len());
                let updated =
                    self.call(guard, |c, t| gitlab::update_note(c, &self.job.project, mr_iid, id, body, t))?;
                if !updated {
                    log!(Debug, "note !{mr_iid}#{id}: gone before our write; looking again");
                    self.locator.claim.lost();
                    return Ok(Put::Gone);
                }
                self.freshness.job_wrote = Some(body_hash(body));
            }
            None => {
                log!(Debug, "note !{mr_iid}: round {round}, none of ours yet: creating it");
                // A create whose answer is lost may still have happened, and its retry then
                // makes a second note; both are ours to remove.
                if self.create(guard, me, body)?.is_some() {
                    return Ok(Put::AnotherAppeared);
                }
            }
        }
        self.freshness.until = Some(SystemTime::now() + self.job.min_update_interval);
        Ok(Put::Done)
    }

    /// The step's final write is left to another writer known to come after it (issue #27): the
    /// statuses, read after this step's final state landed, show another step's final state
    /// that landed later (GitLab's `finished_at`), whose writer renders the note at once: it
    /// did not pass, or it is its job's last planned step (not one that leaves its write to its
    /// job's next step). That writer reads the statuses after its own post landed, so after
    /// ours, and verifies what it wrote like every final writer (mod.rs, 4.), a round trip and a
    /// pause later still: if it is itself left to a later one, the last of them renders. Not for
    /// a step that carries a summary: only this job knows it (job memory) until the job is over.
    /// Nor once GitLab has refused one of this process's requests (`gitlab_troubled`). Returns
    /// the later status, for the log.
    pub(super) fn left_to_a_later_writer<'s>(&self, statuses: &'s [CommitStatus]) -> Option<&'s CommitStatus> {
        let (Some(landed_at), Some((own_name, own_summary))) = (self.expected.landed_at, &self.expected.summary) else {
            return None;
        };
        if self.expected.step.is_none()
            || own_summary.is_some()
            || !crate::publish::job_memory::summaries(&self.job).is_empty()
            || self.gitlab_troubled()
        {
            return None;
        }
        let own_prefix = format!("{}/", self.job.status_prefix);
        statuses.iter().find(|status| {
            let Some(read) = FinalStatus::read(status) else { return false };
            let later = status.finished_at.as_deref().and_then(gitlab::parse_iso8601).is_some_and(|at| at > landed_at);
            // One that passed renders only as its job's last planned step, which this writer's
            // plan must know: a job without a checkout has none, and its guess would be wrong
            // for a middle step, whose writer leaves the note to the next (5.).
            let renders = read.state != FinalState::Passed || self.steps_after(&status.name) == Some(0);
            status.name.starts_with(&own_prefix) && status.name != *own_name && later && renders
        })
    }

    /// Whether GitLab refused one of this process's requests (a 409, 429 or 5xx, no answer):
    /// then it writes what it would otherwise count on a later writer for, as every writer did
    /// before issue #27. That writer meets the same trouble and may run out of time, leaving the
    /// note to its job's `finalize` (a 429 storm in CI once left a pipeline with no note, and a
    /// campaign run one without a middle step, until then).
    fn gitlab_troubled(&self) -> bool {
        self.client.troubled() || self.spare.is_some_and(Client::troubled)
    }

    /// The final statuses among `statuses` that call for writing again over a write rendered
    /// from the final ones `before`: all but those newly final that passed and whose job's plan
    /// has a later step. That step's writer writes the note after its own final post, which
    /// shows this one too (a passing step with more to come leaves its note to it, mod.rs), and
    /// its own final state, once posted, is newly final and counts (issue #27: rewrites for
    /// them were most of a big pipeline's). A job that stops after such a step owes the note,
    /// and `herald finalize` pays it, as without this rule. All of them count once GitLab has
    /// refused a request (`gitlab_troubled`).
    fn counted(&self, statuses: &[CommitStatus], before: &[(u64, String)]) -> Finals {
        let newly_passed_with_more_to_come = |status: &CommitStatus| {
            !self.gitlab_troubled()
                && !before.iter().any(|(id, _)| *id == status.id)
                && FinalStatus::read(status).is_some_and(|read| read.state == FinalState::Passed)
                && self.more_steps_follow(&status.name)
        };
        let kept: Vec<CommitStatus> =
            statuses.iter().filter(|status| !newly_passed_with_more_to_come(status)).cloned().collect();
        finals_of(&kept)
    }

    /// Whether the plan has steps after the one the status `name` is for, in its job.
    fn more_steps_follow(&self, name: &str) -> bool {
        self.steps_after(name).is_some_and(|after| after > 0)
    }

    /// How many steps the plan has after the one the status `name` is for, in its job; None
    /// when the plan does not know that step (no plan here, another job's step it lacks).
    fn steps_after(&self, name: &str) -> Option<usize> {
        let parsed = StatusName::parse(name, &self.job.status_prefix)?;
        let job = self.plan?.configured_task(parsed.task)?;
        let (step, occurrence) = parsed.step_of(self.plan)?;
        let at =
            job.steps.iter().enumerate().filter(|(_, planned)| **planned == step).nth(occurrence.saturating_sub(1));
        at.map(|(at, _)| job.steps.len() - at - 1)
    }

    /// Whether `note` shows this process's step in its final state (see `expect_step`), with its
    /// summary (see `expect_summary`).
    fn shows_own_step(&self, note: &Note) -> bool {
        let Some(own) = &self.expected.step else { return false };
        if let Some((name, summary)) = &self.expected.summary {
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

    /// Whether many steps are ending now, as `note` tells: other writers changed it within
    /// `BUSY_WINDOW`, and it shows at least `MANY_RUNNING` steps running, whose writers are still
    /// to come. Then a step's final write is likely left to one of them (`left_to_a_later_writer`),
    /// and the render reads the statuses before the jobs. Only the order of reads depends on it.
    pub(super) fn many_ending(&self, note: &Note) -> bool {
        self.expected.landed_at.is_some() && self.is_busy(note) && view::running_steps(&note.body) >= MANY_RUNNING
    }

    /// Whether other writers are at work: the note changed within `BUSY_WINDOW`, by GitLab's clock,
    /// and not only by this job (whose previous step wrote it, as one job's steps do in turn).
    fn is_busy(&self, note: &Note) -> bool {
        let ours = self.freshness.job_wrote.is_some_and(|hash| hash == body_hash(&note.body));
        !ours && self.age(note).is_some_and(|age| age < BUSY_WINDOW.as_secs_f64())
    }
}

/// The statuses among `statuses` in a final state, (id, state) by id: what a render showed as
/// ended, for telling whether a step has ended since.
pub(super) fn finals_of(statuses: &[CommitStatus]) -> Finals {
    let mut finals: Finals = statuses
        .iter()
        .filter(|status| settled::is_final(status))
        .map(|status| (status.id, status.status.clone()))
        .collect();
    finals.sort();
    finals
}

/// A body's fingerprint, to recognise it again in a later process of the same job.
fn body_hash(body: &str) -> u64 {
    crate::persist::stable_hash(body.trim_end().as_bytes())
}
