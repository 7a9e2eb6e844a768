//! Replacing a file's content in one step: the bytes go to a name of this process's beside the
//! file, which is then renamed over it, so a reader (a parallel step, GitLab's artifact upload)
//! sees the old content or the new, never half of it. The one way herald rewrites a file.

use std::io;
use std::path::Path;

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.herald-{}", std::process::id()));
    let written = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_content_and_leaves_nothing_beside_it() {
        let dir = std::env::temp_dir().join(format!("herald-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file.json");
        std::fs::write(&path, "old").unwrap();
        super::write(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["file.json"]);
        // A directory that is not there: an error, and no temporary left anywhere.
        assert!(super::write(&dir.join("missing/file"), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
