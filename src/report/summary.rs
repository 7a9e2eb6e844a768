//! Step summaries: the Markdown a step appends to the file `HERALD_STEP_SUMMARY` (and
//! `GITHUB_STEP_SUMMARY`) names, shown under its job in the merge-request note and, whole, in a
//! collapsed section of the job log.
//!
//! The file is hostile: the step wrote it, and may have replaced it with a FIFO, a symlink to a
//! secret, `/dev/zero` or 10 MB of anything. `read` opens it without following a link and without
//! blocking, takes regular files only, reads at most `LOG_LIMIT` bytes, checks UTF-8 and masks
//! secrets before anything is cut. What it refuses is one short notice, never a crash.
//!
//! Budgets (docs/design.md §6): the job log gets up to `LOG_LIMIT` (1 MiB); the note gets up to
//! `STEP_BUDGET` (8 KiB) of each step's summary, cut at a line boundary with a line that says so and
//! points to the job log, and up to `NOTE_BUDGET` (64 KiB) of summaries in all (report/note.rs), a
//! small share of GitLab's 1,000,000-character limit.

use std::path::Path;

use crate::redact::Secrets;
use crate::untrusted_file::{self, Links, Refused};

/// Most bytes of one summary read, and shown in the job log.
pub const LOG_LIMIT: usize = 1024 * 1024;
/// Most bytes of one step's summary in the note.
pub const STEP_BUDGET: usize = 8 * 1024;
/// Most bytes of all summaries in one note.
pub const NOTE_BUDGET: usize = 64 * 1024;
/// Most characters of a summary's one-line gist.
const GIST_CHARS: usize = 100;

/// What a step's summary file held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Summary {
    /// Nothing written (or only blanks): nothing is shown.
    Empty,
    /// Masked text, at most `LOG_LIMIT` bytes; `size` is the file's whole size in bytes.
    Text { text: String, size: u64 },
    /// Not shown, and why, in one line (not a regular file, not UTF-8, unreadable).
    Refused(String),
}

/// Reads the summary at `path` safely (see the module comment) and masks `secrets` in it.
pub fn read(path: &Path, secrets: &Secrets) -> Summary {
    match read_bounded(path, LOG_LIMIT, "the summary file") {
        Ok((bytes, size)) => from_bytes(&bytes, size, secrets),
        Err(notice) => Summary::Refused(notice),
    }
}

/// The summary from the bytes read (at most `LOG_LIMIT` of a file of `size` bytes): the part
/// that `read` does not do with the file system, and what the fuzz target drives.
pub fn from_bytes(bytes: &[u8], size: u64, secrets: &Secrets) -> Summary {
    let bytes = &bytes[..bytes.len().min(LOG_LIMIT)];
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        // Cut inside a character by the limit: the complete characters before it.
        Err(error) if error.error_len().is_none() && (bytes.len() as u64) < size => {
            std::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return Summary::Refused(format!("the summary is not UTF-8 text ({size} bytes): not shown")),
    };
    if text.trim().is_empty() {
        return Summary::Empty;
    }
    Summary::Text { text: secrets.mask(text), size }
}

/// At most `limit` bytes of the regular file at `path` (named `what` in messages) and its size,
/// opened without following a link and without blocking (untrusted_file.rs); a missing file is
/// empty. Refusals are one line that never quotes the file; they are only shown, never decided
/// on, so they stay text.
pub fn read_bounded(path: &Path, limit: usize, what: &str) -> Result<(Vec<u8>, u64), String> {
    let read = untrusted_file::open(path, Links::Refuse).and_then(|opened| opened.read_head(limit as u64));
    match read {
        Ok(read) => Ok(read),
        Err(refused) if refused.is_missing() => Ok((Vec::new(), 0)),
        Err(Refused::Link) => Err(format!("{what} was replaced by a symbolic link: not read")),
        Err(Refused::NotRegular(_)) => Err(format!("{what} is not a regular file: not read")),
        Err(Refused::Open(error) | Refused::Read(error)) => Err(format!("{what} cannot be read: {}", error.kind())),
        Err(refused @ Refused::TooLarge { .. }) => Err(format!("{what} {refused}")),
    }
}

/// The text the note shows of a summary: at most `budget` bytes, cut at a line boundary, with a
/// last line saying what was cut and that the whole text is in the job log.
pub fn for_note(text: &str, size: u64, budget: usize) -> String {
    let text = text.trim_end();
    let read_all = size <= LOG_LIMIT as u64;
    if text.len() <= budget && read_all {
        return text.to_owned();
    }
    let room = budget.saturating_sub(200);
    let kept = if text.len() <= room {
        text
    } else {
        let cut = super::cut_to_bytes(text, room);
        cut.rfind('\n').map_or("", |at| &text[..at])
    };
    let whole = if read_all { "the whole summary" } else { "its first MiB" };
    format!(
        "{kept}\n\n_… cut here: {} of {size} bytes not shown; {whole} is in the job log (section \"summary\")._",
        // Masking can make the text longer than the file was.
        size.saturating_sub(kept.len() as u64)
    )
}

/// The summary's gist in one line: its first heading, else its first non-blank line, as plain
/// text (not escaped: the note escapes it).
pub fn gist(text: &str) -> String {
    let lines = || text.lines().map(str::trim).filter(|line| !line.is_empty());
    let heading = lines().find(|line| line.starts_with('#') && line.trim_start_matches('#').starts_with(' '));
    let line = heading.or_else(|| lines().next()).unwrap_or_default();
    let line = line.trim_start_matches('#').trim();
    // A table's first row: its headers.
    let cells: String;
    let line = if line.starts_with('|') {
        cells = line.split('|').map(str::trim).filter(|cell| !cell.is_empty()).collect::<Vec<_>>().join(" · ");
        cells.as_str()
    } else {
        line
    };
    let mut gist: String = line.chars().take(GIST_CHARS).collect();
    if gist.len() < line.len() {
        gist.push('…');
    }
    gist
}

/// A summary's Markdown made inert for the note: it renders as Markdown (headings, lists, tables,
/// emphasis, links), but no HTML, no mention, no reference that notifies, no quick action and
/// nothing that could imitate or end herald's own blocks:
/// - `<` and `&` are entities everywhere (no tag, comment or entity can form: herald's hidden
///   `<!-- herald:… -->` markers cannot be written, nor `</details>`);
/// - `@` is followed by a zero-width space, as are `#`, `!` and `&` before a number (`#12`, `!3`,
///   `&4`: references that leave a "mentioned in" note where they point);
/// - a line starting with `/` gets a zero-width space before it (GitLab's quick actions);
/// - fenced code blocks become `<pre>` blocks of escaped text, closed at the end even when the
///   summary left one open, so a fence cannot swallow what follows.
pub fn inert_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let marker: String = trimmed.chars().take_while(|&c| c == '`' || c == '~').collect();
        let is_fence = indent <= 3 && marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char);
        match &fence {
            Some(open)
                if is_fence && marker.starts_with(open.as_str()) && trimmed[marker.len()..].trim().is_empty() =>
            {
                fence = None;
                out.push_str("</pre>\n");
            }
            Some(_) => {
                out.push_str(&inline(line, true));
                out.push('\n');
            }
            None if is_fence => {
                fence = Some(marker);
                out.push_str("<pre>");
            }
            None => {
                out.push_str(&inline(line, false));
                out.push('\n');
            }
        }
    }
    if fence.is_some() {
        out.push_str("</pre>\n");
    }
    out
}

/// Text for inside an HTML block (a `<summary>` title): no Markdown is read there, so only HTML,
/// mentions, references and control characters are neutralised (see `inert_markdown`).
pub fn html_text(text: &str) -> String {
    inline(text, true)
}

/// One line, neutralised (see `inert_markdown`); inside `<pre>` brackets are entities too.
fn inline(line: &str, in_pre: bool) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => out.push_str("&lt;"),
            '&' => {
                out.push_str("&amp;");
                // `&12` is an epic's reference.
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push('\u{200b}');
                }
            }
            '>' if in_pre => out.push_str("&gt;"),
            '[' if in_pre => out.push_str("&#91;"),
            ']' if in_pre => out.push_str("&#93;"),
            '@' => out.push_str("@\u{200b}"),
            // `#12` and `!3` (also `group/project#12`) are references GitLab cross-links, leaving a
            // "mentioned in" note on the issue or merge request. A link's `#anchor` is left alone.
            '#' | '!' => {
                out.push(c);
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push('\u{200b}');
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push(' '),
            // Unicode's invisible line and paragraph separators: some renderers break lines there.
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push(' '),
            c => out.push(c),
        }
    }
    // Checked on what is written, once control characters became spaces.
    if out.trim_start().starts_with('/') {
        out.insert(0, '\u{200b}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_markdown_is_inert() {
        let text =
            "# Plan\n/merge\n  /approve\n\u{1}/unlabel\n@all look <!-- herald:carried {} --> </details><img src=x>\n\
                    &#64;all #12 !3 &4 [docs](https://x.example/a%20b#usage)\n```\n</pre><b>x</b>\n";
        let inert = inert_markdown(text);
        assert!(!inert.replace("<pre>", "").replace("</pre>", "").contains('<'), "{inert}");
        assert!(!inert.contains("@all") && !inert.contains("&#64;") && !inert.contains("#12"), "{inert}");
        assert!(!inert.lines().any(|line| line.trim_start().starts_with('/')), "{inert}");
        assert!(inert.starts_with("# Plan\n"), "headings stay Markdown: {inert}");
        assert!(!inert.contains("!3") && !inert.contains("&amp;4"), "{inert}");
        assert!(inert.contains("(https://x.example/a%20b#usage)"), "links keep working: {inert}");
        assert_eq!(inert.matches("<pre>").count(), inert.matches("</pre>").count(), "{inert}");
    }

    #[test]
    fn gists_are_the_first_heading_or_line() {
        assert_eq!(gist("\n\nsome text\n## Plan: 1 to add\n"), "Plan: 1 to add");
        assert_eq!(gist("  first line  \nsecond"), "first line");
        assert_eq!(gist("| Name | Cover |\n|---|---|\n"), "Name · Cover");
        assert_eq!(gist(&"x".repeat(300)).chars().count(), GIST_CHARS + 1);
    }

    #[test]
    fn long_summaries_are_cut_at_a_line_with_a_pointer_to_the_log() {
        let text: String = (0..2000).map(|i| format!("line {i}\n")).collect();
        let shown = for_note(&text, text.len() as u64, STEP_BUDGET);
        assert!(shown.len() <= STEP_BUDGET, "{}", shown.len());
        assert!(shown.contains("line 10\n") && shown.ends_with("is in the job log (section \"summary\")._"));
        let before_notice = shown.rsplit_once("\n\n_…").unwrap().0;
        assert!(before_notice.lines().last().unwrap().starts_with("line "), "cut at a line boundary");
        assert_eq!(for_note("short\n", 6, STEP_BUDGET), "short");
        // Masked text longer than the file it came from.
        let masked = "[MASKED]\n".repeat(2000);
        assert!(for_note(&masked, 6000, STEP_BUDGET).contains("_… cut here: 0 of 6000 bytes"));
    }

    #[test]
    fn invalid_utf8_is_a_notice_and_a_cut_character_is_dropped() {
        assert!(matches!(from_bytes(b"ok \xff\xfe", 5, &Secrets::default()), Summary::Refused(_)));
        let euro = "€".as_bytes();
        let cut = from_bytes(&[b'a', euro[0], euro[1]], 10, &Secrets::default());
        assert_eq!(cut, Summary::Text { text: "a".into(), size: 10 });
        assert_eq!(from_bytes(b" \n", 2, &Secrets::default()), Summary::Empty);
    }
}
