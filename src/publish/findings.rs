//! Findings as threads on the merge request's changed lines (docs/design.md §6b, gitlab.md §L).
//!
//! - Only a finding on a line the merge request adds or changes becomes a thread, positioned on
//!   that line of the newest diff version; the rest are counted, and the step's status and the
//!   note say how many.
//! - **No spam, ever.** One thread per finding: its fingerprint is in a hidden marker, and a
//!   thread of herald's (found by the marker and the token's user as author) is never posted
//!   twice, whatever state it is in. A later pipeline adds only new findings. A finding that is
//!   gone gets its thread resolved with a "fixed in …" reply — unless a person has replied in it
//!   or resolved it: then herald leaves it alone. Threads of a tool are resolved only by a report
//!   of the same tool.
//! - At most `CAP` threads per pipeline, the most severe first.
//! - Everything from a report is escaped like the note (no quick action, mention or HTML); a
//!   SARIF fix that rewrites the finding's whole lines becomes a GitLab suggestion.

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::json;

use crate::context::PublishContext;
use crate::findings::diff::ChangedLines;
use crate::findings::{Finding, Severity};
use crate::gitlab::retry::{self, GaveUp};
use crate::gitlab::{self, ApiError, Client, Discussion};
use crate::report::note::cell;

/// Threads herald starts per pipeline, at most.
pub const CAP: usize = 25;
/// Findings off the changed lines named in the summary.
const WORST_NAMED: usize = 3;

const MARKER: &str = "<!-- herald:finding ";

/// What publishing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    pub findings: usize,
    /// On a line the merge request changed.
    pub on_changed_lines: usize,
    /// Threads started now.
    pub posted: usize,
    /// On changed lines, but their thread exists already (from an earlier pipeline).
    pub already: usize,
    /// On changed lines, but over the cap (or refused by GitLab): counted only.
    pub not_posted: usize,
    /// Threads resolved as fixed.
    pub fixed: usize,
    /// The worst few findings off the changed lines, as `app.py:1 F401`.
    pub worst_elsewhere: Vec<String>,
}

impl Published {
    /// `12 findings, 3 on changed lines (2 new threads), 1 fixed`.
    pub fn summary(&self) -> String {
        let plural = if self.findings == 1 { "" } else { "s" };
        let mut text = format!("{} finding{plural}, {} on changed lines", self.findings, self.on_changed_lines);
        let mut parts = Vec::new();
        if self.posted > 0 {
            parts.push(format!("{} new thread{}", self.posted, if self.posted == 1 { "" } else { "s" }));
        }
        if self.not_posted > 0 {
            parts.push(format!("{} over the cap of {CAP}", self.not_posted));
        }
        if !parts.is_empty() {
            text.push_str(&format!(" ({})", parts.join(", ")));
        }
        if self.fixed > 0 {
            text.push_str(&format!(", {} fixed", self.fixed));
        }
        if !self.worst_elsewhere.is_empty() {
            text.push_str(&format!(" — elsewhere: {}", self.worst_elsewhere.join(", ")));
        }
        text
    }
}

/// A thread of herald's, as its marker says.
struct Ours<'d> {
    discussion: &'d Discussion,
    tool: String,
    fingerprint: String,
    pipeline: u64,
}

/// Publishes `findings` (from reports of `tools`) to the merge request of `context`, until
/// `deadline`.
pub fn publish(
    client: &Client,
    context: &PublishContext,
    findings: &[Finding],
    tools: &BTreeSet<String>,
    deadline: Instant,
) -> Result<Published, String> {
    let mr = context.mr_iid.ok_or("no merge request in this pipeline: findings are not published")?;
    let project = &context.project;
    let call = |what: &str, request: &mut dyn FnMut(std::time::Duration) -> Result<(), ApiError>| {
        retry::call(deadline, retry::sleep, &mut *request).map_err(|gave_up| match gave_up {
            GaveUp::Api(error) => format!("{what}: {error}"),
            other => format!("{what}: {other}"),
        })
    };
    let mut me = 0;
    call("who the token is", &mut |t| gitlab::current_user(client, t).map(|user| me = user.id))?;
    let mut version = None;
    call("the merge request's diff", &mut |t| {
        gitlab::latest_diff_version(client, project, mr, t).map(|v| version = v)
    })?;
    let version = version.ok_or("the merge request has no diff yet: findings are not published")?;
    let mut diffs = Vec::new();
    call("the merge request's diff", &mut |t| gitlab::merge_request_diffs(client, project, mr, t).map(|d| diffs = d))?;
    let changed =
        ChangedLines::of(diffs.iter().filter(|d| !d.deleted_file).map(|d| (d.new_path.as_str(), d.diff.as_str())));
    // A renamed file's position names its old path too.
    let old_path = |path: &str| {
        diffs
            .iter()
            .find(|d| d.new_path == path && !d.old_path.is_empty())
            .map_or(path, |d| d.old_path.as_str())
            .to_owned()
    };
    let mut discussions = Vec::new();
    call("the merge request's threads", &mut |t| {
        gitlab::list_discussions(client, project, mr, t).map(|d| discussions = d)
    })?;
    let ours: Vec<Ours> = discussions.iter().filter_map(|discussion| ours(discussion, me)).collect();
    let known: BTreeSet<(&str, &str)> = ours.iter().map(|o| (o.tool.as_str(), o.fingerprint.as_str())).collect();

    let mut published = Published { findings: findings.len(), ..Published::default() };
    let mut new: Vec<(&Finding, u64)> = Vec::new();
    let mut elsewhere: Vec<&Finding> = Vec::new();
    for finding in findings {
        let Some(line) = changed.first_in(&finding.path, finding.line, finding.end_line) else {
            elsewhere.push(finding);
            continue;
        };
        published.on_changed_lines += 1;
        if known.contains(&(finding.tool.as_str(), finding.fingerprint.as_str())) {
            published.already += 1;
        } else {
            new.push((finding, line));
        }
    }
    // Named in the summary (the step's status, and so the note): the worst few off the diff.
    elsewhere.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)).then(a.line.cmp(&b.line)));
    published.worst_elsewhere = elsewhere
        .iter()
        .take(WORST_NAMED)
        .map(|f| format!("{}:{} {}", f.path, f.line, f.rule.as_deref().unwrap_or(&f.tool)))
        .collect();
    // The most severe first; then in file order, so the same report posts the same threads.
    new.sort_by(|(a, _), (b, _)| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)).then(a.line.cmp(&b.line)));
    let pipeline = context.pipeline_id.unwrap_or_default();
    let mut room = CAP.saturating_sub(ours.iter().filter(|o| o.pipeline == pipeline).count());
    for (finding, line) in new {
        if room == 0 {
            published.not_posted += 1;
            continue;
        }
        let position = json!({
            "position_type": "text",
            "base_sha": version.base_commit_sha,
            "start_sha": version.start_commit_sha,
            "head_sha": version.head_commit_sha,
            "old_path": old_path(&finding.path),
            "new_path": finding.path,
            "new_line": line,
        });
        let body = thread_body(finding, line, pipeline);
        let mut accepted = false;
        call("a finding's thread", &mut |t| {
            gitlab::create_diff_discussion(client, project, mr, &body, &position, t).map(|ok| accepted = ok)
        })?;
        if accepted {
            published.posted += 1;
            room -= 1;
        } else {
            published.not_posted += 1;
        }
    }

    // Threads whose finding is gone, from a report of the same tool, that no person has touched.
    let current: BTreeSet<(&str, &str)> = findings.iter().map(|f| (f.tool.as_str(), f.fingerprint.as_str())).collect();
    let short_sha: String = context.sha.chars().take(8).collect();
    for thread in &ours {
        let untouched = thread.discussion.notes.iter().all(|note| note.author.id == me && !note.resolved);
        let gone =
            tools.contains(&thread.tool) && !current.contains(&(thread.tool.as_str(), thread.fingerprint.as_str()));
        if !(gone && untouched) {
            continue;
        }
        let reply = format!("Fixed in `{short_sha}`: {} no longer reports it.", cell(&thread.tool));
        call("a fixed finding's thread", &mut |t| {
            gitlab::reply_to_discussion(client, project, mr, &thread.discussion.id, &reply, t)
        })?;
        call("a fixed finding's thread", &mut |t| {
            gitlab::resolve_discussion(client, project, mr, &thread.discussion.id, t)
        })?;
        published.fixed += 1;
    }
    Ok(published)
}

/// A thread of herald's: started by the token's user, with herald's marker.
fn ours(discussion: &Discussion, me: u64) -> Option<Ours<'_>> {
    let first = discussion.notes.first().filter(|note| note.author.id == me)?;
    let marker = &first.body[first.body.find(MARKER)? + MARKER.len()..];
    let marker = &marker[..marker.find("-->")?];
    let field =
        |key: &str| marker.split_whitespace().find_map(|part| part.strip_prefix(&format!("{key}=")).map(str::to_owned));
    Some(Ours {
        discussion,
        tool: field("tool")?,
        fingerprint: field("fp")?,
        pipeline: field("pipeline").and_then(|p| p.parse().ok()).unwrap_or_default(),
    })
}

/// A finding's thread: what the tool says, a suggestion when it offers a fix, the hidden marker.
pub fn thread_body(finding: &Finding, line: u64, pipeline: u64) -> String {
    let icon = match finding.severity {
        Severity::Blocker | Severity::Critical => "🛑",
        Severity::Major => "⚠️",
        Severity::Minor | Severity::Info => "💡",
    };
    let rule = finding.rule.as_deref().map(|rule| format!(" <code>{}</code>", cell(rule))).unwrap_or_default();
    let mut body =
        format!("{icon} **{}**{rule} ({}): {}\n", cell(&finding.tool), finding.severity.word(), cell(&finding.message));
    if let Some(lines) = finding.suggestion.as_ref().filter(|lines| suggestable(lines)) {
        let above = line - finding.line;
        let below = finding.end_line - line;
        body.push_str(&format!("\n```suggestion:-{above}+{below}\n"));
        for text in lines {
            body.push_str(text);
            body.push('\n');
        }
        body.push_str("```\n");
    }
    // Markers use only characters that cannot end the comment or mention anyone.
    let safe =
        |text: &str| text.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect::<String>();
    body.push_str(&format!(
        "\n{MARKER}tool={} fp={} pipeline={pipeline} -->\n",
        safe(&finding.tool),
        safe(&finding.fingerprint)
    ));
    body
}

/// Whether a fix can go into a suggestion block as it is: nothing in it may end the block, run a
/// quick action or mention anyone.
fn suggestable(lines: &[String]) -> bool {
    lines.iter().all(|line| !line.contains("```") && !line.trim_start().starts_with('/') && !line.contains('@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Finding {
        Finding {
            tool: "ruff".into(),
            rule: Some("E722".into()),
            message: "Do not use bare `except` @all /merge <b>".into(),
            severity: Severity::Major,
            path: "app.py".into(),
            line: 15,
            end_line: 15,
            fingerprint: "c639593d83c7c0d6".into(),
            suggestion: Some(vec!["    except ValueError:".into()]),
        }
    }

    #[test]
    fn a_thread_says_what_the_tool_says_inertly_and_offers_its_fix() {
        let body = thread_body(&finding(), 15, 1003);
        assert_eq!(
            body,
            "⚠️ **ruff** <code>E722</code> (major): Do not use bare \\`except\\` @\u{200b}all /merge &lt;b&gt;\n\n\
             ```suggestion:-0+0\n    except ValueError:\n```\n\n<!-- herald:finding tool=ruff fp=c639593d83c7c0d6 pipeline=1003 -->\n"
        );
        let mut hostile = finding();
        hostile.suggestion = Some(vec!["```".into()]);
        hostile.tool = "ru-->ff @x".into();
        let body = thread_body(&hostile, 15, 1);
        assert!(!body.contains("suggestion") && body.contains("tool=ru--ffx "), "{body}");
    }

    #[test]
    fn summaries_count_what_matters() {
        let mut published = Published {
            findings: 12,
            on_changed_lines: 3,
            posted: 2,
            already: 1,
            not_posted: 0,
            fixed: 1,
            worst_elsewhere: Vec::new(),
        };
        assert_eq!(published.summary(), "12 findings, 3 on changed lines (2 new threads), 1 fixed");
        published.worst_elsewhere = vec!["app.py:1 F401".into(), "lib.py:9 E501".into()];
        assert_eq!(
            published.summary(),
            "12 findings, 3 on changed lines (2 new threads), 1 fixed — elsewhere: app.py:1 F401, lib.py:9 E501"
        );
    }
}
