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

/// A thread of herald's, as its marker says.
struct Ours<'d> {
    discussion: &'d Discussion,
    marker: Marker,
}

/// What herald's marker holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Marker {
    /// herald's identity; None in threads of herald before it had one.
    identity: Option<String>,
    tool: String,
    /// The report's fingerprint (in old threads, with all but `[A-Za-z0-9._-]` dropped).
    fingerprint: String,
    /// The job that started the thread; None in old threads.
    job: Option<String>,
    pipeline: u64,
}

impl Marker {
    fn of(finding: &Finding, job: &str, pipeline: u64) -> Marker {
        Marker {
            identity: Some(finding.identity.clone()),
            tool: finding.tool.clone(),
            fingerprint: finding.fingerprint.clone(),
            job: Some(job.to_owned()),
            pipeline,
        }
    }

    /// The marker's line: every value percent-encoded, so that none can end the comment,
    /// mention anyone, or lose a character.
    fn line(&self) -> String {
        let mut line = MARKER.to_owned();
        if let Some(identity) = &self.identity {
            line.push_str(&format!("id={} ", encode(identity)));
        }
        line.push_str(&format!("tool={} fp={} ", encode(&self.tool), encode(&self.fingerprint)));
        if let Some(job) = &self.job {
            line.push_str(&format!("job={} ", encode(job)));
        }
        line.push_str(&format!("pipeline={}{MARKER_END}", self.pipeline));
        line
    }

    /// The marker a body ends with: the last one, and only when nothing but blank space follows.
    fn parse(body: &str) -> Option<Marker> {
        let body = body.trim_end();
        let fields = body.get(body.rfind(MARKER)? + MARKER.len()..)?.strip_suffix(MARKER_END)?;
        if fields.contains("-->") {
            return None;
        }
        let field = |key: &str| {
            fields.split_whitespace().find_map(|part| part.strip_prefix(key)?.strip_prefix('=')).map(decode)
        };
        Some(Marker {
            identity: field("id"),
            tool: field("tool")?,
            fingerprint: field("fp")?,
            job: field("job"),
            pipeline: field("pipeline").and_then(|p| p.parse().ok()).unwrap_or_default(),
        })
    }

    /// Whether this thread is about `finding`.
    fn is_about(&self, finding: &Finding) -> bool {
        if self.identity.as_deref() == Some(finding.identity.as_str()) {
            return true;
        }
        if tool_key(&self.tool) != tool_key(&finding.tool) {
            return false;
        }
        match self.identity {
            Some(_) => !finding.fingerprint.is_empty() && self.fingerprint == finding.fingerprint,
            // Threads of herald before identities: the report's fingerprint with only these
            // characters kept, or herald's hash when the report had none.
            None if finding.fingerprint.is_empty() => {
                !finding.legacy_fingerprint.is_empty() && self.fingerprint == finding.legacy_fingerprint
            }
            None => {
                let kept: String =
                    finding.fingerprint.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).collect();
                self.fingerprint == kept
            }
        }
    }
}

fn encode(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'.').remove(b'_').remove(b'-').remove(b'~');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
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
    let threads: Vec<Ours> = discussions.iter().filter_map(|discussion| ours(discussion, me)).collect();
    let has_thread = |finding: &Finding| threads.iter().any(|o| o.marker.is_about(finding));

    let mut published = Published { findings: findings.len(), ..Published::default() };
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
    // The most severe first; then in file order, so the same report posts the same threads.
    new.sort_by(|(a, _), (b, _)| b.severity.cmp(&a.severity).then(a.path.cmp(&b.path)).then(a.line.cmp(&b.line)));
    let pipeline = context.pipeline_id.unwrap_or_default();
    let mut cap_reached = false;
    for (finding, line) in new {
        if cap_reached {
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
        let body = thread_body(finding, line, &context.job_name, pipeline);
        let mut outcome = Post::Refused;
        call("a finding's thread", &mut |t| {
            // Look first: an earlier attempt whose answer was lost may have landed, and other
            // jobs of this pipeline post too.
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
        match outcome {
            Post::Posted => published.posted += 1,
            Post::There => published.already += 1,
            Post::OverCap => {
                cap_reached = true;
                published.not_posted += 1;
            }
            Post::Refused => published.not_posted += 1,
        }
    }

    // Threads whose finding is gone, from a report of the same tool in the job that started
    // them, that no person has touched; and threads herald resolved whose finding is back.
    let tool_keys: BTreeSet<String> = tools.iter().map(|t| tool_key(t)).collect();
    let short_sha: String = context.sha.chars().take(8).collect();
    for thread in &threads {
        let reported = findings.iter().any(|f| thread.marker.is_about(f));
        let only_mine = thread.discussion.notes.iter().all(|note| note.author.id == me);
        let resolved = thread.discussion.notes.iter().any(|note| note.resolved);
        if reported {
            let fixed_by_me = thread.discussion.notes.len() > 1
                && thread.discussion.notes.last().is_some_and(|note| note.body.starts_with("Fixed in `"));
            if only_mine && resolved && fixed_by_me {
                let reply = format!("Reported again in `{short_sha}`: {} still finds it.", cell(&thread.marker.tool));
                call("a finding's thread", &mut reply_once(client, context, mr, me, &thread.discussion.id, &reply))?;
                call("a finding's thread", &mut |t| {
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
        call("a fixed finding's thread", &mut reply_once(client, context, mr, me, &thread.discussion.id, &reply))?;
        call("a fixed finding's thread", &mut |t| {
            gitlab::resolve_discussion(client, project, mr, &thread.discussion.id, t)
        })?;
        published.fixed += 1;
    }
    Ok(published)
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

/// A thread of herald's: started by the token's user, ending with herald's marker.
fn ours(discussion: &Discussion, me: u64) -> Option<Ours<'_>> {
    let first = discussion.notes.first().filter(|note| note.author.id == me)?;
    Some(Ours { discussion, marker: Marker::parse(&first.body)? })
}

/// A finding's thread, as the job `job` of pipeline `pipeline` posts it on `line`.
pub fn thread_body(finding: &Finding, line: u64, job: &str, pipeline: u64) -> String {
    body_with(finding, line, &Marker::of(finding, job, pipeline))
}

/// A finding's thread: what the tool says, a suggestion when it offers a fix, the marker last.
fn body_with(finding: &Finding, line: u64, marker: &Marker) -> String {
    let icon = match finding.severity {
        Severity::Blocker | Severity::Critical => "🛑",
        Severity::Major => "⚠️",
        Severity::Minor | Severity::Info => "💡",
    };
    let rule = match (finding.rule.as_deref(), finding.link.as_deref()) {
        // `@` encoded: not a mention in a link's target either (found by fuzzing).
        (Some(rule), Some(link)) => format!(" [<code>{}</code>]({})", cell(rule), link.replace('@', "%40")),
        (Some(rule), None) => format!(" <code>{}</code>", cell(rule)),
        (None, _) => String::new(),
    };
    let mut body =
        format!("{icon} **{}**{rule} ({}): {}\n", cell(&finding.tool), finding.severity.word(), cell(&finding.message));
    if let Some(lines) = finding.suggestion.as_ref().filter(|lines| suggestable(lines)) {
        let above = line - finding.line;
        let below = finding.end_line - line;
        let what = finding.fix_description.as_deref().map(|d| format!(": {}", cell(d))).unwrap_or_default();
        let count = finding.end_line - finding.line + 1;
        let label = match (lines.is_empty(), count) {
            (true, 1) => "Suggested fix, **deletes this line**".to_owned(),
            (true, n) => format!("Suggested fix, **deletes these {n} lines**"),
            (false, _) => "Suggested fix".to_owned(),
        };
        body.push_str(&format!("\n{label}{what}\n\n```suggestion:-{above}+{below}\n"));
        for text in lines {
            body.push_str(text);
            body.push('\n');
        }
        body.push_str("```\n");
    }
    body.push('\n');
    body.push_str(&marker.line());
    body.push('\n');
    body
}

/// Whether a fix can go into a suggestion block as it is: nothing in it may end the block, run a
/// quick action, mention anyone or open an HTML comment.
fn suggestable(lines: &[String]) -> bool {
    lines.iter().all(|line| {
        !line.contains("```") && !line.trim_start().starts_with('/') && !line.contains('@') && !line.contains("<!--")
    })
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
            identity: "0123456789abcdef".into(),
            legacy_fingerprint: String::new(),
            link: Some("https://docs.astral.sh/ruff/rules/bare-except".into()),
            suggestion: Some(vec!["    except ValueError:".into()]),
            fix_description: None,
        }
    }

    #[test]
    fn a_thread_says_what_the_tool_says_inertly_and_offers_its_fix() {
        let body = body_with(&finding(), 15, &Marker::of(&finding(), "lint", 1003));
        assert_eq!(
            body,
            "⚠️ **ruff** [<code>E722</code>](https://docs.astral.sh/ruff/rules/bare-except) (major): Do not use bare \\`except\\` @\u{200b}all /merge &lt;b&gt;\n\n\
             Suggested fix\n\n```suggestion:-0+0\n    except ValueError:\n```\n\n\
             <!-- herald:finding id=0123456789abcdef tool=ruff fp=c639593d83c7c0d6 job=lint pipeline=1003 -->\n"
        );
        let mut hostile = finding();
        hostile.suggestion = Some(vec!["```".into()]);
        hostile.tool = "ru-->ff @x".into();
        let body = body_with(&hostile, 15, &Marker::of(&hostile, "lint", 1));
        assert!(!body.contains("suggestion") && body.contains("tool=ru--%3Eff%20%40x "), "{body}");
        hostile.link = Some("https://rus@t-lang.github.io/x".into());
        assert!(
            body_with(&hostile, 15, &Marker::of(&hostile, "lint", 1)).contains("(https://rus%40t-lang.github.io/x)")
        );
        let mut deletion = finding();
        deletion.suggestion = Some(vec![]);
        deletion.fix_description = Some("Remove unused import: `os`".into());
        let body = body_with(&deletion, 15, &Marker::of(&deletion, "lint", 1));
        assert!(
            body.contains(
                "Suggested fix, **deletes this line**: Remove unused import: \\`os\\`\n\n```suggestion:-0+0\n```"
            ),
            "{body}"
        );
    }

    #[test]
    fn markers_keep_every_character_and_only_the_last_one_counts() {
        let mut tricky = finding();
        tricky.tool = "Semgrep OSS".into();
        tricky.fingerprint = "hash:1+/= -->x".into();
        let marker = Marker::of(&tricky, "lint: py", 7);
        assert_eq!(Marker::parse(&body_with(&tricky, 15, &marker)), Some(marker.clone()));
        assert!(marker.is_about(&tricky));
        // A fix quoting a marker of its own comes before herald's, which is last.
        let mut imitating = tricky.clone();
        imitating.suggestion = Some(vec!["<!-- herald:finding id=x tool=ruff fp=zz pipeline=1 -->".into()]);
        imitating.message = "<!-- herald:finding id=y tool=ruff fp=yy pipeline=1 -->".into();
        assert_eq!(Marker::parse(&body_with(&imitating, 15, &marker)), Some(marker.clone()));
        // Text after the marker: not a marker of herald's.
        assert_eq!(Marker::parse(&format!("{}\nmore", marker.line())), None);
    }

    #[test]
    fn a_finding_is_its_threads_whatever_the_format_or_spelling() {
        let marker = Marker::of(&finding(), "lint", 1);
        let mut as_code_quality = finding();
        as_code_quality.tool = "Ruff".into();
        as_code_quality.fingerprint = String::new();
        assert!(marker.is_about(&as_code_quality), "same identity");
        let mut moved = finding();
        moved.identity = "other".into();
        moved.tool = "RUFF".into();
        assert!(marker.is_about(&moved), "the same tool's fingerprint");
        moved.tool = "eslint".into();
        assert!(!marker.is_about(&moved), "another tool's fingerprint is its own");
        // A thread of herald before identities: its fingerprint kept `[A-Za-z0-9._-]` only.
        let legacy = Marker::parse("x\n<!-- herald:finding tool=ruff fp=hash1 pipeline=3 -->").unwrap();
        let mut old = finding();
        old.identity = "new".into();
        old.fingerprint = "hash:1".into();
        assert!(legacy.is_about(&old));
        let legacy = Marker::parse("x\n<!-- herald:finding tool=ruff fp=00aa11bb22cc33dd pipeline=3 -->").unwrap();
        old.fingerprint = String::new();
        old.legacy_fingerprint = "00aa11bb22cc33dd".into();
        assert!(legacy.is_about(&old), "a finding without a fingerprint, by herald's old hash");
    }

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
