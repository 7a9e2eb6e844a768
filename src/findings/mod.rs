//! Linters' findings, read from the reports they already write, for threads on the merge
//! request's changed lines (publish/findings.rs). Pure: reports and diffs in, findings out.
//!
//! - `report.rs`: GitLab's Code Quality report (CodeClimate JSON: ruff, eslint, golangci-lint,
//!   rubocop, phpstan, pylint…) and SARIF 2.1.0 (clippy via clippy-sarif, semgrep, hadolint,
//!   trivy, ruff, eslint, CodeQL), paths made relative to the checkout;
//! - `diff.rs`: which lines of which files a merge request adds or changes.

pub mod diff;
pub mod report;

/// How much a finding matters, in Code Quality's words (SARIF levels map onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Minor,
    Major,
    Critical,
    Blocker,
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Minor => "minor",
            Severity::Major => "major",
            Severity::Critical => "critical",
            Severity::Blocker => "blocker",
        }
    }
}

/// One finding of one tool, at a line of a file of the checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The tool that reported it (`ruff`), from the report, else the report's file name.
    pub tool: String,
    /// Its rule (`E722`), when the report names one.
    pub rule: Option<String>,
    pub message: String,
    pub severity: Severity,
    /// Relative to the checkout's root, `/`-separated.
    pub path: String,
    /// First and last line (1-based).
    pub line: u64,
    pub end_line: u64,
    /// Stable across pipelines: the report's own fingerprint, else a hash of tool, rule, path and
    /// message (never the line number: an edit above must not make it a new finding).
    pub fingerprint: String,
    /// Whole lines `line..=end_line` replaced by these, when the tool offers a fix that does so:
    /// a one-click GitLab suggestion.
    pub suggestion: Option<Vec<String>>,
}
