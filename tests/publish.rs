//! `herald run` publishing commit statuses to the GitLab stand-in: the states, the right commit
//! and pipeline for each kind of pipeline, resilience to faults, bounded time, and no token leaks.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::gitlab::*;
use crate::support::{finish, herald_in_ci, run, send_signal, wait_until, PipelineKind, TempDir};

const NAME_UNIT: &str = "herald/lint › unit";

fn status_of(gitlab: &GitLab, pipeline: u64, name: &str) -> Option<Job> {
    gitlab.with(|world| world.statuses(pipeline).get(name).cloned())
}

/// Runs a step that waits for `go` to appear, so the test can see the `running` status first.
fn start_held_step(gitlab: &GitLab, kind: PipelineKind, dir: &TempDir, exit: i32) -> std::process::Child {
    let go = dir.join("go");
    let script = format!("while [ ! -e {} ]; do sleep 0.02; done; exit {exit}", go.display());
    herald_in_ci(gitlab, kind, TOKEN_DEVELOPER)
        .args(["run", "--name", "unit", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_passing_step_goes_running_then_success() {
    let gitlab = GitLab::start();
    let dir = TempDir::new("happy");
    let herald = start_held_step(&gitlab, PipelineKind::Branch, &dir, 0);
    wait_until("the running status", || {
        status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).is_some_and(|job| job.status == "running")
    });
    std::fs::write(dir.join("go"), "").unwrap();
    let finished = finish(herald);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());

    let status = status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).expect("a status");
    assert_eq!(status.status, "success");
    assert_eq!(status.reference, "feature");
    assert!(status.description.as_deref().unwrap().starts_with("passed in "), "{status:?}");
    assert_eq!(status.target_url.as_deref(), Some("https://gitlab.example.com/group/app/-/jobs/77"));

    let posts: Vec<Recorded> = gitlab.requests().into_iter().filter(|r| r.method == "POST").collect();
    let states: Vec<String> = posts.iter().map(|r| r.param("state").unwrap()).collect();
    assert_eq!(states, ["running", "success"], "one post per state, never repeated");
    for post in &posts {
        assert_eq!(post.path, format!("/projects/{PROJECT_ID}/statuses/{SHA_FEATURE}"));
        assert_eq!(post.param("pipeline_id").as_deref(), Some("1001"));
        assert_eq!(post.param("ref").as_deref(), Some("feature"), "branch pipelines send their branch");
        assert_eq!(post.headers.get("private-token").map(String::as_str), Some(TOKEN_DEVELOPER));
    }
}

#[test]
fn a_failing_step_ends_failed_with_its_exit_code() {
    let gitlab = GitLab::start();
    let dir = TempDir::new("failing");
    let herald = start_held_step(&gitlab, PipelineKind::Branch, &dir, 3);
    wait_until("the running status", || status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).is_some());
    std::fs::write(dir.join("go"), "").unwrap();
    assert_eq!(finish(herald).code, Some(3));
    let status = status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).unwrap();
    assert_eq!(status.status, "failed");
    assert!(status.description.unwrap().starts_with("failed (exit 3) after "));
}

#[test]
fn a_step_stopped_by_sigterm_ends_canceled() {
    let gitlab = GitLab::start();
    let dir = TempDir::new("cancel");
    let herald = start_held_step(&gitlab, PipelineKind::Branch, &dir, 0);
    wait_until("the running status", || status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).is_some());
    send_signal(herald.id(), libc::SIGTERM);
    assert_eq!(finish(herald).code, Some(143));
    let status = status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).unwrap();
    assert_eq!(status.status, "canceled");
    assert!(status.description.unwrap().starts_with("canceled (SIGTERM) after "));
}

#[test]
fn merge_request_pipelines_get_their_statuses_in_the_running_pipeline() {
    for (kind, sha, pipeline) in [
        (PipelineKind::Detached, SHA_FEATURE, PIPELINE_DETACHED),
        (PipelineKind::MergedResults, SHA_MERGE, PIPELINE_MERGED),
    ] {
        let gitlab = GitLab::start();
        let finished = run(herald_in_ci(&gitlab, kind, TOKEN_DEVELOPER).args(["run", "--name", "unit", "--", "true"]));
        assert_eq!(finished.code, Some(0), "{kind:?}: {}", finished.stderr_text());
        let status = status_of(&gitlab, pipeline, NAME_UNIT)
            .unwrap_or_else(|| panic!("{kind:?}: no status in pipeline {pipeline}"));
        assert_eq!(status.status, "success");
        assert_eq!(status.sha, sha);
        for post in gitlab.requests().into_iter().filter(|r| r.method == "POST" && r.path.contains("/statuses/")) {
            assert_eq!(
                post.param("ref"),
                None,
                "{kind:?}: CI_COMMIT_REF_NAME is the source branch, not the pipeline's ref"
            );
            assert_eq!(post.param("pipeline_id"), Some(pipeline.to_string()));
        }
        // Nothing landed anywhere else, and no external pipeline was created.
        assert_eq!(gitlab.with(|w| w.all_statuses().len()), 1, "{kind:?}");
        assert_eq!(gitlab.with(|w| w.pipelines.len()), 4, "{kind:?}");
    }
}

#[test]
fn every_status_ends_final_through_a_thirty_percent_fault_rate() {
    let gitlab = GitLab::start();
    let kinds = [
        Fault::ServerError(500),
        Fault::ServerError(502),
        Fault::ServerError(503),
        Fault::Lock,
        Fault::RateLimited { retry_after_secs: 1 },
        Fault::Reset,
        Fault::ResetAfterApplying,
        Fault::CutBody,
    ];
    gitlab.with(|world| world.faults = Faults::random(0.3, &kinds, 0x5eed));
    let steps: Vec<(String, i32)> =
        (0..12).map(|i| (format!("step-{i}"), if i % 3 == 0 { i + 1 } else { 0 })).collect();
    let children: Vec<_> = steps
        .iter()
        .map(|(name, code)| {
            herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
                .args(["run", "--name", name, "--", "sh", "-c", &format!("sleep 0.2; exit {code}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for ((name, code), child) in steps.iter().zip(children) {
        let finished = finish(child);
        assert_eq!(finished.code, Some(*code), "{name}: the exit code is the step's, whatever the server does");
        assert!(!finished.stderr_text().contains("not published"), "{name}: {}", finished.stderr_text());
    }
    let statuses = gitlab.with(|world| world.statuses(PIPELINE_MERGED));
    for (name, code) in &steps {
        let status = &statuses[&format!("herald/lint › {name}")];
        assert_eq!(status.status, if *code == 0 { "success" } else { "failed" }, "{name}");
    }
    assert_eq!(statuses.len(), steps.len());
    assert!(gitlab.requests().iter().any(|r| r.fault.is_some()), "faults were injected");
}

#[test]
fn a_hanging_server_costs_at_most_the_flush_timeout_and_never_delays_the_step() {
    let gitlab = GitLab::start();
    gitlab.with(|world| world.faults = Faults::always(Fault::Hang));
    let dir = TempDir::new("hang");
    let ran = dir.join("ran");
    let started = Instant::now();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_FLUSH_TIMEOUT", "2s")
        .args(["run", "--name", "unit", "--", "sh", "-c", &format!("touch {}; exit 4", ran.display())]));
    let took = started.elapsed();
    assert!(ran.exists(), "the step ran although GitLab never answered");
    assert_eq!(finished.code, Some(4));
    // The server would hang for two minutes; herald gives up 2 s after the step ended.
    assert!(took < Duration::from_secs(12), "took {took:?}");
    let stderr = finished.stderr_text();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("herald: status 'herald/lint › unit' not published: "))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("2.0s (HERALD_FLUSH_TIMEOUT)"), "{stderr}");
}

#[test]
fn a_slow_server_is_waited_for_within_the_flush_timeout() {
    let gitlab = GitLab::start();
    gitlab.with(|world| world.faults = Faults::always(Fault::Slow(Duration::from_millis(1500))));
    let finished =
        run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER).args(["run", "--name", "unit", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    assert_eq!(
        finished.stderr_text().lines().filter(|l| l.starts_with("herald:")).count(),
        0,
        "{}",
        finished.stderr_text()
    );
    assert_eq!(status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).unwrap().status, "success");
}

#[test]
fn refusals_get_one_line_naming_the_likely_cause() {
    let cases = [
        (TOKEN_EXPIRED, PipelineKind::Branch, "GitLab rejected HERALD_TOKEN (401: invalid_token: Token is expired."),
        (TOKEN_REVOKED, PipelineKind::Branch, "GitLab rejected HERALD_TOKEN (401: invalid_token: Token was revoked."),
        (TOKEN_READ_API, PipelineKind::Branch, "HERALD_TOKEN lacks the api scope"),
        (TOKEN_REPORTER, PipelineKind::Branch, "needs at least the Developer role"),
        (TOKEN_DEVELOPER, PipelineKind::ProtectedBranch, "Maintainer to post to a protected branch"),
        (TOKEN_OUTSIDER, PipelineKind::Branch, "project 42 was not found, or the token's user cannot see it"),
    ];
    for (token, kind, expected) in cases {
        let gitlab = GitLab::start();
        let finished =
            run(herald_in_ci(&gitlab, kind, token).args(["run", "--name", "unit", "--", "sh", "-c", "exit 5"]));
        assert_eq!(finished.code, Some(5), "{expected}");
        let stderr = finished.stderr_text();
        let herald_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("herald:")).collect();
        assert_eq!(herald_lines.len(), 1, "{stderr}");
        assert!(herald_lines[0].contains(expected), "expected {expected:?} in {stderr}");
        assert!(!stderr.contains(token), "the token leaked: {stderr}");
        let posts = gitlab.requests().iter().filter(|r| r.method == "POST").count();
        assert_eq!(posts, 1, "{expected}: a refusal is not retried");
    }
}

#[test]
fn the_token_never_appears_even_when_the_server_echoes_it() {
    let gitlab = GitLab::start();
    gitlab.with(|world| world.faults = Faults::always(Fault::EchoHeaders));
    // Long enough for at least one answer on a loaded machine: the last one is what gets reported.
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_FLUSH_TIMEOUT", "6s")
        .args(["run", "--name", "unit", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    assert!(gitlab.requests()[0].headers.contains_key("private-token"));
    let output = format!("{}{}", finished.stdout_text(), finished.stderr_text());
    assert!(output.contains("[MASKED]"), "the echo was reported, masked: {output}");
    assert!(!output.contains(TOKEN_DEVELOPER), "{output}");
}

#[test]
fn without_a_token_the_step_runs_and_one_line_says_how_to_fix_it() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER).env_remove("HERALD_TOKEN").args([
        "run",
        "--",
        "sh",
        "-c",
        "echo out; exit 2",
    ]));
    assert_eq!(finished.code, Some(2));
    assert_eq!(finished.stdout_text(), "out\n");
    let notes: Vec<String> =
        finished.stderr_text().lines().filter(|l| l.starts_with("herald:")).map(str::to_owned).collect();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].starts_with("herald: not publishing: HERALD_TOKEN is not set; add a project access token"));
    assert!(gitlab.requests().is_empty());
}

#[test]
fn outside_ci_nothing_is_published_by_default() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env_remove("GITLAB_CI")
        .args(["run", "--", "true"]));
    assert_eq!((finished.code, finished.stderr_text()), (Some(0), String::new()));
    assert!(gitlab.requests().is_empty());
}

#[test]
fn dry_run_prints_the_requests_and_sends_nothing() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_DRY_RUN", "1")
        .args(["run", "--name", "unit", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    let stderr = finished.stderr_text();
    let printed: Vec<&str> = stderr.lines().filter(|l| l.starts_with("herald (dry run): POST ")).collect();
    // `running` is skipped when the step ended before it went out; either way success comes last.
    assert!(matches!(printed.len(), 1 | 2), "{stderr}");
    assert!(printed.iter().all(|line| line.contains(&format!("/projects/42/statuses/{SHA_FEATURE} {{"))), "{stderr}");
    assert!(printed.last().unwrap().contains("\"state\":\"success\""), "{stderr}");
    if printed.len() == 2 {
        assert!(printed[0].contains("\"state\":\"running\""), "{stderr}");
    }
    assert!(!stderr.contains(TOKEN_DEVELOPER));
    assert!(gitlab.requests().is_empty());
}

#[test]
fn a_command_that_cannot_start_is_published_as_failed() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER).args([
        "run",
        "--name",
        "unit",
        "--",
        "no-such-tool-x",
    ]));
    assert_eq!(finished.code, Some(127));
    let status = status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).unwrap();
    assert_eq!(
        (status.status.as_str(), status.description.as_deref()),
        ("failed", Some("could not start: command not found"))
    );
}

#[test]
fn rate_limits_are_waited_out_as_the_server_asks() {
    let gitlab = GitLab::start();
    // Every POST is rate limited with Retry-After: 1 until the test lifts it.
    gitlab.with(|world| {
        world.faults = Faults::always(Fault::RateLimited { retry_after_secs: 1 });
        world.faults.method = Some("POST");
    });
    let child = herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .args(["run", "--name", "unit", "--", "true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("two rate-limited attempts", || gitlab.requests().len() >= 2);
    let attempts = gitlab.requests();
    gitlab.with(|world| world.faults = Faults::default());
    let finished = finish(child);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).unwrap().status, "success");
    let waited = attempts[1].at - attempts[0].at;
    assert!(waited >= Duration::from_millis(950), "retried after {waited:?}, before the Retry-After of 1 s");
}

#[test]
fn requests_go_through_the_configured_proxy_unless_no_proxy_says_otherwise() {
    // The stand-in acts as the proxy; GitLab's own name does not even resolve.
    let proxy = GitLab::start();
    let proxy_url = proxy.api_url().trim_end_matches("/api/v4").to_owned();
    let through_proxy = |allow: bool| {
        let mut command = herald_in_ci(&proxy, PipelineKind::Branch, TOKEN_DEVELOPER);
        command
            .env("CI_API_V4_URL", "http://gitlab.invalid/api/v4")
            .env("HTTPS_PROXY", &proxy_url)
            .env("HTTP_PROXY", &proxy_url)
            .args(["run", "--name", "unit", "--", "true"]);
        if allow {
            command.env("HERALD_ALLOW_HTTP", "1");
        }
        run(&mut command)
    };
    // Plain http:// across a network: the proxy would read the token. Refused unless allowed.
    let refused = through_proxy(false);
    assert_eq!(refused.code, Some(0), "the step still runs");
    assert!(refused.stderr_text().contains("plain http:// to gitlab.invalid"), "{}", refused.stderr_text());
    assert!(proxy.requests().is_empty(), "nothing sent");
    let finished = through_proxy(true);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let requests = proxy.requests();
    let (tunnels, through): (Vec<_>, Vec<_>) = requests.iter().partition(|r| r.method == "CONNECT");
    assert!(!tunnels.is_empty() && !through.is_empty(), "{requests:?}");
    assert!(through.iter().all(|r| r.proxied_host.as_deref() == Some("gitlab.invalid:80")), "{requests:?}");
    assert!(tunnels.iter().all(|r| !r.headers.contains_key("private-token")), "the proxy itself never sees the token");
    assert_eq!(status_of(&proxy, PIPELINE_BRANCH, NAME_UNIT).unwrap().status, "success");

    // NO_PROXY: the same dead proxy is bypassed for the GitLab host.
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "127.0.0.1")
        .args(["run", "--name", "unit", "--", "true"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(gitlab.requests().iter().all(|r| r.proxied_host.is_none()));
    assert_eq!(status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).unwrap().status, "success");
}

#[test]
fn a_failed_step_publishes_its_masked_output_tail_when_asked() {
    let gitlab = GitLab::start();
    let dir = TempDir::new("tail");
    let report = dir.join("junit.xml");
    let script = "for i in 1 2 3 4 5 6 7 8; do echo \"compiling $i\"; done; \
                  echo \"error: deploy with $DEPLOY_TOKEN refused\" >&2; echo 'aborting'; \
                  sleep 300 & exit 3";
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_FAILURE_TAIL", "3")
        .env("HERALD_JUNIT", &report)
        .env("DEPLOY_TOKEN", "s3cr3t-deploy-value")
        .args(["run", "--name", "deploy", "--", "sh", "-c", script]));
    assert_eq!(finished.code, Some(3), "{}", finished.stderr_text());
    // The output itself passes through unchanged (secrets and all: the job log is GitLab's to mask).
    let expected: String = (1..=8).map(|i| format!("compiling {i}\n")).collect::<String>() + "aborting\n";
    assert_eq!(finished.stdout_text(), expected);
    assert!(finished.stderr_text().contains("error: deploy with s3cr3t-deploy-value refused"));

    let status = status_of(&gitlab, PIPELINE_BRANCH, "herald/lint › deploy").unwrap();
    let description = status.description.unwrap();
    assert!(description.starts_with("failed (exit 3) after "), "{description}");
    // Of the last 3 lines, the status shows the error and what follows it (anchored on the error);
    // stdout and stderr interleave in arrival order, which the test cannot fix.
    let excerpt = description.split_once(": ").unwrap().1;
    assert!(excerpt.starts_with("error: deploy with [MASKED] refused"), "{description}");
    // The JUnit report has all three.
    let junit = std::fs::read_to_string(&report).unwrap();
    for line in ["aborting", "compiling 8", "error: deploy with [MASKED] refused"] {
        assert!(junit.contains(&format!("\n{line}")), "{junit}");
    }
    assert!(!junit.contains("s3cr3t") && !description.contains("s3cr3t"));
}

#[test]
fn a_step_printing_megabytes_keeps_its_output_whole_and_its_last_lines() {
    // Through pipes: most of each chunk is dropped in the kernel; only its tail is read. With 300
    // lines kept, the tail read from a chunk is bigger than herald's buffer: read in pieces.
    for tail in ["2", "300"] {
        let gitlab = GitLab::start();
        let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
            .env("HERALD_FAILURE_TAIL", tail)
            .args(["run", "--name", "deploy", "--", "sh", "-c", "seq 300000; printf 'last line'; exit 5"]));
        assert_eq!(finished.code, Some(5), "{}", finished.stderr_text());
        let expected: String = (1..=300_000).map(|i| format!("{i}\n")).collect::<String>() + "last line";
        assert!(finished.stdout_text() == expected, "tail {tail}: the output passed through changed");
        let description = status_of(&gitlab, PIPELINE_BRANCH, "herald/lint › deploy").unwrap().description.unwrap();
        assert!(description.ends_with(" ⏎ 299999 ⏎ 300000 ⏎ last line") || tail == "2", "{description}");
        assert!(description.ends_with(": 300000 ⏎ last line") || tail != "2", "{description}");
    }
}

#[test]
fn the_excerpt_is_kept_when_the_output_is_a_file_too() {
    // Pipes are duplicated in the kernel (tee(2)); a file or a terminal is copied through herald.
    let gitlab = GitLab::start();
    let dir = TempDir::new("tail-file");
    let log = dir.join("out.log");
    let status = herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_FAILURE_TAIL", "2")
        .args(["run", "--name", "deploy", "--", "sh", "-c", "seq 1000; echo done; exit 5"])
        .stdout(std::fs::File::create(&log).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(5));
    let expected: String = (1..=1000).map(|i| format!("{i}\n")).collect::<String>() + "done\n";
    assert_eq!(std::fs::read_to_string(&log).unwrap(), expected);
    let description = status_of(&gitlab, PIPELINE_BRANCH, "herald/lint › deploy").unwrap().description.unwrap();
    assert!(description.ends_with(": 1000 ⏎ done"), "{description}");
}

#[test]
fn passing_steps_publish_no_excerpt() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_FAILURE_TAIL", "5")
        .args(["run", "--name", "unit", "--", "sh", "-c", "echo all good"]));
    assert_eq!((finished.code, finished.stdout_text().as_str()), (Some(0), "all good\n"));
    assert!(status_of(&gitlab, PIPELINE_BRANCH, NAME_UNIT).unwrap().description.unwrap().starts_with("passed in "));
}

#[test]
fn trace_logging_shows_the_work_and_never_the_token() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("HERALD_LOG", "trace")
        .args(["run", "--name", "unit", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    let log = finished.stderr_text();
    assert!(log.contains(&format!("herald[debug]: POST /projects/42/statuses/{SHA_MERGE} → 201 in ")), "{log}");
    assert!(log.contains("herald[trace]: POST /projects/42/statuses/"), "request bodies at trace: {log}");
    assert!(log.contains("herald[info]: status 'herald/lint › unit' is success"), "{log}");
    assert!(log.contains("herald[info]: note, final write: Ok(Written)"), "{log}");
    assert!(!log.contains(TOKEN_DEVELOPER));

    // A server echoing the request headers, traced: the echo is logged, masked.
    let echoing = GitLab::start();
    echoing.with(|world| world.faults = Faults::always(Fault::EchoHeaders));
    let finished = run(herald_in_ci(&echoing, PipelineKind::Branch, TOKEN_DEVELOPER)
        .env("HERALD_LOG", "trace")
        .env("HERALD_FLUSH_TIMEOUT", "1s")
        .args(["run", "--name", "unit", "--", "true"]));
    let log = finished.stderr_text();
    assert!(log.contains("answer: upstream error, request headers:") && log.contains("[MASKED]"), "{log}");
    assert!(!log.contains(TOKEN_DEVELOPER), "{log}");
}

#[test]
fn an_unknown_log_filter_is_a_configuration_error() {
    let finished = run(crate::support::herald().env("HERALD_LOG", "loud").args(["run", "--", "true"]));
    assert_eq!(finished.code, Some(125));
    assert_eq!(
        finished.stderr_text(),
        "herald: HERALD_LOG must be one of error, warn, info, debug, trace (it is 'loud')\n"
    );
}

#[test]
fn the_not_publishing_hint_is_given_once_per_job() {
    let gitlab = GitLab::start();
    let job_id = format!("88{}", std::process::id());
    let step = |job: &str, args: &[&str]| {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
            .env_remove("HERALD_TOKEN")
            .env("CI_JOB_ID", job)
            .args(args));
        finished.stderr_text().lines().filter(|l| l.starts_with("herald: not publishing:")).count()
    };
    assert_eq!(step(&job_id, &["run", "--", "true"]), 1, "the job's first step says why");
    assert_eq!(step(&job_id, &["run", "--", "true"]), 0, "its next steps do not repeat it");
    assert_eq!(step(&job_id, &["finalize"]), 0);
    assert_eq!(step(&format!("{job_id}1"), &["run", "--", "true"]), 1, "another job is told");
    // finalize ended the job and forgot what it was told.
    assert_eq!(step(&job_id, &["run", "--", "true"]), 1);
    step(&job_id, &["finalize"]);
    step(&format!("{job_id}1"), &["finalize"]);
}
