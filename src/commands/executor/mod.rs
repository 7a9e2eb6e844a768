//! A GitLab Runner custom-executor driver (gitlab.md §H): every stage the runner runs for a job
//! (fetch sources, restore cache, the script, after_script, artifacts, ...) becomes a herald step,
//! supervised and published, without changing any `.gitlab-ci.yml`. Stages run with a shell on the
//! runner host, like the shell executor.
//!
//! The token stays with herald (README "The token"): herald reads `HERALD_TOKEN` or
//! `HERALD_TOKEN_FILE` (and its other settings) from the runner's own environment only, never from
//! the job's variables. Every call takes `HERALD_TOKEN` out of its own environment block first
//! (so neither a stage nor `/proc/<herald>/environ` has it) and is non-dumpable while it holds a
//! token (main.rs). With `HERALD_EXECUTOR_USER`, stages run as that other user, like the shell
//! executor's `--user`: they then cannot read herald's memory, its token file or the runner's
//! environment at all. Without it, stages run as the token's holder, and `prepare` says in the
//! job log that there is no isolation. The job's context (project, commit, pipeline, MR) comes
//! from the job's variables, which the runner passes as `CUSTOM_ENV_<NAME>`.
//!
//! ```toml
//! [runners.custom]
//!   config_exec = "herald"
//!   config_args = ["executor", "config"]
//!   prepare_exec = "herald"
//!   prepare_args = ["executor", "prepare"]
//!   run_exec = "herald"
//!   run_args = ["executor", "run"]
//!   cleanup_exec = "herald"
//!   cleanup_args = ["executor", "cleanup"]
//! ```

mod stages;

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::config::{RunRequest, RunSettings};
use crate::context::Publishing;
use crate::env::{Env, ProcessEnv};
use crate::output::{say, Failure, Outcome};
use crate::step::StepEnd;
use crate::supervise::{ChildSetup, RunAs, Supervisor};
pub use stages::{step_name, DEFAULT_HIDDEN};

/// The runner's documented defaults (§H.2), used only if its variables are missing.
const DEFAULT_BUILD_FAILURE: i32 = 1;
const DEFAULT_SYSTEM_FAILURE: i32 = 2;

/// The job as the driver sees it: CI variables from `CUSTOM_ENV_*`; herald's own settings from the
/// runner's environment first (the administrator's), then the job's — except the token and its
/// file, which only the runner's environment may provide (the token itself as taken out of the
/// environment by `hold_token`).
pub struct JobEnv<'e> {
    runner: &'e dyn Env,
    token: Option<OsString>,
}

impl<'e> JobEnv<'e> {
    pub fn new(runner: &'e dyn Env, token: Option<OsString>) -> JobEnv<'e> {
        JobEnv { runner, token }
    }
}

/// What decides where the token is sent and whom herald trusts on the way there: the runner's
/// environment alone. A job's variables (its predefined ones too: a job may override
/// `CI_API_V4_URL`) never choose them, or any job could send the administrator's token to a
/// server of its own, through a proxy of its own, or past TLS with a CA file it wrote.
const ROUTING: [&str; 14] = [
    "HERALD_API_URL",
    "CI_API_V4_URL",
    "HERALD_CA_FILE",
    "CI_SERVER_TLS_CA_FILE",
    "HERALD_ALLOW_HTTP",
    "ALL_PROXY",
    "all_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "HERALD_TOKEN_VARIABLE",
];

impl JobEnv<'_> {
    /// The token is handed out only where the runner names the GitLab it belongs to
    /// (`HERALD_API_URL`): without it, the API's address would be the default, not the runner's.
    fn routed(&self) -> bool {
        self.runner.non_empty("HERALD_API_URL").is_some()
    }

    /// Why the token is not used, when the runner's environment holds one but no API address.
    fn unrouted_token(&self) -> Option<&'static str> {
        let holds = self.token.is_some() || self.runner.non_empty("HERALD_TOKEN_FILE").is_some();
        (holds && !self.routed()).then_some(
            "herald executor: not publishing: the runner's environment sets no HERALD_API_URL (its GitLab's API, \
             e.g. https://gitlab.example.com/api/v4); a job's variables never choose where the runner's token goes",
        )
    }
}

impl Env for JobEnv<'_> {
    fn get(&self, key: &str) -> Option<OsString> {
        let from_job = || self.runner.get(&format!("CUSTOM_ENV_{key}"));
        match key {
            "HERALD_TOKEN" => self.token.clone().filter(|_| self.routed()),
            "HERALD_TOKEN_FILE" => self.runner.get(key).filter(|_| self.routed()),
            // HERALD_TOKEN_VARIABLE: a job could point it at one of its own variables.
            _ if ROUTING.contains(&key) => self.runner.get(key).filter(|_| key != "HERALD_TOKEN_VARIABLE"),
            _ if key.starts_with("HERALD_") => self.runner.get(key).or_else(from_job),
            _ => from_job(),
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        let all = self.runner.vars();
        let job = all.iter().filter_map(|(k, v)| Some((k.strip_prefix("CUSTOM_ENV_")?.to_owned(), v.clone())));
        let token = self.token.iter().map(|t| ("HERALD_TOKEN".to_owned(), t.to_string_lossy().into_owned()));
        job.chain(all.iter().filter(|(k, _)| k.starts_with("HERALD_")).cloned()).chain(token).collect()
    }
}

/// Takes the runner's `HERALD_TOKEN` out of this process's environment, block included, and
/// returns the job's view with it. Every executor call starts with it, before any thread exists.
fn hold_token() -> JobEnv<'static> {
    let token = crate::supervise::take_env_var("HERALD_TOKEN");
    JobEnv::new(&ProcessEnv, token.filter(|t| !t.to_string_lossy().trim().is_empty()))
}

/// `herald executor config`: the JSON the runner reads (§H.3). Only what herald decides is set;
/// directories come from the runner's configuration unless `HERALD_EXECUTOR_BUILDS_DIR` /
/// `HERALD_EXECUTOR_CACHE_DIR` override them.
pub fn config() -> i32 {
    let _job = hold_token();
    let env = &ProcessEnv;
    let mut output = json!({
        "driver": { "name": "herald", "version": env!("CARGO_PKG_VERSION") },
        "shell": shell(env),
    });
    if let Some(dir) = env.non_empty("HERALD_EXECUTOR_BUILDS_DIR") {
        output["builds_dir"] = json!(dir.to_string_lossy());
        output["builds_dir_is_shared"] = json!(false);
    }
    if let Some(dir) = env.non_empty("HERALD_EXECUTOR_CACHE_DIR") {
        output["cache_dir"] = json!(dir.to_string_lossy());
    }
    println!("{output}");
    0
}

/// `herald executor prepare`: checks that stages can run here (§H.4), as whom, and makes the
/// builds and cache directories the stage user's; says in the job log when stages would run as
/// the token's holder.
pub fn prepare() -> Outcome {
    let job = hold_token();
    let env = &ProcessEnv;
    let system_failure =
        |line: String| Failure::with_code(line, exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", DEFAULT_SYSTEM_FAILURE));
    let shell = shell(env);
    if find_program(&shell).is_none() {
        return Err(system_failure(format!(
            "herald executor: the shell '{shell}' was not found on this runner host (HERALD_EXECUTOR_SHELL)"
        )));
    }
    let user = stage_user(env).map_err(system_failure)?;
    let (own_uid, _) = crate::supervise::own_ids();
    if let Some(user) = &user {
        if own_uid != 0 {
            return Err(system_failure(format!(
                "herald executor: HERALD_EXECUTOR_USER: running stages as {} needs herald to run as root (it runs \
                 as uid {own_uid})",
                user.describe()
            )));
        }
        make_directories_usable(&job, user).map_err(system_failure)?;
    }
    let runs_as = user.as_ref().map_or_else(|| format!("uid {own_uid}, herald's own user"), RunAs::describe);
    println!(
        "herald {}: each stage runs with {shell} as {runs_as} on this host and is published as a step",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(line) = job.unrouted_token() {
        say(line);
    }
    let holds_token = job.non_empty("HERALD_TOKEN").is_some() || job.non_empty("HERALD_TOKEN_FILE").is_some();
    if holds_token && user.is_none() {
        say(&format!(
            "herald executor: no isolation: stage scripts run as uid {own_uid}, the user that holds herald's token, \
             so any job on this runner can take it; set HERALD_EXECUTOR_USER to another user"
        ));
    }
    Ok(0)
}

/// `herald executor run <script> <stage>`: one stage as a supervised, published step (§H.5),
/// exit codes by the contract (§H.7), run as the stage user when there is one.
pub fn run(script: &Path, stage: &str) -> Outcome {
    let env = &ProcessEnv;
    let system_failure =
        |line: String| Failure::with_code(line, exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", DEFAULT_SYSTEM_FAILURE));
    let supervisor = Supervisor::install()
        .map_err(|error| system_failure(format!("herald executor: cannot set up signal handling: {error}")))?;
    let job = hold_token();
    let user = stage_user(env).map_err(system_failure)?;
    // As another user, the stage cannot read the runner's script (0700 in the runner's private
    // directory) nor use its TMPDIR: it gets a private directory of its own with a copy.
    if let Some(user) = &user {
        // Again for each stage (cheap, and nothing to do once prepare did it): a builds directory
        // removed between stages is there again.
        make_directories_usable(&job, user).map_err(system_failure)?;
    }
    let stage_dir = match &user {
        Some(user) => Some(StageDir::create(script, user).map_err(|error| {
            system_failure(format!("herald executor: cannot prepare the stage for {}: {error}", user.describe()))
        })?),
        None => None,
    };
    let script = stage_dir.as_ref().map_or(script, |dir| dir.script.as_path());
    let args = RunRequest {
        name: Some(step_name(stage).into()),
        command: vec![OsString::from(shell(env)), script.as_os_str().to_owned()],
        ..RunRequest::default()
    };
    let mut settings =
        RunSettings::resolve(args, &job).map_err(|error| system_failure(format!("herald executor: {error}")))?;
    // The runner already frames each stage in the job log, and a JUnit path would name a file on
    // the runner host: neither applies here.
    settings.in_gitlab_ci = false;
    settings.junit = None;
    if is_hidden(env, stage) {
        settings.publishing = Publishing::Off(None);
    }
    let setup = ChildSetup {
        hidden_vars: &["HERALD_TOKEN", "HERALD_TOKEN_FILE"],
        vars: stage_dir.iter().map(|dir| ("TMPDIR".to_owned(), dir.path.clone().into_os_string())).collect(),
        run_as: user,
    };
    let outcome = crate::lifecycle::run_step(&supervisor, &settings, &setup);
    drop(stage_dir);
    match outcome.end {
        // Why it did not start was said already.
        StepEnd::NotStarted { .. } => Ok(exit_code(env, "SYSTEM_FAILURE_EXIT_CODE", DEFAULT_SYSTEM_FAILURE)),
        _ if outcome.exit_code() == 0 => Ok(0),
        _ => {
            // The script's own code, for `allow_failure: exit_codes`.
            if let Some(file) = env.non_empty("BUILD_EXIT_CODE_FILE") {
                std::fs::write(&file, format!("{}\n", outcome.exit_code())).map_err(|error| {
                    system_failure(format!("herald executor: cannot write BUILD_EXIT_CODE_FILE: {error}"))
                })?;
            }
            Ok(exit_code(env, "BUILD_FAILURE_EXIT_CODE", DEFAULT_BUILD_FAILURE))
        }
    }
}

/// `herald executor cleanup`: closes the job's steps left open and settles the note (§H.6). Its
/// exit code never changes the job's result; problems go to the runner's log.
pub fn cleanup() -> i32 {
    // Problems are said (to the runner's log); the code is not the job's business.
    let _ = crate::output::exit_code(crate::lifecycle::job_end::finalize("herald executor cleanup", &hold_token()));
    0
}

/// `HERALD_EXECUTOR_USER` (the runner's setting, never the job's), resolved; None when unset, or
/// when it is herald's own user (then there is nothing to switch to). The error is the line the
/// runner shows as a system failure; every case ends the same way, so it stays a string (as do
/// `make_directories_usable`'s and `make_usable`'s).
fn stage_user(env: &dyn Env) -> Result<Option<RunAs>, String> {
    let Some(spec) = env.non_empty("HERALD_EXECUTOR_USER") else { return Ok(None) };
    let user = RunAs::resolve(&spec.to_string_lossy())
        .map_err(|why| format!("herald executor: HERALD_EXECUTOR_USER: {why}"))?;
    Ok(Some(user).filter(|user| user.uid != crate::supervise::own_ids().0))
}

/// The builds directory (`HERALD_EXECUTOR_BUILDS_DIR`, else the job's `CI_BUILDS_DIR`) and the
/// cache directory (`HERALD_EXECUTOR_CACHE_DIR`), made usable by the stage user.
fn make_directories_usable(job: &JobEnv, user: &RunAs) -> Result<(), String> {
    let administrators =
        [ProcessEnv.non_empty("HERALD_EXECUTOR_BUILDS_DIR"), ProcessEnv.non_empty("HERALD_EXECUTOR_CACHE_DIR")];
    for dir in administrators.iter().flatten() {
        make_usable(Path::new(dir), user, Given::Existing)?;
    }
    if administrators[0].is_none() {
        if let Some(dir) = job.non_empty("CI_BUILDS_DIR") {
            make_usable(Path::new(&dir), user, Given::OnlyIfMadeHere)?;
        }
    }
    Ok(())
}

/// Which directories herald gives to the stage user.
#[derive(PartialEq)]
enum Given {
    /// The administrator's (`HERALD_EXECUTOR_*_DIR`): also when it exists and is herald's own.
    Existing,
    /// A path from the job's variables (`CI_BUILDS_DIR`), which a job might point at `/etc`: only
    /// when herald creates it now; an existing one is the administrator's to give.
    OnlyIfMadeHere,
}

/// Makes `dir` (the builds or cache directory) the stage user's: created if missing, and given to
/// the user when it is herald's own (and `given` allows). What it already holds is left as it is.
fn make_usable(dir: &Path, user: &RunAs, given: Given) -> Result<(), String> {
    let fail = |error: std::io::Error| {
        format!("herald executor: cannot make {} usable by {}: {error}", dir.display(), user.describe())
    };
    let existed = std::fs::symlink_metadata(dir).is_ok();
    std::fs::create_dir_all(dir).map_err(fail)?;
    let meta = std::fs::symlink_metadata(dir).map_err(fail)?;
    let may_give = given == Given::Existing || !existed;
    if may_give && meta.is_dir() && meta.uid() == crate::supervise::own_ids().0 {
        std::os::unix::fs::lchown(dir, Some(user.uid), Some(user.gid)).map_err(fail)?;
    }
    Ok(())
}

/// The stage user's private directory for one stage, under /tmp: a copy of the runner's script and
/// the stage's TMPDIR. Removed when dropped.
struct StageDir {
    path: PathBuf,
    script: PathBuf,
}

/// The most a stage script may hold (the runner's scripts carry the job's variables).
const MOST_SCRIPT_BYTES: u64 = 64 << 20;

impl StageDir {
    fn create(script: &Path, user: &RunAs) -> std::io::Result<StageDir> {
        let mut source = std::fs::File::open(script)?;
        if !source.metadata()?.is_file() {
            return Err(std::io::Error::other(format!("{} is not a regular file", script.display())));
        }
        let mut text = Vec::new();
        Read::take(&mut source, MOST_SCRIPT_BYTES + 1).read_to_end(&mut text)?;
        if text.len() as u64 > MOST_SCRIPT_BYTES {
            return Err(std::io::Error::other(format!("{} is larger than 64 MiB", script.display())));
        }
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        // mkdir fails on any name that exists (a link included), so a name another user guessed
        // first is only skipped.
        let path = (0..1000)
            .map(|n| PathBuf::from(format!("/tmp/herald-stage-{}-{nanos:x}-{n}", std::process::id())))
            .find_map(|path| match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => Some(Ok(path)),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(error) => Some(Err(error)),
            })
            .unwrap_or_else(|| Err(std::io::Error::other("no free name in /tmp")))?;
        let dir = StageDir { script: path.join("script"), path };
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o700).open(&dir.script)?.write_all(&text)?;
        // Given to the user last, once nothing more is written in it.
        std::os::unix::fs::lchown(&dir.script, Some(user.uid), Some(user.gid))?;
        std::os::unix::fs::lchown(&dir.path, Some(user.uid), Some(user.gid))?;
        Ok(dir)
    }
}

impl Drop for StageDir {
    fn drop(&mut self) {
        // remove_dir_all does not follow links the stage may have left in it.
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            log!(Debug, "cannot remove {}: {error}", self.path.display());
        }
    }
}

fn shell(env: &dyn Env) -> String {
    env.non_empty("HERALD_EXECUTOR_SHELL").map_or_else(|| "bash".to_owned(), |s| s.to_string_lossy().into_owned())
}

/// Stages run but not published: `HERALD_EXECUTOR_HIDE` (comma-separated runner stage names).
fn is_hidden(env: &dyn Env, stage: &str) -> bool {
    let hidden = env.get("HERALD_EXECUTOR_HIDE").map(|v| v.to_string_lossy().into_owned());
    let hidden = hidden.as_deref().unwrap_or(DEFAULT_HIDDEN);
    hidden.split(',').map(str::trim).any(|name| name == stage)
}

fn exit_code(env: &dyn Env, name: &str, default: i32) -> i32 {
    env.non_empty(name).and_then(|v| v.to_string_lossy().trim().parse().ok()).unwrap_or(default)
}

/// The program's path: as given when it has a slash, else found on PATH.
fn find_program(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(program)).find(|path| path.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;
    use std::collections::HashMap;

    #[test]
    fn the_token_comes_only_from_the_runner() {
        let runner = MapEnv(HashMap::from([
            ("HERALD_TOKEN", "runner-token"),
            ("CUSTOM_ENV_HERALD_TOKEN", "job-token"),
            ("CUSTOM_ENV_CI_PROJECT_ID", "42"),
            ("CI_PROJECT_ID", "runner's own, not the job's"),
            ("CUSTOM_ENV_HERALD_STATUS_PREFIX", "job-prefix"),
            ("HERALD_MODE", "always"),
            ("CUSTOM_ENV_HERALD_MODE", "off"),
            ("HERALD_API_URL", "https://gitlab.example.com/api/v4"),
        ]));
        let job = JobEnv::new(&runner, Some("runner-token".into()));
        assert_eq!(job.get("HERALD_TOKEN"), Some("runner-token".into()));
        assert_eq!(job.get("CI_PROJECT_ID"), Some("42".into()));
        assert_eq!(job.get("HERALD_STATUS_PREFIX"), Some("job-prefix".into()), "a job may choose its prefix");
        assert_eq!(job.get("HERALD_MODE"), Some("always".into()), "the administrator's setting wins");
        let only_job = MapEnv(HashMap::from([("CUSTOM_ENV_HERALD_TOKEN", "job-token")]));
        assert_eq!(JobEnv::new(&only_job, None).get("HERALD_TOKEN"), None, "never the job's");
        let file_of_job = MapEnv(HashMap::from([("CUSTOM_ENV_HERALD_TOKEN_FILE", "/etc/runner-token")]));
        assert_eq!(JobEnv::new(&file_of_job, None).get("HERALD_TOKEN_FILE"), None, "nor a file the job names");
        assert!(job.vars().contains(&("HERALD_TOKEN".to_owned(), "runner-token".to_owned())), "masked in output");
    }

    /// Where the token goes is the runner's say alone: a job naming its own API, CA file, proxy
    /// or plain HTTP gets none of them; and without the runner's HERALD_API_URL the token is not
    /// used at all (the default API would be gitlab.com, not the runner's GitLab).
    #[test]
    fn a_job_never_chooses_where_the_token_goes() {
        let mut pairs = vec![
            ("HERALD_API_URL", "https://gitlab.example.com/api/v4"),
            ("CUSTOM_ENV_HERALD_API_URL", "http://evil.example/api/v4"),
            ("CUSTOM_ENV_CI_API_V4_URL", "http://evil.example/api/v4"),
            ("CUSTOM_ENV_HERALD_CA_FILE", "/builds/evil-ca.pem"),
            ("CUSTOM_ENV_CI_SERVER_TLS_CA_FILE", "/builds/evil-ca.pem"),
            ("CUSTOM_ENV_HERALD_ALLOW_HTTP", "1"),
            ("CUSTOM_ENV_HTTPS_PROXY", "http://evil.example:3128"),
            ("CUSTOM_ENV_https_proxy", "http://evil.example:3128"),
            ("CUSTOM_ENV_NO_PROXY", "*"),
        ];
        let runner = MapEnv(pairs.iter().copied().collect());
        let job = JobEnv::new(&runner, Some("runner-token".into()));
        assert_eq!(job.get("HERALD_API_URL"), Some("https://gitlab.example.com/api/v4".into()));
        for key in ROUTING.iter().filter(|key| **key != "HERALD_API_URL") {
            assert_eq!(job.get(key), None, "{key} is the runner's alone");
        }
        assert_eq!(job.get("HERALD_TOKEN"), Some("runner-token".into()));
        assert_eq!(job.unrouted_token(), None);

        pairs.remove(0);
        let unrouted = MapEnv(pairs.iter().copied().collect());
        let job = JobEnv::new(&unrouted, Some("runner-token".into()));
        assert_eq!(job.get("HERALD_TOKEN"), None, "no API address of the runner's, no token");
        assert_eq!(job.get("HERALD_API_URL"), None);
        assert!(job.unrouted_token().is_some_and(|line| line.contains("sets no HERALD_API_URL")));
        assert!(job.vars().contains(&("HERALD_TOKEN".to_owned(), "runner-token".to_owned())), "still masked");
    }

    #[test]
    fn hidden_stages() {
        let env = MapEnv(HashMap::new());
        assert!(is_hidden(&env, "prepare_script"));
        assert!(!is_hidden(&env, "build_script"));
        let custom = MapEnv(HashMap::from([("HERALD_EXECUTOR_HIDE", "get_sources, restore_cache")]));
        assert!(is_hidden(&custom, "restore_cache"));
        assert!(!is_hidden(&custom, "prepare_script"));
    }
}
