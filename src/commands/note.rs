//! `herald note [--final]` and `herald finalize`: the end of a pipeline and of a job.
//!
//! - `herald note` re-renders and writes the merge request's note now. With `--final` (a `.post`
//!   job with `when: always`) it first settles the statuses of every job that has ended.
//! - `herald finalize` (`after_script`) settles this job's own statuses from `CI_JOB_STATUS`,
//!   then updates the note when it changed anything, or when a passing step left the note to a
//!   next step that never ran (`publish::job_memory`).
//!
//! What `herald finalize` shares with the executor's cleanup, and `herald note` with both, is
//! `lifecycle/job_end.rs`. Settling (`publish::settle`) closes a step left open from evidence — the job's own record of
//! how each step ended, then herald's summary lines in the job log GitLab holds — and, without
//! evidence, in the state that cannot make the pipeline's verdict worse than the job's own; and
//! it turns the failures of a job that passed anyway (or was allowed to fail) into allowed ones.
//!
//! Exit codes: 0 when done (or nothing to do), 1 when GitLab refused or could not be reached
//! (use `allow_failure: true` so that a note problem never fails a pipeline), 125 for bad
//! configuration.

use std::time::Instant;

use crate::env::ProcessEnv;
use crate::lifecycle::job_end;
use crate::output::{Failure, Outcome};
use crate::publish::plan;
use crate::publish::settle::{self, Scope};

pub fn note(close_dangling: bool) -> Outcome {
    let Some((context, client)) = job_end::setup("herald note", &ProcessEnv)? else { return Ok(0) };
    let deadline = Instant::now() + context.flush_timeout.max(job_end::LEAST_TIME);
    let plan = plan::for_job(&context);
    if close_dangling {
        settle::settle(&client, &context, plan.as_ref(), deadline, &Scope::EndedJobs).map_err(Failure::not_done)?;
    }
    job_end::write_note(&client, &context, plan.as_ref(), deadline, true)
}

pub fn finalize() -> Outcome {
    job_end::finalize("herald finalize", &ProcessEnv)
}
