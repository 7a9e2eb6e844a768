//! GitLab's own published API description (`standin/gitlab-openapi-subset.json`, the operations
//! herald uses, extracted from GitLab's `doc/api/openapi/openapi_v2.yaml`; a copy of the shared
//! reference): what the stand-in checks every request of herald's against, and every route it
//! serves (`ROUTES`). Notes and discussions are absent from it, so they are not checked. Separate
//! from the routes because it is GitLab's word, not the stand-in's.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::Value;

/// One operation: its method, its path below `/api/v4` as segments (`None` for a `{parameter}`),
/// and the names of the parameters it takes (path, query and body).
struct Operation {
    method: String,
    segments: Vec<Option<String>>,
    parameters: BTreeSet<String>,
}

impl Operation {
    fn matches_path(&self, segments: &[&str]) -> bool {
        self.segments.len() == segments.len()
            && self.segments.iter().zip(segments).all(|(want, got)| want.as_deref().is_none_or(|want| want == *got))
    }

    fn template(&self) -> String {
        let parts: Vec<&str> = self.segments.iter().map(|s| s.as_deref().unwrap_or("{…}")).collect();
        format!("{} /{}", self.method, parts.join("/"))
    }
}

fn operations() -> &'static [Operation] {
    static OPERATIONS: OnceLock<Vec<Operation>> = OnceLock::new();
    OPERATIONS.get_or_init(|| {
        let description: Value =
            serde_json::from_str(include_str!("../gitlab-openapi-subset.json")).expect("the description");
        let mut operations = Vec::new();
        for operation in description["operations"].as_array().expect("operations") {
            // The package routes' template (`*package_version/(*path/){file_name}`) is Grape's;
            // the path as requested is given beside it.
            let path = operation["requested_path"].as_str().or_else(|| operation["path"].as_str()).unwrap();
            let path = path.strip_prefix("/api/v4").expect("an /api/v4 path");
            let segments = path
                .trim_start_matches('/')
                .split('/')
                .map(|segment| (!segment.starts_with('{')).then(|| segment.to_owned()))
                .collect();
            let mut parameters: BTreeSet<String> = BTreeSet::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                if parameter["in"] != "body" {
                    parameters.insert(parameter["name"].as_str().unwrap().to_owned());
                }
            }
            if let Some(properties) = operation["body"]["properties"].as_object() {
                parameters.extend(properties.keys().cloned());
            }
            operations.push(Operation {
                method: operation["method"].as_str().unwrap().to_owned(),
                segments,
                parameters,
            });
        }
        operations
    })
}

/// Whether GitLab's description has this request: its method and path, and every parameter it
/// sends (query string and JSON body), where the description covers the path at all. `path` is
/// below the API root, percent-encoding kept. Err says what the description lacks.
pub fn check(method: &str, path: &str, query: &str, body: &str) -> Result<(), String> {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let covering: Vec<&Operation> = operations().iter().filter(|op| op.matches_path(&segments)).collect();
    if covering.is_empty() {
        return Ok(()); // not in the description (notes, discussions, /user, templates)
    }
    let Some(operation) = covering.iter().find(|op| op.method == method) else {
        let methods: Vec<&str> = covering.iter().map(|op| op.method.as_str()).collect();
        return Err(format!("{method} {path}: the description has only {methods:?} there"));
    };
    let mut sent: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split('=').next().unwrap_or_default().replace("%5B%5D", "").replace("[]", ""))
        .collect();
    if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body) {
        sent.extend(fields.keys().cloned());
    }
    let unknown: Vec<&String> = sent.iter().filter(|name| !operation.parameters.contains(*name)).collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!("{method} {path}: {unknown:?} are not parameters of {} in the description", operation.template()))
    }
}

/// Whether the description has a route template of the stand-in's (`GET /projects/{id}/jobs/{job_id}`,
/// parameters in braces): Ok when it does or does not cover that path at all, Err when it covers
/// the path with other methods only.
pub fn check_route(method: &str, template: &str) -> Result<(), String> {
    let concrete: String = template
        .split('/')
        .map(|segment| if segment.starts_with('{') { "1" } else { segment })
        .collect::<Vec<_>>()
        .join("/");
    check(method, &concrete, "", "")
}
