//! "Is it me?": the note compares each failure with the target branch's pipeline
//! (publish/baseline.rs), against the stand-in: also failing there, new, nothing to compare, a
//! baseline that is missing or still running, flaky jobs, slower steps, and what it costs.

use crate::support::gitlab::*;
use crate::support::{herald_in_ci, run, PipelineKind};

/// The target-branch commit the merge request's diff starts from.
const SHA_BASE: &str = "dddddddddddddddddddddddddddddddddddddddd";
/// A later commit of `main`.
const SHA_MAIN_LATER: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const PIPELINE_BASE: u64 = 2001;

/// Adds a pipeline of `main` with one CI job `test` in `job_status` and herald's statuses
/// `(name, state, description)` linked to it.
fn main_pipeline(gitlab: &GitLab, id: u64, sha: &str, job_status: &str, statuses: &[(&str, &str, &str)]) {
    gitlab.with(|w| {
        w.add_pipeline(id, sha, "main");
        let (_, url) = w.add_job(id, "test", "test", job_status);
        for (name, state, description) in statuses {
            let status = w.add_status(id, name, state, &url);
            w.jobs.iter_mut().find(|j| j.id == status).expect("the status").description = Some((*description).into());
        }
    });
}

/// Runs one step of job `test` in MR !1's merged-results pipeline, whose target is `main`.
fn step(gitlab: &GitLab, url: &str, name: &str, code: i32, base_sha: Option<&str>) {
    let mut command = herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
    command.env("CI_JOB_NAME", "test").env("CI_JOB_URL", url).env("CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "main");
    if let Some(sha) = base_sha {
        command.env("CI_MERGE_REQUEST_DIFF_BASE_SHA", sha);
    }
    let finished = run(command.args(["run", "--name", name, "--", "sh", "-c", &format!("exit {code}")]));
    assert_eq!(finished.code, Some(code), "{}", finished.stderr_text());
}

fn note(gitlab: &GitLab) -> String {
    let notes = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(notes.len(), 1);
    notes[0].body.clone()
}

/// The visible line of the note that names this step of job `test` as failed.
fn failure_line<'b>(body: &'b str, step: &str) -> &'b str {
    let needle = format!(" › {step}** — ");
    body.lines().find(|line| line.starts_with("❌ **") && line.contains(&needle)).unwrap_or_else(|| {
        panic!("no failure line for {step}:\n{body}");
    })
}

fn current_job(gitlab: &GitLab) -> String {
    gitlab.with(|w| w.add_job(PIPELINE_MERGED, "test", "test", "running")).1
}

/// The requests that read the baseline: the pipelines list, and the baseline's statuses and jobs.
fn baseline_requests(gitlab: &GitLab, pipeline: u64, sha: &str) -> Vec<String> {
    gitlab
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .filter(|r| {
            r.path.ends_with("/pipelines") && !r.path.contains("/merge_requests/") && r.path.starts_with("/projects/")
                || r.path.contains(&format!("/commits/{sha}/statuses"))
                || r.path.ends_with(&format!("/pipelines/{pipeline}/jobs"))
        })
        .map(|r| format!("{}?{}", r.path, r.query))
        .collect()
}

#[test]
fn failures_say_whether_main_fails_the_same_way_at_most_four_requests_per_pipeline() {
    let gitlab = GitLab::start();
    main_pipeline(
        &gitlab,
        PIPELINE_BASE,
        SHA_BASE,
        "failed",
        &[
            ("herald/test › integration", "failed", "failed (exit 1) after 3.0s"),
            ("herald/test › unit", "success", "passed in 1.0s"),
        ],
    );
    let url = current_job(&gitlab);
    step(&gitlab, &url, "unit", 1, Some(SHA_BASE));
    step(&gitlab, &url, "integration", 1, Some(SHA_BASE));

    let body = note(&gitlab);
    let base_link =
        format!("[#{PIPELINE_BASE}](https://gitlab.example.com/{PROJECT_PATH}/-/pipelines/{PIPELINE_BASE})");
    assert!(failure_line(&body, "integration").contains(&format!("also failing on `main` ({base_link})")), "{body}");
    assert!(failure_line(&body, "unit").contains(&format!("new: passes on `main` ({base_link})")), "{body}");
    assert!(body.contains("2 failures: **1 new**, 1 also failing on `main`"), "{body}");

    // Read once for the whole pipeline, by the first full render, and carried in the note:
    // the base's pipeline, then its statuses and its jobs.
    let reads = baseline_requests(&gitlab, PIPELINE_BASE, SHA_BASE);
    assert!(reads.len() <= 4, "{reads:#?}");
    assert_eq!(reads.len(), 3, "{reads:#?}");
    assert!(reads[0].contains("ref=main") && reads[0].contains(&format!("sha={SHA_BASE}")), "{reads:#?}");
    assert!(reads[0].contains("scope=finished") && reads[0].contains("per_page=1"), "{reads:#?}");
}

#[test]
fn when_every_failure_also_fails_on_main_the_heading_says_so() {
    let gitlab = GitLab::start();
    main_pipeline(
        &gitlab,
        PIPELINE_BASE,
        SHA_BASE,
        "failed",
        &[("herald/test › integration", "failed", "failed (exit 1) after 3.0s")],
    );
    let url = current_job(&gitlab);
    step(&gitlab, &url, "integration", 1, Some(SHA_BASE));
    let body = note(&gitlab);
    assert!(body.contains("**1 failure, also failing on `main`**"), "{body}");
}

#[test]
fn no_baseline_means_no_comparison_and_no_error() {
    let gitlab = GitLab::start();
    // `main`'s only pipeline (the standard world's) is still running: nothing finished to compare.
    let url = current_job(&gitlab);
    step(&gitlab, &url, "integration", 1, Some(SHA_BASE));
    let body = note(&gitlab);
    let visible = &body[..body.find("<!-- herald:carried").expect("the hidden block")];
    assert!(!visible.contains("on `main`") && !visible.contains("baseline"), "{body}");
    assert!(!failure_line(&body, "integration").contains(" · ↩️"), "{body}");
    // Looked for once (the base, then the latest finished), not again by later writers.
    step(&gitlab, &url, "unit", 0, Some(SHA_BASE));
    let reads = baseline_requests(&gitlab, PIPELINE_BASE, SHA_BASE);
    assert_eq!(reads.len(), 2, "{reads:#?}");

    // A GitLab that does not answer the pipelines list: left out within the budget, quietly.
    let gitlab = GitLab::start();
    main_pipeline(
        &gitlab,
        PIPELINE_BASE,
        SHA_BASE,
        "failed",
        &[("herald/test › integration", "failed", "failed (exit 1) after 3.0s")],
    );
    gitlab.with(|w| w.faults = Faults::always(Fault::Hang).only("GET", "/projects/42/pipelines"));
    let url = current_job(&gitlab);
    step(&gitlab, &url, "integration", 1, Some(SHA_BASE));
    let body = note(&gitlab);
    assert!(!body.contains("on `main`") && !body.contains("GitLab"), "{body}");
}

#[test]
fn a_baseline_still_running_is_passed_over_for_the_latest_finished() {
    let gitlab = GitLab::start();
    main_pipeline(
        &gitlab,
        PIPELINE_BASE,
        SHA_BASE,
        "failed",
        &[("herald/test › integration", "failed", "failed (exit 1) after 3.0s")],
    );
    // The base's own pipeline is newer and still running: its failures are not known yet.
    main_pipeline(&gitlab, 2005, SHA_MAIN_LATER, "running", &[("herald/test › integration", "success", "passed")]);
    let url = current_job(&gitlab);
    step(&gitlab, &url, "integration", 1, Some(SHA_MAIN_LATER));
    let body = note(&gitlab);
    let line = failure_line(&body, "integration");
    assert!(line.contains("also failing on `main`") && line.contains(&format!("#{PIPELINE_BASE}")), "{body}");
    assert!(!body.contains("#2005"), "{body}");
    let reads = baseline_requests(&gitlab, PIPELINE_BASE, SHA_BASE);
    assert_eq!(reads.len(), 4, "the base's, the latest finished, its statuses and jobs: {reads:#?}");
}

#[test]
fn a_renamed_step_is_not_compared() {
    let gitlab = GitLab::start();
    main_pipeline(
        &gitlab,
        PIPELINE_BASE,
        SHA_BASE,
        "failed",
        &[
            ("herald/test › integration-tests", "failed", "failed (exit 1) after 3.0s"),
            ("herald/test › unit", "failed", "failed (exit 1) after 3.0s"),
        ],
    );
    let url = current_job(&gitlab);
    step(&gitlab, &url, "integration", 1, Some(SHA_BASE));
    step(&gitlab, &url, "unit", 1, Some(SHA_BASE));
    let body = note(&gitlab);
    assert!(!failure_line(&body, "integration").contains("on `main`"), "{body}");
    assert!(failure_line(&body, "unit").contains("also failing on `main`"), "{body}");
    assert!(body.contains("2 failures: 1 also failing on `main`, 1 not compared"), "{body}");
}

#[test]
fn a_job_that_passed_on_retry_is_counted_flaky_in_the_heading() {
    let gitlab = GitLab::start();
    gitlab.with(|w| {
        let (first, _) = w.add_job(PIPELINE_MERGED, "e2e", "test", "failed");
        w.jobs.iter_mut().find(|j| j.id == first).expect("the attempt").retried = true;
        w.add_job(PIPELINE_MERGED, "e2e", "test", "success");
    });
    let url = current_job(&gitlab);
    step(&gitlab, &url, "unit", 0, None);
    let body = note(&gitlab);
    assert!(body.contains("🔁 1 job flaky: passed on retry"), "{body}");
    let e2e = body.lines().find(|line| line.contains("[e2e](")).expect("the e2e job's line");
    assert!(e2e.contains("🔁 flaky: passed on retry after [failed attempt]("), "{body}");
}

#[test]
fn a_step_much_slower_than_on_main_says_so_in_its_row() {
    let gitlab = GitLab::start();
    main_pipeline(
        &gitlab,
        PIPELINE_BASE,
        SHA_BASE,
        "success",
        &[
            ("herald/build › compile", "success", "passed in 1m55s"),
            ("herald/build › package", "success", "passed in 20.0s"),
            ("herald/build › lint", "success", "passed in 2.0s"),
        ],
    );
    gitlab.with(|w| {
        // Posted by the build job earlier in this pipeline.
        let (_, url) = w.add_job(PIPELINE_MERGED, "build", "build", "success");
        for (name, description) in [
            ("herald/build › compile", "passed in 4m10s"),
            // Twice as slow but only 20 s slower, and 30 s slower but not twice as slow: noise.
            ("herald/build › package", "passed in 40.0s"),
            ("herald/build › lint", "passed in 31.0s"),
        ] {
            let id = w.add_status(PIPELINE_MERGED, name, "success", &url);
            w.jobs.iter_mut().find(|j| j.id == id).expect("the status").description = Some(description.into());
        }
    });
    let url = current_job(&gitlab);
    step(&gitlab, &url, "unit", 0, Some(SHA_BASE));
    let body = note(&gitlab);
    let build = body.lines().find(|line| line.contains("[build](")).expect("the build job's line");
    assert!(build.contains("compile passed in 4m10s (🐢 slower than `main`: 4m10s vs 1m55s)"), "{body}");
    assert_eq!(build.matches("slower than").count(), 1, "{body}");
}

#[test]
fn a_job_without_herald_is_compared_by_its_name() {
    let gitlab = GitLab::start();
    main_pipeline(&gitlab, PIPELINE_BASE, SHA_BASE, "success", &[]);
    gitlab.with(|w| {
        w.add_job(PIPELINE_BASE, "docs", "test", "failed");
        w.add_job(PIPELINE_BASE, "audit", "test", "success");
        w.add_job(PIPELINE_MERGED, "docs", "test", "failed");
        w.add_job(PIPELINE_MERGED, "audit", "test", "failed");
    });
    let url = current_job(&gitlab);
    step(&gitlab, &url, "unit", 0, Some(SHA_BASE));
    let body = note(&gitlab);
    let line = |job: &str| body.lines().find(|l| l.contains(&format!("[{job}]("))).expect("the job's line");
    assert!(line("docs").contains("also failing on `main`"), "{body}");
    assert!(line("audit").contains("new: passes on `main`"), "{body}");
    assert!(body.contains("2 failures: **1 new**, 1 also failing on `main`"), "{body}");
}
