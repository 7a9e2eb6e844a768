//! The API token. It lives in this type from the moment it is read, and leaves it only as the
//! `PRIVATE-TOKEN` header value. Everything the server says passes through `redact` before herald
//! prints it, because servers and proxies do echo request headers back in error pages.

use std::fmt;

pub use crate::redact::MASK;

#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(secret: &str) -> Token {
        Token(secret.trim().to_owned())
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
