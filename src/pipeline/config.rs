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

use super::glob::include_glob;
use super::rules::{self, Decision};
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
    /// Whether the job may fail without failing the pipeline, its matching `rules:` entry's
    /// `allow_failure` applied.
    #[serde(default)]
    pub allow_failure: AllowFailure,
    /// When GitLab runs it, from its `rules:` (or `only`/`except`) and `when:`. `Never` jobs are
    /// in `Pipeline::not_created`, never in `Pipeline::jobs`.
    #[serde(default)]
    pub when: When,
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

/// A job's `when:` as GitLab settles it for this pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    #[default]
    OnSuccess,
    OnFailure,
    Always,
    Manual,
    Delayed,
    /// Not created: its rules, `only` or `except` exclude it.
    Never,
    /// Its rules depend on what herald cannot know here (`changes:`, another project's files):
    /// kept, since GitLab may create it.
    Unknown,
}

impl When {
    pub fn name(self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::OnFailure => "on_failure",
            When::Always => "always",
            When::Manual => "manual",
            When::Delayed => "delayed",
            When::Never => "never",
            When::Unknown => "unknown",
        }
    }

    /// A `when:` value as written; None for one GitLab does not know.
    fn written(node: &Node) -> Option<When> {
        Some(match node.as_str()? {
            "on_success" => When::OnSuccess,
            "on_failure" => When::OnFailure,
            "always" => When::Always,
            "manual" => When::Manual,
            "delayed" => When::Delayed,
            "never" => When::Never,
            _ => return None,
        })
    }
}

/// Whether GitLab would create the pipeline at all (`workflow:rules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workflow {
    /// No `workflow:rules`, or they create it.
    #[default]
    Created,
    /// `workflow:rules` create no pipeline for these variables (no rule holds, or `when: never`).
    NotCreated,
    /// They depend on what herald cannot know here.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Pipeline {
    /// The jobs GitLab creates, or may create (`When::Unknown`), in stage order (`.pre` first,
    /// `.post` last), then in the order the merged configuration has them.
    pub jobs: Vec<Job>,
    /// Jobs the configuration has that GitLab would not create for these variables (`rules:`,
    /// `only`/`except`), in the same order. Never planned, never published.
    #[serde(default)]
    pub not_created: Vec<Job>,
    /// What `workflow:rules` say. The jobs are evaluated either way: herald running inside a job
    /// proves the pipeline exists, whatever herald's reading of the rules.
    #[serde(default)]
    pub workflow: Workflow,
    /// The stages in GitLab's order, `.pre` first and `.post` last.
    #[serde(default)]
    pub stages: Vec<String>,
    /// Every job's name, created or not, in stage order (`all_jobs`).
    #[serde(default)]
    pub order: Vec<String>,
    /// Includes not resolved here (no token or network, no such file, a variable not set), each
    /// with the reason.
    pub unresolved: Vec<String>,
}

impl Pipeline {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|job| job.name == name)
    }

    /// A job of the configuration by name, whether or not herald's reading of its rules says
    /// GitLab creates it: for a job GitLab has, GitLab is right, and the job's steps still hold.
    pub fn configured(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().chain(&self.not_created).find(|job| job.name == name)
    }

    /// The same, by task (`ci/lint`), for a status of herald's.
    pub fn configured_task(&self, task: &str) -> Option<&Job> {
        self.jobs.iter().chain(&self.not_created).find(|job| job.task == task)
    }

    /// Every job of the configuration, created or not, in stage order.
    pub fn all_jobs(&self) -> Vec<&Job> {
        let mut all: Vec<&Job> = self.jobs.iter().chain(&self.not_created).collect();
        all.sort_by_key(|job| self.order.iter().position(|name| *name == job.name).unwrap_or(usize::MAX));
        all
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
    let mut loader =
        Loader { source, fetch, variables, includes: 0, unresolved: Vec::new(), files: RefCell::new(None) };
    let mut layers = Vec::new();
    let root = FileRef { place: Place::Checkout, path: config_path.trim_start_matches('/').to_owned() };
    loader.file(root, Origin::Root, None, &mut Vec::new(), &mut layers)?;
    let unresolved = std::mem::take(&mut loader.unresolved);
    // The checkout is listed only if a rule asks whether a file exists.
    resolve(layers, unresolved, variables, &|patterns: &[String]| super::glob::exists(&loader.files(), patterns))
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
    /// The file's label, for positions in messages.
    label: String,
    entries: Vec<(String, Node)>,
}

struct Loader<'s> {
    source: &'s dyn Source,
    fetch: Option<&'s dyn Fetch>,
    variables: &'s [(String, String)],
    includes: usize,
    unresolved: Vec<String>,
    /// The checkout's files, sorted, listed once when a glob or `exists:` first needs them.
    files: RefCell<Option<std::rc::Rc<Vec<String>>>>,
}

impl Loader<'_> {
    fn files(&self) -> std::rc::Rc<Vec<String>> {
        self.files
            .borrow_mut()
            .get_or_insert_with(|| {
                let mut files = self.source.list();
                files.sort();
                std::rc::Rc::new(files)
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
        let label = stack.pop().unwrap_or_default();
        layers.push(Layer {
            origin,
            label,
            entries: entries.into_iter().filter(|(key, _)| key != "include").collect(),
        });
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
            let exists = |patterns: &[String]| match from.place {
                Place::Checkout => super::glob::exists(&self.files(), patterns),
                _ => None, // `exists:` looks into the project of the file that has it
            };
            if rules::decide(rules, &variable, &exists) == Decision::Exclude {
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
            if stack.contains(&location) {
                return Err(LoadError(format!("{}: include cycle: {} → {location}", at(item), stack.join(" → "))));
            }
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
            self.files().iter().filter(|path| include_glob(pattern, path)).cloned().collect();
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

/// Merges the layers, then turns the result into jobs, each with what its `rules:` (or
/// `only`/`except`) make of it for these variables.
fn resolve(
    layers: Vec<Layer>,
    unresolved: Vec<String>,
    variables: &[(String, String)],
    exists: rules::Exists,
) -> Result<Pipeline, LoadError> {
    let mut merged: Vec<(String, Node)> = Vec::new();
    let mut origins: Vec<(String, Origin)> = Vec::new();
    let mut files: HashMap<String, String> = HashMap::new();
    for layer in layers {
        for (key, _) in &layer.entries {
            if !origins.iter().any(|(k, _)| k == key) {
                origins.push((key.clone(), layer.origin.clone()));
            }
            files.insert(key.clone(), layer.label.clone());
        }
        deep_merge(&mut merged, layer.entries);
    }
    let global = |key: &str| merged.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
    let default = global("default").cloned();
    let global_variables = yaml_variables(global("variables"));
    let stages = stage_order(global("stages").or_else(|| global("types")));
    let resolver = Resolver::new(&merged, !unresolved.is_empty(), files);
    let workflow_rules = global("workflow").and_then(|w| w.get("rules"));
    let workflow = match workflow_rules.map(|rules| resolver.references(rules, 0, &mut Vec::new())) {
        None => Workflow::Created,
        Some(Ok(rules)) => {
            let lookup = |name: &str| lookup(variables, &[], &global_variables, name);
            match rules::decide(&rules, &lookup, exists) {
                Decision::Include => Workflow::Created,
                Decision::Exclude => Workflow::NotCreated,
                Decision::Unknown => Workflow::Unknown,
            }
        }
        Some(Err(_)) => Workflow::Unknown,
    };
    let mut all = Vec::new();
    for (name, node) in &merged {
        if name.starts_with('.') || GLOBAL_KEYWORDS.contains(&name.as_str()) {
            continue;
        }
        if !matches!(node.value, Value::Map(_)) {
            return Err(LoadError(format!("{}: job '{name}' must be a mapping", resolver.place(name, None))));
        }
        // GitLab's order (gitlab.md §M): extends, then `default:`, then `!reference`, which
        // therefore sees what a job has through its `extends`.
        let mut missing = Vec::new();
        let mut job = resolver.extended(name, &mut Vec::new(), &mut missing)?;
        apply_default(&mut job, default.as_ref());
        let job = resolver
            .references(&job, 0, &mut missing)
            .map_err(|why| LoadError(format!("{}: job '{name}': {why}", resolver.place(name, None))))?;
        missing.dedup();
        let origin = origins.iter().find(|(k, _)| k == name).map(|(_, o)| o.clone()).unwrap_or(Origin::Root);
        let stage = job.get("stage").and_then(Node::scalar_text).unwrap_or_else(|| "test".into());
        let lines = |key: &str| job.get(key).map(script_lines).unwrap_or_default();
        let (before_script, script, after_script) = (lines("before_script"), lines("script"), lines("after_script"));
        let steps = number_repeats(
            before_script.iter().chain(&script).chain(&after_script).flat_map(|line| planned_steps(line)).collect(),
        );
        let job_variables = yaml_variables(job.get("variables"));
        for (instance, matrix) in parallel_instances(name, job.get("parallel")) {
            // Matrix values are job variables of their instance, above the job's own.
            let own: Vec<(String, String)> = job_variables.iter().cloned().chain(matrix).collect();
            let lookup = |name: &str| lookup(variables, &own, &global_variables, name);
            let mut chosen = fate(&job, &lookup, exists, workflow_rules.is_some());
            // The job herald runs in exists, whatever herald makes of its rules: GitLab's reading
            // differed (a variable herald does not see), so any rule that creates it may be the one.
            if chosen.0 == When::Never && lookup("CI_JOB_NAME").as_deref() == Some(instance.as_str()) {
                chosen = fate_of_existing(&job);
            }
            let (when, allow_failure) = chosen;
            let task = match &origin {
                Origin::Root => instance.clone(),
                Origin::Include { name: include, .. } => format!("{include}/{instance}"),
            };
            let entry = Job {
                name: instance,
                stage: stage.clone(),
                origin: origin.clone(),
                task,
                steps: steps.clone(),
                before_script: before_script.clone(),
                script: script.clone(),
                after_script: after_script.clone(),
                allow_failure,
                when,
                missing: missing.clone(),
            };
            all.push(entry);
        }
    }
    sort_by_stage(&mut all, &stages);
    let order = all.iter().map(|job| job.name.clone()).collect();
    let (jobs, not_created) = all.into_iter().partition(|job| job.when != When::Never);
    Ok(Pipeline { jobs, not_created, unresolved, workflow, stages, order })
}

/// Jobs in stage order, keeping the configuration's order within a stage. A stage not listed
/// (most likely from an include herald could not resolve) keeps its job after the one before it.
fn sort_by_stage(jobs: &mut Vec<Job>, stages: &[String]) {
    let mut previous = 0;
    let mut ranked: Vec<(usize, Job)> = std::mem::take(jobs)
        .into_iter()
        .map(|job| {
            previous = stages.iter().position(|stage| *stage == job.stage).unwrap_or(previous);
            (previous, job)
        })
        .collect();
    ranked.sort_by_key(|(rank, _)| *rank);
    jobs.extend(ranked.into_iter().map(|(_, job)| job));
}

/// The stages in GitLab's order: `.pre`, the configuration's (or GitLab's default build, test,
/// deploy), `.post`.
fn stage_order(stages: Option<&Node>) -> Vec<String> {
    let listed: Vec<String> = match stages.map(|s| &s.value) {
        Some(Value::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
        _ => ["build", "test", "deploy"].map(String::from).to_vec(),
    };
    let middle = listed.into_iter().filter(|stage| stage != ".pre" && stage != ".post");
    [".pre".to_owned()].into_iter().chain(middle).chain([".post".to_owned()]).collect()
}

/// `variables:` as (name, value): `NAME: value` and `NAME: {value: ..., description: ...}`.
fn yaml_variables(node: Option<&Node>) -> Vec<(String, String)> {
    let Some(Value::Map(entries)) = node.map(|n| &n.value) else { return Vec::new() };
    entries
        .iter()
        .filter_map(|(name, value)| {
            let text = match &value.value {
                Value::Map(_) => value.get("value").and_then(Node::scalar_text),
                _ => value.scalar_text(),
            };
            Some((name.clone(), text?))
        })
        .collect()
}

/// A variable as a job's rules see it. The given CI/CD variables win (project, group and pipeline
/// variables outrank the YAML's); then the job's own `variables:`, then the global ones.
/// Inside a CI job the given ones also hold the running job's YAML variables: a rule of another
/// job that tests a name both jobs set sees the running job's value.
fn lookup(
    given: &[(String, String)],
    own: &[(String, String)],
    global: &[(String, String)],
    name: &str,
) -> Option<String> {
    let find = |list: &[(String, String)]| list.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    find(given).or_else(|| find(own)).or_else(|| find(global))
}

/// `fate` for a job known to exist although herald's reading of its rules drops it: any rule that
/// creates it may be the one that matched; without rules, its own `when` and `allow_failure`.
fn fate_of_existing(job: &Node) -> (When, AllowFailure) {
    let own_when = job.get("when").and_then(When::written).unwrap_or(When::OnSuccess);
    let own_allow_failure = AllowFailure::of(job);
    let Some(Value::Seq(rules)) = job.get("rules").map(|r| &r.value) else {
        return (own_when, own_allow_failure);
    };
    let outcomes: Vec<(When, AllowFailure)> = rules
        .iter()
        .map(|rule| {
            let when = rule.get("when").and_then(When::written).unwrap_or(own_when);
            let allowed =
                if rule.get("allow_failure").is_some() { AllowFailure::of(rule) } else { own_allow_failure.clone() };
            (when, allowed)
        })
        .filter(|(when, _)| *when != When::Never)
        .collect();
    agreed(&outcomes)
}

/// The one `when` and `allow_failure` all outcomes share, each `Unknown` where they differ.
fn agreed(outcomes: &[(When, AllowFailure)]) -> (When, AllowFailure) {
    let Some((when, allowed)) = outcomes.first() else { return (When::Unknown, AllowFailure::Unknown) };
    let when = if outcomes.iter().all(|(w, _)| w == when) { *when } else { When::Unknown };
    let allowed = if outcomes.iter().all(|(_, a)| a == allowed) { allowed.clone() } else { AllowFailure::Unknown };
    (when, allowed)
}

/// When GitLab runs `job` and whether it may fail, from its `rules:` or `only`/`except`
/// (docs: `rules`, `allow_failure`). Each rule that may be the first to hold is a possible
/// outcome; when they do not all agree, the answer is `When::Unknown` / `AllowFailure::Unknown`.
fn fate(job: &Node, variables: rules::Variables, exists: rules::Exists, workflow_rules: bool) -> (When, AllowFailure) {
    let own_when = job.get("when").and_then(When::written).unwrap_or(When::OnSuccess);
    let own_allow_failure = AllowFailure::of(job);
    // None: not created.
    let outcomes: Vec<Option<(When, AllowFailure)>> = match job.get("rules") {
        Some(rules) => {
            let Some(found) = rules::candidates(rules, variables, exists) else {
                return (When::Unknown, AllowFailure::Unknown);
            };
            let chosen = found.rules.iter().map(|rule| {
                let when = rule.get("when").and_then(When::written).unwrap_or(own_when);
                // A rule's `allow_failure` wins; `when: manual` in a rule does not make the job
                // allowed to fail (it does at the job level).
                let allow_failure = match rule.get("allow_failure") {
                    Some(_) => AllowFailure::of(rule),
                    None => own_allow_failure.clone(),
                };
                (when != When::Never).then_some((when, allow_failure))
            });
            chosen.chain(found.none.then_some(None)).collect()
        }
        None => {
            // Without `rules`, `only`/`except`; without those either, GitLab's default
            // `only: [branches, tags]`, which `workflow:rules` turn off. Every pipeline is of a
            // branch or a tag except a merge request's: that one is decided by the source alone
            // (unknown outside CI without git: then the job is created, as in a push).
            let (only, except) = (job.get("only"), job.get("except"));
            let created = (own_when != When::Never).then_some((own_when, own_allow_failure));
            let by_policy = if only.is_none() && except.is_none() {
                let merge_request = variables("CI_PIPELINE_SOURCE").as_deref() == Some("merge_request_event");
                Some(workflow_rules || !merge_request)
            } else {
                rules::only_except(only, except, variables)
            };
            match by_policy {
                Some(true) => vec![created],
                Some(false) => vec![None],
                None => vec![created, None],
            }
        }
    };
    let created: Vec<(When, AllowFailure)> = outcomes.iter().flatten().cloned().collect();
    // A job that is not created never fails.
    if created.is_empty() {
        return (When::Never, AllowFailure::No);
    }
    // Whether it may fail matters only if it runs: the outcomes that create it agree or not.
    let (when, allow_failure) = agreed(&created);
    (if outcomes.contains(&None) { When::Unknown } else { when }, allow_failure)
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
    /// The file each top-level name was last set in, for positions in messages.
    files: HashMap<String, String>,
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
    fn new(all: &'a [(String, Node)], lenient: bool, files: HashMap<String, String>) -> Resolver<'a> {
        let mut index = HashMap::new();
        for (at, (name, _)) in all.iter().enumerate() {
            index.entry(name.as_str()).or_insert(at);
        }
        Resolver { all, index, lenient, files, done: RefCell::new(HashMap::new()) }
    }

    /// `file:line:column` of a job's `key` (or of the job itself), for messages.
    fn place(&self, name: &str, key: Option<&str>) -> String {
        let file = self.files.get(name).map_or("?", String::as_str);
        let job = self.get(name);
        let at = job.and_then(|job| key.and_then(|key| job.get(key))).or(job).map(|node| node.at).unwrap_or_default();
        format!("{file}:{}:{}", at.line, at.column)
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
        let here = |chain: &[String]| {
            chain.last().map_or_else(|| self.place(name, None), |last| self.place(last, Some("extends")))
        };
        let too_deep = |chain: &[String]| {
            LoadError(format!(
                "{}: extends nested more than {MOST_EXTENDS} levels: {} → {name}",
                here(chain),
                chain.join(" → ")
            ))
        };
        if chain.iter().any(|seen| seen == name) {
            return Err(LoadError(format!("{}: extends cycle: {} → {name}", here(chain), chain.join(" → "))));
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
            return Err(LoadError(format!(
                "{}: '{extender}' extends '{name}', which does not exist",
                self.place(extender, Some("extends"))
            )));
        };
        let bases: Vec<String> = match job.get("extends").map(|e| &e.value) {
            None => return Ok((job.clone(), 0)),
            Some(Value::Str(base)) => vec![base.clone()],
            Some(Value::Seq(items)) => items.iter().filter_map(Node::scalar_text).collect(),
            Some(_) => {
                return Err(LoadError(format!(
                    "{}: job '{name}': extends must be a name or a list of names",
                    self.place(name, Some("extends"))
                )))
            }
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

/// GitLab's `parallel:` instances: `job 1/3`, or `job: [a, b]` per matrix combination with the
/// combination's variables.
fn parallel_instances(name: &str, parallel: Option<&Node>) -> Vec<(String, Vec<(String, String)>)> {
    match parallel.map(|p| &p.value) {
        Some(Value::Int(count)) if *count >= 1 => {
            (1..=*count).map(|i| (format!("{name} {i}/{count}"), Vec::new())).collect()
        }
        Some(Value::Map(_)) => {
            let Some(Value::Seq(entries)) = parallel.and_then(|p| p.get("matrix")).map(|m| &m.value) else {
                return vec![(name.to_owned(), Vec::new())];
            };
            let mut instances = Vec::new();
            for entry in entries {
                let Value::Map(variables) = &entry.value else { continue };
                let mut combinations: Vec<Vec<(String, String)>> = vec![Vec::new()];
                for (variable, values) in variables {
                    let choices: Vec<String> = match &values.value {
                        Value::Seq(items) => items.iter().filter_map(Node::scalar_text).collect(),
                        _ => values.scalar_text().into_iter().collect(),
                    };
                    combinations = combinations
                        .into_iter()
                        .flat_map(|done| {
                            choices
                                .iter()
                                .map(move |choice| [done.clone(), vec![(variable.clone(), choice.clone())]].concat())
                        })
                        .collect();
                }
                instances.extend(combinations.into_iter().map(|values| {
                    let shown: Vec<&str> = values.iter().map(|(_, value)| value.as_str()).collect();
                    (format!("{name}: [{}]", shown.join(", ")), values)
                }));
            }
            instances
        }
        _ => vec![(name.to_owned(), Vec::new())],
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

    fn plan(config: &str, variables: &[(&str, &str)]) -> Pipeline {
        let files = InMemory(vec![(".gitlab-ci.yml".into(), config.as_bytes().to_vec())]);
        let variables: Vec<(String, String)> = variables.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        load_from(&files, ".gitlab-ci.yml", None, &variables).unwrap()
    }

    const FEATURE: [(&str, &str); 2] = [("CI_PIPELINE_SOURCE", "push"), ("CI_COMMIT_BRANCH", "feature/x")];

    /// Issue 25: the plan the publisher uses has no job GitLab would not create.
    #[test]
    fn the_plan_has_only_jobs_gitlab_creates() {
        let config = "a:
  script: [x]
  rules:
    - when: never
b:
  script: [x]
  only: [main]
c:
  script: [x]
";
        let pipeline = plan(config, &FEATURE);
        assert_eq!(pipeline.jobs.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(pipeline.not_created.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(pipeline.job("a").is_none() && pipeline.job("b").is_none());
        // The job herald runs in exists: a reading that excludes it defers to GitLab.
        let running: Vec<(&str, &str)> = FEATURE.iter().copied().chain([("CI_JOB_NAME", "b")]).collect();
        let b = plan(config, &running).job("b").cloned().unwrap();
        assert_eq!((b.when, b.allow_failure), (When::OnSuccess, AllowFailure::No), "no rules: its own");
        let ruled = "r:\n  script: [x]\n  rules:\n    - if: $NOPE\n      allow_failure: true\n    - if: $NEITHER\n      when: manual\n";
        let running: Vec<(&str, &str)> = FEATURE.iter().copied().chain([("CI_JOB_NAME", "r")]).collect();
        let r = plan(ruled, &running).job("r").cloned().unwrap();
        assert_eq!((r.when, r.allow_failure), (When::Unknown, AllowFailure::Unknown), "either rule may have matched");
    }

    /// Issue 25: `allow_failure` inside `rules:` is the job's; undecidable, it is GitLab's to say.
    #[test]
    fn allow_failure_in_rules_is_resolved() {
        let config = "\
            decided:\n  script: [x]\n  rules:\n    - if: $CI_COMMIT_BRANCH =~ /^feature/\n      allow_failure: true\n\
            codes:\n  script: [x]\n  rules:\n    - allow_failure: {exit_codes: [3]}\n\
            own:\n  script: [x]\n  allow_failure: true\n  rules:\n    - if: $CI_COMMIT_BRANCH\n\
            undecided:\n  script: [x]\n  rules:\n    - changes: [src/**]\n      allow_failure: true\n    - when: on_success\n\
            same-either-way:\n  script: [x]\n  rules:\n    - changes: [src/**]\n      allow_failure: true\n    - allow_failure: true\n\
            manual-rule:\n  script: [x]\n  rules:\n    - when: manual\n\
            manual-job:\n  script: [x]\n  when: manual\n";
        let pipeline = plan(config, &FEATURE);
        let allowed = |name: &str| pipeline.job(name).unwrap().allow_failure.clone();
        assert_eq!(allowed("decided"), AllowFailure::Yes);
        assert_eq!(allowed("codes"), AllowFailure::ExitCodes(vec![3]));
        assert_eq!(allowed("own"), AllowFailure::Yes, "a rule without allow_failure keeps the job's");
        assert_eq!(allowed("undecided"), AllowFailure::Unknown);
        assert_eq!(allowed("same-either-way"), AllowFailure::Yes, "every candidate rule agrees");
        assert_eq!(allowed("manual-rule"), AllowFailure::No, "when: manual in rules does not allow failure");
        assert_eq!(allowed("manual-job"), AllowFailure::Yes);
        assert_eq!(pipeline.job("undecided").unwrap().when, When::OnSuccess, "both candidates run on success");
    }

    /// Listing a checkout walks every file: done only when a glob or `exists:` needs it, once.
    #[test]
    fn the_checkout_is_listed_once_and_only_when_needed() {
        struct Counted(InMemory, std::cell::Cell<usize>);
        impl Source for Counted {
            fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
                self.0.read(path, limit)
            }
            fn list(&self) -> Vec<String> {
                self.1.set(self.1.get() + 1);
                self.0.list()
            }
        }
        let listings = |config: &str| {
            let files = InMemory(vec![(".gitlab-ci.yml".into(), config.as_bytes().to_vec())]);
            let source = Counted(files, std::cell::Cell::new(0));
            load_from(&source, ".gitlab-ci.yml", None, &[]).unwrap();
            source.1.get()
        };
        assert_eq!(listings("a:\n  script: [x]\n  rules:\n    - if: $X\n"), 0);
        let exists = "a:\n  script: [x]\n  rules:\n    - exists: [x]\nb:\n  script: [x]\n  rules:\n    - exists: [y]\n";
        assert_eq!(listings(exists), 1);
    }

    /// Rules see the YAML's variables (global, the job's, a matrix instance's) below the CI/CD ones.
    #[test]
    fn job_rules_see_yaml_and_matrix_variables() {
        let config = "variables:\n  DEPLOY: \"yes\"\n\
            deploy:\n  script: [x]\n  rules:\n    - if: $DEPLOY == \"yes\"\n\
            local:\n  variables: {DEPLOY: \"no\"}\n  script: [x]\n  rules:\n    - if: $DEPLOY == \"yes\"\n\
            cloud:\n  script: [x]\n  parallel:\n    matrix:\n      - PROVIDER: [aws, gcp]\n  rules:\n    - if: $PROVIDER == \"aws\"\n";
        let pipeline = plan(config, &FEATURE);
        let names: Vec<&str> = pipeline.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["deploy", "cloud: [aws]"]);
        let given: Vec<(&str, &str)> = FEATURE.iter().copied().chain([("DEPLOY", "no")]).collect();
        assert!(plan(config, &given).job("deploy").is_none(), "a CI/CD variable outranks the YAML's");
    }

    #[test]
    fn matrix_and_count_names() {
        let parse = |text: &str| yaml::parse(text).unwrap().remove(0);
        let parallel_names = |name: &str, node: Option<&Node>| -> Vec<String> {
            parallel_instances(name, node).into_iter().map(|(name, _)| name).collect()
        };
        assert_eq!(parallel_names("test", Some(&parse("3"))), ["test 1/3", "test 2/3", "test 3/3"]);
        assert_eq!(parallel_names("test", Some(&parse("1"))), ["test 1/1"], "GitLab names even one instance");
        let matrix = parse("matrix:\n  - OS: [linux, mac]\n    ARCH: amd64\n");
        assert_eq!(parallel_names("build", Some(&matrix)), ["build: [linux, amd64]", "build: [mac, amd64]"]);
    }
}
