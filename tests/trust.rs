//! herald's promises at the edges (issue #13): leftovers of every depth stopped, helper-thread
//! bugs and herald's own death never leaving the step unsupervised, secrets masked before lines
//! are cut. Each test here failed on the code before the fix it pins.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::gitlab::*;
use crate::support::{finish, herald, herald_in_ci, process_alive, run, wait_for_file, PipelineKind, TempDir};

fn read_pid(path: &std::path::Path) -> u32 {
    std::fs::read_to_string(path).unwrap().trim().parse().unwrap()
}

/// A daemon (`setsid`) whose shell and whose child both ignore SIGTERM: the child is adopted by
/// herald only once its parent is killed, after the grace. It still holds the step's stdout.
#[test]
fn a_daemons_stubborn_child_is_stopped_too_and_nothing_holds_the_output() {
    let dir = TempDir::new("daemon-tree");
    let (script, pid_file) = (dir.join("ignorer.sh"), dir.join("child.pid"));
    std::fs::write(
        &script,
        "trap '' TERM\n\
         if [ \"$1\" = parent ]; then sh \"$0\" child \"$2\" & fi\n\
         if [ \"$1\" = child ]; then echo $$ > \"$2\"; fi\n\
         while :; do sleep 0.1; done\n",
    )
    .unwrap();
    let step = format!(
        "setsid sh {script} parent {pid} & while [ ! -s {pid} ]; do sleep 0.01; done; exit 3",
        script = script.display(),
        pid = pid_file.display()
    );
    // `run` fails the test if anything still holds herald's stdout or stderr after it exits.
    let finished = run(herald().args(["run", "--grace", "1s", "--", "sh", "-c", &step]));
    assert_eq!(finished.code, Some(3), "{}", finished.stderr_text());
    assert!(!process_alive(read_pid(&pid_file)), "the daemon's child survived herald");
}

/// Leftovers that obey SIGTERM cost what they take to exit, not the whole grace.
#[test]
fn leftovers_that_obey_sigterm_do_not_cost_the_grace() {
    let dir = TempDir::new("obedient");
    let pid_file = dir.join("pid");
    let step = format!(
        "sleep 300 & setsid sh -c 'sleep 300 & echo $! > {pid}; wait' & while [ ! -s {pid} ]; do sleep 0.01; done",
        pid = pid_file.display()
    );
    let started = Instant::now();
    // A grace longer than the test's patience: waiting it out would fail the test.
    let finished = run(herald().args(["run", "--grace", "1h", "--", "sh", "-c", &step]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(started.elapsed() < Duration::from_secs(25));
    assert!(!process_alive(read_pid(&pid_file)));
}

/// A bug that panics on the publisher thread ends that thread, not herald: the step runs to its
/// end, its exit code comes back, and one line says the status may be left open.
#[test]
fn a_panicking_publisher_leaves_the_step_supervised() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_TEST_PANIC", "publisher")
        .args(["run", "--name", "unit", "--", "sh", "-c", "sleep 0.3; echo done; exit 5"]));
    assert_eq!(finished.code, Some(5), "{}", finished.stderr_text());
    assert_eq!(finished.stdout_text(), "done\n");
    assert!(finished.stderr_text().contains("may be left open"), "{}", finished.stderr_text());
}

/// A bug in the excerpt's tee thread must not cost the step its output (or kill it by SIGPIPE).
#[test]
fn a_panicking_tee_still_passes_the_output_on() {
    let finished = run(herald()
        .env("HERALD_TEST_PANIC", "tee")
        .env("HERALD_FAILURE_TAIL", "3")
        .env("HERALD_MODE", "always")
        .env("HERALD_DRY_RUN", "1")
        .env("HERALD_TOKEN", "dry-run-token-value")
        .args(["run", "--", "sh", "-c", "seq 1 20000; echo end"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(finished.stdout_text().ends_with("19999\n20000\nend\n"));
}

/// herald killed outright (SIGKILL, the OOM killer): the step dies with it instead of running on
/// with nobody to stop or report it.
#[test]
fn the_step_dies_with_herald() {
    let dir = TempDir::new("pdeathsig");
    let pid_file = dir.join("pid");
    let step = format!("echo $$ > {}; exec sleep 300", pid_file.display());
    let child = herald().args(["run", "--", "sh", "-c", &step]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.unwrap();
    wait_for_file(&pid_file);
    while std::fs::read_to_string(&pid_file).unwrap().trim().is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    crate::support::send_signal(child.id(), libc::SIGKILL);
    let _ = finish(child);
    let pid = read_pid(&pid_file);
    crate::support::wait_until("the step to die with herald", || !process_alive(pid));
}

/// A token on the 512-byte cut of an output line: nothing of it reaches the status description,
/// the JUnit report or the job log's summary.
#[test]
fn a_secret_across_the_line_cut_is_masked_whole() {
    let gitlab = GitLab::start();
    let dir = TempDir::new("cut-secret");
    let report = dir.join("junit.xml");
    let secret = "s3cr3t-deploy-value-0123456789";
    for offset in [500, 505, 510, 511] {
        let script =
            format!("printf '%s%s tail\\n' \"$(head -c {offset} /dev/zero | tr '\\0' x)\" \"$DEPLOY_TOKEN\"; exit 1");
        let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
            .env("HERALD_FAILURE_TAIL", "2")
            .env("HERALD_JUNIT", &report)
            .env("DEPLOY_TOKEN", secret)
            .args(["run", "--name", &format!("cut {offset}"), "--", "sh", "-c", &script]));
        assert_eq!(finished.code, Some(1));
        let status = gitlab.with(|w| w.statuses(PIPELINE_BRANCH)[&format!("herald/lint › cut {offset}")].clone());
        let description = status.description.unwrap();
        let junit = std::fs::read_to_string(&report).unwrap();
        for published in [&description, &junit] {
            // Any 4 characters of the secret in a row would be a fragment of it.
            for window in secret.as_bytes().windows(4) {
                let window = std::str::from_utf8(window).unwrap();
                assert!(
                    !published.contains(window),
                    "'{window}' of the secret published at offset {offset}: {published}"
                );
            }
        }
    }
}

/// The token as a step's name, or among the words it is named after, and in capitals (the job
/// log's section name is lower-cased, which GitLab's case-sensitive masking would miss): nothing
/// of it in the status names, the job log, the JUnit report or any request.
#[test]
fn a_token_in_a_step_name_is_masked_everywhere_the_name_goes() {
    let gitlab = GitLab::start();
    let dir = TempDir::new("token-name");
    let report = dir.join("junit.xml");
    let token = TOKEN_DEVELOPER;
    let shouted = token.to_uppercase();
    let steps: [&[&str]; 3] =
        [&["--name", token, "--", "true"], &["--", "echo", token], &["--name", &shouted, "--", "true"]];
    for args in steps {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
            .env("HERALD_JUNIT", &report)
            .arg("run")
            .args(args));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        let log = finished.stderr_text();
        let junit = std::fs::read_to_string(&report).unwrap();
        let names: Vec<String> = gitlab.with(|w| w.statuses(PIPELINE_BRANCH).keys().cloned().collect());
        let sent: Vec<String> =
            gitlab.requests().iter().map(|r| format!("{} {} {}", r.path, r.query, r.body)).collect();
        for published in [log, junit, names.join("\n"), sent.join("\n")] {
            for form in [token.to_owned(), token.to_lowercase()] {
                assert!(!published.contains(&form), "{args:?}: the token published as {form}: {published}");
            }
        }
    }
}

/// The token echoed back percent-encoded or JSON-escaped (`\u0067…`) is masked in what herald
/// prints.
#[test]
fn encoded_copies_of_the_token_are_masked_in_messages() {
    let gitlab = GitLab::start();
    let dir = TempDir::new("encoded");
    let report = dir.join("junit.xml");
    let token = TOKEN_DEVELOPER;
    let escaped: String = token.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let encoded: String = token.bytes().map(|b| format!("%{b:02X}")).collect();
    let script = format!("echo 'json: {escaped}'; echo 'url: {encoded}'; exit 2");
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_FAILURE_TAIL", "2")
        .env("HERALD_JUNIT", &report)
        .args(["run", "--name", "echo", "--", "sh", "-c", &script]));
    assert_eq!(finished.code, Some(2));
    let description = gitlab.with(|w| w.statuses(PIPELINE_BRANCH)["herald/lint › echo"].clone()).description.unwrap();
    let junit = std::fs::read_to_string(&report).unwrap();
    for published in [&description, &junit] {
        assert!(!published.contains(&escaped) && !published.contains(&encoded), "{published}");
        assert!(published.contains("json: [MASKED]") && published.contains("url: [MASKED]"), "{published}");
    }
}

// ---- The pipeline's verdict, and closing from evidence ----

/// A CI job of the merged-results pipeline, with a checkout holding `config`, run as a runner
/// would run its steps and its after_script.
struct CiJob {
    gitlab: GitLab,
    checkout: TempDir,
    name: String,
    id: u64,
    url: String,
}

impl CiJob {
    fn start(name: &str, config: &str) -> CiJob {
        let gitlab = GitLab::start();
        let (id, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, name, "test", "running"));
        let checkout = TempDir::new("ci-job");
        std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
        CiJob { gitlab, checkout, name: name.into(), id, url }
    }

    fn herald(&self) -> std::process::Command {
        let mut command = herald_in_ci(&self.gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
        command
            .env("CI_JOB_NAME", &self.name)
            .env("CI_JOB_URL", &self.url)
            .env("CI_JOB_ID", self.id.to_string())
            .env("CI_PROJECT_DIR", self.checkout.path());
        command
    }

    fn step(&self, args: &[&str]) -> crate::support::Finished {
        run(self.herald().arg("run").args(args))
    }

    fn end(&self, status: &str, allow_failure: bool) {
        self.gitlab.with(|w| {
            w.set_job_status(self.id, status);
            w.jobs.iter_mut().filter(|j| j.id == self.id).for_each(|j| j.allow_failure = allow_failure);
        });
    }

    fn status(&self, name: &str) -> Job {
        self.gitlab.with(|w| w.statuses(PIPELINE_MERGED).get(name).cloned()).unwrap_or_else(|| panic!("no {name}"))
    }

    fn verdict(&self) -> &'static str {
        // The stand-in's own "test" job of the pipeline has passed.
        self.gitlab.with(|w| {
            let ids: Vec<u64> =
                w.jobs.iter().filter(|j| j.name == "test" && j.pipeline_id == PIPELINE_MERGED).map(|j| j.id).collect();
            ids.into_iter().for_each(|id| w.set_job_status(id, "success"));
            w.pipeline_verdict(PIPELINE_MERGED)
        })
    }
}

#[test]
fn a_failing_step_of_a_job_allowed_to_fail_does_not_fail_the_pipeline() {
    for allow in ["allow_failure: true", "allow_failure:\n    exit_codes: [3, 4]"] {
        let job = CiJob::start(
            "flaky",
            &format!("flaky:\n  {allow}\n  script:\n    - herald run --name probe -- sh -c 'exit 3'\n"),
        );
        let finished = job.step(&["--name", "probe", "--", "sh", "-c", "exit 3"]);
        assert_eq!(finished.code, Some(3), "the exit code is the step's own");
        let status = job.status("herald/flaky › probe");
        assert_eq!(status.status, "success", "{allow}");
        assert!(status.description.unwrap().starts_with("allowed: failed (exit 3)"));
        job.end("failed", true);
        assert_ne!(job.verdict(), "failed", "{allow}");
    }
    // exit_codes that do not hold the step's code: a real failure.
    let job = CiJob::start(
        "strict",
        "strict:\n  allow_failure:\n    exit_codes: 4\n  script:\n    - herald run --name probe -- false\n",
    );
    job.step(&["--name", "probe", "--", "sh", "-c", "exit 3"]);
    assert_eq!(job.status("herald/strict › probe").status, "failed");
}

/// When the configuration cannot say whether the job may fail (no readable `.gitlab-ci.yml`,
/// or the job not in it), the step's end asks GitLab, once, and only when the step failed: an
/// allowed failure is never posted `failed`, even before the safety net runs.
#[test]
fn a_failing_step_asks_gitlab_whether_its_job_may_fail_when_the_configuration_cannot_say() {
    let job_reads = |job: &CiJob| {
        job.gitlab
            .requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/jobs/{}", job.id)))
            .count()
    };
    for (case, config) in
        [("no configuration", None), ("a job the configuration lacks", Some("other:\n  script: [make]\n"))]
    {
        let job = CiJob::start("flaky", config.unwrap_or(""));
        if config.is_none() {
            std::fs::remove_file(job.checkout.join(".gitlab-ci.yml")).unwrap();
        }
        job.gitlab.with(|w| w.jobs.iter_mut().filter(|j| j.id == job.id).for_each(|j| j.allow_failure = true));
        job.step(&["--name", "fine", "--", "true"]);
        assert_eq!(job_reads(&job), 0, "{case}: a passing step does not ask");
        let finished = job.step(&["--name", "probe", "--", "sh", "-c", "exit 3"]);
        assert_eq!(finished.code, Some(3), "{case}: the exit code is the step's own");
        let status = job.status("herald/flaky › probe");
        assert_eq!(status.status, "success", "{case}: {status:?}");
        assert!(status.description.unwrap().starts_with("allowed: failed (exit 3)"), "{case}");
        assert_eq!(job_reads(&job), 1, "{case}: one read, when the step failed");
        job.end("failed", true);
        assert_ne!(job.verdict(), "failed", "{case}: a red pipeline GitLab calls green");
    }
    // A job GitLab does not let fail: its failure stays a failure.
    let job = CiJob::start("strict", "");
    std::fs::remove_file(job.checkout.join(".gitlab-ci.yml")).unwrap();
    job.step(&["--name", "probe", "--", "false"]);
    assert_eq!(job.status("herald/strict › probe").status, "failed");
    // The configuration answers without a read when it can.
    let job = CiJob::start("strict", "strict:\n  script:\n    - herald run --name probe -- false\n");
    job.step(&["--name", "probe", "--", "false"]);
    assert_eq!(job.status("herald/strict › probe").status, "failed");
    assert_eq!(job_reads(&job), 0, "the configuration said no");
}

#[test]
fn a_failed_step_of_a_job_that_passed_anyway_is_settled_as_allowed() {
    // `herald run -- x || true`: the job passes; finalize supersedes the failed status.
    let job = CiJob::start("lenient", "lenient:\n  script:\n    - herald run --name lint -- false || true\n");
    job.step(&["--name", "lint", "--", "false"]);
    assert_eq!(job.status("herald/lenient › lint").status, "failed");
    let finished = run(job.herald().env("CI_JOB_STATUS", "success").arg("finalize"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let status = job.status("herald/lenient › lint");
    assert_eq!(status.status, "success");
    assert!(status.description.unwrap().starts_with("allowed: failed (exit 1)"));
    job.end("success", false);
    assert_eq!(job.verdict(), "success", "herald made the pipeline worse than GitLab's verdict");

    // The same through the .post job alone (no after_script ran).
    let job = CiJob::start("lenient", "lenient:\n  script:\n    - herald run --name lint -- false || true\n");
    job.step(&["--name", "lint", "--", "false"]);
    job.end("success", false);
    let finished = run(job.herald().env("CI_JOB_NAME", "herald-note").args(["note", "--final"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(job.status("herald/lenient › lint").status, "success");
    assert_eq!(job.verdict(), "success");
}

/// A passed step whose final post never reached GitLab: finalize closes it from the job's own
/// record, even in a job that failed later for another reason.
#[test]
fn finalize_closes_a_step_from_what_it_recorded() {
    let job = CiJob::start("build", "build:\n  script:\n    - herald run --name compile -- make\n    - make test\n");
    let dir = TempDir::new("lost-final");
    let go = dir.join("go");
    let script = format!("while [ ! -e {} ]; do sleep 0.02; done", go.display());
    let child = job
        .herald()
        .env("HERALD_FLUSH_TIMEOUT", "1s")
        .args(["run", "--name", "compile", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_until("running", || {
        job.gitlab
            .with(|w| w.statuses(PIPELINE_MERGED).get("herald/build › compile").is_some_and(|s| s.status == "running"))
    });
    job.gitlab.with(|w| {
        w.faults = Faults::always(Fault::ServerError(503));
        w.faults.method = Some("POST");
    });
    std::fs::write(&go, "").unwrap();
    assert_eq!(finish(child).code, Some(0));
    job.gitlab.with(|w| w.faults = Faults::default());
    assert_eq!(job.status("herald/build › compile").status, "running", "the final post was lost");
    let finished = run(job.herald().env("CI_JOB_STATUS", "failed").arg("finalize"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let status = job.status("herald/build › compile");
    assert_eq!(status.status, "success", "{status:?}");
    assert!(status.description.unwrap().starts_with("passed in "));
}

/// `herald note --final` for a job whose herald died: the job log GitLab holds has the summary
/// line of the step that passed; the one that was still open stays failed (the job failed).
#[test]
fn note_final_closes_a_dead_jobs_steps_from_its_log() {
    let job = CiJob::start(
        "dead",
        "dead:\n  script:\n    - herald run --name a -- true\n    - herald run --name b -- true\n",
    );
    for step in ["a", "b"] {
        job.gitlab.with(|w| w.add_status(PIPELINE_MERGED, &format!("herald/dead › {step}"), "running", &job.url));
    }
    let log = "\u{1b}[0Ksection_start:1:herald-a-9\r\u{1b}[0K\u{1b}[36;1m▶ a\u{1b}[0m\n\
               ok\n\u{1b}[0Ksection_end:2:herald-a-9\r\u{1b}[0K\u{1b}[32;1m✔ a passed in 0.4s\u{1b}[0m\n\
               \u{1b}[0Ksection_start:3:herald-b-10\r\u{1b}[0K\u{1b}[36;1m▶ b\u{1b}[0m\nKilled\n";
    job.gitlab.with(|w| w.jobs.iter_mut().filter(|j| j.id == job.id).for_each(|j| j.trace = log.into()));
    job.end("failed", false);
    let finished = run(job.herald().env("CI_JOB_NAME", "herald-note").args(["note", "--final"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(job.status("herald/dead › a").status, "success");
    assert!(job.status("herald/dead › a").description.unwrap().contains("from the job log"));
    assert_eq!(job.status("herald/dead › b").status, "failed");
}

/// Two unnamed `sh -c` steps and two names that differ only by whitespace: each keeps its own
/// status, and the earlier failure stays visible.
#[test]
fn repeated_step_names_never_hide_an_earlier_result() {
    let job = CiJob::start(
        "repeat",
        "repeat:\n  script:\n    - herald run -- sh -c 'exit 1' || true\n    - herald run -- sh -c 'exit 0'\n",
    );
    job.step(&["--", "sh", "-c", "set -e; exit 1"]);
    job.step(&["--", "sh", "-c", "set -e; exit 0"]);
    job.step(&["--name", "unit  test", "--", "false"]);
    job.step(&["--name", "unit test", "--", "true"]);
    let statuses = job.gitlab.with(|w| w.statuses(PIPELINE_MERGED));
    assert_eq!(statuses["herald/repeat › sh"].status, "failed", "{:#?}", statuses.keys());
    assert_eq!(statuses["herald/repeat › sh (2)"].status, "success");
    assert_eq!(statuses["herald/repeat › unit test"].status, "failed");
    assert_eq!(statuses["herald/repeat › unit test (2)"].status, "success");
    let retried = job.gitlab.with(|w| w.all_statuses().into_iter().filter(|s| s.retried).count());
    assert_eq!(retried, 0, "no status was superseded by a namesake");
}

/// Two long step names sharing their first 99 characters are cut to the same name: the second is
/// numbered as any repeated name, posts at once (no wait for the flush timeout), and a pass then
/// a fail stays a pass then a fail after the safety net.
#[test]
fn two_long_names_sharing_a_prefix_each_get_their_own_status() {
    let prefix = "p".repeat(99);
    let (first, second) = (format!("{prefix}-first"), format!("{prefix}-second"));
    let job = CiJob::start("long", "long:\n  script:\n    - make\n");
    let passed = run(job.herald().env("HERALD_FLUSH_TIMEOUT", "5s").args(["run", "--name", &first, "--", "true"]));
    assert_eq!(passed.code, Some(0), "{}", passed.stderr_text());
    let failed = run(job.herald().env("HERALD_FLUSH_TIMEOUT", "5s").args(["run", "--name", &second, "--", "false"]));
    assert_eq!(failed.code, Some(1));
    assert!(!failed.stderr_text().contains("did not answer"), "{}", failed.stderr_text());
    let cut = format!("herald/long › {prefix}…");
    let check = |when: &str| {
        let statuses = job.gitlab.with(|w| w.statuses(PIPELINE_MERGED));
        assert_eq!(statuses.len(), 2, "{when}: {:#?}", statuses.keys());
        assert_eq!(statuses[&cut].status, "success", "{when}");
        assert_eq!(statuses[&format!("{cut} (2)")].status, "failed", "{when}");
    };
    check("after the steps");
    let finished = run(job.herald().env("CI_JOB_STATUS", "failed").arg("finalize"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    check("after finalize");
    job.end("failed", false);
    assert_eq!(job.verdict(), "failed");
}

/// Every answer to a write is lost after GitLab applied it: each state is still posted once.
#[test]
fn a_lost_answer_does_not_post_a_final_state_twice() {
    let gitlab = GitLab::start();
    gitlab.with(|w| {
        w.faults = Faults::random(0.5, &[Fault::ResetAfterApplying], 7);
        w.faults.method = Some("POST");
    });
    for (i, code) in [0, 1, 0, 2, 0, 0].iter().enumerate() {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER).args([
            "run",
            "--name",
            &format!("s{i}"),
            "--",
            "sh",
            "-c",
            &format!("exit {code}"),
        ]));
        assert_eq!(finished.code, Some(*code), "{}", finished.stderr_text());
    }
    let all = gitlab.with(|w| w.all_statuses());
    for i in 0..6 {
        let name = format!("herald/lint › s{i}");
        let copies: Vec<&Job> = all.iter().filter(|s| s.name == name).collect();
        assert_eq!(copies.len(), 1, "{name}: {copies:#?}");
        assert_ne!(copies[0].status, "running", "{name}");
    }
}

/// `finalize` and `note --final` are what the templates rely on when GitLab is flaky: they retry.
#[test]
fn the_safety_net_holds_through_server_errors_and_resets() {
    // Seeds with many bits set: the stand-in's xorshift starts low (all faults) from small ones.
    for (seed, rate) in [(0x9e37_79b9_7f4a_7c15, 0.5), (0xc2b2_ae3d_27d4_eb4f, 0.5), (0x1656_67b1_9e37_79f9, 0.2)] {
        let job = CiJob::start("net", "net:\n  script:\n    - herald run --name a -- true\n");
        job.gitlab.with(|w| w.add_status(PIPELINE_MERGED, "herald/net › a", "running", &job.url));
        job.end("canceled", false);
        job.gitlab.with(|w| w.faults = Faults::random(rate, &[Fault::ServerError(502), Fault::Reset], seed));
        let finished = run(job.herald().env("CI_JOB_NAME", "herald-note").args(["note", "--final"]));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        assert_eq!(job.status("herald/net › a").status, "canceled");
    }
}

/// `--name` that is not UTF-8 must not stop the step: it runs, named lossily.
#[test]
fn a_name_that_is_not_utf8_still_runs_the_step() {
    use std::os::unix::ffi::OsStrExt;
    let finished = run(herald()
        .env("GITLAB_CI", "true")
        .arg("run")
        .arg("--name")
        .arg(std::ffi::OsStr::from_bytes(b"bad\xffname"))
        .args(["--", "sh", "-c", "exit 6"]));
    assert_eq!(finished.code, Some(6), "{}", finished.stderr_text());
    assert!(finished.stderr_text().contains("bad\u{FFFD}name failed (exit 6)"), "{}", finished.stderr_text());
}

// ---- Reading the configuration can never block publishing ----

/// `.gitlab-ci.yml` that is a FIFO (a read would wait forever) or a link to `/dev/zero` (a read
/// never ends): the step is still published promptly, under its job's name.
#[test]
fn a_configuration_that_never_ends_does_not_block_publishing() {
    for kind in ["fifo", "zero"] {
        let gitlab = GitLab::start();
        let checkout = TempDir::new("endless-config");
        let config = checkout.join(".gitlab-ci.yml");
        match kind {
            "fifo" => {
                let path = std::ffi::CString::new(config.to_str().unwrap()).unwrap();
                // SAFETY: a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
            }
            _ => std::os::unix::fs::symlink("/dev/zero", &config).unwrap(),
        }
        let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
            .env("CI_PROJECT_DIR", checkout.path())
            .env("HERALD_FLUSH_TIMEOUT", "20s")
            .args(["run", "--name", "unit", "--", "true"]));
        assert_eq!(finished.code, Some(0));
        assert!(finished.stderr_text().contains("not a regular file"), "{kind}: {}", finished.stderr_text());
        let status = gitlab.with(|w| w.statuses(PIPELINE_BRANCH).get("herald/lint › unit").cloned());
        assert_eq!(status.map(|s| s.status).as_deref(), Some("success"), "{kind}: {}", finished.stderr_text());
    }
}

/// Symlinks that loop back into the checkout: `rules: exists` globbing follows none of them.
#[test]
fn looping_symlinks_in_the_checkout_do_not_hang_globbing() {
    let checkout = TempDir::new("symlink-loop");
    std::fs::write(
        checkout.join(".gitlab-ci.yml"),
        "include:\n  - local: extra.yml\n    rules:\n      - exists: ['**/*.nothing']\nbuild:\n  script: [make]\n",
    )
    .unwrap();
    std::fs::write(checkout.join("extra.yml"), "extra:\n  script: [make]\n").unwrap();
    for name in ["a", "b", "c"] {
        std::os::unix::fs::symlink(".", checkout.join(name)).unwrap();
    }
    let finished = run(herald().args(["tasks", "--file"]).arg(checkout.join(".gitlab-ci.yml")));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(finished.stdout_text().contains("build") && !finished.stdout_text().contains("extra"));
}

/// A JUnit report that cannot be written: the one line names the file.
#[test]
fn a_junit_write_error_names_the_file() {
    let dir = TempDir::new("junit-error");
    let report = dir.join("missing-dir").join("junit.xml");
    let finished = run(herald().env("HERALD_JUNIT", &report).args(["run", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    assert!(finished.stderr_text().contains(report.to_str().unwrap()), "{}", finished.stderr_text());
}

/// Runs a step of 1.8 s whose live write claims the note (a slow create) while another writer's
/// note appears with a lower id; the step ends before the live write could list the notes again
/// and remove its own duplicate. Returns the notes left on MR !1.
fn claim_cut_off_by_the_steps_end(gitlab: &GitLab, command: &mut std::process::Command) -> (u64, Vec<Note>) {
    gitlab.with(|w| w.faults = Faults::always(Fault::Slow(Duration::from_millis(1500))).only("POST", "/notes"));
    let child = command
        .env("HERALD_MIN_UPDATE_INTERVAL", "0")
        .args(["run", "--name", "unit", "--", "sleep", "1.8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while !gitlab.requests().iter().any(|r| r.method == "POST" && r.path.ends_with("/notes")) {
        assert!(Instant::now() < until, "no claim was made");
        std::thread::sleep(Duration::from_millis(10));
    }
    let other = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nanother writer's\n"));
    gitlab.with(|w| w.faults = Faults::default());
    let finished = finish(child);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    (other, gitlab.with(|w| w.herald_notes(1)))
}

#[test]
fn a_live_write_cut_off_after_its_claim_leaves_no_duplicate_note() {
    // The step's final write must not go into the duplicate, nor leave it.
    let gitlab = GitLab::start();
    let (other, notes) = claim_cut_off_by_the_steps_end(
        &gitlab,
        &mut herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER),
    );
    assert_eq!(notes.iter().map(|n| n.id).collect::<Vec<_>>(), [other], "one note, the lowest id");
    assert!(notes[0].body.contains("✅ unit passed in"), "{}", notes[0].body);

    // A passing step with more to come leaves its final write to the next step, and still
    // removes the duplicate it created.
    let gitlab = GitLab::start();
    let checkout = TempDir::new("cut-claim");
    let config =
        "build:\n  script:\n    - herald run --name unit -- make\n    - herald run --name check -- make check\n";
    std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
    let mut command = herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
    command
        .env("CI_JOB_NAME", "build")
        .env("CI_JOB_ID", format!("77{}", std::process::id()))
        .env("CI_PROJECT_DIR", checkout.path());
    let (other, notes) = claim_cut_off_by_the_steps_end(&gitlab, &mut command);
    assert_eq!(notes.iter().map(|n| n.id).collect::<Vec<_>>(), [other], "one note, the lowest id");
}
