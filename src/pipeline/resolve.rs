//! The resolver: the loaded layers merged as GitLab merges them (gitlab.md §I), then made into
//! jobs. Pure: it reads nothing but the layers and the variables it is given.
//!
//! - hashes are deep-merged, everything else (arrays included) is replaced;
//! - a job's origin is the include that first defines it;
//! - `extends` (at most 11 levels) merges bases then the job; `default:` fills keys a job lacks;
//!   `!reference [job, key, ...]` (at most 10 levels) copies from any job, hidden ones included;
//! - hidden jobs (`.name`) and the global keywords are not jobs;
//! - GitLab's order of work (gitlab.md §M): includes (with their inputs, include.rs), then
//!   `extends`, then `!reference`, which therefore sees what a job has through `extends`;
//! - a job that needs a base or reference target only an unresolved include could have defined
//!   keeps what it has and says what it lacks (`Job::missing`);
//! - each job's fate (when it runs, whether it may fail) comes from its rules (fate.rs).

use std::cell::RefCell;
use std::collections::HashMap;

use super::fate::{fate, fate_of_existing, lookup, workflow};
use super::include::Layer;
use super::model::{Job, LoadError, Origin, Pipeline, When, Workflow};
use super::rules;
use super::steps::{number_repeats, planned_steps};
use super::yaml::{Node, Value};

const MOST_EXTENDS: usize = 11;
const MOST_REFERENCE_DEPTH: usize = 10;

/// Top-level keys that are not jobs.
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

/// The layers merged (GitLab's deep merge, later wins), with where each top-level name is from.
struct Merged {
    entries: Vec<(String, Node)>,
    /// Each name's origin: the layer that first defines it.
    origins: Vec<(String, Origin)>,
    /// The file each name was last set in, for positions in messages.
    files: HashMap<String, String>,
}

fn merge(layers: Vec<Layer>) -> Merged {
    let mut merged = Merged { entries: Vec::new(), origins: Vec::new(), files: HashMap::new() };
    for layer in layers {
        for (key, _) in &layer.entries {
            if !merged.origins.iter().any(|(k, _)| k == key) {
                merged.origins.push((key.clone(), layer.origin.clone()));
            }
            merged.files.insert(key.clone(), layer.label.clone());
        }
        deep_merge(&mut merged.entries, layer.entries);
    }
    merged
}

/// What every job's resolution shares: the pipeline's variables and defaults.
struct Shared<'a> {
    /// The CI/CD variables, above the YAML's (`lookup`).
    variables: &'a [(String, String)],
    global_variables: Vec<(String, String)>,
    default: Option<&'a Node>,
    exists: rules::Exists<'a>,
    /// Whether `workflow:rules` are there (they turn off GitLab's default `only`).
    workflow_rules: bool,
}

/// Merges the layers, then turns the result into jobs, each with what its `rules:` (or
/// `only`/`except`) make of it for these variables.
pub(super) fn resolve(
    layers: Vec<Layer>,
    unresolved: Vec<String>,
    variables: &[(String, String)],
    exists: rules::Exists,
) -> Result<Pipeline, LoadError> {
    let Merged { entries: merged, origins, files } = merge(layers);
    let global = |key: &str| merged.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v);
    let stages = stage_order(global("stages").or_else(|| global("types")));
    let resolver = Resolver::new(&merged, !unresolved.is_empty(), files);
    let workflow_rules = global("workflow").and_then(|w| w.get("rules"));
    let shared = Shared {
        variables,
        global_variables: yaml_variables(global("variables")),
        default: global("default"),
        exists,
        workflow_rules: workflow_rules.is_some(),
    };
    let workflow = match workflow_rules.map(|rules| resolver.references(rules, 0, &mut Vec::new())) {
        None => Workflow::Created,
        Some(Ok(rules)) => workflow(&rules, &|name| lookup(variables, &[], &shared.global_variables, name), exists),
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
        let origin = origins.iter().find(|(k, _)| k == name).map(|(_, o)| o.clone()).unwrap_or(Origin::Root);
        all.extend(jobs_of(&resolver, name, &origin, &shared)?);
    }
    sort_by_stage(&mut all, &stages);
    let order = all.iter().map(|job| job.name.clone()).collect();
    let (jobs, not_created) = all.into_iter().partition(|job| job.when != When::Never);
    Ok(Pipeline { jobs, not_created, unresolved, workflow, stages, order })
}

/// The jobs one configured job makes: itself, or one per `parallel:` instance.
fn jobs_of(resolver: &Resolver, name: &str, origin: &Origin, shared: &Shared) -> Result<Vec<Job>, LoadError> {
    // GitLab's order (gitlab.md §M): extends, then `default:`, then `!reference`, which
    // therefore sees what a job has through its `extends`.
    let mut missing = Vec::new();
    let mut job = resolver.extended(name, &mut Vec::new(), &mut missing)?;
    apply_default(&mut job, shared.default);
    let job = resolver
        .references(&job, 0, &mut missing)
        .map_err(|why| LoadError(format!("{}: job '{name}': {why}", resolver.place(name, None))))?;
    missing.dedup();
    let stage = job.get("stage").and_then(Node::scalar_text).unwrap_or_else(|| "test".into());
    let [before_script, script, after_script] = scripts(resolver, name, &job)?;
    let steps = number_repeats(
        before_script.iter().chain(&script).chain(&after_script).flat_map(|line| planned_steps(line)).collect(),
    );
    let job_variables = yaml_variables(job.get("variables"));
    let mut jobs = Vec::new();
    for (instance, matrix) in parallel_instances(name, job.get("parallel")) {
        // Matrix values are job variables of their instance, above the job's own.
        let own: Vec<(String, String)> = job_variables.iter().cloned().chain(matrix).collect();
        let lookup = |name: &str| lookup(shared.variables, &own, &shared.global_variables, name);
        let mut chosen = fate(&job, &lookup, shared.exists, shared.workflow_rules);
        // The job herald runs in exists, whatever herald makes of its rules: GitLab's reading
        // differed (a variable herald does not see), so any rule that creates it may be the one.
        if chosen.0 == When::Never && lookup("CI_JOB_NAME").as_deref() == Some(instance.as_str()) {
            chosen = fate_of_existing(&job);
        }
        let (when, allow_failure) = chosen;
        let task = match origin {
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
            allow_failure,
            when,
            missing: missing.clone(),
        });
    }
    Ok(jobs)
}

/// A resolved job's before_script, script and after_script lines, nested lists flattened; an
/// error at the first entry GitLab refuses.
fn scripts(resolver: &Resolver, name: &str, job: &Node) -> Result<[Vec<String>; 3], LoadError> {
    let keys = ["before_script", "script", "after_script"];
    for key in keys {
        if let Some(bad) = job.get(key).and_then(not_a_script_line) {
            let file = resolver.files.get(name).map_or("?", String::as_str);
            return Err(LoadError(format!(
                "{file}:{}:{}: job '{name}': {key} config should be a string or a nested array of strings",
                bad.at.line, bad.at.column
            )));
        }
    }
    Ok(keys.map(|key| job.get(key).map(script_lines).unwrap_or_default()))
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
    fn references(&self, node: &Node, depth: usize, missing: &mut Vec<String>) -> Result<Node, ReferenceError> {
        if depth > MOST_REFERENCE_DEPTH {
            return Err(ReferenceError::TooDeep);
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
                entries.iter().map(|(k, v)| Ok((k.clone(), self.references(v, depth, missing)?))).collect::<Result<
                    _,
                    ReferenceError,
                >>(
                )?,
            ),
            other => other.clone(),
        };
        Ok(Node { value, at: node.at })
    }

    /// What `!reference [job, key, ...]` points at, in the job as its `extends` make it; None
    /// when it is missing (see `Resolver`).
    fn lookup(&self, path: &[String], missing: &mut Vec<String>) -> Result<Option<Node>, ReferenceError> {
        let (job, keys) = path.split_first().ok_or(ReferenceError::Empty)?;
        let not_there = |missing: &mut Vec<String>, why: ReferenceError| {
            if self.lenient {
                missing.push(format!("!reference [{}]", path.join(", ")));
                Ok(None)
            } else {
                Err(why)
            }
        };
        if self.get(job).is_none() {
            return not_there(missing, ReferenceError::UnknownJob(job.clone()));
        }
        let mut node = self.extended(job, &mut Vec::new(), missing).map_err(ReferenceError::Extends)?;
        for key in keys {
            match node.get(key) {
                Some(found) => node = found.clone(),
                None => return not_there(missing, ReferenceError::NoKey { path: path.join(", "), key: key.clone() }),
            }
        }
        Ok(Some(node))
    }
}

/// Why a `!reference` cannot be resolved. Its callers decide differently: a job's becomes a load
/// error naming the job, while `workflow:rules` that cannot be resolved make the pipeline's
/// creation unknown (`Workflow::Unknown`), never an error.
#[derive(Debug, thiserror::Error)]
enum ReferenceError {
    #[error("!reference nested more than {MOST_REFERENCE_DEPTH} levels")]
    TooDeep,
    #[error("an empty !reference")]
    Empty,
    #[error("!reference to unknown job '{0}'")]
    UnknownJob(String),
    #[error("!reference [{path}]: no '{key}'")]
    NoKey { path: String, key: String },
    /// The referenced job's own `extends` cannot be resolved.
    #[error("{0}")]
    Extends(LoadError),
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

/// The first entry of a script that GitLab refuses (a mapping, as `- a: 1` reads): it takes
/// strings, and nested arrays of them, only.
fn not_a_script_line(node: &Node) -> Option<&Node> {
    match &node.value {
        Value::Seq(items) => items.iter().find_map(not_a_script_line),
        Value::Map(_) => Some(node),
        _ => None,
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
mod tests;
