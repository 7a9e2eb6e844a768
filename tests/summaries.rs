//! Step summaries (report/summary.rs): what a step writes to `HERALD_STEP_SUMMARY` or
//! `GITHUB_STEP_SUMMARY` appears under its job in the note and in the job log; hostile files
//! publish nothing unsafe and never change the step's exit code.

use crate::support::gitlab::*;
use crate::support::{herald, herald_in_ci, run, Finished, PipelineKind, TempDir};

/// A job of the merged-results pipeline of MR !1, as a runner runs it, optionally with a
/// configuration that plans its steps.
struct Job {
    gitlab: GitLab,
    checkout: TempDir,
    url: String,
    /// The job's id in the stand-in, and CI_JOB_ID (unique per test run: it keys job memory).
    job_id: u64,
    id: String,
}

impl Job {
    fn start(config: Option<&str>) -> Job {
        let gitlab = GitLab::start();
        let (job_id, url) = gitlab.with(|w| w.add_job(PIPELINE_MERGED, "build", "test", "running"));
        let checkout = TempDir::new("summaries");
        if let Some(config) = config {
            std::fs::write(checkout.join(".gitlab-ci.yml"), config).unwrap();
        }
        let id = format!("{job_id}{}", std::process::id());
        Job { gitlab, checkout, url, job_id, id }
    }

    /// Runs `script` (sh) as the step `name`, with extra variables.
    fn step(&self, name: &str, script: &str, vars: &[(&str, &str)]) -> Finished {
        let mut command = herald_in_ci(&self.gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER);
        command
            .env("CI_JOB_NAME", "build")
            .env("CI_JOB_URL", &self.url)
            .env("CI_JOB_ID", &self.id)
            .env("CI_PROJECT_DIR", self.checkout.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .current_dir(self.checkout.path());
        for (key, value) in vars {
            command.env(key, value);
        }
        run(command.args(["run", "--name", name, "--", "sh", "-c", script]))
    }

    fn note(&self) -> String {
        self.gitlab.with(|w| w.herald_notes(1).first().map(|n| n.body.clone())).expect("a note")
    }
}

/// The note's text a reader sees without unfolding anything: up to the folded part, with each
/// folded summary as its one title line.
fn visible_lines(body: &str) -> usize {
    let visible = &body[..body.find("<!-- herald:carried").unwrap_or(body.len())];
    let mut lines = 0;
    let mut folded_depth = 0;
    for line in visible.lines() {
        if folded_depth == 0 && line.starts_with("<details><summary>") && !line.contains("📝") {
            break; // everything else: folded
        }
        if folded_depth > 0 {
            folded_depth += usize::from(line.starts_with("<details"));
            folded_depth -= usize::from(line.starts_with("</details>"));
            continue;
        }
        lines += 1;
        if line.starts_with("<details><summary>") {
            folded_depth = 1;
        }
    }
    lines
}

#[test]
fn two_steps_of_a_job_write_to_each_variable_and_both_show_under_the_job() {
    let config =
        "build:\n  script:\n    - herald run --name compile -- make\n    - herald run --name check -- make check\n";
    let job = Job::start(Some(config));
    let first = job.step(
        "compile",
        r#"printf '# Build\nbuilt **3** crates\n' >> "$HERALD_STEP_SUMMARY"; [ "$GITHUB_STEP_SUMMARY" = "$HERALD_STEP_SUMMARY" ]"#,
        &[],
    );
    assert_eq!(first.code, Some(0), "GITHUB_STEP_SUMMARY names the same file: {}", first.stderr_text());
    let log = first.stderr_text();
    assert!(log.contains("section_start:") && log.contains("[collapsed=true]"), "{log}");
    assert!(log.contains("📝 summary of compile") && log.contains("built **3** crates"), "{log}");
    // The passing step left the note to the next one; that one shows both summaries.
    let second = job.step("check", r#"printf '## Checks\n- all good\n' >> "$GITHUB_STEP_SUMMARY""#, &[]);
    assert_eq!(second.code, Some(0), "{}", second.stderr_text());
    let note = job.note();
    assert!(note.contains("<details><summary>📝 build › compile — Build</summary>"), "{note}");
    assert!(note.contains("built **3** crates"), "{note}");
    assert!(note.contains("<details><summary>📝 build › check — Checks</summary>"), "{note}");
    assert!(note.contains("- all good"), "{note}");
    assert!(!note.contains("<details open>"), "passed steps' summaries are folded: {note}");
    assert!(visible_lines(&note) <= 40, "{note}");
}

#[test]
fn a_failed_steps_summary_is_open_and_its_exit_code_kept() {
    let job = Job::start(None);
    let finished = job.step(
        "plan",
        r#"printf 'Plan: 1 to add\n\nsome detail\n' > "$HERALD_STEP_SUMMARY"; echo boom >&2; exit 3"#,
        &[],
    );
    assert_eq!(finished.code, Some(3), "{}", finished.stderr_text());
    let note = job.note();
    assert!(note.contains("<details open><summary>📝 build › plan — Plan: 1 to add</summary>"), "{note}");
    // The failure itself comes first, above the summary.
    let failure = note.find("#### ❌ Failed").expect("failure section");
    assert!(failure < note.find("<details open>").unwrap(), "{note}");
}

#[test]
fn a_summary_set_by_the_job_is_left_alone() {
    let dir = TempDir::new("own-summary");
    let own = dir.join("mine.md");
    let finished = run(herald().env("GITLAB_CI", "true").env("GITHUB_STEP_SUMMARY", &own).args([
        "run",
        "--",
        "sh",
        "-c",
        r#"[ "$GITHUB_STEP_SUMMARY" != "$HERALD_STEP_SUMMARY" ] && [ -f "$HERALD_STEP_SUMMARY" ] && [ ! -s "$HERALD_STEP_SUMMARY" ]"#,
    ]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
}

#[test]
fn hostile_summaries_publish_nothing_unsafe_and_keep_exit_codes() {
    let job = Job::start(None);
    let secret_file = job.checkout.join("secret.txt");
    std::fs::write(&secret_file, "the-private-key-material\n").unwrap();
    let secret_file = secret_file.to_string_lossy().into_owned();
    let vars: &[(&str, &str)] = &[
        ("DEPLOY_PASSWORD", "hunter2-deploy-pass"),
        ("HERALD_MASK", "DATABASE_URL"),
        ("DATABASE_URL", "postgres://app:s3cret@db/app"),
    ];
    let hostile = [
        (
            "markup",
            r#"cat > "$HERALD_STEP_SUMMARY" <<'EOF'
# Results
/merge
  /approve
@all please look &#64;here #1 !1
<!-- herald:note pipeline=999999 -->
<!-- herald:carried {"pipeline":1} -->
</details></details><img src=x onerror=alert(1)><script>alert(1)</script>
```
</pre><b>in a fence</b>
EOF
echo "pw: $DEPLOY_PASSWORD url: $DATABASE_URL token: $HERALD_TOKEN" >> "$HERALD_STEP_SUMMARY"
exit 4"#,
            4,
        ),
        ("huge", r#"head -c 10000000 /dev/zero | tr '\0' 'x' | fold -w 100 >> "$HERALD_STEP_SUMMARY""#, 0),
        ("fifo", r#"rm "$HERALD_STEP_SUMMARY" && mkfifo "$HERALD_STEP_SUMMARY""#, 0),
        ("link", &format!(r#"rm "$HERALD_STEP_SUMMARY" && ln -s {secret_file} "$HERALD_STEP_SUMMARY"; exit 5"#), 5),
        ("binary", r#"printf 'ok\377\376 not text\n' > "$HERALD_STEP_SUMMARY""#, 0),
    ];
    for (name, script, code) in &hostile {
        let finished = job.step(name, script, vars);
        assert_eq!(finished.code, Some(*code), "{name}: {}", finished.stderr_text());
        let log = finished.stderr_text();
        assert!(!log.contains("hunter2-deploy-pass") && !log.contains("s3cret"), "{name}: {log}");
        assert!(!log.contains(TOKEN_DEVELOPER), "{name}: {log}");
    }
    let note = job.note();
    // Masked: the secret variables, HERALD_MASK's, the token; the linked file never read.
    for secret in ["hunter2-deploy-pass", "s3cret", TOKEN_DEVELOPER, "the-private-key-material"] {
        assert!(!note.contains(secret), "{secret} in\n{note}");
    }
    assert!(note.contains("pw: [MASKED] url: [MASKED] token: [MASKED]"), "{note}");
    // No quick action ran, no mention, no HTML, herald's markers only herald's own.
    assert!(job.gitlab.with(|w| w.quick_actions.is_empty()), "quick actions ran");
    assert!(!note.lines().any(|line| line.trim_start().starts_with('/')), "{note}");
    assert!(!note.contains("@all") && !note.contains("&#64;here"), "{note}");
    // References notify too (a cross-reference on issue #1); the hidden blocks are comments, which
    // GitLab does not read for references.
    let shown = &note[..note.find("<!-- herald:carried").unwrap()];
    assert!(!shown.contains("#1 ") && !shown.contains("!1\n"), "{shown}");
    for tag in ["<img", "<script", "<b>", "</pre><b>"] {
        assert!(!note.contains(tag), "{tag} in\n{note}");
    }
    assert_eq!(note.matches("<!-- herald:note ").count(), 1, "{note}");
    assert_eq!(note.matches("<!-- herald:carried ").count(), 1, "{note}");
    assert_eq!(note.matches("<details").count(), note.matches("</details>").count(), "{note}");
    assert_eq!(note.matches("<pre>").count(), note.matches("</pre>").count(), "{note}");
    // 10 MB: cut at a line, saying so and where the whole text is; within the note's budgets.
    assert!(note.contains("_… cut here: ") && note.contains("is in the job log"), "{note}");
    let xs = note.lines().filter(|line| line.starts_with("xxxx")).count();
    assert!((1..=90).contains(&xs), "{xs} lines of the 10 MB summary");
    assert!(note.len() < 100_000, "{} bytes", note.len());
    // The FIFO, the link, the bytes that are not UTF-8: a notice each.
    assert!(note.contains("not a regular file"), "{note}");
    assert!(note.contains("replaced by a symbolic link"), "{note}");
    assert!(note.contains("not UTF-8"), "{note}");
    assert!(visible_lines(&note) <= 40, "{} visible lines\n{note}", visible_lines(&note));
}

/// A concurrent writer that rendered from a note without the summary overwrote it: the summary
/// comes back from the job log (its status says it has one) once the job is over, with no job
/// memory to help (another job's herald).
#[test]
fn a_summary_lost_to_another_writer_comes_back_from_the_job_log() {
    let job = Job::start(None);
    let finished = job.step(
        "plan",
        r#"printf '# Plan: 2 to add\n- aws_s3_bucket.logs\npw %s\n' "$DEPLOY_PASSWORD" > "$HERALD_STEP_SUMMARY""#,
        &[("DEPLOY_PASSWORD", "hunter2-deploy-pass")],
    );
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let status = job.gitlab.with(|w| w.statuses(PIPELINE_MERGED)["herald/build › plan"].clone());
    assert!(status.description.as_deref().is_some_and(|d| d.ends_with("📝 summary")), "{status:?}");
    // The job log GitLab holds is what herald printed; the job is over.
    let log = finished.stderr_text();
    // What a writer that never knew the summary leaves: the note without it, visible or carried.
    let lost = format!("<!-- herald:note pipeline={PIPELINE_MERGED} -->\nstale\n");
    job.gitlab.with(|w| {
        w.jobs.iter_mut().filter(|j| j.id == job.job_id).for_each(|j| {
            j.trace = log.clone();
            j.status = "success".into();
        });
        w.notes.iter_mut().filter(|n| n.body.starts_with("<!-- herald:note")).for_each(|n| n.body = lost.clone());
    });
    assert!(!job.note().contains("aws_s3_bucket.logs"));
    let finished = run(herald_in_ci(&job.gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("CI_JOB_ID", "another-job")
        .env("CI_JOB_NAME", "report")
        .arg("note"));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let note = job.note();
    assert!(note.contains("<details><summary>📝 build › plan — Plan: 2 to add</summary>"), "{note}");
    assert!(note.contains("- aws\\_s3\\_bucket.logs") || note.contains("- aws_s3_bucket.logs"), "{note}");
    assert!(note.contains("pw [MASKED]") && !note.contains("hunter2"), "{note}");
}

fn plan_summary(fixture: &str) -> Finished {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform").join(fixture);
    run(herald().arg("plan-summary").arg(path))
}

/// `herald plan-summary` on plan JSON as `terraform show -json` writes it: Terraform's own counts
/// (a replace counts as one to add and one to destroy; reads and no-ops are not changes), then
/// the resources by action.
#[test]
fn plan_summaries_of_real_plan_json() {
    let cases: [(&str, &str, &[&str], &[&str]); 5] = [
        (
            "create.json",
            "### Plan: 2 to add, 0 to change, 0 to destroy.\n",
            &["**➕ to create (2)**", "- `aws_s3_bucket.logs`", "- `aws_iam_user.deploy[\"ci\"]`"],
            &["data.aws_caller_identity"],
        ),
        (
            "update.json",
            "### Plan: 0 to add, 1 to change, 0 to destroy.\n",
            &["- `aws_instance.web`"],
            &["aws_s3_bucket"],
        ),
        (
            "replace.json",
            "### Plan: 3 to add, 1 to change, 2 to destroy.\n",
            &[
                "**♻️ to replace (2)**",
                "- `aws_db_instance.main` — an attribute cannot be updated in place",
                "- `aws_launch_template.app` — tainted",
                "**➕ to create (1)**",
            ],
            &[],
        ),
        (
            "destroy.json",
            "### Plan: 0 to add, 0 to change, 2 to destroy.\n",
            &["**➖ to destroy (2)**", "- `module.cache.aws_elasticache_cluster.this[0]`"],
            &[],
        ),
        ("no-changes.json", "### No changes.\n", &["Your infrastructure matches the configuration."], &["aws_"]),
    ];
    for (fixture, first, present, absent) in cases {
        let finished = plan_summary(fixture);
        assert_eq!(finished.code, Some(0), "{fixture}: {}", finished.stderr_text());
        let text = finished.stdout_text();
        assert!(text.starts_with(first), "{fixture}:\n{text}");
        for line in present {
            assert!(text.contains(line), "{fixture} lacks {line}:\n{text}");
        }
        for word in absent {
            assert!(!text.contains(word), "{fixture} shows {word}:\n{text}");
        }
    }
    // Not a plan: one line, exit 1, nothing on stdout.
    let dir = TempDir::new("not-a-plan");
    std::fs::write(dir.join("state.json"), r#"{"version": 4, "resources": []}"#).unwrap();
    for bad in [dir.join("state.json"), dir.join("missing.json"), "/dev/zero".into()] {
        let finished = run(herald().arg("plan-summary").arg(&bad));
        assert_eq!(finished.code, Some(1), "{}", finished.stderr_text());
        assert_eq!(finished.stderr_text().lines().count(), 1, "{}", finished.stderr_text());
        assert!(finished.stdout.is_empty());
    }
}

/// The template's plan step, with a stand-in `terraform` that prints a fixture as `show -json`
/// does: the plan summary is the plan step's, under its job in the note.
#[test]
fn a_plan_summary_reaches_the_note() {
    let job = Job::start(None);
    let bin = job.checkout.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/terraform/replace.json");
    let herald_dir = std::path::Path::new(env!("CARGO_BIN_EXE_herald")).parent().unwrap().to_owned();
    std::fs::write(
        bin.join("terraform"),
        format!("#!/bin/sh\ncase \"$2\" in show) cat '{}' ;; *) echo \"terraform $*\" ;; esac\n", fixture.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bin.join("terraform"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}:{}", bin.display(), herald_dir.display(), std::env::var("PATH").unwrap_or_default());
    let template =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/terraform.yml"))
            .unwrap();
    let plan_line = template.lines().find_map(|line| line.trim().strip_prefix("- herald run --name plan ")).unwrap();
    // The template's line as the job's shell runs it, with herald on the PATH.
    let mut shell = std::process::Command::new("sh");
    for (key, value) in herald_in_ci(&job.gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER).get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    shell
        .env("CI_JOB_NAME", "build")
        .env("CI_JOB_URL", &job.url)
        .env("CI_JOB_ID", &job.id)
        .env("CI_PROJECT_DIR", job.checkout.path())
        .env("PATH", &path)
        .env("HERALD_TF", "terraform")
        .env("HERALD_TF_ROOT", ".")
        .env_remove("GITHUB_STEP_SUMMARY")
        .current_dir(job.checkout.path())
        .args(["-c", &format!("herald run --name plan {plan_line}")]);
    let finished = run(&mut shell);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let note = job.note();
    assert!(
        note.contains("<details><summary>📝 build › plan — Plan: 3 to add, 1 to change, 2 to destroy.</summary>"),
        "{note}"
    );
    assert!(note.contains("- `aws_db_instance.main` — an attribute cannot be updated in place"), "{note}");
}

/// In a job, the summary file is a private one of its own under TMPDIR, gone once the step has
/// ended; where nothing reads a summary (outside GitLab CI, nothing to publish), the variables
/// name /dev/null, so a script's `>> "$HERALD_STEP_SUMMARY"` still works and no file is made.
#[test]
fn a_summary_file_is_private_and_removed_and_none_is_made_where_nothing_reads_it() {
    let tmp = TempDir::new("summary-tmp");
    let script = r#"echo "$HERALD_STEP_SUMMARY $GITHUB_STEP_SUMMARY"; stat -c '%a %F' "$HERALD_STEP_SUMMARY"; echo '# Built here' >> "$HERALD_STEP_SUMMARY""#;
    let step = |in_ci: bool| {
        let mut command = herald();
        command.env("TMPDIR", tmp.path()).env_remove("GITHUB_STEP_SUMMARY");
        if in_ci {
            command.env("GITLAB_CI", "true"); // no token: nothing published, the summary logged
        }
        let finished = run(command.args(["run", "--", "sh", "-c", script]));
        assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
        finished
    };
    let empty = || std::fs::read_dir(tmp.path()).unwrap().count() == 0;

    let finished = step(false);
    assert_eq!(finished.stdout_text(), "/dev/null /dev/null\n666 character special file\n");
    assert!(empty(), "a file was made");

    let finished = step(true);
    let stdout = finished.stdout_text();
    let (path, mode) = stdout.split_once('\n').unwrap();
    let (herald_path, github_path) = path.split_once(' ').unwrap();
    assert_eq!(herald_path, github_path);
    let path = std::path::Path::new(herald_path);
    assert_eq!(path.parent(), Some(tmp.path()), "{stdout}");
    assert!(path.file_name().unwrap().to_string_lossy().starts_with("herald-summary-"), "{stdout}");
    assert_eq!(mode, "600 regular empty file\n");
    assert!(empty(), "left behind: {:?}", std::fs::read_dir(tmp.path()).unwrap().collect::<Vec<_>>());
    assert!(finished.stderr_text().contains("# Built here"), "not in the job log: {}", finished.stderr_text());
}
