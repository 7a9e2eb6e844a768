//! The command line as users meet it: help, version, usage errors.

use crate::support::{herald, run};

#[test]
fn version_names_target_and_commit() {
    let finished = run(herald().arg("--version"));
    assert_eq!(finished.code, Some(0));
    let line = finished.stdout_text();
    assert!(line.starts_with(&format!("herald {} (", env!("CARGO_PKG_VERSION"))), "{line}");
    assert!(line.contains("-linux-") && line.contains(", commit "), "{line}");
}

#[test]
fn help_lists_the_commands() {
    let finished = run(herald().arg("--help"));
    assert_eq!(finished.code, Some(0));
    let help = finished.stdout_text();
    let commands: Vec<&str> = help.lines().filter_map(|l| l.trim_start().split_once(' ')).map(|(c, _)| c).collect();
    for command in ["run", "doctor"] {
        assert!(commands.contains(&command), "{command} missing from:\n{help}");
    }
    assert!(help.contains("Run one step under supervision; publish it; exit with the step's exit code"), "{help}");
}

/// `herald` alone (or `herald executor` alone) shows the help rather than one line, on stderr with
/// herald's usage-error code: a script whose command line lost its words must not pass.
#[test]
fn herald_alone_prints_the_help() {
    for (args, command) in [(&[][..], "run"), (&["executor"][..], "prepare")] {
        let finished = run(herald().args(args));
        assert_eq!(finished.code, Some(125), "{args:?}");
        assert_eq!(finished.stdout_text(), "", "{args:?}: stdout stays clean");
        let help = finished.stderr_text();
        assert!(help.contains("Usage: herald"), "{args:?}: {help}");
        assert!(help.lines().any(|l| l.trim_start().starts_with(command)), "{args:?}: {help}");
    }
}

#[test]
fn usage_errors_exit_125_with_one_line() {
    for args in [
        &["run"][..],
        &["run", "--timeout", "soon", "--", "true"],
        &["run", "--bogus", "--", "true"],
        &["frobnicate"],
        &["run", "--", ""],
    ] {
        let finished = run(herald().args(args));
        assert_eq!(finished.code, Some(125), "{args:?}");
        let message = finished.stderr_text();
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(message.starts_with("herald"), "{message}");
    }
    let finished = run(herald().args(["run", "--timeout", "soon", "--", "true"]));
    assert!(finished.stderr_text().contains("use e.g. 90s"), "{}", finished.stderr_text());
}

/// The layers of docs/design.md §2: only `main` uses `cli`, and only `cli` (and the commands
/// themselves) use `commands`; and the top-level modules' `crate::` references form no cycle, so
/// every module has a place in one order from the entry points down to `step` and `output`.
#[test]
fn the_layers_do_not_reach_upward() {
    fn sources(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    // module → the modules it names (`crate::x`, or `x` inside `use crate::{…}`)
    let mut uses: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        if relative != "main.rs" && relative != "cli.rs" {
            assert!(!text.contains("crate::cli"), "{relative} reaches up into cli");
        }
        if relative != "cli.rs" && relative != "lib.rs" && !relative.starts_with("commands/") {
            assert!(!text.contains("crate::commands"), "{relative} reaches up into commands");
        }
        let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        let named = uses.entry(module.clone()).or_default();
        let word = |s: &str| s.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                named.extend(group.split(',').map(|part| word(part.trim())).filter(|m| !m.is_empty()));
            } else {
                named.insert(word(rest));
            }
        }
        named.remove(&module);
    }
    // Depth-first: a module met again while still on the path closes a cycle.
    fn visit<'a>(
        module: &'a str,
        uses: &'a std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut std::collections::BTreeSet<&'a str>,
    ) {
        if let Some(at) = path.iter().position(|m| *m == module) {
            panic!("the modules form a cycle: {}", [&path[at..], &[module]].concat().join(" → "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in uses.get(module).into_iter().flatten() {
            visit(next, uses, path, done);
        }
        path.pop();
    }
    let mut done = Default::default();
    for module in uses.keys() {
        visit(module, &uses, &mut Vec::new(), &mut done);
    }
}

/// The commands that exist only to publish say why they did nothing, in one line, and exit 0.
#[test]
fn note_and_finalize_outside_ci_say_why_they_do_nothing() {
    for args in [&["note"][..], &["note", "--final"], &["finalize"]] {
        let finished = run(herald().args(args));
        assert_eq!(finished.code, Some(0), "{args:?}");
        let said = finished.stderr_text();
        assert_eq!(said.lines().count(), 1, "{args:?}: {said}");
        assert!(said.starts_with(&format!("herald {}: nothing to do: outside GitLab CI", args[0])), "{args:?}: {said}");
        assert!(said.contains("HERALD_MODE is ci-only (the default)"), "{args:?}: {said}");
    }
    let off = run(herald().env("GITLAB_CI", "true").env("HERALD_MODE", "off").arg("finalize"));
    assert_eq!((off.code, off.stderr_text()), (Some(0), "herald finalize: nothing to do: HERALD_MODE is off\n".into()));
}

/// `GITLAB_CI=true HERALD_DRY_RUN=1 herald run -- …` on a machine with no GitLab and no CI
/// variables: the job-log section, the summary line and the statuses a CI job would post, with
/// nothing sent and the token nowhere.
#[test]
fn a_dry_run_shows_what_a_ci_job_would_publish_without_gitlab() {
    let gitlab = crate::support::gitlab::GitLab::start();
    let token = crate::support::gitlab::TOKEN_DEVELOPER;
    let finished = run(herald()
        .env("GITLAB_CI", "true")
        .env("HERALD_DRY_RUN", "1")
        .env("HERALD_TOKEN", token)
        .env("HERALD_API_URL", gitlab.api_url())
        .args(["run", "--", "sh", "-c", "sleep 1; echo out; exit 2"]));
    assert_eq!(finished.code, Some(2), "the step's own code");
    assert_eq!(finished.stdout_text(), "out\n");
    let said = finished.stderr_text();
    assert!(said.contains("▶ sleep"), "the section: {said}");
    assert!(said.contains("✘ sleep failed (exit 2) after 1."), "the summary line: {said}");
    let posts: Vec<&str> = said.lines().filter(|l| l.starts_with("herald (dry run): POST ")).collect();
    assert_eq!(posts.len(), 2, "running, then the final state: {said}");
    assert!(posts.iter().all(|p| p.contains("/projects/CI_PROJECT_ID/statuses/CI_COMMIT_SHA {")), "{said}");
    assert!(posts.iter().all(|p| p.contains(r#""name":"herald/herald › sleep""#)), "{said}");
    assert!(posts[0].contains(r#""state":"running""#), "{said}");
    assert!(posts[1].contains(r#""description":"failed (exit 2) after 1."#), "{said}");
    assert!(posts[1].contains(r#""state":"failed""#), "{said}");
    assert!(!said.contains(token) && !said.contains("not publishing"), "{said}");
    assert!(gitlab.requests().is_empty(), "nothing sent");
}

/// Outside CI a dry run publishes nothing either, as every run there; asked to show something, it
/// says why in one line. Without HERALD_DRY_RUN the run stays silent.
#[test]
fn a_dry_run_outside_ci_says_why_nothing_would_be_published() {
    let finished = run(herald().env("HERALD_DRY_RUN", "1").args(["run", "--", "true"]));
    assert_eq!(finished.code, Some(0));
    let said = finished.stderr_text();
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.starts_with("herald (dry run): nothing would be published: outside GitLab CI"), "{said}");
    let quiet = run(herald().args(["run", "--", "true"]));
    assert_eq!((quiet.code, quiet.stderr_text()), (Some(0), String::new()));
}

/// A note needs a merge request and a pipeline: `herald note` without the pipeline names that,
/// not the merge request it was given, and sends nothing.
#[test]
fn a_note_without_a_pipeline_says_so() {
    let gitlab = crate::support::gitlab::GitLab::start();
    let finished = run(herald()
        .env("HERALD_MODE", "always")
        .env("HERALD_TOKEN", crate::support::gitlab::TOKEN_DEVELOPER)
        .env("HERALD_API_URL", gitlab.api_url())
        .env("HERALD_PROJECT", "42")
        .env("HERALD_SHA", crate::support::gitlab::SHA_FEATURE)
        .env("HERALD_MR_IID", "1")
        .arg("note"));
    assert_eq!(finished.code, Some(0));
    let said = finished.stderr_text();
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("no pipeline to show (CI_PIPELINE_ID or HERALD_PIPELINE_ID is not set)"), "{said}");
    assert!(gitlab.requests().is_empty(), "{:?}", gitlab.requests());
}

/// A dry run in a merge-request pipeline shows the statuses; the note, drawn from GitLab's state
/// that a dry run does not read, is left out (`herald note` says so), never reported as refused.
#[test]
fn a_dry_run_in_a_merge_request_pipeline_leaves_the_note_out() {
    let gitlab = crate::support::gitlab::GitLab::start();
    let dry = || {
        let mut command = herald();
        command
            .env("GITLAB_CI", "true")
            .env("HERALD_DRY_RUN", "1")
            .env("HERALD_API_URL", gitlab.api_url())
            .env("CI_PIPELINE_ID", "5")
            .env("CI_MERGE_REQUEST_IID", "3");
        command
    };
    let step = run(dry().args(["run", "--name", "unit", "--", "sh", "-c", "sleep 1.2; exit 1"]));
    assert_eq!(step.code, Some(1));
    let said = step.stderr_text();
    assert!(said.contains(r#""state":"failed""#), "{said}");
    assert!(!said.contains("/notes") && !said.contains("not updated"), "{said}");
    let note = run(dry().arg("note"));
    assert_eq!(note.code, Some(0));
    assert_eq!(
        note.stderr_text(),
        "herald (dry run): no note: it is drawn from GitLab's state, which a dry run does not read\n"
    );
    assert!(gitlab.requests().is_empty());
}

/// The README is short and sends readers to docs/guide.md, which documents every command and
/// every `HERALD_*` variable herald reads (build-time ones from build.rs aside): a variable or a
/// command added without a word in the guide fails here.
#[test]
fn the_guide_documents_every_command_and_variable() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    assert!(readme.contains("](docs/guide.md)"), "the README links the guide");
    let guide = std::fs::read_to_string(repo.join("docs/guide.md")).unwrap();
    let help = run(herald().arg("--help")).stdout_text();
    let commands = help.lines().skip_while(|l| !l.starts_with("Commands:")).skip(1).take_while(|l| !l.is_empty());
    for command in commands.filter_map(|l| l.split_whitespace().next()).filter(|c| *c != "help") {
        assert!(guide.contains(&format!("herald {command}")), "docs/guide.md never mentions `herald {command}`");
    }
    let build_time = std::fs::read_to_string(repo.join("build.rs")).unwrap();
    let mut files = vec![repo.join("src")];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Every string literal that is a variable name: `"HERALD_…"`.
        for (at, _) in text.match_indices("\"HERALD_") {
            let name: String = text[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let literal = text[at + 1 + name.len()..].starts_with('"');
            if literal && !build_time.contains(&name) {
                assert!(guide.contains(&name), "docs/guide.md never mentions {name} (read in {})", path.display());
            }
        }
    }
}

/// Everything herald says is masked, whichever layer says it: a usage error quoting a flag's
/// value, a configuration error that lower-cases the value it quotes, a command that was not
/// found, a file that cannot be read — with the token in a variable, and with the token in
/// HERALD_TOKEN_FILE (in no variable at all). The token here has no known token shape, so only
/// the masking of the process's own secrets can catch it.
#[test]
fn every_line_herald_says_masks_the_token() {
    use std::os::unix::fs::PermissionsExt;
    const SECRET: &str = "Legacy20charTokenXyZ9";
    let dir = crate::support::TempDir::new("masked-lines");
    let file = dir.join("token");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, String)>);
    let cases: Vec<Case> = vec![
        ("command not found", vec!["run".into(), "--".into(), SECRET.into()], vec![]),
        ("a flag's value", vec!["run".into(), "--timeout".into(), SECRET.into(), "--".into(), "true".into()], vec![]),
        (
            "a lower-cased value",
            vec!["run".into(), "--".into(), "true".into()],
            vec![("HERALD_MODE", format!("bogus{SECRET}"))],
        ),
        ("a file that cannot be read", vec!["tasks".into(), "--file".into(), format!("/nonexistent/{SECRET}")], vec![]),
    ];
    for (token_env, value) in [("HERALD_TOKEN", SECRET.to_owned()), ("HERALD_TOKEN_FILE", file.display().to_string())] {
        for (what, args, extra) in &cases {
            let mut command = herald();
            command.env(token_env, &value).args(args);
            for (key, value) in extra {
                command.env(key, value);
            }
            let finished = run(&mut command);
            let output = format!("{}{}", finished.stdout_text(), finished.stderr_text());
            assert!(!output.is_empty(), "{what}: herald said nothing");
            assert!(
                !output.to_lowercase().contains(&SECRET.to_lowercase()),
                "{what} ({token_env}): the token was printed: {output}"
            );
        }
    }
}
