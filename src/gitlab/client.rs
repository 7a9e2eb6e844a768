//! A small blocking client for GitLab's REST API: JSON in, JSON out, the token in one header.
//!
//! - TLS is rustls with Mozilla's roots, plus the certificates of `HERALD_CA_FILE` (a self-hosted
//!   GitLab's private CA) when one is configured. The proxy variables are honoured
//!   (`PROXY_VARIABLES`, `NO_PROXY`).
//! - Redirects are not followed: a redirect would carry the token to wherever it points.
//! - Every answer that is not 2xx becomes an `ApiError` whose message comes from GitLab's JSON
//!   (`message`, or `error` + `error_description`) or the first line of a plain-text body, with
//!   the token masked: proxies and broken servers echo request headers back.
//! - `dry_run` prints each request instead of sending it and pretends GitLab accepted it.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use ureq::http::HeaderValue;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::token::Token;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle connection is kept for the next request. A step's final status goes out on
/// the connection its `running` post opened, however long the step ran, as long as GitLab still
/// keeps it: its nginx closes a connection idle for 65 s (gitlab.md §O), a little later than
/// this. ureq's own 15 s would cost every step longer than that a TCP and a TLS handshake, two
/// round trips, after it ends. A connection the server closed anyway is noticed before use.
const IDLE_CONNECTION_KEPT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer: DNS, connection, TLS, timeout.
    #[error("cannot reach GitLab at {url}: {reason}")]
    Transport { url: String, reason: String },
    /// GitLab (or a proxy) answered with a non-2xx status.
    #[error("GitLab answered {status}: {message}")]
    Http {
        status: u16,
        message: String,
        /// From `Retry-After` (seconds) or `RateLimit-Reset` (Unix time), on 429 and 503.
        retry_after: Option<Duration>,
    },
}

impl ApiError {
    /// How long the server asked to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Http { retry_after, .. } => *retry_after,
            ApiError::Transport { .. } => None,
        }
    }

    /// A write that failed this way may still have taken effect: the answer was lost (no
    /// answer, a connection cut) or came from a gateway that had passed the request on (502, 504).
    /// A 503 says the service did not take the request.
    pub fn may_have_applied(&self) -> bool {
        match self {
            ApiError::Transport { reason, .. } => !reason.starts_with(UNKNOWN_HOST),
            ApiError::Http { status, .. } => matches!(status, 502 | 504),
        }
    }

    /// Worth trying again: GitLab's lock (409), rate limits (429), server errors, no answer.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A host name that does not exist stays so: retrying would cost every step the whole
            // flush timeout. (A resolver that is down says "temporary failure" and is retried.)
            ApiError::Transport { reason, .. } => !reason.starts_with(UNKNOWN_HOST),
            ApiError::Http { status, .. } => matches!(status, 409 | 429 | 500..=599),
        }
    }
}

/// A 2xx answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// `x-next-page` of a paginated list; None on the last page.
    pub next_page: Option<u32>,
    /// The body as sent, for answers that are not JSON (raw files).
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

pub struct Client {
    agent: ureq::Agent,
    api_url: String,
    token: Token,
    dry_run: bool,
    /// GitLab's clock (its `Date` header), as of the latest answer.
    server_time: Mutex<Option<f64>>,
    /// A request failed in a way worth trying again (a 409, 429 or 5xx, no answer).
    troubled: AtomicBool,
}

impl Client {
    /// `text` without the token (whole, or encoded) and without anything shaped like a token:
    /// for text read from GitLab that herald publishes again (job log excerpts).
    pub fn mask(&self, text: &str) -> String {
        crate::redact::Secrets::default().mask(&self.token.redact(text))
    }

    /// Builds the client; fails only on an unusable CA file. The error is one line that callers
    /// print (or drop: no client, nothing to read); none tells reasons apart, so it is text.
    pub fn new(api_url: &str, token: Token, ca_file: Option<&Path>, dry_run: bool) -> Result<Client, String> {
        let mut tls = TlsConfig::builder();
        if let Some(path) = ca_file {
            tls = tls.root_certs(roots_with(path)?);
        }
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .max_idle_age(IDLE_CONNECTION_KEPT)
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls.build())
            .build();
        Ok(Client {
            agent: config.into(),
            api_url: api_url.to_owned(),
            token,
            dry_run,
            server_time: Mutex::new(None),
            troubled: AtomicBool::new(false),
        })
    }

    /// GitLab's time as of its latest answer, in Unix seconds: for comparing with its
    /// timestamps without trusting this machine's clock.
    pub fn server_time(&self) -> Option<f64> {
        *self.server_time.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether any request through this client failed in a way worth trying again (a 409, 429
    /// or 5xx, no answer): GitLab is struggling, so what this process counts on other writers to
    /// do, they may not manage either.
    pub fn troubled(&self) -> bool {
        self.troubled.load(Ordering::Relaxed)
    }

    pub fn get(&self, path: &str, timeout: Duration) -> Result<Reply, ApiError> {
        self.send(Method::Get, path, None, timeout)
    }

    /// A public URL, without the token (an `include: remote` file is public by definition).
    pub fn get_public(&self, url: &str, timeout: Duration) -> Result<String, ApiError> {
        let transport = |reason: String| ApiError::Transport { url: url.to_owned(), reason };
        let mut response = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|error| transport(describe_transport_error(&error)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| transport(e.to_string()))?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(ApiError::Http { status, message: error_message(&text), retry_after: None })
        }
    }

    pub fn post(&self, path: &str, body: &Value, timeout: Duration) -> Result<Reply, ApiError> {
        self.send(Method::Post, path, Some(body), timeout)
    }

    pub fn put(&self, path: &str, body: &Value, timeout: Duration) -> Result<Reply, ApiError> {
        self.send(Method::Put, path, Some(body), timeout)
    }

    pub fn delete(&self, path: &str, timeout: Duration) -> Result<Reply, ApiError> {
        self.send(Method::Delete, path, None, timeout)
    }

    fn send(&self, method: Method, path: &str, body: Option<&Value>, timeout: Duration) -> Result<Reply, ApiError> {
        let sent = self.send_once(method, path, body, timeout);
        if sent.as_ref().is_err_and(ApiError::is_retryable) {
            self.troubled.store(true, Ordering::Relaxed);
        }
        sent
    }

    fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Reply, ApiError> {
        let url = format!("{}{path}", self.api_url);
        if self.dry_run {
            let body = body.map(|b| format!(" {b}")).unwrap_or_default();
            let line = self.token.redact(&format!("herald (dry run): {} {url}{body}\n", method.as_str()));
            let _ = std::io::stderr().write_all(line.as_bytes());
            let status = if method == Method::Post { 201 } else { 200 };
            return Ok(Reply { status, body: Value::Null, next_page: None, text: String::new() });
        }
        let transport = |reason: String| ApiError::Transport { url: url.clone(), reason: self.token.redact(&reason) };
        let mut secret = HeaderValue::from_str(self.token.secret())
            .map_err(|_| transport("the token contains characters that cannot be sent in a header".into()))?;
        secret.set_sensitive(true);

        // The same settings for every method; ureq types requests with and without a body apart.
        macro_rules! prepared {
            ($builder:expr) => {
                $builder.config().timeout_global(Some(timeout)).build().header("PRIVATE-TOKEN", secret)
            };
        }
        let json = || body.map(Value::to_string).unwrap_or_default();
        if crate::log::enabled(crate::log::Level::Trace) {
            if let Some(body) = body {
                log!(Trace, "{} {path} body: {}", method.as_str(), self.token.redact(&body.to_string()));
            }
        }
        let started = std::time::Instant::now();
        let result = match method {
            Method::Get => prepared!(self.agent.get(&url)).call(),
            Method::Delete => prepared!(self.agent.delete(&url)).call(),
            Method::Post => prepared!(self.agent.post(&url)).header("Content-Type", "application/json").send(json()),
            Method::Put => prepared!(self.agent.put(&url)).header("Content-Type", "application/json").send(json()),
        };
        let mut response = result.map_err(|error| {
            let error = transport(describe_transport_error(&error));
            log!(Debug, "{} {path}: {error}", method.as_str());
            error
        })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let location = header("location");
        let next_page = header("x-next-page").and_then(|page| page.trim().parse().ok());
        if let Some(now) = header("date").as_deref().and_then(super::parse_http_date) {
            *self.server_time.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(now);
        }
        let text = response
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_string()
            .map_err(|error| transport(format!("the answer broke off: {error}")))?;
        log!(Debug, "{} {path} → {status} in {} ms", method.as_str(), started.elapsed().as_millis());
        log!(Trace, "{} {path} answer: {}", method.as_str(), self.token.redact(&text));

        if (200..300).contains(&status) {
            let body =
                if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
            return Ok(Reply { status, body, next_page, text });
        }
        let message = match (status, location) {
            (300..=399, Some(to)) => {
                format!("a redirect to {to}; set HERALD_API_URL to the address GitLab's API really has")
            }
            _ => error_message(&text),
        };
        Err(ApiError::Http { status, message: self.token.redact(&message), retry_after })
    }
}

/// Mozilla's roots plus the certificates in `path`.
/// The proxy variables, in the order the HTTP client reads them (ureq's `Proxy::try_from_env`):
/// the first one set is used for every request, unless `NO_PROXY`/`no_proxy` names the host.
pub const PROXY_VARIABLES: [&str; 6] =
    ["ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"];

/// The proxy requests to `api_url` go through, if any: the variable that sets it and the proxy's
/// `host:port` (never its credentials).
pub fn proxy_for(api_url: &str) -> Option<(&'static str, String)> {
    let proxy = ureq::Proxy::try_from_env()?;
    let uri: ureq::http::Uri = api_url.parse().ok()?;
    if proxy.is_no_proxy(&uri) {
        return None;
    }
    let variable = PROXY_VARIABLES
        .into_iter()
        .find(|name| std::env::var(name).is_ok_and(|value| ureq::Proxy::new(&value).is_ok()))?;
    Some((variable, format!("{}:{}", proxy.host(), proxy.port())))
}

fn roots_with(path: &Path) -> Result<RootCerts, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    let extra: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
            _ => None,
        })
        .collect();
    if extra.is_empty() {
        return Err(format!("the CA file {} holds no PEM certificate", path.display()));
    }
    let mozilla =
        webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|der| Certificate::from_der(der.as_ref()).to_owned());
    Ok(RootCerts::Specific(Arc::new(mozilla.chain(extra).collect())))
}

/// The number of CA certificates in a PEM file, for `herald doctor`, which prints the error line
/// as the check's failure (so it is text).
pub fn count_certificates(path: &Path) -> Result<usize, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut count = 0;
    for item in ureq::tls::parse_pem(&pem) {
        if let Ok(ureq::tls::PemItem::Certificate(cert)) = item {
            if !looks_like_a_certificate(cert.der()) {
                return Err(format!("{} holds a CERTIFICATE block that is not a certificate", path.display()));
            }
            count += 1;
        }
    }
    Ok(count)
}

/// An X.509 certificate is a DER SEQUENCE that spans the whole block and begins with another
/// SEQUENCE (the signed part). Enough to tell a certificate from garbage in a PEM wrapper.
fn looks_like_a_certificate(der: &[u8]) -> bool {
    let Some((&0x30, rest)) = der.split_first() else { return false };
    let Some((&first, rest)) = rest.split_first() else { return false };
    let (length, body) = match first {
        0..=0x7f => (usize::from(first), rest),
        0x81..=0x84 => {
            let bytes = usize::from(first - 0x80);
            if rest.len() < bytes {
                return false;
            }
            (rest[..bytes].iter().fold(0usize, |n, &b| (n << 8) | usize::from(b)), &rest[bytes..])
        }
        _ => return false,
    };
    length == body.len() && body.first() == Some(&0x30)
}

/// How a transport error about a host that does not exist begins.
const UNKNOWN_HOST: &str = "unknown host";

fn describe_transport_error(error: &ureq::Error) -> String {
    let text = error.to_string();
    // rustls' verdicts often arrive wrapped in an I/O error, so they are recognised by what they say.
    let tls = matches!(error, ureq::Error::Tls(_) | ureq::Error::Rustls(_)) || text.contains("certificate");
    let unknown_host = matches!(error, ureq::Error::HostNotFound)
        || ["Name or service not known", "No address associated with hostname", "nodename nor servname"]
            .iter()
            .any(|says| text.contains(says));
    match error {
        _ if unknown_host => format!("{UNKNOWN_HOST} ({text}); check CI_API_V4_URL or HERALD_API_URL"),
        ureq::Error::Timeout(_) => "no answer in time".into(),
        _ if tls => format!("TLS failed ({text}); for a private CA set HERALD_CA_FILE to its PEM file"),
        _ => text,
    }
}

/// GitLab's error shapes (gitlab.md §C.2): `{"message": "..."}`, `{"message": {field: [...]}}`,
/// `{"error": "...", "error_description": "..."}`; anything else is shown by its first line.
fn error_message(body: &str) -> String {
    if let Ok(json) = serde_json::from_str::<Value>(body) {
        let description = json.get("error_description").and_then(Value::as_str);
        match (json.get("message"), json.get("error").and_then(Value::as_str), description) {
            (Some(Value::String(message)), _, _) => return message.clone(),
            (Some(message @ Value::Object(_)), _, _) => return message.to_string(),
            (_, Some(error), Some(description)) => return format!("{error}: {description}"),
            (_, Some(error), None) => return error.to_owned(),
            _ => {}
        }
    }
    let first_line = body.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("(empty body)");
    first_line.chars().take(200).collect()
}

fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(seconds) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    let reset = header("ratelimit-reset").and_then(|v| v.parse::<u64>().ok())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gitlabs_error_shapes() {
        assert_eq!(error_message(r#"{"message":"403 Forbidden"}"#), "403 Forbidden");
        assert_eq!(
            error_message(r#"{"message":{"name":["has already been taken"]}}"#),
            r#"{"name":["has already been taken"]}"#
        );
        assert_eq!(
            error_message(r#"{"error":"invalid_token","error_description":"Token is expired."}"#),
            "invalid_token: Token is expired."
        );
        assert_eq!(error_message(r#"{"error":"state is missing"}"#), "state is missing");
        assert_eq!(error_message("Retry later\n"), "Retry later");
        assert_eq!(error_message(""), "(empty body)");
    }

    #[test]
    fn tells_a_certificate_from_garbage() {
        assert!(looks_like_a_certificate(&[0x30, 0x03, 0x30, 0x01, 0x00]));
        assert!(looks_like_a_certificate(&[[0x30, 0x81, 0x80, 0x30].as_slice(), &[0u8; 127]].concat()));
        assert!(!looks_like_a_certificate(b"not a certificate at all"));
        assert!(!looks_like_a_certificate(&[0x30, 0x05, 0x30]));
        assert!(!looks_like_a_certificate(&[]));
    }

    #[test]
    fn knows_what_to_retry() {
        let http = |status| ApiError::Http { status, message: String::new(), retry_after: None };
        for status in [409, 429, 500, 502, 503] {
            assert!(http(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!http(status).is_retryable(), "{status}");
        }
    }
}
