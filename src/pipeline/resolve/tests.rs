//! The resolver's parts on their own: `parallel:` names, and what an unresolvable `!reference`
//! does to a job and to `workflow:rules`.

use super::*;
use crate::pipeline::yaml;

#[test]
fn matrix_and_count_names() {
    let parse = |text: &str| yaml::parse(text).unwrap().remove(0);
    let parallel_names = |name: &str, node: Option<&Node>| -> Vec<String> {
        parallel_instances(name, node).into_iter().map(|(name, _)| name).collect()
    };
    assert_eq!(parallel_names("test", Some(&parse("3"))), ["test 1/3", "test 2/3", "test 3/3"]);
    assert_eq!(parallel_names("test", Some(&parse("1"))), ["test 1/1"], "GitLab names even one instance");
    let matrix = parse("matrix:\n  - OS: [linux, mac]\n    ARCH: amd64\n");
    assert_eq!(parallel_names("build", Some(&matrix)), ["build: [linux, amd64]", "build: [mac, amd64]"]);
}

/// A `!reference` that cannot be resolved fails its job with one line, but only makes
/// `workflow:rules` unknown: the pipeline exists, herald just cannot say why.
#[test]
fn unresolvable_references_fail_jobs_and_leave_the_workflow_unknown() {
    let load = |config: &str| {
        let files = crate::pipeline::InMemory(vec![(".gitlab-ci.yml".into(), config.as_bytes().to_vec())]);
        crate::pipeline::load_from(&files, ".gitlab-ci.yml", None, &[])
    };
    let error = |config: &str| load(config).unwrap_err().to_string();
    assert_eq!(
        error("a:\n  script: !reference [.b, script]\n"),
        ".gitlab-ci.yml:2:3: job 'a': !reference to unknown job '.b'"
    );
    assert_eq!(
        error(".b: {}\na:\n  script: !reference [.b, script]\n"),
        ".gitlab-ci.yml:3:3: job 'a': !reference [.b, script]: no 'script'"
    );
    assert_eq!(
        error(".b:\n  extends: .c\na:\n  script: !reference [.b, script]\n"),
        ".gitlab-ci.yml:4:3: job 'a': .gitlab-ci.yml:2:12: '.b' extends '.c', which does not exist"
    );
    let workflow = "workflow:\n  rules: !reference [.nope, rules]\na:\n  script: [x]\n";
    assert_eq!(load(workflow).unwrap().workflow, Workflow::Unknown);
}
