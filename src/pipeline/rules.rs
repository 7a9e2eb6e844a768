//! `rules:` of an include (gitlab.md §I.1, §M): `if`, `exists` (patterns as Ruby's fnmatch,
//! `glob.rs`) and `changes`, with `when: never` or `always`. The first rule whose conditions all
//! hold decides (`never` drops the include); when no rule holds, the include is dropped. What cannot be decided here — `changes:` (needs the push's
//! diff), `exists:` in another project — keeps the include, so herald never loses jobs GitLab
//! would have.

use super::yaml::{Node, Value};

/// What the rules say about an include.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Include,
    Exclude,
    /// Not decidable here: kept.
    Unknown,
}

/// `variables` looks a CI/CD variable up; `exists` tells whether a path pattern matches a file.
pub fn decide(
    rules: &Node,
    variables: &dyn Fn(&str) -> Option<String>,
    exists: &dyn Fn(&str) -> Option<bool>,
) -> Decision {
    let Value::Seq(rules) = &rules.value else { return Decision::Unknown };
    for rule in rules {
        let mut holds = Some(true);
        if let Some(condition) = rule.get("if").and_then(Node::as_str) {
            holds = and(holds, evaluate(condition, variables));
        }
        if let Some(paths) = rule.get("exists") {
            let listed = |node: &Node| match &node.value {
                Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
                Value::Str(one) => vec![one.clone()],
                _ => vec![],
            };
            let patterns: Vec<String> = match &paths.value {
                // {paths, project}: another project's files, not decidable here.
                Value::Map(_) if paths.get("project").is_some() => vec![],
                Value::Map(_) => paths.get("paths").map(listed).unwrap_or_default(),
                _ => listed(paths),
            };
            let found = if patterns.is_empty() {
                None
            } else {
                patterns.iter().map(|p| exists(p)).try_fold(false, |any, one| one.map(|one| any || one))
            };
            holds = and(holds, found);
        }
        if rule.get("changes").is_some() {
            holds = and(holds, None);
        }
        match holds {
            Some(true) => {
                let never = rule.get("when").and_then(Node::as_str) == Some("never");
                return if never { Decision::Exclude } else { Decision::Include };
            }
            Some(false) => continue,
            None => return Decision::Unknown,
        }
    }
    Decision::Exclude
}

fn and(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

/// A CI/CD variable expression; None when it cannot be evaluated (an invalid regex, bad syntax).
pub fn evaluate(expression: &str, variables: &dyn Fn(&str) -> Option<String>) -> Option<bool> {
    let tokens = tokens(expression)?;
    let mut parser = Parser { tokens: &tokens, at: 0, variables };
    let value = parser.or()?;
    (parser.at == tokens.len()).then_some(value)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Variable(String),
    Text(String),
    Null,
    Pattern(String, bool),
    Equal,
    NotEqual,
    Matches,
    NotMatches,
    And,
    Or,
    Open,
    Close,
}

fn tokens(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match c {
            ' ' | '\t' => i += 1,
            '(' => (tokens.push(Token::Open), i += 1).1,
            ')' => (tokens.push(Token::Close), i += 1).1,
            '$' => {
                let braced = chars.get(i + 1) == Some(&'{');
                let start = i + 1 + usize::from(braced);
                let end = start + chars[start..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
                tokens.push(Token::Variable(chars[start..end].iter().collect()));
                i = end + usize::from(braced);
            }
            '"' | '\'' => {
                let end = i + 1 + chars[i + 1..].iter().position(|q| *q == c)?;
                tokens.push(Token::Text(chars[i + 1..end].iter().collect()));
                i = end + 1;
            }
            '/' => {
                let mut end = i + 1;
                while end < chars.len() && chars[end] != '/' {
                    end += if chars[end] == '\\' { 2 } else { 1 };
                }
                if end >= chars.len() {
                    return None;
                }
                let insensitive = chars.get(end + 1) == Some(&'i');
                tokens.push(Token::Pattern(chars[i + 1..end].iter().collect(), insensitive));
                i = end + 1 + usize::from(insensitive);
            }
            _ if two == "==" => (tokens.push(Token::Equal), i += 2).1,
            _ if two == "!=" => (tokens.push(Token::NotEqual), i += 2).1,
            _ if two == "=~" => (tokens.push(Token::Matches), i += 2).1,
            _ if two == "!~" => (tokens.push(Token::NotMatches), i += 2).1,
            _ if two == "&&" => (tokens.push(Token::And), i += 2).1,
            _ if two == "||" => (tokens.push(Token::Or), i += 2).1,
            _ if chars[i..].iter().collect::<String>().starts_with("null") => (tokens.push(Token::Null), i += 4).1,
            _ => return None,
        }
    }
    Some(tokens)
}

struct Parser<'t> {
    tokens: &'t [Token],
    at: usize,
    variables: &'t dyn Fn(&str) -> Option<String>,
}

/// An operand's value: a string, or null (an undefined variable, `null`).
enum Operand {
    Value(Option<String>),
    Pattern(String, bool),
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Option<bool> {
        let mut value = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            value = self.and()? || value;
        }
        Some(value)
    }

    fn and(&mut self) -> Option<bool> {
        let mut value = self.comparison()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            value = self.comparison()? && value;
        }
        Some(value)
    }

    fn comparison(&mut self) -> Option<bool> {
        if self.peek() == Some(&Token::Open) {
            self.at += 1;
            let value = self.or()?;
            if self.peek() != Some(&Token::Close) {
                return None;
            }
            self.at += 1;
            return Some(value);
        }
        let left = self.operand()?;
        let operator = match self.peek() {
            Some(op @ (Token::Equal | Token::NotEqual | Token::Matches | Token::NotMatches)) => op.clone(),
            // A lone variable: true when defined and not empty.
            _ => return Some(matches!(left, Operand::Value(Some(ref v)) if !v.is_empty())),
        };
        self.at += 1;
        let right = self.operand()?;
        let negated = operator == Token::NotMatches;
        match (operator, left, right) {
            (Token::Equal, Operand::Value(a), Operand::Value(b)) => Some(a == b),
            (Token::NotEqual, Operand::Value(a), Operand::Value(b)) => Some(a != b),
            (Token::Matches | Token::NotMatches, Operand::Value(value), Operand::Pattern(pattern, insensitive))
            | (Token::Matches | Token::NotMatches, Operand::Pattern(pattern, insensitive), Operand::Value(value)) => {
                let regex = regex::RegexBuilder::new(&pattern).case_insensitive(insensitive).build().ok()?;
                let matched = value.is_some_and(|v| regex.is_match(&v));
                Some(matched != negated)
            }
            _ => None,
        }
    }

    fn operand(&mut self) -> Option<Operand> {
        let token = self.peek()?.clone();
        self.at += 1;
        match token {
            Token::Variable(name) => Some(Operand::Value((self.variables)(&name))),
            Token::Text(text) => Some(Operand::Value(Some(text))),
            Token::Null => Some(Operand::Value(None)),
            Token::Pattern(pattern, insensitive) => Some(Operand::Pattern(pattern, insensitive)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::yaml::parse;

    fn vars(name: &str) -> Option<String> {
        match name {
            "CI_PIPELINE_SOURCE" => Some("merge_request_event".into()),
            "CI_COMMIT_BRANCH" => Some("feature/x".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expressions() {
        let eval = |e: &str| evaluate(e, &vars);
        assert_eq!(eval(r#"$CI_PIPELINE_SOURCE == "merge_request_event""#), Some(true));
        assert_eq!(eval(r#"$CI_PIPELINE_SOURCE != 'push'"#), Some(true));
        assert_eq!(eval("$CI_COMMIT_TAG"), Some(false));
        assert_eq!(eval("$EMPTY"), Some(false));
        assert_eq!(eval("$CI_COMMIT_TAG == null"), Some(true));
        assert_eq!(eval("$CI_COMMIT_BRANCH =~ /^feature\\//"), Some(true));
        assert_eq!(eval("$CI_COMMIT_BRANCH !~ /^FEATURE/i"), Some(false));
        assert_eq!(
            eval(r#"$CI_COMMIT_TAG || ($CI_PIPELINE_SOURCE == "merge_request_event" && ${CI_COMMIT_BRANCH})"#),
            Some(true)
        );
        assert_eq!(eval("$X == "), None, "bad syntax cannot be decided");
        assert_eq!(eval("$X =~ /(/"), None, "an invalid regex cannot be decided");
    }

    #[test]
    fn the_first_holding_rule_decides() {
        let rules = |text: &str| parse(text).unwrap().remove(0);
        let exists = |path: &str| Some(path == "Cargo.toml");
        let decide = |text: &str| decide(&rules(text), &vars, &exists);
        assert_eq!(
            decide("- if: $CI_COMMIT_TAG\n- if: $CI_PIPELINE_SOURCE == \"merge_request_event\""),
            Decision::Include
        );
        assert_eq!(
            decide("- if: $CI_PIPELINE_SOURCE == \"merge_request_event\"\n  when: never\n- when: always"),
            Decision::Exclude
        );
        assert_eq!(decide("- if: $CI_COMMIT_TAG"), Decision::Exclude, "no rule holds");
        assert_eq!(decide("- exists: [Cargo.toml]"), Decision::Include);
        assert_eq!(decide("- exists: [package.json]"), Decision::Exclude);
        assert_eq!(decide("- changes: [src/**]"), Decision::Unknown);
    }
}
