//! Findings you can trust (issue 24): each of the attacks and mix-ups seen, against the real
//! binary and the stand-in, on real reports (ruff's Code Quality and SARIF, clippy-sarif) and
//! hostile ones. The stand-in records any thread or reply holding a secret-looking value.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::findings::{findings, fixture, position, push, threads};
use crate::support::gitlab::*;
use crate::support::{finish, herald, herald_in_ci, run, Finished, PipelineKind, TempDir};

/// A checkout with ruff's v1 `app.py`, changed by the MR as ruff's fixture diff says.
fn ruff_checkout(gitlab: &GitLab, name: &str) -> TempDir {
    let checkout = TempDir::new(name);
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v1.py")).unwrap();
    push(gitlab, 1, &fixture("ruff/v1.diff"), "app.py", false);
    checkout
}

/// ruff's SARIF as if ruff had run in `checkout`.
fn ruff_sarif(checkout: &Path, name: &str) -> String {
    fixture(name).replace("file:///tmp/rf/", &format!("file://{}/", checkout.display()))
}

/// `herald findings` in a job of pipeline `pipeline` (a later push's pipeline, say).
fn findings_in(gitlab: &GitLab, checkout: &Path, pipeline: u64, job: &str, args: &[&str]) -> Finished {
    run(herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_PROJECT_DIR", checkout)
        .env("CI_PIPELINE_ID", pipeline.to_string())
        .env("CI_JOB_NAME", job)
        .current_dir(checkout)
        .arg("findings")
        .args(args))
}

/// `herald run --findings REPORT -- true` in the merged-results pipeline.
fn step_with_findings(gitlab: &GitLab, checkout: &Path, report: &str) -> Command {
    let mut command = herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
    command.env("CI_PROJECT_DIR", checkout).current_dir(checkout).args([
        "run",
        "--name",
        "lint",
        "--findings",
        report,
        "--",
        "true",
    ]);
    command
}

fn lint_status(gitlab: &GitLab) -> Job {
    gitlab.with(|w| w.statuses(PIPELINE_MERGED)["herald/lint › lint"].clone())
}

fn resolved(gitlab: &GitLab) -> usize {
    threads(gitlab).iter().filter(|t| t.resolved).count()
}

/// A whole new file of `lines` lines added by the MR.
fn added_file(gitlab: &GitLab, checkout: &Path, path: &str, lines: usize) {
    let source: String = (1..=lines).map(|i| format!("line {i}\n")).collect();
    std::fs::create_dir_all(checkout.join(path).parent().unwrap()).unwrap();
    std::fs::write(checkout.join(path), &source).unwrap();
    let diff = format!("@@ -0,0 +1,{lines} @@\n{}", source.lines().map(|l| format!("+{l}\n")).collect::<String>());
    gitlab.with(|w| {
        if w.mr_versions.is_empty() {
            w.mr_versions.push(DiffVersion {
                id: 1,
                head_commit_sha: format!("{:040}", 1),
                base_commit_sha: "b".repeat(40),
                start_commit_sha: "b".repeat(40),
            });
        }
        w.mr_diffs.push(FileDiff {
            old_path: path.into(),
            new_path: path.into(),
            new_file: true,
            deleted_file: false,
            diff,
        });
    });
}

fn code_quality(findings: &[(&str, &str, &str, u64, &str)]) -> String {
    let items: Vec<String> = findings
        .iter()
        .map(|(rule, message, path, line, fingerprint)| {
            serde_json::json!({"check_name": rule, "description": message, "severity": "major",
                "fingerprint": fingerprint, "location": {"path": path, "lines": {"begin": line}}})
            .to_string()
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[test]
fn the_token_in_a_finding_is_masked_in_threads_statuses_and_output() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-token");
    added_file(&gitlab, checkout.path(), "app/x.py", 5);
    // Built from parts so that no token-shaped literal sits in the repository.
    let shaped = concat!("glpat-", "abcdefghij0123456789xyz");
    let report = code_quality(&[
        ("E1", &format!("leaked {TOKEN_DEVELOPER} here"), "app/x.py", 1, "f1"),
        (shaped, "rule id shaped like a token", "app/x.py", 2, "f2"),
        ("E3", "path holds the token", &format!("app/{TOKEN_DEVELOPER}.py"), 3, "f3"),
        ("E4", "a path off the diff", &format!("lib/{shaped}.py"), 9, "f4"),
    ]);
    std::fs::write(checkout.join("lint.json"), report).unwrap();
    let finished = run(&mut step_with_findings(&gitlab, checkout.path(), "lint.json"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let everything = format!("{}{}", finished.stderr_text(), finished.stdout_text());
    assert!(!everything.contains(TOKEN_DEVELOPER) && !everything.contains(shaped), "{everything}");
    assert!(everything.contains("[MASKED]"), "{everything}");
    let description = lint_status(&gitlab).description.unwrap();
    assert!(!description.contains(TOKEN_DEVELOPER) && !description.contains("glpat-"), "{description}");
    assert!(description.contains("elsewhere"), "{description}");
    assert_eq!(threads(&gitlab).len(), 2, "the two findings on changed lines of app/x.py");
    assert_eq!(gitlab.with(|w| w.secrets_in_threads.clone()), vec![]);
}

#[test]
fn a_fix_aimed_through_a_symlink_out_of_the_checkout_is_no_suggestion() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-symlink");
    std::fs::create_dir_all(checkout.join("app")).unwrap();
    // Added in the MR: links out of the checkout.
    std::os::unix::fs::symlink("/proc/self/environ", checkout.join("app/link.py")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", checkout.join("app/zero.py")).unwrap();
    gitlab.with(|w| {
        w.mr_versions.push(DiffVersion {
            id: 1,
            head_commit_sha: format!("{:040}", 1),
            base_commit_sha: "b".repeat(40),
            start_commit_sha: "b".repeat(40),
        });
        for path in ["app/link.py", "app/zero.py"] {
            w.mr_diffs.push(FileDiff {
                old_path: path.into(),
                new_path: path.into(),
                new_file: true,
                deleted_file: false,
                diff: "@@ -0,0 +1 @@\n+/proc/self/environ\n".into(),
            });
        }
    });
    let result = |path: &str| {
        serde_json::json!({"ruleId": "X1", "level": "error", "message": {"text": "look"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": path}, "region": {"startLine": 1}}}],
            "fixes": [{"artifactChanges": [{"artifactLocation": {"uri": path}, "replacements": [
                {"deletedRegion": {"startLine": 1, "startColumn": 1, "endLine": 1, "endColumn": 2}, "insertedContent": {"text": "y"}}]}]}]})
    };
    let report = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "evil"}},
        "results": [result("app/link.py"), result("app/zero.py")]}]});
    std::fs::write(checkout.join("evil.sarif"), report.to_string()).unwrap();
    let mut command = herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
    command.env("CI_PROJECT_DIR", checkout.path()).current_dir(checkout.path()).args(["findings", "evil.sarif"]);
    // A read of /dev/zero would grow memory until this limit, then abort.
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 3 << 29, rlim_max: 3 << 29 };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let finished = run(&mut command);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let posted = threads(&gitlab);
    assert_eq!(posted.len(), 2, "the findings are still posted: {}", finished.stderr_text());
    for thread in &posted {
        assert!(!thread.notes[0].body.contains("suggestion"), "{}", thread.notes[0].body);
        assert!(!thread.notes[0].body.contains("HERALD_TOKEN"), "{}", thread.notes[0].body);
    }
    assert_eq!(gitlab.with(|w| w.secrets_in_threads.clone()), vec![]);
}

#[test]
fn a_uri_with_a_percent_before_a_multibyte_character_does_not_fail_a_passing_job() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-percent");
    added_file(&gitlab, checkout.path(), "app/a.py", 3);
    let report = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "ruff"}}, "results": [
        {"ruleId": "X1", "message": {"text": "odd"}, "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "app/a%x€.py"}, "region": {"startLine": 1}}}]},
        {"ruleId": "X2", "message": {"text": "fine"}, "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "app/a%2Epy"}, "region": {"startLine": 2}}}]}]}]});
    std::fs::write(checkout.join("odd.sarif"), report.to_string()).unwrap();
    let finished = run(&mut step_with_findings(&gitlab, checkout.path(), "odd.sarif"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(!finished.stderr_text().contains("panicked"), "{}", finished.stderr_text());
    let status = lint_status(&gitlab);
    assert_eq!(status.status, "success");
    let description = status.description.unwrap();
    assert!(
        description.ends_with("2 findings, 1 on changed lines (1 new thread) — elsewhere app/a%x€.py:1 X1"),
        "{description}"
    );
}

#[test]
fn a_report_that_is_a_fifo_is_one_line_and_the_step_ends() {
    let gitlab = GitLab::start();
    let checkout = ruff_checkout(&gitlab, "findings-fifo");
    let fifo = checkout.join("ruff.json");
    let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let finished = run(&mut step_with_findings(&gitlab, checkout.path(), "ruff.json"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let said: Vec<String> =
        finished.stderr_text().lines().filter(|l| l.contains("ruff.json")).map(str::to_owned).collect();
    assert_eq!(said, ["herald: findings: ruff.json: a FIFO, not a regular file: not read; nothing published"]);
    assert_eq!(lint_status(&gitlab).status, "success");
    assert!(threads(&gitlab).is_empty());
    // And a device, standalone.
    let finished = findings(&gitlab, checkout.path(), &["/dev/zero"]);
    assert_eq!(
        finished.stderr_text().trim(),
        "herald findings: /dev/zero: a device, not a regular file: not read; nothing published"
    );
}

#[test]
fn a_panic_while_publishing_findings_leaves_the_steps_code_and_status_alone() {
    let gitlab = GitLab::start();
    let checkout = ruff_checkout(&gitlab, "findings-panic");
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v1-gitlab.json")).unwrap();
    let finished = run(step_with_findings(&gitlab, checkout.path(), "ruff.json").env("HERALD_TEST_PANIC", "findings"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(finished.stderr_text().contains("herald: findings: not published: an internal error"));
    assert_eq!(lint_status(&gitlab).status, "success");
}

#[test]
fn sarif_then_code_quality_of_the_same_ruff_run_is_the_same_threads() {
    let gitlab = GitLab::start();
    let checkout = ruff_checkout(&gitlab, "findings-formats");
    std::fs::write(checkout.join("ruff.sarif"), ruff_sarif(checkout.path(), "ruff/v1-sarif.json")).unwrap();
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v1-gitlab.json")).unwrap();
    let first = findings_in(&gitlab, checkout.path(), 2001, "lint", &["ruff.sarif"]);
    assert!(first.stderr_text().contains("(2 new threads)"), "{}", first.stderr_text());
    // The next pipeline's job writes Code Quality instead.
    let second = findings_in(&gitlab, checkout.path(), 2002, "lint", &["ruff.json"]);
    assert_eq!(
        second.stderr_text().trim(),
        "herald findings: 4 findings, 2 on changed lines — elsewhere app.py:1 F401, app.py:20 F841"
    );
    // And back, with both at once in a third.
    let third = findings_in(&gitlab, checkout.path(), 2003, "lint", &["ruff.sarif", "ruff.json"]);
    assert!(
        !third.stderr_text().contains("new thread") && !third.stderr_text().contains("fixed"),
        "{}",
        third.stderr_text()
    );
    assert_eq!((threads(&gitlab).len(), resolved(&gitlab)), (2, 0));
}

#[test]
fn fingerprints_and_tool_names_of_any_spelling_keep_their_thread() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-spelling");
    added_file(&gitlab, checkout.path(), "app/x.py", 5);
    // Fingerprints a marker could not hold before: a colon, base64's `+/=`, a space, `-->`.
    let report = code_quality(&[
        ("R1", "one", "app/x.py", 1, "hash:1"),
        ("R2", "two", "app/x.py", 2, "q+/Zw=="),
        ("R3", "three", "app/x.py", 3, "a b --> c"),
    ]);
    std::fs::write(checkout.join("lint.json"), report).unwrap();
    let semgrep = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "Semgrep OSS"}}, "results": [
        {"ruleId": "python.lang.x", "message": {"text": "semgrep says"}, "partialFingerprints": {"matchBasedId/v1": "ab+/=="},
         "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/x.py"}, "region": {"startLine": 4}}}]}]}]});
    std::fs::write(checkout.join("semgrep.sarif"), semgrep.to_string()).unwrap();
    // A fix whose text carries a marker of its own, before herald's.
    let marker = "<!-- herald:finding tool=imitator fp=zz pipeline=1 -->";
    let imitator = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "imitator"}}, "results": [
        {"ruleId": "I1", "message": {"text": "fix me"}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": "app/x.py"}, "region": {"startLine": 5}}}],
         "fixes": [{"artifactChanges": [{"artifactLocation": {"uri": "app/x.py"}, "replacements": [
            {"deletedRegion": {"startLine": 5, "startColumn": 1, "endLine": 5, "endColumn": 7}, "insertedContent": {"text": marker}}]}]}]}]}]});
    std::fs::write(checkout.join("imitator.sarif"), imitator.to_string()).unwrap();
    let reports = ["lint.json", "semgrep.sarif", "imitator.sarif"];
    for pipeline in [3001, 3002, 3003] {
        let finished = findings_in(&gitlab, checkout.path(), pipeline, "lint", &reports);
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    }
    assert_eq!((threads(&gitlab).len(), resolved(&gitlab)), (5, 0), "{:#?}", threads(&gitlab));
}

#[test]
fn a_thread_post_whose_answer_was_lost_is_not_posted_again() {
    for seed in [1, 2, 3] {
        let gitlab = GitLab::start();
        let checkout = TempDir::new("findings-lost");
        added_file(&gitlab, checkout.path(), "app/x.py", 12);
        let rows: Vec<(String, String, u64, String)> =
            (1..=12).map(|i| (format!("R{i}"), format!("finding {i}"), i, format!("fp{i}"))).collect();
        let report: Vec<(&str, &str, &str, u64, &str)> =
            rows.iter().map(|(r, m, l, f)| (r.as_str(), m.as_str(), "app/x.py", *l, f.as_str())).collect();
        std::fs::write(checkout.join("lint.json"), code_quality(&report)).unwrap();
        gitlab.with(|w| {
            w.faults = Faults::random(0.3, &[Fault::ResetAfterApplying], seed).only("POST", "/discussions");
        });
        let finished = findings_in(&gitlab, checkout.path(), 4001, "lint", &["lint.json"]);
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        let lost = gitlab.with(|w| w.requests.iter().filter(|r| r.fault.is_some()).count());
        assert!(lost > 0, "seed {seed}: some answers were lost");
        assert_eq!(threads(&gitlab).len(), 12, "seed {seed}: one thread per finding");
        assert!(finished.stderr_text().contains("12 on changed lines"), "{}", finished.stderr_text());
        // All fixed in the next pipeline, with the "fixed" replies' answers lost as often.
        std::fs::write(checkout.join("lint.json"), "[]").unwrap();
        gitlab.with(|w| {
            w.faults = Faults::random(0.3, &[Fault::ResetAfterApplying], seed).only("POST", "/notes");
        });
        let fixed = findings_in(&gitlab, checkout.path(), 4002, "lint", &["lint.json"]);
        assert!(fixed.stderr_text().contains("12 fixed"), "{}", fixed.stderr_text());
        let replies: Vec<usize> = threads(&gitlab).iter().map(|t| t.notes.len()).collect();
        assert_eq!(replies, vec![2; 12], "seed {seed}: one reply per fixed thread");
        assert_eq!(resolved(&gitlab), 12);
    }
}

#[test]
fn the_cap_holds_for_concurrent_jobs_of_one_pipeline_within_one_thread_per_job() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-concurrent");
    let jobs = 4;
    for job in 0..jobs {
        added_file(&gitlab, checkout.path(), &format!("app/m{job}.py"), 20);
        let path = format!("app/m{job}.py");
        let rows: Vec<(String, String, u64, String)> =
            (1..=20).map(|i| (format!("R{i}"), format!("job {job} finding {i}"), i, format!("j{job}f{i}"))).collect();
        let report: Vec<(&str, &str, &str, u64, &str)> =
            rows.iter().map(|(r, m, l, f)| (r.as_str(), m.as_str(), path.as_str(), *l, f.as_str())).collect();
        std::fs::write(checkout.join(&format!("lint{job}.json")), code_quality(&report)).unwrap();
    }
    let children: Vec<_> = (0..jobs)
        .map(|job| {
            herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
                .env("CI_PROJECT_DIR", checkout.path())
                .env("CI_JOB_NAME", format!("lint {job}"))
                .current_dir(checkout.path())
                .args(["findings", &format!("lint{job}.json")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let finished: Vec<Finished> = children.into_iter().map(finish).collect();
    for done in &finished {
        assert_eq!(done.code, Some(0), "{}", done.stderr_text());
    }
    let posted = threads(&gitlab).len();
    eprintln!("concurrent cap: {posted} threads for {jobs} jobs");
    assert!((CAP_OF_THREADS..=CAP_OF_THREADS + jobs - 1).contains(&posted), "{posted} threads for {jobs} jobs");
}

/// publish/findings.rs's `CAP`.
const CAP_OF_THREADS: usize = 25;

#[test]
fn another_job_linting_other_files_does_not_resolve_this_jobs_threads() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-jobs");
    added_file(&gitlab, checkout.path(), "app/x.py", 3);
    added_file(&gitlab, checkout.path(), "lib/y.py", 3);
    std::fs::write(checkout.join("ruff.json"), code_quality(&[("F401", "unused", "app/x.py", 1, "a1")])).unwrap();
    std::fs::create_dir_all(checkout.join("lib-report")).unwrap();
    std::fs::write(checkout.join("lib-report/ruff.json"), code_quality(&[("F841", "unused var", "lib/y.py", 2, "b1")]))
        .unwrap();
    findings_in(&gitlab, checkout.path(), 5001, "lint app", &["ruff.json"]);
    findings_in(&gitlab, checkout.path(), 5001, "lint lib", &["lib-report/ruff.json"]);
    // The next pipeline: the same two jobs, the same findings.
    findings_in(&gitlab, checkout.path(), 5002, "lint app", &["ruff.json"]);
    let lib = findings_in(&gitlab, checkout.path(), 5002, "lint lib", &["lib-report/ruff.json"]);
    assert!(!lib.stderr_text().contains("fixed"), "{}", lib.stderr_text());
    assert_eq!((threads(&gitlab).len(), resolved(&gitlab)), (2, 0));
    // The app job's finding is fixed: its own job says so.
    std::fs::write(checkout.join("ruff.json"), "[]").unwrap();
    let app = findings_in(&gitlab, checkout.path(), 5003, "lint app", &["ruff.json"]);
    assert!(app.stderr_text().contains("1 fixed"), "{}", app.stderr_text());
    assert_eq!(resolved(&gitlab), 1);
    // Reported again later: the thread herald resolved is opened again, not duplicated.
    std::fs::write(checkout.join("ruff.json"), code_quality(&[("F401", "unused", "app/x.py", 1, "a1")])).unwrap();
    let back = findings_in(&gitlab, checkout.path(), 5004, "lint app", &["ruff.json"]);
    assert!(back.stderr_text().contains("1 reopened"), "{}", back.stderr_text());
    assert_eq!((threads(&gitlab).len(), resolved(&gitlab)), (2, 0));
}

#[test]
fn rule_ids_link_to_their_documentation_and_fixes_say_what_they_do() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-links");
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v1.py")).unwrap();
    let lines = fixture("ruff/app.v1.py").lines().count();
    let diff = format!(
        "@@ -0,0 +1,{lines} @@\n{}",
        fixture("ruff/app.v1.py").lines().map(|l| format!("+{l}\n")).collect::<String>()
    );
    push(&gitlab, 1, &diff, "app.py", true);
    std::fs::write(checkout.join("ruff.sarif"), ruff_sarif(checkout.path(), "ruff/v1-sarif.json")).unwrap();
    let finished = findings(&gitlab, checkout.path(), &["ruff.sarif"]);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let posted = threads(&gitlab);
    let at = |line: u64| &posted.iter().find(|t| position(t) == Some(("app.py".into(), line))).unwrap().notes[0].body;
    assert!(at(15).contains("[<code>E722</code>](https://docs.astral.sh/ruff/rules/bare-except)"), "{}", at(15));
    assert!(
        at(1).contains("Suggested fix, **deletes this line**: Remove unused import\\: \\`os\\`")
            || at(1).contains("Suggested fix, **deletes this line**: Remove unused import: \\`os\\`"),
        "{}",
        at(1)
    );
    assert!(at(21).contains("Suggested fix: Remove assignment to unused variable \\`unused\\`"), "{}", at(21));
    // A fix the tool marks unsafe (as ruff's own format says F841's is) is no suggestion.
    let mut unsafe_fix: serde_json::Value =
        serde_json::from_str(&ruff_sarif(checkout.path(), "ruff/v1-sarif.json")).unwrap();
    unsafe_fix["runs"][0]["results"][3]["fixes"][0]["properties"] = serde_json::json!({"applicability": "unsafe"});
    gitlab.with(|w| w.discussions.clear());
    std::fs::write(checkout.join("ruff.sarif"), unsafe_fix.to_string()).unwrap();
    findings(&gitlab, checkout.path(), &["ruff.sarif"]);
    let posted = threads(&gitlab);
    let unused = &posted.iter().find(|t| position(t) == Some(("app.py".into(), 21))).unwrap().notes[0].body;
    assert!(!unused.contains("suggestion"), "{unused}");
}

#[test]
fn outside_ci_the_one_line_says_why_nothing_was_published() {
    let checkout = TempDir::new("findings-local");
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v1-gitlab.json")).unwrap();
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v1.py")).unwrap();
    let finished = run(herald().env_remove("GITLAB_CI").current_dir(checkout.path()).args(["findings", "ruff.json"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(
        finished.stderr_text(),
        "herald findings: 4 findings, not published: not in GitLab CI (GITLAB_CI is not set), so there is no merge request to post on\n"
    );
}

#[test]
fn a_hanging_gitlab_holds_herald_findings_for_the_flush_timeout_only() {
    let gitlab = GitLab::start();
    let checkout = ruff_checkout(&gitlab, "findings-hang");
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v1-gitlab.json")).unwrap();
    gitlab.with(|w| w.faults = Faults::always(Fault::Hang));
    let started = Instant::now();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_PROJECT_DIR", checkout.path())
        .env("HERALD_FLUSH_TIMEOUT", "2s")
        .current_dir(checkout.path())
        .args(["findings", "ruff.json"]));
    // Not a speed assertion: the old floor was 30 s, the patience of `run` itself; the margin is wide.
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}: {}", started.elapsed(), finished.stderr_text());
    assert_eq!(finished.code, Some(1), "{}", finished.stderr_text());
}

#[test]
fn doctor_checks_the_role_finding_threads_need() {
    let gitlab = GitLab::start();
    let doctor = |token: &str| {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, token).arg("doctor"));
        let output = finished.stderr_text();
        output.lines().find(|l| l[5..].starts_with("finding threads:")).map(str::to_owned).unwrap_or(output)
    };
    assert_eq!(
        doctor(TOKEN_DEVELOPER),
        "ok   finding threads: !1's threads readable; as Developer herald starts them and resolves fixed ones"
    );
    assert!(
        doctor(TOKEN_REPORTER)
            .starts_with("FAIL finding threads: as Reporter herald can start threads on !1 but not resolve fixed ones"),
        "{}",
        doctor(TOKEN_REPORTER)
    );
}

#[test]
fn threads_of_herald_before_identities_are_still_recognised() {
    let gitlab = GitLab::start();
    let checkout = ruff_checkout(&gitlab, "findings-upgrade");
    std::fs::write(checkout.join("ruff.sarif"), ruff_sarif(checkout.path(), "ruff/v1-sarif.json")).unwrap();
    // The thread the previous herald posted for E722 (ruff's SARIF has no fingerprint: herald's
    // old hash of tool, rule, path, message and count was the marker's `fp`).
    // FNV-1a, as persist.rs's stable_hash.
    let old = b"ruff\nE722\napp.py\nDo not use bare `except`\n1"
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3));
    gitlab.with(|w| {
        w.discussions.push(Discussion {
            id: "d".repeat(40),
            notes: vec![DiscussionNote {
                id: 1,
                author_id: 100,
                body: format!("⚠️ **ruff** E722\n\n<!-- herald:finding tool=ruff fp={old:016x} pipeline=999 -->\n"),
                position: Some(("app.py".into(), 15)),
            }],
            resolved: false,
        })
    });
    let finished = findings_in(&gitlab, checkout.path(), 6001, "lint", &["ruff.sarif"]);
    assert!(finished.stderr_text().contains("2 on changed lines (1 new thread) — "), "{}", finished.stderr_text());
    assert_eq!((threads(&gitlab).len(), resolved(&gitlab)), (2, 0));
}
