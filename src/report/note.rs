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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::summary;
use crate::duration::format_duration;

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

fn header(view: &NoteView, entries: &[Entry]) -> String {
    let pipeline = &view.pipeline;
    let warned = entries.iter().any(|e| e.state == StepState::Allowed);
    let (icon, word) = verdict(&pipeline.status, warned);
    let link = pipeline_link(pipeline.id, pipeline.web_url.as_deref());
    let tally = tally(view, entries, true);

    let mut facts = Vec::new();
    let short: String = pipeline.sha.chars().take(8).collect();
    facts.push(match &pipeline.commit_url {
        Some(url) => format!("commit [<code>{}</code>]({})", cell(&short), url_cell(url)),
        None => format!("commit <code>{}</code>", cell(&short)),
    });
    if let Some(started) = pipeline.started_at {
        facts.push(format!("started {}", clock(started)));
        if let Some(finished) = pipeline.finished_at.filter(|f| *f >= started) {
            facts.push(format!("took {}", format_duration(Duration::from_secs_f64(finished - started))));
        }
    }
    if let Some(updated) = pipeline.updated_at {
        facts.push(format!("updated {}", clock(updated)));
    }
    if !view.history.is_empty() {
        let earlier: Vec<String> = view
            .history
            .iter()
            .map(|past| {
                let (icon, _) = verdict(&past.status, false);
                format!("{} {icon}", pipeline_link(past.id, past.web_url.as_deref()))
            })
            .collect();
        facts.push(format!("before: {} → this one", earlier.join(" → ")));
    }
    let findings = format!("{}{}", findings_line(entries), comparison_line(view, entries));
    // Paragraphs, not lines: a single newline is no line break in GitLab's Markdown.
    format!(
        "{}\n### {icon} Pipeline {link} {word}\n{tally}{findings}\n\n<sub>{}</sub>\n",
        marker(pipeline.id),
        facts.join(" · ")
    )
}

/// `\n\n↩️ **2 failures, both also failing on `main`** (#1830) · 🔁 1 job flaky: passed on retry`:
/// what the baseline says of this pipeline's failures (publish/baseline.rs), and the jobs that
/// passed only on a retry. Empty when there is nothing to say.
fn comparison_line(view: &NoteView, entries: &[Entry]) -> String {
    let mut parts = Vec::new();
    if let Some(baseline) = &view.baseline {
        let branch = branch_code(&baseline.branch);
        // The failures: failed steps, and failed jobs that have no steps of herald's.
        let failures: Vec<Option<OnTarget>> = entries
            .iter()
            .filter(|e| e.state == StepState::Failed)
            .map(|e| e.on_target)
            .chain(view.jobs.iter().filter(|job| is_stepless_failure(job)).map(|job| job.on_target))
            .collect();
        let also = failures.iter().filter(|f| **f == Some(OnTarget::Failed)).count();
        let new = failures.iter().filter(|f| **f == Some(OnTarget::Passed)).count();
        let link = pipeline_link(baseline.pipeline, baseline.web_url.as_deref());
        let total = failures.len();
        let plural = |n: usize| if n == 1 { "failure" } else { "failures" };
        if total > 0 && also == total {
            let all = match total {
                1 => "also failing",
                2 => "both also failing",
                _ => "all also failing",
            };
            parts.push(format!("↩️ **{total} {}, {all} on {branch}** ({link})", plural(total)));
        } else if also + new > 0 {
            let mut said = Vec::new();
            if new > 0 {
                said.push(format!("**{new} new**"));
            }
            if also > 0 {
                said.push(format!("{also} also failing on {branch}"));
            }
            let rest = total - also - new;
            if rest > 0 {
                said.push(format!("{rest} not compared"));
            }
            parts.push(format!("↩️ {total} {}: {} ({link})", plural(total), said.join(", ")));
        }
    }
    let flaky = view.jobs.iter().filter(|job| passed_on_retry(job)).count();
    if flaky > 0 {
        let jobs = if flaky == 1 { "job" } else { "jobs" };
        parts.push(format!("🔁 {flaky} {jobs} flaky: passed on retry"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("\n\n{}", parts.join(" · "))
    }
}

/// A job that failed (and may not) without any step of herald's: compared by its name.
fn is_stepless_failure(job: &JobView) -> bool {
    job.steps.is_empty() && job.status == "failed" && !job.allow_failure
}

/// A job whose latest attempt passed after an earlier one failed.
fn passed_on_retry(job: &JobView) -> bool {
    job.status == "success" && job.attempts.iter().any(|(status, _)| status == "failed")
}

/// A branch name in code style: between backticks when it is made of the characters branch names
/// usually are, else (git allows much more: backticks, `<`, `@`…) in `<code>`, escaped.
fn branch_code(branch: &str) -> String {
    let plain = !branch.is_empty() && branch.chars().all(|c| c.is_ascii_alphanumeric() || "-_./+".contains(c));
    if plain {
        format!("`{branch}`")
    } else {
        format!("<code>{}</code>", cell(branch))
    }
}

/// ` · also failing on `main` (#1830)` / ` · new: passes on `main` (#1834)`: what the baseline
/// says of one failure; empty without a comparable row.
fn comparison(on_target: Option<OnTarget>, baseline: Option<&BaselineRef>) -> String {
    let (Some(on_target), Some(baseline)) = (on_target, baseline) else { return String::new() };
    let branch = branch_code(&baseline.branch);
    let link = pipeline_link(baseline.pipeline, baseline.web_url.as_deref());
    match on_target {
        OnTarget::Failed => format!(" · ↩️ also failing on {branch} ({link})"),
        OnTarget::Passed => format!(" · 🆕 new: passes on {branch} ({link})"),
    }
}

/// `\n\n🔎 **3 findings on changed lines** (2 new threads): [lint](…) › ruff`: what the steps
/// that publish findings (`herald run --findings`) say in their descriptions
/// (publish/findings.rs: `· 4 findings, 3 on changed lines (2 new threads…`), summed, each step
/// linked to its job. Empty when no step reported findings on changed lines.
fn findings_line(entries: &[Entry]) -> String {
    let mut on_changed = 0u64;
    let mut new = 0u64;
    let mut steps = Vec::new();
    for entry in entries {
        let Some((changed, threads)) = findings_counts(&entry.result) else { continue };
        if changed == 0 {
            continue;
        }
        on_changed += changed;
        new += threads;
        steps.push(match entry.job {
            Some(_) => format!("{} › {}", job_link(entry.job), cell(&entry.name)),
            None => cell(&entry.name),
        });
    }
    if on_changed == 0 {
        return String::new();
    }
    let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let threads = if new > 0 { format!(" ({})", plural(new, "new thread")) } else { String::new() };
    format!("\n\n🔎 **{} on changed lines**{threads}: {}", plural(on_changed, "finding"), steps.join(", "))
}

/// From a step's description, the findings on changed lines and the threads started for them.
fn findings_counts(description: &str) -> Option<(u64, u64)> {
    let (_, summary) = description.split_once(" · ")?;
    let rest = summary.split_once(" finding, ").or_else(|| summary.split_once(" findings, "))?.1;
    let (changed, rest) = rest.split_once(" on changed lines")?;
    let changed = changed.parse().ok()?;
    let new = rest
        .strip_prefix(" (")
        .and_then(|inside| inside.split_once(" new thread"))
        .and_then(|(count, _)| count.parse().ok())
        .unwrap_or(0);
    Some((changed, new))
}

/// `**2 failed** · 10 passed · 12 steps in 8 jobs`: how many steps are in each state, the worst
/// first (failures in bold when `bold`), then the totals.
fn tally(view: &NoteView, entries: &[Entry], bold: bool) -> String {
    let count = |state: StepState| entries.iter().filter(|e| e.state == state).count();
    let parts: Vec<String> = [
        StepState::Failed,
        StepState::Allowed,
        StepState::Canceled,
        StepState::Running,
        StepState::Retrying,
        StepState::Passed,
        StepState::Waiting,
        StepState::Manual,
        StepState::NotRun,
    ]
    .into_iter()
    .filter(|state| count(*state) > 0)
    .map(|state| {
        let text = format!("{} {}", count(state), state.word());
        if bold && state == StepState::Failed {
            format!("**{text}**")
        } else {
            text
        }
    })
    .collect();
    let steps = entries.len();
    let jobs = view.jobs.len();
    let totals =
        format!("{steps} step{} in {jobs} job{}", if steps == 1 { "" } else { "s" }, if jobs == 1 { "" } else { "s" });
    if parts.is_empty() {
        totals
    } else {
        format!("{} · {totals}", parts.join(" · "))
    }
}

/// One plain line for a job log: `pipeline #1003 failed: 2 failed · 10 passed · 12 steps in 8 jobs`.
pub fn verdict_line(view: &NoteView) -> String {
    let entries = entries(view);
    let (_, word) = verdict(&view.pipeline.status, entries.iter().any(|e| e.state == StepState::Allowed));
    format!("pipeline #{} {word}: {}", view.pipeline.id, tally(view, &entries, false))
}

/// GitLab's words for a pipeline's status; `passed with warnings` when something was allowed to
/// fail.
fn verdict(status: &str, warned: bool) -> (&'static str, &'static str) {
    match status {
        "success" if warned => ("⚠️", "passed with warnings"),
        "success" => ("✅", "passed"),
        "failed" => ("❌", "failed"),
        "canceled" | "canceling" => ("⛔", "canceled"),
        "skipped" => ("⏭️", "skipped"),
        "running" => ("🔵", "running"),
        "manual" => ("⏸️", "blocked: waiting for a manual action"),
        "scheduled" => ("⏳", "scheduled"),
        _ => ("⏳", "pending"),
    }
}

fn pipeline_link(id: u64, url: Option<&str>) -> String {
    match url {
        Some(url) => format!("[#{id}]({})", url_cell(url)),
        None => format!("#{id}"),
    }
}

/// Every failed step: the first ones with their excerpt, identical excerpts once, then one line
/// each while the budget lasts; the rest fold.
fn failures<'e>(entries: &'e [Entry<'e>], visible: &mut Visible<'e>) {
    let failed: Vec<&Entry> = entries.iter().filter(|e| e.state == StepState::Failed).collect();
    if failed.is_empty() {
        return;
    }
    if !visible.fits("\n#### ❌ Failed\n") {
        visible.folded.extend(failed);
        return;
    }
    // Failures with the same excerpt (numbers aside: thread ids, timings) are shown once.
    let mut groups: Vec<(String, Vec<&Entry>)> = Vec::new();
    for entry in &failed {
        let key =
            if entry.excerpt.is_empty() { format!("\u{0}{}", groups.len()) } else { same_failure_key(entry.excerpt) };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(entry),
            None => groups.push((key, vec![entry])),
        }
    }
    let mut excerpts_shown = 0;
    for (_, members) in &groups {
        let first = members[0];
        let mut block = format!("\n{}\n", step_line(first, true));
        let budget = if excerpts_shown == 0 { FIRST_EXCERPT_LINES } else { OTHER_EXCERPT_LINES };
        if !first.excerpt.is_empty() {
            block.push_str(&excerpt_block(first.excerpt, budget));
        }
        if members.len() > 1 {
            let others: Vec<String> = members[1..].iter().take(5).map(|e| job_link(e.job)).collect();
            let more = members.len() - 1 - others.len();
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            let _ = writeln!(block, "Same failure in {}{more}.", others.join(", "));
        }
        if visible.fits(&block) {
            excerpts_shown += 1;
            continue;
        }
        // No room for the excerpt: the failure's own line, if that fits.
        let line = format!("- {}\n", step_line(first, false));
        if visible.fits(&line) {
            visible.folded.extend(&members[1..]);
        } else {
            visible.folded.extend(members.iter().copied());
        }
    }
}

/// A key equal for two excerpts that differ only in numbers (thread ids, timings, line counts).
fn same_failure_key(excerpt: &[String]) -> String {
    excerpt.iter().flat_map(|line| line.chars().filter(|c| !c.is_ascii_digit())).collect()
}

/// The excerpt in a block a phone can scroll: `<pre>` with the text escaped, so nothing in it can
/// end the block, open a tag or mention anyone.
fn excerpt_block(excerpt: &[String], max_lines: usize) -> String {
    let mut text = String::from("<pre>");
    let shown = &excerpt[..excerpt.len().min(max_lines)];
    for (i, line) in shown.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        let escaped = pre_text(line);
        // A line of the block starting with `/` would still look like a quick action.
        if escaped.trim_start().starts_with('/') {
            text.push('\u{200b}');
        }
        text.push_str(&escaped);
    }
    if excerpt.len() > shown.len() {
        text.push_str("\n…");
    }
    text.push_str("</pre>\n");
    text
}

/// Running, allowed and canceled steps: one line each while the budget lasts.
fn listing<'e>(entries: &'e [Entry<'e>], state: StepState, title: &str, visible: &mut Visible<'e>) {
    let listed: Vec<&Entry> = entries.iter().filter(|e| e.state == state).collect();
    if listed.is_empty() {
        return;
    }
    if !visible.fits(&format!("\n#### {title}\n")) {
        visible.folded.extend(listed);
        return;
    }
    for (i, entry) in listed.iter().enumerate() {
        let remaining = listed.len() - i;
        // Keep a line free to say how many more there are.
        let room_for_more = remaining == 1 || visible.lines + 2 <= VISIBLE_LINES;
        if room_for_more && visible.fits(&format!("- {}\n", step_line(entry, false))) {
            continue;
        }
        let _ = visible.fits(&format!("- … and {remaining} more, below\n"));
        visible.folded.extend(&listed[i..]);
        return;
    }
}

/// `❌ [job](url) › step — failed (exit 2) after 4.1s · log`; running steps say since when.
fn step_line(entry: &Entry, bold: bool) -> String {
    let job = match entry.job {
        Some(job) => format!("{} › ", job_link(Some(job))),
        None => String::new(),
    };
    let name = cell(&entry.name);
    let subject = if bold { format!("**{job}{name}**") } else { format!("{job}{name}") };
    let mut result = cell(&entry.result);
    if let (StepState::Running, Some(started)) = (entry.state, entry.started_at) {
        result = format!("running since {}", clock(started));
    }
    let log = match (entry.state, entry.job.and_then(|job| job.web_url.as_deref())) {
        (StepState::Failed | StepState::Canceled | StepState::Allowed, Some(url)) => {
            format!(" · [log]({})", url_cell(url))
        }
        _ => String::new(),
    };
    let compared = match entry.state {
        StepState::Failed => comparison(entry.on_target, entry.baseline),
        _ => String::new(),
    };
    format!("{} {subject} — {result}{log}{compared}", entry.state.icon())
}

fn job_link(job: Option<&JobView>) -> String {
    match job {
        Some(job) => match &job.web_url {
            Some(url) => format!("[{}]({})", cell(&job.name), url_cell(url)),
            None => cell(&job.name),
        },
        None => "—".into(),
    }
}

/// The folded part: what needed attention but did not fit, then every job by stage, one line
/// each, waiting jobs summarised per stage.
fn everything_else(
    view: &NoteView,
    entries: &[Entry],
    folded: &[&Entry],
    folded_summaries: &[(Option<u64>, String)],
) -> String {
    let count = |state: StepState| entries.iter().filter(|e| e.state == state).count();
    let summary: Vec<String> = [StepState::Passed, StepState::Waiting, StepState::Manual, StepState::NotRun]
        .into_iter()
        .filter(|state| count(*state) > 0)
        .map(|state| format!("{} {} {}", state.icon(), count(state), state.word()))
        .collect();
    let summary = if summary.is_empty() { "every job and step".to_owned() } else { summary.join(" · ") };
    let mut text = format!("\n<details><summary>{summary}</summary>\n\n");
    if !folded.is_empty() {
        text.push_str("**Not shown above**\n\n");
        for entry in folded {
            let _ = writeln!(text, "- {}", step_line(entry, false));
        }
        text.push('\n');
    }
    let mut stages: Vec<(&str, Vec<&JobView>)> = Vec::new();
    for job in &view.jobs {
        match stages.iter_mut().find(|(stage, _)| *stage == job.stage) {
            Some((_, jobs)) => jobs.push(job),
            None => stages.push((&job.stage, vec![job])),
        }
    }
    for (stage, jobs) in stages {
        let _ = writeln!(text, "**{}**\n", cell(if stage.is_empty() { "jobs" } else { stage }));
        let mut waiting: BTreeMap<StepState, Vec<&JobView>> = BTreeMap::new();
        for job in jobs {
            let untouched = job.steps.is_empty();
            match StepState::from_status(&job.status) {
                state @ (StepState::Waiting | StepState::Manual | StepState::NotRun) if untouched => {
                    waiting.entry(state).or_default().push(job);
                }
                _ => text.push_str(&job_line(job, view.baseline.as_ref())),
            }
            for (_, block) in folded_summaries.iter().filter(|(id, _)| *id == Some(job.id)) {
                text.push('\n');
                text.push_str(block);
            }
        }
        for (state, jobs) in waiting {
            let names: Vec<String> = jobs.iter().take(10).map(|job| job_link(Some(job))).collect();
            let more = if jobs.len() > names.len() {
                format!(", … {} more", jobs.len() - names.len())
            } else {
                String::new()
            };
            let plural = if jobs.len() == 1 { "" } else { "s" };
            let _ = writeln!(
                text,
                "- {} {} job{plural} {}: {}{more}",
                state.icon(),
                jobs.len(),
                state.word(),
                names.join(", ")
            );
        }
        text.push('\n');
    }
    if !view.unattached.is_empty() {
        text.push_str("**Other statuses**\n\n");
        for step in &view.unattached {
            let _ = writeln!(text, "- {} {} {}", step.state.icon(), cell(&step.name), cell(&step.description));
        }
        text.push('\n');
        for (_, block) in folded_summaries.iter().filter(|(id, _)| id.is_none()) {
            text.push_str(block);
            text.push('\n');
        }
    }
    text.push_str("</details>\n");
    text
}

/// Step summaries (report/summary.rs), each folded in a `<details>` titled with its job, step and
/// gist, open for a failed step: above the fold while the visible budget lasts (a folded one
/// costs its title line and a blank one, an open one its lines, or it is shown folded), failed steps' first; the others
/// under their job in the folded part (returned, by job id). Within `summary::NOTE_BUDGET` bytes
/// of summaries in all: past it, a summary is one line pointing to the job log.
fn step_summaries(view: &NoteView, visible: &mut Visible) -> Vec<(Option<u64>, String)> {
    let mut items: Vec<(Option<&JobView>, &StepView)> = view
        .jobs
        .iter()
        .flat_map(|job| job.steps.iter().map(move |step| (Some(job), step)))
        .chain(view.unattached.iter().map(|step| (None, step)))
        .filter(|(_, step)| step.summary.as_deref().is_some_and(|text| !text.trim().is_empty()))
        .collect();
    if items.is_empty() {
        return Vec::new();
    }
    // Failed steps first, in the pipeline's order otherwise (a stable sort).
    items.sort_by_key(|(_, step)| step.state != StepState::Failed);
    let mut room = summary::NOTE_BUDGET;
    let mut folded = Vec::new();
    let mut heading_shown = false;
    for (job, step) in items {
        let text = step.summary.as_deref().unwrap_or_default();
        let shown = summary::for_note(text, text.len() as u64, summary::STEP_BUDGET);
        let shown = if shown.len() <= room {
            room -= shown.len();
            shown
        } else {
            "_Not shown: the note's room for summaries is used up; the whole summary is in the job log._".to_owned()
        };
        let gist = summary::gist(text);
        // The title is inside an HTML block, where Markdown is not read: HTML-escaped, not cell()'d.
        let gist = if gist.is_empty() { String::new() } else { format!(" — {}", summary::html_text(&gist)) };
        let job_name = job.map_or(String::new(), |job| format!("{} › ", summary::html_text(&job.name)));
        let title = format!("📝 {job_name}{}{gist}", summary::html_text(&step.name));
        let block = |open: bool, markdown: &str| {
            let open = if open { " open" } else { "" };
            format!(
                "<details{open}><summary>{title}</summary>\n\n{}\n</details>\n\n",
                summary::inert_markdown(markdown)
            )
        };
        if !heading_shown && visible.lines + 3 <= VISIBLE_LINES {
            heading_shown = visible.fits("\n#### 📝 Step summaries\n\n");
        }
        let failed = step.state == StepState::Failed;
        if heading_shown && failed && open_summary_fits(visible, &shown, &block) {
            continue;
        }
        // Its title line, and the blank line after it.
        if heading_shown && visible.fits_as(&block(false, &shown), 2) {
            continue;
        }
        folded.push((job.map(|job| job.id), block(failed, &shown)));
    }
    folded
}

/// A failed step's summary open above the fold: whole if it fits, else its first lines that fit
/// and a line saying where the rest is. False when not even one line fits.
fn open_summary_fits(visible: &mut Visible, shown: &str, block: &dyn Fn(bool, &str) -> String) -> bool {
    if visible.fits(&block(true, shown)) {
        return true;
    }
    let lines: Vec<&str> = shown.lines().collect();
    for keep in (1..lines.len()).rev() {
        let more = lines.len() - keep;
        let cut = format!(
            "{}\n\n_… {more} more lines: the whole summary is in the job log (section \"summary\")._",
            lines[..keep].join("\n")
        );
        let candidate = block(true, &cut);
        if visible.lines + candidate.lines().count() <= VISIBLE_LINES {
            return visible.fits(&candidate);
        }
    }
    false
}

/// `- ✅ [lint](url) — ✅ fmt passed in 1.2s · ✅ clippy passed in 41.0s`; a job that passed on a
/// retry links the failed attempt; a step much slower than in the baseline says so, and a failed
/// job without steps says how it ended there.
fn job_line(job: &JobView, baseline: Option<&BaselineRef>) -> String {
    let state = match StepState::from_status(&job.status) {
        StepState::Failed if job.allow_failure => StepState::Allowed,
        state => state,
    };
    let mut parts: Vec<String> = job
        .steps
        .iter()
        .map(|step| {
            let part = step_part(&step.name, step.state, &step.description);
            match (step.slower, baseline) {
                (Some((now, then)), Some(baseline)) => format!(
                    "{part} (🐢 slower than {}: {} vs {})",
                    branch_code(&baseline.branch),
                    format_duration(Duration::from_secs_f64(now.max(0.0))),
                    format_duration(Duration::from_secs_f64(then.max(0.0)))
                ),
                _ => part,
            }
        })
        .collect();
    let planned = planned_state(job);
    parts.extend(job.planned.iter().map(|name| step_part(name, planned, planned.word())));
    if parts.is_empty() {
        parts.push(job.status.replace('_', " "));
    }
    let retried = match job.attempts.iter().rev().find(|(status, _)| status == "failed") {
        Some((_, url)) if state == StepState::Passed => {
            let attempt = match url {
                Some(url) => format!("[failed attempt]({})", url_cell(url)),
                None => "a failed attempt".to_owned(),
            };
            format!(" · 🔁 flaky: passed on retry after {attempt}")
        }
        _ => String::new(),
    };
    let compared = if is_stepless_failure(job) { comparison(job.on_target, baseline) } else { String::new() };
    format!("- {} {} — {}{retried}{compared}\n", state.icon(), job_link(Some(job)), parts.join(" · "))
}

/// One step inside its job's line: `✅ fmt passed in 1.2s`.
fn step_part(name: &str, state: StepState, result: &str) -> String {
    format!("{} {} {}", state.icon(), cell(name), cell(result))
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

/// Text inside `<pre>`: HTML escaped, no mentions, no control characters. Markdown is not read
/// inside an HTML block, but brackets are written as entities all the same, so that no renderer
/// could ever make a link of `[x](javascript:…)`.
fn pre_text(text: &str) -> String {
    neutralised(text, |c, out| match c {
        '[' => out.push_str("&#91;"),
        ']' => out.push_str("&#93;"),
        '\t' => out.push_str("    "),
        c if c.is_control() => out.push(' '),
        c => out.push(c),
    })
}

/// Text for inline Markdown: no line breaks, Markdown and HTML neutralised, no mentions.
pub fn cell(text: &str) -> String {
    neutralised(text, |c, out| match c {
        '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '~' | '$' | '%' => {
            out.push('\\');
            out.push(c);
        }
        c if c.is_control() => out.push(' '),
        c => out.push(c),
    })
}

/// `text` with HTML's special characters as entities and mentions defused, whatever the
/// context; every other character as `rest` writes it for its context.
fn neutralised(text: &str, rest: impl Fn(char, &mut String)) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match (super::entity(c), c) {
            (Some(entity), _) => out.push_str(entity),
            // A zero-width space after @ keeps `@all` from notifying anyone; backslash escapes do
            // not, because GitLab finds mentions in the rendered text.
            (None, '@') => out.push_str("@\u{200b}"),
            (None, c) => rest(c, &mut out),
        }
    }
    out
}

/// A link target: only http(s), with the characters that would end the Markdown link encoded.
fn url_cell(url: &str) -> String {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return "#".into();
    }
    url.chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '(' => "%28".to_owned(),
            ')' => "%29".to_owned(),
            '<' => "%3C".to_owned(),
            '>' => "%3E".to_owned(),
            '"' => "%22".to_owned(),
            '|' => "%7C".to_owned(),
            // Not a mention in a link's target either; GitLab's URLs never carry user info.
            '@' => "%40".to_owned(),
            c if c.is_control() => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// The first lines of `text` that fit in `room` bytes.
fn cut_at_line(text: &str, room: usize) -> &str {
    let cut = super::cut_to_bytes(text, room);
    if cut.len() == text.len() {
        return text;
    }
    cut.rfind('\n').map_or("", |at| &text[..at + 1])
}

/// Defence in depth against quick actions: whatever the layout above does, no line of the body
/// starts with `/` (after optional indentation).
fn no_line_starts_with_slash(body: String) -> String {
    if !body.lines().any(|line| line.trim_start().starts_with('/')) {
        return body;
    }
    body.lines()
        .map(
            |line| {
                if line.trim_start().starts_with('/') {
                    format!("\\{}", line.trim_start())
                } else {
                    line.to_owned()
                }
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        assert_eq!(pipeline_of(&format!("{}\nrest", marker(1234))), Some(1234));
        assert_eq!(pipeline_of("<!-- something else -->"), None);
        assert_eq!(pipeline_of("text <!-- herald:note pipeline=5 -->"), None, "only at the very start");
    }

    #[test]
    fn the_heading_counts_findings_on_changed_lines() {
        assert_eq!(
            findings_counts("passed in 1.0s · 4 findings, 3 on changed lines (2 new threads) — elsewhere a.py:1 X"),
            Some((3, 2))
        );
        assert_eq!(findings_counts("failed (exit 1) after 2.0s · 1 finding, 1 on changed lines"), Some((1, 0)));
        assert_eq!(findings_counts("passed in 1.0s"), None);
        let job = JobView {
            name: "lint".into(),
            web_url: Some("https://gitlab.example.com/g/p/-/jobs/7".into()),
            ..JobView::default()
        };
        let step = |name: &str, description: &str| Entry {
            job: Some(&job),
            name: name.into(),
            state: StepState::Passed,
            result: description.into(),
            started_at: None,
            excerpt: &[],
            on_target: None,
            baseline: None,
        };
        let entries = [
            step("ruff", "passed in 1.0s · 4 findings, 3 on changed lines (2 new threads)"),
            step("clippy", "passed in 1.0s · 1 finding, 1 on changed lines"),
            step("test", "passed in 9.0s"),
        ];
        assert_eq!(
            findings_line(&entries),
            "\n\n🔎 **4 findings on changed lines** (2 new threads): [lint](https://gitlab.example.com/g/p/-/jobs/7) › ruff, [lint](https://gitlab.example.com/g/p/-/jobs/7) › clippy"
        );
        assert_eq!(findings_line(&entries[2..]), "");
    }

    #[test]
    fn branch_names_are_inert() {
        assert_eq!(branch_code("release/1.2"), "`release/1.2`");
        assert_eq!(branch_code("a`b<script>@all"), "<code>a\\`b&lt;script&gt;@\u{200b}all</code>");
    }

    #[test]
    fn cells_are_inert() {
        assert_eq!(cell("/merge"), "/merge", "never at a line's start: cells follow `- ` or text");
        assert_eq!(cell("a | b"), "a \\| b");
        assert_eq!(cell("</details><script>"), "&lt;/details&gt;&lt;script&gt;");
        assert_eq!(cell("@all"), "@\u{200b}all");
        assert_eq!(cell("x\ny"), "x y");
        assert_eq!(cell("`rm -rf`"), "\\`rm -rf\\`");
    }

    #[test]
    fn excerpts_cannot_escape_their_block() {
        let block = excerpt_block(&["</pre><b>@all</b>".into(), "/merge".into()], 10);
        assert_eq!(block, "<pre>&lt;/pre&gt;&lt;b&gt;@\u{200b}all&lt;/b&gt;\n\u{200b}/merge</pre>\n");
    }

    #[test]
    fn links_cannot_escape() {
        assert_eq!(url_cell("javascript:alert(1)"), "#");
        assert_eq!(url_cell("https://x/a b)(c"), "https://x/a%20b%29%28c");
        assert_eq!(url_cell("https://x/@all"), "https://x/%40all", "no mention from a link either");
    }

    #[test]
    fn clocks_are_gitlabs_utc() {
        assert_eq!(clock(1_764_493_440.0), "09:04 UTC");
    }
}
