//! The failure excerpt: the last lines of a failed step's output, masked (`crate::redact`) and
//! folded to fit where it is published. GitLab masks masked variables in job logs, but not in
//! API fields such as a status description, so herald must.

pub use crate::redact::Secrets;
use crate::redact::CUT;

/// The longest excerpt line published, in bytes (the output is captured a little longer, so that
/// masking sees every secret that begins within these).
pub const LINE_BYTES: usize = 512;

/// The captured lines of a step, safe to publish: masked first, then shortened.
pub fn publishable(lines: &[String], secrets: &Secrets) -> Vec<String> {
    lines.iter().map(|line| shorten(&secrets.mask(line), LINE_BYTES)).collect()
}

/// `line` cut to at most `max` bytes (plus the `…` that marks a cut) on a character boundary.
fn shorten(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_owned();
    }
    format!("{}{CUT}", super::cut_to_bytes(line, max).trim_end_matches(CUT))
}

/// The excerpt folded into at most `budget` bytes, keeping the end (the last lines say most).
pub fn fold_tail(lines: &[String], budget: usize) -> String {
    const JOIN: &str = " ⏎ ";
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for line in lines.iter().rev() {
        let cost = line.len() + if kept.is_empty() { 0 } else { JOIN.len() };
        if used + cost > budget {
            if kept.is_empty() {
                // Even the last line is too long: its end, marked as cut.
                let mut start = line.len() - budget.saturating_sub("…".len()).min(line.len());
                while !line.is_char_boundary(start) {
                    start += 1;
                }
                return format!("…{}", &line[start..]);
            }
            break;
        }
        used += cost;
        kept.push(line);
    }
    kept.reverse();
    kept.join(JOIN)
}

/// The most lines an anchored excerpt has.
pub const ANCHORED_LINES: usize = 12;

/// The lines of a failed step's output that say what went wrong, at most `max`: the first
/// failure's block, anchored on the error (a Rust panic and its `left`/`right`, pytest's `>` and
/// `E` lines and the location, a compiler's `error:`, a traceback's last lines), with the test's
/// header line when there is one, then the run's tally (`test result: FAILED. 42 passed; 2
/// failed`) after a `…`. Without any recognisable error, the last lines. Lines come in plain (no
/// ANSI), and are returned as they are otherwise; masking is the caller's.
pub fn anchored(lines: &[String], max: usize) -> Vec<String> {
    let max = max.max(1);
    let Some(anchor) = lines.iter().position(|line| is_error_line(line)) else { return tail(lines, max) };
    // Back up to the code line pytest marks with `>`, and to the failure's header line.
    let mut start = anchor;
    for back in (anchor.saturating_sub(6)..anchor).rev() {
        let line = lines[back].trim_start();
        if line.starts_with('>') {
            start = back;
        }
        if is_failure_header(&lines[back]) {
            start = back;
            break;
        }
    }
    let mut block: Vec<String> = Vec::new();
    let mut at = start;
    while at < lines.len() && block.len() < max {
        let line = &lines[at];
        let trimmed = line.trim();
        let past_anchor = at > anchor;
        if past_anchor && (is_failure_header(line) || trimmed.starts_with("note: run with `RUST_BACKTRACE")) {
            break;
        }
        if trimmed.is_empty() && past_anchor {
            // One blank line is kept when a `path:line: Error` location follows it (pytest).
            match lines.get(at + 1) {
                Some(next) if is_location(next) && block.len() + 1 < max => {
                    block.push(next.clone());
                }
                _ => {}
            }
            break;
        }
        if !(trimmed.is_empty() && at < anchor) {
            block.push(line.clone());
        }
        at += 1;
    }
    while block.last().is_some_and(|line| line.trim().is_empty()) {
        block.pop();
    }
    if let Some(tally) = lines.iter().rev().find(|line| is_tally(line)) {
        if block.len() + 2 <= max && !block.contains(tally) {
            block.push(CUT.to_owned());
            block.push(tally.trim().trim_matches('=').trim().to_owned());
        }
    }
    block
}

/// The last `max` lines that are not blank.
fn tail(lines: &[String], max: usize) -> Vec<String> {
    let kept: Vec<&String> = lines.iter().filter(|line| !line.trim().is_empty()).collect();
    kept[kept.len().saturating_sub(max)..].iter().map(|line| (*line).clone()).collect()
}

/// A line that states an error: where the excerpt is anchored.
fn is_error_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    line.starts_with("thread '") && line.contains(" panicked at ")
        || line.starts_with("E ")
        || trimmed.starts_with("error[E")
        || trimmed.starts_with("error: ") && !trimmed.starts_with("error: test failed")
        || trimmed.starts_with("Traceback (most recent call last)")
        || trimmed.starts_with("AssertionError")
        || trimmed.starts_with("FAIL: ")
        || trimmed.starts_with("fatal: ")
        || trimmed.starts_with("Error: ")
}

/// `---- tests::name stdout ----` (cargo test), `____ test_name ____` (pytest).
fn is_failure_header(line: &str) -> bool {
    let trimmed = line.trim();
    let framed = |c: char| {
        let edge = format!("{c}{c}{c}");
        trimmed.starts_with(&edge) && trimmed.ends_with(&edge) && trimmed.trim_matches(c).trim().len() > 1
    };
    (framed('-') || framed('_')) && !trimmed.contains(" _ _ ")
}

/// `test_calc.py:12: AssertionError`: where pytest says the failure was raised.
fn is_location(line: &str) -> bool {
    let mut parts = line.trim().splitn(3, ':');
    let (Some(path), Some(number), Some(_)) = (parts.next(), parts.next(), parts.next()) else { return false };
    !path.contains(' ') && path.contains('.') && !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
}

/// The run's tally: `test result: FAILED. 42 passed; 2 failed; …`, `=== 2 failed, 30 passed in 0.06s ===`.
fn is_tally(line: &str) -> bool {
    let trimmed = line.trim();
    trimmed.starts_with("test result: FAILED")
        || (trimmed.starts_with('=') && trimmed.contains(" failed") && trimmed.contains(" in "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_before_it_shortens() {
        let secret = "a-secret-value-that-is-long";
        let secrets = Secrets::of([secret.to_owned()]);
        // The secret straddles the published length: masked whole, then the line is cut.
        let line = format!("{}{secret} and more", "x".repeat(LINE_BYTES - 5));
        let [published] = publishable(&[line], &secrets).try_into().unwrap();
        assert!(!published.contains("a-sec"), "{published}");
        assert!(published.ends_with(CUT) && published.len() <= LINE_BYTES + CUT.len(), "{published}");
        assert_eq!(publishable(&["short".into()], &secrets), ["short"]);
    }

    fn fixture(name: &str) -> Vec<String> {
        let path = format!("{}/tests/fixtures/logs/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
    }

    #[test]
    fn a_failing_cargo_test_is_anchored_on_its_panic() {
        let excerpt = anchored(&fixture("cargo-test-failure.log"), ANCHORED_LINES);
        assert_eq!(
            excerpt[..5],
            [
                "---- tests::adds_large_numbers stdout ----",
                "thread 'tests::adds_large_numbers' (31734) panicked at src/lib.rs:20:9:",
                "assertion `left == right` failed",
                "  left: 103",
                " right: 102",
            ]
            .map(str::to_owned)[..5],
            "{excerpt:#?}"
        );
        assert!(excerpt.iter().any(|line| line == " right: 102"), "{excerpt:#?}");
        assert_eq!(
            excerpt.last().unwrap(),
            "test result: FAILED. 42 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s"
        );
        assert!(excerpt.len() <= ANCHORED_LINES);
    }

    #[test]
    fn a_failing_pytest_is_anchored_on_its_assertion() {
        let excerpt = anchored(&fixture("pytest-failure.log"), ANCHORED_LINES);
        assert!(excerpt[0].contains("test_adds_large_numbers"), "{excerpt:#?}");
        assert!(excerpt.iter().any(|line| line == ">       assert add(101, 1) == 102"), "{excerpt:#?}");
        assert!(excerpt.iter().any(|line| line == "E       assert 103 == 102"), "{excerpt:#?}");
        assert!(excerpt.iter().any(|line| line == "test_calc.py:12: AssertionError"), "{excerpt:#?}");
        assert!(excerpt.last().unwrap().starts_with("2 failed, 30 passed"), "{excerpt:#?}");
    }

    #[test]
    fn without_a_recognisable_error_the_tail_is_kept() {
        let lines: Vec<String> = (1..=20).map(|i| format!("line {i}")).chain([String::new()]).collect();
        assert_eq!(anchored(&lines, 3), ["line 18", "line 19", "line 20"]);
    }

    #[test]
    fn folds_the_tail_into_the_budget() {
        let lines: Vec<String> =
            ["compiling", "error: mismatched types", "aborting"].iter().map(|s| s.to_string()).collect();
        assert_eq!(fold_tail(&lines, 200), "compiling ⏎ error: mismatched types ⏎ aborting");
        assert_eq!(fold_tail(&lines, 40), "error: mismatched types ⏎ aborting");
        assert_eq!(fold_tail(&["x".repeat(100)], 10), format!("…{}", "x".repeat(7)));
    }
}
