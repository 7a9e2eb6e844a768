//! A Terraform or OpenTofu plan as a step summary (`herald plan-summary`): the plan's counts in
//! Terraform's own words ("Plan: 2 to add, 1 to change, 0 to destroy."), then the changed
//! resources grouped by action. Read from `terraform show -json <planfile>` (or `tofu show -json`),
//! whose format is documented at developer.hashicorp.com/terraform/internals/json-format:
//! `resource_changes[].change.actions` is one of `["no-op"]`, `["create"]`, `["read"]`,
//! `["update"]`, `["delete", "create"]` / `["create", "delete"]` (a replace, either order),
//! `["delete"]` or `["forget"]`; `change.importing` marks an import. Pure: bytes in, Markdown out.
//!
//! Why a herald subcommand rather than a script: herald is already in the job's image (one static
//! binary) while Terraform's images have no jq or Python, JSON is parsed properly (serde), and the
//! text it writes passes the same summary safety as any other.

use std::fmt::Write as _;

use serde::Deserialize;

#[derive(Deserialize)]
struct Plan {
    format_version: Option<String>,
    #[serde(default)]
    resource_changes: Vec<ResourceChange>,
}

#[derive(Deserialize)]
struct ResourceChange {
    address: String,
    #[serde(default)]
    mode: Option<String>,
    change: Change,
    #[serde(default)]
    action_reason: Option<String>,
}

#[derive(Deserialize)]
struct Change {
    actions: Vec<String>,
    #[serde(default)]
    importing: Option<serde_json::Value>,
}

/// What a plan does to a resource, in the order the summary lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Create,
    Update,
    Replace,
    Delete,
    Forget,
    Import,
}

impl Action {
    fn of(change: &Change) -> Option<Action> {
        let actions: Vec<&str> = change.actions.iter().map(String::as_str).collect();
        match actions.as_slice() {
            ["create"] => Some(Action::Create),
            ["update"] => Some(Action::Update),
            ["delete", "create"] | ["create", "delete"] => Some(Action::Replace),
            ["delete"] => Some(Action::Delete),
            ["forget"] => Some(Action::Forget),
            ["no-op"] if change.importing.is_some() => Some(Action::Import),
            _ => None, // no-op, read: no change
        }
    }

    fn title(self) -> &'static str {
        match self {
            Action::Create => "➕ to create",
            Action::Update => "🔄 to update in place",
            Action::Replace => "♻️ to replace",
            Action::Delete => "➖ to destroy",
            Action::Forget => "🫥 to forget (removed from state, not destroyed)",
            Action::Import => "📥 to import",
        }
    }
}

/// A changed resource: its address and, when Terraform gives one, why.
type Changed = (String, Option<String>);

/// The Markdown summary of a plan in `terraform show -json` form, or one line saying why the
/// bytes are not one (`herald plan-summary` prints it: no caller tells reasons apart, so text).
pub fn plan_summary(json: &[u8]) -> Result<String, String> {
    let plan: Plan =
        serde_json::from_slice(json).map_err(|error| format!("not a plan in `terraform show -json` form: {error}"))?;
    if plan.format_version.is_none() {
        return Err("not a plan in `terraform show -json` form: no format_version".to_owned());
    }
    let mut groups: Vec<(Action, Vec<Changed>)> = Vec::new();
    let mut imports = 0;
    for resource in plan.resource_changes.iter().filter(|r| r.mode.as_deref() != Some("data")) {
        if resource.change.importing.is_some() {
            imports += 1;
        }
        let Some(action) = Action::of(&resource.change) else { continue };
        let entry = (resource.address.clone(), resource.action_reason.clone());
        match groups.iter_mut().find(|(a, _)| *a == action) {
            Some((_, addresses)) => addresses.push(entry),
            None => groups.push((action, vec![entry])),
        }
    }
    groups.sort_by_key(|(action, _)| *action);
    let count = |wanted: Action| groups.iter().find(|(a, _)| *a == wanted).map_or(0, |(_, list)| list.len());
    let (add, change, destroy) = (
        count(Action::Create) + count(Action::Replace),
        count(Action::Update),
        count(Action::Delete) + count(Action::Replace),
    );
    let forget = count(Action::Forget);
    if groups.is_empty() {
        return Ok("### No changes.\n\nYour infrastructure matches the configuration.\n".to_owned());
    }
    let mut line = String::from("Plan: ");
    if imports > 0 {
        let _ = write!(line, "{imports} to import, ");
    }
    let _ = write!(line, "{add} to add, {change} to change, {destroy} to destroy");
    if forget > 0 {
        let _ = write!(line, ", {forget} to forget");
    }
    let mut text = format!("### {line}.\n");
    for (action, addresses) in &groups {
        let _ = write!(text, "\n**{} ({})**\n\n", action.title(), addresses.len());
        for (address, reason) in addresses {
            let reason = match reason.as_deref() {
                Some("replace_because_tainted") => " — tainted",
                Some("replace_by_request") => " — requested (-replace)",
                Some("replace_because_cannot_update") => " — an attribute cannot be updated in place",
                Some("delete_because_no_resource_config") => " — no longer in the configuration",
                _ => "",
            };
            // A code span: a backtick in a key (for_each over anything) must not end it.
            let _ = writeln!(text, "- `{}`{reason}", address.replace('`', "'"));
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_a_plan_is_one_line() {
        for bad in [&b"{}"[..], b"[1]", b"\xff", b""] {
            let why = plan_summary(bad).unwrap_err();
            assert!(!why.contains('\n') && why.starts_with("not a plan"), "{why}");
        }
    }
}
