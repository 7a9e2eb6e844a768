//! Helpers shared by the integration tests: the herald binary, bounded runs (a hang fails the test
//! instead of wedging the suite), and waiting for a step to reach a known point.

pub mod snapshot;

/// The campaigns (campaigns/, the crate `herald_campaigns`): whole pipelines through the binary.
pub use herald_campaigns::{pipeline as campaign, trust as trust_campaign};
/// The GitLab stand-in (standin/, the crate `herald_standin`), by the name the tests know it by.
pub use herald_standin as gitlab;
pub use herald_standin::{api_description, tls};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Generous bound for anything that should take a moment: a test machine may be loaded.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `herald` with an environment free of the CI and herald variables that change its behaviour.
///
/// The binary is the one cargo built, or another build named by HERALD_TEST_BINARY, run through
/// HERALD_TEST_RUNNER when set: scripts/cross-smoke.sh runs tests against the aarch64 release
/// binary under qemu-user that way.
pub fn herald() -> Command {
    let binary = std::env::var_os("HERALD_TEST_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_herald").into());
    let binary = reachable_by_every_user(binary.into());
    let mut command = match std::env::var_os("HERALD_TEST_RUNNER") {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.arg(binary);
            command
        }
        None => Command::new(binary),
    };
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let proxy = key.to_ascii_uppercase().ends_with("_PROXY");
        if key.starts_with("HERALD_") || key.starts_with("CI_") || key == "GITLAB_CI" || proxy {
            command.env_remove(&*key);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// `binary`, or, when a directory above it is closed to other users (a checkout under a 0700
/// home), a copy of it that they can run: some tests run herald as another user (65534). The copy
/// is made once per test run, in one place per checkout under the temporary directory, replaced
/// by the next run rather than left to pile up.
fn reachable_by_every_user(binary: PathBuf) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let searchable = |dir: &Path| std::fs::metadata(dir).is_ok_and(|meta| meta.permissions().mode() & 0o001 != 0);
    if binary.ancestors().skip(1).filter(|dir| !dir.as_os_str().is_empty()).all(searchable) {
        return binary;
    }
    COPY.get_or_init(|| {
        let place: u64 =
            binary.to_string_lossy().bytes().fold(7, |hash, b| hash.wrapping_mul(31).wrapping_add(u64::from(b)));
        let dir = std::env::temp_dir().join(format!("herald-test-binary-{place:x}"));
        std::fs::create_dir_all(&dir).expect("a directory for herald's copy");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("open it to every user");
        let copy = dir.join("herald");
        // Through a new file and a rename: a copy over the old one could meet it running.
        let fresh = dir.join(format!("herald.{}", std::process::id()));
        std::fs::copy(&binary, &fresh).expect("copy herald");
        std::fs::rename(&fresh, &copy).expect("put herald's copy in place");
        copy
    })
    .clone()
}

/// gitlab-ci-local 4.72.0, which scripts/test.sh installs: the independent implementation the
/// agreement, end-to-end and distribution tests run. None: the test is skipped (see `available`).
pub fn gitlab_ci_local() -> Option<PathBuf> {
    let found = std::env::var_os("GITLAB_CI_LOCAL").map(PathBuf::from).filter(|path| path.exists());
    available("gitlab-ci-local 4.72.0 (GITLAB_CI_LOCAL names it)", found.is_some()).then_some(found).flatten()
}

/// Whether a test can run here: `present` says whether what it needs (`what`) is. A plain `cargo
/// test` on a machine without it skips the test with one line saying why. scripts/test.sh, the
/// README's test command, installs everything and sets HERALD_TEST_EVERYTHING, under which a
/// missing tool fails the test instead: CI never passes by skipping.
pub fn available(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let test = thread::current().name().unwrap_or("a test").to_owned();
    assert!(
        std::env::var_os("HERALD_TEST_EVERYTHING").is_none(),
        "{test} needs {what}, which is missing here (scripts/test.sh installs it)"
    );
    // Straight to stderr: libtest keeps a passing test's eprintln! to itself.
    let line = format!("skipped {test}: it needs {what} (scripts/test.sh installs it and runs everything)\n");
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    false
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// `available` for a program on PATH.
pub fn needs(program: &str) -> bool {
    available(program, on_path(program))
}

/// What a finished run left: exit code (None if killed by a signal) and output.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs to the end, capturing output. Fails the test if herald has not exited *and* closed its
/// output (that is, if anything still holds the pipes) within `PATIENCE`.
pub fn run(command: &mut Command) -> Finished {
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn herald");
    finish(child)
}

/// Waits for a child started with piped stdout and stderr, bounded by `PATIENCE`.
pub fn finish(mut child: Child) -> Finished {
    let deadline = Instant::now() + PATIENCE;
    let stdout = read_all_in_background(child.stdout.take().expect("piped stdout"));
    let stderr = read_all_in_background(child.stderr.take().expect("piped stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("herald did not exit within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let stdout = stdout.recv_timeout(left).expect("herald exited but something still holds its stdout open");
    let stderr = stderr.recv_timeout(left).expect("herald exited but something still holds its stderr open");
    Finished { code: status.code(), stdout, stderr }
}

fn read_all_in_background(mut stream: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (send, receive) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let _ = send.send(bytes);
    });
    receive
}

/// Waits until `path` exists (a step writes it when it reached a known point).
pub fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + PATIENCE;
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} did not appear within {PATIENCE:?}", path.display());
        thread::sleep(Duration::from_millis(10));
    }
}

/// A fresh, empty directory for one test, removed when dropped: tempfile's, named after the test's
/// label, with `join` for the paths the tests build.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        let prefix = format!("herald-test-{label}-");
        TempDir(tempfile::Builder::new().prefix(&prefix).tempdir().expect("create a temporary directory"))
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

pub use herald_campaigns::job_state;

/// Sends a signal to a process.
pub fn send_signal(pid: u32, signal: i32) {
    // SAFETY: kill has no memory effects.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// Whether a process is alive (a zombie counts as gone: it has ended).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Which kind of pipeline a job runs in (gitlab.md §E.2), in the stand-in's standard world.
#[derive(Debug, Clone, Copy)]
pub enum PipelineKind {
    /// Branch pipeline of `feature`.
    Branch,
    /// Detached merge-request pipeline of MR !1: source head SHA, ref refs/merge-requests/1/head.
    Detached,
    /// Merged-results pipeline of MR !1: the temporary merge commit.
    MergedResults,
    /// Branch pipeline of the protected branch `main`.
    ProtectedBranch,
}

/// `herald` as a GitLab CI job of `kind` would run it, publishing to `gitlab` with `token`.
pub fn herald_in_ci(gitlab: &gitlab::GitLab, kind: PipelineKind, token: &str) -> Command {
    use gitlab::*;
    let mut command = herald();
    command
        .env("GITLAB_CI", "true")
        .env("CI_API_V4_URL", gitlab.api_url())
        .env("TMPDIR", gitlab.machine_tmp())
        .env("HERALD_TOKEN", token)
        .env("CI_PROJECT_ID", PROJECT_ID.to_string())
        .env("CI_PROJECT_PATH", PROJECT_PATH)
        .env("CI_JOB_NAME", "lint")
        .env("CI_JOB_URL", "https://gitlab.example.com/group/app/-/jobs/77")
        .env("HERALD_FLUSH_TIMEOUT", "20s");
    let (sha, pipeline, source) = match kind {
        PipelineKind::Branch => (SHA_FEATURE, PIPELINE_BRANCH, "push"),
        PipelineKind::Detached => (SHA_FEATURE, PIPELINE_DETACHED, "merge_request_event"),
        PipelineKind::MergedResults => (SHA_MERGE, PIPELINE_MERGED, "merge_request_event"),
        PipelineKind::ProtectedBranch => (SHA_MAIN, PIPELINE_MAIN, "push"),
    };
    command.env("CI_COMMIT_SHA", sha).env("CI_PIPELINE_ID", pipeline.to_string()).env("CI_PIPELINE_SOURCE", source);
    match kind {
        PipelineKind::Branch => command.env("CI_COMMIT_BRANCH", "feature").env("CI_COMMIT_REF_NAME", "feature"),
        PipelineKind::ProtectedBranch => command.env("CI_COMMIT_BRANCH", "main").env("CI_COMMIT_REF_NAME", "main"),
        // In MR pipelines CI_COMMIT_REF_NAME is the source branch: herald must not send it as ref.
        PipelineKind::Detached | PipelineKind::MergedResults => {
            command.env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main");
            command.env("CI_COMMIT_REF_NAME", "feature").env("CI_MERGE_REQUEST_IID", "1").env(
                "CI_MERGE_REQUEST_EVENT_TYPE",
                if matches!(kind, PipelineKind::Detached) { "detached" } else { "merged_result" },
            )
        }
    };
    command
}

/// Waits until `condition` holds (checked every 10 ms), failing the test after `PATIENCE`.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}
