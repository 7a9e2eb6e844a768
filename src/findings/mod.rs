//! Linters' findings, read from the reports they already write, for threads on the merge
//! request's changed lines (publish/findings/). Pure: reports and diffs in, findings out.
//!
//! - `report.rs`: GitLab's Code Quality report (CodeClimate JSON: ruff, eslint, golangci-lint,
//!   rubocop, phpstan, pylint…) and SARIF 2.1.0 (clippy via clippy-sarif, semgrep, hadolint,
//!   trivy, ruff, eslint, CodeQL), paths made relative to the checkout;
//! - `diff.rs`: which lines of which files a merge request adds or changes;
//! - `files.rs`: reading what a report names, as hostile input (regular files only, inside the
//!   checkout, never blocking, bounded).
//!
//! A finding's identity (`Finding::identity`) is herald's own, not the report's: the same problem
//! must be the same thread whether ruff wrote SARIF or Code Quality, whatever the tool calls
//! itself, and wherever the line moved (docs/design.md §6b).

pub mod diff;
pub mod files;
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
    /// The report's own fingerprint, as it wrote it (any characters); empty when it has none.
    pub fingerprint: String,
    /// herald's identity of the finding, the same in every format and spelling of the tool: a hash
    /// of rule, path and message (whitespace folded), numbered among identical ones in line
    /// order. Never the line number: an edit above must not make it a new finding.
    pub identity: String,
    /// What herald before identities put in the marker for a finding without a fingerprint of
    /// its own (a hash of tool, rule, path, message and count), so its old threads still match.
    pub legacy_fingerprint: String,
    /// The rule's documentation (SARIF `helpUri`, a Code Quality `url`), `https://` only.
    pub link: Option<String>,
    /// Whole lines `line..=end_line` replaced by these, when the tool offers a fix that does so:
    /// a one-click GitLab suggestion. Empty: the fix deletes the lines.
    pub suggestion: Option<Vec<String>>,
    /// What the fix does, in the tool's words (SARIF `fixes[].description`).
    pub fix_description: Option<String>,
}

/// A tool's name as herald compares it: `Semgrep OSS`, `semgrep-oss` and `semgrep_oss` are one.
pub fn tool_key(tool: &str) -> String {
    tool.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// herald's identities for findings in one report set: `rule, path, message` hashed, numbered
/// among identical ones by line (the report's order may differ between its formats).
pub fn assign_identities(findings: &mut [Finding]) {
    let mut order: Vec<usize> = (0..findings.len()).collect();
    order.sort_by_key(|&i| (findings[i].line, findings[i].end_line));
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for i in order {
        let finding = &findings[i];
        let message = finding.message.split_whitespace().collect::<Vec<_>>().join(" ");
        let key = format!("{}\n{}\n{message}", finding.rule.as_deref().unwrap_or_default(), finding.path);
        let count = seen.entry(key.clone()).or_default();
        *count += 1;
        findings[i].identity = format!("{:016x}", crate::persist::stable_hash(format!("{key}\n{count}").as_bytes()));
    }
}
