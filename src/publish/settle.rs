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
use crate::gitlab::{self, Client, CommitStatus, PipelineJob, StatusPost};
use crate::pipeline::{AllowFailure, Pipeline};
use crate::report::joblog::strip_ansi;

use super::explain;
use super::job_memory::StepRecord;
use super::status::{FinalState, FinalStatus, StatusName};

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

/// Settles herald's statuses in `scope`; returns how many it posted, or the line to print (a
/// String: every caller prints it and stops, none tells one failure from another).
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
    let mut evidence = Evidence { client, context, plan, deadline, logs: HashMap::new() };
    let mut posted = 0;
    for status in &statuses {
        let mine = status.author.as_ref().is_none_or(|author| author.id == me);
        let Some(name) = StatusName::parse(&status.name, &context.status_prefix).filter(|_| mine) else { continue };
        // The job the status links to; else (no usable CI_JOB_URL, or a runner whose URL is not the
        // API's web_url) the newest job of the name its task gives: a retried job keeps its name.
        let by_url =
            status.target_url.as_ref().and_then(|url| jobs.iter().find(|job| job.web_url.as_ref() == Some(url)));
        let job = by_url.or_else(|| {
            let job_name = name.job_name(plan);
            jobs.iter().filter(|job| job.name == job_name).max_by_key(|job| job.id)
        });
        let this_job = match (&status.target_url, &context.job_url) {
            (Some(url), Some(ours)) => url == ours,
            _ => StatusName::is_of_task(&status.name, &context.status_prefix, &context.job_name),
        };
        let Some(judged) = judge(scope, context, plan, job, this_job) else { continue };
        let Some(closed) = evidence.closing(status, job, &judged) else { continue };
        let description = closed.description();
        let post = StatusPost {
            project: &context.project,
            sha: &context.sha,
            pipeline_id: Some(pipeline_id),
            status_ref: context.status_ref.as_deref(),
            name: &status.name,
            state: closed.posted_state(),
            description: &description,
            target_url: status.target_url.as_deref(),
        };
        retry::call(deadline, retry::sleep, |t| gitlab::post_status(client, &post, t)).map_err(fail)?;
        crate::output::say(&format!("herald: closed '{}' as {}: {description}", status.name, post.state.as_str()));
        posted += 1;
    }
    Ok(posted)
}

/// How a status's job ended, whether it may fail, and the job's own records (`herald finalize`).
struct Judged<'s> {
    end: JobEnd,
    may_fail: bool,
    records: Option<&'s [StepRecord]>,
}

/// How the job of a status in `scope` ended; None: not ours to settle (another job's, for
/// `herald finalize`; a job still running or not started, for `herald note --final`).
fn judge<'s>(
    scope: &'s Scope,
    context: &PublishContext,
    plan: Option<&Pipeline>,
    job: Option<&PipelineJob>,
    this_job: bool,
) -> Option<Judged<'s>> {
    Some(match scope {
        Scope::ThisJob { end, records } if this_job => {
            let configured = plan.and_then(|plan| plan.job(&context.job_name)).map(|job| &job.allow_failure);
            let may_fail = configured == Some(&AllowFailure::Yes) || job.is_some_and(|job| job.allow_failure);
            Judged { end: *end, may_fail, records: Some(records) }
        }
        Scope::ThisJob { .. } => return None,
        Scope::EndedJobs => {
            let job = job?;
            let end = match job.status.as_str() {
                "success" => JobEnd::Passed,
                "failed" => JobEnd::Failed,
                "canceled" => JobEnd::Canceled,
                "skipped" => JobEnd::Unknown,
                _ => return None,
            };
            Judged { end, may_fail: job.allow_failure, records: None }
        }
    })
}

/// Where the evidence of how a step ended is read from: job memory, then the job's log (read
/// once per job).
struct Evidence<'a> {
    client: &'a Client,
    context: &'a PublishContext,
    plan: Option<&'a Pipeline>,
    deadline: Instant,
    logs: HashMap<u64, Option<String>>,
}

impl Evidence<'_> {
    /// The final status `status` is to be posted in, if it needs one: an open one is closed from
    /// evidence; a failed or canceled one in a job whose verdict allows it becomes an allowed
    /// failure; a final state that stands needs nothing.
    fn closing(&mut self, status: &CommitStatus, job: Option<&PipelineJob>, judged: &Judged) -> Option<FinalStatus> {
        let open = matches!(status.status.as_str(), "running" | "pending" | "created");
        let found = if open {
            let recorded = judged.records.and_then(|records| recorded_end(records, &status.name));
            recorded.or_else(|| self.logged(status, job)).unwrap_or_else(|| without_evidence(judged.end))
        } else {
            // Success (or skipped): nothing to settle.
            FinalStatus::read(status)
                .filter(|found| matches!(found.state, FinalState::Failed | FinalState::Canceled))?
        };
        let verdict_allows = judged.end == JobEnd::Passed || (judged.end == JobEnd::Failed && judged.may_fail);
        if verdict_allows && matches!(found.state, FinalState::Failed | FinalState::Canceled) {
            Some(found.allow())
        } else {
            open.then_some(found)
        }
    }

    /// herald's summary line for the step in its job's log.
    fn logged(&mut self, status: &CommitStatus, job: Option<&PipelineJob>) -> Option<FinalStatus> {
        let job_id = job.map(|job| job.id).or_else(|| self.context.job_id.as_deref()?.parse().ok())?;
        let (client, project, deadline) = (self.client, &self.context.project, self.deadline);
        let log = self.logs.entry(job_id).or_insert_with(|| {
            retry::call(deadline, retry::sleep, |t| gitlab::job_log(client, project, job_id, t)).ok()
        });
        let name = StatusName::parse(&status.name, &self.context.status_prefix)?;
        let (step, occurrence) = name.step_of(self.plan)?;
        from_log(log.as_deref()?, &step, occurrence)
    }
}

/// The final state the job's own record gives for a status name: the last step of that name
/// that ended.
fn recorded_end(records: &[StepRecord], name: &str) -> Option<FinalStatus> {
    let step = records.iter().rev().find(|step| step.name == name && step.ended.is_some())?;
    let (state, description) = step.ended.as_ref()?;
    FinalStatus::from_posted(state, description)
}

/// The state that cannot make the pipeline's verdict worse than the job's own, for a step that
/// left no evidence of how it ended.
fn without_evidence(end: JobEnd) -> FinalStatus {
    match end {
        JobEnd::Passed => FinalStatus::new(FinalState::Passed, "no result recorded; the job passed"),
        JobEnd::Canceled => FinalStatus::new(FinalState::Canceled, "canceled: the job was canceled"),
        JobEnd::Failed => {
            FinalStatus::new(FinalState::Failed, "no result recorded; the job failed while the step was open")
        }
        JobEnd::Unknown => {
            FinalStatus::new(FinalState::Failed, "no result recorded; the job ended before the step reported one")
        }
    }
}

/// herald's summary line for the `occurrence`-th step named `step` in a job log
/// (`✔ unit passed in 1.2s`, `✘ unit failed (exit 2) after 4.1s`), as state and description.
fn from_log(log: &str, step: &str, occurrence: usize) -> Option<FinalStatus> {
    let mut seen = 0;
    for line in log.lines() {
        // The summary follows the section's end marker on the same line, after a `\r`.
        let plain = strip_ansi(line.rsplit('\r').next().unwrap_or(line));
        let Some(rest) = plain.strip_prefix("✔ ").or_else(|| plain.strip_prefix("✘ ")) else { continue };
        let Some(outcome) = rest.strip_prefix(step).and_then(|r| r.strip_prefix(' ')) else { continue };
        let state = if outcome.starts_with("passed in ") {
            FinalState::Passed
        } else if outcome.starts_with("canceled (") {
            FinalState::Canceled
        } else if ["failed (", "timed out after ", "killed by ", "could not start"]
            .iter()
            .any(|s| outcome.starts_with(s))
        {
            FinalState::Failed
        } else {
            continue;
        };
        seen += 1;
        if seen == occurrence {
            return Some(FinalStatus::new(state, &format!("{} (from the job log)", outcome.trim_end())));
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
        let passed = FinalStatus::new(FinalState::Passed, "passed in 1.2s (from the job log)");
        assert_eq!(from_log(LOG, "unit", 1), Some(passed));
        assert_eq!(from_log(LOG, "unit", 2).map(|e| e.state), Some(FinalState::Failed));
        assert_eq!(from_log(LOG, "unit test", 1).map(|e| e.state), Some(FinalState::Failed));
        assert_eq!(from_log(LOG, "unit", 3), None);
        assert_eq!(from_log(LOG, "lint", 1), None);
    }

    #[test]
    fn without_evidence_the_verdict_is_never_made_worse() {
        assert_eq!(without_evidence(JobEnd::Passed).state, FinalState::Passed);
        assert_eq!(without_evidence(JobEnd::Canceled).state, FinalState::Canceled);
        assert_eq!(without_evidence(JobEnd::Failed).state, FinalState::Failed);
    }
}
