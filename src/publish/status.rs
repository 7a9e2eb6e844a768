//! The grammar of herald's commit statuses, built and parsed in this one place (gitlab.md §A.1:
//! 255 characters for `description` and `target_url`; `name` is kept ≤ 255 too):
//!
//! - a status's **name**, `<prefix>/<task> › <step>` (`herald/test › sh (2)`), or
//!   `<prefix>/<task>` for the single unnamed step of a job; a repeated step's number is the
//!   step's own grammar (`step::numbered_name`);
//! - a step's **final state** (`FinalStatus`): decided once, when the step ends, from its outcome
//!   (and, when it failed, whether its job may fail: `FinalStatus::allow`), carried as a typed
//!   value to the post, the job memory and the note; posted as GitLab's state and a description,
//!   an allowed failure as `success` with a description that begins `allowed: ` (gitlab.md §J).
//!
//! Statuses read back from GitLab (other jobs' statuses, open statuses to settle) can only be
//! understood from their name and description: `StatusName::parse` and `FinalStatus::read` are
//! the inverse of what is built here.

use crate::gitlab::{CommitStatus, StatusState};
use crate::pipeline::Pipeline;
use crate::report::cut_to_bytes;
use crate::report::excerpt::{anchored, fold_tail};
use crate::step::{split_occurrence, StepName, StepOutcome, Verdict, ALLOWED};

const LIMIT: usize = 255;
/// Between a status name's task and its step.
const STEP_SEPARATOR: &str = " › ";

/// `<prefix>/<task> › <step>`, or `<prefix>/<task>` for the single unnamed step of a job
/// (`alone`). The task is `<origin>/<job>` for a job from an include, the job's name otherwise
/// (and when the configuration cannot be read). Names longer than GitLab allows are cut and end
/// in a short hash of the full name, so two long names stay distinct and stable.
pub fn status_name(prefix: &str, task: &str, step: &StepName, alone: bool) -> String {
    let full = if alone { format!("{prefix}/{task}") } else { format!("{prefix}/{task}{STEP_SEPARATOR}{step}") };
    if full.len() <= LIMIT {
        return full;
    }
    // One hash for values that must be the same in every herald build (job_memory's).
    let suffix = format!("~{:08x}", crate::persist::stable_hash(full.as_bytes()) as u32);
    format!("{}{suffix}", cut_to_bytes(&full, LIMIT - suffix.len()))
}

/// A status name of herald's, read back: its task and, unless it is a job's single unnamed
/// step, its step (`lint/lint › fmt` → `lint/lint`, `fmt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusName<'a> {
    pub task: &'a str,
    pub step: Option<&'a str>,
}

impl<'a> StatusName<'a> {
    /// None for a name that is not under `prefix` (another tool's, or another prefix's).
    pub fn parse(name: &'a str, prefix: &str) -> Option<StatusName<'a>> {
        let task_and_step = name.strip_prefix(prefix)?.strip_prefix('/')?;
        let (task, step) = match task_and_step.split_once(STEP_SEPARATOR) {
            Some((task, step)) => (task, Some(step)),
            None => (task_and_step, None),
        };
        Some(StatusName { task, step })
    }

    /// Whether the status is one of `task`'s: exactly its name, or one of its steps. Compared on
    /// the whole task, not on `self.task`, since a job's name may itself hold the separator.
    pub fn is_of_task(name: &str, prefix: &str, task: &str) -> bool {
        let own = format!("{prefix}/{task}");
        name == own || name.strip_prefix(&own).is_some_and(|rest| rest.starts_with(STEP_SEPARATOR))
    }

    /// The name of the job the status belongs to: the task's job in the plan (`ci/lint` →
    /// `lint`), else the task itself. For statuses without a job link (`target_url`).
    pub fn job_name(&self, plan: Option<&'a Pipeline>) -> &'a str {
        let planned = plan.and_then(|plan| plan.configured_task(self.task));
        planned.map_or(self.task, |job| job.name.as_str())
    }

    /// The step as its summary line names it, and which of the job's steps of that name it is:
    /// `herald/test › sh (2)` → (`sh`, 2). A job's single unnamed step has the task's name
    /// only; its step comes from the plan.
    pub fn step_of(&self, plan: Option<&Pipeline>) -> Option<(String, usize)> {
        let step = match self.step {
            Some(step) => step,
            None => plan?.configured_task(self.task)?.steps.first()?,
        };
        let (base, occurrence) = split_occurrence(step);
        Some((base.to_owned(), occurrence))
    }
}

/// How a step ended, as its status says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalState {
    Passed,
    Failed,
    Canceled,
    /// Failed or canceled in a job that may fail (or passed anyway): posted as `success`, so
    /// that it does not fail the pipeline GitLab lets pass.
    Allowed,
}

/// A step's final state and its description (without the `allowed: ` that an allowed failure's
/// description begins with when posted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalStatus {
    pub state: FinalState,
    said: String,
}

impl FinalStatus {
    /// The final status of a finished step. A step that did not pass carries as much of its
    /// (masked) output excerpt as fits, anchored on the error (`report::excerpt`): `failed (exit
    /// 1) after 2.0s: error: x ⏎ aborting`. `also` follows the outcome (`· 4 findings`).
    pub fn of(outcome: &StepOutcome, excerpt: &[String], also: Option<&str>) -> FinalStatus {
        let state = match outcome.verdict() {
            Verdict::Passed => FinalState::Passed,
            Verdict::Failed => FinalState::Failed,
            Verdict::Canceled => FinalState::Canceled,
        };
        let described = match also {
            Some(also) => format!("{} · {also}", outcome.describe()),
            None => outcome.describe(),
        };
        let description = if state == FinalState::Passed || excerpt.is_empty() {
            described
        } else {
            // The lines about the error, not merely the last ones; as many as fit.
            let budget = LIMIT.saturating_sub(described.len() + 2);
            format!("{described}: {}", fold_tail(&anchored(excerpt, 6), budget))
        };
        FinalStatus { state, said: cut_to_bytes(&description, LIMIT).to_owned() }
    }

    /// A final state with this description, as evidence gives it (settle.rs).
    pub fn new(state: FinalState, description: &str) -> FinalStatus {
        FinalStatus { state, said: description.to_owned() }
    }

    /// The final status a status read from GitLab (or recorded in job memory) says, by its state
    /// and description; None for a state that is not final, or `skipped`.
    pub fn read(status: &CommitStatus) -> Option<FinalStatus> {
        FinalStatus::from_posted(&status.status, status.description.as_deref().unwrap_or_default())
    }

    /// The inverse of `posted_state` and `description`: GitLab's state word and the description.
    pub fn from_posted(state: &str, description: &str) -> Option<FinalStatus> {
        let status = match (state, description.strip_prefix(ALLOWED)) {
            ("success", Some(said)) => FinalStatus::new(FinalState::Allowed, said),
            ("success", None) => FinalStatus::new(FinalState::Passed, description),
            // herald never posts these with `allowed: `; another tool might: read what it says.
            ("failed", said) => FinalStatus::new(FinalState::Failed, said.unwrap_or(description)),
            ("canceled", said) => FinalStatus::new(FinalState::Canceled, said.unwrap_or(description)),
            _ => return None,
        };
        Some(status)
    }

    /// The same, allowed to fail when it failed or was canceled: the job may fail, or passed.
    pub fn allow(self) -> FinalStatus {
        match self.state {
            FinalState::Failed | FinalState::Canceled => FinalStatus { state: FinalState::Allowed, ..self },
            FinalState::Passed | FinalState::Allowed => self,
        }
    }

    /// The state GitLab is sent.
    pub fn posted_state(&self) -> StatusState {
        match self.state {
            FinalState::Passed | FinalState::Allowed => StatusState::Success,
            FinalState::Failed => StatusState::Failed,
            FinalState::Canceled => StatusState::Canceled,
        }
    }

    /// The description GitLab is sent, within its limit.
    pub fn description(&self) -> String {
        match self.state {
            FinalState::Allowed => cut_to_bytes(&format!("{ALLOWED}{}", self.said), LIMIT).to_owned(),
            _ => self.said.clone(),
        }
    }
}

/// What a description read back says of the step's outcome, without the `allowed: ` an allowed
/// failure's begins with (`allowed: failed (exit 3) after 1.0s` → `failed (exit 3) after 1.0s`).
pub fn outcome_said(description: &str) -> &str {
    description.strip_prefix(ALLOWED).unwrap_or(description)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_status_belongs_to_its_task_even_when_the_jobs_name_holds_the_separator() {
        assert!(StatusName::is_of_task("herald/a › b", "herald", "a › b"), "the job's single step");
        assert!(StatusName::is_of_task("herald/a › b › sh", "herald", "a › b"), "a step of it");
        assert!(StatusName::is_of_task("herald/a › b", "herald", "a"), "a step b of job a, as before");
        assert!(!StatusName::is_of_task("herald/ab", "herald", "a"), "another job");
    }

    #[test]
    fn a_failed_status_that_says_allowed_is_allowed_once() {
        let read = FinalStatus::from_posted("failed", "allowed: failed (exit 3)").unwrap();
        assert_eq!(read.allow().description(), "allowed: failed (exit 3)");
    }

    use super::*;

    #[test]
    fn names_carry_prefix_task_and_step() {
        assert_eq!(status_name("herald", "test", &StepName::new("unit"), false), "herald/test › unit");
        assert_eq!(status_name("herald", "ci/lint", &StepName::new("make"), true), "herald/ci/lint");
    }

    #[test]
    fn names_read_back_as_they_were_built() {
        let name = status_name("herald", "ci/lint", &StepName::new("sh").numbered(2), false);
        let parsed = StatusName::parse(&name, "herald").unwrap();
        assert_eq!(parsed, StatusName { task: "ci/lint", step: Some("sh (2)") });
        assert_eq!(parsed.step_of(None), Some(("sh".into(), 2)));
        let alone = status_name("herald", "lint", &StepName::new("make"), true);
        assert_eq!(StatusName::parse(&alone, "herald"), Some(StatusName { task: "lint", step: None }));
        assert_eq!(
            StatusName::parse("herald/ci/lint › cargo test", "herald").unwrap().step_of(None),
            Some(("cargo test".into(), 1))
        );
        assert_eq!(StatusName::parse("other/test › x", "herald"), None);
    }

    #[test]
    fn failures_carry_their_excerpt_within_the_limit() {
        use crate::step::{ProcessEnd, StepEnd};
        let failed = StepOutcome {
            end: StepEnd::Ran { process: ProcessEnd::Exited(1), stop: None },
            elapsed: Default::default(),
        };
        let lines: Vec<String> = (0..100).map(|i| format!("line {i} of a long build log")).collect();
        let status = FinalStatus::of(&failed, &lines, None);
        let description = status.description();
        assert_eq!(status.posted_state(), StatusState::Failed);
        assert!(description.starts_with("failed (exit 1) after 0.0s: "), "{description}");
        assert!(description.ends_with("line 99 of a long build log"), "{description}");
        assert!(description.len() <= 255);
        let passed = StepOutcome {
            end: StepEnd::Ran { process: ProcessEnd::Exited(0), stop: None },
            elapsed: Default::default(),
        };
        assert_eq!(FinalStatus::of(&passed, &lines, None).description(), "passed in 0.0s");
    }

    #[test]
    fn an_allowed_failure_is_posted_as_success_and_reads_back_as_allowed() {
        let allowed = FinalStatus::new(FinalState::Failed, "failed (exit 3) after 1.0s").allow();
        assert_eq!(allowed.posted_state(), StatusState::Success);
        assert_eq!(allowed.description(), "allowed: failed (exit 3) after 1.0s");
        assert_eq!(FinalStatus::from_posted("success", &allowed.description()), Some(allowed.clone()));
        assert_eq!(allowed.clone().allow(), allowed, "allowed once");
        assert_eq!(FinalStatus::new(FinalState::Passed, "passed").allow().state, FinalState::Passed);
        assert_eq!(FinalStatus::from_posted("running", "running"), None);
        let long = FinalStatus::new(FinalState::Failed, &"x".repeat(255)).allow();
        assert_eq!(long.description().len(), 255);
    }

    #[test]
    fn long_names_are_cut_with_a_stable_distinct_suffix() {
        let task = "é".repeat(200);
        let a = status_name("herald", &task, &StepName::new("one"), false);
        let b = status_name("herald", &task, &StepName::new("two"), false);
        assert!(a.len() <= 255 && b.len() <= 255);
        assert_ne!(a, b);
        assert_eq!(a, status_name("herald", &task, &StepName::new("one"), false));
        assert!(a.contains('~'));
    }
}
