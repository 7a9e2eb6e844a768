//! The scale, fault and signal campaigns, full size (docs/benchmarks.md, docs/reliability.md).
//! The test suite runs seconds-long versions of the same code (tests/campaign.rs).
//!
//!     cargo build --release && cargo run --release --example campaign -- scale   # STEP_MS=1000-10000
//!     cargo run --release --example campaign -- faults
//!     cargo run --release --example campaign -- signals
//!     cargo run --release --example campaign -- safety-net   # TRIALS=10
//!     cargo run --release --example campaign -- notes        # JOBS=8 TRIALS=50
//!     cargo run --release --example campaign -- leftovers    # RUNS=20
//!     cargo run --release --example campaign -- latency      # JOBS=10 STEPS=3 SCALE=200 RTTS=0,20,50,150: GitLab that far away, HTTPS
//!
//! Each prints a Markdown table. HERALD_BIN names the herald to run (default target/release/herald);
//! JOBS, STEPS, RUNS, DESIGN (herald or naive) and FAULT (part of a fault's name) size and narrow
//! the runs; CAMPAIGN_LOGS=<dir>
//! keeps every step's herald log (debug level) there, named by the time herald added to the step.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use herald_campaigns::pipeline::{self as campaign, Design, Outcome, Scenario};
use herald_campaigns::{signals, trust as trust_campaign};
use herald_standin::{Fault, Faults};

fn main() {
    let herald = std::env::var_os("HERALD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/herald"));
    assert!(herald.exists(), "{} not found: cargo build --release first, or set HERALD_BIN", herald.display());
    let work = std::env::temp_dir().join(format!("herald-campaign-{}", std::process::id()));
    let what = std::env::args().nth(1).unwrap_or_default();
    let number = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    match what.as_str() {
        "scale" => {
            let (low, high) = std::env::var("STEP_MS")
                .ok()
                .and_then(|range| {
                    let (low, high) = range.split_once('-')?;
                    Some((low.parse().ok()?, high.parse().ok()?))
                })
                .unwrap_or((1000, 10_000));
            scale(&herald, &work, number("JOBS", 200), number("STEPS", 5), (low, high))
        }
        "faults" => faults(&herald, &work, number("JOBS", 30), number("STEPS", 3)),
        "signals" => signals(&herald, &work, number("RUNS", 25)),
        "safety-net" => safety_net(&herald, &work, number("TRIALS", 10)),
        "notes" => notes(&herald, &work, number("JOBS", 8), number("TRIALS", 50)),
        "leftovers" => leftovers(&herald, &work, number("RUNS", 20)),
        "latency" => latency(&herald, &work, number("JOBS", 10), number("STEPS", 3)),
        _ => {
            eprintln!(
                "usage: campaign scale|faults|signals|safety-net|notes|leftovers|latency   (JOBS, STEPS, RUNS, TRIALS, \
                 HERALD_BIN in the environment)"
            );
            std::process::exit(2);
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}

fn ms(duration: Duration) -> String {
    format!("{:.0} ms", duration.as_secs_f64() * 1000.0)
}

fn scale(herald: &std::path::Path, work: &std::path::Path, jobs: usize, steps: usize, step_ms: (u64, u64)) {
    let (low, high) = step_ms;
    println!(
        "{jobs} concurrent jobs × {steps} steps (each step sleeps {low}–{high} ms), one merged-results pipeline, MR !1,"
    );
    println!("notes_create limit 300/min (self-managed default), stand-in on loopback.\n");
    println!("| design | requests | per step | by kind | 429s | note final after last step | note size | note correct | wall |");
    println!("|---|---:|---:|---|---:|---:|---:|---|---:|");
    let designs = match std::env::var("DESIGN").as_deref() {
        Ok("herald") => vec![Design::Herald],
        Ok("naive") => vec![Design::Naive],
        _ => vec![Design::Herald, Design::Naive],
    };
    for design in designs {
        let scenario = Scenario { design, step_ms, ..Scenario::new(jobs, steps) };
        let started = Instant::now();
        let outcome = campaign::run_pipeline(herald, &work.join(format!("{design:?}")), &scenario);
        let methods: Vec<String> = outcome.by_route.iter().map(|(m, n)| format!("{m} {n}")).collect();
        println!(
            "| {design:?} | {} | {:.1} | {} | {} | {} | {} KB | {} | {:.0} s |",
            outcome.requests,
            outcome.requests_per_step(),
            methods.join(", "),
            outcome.answered_429,
            outcome.note_final_after.map_or("never (note wrong)".into(), ms),
            outcome.note_bytes / 1024,
            if outcome.note_correct {
                "yes".to_owned()
            } else {
                format!("**no**: {}", outcome.problem.clone().unwrap_or_default())
            },
            started.elapsed().as_secs_f64()
        );
    }
}

fn faults(herald: &std::path::Path, work: &std::path::Path, jobs: usize, steps: usize) {
    let server_errors = [Fault::ServerError(500), Fault::ServerError(502), Fault::ServerError(503)];
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("none", Scenario::new(jobs, steps)),
        ("5xx on 10% of requests", with_faults(jobs, steps, Faults::random(0.1, &server_errors, 11))),
        ("5xx on 30%", with_faults(jobs, steps, Faults::random(0.3, &server_errors, 12))),
        ("5xx on 50%", with_faults(jobs, steps, Faults::random(0.5, &server_errors, 13))),
        (
            "connection resets on 30% (half after GitLab applied the request)",
            with_faults(jobs, steps, Faults::random(0.3, &[Fault::Reset, Fault::ResetAfterApplying], 14)),
        ),
        (
            "429 storm: 50% with Retry-After: 1",
            with_faults(jobs, steps, Faults::random(0.5, &[Fault::RateLimited { retry_after_secs: 1 }], 15)),
        ),
        (
            "429 storm, 5 s flush budget (HERALD_FLUSH_TIMEOUT=5s)",
            Scenario {
                flush_timeout: "5s",
                ..with_faults(jobs, steps, Faults::random(0.5, &[Fault::RateLimited { retry_after_secs: 1 }], 19))
            },
        ),
        (
            "server hangs on 5% (10 s request timeout)",
            with_faults(jobs, steps, Faults::random(0.05, &[Fault::Hang], 16)),
        ),
        ("closes mid-body on 30%", with_faults(jobs, steps, Faults::random(0.3, &[Fault::CutBody], 17))),
        (
            "lost answers: 30% of requests applied, then the connection reset",
            with_faults(jobs, steps, Faults::random(0.3, &[Fault::ResetAfterApplying], 18)),
        ),
        (
            "DNS failure (unresolvable API host), 3 s flush timeout",
            Scenario {
                api_url: Some("http://gitlab.invalid/api/v4".into()),
                flush_timeout: "3s",
                ..Scenario::new(jobs, steps)
            },
        ),
    ];
    println!("{jobs} concurrent jobs × {steps} steps each, one pipeline and note, per fault.\n");
    println!(
        "| fault | exit codes kept | statuses final | steps with 2+ final statuses | note correct | after the .post job | notes created | first version's totals kept | added per step (median / max) | requests per step |"
    );
    println!("|---|---:|---:|---:|---|---|---:|---|---:|---:|");
    let only = std::env::var("FAULT").unwrap_or_default();
    for (name, scenario) in scenarios.into_iter().filter(|(name, _)| name.contains(&only)) {
        let outcome: Outcome = campaign::run_pipeline(herald, &work.join(name.replace(' ', "-")), &scenario);
        let note = if scenario.api_url.is_some() {
            "— (unreachable)".to_owned()
        } else if outcome.note_correct {
            "yes".to_owned()
        } else {
            format!("**no**: {}", outcome.problem.clone().unwrap_or_default())
        };
        let after_post = match outcome.note_correct_after_post {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        println!(
            "| {name} | {}/{} | {}/{} | {} | {note} | {after_post} | {} | {} | {} / {} | {:.1} |",
            outcome.exit_codes_kept,
            outcome.steps,
            outcome.statuses_final,
            outcome.steps,
            outcome.duplicate_finals,
            outcome.notes_created,
            if outcome.first_totals_kept { "yes" } else { "**no**" },
            ms(outcome.added_median),
            ms(outcome.added_max),
            outcome.requests_per_step()
        );
    }
}

fn with_faults(jobs: usize, steps: usize, faults: Faults) -> Scenario {
    Scenario { faults: Some(faults), ..Scenario::new(jobs, steps) }
}

fn signals(herald: &std::path::Path, work: &std::path::Path, runs: usize) {
    println!("Each signal sent to herald {runs} times at a random moment 0–400 ms into a 10 s step that has");
    println!("started a background grandchild.\n");
    println!("| signal | exit code 128+N | status canceled | processes left behind | before herald's set-up |");
    println!("|---|---:|---:|---:|---:|");
    for (name, signal) in
        [("TERM", libc::SIGTERM), ("INT", libc::SIGINT), ("HUP", libc::SIGHUP), ("QUIT", libc::SIGQUIT)]
    {
        let outcome = signals::signal_campaign(herald, work, signal, runs, signal as u64);
        let problem = outcome.problem.map(|p| format!(" ({p})")).unwrap_or_default();
        let runs = outcome.runs - outcome.before_start;
        println!(
            "| SIG{name} | {}/{runs} | {}/{runs}{problem} | {} | {} |",
            outcome.codes_right, outcome.canceled, outcome.orphans, outcome.before_start
        );
    }
}

fn safety_net(herald: &std::path::Path, work: &std::path::Path, trials: usize) {
    use trust_campaign::Net;
    let server_errors = [Fault::ServerError(500), Fault::ServerError(502), Fault::ServerError(503)];
    let faults = [
        ("none", Faults::default()),
        ("5xx on 10%", Faults::random(0.1, &server_errors, 0x5eed_0001_0000)),
        ("5xx on 50%", Faults::random(0.5, &server_errors, 0x5eed_0002_0000)),
        (
            "resets on 20% (half after applying)",
            Faults::random(0.2, &[Fault::Reset, Fault::ResetAfterApplying], 0x5eed_0003_0000),
        ),
    ];
    println!("{trials} pipelines per row, 7 jobs, 11 steps: passed, failed, allowed to fail (`allow_failure: true`,");
    println!("`exit_codes`, `|| true`), cut off by the job's death or cancellation. 60% of the final states");
    println!("posted are lost (GitLab down at the end); then the safety net runs under the fault.\n");
    println!("| closed by | fault | statuses final | wrong states | pipelines made worse than GitLab's verdict | one note | commands failed |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let only = std::env::var("FAULT").unwrap_or_default();
    for net in [Net::Finalize, Net::NoteFinal] {
        for (name, faults) in faults.iter().filter(|(name, _)| name.contains(&only)) {
            let outcome = trust_campaign::safety_net(herald, work, net, faults, trials, 0.6, trials as u64);
            let by = match net {
                Net::Finalize => "each job's `herald finalize`",
                Net::NoteFinal => "`herald note --final` alone",
            };
            let problem = outcome.problem.map(|p| format!(" ({p})")).unwrap_or_default();
            println!(
                "| {by} | {name} | {}/{} | {}{problem} | {} | {}/{trials} | {} |",
                outcome.closed,
                outcome.statuses,
                outcome.wrong,
                outcome.made_worse,
                trials - outcome.note_count_wrong,
                outcome.commands_failed
            );
        }
    }
}

fn notes(herald: &std::path::Path, work: &std::path::Path, jobs: usize, trials: usize) {
    println!("{jobs} concurrent jobs × 2 steps of 0.5–2.5 s (so that live writes are cut off by the steps' ends),");
    println!("{trials} pipelines per row; notes counted once every job had ended, before any `.post` job.\n");
    println!(
        "| jobs' ids | pipelines with exactly one note | with a duplicate left | notes created (one is the goal) | first version's totals kept | note correct | requests per step |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for shared in [false, true] {
        let (mut one, mut more, mut correct, mut requests) = (0, 0, 0, 0.0);
        let (mut created, mut created_most, mut totals_kept) = (0, 0, 0);
        let mut problem = None;
        for trial in 0..trials {
            let scenario = Scenario {
                seed: trial as u64 + 1,
                step_ms: (500, 2500),
                shared_job_id: shared,
                ..Scenario::new(jobs, 2)
            };
            let outcome = campaign::run_pipeline(herald, &work.join(format!("notes-{shared}-{trial}")), &scenario);
            one += usize::from(outcome.notes_left == 1);
            more += usize::from(outcome.notes_left > 1);
            created += outcome.notes_created;
            created_most = created_most.max(outcome.notes_created);
            totals_kept += usize::from(outcome.first_totals_kept);
            correct += usize::from(outcome.note_correct);
            requests += outcome.requests_per_step() / trials as f64;
            if problem.is_none() {
                problem = outcome.problem;
            }
        }
        let problem = problem.map(|p| format!(" ({p})")).unwrap_or_default();
        let ids = if shared { "one id shared by every job" } else { "one per job" };
        let created = format!("{:.2} per pipeline (at most {created_most})", created as f64 / trials.max(1) as f64);
        println!(
            "| {ids} | {one}/{trials} | {more} | {created} | {totals_kept}/{trials} | {correct}/{trials}{problem} | {requests:.1} |"
        );
    }
}

fn leftovers(herald: &std::path::Path, work: &std::path::Path, runs: usize) {
    use trust_campaign::Leftover;
    println!("{runs} runs per kind; `--grace 1s` except where noted. \"Exit\": from the step's end (or the");
    println!("signal) to herald's exit, median / max.\n");
    println!("| step | processes alive after herald | pipes still held | exit |");
    println!("|---|---:|---:|---:|");
    for kind in trust_campaign::LEFTOVERS {
        let outcome = trust_campaign::leftovers(herald, &work.join(format!("{kind:?}")), kind, runs);
        let what = match kind {
            Leftover::StubbornDaemon => "exits, leaving a `setsid` daemon whose child ignores SIGTERM",
            Leftover::ObedientChildren => {
                "exits, leaving background children and a daemon that obey SIGTERM (`--grace 1h`)"
            }
            Leftover::Timeout => "outlives `--timeout 1s`, with a child that ignores SIGTERM",
            Leftover::Canceled => "herald gets SIGTERM mid-step; a `setsid` daemon ignores it",
        };
        let problem = outcome.problem.map(|p| format!(" ({p})")).unwrap_or_default();
        println!(
            "| {what} | {}{problem} | {} | {} / {} |",
            outcome.alive,
            outcome.pipes_held,
            ms(outcome.exit_median),
            ms(outcome.exit_max)
        );
    }
}

/// Issue #19: GitLab 20, 50 and 150 ms away over HTTPS (the stand-in waits a round trip per
/// answer, and one more per new connection for TCP and one for TLS), against loopback; then
/// 200 jobs × 5 steps at 50 ms.
fn latency(herald: &std::path::Path, work: &std::path::Path, jobs: usize, steps: usize) {
    println!("{jobs} concurrent jobs × {steps} planned steps of 50–500 ms over HTTPS; herald's time before the step starts, and after it ends (median / p95).\n");
    println!("| round trip | before the step starts | after a middle step | after a job's last step | requests per step | note final after last step |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let mix = std::cell::RefCell::new(Vec::new());
    let row = |label: &str, outcome: &Outcome| {
        let pair = |p: campaign::Percentiles| format!("{} / {}", ms(p.median), ms(p.p95));
        println!(
            "| {label} | {} | {} | {} | {:.1} | {} |",
            pair(outcome.before_start),
            pair(outcome.after_end_middle),
            pair(outcome.after_end_last),
            outcome.requests_per_step(),
            outcome.note_final_after.map_or("never (note wrong)".into(), ms)
        );
        if let Some(problem) = &outcome.problem {
            println!("\nproblem: {problem}\n");
        }
        let kinds: Vec<String> = outcome.by_route.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
        mix.borrow_mut().push(format!("- {label}: {}", kinds.join(", ")));
    };
    // RTTS=50 (milliseconds, comma-separated) narrows the rows.
    let rtts: Vec<u64> = std::env::var("RTTS").map_or_else(
        |_| vec![0, 20, 50, 150],
        |list| list.split(',').filter_map(|rtt| rtt.trim().parse().ok()).collect(),
    );
    for rtt in rtts {
        let scenario = Scenario { round_trip: Duration::from_millis(rtt), tls: true, ..Scenario::new(jobs, steps) };
        let outcome = campaign::run_pipeline(herald, &work.join(format!("latency-{rtt}")), &scenario);
        row(&format!("{rtt} ms"), &outcome);
    }
    // Instant steps (`sleep 0`): a middle one posts only its final state (issue #27).
    let scenario =
        Scenario { round_trip: Duration::from_millis(50), tls: true, step_ms: (0, 0), ..Scenario::new(jobs, steps) };
    let outcome = campaign::run_pipeline(herald, &work.join("latency-instant"), &scenario);
    row(&format!("50 ms, {jobs} jobs × {steps} instant steps"), &outcome);
    // SCALE=0 skips it; SCALE=50 runs 50 jobs instead of 200 (a loaded machine).
    let scale =
        std::env::var("SCALE").map_or(Some(200), |v| v.parse::<usize>().ok().map(|n| if n == 1 { 200 } else { n }));
    if let Some(scale_jobs) = scale.filter(|n| *n > 0) {
        let scenario = Scenario {
            round_trip: Duration::from_millis(50),
            tls: true,
            step_ms: (1000, 3000),
            ..Scenario::new(scale_jobs, 5)
        };
        let outcome = campaign::run_pipeline(herald, &work.join("latency-scale"), &scenario);
        row(&format!("50 ms, {scale_jobs} jobs × 5 steps of 1–3 s"), &outcome);
    }
    println!("\nRequests by kind:\n\n{}", mix.borrow().join("\n"));
}
