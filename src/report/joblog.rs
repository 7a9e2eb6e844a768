//! GitLab job-log decoration for a step: a collapsible section around its output
//! (docs/gitlab.md §F) and one summary line after it.
//!
//! Everything goes to stderr, never stdout: a step's stdout may be redirected to a file by the job
//! script (`herald run -- jq . in.json > out.json`), and markers there would corrupt it. The runner
//! merges both streams into the job log in the order they were written.

use crate::step::{StepName, StepOutcome, Verdict};

/// One step's section in the job log.
pub struct LogSection {
    name: String,
    header: String,
}

impl LogSection {
    /// Section names may only use `[A-Za-z0-9_.-]`, and GitLab folds case and punctuation, so the
    /// name is a lowercase slug of the step plus herald's pid, which keeps two steps of one job
    /// (even two with the same name) in separate sections.
    pub fn for_step(step: &StepName, pid: u32) -> LogSection {
        let mut slug = String::new();
        for c in step.as_str().chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
            if slug.len() >= 40 {
                break;
            }
        }
        let slug = slug.trim_end_matches('-');
        let name = if slug.is_empty() { format!("herald-{pid}") } else { format!("herald-{slug}-{pid}") };
        LogSection { name, header: format!("\x1b[36;1m▶ {step}\x1b[0m") }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `\e[0Ksection_start:<ts>:<name>\r\e[0K<header>`; the trailing `\r\e[0K` is required.
    pub fn start_marker(&self, unix_secs: u64) -> String {
        format!("\x1b[0Ksection_start:{unix_secs}:{}\r\x1b[0K{}\n", self.name, self.header)
    }

    pub fn end_marker(&self, unix_secs: u64) -> String {
        format!("\x1b[0Ksection_end:{unix_secs}:{}\r\x1b[0K", self.name)
    }
}

/// `✔ unit passed in 12.3s` in green, `✘ unit failed (exit 2) after 4.1s` in red, canceled steps in
/// yellow. Printed after the section ends, so it stays visible when the section is collapsed.
pub fn summary_line(step: &StepName, outcome: &StepOutcome) -> String {
    let (mark, colour) = match outcome.verdict() {
        Verdict::Passed => ('✔', "32"),
        Verdict::Failed => ('✘', "31"),
        Verdict::Canceled => ('✘', "33"),
    };
    format!("\x1b[{colour};1m{mark} {step} {}\x1b[0m\n", outcome.describe())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{ProcessEnd, StepEnd};
    use std::time::Duration;

    #[test]
    fn section_names_are_safe_and_distinct() {
        let hostile = LogSection::for_step(&StepName::new("../x: $(rm -rf) \u{1b}[2J ÜNICODE"), 42);
        assert_eq!(hostile.name(), "herald-x-rm-rf-2j-nicode-42");
        assert_eq!(LogSection::for_step(&StepName::new("???"), 7).name(), "herald-7");
        assert_ne!(
            LogSection::for_step(&StepName::new("unit"), 1).name(),
            LogSection::for_step(&StepName::new("unit"), 2).name()
        );
    }

    #[test]
    fn markers_match_gitlabs_parser() {
        let section = LogSection::for_step(&StepName::new("cargo test"), 9);
        assert_eq!(
            section.start_marker(1700000000),
            "\x1b[0Ksection_start:1700000000:herald-cargo-test-9\r\x1b[0K\x1b[36;1m▶ cargo test\x1b[0m\n"
        );
        assert_eq!(section.end_marker(1700000012), "\x1b[0Ksection_end:1700000012:herald-cargo-test-9\r\x1b[0K");
    }

    #[test]
    fn summary_lines() {
        let outcome = StepOutcome {
            end: StepEnd::Ran { process: ProcessEnd::Exited(2), stop: None },
            elapsed: Duration::from_millis(4100),
        };
        assert_eq!(
            summary_line(&StepName::new("unit"), &outcome),
            "\x1b[31;1m✘ unit failed (exit 2) after 4.1s\x1b[0m\n"
        );
    }
}
