//! Reading files herald does not trust, and the user ids that say whose a file is.
//!
//! A linter's report, a file a report names, a step's summary, a plan and the token file may all
//! have been put there by the merge request or the step: a symlink to `/proc/self/environ`, a
//! FIFO, `/dev/zero`, 10 GB of anything. Every such file is read here, one way:
//!
//! - opened with `O_NONBLOCK` (opening a FIFO or a device never waits for a writer), `O_NOCTTY`
//!   and, when the caller says so (`Links::Refuse`), `O_NOFOLLOW`: a link as the last name is
//!   refused (`Refused::Link`), not followed;
//! - regular files only, checked on the open file, not the name (no race between the two);
//! - read to a limit: either refused beyond it (`Opened::read_whole`) or cut at it
//!   (`Opened::read_head`), so no file grows memory past it.
//!
//! Refusals are a typed `Refused` whose `Display` is one line that never quotes the file; callers
//! that have their own wording (the token file, a step's summary) match on it. This module and
//! `supervise/sys.rs` are the only callers of libc (docs/design.md §2): here for open flags,
//! errno and the ids an owner check compares with, there for processes and signals.

use std::fs::{File, Metadata};
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Whether the file's own name may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A link is followed (a report the user named on the command line).
    Follow,
    /// A link is refused (`O_NOFOLLOW`): a file a step could have replaced.
    Refuse,
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The name is a symbolic link and the caller refuses links.
    #[error("is a symbolic link: not followed")]
    Link,
    /// The file could not be opened (missing, no permission, …).
    #[error("cannot be opened: {0}")]
    Open(std::io::Error),
    /// Not a regular file: a directory, FIFO, device or socket.
    #[error("is {}, not a regular file: not read", .0.in_words())]
    NotRegular(FileKind),
    /// Opened, but its metadata or bytes could not be read.
    #[error("cannot be read: {0}")]
    Read(std::io::Error),
    /// More bytes than the caller reads.
    #[error("holds more than {limit} bytes: not read")]
    TooLarge { limit: u64 },
}

impl Refused {
    /// The file does not exist (some callers take that as empty).
    pub fn is_missing(&self) -> bool {
        matches!(self, Refused::Open(error) if error.kind() == std::io::ErrorKind::NotFound)
    }
}

/// What a file that is not a regular one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    Device,
    Socket,
    Other,
}

impl FileKind {
    fn of(meta: &Metadata) -> FileKind {
        use std::os::unix::fs::FileTypeExt as _;
        let file_type = meta.file_type();
        if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_char_device() || file_type.is_block_device() {
            FileKind::Device
        } else if file_type.is_socket() {
            FileKind::Socket
        } else {
            FileKind::Other
        }
    }

    /// The kind in a reader's words: "a FIFO".
    pub fn in_words(self) -> &'static str {
        match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO",
            FileKind::Device => "a device",
            FileKind::Socket => "a socket",
            FileKind::Other => "not a regular file",
        }
    }
}

/// A regular file, open, not yet read: its metadata can be checked first (the token file's owner
/// and mode) without a race against the name.
pub struct Opened {
    file: File,
    meta: Metadata,
}

/// Opens the regular file at `path` without blocking, refusing a link as its name when `links`
/// says so.
pub fn open(path: &Path, links: Links) -> Result<Opened, Refused> {
    let no_follow = if links == Links::Refuse { libc::O_NOFOLLOW } else { 0 };
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY | no_follow)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if links == Links::Refuse && error.raw_os_error() == Some(libc::ELOOP) => return Err(Refused::Link),
        Err(error) => return Err(Refused::Open(error)),
    };
    let meta = file.metadata().map_err(Refused::Read)?;
    if !meta.is_file() {
        return Err(Refused::NotRegular(FileKind::of(&meta)));
    }
    Ok(Opened { file, meta })
}

/// The whole regular file at `path`, refused when over `limit` bytes (see `open`).
pub fn read(path: &Path, links: Links, limit: u64) -> Result<Vec<u8>, Refused> {
    open(path, links)?.read_whole(limit)
}

impl Opened {
    /// The open file's metadata (owner, mode, size).
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Every byte, or `TooLarge` when there are more than `limit` (however the file grows while
    /// it is read).
    pub fn read_whole(self, limit: u64) -> Result<Vec<u8>, Refused> {
        let mut bytes = Vec::new();
        self.file.take(limit.saturating_add(1)).read_to_end(&mut bytes).map_err(Refused::Read)?;
        if bytes.len() as u64 > limit {
            return Err(Refused::TooLarge { limit });
        }
        Ok(bytes)
    }

    /// The first `limit` bytes and the file's size (its length, or what was read if it grew).
    pub fn read_head(self, limit: u64) -> Result<(Vec<u8>, u64), Refused> {
        let mut bytes = Vec::with_capacity(self.meta.len().min(limit) as usize);
        self.file.take(limit).read_to_end(&mut bytes).map_err(Refused::Read)?;
        let size = self.meta.len().max(bytes.len() as u64);
        Ok((bytes, size))
    }
}

/// The process's real user id: whose private directory is whose.
pub fn real_user_id() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// The process's effective user id: the owner a file herald trusts must have.
pub fn effective_user_id() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fifo(path: &Path) {
        let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; mkfifo only makes the node.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn only_regular_files_are_read_and_none_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = dir.path().join("pipe");
        fifo(&pipe);
        for links in [Links::Follow, Links::Refuse] {
            assert!(matches!(read(&pipe, links, 10), Err(Refused::NotRegular(FileKind::Fifo))));
            assert!(matches!(read(Path::new("/dev/zero"), links, 10), Err(Refused::NotRegular(FileKind::Device))));
            assert!(matches!(read(dir.path(), links, 10), Err(Refused::NotRegular(FileKind::Directory))));
        }
        let missing = read(&dir.path().join("missing"), Links::Refuse, 10).unwrap_err();
        assert!(missing.is_missing(), "{missing}");
        assert_eq!(
            Refused::NotRegular(FileKind::Fifo).to_string(),
            "is a FIFO, not a regular file: not read",
            "one line, without the path"
        );
    }

    #[test]
    fn links_are_followed_only_when_the_caller_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), "text").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("real", &link).unwrap();
        assert_eq!(read(&link, Links::Follow, 10).unwrap(), b"text");
        assert!(matches!(read(&link, Links::Refuse, 10), Err(Refused::Link)));
    }

    #[test]
    fn reading_stops_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, "0123456789").unwrap();
        assert_eq!(read(&path, Links::Refuse, 10).unwrap(), b"0123456789");
        assert!(matches!(read(&path, Links::Refuse, 9), Err(Refused::TooLarge { limit: 9 })));
        let (head, size) = open(&path, Links::Refuse).unwrap().read_head(4).unwrap();
        assert_eq!((head.as_slice(), size), (&b"0123"[..], 10));
    }
}
