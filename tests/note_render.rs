//! The MR note as reviewers read it: snapshots of every state, long pipelines, hostile names,
//! and the size limit with 10,000 steps.

use herald::report::note::{render, JobView, NoteView, PipelineView, StepState, StepView, GITLAB_NOTE_LIMIT};

use crate::support::snapshot::assert_snapshot;

fn step(name: &str, state: StepState, description: &str) -> StepView {
    StepView { name: name.into(), state, description: description.into() }
}

fn job(id: u64, name: &str, status: &str, steps: Vec<StepView>) -> JobView {
    JobView {
        id,
        name: name.into(),
        status: status.into(),
        web_url: Some(format!("https://gitlab.example.com/group/app/-/jobs/{id}")),
        steps,
        planned: Vec::new(),
    }
}

fn pipeline(status: &str) -> PipelineView {
    PipelineView {
        id: 1003,
        status: status.into(),
        web_url: Some("https://gitlab.example.com/group/app/-/pipelines/1003".into()),
        sha: "cccccccccccccccccccccccccccccccccccccccc".into(),
    }
}

/// Lines a reviewer could be hurt by: quick actions, live mentions, raw HTML.
fn assert_inert(body: &str) {
    for line in body.lines() {
        assert!(!line.trim_start().starts_with('/'), "quick action line: {line:?}");
    }
    assert!(!body.contains("@all"), "live mention");
    let html_tags: Vec<&str> =
        ["<details>", "</details>", "<summary>", "</summary>", "<sub>", "</sub>", "<code>", "</code>", "<!--"]
            .into_iter()
            .collect();
    let mut rest = body.to_owned();
    for tag in html_tags {
        rest = rest.replace(tag, "");
    }
    assert!(!rest.contains('<'), "raw HTML from a name: {rest}");
}

#[test]
fn every_state_of_a_running_pipeline() {
    let mut docs = job(5006, "docs", "created", vec![]);
    docs.planned = vec!["mkdocs build".into(), "link check".into()];
    let view = NoteView {
        pipeline: pipeline("running"),
        jobs: vec![
            job(
                5001,
                "lint",
                "success",
                vec![
                    step("cargo fmt", StepState::Passed, "passed in 1.2s"),
                    step("cargo clippy", StepState::Passed, "passed in 41.0s"),
                ],
            ),
            job(
                5002,
                "test",
                "failed",
                vec![
                    step("unit", StepState::Failed, "failed (exit 101) after 2m13s"),
                    step("integration", StepState::Canceled, "canceled (SIGTERM) after 3.0s"),
                ],
            ),
            job(5003, "build", "running", vec![step("cargo build", StepState::Running, "running")]),
            job(5004, "deploy", "manual", vec![]),
            job(5005, "audit", "pending", vec![]),
            docs,
        ],
        unattached: vec![step("external check", StepState::Passed, "passed in 0.3s")],
    };
    let body = render(&view);
    assert_inert(&body);
    assert_snapshot("note_all_states", &body);
}

#[test]
fn a_finished_pipeline() {
    let view = NoteView {
        pipeline: pipeline("success"),
        jobs: vec![job(5001, "lint", "success", vec![step("lint", StepState::Passed, "passed in 1.2s")])],
        unattached: vec![],
    };
    assert_snapshot("note_passed", &render(&view));
}

#[test]
fn long_pipelines_collapse_passed_steps_and_keep_failures_on_top() {
    let jobs = (0..40)
        .map(|i| {
            let (state, text) = if i == 7 || i == 31 {
                (StepState::Failed, "failed (exit 1) after 9.0s")
            } else {
                (StepState::Passed, "passed in 3.0s")
            };
            job(
                6000 + i,
                &format!("test {}/40", i + 1),
                if state == StepState::Failed { "failed" } else { "success" },
                vec![step("pytest", state, text)],
            )
        })
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs, unattached: vec![] });
    assert_inert(&body);
    assert_snapshot("note_long", &body);
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
        .map(|(i, name)| job(7000 + i as u64, name, "failed", vec![step(name, StepState::Failed, name)]))
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs, unattached: vec![] });
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
            job(10_000 + j, &format!("matrix job {j} {}", "y".repeat(60)), "success", steps)
        })
        .collect();
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs: jobs.clone(), unattached: vec![] });
    assert!(body.len() < GITLAB_NOTE_LIMIT, "{} characters", body.len());
    assert!(body.contains("#### ❌ Pipeline [#1003]"), "the header survives");
    assert!(body.contains("10000 steps: 9899 passed, 101 failed"), "the counts are exact");
    assert_inert(&body);

    // Names so long that even the failures do not fit: the table is cut and says so.
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
    let body = render(&NoteView { pipeline: pipeline("failed"), jobs: huge, unattached: vec![] });
    assert!(body.len() < GITLAB_NOTE_LIMIT, "{} characters", body.len());
    assert!(body.contains("more rows, not listed: the note would exceed GitLab's size limit"));
}
