//! A job's fate: whether GitLab creates it for these variables, when it runs and whether it may
//! fail, from its `rules:` (or `only`/`except`) and its own `when:` and `allow_failure:`; and
//! whether `workflow:rules` create the pipeline. Where herald cannot know (`changes:`, a variable
//! it does not see), the answer says so (`Unknown`) rather than guess.

use super::model::{AllowFailure, When, Workflow};
use super::rules::{self, Decision};
use super::yaml::{Node, Value};

impl AllowFailure {
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

impl When {
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

/// A variable as a job's rules see it. The given CI/CD variables win (project, group and pipeline
/// variables outrank the YAML's); then the job's own `variables:`, then the global ones.
/// Inside a CI job the given ones also hold the running job's YAML variables: a rule of another
/// job that tests a name both jobs set sees the running job's value.
pub(super) fn lookup(
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
pub(super) fn fate_of_existing(job: &Node) -> (When, AllowFailure) {
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
pub(super) fn fate(
    job: &Node,
    variables: rules::Variables,
    exists: rules::Exists,
    workflow_rules: bool,
) -> (When, AllowFailure) {
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

/// What `workflow:rules` (their `!reference`s resolved) say of the pipeline.
pub(super) fn workflow(rules: &Node, variables: rules::Variables, exists: rules::Exists) -> Workflow {
    match rules::decide(rules, variables, exists) {
        Decision::Include => Workflow::Created,
        Decision::Exclude => Workflow::NotCreated,
        Decision::Unknown => Workflow::Unknown,
    }
}
