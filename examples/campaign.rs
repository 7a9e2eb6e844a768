//! The scale, fault and signal campaigns, full size (docs/benchmarks.md, docs/reliability.md).
//! The test suite runs seconds-long versions of the same code (tests/campaign.rs).
//!
//!     cargo build --release && cargo run --release --example campaign -- scale   # STEP_MS=1000-10000
//!     cargo run --release --example campaign -- faults
//!     cargo run --release --example campaign -- signals
//!
//! Each prints a Markdown table. HERALD_BIN names the herald to run (default target/release/herald);
//! JOBS, STEPS, RUNS, DESIGN (herald or naive) and FAULT (part of a fault's name) size and narrow
//! the runs; CAMPAIGN_LOGS=<dir>
//! keeps every step's herald log (debug level) there, named by the time herald added to the step.

#[allow(dead_code)]
#[path = "../tests/support/gitlab.rs"]
mod gitlab;

#[allow(dead_code)]
#[path = "../tests/support/campaign.rs"]
mod campaign;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use campaign::{Design, Outcome, Scenario};
use gitlab::{Fault, Faults};

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
        _ => {
            eprintln!("usage: campaign scale|faults|signals   (JOBS, STEPS, RUNS, HERALD_BIN in the environment)");
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
            "server hangs on 5% (10 s request timeout)",
            with_faults(jobs, steps, Faults::random(0.05, &[Fault::Hang], 16)),
        ),
        ("closes mid-body on 30%", with_faults(jobs, steps, Faults::random(0.3, &[Fault::CutBody], 17))),
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
        "| fault | exit codes kept | statuses final | note correct | after the .post job | added per step (median / max) | requests per step |"
    );
    println!("|---|---:|---:|---|---|---:|---:|");
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
            "| {name} | {}/{} | {}/{} | {note} | {after_post} | {} / {} | {:.1} |",
            outcome.exit_codes_kept,
            outcome.steps,
            outcome.statuses_final,
            outcome.steps,
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
        let outcome = campaign::signal_campaign(herald, work, signal, runs, signal as u64);
        let problem = outcome.problem.map(|p| format!(" ({p})")).unwrap_or_default();
        let runs = outcome.runs - outcome.before_start;
        println!(
            "| SIG{name} | {}/{runs} | {}/{runs}{problem} | {} | {} |",
            outcome.codes_right, outcome.canceled, outcome.orphans, outcome.before_start
        );
    }
}
