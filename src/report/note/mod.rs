//! The merge-request note: one Markdown body that tells a reviewer, in five seconds, what needs
//! attention in the pipeline, at any size. Pure: the same state always renders to the same text
//! (no clock is read here; every time shown comes from GitLab's state), which is what lets many
//! writers agree on what the note should say (publish/note/).
//!
//! Layout, top to bottom:
//! - **Header**: the verdict in GitLab's words (passed, passed with warnings, failed, running,
//!   canceled…), the step counts, and one line with the linked commit, when the pipeline started,
//!   how long it took (once over), when the note's state last changed, and the merge request's
//!   earlier pipelines (`#1001 ✅ → #1002 ❌`), so a fix shows as a fix.
//! - **Needs attention**: every failed step with its job, result and a link to its log, and an
//!   excerpt anchored on the error (report/excerpt.rs) in a block a phone can scroll; identical
//!   excerpts are shown once ("Same failure in …"). Then running steps with their start, allowed
//!   failures (warnings, not failures), canceled steps.
//! - **Everything else**, folded in one `<details>`: per stage, one line per job with its steps;
//!   waiting jobs summarised per stage.
//!
//! What is visible without unfolding is bounded: at most `VISIBLE_LINES` lines whatever the
//! pipeline's size; what does not fit moves into the folded part. No tables (they push results
//! off a phone's screen): lists and one scrollable block per failure. The whole note stays under
//! GitLab's size limit with room for herald's hidden blocks.
//!
//! Everything that comes from names or output is escaped: Markdown and HTML are neutralised, `@`
//! cannot mention anyone, and no line can start with `/` (GitLab runs quick actions such as
//! `/merge` found at the start of a line, on create and on every update, gitlab.md §B.3).
//! The escaping itself is report/markdown.rs, shared with the findings' threads.
//!
//! This file holds the note's data (`NoteView` and its parts), its markers and the order of its
//! parts (`render`); each part is a file of its own: `header.rs`, `attention.rs` (needs
//! attention) and `folded.rs` (everything else and the step summaries).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::markdown::{cell, html_text, inert_markdown, no_line_starts_with_slash, pre_text, url_cell};
use super::summary;
use crate::duration::format_duration;
use attention::{failures, job_link, listing};
use folded::{everything_else, step_part, step_summaries};
use header::header;
pub use header::{running_steps, verdict_line};

mod attention;
mod folded;
mod header;
#[cfg(test)]
mod tests;

/// GitLab refuses longer notes (gitlab.md §B); herald keeps a margin below it.
pub const GITLAB_NOTE_LIMIT: usize = 1_000_000;
/// The visible text's share of the limit; the rest is for herald's hidden blocks.
const BUDGET: usize = 900_000;
/// Lines a reviewer sees without unfolding anything, at most, whatever the pipeline's size.
pub const VISIBLE_LINES: usize = 40;
/// Excerpt lines of the first failure, and of the others.
const FIRST_EXCERPT_LINES: usize = 12;
const OTHER_EXCERPT_LINES: usize = 6;
/// Earlier pipelines of the merge request shown in the header.
pub const HISTORY: usize = 4;

const MARKER_START: &str = "<!-- herald:note pipeline=";

/// The hidden first line that identifies herald's note and the pipeline it shows.
pub fn marker(pipeline_id: u64) -> String {
    format!("{MARKER_START}{pipeline_id} -->")
}

/// The pipeline a note body shows, if it is a herald note.
pub fn pipeline_of(body: &str) -> Option<u64> {
    let rest = body.strip_prefix(MARKER_START)?;
    rest[..rest.find(' ')?].parse().ok()
}

/// The body a writer creates the note with: the pipeline as GitLab's jobs and herald's statuses
/// show it, with the steps the configuration plans for those jobs (`view`; no excerpts or history
/// yet), then the claim's nonce.
/// Creating the note at once makes the window in which concurrent writers each create one a
/// single request wide, and the nonce makes every writer's claim its own (so each removes only its
/// own duplicate). It is also what GitLab's new-comment e-mail carries, so it has content.
pub fn claim(view: &NoteView, nonce: &str) -> String {
    format!("{}\n{CLAIM_MARK}{nonce} -->\n", render(view).trim_end())
}

const CLAIM_MARK: &str = "<!-- herald:claim ";

/// Whether a note's body is still a bare claim: nobody has written the pipeline into it yet.
pub fn is_claim(body: &str) -> bool {
    body.contains(CLAIM_MARK)
}

/// What the note shows; built from GitLab's answers, never from the note's own text.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NoteView {
    pub pipeline: PipelineView,
    /// The latest attempt of each job, in stage order, then job id.
    pub jobs: Vec<JobView>,
    /// Steps whose job is not among the pipeline's jobs (e.g. posted from elsewhere).
    pub unattached: Vec<StepView>,
    /// The merge request's earlier pipelines, oldest first (at most `HISTORY`).
    pub history: Vec<PastPipeline>,
    /// The target branch's pipeline the failures are compared with (publish/baseline.rs), if any.
    pub baseline: Option<BaselineRef>,
}

/// The target branch's pipeline a note compares with: `main`'s #1830.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BaselineRef {
    pub branch: String,
    pub pipeline: u64,
    pub web_url: Option<String>,
}

/// How the same step (same status name) or job (same name, for jobs without herald) ended in the
/// baseline pipeline; no value when it has no comparable row there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTarget {
    Failed,
    Passed,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineView {
    pub id: u64,
    /// GitLab's pipeline status: `running`, `success`, `failed`, `canceled`, `manual`, ...
    pub status: String,
    pub web_url: Option<String>,
    pub sha: String,
    pub commit_url: Option<String>,
    /// When its first job started, and once it is over when its last one finished (Unix
    /// seconds, GitLab's clock).
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    /// The newest change the note shows: a job or step starting or ending.
    pub updated_at: Option<f64>,
}

/// An earlier pipeline of the merge request.
#[derive(Debug, Clone, PartialEq)]
pub struct PastPipeline {
    pub id: u64,
    pub status: String,
    pub web_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobView {
    pub id: u64,
    pub name: String,
    pub stage: String,
    /// GitLab's job status.
    pub status: String,
    pub web_url: Option<String>,
    /// Whether the job may fail without failing the pipeline.
    pub allow_failure: bool,
    /// herald's steps of this job, in the order they started.
    pub steps: Vec<StepView>,
    /// Steps the configuration says this job runs that have not started (yet, or ever).
    pub planned: Vec<String>,
    /// Earlier attempts of this job (retried), oldest first: their status and link.
    pub attempts: Vec<(String, Option<String>)>,
    /// For a job without herald's steps: how the job of that name ended in the baseline.
    pub on_target: Option<OnTarget>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepView {
    pub name: String,
    pub state: StepState,
    /// The status description: `passed in 1.2s`, `failed (exit 2) after 4.1s`.
    pub description: String,
    /// When it started (Unix seconds, GitLab's clock), for running steps.
    pub started_at: Option<f64>,
    /// What its output says went wrong (failed steps), masked, anchored on the error.
    pub excerpt: Vec<String>,
    /// How the step of the same status name ended in the baseline.
    pub on_target: Option<OnTarget>,
    /// (seconds now, seconds in the baseline) when it is at least twice as slow there and at least
    /// 30 s slower (`SLOWER_FACTOR`, `SLOWER_SECONDS`).
    pub slower: Option<(f64, f64)>,
    /// The Markdown the step wrote to `HERALD_STEP_SUMMARY`, masked and within its budget
    /// (report/summary.rs); made inert here.
    pub summary: Option<String>,
}

/// A step this many times as slow as in the baseline, and at least `SLOWER_SECONDS` slower, says
/// so: below that, runner noise (a cold cache, a busy machine) would make the mark meaningless.
pub const SLOWER_FACTOR: f64 = 2.0;
pub const SLOWER_SECONDS: f64 = 30.0;

/// Whether a step that took `now` seconds is slower enough than the `then` of the baseline to say.
pub fn is_slower(now: f64, then: f64) -> bool {
    now >= then * SLOWER_FACTOR && now - then >= SLOWER_SECONDS
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum StepState {
    Failed,
    Canceled,
    Running,
    /// Ended (failed or canceled) in an earlier attempt of a job that GitLab is running again:
    /// not a failure while the retry may still pass.
    Retrying,
    /// Created or pending: will run.
    #[default]
    Waiting,
    /// Waits for someone to start it (a manual job).
    Manual,
    /// Will not run: an earlier step or stage failed, or GitLab skipped its job.
    NotRun,
    /// Failed in a job that passed anyway or may fail: a warning, not a failure (posted as
    /// `success` with an `allowed: ` description, publish::settle).
    Allowed,
    Passed,
}

impl StepState {
    /// From one of herald's statuses: its state, and its description for allowed failures.
    pub fn of_step(status: &str, description: &str) -> StepState {
        match StepState::from_status(status) {
            StepState::Passed if description.starts_with(crate::step::ALLOWED) => StepState::Allowed,
            state => state,
        }
    }

    /// From a GitLab status: commit statuses and CI jobs use the same words.
    pub fn from_status(status: &str) -> StepState {
        match status {
            "success" => StepState::Passed,
            "failed" => StepState::Failed,
            "canceled" | "canceling" => StepState::Canceled,
            "skipped" => StepState::NotRun,
            "manual" | "scheduled" => StepState::Manual,
            "running" => StepState::Running,
            _ => StepState::Waiting,
        }
    }

    pub fn icon(self) -> &'static str {
        match self {
            StepState::Failed => "❌",
            StepState::Canceled => "⛔",
            StepState::Running => "🔵",
            StepState::Retrying => "🔁",
            StepState::Waiting => "⏳",
            StepState::Manual => "⏸️",
            StepState::NotRun => "⏭️",
            StepState::Allowed => "⚠️",
            StepState::Passed => "✅",
        }
    }

    fn word(self) -> &'static str {
        match self {
            StepState::Failed => "failed",
            StepState::Canceled => "canceled",
            StepState::Running => "running",
            StepState::Retrying => "retrying",
            StepState::Waiting => "waiting",
            StepState::Manual => "manual",
            StepState::NotRun => "not run",
            StepState::Allowed => "allowed to fail",
            StepState::Passed => "passed",
        }
    }
}

/// One step as the note lists it, with its job.
struct Entry<'v> {
    job: Option<&'v JobView>,
    name: String,
    state: StepState,
    result: String,
    started_at: Option<f64>,
    excerpt: &'v [String],
    on_target: Option<OnTarget>,
    /// The baseline the comparison is with.
    baseline: Option<&'v BaselineRef>,
}

/// A job's planned steps as the job's state makes them: waiting while the job may still run them,
/// manual while it waits for someone, not run once it is over.
fn planned_state(job: &JobView) -> StepState {
    match job.status.as_str() {
        "manual" | "scheduled" => StepState::Manual,
        "created" | "pending" | "running" | "waiting_for_resource" | "preparing" | "waiting_for_callback" => {
            StepState::Waiting
        }
        _ => StepState::NotRun,
    }
}

fn entries(view: &NoteView) -> Vec<Entry<'_>> {
    let mut entries = Vec::new();
    for job in &view.jobs {
        for step in &job.steps {
            entries.push(Entry {
                job: Some(job),
                name: step.name.clone(),
                state: step.state,
                result: step.description.clone(),
                started_at: step.started_at,
                excerpt: &step.excerpt,
                on_target: step.on_target,
                baseline: view.baseline.as_ref(),
            });
        }
        let state = planned_state(job);
        for planned in &job.planned {
            entries.push(Entry {
                job: Some(job),
                name: planned.clone(),
                state,
                result: state.word().to_owned(),
                started_at: None,
                excerpt: &[],
                on_target: None,
                baseline: None,
            });
        }
    }
    for step in &view.unattached {
        entries.push(Entry {
            job: None,
            name: step.name.clone(),
            state: step.state,
            result: step.description.clone(),
            started_at: step.started_at,
            excerpt: &step.excerpt,
            on_target: step.on_target,
            baseline: view.baseline.as_ref(),
        });
    }
    entries
}

pub fn render(view: &NoteView) -> String {
    let entries = entries(view);
    let head = header(view, &entries);
    // The blank line before the folded part counts too.
    let mut visible = Visible { text: String::new(), lines: head.lines().count() + 1, folded: Vec::new() };
    failures(&entries, &mut visible);
    listing(&entries, StepState::Running, "🔵 Running", &mut visible);
    listing(&entries, StepState::Retrying, "🔁 Retrying", &mut visible);
    listing(&entries, StepState::Allowed, "⚠️ Allowed to fail", &mut visible);
    listing(&entries, StepState::Canceled, "⛔ Canceled", &mut visible);
    // Last, so that a summary never takes a failure's place above the fold.
    let folded_summaries = step_summaries(view, &mut visible);
    let rest = everything_else(view, &entries, &visible.folded, &folded_summaries);
    let mut body = format!("{head}{}{rest}", visible.text);
    if body.len() > BUDGET {
        let cut = cut_at_line(&rest, BUDGET.saturating_sub(head.len() + visible.text.len() + 200));
        body = format!(
            "{head}{}{cut}\n… the rest is not listed: the note would exceed GitLab's size limit.\n</details>\n",
            visible.text
        );
    }
    no_line_starts_with_slash(body)
}

/// The part above the fold, and what did not fit in it.
struct Visible<'e> {
    text: String,
    lines: usize,
    /// Entries that needed attention but did not fit: listed first in the folded part.
    folded: Vec<&'e Entry<'e>>,
}

impl Visible<'_> {
    /// Adds `text` if it fits in the visible budget.
    fn fits(&mut self, text: &str) -> bool {
        self.fits_as(text, text.lines().count())
    }

    /// Adds `text`, which a reader sees as `lines` lines (a folded `<details>` is one), if it fits.
    fn fits_as(&mut self, text: &str, lines: usize) -> bool {
        if self.lines + lines > VISIBLE_LINES {
            return false;
        }
        self.text.push_str(text);
        self.lines += lines;
        true
    }
}

/// What the note shows of a status description: without the `allowed: ` mark (the note says it
/// in its own way) and without the output excerpt herald may append after `: `.
pub fn headline(description: &str) -> &str {
    let description = description.strip_prefix(crate::step::ALLOWED).unwrap_or(description);
    description.split_once(": ").map_or(description, |(head, _)| head)
}

/// Whether `body` shows this step of this job in this state with this result: then it was
/// rendered from a state that already had it, and a writer of that state need not write again.
pub fn shows_step(body: &str, job_name: &str, job_url: Option<&str>, step: &str, state: &str, result: &str) -> bool {
    let job = JobView { name: job_name.to_owned(), web_url: job_url.map(str::to_owned), ..JobView::default() };
    let link = job_link(Some(&job));
    let part = step_part(step, StepState::of_step(state, result), headline(result));
    body.lines().any(|line| line.starts_with("- ") && line.contains(&format!(" {link} — ")) && line.contains(&part))
}

/// `09:04 UTC`, from Unix seconds.
fn clock(unix: f64) -> String {
    let seconds = unix.max(0.0) as u64 % 86_400;
    format!("{:02}:{:02} UTC", seconds / 3600, (seconds % 3600) / 60)
}

/// The first lines of `text` that fit in `room` bytes.
fn cut_at_line(text: &str, room: usize) -> &str {
    let cut = super::cut_to_bytes(text, room);
    if cut.len() == text.len() {
        return text;
    }
    cut.rfind('\n').map_or("", |at| &text[..at + 1])
}
