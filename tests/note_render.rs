//! The MR note as reviewers read it: snapshots of every state, failures first with excerpts from
//! real tools' output, a bounded visible part at any size, hostile names, and GitLab's size limit.

use herald::report::excerpt::{anchored, ANCHORED_LINES};
use herald::report::note::{
    render, running_steps, JobView, NoteView, PastPipeline, PipelineView, StepState, StepView, GITLAB_NOTE_LIMIT,
    VISIBLE_LINES,
};

use crate::support::snapshot::assert_snapshot;

/// 2026-11-30 09:00 UTC.
const NINE: f64 = 1_764_493_200.0;

fn step(name: &str, state: StepState, description: &str) -> StepView {
    StepView { name: name.into(), state, description: description.into(), ..StepView::default() }
}

fn job(id: u64, name: &str, stage: &str, status: &str, steps: Vec<StepView>) -> JobView {
    JobView {
        id,
        name: name.into(),
        stage: stage.into(),
        status: status.into(),
        web_url: Some(format!("https://gitlab.example.com/group/app/-/jobs/{id}")),
        steps,
        ..JobView::default()
    }
}

fn pipeline(status: &str) -> PipelineView {
    PipelineView {
        id: 1003,
        status: status.into(),
        web_url: Some("https://gitlab.example.com/group/app/-/pipelines/1003".into()),
        sha: "cccccccccccccccccccccccccccccccccccccccc".into(),
        commit_url: Some(
            "https://gitlab.example.com/group/app/-/commit/cccccccccccccccccccccccccccccccccccccccc".into(),
        ),
        started_at: Some(NINE),
        finished_at: None,
        updated_at: Some(NINE + 252.0),
    }
}

fn fixture_excerpt(name: &str) -> Vec<String> {
    let path = format!("{}/tests/fixtures/logs/{name}", env!("CARGO_MANIFEST_DIR"));
    let lines: Vec<String> = std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect();
    anchored(&lines, ANCHORED_LINES)
}

/// Lines a reviewer could be hurt by: quick actions, live mentions, raw HTML.
fn assert_inert(body: &str) {
    for line in body.lines() {
        assert!(!line.trim_start().starts_with('/'), "quick action line: {line:?}");
    }
    assert!(body.match_indices('@').all(|(at, _)| body[at + 1..].starts_with('\u{200b}')), "live mention");
    let own = [
        "<details open>",
        "<details>",
        "</details>",
        "<summary>",
        "</summary>",
        "<sub>",
        "</sub>",
        "<code>",
        "</code>",
        "<pre>",
        "</pre>",
        "<!--",
    ];
    let mut rest = body.to_owned();
    for tag in own {
        rest = rest.replace(tag, "");
    }
    assert!(!rest.contains('<'), "raw HTML from a name: {rest}");
}

/// The lines a reviewer sees without unfolding anything.
fn visible_lines(body: &str) -> usize {
    body[..body.find("<details>").unwrap_or(body.len())].lines().count()
}

#[test]
fn every_state_of_a_running_pipeline() {
    let mut unit = step("unit", StepState::Failed, "failed (exit 101) after 2m13s");
    unit.excerpt = fixture_excerpt("cargo-test-failure.log");
    let mut build = step("cargo build", StepState::Running, "running");
    build.started_at = Some(NINE + 180.0);
    let mut docs = job(5006, "docs", "build", "created", vec![]);
    docs.planned = vec!["mkdocs build".into(), "link check".into()];
    let mut deploy = job(5004, "deploy", "deploy", "manual", vec![]);
    deploy.planned = vec!["push".into()];
    let mut retried =
        job(5007, "flaky integration", "test", "success", vec![step("pytest", StepState::Passed, "passed in 40.0s")]);
    retried.attempts = vec![("failed".into(), Some("https://gitlab.example.com/group/app/-/jobs/4999".into()))];
    let mut test = job(
        5002,
        "test",
        "test",
        "failed",
        vec![unit, step("integration", StepState::Canceled, "canceled (SIGTERM) after 3.0s")],
    );
    test.planned = vec!["coverage".into()];
    let view = NoteView {
        pipeline: pipeline("running"),
        jobs: vec![
            job(
                5001,
                "lint",
                "build",
                "success",
                vec![
                    step("cargo fmt", StepState::Passed, "passed in 1.2s"),
                    step("cargo clippy", StepState::Passed, "passed in 41.0s"),
                ],
            ),
            job(5003, "build", "build", "running", vec![build]),
            docs,
            test,
            JobView {
                allow_failure: true,
                ..job(
                    5008,
                    "probe",
                    "test",
                    "failed",
                    vec![step("probe", StepState::Allowed, "failed (exit 3) after 1.0s")],
                )
            },
            retried,
            job(5005, "audit", "test", "pending", vec![]),
            deploy,
            job(5009, "release", "deploy", "skipped", vec![]),
        ],
        unattached: vec![step("external check", StepState::Passed, "passed in 0.3s")],
        history: vec![
            PastPipeline {
                id: 1001,
                status: "failed".into(),
                web_url: Some("https://gitlab.example.com/group/app/-/pipelines/1001".into()),
            },
            PastPipeline { id: 1002, status: "success".into(), web_url: None },
        ],
        baseline: None,
    };
    let body = render(&view);
    assert_inert(&body);
    assert_snapshot("note_all_states", &body);
    // What the reviewer needs: the panic and its values, on top, and the totals stay stable.
    let top = &body[..body.find("<details>").unwrap()];
    assert!(top.contains("panicked at src/lib.rs:20:9") && top.contains("left: 103"), "{top}");
    assert!(body.contains("⏭️ coverage not run"), "a planned step that will not run is counted, not dropped");
    assert!(body.contains("⏸️ push manual") || body.contains("⏸️ 1 job manual"), "{body}");
    assert!(body.contains(
        "🔁 flaky: passed on retry after [failed attempt](https://gitlab.example.com/group/app/-/jobs/4999)"
    ));
    assert!(body.contains("running since 09:03 UTC"));
    assert!(visible_lines(&body) <= VISIBLE_LINES);
}

#[test]
fn a_green_pipeline_is_one_folded_line_per_job() {
    let mut view = NoteView {
        pipeline: PipelineView { status: "success".into(), finished_at: Some(NINE + 95.0), ..pipeline("success") },
        jobs: vec![
            job(5001, "lint", "build", "success", vec![step("fmt", StepState::Passed, "passed in 1.2s")]),
            job(5002, "test", "test", "success", vec![step("unit", StepState::Passed, "passed in 30.0s")]),
        ],
        ..NoteView::default()
    };
    let body = render(&view);
    assert_snapshot("note_passed", &body);
    assert!(body.contains("### ✅ Pipeline [#1003]"), "{body}");
    assert!(body.contains("took 1m35s"), "{body}");
    assert_eq!(visible_lines(&body), 6, "the header, then the folded listing: {body}");

    // A step allowed to fail: passed with warnings, in GitLab's words, and not a failure.
    view.jobs[1].steps.push(step("flaky", StepState::Allowed, "failed (exit 1) after 2.0s"));
    let body = render(&view);
    assert!(
        body.contains(
            "⚠️ Pipeline [#1003](https://gitlab.example.com/group/app/-/pipelines/1003) passed with warnings"
        ),
        "{body}"
    );
    assert!(!body.contains("failed**"), "not counted as a failure: {body}");
}

#[test]
fn identical_failures_are_shown_once() {
    let excerpt = fixture_excerpt("pytest-failure.log");
    let jobs = (1..=4)
        .map(|i| {
            let mut failed = step("pytest", StepState::Failed, "failed (exit 1) after 9.0s");
            // Numbers differ (timings, thread ids); the failure is the same.
            failed.excerpt = excerpt.iter().map(|line| line.replace("0.07s", &format!("0.0{i}s"))).collect();
            job(6000 + i, &format!("test {i}/4"), "test", "failed", vec![failed])
        })
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs, ..NoteView::default() });
    assert_inert(&body);
    assert_snapshot("note_same_failure", &body);
    assert_eq!(body.matches("E       assert 103 == 102").count(), 1, "{body}");
    assert!(body.contains("Same failure in [test 2/4]"), "{body}");
}

/// 200 jobs × 2 steps: mid-run (failures, many running and waiting) and final. What is visible
/// without unfolding stays within `VISIBLE_LINES`, the failures are in it, and the note stays well
/// under GitLab's limit.
#[test]
fn two_hundred_jobs_stay_within_the_visible_budget() {
    let cargo = fixture_excerpt("cargo-test-failure.log");
    let pytest = fixture_excerpt("pytest-failure.log");
    let pipeline_of = |final_state: bool| {
        let jobs: Vec<JobView> = (0..200u64)
            .map(|i| {
                let stage = ["build", "test", "deploy"][(i % 3) as usize];
                let (status, steps) = match (i, final_state) {
                    (7 | 77, _) => {
                        let mut failed = step("unit", StepState::Failed, "failed (exit 101) after 12.0s");
                        failed.excerpt = if i == 7 { cargo.clone() } else { pytest.clone() };
                        ("failed", vec![step("build", StepState::Passed, "passed in 3.0s"), failed])
                    }
                    (_, true) => (
                        "success",
                        vec![
                            step("build", StepState::Passed, "passed in 3.0s"),
                            step("unit", StepState::Passed, "passed in 9.0s"),
                        ],
                    ),
                    (i, false) if i < 60 => (
                        "success",
                        vec![
                            step("build", StepState::Passed, "passed in 3.0s"),
                            step("unit", StepState::Passed, "passed in 9.0s"),
                        ],
                    ),
                    (i, false) if i < 100 => ("running", vec![step("build", StepState::Running, "running")]),
                    _ => ("created", vec![]),
                };
                let mut job = job(8000 + i, &format!("matrix job {i}"), stage, status, steps);
                if job.steps.len() < 2 {
                    job.planned = ["build", "unit"][job.steps.len()..].iter().map(|s| s.to_string()).collect();
                }
                job
            })
            .collect();
        NoteView { pipeline: pipeline(if final_state { "failed" } else { "running" }), jobs, ..NoteView::default() }
    };
    for final_state in [false, true] {
        let body = render(&pipeline_of(final_state));
        assert_inert(&body);
        let visible = visible_lines(&body);
        assert!(visible <= VISIBLE_LINES, "{visible} visible lines:\n{body}");
        let top = &body[..body.find("<details>").unwrap()];
        assert!(top.contains("[matrix job 7]") && top.contains("[matrix job 77]"), "both failures on top:\n{top}");
        assert!(top.contains("panicked at") && top.contains("E       assert 103 == 102"), "{top}");
        assert!(body.len() < GITLAB_NOTE_LIMIT / 10, "{} bytes", body.len());
        assert!(body.contains("400 steps in 200 jobs"), "{body}");
    }
    let mid_run = render(&pipeline_of(false));
    assert!(mid_run.contains("jobs waiting"), "waiting jobs are summarised per stage: {mid_run}");
    assert!(mid_run.contains("… and "), "running steps beyond the budget are counted, not listed: {mid_run}");
    // How many writers are still to come, as a writer reads it back (publish/note: issue #27).
    let running = pipeline_of(false)
        .jobs
        .iter()
        .flat_map(|job| &job.steps)
        .filter(|step| step.state == StepState::Running)
        .count();
    assert!(running > 10);
    assert_eq!(running_steps(&mid_run), running, "{mid_run}");
    assert_eq!(running_steps(&render(&pipeline_of(true))), 0);
    assert_eq!(running_steps("no note at all"), 0);
}

#[test]
fn hostile_names_are_shown_but_inert() {
    let names = [
        "/merge",
        "@all please look",
        "</details><img src=x onerror=alert(1)>",
        "| x |",
        "`rm -rf /`",
        "[click](javascript:alert(1))",
        "line\n/approve",
        "**bold** _it_ #1 !2 ~bug %m $s",
    ];
    let jobs = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut failed = step(name, StepState::Failed, name);
            failed.excerpt = vec![name.to_string(), "</pre>".into()];
            job(7000 + i as u64, name, name, "failed", vec![failed])
        })
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs, ..NoteView::default() });
    assert_inert(&body);
    assert_snapshot("note_hostile", &body);
}

#[test]
fn ten_thousand_steps_stay_under_the_limit() {
    let jobs: Vec<JobView> = (0..1000)
        .map(|j| {
            let steps = (0..10)
                .map(|s| {
                    let state = if (j + s) % 97 == 0 { StepState::Failed } else { StepState::Passed };
                    step(
                        &format!("step {s} of a job with a long descriptive name {}", "x".repeat(60)),
                        state,
                        "passed in 1.0s",
                    )
                })
                .collect();
            job(10_000 + j, &format!("matrix job {j} {}", "y".repeat(60)), "test", "success", steps)
        })
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs: jobs.clone(), ..NoteView::default() });
    assert!(body.len() < GITLAB_NOTE_LIMIT, "{} characters", body.len());
    assert!(body.contains("### ❌ Pipeline [#1003]"), "the header survives");
    assert!(body.contains("**101 failed** · 9899 passed · 10000 steps in 1000 jobs"), "the counts are exact");
    assert!(visible_lines(&body) <= VISIBLE_LINES);
    assert_inert(&body);

    // Names so long that not even the folded listing fits: it is cut and says so.
    let huge: Vec<JobView> = jobs
        .into_iter()
        .map(|mut job| {
            job.steps.iter_mut().for_each(|s| {
                s.name = "z".repeat(5000);
                s.state = StepState::Failed;
            });
            job
        })
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs: huge, ..NoteView::default() });
    assert!(body.len() < GITLAB_NOTE_LIMIT, "{} characters", body.len());
    assert!(body.contains("the rest is not listed: the note would exceed GitLab's size limit"));
    assert!(visible_lines(&body) <= VISIBLE_LINES);
}

/// The lines a reviewer sees when every step has a summary: up to the folded part, each folded
/// summary as its title line (and the blank line after it), an open one as all its lines.
fn visible_with_summaries(body: &str) -> usize {
    let mut lines = 0;
    let mut folded = false;
    for line in body.lines() {
        if !folded && line.starts_with("<details><summary>") && !line.contains("📝") {
            break; // everything else
        }
        if folded {
            folded = !line.starts_with("</details>");
            continue;
        }
        lines += 1;
        folded = line.starts_with("<details><summary>📝");
    }
    lines
}

/// 200 jobs whose every step wrote a big summary (`<details open>` for the failed ones): the
/// failures' excerpts stay above the fold, what is visible stays within `VISIBLE_LINES`, and the
/// summaries' text stays within the note's budget for them.
#[test]
fn summaries_never_push_failures_out_of_sight_and_share_one_budget() {
    let cargo = fixture_excerpt("cargo-test-failure.log");
    let summary: String = (0..200).map(|i| format!("yyyy line {i} of a summary\n")).collect();
    let jobs: Vec<JobView> = (0..200u64)
        .map(|i| {
            let mut unit = if i == 7 || i == 77 {
                let mut failed = step("unit", StepState::Failed, "failed (exit 101) after 12.0s");
                failed.excerpt = cargo.clone();
                failed
            } else {
                step("unit", StepState::Passed, "passed in 9.0s")
            };
            unit.summary = Some(format!("# Tests of job {i}\n{summary}"));
            let status = if i == 7 || i == 77 { "failed" } else { "success" };
            job(9000 + i, &format!("matrix job {i}"), "test", status, vec![unit])
        })
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs, ..NoteView::default() });
    assert_inert(&body);
    let visible = visible_with_summaries(&body);
    assert!(visible <= VISIBLE_LINES, "{visible} visible lines:\n{body}");
    let first_summary = body.find("📝").unwrap();
    let excerpts = &body[..first_summary];
    assert!(excerpts.contains("[matrix job 7]") && excerpts.contains("[matrix job 77]"), "{excerpts}");
    assert!(excerpts.contains("panicked at"), "the excerpt comes before any summary: {excerpts}");
    let summary_bytes: usize = body.lines().filter(|line| line.starts_with("yyyy")).map(|line| line.len() + 1).sum();
    assert!(summary_bytes <= 64 * 1024, "{summary_bytes} bytes of summaries");
    assert!(body.contains("the note's room for summaries is used up"), "past the budget: a pointer to the log");
    assert!(body.contains("<details open><summary>📝 matrix job 7 › unit — Tests of job 7</summary>"), "{body}");
    // Each summary is under its job in the folded part when it is not above the fold.
    assert!(body.contains("— ✅ unit passed in 9.0s\n\n<details><summary>📝 matrix job 150 › unit"), "{body}");
}
