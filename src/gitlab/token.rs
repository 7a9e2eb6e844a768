//! The API token. It lives in this type from the moment it is read, and leaves it only as the
//! `PRIVATE-TOKEN` header value. Everything the server says passes through `redact` before herald
//! prints it, because servers and proxies do echo request headers back in error pages.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
    /// fix, never its contents.
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

fn read_token_file(path: &Path) -> Result<Token, String> {
    // O_NOFOLLOW: a link is refused rather than followed (ELOOP); O_NONBLOCK: a FIFO put in its
    // place cannot block herald.
    let mut file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).map_err(
            |error| match error.raw_os_error() {
                Some(libc::ELOOP) => "is a symbolic link; name the file itself".to_owned(),
                _ => format!("cannot be opened: {error}"),
            },
        )?;
    let meta = file.metadata().map_err(|error| format!("cannot be read: {error}"))?;
    if !meta.file_type().is_file() {
        return Err("is not a regular file".to_owned());
    }
    // SAFETY: geteuid cannot fail and touches no memory.
    let own_uid = unsafe { libc::geteuid() };
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
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MOST_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("cannot be read: {error}"))?;
    if bytes.len() as u64 > MOST_TOKEN_FILE_BYTES {
        return Err(format!("holds more than {MOST_TOKEN_FILE_BYTES} bytes: not a token file"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "is not text: it should hold the token alone".to_owned())?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err("is empty: it should hold the token".to_owned());
    }
    if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("holds more than one word: it should hold the token alone, on one line".to_owned());
    }
    Ok(Token::new(secret))
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

    #[test]
    fn recognises_job_tokens() {
        assert!(Token::new("glcbt-64_abc").is_job_token());
        assert!(!Token::new("glpat-abc").is_job_token());
    }
}
