//! The findings wiring that `herald findings` and `herald run --findings` share: every report
//! read and masked before anything is sent, then published as threads on the merge request's
//! changed lines (publish/findings.rs). Below the commands so that neither command uses the
//! other's module.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::context::PublishContext;
use crate::findings::report::{self, Format};
use crate::findings::Finding;
use crate::output::say;
use crate::publish::findings;
use crate::redact::Secrets;

/// Reads every report: the findings and the tools that reported (a tool with no finding left
/// is one whose earlier threads are fixed). The first report that cannot be read is the error:
/// one masked line, which callers print (whatever it says, nothing is published), so a string.
pub(crate) fn read_reports(
    files: &[PathBuf],
    format: Format,
    root: &Path,
    secrets: &Secrets,
) -> Result<(Vec<Finding>, BTreeSet<String>), String> {
    let mut found = Vec::new();
    let mut tools = BTreeSet::new();
    for file in files {
        let loaded = report::load(file, format, root).map_err(|line| secrets.mask(&line))?;
        if loaded.outside > 0 {
            say(&format!(
                "herald findings: {}: {} finding(s) outside the checkout left out",
                file.display(),
                loaded.outside
            ));
        }
        tools.extend(loaded.tools.iter().map(|tool| secrets.mask(tool)));
        // Identities from the masked text (nothing derived from a secret is published), numbered
        // within each report: two reports of one run (SARIF and Code Quality) give the same ones.
        let mut findings: Vec<Finding> = loaded.findings.into_iter().map(|finding| masked(finding, secrets)).collect();
        crate::findings::assign_identities(&mut findings);
        for finding in findings {
            match found.iter_mut().find(|seen: &&mut Finding| seen.identity == finding.identity) {
                // The same problem in another report: one finding, with what either knows.
                Some(seen) => {
                    seen.link = seen.link.take().or(finding.link);
                    if seen.suggestion.is_none() {
                        seen.suggestion = finding.suggestion;
                        seen.fix_description = finding.fix_description;
                    }
                    if seen.fingerprint.is_empty() {
                        seen.fingerprint = finding.fingerprint;
                    }
                }
                None => found.push(finding),
            }
        }
    }
    Ok((found, tools))
}

/// A finding with every text masked; its fix dropped when masking changed it.
fn masked(finding: Finding, secrets: &Secrets) -> Finding {
    let mask = |text: &str| secrets.mask(text);
    let suggestion = finding.suggestion.filter(|lines| lines.iter().all(|line| mask(line) == *line));
    Finding {
        tool: mask(&finding.tool),
        rule: finding.rule.as_deref().map(mask),
        message: mask(&finding.message),
        path: mask(&finding.path),
        fingerprint: mask(&finding.fingerprint),
        link: finding.link.filter(|link| mask(link) == *link),
        fix_description: finding.fix_description.as_deref().map(mask),
        suggestion,
        ..finding
    }
}

/// Publishes to the pipeline's merge request; the one-line summary (`4 findings, 1 on changed
/// lines (1 new thread)`). The error is the line callers print (a step's result stands, and
/// `herald findings` exits 1 whatever the cause), so a string.
pub(crate) fn publish(
    context: &PublishContext,
    found: &[Finding],
    tools: &BTreeSet<String>,
    deadline: Instant,
) -> Result<String, String> {
    if context.mr_iid.is_none() {
        return Ok(format!("{} (no merge request: not published)", count(found)));
    }
    let client = crate::publish::client(context)?;
    findings::publish(&client, context, found, tools, deadline).map(|published| published.summary())
}

/// `4 findings`.
pub(crate) fn count(found: &[Finding]) -> String {
    format!("{} finding{}", found.len(), if found.len() == 1 { "" } else { "s" })
}
