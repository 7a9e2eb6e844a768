//! The include loader: `.gitlab-ci.yml` and its includes, read into layers in the order GitLab
//! merges them (gitlab.md §I): each file's own includes first, the including file after them, the
//! root file last (later wins, resolve.rs merges). Separate from the resolver because this part
//! reaches out (the checkout, `Fetch`) and decides what is loaded; the resolver only combines.
//!
//! `local:` includes (globs included) come from the checkout; `project:`, `component:`,
//! `template:` and `remote:` ones through `Fetch` (the GitLab API, or plain HTTPS for `remote:`),
//! and a nested `local:` include is relative to the project of the file that has it. What cannot
//! be fetched (no token, no network, no such file) is listed as unresolved, with the reason, and
//! the rest still loads. Variables in include locations are expanded (`expand_variables`);
//! component versions `~latest` and `1.2` name the newest matching release. Include `inputs:` are
//! checked against the file's `spec: inputs` and interpolated (inputs.rs); include `rules:` are
//! evaluated where the variables allow, and an include they cannot decide is kept (rules.rs).

use std::cell::RefCell;
use std::rc::Rc;

use super::glob::{self, include_glob};
use super::model::{LoadError, Origin};
use super::rules::{self, Decision};
use super::source::{Fetch, Source};
use super::yaml::{self, Node, Value};

/// GitLab's limit (gitlab.md §I.2), counting nested includes and duplicates.
pub const MOST_INCLUDES: usize = 150;
/// A file larger than this is refused before parsing.
const LARGEST_FILE: u64 = 4 * 1024 * 1024;

/// Where an included file lives.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Checkout,
    Project { project: String, reference: Option<String> },
    Remote,
    Template,
}

/// A file to load: its place and its path there (a URL for `Remote`, a name for `Template`).
#[derive(Debug, Clone, PartialEq)]
struct FileRef {
    place: Place,
    path: String,
}

impl FileRef {
    /// How messages and origins name it.
    fn label(&self) -> String {
        match &self.place {
            Place::Checkout | Place::Remote => self.path.clone(),
            Place::Project { project, reference: Some(r) } => format!("{project}@{r}:{}", self.path),
            Place::Project { project, reference: None } => format!("{project}:{}", self.path),
            Place::Template => format!("template:{}", self.path),
        }
    }
}

/// One file's content (without its `include:`), with the origin its jobs get.
pub(super) struct Layer {
    pub(super) origin: Origin,
    /// The file's label, for positions in messages.
    pub(super) label: String,
    pub(super) entries: Vec<(String, Node)>,
}

/// Reads the root file and its includes into layers, noting each include it cannot reach.
pub(super) struct Loader<'s> {
    source: &'s dyn Source,
    fetch: Option<&'s dyn Fetch>,
    variables: &'s [(String, String)],
    includes: usize,
    unresolved: Vec<String>,
    /// The checkout's files, sorted, listed once when a glob or `exists:` first needs them.
    files: RefCell<Option<Rc<Vec<String>>>>,
}

impl<'s> Loader<'s> {
    pub(super) fn new(
        source: &'s dyn Source,
        fetch: Option<&'s dyn Fetch>,
        variables: &'s [(String, String)],
    ) -> Loader<'s> {
        Loader { source, fetch, variables, includes: 0, unresolved: Vec::new(), files: RefCell::new(None) }
    }

    /// The layers of the root file at `config_path`: each file's includes before it, the root
    /// file last.
    pub(super) fn root(&mut self, config_path: &str) -> Result<Vec<Layer>, LoadError> {
        let mut layers = Vec::new();
        let root = FileRef { place: Place::Checkout, path: config_path.trim_start_matches('/').to_owned() };
        self.file(root, Origin::Root, None, &mut Vec::new(), &mut layers)?;
        Ok(layers)
    }

    /// The includes not resolved, each with the reason, once loading is done.
    pub(super) fn take_unresolved(&mut self) -> Vec<String> {
        std::mem::take(&mut self.unresolved)
    }

    pub(super) fn files(&self) -> Rc<Vec<String>> {
        self.files
            .borrow_mut()
            .get_or_insert_with(|| {
                let mut files = self.source.list();
                files.sort();
                Rc::new(files)
            })
            .clone()
    }

    /// Appends the layers of `file` (its includes first, then itself) to `layers`.
    fn file(
        &mut self,
        file: FileRef,
        origin: Origin,
        inputs: Option<&Node>,
        stack: &mut Vec<String>,
        layers: &mut Vec<Layer>,
    ) -> Result<(), LoadError> {
        let label = file.label();
        if stack.contains(&label) {
            return Err(LoadError(format!("include cycle: {} → {label}", stack.join(" → "))));
        }
        let Some(bytes) = self.read(&file, &label)? else { return Ok(()) };
        let Some(entries) = entries(&label, bytes, inputs)? else { return Ok(()) };
        stack.push(label);
        if let Some((_, include)) = entries.iter().rev().find(|(key, _)| key == "include") {
            let items = match &include.value {
                Value::Seq(items) => items.clone(),
                _ => vec![include.clone()],
            };
            for item in items {
                self.include(&file, &item, stack, layers)?;
            }
        }
        let label = stack.pop().unwrap_or_default();
        layers.push(Layer {
            origin,
            label,
            entries: entries.into_iter().filter(|(key, _)| key != "include").collect(),
        });
        Ok(())
    }

    /// The bytes of `file`; None when it is from elsewhere and out of reach (then it is listed
    /// as unresolved).
    fn read(&mut self, file: &FileRef, label: &str) -> Result<Option<Vec<u8>>, LoadError> {
        let fetched = match (&file.place, self.fetch) {
            (Place::Checkout, _) => self.source.read(&file.path, LARGEST_FILE),
            (_, None) => {
                self.unresolved.push(label.to_owned());
                return Ok(None);
            }
            (Place::Project { project, reference }, Some(fetch)) => {
                fetch.project_file(project, reference.as_deref(), &file.path)
            }
            (Place::Remote, Some(fetch)) => fetch.url(&file.path),
            (Place::Template, Some(fetch)) => fetch.template(&file.path),
        };
        match fetched {
            Ok(bytes) => Ok(Some(bytes)),
            // A file of the checkout must be there; one from elsewhere may be out of reach (no
            // token, no network): its jobs are then named after themselves.
            Err(why) if file.place != Place::Checkout => {
                self.unresolved.push(format!("{label} ({why})"));
                Ok(None)
            }
            Err(why) => Err(LoadError(format!("{label}: {why}"))),
        }
    }

    /// Appends the layers of one entry of `from`'s `include:`: the files it names, unless its
    /// `rules:` exclude it or it cannot be reached (then it is listed as unresolved).
    fn include(
        &mut self,
        from: &FileRef,
        item: &Node,
        stack: &mut Vec<String>,
        layers: &mut Vec<Layer>,
    ) -> Result<(), LoadError> {
        let (kind, value, written) = include_kind(from, item)?;
        let Some(location) = self.location(kind, written) else { return Ok(()) };
        if self.excluded_by_rules(from, item) {
            return Ok(());
        }
        let files = match kind {
            "local" => self.local_files(from, &location, item)?,
            "project" => self.project_files(from, &location, item)?,
            "remote" => {
                let path = location.split(['?', '#']).next().unwrap_or(&location);
                Some(vec![(FileRef { place: Place::Remote, path: location.clone() }, stem(path))])
            }
            "template" => Some(vec![(FileRef { place: Place::Template, path: location.clone() }, stem(&location))]),
            _ => self.component_file(from, &location, value)?,
        };
        for (file, name) in files.unwrap_or_default() {
            self.includes += 1;
            if self.includes > MOST_INCLUDES {
                return Err(LoadError(format!(
                    "{}: Maximum of {MOST_INCLUDES} nested includes are allowed!",
                    position(from, item)
                )));
            }
            let location = file.label();
            if stack.contains(&location) {
                let cycle = stack.join(" → ");
                return Err(LoadError(format!("{}: include cycle: {cycle} → {location}", position(from, item))));
            }
            self.file(file, Origin::Include { name, location }, item.get("inputs"), stack, layers)?;
        }
        Ok(())
    }

    /// An include's location with its variables expanded (gitlab.md §M); None, and the include
    /// listed as unresolved, when one is not known here: never fetched from a wrong place.
    fn location(&mut self, kind: &str, written: &str) -> Option<String> {
        // A component's host is not used (herald reads components through the API it talks to),
        // so a variable there (`$CI_SERVER_FQDN`) need not be known.
        let expanded = match (kind, written.split_once('/')) {
            ("component", Some((host, rest))) => self.expand(rest).map(|rest| format!("{host}/{rest}")),
            _ => self.expand(written),
        };
        match expanded {
            Ok(location) => Some(location),
            Err(why) => {
                self.unresolved.push(format!("{kind}: {written} ({why})"));
                None
            }
        }
    }

    /// `text` with the variables an include's location may use expanded.
    fn expand(&self, text: &str) -> Result<String, String> {
        expand_variables(text, &|name| self.location_variable(name))
    }

    /// Whether an include's `rules:` exclude it; one they cannot decide is kept.
    fn excluded_by_rules(&self, from: &FileRef, item: &Node) -> bool {
        let Some(rules) = item.get("rules") else { return false };
        let variable = |name: &str| self.variables.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let exists = |patterns: &[String]| match from.place {
            Place::Checkout => glob::exists(&self.files(), patterns),
            _ => None, // `exists:` looks into the project of the file that has it
        };
        rules::decide(rules, &variable, &exists) == Decision::Exclude
    }

    /// The files of a `local:` include, each with its short name; None when they are out of reach.
    fn local_files(&mut self, from: &FileRef, location: &str, item: &Node) -> Result<Option<Named>, LoadError> {
        match &from.place {
            Place::Checkout => {
                let paths =
                    self.local_paths(location).map_err(|why| LoadError(format!("{}: {why}", position(from, item))))?;
                let named =
                    paths.into_iter().map(|path| (FileRef { place: Place::Checkout, path: path.clone() }, stem(&path)));
                Ok(Some(named.collect()))
            }
            // A nested local include is relative to the project of the file that has it.
            Place::Project { .. } if !location.contains('*') => {
                let path = location.trim_start_matches('/').to_owned();
                Ok(Some(vec![(FileRef { place: from.place.clone(), path: path.clone() }, stem(&path))]))
            }
            _ => {
                self.unresolved.push(format!("local: {location} (in {})", from.label()));
                Ok(None)
            }
        }
    }

    /// The files of a `project:` include (`file:` one or a list, at `ref:`), each with its short
    /// name; None when a variable in them is not known here.
    fn project_files(&mut self, from: &FileRef, location: &str, item: &Node) -> Result<Option<Named>, LoadError> {
        let written_paths: Vec<String> = match item.get("file").map(|f| &f.value) {
            Some(Value::Str(file)) => vec![file.clone()],
            Some(Value::Seq(files)) => files.iter().filter_map(Node::scalar_text).collect(),
            _ => return Err(LoadError(format!("{}: include: project needs file:", position(from, item)))),
        };
        let expanded =
            item.get("ref").and_then(Node::scalar_text).map(|reference| self.expand(&reference)).transpose().and_then(
                |reference| {
                    let paths = written_paths.iter().map(|path| self.expand(path)).collect::<Result<Vec<_>, _>>()?;
                    Ok((reference, paths))
                },
            );
        let (reference, paths) = match expanded {
            Ok(expanded) => expanded,
            Err(why) => {
                self.unresolved.push(format!("project: {location} ({why})"));
                return Ok(None);
            }
        };
        let place = Place::Project { project: location.to_owned(), reference };
        let named = paths
            .into_iter()
            .map(|path| (FileRef { place: place.clone(), path: path.trim_start_matches('/').to_owned() }, stem(&path)));
        Ok(Some(named.collect()))
    }

    /// The file of a `component:` include, named after the component; None when its version
    /// cannot be settled here.
    fn component_file(&mut self, from: &FileRef, location: &str, value: &Node) -> Result<Option<Named>, LoadError> {
        let Some((project, name, version)) = component(location) else {
            return Err(LoadError(format!(
                "{}: a component is <host>/<project path>/<name>@<version>",
                position(from, value)
            )));
        };
        let version = match self.component_version(&project, &version) {
            Ok(version) => version,
            Err(why) => {
                self.unresolved.push(format!("component: {location} ({why})"));
                return Ok(None);
            }
        };
        let place = Place::Project { project, reference: Some(version) };
        // templates/<name>.yml, or templates/<name>/template.yml (gitlab.md §I.1).
        let single = FileRef { place: place.clone(), path: format!("templates/{name}.yml") };
        let folder = FileRef { place, path: format!("templates/{name}/template.yml") };
        let file = match self.fetch {
            Some(fetch) if self.fetchable(fetch, &single) => single,
            _ => folder,
        };
        Ok(Some(vec![(file, name)]))
    }

    /// A variable an include's location may use: the CI/CD variables, except secrets, which
    /// herald will not put into a request path or print as a location.
    fn location_variable(&self, name: &str) -> Option<String> {
        let token_variable =
            self.variables.iter().rev().find(|(n, _)| n == "HERALD_TOKEN_VARIABLE").map(|(_, v)| v.trim());
        if crate::redact::is_secret_name(name) || token_variable == Some(name) {
            return None;
        }
        self.variables.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    /// The release a component's version names (gitlab.md §M): `~latest` is the highest
    /// released semantic version, a partial one (`1`, `1.2`) the highest release that matches;
    /// pre-releases never count. Anything else (a full version, a tag, a SHA) is used as it is.
    /// The error is the reason shown for the unresolved include: text.
    fn component_version(&self, project: &str, version: &str) -> Result<String, String> {
        let partial = version.split('.').count() < 3 && version.split('.').all(|part| part.parse::<u64>().is_ok());
        if version != "~latest" && !partial {
            return Ok(version.to_owned());
        }
        let fetch = self.fetch.ok_or("needs the project's releases: no token or API to read them")?;
        let wanted: Vec<u64> =
            if partial { version.split('.').map(|p| p.parse().unwrap_or(0)).collect() } else { vec![] };
        let tags = fetch.release_tags(project)?;
        tags.iter()
            .filter_map(|tag| Some((release_version(tag)?, tag)))
            .filter(|(numbers, _)| numbers.starts_with(&wanted))
            .max()
            .map(|(_, tag)| tag.clone())
            .ok_or_else(|| format!("no release of {project} matches {version}"))
    }

    /// Whether a project file exists (the first of a component's two possible layouts).
    fn fetchable(&self, fetch: &dyn Fetch, file: &FileRef) -> bool {
        match &file.place {
            Place::Project { project, reference } => {
                fetch.project_file(project, reference.as_deref(), &file.path).is_ok()
            }
            _ => false,
        }
    }

    /// The files a `local:` include names: one path, or a glob (`*` within a folder, `**` across).
    /// The error is printed after the include's position (a `LoadError`): text.
    fn local_paths(&self, pattern: &str) -> Result<Vec<String>, String> {
        let pattern = pattern.trim_start_matches('/');
        if !(pattern.ends_with(".yml") || pattern.ends_with(".yaml")) {
            return Err(format!("local include '{pattern}' must end in .yml or .yaml"));
        }
        if !pattern.contains('*') {
            return Ok(vec![pattern.to_owned()]);
        }
        let mut matched: Vec<String> =
            self.files().iter().filter(|path| include_glob(pattern, path)).cloned().collect();
        matched.sort();
        if matched.is_empty() {
            return Err(format!("local include '{pattern}' matches no file"));
        }
        Ok(matched)
    }
}

/// `$NAME`, `${NAME}` and `%NAME%` replaced by the variables' values, as GitLab expands an
/// include's location; Err names the first variable `variable` does not know, the reason shown
/// for the unresolved include (text: nothing decides on it).
fn expand_variables(text: &str, variable: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(['$', '%']) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match (rest.as_bytes()[at], after.strip_prefix('{')) {
            (b'$', Some(braced)) => match braced.find('}') {
                Some(end) if !braced[..end].is_empty() && braced[..end].chars().all(is_name) => {
                    (&braced[..end], end + 2)
                }
                _ => ("", 0),
            },
            (b'$', None) => {
                let end = after.find(|c: char| !is_name(c)).unwrap_or(after.len());
                (&after[..end], end)
            }
            _ => match after.find('%') {
                Some(end) if end > 0 && after[..end].chars().all(is_name) => (&after[..end], end + 1),
                _ => ("", 0),
            },
        };
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            out.push(rest.as_bytes()[at] as char);
            rest = after;
            continue;
        }
        out.push_str(&variable(name).ok_or_else(|| format!("${name} is not set here"))?);
        rest = &after[used..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A release tag's semantic version (`1.2.3`), None for pre-releases and other tags.
fn release_version(tag: &str) -> Option<Vec<u64>> {
    let numbers: Vec<u64> = tag.split('.').map(|part| part.parse().ok()).collect::<Option<_>>()?;
    (numbers.len() == 3).then_some(numbers)
}

/// `host/group/project/name@version` → (`group/project`, `name`, `version`).
fn component(location: &str) -> Option<(String, String, String)> {
    let (path, version) = location.rsplit_once('@')?;
    let mut segments: Vec<&str> = path.split('/').collect();
    let name = segments.pop()?;
    if segments.len() < 2 || name.is_empty() || version.is_empty() {
        return None;
    }
    Some((segments[1..].join("/"), name.to_owned(), version.to_owned()))
}

fn stem(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let file = file.strip_suffix(".gitlab-ci.yml").unwrap_or(file);
    file.strip_suffix(".yml").or_else(|| file.strip_suffix(".yaml")).unwrap_or(file).to_owned()
}

/// Files to load, each with the short name its jobs' origin gets.
type Named = Vec<(FileRef, String)>;

/// `file:line:column` of a node of `from`, for messages.
fn position(from: &FileRef, node: &Node) -> String {
    format!("{}:{}:{}", from.label(), node.at.line, node.at.column)
}

/// What an `include:` entry is (local, project, remote, template, component), the node that
/// names it, and the location as written.
fn include_kind<'n>(from: &FileRef, item: &'n Node) -> Result<(&'static str, &'n Node, &'n str), LoadError> {
    // The string shorthand: a local file, or a remote one when it is a URL.
    let (kind, value) = match &item.value {
        Value::Str(text) if text.starts_with("https://") || text.starts_with("http://") => ("remote", item),
        Value::Str(_) => ("local", item),
        Value::Map(_) => {
            let kinds = ["local", "project", "remote", "template", "component"];
            let Some(kind) = kinds.into_iter().find(|k| item.get(k).is_some()) else {
                return Err(LoadError(format!(
                    "{}: an include needs one of local, project, remote, template, component",
                    position(from, item)
                )));
            };
            (kind, item.get(kind).unwrap())
        }
        _ => return Err(LoadError(format!("{}: an include is a string or a mapping", position(from, item)))),
    };
    let Some(written) = value.as_str() else {
        return Err(LoadError(format!("{}: include: {kind} must be a string", position(from, value))));
    };
    Ok((kind, value, written))
}

/// A file's top-level entries: its YAML, after a `spec:` header document whose inputs the
/// include's `inputs:` fill in (gitlab.md §I.4). None for a file without a document.
fn entries(label: &str, bytes: Vec<u8>, inputs: Option<&Node>) -> Result<Option<Vec<(String, Node)>>, LoadError> {
    let text = String::from_utf8(bytes).map_err(|e| {
        LoadError(format!("{label}: not UTF-8 (first bad byte at offset {})", e.utf8_error().valid_up_to()))
    })?;
    let documents =
        yaml::parse(&text).map_err(|e| LoadError(format!("{label}:{}:{}: {}", e.at.line, e.at.column, e.message)))?;
    let (spec, body) = match documents.len() {
        0 => return Ok(None),
        1 => (None, documents.into_iter().next().unwrap()),
        2 if documents[0].get("spec").is_some() => {
            let mut documents = documents.into_iter();
            (documents.next(), documents.next().unwrap())
        }
        _ => return Err(LoadError(format!("{label}: more than one YAML document"))),
    };
    let declared = spec.as_ref().and_then(|header| header.get("spec")).and_then(|spec| spec.get("inputs"));
    let body = match (declared, inputs) {
        (None, None) => body,
        (None, Some(_)) => {
            return Err(LoadError(format!("{label}: inputs were given, but the file declares none (spec: inputs:)")))
        }
        (Some(declared), given) => {
            let values = super::inputs::values(declared, given).map_err(|why| LoadError(format!("{label}: {why}")))?;
            super::inputs::interpolate(body, &values).map_err(|why| LoadError(format!("{label}: {why}")))?
        }
    };
    match body.value {
        Value::Map(entries) => Ok(Some(entries)),
        Value::Null => Ok(Some(Vec::new())),
        _ => Err(LoadError(format!("{label}:{}:{}: the file must be a mapping", body.at.line, body.at.column))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_name_their_project_and_file() {
        assert_eq!(
            component("$CI_SERVER_FQDN/acme/ci/secret-detection@1.2"),
            Some(("acme/ci".into(), "secret-detection".into(), "1.2".into()))
        );
        assert_eq!(component("gitlab.com/x@1"), None);
    }

    #[test]
    fn variables_in_locations_expand_like_gitlab() {
        let vars = |name: &str| match name {
            "CI_PROJECT_NAME" => Some("app".to_owned()),
            "CI_SERVER_FQDN" => Some("gitlab.example.com".to_owned()),
            _ => None,
        };
        assert_eq!(expand_variables("ci/$CI_PROJECT_NAME.yml", &vars).unwrap(), "ci/app.yml");
        assert_eq!(expand_variables("${CI_SERVER_FQDN}/x@1", &vars).unwrap(), "gitlab.example.com/x@1");
        assert_eq!(expand_variables("%CI_PROJECT_NAME%-50%", &vars).unwrap(), "app-50%");
        assert_eq!(expand_variables("cost $5 ${}", &vars).unwrap(), "cost $5 ${}");
        assert_eq!(expand_variables("ci/$NOPE.yml", &vars), Err("$NOPE is not set here".to_owned()));
    }

    #[test]
    fn stems_name_includes() {
        assert_eq!(stem("ci/lint.yml"), "lint");
        assert_eq!(stem("templates/Auto-DevOps.gitlab-ci.yml"), "Auto-DevOps");
    }
}
