//! One module per `herald` subcommand: each wires settings, supervision and reporting together.
//! Commands are leaves: no command's module uses another's (tests/cli.rs checks it); what several
//! share lives below them, in `lifecycle` (a step's lifecycle, the findings wiring, a job's end).
//! `executor` is GitLab Runner's custom-executor driver: the same step lifecycle as `run`, called
//! by the runner once per stage.

pub mod doctor;
pub mod executor;
pub mod findings;
pub mod note;
pub mod plan_summary;
pub mod run;
pub mod tasks;
