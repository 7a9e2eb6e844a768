//! What herald says to people on stderr, and the exit codes of its own failures: one place that
//! every layer may use, so that nothing below the entry point needs `cli` (ripgrep's `messages`
//! module is the model).

use std::io::Write;

/// herald itself failed before the step ran (bad usage, bad configuration): the code `docker run`
/// and `env` use for their own failures, clear of the step's own codes.
pub const EXIT_HERALD_FAILED: i32 = 125;

/// Writes one line to stderr, ignoring failures: a closed stderr must never change a step's exit
/// code.
pub fn say(line: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    if !line.ends_with('\n') {
        let _ = stderr.write_all(b"\n");
    }
}
