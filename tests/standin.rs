//! The stand-in itself, checked against facts of docs/gitlab.md: herald's
//! tests are only as good as the stand-in is faithful. Section numbers refer to the reference.

use serde_json::{json, Value};

use crate::support::gitlab::*;

struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

fn call(gitlab: &GitLab, method: &str, path: &str, token: &str, body: Option<Value>) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let url = format!("{}{path}", gitlab.api_url());
    let with_token = |request: ureq::RequestBuilder<ureq::typestate::WithBody>| {
        request.header("PRIVATE-TOKEN", token).header("Content-Type", "application/json")
    };
    let response = match (method, body) {
        ("POST", Some(body)) => with_token(agent.post(&url)).send(body.to_string()),
        ("PUT", Some(body)) => with_token(agent.put(&url)).send(body.to_string()),
        ("GET", None) => agent.get(&url).header("PRIVATE-TOKEN", token).call(),
        ("DELETE", None) => agent.delete(&url).header("PRIVATE-TOKEN", token).call(),
        other => panic!("unsupported: {other:?}"),
    };
    let mut response = response.expect("the stand-in answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Answer { status, headers, body: response.body_mut().read_to_string().unwrap() }
}

fn post(gitlab: &GitLab, token: &str, sha: &str, fields: Value) -> Answer {
    call(gitlab, "POST", &format!("/projects/{PROJECT_ID}/statuses/{sha}"), token, Some(fields))
}

#[test]
fn the_status_state_machine_answers_like_gitlab() {
    let gitlab = GitLab::start();
    let fields = |state: &str| json!({ "state": state, "name": "s", "pipeline_id": PIPELINE_BRANCH });
    let first = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, fields("running"));
    assert_eq!(first.status, 201);
    assert_eq!(first.json()["status"], "running");
    assert_eq!(first.json()["ref"], "feature", "the job's ref is the pipeline's");

    // §A.1: running → running is a 400 with the state machine's message; nothing changes.
    let again = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, fields("running"));
    assert_eq!(again.status, 400);
    assert_eq!(
        again.json()["message"],
        "Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")"
    );
    let pending = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, fields("pending")).json();
    assert!(pending["message"].as_str().unwrap().starts_with("Cannot transition status via :enqueue from :running"));

    // running → success updates the same job; success → failed is a new job, the old one retried.
    let done = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, fields("success"));
    assert_eq!((done.status, done.json()["id"].clone()), (201, first.json()["id"].clone()));
    let retry = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, fields("failed"));
    assert_ne!(retry.json()["id"], first.json()["id"]);
    let all: Vec<Job> = gitlab.with(|w| w.all_statuses());
    assert_eq!(all.len(), 2);
    assert!(all[0].retried && !all[1].retried);

    // Grape validation (§A.1).
    let missing = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, json!({ "name": "s" }));
    assert_eq!((missing.status, missing.json()), (400, json!({ "error": "state is missing" })));
    let invalid = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, json!({ "state": "done" }));
    assert_eq!(invalid.json(), json!({ "error": "state does not have a valid value" }));
    let long =
        post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, json!({ "state": "running", "description": "x".repeat(256) }));
    assert_eq!(long.json()["message"]["description"][0], "is too long (maximum is 255 characters)");
    let bad_url = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, json!({ "state": "running", "target_url": "git://x" }));
    assert_eq!(bad_url.json()["message"]["target_url"][0], "is blocked: Only allowed schemes are http, https");
    let taken = post(
        &gitlab,
        TOKEN_DEVELOPER,
        SHA_FEATURE,
        json!({ "state": "running", "name": "test", "pipeline_id": PIPELINE_BRANCH }),
    );
    assert_eq!(taken.json()["message"]["name"][0], "has already been taken", "a CI job's name");
}

#[test]
fn another_user_posting_the_same_name_gets_a_separate_status() {
    let gitlab = GitLab::start();
    let fields = json!({ "state": "running", "name": "same", "pipeline_id": PIPELINE_BRANCH });
    let mine = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, fields.clone());
    let theirs = post(&gitlab, TOKEN_MAINTAINER, SHA_FEATURE, fields);
    assert_eq!((mine.status, theirs.status), (201, 201));
    assert_ne!(mine.json()["id"], theirs.json()["id"]);
}

#[test]
fn pipeline_lookup_follows_the_reference() {
    let gitlab = GitLab::start();
    // §A.1 step 4: no ref, no pipeline_id → the newest pipeline of the SHA, here the detached MR one.
    let unpinned = post(&gitlab, TOKEN_DEVELOPER, SHA_FEATURE, json!({ "state": "running", "name": "a" }));
    assert_eq!(unpinned.json()["pipeline_id"], PIPELINE_DETACHED);
    // §E.3: the source branch as ref with the merged-results pipeline's id: 404.
    let wrong_ref = post(
        &gitlab,
        TOKEN_DEVELOPER,
        SHA_MERGE,
        json!({ "state": "running", "name": "b", "ref": "feature", "pipeline_id": PIPELINE_MERGED }),
    );
    assert_eq!(
        (wrong_ref.status, wrong_ref.json()["message"].clone()),
        (404, json!("404 Pipeline for pipeline_id, sha and ref Not Found"))
    );
    // ... and without the id, a new external pipeline on that ref.
    let before = gitlab.with(|w| w.pipelines.len());
    let stray = post(&gitlab, TOKEN_DEVELOPER, SHA_MERGE, json!({ "state": "running", "name": "c", "ref": "feature" }));
    assert_eq!(stray.status, 201);
    assert_eq!(gitlab.with(|w| w.pipelines.len()), before + 1);
    // Unknown commit (§A.1 step 2).
    let unknown =
        post(&gitlab, TOKEN_DEVELOPER, "0000000000000000000000000000000000000000", json!({ "state": "running" }));
    assert_eq!((unknown.status, unknown.json()["message"].clone()), (404, json!("404 Commit Not Found")));
}

#[test]
fn permissions_and_authentication_fail_like_gitlab() {
    let gitlab = GitLab::start();
    let fields = json!({ "state": "running", "name": "p", "pipeline_id": PIPELINE_BRANCH });
    let answer = |token: &str, sha: &str, fields: &Value| post(&gitlab, token, sha, fields.clone());
    assert_eq!(answer(TOKEN_REPORTER, SHA_FEATURE, &fields).json(), json!({ "message": "403 Forbidden" }));
    let scope = answer(TOKEN_READ_API, SHA_FEATURE, &fields);
    assert_eq!((scope.status, scope.json()["error"].clone()), (403, json!("insufficient_scope")));
    let expired = answer(TOKEN_EXPIRED, SHA_FEATURE, &fields);
    assert_eq!(expired.status, 401);
    assert!(expired.json()["error_description"].as_str().unwrap().starts_with("Token is expired."));
    assert!(expired.headers.get("www-authenticate").is_some());
    assert_eq!(answer("glcbt-64_job-token", SHA_FEATURE, &fields).json(), json!({ "message": "401 Unauthorized" }));
    assert_eq!(answer(TOKEN_OUTSIDER, SHA_FEATURE, &fields).json(), json!({ "message": "404 Project Not Found" }));
    // A Developer may not update a protected branch's pipeline; a Maintainer may.
    let main = json!({ "state": "running", "name": "p", "pipeline_id": PIPELINE_MAIN });
    assert_eq!(answer(TOKEN_DEVELOPER, SHA_MAIN, &main).status, 403);
    assert_eq!(answer(TOKEN_MAINTAINER, SHA_MAIN, &main).status, 201);
    // read_api may read.
    assert_eq!(call(&gitlab, "GET", "/user", TOKEN_READ_API, None).status, 200);
}

#[test]
fn the_statuses_list_mixes_in_ci_jobs_and_paginates() {
    let gitlab = GitLab::start();
    for name in ["one", "two", "three"] {
        post(
            &gitlab,
            TOKEN_DEVELOPER,
            SHA_FEATURE,
            json!({ "state": "running", "name": name, "pipeline_id": PIPELINE_BRANCH }),
        );
    }
    // The project by its URL-encoded path, as GitLab also accepts it.
    let path = format!("/projects/group%2Fapp/repository/commits/{SHA_FEATURE}/statuses?per_page=2&page=1");
    let page = call(&gitlab, "GET", &path, TOKEN_DEVELOPER, None);
    assert_eq!(page.status, 200);
    assert_eq!(page.json().as_array().unwrap().len(), 2);
    let header = |name: &str| page.headers.get(name).unwrap().to_str().unwrap().to_owned();
    // Two CI jobs named "test" (branch and detached pipelines on this SHA) and three statuses.
    assert_eq!(
        (header("x-total"), header("x-total-pages"), header("x-next-page")),
        ("5".into(), "3".into(), "2".into())
    );
    let last = call(
        &gitlab,
        "GET",
        &format!("/projects/{PROJECT_ID}/repository/commits/{SHA_FEATURE}/statuses?per_page=2&page=3"),
        TOKEN_DEVELOPER,
        None,
    );
    assert_eq!(last.headers.get("x-next-page").unwrap(), "");
    let names: Vec<String> = call(
        &gitlab,
        "GET",
        &format!("/projects/{PROJECT_ID}/repository/commits/{SHA_FEATURE}/statuses?per_page=100"),
        TOKEN_DEVELOPER,
        None,
    )
    .json()
    .as_array()
    .unwrap()
    .iter()
    .map(|s| s["name"].as_str().unwrap().to_owned())
    .collect();
    assert_eq!(names.iter().filter(|n| *n == "test").count(), 2, "CI jobs are in the list: {names:?}");
}

#[test]
fn rack_attack_rate_limits_answer_in_plain_text_with_headers() {
    let gitlab = GitLab::start();
    gitlab.with(|w| w.faults = Faults::always(Fault::RateLimited { retry_after_secs: 7 }));
    let limited = call(&gitlab, "GET", "/user", TOKEN_DEVELOPER, None);
    assert_eq!((limited.status, limited.body.as_str()), (429, "Retry later\n"));
    assert_eq!(limited.headers.get("retry-after").unwrap(), "7");
    assert!(limited.headers.get("ratelimit-reset").is_some());
}

#[test]
fn notes_behave_like_gitlabs() {
    let gitlab = GitLab::start();
    let notes = "/projects/42/merge_requests/1/notes";
    let create = |token: &str, body: &str| call(&gitlab, "POST", notes, token, Some(json!({ "body": body })));

    // §B.3: quick actions run on create; a body of commands only is not saved (202).
    let commands = create(TOKEN_DEVELOPER, "/approve\n/merge");
    assert_eq!(commands.status, 202);
    assert_eq!(gitlab.with(|w| (w.notes.len(), w.quick_actions.len())), (0, 2));
    // ... and inside a code block they are text.
    assert_eq!(create(TOKEN_DEVELOPER, "```\n/merge\n```").status, 201);
    assert_eq!(gitlab.with(|w| w.quick_actions.len()), 2);

    let mine = create(TOKEN_DEVELOPER, "first").json()["id"].as_u64().unwrap();
    let theirs = create(TOKEN_MAINTAINER, "second").json()["id"].as_u64().unwrap();
    // §B.1: newest first by default; oldest first with sort=asc.
    let listed: Vec<u64> = call(&gitlab, "GET", notes, TOKEN_DEVELOPER, None)
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed.first(), Some(&theirs));
    let ascending = call(&gitlab, "GET", &format!("{notes}?sort=asc"), TOKEN_DEVELOPER, None).json();
    assert_eq!(ascending.as_array().unwrap().last().unwrap()["id"].as_u64(), Some(theirs));

    // §B.2: the author or a Maintainer may edit; a Developer may not edit another's note.
    let put = |token: &str, id: u64, body: &str| {
        call(&gitlab, "PUT", &format!("{notes}/{id}"), token, Some(json!({ "body": body })))
    };
    let refused = put(TOKEN_DEVELOPER, theirs, "edited");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(put(TOKEN_MAINTAINER, mine, "edited by a maintainer").status, 200);
    assert_eq!(call(&gitlab, "DELETE", &format!("{notes}/{theirs}"), TOKEN_DEVELOPER, None).status, 403);
    // §B.3: an update that leaves only commands deletes the note.
    assert_eq!(put(TOKEN_DEVELOPER, mine, "/close").status, 200);
    assert_eq!(call(&gitlab, "GET", &format!("{notes}/{mine}"), TOKEN_DEVELOPER, None).status, 404);
    // §B.1: the size limit.
    let huge = create(TOKEN_DEVELOPER, &"x".repeat(1_000_001));
    assert_eq!(huge.status, 400);
    assert!(huge.json()["message"].as_str().unwrap().contains("is too long"));
    assert!(
        call(&gitlab, "GET", notes, TOKEN_DEVELOPER, None).headers.get("date").is_some(),
        "answers carry GitLab's clock"
    );
}

/// Every route the stand-in serves is one GitLab's own API description has, where it covers the
/// path (notes and discussions are absent from it), and the checker itself tells a request the
/// description lacks from one it has.
#[test]
fn the_stand_ins_routes_are_in_gitlabs_api_description() {
    use crate::support::api_description::{check, check_route};
    for (method, template) in ROUTES {
        check_route(method, template).unwrap_or_else(|why| panic!("{why}"));
    }
    let statuses = format!("/projects/{PROJECT_ID}/statuses/{SHA_FEATURE}");
    assert!(check("POST", &statuses, "", r#"{"state":"running","name":"x","pipeline_id":1}"#).is_ok());
    assert!(check("POST", &statuses, "", r#"{"state":"running","allow_failure":true}"#).is_err(), "no such field");
    assert!(check("PUT", &statuses, "", "{}").is_err(), "no such method");
    assert!(check("GET", "/projects/42/pipelines/7/jobs", "include_retried=true&per_page=100&page=2", "").is_ok());
    assert!(check("GET", "/projects/42/pipelines/7/jobs", "order_by=id", "").is_err());
    assert!(check("GET", "/projects/42/merge_requests/1/notes", "anything=1", "").is_ok(), "not covered");
}

/// GitLab's description lists 200 for a status post (GitLab answers 201): herald takes any 2xx,
/// statuses and the note alike, and says nothing about it.
#[test]
fn herald_accepts_any_success_status() {
    let gitlab = GitLab::start();
    gitlab.with(|w| w.success_status = Some(200));
    let (_, url) = gitlab.with(|w| w.add_job(PIPELINE_DETACHED, "lint", "test", "running"));
    let finished = crate::support::run(
        crate::support::herald_in_ci(&gitlab, crate::support::PipelineKind::Detached, TOKEN_DEVELOPER)
            .env("CI_JOB_URL", &url)
            .args(["run", "--name", "unit", "--", "false"]),
    );
    assert_eq!(finished.code, Some(1));
    let stderr = finished.stderr_text();
    assert!(!stderr.contains("herald: "), "no complaint about a 200: {stderr}");
    assert_eq!(gitlab.with(|w| w.statuses(PIPELINE_DETACHED)["herald/lint › unit"].status.clone()), "failed");
    let notes = gitlab.with(|w| w.herald_notes(1));
    assert_eq!(notes.len(), 1);
    assert!(notes[0].body.contains("unit"), "{}", notes[0].body);
}
