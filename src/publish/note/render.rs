//! The note's body for the pipeline as it is now (protocol step 1 of mod.rs): the reads it is
//! rendered from — the pipeline's jobs and herald's statuses, and, once each, what the note then
//! carries (failure excerpts and summaries from complete job logs, the earlier pipelines, the
//! baseline) — and the render itself, visible text plus the hidden blocks. Separate from the
//! write: what the note says depends on these reads only, never on who writes or when.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::gitlab::{self, ApiError, Client, CommitStatus, Note, PipelineJob};
use crate::publish::baseline::{self, Baseline};
use crate::publish::status::StatusName;
use crate::report::note::{self as view, PastPipeline};
use crate::report::{excerpt, joblog, summary};

use super::carried::Carried;
use super::settled::Settled;
use super::view::{build_view, job_id_of_url, Sources};
use super::write::{finals_of, Progress};
use super::{Guard, NoteSync, SyncError};

/// Room left in a note besides its visible text and the settled statuses (GitLab counts
/// characters, this counts bytes: there is room to spare).
const SETTLED_MARGIN: usize = 10_000;

/// The pipeline's jobs (earlier attempts included) and herald's statuses, as one render reads them.
pub(super) type PipelineState = (Vec<PipelineJob>, Vec<CommitStatus>);

impl NoteSync<'_> {
    /// Renders the body from the state the claim read (`claimed_from`), else from the state read
    /// now, and remembers what it was rendered from (`progress`) for the verification. None: a
    /// step's first write is left to a later writer the state shows (`left_to_a_later_writer`).
    pub(super) fn render_now(
        &self,
        guard: &Guard,
        note: Option<&Note>,
        claimed_from: Option<PipelineState>,
        progress: &mut Progress,
    ) -> Result<Option<String>, SyncError> {
        let first_write = progress.written.is_none();
        let (jobs, statuses) = match claimed_from {
            Some(state) => state,
            // Many steps are ending: read the statuses first, and the jobs only if this step's
            // write is not left to a later writer (one request instead of a page of jobs per
            // hundred). Otherwise both at once: a round trip less.
            None if first_write && note.is_some_and(|note| self.many_ending(note)) => {
                let statuses = self.read_statuses(guard, note, self.client)?;
                if self.leaves_it_to_a_later_writer(&statuses) {
                    return Ok(None);
                }
                (self.read_jobs(guard)?, statuses)
            }
            None => {
                let (jobs, statuses) = self.read_state(guard, note)?;
                if first_write && self.leaves_it_to_a_later_writer(&statuses) {
                    return Ok(None);
                }
                (jobs, statuses)
            }
        };
        progress.rendered_finals = Some(finals_of(&statuses));
        let body = self.render(guard, &jobs, note, statuses)?;
        progress.jobs = Some(jobs);
        Ok(Some(body))
    }

    /// The pipeline's jobs (earlier attempts included) and herald's statuses, those `note` knows
    /// to be final merged with those read from where they end. The two reads do not depend on
    /// each other: they go together, on both connections.
    pub(super) fn read_state(&self, guard: &Guard, note: Option<&Note>) -> Result<PipelineState, SyncError> {
        let known = self.settled_in(note.map(|n| n.body.as_str()));
        let (read, statuses) =
            self.alongside(guard.deadline, || self.read_jobs(guard), self.spare, self.statuses_from(known.below));
        Ok((read?, known.merge(statuses?)))
    }

    /// Herald's statuses, those `note` knows to be final merged with those read from where they
    /// end, on `client`.
    fn read_statuses(
        &self,
        guard: &Guard,
        note: Option<&Note>,
        client: &Client,
    ) -> Result<Vec<CommitStatus>, SyncError> {
        let known = self.settled_in(note.map(|n| n.body.as_str()));
        Ok(known.merge(super::call_with(client, guard, self.statuses_from(known.below))?))
    }

    /// Whether this step's write is left to a later writer (`left_to_a_later_writer`), said in
    /// the log.
    pub(super) fn leaves_it_to_a_later_writer(&self, statuses: &[CommitStatus]) -> bool {
        let later = self.left_to_a_later_writer(statuses);
        if let Some(later) = later {
            log!(Debug, "note: left to the writer of '{}', which ended after this step", later.name);
        }
        later.is_some()
    }

    /// The pipeline's jobs, earlier attempts included.
    pub(super) fn read_jobs(&self, guard: &Guard) -> Result<Vec<PipelineJob>, SyncError> {
        self.call(guard, |c, t| gitlab::pipeline_jobs_with_retries(c, &self.job.project, self.pipeline_id, t))
    }

    /// The view a claim shows: the pipeline's `state` as read (no excerpts, no history: those
    /// cost reads).
    pub(super) fn claim_view(&self, (jobs, statuses): &PipelineState) -> view::NoteView {
        build_view(&Sources {
            pipeline_id: self.pipeline_id,
            sha: &self.job.sha,
            prefix: &self.job.status_prefix,
            jobs,
            statuses,
            plan: self.plan,
            history: &[],
            excerpts: &BTreeMap::new(),
            baseline: None,
            summaries: &BTreeMap::new(),
        })
    }

    /// The note's body for the pipeline as it is now: its `jobs` and herald's `statuses` — those
    /// the note `current` already knew to be final (`settled_in`) merged with those read from
    /// where they end, newest first (`herald note` reads them all). The excerpts and history
    /// already known are taken from `current` too.
    pub(super) fn render(
        &self,
        guard: &Guard,
        jobs: &[PipelineJob],
        current: Option<&Note>,
        statuses: Vec<CommitStatus>,
    ) -> Result<String, SyncError> {
        let mut carried = match current {
            Some(note) if !self.reading.everything => Carried::from_note(&note.body, self.pipeline_id),
            _ => Carried::new(self.pipeline_id),
        };
        let history = self.carried_history(guard, &mut carried)?;
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
        for (name, summary) in crate::publish::job_memory::summaries(&self.job) {
            carried.keep_summary(&name, Some(summary));
        }
        // This process's own (also when there is no job memory: no CI_JOB_ID, no private dir).
        if let Some((name, Some(summary))) = &self.expected.summary {
            carried.keep_summary(name, Some(summary.clone()));
        }
        carried.retain_summaries(|name| statuses.iter().any(|s| s.name == name));
        self.read_summaries(guard, jobs, &statuses, &mut carried, &mut logs)?;
        let summaries = carried.summaries().clone();
        let view = build_view(&Sources {
            pipeline_id: self.pipeline_id,
            sha: &self.job.sha,
            prefix: &self.job.status_prefix,
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
        let prefix = &self.job.status_prefix;
        let settled = Settled::of(&statuses, prefix).block(self.pipeline_id, prefix, room);
        let hidden = format!("{carried}{settled}");
        Ok(if hidden.is_empty() { visible } else { format!("{}\n\n{hidden}", visible.trim_end()) })
    }

    /// The MR's earlier pipelines as `carried` has them, else read once and carried on.
    fn carried_history(&self, guard: &Guard, carried: &mut Carried) -> Result<Vec<PastPipeline>, SyncError> {
        if let Some(history) = carried.history() {
            return Ok(history);
        }
        match self.history(guard) {
            Ok(history) => {
                carried.set_history(&history);
                Ok(history)
            }
            // The history is a nicety: a GitLab that refuses it (an older version, a token
            // without access) gets a note without it, and is not asked again.
            Err(SyncError::Api(error)) if !error.is_retryable() => {
                log!(Debug, "note: no earlier pipelines: {error}");
                carried.set_history(&[]);
                Ok(Vec::new())
            }
            Err(error) => Err(error),
        }
    }

    /// The statuses a note's `body` knows to be final (none for `herald note`, which reads them
    /// all): the rest are read from `below` up.
    pub(super) fn settled_in(&self, body: Option<&str>) -> Settled {
        match body {
            Some(body) if !self.reading.everything => {
                Settled::from_note(body, self.pipeline_id, &self.job.status_prefix)
            }
            _ => Settled::nothing(),
        }
    }

    /// The read of the pipeline's statuses from id `from` up, on whichever client runs it.
    pub(super) fn statuses_from(
        &self,
        from: u64,
    ) -> impl FnMut(&Client, Duration) -> Result<Vec<CommitStatus>, ApiError> + Send {
        let (project, sha, pipeline_id) = (self.job.project.clone(), self.job.sha.clone(), self.pipeline_id);
        move |c, t| gitlab::pipeline_statuses_from(c, &project, &sha, pipeline_id, from, t)
    }

    /// The target branch's pipeline to compare with (publish/baseline.rs), read once per pipeline
    /// (`carried`) within `baseline::BUDGET` of the time left: None when there is none, or it
    /// cannot be read in time or at all. Quietly: a comparison is a nicety.
    fn baseline(&self, deadline: Instant) -> Option<Baseline> {
        let branch = self.job.target_branch.as_deref()?;
        let deadline = deadline.min(Instant::now() + baseline::BUDGET);
        let base = self.job.diff_base_sha.as_deref();
        match baseline::read(self.client, &self.job.project, branch, base, &self.job.status_prefix, deadline) {
            Ok(found) => found,
            Err(error) => {
                log!(Debug, "note: no baseline from {branch}: {error}");
                None
            }
        }
    }

    /// The merge request's earlier pipelines, oldest first (read once per pipeline, `carried`).
    fn history(&self, guard: &Guard) -> Result<Vec<PastPipeline>, SyncError> {
        let pipelines =
            self.call(guard, |c, t| gitlab::merge_request_pipelines(c, &self.job.project, self.mr_iid, t))?;
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
        let own_prefix = format!("{}/", self.job.status_prefix);
        carried.retain_excerpts(|id| statuses.iter().any(|s| s.id == id));
        for status in statuses.iter().filter(|s| s.name.starts_with(&own_prefix) && s.status == "failed") {
            let Some(job_id) = status.target_url.as_deref().and_then(job_id_of_url) else { continue };
            if carried.excerpt(status.id).is_some() || !is_over(jobs, job_id) {
                continue;
            }
            let log = self.job_log(guard, logs, job_id)?;
            let step = self.step_of(&status.name);
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
            entry.insert(match self.call(guard, |c, t| gitlab::job_log(c, &self.job.project, job_id, t)) {
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
        let own_prefix = format!("{}/", self.job.status_prefix);
        for status in statuses.iter().filter(|s| s.name.starts_with(&own_prefix)) {
            let marked =
                status.description.as_deref().is_some_and(|d| view::headline(d).ends_with(joblog::SUMMARY_MARK));
            let Some(job_id) = status.target_url.as_deref().and_then(job_id_of_url) else { continue };
            if !marked || carried.summaries().contains_key(&status.name) || !is_over(jobs, job_id) {
                continue;
            }
            let log = self.job_log(guard, logs, job_id)?;
            let step = self.step_of(&status.name);
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

    /// The step a status of this pipeline is for, and which of its job's steps of that name.
    pub(super) fn step_of(&self, status_name: &str) -> Option<(String, usize)> {
        StatusName::parse(status_name, &self.job.status_prefix)?.step_of(self.plan)
    }
}

/// Whether the job `job_id` is over, so that its log is complete.
fn is_over(jobs: &[PipelineJob], job_id: u64) -> bool {
    jobs.iter().any(|job| job.id == job_id && matches!(job.status.as_str(), "success" | "failed" | "canceled"))
}
