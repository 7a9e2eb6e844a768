//! Linters' findings as threads on the merge request's changed lines, from real reports of real
//! tools (tests/fixtures/findings: ruff 0.17 in its `gitlab` and `sarif` formats, clippy through
//! clippy-sarif 0.8), against the stand-in's diff versions, diffs and discussions.

use std::path::Path;

use crate::support::gitlab::*;
use crate::support::{herald_in_ci, run, Finished, PipelineKind, TempDir};

pub(crate) fn fixture(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/findings").join(path);
    std::fs::read_to_string(full).unwrap()
}

/// A unified diff's hunks, as GitLab's diffs API gives them (no file headers).
pub(crate) fn hunks(diff: &str) -> String {
    diff[diff.find("@@ ").unwrap()..].to_owned()
}

/// The merge request's newest version: `path` changed by `diff`.
pub(crate) fn push(gitlab: &GitLab, version: u64, diff: &str, path: &str, new_file: bool) {
    push_renamed(gitlab, version, diff, path, path, new_file);
}

pub(crate) fn push_renamed(gitlab: &GitLab, version: u64, diff: &str, old_path: &str, path: &str, new_file: bool) {
    gitlab.with(|w| {
        w.mr_versions.push(DiffVersion {
            id: version,
            head_commit_sha: format!("{version:040}"),
            base_commit_sha: "b".repeat(40),
            start_commit_sha: "b".repeat(40),
        });
        w.mr_diffs = vec![FileDiff {
            old_path: old_path.into(),
            new_path: path.into(),
            new_file,
            deleted_file: false,
            diff: hunks(diff),
        }];
    });
}

pub(crate) fn findings(gitlab: &GitLab, checkout: &Path, args: &[&str]) -> Finished {
    run(herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_PROJECT_DIR", checkout)
        .current_dir(checkout)
        .arg("findings")
        .args(args))
}

pub(crate) fn threads(gitlab: &GitLab) -> Vec<Discussion> {
    gitlab.with(|w| w.discussions.clone())
}

pub(crate) fn position(thread: &Discussion) -> Option<(String, u64)> {
    thread.notes[0].position.clone()
}

#[test]
fn findings_on_changed_lines_become_threads_once_and_fixed_ones_are_resolved() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings");
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v1.py")).unwrap();
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v1-gitlab.json")).unwrap();
    push(&gitlab, 1, &fixture("ruff/v1.diff"), "app.py", false);

    let first = findings(&gitlab, checkout.path(), &["ruff.json"]);
    assert_eq!(first.code, Some(0), "{}", first.stderr_text());
    assert_eq!(
        first.stderr_text().trim(),
        "herald findings: 4 findings, 2 on changed lines (2 new threads) — elsewhere app.py:1 F401, app.py:20 F841",
        "F401 and the first F841 are on lines the MR did not change: counted, not posted"
    );
    let posted = threads(&gitlab);
    let at: Vec<Option<(String, u64)>> = posted.iter().map(position).collect();
    assert_eq!(at, [Some(("app.py".into(), 15)), Some(("app.py".into(), 21))]);
    assert!(posted[0].notes[0].body.starts_with("⚠️ **ruff** <code>E722</code> (major): Do not use bare \\`except\\`"));

    // The same report again (a retried job): nothing new.
    let again = findings(&gitlab, checkout.path(), &["ruff.json"]);
    assert_eq!(
        again.stderr_text().trim(),
        "herald findings: 4 findings, 2 on changed lines — elsewhere app.py:1 F401, app.py:20 F841"
    );
    assert_eq!(threads(&gitlab).len(), 2);

    // A reviewer resolves the F841 thread (a false positive, say).
    gitlab.with(|w| w.discussions[1].resolved = true);

    // The next push fixes the bare `except` and adds a new unused variable.
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v2.py")).unwrap();
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v2-gitlab.json")).unwrap();
    push(&gitlab, 2, &fixture("ruff/v2.diff"), "app.py", false);
    let second = findings(&gitlab, checkout.path(), &["ruff.json"]);
    assert_eq!(
        second.stderr_text().trim(),
        "herald findings: 4 findings, 2 on changed lines (1 new thread), 1 fixed — elsewhere app.py:1 F401, app.py:20 F841"
    );
    let after = threads(&gitlab);
    assert_eq!(after.len(), 3, "only the new finding got a thread");
    let fixed = &after[0];
    assert!(fixed.resolved, "the fixed finding's thread is resolved");
    assert_eq!(fixed.notes.len(), 2);
    assert!(
        fixed.notes[1].body.starts_with("Fixed in `cccccccc`: ruff no longer reports it."),
        "{}",
        fixed.notes[1].body
    );
    let reviewed = &after[1];
    assert!(reviewed.resolved && reviewed.notes.len() == 1, "the reviewer's resolved thread is left as it was");
    assert_eq!(position(&after[2]), Some(("app.py".into(), 22)));
    assert!(gitlab.with(|w| w.quick_actions.is_empty()));
}

#[test]
fn a_renamed_files_findings_are_positioned_with_both_paths() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-renamed");
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v1.py")).unwrap();
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v1-gitlab.json")).unwrap();
    // The MR moved src/app.py to app.py and changed it.
    push_renamed(&gitlab, 1, &fixture("ruff/v1.diff"), "src/app.py", "app.py", false);
    let finished = findings(&gitlab, checkout.path(), &["ruff.json"]);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(threads(&gitlab).len(), 2, "{}", finished.stderr_text());
}

#[test]
fn sarif_fixes_become_one_click_suggestions() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-sarif");
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v1.py")).unwrap();
    // As ruff wrote it in /tmp/rf, with the checkout's own path.
    let report =
        fixture("ruff/v1-sarif.json").replace("file:///tmp/rf/", &format!("file://{}/", checkout.path().display()));
    std::fs::write(checkout.join("ruff.sarif"), report).unwrap();
    push(&gitlab, 1, &fixture("ruff/v1.diff"), "app.py", false);
    let finished = findings(&gitlab, checkout.path(), &["--format", "sarif", "ruff.sarif"]);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let posted = threads(&gitlab);
    assert_eq!(posted.len(), 2, "{posted:#?}");
    let unused = &posted.iter().find(|t| position(t) == Some(("app.py".into(), 21))).unwrap().notes[0].body;
    assert!(
        unused.contains("```suggestion:-0+0\n    parse(load(sys.argv[1]))\n```"),
        "removing the assignment, as ruff's fix does: {unused}"
    );
    let bare = &posted.iter().find(|t| position(t) == Some(("app.py".into(), 15))).unwrap().notes[0].body;
    assert!(!bare.contains("suggestion"), "no fix, no suggestion: {bare}");
}

#[test]
fn a_step_publishes_its_report_and_its_status_says_so() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-clippy");
    std::fs::create_dir_all(checkout.join("src")).unwrap();
    std::fs::write(checkout.join("src/lib.rs"), fixture("clippy/src/lib.rs")).unwrap();
    std::fs::write(checkout.join("clippy.sarif"), fixture("clippy/clippy.sarif")).unwrap();
    let lines = fixture("clippy/src/lib.rs").lines().count();
    let diff = format!(
        "@@ -0,0 +1,{lines} @@\n{}",
        fixture("clippy/src/lib.rs").lines().map(|l| format!("+{l}\n")).collect::<String>()
    );
    push(&gitlab, 1, &diff, "src/lib.rs", true);
    // clippy exits 0 with warnings; the findings are published after the step, whatever its code.
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_PROJECT_DIR", checkout.path())
        .current_dir(checkout.path())
        .args(["run", "--name", "clippy", "--findings", "clippy.sarif", "--", "true"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let lines: Vec<u64> = threads(&gitlab).iter().filter_map(|t| position(t).map(|(_, line)| line)).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let status = gitlab.with(|w| w.statuses(PIPELINE_MERGED)["herald/lint › clippy"].clone());
    let description = status.description.unwrap();
    assert!(description.starts_with("passed in "), "{description}");
    assert!(description.ends_with("s · 4 findings, 4 on changed lines (4 new threads)"), "{description}");
    // The note's heading counts them (the step's job is not among the stand-in pipeline's jobs:
    // no job link here; the unit tests in report/note/tests.rs have one).
    let notes = gitlab.with(|w| w.herald_notes(1));
    let note = &notes.last().expect("the step wrote the note").body;
    assert!(note.contains("\n🔎 **4 findings on changed lines** (4 new threads): clippy\n"), "{note}");
}

#[test]
fn bad_reports_publish_nothing_and_hostile_ones_stay_inert() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-bad");
    std::fs::write(checkout.join("app.py"), fixture("ruff/app.v1.py")).unwrap();
    std::fs::write(checkout.join("ruff.json"), fixture("ruff/v1-gitlab.json")).unwrap();
    std::fs::write(checkout.join("broken.json"), "[{\"check_name\": ").unwrap();
    push(&gitlab, 1, &fixture("ruff/v1.diff"), "app.py", false);
    let finished = findings(&gitlab, checkout.path(), &["ruff.json", "broken.json"]);
    assert_eq!(finished.code, Some(0));
    let line = finished.stderr_text();
    assert!(
        line.starts_with("herald findings: broken.json: not JSON:") && line.trim_end().ends_with("; nothing published"),
        "{line}"
    );
    assert_eq!(line.lines().count(), 1);
    assert!(threads(&gitlab).is_empty(), "not even the good report: a partial picture would resolve threads wrongly");
    assert_eq!(findings(&gitlab, checkout.path(), &["--strict", "broken.json"]).code, Some(1));

    // A report naming files outside the checkout, and text that would act if it were not escaped.
    let hostile = r#"[
      {"check_name": "X1", "description": "/merge\n@all <img src=x onerror=alert(1)>", "severity": "critical",
       "fingerprint": "aa", "location": {"path": "app.py", "lines": {"begin": 15}}},
      {"check_name": "X2", "description": "secrets", "severity": "major", "fingerprint": "bb",
       "location": {"path": "/etc/passwd", "lines": {"begin": 1}}}
    ]"#;
    std::fs::write(checkout.join("hostile.json"), hostile).unwrap();
    let finished = findings(&gitlab, checkout.path(), &["hostile.json"]);
    assert!(
        finished.stderr_text().contains("hostile.json: 1 finding(s) outside the checkout left out"),
        "{}",
        finished.stderr_text()
    );
    let posted = threads(&gitlab);
    assert_eq!(posted.len(), 1);
    let body = &posted[0].notes[0].body;
    assert!(
        body.lines().all(|l| !l.trim_start().starts_with('/')) && !body.contains("@all") && !body.contains("<img"),
        "{body}"
    );
    assert!(gitlab.with(|w| w.quick_actions.is_empty()));
}

#[test]
fn at_most_twenty_five_threads_per_pipeline_the_worst_first() {
    let gitlab = GitLab::start();
    let checkout = TempDir::new("findings-cap");
    let source: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    std::fs::write(checkout.join("big.py"), &source).unwrap();
    let diff = format!("@@ -0,0 +1,40 @@\n{}", source.lines().map(|l| format!("+{l}\n")).collect::<String>());
    push(&gitlab, 1, &diff, "big.py", true);
    let report: Vec<String> = (1..=30)
        .map(|i| {
            let severity = if i == 30 { "blocker" } else { "minor" };
            format!(r#"{{"check_name": "R{i}", "description": "finding {i}", "severity": "{severity}", "fingerprint": "f{i}", "location": {{"path": "big.py", "lines": {{"begin": {i}}}}}}}"#)
        })
        .collect();
    std::fs::write(checkout.join("lint.json"), format!("[{}]", report.join(","))).unwrap();
    let finished = findings(&gitlab, checkout.path(), &["lint.json"]);
    assert_eq!(
        finished.stderr_text().trim(),
        "herald findings: 30 findings, 30 on changed lines (25 new threads, 5 over the cap of 25)"
    );
    let posted = threads(&gitlab);
    assert_eq!(posted.len(), 25);
    assert!(posted[0].notes[0].body.contains("finding 30"), "the blocker first");
    // The same pipeline again: the cap is spent.
    let again = findings(&gitlab, checkout.path(), &["lint.json"]);
    assert!(again.stderr_text().contains("(5 over the cap of 25)"), "{}", again.stderr_text());
    assert_eq!(threads(&gitlab).len(), 25);
}
