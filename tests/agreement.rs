//! Agreement with an independent implementation: gitlab-ci-local 4.72.0 (`--list-json` and
//! `--preview`) must list the same jobs, in the same stage order, with the same `when` and
//! `allow_failure` from their rules and the same resolved scripts as `herald tasks --format json`,
//! on every fixture it can evaluate offline (fixtures with `project`/`remote`/`template`/
//! `component` includes need a network and are left out). Both list the jobs GitLab would not
//! create too, with `"when": "never"`.
//!
//! gitlab-ci-local names parallel jobs its own way; GitLab's documented names are the reference:
//! `test: [1/3]` is GitLab's `test 1/3`, and `build: [a,b]` is `build: [a, b]`.

use std::path::{Path, PathBuf};
use std::process::Command;

use herald::pipeline::yaml::{self, Node, Value};

use crate::support::{gitlab_ci_local, herald, run, TempDir};

/// A fixture as a git repository of its own (gitlab-ci-local reads git), in `dir`.
fn repository(fixture: &str, dir: &Path) {
    let from = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pipelines").join(fixture);
    let status = Command::new("cp").arg("-r").arg(format!("{}/.", from.display())).arg(dir).status().unwrap();
    assert!(status.success());
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-q", "-m", "fixture"],
        &["remote", "add", "origin", "https://gitlab.example.com/group/app.git"],
        // The default branch, as a clone knows it (both read it for `$CI_DEFAULT_BRANCH`).
        &["symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main"],
    ] {
        assert!(Command::new("git").args(args).current_dir(dir).status().unwrap().success(), "git {args:?}");
    }
}

fn gitlab_ci_local_output(gitlab_ci_local: &Path, dir: &Path, flag: &str) -> String {
    let finished = run(Command::new(gitlab_ci_local).arg(flag).current_dir(dir));
    assert_eq!(finished.code, Some(0), "gitlab-ci-local {flag}: {}", finished.stderr_text());
    finished.stdout_text()
}

/// gitlab-ci-local's job name as GitLab writes it.
fn gitlab_name(name: &str) -> String {
    match name.rsplit_once(": [") {
        Some((base, rest)) if rest.ends_with(']') && rest[..rest.len() - 1].contains('/') && !rest.contains(',') => {
            format!("{base} {}", &rest[..rest.len() - 1])
        }
        Some((base, rest)) => format!("{base}: [{}", rest.split(',').map(str::trim).collect::<Vec<_>>().join(", ")),
        None => name.to_owned(),
    }
}

/// A job instance's base job: `test 2/3` → `test`, `build: [a, b]` → `build`.
fn base_name(name: &str) -> &str {
    if let Some((base, _)) = name.split_once(": [") {
        return base;
    }
    match name.rsplit_once(' ') {
        Some((base, count)) if count.contains('/') && count.chars().all(|c| c.is_ascii_digit() || c == '/') => base,
        _ => name,
    }
}

fn lines(node: Option<&Node>) -> Vec<String> {
    match node.map(|n| &n.value) {
        Some(Value::Seq(items)) => items.iter().flat_map(|item| lines(Some(item))).collect(),
        Some(_) => node.and_then(Node::scalar_text).into_iter().collect(),
        None => Vec::new(),
    }
}

#[test]
fn herald_and_gitlab_ci_local_agree_on_jobs_and_scripts() {
    let Some(gitlab_ci_local) = gitlab_ci_local() else { return };
    for fixture in ["nested", "inputs", "realworld", "rules", "lenient-yaml"] {
        let dir = TempDir::new("agreement");
        repository(fixture, dir.path());
        let preview =
            yaml::parse(&gitlab_ci_local_output(&gitlab_ci_local, dir.path(), "--preview")).unwrap().remove(0);
        let stages = lines(preview.get("stages"));
        let mut theirs: Vec<serde_json::Value> =
            serde_json::from_str(&gitlab_ci_local_output(&gitlab_ci_local, dir.path(), "--list-json")).unwrap();
        // `--list-json` keeps the file's order; GitLab (and `--list`) go stage by stage.
        theirs.sort_by_key(|job| stages.iter().position(|stage| job["stage"] == stage.as_str()));
        let their_names: Vec<String> = theirs.iter().map(|job| gitlab_name(job["name"].as_str().unwrap())).collect();

        let ours = run(herald().args(["tasks", "--format", "json", "--file"]).arg(dir.join(".gitlab-ci.yml")));
        assert_eq!(ours.code, Some(0), "{}", ours.stderr_text());
        let ours: serde_json::Value = serde_json::from_str(&ours.stdout_text()).unwrap();
        let our_jobs = ours["jobs"].as_array().unwrap();
        let our_names: Vec<String> = our_jobs.iter().map(|job| job["name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(our_names, their_names, "{fixture}: the jobs and their order");
        for (ours, theirs) in our_jobs.iter().zip(&theirs) {
            let name = &ours["name"];
            assert_eq!(ours["when"], theirs["when"], "{fixture}: {name} when");
            assert_eq!(ours["allow_failure"], theirs["allow_failure"], "{fixture}: {name} allow_failure");
        }

        for job in our_jobs {
            let name = job["name"].as_str().unwrap();
            let resolved =
                preview.get(base_name(name)).unwrap_or_else(|| panic!("{fixture}: {name} missing from the preview"));
            for key in ["before_script", "script", "after_script"] {
                let ours: Vec<String> =
                    job[key].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_owned()).collect();
                assert_eq!(ours, lines(resolved.get(key)), "{fixture}: {name} {key}");
            }
        }
    }
}

#[test]
fn parallel_names_map_to_gitlabs() {
    assert_eq!(gitlab_name("test: [2/3]"), "test 2/3");
    assert_eq!(gitlab_name("build: [x86_64,release]"), "build: [x86_64, release]");
    assert_eq!(gitlab_name("lint"), "lint");
    assert_eq!(base_name("test 2/3"), "test");
    assert_eq!(base_name("build: [a, b]"), "build");
    assert_eq!(base_name("deploy to prod"), "deploy to prod");
}

/// The YAML fixtures of libyaml's differences from YAML 1.2 (src/pipeline/libyaml.rs), each
/// starting with `# libyaml: reads.` or `# libyaml: refuses.`.
fn yaml_fixtures() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/yaml");
    let mut fixtures: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 10, "{fixtures:?}");
    fixtures
}

/// herald's reading as JSON (no floats in the fixtures: both sides print them their own way).
fn as_json(node: &Node) -> serde_json::Value {
    match &node.value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Str(s) => s.clone().into(),
        Value::Seq(items) => items.iter().map(as_json).collect(),
        Value::Map(entries) => entries.iter().map(|(k, v)| (k.clone(), as_json(v))).collect(),
        Value::Reference(path) => panic!("no !reference in the YAML fixtures: {path:?}"),
    }
}

/// Issue 31: each recorded difference reads (or is refused) as its fixture says libyaml does.
#[test]
fn yaml_fixtures_read_as_recorded_for_libyaml() {
    for (name, text) in yaml_fixtures() {
        let reads = text.starts_with("# libyaml: reads.");
        assert!(reads || text.starts_with("# libyaml: refuses."), "{name} says what libyaml does");
        let ours = yaml::parse(&text);
        assert_eq!(ours.is_ok(), reads, "{name}: {ours:?}");
        if let Err(error) = ours {
            assert!(error.at.line >= 2, "{name}: the position of the problem: {error:?}");
        }
    }
}

/// Issue 31: the same fixtures against libyaml itself, through PyYAML's C loader.
#[test]
fn yaml_fixtures_agree_with_libyaml() {
    let script = "import json, sys, yaml\nassert yaml.__with_libyaml__\ntry:\n    print(json.dumps(list(yaml.load_all(sys.stdin.read(), Loader=yaml.CLoader))))\nexcept yaml.YAMLError as error:\n    print('refused: ' + str(error).splitlines()[0])\n";
    let libyaml = Command::new("python3")
        .args(["-c", "import yaml, sys; sys.exit(0 if yaml.__with_libyaml__ else 1)"])
        .status()
        .is_ok_and(|status| status.success());
    if !crate::support::available("PyYAML with libyaml (pip install pyyaml)", libyaml) {
        return;
    }
    for (name, text) in yaml_fixtures() {
        let mut child = Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{name}: {output:?}");
        let theirs = String::from_utf8(output.stdout).unwrap();
        match yaml::parse(&text) {
            Ok(documents) => {
                let ours: serde_json::Value = documents.iter().map(as_json).collect();
                let theirs: serde_json::Value =
                    serde_json::from_str(&theirs).unwrap_or_else(|_| panic!("{name}: libyaml {theirs}"));
                assert_eq!(ours, theirs, "{name}");
            }
            Err(error) => {
                assert!(theirs.starts_with("refused: "), "{name}: herald refuses ({error:?}), libyaml reads {theirs}")
            }
        }
    }
}
