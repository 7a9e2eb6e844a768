//! `spec: inputs` of an included file and the `inputs:` its include gives (gitlab.md §I.4):
//! mandatory inputs (no `default`), defaults, `type` (string, number, boolean, array) and
//! `options` are checked, then `$[[ inputs.name ]]` is replaced throughout the file's body, before
//! merging, as GitLab does when it fetches the file. A block that is a whole value takes the
//! input's type (`parallel: $[[ inputs.n ]]` is a number); inside text it becomes text.
//!
//! `regex` is matched with Rust's regex crate, which follows RE2's syntax and guarantees. Not
//! evaluated: input functions (`$[[ inputs.x | expand_vars ]]`), whose block is left as written.

use super::yaml::{Node, Value};

/// The value of each declared input: given, or its default. Errors here and in `interpolate`
/// are printed after the file's name (a `LoadError`); nothing decides on them, so they are text.
pub fn values(declared: &Node, given: Option<&Node>) -> Result<Vec<(String, Node)>, String> {
    let Value::Map(declared) = &declared.value else { return Err("spec: inputs must be a mapping".into()) };
    let given: &[(String, Node)] = match given.map(|g| &g.value) {
        None => &[],
        Some(Value::Map(entries)) => entries,
        Some(_) => return Err("include inputs: must be a mapping".into()),
    };
    if let Some((unknown, _)) = given.iter().find(|(name, _)| !declared.iter().any(|(d, _)| d == name)) {
        return Err(format!("unknown input '{unknown}' (the file declares {})", names(declared)));
    }
    let mut values = Vec::new();
    for (name, spec) in declared {
        let value = match given
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| spec.get("default").cloned())
        {
            Some(value) => value,
            None => return Err(format!("input '{name}' is required (it has no default)")),
        };
        let wanted = spec.get("type").and_then(Node::as_str).unwrap_or("string");
        let fits = match (wanted, &value.value) {
            ("string", Value::Str(_) | Value::Null) => true,
            ("number", Value::Int(_)) => true,
            ("number", Value::Str(text)) => text.parse::<f64>().is_ok(),
            ("boolean", Value::Bool(_)) => true,
            ("array", Value::Seq(_)) => true,
            _ => false,
        };
        if !fits {
            return Err(format!("input '{name}' must be a {wanted}"));
        }
        if let Some(pattern) = spec.get("regex").and_then(Node::as_str) {
            // RE2 syntax, no delimiters (gitlab.md §I.4); Rust's regex follows RE2.
            let regex = regex::Regex::new(pattern).map_err(|e| format!("input '{name}': its regex is invalid: {e}"))?;
            let text = value.scalar_text().unwrap_or_default();
            if !regex.is_match(&text) {
                return Err(format!("input '{name}' does not match /{pattern}/ (it is '{text}')"));
            }
        }
        if let Some(Value::Seq(options)) = spec.get("options").map(|o| &o.value) {
            let text = value.scalar_text();
            if !options.iter().any(|option| option.scalar_text() == text) {
                let allowed: Vec<String> = options.iter().filter_map(Node::scalar_text).collect();
                return Err(format!(
                    "input '{name}' must be one of {} (it is '{}')",
                    allowed.join(", "),
                    text.unwrap_or_default()
                ));
            }
        }
        values.push((name.clone(), value));
    }
    Ok(values)
}

fn names(declared: &[(String, Node)]) -> String {
    let names: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The body with every `$[[ inputs.x ]]` replaced.
pub fn interpolate(node: Node, values: &[(String, Node)]) -> Result<Node, String> {
    let value = match node.value {
        Value::Str(text) => {
            if let Some(name) = whole_block(&text) {
                return Ok(Node { at: node.at, ..lookup(name, values)?.clone() });
            }
            Value::Str(replace_blocks(&text, values)?)
        }
        Value::Seq(items) => {
            Value::Seq(items.into_iter().map(|item| interpolate(item, values)).collect::<Result<_, _>>()?)
        }
        Value::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| Ok((replace_blocks(&k, values)?, interpolate(v, values)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    };
    Ok(Node { value, at: node.at })
}

/// `$[[ inputs.name ]]` alone: the input's name.
fn whole_block(text: &str) -> Option<&str> {
    let inner = text.trim().strip_prefix("$[[")?.strip_suffix("]]")?;
    let name = inner.trim().strip_prefix("inputs.")?;
    (!name.contains(['|', '$', '['])).then_some(name.trim())
}

fn replace_blocks(text: &str, values: &[(String, Node)]) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("$[[") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let Some(end) = after.find("]]") else { return Err(format!("an unclosed $[[ in '{text}'")) };
        let inner = after[..end].trim();
        if inner.len() > 1024 {
            return Err("an interpolation block longer than 1 KB".into());
        }
        match inner.strip_prefix("inputs.").filter(|name| !name.contains('|')) {
            Some(name) => {
                let value = lookup(name.trim(), values)?;
                out.push_str(
                    &value
                        .scalar_text()
                        .ok_or_else(|| format!("input '{}' is a list; it cannot be part of a text", name.trim()))?,
                );
            }
            // A function (`| expand_vars`) herald does not evaluate: kept as written.
            None => out.push_str(&rest[start..start + 3 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn lookup<'v>(name: &str, values: &'v [(String, Node)]) -> Result<&'v Node, String> {
    values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("unknown input '{name}' in $[[ inputs.{name} ]]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::yaml::parse;

    fn node(text: &str) -> Node {
        parse(text).unwrap().remove(0)
    }

    #[test]
    fn defaults_types_and_options() {
        let declared = node("stage:\n  default: test\njobs:\n  type: number\nmode:\n  options: [fast, slow]\n  default: fast\nname: {}\n");
        let given = node("name: lint\njobs: 3\n");
        let values = values(&declared, Some(&given)).unwrap();
        let text: Vec<(String, Option<String>)> = values.iter().map(|(n, v)| (n.clone(), v.scalar_text())).collect();
        assert_eq!(
            text,
            [
                ("stage".into(), Some("test".into())),
                ("jobs".into(), Some("3".into())),
                ("mode".into(), Some("fast".into())),
                ("name".into(), Some("lint".into()))
            ]
        );
        assert!(values_of(&declared, "name: x\njobs: 1\nmode: medium\n").contains("must be one of fast, slow"));
        assert!(values_of(&declared, "name: x\njobs: many\n").contains("must be a number"));
        assert!(values_of(&declared, "jobs: 1\n").contains("input 'name' is required"));
        assert!(values_of(&declared, "name: x\njobs: 1\ncolour: red\n").contains("unknown input 'colour'"));
        let versioned = node("version:\n  regex: ^v\\d+\\.\\d+$\n");
        assert!(super::values(&versioned, Some(&node("version: v1.2\n"))).is_ok());
        assert!(values_of(&versioned, "version: latest\n").contains("does not match /^v\\d+\\.\\d+$/"));
    }

    fn values_of(declared: &Node, given: &str) -> String {
        values(declared, Some(&node(given))).unwrap_err()
    }

    #[test]
    fn interpolates_whole_values_with_their_type_and_text_as_text() {
        let values = vec![("n".to_owned(), node("3")), ("stage".to_owned(), node("lint"))];
        let body = interpolate(node("job:\n  stage: $[[ inputs.stage ]]\n  parallel: $[[ inputs.n ]]\n  script: [\"echo $[[inputs.stage]]-$[[ inputs.n ]]\"]\n"), &values).unwrap();
        let job = body.get("job").unwrap();
        assert_eq!(job.get("stage").unwrap().as_str(), Some("lint"));
        assert_eq!(job.get("parallel").unwrap().value, Value::Int(3));
        let Value::Seq(script) = &job.get("script").unwrap().value else { panic!() };
        assert_eq!(script[0].as_str(), Some("echo lint-3"));
        assert!(interpolate(node("a: $[[ inputs.nope ]]"), &values).unwrap_err().contains("unknown input 'nope'"));
    }
}
