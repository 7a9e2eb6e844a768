//! What the steps of one job tell each other about the note, in files in the job's temporary
//! directory (the steps of a job run one after another on the same machine). Both facts only
//! save requests; a missing or unreadable file costs a request, never correctness.
//!
//! - A note write the job still owes. A step that passed with more planned steps after it leaves
//!   the note to the next step's herald (which renders after its own status, so it shows both),
//!   and marks the debt. The next settled write pays it; `herald finalize` (after_script) pays it
//!   if the job stopped early, before the next step ran. Between the steps of a job this saves the
//!   whole note protocol, most of the requests a step costs in a big pipeline (docs/benchmarks.md).
//! - Until when the note is too fresh for a live write (`HERALD_MIN_UPDATE_INTERVAL`), as the last
//!   step to look at it saw. A step that starts within that time does not ask GitLab again only to
//!   be told to wait: its live write waits until then.
//! - What the job last wrote to the note (a hash of the body). A note written a moment ago looks
//!   busy, as when many jobs end together, and a step waits before writing it; when the job's own
//!   previous step wrote it, and nobody since, there is nobody to wait for.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::context::PublishContext;

fn file(context: &PublishContext, what: &str) -> Option<PathBuf> {
    let job = context.job_id.as_ref()?;
    Some(std::env::temp_dir().join(format!("herald-{what}-{job}")))
}

/// This step's final state is not in the note yet.
pub fn owe_note(context: &PublishContext) {
    if let Some(path) = file(context, "note-owed") {
        let _ = std::fs::write(path, b"");
    }
}

/// The note has been brought up to date since.
pub fn note_paid(context: &PublishContext) {
    if let Some(path) = file(context, "note-owed") {
        let _ = std::fs::remove_file(path);
    }
}

pub fn note_owed(context: &PublishContext) -> bool {
    file(context, "note-owed").is_some_and(|path| path.exists())
}

/// The note takes no live write before `until` (this machine's clock).
pub fn note_fresh_until(context: &PublishContext, until: SystemTime) {
    let Some(path) = file(context, "note-fresh") else { return };
    if let Ok(since_epoch) = until.duration_since(UNIX_EPOCH) {
        let _ = std::fs::write(path, since_epoch.as_millis().to_string());
    }
}

/// How long the note stays too fresh for a live write, as far as this job knows.
pub fn note_fresh_for(context: &PublishContext) -> Duration {
    let Some(path) = file(context, "note-fresh") else { return Duration::ZERO };
    let Some(millis) = std::fs::read_to_string(path).ok().and_then(|text| text.trim().parse::<u64>().ok()) else {
        return Duration::ZERO;
    };
    let until = UNIX_EPOCH + Duration::from_millis(millis);
    // Capped: a clock that jumped back must not silence live writes for long.
    until.duration_since(SystemTime::now()).unwrap_or_default().min(context.min_update_interval)
}

/// The job wrote the note with a body of this hash.
pub fn note_written(context: &PublishContext, body_hash: u64) {
    if let Some(path) = file(context, "note-written") {
        let _ = std::fs::write(path, body_hash.to_string());
    }
}

/// The hash of the body the job last wrote to the note.
pub fn note_last_written(context: &PublishContext) -> Option<u64> {
    let path = file(context, "note-written")?;
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Removes what the job's steps told each other (the job is over).
pub fn forget(context: &PublishContext) {
    for what in ["note-owed", "note-fresh", "note-written"] {
        if let Some(path) = file(context, what) {
            let _ = std::fs::remove_file(path);
        }
    }
}
