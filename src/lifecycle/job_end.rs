//! The end of a job, which `herald finalize`, `herald note` and the executor's `cleanup` share:
//! settle this job's statuses, then bring the merge request's note up to date and print its line.
//! Below the commands so that the executor's cleanup runs `herald finalize`'s code without using
//! another command's module.

use std::time::{Duration, Instant};

use crate::context::{self, PublishContext, Publishing};
use crate::env::Env;
use crate::gitlab::Client;
use crate::output::{say, Failure, Outcome};
use crate::pipeline::Pipeline;
use crate::publish::settle::{self, JobEnd, Scope};
use crate::publish::{client, plan};
use crate::publish::{explain, job_memory, NoteSync, SyncError, Synced};

/// The least time these commands allow themselves, whatever HERALD_FLUSH_TIMEOUT says: they run
/// in jobs of their own, where nothing waits for them.
pub(crate) const LEAST_TIME: Duration = Duration::from_secs(30);

/// `herald finalize` with the job's variables read from `env` (the executor driver's cleanup
/// passes the job's `CUSTOM_ENV_*` view).
pub(crate) fn finalize(command: &str, env: &dyn Env) -> Outcome {
    let setup = setup(command, env);
    // The job is over: whatever it was told, the next job on this machine is told again.
    job_memory::forget_told(env);
    let Some((context, client)) = setup? else { return Ok(0) };
    let deadline = Instant::now() + context.flush_timeout.max(LEAST_TIME);
    let job_status = env.non_empty("CI_JOB_STATUS").map(|s| s.to_string_lossy().into_owned());
    let end = match job_status.as_deref() {
        Some("success") => JobEnd::Passed,
        Some("canceled") => JobEnd::Canceled,
        Some("failed") => JobEnd::Failed,
        _ => JobEnd::Unknown,
    };
    let plan = plan::for_job(&context);
    let scope = Scope::ThisJob { end, records: job_memory::steps(&context) };
    let changed = settle::settle(&client, &context, plan.as_ref(), deadline, &scope).map_err(Failure::not_done)?;
    // Every step reported itself and the note owes nothing: the note is only checked (written
    // if it is not right), not rewritten as the pipeline's last word; its line is printed all
    // the same, so that every job log ends with the verdict and the note's address.
    let last_word = changed > 0 || job_memory::note_owed(&context);
    let outcome = write_note(&client, &context, plan.as_ref(), deadline, last_word);
    // The job is over: its steps have nothing more to tell each other.
    job_memory::forget(&context);
    outcome
}

/// What a command has to work with: where to publish and a client for it; None when publishing
/// is off here (the reason, if any, was said).
pub(crate) fn setup(command: &str, env: &dyn Env) -> Result<Option<(Box<PublishContext>, Client)>, Failure> {
    let context = match context::resolve(env) {
        Ok(Publishing::On(context)) => context,
        Ok(Publishing::Off(why)) => {
            // These commands exist only to publish: doing nothing, they say why, in one line.
            match why {
                Some(why) if job_memory::first_telling(env, &why) => say(&why),
                Some(_) => {}
                None => {
                    let why = context::mode_keeps_quiet(env).unwrap_or_else(|| "publishing is off".into());
                    say(&format!("{command}: nothing to do: {why}"));
                }
            }
            return Ok(None);
        }
        Err(error) => return Err(Failure::setup(format!("{command}: {error}"))),
    };
    let client = client(&context).map_err(|why| Failure::setup(format!("{command}: {why}")))?;
    Ok(Some((context, client)))
}

/// Brings the note up to date and prints its one line: the verdict and the note's address. As
/// the `last_word` (`herald note`, a `finalize` that changed something), it removes every
/// duplicate, reads every status afresh and verifies for as long as the deadline allows;
/// otherwise it is a step's write (the note is read, and written only if it is not right).
pub(crate) fn write_note(
    client: &Client,
    context: &PublishContext,
    plan: Option<&Pipeline>,
    deadline: Instant,
    last_word: bool,
) -> Outcome {
    let Some(mut note) = NoteSync::new(client, context, plan) else {
        // Nothing to do; the line says which of the two things a note needs is missing.
        if context.dry_run {
            say("herald (dry run): no note: it is drawn from GitLab's state, which a dry run does not read");
        } else if context.mr_iid.is_none() {
            say("herald: no merge request in this pipeline (CI_MERGE_REQUEST_IID, CI_OPEN_MERGE_REQUESTS or HERALD_MR_IID): no note to write");
        } else {
            say("herald: no pipeline to show (CI_PIPELINE_ID or HERALD_PIPELINE_ID is not set): no note to write");
        }
        return Ok(0);
    };
    let rounds = if last_word {
        // The final writer of a pipeline: clean up duplicates any writer left, and verify for
        // as long as the deadline allows.
        note.remove_all_duplicates();
        note.read_everything();
        u32::MAX
    } else {
        crate::publish::STEP_ROUNDS
    };
    let settled = note.settle(deadline, rounds);
    if settled.is_ok() {
        job_memory::note_paid(context);
    }
    match settled {
        // Other writers kept writing: each verifies its own write; the verdict is still known.
        Ok(Synced::Written | Synced::Unchanged | Synced::Throttled(_) | Synced::LeftToLaterWriter)
        | Err(SyncError::NoAgreement(_)) => {
            if let Some(summary) = note.summary() {
                say(&format!("herald: {summary}"));
            }
            Ok(0)
        }
        Ok(Synced::NewerPipeline(newer)) => {
            say(&format!("herald: the note already shows the newer pipeline #{newer}; left as it is"));
            Ok(0)
        }
        Err(SyncError::Api(error)) => Err(Failure::not_done(format!(
            "herald: the merge request note was not updated: {}",
            explain(&error, context, "the note")
        ))),
        Err(error) => Err(Failure::not_done(format!("herald: the merge request note was not updated: {error}"))),
    }
}
