//! A step's summary file (`HERALD_STEP_SUMMARY`): made private before the step starts, read
//! once after it ends, removed with everything in it. Apart from the lifecycle because it is the
//! one part of it that makes and owns files on disk.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::supervise::RunAs;

/// A step's summary file: `summary.md` in a new directory of its own under the temporary
/// directory (0700, the file 0600, both the stage user's when the step runs as another), removed
/// with everything in it once read. Nothing else is ever read from it.
pub(super) struct SummaryFile {
    dir: PathBuf,
    pub(super) path: PathBuf,
}

impl SummaryFile {
    pub(super) fn create(base: PathBuf, owner: Option<&RunAs>) -> Option<SummaryFile> {
        for attempt in 0..8u32 {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
            let dir = base.join(format!("herald-summary-{}-{nanos:x}{attempt}", std::process::id()));
            // Fails when the name exists, whoever made it: then another name.
            if std::fs::DirBuilder::new().mode(0o700).create(&dir).is_err() {
                continue;
            }
            let file = SummaryFile { path: dir.join("summary.md"), dir };
            let made = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file.path);
            let owned = made.is_ok()
                && owner.is_none_or(|user| {
                    std::os::unix::fs::chown(&file.path, Some(user.uid), Some(user.gid)).is_ok()
                        && std::os::unix::fs::chown(&file.dir, Some(user.uid), Some(user.gid)).is_ok()
                });
            return owned.then_some(file);
        }
        log!(Debug, "no directory for the step's summary under {}", base.display());
        None
    }
}

impl Drop for SummaryFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
