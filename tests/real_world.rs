//! What real pipelines write that herald's configuration model got wrong (issue #15), each class
//! in a minimal case: `!reference` to keys a job has only through `extends`, variables in include
//! locations, `parallel: 1`, component versions `~latest` and `1.2`, an unreachable include that
//! must degrade only the jobs that depend on it, Ruby's fnmatch in `rules: exists`, and the
//! context herald assumes outside CI.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::gitlab::*;
use crate::support::{herald, run, Finished, TempDir};

/// A project with these files; `herald tasks --format json` on it with `command`'s environment.
fn tasks_json(dir: &Path, files: &[(&str, &str)], command: &mut Command) -> (Finished, Value) {
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let finished = run(command.args(["tasks", "--format", "json", "--file"]).arg(dir.join(".gitlab-ci.yml")));
    let json = serde_json::from_str(&finished.stdout_text()).unwrap_or(Value::Null);
    (finished, json)
}

fn names(json: &Value) -> Vec<String> {
    json["jobs"].as_array().map_or_else(Vec::new, |jobs| {
        jobs.iter().map(|job| job["name"].as_str().unwrap_or_default().to_owned()).collect()
    })
}

fn job<'j>(json: &'j Value, name: &str) -> &'j Value {
    json["jobs"].as_array().and_then(|jobs| jobs.iter().find(|job| job["name"] == name)).unwrap_or(&Value::Null)
}

#[test]
fn a_reference_sees_what_a_job_has_through_extends() {
    let dir = TempDir::new("reference-extends");
    let config = ".base:\n  before_script:\n    - herald run --name setup -- ./setup.sh\n\
                  .rust:\n  extends: .base\n  script:\n    - herald run -- cargo test\n\
                  test:\n  before_script:\n    - !reference [.rust, before_script]\n  script:\n    - !reference [.rust, script]\n";
    let (finished, json) = tasks_json(dir.path(), &[(".gitlab-ci.yml", config)], &mut herald());
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(job(&json, "test")["steps"], serde_json::json!(["setup", "cargo test"]));
}

#[test]
fn parallel_one_is_a_job_named_one_of_one() {
    let dir = TempDir::new("parallel-one");
    let config = "test:\n  parallel: 1\n  script: [x]\nbuild:\n  parallel: 2\n  script: [x]\n";
    let (finished, json) = tasks_json(dir.path(), &[(".gitlab-ci.yml", config)], &mut herald());
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(names(&json), ["test 1/1", "build 1/2", "build 2/2"]);
}

#[test]
fn include_locations_expand_variables() {
    let gitlab = GitLab::start();
    gitlab.with(|w| {
        w.add_public_project(45, "platform/templates");
        w.add_file(
            "platform/templates",
            "feature",
            "ci/app.yml",
            "shared:\n  script:\n    - herald run --name shared -- make\n",
        );
        w.add_file(
            "group/app",
            "0123abcd",
            "templates/lint.yml",
            "lint:\n  script:\n    - herald run --name lint -- make lint\n",
        );
    });
    let dir = TempDir::new("include-variables");
    let config = "include:\n  - local: ci/$CI_PROJECT_NAME.yml\n  - project: $TEMPLATES_GROUP/templates\n    ref: $CI_COMMIT_REF_NAME\n    file: ci/${CI_PROJECT_NAME}.yml\n  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/lint@$CI_COMMIT_SHA\n  - local: ci/$NOT_SET_ANYWHERE.yml\n  - project: group/secret\n    file: $HERALD_TOKEN.yml\n";
    let files = [(".gitlab-ci.yml", config), ("ci/app.yml", "own:\n  script:\n    - herald run --name own -- make\n")];
    let (finished, json) = tasks_json(
        dir.path(),
        &files,
        herald()
            .env("HERALD_TOKEN", TOKEN_DEVELOPER)
            .env("HERALD_API_URL", gitlab.api_url())
            .env("CI_PROJECT_NAME", "app")
            .env("CI_PROJECT_PATH", "group/app")
            .env("CI_COMMIT_REF_NAME", "feature")
            .env("CI_COMMIT_SHA", "0123abcd")
            .env("TEMPLATES_GROUP", "platform"),
    );
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(names(&json), ["own", "shared", "lint"], "{json}");
    let unresolved = json["unresolved_includes"].to_string();
    assert!(unresolved.contains("$NOT_SET_ANYWHERE is not set here"), "{unresolved}");
    // A secret is never expanded into a request or the output.
    assert!(unresolved.contains("$HERALD_TOKEN is not set here"), "{unresolved}");
    assert!(!finished.stdout_text().contains(TOKEN_DEVELOPER) && !finished.stderr_text().contains(TOKEN_DEVELOPER));
    assert!(gitlab.requests().iter().all(|r| !r.path.contains("secret")), "nothing fetched for it");
}

#[test]
fn component_versions_latest_and_partial_name_the_newest_matching_release() {
    let gitlab = GitLab::start();
    gitlab.with(|w| {
        w.add_public_project(47, "acme/components");
        for tag in ["1.0.0", "1.2.0", "1.10.1", "2.0.0", "2.1.0-rc.1", "1.2.7", "nightly"] {
            w.releases.push(("acme/components".into(), tag.into()));
            w.add_file(
                "acme/components",
                tag,
                "templates/scan.yml",
                &format!("scan-{}:\n  script: [x]\n", tag.replace('.', "-")),
            );
        }
    });
    let dir = TempDir::new("component-versions");
    let config = "include:\n  - component: gitlab.example.com/acme/components/scan@~latest\n  - component: gitlab.example.com/acme/components/scan@1\n  - component: gitlab.example.com/acme/components/scan@1.2\n  - component: gitlab.example.com/acme/components/scan@1.0.0\n  - component: gitlab.example.com/acme/components/scan@3\n";
    let (finished, json) = tasks_json(
        dir.path(),
        &[(".gitlab-ci.yml", config)],
        herald().env("HERALD_TOKEN", TOKEN_DEVELOPER).env("HERALD_API_URL", gitlab.api_url()),
    );
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    // ~latest: 2.0.0 (not the pre-release); 1: 1.10.1 (numeric order); 1.2: 1.2.7; 1.0.0 as written.
    assert_eq!(names(&json), ["scan-2-0-0", "scan-1-10-1", "scan-1-2-7", "scan-1-0-0"], "{json}");
    assert!(json["unresolved_includes"].to_string().contains("no release of acme/components matches 3"), "{json}");
}

#[test]
fn an_unreachable_include_degrades_only_the_jobs_that_need_it() {
    let dir = TempDir::new("unreachable");
    // No token: the project include cannot be fetched. `lint` extends a hidden job from it and
    // references another; `test` needs nothing from it.
    let config = "include:\n  - project: platform/templates\n    file: ci/base.yml\n\
                  lint:\n  extends: .herald-base\n  stage: check\n  before_script:\n    - !reference [.setup, before_script]\n  script:\n    - herald run --name lint -- make lint\n\
                  test:\n  script:\n    - herald run -- cargo test\n";
    let (finished, json) = tasks_json(dir.path(), &[(".gitlab-ci.yml", config)], &mut herald());
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(names(&json), ["lint", "test"]);
    let lint = job(&json, "lint");
    assert_eq!((lint["stage"].as_str(), lint["steps"].clone()), (Some("check"), serde_json::json!(["lint"])));
    assert_eq!(lint["missing"], serde_json::json!(["extends '.herald-base'", "!reference [.setup, before_script]"]));
    assert!(job(&json, "test")["missing"].is_null());
    let text = run(herald().args(["tasks", "--file"]).arg(dir.join(".gitlab-ci.yml")));
    assert!(
        text.stdout_text()
            .contains("incomplete: lint lacks extends '.herald-base', !reference [.setup, before_script]"),
        "{}",
        text.stdout_text()
    );

    // With every include resolved, a missing base is the configuration's error, as in GitLab.
    let whole = TempDir::new("whole");
    let (finished, _) =
        tasks_json(whole.path(), &[(".gitlab-ci.yml", "lint:\n  extends: .nowhere\n  script: [x]\n")], &mut herald());
    assert_eq!(finished.code, Some(125));
    assert!(finished.stderr_text().contains("'lint' extends '.nowhere', which does not exist"));
}

#[test]
fn rules_exists_matches_like_rubys_fnmatch() {
    let dir = TempDir::new("fnmatch");
    let rule = |pattern: &str| format!("    rules:\n      - exists: ['{pattern}']\n");
    let config = [
        ("braces", "{Cargo,pyproject}.{toml,lock}"),
        ("question", "Dockerfile?"),
        ("class", "src/[a-c]*.rs"),
        ("dotfile", "**/*.yml"),
        ("nothing", "{package,yarn}.json"),
        ("paths-key", ""),
    ]
    .iter()
    .map(|(name, pattern)| match *name {
        "paths-key" => format!("  - local: {name}.yml\n    rules:\n      - exists:\n          paths: ['src/*.rs']\n"),
        _ => format!("  - local: {name}.yml\n{}", rule(pattern)),
    })
    .collect::<String>();
    let config = format!("include:\n{config}");
    let mut files: Vec<(String, String)> = vec![(".gitlab-ci.yml".into(), config)];
    for name in ["braces", "question", "class", "dotfile", "nothing", "paths-key"] {
        files.push((format!("{name}.yml"), format!("{name}-job:\n  script: [x]\n")));
    }
    for present in ["pyproject.toml", "Dockerfile2", "src/build.rs", ".gitlab/ci/x.yml"] {
        files.push((present.into(), String::new()));
    }
    let files: Vec<(&str, &str)> = files.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let (finished, json) = tasks_json(dir.path(), &files, &mut herald());
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(names(&json), ["braces-job", "question-job", "class-job", "dotfile-job", "paths-key-job"]);
}

/// A git checkout of `branch` with an `origin` remote, holding `files`.
fn checkout(dir: &Path, branch: &str, files: &[(&str, &str)]) {
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &["-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-q", "-m", "start"],
        &["checkout", "-q", "-b", branch],
        &["remote", "add", "origin", "git@gitlab.example.com:group/app.git"],
    ] {
        assert!(Command::new("git").args(args).current_dir(dir).status().unwrap().success(), "git {args:?}");
    }
}

#[test]
fn outside_ci_the_context_comes_from_git_and_can_be_overridden() {
    let dir = TempDir::new("local-context");
    let config = "include:\n  - local: main-only.yml\n    rules:\n      - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH\n  - local: pushes.yml\n    rules:\n      - if: $CI_PIPELINE_SOURCE == \"push\"\n  - local: ci/$CI_PROJECT_NAME.yml\n";
    checkout(
        dir.path(),
        "feature",
        &[
            (".gitlab-ci.yml", config),
            ("main-only.yml", "release:\n  script: [x]\n"),
            ("pushes.yml", "build:\n  script: [x]\n"),
        ],
    );
    std::fs::create_dir_all(dir.join("ci")).unwrap();
    std::fs::write(dir.join("ci/app.yml"), "app-job:\n  script: [x]\n").unwrap();
    let (finished, json) = tasks_json(dir.path(), &[], &mut herald());
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(names(&json), ["build", "app-job"], "on feature, main-only.yml is left out: {json}");
    let assumed = &json["assumed_variables"];
    assert_eq!(assumed["CI_COMMIT_BRANCH"], "feature");
    assert_eq!(assumed["CI_DEFAULT_BRANCH"], "main");
    assert_eq!(assumed["CI_PROJECT_PATH"], "group/app");
    assert_eq!(assumed["CI_PIPELINE_SOURCE"], "push");
    assert_eq!(assumed["CI_COMMIT_SHA"].as_str().map(str::len), Some(40));

    // --variable overrides what was assumed; the text output says what it assumed.
    let text =
        run(herald().args(["tasks", "--variable", "CI_COMMIT_BRANCH=main", "--file"]).arg(dir.join(".gitlab-ci.yml")));
    assert_eq!(text.code, Some(0), "{}", text.stderr_text());
    let stdout = text.stdout_text();
    assert!(stdout.contains("release "), "{stdout}");
    assert!(
        stdout.contains("outside CI, assumed a push pipeline: CI_PIPELINE_SOURCE=push CI_DEFAULT_BRANCH=main CI_PROJECT_PATH=group/app"),
        "{stdout}"
    );
    let bad = run(herald().args(["tasks", "--variable", "no equals sign"]));
    assert_eq!(bad.code, Some(125));
    assert_eq!(bad.stderr_text().trim(), "herald tasks: --variable takes NAME=VALUE (got 'no equals sign')");

    // In a CI job nothing is assumed: GitLab set the variables.
    let (_, json) = tasks_json(dir.path(), &[], herald().env("GITLAB_CI", "true"));
    assert!(json.get("assumed_variables").is_none(), "{json}");
}

/// GitLab Runner's own configuration (tests/fixtures/real/gitlab-runner): 18 files, 125 jobs.
/// Offline, its four includes from elsewhere are unresolved; the two jobs that extend what they
/// define are incomplete; every other job is whole. Without the project's path (nothing to
/// assume: not a checkout), both files its include rules choose between are left out, and the
/// jobs that reference them are incomplete, not the whole run refused.
#[test]
fn gitlab_runners_pipeline_loads_offline() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real/gitlab-runner/.gitlab-ci.yml");
    let tasks = |variables: &[&str]| {
        let mut command = herald();
        command.args(["tasks", "--format", "json"]);
        for variable in variables {
            command.args(["--variable", variable]);
        }
        let finished = run(command.arg("--file").arg(&file));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        serde_json::from_str::<Value>(&finished.stdout_text()).unwrap()
    };
    let json = tasks(&["CI_PROJECT_PATH=gitlab-org/gitlab-runner", "CI_COMMIT_BRANCH=main", "CI_DEFAULT_BRANCH=main"]);
    let jobs = names(&json);
    assert_eq!(jobs.len(), 125);
    assert!(jobs.contains(&"helper images: [windows-nanoserver-ltsc2019 windows-servercore-ltsc2019]".to_owned()));
    let incomplete: Vec<&str> = json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job.get("missing").is_some())
        .map(|job| job["name"].as_str().unwrap())
        .collect();
    assert_eq!(incomplete, ["binaries", "fuzz variable mask"]);
    assert_eq!(json["unresolved_includes"].as_array().unwrap().len(), 4);

    // Its rules (issue 25, docs/real-pipelines.md "Rules on gitlab-runner"): a push of main decides
    // the release and tag jobs; `changes:` leave most others undecided; a scheduled pipeline has
    // no diff, so every job is decided.
    let counts = |json: &Value| {
        let mut counts = std::collections::BTreeMap::new();
        for job in json["jobs"].as_array().unwrap() {
            *counts.entry(job["when"].as_str().unwrap().to_owned()).or_insert(0) += 1;
        }
        counts.into_iter().collect::<Vec<(String, usize)>>()
    };
    let canonical = ["CI_PROJECT_PATH=gitlab-org/gitlab-runner", "CI_PROJECT_NAMESPACE=gitlab-org"];
    let branch = ["CI_COMMIT_BRANCH=main", "CI_COMMIT_REF_NAME=main", "CI_DEFAULT_BRANCH=main"];
    let push = tasks(&[&canonical[..], &branch, &["CI_PIPELINE_SOURCE=push"]].concat());
    let owned = |pairs: &[(&str, usize)]| pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect::<Vec<_>>();
    assert_eq!(counts(&push), owned(&[("never", 24), ("on_success", 5), ("unknown", 96)]));
    assert_eq!(job(&push, "stable S3")["when"], "never", "a tag job");
    let schedule = tasks(&[&canonical[..], &branch, &["CI_PIPELINE_SOURCE=schedule"]].concat());
    assert_eq!(counts(&schedule), owned(&[("always", 1), ("manual", 3), ("never", 24), ("on_success", 97)]));
    assert_eq!(push["pipeline_created"], true);

    let without_context = tasks(&[]);
    assert_eq!(names(&without_context).len(), 125, "the same jobs, some incomplete");
    assert!(job(&without_context, "helper images: [windows-nanoserver-ltsc2019 windows-servercore-ltsc2019]")
        ["missing"]
        .to_string()
        .contains("!reference [.instance-2xlarge]"));
}

/// GitLab reads YAML with Ruby's Psych (YAML 1.1): an unquoted `3.10` is the float 3.1, `yes` is
/// true, `010` is 8, and a matrix job is named after those values.
#[test]
fn matrix_names_use_the_values_gitlab_reads() {
    let dir = TempDir::new("matrix-values");
    let config =
        "test:\n  script: [x]\n  parallel:\n    matrix:\n      - PY: [3.10, \"3.11\", 010]\n        FLAG: [yes]\n";
    let (finished, json) = tasks_json(dir.path(), &[(".gitlab-ci.yml", config)], &mut herald());
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(names(&json), ["test: [3.1, true]", "test: [3.11, true]", "test: [8, true]"]);
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real/gitlab-runner/.gitlab-ci.yml");
    for format in ["text", "json"] {
        let mut child = herald()
            .args(["tasks", "--format", format, "--file"])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // `herald tasks | head -0`
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{format}");
        assert!(output.stderr.is_empty(), "{format}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
