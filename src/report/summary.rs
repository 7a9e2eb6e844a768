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
//! points to the job log, and up to `NOTE_BUDGET` (64 KiB) of summaries in all (report/note/folded.rs), a
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::inert_markdown;

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
