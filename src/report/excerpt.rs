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
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", line[..end].trim_end_matches(CUT))
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

    #[test]
    fn folds_the_tail_into_the_budget() {
        let lines: Vec<String> =
            ["compiling", "error: mismatched types", "aborting"].iter().map(|s| s.to_string()).collect();
        assert_eq!(fold_tail(&lines, 200), "compiling ⏎ error: mismatched types ⏎ aborting");
        assert_eq!(fold_tail(&lines, 40), "error: mismatched types ⏎ aborting");
        assert_eq!(fold_tail(&["x".repeat(100)], 10), format!("…{}", "x".repeat(7)));
    }
}
