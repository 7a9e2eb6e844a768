//! `herald plan-summary PLAN_JSON`: a Terraform or OpenTofu plan (`terraform show -json`) as
//! Markdown on stdout, for the step's summary (`>> "$HERALD_STEP_SUMMARY"`; report/terraform.rs).

use std::path::Path;

use crate::output::{Failure, Outcome};
use crate::report::summary::read_bounded;
use crate::report::terraform::plan_summary;

/// Plans of large estates run to tens of megabytes of JSON; past this, the file is refused.
const MOST_PLAN_BYTES: usize = 256 * 1024 * 1024;

pub fn run(path: &Path) -> Outcome {
    let fail = |why: String| Failure::not_done(format!("herald plan-summary: {}: {why}", path.display()));
    let (bytes, size) = read_bounded(path, MOST_PLAN_BYTES, "the plan file").map_err(fail)?;
    if size as usize > MOST_PLAN_BYTES {
        return Err(fail(format!("larger than {} MiB: not summarised", MOST_PLAN_BYTES >> 20)));
    }
    if size == 0 && !path.exists() {
        return Err(fail("no such file".to_owned()));
    }
    let summary = plan_summary(&bytes).map_err(fail)?;
    print!("{summary}");
    Ok(0)
}
