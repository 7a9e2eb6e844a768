//! Seconds-long runs of the scale, fault and signal campaigns (examples/campaign.rs runs them full
//! size for docs/benchmarks.md and docs/reliability.md): the same code, the real binary, fewer jobs.

use std::path::Path;

use crate::support::campaign::{self, Outcome, Scenario};
use crate::support::gitlab::{Fault, Faults};
use crate::support::{herald, run, TempDir};

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_herald"))
}

fn assert_nothing_lost(what: &str, outcome: &Outcome) {
    assert_eq!(outcome.exit_codes_kept, outcome.steps, "{what}: exit codes: {:?}", outcome.problem);
    assert_eq!(outcome.statuses_final, outcome.steps, "{what}: final statuses: {:?}", outcome.problem);
    assert!(outcome.note_correct, "{what}: the note: {:?}", outcome.problem);
}

#[test]
fn concurrent_jobs_keep_every_exit_code_and_end_with_one_true_note() {
    let dir = TempDir::new("scale");
    let scenario = Scenario { step_ms: (20, 300), ..Scenario::new(12, 3) };
    let outcome = campaign::run_pipeline(binary(), dir.path(), &scenario);
    assert_nothing_lost("12 jobs × 3 steps", &outcome);
    assert!(outcome.first_totals_kept, "the first version's totals are the last's");
    // Each note created may e-mail every participant: the goal is one. Two writers may still
    // or three list in the same moment, never all of them (9 of 10 when the window was two
    // requests wide).
    assert!(outcome.notes_created <= 3, "{} notes created", outcome.notes_created);
    eprintln!(
        "12 jobs × 3 steps: {:.1} requests per step, {} notes created ({:?})",
        outcome.requests_per_step(),
        outcome.notes_created,
        outcome.by_route
    );
}

/// The latency campaign's smoke run (issue #19): GitLab 20 ms away over HTTPS loses nothing, and
/// the campaign can tell when each step started and ended (what its table is made of).
#[test]
fn gitlab_at_a_distance_over_tls_loses_nothing() {
    if !crate::support::needs("openssl") {
        return;
    }
    let dir = TempDir::new("latency");
    let scenario = Scenario {
        round_trip: std::time::Duration::from_millis(20),
        tls: true,
        step_ms: (20, 200),
        ..Scenario::new(2, 2)
    };
    let outcome = campaign::run_pipeline(binary(), dir.path(), &scenario);
    assert_nothing_lost("2 jobs × 2 steps, 20 ms away over HTTPS", &outcome);
    let last = outcome.after_end_last;
    assert!(last.median > std::time::Duration::ZERO, "no step times recorded: {outcome:?}");
    eprintln!("20 ms over HTTPS: a job's last step adds {:?} (p95 {:?})", last.median, last.p95);
}

#[test]
fn faults_cost_time_but_lose_nothing() {
    let server_errors = [Fault::ServerError(500), Fault::ServerError(502), Fault::ServerError(503)];
    let faults = [
        ("5xx on 30%", Faults::random(0.3, &server_errors, 3)),
        ("resets on 30%", Faults::random(0.3, &[Fault::Reset, Fault::ResetAfterApplying], 4)),
        ("429 storm", Faults::random(0.5, &[Fault::RateLimited { retry_after_secs: 1 }], 5)),
        ("bodies cut short", Faults::random(0.3, &[Fault::CutBody], 6)),
    ];
    for (what, faults) in faults {
        let dir = TempDir::new("faults");
        let scenario = Scenario { step_ms: (20, 200), faults: Some(faults), ..Scenario::new(6, 2) };
        assert_nothing_lost(what, &campaign::run_pipeline(binary(), dir.path(), &scenario));
    }
}

#[test]
fn an_unknown_api_host_is_not_retried_and_the_step_keeps_its_code() {
    // A flush timeout longer than the test's patience: retrying until it would fail the run.
    let finished = run(herald()
        .env("HERALD_MODE", "always")
        .env("HERALD_TOKEN", "test-token-developer-0001")
        .env("CI_PROJECT_ID", "42")
        .env("CI_COMMIT_SHA", "abc")
        .env("HERALD_API_URL", "http://gitlab.invalid/api/v4")
        .env("HERALD_ALLOW_HTTP", "1")
        .env("HERALD_FLUSH_TIMEOUT", "5m")
        .args(["run", "--", "sh", "-c", "exit 4"]));
    assert_eq!(finished.code, Some(4));
    let stderr = finished.stderr_text();
    assert!(stderr.contains("unknown host") && stderr.contains("check CI_API_V4_URL"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn signals_in_the_middle_of_steps_leave_nothing_behind() {
    let dir = TempDir::new("signals");
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
        let outcome = herald_campaigns::signals::signal_campaign(binary(), dir.path(), signal, 2, signal as u64);
        let runs = outcome.runs - outcome.before_start;
        assert_eq!(outcome.codes_right, runs, "signal {signal}: {:?}", outcome.problem);
        assert_eq!(outcome.canceled, runs, "signal {signal}: {:?}", outcome.problem);
        assert_eq!(outcome.orphans, 0, "signal {signal}");
    }
}

#[test]
fn the_safety_net_closes_lost_final_states_through_faults_and_never_worsens_the_verdict() {
    use crate::support::trust_campaign::{safety_net, Net};
    let server_errors = [Fault::ServerError(500), Fault::ServerError(502), Fault::ServerError(503)];
    for net in [Net::Finalize, Net::NoteFinal] {
        let dir = TempDir::new("safety-net");
        let faults = Faults::random(0.3, &server_errors, 0x5eed_1234_5678);
        let outcome = safety_net(binary(), dir.path(), net, &faults, 1, 0.6, 7);
        assert_eq!(outcome.closed, outcome.statuses, "{net:?}: {:?}", outcome.problem);
        assert_eq!(
            (outcome.wrong, outcome.made_worse, outcome.note_count_wrong),
            (0, 0, 0),
            "{net:?}: {:?}",
            outcome.problem
        );
    }
}

#[test]
fn no_leftover_outlives_herald_or_holds_its_output() {
    use crate::support::trust_campaign::{leftovers, LEFTOVERS};
    for kind in LEFTOVERS {
        let dir = TempDir::new("leftovers");
        let outcome = leftovers(binary(), dir.path(), kind, 1);
        assert_eq!((outcome.alive, outcome.pipes_held), (0, 0), "{kind:?}: {:?}", outcome.problem);
        assert!(outcome.problem.is_none(), "{kind:?}: {:?}", outcome.problem);
    }
}
