//! Settings resolved from flags and the environment. `resolve` is a pure function of the two, so
//! every rule here is tested without spawning anything. CI variables are how GitLab users
//! configure things, so the environment comes first; flags exist where a per-step choice makes sense.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::context::{self, Publishing};
use crate::env::{ConfigError, Env};
use crate::report::excerpt::Secrets;
use crate::step::StepName;
use crate::supervise::Limits;

/// What a caller asks `herald run` for (the flags, or the executor driver's stage): plain data,
/// resolved into `RunSettings` with the environment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunRequest {
    /// `--name`, any bytes (shown lossily).
    pub name: Option<OsString>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--grace`.
    pub grace: Option<Duration>,
    /// The command and its arguments.
    pub command: Vec<OsString>,
    /// `--findings`: linter reports to publish on the merge request's changed lines once the step
    /// has ended, whatever its exit code.
    pub findings: Vec<PathBuf>,
}

/// Everything `herald run` needs to know, decided before the step starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub command: Vec<OsString>,
    pub step: StepName,
    /// Whether the step was named with `--name` (a job's single unnamed step is named after it).
    pub named: bool,
    pub limits: Limits,
    /// `GITLAB_CI=true`: decorate the job log (sections, summary line).
    pub in_gitlab_ci: bool,
    /// `HERALD_JUNIT`: the JUnit report each step appends to.
    pub junit: Option<PathBuf>,
    /// `HERALD_JOB_NAME`, else `CI_JOB_NAME`: groups this job's steps in reports.
    pub job_name: String,
    /// Whether and where the step's status is published.
    pub publishing: Publishing,
    /// `HERALD_FAILURE_TAIL`: how many of a failed step's last output lines to publish.
    pub failure_tail: Option<usize>,
    /// The secret values of the environment: masked in the step's name, in its job-log section's
    /// name, in the failure excerpt and in the step's summary (report/summary.rs).
    pub secrets: Secrets,
    /// Linter reports to publish as threads after the step (`--findings`).
    pub findings: Vec<PathBuf>,
    /// Where relative paths in those reports start: the checkout (`CI_PROJECT_DIR`, else here).
    pub project_dir: PathBuf,
    /// The job set `GITHUB_STEP_SUMMARY` itself: left as it is (report/summary.rs).
    pub github_summary_set: bool,
    /// Show the step's summary in the job log (`GITLAB_CI=true`; the executor driver's stages
    /// too, whose job log the runner frames itself).
    pub summary_to_log: bool,
}

/// Most lines `HERALD_FAILURE_TAIL` may ask for.
const MOST_TAIL_LINES: usize = 1000;

impl RunSettings {
    pub fn resolve(args: RunRequest, env: &dyn Env) -> Result<RunSettings, ConfigError> {
        if args.command.first().is_none_or(|program| program.is_empty()) {
            return Err(ConfigError::new("missing command: write it after '--', e.g. herald run -- cargo test"));
        }
        let named = args.name.is_some();
        let name = args.name.as_ref().map(|name| name.to_string_lossy());
        // The secrets in the environment (the token's variable among them) are masked in the
        // step's name before anything shows it: status, note, job log, JUnit (`herald run --
        // deploy $TOKEN` names the step after its words). Masked before the name is cut. A token
        // from HERALD_TOKEN_FILE is in no variable: masked all the same.
        let publishing = context::resolve(env)?;
        let secrets = context::secrets(&env.vars(), env.non_empty("HERALD_TOKEN_FILE").as_deref());
        let step = match name.as_deref().map(str::trim) {
            Some("") => return Err(ConfigError::new("--name must not be empty")),
            Some(name) => StepName::new(&secrets.mask(name)),
            None => StepName::new(&secrets.mask(StepName::from_command(&args.command).as_str())),
        };
        if args.timeout == Some(Duration::ZERO) {
            return Err(ConfigError::new("--timeout must be more than 0"));
        }
        let job_name = env
            .non_empty("HERALD_JOB_NAME")
            .or_else(|| env.non_empty("CI_JOB_NAME"))
            .map_or_else(|| "herald".to_owned(), |name| name.to_string_lossy().into_owned());
        let failure_tail = match env.non_empty("HERALD_FAILURE_TAIL") {
            None => None,
            Some(value) => match value.to_string_lossy().trim().parse::<usize>() {
                Ok(0) => None,
                Ok(lines) if lines <= MOST_TAIL_LINES => Some(lines),
                _ => {
                    return Err(ConfigError::new(format!(
                        "HERALD_FAILURE_TAIL must be a number of lines from 0 to {MOST_TAIL_LINES} (it is '{}')",
                        value.to_string_lossy()
                    )))
                }
            },
        };
        Ok(RunSettings {
            command: args.command,
            step,
            named,
            limits: Limits { timeout: args.timeout, grace: args.grace.unwrap_or(Limits::DEFAULT_GRACE) },
            in_gitlab_ci: env.get("GITLAB_CI").as_deref() == Some(OsStr::new("true")),
            summary_to_log: env.get("GITLAB_CI").as_deref() == Some(OsStr::new("true")),
            github_summary_set: env.non_empty("GITHUB_STEP_SUMMARY").is_some(),
            junit: env.non_empty("HERALD_JUNIT").map(PathBuf::from),
            job_name,
            publishing,
            failure_tail,
            findings: args.findings,
            project_dir: env.non_empty("CI_PROJECT_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from),
            secrets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn args(command: &[&str]) -> RunRequest {
        RunRequest { command: command.iter().map(OsString::from).collect(), ..RunRequest::default() }
    }

    fn env(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv::of(pairs)
    }

    #[test]
    fn defaults_outside_ci() {
        let settings = RunSettings::resolve(args(&["cargo", "test", "--workspace"]), &env(&[])).unwrap();
        assert_eq!(settings.step.as_str(), "cargo test");
        assert_eq!(settings.limits, Limits { timeout: None, grace: Duration::from_secs(10) });
        assert!(!settings.in_gitlab_ci);
        assert_eq!(settings.junit, None);
        assert_eq!(settings.job_name, "herald");
    }

    #[test]
    fn reads_gitlab_variables_and_overrides() {
        let ci = env(&[("GITLAB_CI", "true"), ("CI_JOB_NAME", "test 1/3"), ("HERALD_JUNIT", "report.xml")]);
        let settings = RunSettings::resolve(args(&["true"]), &ci).unwrap();
        assert!(settings.in_gitlab_ci);
        assert_eq!(settings.junit, Some(PathBuf::from("report.xml")));
        assert_eq!(settings.job_name, "test 1/3");
        let overridden = env(&[("CI_JOB_NAME", "test"), ("HERALD_JOB_NAME", "local"), ("HERALD_JUNIT", " ")]);
        let settings = RunSettings::resolve(args(&["true"]), &overridden).unwrap();
        assert_eq!((settings.job_name.as_str(), settings.junit), ("local", None));
        assert!(!RunSettings::resolve(args(&["true"]), &env(&[("GITLAB_CI", "false")])).unwrap().in_gitlab_ci);
    }

    #[test]
    fn failure_tail_is_opt_in_and_secrets_are_always_collected() {
        let off = RunSettings::resolve(args(&["true"]), &env(&[("DEPLOY_TOKEN", "s3cr3t-value")])).unwrap();
        assert_eq!(off.failure_tail, None);
        // Step summaries are masked with them whether or not there is an excerpt.
        assert_eq!(off.secrets.mask("x s3cr3t-value"), "x [MASKED]");
        let on = RunSettings::resolve(
            args(&["true"]),
            &env(&[("HERALD_FAILURE_TAIL", "20"), ("DEPLOY_TOKEN", "s3cr3t-value")]),
        )
        .unwrap();
        assert_eq!(on.failure_tail, Some(20));
        assert_eq!(on.secrets.mask("x s3cr3t-value"), "x [MASKED]");
        for bad in ["-1", "lots", "5000"] {
            assert!(RunSettings::resolve(args(&["true"]), &env(&[("HERALD_FAILURE_TAIL", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_win_and_are_checked() {
        let mut flagged = args(&["make"]);
        flagged.name = Some("unit".into());
        flagged.timeout = Some(Duration::from_secs(60));
        flagged.grace = Some(Duration::from_secs(2));
        let settings = RunSettings::resolve(flagged, &env(&[])).unwrap();
        assert_eq!(settings.step.as_str(), "unit");
        assert_eq!(settings.limits, Limits { timeout: Some(Duration::from_secs(60)), grace: Duration::from_secs(2) });

        assert!(RunSettings::resolve(args(&[]), &env(&[])).unwrap_err().to_string().contains("missing command"));
        assert!(RunSettings::resolve(args(&[""]), &env(&[])).is_err());
        let mut unnamed = args(&["make"]);
        unnamed.name = Some("  ".into());
        assert!(RunSettings::resolve(unnamed, &env(&[])).is_err());
        let mut zero = args(&["make"]);
        zero.timeout = Some(Duration::ZERO);
        assert!(RunSettings::resolve(zero, &env(&[])).is_err());
    }
}
