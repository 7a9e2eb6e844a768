//! The pipeline's own configuration: `.gitlab-ci.yml` and its includes, resolved the way GitLab
//! resolves them, for task names and planned steps (docs/design.md §4, reference §I).

pub mod config;
pub mod steps;
pub mod yaml;

pub use config::{load, Job, LoadError, Origin, Pipeline};
