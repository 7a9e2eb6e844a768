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
        let script = format!("printf '%s%s tail\\n' \"$(head -c {offset} /dev/zero | tr '\\0' x)\" \"$DEPLOY_TOKEN\"; exit 1");
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
                assert!(!published.contains(window), "'{window}' of the secret published at offset {offset}: {published}");
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
    let description =
        gitlab.with(|w| w.statuses(PIPELINE_BRANCH)["herald/lint › echo"].clone()).description.unwrap();
    let junit = std::fs::read_to_string(&report).unwrap();
    for published in [&description, &junit] {
        assert!(!published.contains(&escaped) && !published.contains(&encoded), "{published}");
        assert!(published.contains("json: [MASKED]") && published.contains("url: [MASKED]"), "{published}");
    }
}
