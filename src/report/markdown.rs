//! Markdown and HTML made inert, for everything herald writes into GitLab's Markdown (the note,
//! findings' threads): names, output and step summaries cannot mention anyone, reference an
//! issue, run a quick action, open a tag or imitate herald's hidden blocks. Separate from the
//! note's layout because the findings' threads (publish/findings/) use the same escaping.
//!
//! Two kinds of text: a name or a line of output, which must render as itself (`cell`,
//! `pre_text`, `url_cell`), and a step's summary, which may render as Markdown but nothing more
//! (`inert_markdown`, `html_text`).

/// Text inside `<pre>`: HTML escaped, no mentions, no control characters. Markdown is not read
/// inside an HTML block, but brackets are written as entities all the same, so that no renderer
/// could ever make a link of `[x](javascript:…)`.
pub fn pre_text(text: &str) -> String {
    neutralised(text, |c, out| match c {
        '[' => out.push_str("&#91;"),
        ']' => out.push_str("&#93;"),
        '\t' => out.push_str("    "),
        c if c.is_control() => out.push(' '),
        c => out.push(c),
    })
}

/// Text for inline Markdown: no line breaks, Markdown and HTML neutralised, no mentions.
pub fn cell(text: &str) -> String {
    neutralised(text, |c, out| match c {
        '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '~' | '$' | '%' => {
            out.push('\\');
            out.push(c);
        }
        c if c.is_control() => out.push(' '),
        c => out.push(c),
    })
}

/// `text` with HTML's special characters as entities and mentions defused, whatever the
/// context; every other character as `rest` writes it for its context.
pub fn neutralised(text: &str, rest: impl Fn(char, &mut String)) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match (super::entity(c), c) {
            (Some(entity), _) => out.push_str(entity),
            // A zero-width space after @ keeps `@all` from notifying anyone; backslash escapes do
            // not, because GitLab finds mentions in the rendered text.
            (None, '@') => out.push_str("@\u{200b}"),
            (None, c) => rest(c, &mut out),
        }
    }
    out
}

/// A link target: only http(s), with the characters that would end the Markdown link encoded.
pub fn url_cell(url: &str) -> String {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return "#".into();
    }
    url.chars()
        .map(|c| match c {
            ' ' => "%20".to_owned(),
            '(' => "%28".to_owned(),
            ')' => "%29".to_owned(),
            '<' => "%3C".to_owned(),
            '>' => "%3E".to_owned(),
            '"' => "%22".to_owned(),
            '|' => "%7C".to_owned(),
            // Not a mention in a link's target either; GitLab's URLs never carry user info.
            '@' => "%40".to_owned(),
            c if c.is_control() => String::new(),
            c => c.to_string(),
        })
        .collect()
}

/// Defence in depth against quick actions: whatever the layout above does, no line of the body
/// starts with `/` (after optional indentation).
pub fn no_line_starts_with_slash(body: String) -> String {
    if !body.lines().any(|line| line.trim_start().starts_with('/')) {
        return body;
    }
    body.lines()
        .map(
            |line| {
                if line.trim_start().starts_with('/') {
                    format!("\\{}", line.trim_start())
                } else {
                    line.to_owned()
                }
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// A summary's Markdown made inert for the note: it renders as Markdown (headings, lists, tables,
/// emphasis, links), but no HTML, no mention, no reference that notifies, no quick action and
/// nothing that could imitate or end herald's own blocks:
/// - `<` and `&` are entities everywhere (no tag, comment or entity can form: herald's hidden
///   `<!-- herald:… -->` markers cannot be written, nor `</details>`);
/// - `@` is followed by a zero-width space, as are `#`, `!` and `&` before a number (`#12`, `!3`,
///   `&4`: references that leave a "mentioned in" note where they point);
/// - a line starting with `/` gets a zero-width space before it (GitLab's quick actions);
/// - fenced code blocks become `<pre>` blocks of escaped text, closed at the end even when the
///   summary left one open, so a fence cannot swallow what follows.
pub fn inert_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let marker: String = trimmed.chars().take_while(|&c| c == '`' || c == '~').collect();
        let is_fence = indent <= 3 && marker.len() >= 3 && marker.chars().all(|c| c == marker.as_bytes()[0] as char);
        match &fence {
            Some(open)
                if is_fence && marker.starts_with(open.as_str()) && trimmed[marker.len()..].trim().is_empty() =>
            {
                fence = None;
                out.push_str("</pre>\n");
            }
            Some(_) => {
                out.push_str(&inline(line, true));
                out.push('\n');
            }
            None if is_fence => {
                fence = Some(marker);
                out.push_str("<pre>");
            }
            None => {
                out.push_str(&inline(line, false));
                out.push('\n');
            }
        }
    }
    if fence.is_some() {
        out.push_str("</pre>\n");
    }
    out
}

/// Text for inside an HTML block (a `<summary>` title): no Markdown is read there, so only HTML,
/// mentions, references and control characters are neutralised (see `inert_markdown`).
pub fn html_text(text: &str) -> String {
    inline(text, true)
}

/// One line, neutralised (see `inert_markdown`); inside `<pre>` brackets are entities too.
fn inline(line: &str, in_pre: bool) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '<' => out.push_str("&lt;"),
            '&' => {
                out.push_str("&amp;");
                // `&12` is an epic's reference.
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push('\u{200b}');
                }
            }
            '>' if in_pre => out.push_str("&gt;"),
            '[' if in_pre => out.push_str("&#91;"),
            ']' if in_pre => out.push_str("&#93;"),
            '@' => out.push_str("@\u{200b}"),
            // `#12` and `!3` (also `group/project#12`) are references GitLab cross-links, leaving a
            // "mentioned in" note on the issue or merge request. A link's `#anchor` is left alone.
            '#' | '!' => {
                out.push(c);
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    out.push('\u{200b}');
                }
            }
            '\t' => out.push_str("    "),
            c if c.is_control() => out.push(' '),
            // Unicode's invisible line and paragraph separators: some renderers break lines there.
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push(' '),
            c => out.push(c),
        }
    }
    // Checked on what is written, once control characters became spaces.
    if out.trim_start().starts_with('/') {
        out.insert(0, '\u{200b}');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_inert() {
        assert_eq!(cell("/merge"), "/merge", "never at a line's start: cells follow `- ` or text");
        assert_eq!(cell("a | b"), "a \\| b");
        assert_eq!(cell("</details><script>"), "&lt;/details&gt;&lt;script&gt;");
        assert_eq!(cell("@all"), "@\u{200b}all");
        assert_eq!(cell("x\ny"), "x y");
        assert_eq!(cell("`rm -rf`"), "\\`rm -rf\\`");
    }

    #[test]
    fn links_cannot_escape() {
        assert_eq!(url_cell("javascript:alert(1)"), "#");
        assert_eq!(url_cell("https://x/a b)(c"), "https://x/a%20b%29%28c");
        assert_eq!(url_cell("https://x/@all"), "https://x/%40all", "no mention from a link either");
    }
}
