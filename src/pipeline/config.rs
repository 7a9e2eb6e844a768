//! `.gitlab-ci.yml` and its includes, merged as GitLab merges them (gitlab.md §I):
//!
//! - includes are merged in the order listed, each file's own includes first, the including file
//!   after them, the root file last; later wins;
//! - hashes are deep-merged, everything else (arrays included) is replaced;
//! - a job's origin is the include that first defines it;
//! - `extends` (at most 11 levels) merges bases then the job; `default:` fills keys a job lacks;
//!   `!reference [job, key, ...]` (at most 10 levels) copies from any job, hidden ones included;
//! - hidden jobs (`.name`) and the global keywords are not jobs;
//! - GitLab's order of work (gitlab.md §M): includes (with their inputs), then `extends`, then
//!   `!reference`, which therefore sees what a job has through `extends`.
//!
//! `local:` includes (globs included) come from the checkout; `project:`, `component:`,
//! `template:` and `remote:` ones through `Fetch` (the GitLab API, or plain HTTPS for `remote:`),
//! and a nested `local:` include is relative to the project of the file that has it. What cannot
//! be fetched (no token, no network, no such file) is listed as unresolved, with the reason, and
//! the rest still loads; a job that needs a base or reference target only such an include could
//! have defined keeps what it has and says what it lacks (`Job::missing`). Variables in include
//! locations are expanded (`expand_variables`); component versions `~latest` and `1.2` name the
//! newest matching release. Include `inputs:` are checked against the file's `spec: inputs` and
//! interpolated (inputs.rs); include `rules:` are evaluated where the variables allow, and an
//! include they cannot decide is kept (rules.rs).

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::glob::{fnmatch, include_glob};
use super::steps::{number_repeats, planned_steps};
use super::yaml::{self, Node, Value};

/// GitLab's limit (gitlab.md §I.2), counting nested includes and duplicates.
pub const MOST_INCLUDES: usize = 150;
const MOST_EXTENDS: usize = 11;
const MOST_REFERENCE_DEPTH: usize = 10;
/// A file larger than this is refused before parsing.
const LARGEST_FILE: u64 = 4 * 1024 * 1024;

const GLOBAL_KEYWORDS: [&str; 12] = [
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "types",
    "spec",
];
/// What `default:` may supply (gitlab.md §I.7).
const DEFAULT_KEYS: [&str; 12] = [
    "after_script",
    "artifacts",
    "before_script",
    "cache",
    "hooks",
    "id_tokens",
    "image",
    "interruptible",
    "retry",
    "services",
    "tags",
    "timeout",
];

/// Where a job was first defined.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    Root,
    /// An include: its short name (the file's stem, or the component's name) and its location.
    Include {
        name: String,
        location: String,
    },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Job {
    /// As GitLab names it, `parallel:` suffix included (`test 2/3`, `build: [linux, amd64]`).
    pub name: String,
    pub stage: String,
    pub origin: Origin,
    /// `<origin>/<job>` for jobs from an include, `<job>` for the root file's.
    pub task: String,
    /// The names of the `herald run` steps in its resolved before_script, script, after_script.
    pub steps: Vec<String>,
    /// Its resolved scripts, `default:` and `!reference` applied, nested lists flattened.
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    /// Whether the job may fail without failing the pipeline.
    #[serde(default)]
    pub allow_failure: AllowFailure,
    /// What the job needs from an include that was not resolved (`extends` bases, `!reference`
    /// targets): the job is listed with what it has of its own, its name and stage still right
    /// when they are its own. Empty when the job is whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// `allow_failure:` as GitLab reads it (`when: manual` jobs allow failure unless told otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum AllowFailure {
    #[default]
    No,
    Yes,
    /// `allow_failure: exit_codes: [...]`: only a job that exits with one of these.
    ExitCodes(Vec<i32>),
    /// The configuration cannot say here (an `allow_failure` inside `rules:` whose match depends
    /// on what is not known, for example): ask GitLab, which knows the job's own answer.
    Unknown,
}

impl AllowFailure {
    /// Whether a job ending with this exit code is allowed to fail. A job's script stops at its
    /// first failing line and exits with that line's code, so a failing step's code is the job's.
    pub fn allows(&self, exit_code: i32) -> bool {
        match self {
            AllowFailure::No => false,
            AllowFailure::Yes => true,
            AllowFailure::ExitCodes(codes) => codes.contains(&exit_code),
            AllowFailure::Unknown => false,
        }
    }

    fn of(job: &Node) -> AllowFailure {
        let int = |node: &Node| match &node.value {
            Value::Int(code) => i32::try_from(*code).ok(),
            Value::Str(text) => text.trim().parse().ok(),
            _ => None,
        };
        match job.get("allow_failure").map(|node| &node.value) {
            Some(Value::Bool(true)) => AllowFailure::Yes,
            Some(Value::Bool(false)) => AllowFailure::No,
            Some(Value::Map(entries)) => match entries.iter().find(|(k, _)| k == "exit_codes").map(|(_, v)| v) {
                Some(Node { value: Value::Seq(codes), .. }) => {
                    AllowFailure::ExitCodes(codes.iter().filter_map(int).collect())
                }
                Some(code) => AllowFailure::ExitCodes(int(code).into_iter().collect()),
                None => AllowFailure::No,
            },
            _ if job.get("when").and_then(Node::scalar_text).as_deref() == Some("manual") => AllowFailure::Yes,
            _ => AllowFailure::No,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pipeline {
    pub jobs: Vec<Job>,
    /// Includes not resolved here (no token or network, no such file, a variable not set), each
    /// with the reason.
    pub unresolved: Vec<String>,
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|job| job.name == name)
    }
}

/// A configuration problem, as one line naming the file and position when there is one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// Loads `config_path` (relative to `project_dir`, usually `.gitlab-ci.yml`) and its includes;
/// `fetch` brings the includes that are not in the checkout, when there is a way to.
/// `variables` are the CI/CD variables include `rules:` may use.
pub fn load(
    project_dir: &Path,
    config_path: &str,
    fetch: Option<&dyn Fetch>,
    variables: &[(String, String)],
) -> Result<Pipeline, LoadError> {
    load_from(&Checkout(project_dir.to_path_buf()), config_path, fetch, variables)
}

/// Loads from any source of files: a checkout, or files in memory (fuzzing, property tests).
pub fn load_from(
    source: &dyn Source,
    config_path: &str,
    fetch: Option<&dyn Fetch>,
    variables: &[(String, String)],
) -> Result<Pipeline, LoadError> {
    let mut loader = Loader { source, fetch, variables, includes: 0, unresolved: Vec::new() };
    let mut layers = Vec::new();
    let root = FileRef { place: Place::Checkout, path: config_path.trim_start_matches('/').to_owned() };
    loader.file(root, Origin::Root, None, &mut Vec::new(), &mut layers)?;
    resolve(layers, loader.unresolved)
}

/// Brings included files that are not in the checkout (gitlab.md §I.1).
pub trait Fetch {
    /// A file of a project (id or path) at a ref (None: its default branch).
    fn project_file(&self, project: &str, reference: Option<&str>, path: &str) -> Result<Vec<u8>, String>;
    /// The tag names of a project's releases (a component's versions), in any order.
    fn release_tags(&self, project: &str) -> Result<Vec<String>, String>;
    /// A public URL (`include: remote`), fetched without the token.
    fn url(&self, url: &str) -> Result<Vec<u8>, String>;
    /// A template bundled with GitLab (`include: template`), by its file name.
    fn template(&self, name: &str) -> Result<Vec<u8>, String>;
}

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

/// Where the configuration's files come from.
pub trait Source {
    /// The file at `path` (relative to the project root), refusing one larger than `limit` bytes.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String>;
    /// Every file of the project, relative to its root, for globs.
    fn list(&self) -> Vec<String>;
}

/// A checkout on disk.
pub struct Checkout(pub PathBuf);

impl Source for Checkout {
    /// Only regular files, opened without blocking and read to at most `limit` bytes: a FIFO
    /// would block the read forever, and a link to `/dev/zero` never ends.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let full = self.0.join(path);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&full)
            .map_err(|e| format!("cannot read it: {e}"))?;
        let meta = file.metadata().map_err(|e| format!("cannot read it: {e}"))?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        if meta.len() > limit {
            return Err(format!("{} bytes, more than the {limit} herald reads", meta.len()));
        }
        let mut bytes = Vec::new();
        file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| format!("cannot read it: {e}"))?;
        if bytes.len() as u64 > limit {
            return Err(format!("more than the {limit} bytes herald reads"));
        }
        Ok(bytes)
    }

    fn list(&self) -> Vec<String> {
        let mut found = Vec::new();
        walk(&self.0, &self.0, &mut found);
        found
    }
}

/// Files in memory: (path, content).
pub struct InMemory(pub Vec<(String, Vec<u8>)>);

impl Source for InMemory {
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        let (_, content) = self.0.iter().find(|(p, _)| p == path).ok_or("cannot read it: no such file")?;
        if content.len() as u64 > limit {
            return Err(format!("{} bytes, more than the {limit} herald reads", content.len()));
        }
        Ok(content.clone())
    }

    fn list(&self) -> Vec<String> {
        self.0.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// One file's content (without its `include:`), with the origin its jobs get.
struct Layer {
    origin: Origin,
    entries: Vec<(String, Node)>,
}

struct Loader<'s> {
    source: &'s dyn Source,
    fetch: Option<&'s dyn Fetch>,
    variables: &'s [(String, String)],
    includes: usize,
    unresolved: Vec<String>,
}

impl Loader<'_> {
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
        let fetched = match (&file.place, self.fetch) {
            (Place::Checkout, _) => self.source.read(&file.path, LARGEST_FILE),
            (_, None) => {
                self.unresolved.push(label);
                return Ok(());
            }
            (Place::Project { project, reference }, Some(fetch)) => {
                fetch.project_file(project, reference.as_deref(), &file.path)
            }
            (Place::Remote, Some(fetch)) => fetch.url(&file.path),
            (Place::Template, Some(fetch)) => fetch.template(&file.path),
        };
        let bytes = match fetched {
            Ok(bytes) => bytes,
            // A file of the checkout must be there; one from elsewhere may be out of reach (no
            // token, no network): its jobs are then named after themselves.
            Err(why) if file.place != Place::Checkout => {
                self.unresolved.push(format!("{label} ({why})"));
                return Ok(());
            }
            Err(why) => return Err(LoadError(format!("{label}: {why}"))),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            LoadError(format!("{label}: not UTF-8 (first bad byte at offset {})", e.utf8_error().valid_up_to()))
        })?;
        let documents = yaml::parse(&text)
            .map_err(|e| LoadError(format!("{label}:{}:{}: {}", e.at.line, e.at.column, e.message)))?;
        // A `spec:` header document, then the body (gitlab.md §I.4).
        let (spec, body) = match documents.len() {
            0 => return Ok(()),
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
                return Err(LoadError(format!(
                    "{label}: inputs were given, but the file declares none (spec: inputs:)"
                )))
            }
            (Some(declared), given) => {
                let values =
                    super::inputs::values(declared, given).map_err(|why| LoadError(format!("{label}: {why}")))?;
                super::inputs::interpolate(body, &values).map_err(|why| LoadError(format!("{label}: {why}")))?
            }
        };
        let entries = match body.value {
            Value::Map(entries) => entries,
            Value::Null => Vec::new(),
            _ => {
                return Err(LoadError(format!(
                    "{label}:{}:{}: the file must be a mapping",
                    body.at.line, body.at.column
                )))
            }
        };
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
        stack.pop();
        layers.push(Layer { origin, entries: entries.into_iter().filter(|(key, _)| key != "include").collect() });
        Ok(())
    }

    fn include(
        &mut self,
        from: &FileRef,
        item: &Node,
        stack: &mut Vec<String>,
        layers: &mut Vec<Layer>,
    ) -> Result<(), LoadError> {
        let at = |node: &Node| format!("{}:{}:{}", from.label(), node.at.line, node.at.column);
        // The string shorthand: a local file, or a remote one when it is a URL.
        let (kind, value) = match &item.value {
            Value::Str(text) if text.starts_with("https://") || text.starts_with("http://") => ("remote", item),
            Value::Str(_) => ("local", item),
            Value::Map(_) => {
                let kinds = ["local", "project", "remote", "template", "component"];
                let Some(kind) = kinds.iter().find(|k| item.get(k).is_some()) else {
                    return Err(LoadError(format!(
                        "{}: an include needs one of local, project, remote, template, component",
                        at(item)
                    )));
                };
                (*kind, item.get(kind).unwrap())
            }
            _ => return Err(LoadError(format!("{}: an include is a string or a mapping", at(item)))),
        };
        let Some(written) = value.as_str() else {
            return Err(LoadError(format!("{}: include: {kind} must be a string", at(value))));
        };
        // Variables in the location, `ref:` and `file:` (gitlab.md §M); one herald cannot
        // expand leaves the include unresolved, never fetched from a wrong place.
        let expand = |text: &str| expand_variables(text, &|name| self.location_variable(name));
        // A component's host is not used (herald reads components through the API it talks to),
        // so a variable there (`$CI_SERVER_FQDN`) need not be known.
        let expanded = match (kind, written.split_once('/')) {
            ("component", Some((host, rest))) => expand(rest).map(|rest| format!("{host}/{rest}")),
            _ => expand(written),
        };
        let location = match expanded {
            Ok(location) => location,
            Err(why) => {
                self.unresolved.push(format!("{kind}: {written} ({why})"));
                return Ok(());
            }
        };
        if let Some(rules) = item.get("rules") {
            let variable = |name: &str| self.variables.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
            let exists = |pattern: &str| match from.place {
                Place::Checkout => Some(exists_in(&self.source.list(), pattern)),
                _ => None, // `exists:` looks into the project of the file that has it
            };
            if super::rules::decide(rules, &variable, &exists) == super::rules::Decision::Exclude {
                return Ok(());
            }
        }
        let files: Vec<(FileRef, String)> = match kind {
            "local" => match &from.place {
                Place::Checkout => {
                    let paths = self.local_paths(&location).map_err(|why| LoadError(format!("{}: {why}", at(item))))?;
                    paths
                        .into_iter()
                        .map(|path| (FileRef { place: Place::Checkout, path: path.clone() }, stem(&path)))
                        .collect()
                }
                // A nested local include is relative to the project of the file that has it.
                Place::Project { .. } if !location.contains('*') => {
                    let path = location.trim_start_matches('/').to_owned();
                    vec![(FileRef { place: from.place.clone(), path: path.clone() }, stem(&path))]
                }
                _ => {
                    self.unresolved.push(format!("local: {location} (in {})", from.label()));
                    return Ok(());
                }
            },
            "project" => {
                let written_paths: Vec<String> = match item.get("file").map(|f| &f.value) {
                    Some(Value::Str(file)) => vec![file.clone()],
                    Some(Value::Seq(files)) => files.iter().filter_map(Node::scalar_text).collect(),
                    _ => return Err(LoadError(format!("{}: include: project needs file:", at(item)))),
                };
                let expanded = item
                    .get("ref")
                    .and_then(Node::scalar_text)
                    .map(|reference| expand(&reference))
                    .transpose()
                    .and_then(|reference| {
                        let paths = written_paths.iter().map(|path| expand(path)).collect::<Result<Vec<_>, _>>()?;
                        Ok((reference, paths))
                    });
                let (reference, paths) = match expanded {
                    Ok(expanded) => expanded,
                    Err(why) => {
                        self.unresolved.push(format!("project: {location} ({why})"));
                        return Ok(());
                    }
                };
                let place = Place::Project { project: location.clone(), reference };
                paths
                    .into_iter()
                    .map(|path| {
                        (FileRef { place: place.clone(), path: path.trim_start_matches('/').to_owned() }, stem(&path))
                    })
                    .collect()
            }
            "remote" => {
                let path = location.split(['?', '#']).next().unwrap_or(&location);
                vec![(FileRef { place: Place::Remote, path: location.clone() }, stem(path))]
            }
            "template" => vec![(FileRef { place: Place::Template, path: location.clone() }, stem(&location))],
            _ => {
                let Some((project, name, version)) = component(&location) else {
                    return Err(LoadError(format!(
                        "{}: a component is <host>/<project path>/<name>@<version>",
                        at(value)
                    )));
                };
                let version = match self.component_version(&project, &version) {
                    Ok(version) => version,
                    Err(why) => {
                        self.unresolved.push(format!("component: {location} ({why})"));
                        return Ok(());
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
                vec![(file, name)]
            }
        };
        for (file, name) in files {
            self.includes += 1;
            if self.includes > MOST_INCLUDES {
                return Err(LoadError(format!(
                    "{}: Maximum of {MOST_INCLUDES} nested includes are allowed!",
                    at(item)
                )));
            }
            let location = file.label();
            self.file(file, Origin::Include { name, location }, item.get("inputs"), stack, layers)?;
        }
        Ok(())
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
    fn local_paths(&self, pattern: &str) -> Result<Vec<String>, String> {
        let pattern = pattern.trim_start_matches('/');
        if !(pattern.ends_with(".yml") || pattern.ends_with(".yaml")) {
            return Err(format!("local include '{pattern}' must end in .yml or .yaml"));
        }
        if !pattern.contains('*') {
            return Ok(vec![pattern.to_owned()]);
        }
        let mut matched: Vec<String> =
            self.source.list().into_iter().filter(|path| include_glob(pattern, path)).collect();
        matched.sort();
        if matched.is_empty() {
            return Err(format!("local include '{pattern}' matches no file"));
        }
        Ok(matched)
    }
}

/// Every file below `dir`, as paths relative to `root` (skipping .git).
fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        // Not following symlinks: a link to a parent directory would never end.
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            walk(root, &path, found);
        } else if let Ok(relative) = path.strip_prefix(root) {
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}

/// `$NAME`, `${NAME}` and `%NAME%` replaced by the variables' values, as GitLab expands an
/// include's location; Err names the first variable `variable` does not know.
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

/// GitLab's `rules: exists` for one pattern over a project's files (gitlab.md §M): Ruby's
/// fnmatch, and after 10,000 comparisons GitLab stops and counts it as a match.
fn exists_in(files: &[String], pattern: &str) -> bool {
    const MOST_COMPARISONS: usize = 10_000;
    let pattern = pattern.trim_start_matches('/');
    files.iter().take(MOST_COMPARISONS).any(|path| fnmatch(pattern, path)) || files.len() > MOST_COMPARISONS
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

/// Merges the layers, then turns the result into jobs.
fn resolve(layers: Vec<Layer>, unresolved: Vec<String>) -> Result<Pipeline, LoadError> {
    let mut merged: Vec<(String, Node)> = Vec::new();
    let mut origins: Vec<(String, Origin)> = Vec::new();
    for layer in layers {
        for (key, _) in &layer.entries {
            if !origins.iter().any(|(k, _)| k == key) {
                origins.push((key.clone(), layer.origin.clone()));
            }
        }
        deep_merge(&mut merged, layer.entries);
    }
    let default = merged.iter().find(|(k, _)| k == "default").map(|(_, v)| v.clone());
    let resolver = Resolver::new(&merged, !unresolved.is_empty());
    let mut jobs = Vec::new();
    for (name, node) in &merged {
        if name.starts_with('.') || GLOBAL_KEYWORDS.contains(&name.as_str()) {
            continue;
        }
        if !matches!(node.value, Value::Map(_)) {
            return Err(LoadError(format!("job '{name}' (line {}) must be a mapping", node.at.line)));
        }
        // GitLab's order (gitlab.md §M): extends, then `default:`, then `!reference`, which
        // therefore sees what a job has through its `extends`.
        let mut missing = Vec::new();
        let mut job = resolver.extended(name, &mut Vec::new(), &mut missing)?;
        apply_default(&mut job, default.as_ref());
        let job =
            resolver.references(&job, 0, &mut missing).map_err(|why| LoadError(format!("job '{name}': {why}")))?;
        missing.dedup();
        let origin = origins.iter().find(|(k, _)| k == name).map(|(_, o)| o.clone()).unwrap_or(Origin::Root);
        let stage = job.get("stage").and_then(Node::scalar_text).unwrap_or_else(|| "test".into());
        let lines = |key: &str| job.get(key).map(script_lines).unwrap_or_default();
        let (before_script, script, after_script) = (lines("before_script"), lines("script"), lines("after_script"));
        let steps = number_repeats(
            before_script.iter().chain(&script).chain(&after_script).flat_map(|line| planned_steps(line)).collect(),
        );
        let allow_failure = AllowFailure::of(&job);
        for instance in parallel_names(name, job.get("parallel")) {
            let task = match &origin {
                Origin::Root => instance.clone(),
                Origin::Include { name: include, .. } => format!("{include}/{instance}"),
            };
            jobs.push(Job {
                name: instance,
                stage: stage.clone(),
                origin: origin.clone(),
                task,
                steps: steps.clone(),
                before_script: before_script.clone(),
                script: script.clone(),
                after_script: after_script.clone(),
                allow_failure: allow_failure.clone(),
                missing: missing.clone(),
            });
        }
    }
    Ok(Pipeline { jobs, unresolved })
}

/// GitLab's deep merge: hashes merge key by key, anything else is replaced.
fn deep_merge(base: &mut Vec<(String, Node)>, over: Vec<(String, Node)>) {
    for (key, value) in over {
        match base.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => match (&mut existing.value, value.value) {
                (Value::Map(mine), Value::Map(theirs)) => deep_merge(mine, theirs),
                (_, other) => *existing = Node { value: other, at: value.at },
            },
            None => base.push((key, value)),
        }
    }
}

/// Resolves `extends` and `!reference` over the merged configuration. When includes were left
/// unresolved, a base or a reference target that is not there is most likely in one of them: it
/// is noted as missing and the job keeps what it has of its own, rather than one unreachable
/// include failing the whole pipeline. With every include resolved, it is an error, as in GitLab.
struct Resolver<'a> {
    all: &'a [(String, Node)],
    /// Where each name is in `all`.
    index: HashMap<&'a str, usize>,
    lenient: bool,
    /// What `extended` made of each name: the node, how many levels of `extends` lie below it,
    /// and what it lacked. A base is merged once, however many jobs extend or reference it.
    done: RefCell<HashMap<String, Extended>>,
}

#[derive(Clone)]
struct Extended {
    node: Node,
    height: usize,
    missing: Vec<String>,
}

impl<'a> Resolver<'a> {
    fn new(all: &'a [(String, Node)], lenient: bool) -> Resolver<'a> {
        let mut index = HashMap::new();
        for (at, (name, _)) in all.iter().enumerate() {
            index.entry(name.as_str()).or_insert(at);
        }
        Resolver { all, index, lenient, done: RefCell::new(HashMap::new()) }
    }

    fn get(&self, name: &str) -> Option<&'a Node> {
        self.index.get(name).map(|at| &self.all[*at].1)
    }

    /// A job with its `extends` applied: its bases (later ones winning), then the job itself.
    fn extended(&self, name: &str, chain: &mut Vec<String>, missing: &mut Vec<String>) -> Result<Node, LoadError> {
        self.extended_with_height(name, chain, missing).map(|(node, _)| node)
    }

    /// `extended`, and how many levels of `extends` lie below `name` (0 for none).
    fn extended_with_height(
        &self,
        name: &str,
        chain: &mut Vec<String>,
        missing: &mut Vec<String>,
    ) -> Result<(Node, usize), LoadError> {
        let too_deep = |chain: &[String]| {
            LoadError(format!("extends nested more than {MOST_EXTENDS} levels: {} → {name}", chain.join(" → ")))
        };
        if chain.iter().any(|seen| seen == name) {
            return Err(LoadError(format!("extends cycle: {} → {name}", chain.join(" → "))));
        }
        if chain.len() >= MOST_EXTENDS {
            return Err(too_deep(chain));
        }
        if let Some(done) = self.done.borrow().get(name) {
            if chain.len() + done.height >= MOST_EXTENDS {
                return Err(too_deep(chain));
            }
            missing.extend(done.missing.iter().cloned());
            return Ok((done.node.clone(), done.height));
        }
        let mut own_missing = Vec::new();
        let (node, height) = self.merge_bases(name, chain, &mut own_missing)?;
        missing.extend(own_missing.iter().cloned());
        // Kept for later only what is reused: bases and hidden jobs (what `extends` and
        // `!reference` name); a job resolved for itself is resolved once.
        if !chain.is_empty() || name.starts_with('.') {
            let done = Extended { node: node.clone(), height, missing: own_missing };
            self.done.borrow_mut().insert(name.to_owned(), done);
        }
        Ok((node, height))
    }

    fn merge_bases(
        &self,
        name: &str,
        chain: &mut Vec<String>,
        missing: &mut Vec<String>,
    ) -> Result<(Node, usize), LoadError> {
        let Some(job) = self.get(name) else {
            let extender = chain.last().map_or("?", |s| s);
            if self.lenient && !chain.is_empty() {
                missing.push(format!("extends '{name}'"));
                return Ok((Node { value: Value::Map(Vec::new()), at: Default::default() }, 0));
            }
            return Err(LoadError(format!("'{extender}' extends '{name}', which does not exist")));
        };
        let bases: Vec<String> = match job.get("extends").map(|e| &e.value) {
            None => return Ok((job.clone(), 0)),
            Some(Value::Str(base)) => vec![base.clone()],
            Some(Value::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
            Some(_) => return Err(LoadError(format!("job '{name}': extends must be a name or a list of names"))),
        };
        chain.push(name.to_owned());
        let mut result: Vec<(String, Node)> = Vec::new();
        let mut height = 0;
        for base in bases {
            let (node, below) = self.extended_with_height(&base, chain, missing)?;
            height = height.max(below + 1);
            if let Value::Map(entries) = node.value {
                deep_merge(&mut result, entries);
            }
        }
        chain.pop();
        if let Value::Map(own) = &job.value {
            deep_merge(&mut result, own.iter().filter(|(k, _)| k != "extends").cloned().collect());
        }
        Ok((Node { value: Value::Map(result), at: job.at }, height))
    }

    /// The node with every `!reference` replaced by what it points at; in sequences, a
    /// referenced sequence is spliced in (scripts are flattened, as GitLab does). A missing
    /// target (see `Resolver`) leaves nothing in its place.
    fn references(&self, node: &Node, depth: usize, missing: &mut Vec<String>) -> Result<Node, String> {
        if depth > MOST_REFERENCE_DEPTH {
            return Err(format!("!reference nested more than {MOST_REFERENCE_DEPTH} levels"));
        }
        let value = match &node.value {
            Value::Reference(path) => {
                return match self.lookup(path, missing)? {
                    Some(target) => self.references(&target, depth + 1, missing),
                    None => Ok(Node { value: Value::Null, at: node.at }),
                }
            }
            Value::Seq(items) => {
                let mut out = Vec::new();
                for item in items {
                    let resolved = self.references(item, depth, missing)?;
                    match (resolved.value, matches!(item.value, Value::Reference(_))) {
                        (Value::Seq(spliced), true) => out.extend(spliced),
                        (Value::Null, true) => {} // a missing target
                        (value, _) => out.push(Node { value, at: resolved.at }),
                    }
                }
                Value::Seq(out)
            }
            Value::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.references(v, depth, missing)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        };
        Ok(Node { value, at: node.at })
    }

    /// What `!reference [job, key, ...]` points at, in the job as its `extends` make it; None
    /// when it is missing (see `Resolver`).
    fn lookup(&self, path: &[String], missing: &mut Vec<String>) -> Result<Option<Node>, String> {
        let (job, keys) = path.split_first().ok_or("an empty !reference")?;
        let not_there = |missing: &mut Vec<String>, why: String| {
            if self.lenient {
                missing.push(format!("!reference [{}]", path.join(", ")));
                Ok(None)
            } else {
                Err(why)
            }
        };
        if self.get(job).is_none() {
            return not_there(missing, format!("!reference to unknown job '{job}'"));
        }
        let mut node = self.extended(job, &mut Vec::new(), missing).map_err(|error| error.0)?;
        for key in keys {
            match node.get(key) {
                Some(found) => node = found.clone(),
                None => return not_there(missing, format!("!reference [{}]: no '{key}'", path.join(", "))),
            }
        }
        Ok(Some(node))
    }
}

/// `default:` keys the job lacks, unless `inherit: default:` says otherwise.
fn apply_default(job: &mut Node, default: Option<&Node>) {
    let Some(Value::Map(defaults)) = default.map(|d| &d.value) else { return };
    let inherit = job.get("inherit").and_then(|i| i.get("default")).map(|d| d.value.clone());
    let Value::Map(entries) = &mut job.value else { return };
    for (key, value) in defaults {
        let wanted = match &inherit {
            Some(Value::Bool(false)) => false,
            Some(Value::Seq(keys)) => keys.iter().any(|k| k.as_str() == Some(key)),
            _ => true,
        };
        if wanted && DEFAULT_KEYS.contains(&key.as_str()) && !entries.iter().any(|(k, _)| k == key) {
            entries.push((key.clone(), value.clone()));
        }
    }
}

/// Script lines, nested sequences flattened (GitLab allows 10 levels, checked by `references`).
fn script_lines(node: &Node) -> Vec<String> {
    match &node.value {
        Value::Seq(items) => items.iter().flat_map(script_lines).collect(),
        _ => node.scalar_text().into_iter().collect(),
    }
}

/// GitLab's names for `parallel:` instances: `job 1/3`, or `job: [a, b]` per matrix combination.
fn parallel_names(name: &str, parallel: Option<&Node>) -> Vec<String> {
    match parallel.map(|p| &p.value) {
        Some(Value::Int(count)) if *count >= 1 => (1..=*count).map(|i| format!("{name} {i}/{count}")).collect(),
        Some(Value::Map(_)) => {
            let Some(Value::Seq(entries)) = parallel.and_then(|p| p.get("matrix")).map(|m| &m.value) else {
                return vec![name.to_owned()];
            };
            let mut names = Vec::new();
            for entry in entries {
                let Value::Map(variables) = &entry.value else { continue };
                let mut combinations: Vec<Vec<String>> = vec![Vec::new()];
                for (_, values) in variables {
                    let choices: Vec<String> = match &values.value {
                        Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
                        _ => values.scalar_text().into_iter().collect(),
                    };
                    combinations = combinations
                        .into_iter()
                        .flat_map(|done| {
                            choices.iter().map(move |choice| [done.clone(), vec![choice.clone()]].concat())
                        })
                        .collect();
                }
                names.extend(combinations.into_iter().map(|values| format!("{name}: [{}]", values.join(", "))));
            }
            names
        }
        _ => vec![name.to_owned()],
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

    #[test]
    fn matrix_and_count_names() {
        let parse = |text: &str| yaml::parse(text).unwrap().remove(0);
        assert_eq!(parallel_names("test", Some(&parse("3"))), ["test 1/3", "test 2/3", "test 3/3"]);
        assert_eq!(parallel_names("test", Some(&parse("1"))), ["test 1/1"], "GitLab names even one instance");
        let matrix = parse("matrix:\n  - OS: [linux, mac]\n    ARCH: amd64\n");
        assert_eq!(parallel_names("build", Some(&matrix)), ["build: [linux, amd64]", "build: [mac, amd64]"]);
    }
}
