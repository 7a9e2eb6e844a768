//! Any text as job and step names: the note renders, stays under GitLab's size limit, and no line
//! starts with `/` (a quick action).
#![no_main]

use herald::report::note::{render, JobView, NoteView, PipelineView, StepState, StepView, GITLAB_NOTE_LIMIT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let names: Vec<&str> = text.split('\n').collect();
    let jobs = names
        .chunks(3)
        .enumerate()
        .map(|(i, chunk)| JobView {
            id: i as u64,
            name: chunk[0].to_owned(),
            status: "running".into(),
            web_url: chunk.get(1).map(|u| u.to_string()),
            steps: chunk.iter().map(|n| StepView { name: n.to_string(), state: StepState::Failed, description: n.to_string() }).collect(),
            planned: vec![chunk.last().unwrap().to_string()],
        })
        .collect();
    let body = render(&NoteView {
        pipeline: PipelineView { id: 1, status: "running".into(), web_url: None, sha: text.to_string() },
        jobs,
        unattached: Vec::new(),
    });
    assert!(body.len() < GITLAB_NOTE_LIMIT);
    assert!(body.lines().all(|line| !line.trim_start().starts_with('/')));
});
