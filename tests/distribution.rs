//! How herald ships: its own pipeline (.gitlab-ci.yml, run by gitlab-ci-local), publishing a
//! release to the generic package registry (scripts/publish-release.sh against the stand-in) and
//! installing the latest from there, and the container image recipe (Dockerfile).
//!
//! The release builds themselves (scripts/release.sh, minutes of LTO per target) and the aarch64
//! binary under qemu-user run in .ci/run (scripts/cross-smoke.sh); here a release directory is laid
//! out as release.sh makes it, with the herald under test inside.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use crate::e2e::{list_json, path_without_herald, repo, sh};
use crate::support::gitlab::{GitLab, PROJECT_ID, TOKEN_DEVELOPER, TOKEN_REPORTER};
use crate::support::{gitlab_ci_local, run, Finished, TempDir};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const TARGETS: [&str; 2] = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"];

/// This checkout as a clone has it (tracked and new files, nothing ignored), with a GitLab remote.
fn checkout(dir: &Path) {
    sh(
        &repo(),
        &format!(
            "git ls-files -z --cached --others --exclude-standard | \
             xargs -0 sh -c 'for f; do [ -e \"$f\" ] && cp --parents \"$f\" \"{}\"; done' copy",
            dir.display()
        ),
    );
    sh(dir, "git init -q && git config user.email ci@example.com && git config user.name ci && git add -A");
    sh(dir, "git commit -q -m herald && git remote add origin https://gitlab.example.com/platform/herald.git");
    sh(dir, "git update-ref refs/remotes/origin/main HEAD && git symbolic-ref refs/remotes/origin/HEAD refs/remotes/origin/main");
}

/// dist/ as scripts/release.sh lays it out. The x86_64 archive holds the herald under test; the
/// aarch64 one a stand-in binary (`/bin/true`), so the two can be told apart.
fn release(dir: &Path) {
    let out = dir.join(format!("dist/{VERSION}"));
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(dir.join("dist/latest")).unwrap();
    for (target, binary) in TARGETS.iter().zip([env!("CARGO_BIN_EXE_herald"), "/bin/true"]) {
        let name = format!("herald-{VERSION}-{target}.tar.gz");
        sh(
            &out,
            &format!(
                "mkdir staging && cp '{binary}' staging/herald && tar -czf {name} -C staging herald && \
                 sha256sum {name} > {name}.sha256 && rm -r staging"
            ),
        );
    }
    for place in [format!("dist/{VERSION}/install.sh"), "dist/latest/install.sh".into()] {
        std::fs::copy(dir.join("install.sh"), dir.join(place)).unwrap();
    }
    std::fs::write(dir.join("dist/latest/VERSION"), format!("{VERSION}\n")).unwrap();
}

fn publish(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Finished {
    let mut command = Command::new(dir.join("scripts/publish-release.sh"));
    command.args(args).env_remove("CI_JOB_TOKEN").env_remove("HERALD_RELEASE_TOKEN").env_remove("CI_COMMIT_TAG");
    command.envs(env.iter().copied());
    run(&mut command)
}

/// The `PUT <url> (…)` lines of a publish run, in order.
fn uploads(output: &str) -> Vec<String> {
    output.lines().filter_map(|line| Some(line.strip_prefix("PUT ")?.split(' ').next()?.to_owned())).collect()
}

/// gitlab-ci-local on herald's own pipeline, in `dir`, with `variables`.
fn gitlab_ci_local_in(program: &Path, dir: &Path, home: &Path, variables: &[(&str, String)]) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("HERALD_") || key.starts_with("CI_") || key.starts_with("GCL_") || key == "GITLAB_CI" {
            command.env_remove(&*key);
        }
    }
    command.current_dir(dir).env("HOME", home).env("PATH", path_without_herald()).arg("--force-shell-executor");
    let ignored: Vec<&str> =
        variables.iter().map(|(key, _)| *key).filter(|key| key.starts_with("CI_") || *key == "GITLAB_CI").collect();
    if !ignored.is_empty() {
        command.arg("--ignore-predefined-vars").arg(ignored.join(","));
    }
    for (key, value) in variables {
        command.arg("--variable").arg(format!("{key}={value}"));
    }
    command
}

/// The jobs the pipeline would create (--list-json also shows those whose rules say `never`).
fn job_names(listed: &std::process::Output) -> Vec<String> {
    assert!(listed.status.success(), "gitlab-ci-local --list-json: {}", String::from_utf8_lossy(&listed.stderr));
    let mut names: Vec<String> = list_json(&listed.stdout)
        .iter()
        .filter(|job| job["when"] != "never")
        .map(|job| job["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// gitlab-ci-local reads herald's pipeline as herald does, makes the release jobs on version tags
/// only, and runs its install test job: the archive installed by the runner-image
/// command of docs/guide.md ("Installing"), a step run by the installed herald, each line a herald step.
#[test]
fn herald_s_own_pipeline_lists_its_jobs_and_runs_its_install_test() {
    let Some(gitlab_ci_local) = gitlab_ci_local() else { return };
    let gitlab_ci_local_in = |dir: &Path, home: &Path, variables: &[(&str, String)]| {
        gitlab_ci_local_in(&gitlab_ci_local, dir, home, variables)
    };
    let dir = TempDir::new("own-pipeline");
    let project = dir.join("herald");
    let home = dir.join("home");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    checkout(&project);
    release(&project);

    let merge_request = [("CI_PIPELINE_SOURCE", "merge_request_event".to_owned())];
    let listed = gitlab_ci_local_in(&project, &home, &merge_request).arg("--list-json").output().unwrap();
    let in_merge_requests = job_names(&listed);
    let tag = [("CI_COMMIT_TAG", VERSION.to_owned()), ("CI_PIPELINE_SOURCE", "push".to_owned())];
    let listed = gitlab_ci_local_in(&project, &home, &tag).arg("--list-json").output().unwrap();
    let on_tags = job_names(&listed);
    let test_jobs = ["build-aarch64", "build-x86_64", "container-image", "herald-note", "install-x86_64"];
    let test_jobs = [&test_jobs[..], &["rust-lint", "rust-test", "smoke-aarch64"]].concat();
    assert_eq!(in_merge_requests, test_jobs);
    let mut with_release = [&test_jobs[..], &["publish-packages", "release"]].concat();
    with_release.sort();
    assert_eq!(on_tags, with_release);

    // herald names the same jobs (it leaves job rules to GitLab, so it plans the tag's set).
    let ours = run(crate::support::herald().args(["tasks", "--format", "json"]).current_dir(&project));
    assert_eq!(ours.code, Some(0), "{}", ours.stderr_text());
    let ours: serde_json::Value = serde_json::from_str(&ours.stdout_text()).unwrap();
    let mut our_names: Vec<String> =
        ours["jobs"].as_array().unwrap().iter().map(|job| job["name"].as_str().unwrap().to_owned()).collect();
    our_names.sort();
    assert_eq!(our_names, on_tags);

    // GITLAB_CI as a runner sets it, for herald's job-log lines.
    let runner = [("GITLAB_CI", "true".to_owned())];
    let ran = gitlab_ci_local_in(&project, &home, &runner).arg("install-x86_64").output().unwrap();
    let log = format!("{}{}", String::from_utf8_lossy(&ran.stdout), String::from_utf8_lossy(&ran.stderr));
    assert!(ran.status.success(), "install-x86_64 failed:\n{log}");
    assert!(log.contains("✔ install passed"), "{log}");
    assert!(log.contains("✔ exit code passed"), "{log}");
    let installed = std::fs::read(project.join(".herald-test/bin/herald")).unwrap();
    assert_eq!(
        installed,
        std::fs::read(env!("CARGO_BIN_EXE_herald")).unwrap(),
        "not the latest x86_64 archive's herald"
    );
}

/// The release job's links point at exactly the files publishing uploads for the version, and the
/// dry run checks everything and sends nothing.
#[test]
fn the_release_links_exactly_what_publishing_uploads() {
    let dir = TempDir::new("publish-dry-run");
    checkout(dir.path());
    release(dir.path());
    let api = "https://gitlab.example.com/api/v4";
    let dry = publish(
        dir.path(),
        &["--dry-run"],
        &[("CI_API_V4_URL", api), ("CI_PROJECT_ID", "7"), ("CI_COMMIT_TAG", VERSION)],
    );
    assert_eq!(dry.code, Some(0), "{}", dry.stderr_text());
    assert!(dry.stdout_text().contains("dry run: nothing sent"), "{}", dry.stdout_text());
    let packages = format!("{api}/projects/7/packages/generic/herald");
    let uploads = uploads(&dry.stdout_text());
    let versioned: BTreeSet<&str> =
        uploads.iter().filter(|url| url.starts_with(&format!("{packages}/{VERSION}/"))).map(String::as_str).collect();
    assert_eq!(versioned.len(), 5, "two archives, two checksums, install.sh: {uploads:?}");
    // latest/ last: it must never name a version whose files are not there yet.
    assert_eq!(uploads[5..], [format!("{packages}/latest/install.sh"), format!("{packages}/latest/VERSION")]);

    let pipeline = std::fs::read_to_string(dir.join(".gitlab-ci.yml")).unwrap();
    let links: Vec<String> = pipeline
        .lines()
        .filter_map(|line| line.trim().strip_prefix("url: $PACKAGES/"))
        .map(|url| format!("{packages}/{}", url.replace("$CI_COMMIT_TAG", VERSION)))
        .collect();
    assert_eq!(links.iter().map(String::as_str).collect::<BTreeSet<_>>(), versioned);
    let notes = std::fs::read_to_string(dir.join("release-notes.md")).unwrap();
    let changelog = std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();
    let section = changelog.split(&format!("\n## {VERSION}\n")).nth(1).expect("a section for this version");
    let section = section.split("\n## ").next().unwrap();
    assert_eq!(notes.trim(), section.trim(), "release-notes.md: the CHANGELOG's section for {VERSION}");
}

/// Published to the (stand-in's) generic package registry, the release is what install.sh and the
/// templates install by default: the newest, found through latest/VERSION.
#[test]
fn a_published_release_is_installed_as_the_latest() {
    let dir = TempDir::new("publish");
    checkout(dir.path());
    release(dir.path());
    let gitlab = GitLab::start();
    let api = gitlab.api_url();
    let project = PROJECT_ID.to_string();
    let env =
        |token| [("CI_API_V4_URL", api.as_str()), ("CI_PROJECT_ID", project.as_str()), ("HERALD_RELEASE_TOKEN", token)];

    let refused = publish(dir.path(), &[], &env(TOKEN_REPORTER));
    assert_eq!(refused.code, Some(1));
    assert!(refused.stderr_text().contains("publish-release.sh: the upload to "), "{}", refused.stderr_text());
    assert!(!refused.stderr_text().contains(TOKEN_REPORTER) && !refused.stdout_text().contains(TOKEN_REPORTER));
    gitlab.with(|world| world.packages.clear());

    let published = publish(dir.path(), &[], &env(TOKEN_DEVELOPER));
    assert_eq!(published.code, Some(0), "{}", published.stderr_text());
    assert!(!published.stdout_text().contains(TOKEN_DEVELOPER) && !published.stderr_text().contains(TOKEN_DEVELOPER));
    let stored = gitlab.with(|world| {
        world.packages.iter().map(|(_, name, version, file, _)| format!("{name}/{version}/{file}")).collect::<Vec<_>>()
    });
    assert_eq!(stored.len(), 7, "{stored:?}");
    assert_eq!(stored.last().unwrap(), "herald/latest/VERSION");
    let archive = format!("herald-{VERSION}-x86_64-unknown-linux-musl.tar.gz");
    let uploaded = gitlab.with(|world| {
        world.packages.iter().find(|(_, _, version, file, _)| version == VERSION && *file == archive).unwrap().4.clone()
    });
    assert_eq!(
        uploaded,
        std::fs::read(dir.join(&format!("dist/{VERSION}/{archive}"))).unwrap(),
        "bytes changed on the way"
    );

    // Anyone may download a public project's packages, as runner images do, without a token.
    gitlab.with(|world| world.projects.iter_mut().for_each(|project| project.public = true));
    let prefix = dir.join("prefix");
    let base = format!("{api}/projects/{PROJECT_ID}/packages/generic/herald");
    let installed = run(Command::new("sh").arg(dir.join("install.sh")).args([
        "--prefix",
        prefix.to_str().unwrap(),
        "--base-url",
        &base,
        "--arch",
        "x86_64",
    ]));
    assert_eq!(installed.code, Some(0), "{}", installed.stderr_text());
    assert_eq!(std::fs::read(prefix.join("bin/herald")).unwrap(), std::fs::read(env!("CARGO_BIN_EXE_herald")).unwrap());
}

/// A release is refused, with one line, when its tag, Cargo.toml and the CHANGELOG disagree, or
/// when an archive does not match its checksum.
#[test]
fn a_release_that_does_not_add_up_is_refused() {
    let dir = TempDir::new("publish-refused");
    checkout(dir.path());
    release(dir.path());
    let env = [("CI_API_V4_URL", "https://gitlab.example.com/api/v4"), ("CI_PROJECT_ID", "7")];

    let wrong_tag = publish(dir.path(), &["--dry-run"], &[&env[..], &[("CI_COMMIT_TAG", "9.9.9")]].concat());
    assert_eq!(wrong_tag.code, Some(1));
    assert!(wrong_tag.stderr_text().contains(&format!("the tag 9.9.9 is not Cargo.toml's version {VERSION}")));

    let archive = dir.join(&format!("dist/{VERSION}/herald-{VERSION}-aarch64-unknown-linux-musl.tar.gz"));
    let original = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, b"tampered").unwrap();
    let tampered = publish(dir.path(), &["--dry-run"], &env);
    assert_eq!(tampered.code, Some(1));
    assert!(tampered.stderr_text().contains("does not match its sha256"), "{}", tampered.stderr_text());
    std::fs::write(&archive, original).unwrap();

    let changelog = std::fs::read_to_string(dir.join("CHANGELOG.md")).unwrap();
    std::fs::write(dir.join("CHANGELOG.md"), changelog.replace(&format!("## {VERSION}"), "## 0.0.1")).unwrap();
    let undocumented = publish(dir.path(), &["--dry-run"], &env);
    assert_eq!(undocumented.code, Some(1));
    assert!(undocumented.stderr_text().contains(&format!("CHANGELOG.md has no '## {VERSION}' section")));
    for refused in [wrong_tag, tampered, undocumented] {
        assert_eq!(refused.stderr_text().lines().count(), 1, "{}", refused.stderr_text());
        assert!(refused.stdout_text().is_empty(), "nothing published: {}", refused.stdout_text());
    }
}

/// The image recipe, read as a builder would (no Docker engine here): FROM scratch, nothing to
/// run, and for each platform the static binary scripts/image-context.sh unpacked from that
/// platform's archive, at the path the entrypoint names.
#[test]
fn the_image_recipe_copies_each_platform_s_binary() {
    let dir = TempDir::new("image");
    checkout(dir.path());
    release(dir.path());
    let context = sh(dir.path(), "scripts/image-context.sh");
    assert!(context.contains(&format!("herald {VERSION}")), "{context}");

    let recipe = std::fs::read_to_string(dir.join("Dockerfile")).unwrap().replace("\\\n", " ");
    let instructions: Vec<(String, String)> = recipe
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
            (keyword.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect();
    let keywords: Vec<&str> = instructions.iter().map(|(keyword, _)| keyword.as_str()).collect();
    assert_eq!(keywords.iter().filter(|k| **k == "FROM").count(), 1, "{keywords:?}");
    assert!(instructions.iter().any(|(k, rest)| k == "FROM" && rest == "scratch"), "FROM scratch: {keywords:?}");
    for keyword in &keywords {
        assert!(["FROM", "ARG", "LABEL", "COPY", "ENTRYPOINT"].contains(keyword), "{keyword}: scratch has no shell");
    }
    let copy = &instructions.iter().find(|(k, _)| k == "COPY").unwrap().1;
    let (source, destination) = copy.split_once(' ').unwrap();
    let entrypoint = &instructions.iter().find(|(k, _)| k == "ENTRYPOINT").unwrap().1;
    let entrypoint: Vec<String> = serde_json::from_str(entrypoint).expect("ENTRYPOINT in exec form");
    assert_eq!(entrypoint, [destination]);

    for (platform, binary) in [("amd64", env!("CARGO_BIN_EXE_herald")), ("arm64", "/bin/true")] {
        let copied = dir.join(&source.replace("${TARGETARCH}", platform));
        let copied = std::fs::read(&copied).unwrap_or_else(|e| panic!("{platform}: {}: {e}", copied.display()));
        assert_eq!(copied, std::fs::read(binary).unwrap(), "{platform}: not its archive's binary");
    }
}
