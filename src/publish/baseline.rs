//! "Is it me?": the target branch's pipeline this one's failures are compared with
//! (docs/design.md §6). The note says of each failed step or job whether it also fails on the
//! target branch, or is new; of steps much slower than there, that they are.
//!
//! Which pipeline: the one of the merge request's diff base (`CI_MERGE_REQUEST_DIFF_BASE_SHA`,
//! the target-branch commit the MR's changes are computed against) when it has finished, since it
//! is exactly what the change was made on; else the target branch's latest finished pipeline (the
//! base has none: it never ran, or is still running). Never a running pipeline: its failures are
//! not known yet.
//!
//! Read once per pipeline, by the writer that first renders the note in full, and carried in the
//! note's hidden block (publish/note/carried.rs) for every later writer: at most `MOST_REQUESTS`
//! requests, one try each, within `BUDGET`. Anything that goes wrong (no target branch, no
//! finished pipeline, a 403 of a token without access, a timeout) means no baseline: the note
//! compares nothing and says nothing about it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::gitlab::{self, parse_iso8601, ApiError, Client, CommitStatus, PipelineJob};
use crate::report::note::BaselineRef;

/// The most requests a baseline read makes: the base's pipeline, the latest finished one, its
/// statuses and its jobs (one page each).
pub const MOST_REQUESTS: usize = 4;
/// The longest the read may take, all requests together: what a writer's render may spend on it.
pub const BUDGET: Duration = Duration::from_secs(3);

/// What the note keeps of the baseline pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub branch: String,
    pub pipeline: u64,
    #[serde(default)]
    pub web_url: Option<String>,
    /// herald's statuses by name (the latest of each): their state, and seconds taken if known.
    #[serde(default)]
    pub steps: BTreeMap<String, (String, Option<f64>)>,
    /// CI jobs by name (the latest attempt of each): their state.
    #[serde(default)]
    pub jobs: BTreeMap<String, String>,
}

impl Baseline {
    pub fn reference(&self) -> BaselineRef {
        BaselineRef { branch: self.branch.clone(), pipeline: self.pipeline, web_url: self.web_url.clone() }
    }

    /// From a pipeline's statuses (newest first or not: the highest id of a name wins) and jobs.
    pub fn of(
        branch: &str,
        pipeline: &gitlab::ProjectPipeline,
        statuses: &[CommitStatus],
        jobs: &[PipelineJob],
        prefix: &str,
    ) -> Baseline {
        let own_prefix = format!("{prefix}/");
        let mut latest: BTreeMap<&str, &CommitStatus> = BTreeMap::new();
        for status in statuses.iter().filter(|s| s.name.starts_with(&own_prefix)) {
            let newer = latest.get(status.name.as_str()).is_none_or(|kept| kept.id < status.id);
            if newer {
                latest.insert(&status.name, status);
            }
        }
        let steps = latest
            .into_iter()
            .map(|(name, status)| (name.to_owned(), (status.status.clone(), seconds_taken(status))))
            .collect();
        let mut by_id: Vec<&PipelineJob> = jobs.iter().collect();
        by_id.sort_by_key(|job| job.id);
        let jobs = by_id.into_iter().map(|job| (job.name.clone(), job.status.clone())).collect();
        Baseline { branch: branch.to_owned(), pipeline: pipeline.id, web_url: pipeline.web_url.clone(), steps, jobs }
    }

    /// How the step of herald's status `name` ended here; None without a final row of that name.
    pub fn step(&self, name: &str) -> Option<(&str, Option<f64>)> {
        self.steps.get(name).map(|(state, took)| (state.as_str(), *took))
    }

    pub fn job(&self, name: &str) -> Option<&str> {
        self.jobs.get(name).map(String::as_str)
    }
}

/// Seconds a step took: from herald's own description (`passed in 4m10s`, `failed (exit 2) after
/// 4.1s`), measured by the step's supervisor; else from GitLab's start and end times.
pub fn seconds_taken(status: &CommitStatus) -> Option<f64> {
    let described = status.description.as_deref().and_then(|description| {
        let description = super::status::outcome_said(description);
        let (_, rest) = description.split_once(" in ").or_else(|| description.split_once(" after "))?;
        let took = rest.split([' ', ':', '(', '·']).next()?;
        crate::duration::parse_duration(took).ok().map(|d| d.as_secs_f64())
    });
    described.or_else(|| {
        let started = parse_iso8601(status.started_at.as_deref()?)?;
        let finished = parse_iso8601(status.finished_at.as_deref()?)?;
        (finished >= started).then_some(finished - started)
    })
}

/// Reads the baseline: at most `MOST_REQUESTS` requests, each tried once, all before `deadline`.
/// Ok(None) when the target branch has no finished pipeline.
pub fn read(
    client: &Client,
    project: &str,
    branch: &str,
    base_sha: Option<&str>,
    prefix: &str,
    deadline: Instant,
) -> Result<Option<Baseline>, ApiError> {
    let left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(ApiError::Transport { url: String::new(), reason: "no time left for the baseline".into() })
        } else {
            Ok(left.min(gitlab::retry::REQUEST_TIMEOUT))
        }
    };
    let at_base = match base_sha {
        Some(sha) => gitlab::latest_finished_pipeline(client, project, branch, Some(sha), left()?)?,
        None => None,
    };
    let pipeline = match at_base {
        Some(pipeline) => pipeline,
        None => match gitlab::latest_finished_pipeline(client, project, branch, None, left()?)? {
            Some(pipeline) => pipeline,
            None => return Ok(None),
        },
    };
    let statuses = gitlab::pipeline_statuses_first_page(client, project, &pipeline.sha, pipeline.id, left()?)?;
    let jobs = gitlab::pipeline_jobs_first_page(client, project, pipeline.id, left()?)?;
    Ok(Some(Baseline::of(branch, &pipeline, &statuses, &jobs, prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(id: u64, name: &str, state: &str, description: &str) -> CommitStatus {
        CommitStatus {
            id,
            name: name.into(),
            status: state.into(),
            description: Some(description.into()),
            target_url: None,
            pipeline_id: Some(9),
            author: None,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn durations_come_from_the_description_first() {
        assert_eq!(seconds_taken(&status(1, "herald/t", "success", "passed in 4m10s")), Some(250.0));
        assert_eq!(seconds_taken(&status(1, "herald/t", "failed", "failed (exit 2) after 4.1s")), Some(4.1));
        assert_eq!(seconds_taken(&status(1, "herald/t", "failed", "failed (exit 2) after 1m55s: boom")), Some(115.0));
        let mut timed = status(1, "herald/t", "success", "ok");
        timed.started_at = Some("2026-01-01T00:00:00Z".into());
        timed.finished_at = Some("2026-01-01T00:01:30Z".into());
        assert_eq!(seconds_taken(&timed), Some(90.0));
    }

    #[test]
    fn the_latest_status_of_a_name_wins_and_others_are_ignored() {
        let pipeline = gitlab::ProjectPipeline { id: 9, sha: "abc".into(), status: "failed".into(), web_url: None };
        let statuses = [
            status(3, "herald/test › unit", "success", "passed in 1.0s"),
            status(2, "herald/test › unit", "failed", "failed (exit 1) after 1.0s"),
            status(4, "other/check", "failed", "x"),
        ];
        let baseline = Baseline::of("main", &pipeline, &statuses, &[], "herald");
        assert_eq!(baseline.step("herald/test › unit"), Some(("success", Some(1.0))));
        assert_eq!(baseline.step("other/check"), None);
    }
}
