//! Whole configurations loaded into plans: which jobs GitLab creates, how they may fail, and
//! what loading costs (config.rs's `load_from`, through the loader, the resolver and the fate).

use super::*;
use crate::pipeline::{AllowFailure, InMemory, When};

fn plan(config: &str, variables: &[(&str, &str)]) -> Pipeline {
    let files = InMemory(vec![(".gitlab-ci.yml".into(), config.as_bytes().to_vec())]);
    let variables: Vec<(String, String)> = variables.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    load_from(&files, ".gitlab-ci.yml", None, &variables).unwrap()
}

const FEATURE: [(&str, &str); 2] = [("CI_PIPELINE_SOURCE", "push"), ("CI_COMMIT_BRANCH", "feature/x")];

/// Issue 25: the plan the publisher uses has no job GitLab would not create.
#[test]
fn the_plan_has_only_jobs_gitlab_creates() {
    let config = "a:
  script: [x]
  rules:
    - when: never
b:
  script: [x]
  only: [main]
c:
  script: [x]
";
    let pipeline = plan(config, &FEATURE);
    assert_eq!(pipeline.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["c"]);
    assert_eq!(pipeline.not_created.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(pipeline.job("a").is_none() && pipeline.job("b").is_none());
    // The job herald runs in exists: a reading that excludes it defers to GitLab.
    let running: Vec<(&str, &str)> = FEATURE.iter().copied().chain([("CI_JOB_NAME", "b")]).collect();
    let b = plan(config, &running).job("b").cloned().unwrap();
    assert_eq!((b.when, b.allow_failure), (When::OnSuccess, AllowFailure::No), "no rules: its own");
    let ruled = "r:\n  script: [x]\n  rules:\n    - if: $NOPE\n      allow_failure: true\n    - if: $NEITHER\n      when: manual\n";
    let running: Vec<(&str, &str)> = FEATURE.iter().copied().chain([("CI_JOB_NAME", "r")]).collect();
    let r = plan(ruled, &running).job("r").cloned().unwrap();
    assert_eq!((r.when, r.allow_failure), (When::Unknown, AllowFailure::Unknown), "either rule may have matched");
}

/// Issue 25: `allow_failure` inside `rules:` is the job's; undecidable, it is GitLab's to say.
#[test]
fn allow_failure_in_rules_is_resolved() {
    let config = "\
            decided:\n  script: [x]\n  rules:\n    - if: $CI_COMMIT_BRANCH =~ /^feature/\n      allow_failure: true\n\
            codes:\n  script: [x]\n  rules:\n    - allow_failure: {exit_codes: [3]}\n\
            own:\n  script: [x]\n  allow_failure: true\n  rules:\n    - if: $CI_COMMIT_BRANCH\n\
            undecided:\n  script: [x]\n  rules:\n    - changes: [src/**]\n      allow_failure: true\n    - when: on_success\n\
            same-either-way:\n  script: [x]\n  rules:\n    - changes: [src/**]\n      allow_failure: true\n    - allow_failure: true\n\
            manual-rule:\n  script: [x]\n  rules:\n    - when: manual\n\
            manual-job:\n  script: [x]\n  when: manual\n";
    let pipeline = plan(config, &FEATURE);
    let allowed = |name: &str| pipeline.job(name).unwrap().allow_failure.clone();
    assert_eq!(allowed("decided"), AllowFailure::Yes);
    assert_eq!(allowed("codes"), AllowFailure::ExitCodes(vec![3]));
    assert_eq!(allowed("own"), AllowFailure::Yes, "a rule without allow_failure keeps the job's");
    assert_eq!(allowed("undecided"), AllowFailure::Unknown);
    assert_eq!(allowed("same-either-way"), AllowFailure::Yes, "every candidate rule agrees");
    assert_eq!(allowed("manual-rule"), AllowFailure::No, "when: manual in rules does not allow failure");
    assert_eq!(allowed("manual-job"), AllowFailure::Yes);
    assert_eq!(pipeline.job("undecided").unwrap().when, When::OnSuccess, "both candidates run on success");
}

/// Listing a checkout walks every file: done only when a glob or `exists:` needs it, once.
#[test]
fn the_checkout_is_listed_once_and_only_when_needed() {
    struct Counted(InMemory, std::cell::Cell<usize>);
    impl Source for Counted {
        fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
            self.0.read(path, limit)
        }
        fn list(&self) -> Vec<String> {
            self.1.set(self.1.get() + 1);
            self.0.list()
        }
    }
    let listings = |config: &str| {
        let files = InMemory(vec![(".gitlab-ci.yml".into(), config.as_bytes().to_vec())]);
        let source = Counted(files, std::cell::Cell::new(0));
        load_from(&source, ".gitlab-ci.yml", None, &[]).unwrap();
        source.1.get()
    };
    assert_eq!(listings("a:\n  script: [x]\n  rules:\n    - if: $X\n"), 0);
    let exists = "a:\n  script: [x]\n  rules:\n    - exists: [x]\nb:\n  script: [x]\n  rules:\n    - exists: [y]\n";
    assert_eq!(listings(exists), 1);
}

/// Rules see the YAML's variables (global, the job's, a matrix instance's) below the CI/CD ones.
#[test]
fn job_rules_see_yaml_and_matrix_variables() {
    let config = "variables:\n  DEPLOY: \"yes\"\n\
            deploy:\n  script: [x]\n  rules:\n    - if: $DEPLOY == \"yes\"\n\
            local:\n  variables: {DEPLOY: \"no\"}\n  script: [x]\n  rules:\n    - if: $DEPLOY == \"yes\"\n\
            cloud:\n  script: [x]\n  parallel:\n    matrix:\n      - PROVIDER: [aws, gcp]\n  rules:\n    - if: $PROVIDER == \"aws\"\n";
    let pipeline = plan(config, &FEATURE);
    let names: Vec<&str> = pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["deploy", "cloud: [aws]"]);
    let given: Vec<(&str, &str)> = FEATURE.iter().copied().chain([("DEPLOY", "no")]).collect();
    assert!(plan(config, &given).job("deploy").is_none(), "a CI/CD variable outranks the YAML's");
}
