//! Masking secrets in anything herald publishes or prints: one set of rules for the token in
//! error messages and logs, and for secret variables in failure excerpts, JUnit and the note.
//!
//! What counts as a copy of a secret:
//! - the value itself, and the value written with escapes that decode to it: percent-encoding
//!   (`%67lpat…`, as in URLs and form bodies) and JSON `\uXXXX` escapes (`\u0067lpat…`), each
//!   alone or mixed, since servers, proxies and tools echo values back in both forms;
//! - anything shaped like a GitLab token (`gl` + 2–6 letters + `-` + 20 or more token characters);
//! - at the edge of a line that was cut short (marked with `…`): whatever part of a secret the
//!   cut left, down to one character (masking a few characters too many at a cut costs nothing).
//!   Cutting before masking would otherwise publish a secret minus its last character.
//!
//! Every match becomes `[MASKED]`.

pub const MASK: &str = "[MASKED]";

/// The mark a cut line carries where it was cut (at its end, or at its start).
pub const CUT: &str = "…";

/// Shorter values are not masked: they would blank out ordinary words (GitLab itself requires 8
/// characters for a masked variable).
const SHORTEST_SECRET: usize = 6;
/// The shortest leftover of a secret at a cut that is masked: any.
const SHORTEST_FRAGMENT: usize = 1;

/// Secret values to mask, longest first (so a secret that contains another is masked whole).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    /// The given values, as they are.
    pub fn of(values: impl IntoIterator<Item = String>) -> Secrets {
        let mut values: Vec<String> = values.into_iter().filter(|value| value.len() >= 4).collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        values.dedup();
        Secrets(values)
    }

    /// The secret values among these environment variables: names like `*TOKEN*`, `*SECRET*`,
    /// `*PASSWORD*`, `*KEY*`, `CI_JOB_TOKEN`, `CI_REGISTRY_PASSWORD`, herald's own token under
    /// whatever name `HERALD_TOKEN_VARIABLE` gives it, and every variable `HERALD_MASK` names
    /// (a comma-separated list of names, for secrets whose names do not say so).
    pub fn from_vars(vars: &[(String, String)]) -> Secrets {
        let named = |key: &str| vars.iter().find(|(name, _)| name == key).map(|(_, value)| value.trim());
        let token_variable = named("HERALD_TOKEN_VARIABLE");
        let listed: Vec<&str> = named("HERALD_MASK")
            .map(|list| list.split(',').map(str::trim).filter(|name| !name.is_empty()).collect())
            .unwrap_or_default();
        Secrets::of(
            vars.iter()
                .filter(|(name, value)| {
                    (is_secret_name(name) || Some(name.as_str()) == token_variable || listed.contains(&name.as_str()))
                        && value.len() >= SHORTEST_SECRET
                })
                .map(|(_, value)| value.clone()),
        )
    }

    /// The same secrets lower-cased: for text that was lower-cased after masking (a job-log
    /// section's name), where a secret written in capitals would appear.
    pub fn lowercased(&self) -> Secrets {
        Secrets::of(self.0.iter().map(|secret| secret.to_lowercase()))
    }

    /// These secrets as written and lower-cased, for text that may hold either (a message that
    /// lower-cased a value it quotes).
    pub fn with_lowercased(&self) -> Secrets {
        Secrets::of(self.0.iter().cloned().chain(self.0.iter().map(|secret| secret.to_lowercase())))
    }

    /// `text` with every copy of a secret, and every token-shaped string, replaced by `[MASKED]`.
    pub fn mask(&self, text: &str) -> String {
        let decoded = Decoded::of(text);
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for secret in &self.0 {
            spans.extend(decoded.find_all(secret.as_bytes()));
        }
        spans.extend(decoded.token_shapes());
        // A line cut short: a secret's beginning at its end, or its end at its beginning.
        if let Some(body_end) = text.strip_suffix(CUT).map(str::len) {
            for secret in &self.0 {
                if let Some(start) = fragment_at_end(&decoded, body_end, secret.as_bytes()) {
                    spans.push((start, body_end));
                }
            }
            if let Some(start) = token_prefix_at_end(&text[..body_end]) {
                spans.push((start, body_end));
            }
        }
        if let Some(body) = text.strip_prefix(CUT) {
            for secret in &self.0 {
                let n = longest_overlap(secret.as_bytes(), body.as_bytes());
                if n >= SHORTEST_FRAGMENT {
                    spans.push((CUT.len(), CUT.len() + n));
                }
            }
        }
        replace_spans(text, spans)
    }
}

/// The token alone: its copies, encoded or not, and nothing else.
pub fn mask_value(text: &str, secret: &str) -> String {
    if secret.len() < 4 {
        // A token this short would mask ordinary words; GitLab rejects such a token anyway.
        return text.to_owned();
    }
    let decoded = Decoded::of(text);
    let spans = decoded.find_all(secret.as_bytes());
    let mut out = replace_spans(text, spans);
    // A cut copy at the very end of a message (error bodies are cut to a length).
    if let Some(body) = out.strip_suffix(CUT) {
        let decoded = Decoded::of(body);
        if let Some(start) = fragment_at_end(&decoded, body.len(), secret.as_bytes()) {
            out = format!("{}{MASK}{CUT}", &body[..start]);
        }
    }
    out
}

/// Whether a variable's name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["TOKEN", "SECRET", "PASSWORD", "KEY"].iter().any(|word| name.contains(word))
        || name == "CI_JOB_TOKEN"
        || name == "CI_REGISTRY_PASSWORD"
}

/// A text with its escapes decoded: every decoded byte remembers where in the text it came from.
struct Decoded {
    bytes: Vec<u8>,
    /// For each decoded byte, the text's byte range it came from.
    spans: Vec<(usize, usize)>,
}

impl Decoded {
    fn of(text: &str) -> Decoded {
        let raw = text.as_bytes();
        let mut bytes = Vec::with_capacity(raw.len());
        let mut spans = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' && i + 2 < raw.len() {
                if let (Some(high), Some(low)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                    bytes.push(high * 16 + low);
                    spans.push((i, i + 3));
                    i += 3;
                    continue;
                }
            }
            if raw[i] == b'\\' && raw.get(i + 1) == Some(&b'u') && i + 5 < raw.len() {
                let digits = &raw[i + 2..i + 6];
                if let Some(code) = digits.iter().try_fold(0u32, |acc, &d| hex(d).map(|v| acc * 16 + u32::from(v))) {
                    if let Some(c) = char::from_u32(code) {
                        let mut buffer = [0u8; 4];
                        for byte in c.encode_utf8(&mut buffer).bytes() {
                            bytes.push(byte);
                            spans.push((i, i + 6));
                        }
                        i += 6;
                        continue;
                    }
                }
            }
            bytes.push(raw[i]);
            spans.push((i, i + 1));
            i += 1;
        }
        Decoded { bytes, spans }
    }

    /// The text ranges of every copy of `needle`.
    fn find_all(&self, needle: &[u8]) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        if needle.is_empty() || needle.len() > self.bytes.len() {
            return found;
        }
        let mut at = 0;
        while at + needle.len() <= self.bytes.len() {
            if self.bytes[at..].starts_with(needle) {
                found.push((self.spans[at].0, self.spans[at + needle.len() - 1].1));
                at += needle.len();
            } else {
                at += 1;
            }
        }
        found
    }

    /// The text ranges of token-shaped strings: `gl` + 2–6 lowercase letters + `-` + at least 20
    /// token characters, GitLab's token prefixes.
    fn token_shapes(&self) -> Vec<(usize, usize)> {
        let bytes = &self.bytes;
        let mut found = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let starts_word = i == 0 || !is_token_char(bytes[i - 1]);
            if starts_word && bytes[i..].starts_with(b"gl") {
                let letters = bytes[i + 2..].iter().take_while(|b| b.is_ascii_lowercase()).count();
                let dash = i + 2 + letters;
                if (2..=6).contains(&letters) && bytes.get(dash) == Some(&b'-') {
                    let body = bytes[dash + 1..].iter().take_while(|b| is_token_char(**b)).count();
                    if body >= 20 {
                        let end = dash + body;
                        found.push((self.spans[i].0, self.spans[end].1));
                        i = end + 1;
                        continue;
                    }
                }
            }
            i += 1;
        }
        found
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

/// Where a beginning of `secret` (at least `SHORTEST_FRAGMENT` bytes, decoded) ends the text
/// just before `end`: the text offset it starts at.
fn fragment_at_end(decoded: &Decoded, end: usize, secret: &[u8]) -> Option<usize> {
    let upto = decoded.spans.iter().position(|(_, stop)| *stop > end).unwrap_or(decoded.spans.len());
    let bytes = &decoded.bytes[..upto];
    let longest = secret.len().saturating_sub(1).min(bytes.len());
    (SHORTEST_FRAGMENT..=longest).rev().find(|&n| bytes.ends_with(&secret[..n])).map(|n| decoded.spans[upto - n].0)
}

/// The longest `n` such that `text` begins with the last `n` bytes of `secret` (a whole copy is
/// found by the ordinary search).
fn longest_overlap(secret: &[u8], text: &[u8]) -> usize {
    let longest = secret.len().saturating_sub(1).min(text.len());
    (SHORTEST_FRAGMENT..=longest).rev().find(|&n| text.starts_with(&secret[secret.len() - n..])).unwrap_or(0)
}

/// A token prefix (`glpat-…`, shorter than a whole token) cut off at the end of `text`.
fn token_prefix_at_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let tail = bytes.iter().rev().take_while(|b| is_token_char(**b)).count();
    let start = bytes.len() - tail;
    let word = &bytes[start..];
    let letters = word.get(2..)?.iter().take_while(|b| b.is_ascii_lowercase()).count();
    let is_prefix = word.starts_with(b"gl") && (2..=6).contains(&letters) && word.get(2 + letters) == Some(&b'-');
    is_prefix.then_some(start)
}

/// `text` with the given byte ranges (overlapping or not) replaced by one `[MASKED]` each.
fn replace_spans(text: &str, mut spans: Vec<(usize, usize)>) -> String {
    if spans.is_empty() {
        return text.to_owned();
    }
    spans.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in merged {
        // Decoded ranges always start and end on the text's ASCII escapes or whole characters.
        let (start, end) = (floor_boundary(text, start), ceil_boundary(text, end));
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

fn floor_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_boundary(text: &str, mut at: usize) -> usize {
    while at < text.len() && !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn herald_mask_names_more_secrets() {
        let vars = vars(&[
            ("HERALD_MASK", " DB_URL, ,SIGNING "),
            ("DB_URL", "postgres://u:pw@db/x"),
            ("SIGNING", "abcdef-signing"),
            ("PLAIN", "not-a-secret-value"),
        ]);
        let secrets = Secrets::from_vars(&vars);
        let masked = secrets.mask("postgres://u:pw@db/x abcdef-signing not-a-secret-value");
        assert_eq!(masked, "[MASKED] [MASKED] not-a-secret-value");
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// Token-shaped strings are assembled here, so that secret scanners do not flag the source.
    fn shaped() -> String {
        ["glpat", "ABCDEFGHIJKLMNOPQRST12"].join("-")
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
        let shaped = shaped();
        assert_eq!(Secrets::default().mask(&format!("token {shaped} end")), "token [MASKED] end");
        assert_eq!(
            Secrets::default().mask(&format!("glpat-short and ea{shaped}")),
            format!("glpat-short and ea{shaped}")
        );
    }

    #[test]
    fn masks_encoded_copies() {
        let secrets = Secrets::of(["s3cr3t+value/x".to_owned()]);
        assert_eq!(secrets.mask("q=s3cr3t%2Bvalue%2Fx&a"), "q=[MASKED]&a");
        assert_eq!(secrets.mask(r#"{"t":"\u0073\u0033cr3t+value/x"}"#), r#"{"t":"[MASKED]"}"#);
        assert_eq!(secrets.mask("%73%33%63%72%33%74%2b%76%61%6c%75%65%2f%78"), "[MASKED]");
        let shaped = shaped();
        let escaped = format!("\\u0067{}", &shaped[1..]);
        assert_eq!(Secrets::default().mask(&format!("x {escaped} y")), "x [MASKED] y");
        assert_eq!(mask_value(&format!("echo {}", shaped.replace('-', "%2D")), &shaped), "echo [MASKED]");
    }

    #[test]
    fn masks_what_a_cut_left_of_a_secret() {
        let secrets = Secrets::of(["supersecretvalue".to_owned()]);
        assert_eq!(secrets.mask("header supersecretvalu…"), "header [MASKED]…");
        assert_eq!(secrets.mask("…ecretvalue trailer"), "…[MASKED] trailer");
        // Even a short leftover goes; an uncut line keeps its words.
        assert_eq!(secrets.mask("header sup…"), "header [MASKED]…");
        assert_eq!(secrets.mask("…ue trailer"), "…[MASKED] trailer");
        assert_eq!(secrets.mask("header supersecret"), "header supersecret");
        let shaped = shaped();
        assert_eq!(Secrets::default().mask(&format!("t={}…", &shaped[..15])), "t=[MASKED]…");
        assert_eq!(mask_value(&format!("said {}…", &shaped[..12]), &shaped), "said [MASKED]…");
    }

    #[test]
    fn leaves_other_text_alone() {
        let secrets = Secrets::of(["supersecretvalue".to_owned()]);
        for text in ["", "%", "%4", "\\u00", "100% done", "é%zz\\uZZZZ", "a…b"] {
            assert_eq!(secrets.mask(text), text);
        }
    }
}
