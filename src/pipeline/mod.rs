//! The pipeline's own configuration: `.gitlab-ci.yml` and its includes, resolved the way GitLab
//! resolves them, for task names and planned steps (docs/design.md §7, gitlab.md §I, §M).

pub mod config;
mod fate;
pub mod fetch;
mod glob;
mod include;
mod inputs;
mod libyaml;
pub mod local;
mod model;
mod resolve;
mod rules;
mod source;
pub mod steps;
pub mod yaml;

pub use config::{load, load_from};
pub use model::{AllowFailure, Job, LoadError, Origin, Pipeline, When, Workflow};
pub use source::{Checkout, Fetch, InMemory, Source};

/// pipeline/ is pure (docs/design.md §2): it reads no environment, its callers pass the
/// variables (`env::ci_variables`). Checked on the source, since a read would pass every test
/// that runs with the variables it expects.
#[cfg(test)]
#[test]
fn the_pipeline_reads_no_environment() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipeline");
    let mut sources = vec![dir.clone()];
    let mut readers = Vec::new();
    while let Some(path) = sources.pop() {
        if path.is_dir() {
            sources.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            // Spelled in parts, so that this test does not find itself.
            let words = [
                concat!("std", "::env"),
                concat!("env", "::var"),
                concat!("crate", "::env"),
                concat!("Process", "Env"),
            ];
            readers.extend(
                words.iter().filter(|word| text.contains(*word)).map(|word| format!("{}: {word}", path.display())),
            );
        }
    }
    assert!(readers.is_empty(), "{readers:?}");
}
