//! The campaigns behind docs/reliability.md's safety-net, allowed-failure and leftover rows
//! (issue #13): the real binary against the stand-in, measured from outside.
//!
//! - `safety_net`: a pipeline of jobs whose steps passed, failed, failed but were allowed to
//!   (`allow_failure`, `exit_codes`, `|| true`), or were cut off when their job died; then some
//!   final posts are lost (GitLab was down at the end) and the safety net runs under faults —
//!   each job's `herald finalize` (after_script), or only `herald note --final` (the `.post` job,
//!   for jobs whose runner is gone). Every status must end final, in the state the evidence
//!   supports, and the pipeline's verdict must be no worse than GitLab's own on its jobs.
//! - `leftovers`: steps that leave processes behind (daemons that ignore SIGTERM, background
//!   children, a timeout, herald itself signalled): when herald exits nothing of the step may be
//!   alive and nothing may hold its output.
//!
//! Shared by `examples/campaign.rs` (full runs) and tests/campaign.rs (seconds-long runs).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use herald_standin::*;

/// Which part of the safety net closes what the lost final posts left open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// Each job's `herald finalize` (with `CI_JOB_STATUS`), from the job's own record.
    Finalize,
    /// Only the `.post` job's `herald note --final`: the jobs' runners are gone (their records
    /// with them); the evidence is the job log GitLab holds.
    NoteFinal,
}

#[derive(Debug, Clone, Default)]
pub struct SafetyNetOutcome {
    /// Statuses herald opened, over all trials.
    pub statuses: usize,
    /// Of those, how many ended in a final state.
    pub closed: usize,
    /// Final, but not the state the evidence supports.
    pub wrong: usize,
    /// Pipelines whose verdict herald's statuses made worse than GitLab's on its own jobs.
    pub made_worse: usize,
    /// Trials that did not end with exactly one note.
    pub note_count_wrong: usize,
    /// Runs of finalize or note --final that exited non-zero.
    pub commands_failed: usize,
    pub problem: Option<String>,
}

/// One CI job of the safety-net pipeline.
struct JobSpec {
    name: &'static str,
    /// The job's `allow_failure` line in `.gitlab-ci.yml`, if any.
    allow_failure: Option<&'static str>,
    /// Steps the job ran to their end: (name, exit code, the script line's `|| true`).
    steps: &'static [(&'static str, i32, bool)],
    /// A step whose herald was killed mid-step with its job (no end, no summary line).
    cut_off: Option<&'static str>,
    /// How GitLab ended the job (`CI_JOB_STATUS`).
    ended: &'static str,
    /// Whether GitLab lets the pipeline pass when the job fails.
    allowed_to_fail: bool,
    /// The state each step's status must end in: (step, state, allowed-failure description).
    expected: &'static [(&'static str, &'static str, bool)],
}

const JOBS: &[JobSpec] = &[
    JobSpec {
        name: "pass",
        allow_failure: None,
        steps: &[("a", 0, false), ("b", 0, false)],
        cut_off: None,
        ended: "success",
        allowed_to_fail: false,
        expected: &[("a", "success", false), ("b", "success", false)],
    },
    JobSpec {
        name: "fail",
        allow_failure: None,
        steps: &[("a", 0, false), ("b", 2, false)],
        cut_off: None,
        ended: "failed",
        allowed_to_fail: false,
        expected: &[("a", "success", false), ("b", "failed", false)],
    },
    JobSpec {
        name: "lenient",
        allow_failure: None,
        steps: &[("a", 1, true), ("b", 0, false)],
        cut_off: None,
        ended: "success",
        allowed_to_fail: false,
        expected: &[("a", "success", true), ("b", "success", false)],
    },
    JobSpec {
        name: "flaky",
        allow_failure: Some("allow_failure: true"),
        steps: &[("a", 0, false), ("b", 3, false)],
        cut_off: None,
        ended: "failed",
        allowed_to_fail: true,
        expected: &[("a", "success", false), ("b", "success", true)],
    },
    JobSpec {
        name: "codes",
        allow_failure: Some("allow_failure:\n    exit_codes: [3]"),
        steps: &[("a", 3, false)],
        cut_off: None,
        ended: "failed",
        allowed_to_fail: true,
        expected: &[("a", "success", true)],
    },
    JobSpec {
        name: "killed",
        allow_failure: None,
        steps: &[("a", 0, false)],
        cut_off: Some("b"),
        ended: "failed",
        allowed_to_fail: false,
        expected: &[("a", "success", false), ("b", "failed", false)],
    },
    JobSpec {
        name: "canceled",
        allow_failure: None,
        steps: &[("a", 0, false)],
        cut_off: Some("b"),
        ended: "canceled",
        allowed_to_fail: false,
        expected: &[("a", "success", false), ("b", "canceled", false)],
    },
];

/// The pipeline's configuration: every job's steps through herald.
fn configuration() -> String {
    JOBS.iter()
        .map(|job| {
            let mut text = format!("{}:\n", job.name);
            if let Some(allow) = job.allow_failure {
                text.push_str(&format!("  {allow}\n"));
            }
            text.push_str("  script:\n");
            let names =
                job.steps.iter().map(|(name, _, lenient)| (*name, *lenient)).chain(job.cut_off.map(|n| (n, false)));
            for (name, lenient) in names {
                let or_true = if lenient { " || true" } else { "" };
                text.push_str(&format!("    - herald run --name {name} -- ./{name}.sh{or_true}\n"));
            }
            text
        })
        .collect()
}

/// How bad a pipeline verdict is, in GitLab's order.
fn badness(verdict: &str) -> u8 {
    match verdict {
        "success" => 0,
        "success_with_warnings" => 1,
        "canceled" => 2,
        "failed" => 3,
        _ => 4,
    }
}

/// `trials` pipelines; in each, every final status is lost with probability `lost` (GitLab down
/// when it was posted) and `net` closes them under `faults`.
pub fn safety_net(
    herald: &Path,
    work: &Path,
    net: Net,
    faults: &Faults,
    trials: usize,
    lost: f64,
    seed: u64,
) -> SafetyNetOutcome {
    let mut outcome = SafetyNetOutcome::default();
    let mut random = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for trial in 0..trials {
        let dir = work.join(format!("net-{trial}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(".gitlab-ci.yml"), configuration()).unwrap();
        let gitlab = GitLab::start();
        let run = Trial {
            herald,
            gitlab: &gitlab,
            dir: &dir,
            run_key: format!("{}{}{trial}", std::process::id(), seed % 1000),
        };
        let jobs: Vec<(u64, String)> =
            JOBS.iter().map(|job| gitlab.with(|w| w.add_job(PIPELINE_MERGED, job.name, "test", "running"))).collect();
        run.jobs(&jobs);
        // GitLab was down when some final states were posted: they never arrived.
        gitlab.with(|w| {
            for status in w.jobs.iter_mut().filter(|j| j.kind == JobKind::External && j.status != "running") {
                if next_unit(&mut random) < lost {
                    status.status = "running".into();
                    status.description = Some("running".into());
                }
            }
        });
        if net == Net::NoteFinal {
            // The jobs' runners are gone, and with them what the jobs recorded.
            run.forget(&jobs);
        }
        gitlab.with(|w| w.faults = faults.clone());
        let failed = match net {
            Net::Finalize => run.finalize(&jobs),
            Net::NoteFinal => run.note_final().into_iter().collect(),
        };
        outcome.commands_failed += failed.len();
        if let Some(said) = failed.iter().find(|said| !said.is_empty()) {
            outcome.problem.get_or_insert(format!("trial {trial}: {said}"));
        }
        gitlab.with(|w| w.faults = Faults::default());
        gitlab.with(|world| outcome.check(world, trial));
        run.forget(&jobs);
        let _ = std::fs::remove_dir_all(&dir);
    }
    outcome
}

/// One pipeline of the safety-net campaign: herald, the stand-in, the jobs' checkout and the key
/// that makes this trial's job ids its own.
struct Trial<'a> {
    herald: &'a Path,
    gitlab: &'a GitLab,
    dir: &'a Path,
    run_key: String,
}

impl Trial<'_> {
    /// The jobs run, one thread each, their steps in turn; the job log is what they printed.
    fn jobs(&self, jobs: &[(u64, String)]) {
        thread::scope(|scope| {
            for (spec, (id, url)) in JOBS.iter().zip(jobs) {
                scope.spawn(move || {
                    let mut trace = String::new();
                    for (name, code, _) in spec.steps {
                        let env = job_env(self.gitlab, self.dir, spec.name, *id, url, &self.run_key);
                        let output = Command::new(self.herald)
                            .env_clear()
                            .envs(env)
                            .args(["run", "--name", name, "--", "sh", "-c", &format!("echo working; exit {code}")])
                            .stdin(Stdio::null())
                            .output()
                            .expect("run herald");
                        trace.push_str(&String::from_utf8_lossy(&output.stdout));
                        trace.push_str(&String::from_utf8_lossy(&output.stderr));
                    }
                    if let Some(name) = spec.cut_off {
                        // Its herald posted `running` and printed the section's start, then the
                        // job was killed with it.
                        self.gitlab.with(|w| {
                            w.add_status(PIPELINE_MERGED, &format!("herald/{} › {name}", spec.name), "running", url)
                        });
                        trace.push_str(&format!(
                            "\u{1b}[0Ksection_start:1:herald-{name}-1\r\u{1b}[0K▶ {name}\nKilled\n"
                        ));
                    }
                    self.gitlab.with(|w| {
                        for job in w.jobs.iter_mut().filter(|j| j.id == *id) {
                            job.trace = trace.clone();
                            job.status = spec.ended.into();
                            job.allow_failure = spec.allowed_to_fail;
                        }
                    });
                });
            }
        });
    }

    /// Each job's `herald finalize`, all at once; what each failed run said (its last line).
    fn finalize(&self, jobs: &[(u64, String)]) -> Vec<String> {
        thread::scope(|scope| {
            let runs: Vec<_> = JOBS
                .iter()
                .zip(jobs)
                .map(|(spec, (id, url))| {
                    let env = job_env(self.gitlab, self.dir, spec.name, *id, url, &self.run_key);
                    scope.spawn(move || {
                        let output = Command::new(self.herald)
                            .env_clear()
                            .envs(env)
                            .env("CI_JOB_STATUS", spec.ended)
                            .arg("finalize")
                            .output();
                        match output {
                            Ok(output) if output.status.success() => None,
                            Ok(output) => Some(format!(
                                "finalize failed: {}",
                                String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
                            )),
                            Err(error) => Some(format!("finalize failed: {error}")),
                        }
                    })
                })
                .collect();
            runs.into_iter().filter_map(|run| run.join().unwrap()).collect()
        })
    }

    /// The `.post` job's `herald note --final`; what it said (its last line) if it failed.
    fn note_final(&self) -> Option<String> {
        let env = job_env(
            self.gitlab,
            self.dir,
            "herald-note",
            1,
            "https://gitlab.example.com/group/app/-/jobs/1",
            &self.run_key,
        );
        match Command::new(self.herald).env_clear().envs(env).args(["note", "--final"]).output() {
            Ok(output) if output.status.success() => None,
            Ok(output) => Some(format!(
                "note --final failed: {}",
                String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or("")
            )),
            // (A run that could not start counts as failed, with nothing said.)
            Err(_) => Some(String::new()),
        }
    }

    /// Removes what the jobs recorded on their runner.
    fn forget(&self, jobs: &[(u64, String)]) {
        for (_, (id, _)) in JOBS.iter().zip(jobs) {
            crate::forget_job(&self.gitlab.api_url(), &format!("{}{id}", self.run_key));
        }
    }
}

impl SafetyNetOutcome {
    /// Every status final in the state its step's evidence supports, the verdict no worse than
    /// GitLab's own on its jobs, one note.
    fn check(&mut self, world: &World, trial: usize) {
        let statuses = world.statuses(PIPELINE_MERGED);
        for spec in JOBS {
            for (step, state, allowed) in spec.expected {
                let name = format!("herald/{} › {step}", spec.name);
                self.statuses += 1;
                let Some(status) = statuses.get(&name) else {
                    self.problem.get_or_insert(format!("trial {trial}: no status {name}"));
                    continue;
                };
                if status.status == "running" {
                    self.problem.get_or_insert(format!("trial {trial}: {name} left running"));
                    continue;
                }
                self.closed += 1;
                let described_allowed = status.description.as_deref().is_some_and(|d| d.starts_with("allowed: "));
                if status.status != *state || described_allowed != *allowed {
                    self.wrong += 1;
                    self.problem.get_or_insert(format!(
                        "trial {trial}: {name} is {} ({:?}), expected {state}",
                        status.status, status.description
                    ));
                }
            }
        }
        // GitLab's verdict on its own jobs, and with herald's statuses.
        let own = world.verdict_of_jobs(PIPELINE_MERGED);
        let with_herald = world.pipeline_verdict(PIPELINE_MERGED);
        if badness(with_herald) > badness(own) {
            self.made_worse += 1;
            self.problem.get_or_insert(format!("trial {trial}: verdict {with_herald}, GitLab's own {own}"));
        }
        if world.herald_notes(1).len() != 1 {
            self.note_count_wrong += 1;
            self.problem.get_or_insert(format!("trial {trial}: {} notes", world.herald_notes(1).len()));
        }
    }
}

/// A CI job's variables, as herald reads them.
fn job_env(gitlab: &GitLab, dir: &Path, name: &str, id: u64, url: &str, run_key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("GITLAB_CI", "true".into()),
        ("CI_API_V4_URL", gitlab.api_url()),
        ("HERALD_TOKEN", TOKEN_DEVELOPER.into()),
        ("CI_PROJECT_ID", PROJECT_ID.to_string()),
        ("CI_PROJECT_PATH", PROJECT_PATH.into()),
        ("CI_JOB_NAME", name.into()),
        ("CI_JOB_ID", format!("{run_key}{id}")),
        ("CI_JOB_URL", url.into()),
        ("CI_PROJECT_DIR", dir.display().to_string()),
        ("CI_COMMIT_SHA", SHA_MERGE.into()),
        ("CI_PIPELINE_ID", PIPELINE_MERGED.to_string()),
        ("CI_PIPELINE_SOURCE", "merge_request_event".into()),
        ("CI_COMMIT_REF_NAME", "feature".into()),
        ("CI_MERGE_REQUEST_IID", "1".into()),
        ("HERALD_FLUSH_TIMEOUT", "30s".into()),
    ]
}

fn next_unit(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// A kind of step that leaves processes behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// `setsid` daemon whose child ignores SIGTERM; the step exits at once.
    StubbornDaemon,
    /// Background children and a daemon that obey SIGTERM; the step exits at once.
    ObedientChildren,
    /// A step that outlives `--timeout`, with a stubborn grandchild.
    Timeout,
    /// herald itself gets SIGTERM mid-step (the runner cancels the job), with a stubborn daemon.
    Canceled,
}

pub const LEFTOVERS: [Leftover; 4] =
    [Leftover::StubbornDaemon, Leftover::ObedientChildren, Leftover::Timeout, Leftover::Canceled];

#[derive(Debug, Clone, Default)]
pub struct LeftoverOutcome {
    /// Processes of the step alive once herald had exited, over all runs.
    pub alive: usize,
    /// Runs where herald's output was still held open 2 s after herald exited.
    pub pipes_held: usize,
    /// herald's own time from the step's exit (or the signal) to its own exit: median, maximum.
    pub exit_median: Duration,
    pub exit_max: Duration,
    pub problem: Option<String>,
}

/// `runs` steps of the `kind`, each under `herald run --grace 1s`, not publishing.
pub fn leftovers(herald: &Path, work: &Path, kind: Leftover, runs: usize) -> LeftoverOutcome {
    std::fs::create_dir_all(work).unwrap();
    let ignorer = work.join("ignorer.sh");
    // A shell that ignores SIGTERM and records its pid; as `parent` it first starts a child
    // like itself (which herald adopts only once the parent is killed).
    std::fs::write(
        &ignorer,
        "trap '' TERM\n\
         echo $$ >> \"$2\"\n\
         if [ \"$1\" = parent ]; then sh \"$0\" child \"$2\" & fi\n\
         while :; do sleep 0.1; done\n",
    )
    .unwrap();
    let mut outcome = LeftoverOutcome::default();
    let mut exits = Vec::new();
    for run in 0..runs {
        let pids = work.join(format!("pids-{kind:?}-{run}"));
        let _ = std::fs::remove_file(&pids);
        let (script, args) = leftover_step(kind, &ignorer, &pids);
        let mut child = Command::new(herald)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .arg("run")
            .args(&args)
            .args(["--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run herald");
        let mut stdout = child.stdout.take().unwrap();
        let (eof_tx, eof_rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
            let _ = eof_tx.send(Instant::now());
        });
        // The step's leftovers are in place…
        let until = Instant::now() + Duration::from_secs(20);
        while std::fs::read_to_string(&pids).map_or(0, |t| t.lines().count()) < 2 && Instant::now() < until {
            thread::sleep(Duration::from_millis(5));
        }
        let from = Instant::now();
        if kind == Leftover::Canceled {
            // SAFETY: kill with the pid of the child we spawned.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let status = child.wait().unwrap();
        let exited = Instant::now();
        exits.push(exited - from);
        outcome.check_run(kind, run, status, &eof_rx, &pids);
    }
    exits.sort();
    outcome.exit_median = exits.get(exits.len() / 2).copied().unwrap_or_default();
    outcome.exit_max = exits.last().copied().unwrap_or_default();
    outcome
}

/// The step's script and herald's flags for a kind of leftover; `ignorer` is the SIGTERM-ignoring
/// shell, and every leftover appends its pid to `pids`.
fn leftover_step(kind: Leftover, ignorer: &Path, pids: &Path) -> (String, Vec<&'static str>) {
    let (ignorer, pids_path) = (ignorer.display(), pids.display());
    // Waits until the step's leftovers have recorded themselves (each appends its pid).
    let ready = |count: usize| {
        format!("while [ $(wc -l < {pids_path} 2>/dev/null || echo 0) -lt {count} ]; do sleep 0.01; done")
    };
    match kind {
        Leftover::StubbornDaemon => {
            (format!("setsid sh {ignorer} parent {pids_path} & {}; exit 0", ready(2)), vec!["--grace", "1s"])
        }
        Leftover::ObedientChildren => (
            format!(
                "sleep 300 & echo $! >> {pids_path}; setsid sh -c 'sleep 300 & echo $! >> {pids_path}; wait' & {}; exit 0",
                ready(2)
            ),
            vec!["--grace", "1h"],
        ),
        Leftover::Timeout => {
            (format!("sh {ignorer} parent {pids_path} & {}; sleep 300", ready(2)), vec!["--grace", "1s", "--timeout", "1s"])
        }
        Leftover::Canceled => {
            (format!("setsid sh {ignorer} parent {pids_path} & {}; sleep 300", ready(2)), vec!["--grace", "1s"])
        }
    }
}

impl LeftoverOutcome {
    /// After herald exited with `status`: the code the kind calls for, herald's output closed
    /// (`eof` heard within 2 s), and nothing of the step alive (what is, is killed).
    fn check_run(
        &mut self,
        kind: Leftover,
        run: usize,
        status: std::process::ExitStatus,
        eof: &std::sync::mpsc::Receiver<Instant>,
        pids: &Path,
    ) {
        let expected = match kind {
            Leftover::StubbornDaemon | Leftover::ObedientChildren => Some(0),
            // The step dies of the timeout's SIGTERM: its own death is what herald reports.
            Leftover::Timeout => Some(128 + libc::SIGTERM),
            Leftover::Canceled => Some(128 + libc::SIGTERM),
        };
        if status.code() != expected {
            self.problem.get_or_insert(format!("{kind:?} run {run}: exit {status:?}, expected {expected:?}"));
        }
        if eof.recv_timeout(Duration::from_secs(2)).is_err() {
            self.pipes_held += 1;
            self.problem.get_or_insert(format!("{kind:?} run {run}: output still held 2 s after herald exited"));
        }
        for pid in
            std::fs::read_to_string(pids).unwrap_or_default().split_whitespace().filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: signal 0 only checks for existence.
            if unsafe { libc::kill(pid, 0) } == 0 && !is_zombie(pid) {
                self.alive += 1;
                self.problem.get_or_insert(format!("{kind:?} run {run}: pid {pid} outlived herald"));
                // SAFETY: cleaning up what the run left.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true)
}
