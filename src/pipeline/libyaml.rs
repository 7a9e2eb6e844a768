//! Where libyaml, which GitLab reads YAML with (Ruby's Psych), and YAML 1.2 (saphyr, which herald
//! parses with) disagree, herald reads what libyaml reads. Each difference is recorded with a
//! fixture under tests/fixtures/yaml/, checked against PyYAML's C loader (libyaml) where it is
//! installed (tests/agreement.rs):
//!
//! - **Indentation inside flow collections and quoted scalars.** libyaml ignores it ("In the flow
//!   context, indentation is ignored", PyYAML's scanner, a port of libyaml's); YAML 1.2 asks the
//!   continuation lines of `[...]`, `{...}` and multi-line `"..."`/`'...'` to be indented more
//!   than the block they sit in. `lenient` re-indents such continuation lines, which changes
//!   nothing else: leading white space there is folded away in both readings.
//! - **A tab after `key:`** (`key:<TAB>value`): libyaml 0.2.5 reads it; saphyr refuses it.
//!   `lenient` turns that tab into a space.
//! - **A tab after a block indicator** (`-<TAB>x`, `? <TAB>x`): saphyr reads it; libyaml refuses it
//!   ("found character that cannot start any token"), so GitLab refuses the file. `refusals`
//!   refuses it too.
//! - The same in both, recorded so it stays so: tabs as block indentation are refused; a
//!   repeated key keeps its last value (Psych; YAML 1.2 would refuse); anchors and aliases in flow
//!   collections; `---` inside a flow collection is refused; `...` ends a document.
//!
//! The rewrite is only tried when the text as written does not parse, so a file both read the
//! same way is never touched; positions in the rewritten text are mapped back to the file's.

/// A rewrite of the text, and per line (0-based) how many columns its content moved right.
pub struct Rewrite {
    pub text: String,
    pub shifts: Vec<isize>,
}

/// Where the scanner is, between lines.
#[derive(Default)]
struct Context {
    /// Open `[` / `{`, and the column (0-based) of the outermost one.
    flow_depth: usize,
    flow_column: usize,
    /// Inside a quoted scalar: its quote and the column it opened at.
    quote: Option<(char, usize)>,
    /// Inside a block scalar (`|`, `>`): the column its lines must be indented past.
    block_scalar: Option<usize>,
}

/// Something libyaml refuses that saphyr reads: a tab right after a `-` or `?` block indicator.
/// Returns the 1-based line and column of the tab.
pub fn refusal(text: &str) -> Option<(usize, usize)> {
    let mut refused = None;
    scan(text, &mut |event| {
        if let Event::TabAfterIndicator(line, column) = event {
            refused.get_or_insert((line + 1, column + 1));
        }
    });
    refused
}

/// The text re-indented where libyaml ignores indentation, and `:<TAB>` made `: `; None when
/// there is nothing to change.
pub fn lenient(text: &str) -> Option<Rewrite> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut shifts = vec![0isize; lines.len()];
    let mut needed: Vec<Option<usize>> = vec![None; lines.len()];
    let mut tabs: Vec<Vec<usize>> = vec![Vec::new(); lines.len()];
    scan(text, &mut |event| match event {
        Event::Continuation(line, column) => needed[line] = Some(column),
        Event::TabAfterColon(line, column) => tabs[line].push(column),
        Event::TabAfterIndicator(..) => {}
    });
    let mut out = String::with_capacity(text.len() + 64);
    let mut changed = false;
    for (index, line) in lines.iter().enumerate() {
        let mut chars: Vec<char> = line.chars().collect();
        for column in &tabs[index] {
            chars[*column] = ' ';
            changed = true;
        }
        let indent = chars.iter().take_while(|c| matches!(c, ' ' | '\t')).count();
        match needed[index] {
            Some(column) if indent < column || chars[..indent].contains(&'\t') => {
                let target = column.max(indent);
                out.push_str(&" ".repeat(target));
                out.extend(&chars[indent..]);
                shifts[index] = target as isize - indent as isize;
                changed = true;
            }
            _ => out.extend(&chars),
        }
    }
    changed.then_some(Rewrite { text: out, shifts })
}

enum Event {
    /// A line (0-based) that continues a flow collection or quoted scalar; its content must start
    /// at this column (0-based) or later for YAML 1.2.
    Continuation(usize, usize),
    /// A tab right after a mapping's `:` in block context.
    TabAfterColon(usize, usize),
    /// A tab right after a `-` or `?` block indicator.
    TabAfterIndicator(usize, usize),
}

/// Reads the text as far as these differences need: block scalars, quoted scalars, flow
/// collections, comments, and where a node may start.
fn scan(text: &str, report: &mut dyn FnMut(Event)) {
    let mut context = Context::default();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let chars: Vec<char> = line.trim_end_matches(['\n', '\r']).chars().collect();
        let indent = chars.iter().take_while(|c| matches!(c, ' ' | '\t')).count();
        let blank = indent == chars.len();
        if let Some(parent) = context.block_scalar {
            if blank || indent > parent {
                continue;
            }
            context.block_scalar = None;
        }
        let marker = |m: &str| line.starts_with(m) && line[3..].chars().next().is_none_or(|c| c.is_whitespace());
        if marker("---") || marker("...") {
            context = Context::default();
            continue;
        }
        if blank {
            continue;
        }
        if let Some((_, column)) = context.quote {
            report(Event::Continuation(index, column + 1));
        } else if context.flow_depth > 0 {
            report(Event::Continuation(index, context.flow_column + 1));
        }
        scan_line(index, &chars, indent, &mut context, report);
    }
}

fn scan_line(index: usize, chars: &[char], indent: usize, context: &mut Context, report: &mut dyn FnMut(Event)) {
    let space = |at: usize| chars.get(at).is_none_or(|c| matches!(c, ' ' | '\t'));
    // In block context: whether a node may start here, and the column a block scalar's lines
    // must pass (the key's, or the `-`'s).
    let mut node_start = context.quote.is_none() && context.flow_depth == 0;
    let mut parent = indent;
    let mut key = indent;
    // In flow context: the last significant character, for whether a quote opens a scalar.
    let mut previous = if context.flow_depth > 0 { ',' } else { ' ' };
    let mut i = if context.quote.is_some() { 0 } else { indent };
    while i < chars.len() {
        let c = chars[i];
        if context.quote.is_some() {
            i = in_quote(chars, i, context, &mut previous);
            continue;
        }
        if matches!(c, ' ' | '\t') {
            i += 1;
            continue;
        }
        if c == '#' && (i == 0 || space(i - 1)) {
            return;
        }
        if context.flow_depth > 0 {
            in_flow(c, i, context, &mut previous);
            i += 1;
            continue;
        }
        if node_start {
            match c {
                '-' | '?' if space(i + 1) => {
                    parent = i;
                    i = after_indicator(index, chars, i, report);
                    key = i;
                    continue;
                }
                '[' | '{' => {
                    context.flow_depth = 1;
                    context.flow_column = i;
                    previous = c;
                    i += 1;
                    continue;
                }
                '"' | '\'' => {
                    context.quote = Some((c, i));
                    key = i;
                    node_start = false;
                    i += 1;
                    continue;
                }
                '|' | '>' => {
                    context.block_scalar = Some(parent);
                    return;
                }
                '&' | '!' => {
                    // An anchor or a tag: the node follows it.
                    i += chars[i..].iter().take_while(|c| !matches!(c, ' ' | '\t')).count();
                    continue;
                }
                _ => {
                    key = i;
                    node_start = false;
                }
            }
        }
        if c == ':' && space(i + 1) {
            if chars.get(i + 1) == Some(&'\t') {
                report(Event::TabAfterColon(index, i + 1));
            }
            node_start = true;
            parent = key;
        }
        i += 1;
    }
}

/// Inside a quoted scalar: the position after the character at `i` (an escape or a doubled
/// `''` is taken whole), closing the scalar at its quote.
fn in_quote(chars: &[char], i: usize, context: &mut Context, previous: &mut char) -> usize {
    let Some((quote, _)) = context.quote else { return i + 1 };
    match (quote, chars[i]) {
        ('\'', '\'') if chars.get(i + 1) == Some(&'\'') => return i + 2,
        ('"', '\\') => return i + 2,
        (q, c) if q == c => {
            context.quote = None;
            *previous = c;
        }
        _ => {}
    }
    i + 1
}

/// In flow context (`[...]`, `{...}`): brackets nest, and a quote after an indicator opens a
/// quoted scalar.
fn in_flow(c: char, i: usize, context: &mut Context, previous: &mut char) {
    match c {
        '[' | '{' => context.flow_depth += 1,
        ']' | '}' => context.flow_depth -= 1,
        '"' | '\'' if matches!(previous, '[' | '{' | ',' | ':' | '?') => context.quote = Some((c, i)),
        _ => {}
    }
    *previous = c;
}

/// The position of the node after a `-` or `?` block indicator at `i` and the blanks after it;
/// a tab among those blanks is reported (libyaml refuses it).
fn after_indicator(index: usize, chars: &[char], i: usize, report: &mut dyn FnMut(Event)) -> usize {
    let run = chars[i + 1..].iter().take_while(|c| matches!(c, ' ' | '\t')).count();
    if let Some(tab) = chars[i + 1..i + 1 + run].iter().position(|c| *c == '\t') {
        report(Event::TabAfterIndicator(index, i + 1 + tab));
    }
    i + 1 + run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindents_flow_continuations_only() {
        let text = "test:\n  parallel:\n    matrix:\n      - FLAGS: [\n          \"--disable-a\",\n      ]\n  script: |\n    [\n  x\n";
        let rewrite = lenient(text).unwrap();
        let indented = " ".repeat(16);
        assert_eq!(
            rewrite.text,
            format!("test:\n  parallel:\n    matrix:\n      - FLAGS: [\n{indented}\"--disable-a\",\n{indented}]\n  script: |\n    [\n  x\n")
        );
        assert_eq!((rewrite.shifts[4], rewrite.shifts[5]), (6, 10));
        assert_eq!(lenient("a: [x,\n    y]\nb: 'c'\n").map(|r| r.text), None, "already indented");
    }

    #[test]
    fn finds_tabs_libyaml_reads_and_refuses() {
        assert_eq!(lenient("key:\tvalue\n").unwrap().text, "key: value\n");
        assert_eq!(refusal("a:\n  -\tx\n"), Some((2, 4)));
        assert_eq!(refusal("a:\n  - \tx\n"), Some((2, 5)));
        assert_eq!(refusal("a:\n  - x\t# c\nb: |\n  -\tliteral\n"), None, "block scalars are text");
        assert_eq!(refusal("a: \"x\n-\ty\"\n"), None, "quoted scalars are text");
    }
}
