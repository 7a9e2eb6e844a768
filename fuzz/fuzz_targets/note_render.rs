//! Any text as job names, job links, step names and results: the note renders, stays under
//! GitLab's size limit, keeps its one marker, and nothing from the names can act: no line starts
//! with `/` (a quick action), no `@` mentions anyone, no HTML tag but the note's own, no link
//! but to http(s).
#![no_main]

use herald::report::note::{
    pipeline_of, render, JobView, NoteView, PipelineView, StepState, StepView, GITLAB_NOTE_LIMIT,
};
use libfuzzer_sys::fuzz_target;

/// The tags the note's own layout uses; any other `<` came from a name and was not escaped.
const OWN_TAGS: [&str; 9] =
    ["<details>", "</details>", "<summary>", "</summary>", "<sub>", "</sub>", "<code>", "</code>", "<!-- herald:"];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text.split('\n').collect();
    let states = [StepState::Failed, StepState::Passed, StepState::Running, StepState::Canceled];
    let jobs = names
        .chunks(3)
        .enumerate()
        .map(|(i, chunk)| JobView {
            id: i as u64,
            name: chunk[0].to_owned(),
            status: "running".into(),
            web_url: chunk.get(1).map(|u| u.to_string()),
            steps: chunk
                .iter()
                .zip(states.iter().cycle())
                .map(|(n, state)| StepView { name: n.to_string(), state: *state, description: n.to_string() })
                .collect(),
            planned: vec![chunk.last().unwrap().to_string()],
        })
        .collect();
    let body = render(&NoteView {
        pipeline: PipelineView { id: 1, status: "running".into(), web_url: None, sha: text.to_string() },
        jobs,
        unattached: Vec::new(),
    });
    assert!(body.len() < GITLAB_NOTE_LIMIT);
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
