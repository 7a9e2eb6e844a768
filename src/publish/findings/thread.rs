//! A finding's thread as text: its body (what the tool says, escaped, and a suggestion when the
//! fix allows one) and herald's marker on its last line, which names the finding, the job and
//! the pipeline. Separate from the publishing run (mod.rs) because the marker is the protocol's
//! memory: what herald writes here is what it recognises there.

use super::*;

/// A thread of herald's, as its marker says.
pub(super) struct Ours<'d> {
    pub(super) discussion: &'d Discussion,
    pub(super) marker: Marker,
}

/// What herald's marker holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Marker {
    /// herald's identity; None in threads of herald before it had one.
    identity: Option<String>,
    pub(super) tool: String,
    /// The report's fingerprint (in old threads, with all but `[A-Za-z0-9._-]` dropped).
    fingerprint: String,
    /// The job that started the thread; None in old threads.
    pub(super) job: Option<String>,
    pub(super) pipeline: u64,
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
    pub(super) fn is_about(&self, finding: &Finding) -> bool {
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

/// A thread of herald's: started by the token's user, ending with herald's marker.
pub(super) fn ours(discussion: &Discussion, me: u64) -> Option<Ours<'_>> {
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
pub(super) mod tests {
    use super::*;
    use crate::findings::Severity;

    /// A ruff finding with a fix, also the publishing run's tests' (findings/mod.rs).
    pub(in crate::publish::findings) fn finding() -> Finding {
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
}
