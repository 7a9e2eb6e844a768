//! `herald tasks` over the fixture corpus (tests/fixtures/pipelines), and hostile configuration:
//! every problem is one line naming the file (and line and column when there is one), exit 125.

use std::path::{Path, PathBuf};

use crate::support::snapshot::assert_snapshot;
use crate::support::{herald, run, Finished, TempDir};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipelines").join(name).join(".gitlab-ci.yml")
}

fn tasks(file: &Path, format: &str) -> Finished {
    run(herald().args(["tasks", "--format", format, "--file"]).arg(file))
}

#[test]
fn nested_local_includes_resolve_like_gitlab() {
    let json = tasks(&fixture("nested"), "json");
    assert_eq!(json.code, Some(0), "{}", json.stderr_text());
    assert_snapshot("tasks_nested.json", &json.stdout_text());
    let text = tasks(&fixture("nested"), "text");
    assert_snapshot("tasks_nested", &text.stdout_text());
}

#[test]
fn include_inputs_are_checked_and_interpolated() {
    let json = tasks(&fixture("inputs"), "json");
    assert_eq!(json.code, Some(0), "{}", json.stderr_text());
    assert_snapshot("tasks_inputs.json", &json.stdout_text());
    let spec = b"spec:\n  inputs:\n    mode:\n      options: [fast, slow]\n    n:\n      type: number\n      default: 2\n---\njob:\n  script: [\"echo $[[ inputs.mode ]]\"]\n";
    for (include, expected) in [
        ("include:\n  - local: ci/job.yml\n", "ci/job.yml: input 'mode' is required (it has no default)"),
        (
            "include:\n  - local: ci/job.yml\n    inputs: {mode: medium}\n",
            "input 'mode' must be one of fast, slow (it is 'medium')",
        ),
        ("include:\n  - local: ci/job.yml\n    inputs: {mode: fast, n: many}\n", "input 'n' must be a number"),
        (
            "include:\n  - local: ci/job.yml\n    inputs: {mode: fast, colour: red}\n",
            "unknown input 'colour' (the file declares mode, n)",
        ),
    ] {
        let (_dir, finished) = project(&[(".gitlab-ci.yml", include.as_bytes()), ("ci/job.yml", spec)]);
        assert_eq!(finished.code, Some(125), "{expected}");
        assert!(finished.stderr_text().contains(expected), "expected {expected:?} in {}", finished.stderr_text());
    }
}

#[test]
fn other_include_kinds_are_named_as_unresolved() {
    let json = tasks(&fixture("kinds"), "json");
    assert_eq!(json.code, Some(0), "{}", json.stderr_text());
    assert_snapshot("tasks_kinds.json", &json.stdout_text());
}

#[test]
fn the_project_dir_and_config_path_come_from_ci_variables() {
    let dir = fixture("nested").parent().unwrap().to_path_buf();
    let finished = run(herald()
        .env("CI_PROJECT_DIR", &dir)
        .env("CI_CONFIG_PATH", ".gitlab-ci.yml")
        .args(["tasks", "--format", "json"]));
    assert_eq!(finished.stdout_text(), tasks(&fixture("nested"), "json").stdout_text());
}

/// Writes `files` into a fresh project and runs `herald tasks` on its .gitlab-ci.yml.
fn project(files: &[(&str, &[u8])]) -> (TempDir, Finished) {
    let dir = TempDir::new("tasks");
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let finished = tasks(&dir.join(".gitlab-ci.yml"), "text");
    (dir, finished)
}

/// A project's files: (path, content).
type Files = Vec<(&'static str, Vec<u8>)>;

#[test]
fn hostile_configuration_is_one_clear_line() {
    let many: String =
        std::iter::once("include:\n".to_owned()).chain((0..151).map(|_| "  - local: a.yml\n".to_owned())).collect();
    let bomb = {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
                p = i - 1
            ));
        }
        text
    };
    let cases: Vec<(Files, &str)> = vec![
        (
            vec![
                (".gitlab-ci.yml", b"include: a.yml\n".to_vec()),
                ("a.yml", b"include: b.yml\n".to_vec()),
                ("b.yml", b"include: a.yml\n".to_vec()),
            ],
            // Issue 30: the position of the include that closes the cycle.
            "b.yml:1:10: include cycle: .gitlab-ci.yml → a.yml → b.yml → a.yml",
        ),
        (
            vec![(".gitlab-ci.yml", many.into_bytes()), ("a.yml", b"x: {script: [y]}\n".to_vec())],
            "Maximum of 150 nested includes are allowed!",
        ),
        (vec![(".gitlab-ci.yml", b"job:\n  script: [\"ok\", \xff]\n".to_vec())], ".gitlab-ci.yml: not UTF-8"),
        (vec![(".gitlab-ci.yml", b"job:\n  script: [unclosed\n".to_vec())], ".gitlab-ci.yml:3:"),
        (vec![(".gitlab-ci.yml", bomb.into_bytes())], "expands to more than 1000000 values"),
        (
            vec![(".gitlab-ci.yml", b"a:\n  extends: b\n  script: [x]\nb:\n  extends: a\n".to_vec())],
            ".gitlab-ci.yml:5:12: extends cycle: a → b → a",
        ),
        (
            vec![(".gitlab-ci.yml", b"a:\n  extends: .missing\n  script: [x]\n".to_vec())],
            ".gitlab-ci.yml:2:12: 'a' extends '.missing', which does not exist",
        ),
        (
            vec![(".gitlab-ci.yml", b"include: ci/x.json\n".to_vec())],
            ".gitlab-ci.yml:1:10: local include 'ci/x.json' must end in .yml or .yaml",
        ),
        (vec![(".gitlab-ci.yml", b"include: nowhere.yml\n".to_vec())], "nowhere.yml: cannot read it"),
        (
            vec![(".gitlab-ci.yml", b"a:\n  script: [!reference [.nope, script]]\n".to_vec())],
            ".gitlab-ci.yml:2:3: job 'a': !reference to unknown job '.nope'",
        ),
        (vec![(".gitlab-ci.yml", b"- just\n- a list\n".to_vec())], ".gitlab-ci.yml:1:1: the file must be a mapping"),
        (
            vec![(".gitlab-ci.yml", b"include: big.yml\n".to_vec()), ("big.yml", vec![b'#'; 5 * 1024 * 1024])],
            "big.yml: 5242880 bytes, more than the 4194304 herald reads",
        ),
    ];
    for (files, expected) in cases {
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (*n, c.as_slice())).collect();
        let (_dir, finished) = project(&files);
        assert_eq!(finished.code, Some(125), "{expected}: {}", finished.stdout_text());
        let stderr = finished.stderr_text();
        assert_eq!(stderr.lines().count(), 1, "{expected}: {stderr}");
        assert!(stderr.starts_with("herald tasks: "), "{stderr}");
        assert!(stderr.contains(expected), "expected {expected:?} in {stderr}");
    }
}

#[test]
fn extends_deeper_than_eleven_levels_is_refused() {
    let mut text = String::from("job:\n  extends: .l1\n  script: [x]\n");
    for level in 1..=12 {
        text.push_str(&format!(".l{level}:\n  extends: .l{}\n", level + 1));
    }
    text.push_str(".l13:\n  image: x\n");
    let (_dir, finished) = project(&[(".gitlab-ci.yml", text.as_bytes())]);
    assert_eq!(finished.code, Some(125));
    assert!(finished.stderr_text().contains("extends nested more than 11 levels"), "{}", finished.stderr_text());
}

/// Copies a fixture project into `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn published_steps_carry_task_names_and_the_note_shows_planned_steps() {
    use crate::support::gitlab::*;
    use crate::support::{herald_in_ci, PipelineKind};

    let gitlab = GitLab::start();
    let (_, lint_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "lint", "lint", "running"));
    let (_, docs_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "docs", "build", "running"));
    let dir = TempDir::new("named");
    let checkout = dir.join("checkout");
    copy_tree(fixture("nested").parent().unwrap(), &checkout);
    // Stand-ins for the tools the fixture's steps call.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["cargo", "mdbook"] {
        std::fs::write(bin.join(tool), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(bin.join(tool), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let step = |job: &str, url: &str, id: &str, command: &[&str]| {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("TMPDIR", dir.path())
            .env("CI_PROJECT_DIR", &checkout)
            .env("CI_JOB_NAME", job)
            .env("CI_JOB_URL", url)
            .env("CI_JOB_ID", id)
            .arg("run")
            .arg("--")
            .args(command));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    };
    step("lint", &lint_url, "701", &["cargo", "fmt", "--check"]);
    // The next step of the same job reads the parsed configuration from the job's cache.
    std::fs::remove_file(checkout.join(".gitlab-ci.yml")).unwrap();
    step("lint", &lint_url, "701", &["cargo", "clippy", "--", "-D", "warnings"]);
    std::fs::write(checkout.join(".gitlab-ci.yml"), std::fs::read(fixture("nested")).unwrap()).unwrap();
    step("docs", &docs_url, "702", &["mdbook", "build", "docs"]);

    let statuses = gitlab.with(|w| w.statuses(PIPELINE_MERGED));
    let names: Vec<&String> = statuses.keys().collect();
    assert!(statuses.contains_key("herald/lint/lint › cargo fmt"), "the task of an included job: {names:?}");
    assert!(statuses.contains_key("herald/lint/lint › cargo clippy"), "{names:?}");
    assert!(statuses.contains_key("herald/docs"), "a job's single unnamed step is the task: {names:?}");
    let note = &gitlab.with(|w| w.herald_notes(1))[0];
    let shows = |icon: &str, job: &str, url: &str, step: &str, result: &str| {
        crate::support::campaign::note_shows(&note.body, icon, job, url, step, result)
    };
    assert!(shows("✅", "lint", &lint_url, "cargo fmt", "passed in"), "{}", note.body);
    assert!(shows("⏳", "lint", &lint_url, "setup", "waiting"), "planned, not started: {}", note.body);
    assert!(shows("✅", "docs", &docs_url, "mdbook build docs", "passed in"), "{}", note.body);
}

#[test]
fn project_component_and_template_includes_are_fetched_through_the_api() {
    use crate::support::gitlab::*;
    let gitlab = GitLab::start();
    gitlab.with(|w| {
        w.add_public_project(43, "platform/herald");
        w.add_file("platform/herald", "v1.0.0", "templates/herald.yml", "include:\n  - local: templates/shared.yml\nherald-note:\n  stage: .post\n  script:\n    - herald note --final\nlint:\n  extends: .herald-base\n  script:\n    - herald run -- cargo fmt --check\n");
        w.add_file("platform/herald", "v1.0.0", "templates/shared.yml", ".herald-base:\n  image: rust\n  before_script:\n    - herald run --name setup -- ./setup.sh\n");
        w.add_public_project(44, "acme/components");
        // `@1.2` is a partial version: the newest 1.2.x release (not a pre-release, not 1.3).
        for tag in ["1.1.0", "1.2.0", "1.2.4", "1.3.0", "1.2.5-rc.1"] {
            w.releases.push(("acme/components".into(), tag.into()));
        }
        w.add_file("acme/components", "1.2.4", "templates/secret-detection/template.yml", "secret_detection:\n  script:\n    - herald run --name scan -- gitleaks detect\n");
        w.templates.push(("Bash".into(), "bash-job:\n  script:\n    - echo hi\n".into()));
    });
    let finished = run(herald()
        .env("HERALD_TOKEN", TOKEN_DEVELOPER)
        .env("HERALD_API_URL", gitlab.api_url())
        .args(["tasks", "--format", "json", "--file"])
        .arg(fixture("remote")));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_snapshot("tasks_remote.json", &finished.stdout_text());
    assert!(!finished.stdout_text().contains(TOKEN_DEVELOPER));

    // Without a token they are named as unresolved, and the root file's jobs still load.
    let offline = run(herald().args(["tasks", "--file"]).arg(fixture("remote")));
    assert_eq!(offline.code, Some(0), "{}", offline.stderr_text());
    assert!(
        offline.stdout_text().contains(
            "not resolved (no token or API to fetch it, or it failed): platform/herald@v1.0.0:templates/herald.yml"
        ),
        "{}",
        offline.stdout_text()
    );
}

#[test]
fn include_rules_are_evaluated_where_the_variables_allow() {
    let dir = TempDir::new("rules");
    let files: [(&str, &str); 5] = [
        (
            ".gitlab-ci.yml",
            "include:\n  - local: mr.yml\n    rules:\n      - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n  - local: tag.yml\n    rules:\n      - if: $CI_COMMIT_TAG\n  - local: node.yml\n    rules:\n      - exists: [package.json]\n  - local: changed.yml\n    rules:\n      - changes: [src/**]\n",
        ),
        ("mr.yml", "mr-job:\n  script: [x]\n"),
        ("tag.yml", "tag-job:\n  script: [x]\n"),
        ("node.yml", "node-job:\n  script: [x]\n"),
        ("changed.yml", "changed-job:\n  script: [x]\n"),
    ];
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let finished = run(herald()
        .env("CI_PIPELINE_SOURCE", "merge_request_event")
        .args(["tasks", "--format", "json", "--file"])
        .arg(dir.join(".gitlab-ci.yml")));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let json: serde_json::Value = serde_json::from_str(&finished.stdout_text()).unwrap();
    let names: Vec<&str> = json["jobs"].as_array().unwrap().iter().map(|j| j["name"].as_str().unwrap()).collect();
    // The MR rule holds; no tag; no package.json; `changes:` cannot be decided here, so it is kept.
    assert_eq!(names, ["mr-job", "changed-job"]);
}

/// Runs `herald tasks` in `format` on a fresh project with `variables` (NAME=VALUE).
fn tasks_with(files: &[(&str, &str)], format: &str, variables: &[&str]) -> (TempDir, Finished) {
    let dir = TempDir::new("tasks");
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let mut command = herald();
    command.args(["tasks", "--format", format]);
    for variable in variables {
        command.args(["--variable", variable]);
    }
    let finished = run(command.arg("--file").arg(dir.join(".gitlab-ci.yml")));
    (dir, finished)
}

fn json_of(finished: &Finished) -> serde_json::Value {
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    serde_json::from_str(&finished.stdout_text()).unwrap()
}

/// The JSON entry of one job.
fn entry<'a>(json: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    json["jobs"].as_array().unwrap().iter().find(|job| job["name"] == name).unwrap_or_else(|| panic!("{name}: {json}"))
}

const FEATURE_PUSH: [&str; 3] =
    ["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=feature/x", "CI_COMMIT_REF_NAME=feature/x"];

/// Issue 25 and 31: job `rules:`, `only`/`except` decide what is created and planned; the JSON
/// gives each job's `when` and `allow_failure` (a rule's own included).
#[test]
fn job_rules_and_only_except_decide_what_is_planned() {
    let config = "\
never-job:\n  script: [herald run --name n -- x]\n  rules:\n    - when: never\n\
main-only:\n  script: [herald run --name m -- x]\n  only: [main]\n\
not-on-feature:\n  script: [x]\n  except:\n    refs: [/^feature\\//]\n\
manual-job:\n  script: [x]\n  rules:\n    - if: $CI_COMMIT_BRANCH\n      when: manual\n\
changed-job:\n  script: [herald run --name c -- x]\n  rules:\n    - changes: [src/**]\n      allow_failure: true\n    - when: on_success\n\
allowed-job:\n  script: [x]\n  rules:\n    - if: $CI_COMMIT_BRANCH == \"main\"\n    - if: $CI_COMMIT_BRANCH =~ /^feature/\n      allow_failure: true\n\
delayed-job:\n  when: delayed\n  start_in: 5 minutes\n  script: [x]\n\
node-job:\n  script: [x]\n  rules:\n    - exists: [\"**/package.json\"]\n\
plain-job:\n  script: [herald run --name p -- x]\n";
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", config)], "json", &FEATURE_PUSH);
    let json = json_of(&finished);
    let fate = |name: &str| {
        let job = entry(&json, name);
        (job["when"].as_str().unwrap().to_owned(), job["allow_failure"].clone())
    };
    use serde_json::json;
    assert_eq!(fate("never-job"), ("never".into(), json!(false)));
    assert_eq!(fate("main-only"), ("never".into(), json!(false)), "only: [main] on a feature branch");
    assert_eq!(fate("not-on-feature"), ("never".into(), json!(false)));
    assert_eq!(fate("manual-job"), ("manual".into(), json!(false)), "when: manual in rules does not allow failure");
    assert_eq!(fate("changed-job"), ("on_success".into(), json!("unknown")), "changes: cannot be decided here");
    assert_eq!(fate("allowed-job"), ("on_success".into(), json!(true)));
    assert_eq!(fate("delayed-job"), ("delayed".into(), json!(false)));
    assert_eq!(fate("node-job"), ("never".into(), json!(false)));
    assert_eq!(fate("plain-job"), ("on_success".into(), json!(false)));
    assert_eq!(entry(&json, "never-job")["steps"], json!([]), "nothing planned for a job GitLab would not create");
    assert_eq!(entry(&json, "changed-job")["steps"], json!(["c"]));

    let (_dir, text) = tasks_with(&[(".gitlab-ci.yml", config)], "text", &FEATURE_PUSH);
    let text = text.stdout_text();
    let table: Vec<&str> = text.lines().take_while(|line| !line.starts_with("not created")).collect();
    for absent in ["never-job", "main-only", "not-on-feature", "node-job"] {
        assert!(!table.iter().any(|line| line.starts_with(absent)), "{absent} is not planned: {text}");
    }
    assert!(
        text.contains(
            "not created for these variables (rules, only/except): never-job, main-only, not-on-feature, node-job"
        ),
        "{text}"
    );

    // On main, `only: [main]` holds.
    let (_dir, finished) = tasks_with(
        &[(".gitlab-ci.yml", config)],
        "json",
        &["CI_PIPELINE_SOURCE=push", "CI_COMMIT_BRANCH=main", "CI_COMMIT_REF_NAME=main"],
    );
    let json = json_of(&finished);
    assert_eq!(entry(&json, "main-only")["when"], "on_success");
    assert_eq!(entry(&json, "allowed-job")["allow_failure"], json!(false), "the first rule holds on main");
}

/// Jobs without rules or only/except are not created in merge request pipelines (GitLab's default
/// `only: [branches, tags]`), unless `workflow:rules` exist.
#[test]
fn jobs_without_rules_follow_gitlabs_default_in_merge_request_pipelines() {
    let mr = ["CI_PIPELINE_SOURCE=merge_request_event", "CI_MERGE_REQUEST_IID=1"];
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", "plain:\n  script: [x]\n")], "json", &mr);
    assert_eq!(entry(&json_of(&finished), "plain")["when"], "never");
    let with_workflow = "workflow:\n  rules:\n    - when: always\nplain:\n  script: [x]\n";
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", with_workflow)], "json", &mr);
    assert_eq!(entry(&json_of(&finished), "plain")["when"], "on_success");
}

/// Issue 31: `workflow:rules` that create no pipeline are said so, in the text and the JSON.
#[test]
fn workflow_rules_say_when_no_pipeline_would_be_created() {
    let config = "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n    - if: $CI_COMMIT_TAG\njob:\n  script: [x]\n";
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", config)], "text", &FEATURE_PUSH);
    assert!(
        finished.stdout_text().starts_with("no pipeline would be created: workflow:rules create none"),
        "{}",
        finished.stdout_text()
    );
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", config)], "json", &FEATURE_PUSH);
    assert_eq!(json_of(&finished)["pipeline_created"], false);
    let (_dir, finished) =
        tasks_with(&[(".gitlab-ci.yml", config)], "json", &["CI_PIPELINE_SOURCE=merge_request_event"]);
    assert_eq!(json_of(&finished)["pipeline_created"], true);
    // Rules reached through !reference, and ones that depend on the diff.
    let undecided = ".rules:\n  rules:\n    - changes: [src/**]\nworkflow:\n  rules: !reference [.rules, rules]\njob:\n  script: [x]\n";
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", undecided)], "json", &FEATURE_PUSH);
    assert_eq!(json_of(&finished)["pipeline_created"], "unknown");
}

/// Issue 31: a job name over GitLab's 255-character limit is listed with a warning.
#[test]
fn job_names_over_gitlabs_limit_are_warned_about() {
    let long = "v".repeat(260);
    let config = format!("test:\n  parallel:\n    matrix:\n      - FLAVOUR: [short, {long}]\n  script: [x]\n");
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", &config)], "text", &FEATURE_PUSH);
    let text = finished.stdout_text();
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(text.contains(&format!("test: [{long}]")), "still listed: {text}");
    let warnings: Vec<&str> = text.lines().filter(|line| line.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("268 characters, over GitLab's limit of 255"), "{text}");
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", &config)], "json", &FEATURE_PUSH);
    assert_eq!(json_of(&finished)["warnings"].as_array().unwrap().len(), 1);
}

/// Issue 30: jobs in stage order, `.pre` first and `.post` last, included jobs where their stage is.
#[test]
fn jobs_are_listed_in_stage_order() {
    let config = "include: ci/extra.yml\nstages: [build, test]\nunit:\n  stage: test\n  script: [x]\ncompile:\n  stage: build\n  script: [x]\nprepare:\n  stage: .pre\n  script: [x]\n";
    let extra = "note:\n  stage: .post\n  script: [x]\nlint:\n  stage: test\n  script: [x]\n";
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", config), ("ci/extra.yml", extra)], "json", &FEATURE_PUSH);
    let json = json_of(&finished);
    let names: Vec<&str> = json["jobs"].as_array().unwrap().iter().map(|job| job["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prepare", "compile", "lint", "unit", "note"]);
}

/// Issue 31: a flow collection closed left of its key's column reads as libyaml (GitLab) reads it.
#[test]
fn flow_collections_ignore_indentation_as_gitlab_does() {
    let config = "test:\n  parallel:\n    matrix:\n      - FLAGS: [\n          \"--disable-a\",\n          \"--disable-b\"\n      ]\n  script:\n    - herald run --name check -- make check\n";
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", config)], "json", &FEATURE_PUSH);
    let json = json_of(&finished);
    let names: Vec<&str> = json["jobs"].as_array().unwrap().iter().map(|job| job["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["test: [--disable-a]", "test: [--disable-b]"]);
    // What libyaml refuses stays refused, with its position.
    let (_dir, finished) = tasks_with(&[(".gitlab-ci.yml", "job:\n  script:\n    -\tmake\n")], "json", &FEATURE_PUSH);
    assert_eq!(finished.code, Some(125));
    assert!(
        finished.stderr_text().contains(".gitlab-ci.yml:3:6: a tab after a block indicator"),
        "{}",
        finished.stderr_text()
    );
}

/// Issue 25: an include glob that backtracked exponentially (over a minute) and 22 × `{a,b}` in
/// `rules: exists` (14 s, 339 MB) are answered at once; the braces past herald's cap leave the
/// include undecided, so it is kept. (Time is bounded by step counts in src/pipeline/glob.rs.)
#[test]
fn pathological_globs_are_answered_without_backtracking() {
    let braces = "{a,b}".repeat(22);
    let config = format!(
        "include:\n  - local: 'd/*a*a*a*a*a*a*a*ab.yml'\n  - local: x.yml\n    rules:\n      - exists: ['{braces}']\njob:\n  script: [x]\n"
    );
    let long = format!("d/{}.yml", "a".repeat(56));
    let files = [
        (".gitlab-ci.yml", config.as_str()),
        (long.as_str(), "never-matched:\n  script: [x]\n"),
        ("d/aaaaaaaab.yml", "matched:\n  script: [x]\n"),
        ("x.yml", "kept:\n  script: [x]\n"),
    ];
    let (_dir, finished) = tasks_with(&files, "json", &FEATURE_PUSH);
    let json = json_of(&finished);
    let names: Vec<&str> = json["jobs"].as_array().unwrap().iter().map(|job| job["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["matched", "kept", "job"]);
}
