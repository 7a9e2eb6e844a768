//! A request as received (`Recorded`), and its parameters merged from query and body as Grape
//! merges them. Data the world records; reading it off the wire is `http`'s, answering it the
//! areas'.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde_json::Value;

use crate::faults::Fault;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path below the API root, percent-encoding kept (`/projects/group%2Fapp`).
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The body's bytes as sent (`body` is their lossy text): uploaded files.
    pub raw_body: Vec<u8>,
    pub fault: Option<Fault>,
    /// When the request arrived.
    pub at: Instant,
    /// The host asked for, when the request came through the stand-in acting as a proxy
    /// (`CONNECT host:port`, then the request through the tunnel).
    pub proxied_host: Option<String>,
}

impl Recorded {
    /// A parameter from the JSON body or the query string.
    pub fn param(&self, key: &str) -> Option<String> {
        params(&self.query, &self.body).get(key).cloned()
    }

    /// The path's segments, percent-decoded.
    pub(crate) fn segments(&self) -> Vec<String> {
        self.path.trim_start_matches('/').split('/').map(decode).collect()
    }
}

fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (None, b'+') => out.push(b' '),
            (None, byte) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters and JSON (or form) body parameters, merged; the body wins, as in Grape.
pub(crate) fn params(query: &str, body: &str) -> HashMap<String, String> {
    let mut all: HashMap<String, String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect();
    match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(fields)) => {
            for (key, value) in fields {
                let text = match value {
                    Value::String(s) => s,
                    Value::Null => continue,
                    other => other.to_string(),
                };
                all.insert(key, text);
            }
        }
        // A form-encoded body (curl -d); an empty body has nothing to add.
        _ if !body.trim().is_empty() => all.extend(params(body, "")),
        _ => {}
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_parameters() {
        let found = params("name=a%2Fb+c&ref=x", r#"{"state":"running","pipeline_id":7}"#);
        assert_eq!(found["name"], "a/b c");
        assert_eq!(found["pipeline_id"], "7");
        assert_eq!(found["state"], "running");
    }
}
