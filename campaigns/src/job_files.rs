//! What herald keeps for a job between its steps (`herald::publish::job_memory`), where herald
//! keeps it: the campaigns run jobs outside GitLab, so they remove it themselves, as `herald
//! finalize` does at the end of a job, and tests look at it. Named by herald's own functions, so a
//! changed key or a new file cannot silently leave files behind.

use std::path::{Path, PathBuf};

use herald::publish::job_memory;
use herald_standin::{PIPELINE_MERGED, PROJECT_ID};

/// Removes what herald keeps for a job of the stand-in's merged-results pipeline, in this
/// process's temporary directory (where the campaigns' herald keeps it).
pub fn forget_job(api_url: &str, job_id: &str) {
    for what in job_memory::JOB_FILES {
        let path = job_state(&std::env::temp_dir(), api_url, &PROJECT_ID.to_string(), PIPELINE_MERGED, job_id, what);
        let _ = std::fs::remove_file(path);
    }
}

/// Where herald keeps `what` for one job (server, project, pipeline, job) when its temporary
/// directory is `tmp`: in this user's private directory there.
pub fn job_state(tmp: &Path, api_url: &str, project: &str, pipeline: u64, job: &str, what: &str) -> PathBuf {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    job_memory::file_in(&job_memory::private_dir_in(tmp, uid), api_url, project, Some(pipeline), job, what)
}
