//! What herald keeps between processes (a job's steps, parallel steps), done one way each: files
//! rewritten whole, and a hash that is the same in every build.

use std::io;
use std::path::Path;

/// Replaces a file's content in one step: the bytes go to a name of this process's beside the
/// file, which is then renamed over it, so a reader (a parallel step, GitLab's artifact upload)
/// sees the old content or the new, never half of it.
pub fn write_atomically(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.herald-{}", std::process::id()));
    let written = std::fs::write(&temporary, bytes).and_then(|()| std::fs::rename(&temporary, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

/// A 64-bit FNV-1a hash, the same in every herald build and process (std's `DefaultHasher` is
/// not promised to be): for file names and for values kept between a job's steps.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hash_is_fnv_1a() {
        // The published FNV-1a test vectors: a change here would orphan every kept value.
        assert_eq!(super::stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn replaces_the_content_and_leaves_nothing_beside_it() {
        let dir = std::env::temp_dir().join(format!("herald-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("file.json");
        std::fs::write(&path, "old").unwrap();
        super::write_atomically(&path, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["file.json"]);
        // A directory that is not there: an error, and no temporary left anywhere.
        assert!(super::write_atomically(&dir.join("missing/file"), "x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
