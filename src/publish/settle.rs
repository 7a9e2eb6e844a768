//! Settling a job's statuses when it has ended (`herald finalize` for one job, `herald note
//! --final` for every ended job of the pipeline). Two rules, both from GitLab's own verdict
//! (docs/design.md §5):
//!
//! 1. **A step left open is closed from evidence.** First the job's own record of how each step
//!    ended (`job_memory`, written before the final post, so a post that never reached GitLab
//!    still has its evidence), then herald's summary line for the step in the job log GitLab
//!    holds (`GET /jobs/:id/trace`). Without evidence, the state that cannot make the pipeline's
//!    verdict worse than the job's: `success` in a job that passed, `canceled` in a canceled
//!    one, `failed` only in a job that failed; the description says there was no evidence.
//! 2. **herald never makes the verdict worse than GitLab's own.** A commit status has no
//!    `allow_failure` (gitlab.md §J): one `failed` status fails the pipeline. So a failed or
//!    canceled step of a job that passed anyway (`herald run -- x || true`) or that may fail
//!    (`allow_failure`) is posted again as `success` with a description that begins `allowed: `;
//!    the newer status of the same name supersedes the older one, and the note shows it as an
//!    allowed failure, not a pass.

use std::collections::HashMap;
use std::time::Instant;

use crate::context::PublishContext;
use crate::gitlab::retry::{self, GaveUp};
use crate::gitlab::{self, Client, CommitStatus, StatusPost, StatusState};
use crate::pipeline::{AllowFailure, Pipeline};
use crate::report::joblog::strip_ansi;

use super::job_memory::StepRecord;
use super::status::{allowed, is_allowed};
use super::{explain, job_name_of_status};

/// How the job ended, as far as the command knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEnd {
    Passed,
    Failed,
    Canceled,
    Unknown,
}

/// Which statuses to settle.
pub enum Scope {
    /// This job's (`herald finalize`): its end from `CI_JOB_STATUS`, its steps' own records.
    ThisJob { end: JobEnd, records: Vec<StepRecord> },
    /// Every job of the pipeline that has ended (`herald note --final`).
    EndedJobs,
}

/// Settles herald's statuses in `scope`; returns how many it posted, or the line to print.
pub fn settle(
    client: &Client,
    context: &PublishContext,
    plan: Option<&Pipeline>,
    deadline: Instant,
    scope: &Scope,
) -> Result<usize, String> {
    let Some(pipeline_id) = context.pipeline_id else {
        return Err("herald: cannot close open steps: no pipeline id (CI_PIPELINE_ID or HERALD_PIPELINE_ID)".into());
    };
    let fail = |gave_up: GaveUp| {
        let why = match gave_up {
            GaveUp::Api(error) => explain(&error, context, "open steps"),
            other => other.to_string(),
        };
        format!("herald: cannot close open steps: {why}")
    };
    let me = retry::call(deadline, retry::sleep, |t| gitlab::current_user(client, t)).map_err(fail)?.id;
    let jobs = retry::call(deadline, retry::sleep, |t| gitlab::pipeline_jobs(client, &context.project, pipeline_id, t))
        .map_err(fail)?;
    let statuses = retry::call(deadline, retry::sleep, |t| {
        gitlab::pipeline_statuses(client, &context.project, &context.sha, pipeline_id, t)
    })
    .map_err(fail)?;
    let own_prefix = format!("{}/", context.status_prefix);
    let task_prefix = format!("{}/{}", context.status_prefix, context.job_name);
    let this_job = |status: &CommitStatus| match (&status.target_url, &context.job_url) {
        (Some(url), Some(ours)) => url == ours,
        _ => status.name == task_prefix || status.name.starts_with(&format!("{task_prefix} › ")),
    };
    let mut logs: HashMap<u64, Option<String>> = HashMap::new();
    let mut posted = 0;
    for status in &statuses {
        let mine = status.author.as_ref().is_none_or(|author| author.id == me);
        if !mine || !status.name.starts_with(&own_prefix) {
            continue;
        }
        // The job the status links to; else (no usable CI_JOB_URL, or a runner whose URL is not the
        // API's web_url) the newest job of the name its task gives: a retried job keeps its name.
        let by_url =
            status.target_url.as_ref().and_then(|url| jobs.iter().find(|job| job.web_url.as_ref() == Some(url)));
        let job = by_url.or_else(|| {
            job_name_of_status(&status.name, &context.status_prefix, plan)
                .and_then(|name| jobs.iter().filter(|job| job.name == name).max_by_key(|job| job.id))
        });
        let (end, may_fail, records) = match scope {
            Scope::ThisJob { end, records } if this_job(status) => {
                let configured = plan.and_then(|plan| plan.job(&context.job_name)).map(|job| &job.allow_failure);
                let may_fail = configured == Some(&AllowFailure::Yes) || job.is_some_and(|job| job.allow_failure);
                (*end, may_fail, Some(records))
            }
            Scope::ThisJob { .. } => continue,
            Scope::EndedJobs => match job.map(|job| (job.status.as_str(), job.allow_failure)) {
                Some(("success", may_fail)) => (JobEnd::Passed, may_fail, None),
                Some(("failed", may_fail)) => (JobEnd::Failed, may_fail, None),
                Some(("canceled", may_fail)) => (JobEnd::Canceled, may_fail, None),
                Some(("skipped", may_fail)) => (JobEnd::Unknown, may_fail, None),
                _ => continue, // still running, or not started: not ours to settle
            },
        };
        let open = matches!(status.status.as_str(), "running" | "pending" | "created");
        let (state, description) = if open {
            let recorded = records.and_then(|records| recorded_end(records, &status.name));
            let logged = || {
                let job_id = job.map(|job| job.id).or_else(|| context.job_id.as_deref()?.parse().ok())?;
                let log = logs.entry(job_id).or_insert_with(|| {
                    retry::call(deadline, retry::sleep, |t| gitlab::job_log(client, &context.project, job_id, t)).ok()
                });
                let (step, occurrence) = step_of(&status.name, &context.status_prefix, plan)?;
                from_log(log.as_deref()?, &step, occurrence)
            };
            recorded.or_else(logged).unwrap_or_else(|| without_evidence(end))
        } else {
            match status.status.as_str() {
                "failed" => (StatusState::Failed, status.description.clone().unwrap_or_default()),
                "canceled" => (StatusState::Canceled, status.description.clone().unwrap_or_default()),
                _ => continue, // success (or skipped): nothing to settle
            }
        };
        let verdict_allows = end == JobEnd::Passed || (end == JobEnd::Failed && may_fail);
        let (state, description) = if state != StatusState::Success && verdict_allows && !is_allowed(&description) {
            (StatusState::Success, allowed(&description))
        } else if open {
            (state, description)
        } else {
            continue; // a final state that stands
        };
        let post = StatusPost {
            project: &context.project,
            sha: &context.sha,
            pipeline_id: Some(pipeline_id),
            status_ref: context.status_ref.as_deref(),
            name: &status.name,
            state,
            description: &description,
            target_url: status.target_url.as_deref(),
        };
        retry::call(deadline, retry::sleep, |t| gitlab::post_status(client, &post, t)).map_err(fail)?;
        crate::output::say(&format!("herald: closed '{}' as {}: {description}", status.name, state.as_str()));
        posted += 1;
    }
    Ok(posted)
}

/// The final state the job's own record gives for a status name: the last step of that name
/// that ended.
fn recorded_end(records: &[StepRecord], name: &str) -> Option<(StatusState, String)> {
    let step = records.iter().rev().find(|step| step.name == name && step.ended.is_some())?;
    let (state, description) = step.ended.as_ref()?;
    let state = match state.as_str() {
        "success" => StatusState::Success,
        "failed" => StatusState::Failed,
        "canceled" => StatusState::Canceled,
        _ => return None,
    };
    Some((state, description.clone()))
}

/// The state that cannot make the pipeline's verdict worse than the job's own, for a step that
/// left no evidence of how it ended.
fn without_evidence(end: JobEnd) -> (StatusState, String) {
    match end {
        JobEnd::Passed => (StatusState::Success, "no result recorded; the job passed".into()),
        JobEnd::Canceled => (StatusState::Canceled, "canceled: the job was canceled".into()),
        JobEnd::Failed => (StatusState::Failed, "no result recorded; the job failed while the step was open".into()),
        JobEnd::Unknown => {
            (StatusState::Failed, "no result recorded; the job ended before the step reported one".into())
        }
    }
}

/// The step a status is for, as its summary line names it, and which of the job's steps of
/// that name it is: `herald/test › sh (2)` → (`sh`, 2). A job's single unnamed step has the
/// task's name only; its step comes from the plan.
pub(super) fn step_of(status_name: &str, prefix: &str, plan: Option<&Pipeline>) -> Option<(String, usize)> {
    let task_and_step = status_name.strip_prefix(prefix)?.strip_prefix('/')?;
    let step = match task_and_step.split_once(" › ") {
        Some((_, step)) => step.to_owned(),
        None => plan?.configured_task(task_and_step)?.steps.first()?.clone(),
    };
    if let Some((base, number)) = step.strip_suffix(')').and_then(|s| s.rsplit_once(" (")) {
        if let Ok(occurrence) = number.parse::<usize>() {
            return Some((base.to_owned(), occurrence));
        }
    }
    Some((step, 1))
}

/// herald's summary line for the `occurrence`-th step named `step` in a job log
/// (`✔ unit passed in 1.2s`, `✘ unit failed (exit 2) after 4.1s`), as state and description.
fn from_log(log: &str, step: &str, occurrence: usize) -> Option<(StatusState, String)> {
    let mut seen = 0;
    for line in log.lines() {
        // The summary follows the section's end marker on the same line, after a `\r`.
        let plain = strip_ansi(line.rsplit('\r').next().unwrap_or(line));
        let Some(rest) = plain.strip_prefix("✔ ").or_else(|| plain.strip_prefix("✘ ")) else { continue };
        let Some(outcome) = rest.strip_prefix(step).and_then(|r| r.strip_prefix(' ')) else { continue };
        let state = if outcome.starts_with("passed in ") {
            StatusState::Success
        } else if outcome.starts_with("canceled (") {
            StatusState::Canceled
        } else if ["failed (", "timed out after ", "killed by ", "could not start"]
            .iter()
            .any(|s| outcome.starts_with(s))
        {
            StatusState::Failed
        } else {
            continue;
        };
        seen += 1;
        if seen == occurrence {
            return Some((state, format!("{} (from the job log)", outcome.trim_end())));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "Running with gitlab-runner\n\
        \x1b[0Ksection_start:1:herald-unit-9\r\x1b[0K\x1b[36;1m▶ unit\x1b[0m\n\
        test ok\n\
        \x1b[0Ksection_end:2:herald-unit-9\r\x1b[0K\x1b[32;1m✔ unit passed in 1.2s\x1b[0m\n\
        \x1b[31;1m✘ unit test failed (exit 101) after 4.0s\x1b[0m\n\
        \x1b[31;1m✘ unit failed (exit 2) after 0.3s\x1b[0m\n";

    #[test]
    fn reads_a_steps_end_from_the_job_log() {
        assert_eq!(from_log(LOG, "unit", 1), Some((StatusState::Success, "passed in 1.2s (from the job log)".into())));
        assert_eq!(from_log(LOG, "unit", 2).map(|e| e.0), Some(StatusState::Failed));
        assert_eq!(from_log(LOG, "unit test", 1).map(|e| e.0), Some(StatusState::Failed));
        assert_eq!(from_log(LOG, "unit", 3), None);
        assert_eq!(from_log(LOG, "lint", 1), None);
    }

    #[test]
    fn names_the_step_of_a_status() {
        assert_eq!(step_of("herald/test › sh (2)", "herald", None), Some(("sh".into(), 2)));
        assert_eq!(step_of("herald/ci/lint › cargo test", "herald", None), Some(("cargo test".into(), 1)));
        assert_eq!(step_of("other/test › x", "herald", None), None);
    }

    #[test]
    fn without_evidence_the_verdict_is_never_made_worse() {
        assert_eq!(without_evidence(JobEnd::Passed).0, StatusState::Success);
        assert_eq!(without_evidence(JobEnd::Canceled).0, StatusState::Canceled);
        assert_eq!(without_evidence(JobEnd::Failed).0, StatusState::Failed);
    }
}
