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

/// Every `.rs` file under `dir`, recursively.
fn rust_sources(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rust_sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The layer order as docs/design.md §2 writes it, between the lines `<!-- layers -->` and
/// `<!-- /layers -->`: one layer per line (`1. cli`, `5. gitlab, env, …`), from the top.
fn design_layers() -> Vec<Vec<String>> {
    let design =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/design.md")).unwrap();
    let block = design.split("<!-- layers -->").nth(1).expect("docs/design.md has a <!-- layers --> block");
    let block = &block[..block.find("<!-- /layers -->").expect("the layers block ends")];
    let layers: Vec<Vec<String>> = block
        .lines()
        .filter_map(|line| line.trim().split_once(". "))
        .map(|(_, modules)| modules.split(',').map(|m| m.trim().trim_matches('`').to_owned()).collect())
        .collect();
    assert!(layers.len() > 3, "the layers block lists the layers: {layers:?}");
    layers
}

/// The layers of docs/design.md §2, as written there: every top-level module of `src/` has its
/// layer, and each uses (`crate::x`, or `x` inside `use crate::{…}`) only modules of the layers
/// below its own, so there is no cycle and nothing reaches upward. Only `main` uses `cli`.
#[test]
fn the_layers_are_the_order_docs_design_md_gives() {
    let layers = design_layers();
    let layer_of = |module: &str| layers.iter().position(|layer| layer.iter().any(|m| m == module));
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in rust_sources(&src) {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
        if module == "main" || module == "lib" {
            continue;
        }
        let Some(own) = layer_of(&module) else {
            panic!("src/{relative}: the module `{module}` has no layer in docs/design.md §2")
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let word = |s: &str| s.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>();
        let mut named = std::collections::BTreeSet::new();
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
        for used in named {
            let Some(theirs) = layer_of(&used) else {
                panic!("src/{relative} uses `{used}`, which has no layer in docs/design.md §2")
            };
            assert!(
                theirs > own,
                "src/{relative} (layer {}, `{module}`) uses `{used}` (layer {}): a module uses only the layers below its own",
                own + 1,
                theirs + 1
            );
        }
    }
}

/// Commands are leaves (docs/design.md §2): no file of `src/commands/` uses another command's
/// module, by `crate::commands::x` or, from inside `commands/`, `super::x` (`super::super::x` one
/// folder down). What several commands share lives in a layer below (`lifecycle`), or in
/// `commands/mod.rs` when only commands need it.
#[test]
fn no_command_uses_another_commands_module() {
    let commands = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands");
    let shared = std::fs::read_to_string(commands.join("mod.rs")).unwrap();
    let command_modules: Vec<String> = shared
        .lines()
        .filter_map(|line| line.trim().trim_start_matches("pub ").strip_prefix("mod "))
        .map(|name| name.trim_end_matches(';').trim().to_owned())
        .collect();
    assert!(command_modules.len() > 3, "commands/mod.rs declares the commands: {command_modules:?}");
    let word = |s: &str| s.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>();
    let mut crossings = Vec::new();
    for file in rust_sources(&commands) {
        let relative = file.strip_prefix(&commands).unwrap().to_string_lossy().into_owned();
        let own = relative.split('/').next().unwrap().trim_end_matches(".rs");
        if own == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let up = if relative.contains('/') { "super::super::" } else { "super::" };
        let mut named = std::collections::BTreeSet::new();
        for prefix in ["crate::commands::", up] {
            for (at, _) in text.match_indices(prefix) {
                // `super::super::x` also contains `super::x`: only the whole prefix counts.
                if prefix == "super::" && text[..at].ends_with("super::") {
                    continue;
                }
                let rest = &text[at + prefix.len()..];
                match rest.strip_prefix('{') {
                    Some(group) => named.extend(
                        group[..group.find('}').unwrap_or(group.len())].split(',').map(|part| word(part.trim())),
                    ),
                    None => {
                        named.insert(word(rest));
                    }
                }
            }
        }
        for used in named.into_iter().filter(|used| used != own && command_modules.contains(used)) {
            crossings.push(format!("src/commands/{relative} uses the command `{used}`"));
        }
    }
    assert!(crossings.is_empty(), "commands are leaves (docs/design.md §2):\n{}", crossings.join("\n"));
}

/// The rooms stay small (issue #26): no source file in `src/` (nor in the workspace's stand-in and
/// campaigns) over 600 lines, and no function over 80 lines, counted from its `fn` line to its
/// closing brace. A long function is found by
/// its indentation: rustfmt closes every body at the indentation its `fn` line opened it.
#[test]
fn no_source_file_over_600_lines_and_no_function_over_80() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut too_big = Vec::new();
    for file in ["src", "standin/src", "campaigns/src"].iter().flat_map(|dir| rust_sources(&root.join(dir))) {
        let relative = file.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        if lines.len() > 600 {
            too_big.push(format!("{relative}: {} lines", lines.len()));
        }
        for (at, line) in lines.iter().enumerate() {
            let code = line.trim_start();
            let indent = &line[..line.len() - code.len()];
            let signature = code
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub(super) ")
                .trim_start_matches("const ")
                .trim_start_matches("unsafe ")
                .trim_start_matches("extern \"C\" ");
            if !signature.starts_with("fn ") {
                continue;
            }
            // The body opens on the first line (of the signature) ending in `{`, unless the
            // signature ends first (`;`: a declaration) or the body closes on the same line.
            let Some(open) = (at..lines.len()).find(|&i| {
                let l = lines[i].trim_end();
                l.ends_with('{') || l.ends_with(';') || l.ends_with('}')
            }) else {
                continue;
            };
            if !lines[open].trim_end().ends_with('{') {
                continue;
            }
            let close = format!("{indent}}}");
            let end = (open + 1..lines.len()).find(|&i| lines[i].trim_end() == close).unwrap_or(lines.len() - 1);
            let length = end - at + 1;
            if length > 80 {
                too_big.push(format!(
                    "{relative}:{}: `{}` is {length} lines",
                    at + 1,
                    signature.trim_end_matches('{').trim()
                ));
            }
        }
    }
    assert!(too_big.is_empty(), "rooms too big (docs/design.md §2):\n{}", too_big.join("\n"));
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
