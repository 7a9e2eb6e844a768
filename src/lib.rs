//! herald: supervise GitLab CI job steps like an init process and publish what they do.
//!
//! Data flows one way: `cli` parses flags → a command (`commands`) has `config` and `context`
//! resolve settings and where to publish (pure) → `lifecycle` has `supervise` run the step while
//! `publish` tells `gitlab` about it, and `report` show its outcome. Only `main` uses `cli`; every layer speaks to people through `output`.
//! See docs/design.md for the whole picture.

#[macro_use]
pub mod log;
pub mod cli;
mod commands;
pub mod config;
pub mod context;
pub mod duration;
pub mod env;
mod fault_injection;
pub mod findings;
pub mod gitlab;
mod lifecycle;
pub mod output;
mod persist;
pub mod pipeline;
pub mod publish;
pub mod redact;
pub mod report;
pub mod step;
pub mod supervise;
pub mod untrusted_file;
