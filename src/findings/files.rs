//! Reading what reports name, as hostile input. A report, and every file a report points at, may
//! come from the merge request itself: a symlink to `/proc/self/environ`, a FIFO, `/dev/zero`.
//!
//! - Opened with `O_NONBLOCK`: opening a FIFO or a device never waits for a writer.
//! - Regular files only (checked on the open file, not the name: no race between the two).
//! - Read to a limit and refused beyond it, so no file grows memory past it.
//! - A file named by a report (a fix's source) must resolve inside the checkout: its real path,
//!   every symlink resolved, starts with the checkout's real path; it is then opened by that real
//!   path with `O_NOFOLLOW`, so a link swapped in after the check is not followed either.

use std::path::Path;

use crate::untrusted_file::{self, Links, Refused};

/// The largest source file a suggestion is made from.
pub const LARGEST_SOURCE: u64 = 4 * 1024 * 1024;

/// Why a report was not read. `Display` is one line without the path; the caller only prints it
/// (prefixed with the report's name), so the variants are the reader's own, worded for reports.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportRefused {
    #[error("cannot read it: {0}")]
    Unreadable(String),
    #[error("{0}, not a regular file: not read")]
    NotRegular(&'static str),
    #[error("more than the {0} bytes herald reads, or not UTF-8")]
    TooLargeOrNotText(u64),
}

/// A report the user named: a regular file of at most `limit` bytes, as text (a link is
/// followed: the user named it); else why not.
pub fn read_report(path: &Path, limit: u64) -> Result<String, ReportRefused> {
    let bytes = untrusted_file::read(path, Links::Follow, limit).map_err(|refused| match refused {
        Refused::Open(error) | Refused::Read(error) => ReportRefused::Unreadable(error.to_string()),
        Refused::NotRegular(kind) => ReportRefused::NotRegular(kind.in_words()),
        Refused::TooLarge { .. } => ReportRefused::TooLargeOrNotText(limit),
        // Links are followed here: never met.
        Refused::Link => ReportRefused::Unreadable(refused.to_string()),
    })?;
    String::from_utf8(bytes).map_err(|_| ReportRefused::TooLargeOrNotText(limit))
}

/// A file of the checkout at `relative` (already checked to stay inside it by name), when it is
/// a regular file inside `root` (canonical) once every link is resolved, and at most
/// `LARGEST_SOURCE` bytes. None otherwise: the caller then makes no suggestion.
pub fn read_in_checkout(root: &Path, relative: &str) -> Option<String> {
    let real = std::fs::canonicalize(root.join(relative)).ok()?;
    if !real.starts_with(root) || real == root {
        return None;
    }
    let bytes = untrusted_file::read(&real, Links::Refuse, LARGEST_SOURCE).ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_inside_the_checkout_are_read() {
        let base = std::env::temp_dir().join(format!("herald-files-{}", std::process::id()));
        let root = base.join("checkout");
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("app/a.py"), "x = 1\n").unwrap();
        std::fs::write(base.join("outside.py"), "secret\n").unwrap();
        std::os::unix::fs::symlink("/proc/self/environ", root.join("app/environ.py")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("app/zero.py")).unwrap();
        std::os::unix::fs::symlink(base.join("outside.py"), root.join("app/out.py")).unwrap();
        std::os::unix::fs::symlink("a.py", root.join("app/inside.py")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        assert_eq!(read_in_checkout(&root, "app/a.py").as_deref(), Some("x = 1\n"));
        assert_eq!(read_in_checkout(&root, "app/inside.py").as_deref(), Some("x = 1\n"), "a link inside is fine");
        for hostile in ["app/environ.py", "app/zero.py", "app/out.py", "app", "app/missing.py"] {
            assert_eq!(read_in_checkout(&root, hostile), None, "{hostile}");
        }
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn reports_that_are_not_regular_files_are_one_line_without_waiting() {
        let dir = std::env::temp_dir().join(format!("herald-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("ruff.json");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let refused = |path: &Path| read_report(path, 100).unwrap_err().to_string();
        assert_eq!(refused(&fifo), "a FIFO, not a regular file: not read");
        assert_eq!(refused(Path::new("/dev/zero")), "a device, not a regular file: not read");
        std::fs::write(dir.join("big.json"), "[]".repeat(60)).unwrap();
        assert!(refused(&dir.join("big.json")).starts_with("more than the 100 bytes"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
