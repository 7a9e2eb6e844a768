//! The README's pictures (scripts/note-pictures.sh): the merge-request note of a failing and a
//! green pipeline of a realistic size, rendered by the real renderer, with failure excerpts taken
//! by the real anchoring from real tools' output (tests/fixtures/logs); and a finding's thread on
//! the diff, from ruff's real SARIF report (tests/fixtures/findings).
//!
//!     cargo run --example note_picture -- <dir>
//!
//! writes <dir>/failing.md, <dir>/green.md, <dir>/plan.md (a Terraform plan's summary, by
//! `herald plan-summary`'s renderer from tests/fixtures/terraform/replace.json), and <dir>/finding.md with <dir>/finding-lines.txt (the
//! diff lines the thread sits under).

use std::path::PathBuf;

use herald::findings::report::{load, Format};
use herald::publish::findings::thread_body;
use herald::report::excerpt::{anchored, ANCHORED_LINES};
use herald::report::note::{
    render, BaselineRef, JobView, NoteView, OnTarget, PastPipeline, PipelineView, StepState, StepView,
};

const BASE: &str = "https://gitlab.example.com/acme/shop";
/// 2026-11-30 09:00 UTC.
const NINE: f64 = 1_764_493_200.0;

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: note_picture <dir>"));
    std::fs::create_dir_all(&dir).expect("the output directory");
    std::fs::write(dir.join("failing.md"), render(&pipeline(true))).expect("failing.md");
    std::fs::write(dir.join("green.md"), render(&pipeline(false))).expect("green.md");
    std::fs::write(dir.join("plan.md"), render(&infrastructure())).expect("plan.md");
    finding(&dir);
}

/// ruff's finding on a changed line, with its fix as a suggestion, as herald posts it.
fn finding(dir: &std::path::Path) {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/findings/ruff");
    let checkout = dir.join("checkout");
    std::fs::create_dir_all(&checkout).expect("a checkout");
    std::fs::copy(fixtures.join("app.v1.py"), checkout.join("app.py")).expect("app.py");
    let report = std::fs::read_to_string(fixtures.join("v1-sarif.json"))
        .expect("the report")
        .replace("file:///tmp/rf/", &format!("file://{}/", checkout.display()));
    std::fs::write(checkout.join("ruff.sarif"), report).expect("ruff.sarif");
    let loaded = load(&checkout.join("ruff.sarif"), Format::Sarif, &checkout).expect("ruff's report");
    let finding = loaded.findings.iter().find(|f| f.line == 21).expect("the F841 finding on line 21");
    std::fs::write(dir.join("finding.md"), thread_body(finding, 21, "lint", 1841)).expect("finding.md");
    let source = std::fs::read_to_string(checkout.join("app.py")).expect("app.py");
    let lines: Vec<String> =
        source.lines().enumerate().skip(18).take(4).map(|(i, l)| format!("{}\t{l}", i + 1)).collect();
    std::fs::write(dir.join("finding-lines.txt"), lines.join("\n")).expect("finding-lines.txt");
}

fn excerpt(name: &str) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/logs").join(name);
    let lines: Vec<String> = std::fs::read_to_string(path).expect("fixture").lines().map(str::to_owned).collect();
    anchored(&lines, ANCHORED_LINES)
}

fn step(name: &str, state: StepState, description: &str) -> StepView {
    StepView { name: name.into(), state, description: description.into(), ..StepView::default() }
}

fn job(id: u64, name: &str, stage: &str, status: &str, steps: Vec<StepView>) -> JobView {
    JobView {
        id,
        name: name.into(),
        stage: stage.into(),
        status: status.into(),
        web_url: Some(format!("{BASE}/-/jobs/{id}")),
        steps,
        ..JobView::default()
    }
}

/// A pipeline of 14 jobs: lint, a Rust and a Python test matrix, a build and a deploy.
fn pipeline(failing: bool) -> NoteView {
    let passed = |name: &str, took: &str| step(name, StepState::Passed, &format!("passed in {took}"));
    let mut jobs = vec![
        job(4101, "lint", "lint", "success", vec![passed("cargo fmt", "0.8s"), passed("cargo clippy", "41.2s")]),
        job(4102, "ruff", "lint", "success", vec![passed("ruff check", "1.1s")]),
    ];
    for (i, os) in ["linux", "macos", "windows"].iter().enumerate() {
        let unit = if failing && i == 0 {
            let mut unit = step("cargo test", StepState::Failed, "failed (exit 101) after 1m12s");
            unit.excerpt = excerpt("cargo-test-failure.log");
            // Passes on main: this change broke it.
            unit.on_target = Some(OnTarget::Passed);
            unit
        } else {
            passed("cargo test", "1m08s")
        };
        let status = if unit.state == StepState::Failed { "failed" } else { "success" };
        jobs.push(job(4110 + i as u64, &format!("test: [{os}]"), "test", status, vec![passed("build", "2m01s"), unit]));
    }
    for (i, python) in ["3.11", "3.12", "3.13"].iter().enumerate() {
        let pytest = if failing && i < 2 {
            let mut pytest = step("pytest", StepState::Failed, "failed (exit 1) after 9.4s");
            pytest.excerpt = excerpt("pytest-failure.log");
            // Fails on main too: not this change's doing.
            pytest.on_target = Some(OnTarget::Failed);
            pytest
        } else {
            passed("pytest", "9.1s")
        };
        let status = if pytest.state == StepState::Failed { "failed" } else { "success" };
        jobs.push(job(4120 + i as u64, &format!("pytest: [{python}]"), "test", status, vec![pytest]));
    }
    let mut playwright = passed("playwright", "3m40s");
    // 1m35s on main.
    playwright.slower = Some((220.0, 95.0));
    let mut flaky = job(4130, "e2e", "test", "success", vec![playwright]);
    flaky.attempts = vec![("failed".into(), Some(format!("{BASE}/-/jobs/4129")))];
    jobs.push(flaky);
    if failing {
        let audit = step("cargo audit", StepState::Allowed, "failed (exit 1) after 6.0s");
        jobs.push(JobView { allow_failure: true, ..job(4131, "audit", "test", "failed", vec![audit]) });
    } else {
        jobs.push(job(4131, "audit", "test", "success", vec![passed("cargo audit", "5.2s")]));
    }
    if failing {
        let mut build = job(4140, "build", "build", "running", vec![passed("compile", "3m12s")]);
        let mut package = step("package", StepState::Running, "running");
        package.started_at = Some(NINE + 420.0);
        build.steps.push(package);
        jobs.push(build);
        let mut deploy = job(4150, "deploy", "deploy", "created", vec![]);
        deploy.planned = vec!["push image".into(), "smoke test".into()];
        jobs.push(deploy);
    } else {
        jobs.push(job(4140, "build", "build", "success", vec![passed("compile", "3m12s"), passed("package", "22.0s")]));
        let mut deploy = job(4150, "deploy", "deploy", "manual", vec![]);
        deploy.planned = vec!["push image".into(), "smoke test".into()];
        jobs.push(deploy);
    }
    let id = if failing { 1841 } else { 1842 };
    NoteView {
        pipeline: PipelineView {
            id,
            status: if failing { "running" } else { "success" }.into(),
            web_url: Some(format!("{BASE}/-/pipelines/{id}")),
            sha: "9f3c2ab417e05d6c88e1f0b2a4c7d9e1f2a3b4c5".into(),
            commit_url: Some(format!("{BASE}/-/commit/9f3c2ab417e05d6c88e1f0b2a4c7d9e1f2a3b4c5")),
            started_at: Some(NINE),
            finished_at: (!failing).then_some(NINE + 515.0),
            updated_at: Some(NINE + if failing { 431.0 } else { 515.0 }),
        },
        jobs,
        unattached: Vec::new(),
        history: history(id),
        baseline: Some(BaselineRef {
            branch: "main".into(),
            pipeline: 1836,
            web_url: Some(format!("{BASE}/-/pipelines/1836")),
        }),
    }
}

/// An infrastructure repository's green pipeline: lint, a Terraform plan whose step wrote its
/// summary (the real `plan-summary` of a real-shaped plan), a Python test with coverage's table.
fn infrastructure() -> NoteView {
    let passed = |name: &str, took: &str| step(name, StepState::Passed, &format!("passed in {took}"));
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/replace.json");
    let plan_json = std::fs::read(fixture).expect("fixture");
    let mut plan = passed("plan", "38.4s");
    plan.summary = Some(herald::report::terraform::plan_summary(&plan_json).expect("a plan"));
    let mut pytest = passed("pytest", "12.2s");
    pytest.summary = Some(
        "| Name | Stmts | Miss | Cover |\n|---|---:|---:|---:|\n| lambdas/rotate.py | 48 | 3 | 94% |\n\
         | lambdas/notify.py | 31 | 0 | 100% |\n| **TOTAL** | **79** | **3** | **96%** |\n"
            .into(),
    );
    let jobs = vec![
        job(5101, "fmt", "lint", "success", vec![passed("terraform fmt", "0.9s")]),
        job(5110, "terraform-plan", "plan", "success", vec![passed("init", "14.0s"), passed("validate", "1.2s"), plan]),
        job(5120, "python-test", "test", "success", vec![passed("install", "8.0s"), pytest]),
    ];
    NoteView {
        pipeline: PipelineView {
            id: 2207,
            status: "success".into(),
            web_url: Some(format!("{BASE}/-/pipelines/2207")),
            sha: "4e1d0c9b2a7f68e5d3c1b0a9f8e7d6c5b4a39281".into(),
            commit_url: Some(format!("{BASE}/-/commit/4e1d0c9b2a7f68e5d3c1b0a9f8e7d6c5b4a39281")),
            started_at: Some(NINE),
            finished_at: Some(NINE + 95.0),
            updated_at: Some(NINE + 95.0),
        },
        jobs,
        unattached: Vec::new(),
        history: Vec::new(),
        baseline: None,
    }
}

/// The merge request's three pipelines before `id`.
fn history(id: u64) -> Vec<PastPipeline> {
    let earlier: Vec<PastPipeline> = [(1838, "success"), (1839, "failed"), (1840, "failed"), (1841, "failed")]
        .into_iter()
        .filter(|(past, _)| *past < id)
        .map(|(past, status)| PastPipeline {
            id: past,
            status: status.into(),
            web_url: Some(format!("{BASE}/-/pipelines/{past}")),
        })
        .collect();
    earlier[earlier.len().saturating_sub(3)..].to_vec()
}
