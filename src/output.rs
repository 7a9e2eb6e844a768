//! What herald says to people on stderr, and how its own failures end the process: one place that
//! every layer may use, so that nothing below the entry point needs `cli` (ripgrep's `messages`
//! module is the model; nextest's errors that carry their exit code, the model for `Failure`).

use std::io::Write;
use std::sync::OnceLock;

/// What every line said is passed through before it is written: the entry point installs the
/// masking of secrets (redact.rs is above this module in the layer order, so it is handed in, not
/// imported). Nothing herald says can then show the token, whichever layer said it.
type Mask = Box<dyn Fn(&str) -> String + Send + Sync>;
static MASK: OnceLock<Mask> = OnceLock::new();

/// Installs the masking for every later `say`; the first one installed stays.
pub fn set_mask(mask: impl Fn(&str) -> String + Send + Sync + 'static) {
    let _ = MASK.set(Box::new(mask));
}

/// herald itself failed before the step ran (bad usage, bad configuration): the code `docker run`
/// and `env` use for their own failures, clear of the step's own codes.
pub const EXIT_HERALD_FAILED: i32 = 125;

/// The work was tried and did not get done (GitLab refused it or could not be reached).
pub const EXIT_NOT_DONE: i32 = 1;

/// One of herald's own failures — not the step's — as the one line that says what went wrong and
/// the exit code that tells the caller so. Commands return it; the entry point says the line and
/// exits with the code (`exit_code`), so no command prints and picks a code on its own.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub line: String,
    pub code: i32,
}

impl Failure {
    /// Bad usage or configuration, found before anything ran: 125.
    pub fn setup(line: impl Into<String>) -> Failure {
        Failure { line: line.into(), code: EXIT_HERALD_FAILED }
    }

    /// Tried and not done (GitLab refused, or could not be reached): 1.
    pub fn not_done(line: impl Into<String>) -> Failure {
        Failure { line: line.into(), code: EXIT_NOT_DONE }
    }

    /// A code the caller defines, such as GitLab Runner's system-failure code for the executor.
    pub fn with_code(line: impl Into<String>, code: i32) -> Failure {
        Failure { line: line.into(), code }
    }
}

/// What a command ends with: its exit code (the step's own, for `herald run`), or a failure.
pub type Outcome = Result<i32, Failure>;

/// The process's exit code for an outcome; a failure's line is said first.
pub fn exit_code(outcome: Outcome) -> i32 {
    match outcome {
        Ok(code) => code,
        Err(failure) => {
            say(&failure.line);
            failure.code
        }
    }
}

/// Writes one line to stderr, ignoring failures: a closed stderr must never change a step's exit
/// code.
pub fn say(line: &str) {
    let masked = MASK.get().map(|mask| mask(line));
    let line = masked.as_deref().unwrap_or(line);
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(line.as_bytes());
    if !line.ends_with('\n') {
        let _ = stderr.write_all(b"\n");
    }
}
