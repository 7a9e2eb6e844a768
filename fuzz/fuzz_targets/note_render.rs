//! Any text as job names, job links, step names and results: the note renders, stays under
//! GitLab's size limit, keeps its one marker, and nothing from the names can act: no line starts
//! with `/` (a quick action), no `@` mentions anyone, no HTML tag but the note's own, no link
//! but to http(s).
#![no_main]

use herald::report::note::{
    pipeline_of, render, BaselineRef, JobView, NoteView, OnTarget, PastPipeline, PipelineView, StepState, StepView,
    GITLAB_NOTE_LIMIT, VISIBLE_LINES,
};
use libfuzzer_sys::fuzz_target;

/// The tags the note's own layout uses; any other `<` came from a name and was not escaped.
const OWN_TAGS: [&str; 11] = [
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
    "<!-- herald:",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text.split('\n').collect();
    let states = [StepState::Failed, StepState::Passed, StepState::Running, StepState::Canceled, StepState::Allowed];
    let jobs = names
        .chunks(3)
        .enumerate()
        .map(|(i, chunk)| JobView {
            id: i as u64,
            name: chunk[0].to_owned(),
            stage: chunk.last().unwrap().to_string(),
            status: ["running", "failed", "manual", "success"][i % 4].into(),
            web_url: chunk.get(1).map(|u| u.to_string()),
            steps: chunk
                .iter()
                .zip(states.iter().cycle())
                .enumerate()
                .map(|(j, (n, state))| StepView {
                    name: n.to_string(),
                    state: *state,
                    description: n.to_string(),
                    excerpt: chunk.iter().map(|line| line.to_string()).collect(),
                    on_target: [Some(OnTarget::Failed), Some(OnTarget::Passed), None][j % 3],
                    slower: Some((250.0, 115.0)),
                    ..StepView::default()
                })
                .collect(),
            planned: vec![chunk.last().unwrap().to_string()],
            attempts: vec![("failed".into(), chunk.get(2).map(|u| u.to_string()))],
            on_target: Some(OnTarget::Failed),
            ..JobView::default()
        })
        .collect();
    let body = render(&NoteView {
        pipeline: PipelineView {
            id: 1,
            status: "running".into(),
            sha: text.to_string(),
            commit_url: names.first().map(|u| u.to_string()),
            ..PipelineView::default()
        },
        jobs,
        history: vec![PastPipeline { id: 0, status: text.to_string(), web_url: names.last().map(|u| u.to_string()) }],
        // The target branch's name comes from a CI variable: any text.
        baseline: Some(BaselineRef {
            branch: names.first().unwrap_or(&"").to_string(),
            pipeline: 2,
            web_url: names.get(1).map(|u| u.to_string()),
        }),
        ..NoteView::default()
    });
    assert!(body.len() < GITLAB_NOTE_LIMIT);
    let visible = &body[..body.find("\n<details>").unwrap_or(body.len())];
    assert!(visible.lines().count() <= VISIBLE_LINES, "the visible part is bounded");
    assert_eq!(pipeline_of(&body), Some(1), "the marker is the note's own");
    assert!(body.lines().all(|line| !line.trim_start().starts_with('/')), "a quick action");
    let mentions = body.match_indices('@').all(|(at, _)| body[at + 1..].starts_with('\u{200b}'));
    assert!(mentions, "a mention");
    let tags = body.match_indices('<').all(|(at, _)| OWN_TAGS.iter().any(|tag| body[at..].starts_with(tag)));
    assert!(tags, "an HTML tag from a name");
    for (at, _) in body.match_indices("](") {
        let target = &body[at + 2..];
        assert!(target.starts_with("http://") || target.starts_with("https://") || target.starts_with('#'), "a link");
    }
});
