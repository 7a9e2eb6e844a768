//! A note write a job still owes. A step that passed with more planned steps after it leaves the
//! note to the next step's herald (which renders after its own status, so it shows both), and
//! marks the debt in a file in the job's temporary directory. The next settled write pays it;
//! `herald finalize` (after_script) pays it if the job stopped early, before the next step ran.
//! Between the steps of a job this saves the whole note protocol, most of the requests a step
//! costs in a big pipeline (docs/benchmarks.md).

use std::path::PathBuf;

use crate::context::PublishContext;

fn marker(context: &PublishContext) -> Option<PathBuf> {
    let job = context.job_id.as_ref()?;
    Some(std::env::temp_dir().join(format!("herald-note-owed-{job}")))
}

/// This step's final state is not in the note yet.
pub fn owe(context: &PublishContext) {
    if let Some(path) = marker(context) {
        let _ = std::fs::write(path, b"");
    }
}

/// The note has been brought up to date since.
pub fn paid(context: &PublishContext) {
    if let Some(path) = marker(context) {
        let _ = std::fs::remove_file(path);
    }
}

pub fn is_owed(context: &PublishContext) -> bool {
    marker(context).is_some_and(|path| path.exists())
}
