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
