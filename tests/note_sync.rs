//! The rolling merge-request note against the stand-in: one note, true at the end, however many
//! jobs write at once and whatever faults GitLab throws; never someone else's note; never an
//! older pipeline over a newer one; closing what dead jobs left open.

use std::thread;
use std::time::Duration;

use crate::support::gitlab::*;
use crate::support::{herald_in_ci, run, PipelineKind};

/// A job of the test pipeline: its id, URL, and steps as (name, exit code).
struct TestJob {
    name: String,
    url: String,
    steps: Vec<(String, i32)>,
}

/// Whether the note shows `step` of `job` with this icon (report/note/: one line per job).
fn shows(body: &str, icon: &str, job: &TestJob, step: &str) -> bool {
    crate::support::campaign::note_shows(body, icon, &job.name, &job.url, step, "")
}

/// herald in a CI job of its own named `job`, which the stand-in's merged-results pipeline now
/// has: its name, a unique id (herald's job memory is keyed by it) and its URL set.
fn herald_in_job(gitlab: &GitLab, job: &str) -> std::process::Command {
    let (id, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, job, "test", "running"));
    let mut command = herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
    command.env("CI_JOB_NAME", job).env("CI_JOB_ID", format!("{id}{}", std::process::id())).env("CI_JOB_URL", url);
    command
}

/// Runs `jobs` jobs at once in the merged-results pipeline of MR !1, each with 1–3 steps (some
/// failing), every request exposed to `fault_rate` of 5xx and resets; returns requests per step.
fn concurrent_pipeline(seed: u64, jobs: usize, fault_rate: f64) -> f64 {
    let gitlab = GitLab::start();
    let test_jobs: Vec<TestJob> = (0..jobs)
        .map(|i| {
            let name = format!("job-{i}");
            let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, &name, "test", "running"));
            let steps = (0..1 + (i + seed as usize) % 3)
                .map(|j| (format!("step-{j}"), i32::from((i + j) % 4 == 0) * (j as i32 + 1)))
                .collect();
            TestJob { name, url, steps }
        })
        .collect();
    let faults = [
        Fault::ServerError(500),
        Fault::ServerError(502),
        Fault::ServerError(503),
        Fault::Reset,
        Fault::ResetAfterApplying,
    ];
    gitlab.with(|w| w.faults = Faults::random(fault_rate, &faults, seed));

    thread::scope(|scope| {
        for job in &test_jobs {
            let gitlab = &gitlab;
            scope.spawn(move || {
                for (step, code) in &job.steps {
                    let finished = run(herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
                        .env("CI_JOB_NAME", &job.name)
                        .env("CI_JOB_URL", &job.url)
                        .env("HERALD_FLUSH_TIMEOUT", "30s")
                        .args(["run", "--name", step, "--", "sh", "-c", &format!("exit {code}")]));
                    assert_eq!(finished.code, Some(*code), "{} {step}: {}", job.name, finished.stderr_text());
                    let stderr = finished.stderr_text();
                    assert!(
                        !stderr.contains("not published") && !stderr.contains("not updated"),
                        "seed {seed}, {} {step}: {stderr}",
                        job.name
                    );
                }
            });
        }
    });

    gitlab.with(|world| {
        let notes = world.herald_notes(1);
        assert_eq!(notes.len(), 1, "seed {seed}: exactly one herald note, not {}", notes.len());
        let note = &notes[0];
        assert_eq!(note.author_id, 100, "written by the token's user");
        let statuses = world.statuses(PIPELINE_MERGED);
        for job in &test_jobs {
            for (step, code) in &job.steps {
                let status = &statuses[&format!("herald/{} › {step}", job.name)];
                let (state, icon) = if *code == 0 { ("success", "✅") } else { ("failed", "❌") };
                assert_eq!(status.status, state, "seed {seed}: {} {step}", job.name);
                assert!(shows(&note.body, icon, job, step), "seed {seed}: the note lacks {icon} {step}\n{}", note.body);
                assert!(!shows(&note.body, "🔵", job, step), "seed {seed}: {step} still shows running:\n{}", note.body);
            }
        }
        assert!(world.quick_actions.is_empty(), "quick actions ran: {:?}", world.quick_actions);
    });
    let steps: usize = test_jobs.iter().map(|j| j.steps.len()).sum();
    gitlab.requests().len() as f64 / steps as f64
}

#[test]
fn thirty_jobs_writing_at_once_through_faults_leave_one_true_note_every_time() {
    // Three seeds here; examples/campaign.rs runs the big versions (docs/reliability.md).
    let mut per_step = Vec::new();
    for seed in 1..=3 {
        per_step.push(concurrent_pipeline(seed, 30, 0.2));
    }
    let average = per_step.iter().sum::<f64>() / per_step.len() as f64;
    // Reported, not asserted: counts are measured by the campaign (docs/benchmarks.md).
    eprintln!("requests per step over 3 runs of 30 jobs with 20% faults: {average:.1} (runs: {per_step:.1?})");
}

#[test]
fn one_step_writes_one_note_that_shows_it() {
    let gitlab = GitLab::start();
    let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_DETACHED, "lint", "test", "running"));
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Detached, TOKEN_DEVELOPER)
        .env("CI_JOB_URL", &url)
        .args(["run", "--name", "unit", "--", "true"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let notes = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.starts_with("<!-- herald:note pipeline=1002 -->\n"), "{}", notes[0].body);
    assert!(
        crate::support::campaign::note_shows(&notes[0].body, "✅", "lint", &url, "unit", "passed in"),
        "{}",
        notes[0].body
    );
    // It was claimed first (created from the pipeline's jobs and statuses, read once for the
    // claim and the full write alike), then written in full.
    let requests = gitlab.requests();
    let created: Vec<_> = requests.iter().filter(|r| r.method == "POST" && r.path.ends_with("/notes")).collect();
    assert_eq!(created.len(), 1);
    assert!(created[0].param("body").is_some_and(|body| body.contains("<!-- herald:claim ")), "a claim");
    let reads = |what: &str| requests.iter().filter(|r| r.method == "GET" && r.path.ends_with(what)).count();
    // (The statuses are read again to verify the write.)
    assert_eq!((reads("/jobs"), reads("/statuses")), (1, 2), "the claim's reads serve the write");
    assert!(!notes[0].body.contains("herald:claim"), "{}", notes[0].body);

    // A second run with nothing new changes nothing: the PUT is skipped.
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Detached, TOKEN_DEVELOPER).arg("note"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let puts = gitlab.requests().iter().filter(|r| r.method == "PUT").count();
    let after = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(after[0].updated, notes[0].updated, "unchanged body, no write ({puts} PUTs in all)");
}

/// The first version of the note (the one GitLab e-mails) shows the jobs GitLab has, as GitLab
/// has them: a manual job is manual, not waiting; a job the configuration's `rules:` leave out
/// (GitLab never created it) is not there; and the totals are the last version's.
#[test]
fn the_first_version_shows_gitlabs_jobs_and_its_totals_never_shrink() {
    let gitlab = GitLab::start();
    let (id, url) = gitlab.with(|w| w.add_job(PIPELINE_DETACHED, "lint", "test", "running"));
    gitlab.with(|w| {
        w.add_job(PIPELINE_DETACHED, "deploy", "deploy", "manual");
        w.add_job(PIPELINE_DETACHED, "package", "deploy", "created");
    });
    let checkout = crate::support::TempDir::new("first-version");
    let config = "lint:\n  script:\n    - herald run --name fmt -- make fmt\n    - herald run --name clippy -- make clippy\n\
                  nightly:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"schedule\"\n  script:\n    - herald run --name soak -- make soak\n\
                  deploy:\n  stage: deploy\n  when: manual\n  script:\n    - herald run --name ship -- make ship\n\
                  package:\n  stage: deploy\n  script:\n    - herald run --name tar -- make tar\n";
    std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Detached, TOKEN_DEVELOPER)
        .env("CI_JOB_URL", &url)
        .env("CI_JOB_ID", format!("{id}{}", std::process::id()))
        .env("CI_PROJECT_DIR", checkout.path())
        .args(["run", "--name", "fmt", "--", "false"]));
    assert_eq!(finished.code, Some(1), "{}", finished.stderr_text());
    let requests = gitlab.requests();
    let created: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/notes"))
        .filter_map(|r| r.param("body"))
        .collect();
    assert_eq!(created.len(), 1);
    let first = &created[0];
    let last = gitlab.with(|w| w.herald_notes(1))[0].body.clone();
    let totals = |body: &str| {
        let at = body.find(" steps in ").unwrap_or_else(|| panic!("no totals: {body}"));
        let count = body[..at].rsplit(' ').next().unwrap().to_owned();
        let jobs = body[at + 10..].split(' ').next().unwrap().to_owned();
        (count, jobs)
    };
    // lint: fmt, clippy; deploy: ship; package: tar; the stand-in's own `test` job: none.
    assert_eq!(totals(first), ("4".to_owned(), "4".to_owned()), "{first}");
    assert_eq!(totals(first), totals(&last), "first:\n{first}\nlast:\n{last}");
    for body in [first, &last] {
        assert!(!body.contains("nightly") && !body.contains("soak"), "a job GitLab does not have: {body}");
        assert!(body.contains("1 manual"), "the manual job's step is manual: {body}");
        assert!(body.contains("2 waiting"), "clippy and tar wait, nothing else: {body}");
    }
}

#[test]
fn a_late_job_of_an_older_pipeline_does_not_overwrite_the_newer_note() {
    let gitlab = GitLab::start();
    let newer = "<!-- herald:note pipeline=9999 -->\n#### Pipeline #9999 running\n";
    let id = gitlab.with(|w| w.add_note(1, 100, newer));
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .args(["run", "--name", "late", "--", "true"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let notes = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(notes.len(), 1);
    assert_eq!((notes[0].id, notes[0].body.as_str()), (id, newer), "the newer pipeline's note is untouched");
    // The step's status was still published.
    assert_eq!(gitlab.with(|w| w.statuses(PIPELINE_MERGED)["herald/lint › late"].status.clone()), "success");
}

#[test]
fn a_newer_pipeline_takes_over_an_older_note() {
    let gitlab = GitLab::start();
    let id = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=5 -->\nold\n"));
    run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .args(["run", "--name", "unit", "--", "true"]));
    let notes = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].id, id, "the same note, edited, not a new one");
    assert!(notes[0].body.starts_with("<!-- herald:note pipeline=1003 -->"));
}

#[test]
fn notes_of_others_are_never_adopted_and_our_duplicates_are_removed() {
    let gitlab = GitLab::start();
    // A person quoting herald's marker, and two notes of ours (a creation race long ago).
    let quoted = gitlab.with(|w| w.add_note(1, 102, "<!-- herald:note pipeline=1003 -->\nlooks wrong?"));
    let first = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nstale"));
    let second = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nstale too"));
    gitlab.with(|w| w.age_note(second, 120.0));
    run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .args(["run", "--name", "unit", "--", "true"]));
    gitlab.with(|w| {
        let notes = w.herald_notes(1);
        let ids: Vec<u64> = notes.iter().map(|n| n.id).collect();
        assert_eq!(ids, [quoted, first], "the person's note stays; of ours, the lowest id is kept");
        assert!(!ids.contains(&second));
        assert_eq!(notes[0].body, "<!-- herald:note pipeline=1003 -->\nlooks wrong?");
        assert!(notes[1].body.contains("✅ unit passed"), "{}", notes[1].body);
    });
}

/// Another writer's duplicate that is still a bare claim (young: its creator may be out of time
/// to remove it, as under a 429 storm with a short flush budget) is removed by whoever lists it,
/// as long as it is not the lowest; a written duplicate is left to its creator while young.
#[test]
fn any_writer_removes_a_bare_claim_that_is_not_the_lowest_once_its_creator_had_time() {
    let gitlab = GitLab::start();
    let kept = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nwritten"));
    let claim = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nx\n<!-- herald:claim 1-2 -->"));
    let young_claim =
        gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\ny\n<!-- herald:claim 3-4 -->"));
    let written = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nwritten too"));
    // Its creator, which lists right after creating, had six seconds to remove it (5 s grace).
    gitlab.with(|w| w.age_note(claim, 6.0));
    run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .args(["run", "--name", "unit", "--", "true"]));
    let ids: Vec<u64> = gitlab.with(|w| w.herald_notes(1).iter().map(|n| n.id).collect());
    assert_eq!(
        ids,
        [kept, young_claim, written],
        "the bare claim {claim} is gone; the young claim and the young written one are their creators'"
    );
    let deletes = gitlab.requests().iter().filter(|r| r.method == "DELETE").count();
    assert_eq!(deletes, 1, "nobody else deletes a claim its creator is about to delete");
}

/// A look at the note made early is not used once it is old: here a short step's look, made as
/// it started, would serve its final write, but the status posts are held up by 429s for three
/// seconds, during which another writer creates the note. The stale look (no note yet) would
/// have this writer create a second one (e-mailed to every participant); a fresh look finds the
/// other's note and writes there.
#[test]
fn a_look_made_before_a_slow_final_post_is_not_trusted() {
    let gitlab = GitLab::start();
    let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_DETACHED, "lint", "test", "running"));
    gitlab.with(|w| w.faults = Faults::always(Fault::RateLimited { retry_after_secs: 1 }).only("POST", SHA_FEATURE));
    let herald = herald_in_ci(&gitlab, PipelineKind::Detached, TOKEN_DEVELOPER)
        .env("CI_JOB_URL", &url)
        .args(["run", "--name", "unit", "--", "sleep", "0.3"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let note_looks = || gitlab.requests().iter().filter(|r| r.method == "GET" && r.path.ends_with("/notes")).count();
    crate::support::wait_until("the look made as the step started", || note_looks() > 0);
    let other = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1002 -->\nanother writer's"));
    thread::sleep(Duration::from_secs(3));
    gitlab.with(|w| w.faults = Faults::default());
    let finished = crate::support::finish(herald);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let created = gitlab.requests().iter().filter(|r| r.method == "POST" && r.path.ends_with("/notes")).count();
    assert_eq!(created, 0, "a note created from a stale look");
    let notes = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(notes.iter().map(|n| n.id).collect::<Vec<_>>(), [other]);
    assert!(notes[0].body.contains("unit"), "{}", notes[0].body);
}

#[test]
fn note_final_closes_what_dead_jobs_left_running() {
    let gitlab = GitLab::start();
    let (killed, killed_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "killed", "test", "running"));
    let (canceled, canceled_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "canceled", "test", "running"));
    let (_, alive_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "alive", "test", "running"));
    // Each job's step posted `running`, then its herald died (the stand-in is told directly).
    for (name, url) in [("killed", &killed_url), ("canceled", &canceled_url), ("alive", &alive_url)] {
        post_running(&gitlab, name, url);
    }
    gitlab.with(|w| {
        w.set_job_status(killed, "failed");
        w.set_job_status(canceled, "canceled");
    });
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER).args(["note", "--final"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    // One line in the job log: the verdict, and where the note is.
    let note_id = gitlab.with(|w| w.herald_notes(1))[0].id;
    let line = format!(
        "herald: pipeline #1003 running: 1 failed · 1 canceled · 1 running · 3 steps in 4 jobs — \
         https://gitlab.example.com/group/app/-/merge_requests/1#note_{note_id}\n"
    );
    assert!(finished.stderr_text().ends_with(&line), "{}", finished.stderr_text());
    let statuses = gitlab.with(|w| w.statuses(PIPELINE_MERGED));
    assert_eq!(statuses["herald/killed › step"].status, "failed");
    assert_eq!(statuses["herald/canceled › step"].status, "canceled");
    assert_eq!(statuses["herald/alive › step"].status, "running", "a running job's step is left alone");
    let note = &gitlab.with(|w| w.herald_notes(1))[0];
    assert!(note.body.lines().any(|l| l.starts_with("- ⛔ [canceled](")), "{}", note.body);
    assert!(note.body.contains("no result recorded; the job failed while the step was open"), "{}", note.body);
}

#[test]
fn finalize_closes_this_jobs_open_steps_from_ci_job_status() {
    let gitlab = GitLab::start();
    let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "lint", "test", "running"));
    let (_, other_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "other", "test", "running"));
    post_running(&gitlab, "lint", &url);
    post_running(&gitlab, "other", &other_url);
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_JOB_URL", &url)
        .env("CI_JOB_STATUS", "canceled")
        .arg("finalize"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(finished.stderr_text().contains("closed 'herald/lint › step' as canceled"), "{}", finished.stderr_text());
    let statuses = gitlab.with(|w| w.statuses(PIPELINE_MERGED));
    assert_eq!(statuses["herald/lint › step"].status, "canceled");
    assert_eq!(statuses["herald/other › step"].status, "running", "another job's step is not this job's to close");
    assert_eq!(gitlab.with(|w| w.herald_notes(1)).len(), 1, "the note follows");
}

/// `herald finalize` in a job whose steps all reported themselves has nothing to settle: it still
/// prints its one line, the pipeline's verdict and the note's address, and writes nothing.
#[test]
fn finalize_with_nothing_to_settle_still_prints_the_verdict_and_the_link() {
    let job = PlannedJob::start();
    job.step("compile", 0);
    job.step("check", 1);
    let writes = || job.gitlab.requests().iter().filter(|r| r.path.contains("/notes") && r.method != "GET").count();
    let before = writes();
    let finished = run(job.herald().env("CI_JOB_STATUS", "failed").arg("finalize"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let stderr = finished.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    // (GitLab still shows the job running: its after_script is running.)
    assert!(lines[0].starts_with("herald: pipeline #1003 running: 1 failed · 1 passed"), "{stderr}");
    let id = job.gitlab.with(|w| w.herald_notes(1)[0].id);
    assert!(lines[0].ends_with(&format!("/-/merge_requests/1#note_{id}")), "{stderr}");
    assert_eq!(writes(), before, "the note was right: nothing written");
}

#[test]
fn the_notes_rate_limit_is_waited_out() {
    let gitlab = GitLab::start();
    // The per-user notes_create budget is spent: creating the note gets a JSON 429 with no
    // Retry-After, until the test refills the budget.
    gitlab.with(|w| w.notes_create_per_minute = Some(0));
    let child = herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .args(["run", "--name", "unit", "--", "true"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::support::wait_until("a rate-limited note creation", || {
        gitlab.requests().iter().filter(|r| r.method == "POST" && r.path.ends_with("/notes")).count() >= 2
    });
    gitlab.with(|w| w.notes_create_per_minute = None);
    let finished = crate::support::finish(child);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(gitlab.with(|w| w.herald_notes(1)).len(), 1);
}

/// Posts `running` for `herald/<job> › step` as herald would have, linking the job.
fn post_running(gitlab: &GitLab, job: &str, url: &str) {
    let finished = run(herald_in_ci(gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_JOB_NAME", job)
        .env("CI_JOB_URL", url)
        .args(["run", "--name", "step", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    // Reopen it: the stand-in sets the state as a herald killed mid-step would have left it.
    gitlab.with(|w| {
        for status in w.jobs.iter_mut().filter(|j| j.name == format!("herald/{job} › step")) {
            status.status = "running".into();
            status.description = Some("running".into());
        }
    });
}

/// Note writes (PUTs) that happened while the step ran, i.e. before its final status was posted.
fn live_writes(gitlab: &GitLab) -> usize {
    let requests = gitlab.requests();
    let final_post = requests
        .iter()
        .find(|r| r.method == "POST" && r.path.contains("/statuses/") && r.param("state").as_deref() != Some("running"))
        .expect("a final status")
        .at;
    requests.iter().filter(|r| r.method == "PUT" && r.at < final_post).count()
}

/// How long the step of `step_with_note_aged` runs.
enum Step {
    /// Until the note's live write arrives: a live write is expected, however slow the machine.
    UntilLiveWrite,
    /// This many seconds: no live write is expected within them.
    For(&'static str),
}

/// Runs a step in MR !1's merged-results pipeline, whose note already exists and was last written
/// `age` seconds ago, with HERALD_MIN_UPDATE_INTERVAL=`interval`.
fn step_with_note_aged(age: f64, interval: &str, step: Step) -> GitLab {
    let gitlab = GitLab::start();
    let id = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nearlier\n"));
    gitlab.with(|w| w.age_note(id, age));
    let dir = crate::support::TempDir::new("live-write");
    let go = dir.join("go");
    let script = match step {
        Step::UntilLiveWrite => format!("while [ ! -e '{}' ]; do sleep 0.05; done", go.display()),
        Step::For(seconds) => format!("sleep {seconds}"),
    };
    let child = herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("HERALD_MIN_UPDATE_INTERVAL", interval)
        .args(["run", "--name", "unit", "--", "sh", "-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Step::UntilLiveWrite = step {
        crate::support::wait_until("the live note write", || {
            gitlab.requests().iter().any(|r| r.method == "PUT" && r.path.contains("/notes/"))
        });
        std::fs::write(&go, "").unwrap();
    }
    let finished = crate::support::finish(child);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let note = &gitlab.with(|w| w.herald_notes(1))[0];
    assert!(note.body.contains("✅ unit passed in"), "the final write always happens: {}", note.body);
    gitlab
}

#[test]
fn live_writes_wait_for_the_minimum_interval() {
    // Written a moment ago by another job: no live write during the step.
    assert_eq!(live_writes(&step_with_note_aged(0.0, "60s", Step::For("2"))), 0);
    // Older than the interval: a step still running after a second shows as running (once).
    assert_eq!(live_writes(&step_with_note_aged(100.0, "20s", Step::UntilLiveWrite)), 1);
    // A step that ends within a second is not shown running at all: its final write follows.
    assert_eq!(live_writes(&step_with_note_aged(100.0, "20s", Step::For("0.2"))), 0);
    // 0 turns the throttle off.
    assert_eq!(live_writes(&step_with_note_aged(0.0, "0", Step::UntilLiveWrite)), 1);
    // Too fresh at the start, but the step outlives the interval: the live write follows then.
    assert_eq!(live_writes(&step_with_note_aged(0.0, "2s", Step::UntilLiveWrite)), 1);
}

/// GitLab's `Date` header has whole seconds, so a note written within the current second can look
/// a moment younger than 0 s. With the throttle off that must still be "not too fresh": it once
/// read as "too fresh for 0 s more", and the live write asked again and again while the step ran.
#[test]
fn with_the_throttle_off_a_note_stamped_in_the_current_second_takes_the_live_write() {
    let gitlab = step_with_note_aged(-0.9, "0", Step::UntilLiveWrite);
    assert_eq!(live_writes(&gitlab), 1);
    let looks = gitlab.requests().iter().filter(|r| r.method == "GET" && r.path.contains("/notes")).count();
    assert!(looks <= 4, "{looks} looks at the note");
}

/// A job of two planned steps, as a runner runs it: its checkout with the configuration, its id
/// (the key of what herald keeps between the job's steps), its URL.
struct PlannedJob {
    gitlab: GitLab,
    checkout: crate::support::TempDir,
    url: String,
    id: String,
}

impl PlannedJob {
    fn start() -> PlannedJob {
        let gitlab = GitLab::start();
        let (job_id, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "build", "test", "running"));
        let checkout = crate::support::TempDir::new("planned");
        let config =
            "build:\n  script:\n    - herald run --name compile -- make\n    - herald run --name check -- make check\n";
        std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
        // Unique per test run: the job's id keys herald's files in the temporary directory.
        let id = format!("{job_id}{}", std::process::id());
        PlannedJob { gitlab, checkout, url, id }
    }

    fn herald(&self) -> std::process::Command {
        let mut command = herald_in_ci(&self.gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
        command
            .env("CI_JOB_NAME", "build")
            .env("CI_JOB_URL", &self.url)
            .env("CI_JOB_ID", &self.id)
            .env("CI_PROJECT_DIR", self.checkout.path());
        command
    }

    fn step(&self, name: &str, code: i32) {
        let finished = run(self.herald().args(["run", "--name", name, "--", "sh", "-c", &format!("exit {code}")]));
        assert_eq!(finished.code, Some(code), "{}", finished.stderr_text());
    }

    fn state(&self, what: &str) -> std::path::PathBuf {
        crate::support::job_state(
            self.gitlab.machine_tmp(),
            &self.gitlab.api_url(),
            &PROJECT_ID.to_string(),
            PIPELINE_MERGED,
            &self.id,
            what,
        )
    }

    fn owed(&self) -> bool {
        self.state("note-owed").exists()
    }

    fn note(&self) -> Option<String> {
        self.gitlab.with(|w| w.herald_notes(1).first().map(|n| n.body.clone()))
    }
}

#[test]
fn a_passing_step_with_more_to_come_leaves_the_note_to_the_next_one() {
    let job = PlannedJob::start();
    job.step("compile", 0);
    let note_writes =
        |gitlab: &GitLab| gitlab.requests().iter().filter(|r| r.path.contains("/notes") && r.method != "GET").count();
    assert_eq!(note_writes(&job.gitlab), 0, "the next step will write it");
    assert!(job.owed());
    job.step("check", 0);
    let note = job.note().expect("the last step writes the note");
    assert!(note.contains("✅ compile passed in") && note.contains("✅ check passed in"), "{note}");
    assert!(!job.owed());
}

#[test]
fn a_failing_step_or_the_last_one_writes_the_note_itself() {
    let job = PlannedJob::start();
    job.step("compile", 2);
    let note = job.note().expect("a failed step ends the job: its note is written at once");
    assert!(note.contains("❌ compile failed \\(exit 2\\)"), "{note}");
    assert!(!job.owed());
}

#[test]
fn finalize_pays_a_note_the_job_still_owed() {
    // The job stopped after a passing step, before the next one ran (a condition in the script).
    let job = PlannedJob::start();
    job.step("compile", 0);
    assert!(job.note().is_none() && job.owed());
    let cache = job.state("pipeline.json");
    assert!(cache.exists(), "the configuration, parsed once for the job's steps");
    let finished = run(job.herald().env("CI_JOB_STATUS", "success").arg("finalize"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let note = job.note().expect("finalize writes the owed note");
    assert!(note.contains("✅ compile passed in"), "{note}");
    assert!(!job.owed());
    assert!(!cache.exists(), "the job is over: its files in the temporary directory are removed");
}

/// A pipeline of 250 finished steps: a new step's writer reads only the newest page of statuses
/// (the note lists the settled ones), and the note still shows every step. A step posted again
/// (a retry) shows its new state, not the settled one; a GitLab that ignores `sort` is read whole.
#[test]
fn a_big_pipeline_is_read_from_its_newest_statuses() {
    let gitlab = GitLab::start();
    let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "big", "test", "running"));
    gitlab.with(|w| {
        for i in 0..250 {
            w.add_status(PIPELINE_MERGED, &format!("herald/big › s{i}"), "success", &url);
        }
    });
    let job = TestJob { name: "big".into(), url: url.clone(), steps: Vec::new() };
    let step = |name: &str, code: i32| {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
            .env("CI_JOB_NAME", "big")
            .env("CI_JOB_URL", &url)
            .args(["run", "--name", name, "--", "sh", "-c", &format!("exit {code}")]));
        assert_eq!(finished.code, Some(code), "{}", finished.stderr_text());
        assert!(!finished.stderr_text().contains("not updated"), "{}", finished.stderr_text());
    };
    let pages_read_by = |run_step: &dyn Fn()| {
        let before = gitlab.requests().len();
        run_step();
        gitlab.requests()[before..].iter().filter(|r| r.method == "GET" && r.path.ends_with("/statuses")).count()
    };
    let note = || gitlab.with(|w| w.herald_notes(1)).pop().expect("the note").body;

    let first = pages_read_by(&|| step("first", 0));
    assert!(first >= 3, "no note yet: every page of 251 statuses is read ({first})");
    let second = pages_read_by(&|| step("second", 1));
    assert!(second <= 2, "the render and its check read the newest page only, not {second}");
    let body = note();
    for i in 0..250 {
        assert!(shows(&body, "✅", &job, &format!("s{i}")), "s{i} missing:\n{body}");
    }
    assert!(shows(&body, "✅", &job, "first") && shows(&body, "❌", &job, "second"), "{body}");

    // s0 runs again and fails: a new status (the old one is retried), newer than the settled one.
    step("s0", 3);
    let body = note();
    assert!(shows(&body, "❌", &job, "s0") && !shows(&body, "✅", &job, "s0"), "{body}");

    gitlab.with(|w| w.ignores_status_sort = true);
    let old_server = pages_read_by(&|| step("third", 0));
    assert!(old_server >= 3, "oldest first: every page is read ({old_server})");
    let body = note();
    assert!(shows(&body, "✅", &job, "third") && shows(&body, "✅", &job, "s249"), "{body}");
}

/// The job's previous step saw the note too fresh for a live write: the next step, running well
/// past LIVE_GRACE, does not ask GitLab again before its own final state.
#[test]
fn a_step_does_not_ask_about_a_note_its_job_knows_is_fresh() {
    let gitlab = GitLab::start();
    let id = gitlab.with(|w| w.add_note(1, 100, "<!-- herald:note pipeline=1003 -->\nearlier\n"));
    gitlab.with(|w| w.age_note(id, 0.0));
    let job_id = format!("4242{}", std::process::id());
    let step = |name: &str| {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
            .env("CI_JOB_ID", &job_id)
            .env("HERALD_MIN_UPDATE_INTERVAL", "60s")
            .args(["run", "--name", name, "--", "sleep", "2.5"]));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    };
    // Note reads while a step ran: in the two seconds after its first request (the live write's
    // look goes with the `running` post), well before it ends (the final write looks while it
    // posts the final status).
    let looks_while_running = |from: usize| {
        let requests = gitlab.requests();
        let ended = requests[from].at + std::time::Duration::from_secs(2);
        requests[from..].iter().filter(|r| r.method == "GET" && r.path.contains("/notes") && r.at < ended).count()
    };
    step("first");
    assert_eq!(looks_while_running(0), 1, "nothing known yet: one look, and the note is too fresh");
    let before = gitlab.requests().len();
    step("second");
    assert_eq!(looks_while_running(before), 0, "the first step's look is remembered");
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_JOB_ID", &job_id)
        .env("CI_JOB_STATUS", "success")
        .arg("finalize"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let fresh = crate::support::job_state(
        gitlab.machine_tmp(),
        &gitlab.api_url(),
        "42",
        PIPELINE_MERGED,
        &job_id,
        "note-fresh",
    );
    assert!(!fresh.exists(), "finalize forgets it");
}

/// A job's last step does not wait on a note written a moment ago, neither by the job's previous
/// step nor by another job (issue #27: that wait held every job's end for 250–500 ms and rarely
/// found the step already shown; the campaigns check the note still ends true).
#[test]
fn a_step_does_not_wait_on_a_busy_note() {
    let gitlab = GitLab::start();
    let job_id = format!("4343{}", std::process::id());
    let step = |name: &str| {
        let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
            .env("CI_JOB_ID", &job_id)
            .env("HERALD_LOG", "debug")
            .args(["run", "--name", name, "--", "true"]));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        finished.stderr_text()
    };
    step("first");
    let second = step("second");
    assert!(second.contains("note !1#") && second.contains("updating it"), "{second}");
    assert!(!second.contains("busy; looking again"), "waited on its own job's write: {second}");
    // Another writer changes the note: now it is busy with someone else's write.
    gitlab.with(|w| {
        let id = w.herald_notes(1)[0].id;
        let note = w.notes.iter_mut().find(|n| n.id == id).unwrap();
        note.body.push_str("\nanother job's row\n");
    });
    let third = step("third");
    assert!(third.contains("updating it"), "{third}");
    assert!(!third.contains("busy; looking again"), "waited on another job's write: {third}");
}

/// The note's failure excerpt comes from the job log GitLab holds, anchored on the error: read
/// once the job is over, once (later writers take it from the note), and never for a green job.
#[test]
fn a_failed_steps_excerpt_comes_from_its_job_log_once() {
    let gitlab = GitLab::start();
    let (test_id, test_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "test", "test", "running"));
    let (lint_id, lint_url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "lint", "test", "running"));
    let fixture = format!("{}/tests/fixtures/logs/cargo-test-failure.log", env!("CARGO_MANIFEST_DIR"));
    let step = |job: &str, url: &str, name: &str, script: &str| {
        run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
            .env("CI_JOB_NAME", job)
            .env("CI_JOB_URL", url)
            .args(["run", "--name", name, "--", "sh", "-c", script]))
    };
    let log_reads = || gitlab.requests().iter().filter(|r| r.path.ends_with("/trace")).count();
    let failed = step("test", &test_url, "unit", &format!("cat {fixture}; exit 101"));
    assert_eq!(failed.code, Some(101));
    assert_eq!(log_reads(), 0, "the job still runs: its log is not complete, nothing is read");
    // The runner has sent the job's log (the step's output inside herald's section); the job is over.
    let stderr = failed.stderr_text();
    let (start, rest) = stderr.split_once('\n').unwrap();
    let log = format!("{start}\n{}{rest}", failed.stdout_text());
    gitlab.with(|w| {
        let job = w.jobs.iter_mut().find(|j| j.id == test_id).unwrap();
        job.trace = log;
        job.status = "failed".into();
    });

    // The next writer (another job's step) reads the log once and keeps the excerpt in the note.
    assert_eq!(step("lint", &lint_url, "fmt", "true").code, Some(0));
    assert_eq!(log_reads(), 1);
    let body = gitlab.with(|w| w.herald_notes(1)).pop().unwrap().body;
    let top = &body[..body.find("<details>").unwrap()];
    assert!(top.contains("panicked at src/lib.rs:20:9:") && top.contains("  left: 103"), "{top}");
    gitlab.with(|w| w.jobs.iter_mut().filter(|j| j.id == lint_id).for_each(|j| j.status = "success".into()));
    assert_eq!(step("lint", &lint_url, "clippy", "true").code, Some(0));
    assert_eq!(log_reads(), 1, "taken from the note, not read again");

    // A green pipeline reads no log at all.
    let green = GitLab::start();
    let (_, url) = green.with(|w| w.add_job(PIPELINE_MERGED, "lint", "test", "running"));
    run(herald_in_ci(&green, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_JOB_URL", &url)
        .args(["run", "--name", "fmt", "--", "true"]));
    green.with(|w| w.jobs.iter_mut().for_each(|j| j.status = "success".into()));
    let finished = run(herald_in_ci(&green, PipelineKind::MergedResults, TOKEN_DEVELOPER).args(["note", "--final"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert_eq!(green.requests().iter().filter(|r| r.path.ends_with("/trace")).count(), 0);
}

/// At a distance every request costs a round trip, so what counts after a job's last step ends
/// is how many of them go one after another. The reads that do not depend on each other go
/// together on two kept-alive connections: the final status and the note's look (or, after a
/// short step, the look made as it started), then the pipeline's jobs and statuses, then the
/// write, then the verification's note and statuses: four round trips (issue #19's target),
/// where one connection took seven.
#[test]
fn a_jobs_last_step_ends_in_four_round_trips() {
    const ROUND_TRIP: Duration = Duration::from_millis(250);
    let gitlab = GitLab::start();
    let step = |job: &str, command: &str| {
        let finished = run(herald_in_job(&gitlab, job)
            .env("HERALD_MIN_UPDATE_INTERVAL", "60s")
            .args(["run", "--name", job, "--", "sh", "-c", command]));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    };
    // The requests after the step ended, in waves: a request that arrives before the first of
    // its wave is answered (one round trip) went out with it.
    let waves_after = |job: &str, command: &str, written_ago: f64| {
        // Another job wrote the note (with the MR's earlier pipelines, read once) `written_ago`
        // seconds ago: too fresh for a live write (HERALD_MIN_UPDATE_INTERVAL above); busy when
        // that was less than two seconds ago.
        gitlab.with(|w| {
            let id = w.herald_notes(1)[0].id;
            let note = w.notes.iter_mut().find(|n| n.id == id).unwrap();
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
            note.updated_at = now.as_secs_f64() - written_ago;
            w.round_trip = ROUND_TRIP;
        });
        let before = gitlab.requests().len();
        step(job, command);
        gitlab.with(|w| w.round_trip = Duration::ZERO);
        let requests: Vec<Recorded> = gitlab.requests().split_off(before);
        let last_post = requests.iter().rposition(|r| r.method == "POST" && r.path.contains("/statuses/")).unwrap();
        let ended = requests[last_post].at - ROUND_TRIP / 2;
        let mut waves: Vec<Vec<String>> = Vec::new();
        let mut wave_start = None;
        for request in requests.iter().filter(|r| r.at >= ended) {
            let kind = format!("{} {}", request.method, request.path.rsplit('/').next().unwrap_or_default());
            match wave_start {
                Some(start) if request.at < start + ROUND_TRIP => waves.last_mut().unwrap().push(kind),
                _ => {
                    wave_start = Some(request.at);
                    waves.push(vec![kind]);
                }
            }
        }
        let note = &gitlab.with(|w| w.herald_notes(1))[0];
        assert!(note.body.contains(&format!("✅ {job} passed in")), "{}", note.body);
        waves
    };
    step("setup", "true");
    // A step of more than a second: its live look opened the second connection, and the final
    // write looks again alongside the final status.
    let waves = waves_after("long", "sleep 2.5", 30.0);
    let sizes = |waves: &[Vec<String>]| waves.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(sizes(&waves), [2, 2, 1, 2], "{waves:?}");
    // A short step: the look made as it started stands in for the final write's (it went out
    // with the `running` post, or with the final one when the step ended before that).
    let waves = waves_after("short", "true", 30.0);
    assert_eq!(sizes(&waves)[1..], [2, 1, 2], "{waves:?}");
    // Another job wrote the note a moment ago (many jobs are ending together): the same four
    // round trips. No wait for that writer to cover this step, and the verification reads the
    // statuses alongside the note as for a quiet one (issue #27: a busy wait of 250–500 ms and
    // a verification one read after the other made it six and a half).
    // (Written "two seconds from now": half a second before this 2.5 s step ends.)
    let waves = waves_after("busy", "sleep 2.5", -2.0);
    assert_eq!(sizes(&waves), [2, 2, 1, 2], "{waves:?}");
    let waves = waves_after("busy-short", "true", 0.3);
    assert_eq!(sizes(&waves)[1..], [2, 1, 2], "{waves:?}");
}

/// A job's last step leaves its write to another step whose final state landed after its own
/// (GitLab's `finished_at`, in the statuses it reads after its post) and whose writer renders
/// at once: that writer reads the statuses after its own post, so after this one's (issue #27:
/// one render per job was most of a big pipeline's requests). Not when that step ended earlier,
/// nor when this step has a summary only its job knows, nor when that step passed and this
/// writer has no plan to tell whether it was its job's last (a middle one leaves the note to the
/// next step, 5.).
#[test]
fn a_last_step_leaves_its_write_to_a_step_that_ended_after_it() {
    let checkout = crate::support::TempDir::new("later");
    let config = "setup:\n  script:\n    - herald run --name setup -- true\n\
                  last:\n  script:\n    - herald run --name last -- true\n\
                  other:\n  script:\n    - herald run --name other -- true\n";
    std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
    let cases = [
        (60.0, false, 0, true, true),
        (60.0, false, 12, true, true),
        (-60.0, false, 12, true, false),
        (60.0, true, 0, true, false),
        (60.0, false, 0, false, false),
    ];
    for (other_ended, summary, running, planned, leaves) in cases {
        let gitlab = GitLab::start();
        // `running` other steps still at work, which the note shows.
        for i in 0..running {
            gitlab.with(|w| w.add_status(PIPELINE_MERGED, &format!("herald/busy-{i}"), "running", &job_url(9000 + i)));
        }
        let step = |job: &str, command: &str| {
            let mut herald = herald_in_job(&gitlab, job);
            if planned {
                herald.env("CI_PROJECT_DIR", checkout.path());
            }
            let finished = run(herald
                .env("HERALD_MIN_UPDATE_INTERVAL", "60s")
                .env("HERALD_LOG", "debug")
                .args(["run", "--name", job, "--", "sh", "-c", command]));
            assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
            finished.stderr_text()
        };
        step("setup", "true");
        // Another job's last step ended `other_ended` seconds from now by GitLab's clock; its
        // writer is still at work.
        gitlab.with(|w| {
            let id = w.add_status(PIPELINE_MERGED, "herald/other", "success", &job_url(9999));
            w.shift_finished_at(id, other_ended);
        });
        let before = gitlab.requests().len();
        let command = if summary { r#"echo '# Built' >> "$HERALD_STEP_SUMMARY""# } else { "true" };
        let log = step("last", command);
        let after = gitlab.requests().split_off(before);
        let writes = after.iter().filter(|r| r.path.contains("/notes/") && r.method == "PUT").count();
        let job_pages = after.iter().filter(|r| r.path.contains("/jobs")).count();
        let note = &gitlab.with(|w| w.herald_notes(1))[0].body;
        let case = format!(
            "the other ended {other_ended} s from now, {running} running, summary: {summary}, planned: {planned}\n{log}\n{note}"
        );
        // Many steps running in a note just written by another job: the statuses are read
        // first, and the jobs only when this step's write is not left to another.
        if running > 0 {
            assert_eq!(job_pages, usize::from(!leaves), "{case}");
        }
        assert_eq!(writes, usize::from(!leaves), "{case}");
        assert_eq!(log.contains("left to the writer of 'herald/other'"), leaves, "{case}");
        assert_eq!(note.contains("✅ last passed in"), !leaves, "{case}");
    }
    // No note yet: the claim is left to that writer too (jobs ending together all find none, and
    // every note created is e-mailed to every participant). A step that failed renders at once,
    // plan or not.
    for (other_ended, leaves) in [(60.0, true), (-60.0, false)] {
        let gitlab = GitLab::start();
        gitlab.with(|w| {
            let id = w.add_status(PIPELINE_MERGED, "herald/other", "failed", &job_url(9999));
            w.shift_finished_at(id, other_ended);
        });
        let finished = run(herald_in_job(&gitlab, "last").args(["run", "--name", "last", "--", "true"]));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        let created = gitlab.requests().iter().filter(|r| r.method == "POST" && r.path.ends_with("/notes")).count();
        assert_eq!(created, usize::from(!leaves), "the other ended {other_ended} s from now");
    }
    // Not while GitLab refuses requests: the later writer meets the same and may run out of
    // time, leaving the note to its job's `finalize` (a 429 storm once left a pipeline with no
    // note at all until then). One 429 on this step's status post, and it renders.
    let gitlab = GitLab::start();
    gitlab.with(|w| {
        let id = w.add_status(PIPELINE_MERGED, "herald/other", "failed", &job_url(9999));
        w.shift_finished_at(id, 60.0);
        w.faults = Faults::always(Fault::RateLimited { retry_after_secs: 1 }).only("POST", SHA_MERGE).times(1);
    });
    let finished =
        run(herald_in_job(&gitlab, "last").env("HERALD_LOG", "debug").args(["run", "--name", "last", "--", "true"]));
    let log = finished.stderr_text();
    assert_eq!(finished.code, Some(0), "{log}");
    assert!(log.contains("429"), "the fault was not met: {log}");
    let notes = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(notes.len(), 1, "{log}");
    assert!(notes[0].body.contains("✅ last passed in"), "{log}\n{}", notes[0].body);
}

/// When a pipeline starts, its jobs reach their first live write together: only the first job
/// of the configuration (with steps) claims the note at once, the next ones a turn (0.5 s) later
/// each, and so on, each looking again first (issue #27: dozens of claims, each reading the whole
/// pipeline). A final write claims at once.
#[test]
fn live_writes_take_turns_to_claim_the_note_by_the_configurations_order() {
    let checkout = crate::support::TempDir::new("turns");
    let config = "first:\n  script:\n    - herald run --name a -- make\n\
                  second:\n  script:\n    - herald run --name b -- make\n\
                  third:\n  script:\n    - herald run --name c -- make\n";
    std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
    // The third waits two turns after its live write's look at 1 s: its step has ended by then.
    for (job, step, claims_while_running) in [("first", "a", true), ("third", "c", false)] {
        let gitlab = GitLab::start();
        let finished = run(herald_in_job(&gitlab, job)
            .env("CI_PROJECT_DIR", checkout.path())
            .env("HERALD_LOG", "debug")
            .args(["run", "--name", step, "--", "sleep", "1.6"]));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        let requests = gitlab.requests();
        let created = requests.iter().position(|r| r.method == "POST" && r.path.ends_with("/notes")).expect("a note");
        let final_post = requests.iter().rposition(|r| r.method == "POST" && r.path.contains("/statuses/")).unwrap();
        let case = format!("{job}: {}", finished.stderr_text());
        assert_eq!(created < final_post, claims_while_running, "{case}");
        assert_eq!(requests.iter().filter(|r| r.method == "POST" && r.path.ends_with("/notes")).count(), 1, "{case}");
        assert!(gitlab.with(|w| w.herald_notes(1))[0].body.contains(&format!("✅ {step} passed in")), "{case}");
    }
}

/// A step that is not its job's last and ends at once (10 ms) posts only its final state: one
/// round trip after it ends. `running` waits a moment for that chance, on the publisher's
/// thread: the step itself started without waiting (issue #27: the `running` post in flight
/// made it two).
#[test]
fn an_instant_middle_step_posts_only_its_final_state() {
    const ROUND_TRIP: Duration = Duration::from_millis(250);
    let job = PlannedJob::start();
    job.gitlab.with(|w| w.round_trip = ROUND_TRIP);
    let finished = run(job.herald().args(["run", "--name", "compile", "--", "sleep", "0.01"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let posts: Vec<String> = job
        .gitlab
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.contains("/statuses/"))
        .map(|r| r.body.clone())
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(posts[0].contains("success"), "{posts:?}");
    assert!(job.owed(), "the next step writes the note");
}

/// A writer checks its write against the state, and writes again if a status became final
/// meanwhile (its writer may have written before us and been overwritten). A step that only
/// started elsewhere does not count: its row may lag as live writes may, and in a busy pipeline
/// steps start all the time, which kept the last writer rewriting up to its round limit.
#[test]
fn a_writer_writes_again_for_a_step_that_ended_meanwhile_not_for_one_that_started() {
    const ROUND_TRIP: Duration = Duration::from_millis(200);
    // The pipeline's configuration: `other` runs `check` after `build`.
    let checkout = crate::support::TempDir::new("planned");
    let config = "last:\n  script:\n    - herald run --name last -- true\n\
                  other:\n  script:\n    - herald run --name build -- make\n    - herald run --name check -- make check\n";
    std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
    // A passed step whose job has a later step (planned) is not written for: that step's writer
    // writes after its own final post (issue #27); without the plan, it counts. It counts too
    // once GitLab has refused one of this writer's requests (here a 429 on its status post): the
    // later writer meets the same trouble and may run out of time.
    for (state, planned, troubled, writes) in [
        ("running", false, false, 1),
        ("failed", false, false, 2),
        ("success", false, false, 2),
        ("success", true, false, 1),
        ("success", true, true, 2),
    ] {
        let gitlab = GitLab::start();
        let step = |job: &str| {
            let mut command = herald_in_job(&gitlab, job);
            if planned {
                command.env("CI_PROJECT_DIR", checkout.path());
            }
            command
                .env("HERALD_MIN_UPDATE_INTERVAL", "60s")
                .args(["run", "--name", job, "--", "true"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        };
        let puts = |from: usize| gitlab.requests()[from..].iter().filter(|r| r.method == "PUT").count();
        assert_eq!(crate::support::finish(step("setup")).code, Some(0));
        gitlab.with(|w| {
            let id = w.herald_notes(1)[0].id;
            w.age_note(id, 30.0);
            w.round_trip = ROUND_TRIP;
            if troubled {
                w.faults = Faults::always(Fault::RateLimited { retry_after_secs: 1 }).only("POST", SHA_MERGE).times(1);
            }
        });
        let before = gitlab.requests().len();
        let child = step("last");
        // Between the write and its check, another job's step starts (or ends).
        crate::support::wait_until("the note's write", || puts(before) == 1);
        let url = job_url(9999);
        gitlab.with(|w| w.add_status(PIPELINE_MERGED, "herald/other › build", state, &url));
        let finished = crate::support::finish(child);
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        assert_eq!(puts(before), writes, "a step elsewhere became {state} (planned: {planned}, troubled: {troubled})");
        let note = &gitlab.with(|w| w.herald_notes(1))[0].body;
        assert!(note.contains("✅ last passed in"), "{note}");
        if !planned {
            assert_eq!(note.contains("build"), state != "running", "{note}");
        }
    }
}
