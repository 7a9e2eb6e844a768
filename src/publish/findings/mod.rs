//! Findings as threads on the merge request's changed lines (docs/design.md §6b, gitlab.md §L).
//!
//! - Only a finding on a line the merge request adds or changes becomes a thread, positioned on
//!   that line of the newest diff version; the rest are counted, and the step's status and the
//!   note say how many.
//! - **One thread per finding.** A thread of herald's (started by the token's user, ending with
//!   herald's marker) carries the finding's identity: herald's own (`id`, the same whatever the
//!   report's format or the tool's spelling, findings/mod.rs), the report's fingerprint (`fp`)
//!   and the tool. A finding is the thread's when the identity matches, or the same tool's
//!   fingerprint does. Marker fields are percent-encoded (any character survives), the marker is
//!   the body's last line, and only the last one counts: report text cannot imitate it (it is
//!   escaped, and a suggestion block comes before it).
//! - **Look before posting.** Each thread post is preceded by a fresh look at the threads: a post
//!   whose answer was lost is found there and not made again, as are threads another job of the
//!   pipeline started meanwhile.
//! - **The cap.** At most `CAP` threads per pipeline, the most severe first, counted from the
//!   threads themselves (their marker names the pipeline) just before each post. Jobs that post
//!   at the very same moment can each pass the check once: J jobs posting concurrently start at
//!   most `CAP + J - 1` threads; one job at a time, exactly `CAP`.
//! - **Fixed, only when fixed.** A thread whose finding is gone is resolved with a "fixed in …"
//!   reply only by a report of the same tool in the job that started it (another job may lint
//!   other files), and never once a person replied in it or resolved it. A thread herald resolved
//!   that a report still has is opened again, with a reply saying so.
//! - Everything from a report is escaped like the note (no quick action, mention or HTML); a
//!   SARIF fix that rewrites the finding's whole lines becomes a GitLab suggestion, labelled with
//!   what it does (a deletion says so).

use std::collections::BTreeSet;
use std::time::Instant;

use serde_json::json;

use crate::context::PublishContext;
use crate::findings::diff::ChangedLines;
use crate::findings::{tool_key, Finding, Severity};
use crate::gitlab::retry::{self, GaveUp};
use crate::gitlab::{self, ApiError, Client, Discussion};
use crate::report::markdown::cell;
pub use thread::thread_body;
use thread::{ours, Marker, Ours};

mod thread;

/// Threads herald starts per pipeline, at most (see the module's doc for concurrent jobs).
pub const CAP: usize = 25;
/// Findings off the changed lines named in the summary.
const WORST_NAMED: usize = 3;
/// The longest a named finding may be in the summary, so that the summary fits a status
/// description (255 characters) whole.
const LONGEST_NAMED: usize = 40;

const MARKER: &str = "<!-- herald:finding ";
const MARKER_END: &str = " -->";

/// What publishing did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    pub findings: usize,
    /// On a line the merge request changed.
    pub on_changed_lines: usize,
    /// Threads started now.
    pub posted: usize,
    /// On changed lines, but their thread exists already (from an earlier pipeline or job).
    pub already: usize,
    /// On changed lines, but over the cap (or refused by GitLab): counted only.
    pub not_posted: usize,
    /// Threads resolved as fixed.
    pub fixed: usize,
    /// Threads herald had resolved as fixed, opened again: a report still has their finding.
    pub reopened: usize,
    /// The worst few findings off the changed lines, as `app.py:1 F401`.
    pub worst_elsewhere: Vec<String>,
}

impl Published {
    /// `12 findings, 3 on changed lines (2 new threads), 1 fixed — elsewhere app.py:1 F401`.
    /// Without `: ` (the note shows a description up to its first `: `), and short enough to fit a
    /// status description whole.
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
        if self.reopened > 0 {
            text.push_str(&format!(", {} reopened", self.reopened));
        }
        if !self.worst_elsewhere.is_empty() {
            text.push_str(&format!(" — elsewhere {}", self.worst_elsewhere.join(", ")));
        }
        text
    }
}

/// What one look-then-post did.
enum Post {
    Posted,
    /// The thread is there: the earlier post landed, or another job posted it.
    There,
    OverCap,
    Refused,
}

/// Publishes `findings` (from reports of `tools`) to the merge request of `context`, until
/// `deadline`. The error is one line the commands only print (no caller tells reasons apart), so
/// it is text.
pub fn publish(
    client: &Client,
    context: &PublishContext,
    findings: &[Finding],
    tools: &BTreeSet<String>,
    deadline: Instant,
) -> Result<Published, String> {
    let mr = context.mr_iid.ok_or("no merge request in this pipeline: findings are not published")?;
    let mut session = Session { client, context, mr, me: 0, deadline };
    let mut me = 0;
    session.call("who the token is", &mut |t| gitlab::current_user(client, t).map(|user| me = user.id))?;
    session.me = me;
    let diff = session.read_diff()?;
    let mut discussions = Vec::new();
    session.call("the merge request's threads", &mut |t| {
        gitlab::list_discussions(client, &context.project, mr, t).map(|d| discussions = d)
    })?;
    let threads: Vec<Ours> = discussions.iter().filter_map(|discussion| ours(discussion, me)).collect();

    let mut published = Published { findings: findings.len(), ..Published::default() };
    let new = sort_out(findings, &diff.changed, &threads, &mut published);
    let pipeline = context.pipeline_id.unwrap_or_default();
    let mut cap_reached = false;
    for (finding, line) in new {
        if cap_reached {
            published.not_posted += 1;
            continue;
        }
        match session.post_thread(finding, line, &diff, pipeline)? {
            Post::Posted => published.posted += 1,
            Post::There => published.already += 1,
            Post::OverCap => {
                cap_reached = true;
                published.not_posted += 1;
            }
            Post::Refused => published.not_posted += 1,
        }
    }
    session.follow_up(&threads, findings, tools, &mut published)?;
    Ok(published)
}

/// Counts `findings` into `published` (on changed lines, already threaded) and names the worst
/// ones off the diff; returns those that need a new thread, each with its line in the diff, the
/// most severe first, then in file order (so the same report posts the same threads).
fn sort_out<'f>(
    findings: &'f [Finding],
    changed: &ChangedLines,
    threads: &[Ours],
    published: &mut Published,
) -> Vec<(&'f Finding, u64)> {
    let has_thread = |finding: &Finding| threads.iter().any(|o| o.marker.is_about(finding));
    let mut new: Vec<(&Finding, u64)> = Vec::new();
    let mut elsewhere: Vec<&Finding> = Vec::new();
    let mut queued: BTreeSet<&str> = BTreeSet::new();
    for finding in findings {
        let Some(line) = changed.first_in(&finding.path, finding.line, finding.end_line) else {
            elsewhere.push(finding);
            continue;
        };
        published.on_changed_lines += 1;
        // Two reports of one problem (SARIF and Code Quality of one run) are one thread.
        if has_thread(finding) || !queued.insert(finding.identity.as_str()) {
            published.already += 1;
        } else {
            new.push((finding, line));
        }
    }
    // Named in the summary (the step's status, and so the note): the worst few off the diff.
    elsewhere.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)).then(a.line.cmp(&b.line)));
    published.worst_elsewhere = elsewhere.iter().take(WORST_NAMED).map(|f| named(f)).collect();
    new.sort_by(|(a, _), (b, _)| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)).then(a.line.cmp(&b.line)));
    new
}

/// The merge request's newest diff: the version a position names, its files, its changed lines.
struct MergeRequestDiff {
    version: gitlab::DiffVersion,
    files: Vec<gitlab::FileDiff>,
    changed: ChangedLines,
}

impl MergeRequestDiff {
    /// The path a position names as the old one: a renamed file's old path.
    fn old_path(&self, path: &str) -> String {
        self.files
            .iter()
            .find(|d| d.new_path == path && !d.old_path.is_empty())
            .map_or(path, |d| &d.old_path)
            .to_owned()
    }
}

/// One publishing run's fixed parts: where it writes, as whom (`me`, the token's user), until when.
struct Session<'a> {
    client: &'a Client,
    context: &'a PublishContext,
    mr: u64,
    me: u64,
    deadline: Instant,
}

impl Session<'_> {
    /// One request through the retry path; what it was for names its failure.
    fn call(
        &self,
        what: &str,
        request: &mut dyn FnMut(std::time::Duration) -> Result<(), ApiError>,
    ) -> Result<(), String> {
        retry::call(self.deadline, retry::sleep, &mut *request).map_err(|gave_up| match gave_up {
            GaveUp::Api(error) => format!("{what}: {error}"),
            other => format!("{what}: {other}"),
        })
    }

    fn read_diff(&self) -> Result<MergeRequestDiff, String> {
        let (client, project, mr) = (self.client, &self.context.project, self.mr);
        let mut version = None;
        self.call("the merge request's diff", &mut |t| {
            gitlab::latest_diff_version(client, project, mr, t).map(|v| version = v)
        })?;
        let version = version.ok_or("the merge request has no diff yet: findings are not published")?;
        let mut files = Vec::new();
        self.call("the merge request's diff", &mut |t| {
            gitlab::merge_request_diffs(client, project, mr, t).map(|d| files = d)
        })?;
        let changed =
            ChangedLines::of(files.iter().filter(|d| !d.deleted_file).map(|d| (d.new_path.as_str(), d.diff.as_str())));
        Ok(MergeRequestDiff { version, files, changed })
    }

    /// Starts `finding`'s thread on `line`, after a fresh look at the threads: an earlier attempt
    /// whose answer was lost may have landed, other jobs of this pipeline post too, and the cap
    /// is counted there.
    fn post_thread(
        &self,
        finding: &Finding,
        line: u64,
        diff: &MergeRequestDiff,
        pipeline: u64,
    ) -> Result<Post, String> {
        let (client, project, mr, me) = (self.client, &self.context.project, self.mr, self.me);
        let position = json!({
            "position_type": "text",
            "base_sha": diff.version.base_commit_sha,
            "start_sha": diff.version.start_commit_sha,
            "head_sha": diff.version.head_commit_sha,
            "old_path": diff.old_path(&finding.path),
            "new_path": finding.path,
            "new_line": line,
        });
        let body = thread_body(finding, line, &self.context.job_name, pipeline);
        let mut outcome = Post::Refused;
        self.call("a finding's thread", &mut |t| {
            let now = gitlab::list_discussions(client, project, mr, t)?;
            let theirs: Vec<Marker> = now.iter().filter_map(|d| ours(d, me)).map(|o| o.marker).collect();
            if theirs.iter().any(|m| m.is_about(finding)) {
                outcome = Post::There;
                return Ok(());
            }
            if theirs.iter().filter(|m| m.pipeline == pipeline).count() >= CAP {
                outcome = Post::OverCap;
                return Ok(());
            }
            let accepted = gitlab::create_diff_discussion(client, project, mr, &body, &position, t)?;
            outcome = if accepted { Post::Posted } else { Post::Refused };
            Ok(())
        })?;
        Ok(outcome)
    }

    /// Threads whose finding is gone, from a report of the same tool in the job that started
    /// them, that no person has touched, are resolved as fixed; threads herald resolved whose
    /// finding is back are opened again.
    fn follow_up(
        &self,
        threads: &[Ours],
        findings: &[Finding],
        tools: &BTreeSet<String>,
        published: &mut Published,
    ) -> Result<(), String> {
        let (client, context, mr, me) = (self.client, self.context, self.mr, self.me);
        let project = &context.project;
        let tool_keys: BTreeSet<String> = tools.iter().map(|t| tool_key(t)).collect();
        let short_sha: String = context.sha.chars().take(8).collect();
        for thread in threads {
            let reported = findings.iter().any(|f| thread.marker.is_about(f));
            let only_mine = thread.discussion.notes.iter().all(|note| note.author.id == me);
            let resolved = thread.discussion.notes.iter().any(|note| note.resolved);
            if reported {
                let fixed_by_me = thread.discussion.notes.len() > 1
                    && thread.discussion.notes.last().is_some_and(|note| note.body.starts_with("Fixed in `"));
                if only_mine && resolved && fixed_by_me {
                    let reply =
                        format!("Reported again in `{short_sha}`: {} still finds it.", cell(&thread.marker.tool));
                    self.call(
                        "a finding's thread",
                        &mut reply_once(client, context, mr, me, &thread.discussion.id, &reply),
                    )?;
                    self.call("a finding's thread", &mut |t| {
                        gitlab::unresolve_discussion(client, project, mr, &thread.discussion.id, t)
                    })?;
                    published.reopened += 1;
                }
                continue;
            }
            let same_tool = tool_keys.contains(&tool_key(&thread.marker.tool));
            let same_job = thread.marker.job.as_ref().is_none_or(|job| *job == context.job_name);
            if !(same_tool && same_job && only_mine && !resolved) {
                continue;
            }
            let reply = format!("Fixed in `{short_sha}`: {} no longer reports it.", cell(&thread.marker.tool));
            self.call(
                "a fixed finding's thread",
                &mut reply_once(client, context, mr, me, &thread.discussion.id, &reply),
            )?;
            self.call("a fixed finding's thread", &mut |t| {
                gitlab::resolve_discussion(client, project, mr, &thread.discussion.id, t)
            })?;
            published.fixed += 1;
        }
        Ok(())
    }
}

/// A reply to a thread that looks before it is sent again: after an attempt whose answer was
/// lost, the thread is read, and a reply of the token's user with this text means it landed.
fn reply_once<'a>(
    client: &'a Client,
    context: &'a PublishContext,
    mr: u64,
    me: u64,
    discussion: &'a str,
    reply: &'a str,
) -> impl FnMut(std::time::Duration) -> Result<(), ApiError> + 'a {
    let mut tried = false;
    move |timeout| {
        if tried {
            let now = gitlab::list_discussions(client, &context.project, mr, timeout)?;
            let thread = now.iter().find(|d| d.id == discussion);
            if thread
                .is_some_and(|d| d.notes.iter().skip(1).any(|n| n.author.id == me && n.body.trim() == reply.trim()))
            {
                return Ok(());
            }
        }
        tried = true;
        gitlab::reply_to_discussion(client, &context.project, mr, discussion, reply, timeout)
    }
}

/// `app.py:1 F401`, short, and without `: ` (see `Published::summary`).
fn named(finding: &Finding) -> String {
    let text = format!("{}:{} {}", finding.path, finding.line, finding.rule.as_deref().unwrap_or(&finding.tool));
    let text = text.replace(": ", ":\u{a0}");
    if text.chars().count() <= LONGEST_NAMED {
        return text;
    }
    let tail: Vec<char> = text.chars().rev().take(LONGEST_NAMED - 1).collect();
    format!("…{}", tail.into_iter().rev().collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::thread::tests::finding;
    use super::*;

    #[test]
    fn summaries_count_what_matters_and_survive_the_notes_headline() {
        let mut published = Published {
            findings: 12,
            on_changed_lines: 3,
            posted: 2,
            already: 1,
            not_posted: 0,
            fixed: 1,
            reopened: 0,
            worst_elsewhere: Vec::new(),
        };
        assert_eq!(published.summary(), "12 findings, 3 on changed lines (2 new threads), 1 fixed");
        let mut far = finding();
        far.path = format!("{}/x: y.py", "deep/".repeat(20));
        published.worst_elsewhere = vec!["app.py:1 F401".into(), named(&far)];
        let summary = published.summary();
        assert!(summary
            .starts_with("12 findings, 3 on changed lines (2 new threads), 1 fixed — elsewhere app.py:1 F401, …"));
        assert_eq!(crate::report::note::headline(&summary), summary, "the note shows it whole");
    }
}
