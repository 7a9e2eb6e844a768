//! herald: supervise GitLab CI job steps like an init process and publish what they do.
//!
//! Data flows one way: `cli` parses flags → `config` and `context` resolve settings and where to
//! publish (pure) → `supervise` runs the step while `publish` tells `gitlab` about it → `report`
//! shows its outcome. See docs/design.md for the whole picture.

#[macro_use]
pub mod log;
pub mod cli;
mod commands;
pub mod config;
pub mod context;
pub mod duration;
pub mod executor;
mod fault_injection;
pub mod gitlab;
pub mod pipeline;
pub mod publish;
pub mod redact;
pub mod report;
pub mod step;
pub mod supervise;
