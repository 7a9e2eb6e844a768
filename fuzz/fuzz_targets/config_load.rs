//! Any bytes as a pipeline's root file, with two include files carved out of the same input:
//! loading must return a pipeline or an error, never panic or hang. The YAML reader (libyaml's
//! leniencies included), the rules evaluator and the globs all run on it.
#![no_main]

use herald::pipeline::{load_from, InMemory};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let root = parts.next().unwrap_or_default().to_vec();
    let included = parts.next().unwrap_or_default().to_vec();
    let nested = parts.next().unwrap_or_default().to_vec();
    let files =
        vec![(".gitlab-ci.yml".to_owned(), root), ("a.yml".to_owned(), included), ("ci/b.yml".to_owned(), nested)];
    // Variables of a push, so that job rules, only/except and workflow:rules are evaluated too.
    let variables: Vec<(String, String)> =
        [("CI_PIPELINE_SOURCE", "push"), ("CI_COMMIT_BRANCH", "main"), ("CI_COMMIT_REF_NAME", "main")]
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
    let _ = load_from(&InMemory(files), ".gitlab-ci.yml", None, &variables);
});
