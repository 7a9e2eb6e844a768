//! The note's header: the verdict in GitLab's words, the step counts, the line of facts (commit,
//! start, duration, last change, earlier pipelines) and the comparison with the target branch.
//! Separate because it is the one part every reader sees first and that summarises all the rest.

use super::*;

pub(super) fn header(view: &NoteView, entries: &[Entry]) -> String {
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
pub(super) fn is_stepless_failure(job: &JobView) -> bool {
    job.steps.is_empty() && job.status == "failed" && !job.allow_failure
}

/// A job whose latest attempt passed after an earlier one failed.
fn passed_on_retry(job: &JobView) -> bool {
    job.status == "success" && job.attempts.iter().any(|(status, _)| status == "failed")
}

/// A branch name in code style: between backticks when it is made of the characters branch names
/// usually are, else (git allows much more: backticks, `<`, `@`…) in `<code>`, escaped.
pub(super) fn branch_code(branch: &str) -> String {
    let plain = !branch.is_empty() && branch.chars().all(|c| c.is_ascii_alphanumeric() || "-_./+".contains(c));
    if plain {
        format!("`{branch}`")
    } else {
        format!("<code>{}</code>", cell(branch))
    }
}

/// ` · also failing on `main` (#1830)` / ` · new: passes on `main` (#1834)`: what the baseline
/// says of one failure; empty without a comparable row.
pub(super) fn comparison(on_target: Option<OnTarget>, baseline: Option<&BaselineRef>) -> String {
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
/// (publish/findings/: `· 4 findings, 3 on changed lines (2 new threads…`), summed, each step
/// linked to its job. Empty when no step reported findings on changed lines.
pub(super) fn findings_line(entries: &[Entry]) -> String {
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
pub(super) fn findings_counts(description: &str) -> Option<(u64, u64)> {
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

/// How many steps the note `body` counts as running, from its heading's tally (`tally`): the
/// writers still to come as of its last render. 0 when it says none, or is not a note.
pub fn running_steps(body: &str) -> usize {
    let suffix = format!(" {}", StepState::Running.word());
    let tally = body.lines().skip_while(|line| !line.starts_with("### ")).nth(1).unwrap_or_default();
    tally.split(" · ").find_map(|part| part.strip_suffix(suffix.as_str())?.parse().ok()).unwrap_or(0)
}

/// One plain line for a job log: `pipeline #1003 failed: 2 failed · 10 passed · 12 steps in 8 jobs`.
pub fn verdict_line(view: &NoteView) -> String {
    let entries = entries(view);
    let (_, word) = verdict(&view.pipeline.status, entries.iter().any(|e| e.state == StepState::Allowed));
    format!("pipeline #{} {word}: {}", view.pipeline.id, tally(view, &entries, false))
}

/// GitLab's words for a pipeline's status; `passed with warnings` when something was allowed to
/// fail.
pub(super) fn verdict(status: &str, warned: bool) -> (&'static str, &'static str) {
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
