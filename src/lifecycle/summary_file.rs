//! A step's summary file (`HERALD_STEP_SUMMARY`): made private before the step starts, read
//! once after it ends, removed. Apart from the lifecycle because it is the one part of it that
//! makes and owns files on disk.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::supervise::RunAs;

/// A step's summary file: a new file of its own under the temporary directory (0600, the stage
/// user's when the step runs as another), removed once read. Made with `O_EXCL`, so never one
/// that another user placed there first; in a sticky temporary directory no other user can
/// replace or remove it. No directory around it: making and removing one cost more than the
/// rest of a step's start on ext4 (docs/benchmarks.md, "Step overhead recovered").
pub(super) struct SummaryFile {
    pub(super) path: PathBuf,
}

impl SummaryFile {
    pub(super) fn create(base: PathBuf, owner: Option<&RunAs>) -> Option<SummaryFile> {
        for attempt in 0..8u32 {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let path = base.join(format!("herald-summary-{}-{nanos:x}{attempt}.md", std::process::id()));
            // Fails when the name exists, whoever made it (a link too: not followed): then
            // another name.
            if std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).is_err() {
                continue;
            }
            let file = SummaryFile { path };
            let owned =
                owner.is_none_or(|user| std::os::unix::fs::chown(&file.path, Some(user.uid), Some(user.gid)).is_ok());
            return owned.then_some(file);
        }
        log!(Debug, "no file for the step's summary under {}", base.display());
        None
    }
}

impl Drop for SummaryFile {
    /// Whatever the step left at the path: the file, a link or FIFO in its place (removed, never
    /// followed), or a directory.
    fn drop(&mut self) {
        if std::fs::remove_file(&self.path).is_err() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
