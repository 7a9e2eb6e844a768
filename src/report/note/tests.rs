//! Unit tests of the note's parts (the whole note's text is snapshotted in tests/note_render.rs).

use super::attention::excerpt_block;
use super::header::{branch_code, findings_counts, findings_line};
use super::*;

#[test]
fn markers_round_trip() {
    assert_eq!(pipeline_of(&format!("{}\nrest", marker(1234))), Some(1234));
    assert_eq!(pipeline_of("<!-- something else -->"), None);
    assert_eq!(pipeline_of("text <!-- herald:note pipeline=5 -->"), None, "only at the very start");
}

#[test]
fn the_heading_counts_findings_on_changed_lines() {
    assert_eq!(
        findings_counts("passed in 1.0s · 4 findings, 3 on changed lines (2 new threads) — elsewhere a.py:1 X"),
        Some((3, 2))
    );
    assert_eq!(findings_counts("failed (exit 1) after 2.0s · 1 finding, 1 on changed lines"), Some((1, 0)));
    assert_eq!(findings_counts("passed in 1.0s"), None);
    let job = JobView {
        name: "lint".into(),
        web_url: Some("https://gitlab.example.com/g/p/-/jobs/7".into()),
        ..JobView::default()
    };
    let step = |name: &str, description: &str| Entry {
        job: Some(&job),
        name: name.into(),
        state: StepState::Passed,
        result: description.into(),
        started_at: None,
        excerpt: &[],
        on_target: None,
        baseline: None,
    };
    let entries = [
        step("ruff", "passed in 1.0s · 4 findings, 3 on changed lines (2 new threads)"),
        step("clippy", "passed in 1.0s · 1 finding, 1 on changed lines"),
        step("test", "passed in 9.0s"),
    ];
    assert_eq!(
        findings_line(&entries),
        "\n\n🔎 **4 findings on changed lines** (2 new threads): [lint](https://gitlab.example.com/g/p/-/jobs/7) › ruff, [lint](https://gitlab.example.com/g/p/-/jobs/7) › clippy"
    );
    assert_eq!(findings_line(&entries[2..]), "");
}

#[test]
fn branch_names_are_inert() {
    assert_eq!(branch_code("release/1.2"), "`release/1.2`");
    assert_eq!(branch_code("a`b<script>@all"), "<code>a\\`b&lt;script&gt;@\u{200b}all</code>");
}

#[test]
fn excerpts_cannot_escape_their_block() {
    let block = excerpt_block(&["</pre><b>@all</b>".into(), "/merge".into()], 10);
    assert_eq!(block, "<pre>&lt;/pre&gt;&lt;b&gt;@\u{200b}all&lt;/b&gt;\n\u{200b}/merge</pre>\n");
}

#[test]
fn clocks_are_gitlabs_utc() {
    assert_eq!(clock(1_764_493_440.0), "09:04 UTC");
}
