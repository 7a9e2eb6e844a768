//! HTTP as the areas see it: a request as received (`Recorded`), the routed call an area answers
//! (`Call`), an answer, parameters merged from query and body as Grape merges them, and GitLab's
//! offset pagination (§B.8). The wire itself (reading, writing, connections) is `server`'s.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::time::Instant;

use serde_json::{json, Value};

use crate::request::{params, Recorded};
use crate::world::TokenRecord;

/// An authenticated request, as the areas answer it.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    /// The path's segments, percent-decoded.
    pub segments: Vec<String>,
    pub params: HashMap<String, String>,
    pub user_id: u64,
    /// The token the request came with.
    pub token: TokenRecord,
    pub raw_body: &'a [u8],
}

impl Call<'_> {
    pub fn new(request: &Recorded, user_id: u64, token: TokenRecord) -> Call<'_> {
        Call {
            method: &request.method,
            segments: request.segments(),
            params: params(&request.query, &request.body),
            user_id,
            token,
            raw_body: &request.raw_body,
        }
    }

    /// The segments, to match on.
    pub fn path(&self) -> Vec<&str> {
        self.segments.iter().map(String::as_str).collect()
    }
}

/// An HTTP answer.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into(),
        }
    }

    pub fn message(status: u16, message: &str) -> Answer {
        Answer::json(status, json!({ "message": message }))
    }

    /// A body of another type than JSON (a file, a log, an error page).
    pub fn typed(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
        Answer { status, headers: vec![("Content-Type".into(), content_type.into())], body }
    }

    /// Grape's answer for a route it does not have.
    pub fn not_found() -> Answer {
        Answer::json(404, json!({ "error": "404 Not Found" }))
    }
}

/// One request read from a connection; None when the connection ended or sent no HTTP.
pub(crate) fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    // A client talking through a plain HTTP proxy sends the absolute URL (`GET http://host/path`).
    let (proxied_host, target) = match target.strip_prefix("http://") {
        Some(rest) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            (Some(host.to_owned()), format!("/{path}"))
        }
        None => (None, target),
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = path.strip_prefix("/api/v4").unwrap_or(path).to_owned();
    Some(Recorded {
        method,
        path,
        query: query.to_owned(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        raw_body: body,
        fault: None,
        at: Instant::now(),
        proxied_host,
    })
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// Offset pagination with GitLab's headers (§B.8): per_page default 20, at most 100. Only the
/// page asked for is turned into JSON, as a database pages before it serializes: the stand-in's
/// own cost must not grow with the list (the scale campaign reads big ones concurrently).
pub(crate) fn paginate<T>(items: &[T], params: &HashMap<String, String>, entity: impl Fn(&T) -> Value) -> Answer {
    let page: usize = params.get("page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(1);
    let per_page: usize =
        params.get("per_page").and_then(|p| p.parse().ok()).filter(|p| *p >= 1).unwrap_or(20).min(100);
    let total_pages = items.len().div_ceil(per_page).max(1);
    let slice: Vec<Value> = items.iter().skip((page - 1) * per_page).take(per_page).map(entity).collect();
    let mut answer = Answer::json(200, Value::Array(slice));
    let next = if page < total_pages { (page + 1).to_string() } else { String::new() };
    answer.headers.extend([
        ("x-page".into(), page.to_string()),
        ("x-per-page".into(), per_page.to_string()),
        ("x-total".into(), items.len().to_string()),
        ("x-total-pages".into(), total_pages.to_string()),
        ("x-next-page".into(), next),
        ("x-prev-page".into(), if page > 1 { (page - 1).to_string() } else { String::new() }),
    ]);
    answer
}
