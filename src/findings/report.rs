//! Linter reports in, findings out: GitLab's Code Quality JSON and SARIF 2.1.0. A report that
//! cannot be read is one line saying why, and none of its findings: nothing half-read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Finding, Severity};

/// Reports larger than this are refused: no linter's report of one merge request is that big.
pub const LARGEST_REPORT: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    CodeQuality,
    Sarif,
    /// Told apart by content: SARIF is an object with `runs`, Code Quality an array.
    Auto,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "codequality" | "gitlab" => Some(Format::CodeQuality),
            "sarif" => Some(Format::Sarif),
            "auto" => Some(Format::Auto),
            _ => None,
        }
    }
}

/// What a report gave: its findings, how many it had outside the checkout (left out), and the
/// tools it speaks for (even with no finding: their earlier threads are then all fixed).
#[derive(Debug, Default)]
pub struct Loaded {
    pub findings: Vec<Finding>,
    pub outside: usize,
    pub tools: std::collections::BTreeSet<String>,
}

/// Reads the report at `path` for the checkout at `root`: a regular file, opened without
/// blocking, at most `LARGEST_REPORT` bytes (findings/files.rs). The error is one line naming
/// the report, which the command only masks and prints: no caller tells reasons apart, so it is
/// text (as are `parse`'s and the readers' below it).
pub fn load(path: &Path, format: Format, root: &Path) -> Result<Loaded, String> {
    let label = path.display();
    let text = super::files::read_report(path, LARGEST_REPORT).map_err(|why| format!("{label}: {why}"))?;
    let tool_of_file = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    parse(&text, format, &tool_of_file, root).map_err(|why| format!("{label}: {why}"))
}

/// A report's text, for the checkout at `root`; `tool_of_file` names the tool of a Code Quality
/// report that does not name it (`ruff` for `ruff.json`). Never panics, whatever the text.
pub fn parse(text: &str, format: Format, tool_of_file: &str, root: &Path) -> Result<Loaded, String> {
    let json: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let format = match (format, &json) {
        (Format::Auto, Value::Object(map)) if map.contains_key("runs") => Format::Sarif,
        (Format::Auto, Value::Array(_)) => Format::CodeQuality,
        (Format::Auto, _) => return Err("neither a Code Quality report (an array) nor SARIF (runs)".into()),
        (format, _) => format,
    };
    let checkout = Checkout::new(root);
    let mut loaded = Loaded::default();
    let raw = match format {
        Format::Sarif => {
            let runs = json.get("runs").and_then(Value::as_array).into_iter().flatten();
            loaded.tools.extend(runs.map(run_tool));
            sarif(&json)?
        }
        _ => {
            let found = code_quality(&json, tool_of_file)?;
            // A Code Quality report names its tool per finding (`engine_name`), or its file does.
            loaded.tools.extend(found.iter().map(|(f, _)| f.tool.clone()));
            if found.is_empty() {
                loaded.tools.insert(tool_of_file.to_owned());
            }
            found
        }
    };
    for (mut finding, fix) in raw {
        // The path is checked before anything it names is read.
        match checkout.relative(&finding.path) {
            Some(path) => {
                finding.path = path;
                if let Some(fix) = fix {
                    finding.suggestion = suggestion(&fix, &finding, &checkout);
                }
                loaded.findings.push(finding);
            }
            None => loaded.outside += 1,
        }
    }
    super::assign_identities(&mut loaded.findings);
    legacy_fingerprints(&mut loaded.findings);
    Ok(loaded)
}

/// The fingerprints herald gave findings without one of their own before it had identities:
/// tool, rule, path and message, numbered among identical ones in report order.
fn legacy_fingerprints(findings: &mut [Finding]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for finding in findings.iter_mut().filter(|f| f.fingerprint.is_empty()) {
        let key = format!(
            "{}\n{}\n{}\n{}",
            finding.tool,
            finding.rule.as_deref().unwrap_or_default(),
            finding.path,
            finding.message
        );
        let count = seen.entry(key.clone()).or_default();
        *count += 1;
        finding.legacy_fingerprint =
            format!("{:016x}", crate::persist::stable_hash(format!("{key}\n{count}").as_bytes()));
    }
}

/// A finding read, with its fix's SARIF replacements still to be applied (once its path is known
/// to be inside the checkout).
type Unfixed = (Finding, Option<Vec<Value>>);

/// Code Quality: `[{description, check_name, fingerprint, severity, location: {path, lines:
/// {begin, end} | positions: {begin: {line}, end: {line}}}}]`.
fn code_quality(json: &Value, tool_of_file: &str) -> Result<Vec<Unfixed>, String> {
    let Value::Array(items) = json else { return Err("a Code Quality report is a JSON array".into()) };
    let mut findings = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let text = |pointer: &str| item.pointer(pointer).and_then(Value::as_str).map(str::to_owned);
        let tool = text("/engine_name").filter(|name| !name.trim().is_empty());
        let number = |pointer: &str| item.pointer(pointer).and_then(Value::as_u64);
        let path = text("/location/path").ok_or_else(|| format!("finding {i} has no location.path"))?;
        let line = number("/location/lines/begin")
            .or_else(|| number("/location/positions/begin/line"))
            .ok_or_else(|| format!("finding {i} has no line"))?;
        let end_line = number("/location/lines/end").or_else(|| number("/location/positions/end/line")).unwrap_or(line);
        let rule = text("/check_name");
        let mut message = text("/description").unwrap_or_default();
        // Many tools repeat the rule in front of the message (`E722: Do not use bare except`).
        if let Some(rule) = &rule {
            if let Some(rest) = message.strip_prefix(&format!("{rule}: ")) {
                message = rest.to_owned();
            }
        }
        let severity = match text("/severity").as_deref() {
            Some("blocker") => Severity::Blocker,
            Some("critical") => Severity::Critical,
            Some("major") => Severity::Major,
            Some("minor") => Severity::Minor,
            _ => Severity::Info,
        };
        // Code Quality has no field for the rule's documentation; some tools add one.
        let link = ["/url", "/help_url", "/content/url", "/remediation_url"].iter().find_map(|p| text(p));
        findings.push((
            Finding {
                tool: tool.unwrap_or_else(|| tool_of_file.to_owned()),
                rule,
                message,
                severity,
                path,
                line: line.max(1),
                end_line: end_line.max(line).max(1),
                fingerprint: text("/fingerprint").unwrap_or_default(),
                identity: String::new(),
                legacy_fingerprint: String::new(),
                link: link.filter(|url| is_link(url)),
                suggestion: None,
                fix_description: None,
            },
            None,
        ));
    }
    Ok(findings)
}

/// SARIF 2.1.0: `runs[].tool.driver.name`, `runs[].results[]` with `ruleId`, `message.text`,
/// `level`, `locations[0].physicalLocation` (`artifactLocation.uri` and `uriBaseId`,
/// `region.startLine`/`endLine`), `partialFingerprints`, and `fixes`.
/// Each with its fix's replacements, applied once the path is known to be in the checkout.
fn sarif(json: &Value) -> Result<Vec<Unfixed>, String> {
    let runs = json.get("runs").and_then(Value::as_array).ok_or("SARIF has no runs")?;
    let mut findings = Vec::new();
    for run in runs {
        let facts = SarifRun::of(run);
        for (i, result) in run.get("results").and_then(Value::as_array).into_iter().flatten().enumerate() {
            findings.extend(facts.finding(i, result)?);
        }
    }
    Ok(findings)
}

/// What a SARIF run says for all its results: the tool, its rules by id (for their documentation
/// and default level), and the bases its URIs may be relative to (`originalUriBaseIds`).
struct SarifRun<'r> {
    tool: String,
    rules: HashMap<&'r str, &'r Value>,
    bases: HashMap<String, String>,
}

impl<'r> SarifRun<'r> {
    fn of(run: &'r Value) -> SarifRun<'r> {
        let rules = run
            .pointer("/tool/driver/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|rule| Some((rule.get("id")?.as_str()?, rule)))
            .collect();
        let bases = run
            .get("originalUriBaseIds")
            .and_then(Value::as_object)
            .map(|bases| {
                bases
                    .iter()
                    .filter_map(|(id, base)| Some((id.clone(), base.get("uri")?.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        SarifRun { tool: run_tool(run), rules, bases }
    }

    /// An `artifactLocation`'s URI, joined to its base when it names one and is relative.
    fn resolve(&self, location: &Value) -> Option<String> {
        let uri = location.get("uri")?.as_str()?;
        let base = location.get("uriBaseId").and_then(Value::as_str).and_then(|id| self.bases.get(id));
        Some(match base {
            Some(base) if !uri.contains("://") && !uri.starts_with('/') => {
                format!("{}/{uri}", base.trim_end_matches('/'))
            }
            _ => uri.to_owned(),
        })
    }

    /// The `i`-th result as a finding with its fix's replacements; None for a result without a
    /// physical location.
    fn finding(&self, i: usize, result: &Value) -> Result<Option<Unfixed>, String> {
        let Some(physical) = result.pointer("/locations/0/physicalLocation") else { return Ok(None) };
        let uri = physical
            .get("artifactLocation")
            .and_then(|location| self.resolve(location))
            .ok_or_else(|| format!("result {i} has no artifact URI"))?;
        let path = uri_path(&uri);
        let line = physical.pointer("/region/startLine").and_then(Value::as_u64).unwrap_or(1).max(1);
        let end_line = physical.pointer("/region/endLine").and_then(Value::as_u64).unwrap_or(line).max(line);
        let rule_id = result.get("ruleId").and_then(Value::as_str);
        let rule = rule_id.and_then(|id| self.rules.get(id));
        // The result's own level, else its rule's default (SARIF §3.27.10).
        let level = result
            .get("level")
            .and_then(Value::as_str)
            .or_else(|| rule?.pointer("/defaultConfiguration/level")?.as_str());
        let severity = match level {
            Some("error") => Severity::Major,
            Some("warning") | None => Severity::Minor,
            _ => Severity::Info,
        };
        let fingerprint = result
            .get("partialFingerprints")
            .and_then(Value::as_object)
            .and_then(|prints| {
                let mut keys: Vec<&String> = prints.keys().collect();
                keys.sort();
                prints.get(*keys.first()?)?.as_str().map(str::to_owned)
            })
            .unwrap_or_default();
        let link = rule.and_then(|rule| rule.get("helpUri")?.as_str()).filter(|url| is_link(url));
        // A fix is offered on the finding's own file only: one aimed at another file (or naming
        // none) would rewrite the wrong lines with one click.
        let fix = result.pointer("/fixes/0").filter(|fix| offered_as_safe(fix)).filter(|fix| {
            let target = fix.pointer("/artifactChanges/0/artifactLocation").and_then(|location| self.resolve(location));
            target.is_some_and(|target| uri_path(&target) == path)
        });
        let finding = Finding {
            tool: self.tool.clone(),
            rule: rule_id.map(str::to_owned),
            message: result.pointer("/message/text").and_then(Value::as_str).unwrap_or_default().to_owned(),
            severity,
            path,
            line,
            end_line,
            fingerprint,
            identity: String::new(),
            legacy_fingerprint: String::new(),
            link: link.map(str::to_owned),
            suggestion: None,
            fix_description: fix.and_then(|fix| fix.pointer("/description/text")?.as_str()).map(str::to_owned),
        };
        let replacements = fix
            .filter(|fix| fix.pointer("/artifactChanges").and_then(Value::as_array).is_some_and(|c| c.len() == 1))
            .and_then(|fix| fix.pointer("/artifactChanges/0/replacements")?.as_array().cloned());
        Ok(Some((finding, replacements)))
    }
}

/// A SARIF fix as a GitLab suggestion: the finding's whole lines as they would read after the
/// fix. Only a fix that changes lines within `line..=end_line` becomes one; its text comes from
/// the checkout's copy of the file. Anything else (a fix elsewhere, a file that cannot be read)
/// is no suggestion.
fn suggestion(replacements: &[Value], finding: &Finding, checkout: &Checkout) -> Option<Vec<String>> {
    let text = super::files::read_in_checkout(&checkout.root, &finding.path)?;
    let lines: Vec<&str> = text.split('\n').collect();
    let first = finding.line as usize;
    let last = finding.end_line as usize;
    if last > lines.len() {
        return None;
    }
    // The finding's lines as one string, each with its newline; edited from the last
    // replacement to the first, so that earlier offsets stay right.
    let mut region: String = lines[first - 1..last].iter().map(|line| format!("{line}\n")).collect();
    // The byte offset in `region` of (line, column), both 1-based; the line after the finding at
    // column 1 is the region's end.
    let offset = |line: usize, column: usize| -> Option<usize> {
        if line == last + 1 && column == 1 {
            return Some(lines[first - 1..last].iter().map(|l| l.len() + 1).sum());
        }
        if line < first || line > last || column == 0 || column - 1 > lines[line - 1].chars().count() {
            return None;
        }
        let before: usize = lines[first - 1..line - 1].iter().map(|l| l.len() + 1).sum();
        Some(before + lines[line - 1].chars().take(column - 1).map(char::len_utf8).sum::<usize>())
    };
    let mut edits = Vec::new();
    for replacement in replacements {
        let number = |key: &str| replacement.pointer(&format!("/deletedRegion/{key}")).and_then(Value::as_u64);
        let start_line = number("startLine")? as usize;
        if start_line < first || start_line > last {
            return None;
        }
        let start = offset(start_line, number("startColumn").unwrap_or(1) as usize)?;
        let end = match (number("endLine").map(|l| l as usize), number("endColumn")) {
            (Some(line), Some(column)) => offset(line, column as usize)?,
            // No end: the whole of the start line.
            _ => offset(start_line, lines[start_line - 1].chars().count() + 1)?,
        };
        let inserted = replacement.pointer("/insertedContent/text").and_then(Value::as_str).unwrap_or_default();
        edits.push((start, end.max(start), inserted.to_owned()));
    }
    edits.sort_by_key(|(start, _, _)| std::cmp::Reverse(*start));
    let mut previous_start = usize::MAX;
    for (start, end, inserted) in edits {
        // Overlapping replacements (or a range the text does not have) make no suggestion.
        if end > previous_start
            || end > region.len()
            || !region.is_char_boundary(start)
            || !region.is_char_boundary(end)
        {
            return None;
        }
        region.replace_range(start..end, &inserted);
        previous_start = start;
    }
    // Whole lines only: a fix that leaves the last line without its newline is not one.
    if !region.is_empty() && !region.ends_with('\n') {
        return None;
    }
    Some(region.lines().map(str::to_owned).collect())
}

/// The tool a SARIF run is of, lower case (`ruff`, `clippy`).
fn run_tool(run: &Value) -> String {
    run.pointer("/tool/driver/name").and_then(Value::as_str).unwrap_or("sarif").to_lowercase()
}

/// Whether a tool offers this fix as safe to apply as it is. SARIF has no field for it; tools
/// that say put it in the fix's property bag (`applicability`: `safe`, `unsafe`, `display-only`,
/// as ruff's own format does; or `safe: false`). A fix that says nothing is offered.
fn offered_as_safe(fix: &Value) -> bool {
    let properties = fix.get("properties");
    let applicability = properties.and_then(|p| p.get("applicability")).and_then(Value::as_str);
    let safe = properties.and_then(|p| p.get("safe")).and_then(Value::as_bool);
    applicability.is_none_or(|a| a.eq_ignore_ascii_case("safe") || a.eq_ignore_ascii_case("always"))
        && safe != Some(false)
}

/// A link herald may publish: `https://`, without characters that would end a Markdown link.
fn is_link(url: &str) -> bool {
    url.starts_with("https://")
        && url.len() <= 500
        && url.chars().all(|c| c.is_ascii_graphic() && !"()<>[]\\\"'`".contains(c))
}

/// `file:///builds/app/src/x.py` → `/builds/app/src/x.py`; percent-escapes decoded (a `%` not
/// followed by two hex digits is itself).
fn uri_path(uri: &str) -> String {
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    let bytes = path.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The checkout the report's paths must be in.
struct Checkout {
    root: PathBuf,
}

impl Checkout {
    fn new(root: &Path) -> Checkout {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        Checkout { root }
    }

    /// A report path relative to the checkout's root, `/`-separated; None when it is outside
    /// (absolute elsewhere, or climbing out with `..`).
    fn relative(&self, path: &str) -> Option<String> {
        let path = Path::new(path);
        let relative =
            if path.is_absolute() { path.strip_prefix(&self.root).ok()?.to_path_buf() } else { path.to_path_buf() };
        let mut parts: Vec<String> = Vec::new();
        for part in relative.components() {
            match part {
                std::path::Component::Normal(name) => parts.push(name.to_string_lossy().into_owned()),
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    parts.pop()?;
                }
                _ => return None,
            }
        }
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_become_whole_line_suggestions_or_none() {
        let root = std::env::temp_dir().join(format!("herald-suggestion-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("a.py"), "import os\n    unused = f(x)\nprint(1)\n").unwrap();
        let checkout = Checkout::new(&root);
        let finding = |line: u64| Finding {
            tool: "ruff".into(),
            rule: None,
            message: String::new(),
            severity: Severity::Minor,
            path: "a.py".into(),
            line,
            end_line: line,
            fingerprint: String::new(),
            identity: String::new(),
            legacy_fingerprint: String::new(),
            link: None,
            suggestion: None,
            fix_description: None,
        };
        let replacement = |json: &str| -> Vec<Value> { serde_json::from_str(json).unwrap() };
        let delete_line =
            replacement(r#"[{"deletedRegion": {"startLine": 1, "startColumn": 1, "endLine": 2, "endColumn": 1}}]"#);
        assert_eq!(suggestion(&delete_line, &finding(1), &checkout), Some(vec![]));
        let drop_name =
            replacement(r#"[{"deletedRegion": {"startLine": 2, "startColumn": 5, "endLine": 2, "endColumn": 14}}]"#);
        assert_eq!(suggestion(&drop_name, &finding(2), &checkout), Some(vec!["    f(x)".to_owned()]));
        let elsewhere =
            replacement(r#"[{"deletedRegion": {"startLine": 3, "startColumn": 1, "endLine": 3, "endColumn": 2}}]"#);
        assert_eq!(suggestion(&elsewhere, &finding(2), &checkout), None, "a fix outside the finding's lines");
        let overlapping = replacement(
            r#"[{"deletedRegion": {"startLine": 2, "startColumn": 1, "endLine": 2, "endColumn": 9}},
                {"deletedRegion": {"startLine": 2, "startColumn": 5, "endLine": 2, "endColumn": 14}}]"#,
        );
        assert_eq!(suggestion(&overlapping, &finding(2), &checkout), None);
        let beyond =
            replacement(r#"[{"deletedRegion": {"startLine": 2, "startColumn": 90, "endLine": 2, "endColumn": 99}}]"#);
        assert_eq!(suggestion(&beyond, &finding(2), &checkout), None);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn severity_links_and_fix_safety_come_from_the_report() {
        let sarif = r#"{"runs": [{"tool": {"driver": {"name": "Semgrep OSS", "rules": [
            {"id": "R1", "helpUri": "https://semgrep.dev/r/R1", "defaultConfiguration": {"level": "error"}},
            {"id": "R2", "helpUri": "javascript:alert(1)"}]}},
          "results": [
            {"ruleId": "R1", "message": {"text": "a"}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"}, "region": {"startLine": 1}}}]},
            {"ruleId": "R2", "level": "note", "message": {"text": "b"}, "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py"}, "region": {"startLine": 2}}}]}]}]}"#;
        let loaded = parse(sarif, Format::Auto, "x", Path::new("/nonexistent")).unwrap();
        let [a, b] = &loaded.findings[..] else { panic!("{loaded:?}") };
        assert_eq!(
            (a.severity, a.link.as_deref()),
            (Severity::Major, Some("https://semgrep.dev/r/R1")),
            "the rule's default level"
        );
        assert_eq!((b.severity, b.link.as_deref()), (Severity::Info, None), "only https links");
        assert_eq!(loaded.tools.iter().collect::<Vec<_>>(), ["semgrep oss"]);
        let unsafe_fix = serde_json::json!({"properties": {"applicability": "unsafe"}});
        assert!(!offered_as_safe(&unsafe_fix));
        assert!(!offered_as_safe(&serde_json::json!({"properties": {"safe": false}})));
        assert!(offered_as_safe(&serde_json::json!({"description": {"text": "says nothing"}})));
        let code_quality = r#"[{"engine_name": "eslint", "check_name": "no-undef", "description": "x", "url": "https://eslint.org/docs/rules/no-undef",
            "severity": "critical", "location": {"path": "a.js", "lines": {"begin": 3}}}]"#;
        let loaded = parse(code_quality, Format::Auto, "gl-code-quality-report", Path::new("/nonexistent")).unwrap();
        let finding = &loaded.findings[0];
        assert_eq!((finding.tool.as_str(), finding.severity), ("eslint", Severity::Critical));
        assert_eq!(finding.link.as_deref(), Some("https://eslint.org/docs/rules/no-undef"));
    }

    /// A fix aimed at another file than the finding's is no suggestion (it would rewrite the
    /// finding's lines with another file's edit); one aimed at the finding's file is kept.
    #[test]
    fn a_fix_for_another_file_is_not_offered() {
        let sarif = |target: &str| {
            format!(
                r#"{{"runs": [{{"tool": {{"driver": {{"name": "ruff"}}}}, "results": [{{"ruleId": "F401", "message": {{"text": "unused"}},
                "locations": [{{"physicalLocation": {{"artifactLocation": {{"uri": "a.py"}}, "region": {{"startLine": 1}}}}}}],
                "fixes": [{{"description": {{"text": "Remove import"}}, "artifactChanges": [{{"artifactLocation": {{"uri": "{target}"}},
                "replacements": [{{"deletedRegion": {{"startLine": 1, "startColumn": 1, "endLine": 2, "endColumn": 1}}}}]}}]}}]}}]}}]}}"#
            )
        };
        let offered = |target: &str| {
            let loaded = parse(&sarif(target), Format::Auto, "x", Path::new("/nonexistent")).unwrap();
            loaded.findings[0].fix_description.is_some()
        };
        assert!(offered("a.py"), "the finding's own file");
        assert!(!offered("b.py"), "another file's fix");
    }

    #[test]
    fn paths_stay_in_the_checkout() {
        let checkout = Checkout { root: PathBuf::from("/builds/app") };
        assert_eq!(checkout.relative("src/x.py").as_deref(), Some("src/x.py"));
        assert_eq!(checkout.relative("/builds/app/src/x.py").as_deref(), Some("src/x.py"));
        assert_eq!(checkout.relative("./src/../lib/y.py").as_deref(), Some("lib/y.py"));
        assert_eq!(checkout.relative("/etc/passwd"), None);
        assert_eq!(checkout.relative("../other/x.py"), None);
        assert_eq!(uri_path("file:///builds/app/a%20b.py"), "/builds/app/a b.py");
        // Once a panic: a byte slice through the `€` after `%x`.
        assert_eq!(uri_path("app/a%x€.py"), "app/a%x€.py");
        assert_eq!(uri_path("%€"), "%€");
    }
}
