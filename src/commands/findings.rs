//! `herald findings FILE…` (and `herald run --findings FILE -- CMD`, which publishes after the
//! step): linters' reports as threads on the merge request's changed lines (publish/findings.rs).
//!
//! Every report is read before anything is sent (lifecycle/findings.rs, which `run --findings`
//! shares): one that cannot be read is one line, and then nothing is published (a half-read
//! report would resolve the threads of findings it merely did not get to). Exit 0 unless
//! `--strict` asks for 1 on an unreadable report; 1 when GitLab refused or could not be reached.
//!
//! Every text a report gives (tool, rule, message, path, fingerprint, link, fix) is masked
//! (redact.rs) as soon as it is read, before anything prints or publishes it: a finding can quote
//! the token. A fix whose text had to be masked is no suggestion (it would no longer be the fix).
//!
//! Standalone, `herald findings` has `HERALD_FLUSH_TIMEOUT` for everything it sends, as a step's
//! flush has.

use std::path::PathBuf;
use std::time::Instant;

use crate::context::{self, Publishing};
use crate::env::{Env, ProcessEnv};
use crate::findings::report::Format;
use crate::lifecycle::findings::{count, publish, read_reports};
use crate::output::{say, Failure, Outcome};

pub fn run(format: &str, strict: bool, files: &[PathBuf]) -> Outcome {
    let env = &ProcessEnv;
    let Some(format) = Format::parse(format) else {
        return Err(Failure::setup(format!("herald findings: unknown format '{format}' (codequality, sarif or auto)")));
    };
    let root = env.non_empty("CI_PROJECT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let (found, tools) = match read_reports(
        files,
        format,
        &root,
        &context::secrets(&env.vars(), env.non_empty("HERALD_TOKEN_FILE").as_deref()),
    ) {
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
