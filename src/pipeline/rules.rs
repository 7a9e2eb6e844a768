//! `rules:` (of includes, jobs and `workflow:`), and `only`/`except` (gitlab.md §I.1, §M). One
//! evaluator for all of them: `if` (CI/CD variable expressions), `exists` (patterns as Ruby's
//! fnmatch, `glob.rs`) and `changes`. The first rule whose conditions all hold decides; when none
//! holds, the include, job or pipeline is not created. What cannot be decided here — `changes:`
//! in a push or merge request pipeline (needs the diff), `exists:` in another project, a pattern
//! past herald's glob limits, an expression herald cannot read — makes every rule that may be the
//! first to hold a candidate (`Candidates`): the callers then keep the include, job or pipeline
//! unless every candidate agrees, so herald never loses what GitLab would have.

use super::yaml::{Node, Value};

/// What the rules say about an include (or a pipeline: `workflow:rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Include,
    Exclude,
    /// Not decidable here: kept.
    Unknown,
}

/// Looks a CI/CD variable up (None: not set).
pub type Variables<'a> = &'a dyn Fn(&str) -> Option<String>;
/// Whether any of the path patterns matches a file (None: cannot say).
pub type Exists<'a> = &'a dyn Fn(&[String]) -> Option<bool>;

/// The rules that may be the first to hold, in order; `none` says whether it may be that no rule
/// holds. Decidable rules give one candidate (or none, with `none` true).
#[derive(Debug)]
pub struct Candidates<'a> {
    pub rules: Vec<&'a Node>,
    pub none: bool,
}

/// The candidates among `rules` (a sequence of rules); None when `rules` is not a list herald
/// can read (an unresolved `!reference`, say).
pub fn candidates<'a>(rules: &'a Node, variables: Variables, exists: Exists) -> Option<Candidates<'a>> {
    let items: Vec<&Node> = match &rules.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        _ => return None,
    };
    let mut possible = Vec::new();
    for rule in items {
        match holds(rule, variables, exists) {
            Some(true) => {
                possible.push(rule);
                return Some(Candidates { rules: possible, none: false });
            }
            Some(false) => {}
            None => possible.push(rule),
        }
    }
    Some(Candidates { rules: possible, none: true })
}

/// Whether one rule's conditions all hold; None when that cannot be said here.
fn holds(rule: &Node, variables: Variables, exists: Exists) -> Option<bool> {
    let mut holds = Some(true);
    if let Some(condition) = rule.get("if") {
        holds = and(holds, condition.as_str().and_then(|text| evaluate(text, variables)));
    }
    if let Some(paths) = rule.get("exists") {
        let listed = |node: &Node| match &node.value {
            Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
            _ => node.scalar_text().into_iter().collect(),
        };
        let found = match &paths.value {
            // {paths, project}: another project's files, not decidable here.
            Value::Map(_) if paths.get("project").is_some() => None,
            Value::Map(_) => Some(paths.get("paths").map(listed).unwrap_or_default()),
            _ => Some(listed(paths)),
        };
        let expanded = found.map(|patterns: Vec<String>| {
            patterns.iter().map(|pattern| expand_existing(pattern, variables)).collect::<Vec<_>>()
        });
        holds = and(holds, expanded.and_then(|patterns| exists(&patterns)));
    }
    if rule.get("changes").is_some() {
        holds = and(holds, changes(variables));
    }
    holds
}

/// `$NAME` and `${NAME}` replaced where the variable is set, the rest left as written (GitLab's
/// `ExpandVariables.expand_existing`, which `exists:` patterns go through).
fn expand_existing(text: &str, variables: Variables) -> String {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(braced) => match braced.find('}') {
                Some(end) if braced[..end].chars().all(is_name) => (&braced[..end], end + 2),
                _ => ("", 0),
            },
            None => {
                let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match (!name.is_empty()).then(|| variables(name)).flatten() {
            Some(value) => {
                out.push_str(&value);
                rest = &after[used..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `changes:` (and `only: changes`): GitLab compares with the push's diff, which herald does not
/// have; in pipelines that have no diff (scheduled, web, API, trigger, parent pipelines) it is
/// documented to hold.
fn changes(variables: Variables) -> Option<bool> {
    let source = variables("CI_PIPELINE_SOURCE")?;
    const WITHOUT_DIFF: [&str; 6] = ["schedule", "web", "api", "trigger", "pipeline", "parent_pipeline"];
    WITHOUT_DIFF.contains(&source.as_str()).then_some(true)
}

/// An include's (or the pipeline's) fate: dropped by `when: never` or by no rule holding.
pub fn decide(rules: &Node, variables: Variables, exists: Exists) -> Decision {
    let Some(found) = candidates(rules, variables, exists) else { return Decision::Unknown };
    // Kept or dropped, for each way the rules may end.
    let kept = found.rules.iter().map(|rule| rule.get("when").and_then(Node::as_str) != Some("never"));
    let all: Vec<bool> = kept.chain(found.none.then_some(false)).collect();
    if all.iter().all(|kept| *kept) {
        Decision::Include
    } else if all.iter().all(|kept| !kept) {
        Decision::Exclude
    } else {
        Decision::Unknown
    }
}

/// `only:` / `except:` (GitLab's `Policy`): whether the job is created, None when herald cannot
/// say. Without either, GitLab's default is `only: [branches, tags]`, dropped when the job has
/// `rules:` or the configuration has `workflow:rules`; the caller passes `only` as it applies.
pub fn only_except(only: Option<&Node>, except: Option<&Node>, variables: Variables) -> Option<bool> {
    let only_holds = match only {
        Some(policy) => policy_holds(policy, variables),
        None => Some(true),
    };
    let except_holds = match except {
        Some(policy) => policy_holds(policy, variables),
        None => Some(false),
    };
    and(only_holds, except_holds.map(|held| !held))
}

/// Whether every part of a policy holds: `refs` (a list is refs alone), `variables`, `changes`,
/// `kubernetes`.
fn policy_holds(policy: &Node, variables: Variables) -> Option<bool> {
    let listed = |node: &Node| -> Vec<String> {
        match &node.value {
            Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
            _ => node.scalar_text().into_iter().collect(),
        }
    };
    match &policy.value {
        Value::Map(_) => {
            let mut holds = Some(true);
            if let Some(refs) = policy.get("refs") {
                holds = and(holds, refs_hold(&listed(refs), variables));
            }
            if let Some(expressions) = policy.get("variables") {
                let results: Vec<Option<bool>> = listed(expressions).iter().map(|e| evaluate(e, variables)).collect();
                let any = if results.contains(&Some(true)) {
                    Some(true)
                } else if results.iter().all(|r| *r == Some(false)) {
                    Some(false)
                } else {
                    None
                };
                holds = and(holds, any);
            }
            if policy.get("changes").is_some() {
                holds = and(holds, changes(variables));
            }
            if policy.get("kubernetes").is_some() {
                holds = and(holds, None);
            }
            holds
        }
        _ => refs_hold(&listed(policy), variables),
    }
}

/// GitLab's `Policy::Refs`: `branches`, `tags`, a pipeline source (`pushes`, `merge_requests`,
/// `schedules`, `web`, …), a ref name or `/regex/`, each optionally `@project/path`.
fn refs_hold(patterns: &[String], variables: Variables) -> Option<bool> {
    /// The pipeline sources `only`/`except` name (GitLab's docs, `only:refs`).
    const SOURCES: [&str; 10] = [
        "api",
        "chat",
        "external",
        "external_pull_requests",
        "merge_requests",
        "pipelines",
        "pushes",
        "schedules",
        "triggers",
        "web",
    ];
    let source = variables("CI_PIPELINE_SOURCE").map(|source| {
        let source = source.strip_suffix("_event").unwrap_or(&source).to_owned();
        let plural = if source.ends_with('h') { format!("{source}es") } else { format!("{source}s") };
        (source, plural)
    });
    let tag = variables("CI_COMMIT_TAG").filter(|t| !t.is_empty());
    let branch = variables("CI_COMMIT_BRANCH").filter(|b| !b.is_empty());
    let mut result = Some(false);
    for written in patterns {
        let (pattern, project) = match written.split_once('@') {
            Some((pattern, project)) => (pattern, Some(project)),
            None => (written.as_str(), None),
        };
        let on_project = match project {
            None => Some(true),
            Some(path) => variables("CI_PROJECT_PATH").map(|own| own == path),
        };
        let by_source = source.as_ref().map(|(source, plural)| pattern == source || pattern == plural);
        let matched = if pattern == "tags" {
            Some(tag.is_some())
        } else if pattern == "branches" {
            Some(branch.is_some())
        } else if by_source == Some(true) {
            Some(true)
        } else if SOURCES.contains(&pattern) {
            by_source
        } else if let Some(name) = tag.as_ref().or(branch.as_ref()) {
            // Names and patterns match branch and tag pipelines only, not merge request ones.
            let regex = pattern.strip_prefix('/').and_then(|p| {
                p.strip_suffix('/').map(|p| (p, false)).or_else(|| p.strip_suffix("/i").map(|p| (p, true)))
            });
            match regex {
                Some((regex, insensitive)) => regex::RegexBuilder::new(regex)
                    .case_insensitive(insensitive)
                    .build()
                    .ok()
                    .map(|regex| regex.is_match(name)),
                None => Some(pattern == name),
            }
        } else {
            Some(false)
        };
        match and(on_project, matched) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => result = None,
        }
    }
    result
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
        let exists = |paths: &[String]| Some(paths.iter().any(|path| path == "Cargo.toml"));
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
        assert_eq!(decide("- exists: [$MANIFEST]"), Decision::Exclude, "an unset variable stays as written");
        let with_manifest = |name: &str| if name == "MANIFEST" { Some("Cargo.toml".to_owned()) } else { vars(name) };
        let rules_text = rules("- exists: [$MANIFEST]");
        assert_eq!(super::decide(&rules_text, &with_manifest, &exists), Decision::Include);
    }
}
