//! The API token. It lives in this type from the moment it is read, and leaves it only as the
//! `PRIVATE-TOKEN` header value. Everything the server says passes through `redact` before herald
//! prints it, because servers and proxies do echo request headers back in error pages.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::untrusted_file::{self, Links, Refused};

pub use crate::redact::MASK;

/// The most a token file may hold: GitLab's tokens are well under 100 bytes; a larger file is not
/// a token file, and is not read further.
const MOST_TOKEN_FILE_BYTES: u64 = 4096;

#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: &str) -> Token {
        Token(secret.trim().to_owned())
    }

    /// The token in `path` (`HERALD_TOKEN_FILE`), read once per process: later calls get the
    /// first answer. The file must be a regular file (a symbolic link is not followed), owned by
    /// herald's own user, with no permission for group or others (mode 0600 or 0400), and hold
    /// one token on one line. Anything else is refused with one line that names the file and the
    /// fix, never its contents. Callers print that line (doctor, the run's setup failure) or
    /// drop it; none tells reasons apart, so it is text.
    pub fn from_file(path: &Path) -> Result<Token, String> {
        static READ: Mutex<Vec<(PathBuf, Result<Token, String>)>> = Mutex::new(Vec::new());
        let mut read = READ.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, answer)) = read.iter().find(|(p, _)| p == path) {
            return answer.clone();
        }
        let answer = read_token_file(path).map_err(|why| format!("HERALD_TOKEN_FILE {}: {why}", path.display()));
        read.push((path.to_owned(), answer.clone()));
        answer
    }

    /// The secret itself, for the request header only.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// A CI job token (`glcbt-`): GitLab ignores it as `PRIVATE-TOKEN` (gitlab.md §A.1).
    pub fn is_job_token(&self) -> bool {
        self.0.starts_with("glcbt-")
    }

    /// `text` with every copy of the token replaced by `[MASKED]`, including percent-encoded copies.
    pub fn redact(&self, text: &str) -> String {
        crate::redact::mask_value(text, &self.0)
    }
}

/// The token file's checks, in order; the refusal is one line without the path (`from_file`
/// adds it). Errors here only travel up to be printed (doctor, the run's setup line), so they
/// stay text.
fn read_token_file(path: &Path) -> Result<Token, String> {
    // A link is refused rather than followed; a FIFO put in its place cannot block herald.
    let file = untrusted_file::open(path, Links::Refuse).map_err(|refused| match refused {
        Refused::Link => "is a symbolic link; name the file itself".to_owned(),
        Refused::Open(error) => format!("cannot be opened: {error}"),
        Refused::Read(error) => format!("cannot be read: {error}"),
        Refused::NotRegular(_) => "is not a regular file".to_owned(),
        Refused::TooLarge { .. } => refused.to_string(),
    })?;
    let meta = file.metadata();
    // O_NOFOLLOW covers the last name only: a linked directory on the way would let whoever
    // controls the link choose the file. The path must be the file's real one.
    let real = std::fs::canonicalize(path).map_err(|error| format!("cannot be resolved: {error}"))?;
    if std::path::absolute(path).ok().as_deref() != Some(real.as_path()) {
        return Err(format!(
            "goes through a symbolic link or '..' on its way; name the file by its real path ({})",
            real.display()
        ));
    }
    let own_uid = untrusted_file::effective_user_id();
    if meta.uid() != own_uid {
        return Err(format!(
            "is owned by uid {}, not by herald's user (uid {own_uid}); chown it to the user herald runs as",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!("has mode {mode:04o}: other users can read or change it; chmod 600 {}", path.display()));
    }
    if meta.len() > MOST_TOKEN_FILE_BYTES {
        return Err(format!("holds more than {MOST_TOKEN_FILE_BYTES} bytes: not a token file"));
    }
    let bytes = file.read_whole(MOST_TOKEN_FILE_BYTES).map_err(|refused| match refused {
        Refused::TooLarge { .. } => format!("holds more than {MOST_TOKEN_FILE_BYTES} bytes: not a token file"),
        refused => refused.to_string(),
    })?;
    Token::from_file_contents(&bytes)
}

impl Token {
    /// The token a token file holds: one word of text, surrounding blanks and newlines ignored,
    /// at most `MOST_TOKEN_FILE_BYTES`. The error never quotes the contents (fuzz/token_file);
    /// it is `from_file`'s line, printed, so it is text.
    pub fn from_file_contents(bytes: &[u8]) -> Result<Token, String> {
        if bytes.len() as u64 > MOST_TOKEN_FILE_BYTES {
            return Err(format!("holds more than {MOST_TOKEN_FILE_BYTES} bytes: not a token file"));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "is not text: it should hold the token alone".to_owned())?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err("is empty: it should hold the token".to_owned());
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("holds more than one word: it should hold the token alone, on one line".to_owned());
        }
        Ok(Token::new(secret))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({MASK})")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_itself() {
        let token = Token::new("glpat-abc+def/ghi");
        assert_eq!(format!("{token} {token:?}"), "[MASKED] Token([MASKED])");
        assert_eq!(
            token.redact("echo: PRIVATE-TOKEN: glpat-abc+def/ghi and glpat-abc%2Bdef%2Fghi"),
            "echo: PRIVATE-TOKEN: [MASKED] and [MASKED]"
        );
    }

    fn token_file(dir: &tempfile::TempDir, name: &str, mode: u32, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_token_file_is_read_only_when_private_and_plain() {
        let dir = tempfile::tempdir().unwrap();
        let good = token_file(&dir, "good", 0o600, "glpat-from-file\n");
        assert!(Token::from_file(&good) == Ok(Token::new("glpat-from-file")));
        let read_only = token_file(&dir, "read-only", 0o400, "glpat-from-file");
        assert!(Token::from_file(&read_only).is_ok());
        // Read once: a later change is not seen by this process.
        std::fs::write(&good, "glpat-changed").unwrap();
        assert!(Token::from_file(&good) == Ok(Token::new("glpat-from-file")));

        let refused = |path: &Path| Token::from_file(path).expect_err("refused");
        for mode in [0o640, 0o604, 0o644, 0o660, 0o700 | 0o001] {
            let path = token_file(&dir, &format!("mode-{mode:o}"), mode, "glpat-secret-in-file");
            let why = refused(&path);
            assert!(why.contains(&format!("has mode {mode:04o}")) && why.contains("chmod 600"), "{why}");
            assert!(!why.contains("glpat-secret-in-file"), "{why}");
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&read_only, &link).unwrap();
        assert!(refused(&link).ends_with("is a symbolic link; name the file itself"), "{}", refused(&link));
        // A linked directory on the way: whoever controls the link would choose the file.
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        token_file(&dir, "real/token", 0o600, "glpat-behind-a-link");
        std::os::unix::fs::symlink(&real, dir.path().join("linkdir")).unwrap();
        let behind = refused(&dir.path().join("linkdir/token"));
        assert!(behind.contains("goes through a symbolic link") && behind.contains("real path"), "{behind}");
        assert!(!behind.contains("glpat-behind-a-link"), "{behind}");
        assert!(refused(dir.path()).ends_with("is not a regular file"));
        assert!(refused(&dir.path().join("missing")).contains("cannot be opened"));
        assert!(refused(&token_file(&dir, "empty", 0o600, " \n")).ends_with("is empty: it should hold the token"));
        let two = refused(&token_file(&dir, "two", 0o600, "glpat-one\nglpat-two\n"));
        assert!(two.contains("more than one word") && !two.contains("glpat-one"), "{two}");
        let big = refused(&token_file(&dir, "big", 0o600, &"x".repeat(5000)));
        assert!(big.contains("more than 4096 bytes"), "{big}");
    }

    #[test]
    fn a_token_file_of_another_owner_is_refused() {
        if untrusted_file::effective_user_id() != 0 {
            eprintln!("skipped: changing a file's owner needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(&dir, "theirs", 0o600, "glpat-theirs");
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let why = Token::from_file(&path).expect_err("refused");
        assert!(why.contains("is owned by uid 65534, not by herald's user (uid 0)"), "{why}");
    }

    #[test]
    fn recognises_job_tokens() {
        assert!(Token::new("glcbt-64_abc").is_job_token());
        assert!(!Token::new("glpat-abc").is_job_token());
    }
}
