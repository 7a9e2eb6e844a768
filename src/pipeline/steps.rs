//! The planned steps of a job: the `herald run` commands in its script lines, named exactly as
//! `herald run` will name them (`--name`, or the short form of the command).

use std::ffi::OsString;

use crate::step::{numbered_name, shell_words, StepName};

/// A job's step names with repeats told apart as `herald run` tells them apart when they run:
/// the second `sh` of a job is `sh (2)`, the third `sh (3)`. Every step stays visible.
pub fn number_repeats(steps: Vec<String>) -> Vec<String> {
    let mut numbered: Vec<String> = Vec::with_capacity(steps.len());
    for (at, step) in steps.iter().enumerate() {
        let seen = steps[..at].iter().filter(|earlier| *earlier == step).count();
        numbered.push(numbered_name(step, seen + 1));
    }
    numbered
}

/// The step names of the `herald run` commands in one shell line (`a && herald run -- make`).
pub fn planned_steps(line: &str) -> Vec<String> {
    let words = shell_words(line);
    let mut steps = Vec::new();
    for command in words.split(|word| matches!(word.as_str(), "&&" | "||" | ";" | "|" | "&")) {
        // Skip `VAR=value` assignments and wrappers that run the next word.
        let mut rest =
            command.iter().skip_while(|w| is_assignment(w) || matches!(w.as_str(), "exec" | "time" | "command"));
        let is_herald = rest.next().is_some_and(|program| program == "herald" || program.ends_with("/herald"));
        if !is_herald || rest.next().map(String::as_str) != Some("run") {
            continue;
        }
        let mut name = None;
        let mut program: Vec<OsString> = Vec::new();
        let mut options_done = false;
        let mut rest = rest.peekable();
        while let Some(word) = rest.next() {
            if options_done {
                program.push(word.into());
                continue;
            }
            match word.as_str() {
                "--" => options_done = true,
                "--name" => name = rest.next().cloned(),
                "--timeout" | "--grace" | "--findings" => {
                    rest.next();
                }
                w if w.starts_with("--name=") => name = Some(w["--name=".len()..].to_owned()),
                w if ["--timeout=", "--grace=", "--findings="].iter().any(|option| w.starts_with(option)) => {}
                w => {
                    // herald run takes the first other word as the command, like clap does.
                    options_done = true;
                    program.push(w.into());
                }
            }
        }
        // A name or command from a shell expansion (`--name "$line"` in a loop) is only known when
        // the step runs: not a planned step.
        let expanded = |word: &str| word.contains('$');
        if program.is_empty()
            || name.as_deref().is_some_and(expanded)
            || (name.is_none() && program[0].to_str().is_some_and(expanded))
        {
            continue;
        }
        let step = match name {
            Some(name) if !name.trim().is_empty() => StepName::new(&name),
            _ => StepName::from_command(&program),
        };
        steps.push(step.to_string());
    }
    steps
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_herald_run_steps() {
        assert_eq!(planned_steps("herald run --name unit -- cargo test --workspace"), ["unit"]);
        assert!(planned_steps(r#"herald run --name "$line" -- sh -c "$line""#).is_empty(), "known only at run time");
        assert!(planned_steps("herald run -- $TEST_COMMAND").is_empty());
        assert_eq!(planned_steps(r#"herald run --name install -- sh -c "$INSTALL""#), ["install"]);
        assert_eq!(planned_steps("herald run -- cargo clippy -- -D warnings"), ["cargo clippy"]);
        assert_eq!(planned_steps("herald run --timeout 5m npm run lint"), ["npm run lint"]);
        assert_eq!(planned_steps("herald run --findings ruff.json -- ruff check ."), ["ruff check"]);
        assert_eq!(planned_steps("herald run --findings=x.sarif --name lint -- make lint"), ["lint"]);
        assert_eq!(
            planned_steps("cd app && herald run --name='fmt check' -- cargo fmt --check; echo done"),
            ["fmt check"]
        );
        assert_eq!(planned_steps("RUST_LOG=debug exec ./bin/herald run -- make"), ["make"]);
        assert_eq!(planned_steps("echo 'herald run -- not a step' # herald run -- nor this"), Vec::<String>::new());
        assert_eq!(planned_steps("cargo test"), Vec::<String>::new());
        assert_eq!(planned_steps("herald run -- a && herald run -- b"), ["a", "b"]);
    }
}
