//! `herald doctor`: can herald publish from here? One line per check (`ok`, `warn`, `FAIL`), each
//! failure with its fix; exits 1 when publishing would fail. Never prints the token.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::context::{self, AsIfPublishing, PublishContext, Publishing};
use std::os::unix::fs::MetadataExt;

use crate::env::{Env, ProcessEnv};
use crate::gitlab::{self, days_from_civil, ApiError};
use crate::output::say;
use crate::supervise::RunAs;

/// Most time each check may take, retries included (`gitlab::retry`).
const CHECK_TIME: Duration = Duration::from_secs(20);

/// One check's request, retried like every GitLab call; a check that ran out of time reads as
/// no answer.
fn ask<T>(request: impl FnMut(Duration) -> Result<T, ApiError>) -> Result<T, ApiError> {
    let deadline = std::time::Instant::now() + CHECK_TIME;
    crate::gitlab::retry::call(deadline, crate::gitlab::retry::sleep, request).map_err(|gave_up| {
        gave_up
            .into_api()
            .unwrap_or_else(|| ApiError::Transport { url: String::new(), reason: "no answer in time".into() })
    })
}

/// A proxy the environment sets for the API that does not accept connections: named by its
/// variable at once, rather than retried for the whole check and blamed on the API URL.
fn dead_proxy(api_url: &str) -> Option<String> {
    let (variable, proxy) = gitlab::proxy_for(api_url)?;
    let addresses = match std::net::ToSocketAddrs::to_socket_addrs(proxy.as_str()) {
        Ok(addresses) => addresses.collect::<Vec<_>>(),
        Err(error) => {
            return Some(format!("the proxy {proxy} (from {variable}) does not resolve: {error}; fix {variable}"))
        }
    };
    let mut last_error = None;
    for address in addresses {
        match std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5)) {
            Ok(_) => return None,
            Err(error) => last_error = Some(error),
        }
    }
    let why = last_error.map_or_else(|| "no address".to_owned(), |error| error.to_string());
    Some(format!(
        "the proxy {proxy} (from {variable}) does not accept connections ({why}); fix {variable}, or add the \
         GitLab host to NO_PROXY"
    ))
}

/// Warn when the token expires within this many days.
const EXPIRY_WARNING_DAYS: i64 = 7;

#[derive(Default)]
struct Checks {
    failed: bool,
}

impl Checks {
    fn ok(&mut self, what: &str, detail: &str) {
        say(&format!("ok   {what}: {detail}"));
    }
    fn warn(&mut self, what: &str, detail: &str) {
        say(&format!("warn {what}: {detail}"));
    }
    fn fail(&mut self, what: &str, detail: &str) {
        self.failed = true;
        say(&format!("FAIL {what}: {detail}"));
    }
}

pub fn run() -> i32 {
    let mut checks = Checks::default();
    // Each check that fails so that nothing after it can be checked ends the list (None).
    let _ = check_in_order(&mut checks);
    exit_code(&checks)
}

/// The checks, in the order a user fixes them: settings, the token, the way to GitLab, what
/// GitLab says of the token, then where herald publishes.
fn check_in_order(checks: &mut Checks) -> Option<()> {
    mode(checks);
    token_file_and_executor_user(checks).then_some(())?;
    let context = publishing_context(checks)?;
    ca_file(checks, &context);
    let client = reachable_client(checks, &context)?;
    token_user(checks, &client, &context)?;
    token_scopes_and_expiry(checks, &client, &context.token_variable);
    role(checks, &client, &context);
    match context.mr_iid {
        Some(iid) => checks.ok("merge request", &format!("!{iid}")),
        None => checks.warn(
            "merge request",
            "none in this pipeline; statuses are still posted (set HERALD_MR_IID to report a local run to an MR)",
        ),
    }
    finding_threads(checks, &client, &context);
    Some(())
}

/// Whether `herald run` publishes here as things are, and when not, whether the mode is why.
fn mode(checks: &mut Checks) {
    match context::resolve(&ProcessEnv) {
        Err(error) => checks.fail("configuration", &error.to_string()),
        Ok(Publishing::On(_)) => checks.ok("mode", "herald run publishes here"),
        // The mode is the reason only when it is: otherwise what is missing is named once, by the
        // context check below.
        Ok(Publishing::Off(_)) => match context::mode_keeps_quiet(&ProcessEnv) {
            Some(why) => {
                let fix =
                    if why.starts_with("outside GitLab CI") { "; HERALD_MODE=always publishes from here" } else { "" };
                checks.warn("mode", &format!("herald run will not publish here: {why}{fix}"))
            }
            None => checks.ok("mode", "HERALD_MODE lets herald run publish here (once the context check passes)"),
        },
    }
}

/// Where `herald run` would publish if the mode let it, and which token it holds; None when
/// something it needs is missing (said) or the configuration is wrong (said by `mode`).
fn publishing_context(checks: &mut Checks) -> Option<Box<PublishContext>> {
    let context = match context::resolve(&AsIfPublishing(&ProcessEnv)) {
        Ok(Publishing::On(context)) => context,
        Ok(Publishing::Off(why)) => {
            let why = why.unwrap_or_default();
            checks.fail("context", why.trim_start_matches("herald: not publishing: "));
            return None;
        }
        Err(_) => return None, // already reported by `mode`
    };
    match std::env::var_os("HERALD_TOKEN_FILE").filter(|path| !path.is_empty()) {
        Some(_) => checks.ok("token", "read from HERALD_TOKEN_FILE"),
        None => checks.ok("token", &format!("{} is set", context.token_variable)),
    }
    Some(context)
}

fn ca_file(checks: &mut Checks, context: &PublishContext) {
    match &context.ca_file {
        None => checks.ok("ca file", "none set; using Mozilla's root certificates"),
        Some(path) => match gitlab::count_certificates(path) {
            Ok(0) => checks.fail("ca file", &format!("{} holds no PEM certificate", path.display())),
            Ok(n) => checks.ok("ca file", &format!("{n} certificate(s) from {}", path.display())),
            Err(why) => checks.fail("ca file", &why),
        },
    }
}

/// A client that really sends (doctor asks GitLab for real, whatever HERALD_DRY_RUN says: that is
/// what it is for), once any proxy on the way accepts connections.
fn reachable_client(checks: &mut Checks, context: &PublishContext) -> Option<gitlab::Client> {
    let live = PublishContext { dry_run: false, ..context.clone() };
    let client = match crate::publish::client(&live) {
        Ok(client) => client,
        Err(why) => {
            checks.fail("api", &why);
            return None;
        }
    };
    if let Some(problem) = dead_proxy(&context.api_url) {
        checks.fail("api", &problem);
        return None;
    }
    Some(client)
}

/// Whether the API answers, and whose the token is; None when either fails (nothing more can be
/// asked).
fn token_user(checks: &mut Checks, client: &gitlab::Client, context: &PublishContext) -> Option<()> {
    let token_variable = &context.token_variable;
    match ask(|timeout| gitlab::current_user(client, timeout)) {
        Err(ApiError::Transport { reason, .. }) => {
            let through = gitlab::proxy_for(&context.api_url)
                .map(|(variable, proxy)| format!(" through the proxy {proxy} (from {variable})"))
                .unwrap_or_default();
            checks.fail(
                "api",
                &format!(
                    "{} does not answer{through}: {reason}; check HERALD_API_URL / CI_API_V4_URL",
                    context.api_url
                ),
            );
            None
        }
        Err(ApiError::Http { status: 401, message, .. }) => {
            checks.ok("api", &format!("{} answers", context.api_url));
            let cause = if message.contains("expired") {
                "the token has expired: create a new one (or rotate it before it expires)"
            } else if message.contains("revoked") {
                "the token was revoked: create a new one"
            } else {
                &format!("GitLab does not know this token: check the {token_variable} variable (and that it is not a CI job token)")
            };
            checks.fail("user", &format!("GitLab rejected the token (401: {message}); {cause}"));
            None
        }
        Err(error) => {
            checks.fail("api", &error.to_string());
            None
        }
        Ok(user) => {
            checks.ok("api", &format!("{} answers", context.api_url));
            let kind = if user.bot { " (project or group access token)" } else { "" };
            checks.ok("user", &format!("@{}{kind}", user.username));
            Some(())
        }
    }
}

/// The token's scopes, whether it is active, and when it expires (a warning a week before).
fn token_scopes_and_expiry(checks: &mut Checks, client: &gitlab::Client, token_variable: &str) {
    let info = match ask(|timeout| gitlab::token_info(client, timeout)) {
        Ok(info) => info,
        Err(ApiError::Http { status: 400, .. }) => {
            return checks.warn("scopes", "not checkable: not a personal, project or group access token")
        }
        Err(error) => return checks.warn("scopes", &format!("not checkable: {error}")),
    };
    if info.scopes.iter().any(|s| s == "api") {
        checks.ok("scopes", &info.scopes.join(", "));
    } else {
        checks.fail(
            "scopes",
            &format!(
                "{}; herald needs api to post statuses and notes: create a token with the api scope",
                info.scopes.join(", ")
            ),
        );
    }
    if !info.active || info.revoked {
        checks.fail("token", "inactive or revoked: create a new one");
    }
    match info.expires_at.as_deref().map(days_until) {
        None => checks.ok("expiry", "never expires"),
        Some(None) => checks.warn("expiry", "unreadable expiry date"),
        Some(Some(days)) if days < 0 => checks.fail("expiry", "the token has expired: create a new one"),
        Some(Some(days)) if days <= EXPIRY_WARNING_DAYS => checks.warn(
            "expiry",
            &format!(
                "expires {} (in {days} day(s)); rotate it and update {token_variable} before then",
                info.expires_at.unwrap_or_default()
            ),
        ),
        Some(Some(days)) => checks.ok("expiry", &format!("in {days} days")),
    }
}

/// The token user's role on the project: Developer posts statuses, the note and finding threads.
fn role(checks: &mut Checks, client: &gitlab::Client, context: &PublishContext) {
    match ask(|timeout| gitlab::project(client, &context.project, timeout)) {
        Ok(project) => match project.access_level() {
            Some(level) if level >= 30 => {
                let role = gitlab::role_name(level);
                let protected = if level < 40 { "; posting to protected branches needs Maintainer" } else { "" };
                // Developer also covers finding threads: starting them, and resolving fixed ones.
                checks.ok(
                    "role",
                    &format!("{role} on {} (statuses, the note, finding threads){protected}", project.path_with_namespace),
                )
            }
            Some(level) => checks.fail(
                "role",
                &format!(
                    "{} on {}; commit statuses and resolving finding threads need Developer or higher: raise the token's role",
                    gitlab::role_name(level),
                    project.path_with_namespace
                ),
            ),
            None => checks.fail(
                "role",
                &format!("not a member of {}; add the token's user as Developer", project.path_with_namespace),
            ),
        },
        Err(ApiError::Http { status: 404, .. }) => checks.fail(
            "project",
            &format!(
                "{} not found, or not visible to the token's user; check HERALD_PROJECT / CI_PROJECT_ID",
                context.project
            ),
        ),
        Err(error) => checks.fail("project", &error.to_string()),
    }
}

/// The token file's mode and owner (`HERALD_TOKEN_FILE`) and the executor's stage user
/// (`HERALD_EXECUTOR_USER`), each only when set. False when the token file is refused: nothing
/// after it can be checked.
fn token_file_and_executor_user(checks: &mut Checks) -> bool {
    let mut usable = true;
    if let Some(path) = ProcessEnv.non_empty("HERALD_TOKEN_FILE") {
        let path = std::path::Path::new(&path);
        match crate::gitlab::Token::from_file(path) {
            Ok(_) => {
                let meta = std::fs::symlink_metadata(path);
                let (mode, owner) = meta.map(|m| (m.mode() & 0o7777, m.uid())).unwrap_or_default();
                checks.ok(
                    "token file",
                    &format!("{} (mode {mode:04o}, owned by uid {owner}, herald's user)", path.display()),
                );
            }
            Err(why) => {
                checks.fail("token file", &why);
                usable = false;
            }
        }
    }
    if let Some(spec) = ProcessEnv.non_empty("HERALD_EXECUTOR_USER") {
        let (own_uid, _) = crate::supervise::own_ids();
        match RunAs::resolve(&spec.to_string_lossy()) {
            Err(why) => checks.fail("executor user", &format!("HERALD_EXECUTOR_USER: {why}")),
            Ok(user) if user.uid == own_uid => checks.fail(
                "executor user",
                &format!(
                    "{} is herald's own user: stages would run as the token's holder; set HERALD_EXECUTOR_USER to \
                     another user",
                    user.describe()
                ),
            ),
            Ok(user) if own_uid != 0 => checks.fail(
                "executor user",
                &format!(
                    "running stages as {} needs herald to run as root (it runs as uid {own_uid})",
                    user.describe()
                ),
            ),
            Ok(user) => {
                checks.ok("executor user", &format!("stages run as {}, not as the token's holder", user.describe()))
            }
        }
    }
    usable
}

/// What `herald findings` and `run --findings` need on the merge request: reading its threads
/// (to find herald's own), starting threads, and resolving fixed ones, which takes Developer or
/// higher (or being the MR's author, gitlab.md §B.6), whatever statuses need.
fn finding_threads(checks: &mut Checks, client: &gitlab::Client, context: &PublishContext) {
    let Some(iid) = context.mr_iid else { return };
    if let Err(error) = ask(|timeout| gitlab::list_discussions(client, &context.project, iid, timeout)) {
        checks.fail("finding threads", &format!("cannot read the threads of !{iid}: {error}"));
        return;
    }
    let level = ask(|timeout| gitlab::project(client, &context.project, timeout)).ok().and_then(|p| p.access_level());
    match level {
        Some(level) if level >= 30 => checks.ok(
            "finding threads",
            &format!("!{iid}'s threads readable; as {} herald starts them and resolves fixed ones", gitlab::role_name(level)),
        ),
        Some(level) => checks.fail(
            "finding threads",
            &format!(
                "as {} herald can start threads on !{iid} but not resolve fixed ones (Developer or higher): raise the token's role",
                gitlab::role_name(level)
            ),
        ),
        None => checks.fail("finding threads", "the token's role on the project is unknown: add its user as Developer"),
    }
}

fn exit_code(checks: &Checks) -> i32 {
    i32::from(checks.failed)
}

/// Days from today (UTC) until `date` (`YYYY-MM-DD`).
fn days_until(date: &str) -> Option<i64> {
    let mut parts = date.get(..10)?.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (parts.next()??, parts.next()??, parts.next()??);
    let today = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs() as i64 / 86_400;
    Some(days_from_civil(year, month, day) - today)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_until_reads_dates() {
        assert_eq!(days_until("not a date"), None);
        assert_eq!(days_until("1970-01-02"), days_until("1970-01-01").map(|d| d + 1));
    }
}
