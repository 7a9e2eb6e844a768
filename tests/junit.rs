//! `HERALD_JUNIT`: each step appends a test case; the file is valid JUnit XML after every step.

use crate::support::{herald, run, TempDir};

fn cases(report: &str) -> Vec<(String, bool)> {
    let document = roxmltree::Document::parse(report).unwrap_or_else(|e| panic!("invalid XML ({e}):\n{report}"));
    document
        .descendants()
        .filter(|node| node.has_tag_name("testcase"))
        .map(|case| (case.attribute("name").unwrap().to_owned(), case.children().any(|c| c.has_tag_name("failure"))))
        .collect()
}

#[test]
fn steps_append_in_turn_and_the_file_stays_valid() {
    let dir = TempDir::new("junit");
    let report = dir.join("reports/junit.xml");
    std::fs::create_dir_all(report.parent().unwrap()).unwrap();
    let step = |name: &str, script: &str| {
        run(herald()
            .env("HERALD_JUNIT", &report)
            .env("CI_JOB_NAME", "test <job>")
            .args(["run", "--name", name, "--", "sh", "-c", script]))
    };
    assert_eq!(step("unit", "exit 0").code, Some(0));
    assert_eq!(cases(&std::fs::read_to_string(&report).unwrap()), [("unit".to_owned(), false)]);
    assert_eq!(step("lint & <format>", "exit 3").code, Some(3), "reporting never changes the exit code");
    let text = std::fs::read_to_string(&report).unwrap();
    assert_eq!(cases(&text), [("unit".to_owned(), false), ("lint & <format>".to_owned(), true)]);
    assert!(text.contains("tests=\"2\" failures=\"1\""), "{text}");
    assert!(text.contains("classname=\"test &lt;job&gt;\""), "{text}");
    assert!(text.contains("failed (exit 3) after"), "{text}");
}

#[test]
fn concurrent_steps_lose_nothing() {
    let dir = TempDir::new("junit-parallel");
    let report = dir.join("junit.xml");
    let children: Vec<_> = (0..8)
        .map(|i| {
            herald()
                .env("HERALD_JUNIT", &report)
                .args(["run", "--name", &format!("step {i}"), "--", "true"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let finished = crate::support::finish(child);
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    }
    let mut names: Vec<String> =
        cases(&std::fs::read_to_string(&report).unwrap()).into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(names, (0..8).map(|i| format!("step {i}")).collect::<Vec<_>>());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["junit.xml"], "no temporary files left behind");
}

#[test]
fn a_file_herald_cannot_extend_is_left_alone_and_the_step_still_passes() {
    let dir = TempDir::new("junit-foreign");
    let report = dir.join("junit.xml");
    std::fs::write(&report, "not xml at all").unwrap();
    let finished = run(herald().env("HERALD_JUNIT", &report).args(["run", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "not xml at all");
    assert_eq!(finished.stderr_text().lines().count(), 1, "{}", finished.stderr_text());
    assert!(finished.stderr_text().starts_with("herald: HERALD_JUNIT:"));
}
