//! The signal campaign behind docs/reliability.md's signal rows: herald signalled at a random
//! moment into a step with a background grandchild must exit 128+N, cancel the step's status and
//! leave nothing of the step alive. Separate from `pipeline`: one job, one step at a time, and
//! what is measured is processes, not requests.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use herald_standin::*;

use crate::xorshift;

/// What repeated signals to herald in the middle of steps left behind.
#[derive(Debug, Clone, Default)]
pub struct SignalOutcome {
    pub runs: usize,
    /// herald exited with 128 + the signal.
    pub codes_right: usize,
    /// The step's status ended `canceled`.
    pub canceled: usize,
    /// Processes of the step (its shell and a background grandchild) still alive afterwards.
    pub orphans: usize,
    /// Runs where the signal came before herald had set up its signal handling (its first
    /// millisecond): herald died of it before starting the step, so nothing ran and nothing was
    /// published, and a shell reports the same 128+N. Not counted in the other columns.
    pub before_start: usize,
    pub problem: Option<String>,
}

/// Sends `signal` to herald `runs` times, each at a random moment (0–400 ms) into a step that
/// would run for 10 s and has started a background grandchild of its own.
pub fn signal_campaign(herald: &Path, work: &Path, signal: i32, runs: usize, seed: u64) -> SignalOutcome {
    let gitlab = GitLab::start();
    let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "signals", "test", "running"));
    std::fs::create_dir_all(work).unwrap();
    let mut random = seed | 1;
    let mut outcome = SignalOutcome { runs, ..SignalOutcome::default() };
    for run in 0..runs {
        let pids = work.join(format!("pids-{signal}-{run}"));
        let script = format!("sleep 30 & echo $$ $! > '{}'; sleep 10", pids.display());
        let name = format!("signal-{signal}-{run}");
        let mut child = Command::new(herald)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("GITLAB_CI", "true")
            .env("CI_API_V4_URL", gitlab.api_url())
            .env("HERALD_TOKEN", TOKEN_DEVELOPER)
            .env("CI_PROJECT_ID", PROJECT_ID.to_string())
            .env("CI_JOB_NAME", "signals")
            .env("CI_JOB_URL", &url)
            .env("CI_COMMIT_SHA", SHA_MERGE)
            .env("CI_PIPELINE_ID", PIPELINE_MERGED.to_string())
            .env("CI_PIPELINE_SOURCE", "merge_request_event")
            .env("CI_MERGE_REQUEST_IID", "1")
            .args(["run", "--name", &name, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run herald");
        thread::sleep(Duration::from_millis(xorshift(&mut random) % 400));
        // SAFETY: kill with a pid we spawned and a valid signal number.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        if std::os::unix::process::ExitStatusExt::signal(&status) == Some(signal) && !pids.exists() {
            outcome.before_start += 1;
            continue;
        }
        if status.code() == Some(128 + signal) {
            outcome.codes_right += 1;
        } else if outcome.problem.is_none() {
            outcome.problem = Some(format!("{name}: exit {status:?}"));
        }
        // The step may not have written its pids yet if the signal came first; then it never ran them.
        if let Ok(text) = std::fs::read_to_string(&pids) {
            for pid in text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                // SAFETY: signal 0 only checks for existence.
                if unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid) {
                    outcome.orphans += 1;
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let statuses = gitlab.with(|w| w.statuses(PIPELINE_MERGED));
        if statuses.get(&format!("herald/signals › {name}")).is_some_and(|s| s.status == "canceled") {
            outcome.canceled += 1;
        } else if outcome.problem.is_none() {
            outcome.problem = Some(format!("{name}: status {:?}", statuses.get(&format!("herald/signals › {name}"))));
        }
    }
    outcome
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}
