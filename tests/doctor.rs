//! `herald doctor` against the stand-in: one line per check, the fix with every failure, exit 1
//! when publishing would fail, and never the token.

use crate::support::gitlab::*;
use crate::support::{herald_in_ci, run, PipelineKind};

fn doctor(gitlab: &GitLab, token: &str) -> (Option<i32>, String) {
    let finished = run(herald_in_ci(gitlab, PipelineKind::MergedResults, token).arg("doctor"));
    let output = finished.stderr_text();
    assert!(!output.contains(token), "the token leaked: {output}");
    (finished.code, output)
}

fn line<'o>(output: &'o str, check: &str) -> &'o str {
    output
        .lines()
        .find(|l| l[5..].starts_with(&format!("{check}:")))
        .unwrap_or_else(|| panic!("no {check} line in:\n{output}"))
}

#[test]
fn a_good_token_passes_every_check() {
    let gitlab = GitLab::start();
    let (code, output) = doctor(&gitlab, TOKEN_DEVELOPER);
    assert_eq!(code, Some(0), "{output}");
    for check in ["mode", "token", "ca file", "api", "user", "scopes", "expiry", "role", "merge request"] {
        assert!(line(&output, check).starts_with("ok   "), "{check}: {output}");
    }
    assert!(line(&output, "user").contains("@project_42_bot (project or group access token)"));
    assert!(line(&output, "role").contains("Developer on group/app"));
    assert!(line(&output, "merge request").contains("!1"));
}

#[test]
fn an_expired_token_fails_with_the_fix() {
    let gitlab = GitLab::start();
    let (code, output) = doctor(&gitlab, TOKEN_EXPIRED);
    assert_eq!(code, Some(1));
    let user = line(&output, "user");
    assert!(
        user.starts_with("FAIL user: GitLab rejected the token (401: invalid_token: Token is expired."),
        "{output}"
    );
    assert!(user.contains("create a new one"), "{output}");
}

#[test]
fn a_read_only_token_fails_on_scopes() {
    let gitlab = GitLab::start();
    let (code, output) = doctor(&gitlab, TOKEN_READ_API);
    assert_eq!(code, Some(1));
    assert!(line(&output, "scopes").starts_with("FAIL scopes: read_api; herald needs api"), "{output}");
}

#[test]
fn a_reporter_fails_on_role() {
    let gitlab = GitLab::start();
    let (code, output) = doctor(&gitlab, TOKEN_REPORTER);
    assert_eq!(code, Some(1));
    assert!(
        line(&output, "role").starts_with(
            "FAIL role: Reporter on group/app; commit statuses and resolving finding threads need Developer"
        ),
        "{output}"
    );
}

#[test]
fn a_token_about_to_expire_warns() {
    let gitlab = GitLab::start();
    let (code, output) = doctor(&gitlab, TOKEN_EXPIRING);
    assert_eq!(code, Some(0), "a warning is not a failure: {output}");
    assert!(line(&output, "expiry").starts_with("warn expiry: expires "), "{output}");
    assert!(line(&output, "expiry").contains("(in 3 day(s)); rotate it"), "{output}");
}

#[test]
fn an_unreachable_api_fails_with_the_address() {
    // Nothing listens on the discard port, and no test server is ever given it: a port freed by
    // a stopped stand-in could be handed to another test's server at once (it was, in CI).
    let address = "https://127.0.0.1:9/api/v4".to_string();
    let finished = run(crate::support::herald()
        .env("GITLAB_CI", "true")
        .env("HERALD_TOKEN", TOKEN_DEVELOPER)
        .env("CI_API_V4_URL", &address)
        .env("CI_PROJECT_ID", "42")
        .env("CI_COMMIT_SHA", SHA_FEATURE)
        .arg("doctor"));
    assert_eq!(finished.code, Some(1));
    let output = finished.stderr_text();
    assert!(line(&output, "api").starts_with(&format!("FAIL api: {address} does not answer")), "{output}");
}

#[test]
fn missing_context_is_named() {
    let finished = run(crate::support::herald().arg("doctor"));
    assert_eq!(finished.code, Some(1));
    let output = finished.stderr_text();
    assert!(line(&output, "mode").starts_with("warn "), "{output}");
    assert!(line(&output, "context").contains("HERALD_TOKEN is not set"), "{output}");
}

#[test]
fn a_dead_proxy_is_blamed_by_its_variable_not_the_api_url() {
    let gitlab = GitLab::start();
    // Nothing listens on the discard port.
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("HTTPS_PROXY", "http://proxy-user:proxy-secret@127.0.0.1:9")
        .env("HERALD_ALLOW_HTTP", "1")
        .arg("doctor"));
    let output = finished.stderr_text();
    assert_eq!(finished.code, Some(1), "{output}");
    let api = line(&output, "api");
    assert!(api.contains("the proxy 127.0.0.1:9 (from HTTPS_PROXY) does not accept connections"), "{api}");
    assert!(api.contains("fix HTTPS_PROXY") && !api.contains("check HERALD_API_URL"), "{api}");
    assert!(!output.contains("proxy-secret"), "the proxy's credentials stay out: {output}");
    assert!(gitlab.requests().is_empty());
}

/// `HERALD_MODE=always` lets herald publish anywhere: what stops it is what is missing (here the
/// commit), named once; the mode is not blamed.
#[test]
fn the_reason_given_is_the_real_one() {
    let finished = run(crate::support::herald()
        .env("HERALD_MODE", "always")
        .env("HERALD_TOKEN", TOKEN_DEVELOPER)
        .env("HERALD_PROJECT", "group/app")
        .arg("doctor"));
    assert_eq!(finished.code, Some(1));
    let output = finished.stderr_text();
    assert!(!output.contains("HERALD_MODE is off") && !output.contains("ci-only"), "{output}");
    assert!(line(&output, "mode").starts_with("ok   mode: HERALD_MODE lets herald run publish here"), "{output}");
    assert!(line(&output, "context").contains("no commit to attach statuses to; set HERALD_SHA"), "{output}");
    assert_eq!(output.matches("HERALD_SHA").count(), 1, "said once: {output}");

    // The mode, when it is the reason, is named as it is.
    let outside = run(crate::support::herald().arg("doctor")).stderr_text();
    assert!(line(&outside, "mode").contains("outside GitLab CI (GITLAB_CI is not true), and HERALD_MODE is ci-only"));
    let off = run(crate::support::herald().env("GITLAB_CI", "true").env("HERALD_MODE", "off").arg("doctor"));
    assert!(line(&off.stderr_text(), "mode").ends_with("herald run will not publish here: HERALD_MODE is off"));
}

/// Without a token, the fix fits where doctor is run: a CI/CD variable in GitLab, a variable
/// exported for a local run.
#[test]
fn without_a_token_the_fix_is_for_ci_and_for_local_use() {
    let finished =
        run(crate::support::herald().env("HERALD_PROJECT", "group/app").env("HERALD_SHA", "abc").arg("doctor"));
    assert_eq!(finished.code, Some(1));
    let output = finished.stderr_text();
    let context = line(&output, "context");
    assert!(context.contains("HERALD_TOKEN is not set"), "{output}");
    assert!(context.contains("as a masked CI/CD variable named HERALD_TOKEN"), "{output}");
    assert!(context.contains("locally, export HERALD_TOKEN"), "{output}");
}

/// doctor with the token in a file of `mode` instead of a variable.
fn doctor_with_token_file(gitlab: &GitLab, mode: u32, link: bool) -> (Option<i32>, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = crate::support::TempDir::new("token-file");
    let file = dir.join("token");
    std::fs::write(&file, format!("{TOKEN_DEVELOPER}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    let named = if link {
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        link
    } else {
        file
    };
    let finished = run(herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env_remove("HERALD_TOKEN")
        .env("HERALD_TOKEN_FILE", &named)
        .arg("doctor"));
    let output = finished.stderr_text();
    assert!(!output.contains(TOKEN_DEVELOPER), "the token leaked: {output}");
    (finished.code, output)
}

#[test]
fn a_private_token_file_passes() {
    let gitlab = GitLab::start();
    let (code, output) = doctor_with_token_file(&gitlab, 0o600, false);
    assert_eq!(code, Some(0), "{output}");
    assert!(line(&output, "token file").starts_with("ok   token file: "), "{output}");
    assert!(line(&output, "token file").contains("(mode 0600, owned by uid "), "{output}");
    assert!(line(&output, "token").contains("read from HERALD_TOKEN_FILE"), "{output}");
    assert!(line(&output, "user").starts_with("ok   "), "the file's token reached GitLab: {output}");
}

#[test]
fn a_token_file_others_can_read_or_a_link_fails() {
    let gitlab = GitLab::start();
    for mode in [0o644, 0o640, 0o604] {
        let (code, output) = doctor_with_token_file(&gitlab, mode, false);
        assert_eq!(code, Some(1), "{output}");
        let check = line(&output, "token file");
        assert!(check.starts_with("FAIL token file: HERALD_TOKEN_FILE "), "{output}");
        assert!(check.contains(&format!("has mode {mode:04o}")) && check.contains("chmod 600"), "{output}");
        assert!(!output.contains("ok   user"), "nothing is sent with a refused file: {output}");
    }
    let (code, output) = doctor_with_token_file(&gitlab, 0o600, true);
    assert_eq!(code, Some(1), "{output}");
    assert!(line(&output, "token file").ends_with("is a symbolic link; name the file itself"), "{output}");
}

#[test]
fn the_executor_user_is_checked_when_set() {
    let gitlab = GitLab::start();
    let doctor_with_user = |user: &str| {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
            .env("HERALD_EXECUTOR_USER", user)
            .arg("doctor"));
        finished.stderr_text()
    };
    let (_, plain) = doctor(&gitlab, TOKEN_DEVELOPER);
    assert!(!plain.contains("executor user"), "not set, not checked: {plain}");
    let unknown = doctor_with_user("no-such-user-here");
    assert!(
        line(&unknown, "executor user")
            .starts_with("FAIL executor user: HERALD_EXECUTOR_USER: no user 'no-such-user-here'"),
        "{unknown}"
    );
    // SAFETY: geteuid cannot fail.
    let own_uid = unsafe { libc::geteuid() };
    let same = doctor_with_user(&format!("{own_uid}:{own_uid}"));
    assert!(
        line(&same, "executor user").contains("herald's own user: stages would run as the token's holder"),
        "{same}"
    );
    if own_uid == 0 {
        let other = doctor_with_user("65534:65534");
        assert!(line(&other, "executor user").starts_with("ok   executor user: stages run as "), "{other}");
    }
}
