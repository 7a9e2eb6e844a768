//! Any bytes as a step's summary file (report/summary.rs): read, masked, cut for the note and made
//! inert, never a panic; what the note shows opens no HTML, mentions nobody, runs no quick action
//! and keeps its `<pre>` blocks closed; a secret never survives.
#![no_main]

use herald::redact::Secrets;
use herald::report::markdown::inert_markdown;
use herald::report::summary::{for_note, from_bytes, gist, Summary, STEP_BUDGET};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "s3cr3t-fuzz-value";

fuzz_target!(|data: &[u8]| {
    let secrets = Secrets::of([SECRET.to_owned()]);
    let text = match from_bytes(data, data.len() as u64, &secrets) {
        Summary::Text { text, size } => {
            assert!(!text.contains(SECRET), "unmasked: {text:?}");
            for_note(&text, size, STEP_BUDGET)
        }
        Summary::Refused(notice) => {
            assert!(!notice.contains('\n'), "one line: {notice}");
            return;
        }
        Summary::Empty => return,
    };
    assert!(text.len() <= STEP_BUDGET, "{} bytes over the budget", text.len());
    let _ = gist(&text);
    let inert = inert_markdown(&text);
    assert_eq!(inert.matches("<pre>").count(), inert.matches("</pre>").count(), "{inert}");
    assert!(!inert.replace("<pre>", "").replace("</pre>", "").contains('<'), "raw HTML: {inert}");
    assert!(inert.match_indices('@').all(|(at, _)| inert[at + 1..].starts_with('\u{200b}')), "mention: {inert}");
    assert!(!inert.lines().any(|line| line.trim_start().starts_with('/')), "quick action: {inert}");
});
