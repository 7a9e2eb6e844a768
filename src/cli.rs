//! The command line: clap definitions (raw flags) and the dispatch to commands. Flags become
//! validated settings in `config`; this module only parses and maps errors to exit codes.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, FromArgMatches, Parser, Subcommand};

use crate::duration::parse_duration;

use crate::output::{Failure, Outcome};

const VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (", env!("HERALD_TARGET"), ", commit ", env!("HERALD_GIT_COMMIT"), ")");

/// Supervise GitLab CI job steps like an init process and publish what they do.
#[derive(Debug, Parser)]
#[command(name = "herald", version = VERSION, propagate_version = true, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one step under supervision; publish it; exit with the step's exit code
    Run(RunArgs),
    /// Re-render and publish the MR note now; --final first settles the statuses of ended jobs
    Note {
        /// First close herald statuses that ended jobs left running (for a `.post` job, `when: always`)
        #[arg(long = "final")]
        close_dangling: bool,
    },
    /// For after_script: settle this job's statuses from its steps' records and CI_JOB_STATUS
    Finalize,
    /// Print the pipeline's jobs with their include origin, task names and planned steps
    Tasks {
        /// text (a table) or json
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// The configuration file [default: CI_CONFIG_PATH in CI_PROJECT_DIR, else .gitlab-ci.yml]
        #[arg(long, value_name = "PATH")]
        file: Option<std::path::PathBuf>,
        /// A CI/CD variable for include rules and locations (repeatable); outside CI, overrides
        /// what herald assumes from the git checkout
        #[arg(long = "variable", value_name = "NAME=VALUE")]
        variables: Vec<String>,
    },
    /// Publish linters' findings (Code Quality JSON, SARIF) as threads on the merge request's changed lines
    Findings {
        /// codequality, sarif, or auto (by content)
        #[arg(long, value_name = "FORMAT", default_value = "auto", value_parser = ["auto", "codequality", "sarif"])]
        format: String,
        /// Exit 1 when a report cannot be read (by default: one line, exit 0)
        #[arg(long)]
        strict: bool,
        /// The reports
        #[arg(value_name = "FILE", required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Print a Terraform/OpenTofu plan (`terraform show -json` output) as Markdown for the step summary
    PlanSummary {
        /// The plan as JSON: `terraform show -json plan.tfplan > plan.json`
        #[arg(value_name = "PLAN_JSON")]
        plan: std::path::PathBuf,
    },
    /// Check token, scopes, expiry, project role, MR context, API reach, CA file; one line per check
    #[command(after_help = DOCTOR_AFTER_HELP)]
    Doctor,
    /// GitLab Runner custom-executor driver: every runner stage becomes a step
    #[command(subcommand, arg_required_else_help = true)]
    Executor(ExecutorCommand),
}

/// The runner calls these, in this order (`[runners.custom]` in config.toml; see docs/guide.md).
#[derive(Debug, Subcommand)]
enum ExecutorCommand {
    /// config_exec: print the driver's settings as JSON
    Config,
    /// prepare_exec: check that stages can run on this host
    Prepare,
    /// run_exec: run one stage script as a published step
    Run {
        /// The script the runner wrote for this stage
        script: std::path::PathBuf,
        /// The runner's stage name (get_sources, build_script, after_script, ...)
        stage: String,
    },
    /// cleanup_exec: close the job's open steps and settle the merge-request note
    Cleanup,
}

const DOCTOR_AFTER_HELP: &str = "\
Reads the same variables as `herald run` (HERALD_TOKEN, CI_API_V4_URL or HERALD_API_URL, CI_PROJECT_ID or
HERALD_PROJECT, HERALD_CA_FILE, ...). Exits 1 when publishing would fail, 0 otherwise (warnings included).";

#[derive(Debug, Args)]
#[command(after_help = RUN_AFTER_HELP)]
pub struct RunArgs {
    /// Name of the step in reports [default: a short form of the command, e.g. "cargo test"]
    // Any bytes: a name that is not UTF-8 must not stop the step from running (it is shown lossily).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(std::ffi::OsString))]
    pub name: Option<std::ffi::OsString>,

    /// Stop the step after this long (SIGTERM, grace, SIGKILL); it is reported as timed out
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Time between SIGTERM and SIGKILL when stopping the step or what it left behind [default: 10s]
    #[arg(long, value_name = "D", value_parser = parse_duration)]
    pub grace: Option<Duration>,

    /// A linter's report (Code Quality JSON or SARIF) to publish as threads on the merge
    /// request's changed lines once the step has ended, whatever its exit code (repeatable)
    #[arg(long, value_name = "FILE")]
    pub findings: Vec<std::path::PathBuf>,

    /// The command to run, after `--`
    #[arg(value_name = "CMD", trailing_var_arg = true, required = true)]
    pub command: Vec<OsString>,
}

impl From<RunArgs> for crate::config::RunRequest {
    fn from(args: RunArgs) -> crate::config::RunRequest {
        crate::config::RunRequest {
            name: args.name,
            timeout: args.timeout,
            grace: args.grace,
            command: args.command,
            findings: args.findings,
        }
    }
}

const RUN_AFTER_HELP: &str = "\
Durations: 90s, 5m, 1h30m; a plain number means seconds.

Exit code: the step's own; 128+N if it died of signal N; 125 if herald failed before the step
ran; 126 if the command is not executable; 127 if it was not found.

Environment (all of them: docs/guide.md, 'Configuration'):
  GITLAB_CI=true        wrap the step in a collapsible job-log section and end with a summary line
  HERALD_TOKEN          token with the api scope; publishes the step as a commit status
                        (HERALD_TOKEN_VARIABLE names another variable to read it from)
  HERALD_MODE           ci-only (default), local-only, always, off
  HERALD_FLUSH_TIMEOUT  most time spent publishing after the step ended [default: 10s]
  HERALD_DRY_RUN        print the requests instead of sending them (with GITLAB_CI=true: what a job
                        would publish, on any machine)
  HERALD_LOG            warn (default), info, debug or trace: what herald says about its own work
  HERALD_JUNIT          path of a JUnit XML report the step is appended to";

/// Parses the command line, runs the command, returns the process exit code.
pub fn main() -> i32 {
    crate::output::set_mask(mask_of_this_process());
    crate::output::exit_code(dispatch())
}

/// The masking of everything herald says (usage and configuration errors that quote a value, a
/// command that was not found, log lines): the secrets of its environment and the token of its
/// token file, as written and lower-cased. The environment is taken now (the executor soon takes
/// the token out of it); the file is read when first needed, so that `herald run` reads nothing
/// before its step starts.
fn mask_of_this_process() -> impl Fn(&str) -> String + Send + Sync {
    use crate::env::Env;
    let env = crate::env::ProcessEnv;
    let vars = env.vars();
    let token_file = env.non_empty("HERALD_TOKEN_FILE");
    let secrets = std::sync::OnceLock::new();
    move |line: &str| {
        let secrets = secrets.get_or_init(|| crate::context::secrets(&vars, token_file.as_deref()).with_lowercased());
        secrets.mask(line)
    }
}

/// The command line, as `Cli` defines it. `herald run`, which every script line runs, is first
/// parsed against its own arguments alone: clap builds every subcommand's definitions before it
/// parses, and on musl that churn of small allocations cost a tenth of a step's overhead
/// (docs/benchmarks.md, 2026-12-08). Anything but a plain success there (help, version, an
/// error) is parsed again whole, so what herald prints is the same.
fn parse(args: Vec<OsString>) -> Result<Cli, clap::Error> {
    match quick_parse_of_run(&args) {
        Some(run) => Ok(Cli { command: Command::Run(run) }),
        None => Cli::try_parse_from(args),
    }
}

/// `herald run …` parsed against `RunArgs` alone, when that succeeds.
fn quick_parse_of_run(args: &[OsString]) -> Option<RunArgs> {
    if args.get(1).is_none_or(|word| word != "run") {
        return None;
    }
    let run = RunArgs::augment_args(clap::Command::new("run").bin_name("herald run"));
    RunArgs::from_arg_matches(&run.try_get_matches_from(&args[1..]).ok()?).ok()
}

fn dispatch() -> Outcome {
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version: print them; a closed pipe (`herald --help | head -1`) is fine.
            let _ = error.print();
            return Ok(0);
        }
        Err(error) if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            // `herald` (or `herald executor`) alone: the help, which is what someone typing it
            // wants to see. Still a usage error, with herald's own code for those (125, as every
            // other usage error): a script whose command line lost its words (`herald $EMPTY`)
            // must not pass. On stderr, like every usage error, so stdout stays the step's.
            let _ = error.print();
            return Ok(crate::output::EXIT_HERALD_FAILED);
        }
        Err(error) => {
            return Err(Failure::setup(format!(
                "herald: {} (see 'herald --help')",
                first_paragraph(&error.to_string())
            )));
        }
    };
    if let Some(filter) = std::env::var_os("HERALD_LOG") {
        match crate::log::Level::parse(&filter.to_string_lossy()) {
            Some(level) => crate::log::set_level(level),
            None => {
                return Err(Failure::setup(format!(
                    "herald: HERALD_LOG must be one of error, warn, info, debug, trace (it is '{}')",
                    filter.to_string_lossy()
                )));
            }
        }
    }
    match cli.command {
        Command::Run(args) => crate::commands::run::run(args.into()),
        Command::Note { close_dangling } => crate::commands::note::note(close_dangling),
        Command::Finalize => crate::commands::note::finalize(),
        Command::Tasks { format, file, variables } => crate::commands::tasks::run(format == "json", file, &variables),
        Command::Findings { format, strict, files } => crate::commands::findings::run(&format, strict, &files),
        Command::Doctor => Ok(crate::commands::doctor::run()),
        Command::PlanSummary { plan } => crate::commands::plan_summary::run(&plan),
        Command::Executor(ExecutorCommand::Config) => Ok(crate::commands::executor::config()),
        Command::Executor(ExecutorCommand::Prepare) => crate::commands::executor::prepare(),
        Command::Executor(ExecutorCommand::Run { script, stage }) => crate::commands::executor::run(&script, &stage),
        Command::Executor(ExecutorCommand::Cleanup) => Ok(crate::commands::executor::cleanup()),
    }
}

/// clap's error, as one line: its first paragraph without the `error:` label.
fn first_paragraph(message: &str) -> String {
    let paragraph = message.split("\n\n").next().unwrap_or(message);
    let words: Vec<&str> = paragraph.split_whitespace().collect();
    words.join(" ").trim_start_matches("error: ").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn errors_fit_on_one_line() {
        let error = Cli::try_parse_from(["herald", "run"]).unwrap_err();
        assert_eq!(first_paragraph(&error.to_string()), "the following required arguments were not provided: <CMD>...");
    }

    /// `herald run`'s own parse gives what the whole command line's does, or leaves it to that.
    #[test]
    fn the_quick_parse_of_run_agrees_with_the_whole() {
        let lines: [&[&str]; 12] = [
            &["run", "--", "true"],
            &["run", "true"],
            &["run", "--name", "u", "cargo", "test", "--name", "x"],
            &["run", "--timeout", "90s", "--grace", "1m", "--", "sh", "-c", "exit 3"],
            &["run", "--findings", "a.json", "--findings", "b.sarif", "--", "make", "lint"],
            &["run", "--", "--help"],
            &["run", "--help"],
            &["run", "--version"],
            &["run"],
            &["run", "--timeout", "soon", "--", "true"],
            &["run", "--bogus", "--", "true"],
            &["tasks", "--format", "json"],
        ];
        for (i, line) in lines.into_iter().enumerate() {
            let argv: Vec<OsString> =
                std::iter::once("herald").chain(line.iter().copied()).map(OsString::from).collect();
            // The first six are ordinary steps: the quick parse takes them.
            assert_eq!(quick_parse_of_run(&argv).is_some(), i < 6, "{line:?}");
            let whole = Cli::try_parse_from(&argv);
            let parsed = parse(argv);
            match (&parsed, &whole) {
                (Ok(parsed), Ok(whole)) => assert_eq!(format!("{parsed:?}"), format!("{whole:?}"), "{line:?}"),
                (Err(parsed), Err(whole)) => {
                    assert_eq!((parsed.kind(), parsed.to_string()), (whole.kind(), whole.to_string()), "{line:?}")
                }
                _ => panic!("{line:?}: {parsed:?} against {whole:?}"),
            }
        }
    }

    #[test]
    fn run_takes_everything_after_the_command() {
        let cli = Cli::try_parse_from(["herald", "run", "--name", "u", "cargo", "test", "--name", "x"]).unwrap();
        let Command::Run(args) = cli.command else { panic!("expected run") };
        assert_eq!(args.name.as_deref(), Some(std::ffi::OsStr::new("u")));
        assert_eq!(args.command, ["cargo", "test", "--name", "x"]);
    }
}
