//! `context`'s unit tests: where results go, for each set of variables a user meets.

use super::*;
use crate::env::MapEnv;
use std::collections::HashMap;

/// The token of a token file is in no variable, and is masked all the same: in findings'
/// text, step names and everything herald says.
#[test]
fn the_token_of_a_token_file_is_a_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "Legacy20charTokenXyZ9\n").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let vars = [("CI_JOB_NAME".to_owned(), "lint".to_owned())];
    let text = "app/y-Legacy20charTokenXyZ9.py";
    assert_eq!(secrets(&vars, Some(file.as_os_str())).mask(text), "app/y-[MASKED].py");
    assert_eq!(secrets(&vars, None).mask(text), text, "nothing to mask without the file");
}

const BRANCH_PIPELINE: &[(&str, &str)] = &[
    ("GITLAB_CI", "true"),
    ("HERALD_TOKEN", "glpat-secret"),
    ("CI_API_V4_URL", "https://gitlab.example.com/api/v4/"),
    ("CI_PROJECT_ID", "42"),
    ("CI_PROJECT_PATH", "group/app"),
    ("CI_COMMIT_SHA", "abc123"),
    ("CI_PIPELINE_ID", "1001"),
    ("CI_PIPELINE_SOURCE", "push"),
    ("CI_COMMIT_BRANCH", "feature"),
    ("CI_COMMIT_REF_NAME", "feature"),
    ("CI_JOB_NAME", "test"),
    ("CI_JOB_URL", "https://gitlab.example.com/group/app/-/jobs/7"),
    ("CI_OPEN_MERGE_REQUESTS", "other/app!3,group/app!12"),
];

fn resolve_with(base: &[(&'static str, &'static str)], changes: &[(&'static str, Option<&'static str>)]) -> Publishing {
    let mut vars: HashMap<_, _> = base.iter().copied().collect();
    for (key, value) in changes {
        match value {
            Some(value) => vars.insert(key, value),
            None => vars.remove(key),
        };
    }
    resolve(&MapEnv(vars)).unwrap()
}

fn on(publishing: Publishing) -> PublishContext {
    match publishing {
        Publishing::On(context) => *context,
        Publishing::Off(why) => panic!("expected publishing, got {why:?}"),
    }
}

#[test]
fn branch_pipelines_send_the_branch_as_ref() {
    let context = on(resolve_with(BRANCH_PIPELINE, &[]));
    assert_eq!(context.api_url, "https://gitlab.example.com/api/v4");
    assert_eq!((context.project.as_str(), context.sha.as_str()), ("42", "abc123"));
    assert_eq!(context.pipeline_id, Some(1001));
    assert_eq!(context.status_ref.as_deref(), Some("feature"));
    assert_eq!(context.mr_iid, Some(12), "from CI_OPEN_MERGE_REQUESTS, this project's entry");
    assert_eq!(context.job_url.as_deref(), Some("https://gitlab.example.com/group/app/-/jobs/7"));
    assert_eq!((context.status_prefix.as_str(), context.flush_timeout), ("herald", DEFAULT_FLUSH_TIMEOUT));
}

#[test]
fn merge_request_pipelines_send_no_ref() {
    let merged_results = on(resolve_with(
        BRANCH_PIPELINE,
        &[
            ("CI_PIPELINE_SOURCE", Some("merge_request_event")),
            ("CI_COMMIT_BRANCH", None),
            ("CI_MERGE_REQUEST_IID", Some("12")),
            ("CI_MERGE_REQUEST_EVENT_TYPE", Some("merged_result")),
            ("CI_COMMIT_SHA", Some("merge-commit-sha")),
        ],
    ));
    assert_eq!(merged_results.status_ref, None);
    assert_eq!(merged_results.sha, "merge-commit-sha", "the merge commit the pipeline runs on");
    assert_eq!(merged_results.mr_iid, Some(12));
}

#[test]
fn tag_pipelines_send_the_tag() {
    let tag = on(resolve_with(BRANCH_PIPELINE, &[("CI_COMMIT_BRANCH", None), ("CI_COMMIT_TAG", Some("v1.2"))]));
    assert_eq!(tag.status_ref.as_deref(), Some("v1.2"));
}

#[test]
fn overrides_win() {
    let context = on(resolve_with(
        BRANCH_PIPELINE,
        &[
            ("HERALD_PROJECT", Some("group/other")),
            ("HERALD_SHA", Some("def456")),
            ("HERALD_PIPELINE_ID", Some("7")),
            ("HERALD_MR_IID", Some("5")),
            ("HERALD_API_URL", Some("http://127.0.0.1:9/api/v4")),
            ("HERALD_STATUS_PREFIX", Some("ci")),
            ("HERALD_FLUSH_TIMEOUT", Some("3s")),
            ("CI_SERVER_TLS_CA_FILE", Some("/etc/gitlab-ca.pem")),
        ],
    ));
    assert_eq!((context.project.as_str(), context.sha.as_str()), ("group/other", "def456"));
    assert_eq!((context.pipeline_id, context.mr_iid), (Some(7), Some(5)));
    assert_eq!(context.api_url, "http://127.0.0.1:9/api/v4");
    assert_eq!((context.status_prefix.as_str(), context.flush_timeout), ("ci", Duration::from_secs(3)));
    assert_eq!(context.ca_file, Some(PathBuf::from("/etc/gitlab-ca.pem")));
}

#[test]
fn modes() {
    assert!(matches!(resolve_with(BRANCH_PIPELINE, &[("HERALD_MODE", Some("off"))]), Publishing::Off(None)));
    assert!(matches!(resolve_with(BRANCH_PIPELINE, &[("GITLAB_CI", None)]), Publishing::Off(None)));
    assert!(matches!(resolve_with(BRANCH_PIPELINE, &[("HERALD_MODE", Some("local-only"))]), Publishing::Off(None)));
    let local = resolve_with(BRANCH_PIPELINE, &[("GITLAB_CI", None), ("HERALD_MODE", Some("Local-Only"))]);
    assert!(matches!(local, Publishing::On(_)));
    assert!(matches!(
        resolve_with(BRANCH_PIPELINE, &[("GITLAB_CI", None), ("HERALD_MODE", Some("always"))]),
        Publishing::On(_)
    ));
}

#[test]
fn says_why_and_how_to_fix_when_it_cannot_publish() {
    let reason = |changes: &[(&'static str, Option<&'static str>)]| match resolve_with(BRANCH_PIPELINE, changes) {
        Publishing::Off(Some(line)) => line,
        other => panic!("{other:?}"),
    };
    let no_token = reason(&[("HERALD_TOKEN", None)]);
    assert!(no_token.contains("HERALD_TOKEN is not set; add a project access token"));
    let job_token = reason(&[("HERALD_TOKEN", Some("glcbt-64_x"))]);
    assert!(job_token.contains("CI job token"));
    let no_sha = reason(&[("CI_COMMIT_SHA", None), ("GITLAB_CI", None), ("HERALD_MODE", Some("always"))]);
    assert!(no_sha.contains("set HERALD_SHA"));
    for line in [no_token, job_token, no_sha] {
        assert_eq!(line.lines().count(), 1);
    }
}

#[test]
fn the_token_can_live_in_a_variable_of_the_projects_choosing() {
    let elsewhere = [("HERALD_TOKEN", None), ("HERALD_TOKEN_VARIABLE", Some("GROUP_BOT_TOKEN"))];
    let Publishing::Off(Some(why)) = resolve_with(BRANCH_PIPELINE, &elsewhere) else { panic!("no token yet") };
    assert!(why.contains("GROUP_BOT_TOKEN is not set"), "{why}");
    let set = [&elsewhere[..], &[("GROUP_BOT_TOKEN", Some("bot-secret"))]].concat();
    let Publishing::On(context) = resolve_with(BRANCH_PIPELINE, &set) else { panic!("publishes") };
    assert!(context.token == Token::new("bot-secret"));
    let mut vars: HashMap<_, _> = BRANCH_PIPELINE.iter().copied().collect();
    vars.insert("HERALD_TOKEN_VARIABLE", "NOT A NAME");
    let error = resolve(&MapEnv(vars)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("HERALD_TOKEN_VARIABLE must be a variable name"), "{error}");
}

#[test]
fn dry_run_needs_no_token() {
    let context = on(resolve_with(BRANCH_PIPELINE, &[("HERALD_TOKEN", None), ("HERALD_DRY_RUN", Some("1"))]));
    assert!(context.dry_run);
}

#[test]
fn a_dry_run_needs_no_gitlab_at_all() {
    let laptop = on(resolve(&MapEnv::of(&[("GITLAB_CI", "true"), ("HERALD_DRY_RUN", "1")])).unwrap());
    assert_eq!((laptop.project.as_str(), laptop.sha.as_str()), ("CI_PROJECT_ID", "CI_COMMIT_SHA"));
    assert!(laptop.dry_run);
    // Outside CI the default mode still publishes nothing, and the dry run says why.
    let Publishing::Off(Some(why)) = resolve(&MapEnv::of(&[("HERALD_DRY_RUN", "1")])).unwrap() else {
        panic!("a dry run outside CI says why nothing would be published")
    };
    assert!(why.contains("outside GitLab CI") && why.contains("GITLAB_CI=true"), "{why}");
    assert_eq!(resolve(&MapEnv::of(&[])).unwrap(), Publishing::Off(None), "silent by default");
}

#[test]
fn a_dry_run_writes_no_note() {
    let dry = on(resolve_with(BRANCH_PIPELINE, &[("HERALD_DRY_RUN", Some("1")), ("HERALD_MR_IID", Some("5"))]));
    assert_eq!(dry.mr_iid, None);
}

#[test]
fn the_mode_says_why_it_keeps_quiet() {
    let why = |vars: &[(&'static str, &'static str)]| mode_keeps_quiet(&MapEnv::of(vars));
    assert!(why(&[])
        .unwrap()
        .contains("outside GitLab CI (GITLAB_CI is not true), and HERALD_MODE is ci-only (the default)"));
    assert_eq!(why(&[("HERALD_MODE", "off"), ("GITLAB_CI", "true")]).as_deref(), Some("HERALD_MODE is off"));
    assert!(why(&[("HERALD_MODE", "local-only"), ("GITLAB_CI", "true")]).unwrap().contains("local-only"));
    assert_eq!(why(&[("HERALD_MODE", "always")]), None, "the mode is not the reason");
    assert_eq!(why(&[("GITLAB_CI", "true")]), None);
}

#[test]
fn bad_values_are_configuration_errors() {
    let vars = MapEnv::of;
    assert!(resolve(&vars(&[("HERALD_MODE", "sometimes")])).unwrap_err().to_string().contains("HERALD_MODE must be"));
    assert!(resolve(&vars(&[("HERALD_FLUSH_TIMEOUT", "soon")])).is_err());
    assert!(resolve(&vars(&[("CI_PIPELINE_ID", "12a")])).is_err());
}

#[test]
fn plain_http_is_refused_only_across_a_network() {
    assert_eq!(plain_http_host("http://gitlab.internal/api/v4").as_deref(), Some("gitlab.internal"));
    assert_eq!(plain_http_host("http://10.0.0.5:8080/api/v4").as_deref(), Some("10.0.0.5"));
    assert_eq!(plain_http_host("http://127.0.0.1:9/api/v4"), None);
    assert_eq!(plain_http_host("http://localhost/api/v4"), None);
    assert_eq!(plain_http_host("http://[::1]:80/api/v4"), None);
    assert_eq!(plain_http_host("https://gitlab.com/api/v4"), None);
}
