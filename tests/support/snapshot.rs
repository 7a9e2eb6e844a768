//! Snapshot assertions for text people and tools read (the MR note, `herald tasks`), with insta:
//! the expected text lives in tests/snapshots/<name>.snap, reviewed like code. A difference
//! fails the test with a diff and leaves <name>.snap.new beside it (outside CI);
//! `cargo insta review`, or `INSTA_UPDATE=always cargo test`, accepts it.

pub fn assert_snapshot(name: &str, actual: &str) {
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name, actual);
    });
}
