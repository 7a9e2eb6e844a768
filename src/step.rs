//! What a step is called and how it ended: the vocabulary shared by the supervisor (which produces
//! outcomes), the job log and JUnit report (which show them) and, later, the publisher.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use crate::duration::{format_duration, format_setting};

/// The readable name of a step: `--name`, or a short form of the command (`cargo test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepName(String);

impl StepName {
    /// At most this many characters; longer names are cut (they still have to fit GitLab's
    /// 255-character status names once a prefix and a task are added).
    const MAX_CHARS: usize = 100;

    pub fn new(name: &str) -> StepName {
        // Control characters, bidi overrides and line separators become spaces, and runs of
        // whitespace one space: two names that read the same are the same name (and are then
        // told apart by number, `sh (2)`), and nothing invisible reaches the note.
        let words: Vec<&str> =
            name.split(|c: char| c.is_whitespace() || is_invisible(c)).filter(|w| !w.is_empty()).collect();
        let clean = words.join(" ");
        let clean = clean.as_str();
        if clean.chars().count() <= Self::MAX_CHARS {
            StepName(clean.to_owned())
        } else {
            let cut: String = clean.chars().take(Self::MAX_CHARS - 1).collect();
            StepName(format!("{}…", cut.trim_end()))
        }
    }

    /// `sh -c 'cargo test --all'` → `cargo test`: a shell running a script is named after the
    /// script's first command.
    fn from_shell_script(command: &[OsString]) -> Option<StepName> {
        let program = Path::new(command.first()?).file_name()?.to_str()?;
        if !matches!(program, "sh" | "bash" | "dash" | "zsh" | "ash" | "ksh" | "busybox") {
            return None;
        }
        let mut args = command[1..].iter().map(|arg| arg.to_string_lossy());
        let takes_script = |arg: &str| arg.starts_with('-') && !arg.starts_with("--") && arg.contains('c');
        args.by_ref().find(|arg| takes_script(arg))?;
        let script = args.next()?;
        let words = shell_words(&script);
        // The first command that does work of its own names the script: commands of the shell's
        // own grammar and builtins that only set up (`set -e; cd sub && make` → `make`, `if [ -f x
        // ]; then make; fi` → `make`) are passed over; a script of nothing else (`exit 2`) is the
        // shell's.
        words.split(|word| matches!(word.as_str(), "&&" | "||" | ";" | "|" | "&")).find_map(|command| {
            let words: Vec<OsString> = command
                .iter()
                .skip_while(|word| matches!(word.as_str(), "then" | "do" | "else" | "elif" | "!" | "{" | "("))
                .skip_while(|word| word.contains('=') && !word.starts_with('='))
                .skip_while(|word| *word == "exec")
                .map(OsString::from)
                .collect();
            let first = words.first()?.to_string_lossy();
            (!is_shell_builtin(&first) && !is_shell_keyword(&first)).then(|| StepName::from_command(&words))
        })
    }

    /// `cargo test --workspace` → `cargo test`; `npm run lint` → `npm run lint`;
    /// `./ci/check.sh -v` → `check.sh`; `python -m pytest` → `python -m pytest`.
    /// The program's file name, then the words that read like subcommands, up to the first option,
    /// path or value; `-m`/`-c` of interpreters keep their module, not their code.
    pub fn from_command(command: &[OsString]) -> StepName {
        let Some(program) = command.first() else {
            return StepName::new("step");
        };
        if let Some(name) = Self::from_shell_script(command) {
            return name;
        }
        let program = Path::new(program)
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| program.to_string_lossy().into_owned());
        let mut words = vec![program];
        let mut args = command[1..].iter().map(|arg| arg.to_string_lossy());
        while words.len() < 3 {
            let Some(arg) = args.next() else { break };
            if arg == "-m" {
                // `python -m pytest`: the module is what the step is.
                if let Some(module) = args.next().filter(|m| is_word(m)) {
                    words.push("-m".into());
                    words.push(module.into_owned());
                }
                break;
            }
            if !is_word(&arg) {
                break;
            }
            words.push(arg.into_owned());
        }
        StepName::new(&words.join(" "))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of its `occurrence`-th use in a job: `sh`, `sh (2)`, … as the plan numbers it
    /// (`numbered_name`, as `pipeline::steps` numbers the plan). Never cut again: a name already at the limit would lose
    /// its number and be the same name once more.
    pub fn numbered(&self, occurrence: usize) -> StepName {
        StepName(numbered_name(&self.0, occurrence))
    }
}

/// The name of the `occurrence`-th step of a job called `step` (counting from 1): `sh`,
/// `sh (2)`, `sh (3)`. Every step stays visible; the plan (`pipeline::steps`) and `herald run`
/// number them alike.
pub fn numbered_name(step: &str, occurrence: usize) -> String {
    if occurrence <= 1 {
        step.to_owned()
    } else {
        format!("{step} ({occurrence})")
    }
}

/// The inverse of `numbered_name`: `sh (2)` → (`sh`, 2), `sh` → (`sh`, 1).
pub fn split_occurrence(name: &str) -> (&str, usize) {
    let numbered = name.strip_suffix(')').and_then(|s| s.rsplit_once(" ("));
    match numbered.and_then(|(base, number)| Some((base, number.parse::<usize>().ok()?))) {
        Some((base, occurrence)) => (base, occurrence),
        None => (name, 1),
    }
}

/// Shell keywords and builtins that set the shell up or steer it rather than do the step's work.
fn is_shell_builtin(word: &str) -> bool {
    matches!(
        word,
        "set"
            | "cd"
            | "export"
            | "unset"
            | "umask"
            | "trap"
            | "shift"
            | "source"
            | "."
            | "eval"
            | "exit"
            | "return"
            | "true"
            | "false"
            | ":"
            | "wait"
            | "test"
            | "["
            | "[["
            | "!"
            | "if"
            | "for"
            | "while"
            | "until"
            | "case"
            | "function"
            | "{"
            | "("
    )
}

/// Words that end a compound command: never a step's name.
fn is_shell_keyword(word: &str) -> bool {
    matches!(word, "fi" | "done" | "esac" | "}" | ")" | "in")
}

/// Characters that change how text reads without being seen: bidi controls and overrides
/// (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069), zero-width ones, line separators.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
        || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A subcommand-like word: `test`, `run`, `build:release`, not a flag, path, value or script.
fn is_word(arg: &str) -> bool {
    let mut chars = arg.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && arg.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':'))
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the step's main process ended, as `waitpid` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEnd {
    Exited(i32),
    Signaled(i32),
}

/// Why herald stopped the step, when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// `--timeout` expired: the limit it had.
    TimedOut { limit: Duration },
    /// herald received this signal (the job was canceled or the runner is shutting down) and
    /// forwarded it to the step.
    Signal(i32),
}

/// The outcome of one step, as published: a verdict plus the facts that explain it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOutcome {
    pub end: StepEnd,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepEnd {
    /// The process ran and ended; `stop` says whether herald had asked it to.
    Ran { process: ProcessEnd, stop: Option<StopCause> },
    /// The command could not be started; the code is 126 (not executable) or 127 (not found).
    NotStarted { exit_code: i32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Failed,
    Canceled,
}

impl StepOutcome {
    /// The exit code herald passes back: the child's own, 128+N for signal N.
    pub fn exit_code(&self) -> i32 {
        match self.end {
            StepEnd::Ran { process: ProcessEnd::Exited(code), .. } => code,
            StepEnd::Ran { process: ProcessEnd::Signaled(signal), .. } => 128 + signal,
            StepEnd::NotStarted { exit_code } => exit_code,
        }
    }

    /// A timed-out step failed even if it exited 0 after SIGTERM; a step stopped by a signal
    /// herald received was canceled, whatever its exit code.
    pub fn verdict(&self) -> Verdict {
        match self.end {
            StepEnd::Ran { stop: Some(StopCause::Signal(_)), .. } => Verdict::Canceled,
            StepEnd::Ran { stop: Some(StopCause::TimedOut { .. }), .. } => Verdict::Failed,
            _ if self.exit_code() == 0 => Verdict::Passed,
            _ => Verdict::Failed,
        }
    }

    /// One short sentence: `passed in 12.3s`, `failed (exit 2) after 4.1s`,
    /// `killed by SIGSEGV after 0.1s`, `timed out after 5m00s (--timeout 5m00s; stopped by
    /// SIGTERM)`, `canceled (SIGTERM) after 3.0s`,
    /// `not found`. Fits GitLab's 255-character status description.
    pub fn describe(&self) -> String {
        let took = format_duration(self.elapsed);
        match self.end {
            StepEnd::NotStarted { exit_code: 127 } => "could not start: command not found".into(),
            StepEnd::NotStarted { .. } => "could not start: not executable".into(),
            StepEnd::Ran { stop: Some(StopCause::TimedOut { limit }), process } => {
                // The limit, and how the step took being stopped: what to change next.
                let how = match process {
                    ProcessEnd::Signaled(libc::SIGKILL) => {
                        "ignored SIGTERM, killed by SIGKILL after the grace".to_owned()
                    }
                    ProcessEnd::Signaled(signal) => format!("stopped by {}", signal_name(signal)),
                    ProcessEnd::Exited(code) => format!("exited {code} on SIGTERM"),
                };
                // The limit as it was set (`250ms`, not `0.2s`); under a second, the time taken in
                // milliseconds too, so that it never reads as less than the limit.
                let took = if limit < Duration::from_secs(1) { format_setting(self.elapsed) } else { took };
                format!("timed out after {took} (--timeout {}; {how})", format_setting(limit))
            }
            StepEnd::Ran { stop: Some(StopCause::Signal(signal)), .. } => {
                format!("canceled ({}) after {took}", signal_name(signal))
            }
            StepEnd::Ran { process: ProcessEnd::Exited(0), .. } => format!("passed in {took}"),
            StepEnd::Ran { process: ProcessEnd::Exited(code), .. } => format!("failed (exit {code}) after {took}"),
            StepEnd::Ran { process: ProcessEnd::Signaled(signal), .. } => {
                format!("killed by {} after {took}", signal_name(signal))
            }
        }
    }
}

/// How the description of a failure that does not count against the pipeline begins: a step
/// that failed in a job that passed anyway or may fail, posted as `success` (gitlab.md §J: a
/// status has no `allow_failure`). The note shows such a step as an allowed failure.
pub const ALLOWED: &str = "allowed: ";

/// `SIGTERM` for 15, and so on; `signal 42` for numbers without a common name.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// POSIX-shell-like words: quotes and backslashes honoured, `&& || ; | &` as words of their own.
/// Not a shell: expansions stay as written, which is all a step's name needs.
pub fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        c => word.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '#' if !in_word => break, // a comment
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '&' | '|' | ';' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let double = (c == '&' || c == '|') && chars.peek() == Some(&c);
                if double {
                    chars.next();
                }
                words.push(if double { format!("{c}{c}") } else { c.to_string() });
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(command: &str) -> String {
        let words: Vec<OsString> = command.split(' ').map(OsString::from).collect();
        StepName::from_command(&words).to_string()
    }

    #[test]
    fn short_names_from_commands() {
        assert_eq!(name_of("cargo test --workspace"), "cargo test");
        assert_eq!(name_of("cargo clippy -- -D warnings"), "cargo clippy");
        assert_eq!(name_of("npm run lint"), "npm run lint");
        assert_eq!(name_of("./ci/check.sh -v"), "check.sh");
        assert_eq!(name_of("/usr/bin/make"), "make");
        assert_eq!(name_of("go vet ./..."), "go vet");
        assert_eq!(name_of("python -m pytest -q"), "python -m pytest");
        assert_eq!(name_of("sh -c echo"), "echo");
        assert_eq!(name_of("sh"), "sh");
        assert_eq!(name_of("pytest tests/unit"), "pytest");
    }

    #[test]
    fn shell_scripts_are_named_after_their_first_command() {
        let name =
            |args: &[&str]| StepName::from_command(&args.iter().map(OsString::from).collect::<Vec<_>>()).to_string();
        assert_eq!(name(&["sh", "-c", "cargo test --all && echo done"]), "cargo test");
        assert_eq!(name(&["bash", "-euc", "CI=1 npm run lint"]), "npm run lint");
        assert_eq!(name(&["sh", "-c", "set -e; make"]), "make");
        assert_eq!(name(&["sh", "-c", "cd sub && make check"]), "make check");
        assert_eq!(name(&["sh", "-c", "export A=1; cargo test"]), "cargo test");
        assert_eq!(name(&["sh", "-c", "if true; then make; fi"]), "make");
        assert_eq!(name(&["sh", "-c", "for f in *.py; do ruff check $f; done"]), "ruff check");
        assert_eq!(name(&["sh", "script.sh"]), "sh");
        // A builtin is not the work: the shell's name, never `exit`.
        assert_eq!(name(&["sh", "-c", "exit 2"]), "sh");
        assert_eq!(name(&["bash", "-c", "true"]), "bash");
        assert_eq!(name(&["sh", "-c", "[ -f x ] && make"]), "make");
        assert_eq!(name(&["sh", "-c", "set -e; exit 3"]), "sh");
        assert_eq!(name(&["sh", "-c", "exec cargo test --all"]), "cargo test");
    }

    #[test]
    fn names_are_cleaned_and_bounded() {
        assert_eq!(StepName::new(" a\nb\x1b ").as_str(), "a b");
        assert_eq!(StepName::new("unit  test").as_str(), StepName::new("unit test").as_str());
        assert_eq!(StepName::new("evil\u{202E}txt.exe\u{2028}x").as_str(), "evil txt.exe x");
        let long = StepName::new(&"x".repeat(500));
        assert_eq!(long.as_str().chars().count(), 100);
        assert!(long.as_str().ends_with('…'));
    }

    fn ran(process: ProcessEnd, stop: Option<StopCause>) -> StepOutcome {
        StepOutcome { end: StepEnd::Ran { process, stop }, elapsed: Duration::from_millis(4100) }
    }

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(ran(ProcessEnd::Exited(2), None).exit_code(), 2);
        assert_eq!(ran(ProcessEnd::Signaled(15), None).exit_code(), 143);
        let limit = Duration::from_secs(4);
        assert_eq!(ran(ProcessEnd::Signaled(9), Some(StopCause::TimedOut { limit })).exit_code(), 137);
    }

    #[test]
    fn verdicts_and_descriptions() {
        let passed = ran(ProcessEnd::Exited(0), None);
        assert_eq!((passed.verdict(), passed.describe().as_str()), (Verdict::Passed, "passed in 4.1s"));
        let failed = ran(ProcessEnd::Exited(2), None);
        assert_eq!((failed.verdict(), failed.describe().as_str()), (Verdict::Failed, "failed (exit 2) after 4.1s"));
        let segv = ran(ProcessEnd::Signaled(11), None);
        assert_eq!(segv.describe(), "killed by SIGSEGV after 4.1s");
        let limit = Duration::from_secs(4);
        let timed_out = ran(ProcessEnd::Signaled(15), Some(StopCause::TimedOut { limit }));
        assert_eq!(
            (timed_out.verdict(), timed_out.describe().as_str()),
            (Verdict::Failed, "timed out after 4.1s (--timeout 4.0s; stopped by SIGTERM)")
        );
        let killed = ran(ProcessEnd::Signaled(9), Some(StopCause::TimedOut { limit }));
        assert_eq!(
            killed.describe(),
            "timed out after 4.1s (--timeout 4.0s; ignored SIGTERM, killed by SIGKILL after the grace)"
        );
        let canceled = ran(ProcessEnd::Signaled(15), Some(StopCause::Signal(15)));
        assert_eq!(
            (canceled.verdict(), canceled.describe().as_str()),
            (Verdict::Canceled, "canceled (SIGTERM) after 4.1s")
        );
    }
}
