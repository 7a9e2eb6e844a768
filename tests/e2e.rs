//! End to end: a sample project (tests/fixtures/e2e/sample) whose `.gitlab-ci.yml` includes the
//! real `templates/` is run by gitlab-ci-local 4.72.0, shell executor, as a merge request
//! pipeline against the stand-in. herald is not on the jobs' PATH: the `.herald` job installs it
//! from a release directory laid out as scripts/release.sh makes it, checked by sha256.
//!
//! gitlab-ci-local makes up its pipeline and job ids, and no GitLab learns from it how its jobs
//! went; the test does what GitLab would: registers the pipeline and its jobs in the stand-in, and
//! follows gitlab-ci-local's output ("<job> starting …", "<job> finished in … FAIL n") to keep the
//! jobs' states current, as the runner reports them to GitLab.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::gitlab::{GitLab, PROJECT_ID, TOKEN_DEVELOPER};
use crate::support::{gitlab_ci_local, TempDir};

const PIPELINE: u64 = 2001;
const MR_IID: u64 = 1;
/// gitlab-ci-local's start, a small crate's clippy and test builds, and the jobs themselves.
const PIPELINE_PATIENCE: Duration = Duration::from_secs(300);

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn sh(dir: &Path, script: &str) -> String {
    let output = Command::new("sh").arg("-c").arg(script).current_dir(dir).output().unwrap();
    assert!(output.status.success(), "{script}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The sample project with the templates beside it, as a git repository with a GitLab remote.
fn sample_project(dir: &Path) -> String {
    let sample = repo().join("tests/fixtures/e2e/sample");
    sh(dir, &format!("cp -R '{}/.' . && cp -R '{}' templates", sample.display(), repo().join("templates").display()));
    sh(dir, "git init -q && git config user.email ci@example.com && git config user.name ci");
    sh(dir, "git add -A && git commit -q -m sample && git remote add origin https://gitlab.example.com/group/app.git");
    // As a clone has it: gitlab-ci-local reads the default branch from origin/HEAD.
    sh(dir, "git update-ref refs/remotes/origin/main HEAD && git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main");
    sh(dir, "git rev-parse HEAD")
}

/// A release of the herald under test in `dir/<version>/`, and `dir/latest/` naming it, as
/// scripts/release.sh lays them out: the templates install the latest release by default.
fn release(dir: &Path) -> PathBuf {
    let version = env!("CARGO_PKG_VERSION");
    let arch = sh(dir, "uname -m");
    let out = dir.join(version);
    std::fs::create_dir_all(out.join("staging")).unwrap();
    std::fs::create_dir_all(dir.join("latest")).unwrap();
    std::fs::copy(repo().join("install.sh"), out.join("install.sh")).unwrap();
    std::fs::copy(repo().join("install.sh"), dir.join("latest/install.sh")).unwrap();
    std::fs::write(dir.join("latest/VERSION"), format!("{version}\n")).unwrap();
    let name = format!("herald-{version}-{arch}-unknown-linux-musl.tar.gz");
    let binary = env!("CARGO_BIN_EXE_herald");
    sh(
        &out,
        &format!(
            "(strip -o staging/herald '{binary}' 2>/dev/null || cp '{binary}' staging/herald) && \
             tar -czf {name} -C staging herald && sha256sum {name} > {name}.sha256 && rm -r staging"
        ),
    );
    dir.to_owned()
}

/// The jobs of `gitlab-ci-local --list-json`, after the warnings it prints first on stdout.
pub(crate) fn list_json(stdout: &[u8]) -> Vec<serde_json::Value> {
    let text = String::from_utf8_lossy(stdout);
    let start = text.find("\n[").map_or(0, |at| at + 1);
    serde_json::from_str(&text[start..]).unwrap_or_else(|e| panic!("gitlab-ci-local --list-json: {e}:\n{text}"))
}

/// PATH without any directory that holds a `herald`, so that the template has to install it.
pub(crate) fn path_without_herald() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').filter(|dir| !Path::new(dir).join("herald").exists()).collect::<Vec<_>>().join(":")
}

/// The runner's side of GitLab's job states: gitlab-ci-local's progress lines, read as they come.
fn follow_jobs(gitlab: &GitLab, ids: &HashMap<String, u64>, line: &str) {
    let mut names: Vec<&String> = ids.keys().collect();
    names.sort_by_key(|name| std::cmp::Reverse(name.len()));
    let Some(name) = names.into_iter().find(|name| line.starts_with(name.as_str())) else { return };
    let rest = line[name.len()..].trim_start();
    let status = if rest.starts_with("starting ") {
        "running"
    } else if rest.starts_with("finished in ") {
        if rest.contains(" FAIL ") {
            "failed"
        } else {
            "success"
        }
    } else {
        return;
    };
    gitlab.with(|world| world.set_job_status(ids[name.as_str()], status));
}

#[test]
fn a_merge_request_pipeline_of_the_templates_publishes_every_step_and_one_note() {
    let Some(gitlab_ci_local) = gitlab_ci_local() else { return };
    let dir = TempDir::new("e2e");
    let project = dir.join("project");
    std::fs::create_dir_all(&project).unwrap();
    let sha = sample_project(&project);
    std::fs::create_dir_all(dir.join("releases")).unwrap();
    let releases = release(&dir.join("releases"));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();

    let gitlab = GitLab::start();
    gitlab.with(|world| world.add_pipeline(PIPELINE, &sha, "refs/merge-requests/1/head"));
    // The merge request adds the crate's src/lib.rs: every line of it is a changed line.
    let source = std::fs::read_to_string(project.join("src/lib.rs")).unwrap();
    gitlab.with(|world| {
        world.mr_versions.push(crate::support::gitlab::DiffVersion {
            id: 1,
            head_commit_sha: sha.clone(),
            base_commit_sha: "b".repeat(40),
            start_commit_sha: "b".repeat(40),
        });
        world.mr_diffs.push(crate::support::gitlab::FileDiff {
            old_path: "src/lib.rs".into(),
            new_path: "src/lib.rs".into(),
            new_file: true,
            deleted_file: false,
            diff: format!(
                "@@ -0,0 +1,{} @@\n{}",
                source.lines().count(),
                source.lines().map(|line| format!("+{line}\n")).collect::<String>()
            ),
        });
    });

    let variables = [
        ("CI_API_V4_URL", gitlab.api_url()),
        ("CI_PROJECT_ID", PROJECT_ID.to_string()),
        ("CI_PIPELINE_ID", PIPELINE.to_string()),
        // gitlab-ci-local gives jobs with an `image:` a CI_PROJECT_DIR in /builds even when the
        // shell executor runs them in the checkout; a runner gives the checkout.
        ("CI_PROJECT_DIR", project.display().to_string()),
        ("CI_PIPELINE_SOURCE", "merge_request_event".into()),
        ("CI_MERGE_REQUEST_IID", MR_IID.to_string()),
        ("GITLAB_CI", "true".into()),
        ("SAMPLE_HERALD_RELEASES", releases.display().to_string()),
    ];
    // The token goes in a variables file, not on gitlab-ci-local's command line, which every
    // process on the machine can read (the executor's tests look for it there, at the same time).
    std::fs::write(home.join("secret-variables.yml"), format!("SAMPLE_BOT_TOKEN: {TOKEN_DEVELOPER}\n")).unwrap();
    let gitlab_ci_local = |args: &[&str]| {
        let mut command = Command::new(&gitlab_ci_local);
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            if key.starts_with("HERALD_") || key.starts_with("CI_") || key.starts_with("GCL_") || key == "GITLAB_CI" {
                command.env_remove(&*key);
            }
        }
        let rustup_home = std::env::var("RUSTUP_HOME")
            .unwrap_or_else(|_| format!("{}/.rustup", std::env::var("HOME").unwrap_or_default()));
        command.current_dir(&project).env("HOME", &home).env("RUSTUP_HOME", rustup_home);
        command.env("PATH", path_without_herald()).args(["--force-shell-executor"]).args(args);
        let ignore: Vec<&str> = variables.iter().map(|(key, _)| *key).filter(|key| key.starts_with("CI_")).collect();
        command.arg("--ignore-predefined-vars").arg(format!("{},GITLAB_CI", ignore.join(",")));
        for (key, value) in &variables {
            command.arg("--variable").arg(format!("{key}={value}"));
        }
        // Relative: gitlab-ci-local joins it to the project directory.
        command.arg("--variables-file").arg("../home/secret-variables.yml");
        command
    };

    // The jobs, as GitLab would create them with the pipeline.
    let listed = gitlab_ci_local(&["--list-json"]).output().unwrap();
    assert!(listed.status.success(), "gitlab-ci-local --list-json: {}", String::from_utf8_lossy(&listed.stderr));
    let jobs: Vec<serde_json::Value> = list_json(&listed.stdout);
    let ids: HashMap<String, u64> = jobs
        .iter()
        .map(|job| {
            let (name, stage) = (job["name"].as_str().unwrap(), job["stage"].as_str().unwrap());
            (name.to_owned(), gitlab.with(|world| world.add_job(PIPELINE, name, stage, "created").0))
        })
        .collect();
    let mut names: Vec<&str> = ids.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["checks", "herald-note", "lint-findings", "lost", "rust-lint", "rust-test"]);

    let mut child = gitlab_ci_local(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (lines, received) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        thread::spawn(move || {
            BufReader::new(stream).lines().map_while(Result::ok).for_each(|line| drop(lines.send(line)))
        });
    }
    drop(lines);
    let deadline = Instant::now() + PIPELINE_PATIENCE;
    let mut output = String::new();
    loop {
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                follow_jobs(&gitlab, &ids, &line);
                output.push_str(&line);
                output.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("the pipeline did not finish within {PIPELINE_PATIENCE:?}:\n{output}");
            }
        }
    }
    child.wait().unwrap();
    let outcome = |job: &str| gitlab.with(|world| world.jobs.iter().find(|j| j.id == ids[job]).unwrap().status.clone());
    for (job, expected) in [
        ("rust-lint", "success"),
        ("rust-test", "success"),
        ("checks", "failed"),
        ("lost", "failed"),
        ("herald-note", "success"),
    ] {
        assert_eq!(outcome(job), expected, "job {job}:\n{output}");
    }
    assert!(output.contains("installed "), "the template installed herald from the release:\n{output}");

    // Every step's status, named after the include that defines its job, in its final state.
    let statuses = gitlab.with(|world| world.statuses(PIPELINE));
    let state = |name: &str| {
        statuses
            .get(name)
            .map(|s| s.status.clone())
            .unwrap_or_else(|| panic!("no status {name}: {statuses:#?}\n{output}"))
    };
    assert_eq!(state("herald/rust/rust-lint › fmt"), "success");
    assert_eq!(state("herald/rust/rust-lint › clippy"), "success");
    assert_eq!(state("herald/rust/rust-test › test"), "success");
    assert_eq!(state("herald/generic/checks › echo \"checking the sample\""), "success");
    assert_eq!(state("herald/generic/checks › exit 3"), "failed");
    assert_eq!(state("herald/lost › doomed"), "failed", "closed by the .post job");
    let doomed = &statuses["herald/lost › doomed"];
    assert!(doomed.description.as_deref().unwrap_or_default().contains("no result recorded"));
    assert_eq!(state("herald/lint-findings › report"), "success");
    assert_eq!(statuses.len(), 7, "nothing else, and no step after the failure: {:#?}", statuses.keys());
    // The lint job's report became a thread on the changed line, and its status says so.
    let threads = gitlab.with(|world| world.discussions.clone());
    assert_eq!(threads.len(), 1, "{threads:#?}");
    assert_eq!(threads[0].notes[0].position, Some(("src/lib.rs".into(), 4)));
    let report = statuses["herald/lint-findings › report"].description.clone().unwrap_or_default();
    assert!(report.ends_with(" · 1 finding, 1 on changed lines (1 new thread)"), "{report}");
    assert!(statuses.values().all(|s| s.user_id == 100), "all posted with the token from SAMPLE_BOT_TOKEN");

    // One note, final, with every job and step.
    let notes = gitlab.with(|world| world.herald_notes(MR_IID));
    assert_eq!(notes.len(), 1, "{notes:#?}");
    let body = &notes[0].body;
    for expected in ["rust-lint", "rust-test", "checks", "lost", "fmt", "clippy", "exit 3", "doomed", "lint-findings"] {
        assert!(body.contains(expected), "the note names {expected}:\n{body}");
    }
    assert!(!body.contains("never runs"), "{body}");
    assert!(!body.contains("herald-note"), "the job writing the note is not in it: {body}");
    assert!(body.contains("### ❌ Pipeline [#2001]"), "{body}");
    assert!(body.contains("**2 failed** · 5 passed · 7 steps in 5 jobs"), "{body}");
}

/// Every template, included together with herald.yml: gitlab-ci-local (which validates against
/// GitLab's schema) and herald read the same jobs, herald plans the steps each job will publish,
/// and every script line passes shellcheck as POSIX sh (images such as Alpine have no bash).
#[test]
fn every_template_loads_plans_its_steps_and_is_posix_sh() {
    let Some(gitlab_ci_local) = gitlab_ci_local() else { return };
    if !crate::support::needs("shellcheck") {
        return;
    }
    let dir = TempDir::new("templates");
    let templates = ["herald", "rust", "node", "python", "go", "generic", "terraform"];
    let includes: String = templates
        .iter()
        .map(|name| {
            let inputs = if *name == "generic" { "\n    inputs:\n      steps: make check" } else { "" };
            format!("  - local: templates/{name}.yml{inputs}\n")
        })
        .collect();
    std::fs::write(dir.join(".gitlab-ci.yml"), format!("include:\n{includes}")).unwrap();
    sh(dir.path(), &format!("cp -R '{}' templates", repo().join("templates").display()));
    sh(dir.path(), "git init -q && git config user.email ci@example.com && git config user.name ci && git add -A");
    sh(dir.path(), "git commit -q -m templates && git remote add origin https://gitlab.example.com/group/app.git");
    sh(dir.path(), "git update-ref refs/remotes/origin/main HEAD");
    sh(dir.path(), "git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main");

    let theirs = Command::new(&gitlab_ci_local)
        .args(["--list-json", "--variable", "CI_PIPELINE_SOURCE=merge_request_event"])
        .args(["--ignore-predefined-vars", "CI_PIPELINE_SOURCE"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(theirs.status.success(), "gitlab-ci-local: {}", String::from_utf8_lossy(&theirs.stderr));
    let theirs: Vec<serde_json::Value> = list_json(&theirs.stdout);
    let mut their_names: Vec<&str> = theirs.iter().map(|job| job["name"].as_str().unwrap()).collect();
    their_names.sort();

    // The same merge request pipeline for both: the templates' rules create their jobs there.
    let ours = crate::support::run(
        crate::support::herald()
            .args(["tasks", "--format", "json", "--variable", "CI_PIPELINE_SOURCE=merge_request_event"])
            .current_dir(dir.path()),
    );
    assert_eq!(ours.code, Some(0), "{}", ours.stderr_text());
    let ours: serde_json::Value = serde_json::from_str(&ours.stdout_text()).unwrap();
    let jobs = ours["jobs"].as_array().unwrap();
    let mut our_names: Vec<&str> = jobs.iter().map(|job| job["name"].as_str().unwrap()).collect();
    our_names.sort();
    assert_eq!(our_names, their_names);

    let plan: HashMap<&str, (String, Vec<&str>)> = jobs
        .iter()
        .map(|job| {
            let steps = job["steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
            (job["name"].as_str().unwrap(), (job["task"].as_str().unwrap().to_owned(), steps))
        })
        .collect();
    let expected: [(&str, &str, &[&str]); 11] = [
        ("rust-lint", "rust/rust-lint", &["fmt", "clippy"]),
        ("rust-test", "rust/rust-test", &["test"]),
        ("node-lint", "node/node-lint", &["install", "lint"]),
        ("node-test", "node/node-test", &["install", "test"]),
        ("python-lint", "python/python-lint", &["install", "ruff check", "ruff format"]),
        ("python-test", "python/python-test", &["install", "pytest"]),
        ("go-vet", "go/go-vet", &["download", "vet"]),
        ("go-test", "go/go-test", &["download", "test"]),
        ("checks", "generic/checks", &[]), // known only when the job runs
        ("herald-note", "herald/herald-note", &[]),
        ("terraform-plan", "terraform/terraform-plan", &["init", "validate", "plan"]),
    ];
    for (job, task, steps) in expected {
        let (our_task, our_steps) = &plan[job];
        assert_eq!((our_task.as_str(), our_steps.as_slice()), (task, steps), "{job}");
    }

    for job in jobs {
        for key in ["before_script", "script", "after_script"] {
            let script: String =
                job[key].as_array().unwrap().iter().map(|line| format!("{}\n", line.as_str().unwrap())).collect();
            let mut check = Command::new("shellcheck")
                // SC2154: CI variables are set by the runner, not by the script.
                .args(["--shell=sh", "--exclude=SC2154", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("shellcheck is needed for this test (apt-get install shellcheck; .ci/run installs it)");
            std::io::Write::write_all(&mut check.stdin.take().unwrap(), script.as_bytes()).unwrap();
            let checked = check.wait_with_output().unwrap();
            assert!(
                checked.status.success(),
                "{} {key}:\n{script}\n{}",
                job["name"],
                String::from_utf8_lossy(&checked.stdout)
            );
        }
    }
}
