//! `herald findings FILE…` (and `herald run --findings FILE -- CMD`, which publishes after the
//! step): linters' reports as threads on the merge request's changed lines (publish/findings.rs).
//!
//! Every report is read before anything is sent: one that cannot be read is one line, and then
//! nothing is published (a half-read report would resolve the threads of findings it merely did
//! not get to). Exit 0 unless `--strict` asks for 1 on an unreadable report; 1 when GitLab refused
//! or could not be reached.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::context::{self, PublishContext, Publishing};
use crate::env::{Env, ProcessEnv};
use crate::findings::report::{self, Format};
use crate::findings::Finding;
use crate::output::{say, Failure, Outcome};
use crate::publish::findings;

/// The least time `herald findings` allows itself when run as a command of its own.
const LEAST_TIME: Duration = Duration::from_secs(30);

pub fn run(format: &str, strict: bool, files: &[PathBuf]) -> Outcome {
    let env = &ProcessEnv;
    let Some(format) = Format::parse(format) else {
        return Err(Failure::setup(format!("herald findings: unknown format '{format}' (codequality, sarif or auto)")));
    };
    let root = env.non_empty("CI_PROJECT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let (found, tools) = match read_reports(files, format, &root) {
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
            if let Some(why) = why {
                say(&why);
            }
            say(&format!("herald findings: {} (not published)", count(&found)));
            return Ok(0);
        }
        Err(error) => return Err(Failure::setup(format!("herald findings: {error}"))),
    };
    let deadline = Instant::now() + context.flush_timeout.max(LEAST_TIME);
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
) -> Result<(Vec<Finding>, BTreeSet<String>), String> {
    let mut found = Vec::new();
    let mut tools = BTreeSet::new();
    for file in files {
        let loaded = report::load(file, format, root)?;
        if loaded.outside > 0 {
            say(&format!(
                "herald findings: {}: {} finding(s) outside the checkout left out",
                file.display(),
                loaded.outside
            ));
        }
        tools.extend(loaded.tools);
        found.extend(loaded.findings);
    }
    Ok((found, tools))
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
