//! Reading what reports name, as hostile input. A report, and every file a report points at, may
//! come from the merge request itself: a symlink to `/proc/self/environ`, a FIFO, `/dev/zero`.
//!
//! - Opened with `O_NONBLOCK`: opening a FIFO or a device never waits for a writer.
//! - Regular files only (checked on the open file, not the name: no race between the two).
//! - Read to a limit and refused beyond it, so no file grows memory past it.
//! - A file named by a report (a fix's source) must resolve inside the checkout: its real path,
//!   every symlink resolved, starts with the checkout's real path; it is then opened by that real
//!   path with `O_NOFOLLOW`, so a link swapped in after the check is not followed either.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The largest source file a suggestion is made from.
pub const LARGEST_SOURCE: u64 = 4 * 1024 * 1024;

/// Opens `path` without blocking; follows a symlink unless `no_follow`.
fn open(path: &Path, no_follow: bool) -> std::io::Result<File> {
    let flags = libc::O_NONBLOCK | if no_follow { libc::O_NOFOLLOW } else { 0 };
    std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path)
}

/// What kind of file this is, in a reader's words.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let file_type = meta.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// A report the user named: a regular file of at most `limit` bytes, as text; else why not
/// (one line's worth, without the path).
pub fn read_report(path: &Path, limit: u64) -> Result<String, String> {
    let file = open(path, false).map_err(|e| format!("cannot read it: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{}, not a regular file: not read", kind(&meta)));
    }
    read_bounded(file, limit).ok_or_else(|| format!("more than the {limit} bytes herald reads, or not UTF-8"))
}

/// A file of the checkout at `relative` (already checked to stay inside it by name), when it is
/// a regular file inside `root` (canonical) once every link is resolved, and at most
/// `LARGEST_SOURCE` bytes. None otherwise: the caller then makes no suggestion.
pub fn read_in_checkout(root: &Path, relative: &str) -> Option<String> {
    let real = std::fs::canonicalize(root.join(relative)).ok()?;
    if !real.starts_with(root) || real == root {
        return None;
    }
    let file = open(&real, true).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    read_bounded(file, LARGEST_SOURCE)
}

/// At most `limit` bytes of `file` as UTF-8; None when there are more, or they are not text.
fn read_bounded(file: File, limit: u64) -> Option<String> {
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).ok()?;
    if bytes.len() as u64 > limit {
        return None;
    }
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
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert_eq!(read_report(&fifo, 100), Err("a FIFO, not a regular file: not read".into()));
        assert_eq!(read_report(Path::new("/dev/zero"), 100), Err("a device, not a regular file: not read".into()));
        std::fs::write(dir.join("big.json"), "[]".repeat(60)).unwrap();
        assert!(read_report(&dir.join("big.json"), 100).unwrap_err().starts_with("more than the 100 bytes"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
