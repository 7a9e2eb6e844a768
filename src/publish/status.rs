//! What a step's commit status says: its name and description, within GitLab's limits
//! (gitlab.md §A.1: 255 characters for `description` and `target_url`; keep `name` ≤ 255 too).

use crate::gitlab::StatusState;
use crate::report::cut_to_bytes;
use crate::report::excerpt::{anchored, fold_tail};
use crate::step::{StepName, StepOutcome, Verdict, ALLOWED};

const LIMIT: usize = 255;

/// `<prefix>/<task> › <step>`, or `<prefix>/<task>` for the single unnamed step of a job
/// (`alone`). The task is `<origin>/<job>` for a job from an include, the job's name otherwise
/// (and when the configuration cannot be read). Names longer than GitLab allows are cut and end
/// in a short hash of the full name, so two long names stay distinct and stable.
pub fn status_name(prefix: &str, task: &str, step: &StepName, alone: bool) -> String {
    let full = if alone { format!("{prefix}/{task}") } else { format!("{prefix}/{task} › {step}") };
    if full.len() <= LIMIT {
        return full;
    }
    // One hash for values that must be the same in every herald build (job_memory's).
    let suffix = format!("~{:08x}", crate::persist::stable_hash(full.as_bytes()) as u32);
    format!("{}{suffix}", cut_to_bytes(&full, LIMIT - suffix.len()))
}

/// The status state and description for a finished step. A step that did not pass carries as
/// much of its (masked) output excerpt as fits, anchored on the error (`report::excerpt`):
/// `failed (exit 1) after 2.0s: error: x ⏎ aborting`.
pub fn final_status(outcome: &StepOutcome, excerpt: &[String], also: Option<&str>) -> (StatusState, String) {
    let state = match outcome.verdict() {
        Verdict::Passed => StatusState::Success,
        Verdict::Failed => StatusState::Failed,
        Verdict::Canceled => StatusState::Canceled,
    };
    let described = match also {
        Some(also) => format!("{} · {also}", outcome.describe()),
        None => outcome.describe(),
    };
    let description = if state == StatusState::Success || excerpt.is_empty() {
        described
    } else {
        // The lines about the error, not merely the last ones; as many as fit.
        let budget = LIMIT.saturating_sub(described.len() + 2);
        format!("{described}: {}", fold_tail(&anchored(excerpt, 6), budget))
    };
    (state, cut_to_bytes(&description, LIMIT).to_owned())
}

/// The description of an allowed failure, within GitLab's limit.
pub fn allowed(description: &str) -> String {
    cut_to_bytes(&format!("{ALLOWED}{description}"), LIMIT).to_owned()
}

pub fn is_allowed(description: &str) -> bool {
    description.starts_with(ALLOWED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_task_and_step() {
        assert_eq!(status_name("herald", "test", &StepName::new("unit"), false), "herald/test › unit");
        assert_eq!(status_name("herald", "ci/lint", &StepName::new("make"), true), "herald/ci/lint");
    }

    #[test]
    fn failures_carry_their_excerpt_within_the_limit() {
        use crate::step::{ProcessEnd, StepEnd};
        let failed = StepOutcome {
            end: StepEnd::Ran { process: ProcessEnd::Exited(1), stop: None },
            elapsed: Default::default(),
        };
        let lines: Vec<String> = (0..100).map(|i| format!("line {i} of a long build log")).collect();
        let (state, description) = final_status(&failed, &lines, None);
        assert_eq!(state, StatusState::Failed);
        assert!(description.starts_with("failed (exit 1) after 0.0s: "), "{description}");
        assert!(description.ends_with("line 99 of a long build log"), "{description}");
        assert!(description.len() <= 255);
        let passed = StepOutcome {
            end: StepEnd::Ran { process: ProcessEnd::Exited(0), stop: None },
            elapsed: Default::default(),
        };
        assert_eq!(final_status(&passed, &lines, None).1, "passed in 0.0s");
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
