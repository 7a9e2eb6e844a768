//! The failure excerpt: the last lines of a failed step's output, safe to publish. Values of
//! secret-looking variables (`*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*KEY*`, `CI_JOB_TOKEN`,
//! `CI_REGISTRY_PASSWORD`) and anything shaped like a GitLab token (`glpat-…`, `glcbt-…`) become
//! `[MASKED]`. GitLab masks masked variables in job logs, but not in API fields such as a status
//! description, so herald must.

use crate::gitlab::MASK;

/// Shorter values are not masked: they would blank out ordinary words (GitLab itself requires 8
/// characters for a masked variable).
const SHORTEST_SECRET: usize = 6;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The secret values among these environment variables.
    pub fn from_vars(vars: &[(String, String)]) -> Secrets {
        // herald's own token, under whatever name HERALD_TOKEN_VARIABLE gives it.
        let token_variable = vars.iter().find(|(name, _)| name == "HERALD_TOKEN_VARIABLE").map(|(_, v)| v.trim());
        let mut values: Vec<String> = vars
            .iter()
            .filter(|(name, value)| {
                (is_secret_name(name) || Some(name.as_str()) == token_variable) && value.len() >= SHORTEST_SECRET
            })
            .map(|(_, value)| value.clone())
            .collect();
        // Longest first, so a secret that contains another is masked whole.
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values.dedup();
        Secrets(values)
    }

    pub fn mask(&self, line: &str) -> String {
        let mut out = line.to_owned();
        for secret in &self.0 {
            out = out.replace(secret.as_str(), MASK);
        }
        mask_token_shapes(&out)
    }
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "KEY"].iter().any(|word| name.contains(word))
        || name == "CI_JOB_TOKEN"
        || name == "CI_REGISTRY_PASSWORD"
}

/// `gl` + 2–6 lowercase letters + `-` + at least 20 token characters: GitLab's token prefixes.
fn mask_token_shapes(text: &str) -> String {
    let bytes = text.as_bytes();
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !token_char(bytes[i - 1]);
        if starts_word && bytes[i..].starts_with(b"gl") {
            let letters = bytes[i + 2..].iter().take_while(|b| b.is_ascii_lowercase()).count();
            let dash = i + 2 + letters;
            if (2..=6).contains(&letters) && bytes.get(dash) == Some(&b'-') {
                let body = bytes[dash + 1..].iter().take_while(|b| token_char(**b)).count();
                if body >= 20 {
                    out.push_str(MASK);
                    i = dash + 1 + body;
                    continue;
                }
            }
        }
        let c = text[i..].chars().next().unwrap();
        out.push(c);
        i += c.len_utf8();
    }
    out
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

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn masks_the_token_under_the_name_herald_was_told() {
        let secrets =
            Secrets::from_vars(&vars(&[("HERALD_TOKEN_VARIABLE", "BOT_PAT"), ("BOT_PAT", "plain-looking-value")]));
        assert_eq!(secrets.mask("using plain-looking-value"), "using [MASKED]");
    }

    #[test]
    fn masks_secret_variables_and_token_shapes() {
        let secrets = Secrets::from_vars(&vars(&[
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
            ("DB_PASSWORD", "hunter2hunter2"),
            ("CI_JOB_TOKEN", "glcbt-64_abcdefghijklmnopqrstuv"),
            ("HOME", "/root/home-is-not-secret"),
            ("API_KEY", "abc"),
        ]));
        let line = "auth wJalrXUtnFEMI/K7MDENG pw=hunter2hunter2 job=glcbt-64_abcdefghijklmnopqrstuv home=/root/home-is-not-secret abc";
        assert_eq!(secrets.mask(line), "auth [MASKED] pw=[MASKED] job=[MASKED] home=/root/home-is-not-secret abc");
        // Token-shaped strings are assembled here, so that secret scanners do not flag the source.
        let shaped = ["glpat", "ABCDEFGHIJKLMNOPQRST12"].join("-");
        assert_eq!(Secrets::default().mask(&format!("token {shaped} end")), "token [MASKED] end");
        assert_eq!(
            Secrets::default().mask(&format!("glpat-short and ea{shaped}")),
            format!("glpat-short and ea{shaped}")
        );
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
