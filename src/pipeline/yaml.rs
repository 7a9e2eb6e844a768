//! YAML as GitLab CI files use it, read into herald's own tree.
//!
//! Why `saphyr-parser`: serde_yaml is archived, and GitLab's files need what a serde mapping
//! loses: custom tags (`!reference [job, script]` must survive to be resolved later), source
//! positions (errors name file, line and column), and anchors under herald's control. saphyr is
//! maintained, YAML 1.2, pure Rust, and its event API hands over tags, anchors and spans; the tree
//! is built here, so alias expansion is bounded (a "billion laughs" file is an error, not an
//! out-of-memory kill), nesting depth is bounded, and `<<:` merge keys (YAML 1.1, which GitLab
//! supports) are applied as GitLab does.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Most nodes a file may expand to, aliases included.
const MOST_NODES: usize = 1_000_000;
/// Deepest nesting of sequences and mappings.
const DEEPEST: usize = 200;

/// Where a node starts: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Any other scalar, as written (floats included: nothing in GitLab CI computes with them).
    Str(String),
    Seq(Vec<Node>),
    /// Keys in file order; a repeated key keeps its last value, as GitLab's parser does.
    Map(Vec<(String, Node)>),
    /// `!reference [job, key, ...]`, resolved after merging.
    Reference(Vec<String>),
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar as text (`3` → "3", `true` → "true"); None for collections and null.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

/// A YAML problem, with the position it was found at.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub at: Position,
    pub message: String,
}

/// Parses every document of `text` (GitLab files have one, or a `spec:` header, `---`, then one),
/// as libyaml (GitLab's reader) reads it where it differs from YAML 1.2 (libyaml.rs).
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    if let Some((line, column)) = super::libyaml::refusal(text) {
        return Err(YamlError {
            at: Position { line, column },
            message: "a tab after a block indicator ('-' or '?'): GitLab's YAML reader (libyaml) refuses it".into(),
        });
    }
    let first = match parse_exactly(text) {
        Ok(documents) => return Ok(documents),
        Err(error) => error,
    };
    let Some(rewrite) = super::libyaml::lenient(text) else { return Err(first) };
    // Positions in the rewritten text, mapped back to the file's.
    let original = |at: Position| {
        let shift = rewrite.shifts.get(at.line.wrapping_sub(1)).copied().unwrap_or(0);
        Position { line: at.line, column: (at.column as isize - shift).max(1) as usize }
    };
    match parse_exactly(&rewrite.text) {
        Ok(mut documents) => {
            documents.iter_mut().for_each(|node| map_positions(node, &original));
            Ok(documents)
        }
        Err(error) => Err(YamlError { at: original(error.at), ..error }),
    }
}

fn map_positions(node: &mut Node, original: &dyn Fn(Position) -> Position) {
    node.at = original(node.at);
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|item| map_positions(item, original)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, value)| map_positions(value, original)),
        _ => {}
    }
}

/// saphyr's reading of `text`, YAML 1.2.
fn parse_exactly(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder { anchors: HashMap::new(), nodes: 0 };
    let mut events = Parser::new_from_str(text).peekable();
    let mut documents = Vec::new();
    loop {
        let (event, span) = next(&mut events)?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => return Ok(documents),
            Event::DocumentStart(_) => {
                let (event, span) = next(&mut events)?;
                match event {
                    Event::DocumentEnd => documents.push(Node { value: Value::Null, at: position(span) }),
                    event => documents.push(builder.node(event, span, &mut events, 0)?),
                }
            }
            _ => return Err(YamlError { at: position(span), message: "unexpected content outside a document".into() }),
        }
    }
}

type Events<'a> = std::iter::Peekable<Parser<'a, saphyr_parser::StrInput<'a>>>;

fn next<'a>(events: &mut Events<'a>) -> Result<(Event<'a>, Span), YamlError> {
    match events.next() {
        Some(Ok(item)) => Ok(item),
        Some(Err(error)) => Err(YamlError {
            at: Position { line: error.marker().line(), column: error.marker().col() + 1 },
            message: error.info().to_owned(),
        }),
        None => Err(YamlError { at: Position::default(), message: "the file ends too early".into() }),
    }
}

fn position(span: Span) -> Position {
    Position { line: span.start.line(), column: span.start.col() + 1 }
}

struct Builder {
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl Builder {
    fn node<'a>(
        &mut self,
        event: Event<'a>,
        span: Span,
        events: &mut Events<'a>,
        depth: usize,
    ) -> Result<Node, YamlError> {
        let at = position(span);
        let error = |message: &str| YamlError { at, message: message.to_owned() };
        self.count(1, at)?;
        if depth > DEEPEST {
            return Err(error(&format!("nested more than {DEEPEST} levels deep")));
        }
        let (node, anchor) = match event {
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| error("an alias to an unknown anchor"))?;
                self.count(size(&node), at)?;
                return Ok(Node { at, ..node });
            }
            Event::Scalar(text, style, anchor, tag) => {
                let tagged = tag.as_ref().map(|t| format!("{}{}", t.handle, t.suffix));
                let value = match tagged.as_deref() {
                    Some("!reference") => return Err(error("!reference takes a sequence: !reference [job, key]")),
                    _ if style != ScalarStyle::Plain || tagged.as_deref() == Some("tag:yaml.org,2002:str") => {
                        Value::Str(text.into_owned())
                    }
                    _ => plain_scalar(&text),
                };
                (Node { value, at }, anchor)
            }
            Event::SequenceStart(anchor, tag) => {
                let is_reference = tag.as_ref().is_some_and(|t| format!("{}{}", t.handle, t.suffix) == "!reference");
                (Node { value: self.sequence(is_reference, at, events, depth)?, at }, anchor)
            }
            Event::MappingStart(anchor, _) => (Node { value: self.mapping(events, depth)?, at }, anchor),
            _ => return Err(error("unexpected YAML structure")),
        };
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    /// A sequence's items up to its end; a `!reference` one is a path of names.
    fn sequence<'a>(
        &mut self,
        is_reference: bool,
        at: Position,
        events: &mut Events<'a>,
        depth: usize,
    ) -> Result<Value, YamlError> {
        let mut items = Vec::new();
        loop {
            let (event, span) = next(events)?;
            if matches!(event, Event::SequenceEnd) {
                break;
            }
            items.push(self.node(event, span, events, depth + 1)?);
        }
        if !is_reference {
            return Ok(Value::Seq(items));
        }
        let path: Option<Vec<String>> = items.iter().map(Node::scalar_text).collect();
        let path = path.filter(|p| !p.is_empty());
        path.map(Value::Reference)
            .ok_or_else(|| YamlError { at, message: "!reference takes names: !reference [job, key]".into() })
    }

    /// A mapping's entries up to its end: a repeated key's last value wins, and `<<` merge keys
    /// fill in what the mapping does not set itself.
    fn mapping<'a>(&mut self, events: &mut Events<'a>, depth: usize) -> Result<Value, YamlError> {
        let mut entries: Vec<(String, Node)> = Vec::new();
        let mut merged: Vec<(String, Node)> = Vec::new();
        loop {
            let (event, span) = next(events)?;
            if matches!(event, Event::MappingEnd) {
                break;
            }
            let key_node = self.node(event, span, events, depth + 1)?;
            let (event, span) = next(events)?;
            let value = self.node(event, span, events, depth + 1)?;
            let Some(key) =
                key_node.scalar_text().or_else(|| matches!(key_node.value, Value::Null).then(|| "null".into()))
            else {
                return Err(YamlError { at: key_node.at, message: "a mapping key must be a plain value".into() });
            };
            if key == "<<" {
                merge_key(value, &mut merged)?;
            } else {
                entries.retain(|(k, _)| *k != key);
                entries.push((key, value));
            }
        }
        for (key, value) in merged {
            if !entries.iter().any(|(k, _)| *k == key) {
                entries.push((key, value));
            }
        }
        Ok(Value::Map(entries))
    }

    fn count(&mut self, nodes: usize, at: Position) -> Result<(), YamlError> {
        self.nodes += nodes;
        if self.nodes > MOST_NODES {
            return Err(YamlError {
                at,
                message: format!("expands to more than {MOST_NODES} values (aliases of aliases?)"),
            });
        }
        Ok(())
    }
}

/// Adds what a `<<` merge key brings (a mapping, or a list of them) to `merged`: the mapping's own
/// keys win over merged ones, earlier merges over later.
fn merge_key(value: Node, merged: &mut Vec<(String, Node)>) -> Result<(), YamlError> {
    let sources = match value.value {
        Value::Seq(items) => items,
        _ => vec![value],
    };
    for source in sources {
        let Value::Map(source_entries) = source.value else {
            return Err(YamlError { at: source.at, message: "<< merges mappings only".into() });
        };
        for (key, value) in source_entries {
            if !merged.iter().any(|(k, _)| *k == key) {
                merged.push((key, value));
            }
        }
    }
    Ok(())
}

fn size(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(size).sum(),
        Value::Map(entries) => entries.iter().map(|(_, v)| size(v)).sum(),
        _ => 0,
    }
}

/// A plain scalar as GitLab reads it: Ruby's Psych, YAML 1.1 (`yes`/`on` are true, `010` is 8,
/// `0x1F` 31, `1_000` 1000, `12:30` 45000 seconds), and a float as Ruby prints it (`3.10` is `3.1`,
/// which is what GitLab names a matrix job `test: [3.1]` after).
fn plain_scalar(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Value::Bool(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Value::Bool(false),
        _ => match (psych_integer(text), psych_float(text)) {
            (Some(int), _) => Value::Int(int),
            (None, Some(float)) => Value::Str(ruby_float(float)),
            _ => Value::Str(text.to_owned()),
        },
    }
}

/// Psych's integers: `0b101`, `017` (octal), `0x1F`, decimals with `_` or `,` between digits, and
/// times `1:30` (seconds).
fn psych_integer(text: &str) -> Option<i64> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let clean = |body: &str, allowed: fn(char) -> bool| -> Option<String> {
        (!body.is_empty() && body.chars().all(|c| allowed(c) || c == '_' || c == ',') && body.chars().any(allowed))
            .then(|| body.chars().filter(|c| allowed(*c)).collect())
    };
    let value = if let Some(binary) = digits.strip_prefix("0b") {
        i64::from_str_radix(&clean(binary, |c| matches!(c, '0' | '1'))?, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(&clean(hex, |c| c.is_ascii_hexdigit())?, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&clean(&digits[1..], |c| matches!(c, '0'..='7'))?, 8).ok()?
    } else if digits.contains(':') {
        // Psych reads `h:mm` and `h:mm:ss` as seconds: each part times 60^|index - 2|.
        let parts: Vec<&str> = digits.split(':').collect();
        let first = parts[0];
        if !(2..=3).contains(&parts.len())
            || !first.starts_with(|c: char| c.is_ascii_digit())
            || !first.chars().all(|c| c.is_ascii_digit() || c == '_')
        {
            return None;
        }
        let mut total: i64 = 0;
        for (index, part) in parts.iter().enumerate() {
            let number: i64 = if index == 0 {
                part.replace('_', "").parse().ok()?
            } else {
                part.parse().ok().filter(|n| (0..60).contains(n) && (1..=2).contains(&part.len()))?
            };
            total = total.checked_add(number.checked_mul(60i64.pow((index as i32 - 2).unsigned_abs()))?)?;
        }
        total
    } else {
        // A decimal: `_` and `,` only between digits, no leading zero (that is octal).
        let bytes = digits.as_bytes();
        let separated_well = bytes.iter().enumerate().all(|(i, b)| {
            b.is_ascii_digit()
                || (matches!(b, b'_' | b',') && i > 0 && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        });
        if digits.is_empty() || !separated_well {
            return None;
        }
        digits.replace(['_', ','], "").parse().ok()?
    };
    Some(sign * value)
}

/// Psych's floats: digits, a `.`, digits, and an exponent only with its sign (`1.5e+3`; `1e3` and
/// `1.5e3` stay strings); `.inf`, `.nan`.
fn psych_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    match unsigned {
        ".inf" | ".Inf" | ".INF" => return Some(if text.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY }),
        ".nan" | ".NaN" | ".NAN" if unsigned == text => return Some(f64::NAN),
        _ => {}
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.')?;
    let whole_ok = whole.is_empty()
        || (whole.starts_with(|c: char| c.is_ascii_digit())
            && whole.chars().all(|c| c.is_ascii_digit() || c == '_' || c == ','));
    let exponent_ok =
        exponent.is_none_or(|e| e.len() > 1 && e.starts_with(['-', '+']) && e[1..].chars().all(|c| c.is_ascii_digit()));
    if !whole_ok
        || !fraction.chars().all(|c| c.is_ascii_digit())
        || !exponent_ok
        || (whole.is_empty() && fraction.is_empty())
    {
        return None;
    }
    text.replace(['_', ','], "")
        .trim_end_matches('.')
        .parse()
        .ok()
        .or_else(|| format!("{}0", text.replace(['_', ','], "")).parse().ok())
}

/// How Ruby prints a float: the shortest digits that read back the same, in plain notation with
/// at least one decimal (`3.1`, `1500.0`) for exponents -4 to 15, else `1.0e+16`, `1.0e-05`.
fn ruby_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let scientific = format!("{value:e}"); // shortest round-trip digits: `-1.5e3`
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{text}")
    } else {
        let rest = if digits.len() > 1 { &digits[1..] } else { "0" };
        format!("{sign}{}.{rest}e{}{:02}", &digits[..1], if exponent < 0 { '-' } else { '+' }, exponent.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let mut documents = parse(text).unwrap();
        assert_eq!(documents.len(), 1);
        documents.remove(0)
    }

    /// Each expected text is what Ruby 3.1's `YAML.safe_load` gives, printed with `to_s`.
    #[test]
    fn plain_scalars_read_as_gitlabs_ruby_reads_them() {
        let cases = [
            ("3.10", "3.1"),
            ("3.9", "3.9"),
            ("1.0", "1.0"),
            ("1.", "1.0"),
            (".5", "0.5"),
            ("1e3", "1e3"),
            ("1.5e3", "1.5e3"),
            ("1.5E+3", "1500.0"),
            ("1.0e+16", "1.0e+16"),
            ("1.0e16", "1.0e16"),
            ("10000000000000000.0", "1.0e+16"),
            ("0.0001", "0.0001"),
            ("0.00001", "1.0e-05"),
            ("-2.50", "-2.5"),
            ("+1.5", "1.5"),
            ("1_000.5", "1000.5"),
            ("010", "8"),
            ("0x1F", "31"),
            ("0b101", "5"),
            ("1_000", "1000"),
            ("1,000", "1000"),
            ("+5", "5"),
            ("-0", "0"),
            ("yes", "true"),
            ("Yes", "true"),
            ("on", "true"),
            ("OFF", "false"),
            ("no", "false"),
            ("y", "y"),
            ("n", "n"),
            ("0o17", "0o17"),
            ("12:30", "45000"),
            ("1:30:00", "5400"),
            ("0.1e1", "0.1e1"),
            ("1.2.3", "1.2.3"),
            ("3.10.1", "3.10.1"),
            ("08", "08"),
            ("0.", "0.0"),
            ("v1.2", "v1.2"),
        ];
        for (written, ruby) in cases {
            let node = one(&format!("k: {written}\n")).get("k").cloned().unwrap();
            assert_eq!(node.scalar_text().as_deref(), Some(ruby), "{written}");
        }
        // Quoted, a scalar is a string as written.
        assert_eq!(one("k: \"3.10\"\n").get("k").unwrap().scalar_text().as_deref(), Some("3.10"));
    }

    #[test]
    fn keeps_references_and_positions() {
        let doc = one("job:\n  script:\n    - !reference [.setup, script]\n    - echo hi\n");
        let script = doc.get("job").unwrap().get("script").unwrap();
        let Value::Seq(items) = &script.value else { panic!() };
        assert_eq!(items[0].value, Value::Reference(vec![".setup".into(), "script".into()]));
        assert_eq!(items[1].at, Position { line: 4, column: 7 });
    }

    #[test]
    fn applies_anchors_and_merge_keys() {
        let doc = one(".base: &base\n  image: rust\n  tags: [a]\njob:\n  <<: *base\n  tags: [b]\n");
        let job = doc.get("job").unwrap();
        assert_eq!(job.get("image").unwrap().as_str(), Some("rust"));
        let Value::Seq(tags) = &job.get("tags").unwrap().value else { panic!() };
        assert_eq!(tags[0].as_str(), Some("b"), "the mapping's own key wins");
    }

    #[test]
    fn types_plain_scalars_only() {
        let doc = one("a: 3\nb: '3'\nc: true\nd: ~\ne: 1.5\n");
        assert_eq!(doc.get("a").unwrap().value, Value::Int(3));
        assert_eq!(doc.get("b").unwrap().value, Value::Str("3".into()));
        assert_eq!(doc.get("c").unwrap().value, Value::Bool(true));
        assert_eq!(doc.get("d").unwrap().value, Value::Null);
        assert_eq!(doc.get("e").unwrap().as_str(), Some("1.5"));
    }

    #[test]
    fn reads_a_spec_header_and_a_body() {
        assert_eq!(parse("spec:\n  inputs: {}\n---\njob:\n  script: [x]\n").unwrap().len(), 2);
    }

    #[test]
    fn refuses_bombs_and_bad_yaml_with_a_position() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n",
                p = i - 1
            ));
        }
        let error = parse(&bomb).unwrap_err();
        assert!(error.message.contains("more than 1000000 values"), "{error:?}");
        let error = parse("job:\n  script: [unclosed\n").unwrap_err();
        assert!(error.at.line >= 2, "{error:?}");
        // saphyr's own recursion limit (256) or herald's (200), whichever comes first: an error, not a crash.
        let deep = format!("{}x{}", "[".repeat(300), "]".repeat(300));
        let error = parse(&deep).unwrap_err();
        assert!(error.message.contains("nested more than") || error.message.contains("recursion limit"), "{error:?}");
        assert_eq!(error.at.line, 1);
    }
}
