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
/// themselves) use `commands`; everything below the entry points is reached from above.
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
    for file in files {
        let relative = file.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&file).unwrap();
        if relative != "main.rs" && relative != "cli.rs" {
            assert!(!text.contains("crate::cli"), "{relative} reaches up into cli");
        }
        if relative != "cli.rs" && relative != "lib.rs" && !relative.starts_with("commands/") {
            assert!(!text.contains("crate::commands"), "{relative} reaches up into commands");
        }
    }
}
