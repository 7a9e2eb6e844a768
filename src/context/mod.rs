//! Where a step's results go: the GitLab API, project, commit, pipeline and merge request, read
//! from GitLab's predefined variables with `HERALD_*` overrides (docs/guide.md "Configuration",
//! gitlab.md §E). A pure function of the environment, like `config`.
//!
//! When publishing can't or shouldn't happen, the result says why in one line, with the fix, or
//! says nothing when the user chose it (`HERALD_MODE=off`, local runs under the default mode).

use std::path::PathBuf;
use std::time::Duration;

use crate::duration::parse_duration;
use crate::env::{ConfigError, Env};
use crate::gitlab::Token;

/// `HERALD_MODE`: when herald publishes at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only in GitLab CI (`GITLAB_CI=true`). The default: a developer running a step locally
    /// publishes nothing by accident.
    CiOnly,
    /// Only outside GitLab CI, e.g. to report a local run against a real MR.
    LocalOnly,
    Always,
    Off,
}

impl Mode {
    /// Whether this mode publishes, in GitLab CI (`GITLAB_CI=true`) or outside it.
    fn publishes(self, in_ci: bool) -> bool {
        match self {
            Mode::Off => false,
            Mode::CiOnly => in_ci,
            Mode::LocalOnly => !in_ci,
            Mode::Always => true,
        }
    }

    fn parse(text: &str) -> Result<Mode, ConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "ci-only" => Ok(Mode::CiOnly),
            "local-only" => Ok(Mode::LocalOnly),
            "always" => Ok(Mode::Always),
            "off" => Ok(Mode::Off),
            other => Err(ConfigError::new(format!(
                "HERALD_MODE must be one of ci-only, local-only, always, off (it is '{other}')"
            ))),
        }
    }
}

/// Everything needed to publish a step's status.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishContext {
    /// API root without a trailing slash, e.g. `https://gitlab.example.com/api/v4`.
    pub api_url: String,
    pub token: Token,
    /// The variable the token came from (HERALD_TOKEN unless HERALD_TOKEN_VARIABLE says), for
    /// messages that tell the user which variable to fix.
    pub token_variable: String,
    /// Numeric id or `group/project` path, as configured; encoded when put into a URL.
    pub project: String,
    /// The commit statuses attach to: `CI_COMMIT_SHA`, which in merged-results pipelines is the
    /// temporary merge commit, the one the running pipeline belongs to (gitlab.md §E.3).
    pub sha: String,
    pub pipeline_id: Option<u64>,
    /// Sent as `ref` only in branch and tag pipelines. In merge-request pipelines
    /// `CI_COMMIT_REF_NAME` is the source branch, not the pipeline's ref, and sending it breaks
    /// GitLab's pipeline lookup (gitlab.md §E.3).
    pub status_ref: Option<String>,
    pub mr_iid: Option<u64>,
    /// `CI_MERGE_REQUEST_TARGET_BRANCH_NAME`: the branch the merge request merges into, whose
    /// pipelines the note compares this one with (publish/baseline.rs). None outside MR pipelines.
    pub target_branch: Option<String>,
    /// `CI_MERGE_REQUEST_DIFF_BASE_SHA`: the target-branch commit the MR's diff starts from.
    pub diff_base_sha: Option<String>,
    pub job_name: String,
    /// `CI_JOB_URL`, the statuses' `target_url`, when it fits GitLab's rules (http/https, ≤ 255).
    pub job_url: Option<String>,
    pub status_prefix: String,
    pub ca_file: Option<PathBuf>,
    pub flush_timeout: Duration,
    /// `HERALD_MIN_UPDATE_INTERVAL`: no live (non-final) note write while the note is younger.
    pub min_update_interval: Duration,
    /// `HERALD_DRY_RUN`: print requests instead of sending them.
    pub dry_run: bool,
    /// The checkout (`CI_PROJECT_DIR`) and its configuration file (`CI_CONFIG_PATH`), for task
    /// names and planned steps; None outside a checkout.
    pub config: Option<ConfigLocation>,
    /// `CI_JOB_ID`: the key of the per-job cache of the parsed configuration.
    pub job_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConfigLocation {
    pub project_dir: PathBuf,
    pub config_path: String,
}

/// The outcome of resolving the context.
#[derive(Debug, Clone, PartialEq)]
pub enum Publishing {
    On(Box<PublishContext>),
    /// Not publishing; the line to print, if the user should hear about it.
    Off(Option<String>),
}

pub const DEFAULT_API_URL: &str = "https://gitlab.com/api/v4";
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_MIN_UPDATE_INTERVAL: Duration = Duration::from_secs(20);

/// The secrets to mask in whatever herald publishes or prints: the secret variables among `vars`
/// and the token of the token file (`HERALD_TOKEN_FILE`), which is in no variable. A file that
/// is refused holds no token herald uses; its refusal never quotes it.
pub fn secrets(vars: &[(String, String)], token_file: Option<&std::ffi::OsStr>) -> crate::redact::Secrets {
    let mut vars = vars.to_vec();
    if let Some(token) = token_file.and_then(|path| Token::from_file(std::path::Path::new(path)).ok()) {
        vars.push(("HERALD_TOKEN".to_owned(), token.secret().to_owned()));
    }
    crate::redact::Secrets::from_vars(&vars)
}

/// Where a step's results go, from the environment: `On` with everything publishing needs, or
/// `Off` with the line to print (None when the user chose silence). An error is a setting that is
/// wrong, whatever the mode.
pub fn resolve(env: &dyn Env) -> Result<Publishing, ConfigError> {
    let text = |key: &str| env.non_empty(key).map(|v| v.to_string_lossy().trim().to_owned());
    let first = |keys: &[&str]| keys.iter().find_map(|key| text(key));

    let settings = Settings::read(env)?;
    if !settings.mode.publishes(settings.in_ci) {
        // Silent, as the user chose; but a dry run was asked to show something, so it says why not.
        let why = settings.dry_run.then(|| {
            let also = if settings.in_ci { "" } else { "; add GITLAB_CI=true to see what a CI job would publish" };
            format!(
                "herald (dry run): nothing would be published: {}{also}",
                mode_reason(settings.mode, env, settings.in_ci)
            )
        });
        return Ok(Publishing::Off(why));
    }

    let token_variable = token_variable(env)?;
    let dry_run = settings.dry_run;
    let token = match publishing_token(env, &token_variable, dry_run) {
        Ok(token) => token,
        Err(off) => return Ok(off),
    };
    // A dry run sends nothing, so it needs no real project or commit: off GitLab (a laptop's
    // `GITLAB_CI=true HERALD_DRY_RUN=1 herald run -- …`) the variables' names stand in for them.
    let Some(project) = first(&["HERALD_PROJECT", "CI_PROJECT_ID", "CI_PROJECT_PATH"])
        .or_else(|| dry_run.then(|| "CI_PROJECT_ID".into()))
    else {
        return Ok(off("no project to publish to; set HERALD_PROJECT (id or group/project), or run in GitLab CI"));
    };
    let Some(sha) = first(&["HERALD_SHA", "CI_COMMIT_SHA"]).or_else(|| dry_run.then(|| "CI_COMMIT_SHA".into())) else {
        return Ok(off("no commit to attach statuses to; set HERALD_SHA, or run in GitLab CI"));
    };
    let api_url = match api_url(env) {
        Ok(api_url) => api_url,
        Err(off) => return Ok(off),
    };

    let merge_request_pipeline =
        text("CI_PIPELINE_SOURCE").as_deref() == Some("merge_request_event") || text("CI_MERGE_REQUEST_IID").is_some();
    Ok(Publishing::On(Box::new(PublishContext {
        api_url,
        token,
        token_variable,
        project,
        sha,
        pipeline_id: settings.pipeline_id,
        status_ref: if merge_request_pipeline { None } else { first(&["CI_COMMIT_TAG", "CI_COMMIT_BRANCH"]) },
        // The note is drawn from GitLab's state (the pipeline's jobs, herald's statuses), which a
        // dry run does not read: it would render from nothing and fail. A dry run shows statuses.
        mr_iid: settings.mr_iid.filter(|_| !dry_run),
        target_branch: text("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"),
        diff_base_sha: text("CI_MERGE_REQUEST_DIFF_BASE_SHA"),
        job_name: first(&["HERALD_JOB_NAME", "CI_JOB_NAME"]).unwrap_or_else(|| "herald".to_owned()),
        job_url: text("CI_JOB_URL")
            .filter(|url| url.len() <= 255 && (url.starts_with("https://") || url.starts_with("http://"))),
        status_prefix: text("HERALD_STATUS_PREFIX").unwrap_or_else(|| "herald".to_owned()),
        ca_file: first(&["HERALD_CA_FILE", "CI_SERVER_TLS_CA_FILE"]).map(PathBuf::from),
        flush_timeout: settings.flush_timeout,
        min_update_interval: settings.min_update_interval,
        dry_run,
        config: text("CI_PROJECT_DIR").map(|dir| ConfigLocation {
            project_dir: PathBuf::from(dir),
            config_path: text("CI_CONFIG_PATH").unwrap_or_else(|| ".gitlab-ci.yml".to_owned()),
        }),
        job_id: text("CI_JOB_ID"),
    })))
}

/// The settings that are an error when they are wrong, whether or not herald publishes: read
/// first, so that a mistake is said even where the mode keeps herald quiet.
struct Settings {
    mode: Mode,
    in_ci: bool,
    flush_timeout: Duration,
    min_update_interval: Duration,
    pipeline_id: Option<u64>,
    mr_iid: Option<u64>,
    dry_run: bool,
}

impl Settings {
    fn read(env: &dyn Env) -> Result<Settings, ConfigError> {
        let text = |key: &str| env.non_empty(key).map(|v| v.to_string_lossy().trim().to_owned());
        let first = |keys: &[&str]| keys.iter().find_map(|key| text(key));

        let mode = Mode::parse(&text("HERALD_MODE").unwrap_or_default())?;
        let in_ci = text("GITLAB_CI").as_deref() == Some("true");
        let duration = |key: &str, default: Duration| match text(key) {
            Some(value) => parse_duration(&value).map_err(|e| ConfigError::new(format!("{key}: {e}"))),
            None => Ok(default),
        };
        let flush_timeout = duration("HERALD_FLUSH_TIMEOUT", DEFAULT_FLUSH_TIMEOUT)?;
        let min_update_interval = duration("HERALD_MIN_UPDATE_INTERVAL", DEFAULT_MIN_UPDATE_INTERVAL)?;
        let pipeline_id = match first(&["HERALD_PIPELINE_ID", "CI_PIPELINE_ID"]) {
            Some(id) => {
                Some(id.parse::<u64>().map_err(|_| ConfigError::new(format!("pipeline id '{id}' is not a number")))?)
            }
            None => None,
        };
        let mr_iid = match first(&["HERALD_MR_IID", "CI_MERGE_REQUEST_IID"]) {
            Some(iid) => Some(
                iid.parse::<u64>()
                    .map_err(|_| ConfigError::new(format!("merge request IID '{iid}' is not a number")))?,
            ),
            None => text("CI_OPEN_MERGE_REQUESTS").and_then(|open| {
                let project_path = first(&["HERALD_PROJECT", "CI_PROJECT_PATH"])?;
                open_merge_request_of(&open, &project_path)
            }),
        };
        let dry_run = text("HERALD_DRY_RUN")
            .is_some_and(|v| !matches!(v.to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off"));
        Ok(Settings { mode, in_ci, flush_timeout, min_update_interval, pipeline_id, mr_iid, dry_run })
    }
}

/// The token publishing uses, or publishing off with the line that says why there is none it can
/// use: none given (a dry run makes do without), a token file refused, or a CI job token.
fn publishing_token(env: &dyn Env, token_variable: &str, dry_run: bool) -> Result<Token, Publishing> {
    let token = match held_token(env, token_variable) {
        Some(Ok(token)) => token,
        Some(Err(why)) => return Err(off(&why)),
        None if dry_run => Token::new("dry-run-token"),
        None => {
            return Err(off(&format!(
                "{token_variable} is not set; add a project access token with the api scope as a masked CI/CD \
                 variable named {token_variable} (CI_JOB_TOKEN cannot post statuses); locally, export \
                 {token_variable} with such a token; or set HERALD_MODE=off"
            )))
        }
    };
    if token.is_job_token() {
        return Err(off(&format!(
            "{token_variable} holds a CI job token, which GitLab refuses for statuses and notes; use a project \
             access token with the api scope"
        )));
    }
    Ok(token)
}

/// The API root without a trailing slash, or publishing off with the line that says why the token
/// must not be sent to it (plain http to a remote host that is not trusted).
fn api_url(env: &dyn Env) -> Result<String, Publishing> {
    let text = |key: &str| env.non_empty(key).map(|v| v.to_string_lossy().trim().to_owned());
    let api_url = text("HERALD_API_URL")
        .or_else(|| text("CI_API_V4_URL"))
        .unwrap_or_else(|| DEFAULT_API_URL.to_owned())
        .trim_end_matches('/')
        .to_owned();
    if let Some(host) = refused_plain_http(env, &api_url) {
        return Err(off(&format!(
            "the API URL is plain http:// to {host}: the token would cross the network (and any proxy) in clear; \
             use https://, or set HERALD_ALLOW_HTTP=1 if that network is trusted"
        )));
    }
    Ok(api_url)
}

/// Why `HERALD_MODE` keeps herald from publishing here, in words (`resolve` is silent about it:
/// the user chose it); None when the mode lets herald publish (or is not a mode at all), and
/// anything that then stops publishing is `resolve`'s `Off(Some(why))`. For the commands that
/// exist only to publish (`herald note`, `finalize`) and for `herald doctor`: a command that does
/// nothing says why.
pub fn mode_keeps_quiet(env: &dyn Env) -> Option<String> {
    let text = env.non_empty("HERALD_MODE").map(|v| v.to_string_lossy().trim().to_owned()).unwrap_or_default();
    let mode = Mode::parse(&text).ok()?;
    let in_ci = env.non_empty("GITLAB_CI").is_some_and(|v| v.to_string_lossy().trim() == "true");
    (!mode.publishes(in_ci)).then(|| mode_reason(mode, env, in_ci))
}

fn mode_reason(mode: Mode, env: &dyn Env, in_ci: bool) -> String {
    let default = env.non_empty("HERALD_MODE").is_none();
    match mode {
        Mode::Off => "HERALD_MODE is off".to_owned(),
        Mode::CiOnly => format!(
            "outside GitLab CI (GITLAB_CI is not true), and HERALD_MODE is ci-only{}",
            if default { " (the default)" } else { "" }
        ),
        Mode::LocalOnly if in_ci => "HERALD_MODE is local-only, and this is GitLab CI".to_owned(),
        Mode::LocalOnly | Mode::Always => "publishing is on".to_owned(),
    }
}

/// The environment with publishing forced on (and requests really sent): for commands that check
/// or read what `herald run` would use, wherever they run (`herald doctor`, `herald tasks`).
pub struct AsIfPublishing<'e>(pub &'e dyn Env);

impl Env for AsIfPublishing<'_> {
    fn get(&self, key: &str) -> Option<std::ffi::OsString> {
        match key {
            "HERALD_MODE" => Some("always".into()),
            "HERALD_DRY_RUN" => None,
            _ => self.0.get(key),
        }
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.0.vars()
    }
}

/// The name of the variable that holds the token: `HERALD_TOKEN`, unless `HERALD_TOKEN_VARIABLE`
/// names another (the CI templates' `token_variable` input), so that a project can keep the token
/// it already has under its own name without copying it into a second variable.
pub fn token_variable(env: &dyn Env) -> Result<String, ConfigError> {
    let Some(name) = env.non_empty("HERALD_TOKEN_VARIABLE").map(|v| v.to_string_lossy().trim().to_owned()) else {
        return Ok("HERALD_TOKEN".to_owned());
    };
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ConfigError::new(format!("HERALD_TOKEN_VARIABLE must be a variable name (it is '{name}')")));
    }
    Ok(name)
}

/// The token, when one is given: from `HERALD_TOKEN_FILE` when that is set (a file kept out of
/// every environment, read once), else from the token variable. An error is the line that says
/// why the file is refused (`Token::from_file`'s): callers only print it or drop it, so it stays
/// a string.
pub fn held_token(env: &dyn Env, token_variable: &str) -> Option<Result<Token, String>> {
    if let Some(path) = env.non_empty("HERALD_TOKEN_FILE") {
        return Some(Token::from_file(std::path::Path::new(&path)));
    }
    let secret = env.non_empty(token_variable)?;
    Some(Ok(Token::new(&secret.to_string_lossy())))
}

/// The API and token alone, for reading (includes of `herald tasks`), when a token is set.
pub fn api_access(env: &dyn Env) -> Option<(String, Token, Option<PathBuf>)> {
    let text = |key: &str| env.non_empty(key).map(|v| v.to_string_lossy().trim().to_owned());
    let token = held_token(env, &token_variable(env).ok()?)?.ok()?;
    let api_url =
        text("HERALD_API_URL").or_else(|| text("CI_API_V4_URL")).unwrap_or_else(|| DEFAULT_API_URL.to_owned());
    let ca_file = text("HERALD_CA_FILE").or_else(|| text("CI_SERVER_TLS_CA_FILE")).map(PathBuf::from);
    if refused_plain_http(env, &api_url).is_some() {
        return None; // the token is not sent in clear over a network
    }
    Some((api_url.trim_end_matches('/').to_owned(), token, ca_file))
}

/// The remote host of a plain `http://` API URL, unless `HERALD_ALLOW_HTTP=1` says that network is
/// trusted: the token must not cross it in clear.
fn refused_plain_http(env: &dyn Env, api_url: &str) -> Option<String> {
    let allowed = env.non_empty("HERALD_ALLOW_HTTP").is_some_and(|v| v.to_string_lossy().trim() == "1");
    plain_http_host(api_url).filter(|_| !allowed)
}

/// The host of a plain `http://` URL that is not this machine (loopback is never on a network).
fn plain_http_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = if authority.starts_with('[') {
        authority.split(']').next().map_or(authority, |h| &authority[..h.len() + 1])
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    let loopback = host.eq_ignore_ascii_case("localhost") || host.starts_with("127.") || host == "[::1]";
    (!loopback).then(|| host.to_owned())
}

fn off(why: &str) -> Publishing {
    Publishing::Off(Some(format!("herald: not publishing: {why}")))
}

/// The IID of this project's MR in `CI_OPEN_MERGE_REQUESTS` (`group/proj!12,fork/proj!3`).
fn open_merge_request_of(open: &str, project_path: &str) -> Option<u64> {
    open.split(',').find_map(|entry| {
        let (path, iid) = entry.trim().rsplit_once('!')?;
        (path == project_path).then(|| iid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests;
