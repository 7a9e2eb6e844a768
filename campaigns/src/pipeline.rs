//! The campaigns behind docs/benchmarks.md (scale) and docs/reliability.md (faults, signals):
//! whole pipelines of concurrent jobs, each running its steps through the real herald binary
//! against the stand-in, measured from the stand-in's side.
//!
//! Run full size by `examples/campaign.rs` (`cargo run --release --example campaign`) and
//! seconds long by the test suite (tests/campaign.rs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_standin::tls::Certificates;
use herald_standin::*;

use crate::job_files::forget_job;
use crate::xorshift;

/// How the merge request note is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// herald's protocol.
    Herald,
    /// What a bot without a protocol does: after each step, list all notes, read the pipeline,
    /// rewrite the note (herald publishes only the statuses).
    Naive,
}

/// One pipeline run: `jobs` jobs at once, `steps` steps each.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub jobs: usize,
    pub steps: usize,
    pub design: Design,
    pub seed: u64,
    /// Each step sleeps a (seeded) random time in this range, in milliseconds.
    pub step_ms: (u64, u64),
    pub faults: Option<Faults>,
    /// Instead of the stand-in's address (an unresolvable host, for the DNS fault).
    pub api_url: Option<String>,
    pub flush_timeout: &'static str,
    /// The notes_create rate limit per user and minute (GitLab.com: 60; self-managed: 300).
    pub notes_per_minute: Option<usize>,
    /// Every job runs with the same `CI_JOB_ID` (what herald keys a job's state by): a runner
    /// set-up that reuses ids must still leave one note.
    pub shared_job_id: bool,
    /// GitLab this far away (the stand-in's `round_trip`), and over HTTPS when `tls`.
    pub round_trip: Duration,
    pub tls: bool,
}

impl Scenario {
    pub fn new(jobs: usize, steps: usize) -> Scenario {
        Scenario {
            jobs,
            steps,
            design: Design::Herald,
            seed: 1,
            step_ms: (50, 500),
            faults: None,
            api_url: None,
            flush_timeout: "30s",
            notes_per_minute: Some(300),
            shared_job_id: false,
            round_trip: Duration::ZERO,
            tls: false,
        }
    }
}

/// What a pipeline run left, seen from the stand-in and from the jobs.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub steps: usize,
    pub requests: usize,
    /// `GET notes`, `PUT note`, `POST status`…: what the requests were for.
    pub by_route: BTreeMap<String, usize>,
    pub answered_429: usize,
    /// Steps whose herald exited with the step's own code.
    pub exit_codes_kept: usize,
    /// Steps whose status reached the step's final state.
    pub statuses_final: usize,
    /// Exactly one herald note, showing every step in its final state, from the steps' own writes.
    pub note_correct: bool,
    /// The same after `herald note --final`, as the CI template's `.post` job runs it (herald's
    /// design only, with GitLab reachable).
    pub note_correct_after_post: Option<bool>,
    /// herald notes on the MR once every job had ended (before the `.post` job): 1 is right.
    pub notes_left: usize,
    /// herald notes created on the MR during the run (each may e-mail every participant): the
    /// goal is 1.
    pub notes_created: usize,
    /// The first version's totals (`N steps in M jobs`, the version GitLab e-mails) equal the
    /// last version's.
    pub first_totals_kept: bool,
    /// Steps with more than one final status: a final state posted twice (its first answer lost),
    /// which marks the first one retried.
    pub duplicate_finals: usize,
    pub note_bytes: usize,
    /// From the end of the last step's command to the note's last write.
    pub note_final_after: Option<Duration>,
    /// herald's run time beyond the step's own: median and maximum over the steps.
    pub added_median: Duration,
    pub added_max: Duration,
    /// From herald's start to its step's start (the step's first command), over all steps.
    pub before_start: Percentiles,
    /// From the step's end to herald's exit: steps with a planned step after them in their job,
    /// and jobs' last steps.
    pub after_end_middle: Percentiles,
    pub after_end_last: Percentiles,
    /// The first problem found, for the report.
    pub problem: Option<String>,
}

/// The median and the 95th percentile of some durations.
#[derive(Debug, Default, Clone, Copy)]
pub struct Percentiles {
    pub median: Duration,
    pub p95: Duration,
}

impl Percentiles {
    fn of(mut all: Vec<Duration>) -> Percentiles {
        all.sort();
        let at =
            |fraction: f64| all.get(((all.len() as f64 * fraction) as usize).min(all.len().saturating_sub(1))).copied();
        Percentiles { median: at(0.5).unwrap_or_default(), p95: at(0.95).unwrap_or_default() }
    }
}

impl Outcome {
    pub fn requests_per_step(&self) -> f64 {
        self.requests as f64 / self.steps.max(1) as f64
    }
}

struct Step {
    name: String,
    sleep: Duration,
    code: i32,
}

struct Job {
    name: String,
    url: String,
    steps: Vec<Step>,
}

/// Runs one pipeline of the merged-results kind on MR !1 with `herald` (the binary), keeping
/// step-end markers in `work`.
pub fn run_pipeline(herald: &Path, work: &Path, scenario: &Scenario) -> Outcome {
    std::fs::create_dir_all(work).unwrap();
    let certificates = scenario.tls.then(|| Certificates::new(work));
    let gitlab = match &certificates {
        Some(certificates) => GitLab::start_tls(certificates),
        None => GitLab::start(),
    };
    gitlab.with(|w| w.round_trip = scenario.round_trip);
    let jobs = plan_jobs(&gitlab, scenario);
    gitlab.with(|w| {
        w.notes_create_per_minute = scenario.notes_per_minute;
        if let Some(faults) = &scenario.faults {
            w.faults = faults.clone();
        }
    });
    let api_url = scenario.api_url.clone().unwrap_or_else(|| gitlab.api_url());
    write_configuration(work, &jobs);

    // Per step: what run_step found.
    let results: Vec<Vec<StepRun>> = thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|job| {
                let api_url = &api_url;
                scope.spawn(move || {
                    job.steps
                        .iter()
                        .map(|step| run_step(herald, work, api_url, scenario, job, step))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for job in &jobs {
        forget_job(&api_url, &job_id(work, scenario, job));
    }
    let mut outcome = Outcome { steps: scenario.jobs * scenario.steps, ..Outcome::default() };
    outcome.add_step_runs(results);
    let last_step_end = jobs
        .iter()
        .flat_map(|job| job.steps.iter().map(move |step| marker(work, job, step)))
        .filter_map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
        .max()
        .map(|at| at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64());
    gitlab.with(|world| outcome.add_what_gitlab_saw(world, &jobs, last_step_end));
    if scenario.design == Design::Herald && scenario.api_url.is_none() {
        outcome.note_correct_after_post = post_job(herald, work, scenario, &gitlab, &api_url, &jobs);
    }
    outcome
}

/// The pipeline's jobs, each a CI job of the stand-in's, and their steps: seeded sleeps in the
/// scenario's range; every fifth job's last step fails.
fn plan_jobs(gitlab: &GitLab, scenario: &Scenario) -> Vec<Job> {
    let mut random = scenario.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let (low, high) = scenario.step_ms;
    (0..scenario.jobs)
        .map(|j| {
            let name = format!("job-{j}");
            let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, &name, "test", "running"));
            let steps = (0..scenario.steps)
                .map(|s| Step {
                    name: format!("step-{s}"),
                    sleep: Duration::from_millis(low + xorshift(&mut random) % (high - low + 1)),
                    code: if j % 5 == 4 && s + 1 == scenario.steps { 3 } else { 0 },
                })
                .collect();
            Job { name, url, steps }
        })
        .collect()
}

/// The pipeline's configuration, as the jobs' checkout has it: herald plans each job's steps
/// from it (and leaves the note to a job's next step when one follows).
fn write_configuration(work: &Path, jobs: &[Job]) {
    let config: String = jobs
        .iter()
        .map(|job| {
            let lines: String =
                job.steps.iter().map(|step| format!("    - herald run --name {} -- ./step.sh\n", step.name)).collect();
            format!("{}:\n  script:\n{lines}", job.name)
        })
        .collect();
    std::fs::write(work.join(".gitlab-ci.yml"), config).unwrap();
}

impl Outcome {
    /// What the steps' runs found: exit codes kept, the time herald added, and when it started
    /// and ended around each step.
    fn add_step_runs(&mut self, results: Vec<Vec<StepRun>>) {
        let mut added: Vec<Duration> = Vec::new();
        let (mut before, mut middle, mut last) = (Vec::new(), Vec::new(), Vec::new());
        for job in results {
            let count = job.len();
            for (index, run) in job.into_iter().enumerate() {
                self.exit_codes_kept += usize::from(run.kept);
                added.push(run.added);
                before.extend(run.before_start);
                if index + 1 == count { &mut last } else { &mut middle }.extend(run.after_end);
                if self.problem.is_none() {
                    self.problem = run.problem;
                }
            }
        }
        self.before_start = Percentiles::of(before);
        self.after_end_middle = Percentiles::of(middle);
        self.after_end_last = Percentiles::of(last);
        added.sort();
        self.added_median = added.get(added.len() / 2).copied().unwrap_or_default();
        self.added_max = added.last().copied().unwrap_or_default();
    }

    /// What the stand-in saw: requests, notes, statuses; whether the note is right, and how long
    /// after the last step's end (Unix seconds) it was last written.
    fn add_what_gitlab_saw(&mut self, world: &World, jobs: &[Job], last_step_end: Option<f64>) {
        self.requests = world.requests.len();
        for request in &world.requests {
            *self.by_route.entry(route_of(request)).or_default() += 1;
        }
        self.answered_429 = world.answered_429;
        let notes = world.herald_notes(1);
        self.notes_left = notes.len();
        let created: Vec<&String> = world
            .notes_created_by_api
            .iter()
            .filter(|(iid, body)| *iid == 1 && body.starts_with("<!-- herald:note"))
            .map(|(_, body)| body)
            .collect();
        self.notes_created = created.len();
        self.first_totals_kept = match (created.first(), notes.first()) {
            (Some(first), Some(last)) => totals(first).is_some() && totals(first) == totals(&last.body),
            _ => false,
        };
        let note = (notes.len() == 1).then(|| &notes[0]);
        let mut finals: BTreeMap<&str, usize> = BTreeMap::new();
        for status in world.jobs.iter().filter(|j| j.kind == JobKind::External && j.pipeline_id == PIPELINE_MERGED) {
            if matches!(status.status.as_str(), "success" | "failed" | "canceled") {
                *finals.entry(status.name.as_str()).or_default() += 1;
            }
        }
        self.duplicate_finals = finals.values().filter(|count| **count > 1).count();
        self.note_bytes = note.map_or(0, |n| n.body.len());
        let statuses = world.statuses(PIPELINE_MERGED);
        for job in jobs {
            for step in &job.steps {
                let state = if step.code == 0 { "success" } else { "failed" };
                let status = statuses.get(&format!("herald/{} › {}", job.name, step.name));
                self.statuses_final += usize::from(status.is_some_and(|s| s.status == state));
            }
        }
        let problem = note_problem(world, jobs);
        let note_correct = problem.is_none();
        if self.problem.is_none() {
            self.problem = problem;
        }
        self.note_correct = note_correct;
        if let (Some(note), Some(end), true) = (note, last_step_end, note_correct) {
            self.note_final_after = Some(Duration::from_secs_f64((note.updated_at - end).max(0.0)));
        }
    }
}

/// The `.post` job: GitLab has ended every job of the pipeline, and `herald note --final` runs
/// as the CI template's `herald-note` job does. Whether the note is right afterwards; None when
/// herald did not run.
fn post_job(
    herald: &Path,
    work: &Path,
    scenario: &Scenario,
    gitlab: &GitLab,
    api_url: &str,
    jobs: &[Job],
) -> Option<bool> {
    gitlab.with(|world| {
        for job in jobs {
            let failed = job.steps.iter().any(|step| step.code != 0);
            for ci_job in world.jobs.iter_mut().filter(|j| j.kind == JobKind::Build && j.name == job.name) {
                ci_job.status = if failed { "failed".into() } else { "success".into() };
            }
        }
    });
    let finished = Command::new(herald)
        .env_clear()
        .envs(job_env(work, api_url, scenario, "herald-note", None, &format!("{}-post", run_key(work))))
        .args(["note", "--final"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let correct = finished.is_ok().then(|| gitlab.with(|world| note_problem(world, jobs)).is_none());
    forget_job(api_url, &format!("{}-post", run_key(work)));
    correct
}

/// A note's `N steps in M jobs`.
pub fn totals(body: &str) -> Option<(u64, u64)> {
    let at = body.find(" steps in ").or_else(|| body.find(" step in "))?;
    let steps = body[..at].rsplit([' ', '\n']).next()?.parse().ok()?;
    let rest = &body[at..];
    let jobs = rest.split(" in ").nth(1)?.split(' ').next()?.parse().ok()?;
    Some((steps, jobs))
}

/// What is wrong with the note, if anything: not exactly one herald note, or a step not shown in
/// its final state.
fn note_problem(world: &World, jobs: &[Job]) -> Option<String> {
    let notes = world.herald_notes(1);
    if notes.len() != 1 {
        return Some(format!("{} herald notes", notes.len()));
    }
    for job in jobs {
        for step in &job.steps {
            let (icon, result) = if step.code == 0 { ("✅", "passed in") } else { ("❌", "failed") };
            if !note_shows(&notes[0].body, icon, &job.name, &job.url, &step.name, result) {
                return Some(format!("the note lacks {icon} {} {} {result}", job.name, step.name));
            }
        }
    }
    None
}

/// Whether a note body shows `step` of the job linked as `[job](url)` with this icon and a result
/// that begins with `result`: the note's folded listing has one line per job with all its steps
/// (`- ✅ [lint](url) — ✅ fmt passed in 1.2s · ✅ clippy passed in 4.0s`, report/note.rs).
pub fn note_shows(body: &str, icon: &str, job: &str, url: &str, step: &str, result: &str) -> bool {
    let link = format!(" [{job}]({url}) — ");
    let part = format!("{icon} {step} {result}");
    body.lines().any(|line| line.starts_with("- ") && line.contains(&link) && line.contains(&part))
}

/// A request's kind: its method and what it addressed, ids left out.
fn route_of(request: &Recorded) -> String {
    let path = request.path.as_str();
    let what = if path.contains("/statuses") {
        "status"
    } else if path.ends_with("/notes") {
        "notes"
    } else if path.contains("/notes/") {
        "note"
    } else if path.ends_with("/jobs") {
        "jobs"
    } else if path == "/user" {
        "user"
    } else {
        path
    };
    format!("{} {what}", request.method)
}

/// The job's `CI_JOB_ID`: unique to this run, as it keys herald's files in the temporary directory.
fn job_id(work: &Path, scenario: &Scenario, job: &Job) -> String {
    let number = if scenario.shared_job_id { "0" } else { &job.name["job-".len()..] };
    format!("{}{number}", run_key(work))
}

/// A number unique to this run of a pipeline.
fn run_key(work: &Path) -> String {
    let run: u64 = work.to_string_lossy().bytes().fold(7, |hash, b| hash.wrapping_mul(31).wrapping_add(u64::from(b)));
    format!("{}{}", std::process::id(), run % 100_000)
}

fn marker(work: &Path, job: &Job, step: &Step) -> PathBuf {
    work.join(format!("{}-{}.end", job.name, step.name))
}

/// A CI job's variables, as herald reads them.
fn job_env(
    work: &Path,
    api_url: &str,
    scenario: &Scenario,
    name: &str,
    url: Option<&str>,
    id: &str,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("GITLAB_CI", "true".into()),
        ("CI_API_V4_URL", api_url.into()),
        ("HERALD_TOKEN", TOKEN_DEVELOPER.into()),
        ("CI_PROJECT_ID", PROJECT_ID.to_string()),
        ("CI_PROJECT_PATH", PROJECT_PATH.into()),
        ("CI_JOB_NAME", name.into()),
        ("CI_JOB_ID", id.into()),
        ("CI_PROJECT_DIR", work.display().to_string()),
        ("CI_COMMIT_SHA", SHA_MERGE.into()),
        ("CI_PIPELINE_ID", PIPELINE_MERGED.to_string()),
        ("CI_PIPELINE_SOURCE", "merge_request_event".into()),
        ("CI_COMMIT_REF_NAME", "feature".into()),
        ("HERALD_FLUSH_TIMEOUT", scenario.flush_timeout.into()),
    ];
    env.extend(url.map(|url| ("CI_JOB_URL", url.to_owned())));
    if scenario.tls {
        env.push(("HERALD_CA_FILE", work.join("ca.pem").display().to_string()));
    }
    if scenario.design == Design::Herald {
        env.push(("CI_MERGE_REQUEST_IID", "1".into()));
    }
    env
}

/// One step through herald, as a job's script line runs it; then, in the naive design, the note.
/// One step as the campaign saw it.
struct StepRun {
    /// herald exited with the step's own code.
    kept: bool,
    /// herald's run time beyond the step's sleep.
    added: Duration,
    /// herald's start to the step's first command; the step's end to herald's exit (from the
    /// times the step wrote down, when it could).
    before_start: Option<Duration>,
    after_end: Option<Duration>,
    problem: Option<String>,
}

fn run_step(herald: &Path, work: &Path, api_url: &str, scenario: &Scenario, job: &Job, step: &Step) -> StepRun {
    let marker = marker(work, job, step);
    let times = marker.with_extension("times");
    // The step writes down when it started and ended (Unix seconds, ns), around its sleep.
    let script = format!(
        "date +%s.%N > '{times}'; sleep {:.3}; date +%s.%N >> '{times}'; : > '{}'; exit {}",
        step.sleep.as_secs_f64(),
        marker.display(),
        step.code,
        times = times.display(),
    );
    let mut command = Command::new(herald);
    command
        .env_clear()
        .envs(job_env(work, api_url, scenario, &job.name, Some(&job.url), &job_id(work, scenario, job)))
        .args(["run", "--name", &step.name, "--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // CAMPAIGN_LOGS=<dir>: every step's herald log at debug level, named by the time herald
    // added to the step (so `ls | sort -n` puts the slowest last).
    let logs = std::env::var_os("CAMPAIGN_LOGS").map(PathBuf::from);
    if logs.is_some() {
        command.env("HERALD_LOG", "debug");
    }
    let started = Instant::now();
    let started_at = SystemTime::now();
    let output = command.output().expect("run herald");
    let took = started.elapsed();
    let ended_at = started_at + took;
    let written: Vec<SystemTime> = std::fs::read_to_string(&times)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse::<f64>().ok())
        .map(|seconds| UNIX_EPOCH + Duration::from_secs_f64(seconds))
        .collect();
    let before_start = written.first().and_then(|at| at.duration_since(started_at).ok());
    let after_end = written.get(1).and_then(|at| ended_at.duration_since(*at).ok());
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if let Some(logs) = logs {
        let name = format!("{}-{}-{}.log", took.saturating_sub(step.sleep).as_millis(), job.name, step.name);
        let _ = std::fs::create_dir_all(&logs).and_then(|()| std::fs::write(logs.join(name), &stderr));
    }
    let kept = output.status.code() == Some(step.code);
    let mut problem = (!kept).then(|| format!("{} {}: exit {:?}: {stderr}", job.name, step.name, output.status.code()));
    if scenario.design == Design::Naive {
        if let Err(error) = naive_note(api_url) {
            problem.get_or_insert(format!("naive note: {error}"));
        }
    }
    StepRun { kept, added: took.saturating_sub(step.sleep), before_start, after_end, problem }
}

/// The naive design's note write: list all notes, read the pipeline, write the note.
fn naive_note(api_url: &str) -> Result<(), herald::gitlab::ApiError> {
    use herald::gitlab::{self as api, Client, Token};
    let client = Client::new(api_url, Token::new(TOKEN_DEVELOPER), None, false).expect("client");
    let timeout = Duration::from_secs(10);
    let project = PROJECT_ID.to_string();
    let notes = api::list_notes(&client, &project, 1, timeout)?;
    let jobs = api::pipeline_jobs(&client, &project, PIPELINE_MERGED, timeout)?;
    let statuses = api::pipeline_statuses(&client, &project, SHA_MERGE, PIPELINE_MERGED, timeout)?;
    let view = herald::publish::build_view(&herald::publish::Sources {
        pipeline_id: PIPELINE_MERGED,
        sha: SHA_MERGE,
        prefix: "herald",
        jobs: &jobs,
        statuses: &statuses,
        plan: None,
        history: &[],
        excerpts: &Default::default(),
        baseline: None,
        summaries: &Default::default(),
    });
    let body = herald::report::note::render(&view);
    match notes.iter().find(|note| herald::report::note::pipeline_of(&note.body).is_some()) {
        Some(note) => api::update_note(&client, &project, 1, note.id, &body, timeout).map(drop),
        None => api::create_note(&client, &project, 1, &body, timeout).map(drop),
    }
}
