//! What the note shows, built from GitLab's answers and the configuration's plan (steps not
//! started yet, task names back to jobs, stages). Pure, so that every writer, given the same
//! state, renders the same note (report/note/ renders it).

use std::collections::BTreeMap;

use crate::gitlab::{parse_iso8601, CommitStatus, PipelineJob};
use crate::pipeline::Pipeline;
use crate::report::note::{
    headline, is_slower, JobView, NoteView, OnTarget, PastPipeline, PipelineView, StepState, StepView,
};

use crate::publish::baseline::{seconds_taken, Baseline};
use crate::publish::status::{outcome_said, StatusName};

/// Everything a render is made from.
pub struct Sources<'a> {
    pub pipeline_id: u64,
    pub sha: &'a str,
    /// The statuses' name prefix (`herald`).
    pub prefix: &'a str,
    /// The pipeline's jobs, earlier attempts included (`pipeline_jobs_with_retries`).
    pub jobs: &'a [PipelineJob],
    /// The pipeline's external statuses, latest of each name.
    pub statuses: &'a [CommitStatus],
    pub plan: Option<&'a Pipeline>,
    /// The merge request's earlier pipelines, oldest first.
    pub history: &'a [PastPipeline],
    /// Failure excerpts by status id (from the job logs, render.rs).
    pub excerpts: &'a BTreeMap<u64, Vec<String>>,
    /// The target branch's pipeline to compare with (publish/baseline.rs), if any.
    pub baseline: Option<&'a Baseline>,
    /// Step summaries by status name (report/summary.rs; carried.rs).
    pub summaries: &'a BTreeMap<String, String>,
}

/// The project's web address from one of its job URLs: `https://host/group/app/-/jobs/5` →
/// `https://host/group/app`, for the pipeline, commit and merge request links.
pub fn project_url_of_job(url: &str) -> Option<&str> {
    Some(&url[..url.rfind("/-/jobs/")?])
}

/// The job id a job URL (`…/-/jobs/123`, a status's `target_url`) names.
pub fn job_id_of_url(url: &str) -> Option<u64> {
    url.rsplit_once("/-/jobs/")?.1.split(['/', '?', '#']).next()?.parse().ok()
}

/// What the note shows for the pipeline as `sources` have it: its jobs by stage (the latest
/// attempt of each), herald's steps in each, the steps still planned, and the pipeline's line.
pub fn build_view(sources: &Sources) -> NoteView {
    // The latest attempt of each job name; the earlier ones are its attempts.
    let mut all: Vec<&PipelineJob> = sources.jobs.iter().collect();
    all.sort_by_key(|job| job.id);
    let mut latest: Vec<&PipelineJob> = Vec::new();
    for job in &all {
        latest.retain(|kept| kept.name != job.name);
        latest.push(job);
    }
    latest.sort_by_key(|job| (stage_rank(&all, &job.stage), job.id));
    let mut job_views: Vec<JobView> = latest.iter().map(|job| job_view(job, &all, sources.baseline)).collect();

    let mut ours: Vec<(&CommitStatus, StatusName)> = sources
        .statuses
        .iter()
        .filter_map(|status| Some((status, StatusName::parse(&status.name, sources.prefix)?)))
        .collect();
    ours.sort_by_key(|(status, _)| status.id);
    let mut unattached = Vec::new();
    for (status, name) in ours {
        // The job is the one the status links to (CI_JOB_URL), else the one its name names.
        let by_url =
            status.target_url.as_ref().and_then(|url| job_views.iter().position(|j| j.web_url.as_ref() == Some(url)));
        let job_name = name.job_name(sources.plan);
        let index = by_url.or_else(|| job_views.iter().position(|j| j.name == job_name));
        // A step that ended badly in an earlier attempt of a job GitLab is running again is
        // retrying, not failed, until the retry ends (its own statuses then replace it).
        let earlier_attempt = by_url.is_none()
            && status
                .target_url
                .as_deref()
                .and_then(job_id_of_url)
                .is_some_and(|id| all.iter().any(|job| job.id == id) && latest.iter().all(|job| job.id != id));
        let retrying = earlier_attempt && index.is_some_and(|index| is_active(&job_views[index].status));
        let step = step_view(sources, status, name, retrying);
        match index {
            Some(index) => job_views[index].steps.push(step),
            None => unattached.push(step),
        }
    }

    // The steps the configuration plans that have not started: still to come while the job
    // runs, not run once it is over, so that a pipeline's total of steps never shrinks.
    if let Some(plan) = sources.plan {
        for view in &mut job_views {
            if let Some(job) = plan.configured(&view.name) {
                let started: Vec<&str> = view.steps.iter().map(|step| step.name.as_str()).collect();
                view.planned = job.steps.iter().filter(|step| !started.contains(&step.as_str())).cloned().collect();
            }
        }
    }

    // A `.post` job without steps is herald's own note job (or a cleanup): it would only ever show
    // as "running", since it is running while it writes the note.
    let post_jobs: Vec<u64> = latest.iter().filter(|job| job.stage == ".post").map(|job| job.id).collect();
    job_views.retain(|view| !(post_jobs.contains(&view.id) && view.steps.is_empty() && view.planned.is_empty()));

    // A failed status of herald's fails the pipeline (gitlab.md §J), whatever its job did.
    let failed_step =
        job_views.iter().flat_map(|job| &job.steps).chain(&unattached).any(|s| s.state == StepState::Failed);
    NoteView {
        pipeline: pipeline_view(sources, &latest, failed_step),
        jobs: job_views,
        unattached,
        history: sources.history.to_vec(),
        baseline: sources.baseline.map(Baseline::reference),
    }
}

/// A job's row, its steps still to be added.
fn job_view(job: &PipelineJob, all: &[&PipelineJob], baseline: Option<&Baseline>) -> JobView {
    JobView {
        id: job.id,
        name: job.name.clone(),
        stage: job.stage.clone(),
        status: job.status.clone(),
        web_url: job.web_url.clone(),
        allow_failure: job.allow_failure,
        steps: Vec::new(),
        planned: Vec::new(),
        attempts: all
            .iter()
            .filter(|attempt| attempt.name == job.name && attempt.id < job.id)
            .map(|attempt| (attempt.status.clone(), attempt.web_url.clone()))
            .collect(),
        on_target: baseline.and_then(|baseline| on_target(baseline.job(&job.name)?)),
    }
}

/// The row of one of herald's statuses (`name`, parsed); `retrying`: a step that ended badly in
/// an earlier attempt of a job GitLab is running again.
fn step_view(sources: &Sources, status: &CommitStatus, name: StatusName, retrying: bool) -> StepView {
    let planned = sources.plan.and_then(|plan| plan.configured_task(name.task));
    // `<prefix>/<task>` alone is a job's single step: named as the plan names it.
    let step_name = match (name.step, planned) {
        (Some(step), _) => step.to_owned(),
        (None, Some(job)) if job.steps.len() == 1 => job.steps[0].clone(),
        (None, _) => name.task.to_owned(),
    };
    let description = status.description.clone().unwrap_or_else(|| status.status.clone());
    let state = match StepState::of_step(&status.status, &description) {
        StepState::Failed | StepState::Canceled if retrying => StepState::Retrying,
        state => state,
    };
    let excerpt = match state {
        StepState::Failed => match sources.excerpts.get(&status.id) {
            Some(excerpt) if !excerpt.is_empty() => excerpt.clone(),
            _ => excerpt_of_description(&description),
        },
        _ => Vec::new(),
    };
    // The same status name in the baseline: a renamed step has none, and is not compared.
    let before = sources.baseline.and_then(|baseline| baseline.step(&status.name));
    let slower = match (before, state) {
        (Some(("success" | "failed", Some(then))), StepState::Passed | StepState::Failed | StepState::Allowed) => {
            seconds_taken(status).filter(|now| is_slower(*now, then)).map(|now| (now, then))
        }
        _ => None,
    };
    StepView {
        name: step_name,
        state,
        description: headline(&description).to_owned(),
        started_at: status.started_at.as_deref().and_then(parse_iso8601),
        excerpt,
        on_target: before.and_then(|(state, _)| on_target(state)),
        slower,
        summary: sources.summaries.get(&status.name).cloned(),
    }
}

/// The pipeline's line: its state as GitLab composes it from the `latest` jobs (failed when a
/// step of herald's failed), its links and times.
fn pipeline_view(sources: &Sources, latest: &[&PipelineJob], failed_step: bool) -> PipelineView {
    let Sources { pipeline_id, sha, prefix, .. } = *sources;
    let base = latest.iter().find_map(|job| project_url_of_job(job.web_url.as_deref()?));
    let counted: Vec<&PipelineJob> = latest.iter().copied().filter(|job| job.stage != ".post").collect();
    let mut status = pipeline_status(&counted);
    if status == "success" && failed_step {
        status = "failed".into();
    }
    let times = |pick: fn(&PipelineJob) -> Option<&String>| -> Vec<f64> {
        counted.iter().filter_map(|job| pick(job)).filter_map(|t| parse_iso8601(t)).collect()
    };
    let started = times(|job| job.started_at.as_ref());
    let finished = times(|job| job.finished_at.as_ref());
    let own_prefix = format!("{prefix}/");
    let status_times = sources
        .statuses
        .iter()
        .filter(|s| s.name.starts_with(&own_prefix))
        .flat_map(|s| [s.started_at.as_deref(), s.finished_at.as_deref()])
        .flatten()
        .filter_map(parse_iso8601);
    let over = !matches!(status.as_str(), "running" | "pending");
    PipelineView {
        id: pipeline_id,
        web_url: base.as_ref().map(|base| format!("{base}/-/pipelines/{pipeline_id}")),
        commit_url: base.as_ref().map(|base| format!("{base}/-/commit/{sha}")),
        sha: sha.to_owned(),
        started_at: started.iter().copied().reduce(f64::min),
        finished_at: if over { finished.iter().copied().reduce(f64::max) } else { None },
        updated_at: started.iter().chain(&finished).copied().chain(status_times).reduce(f64::max),
        status,
    }
}

/// What a baseline row's state says to compare with: failed, or passed (an allowed failure is
/// posted as `success`, gitlab.md §J); nothing for rows that did not end either way.
fn on_target(state: &str) -> Option<OnTarget> {
    match state {
        "failed" => Some(OnTarget::Failed),
        "success" => Some(OnTarget::Passed),
        _ => None,
    }
}

/// Whether a job's GitLab status says it will still run or is running.
fn is_active(status: &str) -> bool {
    matches!(status, "created" | "pending" | "running" | "waiting_for_resource" | "preparing" | "waiting_for_callback")
}

/// Where a stage comes in the pipeline: GitLab creates a pipeline's jobs stage by stage, so the
/// stage of a lower job id comes first.
fn stage_rank(jobs: &[&PipelineJob], stage: &str) -> u64 {
    jobs.iter().filter(|job| job.stage == stage).map(|job| job.id).min().unwrap_or(u64::MAX)
}

/// The excerpt a status description carries (`HERALD_FAILURE_TAIL`: `failed (exit 2) after
/// 4.1s: line ⏎ line`), as lines: the fallback when the job log has none yet.
fn excerpt_of_description(description: &str) -> Vec<String> {
    let description = outcome_said(description);
    match description.split_once(": ") {
        Some((_, tail)) => tail.split(" ⏎ ").map(str::to_owned).collect(),
        None => Vec::new(),
    }
}

/// The pipeline's state from its jobs, as GitLab composes it. Jobs of the `.post` stage are left
/// out: herald's own note job runs there, and would keep the pipeline "running" in its own note.
pub fn pipeline_status(counted: &[&PipelineJob]) -> String {
    let any = |statuses: &[&str]| counted.iter().any(|job| statuses.contains(&job.status.as_str()));
    let status = if any(&["running"]) {
        "running"
    } else if any(&["pending", "created", "waiting_for_resource", "preparing", "scheduled"]) {
        if counted.iter().any(|job| job.status != "created" && job.status != "pending") {
            "running"
        } else {
            "pending"
        }
    } else if counted.iter().any(|job| job.status == "failed" && !job.allow_failure) {
        "failed"
    } else if any(&["canceled", "canceling"]) {
        "canceled"
    } else if any(&["manual"]) && !any(&["success", "failed"]) {
        "manual"
    } else {
        "success"
    };
    status.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, name: &str, stage: &str, status: &str) -> PipelineJob {
        PipelineJob {
            id,
            name: name.into(),
            stage: stage.into(),
            status: status.into(),
            web_url: Some(format!("https://gitlab.example.com/g/p/-/jobs/{id}")),
            allow_failure: false,
            started_at: None,
            finished_at: None,
        }
    }

    fn status(id: u64, name: &str, state: &str, job: Option<u64>) -> CommitStatus {
        CommitStatus {
            id,
            name: name.into(),
            status: state.into(),
            description: Some(format!("{state} description")),
            target_url: job.map(|j| format!("https://gitlab.example.com/g/p/-/jobs/{j}")),
            pipeline_id: Some(9),
            author: None,
            started_at: None,
            finished_at: None,
        }
    }

    fn view(jobs: &[PipelineJob], statuses: &[CommitStatus]) -> NoteView {
        build_view(&Sources {
            pipeline_id: 9,
            sha: "abc",
            prefix: "herald",
            jobs,
            statuses,
            plan: None,
            history: &[],
            excerpts: &BTreeMap::new(),
            baseline: None,
            summaries: &BTreeMap::new(),
        })
    }

    #[test]
    fn statuses_go_to_their_jobs_in_order() {
        let jobs = [job(2, "test", "test", "running"), job(1, "lint", "test", "success")];
        let statuses = [
            status(12, "herald/test › integration", "running", Some(2)),
            status(10, "herald/test › unit", "success", Some(2)),
            status(11, "herald/lint", "success", None),
            status(13, "herald/gone › x", "failed", Some(99)),
            status(14, "other-tool/check", "success", None),
        ];
        let view = view(&jobs, &statuses);
        assert_eq!(view.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["lint", "test"], "pipeline order");
        assert_eq!(view.jobs[0].steps[0].name, "lint", "a job's single step by name");
        let test_steps: Vec<&str> = view.jobs[1].steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(test_steps, ["unit", "integration"], "in the order they started");
        assert_eq!(view.unattached.len(), 1, "a status of a job not in this pipeline");
        assert_eq!(view.pipeline.web_url.as_deref(), Some("https://gitlab.example.com/g/p/-/pipelines/9"));
        assert_eq!(view.pipeline.commit_url.as_deref(), Some("https://gitlab.example.com/g/p/-/commit/abc"));
        assert_eq!(view.pipeline.status, "running");
    }

    #[test]
    fn jobs_follow_their_stages_and_keep_their_earlier_attempts() {
        let jobs = [
            job(1, "build", "build", "success"),
            job(2, "unit", "test", "failed"),
            job(3, "lint", "build", "success"),
            job(4, "unit", "test", "success"),
        ];
        let view = view(&jobs, &[]);
        let names: Vec<&str> = view.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["build", "lint", "unit"], "stage order, then job id; the latest attempt only");
        assert_eq!(
            view.jobs[2].attempts,
            [("failed".to_owned(), Some("https://gitlab.example.com/g/p/-/jobs/2".to_owned()))]
        );
        assert_eq!(view.pipeline.status, "success", "the retry passed");
    }

    #[test]
    fn the_post_stage_does_not_keep_the_pipeline_running() {
        let jobs = [job(1, "test", "test", "failed"), job(2, "herald-note", ".post", "running")];
        assert_eq!(view(&jobs, &[]).pipeline.status, "failed");
        let jobs = [job(1, "test", "test", "success"), job(2, "herald-note", ".post", "running")];
        let seen = view(&jobs, &[]);
        assert_eq!(seen.pipeline.status, "success");
        assert_eq!(seen.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["test"], "not the note job");
        let mut allowed = job(1, "flaky", "test", "failed");
        allowed.allow_failure = true;
        assert_eq!(view(&[allowed], &[]).pipeline.status, "success");
        // A failed step fails the pipeline even in a job that passed (`|| true`, not settled yet).
        let statuses = [status(5, "herald/test › unit", "failed", Some(1))];
        assert_eq!(view(&[job(1, "test", "test", "success")], &statuses).pipeline.status, "failed");
    }

    #[test]
    fn a_failed_step_of_an_earlier_attempt_is_retrying_while_the_retry_runs() {
        let statuses =
            [status(5, "herald/unit › test", "failed", Some(1)), status(6, "herald/unit › lint", "failed", Some(1))];
        for (retry, expected) in
            [("pending", StepState::Retrying), ("running", StepState::Retrying), ("failed", StepState::Failed)]
        {
            let jobs = [job(1, "unit", "test", "failed"), job(2, "unit", "test", retry)];
            let seen = view(&jobs, &statuses);
            assert_eq!(seen.jobs.len(), 1, "the latest attempt only");
            let states: Vec<StepState> = seen.jobs[0].steps.iter().map(|s| s.state).collect();
            assert_eq!(states, [expected, expected], "retry {retry}");
        }
        let seen = view(&[job(1, "unit", "test", "failed"), job(2, "unit", "test", "running")], &statuses);
        assert_eq!(seen.pipeline.status, "running", "not failed while the retry runs");
        let text = crate::report::note::render(&seen);
        assert!(text.contains("2 retrying") && !text.contains("failed ·"), "{text}");
    }

    #[test]
    fn job_urls_name_their_job() {
        assert_eq!(job_id_of_url("https://gitlab.example.com/g/p/-/jobs/123"), Some(123));
        assert_eq!(job_id_of_url("https://gitlab.example.com/g/p/-/jobs/123#L5"), Some(123));
        assert_eq!(job_id_of_url("https://example.com/x"), None);
    }
}
