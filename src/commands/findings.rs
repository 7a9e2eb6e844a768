//! `herald findings FILE…` (and `herald run --findings FILE -- CMD`, which publishes after the
//! step): linters' reports as threads on the merge request's changed lines (publish/findings.rs).
//!
//! Every report is read before anything is sent: one that cannot be read is one line, and then
//! nothing is published (a half-read report would resolve the threads of findings it merely did
//! not get to). Exit 0 unless `--strict` asks for 1 on an unreadable report; 1 when GitLab refused
//! or could not be reached.
//!
//! Every text a report gives (tool, rule, message, path, fingerprint, link, fix) is masked
//! (redact.rs) as soon as it is read, before anything prints or publishes it: a finding can quote
//! the token. A fix whose text had to be masked is no suggestion (it would no longer be the fix).
//!
//! Standalone, `herald findings` has `HERALD_FLUSH_TIMEOUT` for everything it sends, as a step's
//! flush has.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::context::{self, PublishContext, Publishing};
use crate::env::{Env, ProcessEnv};
use crate::findings::report::{self, Format};
use crate::findings::Finding;
use crate::output::{say, Failure, Outcome};
use crate::publish::findings;
use crate::redact::Secrets;

pub fn run(format: &str, strict: bool, files: &[PathBuf]) -> Outcome {
    let env = &ProcessEnv;
    let Some(format) = Format::parse(format) else {
        return Err(Failure::setup(format!("herald findings: unknown format '{format}' (codequality, sarif or auto)")));
    };
    let root = env.non_empty("CI_PROJECT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let (found, tools) = match read_reports(files, format, &root, &Secrets::from_vars(&env.vars())) {
        Ok(read) => read,
        Err(line) if strict => return Err(Failure::not_done(format!("herald findings: {line}; nothing published"))),
        Err(line) => {
            say(&format!("herald findings: {line}; nothing published"));
            return Ok(0);
        }
    };
    let context = match context::resolve(env) {
        Ok(Publishing::On(context)) => context,
        Ok(Publishing::Off(why)) => {
            say(&format!("herald findings: {}, not published: {}", count(&found), why_off(env, why)));
            return Ok(0);
        }
        Err(error) => return Err(Failure::setup(format!("herald findings: {error}"))),
    };
    let deadline = Instant::now() + context.flush_timeout;
    let summary = publish(&context, &found, &tools, deadline)
        .map_err(|line| Failure::not_done(format!("herald findings: {line}")))?;
    say(&format!("herald findings: {summary}"));
    Ok(0)
}

/// Reads every report: the findings and the tools that reported (a tool with no finding left
/// is one whose earlier threads are fixed). The first report that cannot be read is the error.
pub fn read_reports(
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

/// Why nothing is published, in one line's words.
fn why_off(env: &dyn Env, why: Option<String>) -> String {
    if let Some(why) = why {
        return why.strip_prefix("herald: not publishing: ").map(str::to_owned).unwrap_or(why);
    }
    let mode = env.non_empty("HERALD_MODE").map(|m| m.to_string_lossy().into_owned());
    match mode.as_deref() {
        Some("off") => "HERALD_MODE is off".into(),
        Some("local-only") => "HERALD_MODE=local-only, and this is CI".into(),
        _ => "not in GitLab CI (GITLAB_CI is not set), so there is no merge request to post on".into(),
    }
}

/// Publishes to the pipeline's merge request; the one-line summary (`4 findings, 1 on changed
/// lines (1 new thread)`).
pub fn publish(
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
pub fn count(found: &[Finding]) -> String {
    format!("{} finding{}", found.len(), if found.len() == 1 { "" } else { "s" })
}
