//! The campaigns behind docs/benchmarks.md and docs/reliability.md: whole pipelines of concurrent
//! jobs, each step run through the real herald binary against the GitLab stand-in
//! (`herald_standin`), measured from outside. `examples/campaign.rs` runs them full size; the test
//! suite runs seconds-long versions of the same code (tests/campaign.rs).
//!
//! - `pipeline`: scale, faults, notes and latency: one merged-results pipeline of many jobs.
//! - `signals`: herald signalled mid-step.
//! - `trust`: the safety net under faults, allowed failures, and steps that leave processes behind.
//! - `job_files`: what herald keeps for a job between its steps, found by herald's own naming
//!   (`herald::publish::job_memory`), so the campaigns clean up after the jobs they ran.

pub mod job_files;
pub mod pipeline;
pub mod signals;
pub mod trust;

pub use job_files::{forget_job, job_state};

/// The campaigns' seeded randomness (xorshift64): the same seed, the same run.
pub(crate) fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
