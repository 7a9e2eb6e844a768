//! Snapshot assertions for text people and tools read (the MR note, `herald tasks`): the expected
//! text lives in tests/snapshots/<name>.md (or <name> when it has an extension), reviewed like code. `UPDATE_SNAPSHOTS=1 cargo test` rewrites them;
//! without it a missing or different snapshot fails the test.

use std::path::PathBuf;

pub fn assert_snapshot(name: &str, actual: &str) {
    let file = if name.contains('.') { name.to_owned() } else { format!("{name}.md") };
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(file);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no snapshot {}; create it with UPDATE_SNAPSHOTS=1 and review it", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or(expected.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from {} at line {}:\n  expected: {:?}\n  actual:   {:?}\n(UPDATE_SNAPSHOTS=1 to accept)",
            path.display(),
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}
