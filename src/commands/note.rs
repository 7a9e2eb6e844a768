//! `herald note [--final]` and `herald finalize`: the end of a pipeline and of a job.
//!
//! - `herald note` re-renders and writes the merge request's note now. With `--final` (a `.post`
//!   job with `when: always`) it first closes statuses that jobs left `running` when they ended
//!   without herald reporting (killed, timed out, runner lost): `canceled` when the job was
//!   canceled, `failed` otherwise. Without this, such a status keeps the pipeline running forever.
//! - `herald finalize` (`after_script`) closes this job's own open steps from `CI_JOB_STATUS`,
//!   then updates the note when it closed anything, or when a passing step left the note to a
//!   next step that never ran (`publish::job_memory`).
//!
//! Exit codes: 0 when done (or nothing to do), 1 when GitLab refused or could not be reached
//! (use `allow_failure: true` so that a note problem never fails a pipeline), 125 for bad
//! configuration.

use std::time::{Duration, Instant};

use crate::cli::{say, EXIT_HERALD_FAILED};
use crate::config::{Env, ProcessEnv};
use crate::context::{self, PublishContext, Publishing};
use crate::gitlab::{self, ApiError, Client, CommitStatus, PipelineJob, StatusPost, StatusState};
use crate::pipeline::Pipeline;
use crate::publish::{explain, job_memory, job_name_of_status, NoteSync, SyncError, Synced};

/// The least time these commands allow themselves, whatever HERALD_FLUSH_TIMEOUT says: they run
/// in jobs of their own, where nothing waits for them.
const LEAST_TIME: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

pub fn note(close_dangling: bool) -> i32 {
    let (context, client) = match setup("herald note", &ProcessEnv) {
        Setup::Ready(context, client) => (context, client),
        Setup::Nothing => return 0,
        Setup::Broken => return EXIT_HERALD_FAILED,
    };
    let deadline = Instant::now() + context.flush_timeout.max(LEAST_TIME);
    let plan = crate::pipeline::for_job(&context);
    if close_dangling {
        if let Err(line) = close_steps(&client, &context, plan.as_ref(), deadline, &|_, job| match job?.status.as_str()
        {
            "canceled" => Some((StatusState::Canceled, "canceled: the job was canceled".into())),
            "failed" | "success" | "skipped" => {
                Some((StatusState::Failed, "no result: the job ended before the step reported one".into()))
            }
            _ => None, // still running, or not started: not ours to close
        }) {
            say(&line);
            return 1;
        }
    }
    write_note(&client, &context, plan.as_ref(), deadline)
}

pub fn finalize() -> i32 {
    finalize_in("herald finalize", &ProcessEnv)
}

/// `herald finalize` with the job's variables read from `env` (the executor driver's cleanup
/// passes the job's `CUSTOM_ENV_*` view).
pub(crate) fn finalize_in(command: &str, env: &dyn Env) -> i32 {
    let (context, client) = match setup(command, env) {
        Setup::Ready(context, client) => (context, client),
        Setup::Nothing => return 0,
        Setup::Broken => return EXIT_HERALD_FAILED,
    };
    let deadline = Instant::now() + context.flush_timeout.max(LEAST_TIME);
    let job_status = env.non_empty("CI_JOB_STATUS").map(|s| s.to_string_lossy().into_owned());
    let (state, description) = match job_status.as_deref() {
        Some("canceled") => (StatusState::Canceled, "canceled: the job was canceled"),
        Some("success") => {
            (StatusState::Success, "passed: the job passed, but herald could not report the step itself")
        }
        _ => (StatusState::Failed, "failed: the job failed before the step reported"),
    };
    let task_prefix = format!("{}/{}", context.status_prefix, context.job_name);
    let this_job = |status: &CommitStatus| match (&status.target_url, &context.job_url) {
        (Some(url), Some(ours)) => url == ours,
        _ => status.name == task_prefix || status.name.starts_with(&format!("{task_prefix} › ")),
    };
    let plan = crate::pipeline::for_job(&context);
    let closed = match close_steps(&client, &context, plan.as_ref(), deadline, &|status, _| {
        this_job(status).then(|| (state, description.to_owned()))
    }) {
        Ok(closed) => closed,
        Err(line) => {
            say(&line);
            return 1;
        }
    };
    let code = if closed == 0 && !job_memory::note_owed(&context) {
        0 // every step reported itself; the note already says so
    } else {
        write_note(&client, &context, plan.as_ref(), deadline)
    };
    // The job is over: its steps have nothing more to tell each other.
    job_memory::forget(&context);
    crate::pipeline::forget(&context);
    code
}

/// What a command has to work with.
enum Setup {
    Ready(Box<PublishContext>, Client),
    /// Publishing is off here (the reason, if any, was printed): nothing to do.
    Nothing,
    /// Bad configuration, reported.
    Broken,
}

fn setup(command: &str, env: &dyn Env) -> Setup {
    let context = match context::resolve(env) {
        Ok(Publishing::On(context)) => context,
        Ok(Publishing::Off(why)) => {
            if let Some(why) = why {
                say(&why);
            }
            return Setup::Nothing;
        }
        Err(error) => {
            say(&format!("{command}: {error}"));
            return Setup::Broken;
        }
    };
    match Client::new(&context.api_url, context.token.clone(), context.ca_file.as_deref(), context.dry_run) {
        Ok(client) => Setup::Ready(context, client),
        Err(why) => {
            say(&format!("{command}: {why}"));
            Setup::Broken
        }
    }
}

/// Decides, for an open status and its job (when found), the final state to post, if any.
type Closing<'a> = dyn Fn(&CommitStatus, Option<&PipelineJob>) -> Option<(StatusState, String)> + 'a;

/// Posts a final state for each of herald's open statuses in this pipeline that `decide` picks.
/// Only the token user's own statuses: another user's post would open a separate status.
/// Returns how many were closed, or the line to print.
fn close_steps(
    client: &Client,
    context: &PublishContext,
    plan: Option<&Pipeline>,
    deadline: Instant,
    decide: &Closing<'_>,
) -> Result<usize, String> {
    let Some(pipeline_id) = context.pipeline_id else {
        return Err("herald: cannot close open steps: no pipeline id (CI_PIPELINE_ID or HERALD_PIPELINE_ID)".into());
    };
    let fail = |error: ApiError| format!("herald: cannot close open steps: {}", explain(&error, context, "open steps"));
    let timeout = || deadline.saturating_duration_since(Instant::now()).min(REQUEST_TIMEOUT);
    let me = gitlab::current_user(client, timeout()).map_err(fail)?.id;
    let jobs = gitlab::pipeline_jobs(client, &context.project, pipeline_id, timeout()).map_err(fail)?;
    let statuses =
        gitlab::pipeline_statuses(client, &context.project, &context.sha, pipeline_id, timeout()).map_err(fail)?;
    let own_prefix = format!("{}/", context.status_prefix);
    let mut closed = 0;
    for status in statuses {
        let open = matches!(status.status.as_str(), "running" | "pending" | "created");
        let mine = status.author.as_ref().is_none_or(|author| author.id == me);
        if !open || !mine || !status.name.starts_with(&own_prefix) {
            continue;
        }
        // The job the status links to; else (no usable CI_JOB_URL, or a runner whose URL is not the
        // API's web_url) the newest job of the name its task gives: a retried job keeps its name.
        let by_url =
            status.target_url.as_ref().and_then(|url| jobs.iter().find(|job| job.web_url.as_ref() == Some(url)));
        let job = by_url.or_else(|| {
            job_name_of_status(&status.name, &context.status_prefix, plan)
                .and_then(|name| jobs.iter().filter(|job| job.name == name).max_by_key(|job| job.id))
        });
        let Some((state, description)) = decide(&status, job) else { continue };
        let post = StatusPost {
            project: &context.project,
            sha: &context.sha,
            pipeline_id: Some(pipeline_id),
            status_ref: context.status_ref.as_deref(),
            name: &status.name,
            state,
            description: &description,
            target_url: status.target_url.as_deref(),
        };
        gitlab::post_status(client, &post, timeout()).map_err(fail)?;
        say(&format!("herald: closed '{}' as {}: {description}", status.name, state.as_str()));
        closed += 1;
    }
    Ok(closed)
}

fn write_note(client: &Client, context: &PublishContext, plan: Option<&Pipeline>, deadline: Instant) -> i32 {
    let Some(mut note) = NoteSync::new(client, context, plan) else {
        say("herald: no merge request in this pipeline (CI_MERGE_REQUEST_IID, CI_OPEN_MERGE_REQUESTS or HERALD_MR_IID): no note to write");
        return 0;
    };
    // The final writer of a pipeline: clean up duplicates any writer left, and verify for as
    // long as the deadline allows.
    note.remove_all_duplicates();
    note.read_everything();
    let settled = note.settle(deadline, u32::MAX);
    if settled.is_ok() {
        job_memory::note_paid(context);
    }
    match settled {
        Ok(Synced::Written | Synced::Unchanged | Synced::Throttled(_)) => 0,
        Ok(Synced::NewerPipeline(newer)) => {
            say(&format!("herald: the note already shows the newer pipeline #{newer}; left as it is"));
            0
        }
        Err(SyncError::Api(error)) => {
            say(&format!("herald: the merge request note was not updated: {}", explain(&error, context, "the note")));
            1
        }
        Err(error) => {
            say(&format!("herald: the merge request note was not updated: {error}"));
            1
        }
    }
}
