//! Where the configuration's files come from, as parameters of `load` so that loading stays pure:
//! `Source` (a checkout on disk, or files in memory for fuzzing and property tests) and `Fetch`
//! (GitLab, for what is not in the checkout).

use std::path::{Path, PathBuf};

/// Brings included files that are not in the checkout (gitlab.md §I.1). An error is the reason the
/// include is unresolved, shown in `Pipeline::unresolved`; nothing decides on its kind, so it is
/// text.
pub trait Fetch {
    /// A file of a project (id or path) at a ref (None: its default branch).
    fn project_file(&self, project: &str, reference: Option<&str>, path: &str) -> Result<Vec<u8>, String>;
    /// The tag names of a project's releases (a component's versions), in any order.
    fn release_tags(&self, project: &str) -> Result<Vec<String>, String>;
    /// A public URL (`include: remote`), fetched without the token.
    fn url(&self, url: &str) -> Result<Vec<u8>, String>;
    /// A template bundled with GitLab (`include: template`), by its file name.
    fn template(&self, name: &str) -> Result<Vec<u8>, String>;
}

/// Where the configuration's files come from.
pub trait Source {
    /// The file at `path` (relative to the project root), refusing one larger than `limit` bytes.
    /// The error only travels up, after the file's name, into a `LoadError`: text.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String>;
    /// Every file of the project, relative to its root, for globs.
    fn list(&self) -> Vec<String>;
}

/// A checkout on disk.
pub struct Checkout(pub PathBuf);

impl Source for Checkout {
    /// Only regular files, opened without blocking and read to at most `limit` bytes: a FIFO
    /// would block the read forever, and a link to `/dev/zero` never ends (`untrusted_file`, the
    /// one reader of files herald does not trust). Links are followed: a checkout may link its
    /// own files, and `local:` paths are kept inside it by name before this is asked.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        use crate::untrusted_file::{self, Links, Refused};
        let said = |refused: Refused| match refused {
            Refused::Open(e) | Refused::Read(e) => format!("cannot read it: {e}"),
            Refused::NotRegular(_) | Refused::Link => "not a regular file".to_owned(),
            Refused::TooLarge { limit } => format!("more than the {limit} bytes herald reads"),
        };
        let file = untrusted_file::open(&self.0.join(path), Links::Follow).map_err(said)?;
        let size = file.metadata().len();
        if size > limit {
            return Err(format!("{size} bytes, more than the {limit} herald reads"));
        }
        file.read_whole(limit).map_err(said)
    }

    fn list(&self) -> Vec<String> {
        let mut found = Vec::new();
        walk(&self.0, &self.0, &mut found);
        found
    }
}

/// Files in memory: (path, content).
pub struct InMemory(pub Vec<(String, Vec<u8>)>);

impl Source for InMemory {
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        let (_, content) = self.0.iter().find(|(p, _)| p == path).ok_or("cannot read it: no such file")?;
        if content.len() as u64 > limit {
            return Err(format!("{} bytes, more than the {limit} herald reads", content.len()));
        }
        Ok(content.clone())
    }

    fn list(&self) -> Vec<String> {
        self.0.iter().map(|(p, _)| p.clone()).collect()
    }
}

/// Every file below `dir`, as paths relative to `root` (skipping .git).
fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        // Not following symlinks: a link to a parent directory would never end.
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            walk(root, &path, found);
        } else if let Ok(relative) = path.strip_prefix(root) {
            found.push(relative.to_string_lossy().into_owned());
        }
    }
}
