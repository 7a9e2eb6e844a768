//! `herald executor` driven exactly as GitLab Runner's custom executor drives it (gitlab.md §H):
//! config → prepare → run <script> <stage> for each stage → cleanup, with the job's variables as
//! `CUSTOM_ENV_*`, the exit-code variables and file, and the token only in the runner's own
//! environment. Checked against the stand-in's statuses and note.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::support::campaign::note_shows;
use crate::support::gitlab::*;
use crate::support::{finish, herald, run, send_signal, wait_for_file, Finished, TempDir};

/// One job on a runner configured with herald as its custom executor.
struct RunnerJob<'g> {
    gitlab: &'g GitLab,
    dir: TempDir,
    url: String,
    scripts: usize,
}

impl<'g> RunnerJob<'g> {
    fn new(gitlab: &'g GitLab, name: &str) -> RunnerJob<'g> {
        let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, name, "test", "running"));
        RunnerJob { gitlab, dir: TempDir::new("executor"), url, scripts: 0 }
    }

    /// `herald executor <args>` with the environment the runner gives every call (§H.2).
    fn command(&self, args: &[&str], job_status: Option<&str>) -> Command {
        let mut command = herald();
        command
            // The runner's own environment: the administrator's token and settings.
            .env("HERALD_TOKEN", TOKEN_DEVELOPER)
            .env("HERALD_FLUSH_TIMEOUT", "20s")
            .env("HERALD_API_URL", self.gitlab.api_url())
            // The runner's contract.
            .env("BUILD_FAILURE_EXIT_CODE", "1")
            .env("SYSTEM_FAILURE_EXIT_CODE", "2")
            .env("BUILD_EXIT_CODE_FILE", self.dir.join("build-exit-code"))
            .env("TMPDIR", self.dir.path())
            // The job's variables, prefixed.
            .env("CUSTOM_ENV_GITLAB_CI", "true")
            .env("CUSTOM_ENV_CI_API_V4_URL", self.gitlab.api_url())
            .env("CUSTOM_ENV_CI_PROJECT_ID", PROJECT_ID.to_string())
            .env("CUSTOM_ENV_CI_PROJECT_PATH", PROJECT_PATH)
            .env("CUSTOM_ENV_CI_COMMIT_SHA", SHA_MERGE)
            .env("CUSTOM_ENV_CI_PIPELINE_ID", PIPELINE_MERGED.to_string())
            .env("CUSTOM_ENV_CI_PIPELINE_SOURCE", "merge_request_event")
            .env("CUSTOM_ENV_CI_MERGE_REQUEST_IID", "1")
            .env("CUSTOM_ENV_CI_JOB_NAME", "build")
            .env("CUSTOM_ENV_CI_JOB_URL", &self.url)
            .arg("executor")
            .args(args);
        if let Some(status) = job_status {
            command.env("CUSTOM_ENV_CI_JOB_STATUS", status);
        }
        command
    }

    /// Writes a stage script as the runner does (`<tmp>/script<N>/script`, mode 0700).
    fn script(&mut self, body: &str) -> std::path::PathBuf {
        self.scripts += 1;
        let dir = self.dir.join(&format!("script{}", self.scripts));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("script");
        std::fs::write(&path, format!("#!/usr/bin/env bash\nset -eo pipefail\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    fn stage(&mut self, stage: &str, body: &str, job_status: Option<&str>) -> Finished {
        let script = self.script(body);
        run(&mut self.command(&["run", script.to_str().unwrap(), stage], job_status))
    }

    fn start_stage(&mut self, stage: &str, body: &str) -> Child {
        let script = self.script(body);
        self.command(&["run", script.to_str().unwrap(), stage], None)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn status(&self, step: &str) -> Option<String> {
        self.gitlab
            .with(|w| w.statuses(PIPELINE_MERGED).get(&format!("herald/build › {step}")).map(|j| j.status.clone()))
    }
}

#[test]
fn a_passing_job_publishes_each_stage_and_keeps_the_token_from_scripts() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");

    let config = run(&mut job.command(&["config"], None));
    assert_eq!(config.code, Some(0));
    let json: serde_json::Value = serde_json::from_str(config.stdout_text().trim()).unwrap();
    assert_eq!(json["driver"]["name"], "herald");
    assert_eq!(json["shell"], "bash");
    assert_eq!(run(&mut job.command(&["prepare"], None)).code, Some(0));

    let env_dump = job.dir.join("stage-env");
    for (stage, body) in [
        ("prepare_script", "true".to_owned()),
        ("get_sources", "echo fetching".to_owned()),
        ("restore_cache", "true".to_owned()),
        ("build_script", format!("env > {}; echo built", env_dump.display())),
        ("after_script", "echo after".to_owned()),
        ("archive_cache", "true".to_owned()),
        ("upload_artifacts_on_success", "true".to_owned()),
        ("cleanup_file_variables", "true".to_owned()),
    ] {
        let finished = job.stage(stage, &body, None);
        assert_eq!(finished.code, Some(0), "{stage}: {}", finished.stderr_text());
    }
    assert_eq!(run(&mut job.command(&["cleanup"], Some("success"))).code, Some(0));

    let env = std::fs::read_to_string(&env_dump).unwrap();
    assert!(!env.contains(TOKEN_DEVELOPER), "the stage script saw the token");
    assert!(!env.contains("HERALD_TOKEN"));
    assert!(env.contains("CUSTOM_ENV_CI_JOB_NAME=build"), "the job's variables are there");

    for step in ["fetch sources", "restore cache", "script", "after script", "save cache", "upload artifacts"] {
        assert_eq!(job.status(step).as_deref(), Some("success"), "{step}");
    }
    assert_eq!(job.status("prepare"), None, "internal stages are hidden by default");
    assert_eq!(job.status("clean up"), None);
    let note = &gitlab.with(|w| w.herald_notes(1))[0];
    assert!(note_shows(&note.body, "✅", "build", &job.url, "fetch sources", "passed"), "{}", note.body);
}

#[test]
fn a_failing_script_maps_to_build_failure_with_its_real_exit_code() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    assert_eq!(job.stage("get_sources", "true", None).code, Some(0));
    let failed = job.stage("build_script", "echo compiling; exit 3", None);
    assert_eq!(failed.code, Some(1), "BUILD_FAILURE_EXIT_CODE");
    assert_eq!(std::fs::read_to_string(job.dir.join("build-exit-code")).unwrap().trim(), "3");
    assert_eq!(job.stage("after_script", "echo cleaning up", Some("failed")).code, Some(0));
    assert_eq!(job.stage("upload_artifacts_on_failure", "true", Some("failed")).code, Some(0));
    assert_eq!(run(&mut job.command(&["cleanup"], Some("failed"))).code, Some(0));

    assert_eq!(job.status("script").as_deref(), Some("failed"));
    assert_eq!(job.status("after script").as_deref(), Some("success"));
    let description =
        gitlab.with(|w| w.statuses(PIPELINE_MERGED)["herald/build › script"].description.clone().unwrap());
    assert!(description.starts_with("failed (exit 3) after "), "{description}");
}

#[test]
fn a_job_canceled_mid_script_ends_canceled_then_runs_after_script() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    let ready = job.dir.join("ready");
    let child = job.start_stage("build_script", &format!("touch {}; sleep 60", ready.display()));
    wait_for_file(&ready);
    // The runner sends SIGTERM to the driver's process group (§H.8); herald forwards it.
    send_signal(child.id(), libc::SIGTERM);
    let finished = finish(child);
    assert_eq!(finished.code, Some(1), "a script ended by the signal is a build failure: {}", finished.stderr_text());
    assert_eq!(std::fs::read_to_string(job.dir.join("build-exit-code")).unwrap().trim(), "143");
    assert_eq!(job.status("script").as_deref(), Some("canceled"));

    // GitLab 17+: a new run_exec for after_script, with the job marked canceled.
    assert_eq!(job.stage("after_script", "echo after cancel", Some("canceled")).code, Some(0));
    assert_eq!(run(&mut job.command(&["cleanup"], Some("canceled"))).code, Some(0));
    assert_eq!(job.status("after script").as_deref(), Some("success"));
    let note = &gitlab.with(|w| w.herald_notes(1))[0];
    assert!(
        note.body.lines().any(|l| l.starts_with("- ⛔ [build](") && l.contains(" › script — canceled")),
        "{}",
        note.body
    );
}

#[test]
fn cleanup_closes_a_stage_left_open() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    assert_eq!(job.stage("build_script", "true", None).code, Some(0));
    // As if herald had been killed before reporting: reopen the status in the stand-in.
    gitlab.with(|w| {
        for status in w.jobs.iter_mut().filter(|j| j.name == "herald/build › script") {
            status.status = "running".into();
        }
    });
    assert_eq!(run(&mut job.command(&["cleanup"], Some("canceled"))).code, Some(0));
    assert_eq!(job.status("script").as_deref(), Some("canceled"));
}

#[test]
fn config_reports_directories_only_when_the_administrator_sets_them() {
    let gitlab = GitLab::start();
    let job = RunnerJob::new(&gitlab, "build");
    let plain: serde_json::Value =
        serde_json::from_str(run(&mut job.command(&["config"], None)).stdout_text().trim()).unwrap();
    assert!(plain.get("builds_dir").is_none(), "the runner's own builds_dir stays in force");
    assert_eq!(plain["driver"]["version"], env!("CARGO_PKG_VERSION"));
    let set = run(job
        .command(&["config"], None)
        .env("HERALD_EXECUTOR_BUILDS_DIR", "/srv/builds")
        .env("HERALD_EXECUTOR_CACHE_DIR", "/srv/cache"));
    let set: serde_json::Value = serde_json::from_str(set.stdout_text().trim()).unwrap();
    assert_eq!((set["builds_dir"].as_str(), set["cache_dir"].as_str()), (Some("/srv/builds"), Some("/srv/cache")));
    assert_eq!(set["builds_dir_is_shared"], false);
}

#[test]
fn a_missing_shell_is_a_system_failure() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    let prepare = run(job.command(&["prepare"], None).env("HERALD_EXECUTOR_SHELL", "/nonexistent/bash"));
    assert_eq!(prepare.code, Some(2), "SYSTEM_FAILURE_EXIT_CODE");
    assert!(prepare.stderr_text().contains("'/nonexistent/bash' was not found"), "{}", prepare.stderr_text());
    let script = job.script("true");
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env("HERALD_EXECUTOR_SHELL", "/nonexistent/bash"));
    assert_eq!(finished.code, Some(2), "{}", finished.stderr_text());
}

// ---- The token out of the stages' reach (issue 32) ----

/// Whether this test can switch users (it runs as root, as the suite does in CI); otherwise one line
/// says it is skipped. Root cannot be installed, so this skips even under scripts/test.sh.
fn as_root() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("skipped {test}: it switches users, which needs root\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

/// A stage script that looks for `token` everywhere a job's script on this host could: every
/// process's environment and command line, its own environment, and its parent's (herald's)
/// memory, region by region. It prints `FOUND in …` for each place that has it, then who it runs
/// as. The token is split in the script so that no command line of its own carries it whole.
fn token_search(token: &str) -> String {
    let (first, second) = token.split_at(token.len() / 2);
    format!(
        r#"needle="$TMPDIR/needle.$$"
printf '%s%s' '{first}' '{second}' > "$needle"
for f in /proc/[0-9]*/environ; do grep -q -a -F -f "$needle" "$f" 2>/dev/null && echo "FOUND in $f"; done
for f in /proc/[0-9]*/cmdline; do grep -q -a -F -f "$needle" "$f" 2>/dev/null && echo "FOUND in $f"; done
env | grep -q -a -F -f "$needle" && echo "FOUND in its own environment"
if maps=$(cat /proc/$PPID/maps 2>/dev/null) && [ -n "$maps" ]; then
  while read -r range perms rest; do
    case $perms in r*) ;; *) continue ;; esac
    case $rest in *vsyscall*|*vvar*) continue ;; esac
    start=$((16#${{range%-*}})); end=$((16#${{range#*-}}))
    dd if=/proc/$PPID/mem bs=4096 skip=$((start/4096)) count=$(((end-start)/4096)) 2>/dev/null
  done <<<"$maps" | grep -q -a -F -f "$needle" && echo "FOUND in /proc/$PPID/mem"
  echo "memory: read"
elif head -c1 /proc/$PPID/mem >/dev/null 2>&1; then
  echo "memory: opened"
else
  echo "memory: closed"
fi
rm -f "$needle"
echo "searched as uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME user=${{USER:-}} tmpdir=$TMPDIR parent=$PPID""#
    )
}

#[test]
fn a_stage_run_as_another_user_finds_the_token_nowhere() {
    if !as_root() {
        return;
    }
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    let prepare = run(job.command(&["prepare"], None).env("HERALD_EXECUTOR_USER", "65534:65534"));
    assert_eq!(prepare.code, Some(0), "{}", prepare.stderr_text());
    assert!(!prepare.stderr_text().contains("no isolation"), "{}", prepare.stderr_text());
    assert!(prepare.stdout_text().contains("uid 65534)"), "{}", prepare.stdout_text());

    let script = job.script(&token_search(TOKEN_DEVELOPER));
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env("HERALD_EXECUTOR_USER", "65534:65534"));
    let output = finished.stdout_text();
    assert_eq!(finished.code, Some(0), "{output}{}", finished.stderr_text());
    assert!(output.contains("searched as uid=65534 gid=65534"), "{output}{}", finished.stderr_text());
    assert!(!output.contains("FOUND"), "the stage found the token: {output}");
    assert!(output.contains("memory: closed"), "{output}");
    assert!(!output.contains(TOKEN_DEVELOPER) && !finished.stderr_text().contains(TOKEN_DEVELOPER));
    // herald still publishes with the token it keeps.
    assert_eq!(job.status("script").as_deref(), Some("success"));
    // The stage's private directory (its TMPDIR, the script's copy) is gone with it.
    let tmp = output.split("tmpdir=").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap();
    assert!(tmp.starts_with("/tmp/herald-stage-"), "{tmp}");
    assert!(!std::path::Path::new(tmp).exists(), "{tmp} is left behind");
}

#[test]
fn without_a_stage_user_prepare_says_there_is_no_isolation_and_herald_keeps_its_environment_clean() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    let prepare = run(&mut job.command(&["prepare"], None));
    assert_eq!(prepare.code, Some(0), "{}", prepare.stderr_text());
    let stderr = prepare.stderr_text();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("no isolation")).collect();
    assert_eq!(warnings.len(), 1, "one line per job: {}", prepare.stderr_text());
    assert!(warnings[0].contains("set HERALD_EXECUTOR_USER"), "{}", warnings[0]);
    let config = run(&mut job.command(&["config"], None));
    assert!(!config.stderr_text().contains("no isolation"), "said once per job, by prepare");
    // No token, nothing to isolate.
    let tokenless = run(job.command(&["prepare"], None).env_remove("HERALD_TOKEN"));
    assert!(!tokenless.stderr_text().contains("no isolation"), "{}", tokenless.stderr_text());

    // The stage runs as herald's own user. Its environment block no longer holds the token (even
    // where /proc/<herald>/environ can be read at all: by root).
    let script = job.script(&token_search(TOKEN_DEVELOPER));
    let finished = run(&mut job.command(&["run", script.to_str().unwrap(), "build_script"], None));
    let output = finished.stdout_text();
    assert_eq!(finished.code, Some(0), "{output}{}", finished.stderr_text());
    // Other tests' processes, of root like this stage, may hold the same token: only herald's
    // own block is this test's business.
    let herald = output.split("parent=").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap();
    assert!(!output.contains(&format!("FOUND in /proc/{herald}/environ")), "{output}");
    assert!(!output.contains("FOUND in its own environment"), "{output}");
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // Root reads every memory: the search itself works, and this is why the warning exists.
        assert!(output.contains("FOUND in /proc/") && output.contains("/mem"), "{output}");
    }
}

#[test]
fn herald_s_memory_is_closed_to_stages_of_its_own_user() {
    if !as_root() {
        return;
    }
    // herald as an ordinary user (65534), stages as the same user: PR_SET_DUMPABLE is what keeps
    // its memory and environment block from them. A token of its own, so that the other tests'
    // searches as 65534 never meet it.
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    std::fs::set_permissions(job.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tmp = job.dir.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let script = job.script(&token_search(TOKEN_MAINTAINER));
    std::os::unix::fs::chown(&script, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(script.parent().unwrap(), Some(65534), Some(65534)).unwrap();
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env("TMPDIR", &tmp)
        .env("HERALD_TOKEN", TOKEN_MAINTAINER)
        .uid(65534)
        .gid(65534));
    let output = finished.stdout_text();
    assert_eq!(finished.code, Some(0), "{output}{}", finished.stderr_text());
    assert!(output.contains("searched as uid=65534"), "{output}");
    assert!(!output.contains("FOUND"), "{output}");
    assert!(output.contains("memory: closed"), "{output}");
    assert_eq!(job.status("script").as_deref(), Some("success"), "{}", finished.stderr_text());
}

#[test]
fn herald_run_keeps_its_memory_closed_and_the_step_an_ordinary_process() {
    if !as_root() || !crate::support::needs("strace") {
        return;
    }
    let gitlab = GitLab::start();
    let dir = TempDir::new("dumpable");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    // A CI job's step, as an ordinary user: its own token variable is its own to see, herald's
    // memory is not; and ptrace-based tools in the step still work on the step's processes. A
    // token no other test searches for: this step, of user 65534, holds it in its environment.
    let step = "echo \"own=${HERALD_TOKEN:-absent}\"; \
                if cat /proc/$PPID/environ >/dev/null 2>&1; then echo parent-environ-open; else echo parent-environ-closed; fi; \
                grep -q -a HERALD_TOKEN= /proc/self/environ && echo own-environ-readable; \
                strace -f -o /dev/null sh -c 'exit 3'; echo \"strace=$?\"; \
                setsid sleep 60 & echo \"leftover=$!\"";
    let finished =
        run(crate::support::herald_in_ci(&gitlab, crate::support::PipelineKind::MergedResults, TOKEN_REPORTER)
            .env("TMPDIR", dir.path())
            .uid(65534)
            .gid(65534)
            .args(["run", "--", "bash", "-c", step]));
    let output = finished.stdout_text();
    assert_eq!(finished.code, Some(0), "{output}{}", finished.stderr_text());
    assert!(output.contains(&format!("own={TOKEN_REPORTER}")), "the job's own variable is unchanged: {output}");
    assert!(output.contains("parent-environ-closed"), "{output}");
    assert!(output.contains("own-environ-readable"), "the step is an ordinary, dumpable process: {output}");
    assert!(output.contains("strace=3"), "{output}");
    // Supervision is whole: the step's leftover, which escaped its group, was found and stopped.
    let leftover: u32 =
        output.split("leftover=").nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).unwrap();
    assert!(!crate::support::process_alive(leftover), "the leftover {leftover} still runs");
}

#[test]
fn a_token_file_keeps_the_token_out_of_every_environment() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    let token_file = job.dir.join("herald-token");
    std::fs::write(&token_file, format!("{TOKEN_DEVELOPER}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let user = if as_root() { "65534:65534" } else { "" };
    let script = job.script(&format!(
        "{}\n(cat {} && echo READ-THE-FILE) || true",
        token_search(TOKEN_DEVELOPER),
        token_file.display()
    ));
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env_remove("HERALD_TOKEN")
        .env("HERALD_TOKEN_FILE", &token_file)
        .env("HERALD_EXECUTOR_USER", user));
    let output = finished.stdout_text();
    assert_eq!(finished.code, Some(0), "{output}{}", finished.stderr_text());
    assert_eq!(job.status("script").as_deref(), Some("success"), "published with the file's token");
    let herald = output.split("parent=").nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap();
    assert!(!output.contains(&format!("FOUND in /proc/{herald}/environ")), "{output}");
    assert!(!output.contains("FOUND in its own environment"), "{output}");
    if !user.is_empty() {
        assert!(!output.contains("FOUND") && !output.contains("READ-THE-FILE"), "{output}");
    }

    // A file others could read is refused with one line, and the stage runs all the same.
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = job.script("echo still running");
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "get_sources"], None)
        .env_remove("HERALD_TOKEN")
        .env("HERALD_TOKEN_FILE", &token_file));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(finished.stdout_text().contains("still running"));
    let stderr = finished.stderr_text();
    assert!(stderr.contains("herald: not publishing: HERALD_TOKEN_FILE "), "{stderr}");
    assert!(stderr.contains("has mode 0644: other users can read or change it; chmod 600"), "{stderr}");
    assert!(!stderr.contains(TOKEN_DEVELOPER));
    assert_eq!(job.status("fetch sources"), None);
}

#[test]
fn a_stage_user_by_name_gets_its_groups_home_and_the_builds_directory() {
    if !as_root() {
        return;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let Some(nobody) = passwd.lines().find(|l| l.starts_with("nobody:")) else {
        panic!("Debian has a user nobody; this host has none");
    };
    let home = nobody.split(':').nth(5).unwrap();
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    // Like a runner's builds_dir: reachable by the stage user, made its own by prepare.
    std::fs::set_permissions(job.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let builds = job.dir.join("builds");
    let prepare = run(job
        .command(&["prepare"], None)
        .env("HERALD_EXECUTOR_USER", "nobody")
        .env("CUSTOM_ENV_CI_BUILDS_DIR", &builds));
    assert_eq!(prepare.code, Some(0), "{}", prepare.stderr_text());
    assert!(prepare.stdout_text().contains("as nobody (uid 65534)"), "{}", prepare.stdout_text());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&builds).unwrap().uid(), 65534, "the builds directory is the stage user's");

    let project = builds.join("group/app");
    let body = format!(
        "mkdir -p {dir} && cd {dir} && touch made-by-stage && tmp=$(mktemp) && rm $tmp\n\
         echo \"who=$(id -un) uid=$(id -u) groups=$(id -G) home=$HOME user=$USER logname=$LOGNAME\"",
        dir = project.display()
    );
    let script = job.script(&body);
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env("HERALD_EXECUTOR_USER", "nobody")
        .env("CUSTOM_ENV_CI_BUILDS_DIR", &builds));
    let output = finished.stdout_text();
    assert_eq!(finished.code, Some(0), "{output}{}", finished.stderr_text());
    assert!(
        output.contains(&format!("who=nobody uid=65534 groups=65534 home={home} user=nobody logname=nobody")),
        "{output}"
    );
    assert_eq!(std::fs::metadata(project.join("made-by-stage")).unwrap().uid(), 65534);
    // Gone between stages (a runner's cleanup, an administrator): the next stage has it again.
    std::fs::remove_dir_all(&builds).unwrap();
    let script = job.script(&format!("mkdir -p {}", project.display()));
    let again = run(job
        .command(&["run", script.to_str().unwrap(), "get_sources"], None)
        .env("HERALD_EXECUTOR_USER", "nobody")
        .env("CUSTOM_ENV_CI_BUILDS_DIR", &builds));
    assert_eq!(again.code, Some(0), "{}", again.stderr_text());
    assert_eq!(std::fs::metadata(&project).unwrap().uid(), 65534);

    // A builds directory named by the job's variables that exists already (a job could name
    // /etc) is never given away: only one herald made, or the administrator's own setting.
    let existing = job.dir.join("existing");
    std::fs::create_dir(&existing).unwrap();
    let prepare = run(job
        .command(&["prepare"], None)
        .env("HERALD_EXECUTOR_USER", "nobody")
        .env("CUSTOM_ENV_CI_BUILDS_DIR", &existing));
    assert_eq!(prepare.code, Some(0), "{}", prepare.stderr_text());
    assert_eq!(std::fs::metadata(&existing).unwrap().uid(), 0, "a job's existing directory stays root's");
    let prepare = run(job
        .command(&["prepare"], None)
        .env("HERALD_EXECUTOR_USER", "nobody")
        .env("HERALD_EXECUTOR_BUILDS_DIR", &existing));
    assert_eq!(prepare.code, Some(0), "{}", prepare.stderr_text());
    assert_eq!(std::fs::metadata(&existing).unwrap().uid(), 65534, "the administrator's is given");

    // An unknown user is a system failure, said in one line, before any stage runs.
    let unknown = run(job.command(&["prepare"], None).env("HERALD_EXECUTOR_USER", "no-such-user-here"));
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr_text());
    assert_eq!(
        unknown.stderr_text().trim(),
        "herald executor: HERALD_EXECUTOR_USER: no user 'no-such-user-here' on this host"
    );
    let marker = job.dir.join("ran");
    let script = job.script(&format!("touch {}", marker.display()));
    let stage = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env("HERALD_EXECUTOR_USER", "no-such-user-here"));
    assert_eq!(stage.code, Some(2), "{}", stage.stderr_text());
    assert!(!marker.exists(), "the stage must not run as herald's user instead");
}

#[test]
fn a_stage_of_another_user_dies_with_herald() {
    if !as_root() {
        return;
    }
    // The kernel clears the death signal when the credentials change: herald arms it after.
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    std::fs::set_permissions(job.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let pid_file = job.dir.join("stage-pid");
    let mut child = {
        let script = job.script(&format!("echo $$ $TMPDIR > {}; exec sleep 60", pid_file.display()));
        job.command(&["run", script.to_str().unwrap(), "build_script"], None)
            .env("HERALD_EXECUTOR_USER", "65534:65534")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    wait_for_file(&pid_file);
    crate::support::wait_until("the stage wrote its pid", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|text| text.ends_with('\n'))
    });
    let written = std::fs::read_to_string(&pid_file).unwrap();
    let (stage, stage_dir) = written.trim().split_once(' ').unwrap();
    let stage: u32 = stage.parse().unwrap();
    send_signal(child.id(), libc::SIGKILL);
    child.wait().unwrap();
    crate::support::wait_until("the stage died with herald", || !crate::support::process_alive(stage));
    // A herald killed outright cannot remove the stage's directory: the test does.
    assert!(stage_dir.starts_with("/tmp/herald-stage-"), "{stage_dir}");
    std::fs::remove_dir_all(stage_dir).unwrap();
}

/// A job's variables never choose where the runner's token goes: a job naming its own API (as
/// `HERALD_API_URL`, or by overriding the predefined `CI_API_V4_URL`), with plain HTTP allowed,
/// gets nothing sent there; the runner's GitLab gets the step. A runner that names no API of its
/// own does not publish at all, and `prepare` says why in one line.
#[test]
fn a_job_cannot_send_the_runners_token_to_a_server_of_its_own() {
    let gitlab = GitLab::start();
    let evil = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    let script = job.script("echo built");
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env("CUSTOM_ENV_HERALD_API_URL", evil.api_url())
        .env("CUSTOM_ENV_CI_API_V4_URL", evil.api_url())
        .env("CUSTOM_ENV_HERALD_ALLOW_HTTP", "1"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(evil.requests().is_empty(), "the job's server was sent {:?}", evil.requests());
    assert_eq!(job.status("script").as_deref(), Some("success"), "the runner's GitLab has the step");

    let prepare = run(job
        .command(&["prepare"], None)
        .env_remove("HERALD_API_URL")
        .env("CUSTOM_ENV_HERALD_API_URL", evil.api_url()));
    assert_eq!(prepare.code, Some(0), "{}", prepare.stderr_text());
    let lines: Vec<String> =
        prepare.stderr_text().lines().filter(|l| l.contains("sets no HERALD_API_URL")).map(str::to_owned).collect();
    assert_eq!(lines.len(), 1, "{}", prepare.stderr_text());
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "build_script"], None)
        .env_remove("HERALD_API_URL")
        .env("CUSTOM_ENV_HERALD_API_URL", evil.api_url())
        .env("CUSTOM_ENV_HERALD_ALLOW_HTTP", "1"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(evil.requests().is_empty(), "the job's server was sent {:?}", evil.requests());
}

/// Each stage gets its own step summary file, as `herald run` steps do; as another user too.
#[test]
fn a_stage_writes_its_step_summary_into_the_note() {
    let gitlab = GitLab::start();
    let mut job = RunnerJob::new(&gitlab, "build");
    let body = r#"printf '# Built\nall %s\n' "$(id -u)" >> "$HERALD_STEP_SUMMARY"; [ "$GITHUB_STEP_SUMMARY" = "$HERALD_STEP_SUMMARY" ]"#;
    let finished = job.stage("build_script", body, None);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let note = gitlab.with(|w| w.herald_notes(1)[0].body.clone());
    assert!(note.contains("<details><summary>📝 build › script — Built</summary>"), "{note}");
    if !as_root() {
        return;
    }
    let prepare = run(job.command(&["prepare"], None).env("HERALD_EXECUTOR_USER", "65534:65534"));
    assert_eq!(prepare.code, Some(0), "{}", prepare.stderr_text());
    let script = job.script(body);
    let finished = run(job
        .command(&["run", script.to_str().unwrap(), "after_script"], None)
        .env("HERALD_EXECUTOR_USER", "65534:65534"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let note = gitlab.with(|w| w.herald_notes(1)[0].body.clone());
    assert!(note.contains("📝 build › after script — Built"), "{note}");
    assert!(note.contains("all 65534"), "written by the stage user: {note}");
}
