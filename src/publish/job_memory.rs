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

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::context::PublishContext;
use crate::env::Env;
use crate::persist::stable_hash;

/// The user's private directory for job state: `<tmp>/herald-<uid>`, mode 0700, owned by the
/// user and not a symlink; None (nothing is kept, which costs requests only) when it cannot be
/// made so. On a shared host, another user's job can neither read nor plant what herald reads.
/// Made and checked once per process.
fn private_dir() -> Option<&'static PathBuf> {
    static DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let uid = crate::untrusted_file::real_user_id();
        let dir = private_dir_in(&std::env::temp_dir(), uid);
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        let meta = std::fs::symlink_metadata(&dir).ok()?;
        let private = meta.is_dir() && meta.uid() == uid && meta.mode() & 0o077 == 0;
        if !private {
            log!(Debug, "{} is not a private directory of this user: job state is not kept", dir.display());
        }
        private.then_some(dir)
    })
    .as_ref()
}

/// The private directory of user `uid` in the temporary directory `tmp` (`private_dir` makes and
/// checks it; public for the same reason as `file_in`).
pub fn private_dir_in(tmp: &Path, uid: u32) -> PathBuf {
    tmp.join(format!("herald-{uid}"))
}

/// A file of this job's state, named after the server, project, pipeline and job, so that no
/// other job (of another GitLab, or another project with the same job id) ever reads it.
pub fn file(context: &PublishContext, what: &str) -> Option<PathBuf> {
    let job = context.job_id.as_ref()?;
    Some(file_in(private_dir()?, &context.api_url, &context.project, context.pipeline_id, job, what))
}

/// `file` for a job known by its keys, in `dir` (a user's private directory, `<tmp>/herald-<uid>`).
/// Public so that whoever runs jobs through herald outside GitLab (the test campaigns) finds and
/// removes their state by herald's own naming, never a copy of it that a changed key would
/// silently leave behind.
pub fn file_in(dir: &Path, api_url: &str, project: &str, pipeline: Option<u64>, job: &str, what: &str) -> PathBuf {
    let pipeline = pipeline.map_or_else(String::new, |id| id.to_string());
    let key = stable_hash(format!("{api_url}\n{project}\n{pipeline}\n{job}").as_bytes());
    dir.join(format!("job-{key:016x}-{what}"))
}

/// Every file of a job's state that `forget` removes when the job is over.
pub const JOB_FILES: [&str; 6] = ["note-owed", "note-fresh", "note-written", "steps", "pipeline.json", "summaries"];

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
        let _ = crate::persist::write_atomically(&path, since_epoch.as_millis().to_string());
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
        let _ = crate::persist::write_atomically(&path, body_hash.to_string());
    }
}

/// The hash of the body the job last wrote to the note.
pub fn note_last_written(context: &PublishContext) -> Option<u64> {
    let path = file(context, "note-written")?;
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A step of the job took this status name (before it starts to run, so the name is the job's
/// even if herald never sees the step end).
pub fn step_started(context: &PublishContext, name: &str) {
    append_record(context, &format!("started\t{}\n", one_field(name)));
}

/// A step ended: its status name, final state and description, kept as the evidence that
/// `herald finalize` closes the step from when the final post did not reach GitLab.
pub fn step_ended(context: &PublishContext, name: &str, state: &str, description: &str) {
    append_record(context, &format!("ended\t{}\t{state}\t{}\n", one_field(name), one_field(description)));
}

/// A step's summary for the note (report/summary.rs), by its status name; None: it wrote none.
/// The job's later steps (and `herald finalize`), which may write the note in its place, render
/// it from here; the note carries it on from then (carried.rs).
pub fn keep_summary(context: &PublishContext, name: &str, summary: Option<&str>) {
    let Some(path) = file(context, "summaries") else { return };
    let mut kept = summaries(context);
    match summary {
        Some(text) => kept.insert(name.to_owned(), text.to_owned()),
        None => kept.remove(name),
    };
    if let Ok(json) = serde_json::to_string(&kept) {
        let _ = crate::persist::write_atomically(&path, json);
    }
}

/// The summaries the job's steps kept, by status name.
pub fn summaries(context: &PublishContext) -> std::collections::BTreeMap<String, String> {
    file(context, "summaries")
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

/// One step of the job, as its herald recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    /// Its status name.
    pub name: String,
    /// Its final state (`success`, `failed`, `canceled`) and description, once it ended.
    pub ended: Option<(String, String)>,
}

/// What the job's steps recorded, in the order they started.
pub fn steps(context: &PublishContext) -> Vec<StepRecord> {
    let Some(text) = file(context, "steps").and_then(|path| std::fs::read_to_string(path).ok()) else {
        return Vec::new();
    };
    let mut steps: Vec<StepRecord> = Vec::new();
    for line in text.lines() {
        match line.split('\t').collect::<Vec<_>>().as_slice() {
            ["started", name] => steps.push(StepRecord { name: (*name).to_owned(), ended: None }),
            ["ended", name, state, description] if matches!(*state, "success" | "failed" | "canceled") => {
                let ended = Some(((*state).to_owned(), (*description).to_owned()));
                match steps.iter_mut().rev().find(|step| step.name == *name && step.ended.is_none()) {
                    Some(step) => step.ended = ended,
                    None => steps.push(StepRecord { name: (*name).to_owned(), ended }),
                }
            }
            _ => {} // not a line herald wrote: ignored
        }
    }
    steps
}

fn one_field(text: &str) -> String {
    text.replace(['\t', '\n', '\r'], " ")
}

fn append_record(context: &PublishContext, line: &str) {
    let Some(path) = file(context, "steps") else { return };
    let opened = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path);
    // One write of one line: appends of concurrent steps do not interleave.
    if let Ok(mut file) = opened {
        let _ = file.write_all(line.as_bytes());
    }
}

/// Whether the job has not been told `line` yet; records that it now has. A hint that would be
/// the same on every step (why herald is not publishing) is printed once per job, not once per
/// step. A job herald cannot name (no `CI_JOB_ID`) is told every time. Works without a
/// publishing context: the hint is printed precisely when there is none.
pub fn first_telling(env: &dyn Env, line: &str) -> bool {
    let Some(path) = told_file(env) else { return true };
    let told = format!("{:016x}\n", stable_hash(line.as_bytes()));
    if std::fs::read_to_string(&path).is_ok_and(|text| text.contains(&told)) {
        return false;
    }
    let opened = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path);
    if let Ok(mut file) = opened {
        let _ = file.write_all(told.as_bytes());
    }
    true
}

/// Forgets what the job was told (`herald finalize`: the job is over).
pub fn forget_told(env: &dyn Env) {
    if let Some(path) = told_file(env) {
        let _ = std::fs::remove_file(path);
    }
}

/// The file of the hints a job was given, keyed like `file` but from the job's variables.
fn told_file(env: &dyn Env) -> Option<PathBuf> {
    let text = |key: &str| env.non_empty(key).map(|value| value.to_string_lossy().trim().to_owned());
    let job = text("CI_JOB_ID")?;
    let key = ["CI_API_V4_URL", "CI_PROJECT_ID", "CI_PIPELINE_ID"].map(|key| text(key).unwrap_or_default()).join("\n");
    let key = stable_hash(format!("{key}\n{job}").as_bytes());
    Some(private_dir()?.join(format!("job-{key:016x}-told")))
}

/// Removes what the job's steps told each other (the job is over).
pub fn forget(context: &PublishContext) {
    for what in JOB_FILES {
        if let Some(path) = file(context, what) {
            let _ = std::fs::remove_file(path);
        }
    }
}
