//! One module per `herald` subcommand: each wires settings, supervision and reporting together.

pub mod doctor;
pub mod note;
pub mod run;
pub mod tasks;
