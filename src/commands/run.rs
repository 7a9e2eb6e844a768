//! `herald run`: start the step at once, supervise it, show its outcome, exit with its code. The
//! step's lifecycle itself is `lifecycle::run_step`, which the executor's stages share.

use crate::config::{RunRequest, RunSettings};
use crate::env::ProcessEnv;
use crate::lifecycle::run_step;
use crate::output::{Failure, Outcome};
use crate::supervise::{ChildSetup, Supervisor};

pub fn run(args: RunRequest) -> Outcome {
    // Before anything else, so that a signal arriving from now on waits for the step.
    let supervisor = Supervisor::install()
        .map_err(|error| Failure::setup(format!("herald: cannot set up signal handling: {error}")))?;
    let settings =
        RunSettings::resolve(args, &ProcessEnv).map_err(|error| Failure::setup(format!("herald run: {error}")))?;
    Ok(run_step(&supervisor, &settings, &ChildSetup::default()).exit_code())
}
