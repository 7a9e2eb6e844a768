//! In GitLab CI, every step gets a collapsible job-log section and a summary line
//! (docs/gitlab.md §F), on stderr so a redirected stdout stays clean.

use crate::support::{herald, run};

/// GitLab's section parser, by hand: `section_(start|end):<digits>:<[A-Za-z0-9_.-]+>` followed by
/// `\r\e[0K`; text that does not match all of it is not a marker. Returns (kind, timestamp, name)
/// of each marker in order.
fn markers(log: &str) -> Vec<(String, u64, String)> {
    let mut found = Vec::new();
    for (at, _) in log.match_indices("section_") {
        let rest = &log[at + "section_".len()..];
        let Some((kind, rest)) = rest.split_once(':') else { continue };
        let Some((stamp, rest)) = rest.split_once(':') else { continue };
        let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "_.-".contains(c))).unwrap_or(rest.len());
        let (Ok(stamp), true) = (stamp.parse(), rest[name_len..].starts_with("\r\x1b[0K")) else { continue };
        if kind == "start" || kind == "end" {
            found.push((kind.to_owned(), stamp, rest[..name_len].to_owned()));
        }
    }
    found
}

#[test]
fn each_step_is_a_section_with_a_summary_line() {
    let finished = run(herald().env("GITLAB_CI", "true").args([
        "run",
        "--name",
        "unit tests",
        "--",
        "sh",
        "-c",
        "echo output; exit 2",
    ]));
    assert_eq!(finished.code, Some(2));
    assert_eq!(finished.stdout_text(), "output\n", "stdout carries only the step's output");
    let log = finished.stderr_text();
    let found = markers(&log);
    assert_eq!(found.len(), 2, "{log:?}");
    let ((start, started, name), (end, ended, end_name)) = (&found[0], &found[1]);
    assert_eq!((start.as_str(), end.as_str()), ("start", "end"));
    assert_eq!(name, end_name);
    assert!(name.starts_with("herald-unit-tests-"), "{name}");
    assert!(ended >= started);
    assert!(log.contains("▶ unit tests"));
    let summary = log.lines().find(|l| l.contains("✘")).expect("a summary line");
    assert!(summary.contains("✘ unit tests failed (exit 2) after "), "{summary:?}");
}

#[test]
fn steps_of_one_job_get_distinct_sections() {
    let first = run(herald().env("GITLAB_CI", "true").args(["run", "--", "true"]));
    let second = run(herald().env("GITLAB_CI", "true").args(["run", "--", "true"]));
    let (a, b) = (markers(&first.stderr_text()), markers(&second.stderr_text()));
    assert_ne!(a[0].2, b[0].2);
    assert!(first.stderr_text().contains("✔ true passed in "));
}

#[test]
fn nothing_is_added_outside_ci() {
    let finished = run(herald().args(["run", "--", "sh", "-c", "echo out; echo err >&2"]));
    assert_eq!((finished.stdout_text().as_str(), finished.stderr_text().as_str()), ("out\n", "err\n"));
}

#[test]
fn hostile_step_names_cannot_break_the_log() {
    let finished = run(herald().env("GITLAB_CI", "true").args([
        "run",
        "--name",
        "x\r\x1b[2Jsection_end:1:evil\r\x1b[0K",
        "--",
        "true",
    ]));
    let log = finished.stderr_text();
    let found = markers(&log);
    // The name's own "section_end:1:evil" lost its \r and escape, so it is not a marker: only ours.
    assert!(found.iter().all(|(_, _, name)| name.starts_with("herald-")), "{found:?}");
    assert!(!log.contains("\x1b[2J"));
}
