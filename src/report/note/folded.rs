//! The folded part of the note: "Everything else" per stage and job, what did not fit above the
//! fold, and the steps' summaries (report/summary.rs) within the note's summary budget.

use super::attention::step_line;
use super::header::{branch_code, comparison, is_stepless_failure};
use super::*;

/// The folded part: what needed attention but did not fit, then every job by stage, one line
/// each, waiting jobs summarised per stage.
pub(super) fn everything_else(
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
pub(super) fn step_summaries(view: &NoteView, visible: &mut Visible) -> Vec<(Option<u64>, String)> {
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
        let gist = if gist.is_empty() { String::new() } else { format!(" — {}", html_text(&gist)) };
        let job_name = job.map_or(String::new(), |job| format!("{} › ", html_text(&job.name)));
        let title = format!("📝 {job_name}{}{gist}", html_text(&step.name));
        let block = |open: bool, markdown: &str| {
            let open = if open { " open" } else { "" };
            format!("<details{open}><summary>{title}</summary>\n\n{}\n</details>\n\n", inert_markdown(markdown))
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
pub(super) fn step_part(name: &str, state: StepState, result: &str) -> String {
    format!("{} {} {}", state.icon(), cell(name), cell(result))
}
