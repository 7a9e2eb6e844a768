//! Which lines a merge request adds or changes: the `+` lines of its diff's hunks, by the new
//! file's path and line number (the lines a thread can be positioned on as `new_line`).

use std::collections::{BTreeMap, BTreeSet};

/// Changed lines by (new) path.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChangedLines(BTreeMap<String, BTreeSet<u64>>);

impl ChangedLines {
    /// From each changed file's new path and unified diff (`GET …/merge_requests/:iid/diffs`).
    pub fn of<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> ChangedLines {
        let mut changed = BTreeMap::new();
        for (path, diff) in files {
            let lines = added_lines(diff);
            if !lines.is_empty() {
                changed.insert(path.to_owned(), lines);
            }
        }
        ChangedLines(changed)
    }

    /// The first changed line of `line..=end_line` in `path`, where a thread about them goes.
    pub fn first_in(&self, path: &str, line: u64, end_line: u64) -> Option<u64> {
        self.0.get(path)?.range(line..=end_line.max(line)).next().copied()
    }
}

/// The new-file line numbers of a unified diff's added lines.
fn added_lines(diff: &str) -> BTreeSet<u64> {
    let mut added = BTreeSet::new();
    let mut new_line = 0u64;
    let mut in_hunk = false;
    for line in diff.lines() {
        if !in_hunk && !line.starts_with("@@ ") {
            continue; // `diff --git`, `---`/`+++` file headers, when a diff has them
        }
        in_hunk = true;
        if let Some(header) = line.strip_prefix("@@ ") {
            // `@@ -a,b +c,d @@ context`: the hunk's new side starts at c.
            let start = header.split_whitespace().find_map(|part| part.strip_prefix('+'));
            new_line = start.and_then(|s| s.split(',').next()?.parse().ok()).unwrap_or(1);
        } else if line.starts_with('+') {
            added.insert(new_line);
            new_line = new_line.saturating_add(1);
        } else if !(line.starts_with('-') || line.starts_with('\\')) {
            new_line = new_line.saturating_add(1); // a context line
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_are_counted_on_the_new_side() {
        let diff = "--- a/app.py\n+++ b/app.py\n@@ -1,5 +1,6 @@\n import os\n import sys\n+import json\n \n \n def load(path):\n@@ -8,6 +9,14 @@ def load(path):\n     return data\n \n \n+def parse(text):\n+    try:\n-    old\n+        return 1\n \\ No newline at end of file\n";
        let changed = ChangedLines::of([("app.py", diff)]);
        assert_eq!(changed.0["app.py"].iter().copied().collect::<Vec<_>>(), [3, 12, 13, 14]);
        assert_eq!(changed.first_in("app.py", 12, 20), Some(12));
        assert_eq!(changed.first_in("app.py", 1, 2), None, "context lines are not changed lines");
        assert_eq!(changed.first_in("other.py", 1, 100), None);
    }

    #[test]
    fn a_hunk_at_the_largest_line_number_does_not_overflow() {
        let changed = ChangedLines::of([("a.py", "@@ -1 +18446744073709551615 @@\n+a\n b\n+c\n")]);
        assert_eq!(changed.first_in("a.py", u64::MAX, u64::MAX), Some(u64::MAX));
    }
}
