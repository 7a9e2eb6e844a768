//! herald: supervise GitLab CI job steps like an init process and publish what they do.
//!
//! Data flows one way: `cli` parses flags → `config` resolves settings (pure) → `supervise` runs the
//! step → `report` shows its outcome. See ../shared/docs/design.md for the whole picture.

pub mod cli;
mod commands;
pub mod config;
pub mod duration;
pub mod report;
pub mod step;
pub mod supervise;
