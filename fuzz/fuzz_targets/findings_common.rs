// Shared by the findings readers' targets (included, not a target of its own).

use std::path::PathBuf;
use std::sync::OnceLock;

use herald::findings::report::{parse, Format};
use herald::publish::findings::thread_body;

/// A checkout with a few files a report's fixes may name (and a link out of it).
fn checkout() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("herald-fuzz-checkout-{}", std::process::id()));
        std::fs::create_dir_all(root.join("app")).unwrap();
        std::fs::write(root.join("a.py"), "import os\n    x = f(1)\nprint('é€')\n\n").unwrap();
        std::fs::write(root.join("app/b.rs"), "fn main() {\n    return 1;\n}\n").unwrap();
        let _ = std::os::unix::fs::symlink("/proc/self/environ", root.join("app/env.py"));
        root
    })
}

/// Reads `data` as a report of `format`: a result or an error, never a panic; every finding
/// inside the checkout; every thread body inert and ending with herald's marker.
pub fn check(data: &[u8], format: Format) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(loaded) = parse(text, format, "fuzz", checkout()) else { return };
    for finding in &loaded.findings {
        assert!(!finding.path.starts_with('/') && !finding.path.split('/').any(|part| part == ".."));
        assert!(finding.line >= 1 && finding.end_line >= finding.line);
        let body = thread_body(finding, finding.line, "job", 1);
        let last = body.trim_end().lines().last().unwrap_or_default();
        assert!(last.starts_with("<!-- herald:finding ") && last.ends_with(" -->"), "{body}");
        assert_eq!(body.matches("-->").count(), 1 + finding.suggestion.iter().flatten().map(|l| l.matches("-->").count()).sum::<usize>());
        assert!(!body.lines().any(|line| line.trim_start().starts_with('/')), "{body}");
        assert!(body.match_indices('@').all(|(i, _)| body[i + 1..].starts_with('\u{200b}')), "{body}");
        assert!(!body.contains("HOME="), "a file out of the checkout was read: {body}");
    }
}
