//! Any bytes as a merge request's diff, and any line range: the changed lines are counted without
//! a panic, and a finding's line is one of its range's.
#![no_main]

use herald::findings::diff::ChangedLines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let line = u64::from_le_bytes(data[..8].try_into().unwrap());
    let end_line = u64::from_le_bytes(data[8..16].try_into().unwrap());
    let diff = String::from_utf8_lossy(&data[16..]);
    let changed = ChangedLines::of([("a.py", diff.as_ref())]);
    if let Some(at) = changed.first_in("a.py", line, end_line) {
        assert!(at >= line && at <= end_line.max(line));
    }
});
