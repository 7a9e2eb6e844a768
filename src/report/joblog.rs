//! GitLab job-log decoration for a step: a collapsible section around its output
//! (docs/gitlab.md §F) and one summary line after it.
//!
//! Everything goes to stderr, never stdout: a step's stdout may be redirected to a file by the job
//! script (`herald run -- jq . in.json > out.json`), and markers there would corrupt it. The runner
//! merges both streams into the job log in the order they were written.

use crate::redact::Secrets;
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
    ///
    /// GitLab masks variables in the log as they are written, case and all: a secret lower-cased
    /// would pass. So `secrets` are masked before lower-casing, and the lower-cased secrets in
    /// the lower-cased name after (a name that is a secret in capitals becomes one lower-cased).
    pub fn for_step(step: &StepName, pid: u32, secrets: &Secrets) -> LogSection {
        let shown = secrets.mask(step.as_str());
        let lowered = secrets.lowercased().mask(&secrets.mask(&shown.to_lowercase()));
        let mut slug = String::new();
        for c in lowered.chars().flat_map(char::to_lowercase) {
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
        LogSection { name, header: format!("\x1b[36;1m▶ {shown}\x1b[0m") }
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

/// A step's summary (report/summary.rs) in the job log: a collapsed section `📝 summary of
/// <step>` holding the whole (masked) text, so that the note's cut copy can point here. Escape
/// and carriage-return characters are left out: the text cannot open, end or imitate a section.
pub fn summary_section(step: &StepName, pid: u32, unix_secs: u64, text: &str) -> String {
    let name = format!("herald-summary-{pid}");
    let mut section = format!(
        "\x1b[0Ksection_start:{unix_secs}:{name}[collapsed=true]\r\x1b[0K\x1b[36;1m📝 summary of {step}\x1b[0m\n"
    );
    for line in text.lines() {
        section.extend(line.chars().map(|c| if c.is_control() && c != '\t' { ' ' } else { c }));
        section.push('\n');
    }
    section.push_str(&format!("\x1b[0Ksection_end:{unix_secs}:{name}\r\x1b[0K\n"));
    section
}

/// What a step's status description ends with when the step wrote a summary: note writers of
/// other jobs read it from the job log (`summary_log`) when the note does not carry it.
pub const SUMMARY_MARK: &str = "📝 summary";

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

/// One step's output as GitLab holds it in the job log (`GET /jobs/:id/trace`, gitlab.md §K).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepLog {
    /// Its lines between herald's section markers, as a reader sees them: no ANSI codes, a
    /// carriage return keeping what was written after it, the runner's timestamps left out.
    pub lines: Vec<String>,
    /// Whether the section's end is in the log: the step's output is all there.
    pub complete: bool,
}

/// The output of the `occurrence`-th step named `step` in a job log: the lines of the section
/// herald opened for it (`▶ step`), up to the section's end.
pub fn step_log(trace: &str, step: &str, occurrence: usize) -> Option<StepLog> {
    let header = format!("▶ {step}");
    let mut seen = 0;
    section_lines(trace, |shown| {
        if shown != header {
            return false;
        }
        seen += 1;
        seen == occurrence
    })
}

/// The summary (`summary_section`) of the `occurrence`-th step named `step` in a job log: the
/// lines of the `📝 summary of <step>` section that follows that step's own section, before any
/// other step's.
pub fn summary_log(trace: &str, step: &str, occurrence: usize) -> Option<StepLog> {
    let header = format!("▶ {step}");
    let summary_header = format!("📝 summary of {step}");
    let mut seen = 0;
    let mut after_step = false;
    section_lines(trace, |shown| {
        if shown == header {
            seen += 1;
            after_step = seen == occurrence;
        } else if after_step && shown == summary_header {
            return true;
        } else if shown.starts_with("▶ ") {
            after_step = false;
        }
        false
    })
}

/// The one scanner of job-log sections: offers each section's header, as a reader sees it (no
/// ANSI, trimmed), to `pick` in the log's order, and returns the lines of the first section
/// picked, up to its end (`complete`) or the end of the log.
fn section_lines(trace: &str, mut pick: impl FnMut(&str) -> bool) -> Option<StepLog> {
    let mut open: Option<String> = None;
    let mut lines = Vec::new();
    for raw in trace.split('\n') {
        let raw = without_timestamp(raw);
        if let Some(name) = &open {
            if raw.contains("section_end:") && raw.contains(&format!(":{name}\r")) {
                return Some(StepLog { lines, complete: true });
            }
            lines.push(plain_line(raw));
            continue;
        }
        let Some(at) = raw.find("section_start:") else { continue };
        let Some((fields, shown)) = raw[at..].split_once('\r') else { continue };
        if pick(strip_ansi(shown).trim()) {
            open = fields.splitn(3, ':').nth(2).map(|name| name.split('[').next().unwrap_or(name).to_owned());
        }
    }
    open.map(|_| StepLog { lines, complete: false })
}

/// A log line as GitLab's viewer shows it: what follows the last carriage return, without ANSI.
fn plain_line(raw: &str) -> String {
    let raw = raw.strip_suffix('\r').unwrap_or(raw);
    strip_ansi(raw.rsplit('\r').next().unwrap_or(raw))
}

/// A line without the runner's timestamp prefix (`FF_TIMESTAMPS`, gitlab.md §F:
/// `2026-11-30T09:00:00.123456Z 00O `), when it has one.
fn without_timestamp(line: &str) -> &str {
    let bytes = line.as_bytes();
    let stamped = bytes.len() > 32
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && line[..line.find(' ').unwrap_or(0)].ends_with('Z');
    if !stamped {
        return line;
    }
    let after_stamp = &line[line.find(' ').unwrap_or(0) + 1..];
    match after_stamp.split_once(' ') {
        Some((stream, rest)) if stream.len() <= 4 && stream.chars().all(|c| c.is_ascii_alphanumeric() || c == '+') => {
            rest
        }
        _ => line,
    }
}

/// `text` without ANSI CSI sequences (colours, erase-line).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::{ProcessEnd, StepEnd};
    use std::time::Duration;

    #[test]
    fn section_names_are_safe_and_distinct() {
        let hostile =
            LogSection::for_step(&StepName::new("../x: $(rm -rf) \u{1b}[2J ÜNICODE"), 42, &Secrets::default());
        assert_eq!(hostile.name(), "herald-x-rm-rf-2j-nicode-42");
        assert_eq!(LogSection::for_step(&StepName::new("???"), 7, &Secrets::default()).name(), "herald-7");
        assert_ne!(
            LogSection::for_step(&StepName::new("unit"), 1, &Secrets::default()).name(),
            LogSection::for_step(&StepName::new("unit"), 2, &Secrets::default()).name()
        );
    }

    #[test]
    fn markers_match_gitlabs_parser() {
        let section = LogSection::for_step(&StepName::new("cargo test"), 9, &Secrets::default());
        assert_eq!(
            section.start_marker(1700000000),
            "\x1b[0Ksection_start:1700000000:herald-cargo-test-9\r\x1b[0K\x1b[36;1m▶ cargo test\x1b[0m\n"
        );
        assert_eq!(section.end_marker(1700000012), "\x1b[0Ksection_end:1700000012:herald-cargo-test-9\r\x1b[0K");
    }

    #[test]
    fn a_steps_output_is_cut_from_the_job_log_at_its_markers() {
        let unit = LogSection::for_step(&StepName::new("unit"), 7, &Secrets::default());
        let lint = LogSection::for_step(&StepName::new("lint"), 8, &Secrets::default());
        let log = format!(
            "Running with gitlab-runner\n{}\x1b[32mcompiling\x1b[0m\n50%\r100%\nboom\n{}\x1b[31;1m✘ unit failed\x1b[0m\n{}2026-11-30T09:00:00.123456Z 00O lint says hi\n",
            unit.start_marker(1),
            unit.end_marker(2),
            lint.start_marker(3)
        );
        assert_eq!(
            step_log(&log, "unit", 1),
            Some(StepLog { lines: vec!["compiling".into(), "100%".into(), "boom".into()], complete: true })
        );
        assert_eq!(
            step_log(&log, "lint", 1),
            Some(StepLog { lines: vec!["lint says hi".into(), String::new()], complete: false }),
            "still running: what is there so far"
        );
        assert_eq!(step_log(&log, "unit", 2), None);
        assert_eq!(step_log(&log, "other", 1), None);
    }

    #[test]
    fn a_steps_summary_is_the_summary_section_after_its_own_section() {
        let unit = LogSection::for_step(&StepName::new("unit"), 7, &Secrets::default());
        let lint = LogSection::for_step(&StepName::new("lint"), 8, &Secrets::default());
        let log = format!(
            "{}out\n{}\n{}{}{}{}",
            unit.start_marker(1),
            unit.end_marker(2),
            summary_section(&StepName::new("unit"), 7, 2, "# Unit\n\x1b[31mall\x1b[0m passed"),
            lint.start_marker(3),
            lint.end_marker(4),
            unit.start_marker(5),
        );
        assert_eq!(
            summary_log(&log, "unit", 1),
            Some(StepLog { lines: vec!["# Unit".into(), " [31mall [0m passed".into()], complete: true }),
            "escape characters became spaces when it was written"
        );
        assert_eq!(summary_log(&log, "lint", 1), None, "the summary after unit's section is not lint's");
        assert_eq!(summary_log(&log, "unit", 2), None, "the second unit wrote none");
        let cut = &log[..log.find("section_end:2:herald-summary").unwrap()];
        assert_eq!(summary_log(cut, "unit", 1).map(|found| found.complete), Some(false));
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

    #[test]
    fn a_secret_is_masked_in_the_section_name_in_any_case() {
        let secrets = Secrets::of(["Abc-Secret-Value-42".to_owned()]);
        for name in ["Abc-Secret-Value-42", "ABC-SECRET-VALUE-42", "Abc-Secret-Value-42 tail"] {
            let section = LogSection::for_step(&StepName::new(name), 3, &secrets);
            let marker = section.start_marker(1);
            assert!(!marker.contains("Abc-Secret-Value-42") && !marker.contains("abc-secret-value-42"), "{marker}");
            assert!(section.name().starts_with("herald-masked"), "{}", section.name());
        }
    }
}
