//! A GitLab API stand-in: an HTTP server on 127.0.0.1 that behaves like
//! docs/gitlab.md says GitLab does, for the endpoints herald uses.
//!
//! - Commit statuses (§A): the state machine with GitLab's exact 400/404 bodies; status identity
//!   (name, pipeline, ref, user); pipeline lookup with and without `pipeline_id`/`ref`, new
//!   external pipelines; retried older statuses; the statuses list with CI jobs mixed in, filters
//!   and pagination (§B.8).
//! - Authentication (§C): `PRIVATE-TOKEN`/Bearer, the 401 shapes (unknown, expired, revoked), the
//!   403 `insufficient_scope` of a `read_api` token on a write, 403 for roles below Developer and
//!   for Developers on protected branches, 404 for projects the user cannot see. `/user`,
//!   `/personal_access_tokens/self`, `/projects/:id` with `permissions`.
//! - Merge-request notes (§B): authors, edit/delete rights (author or Maintainer; system notes
//!   never), list pagination with GitLab's default `sort=desc`, `activity_filter`, quick actions
//!   executed on create *and* update (recorded in `World::quick_actions`; a body of commands only
//!   is not saved, or on update deletes the note), the 1,000,000-character limit, and the
//!   `notes_create` application rate limit (a JSON 429 without headers).
//! - Pipelines and their CI jobs: `GET /projects/:id/pipelines/:id` and `.../jobs`.
//! - Repository files (`GET /projects/:id/repository/files/:path/raw?ref=`) and CI templates
//!   (`GET /templates/gitlab_ci_ymls/:key`), for includes.
//! - Rate limits (§D): Rack::Attack's 429 (plain text, `Retry-After`, `RateLimit-*` headers).
//! - Generic packages (§N): uploads, and downloads (without a token for a public project).
//! - Faults, for resilience tests: 5xx, 409 lock, 429 storms, connection resets before and after
//!   the request took effect, hangs, slow answers, bodies cut off mid-way, and a 500 that echoes
//!   the request headers (the token among them).
//! - Distance: HTTPS (`GitLab::start_tls`), and `World::round_trip`, which makes each answer wait
//!   a round trip and each new connection one more for TCP and one for TLS.
//!
//! Every request is recorded for assertions. Where it simplifies GitLab, it says so inline.
//! Connections are kept alive for as many requests as the client sends, as GitLab's front end
//! does; a fault that resets or hangs ends its connection.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

// The world every test starts from: one private project with three commits and three pipelines.
pub const PROJECT_ID: u64 = 42;
pub const PROJECT_PATH: &str = "group/app";
/// Head of branch `feature` (and of MR !1's source).
pub const SHA_FEATURE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// Head of the protected branch `main`.
pub const SHA_MAIN: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
/// MR !1's merged-results commit: exists only under refs/merge-requests/1/merge, on no branch.
pub const SHA_MERGE: &str = "cccccccccccccccccccccccccccccccccccccccc";
/// Branch pipeline of `feature` on SHA_FEATURE.
pub const PIPELINE_BRANCH: u64 = 1001;
/// Detached MR pipeline on SHA_FEATURE, ref refs/merge-requests/1/head.
pub const PIPELINE_DETACHED: u64 = 1002;
/// Merged-results pipeline on SHA_MERGE, ref refs/merge-requests/1/merge.
pub const PIPELINE_MERGED: u64 = 1003;
/// Branch pipeline of `main` on SHA_MAIN.
pub const PIPELINE_MAIN: u64 = 1004;

/// Tokens of the default world. The bot (a project access token's user) is a Developer.
pub const TOKEN_DEVELOPER: &str = "test-token-developer-0001";
pub const TOKEN_MAINTAINER: &str = "test-token-maintainer-0002";
pub const TOKEN_REPORTER: &str = "test-token-reporter-0003";
pub const TOKEN_READ_API: &str = "test-token-readonly-0004";
pub const TOKEN_EXPIRED: &str = "test-token-expired-0005";
pub const TOKEN_REVOKED: &str = "test-token-revoked-0006";
pub const TOKEN_EXPIRING: &str = "test-token-expiring-0007";
pub const TOKEN_OUTSIDER: &str = "test-token-outsider-0008";

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub username: String,
    pub bot: bool,
}

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub user_id: u64,
    pub name: String,
    pub scopes: Vec<&'static str>,
    /// Days from now; negative means expired, None never expires.
    pub expires_in_days: Option<i64>,
    pub revoked: bool,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: u64,
    pub path: String,
    /// user id → access level (Developer 30).
    pub members: HashMap<u64, u32>,
    pub protected_branches: Vec<String>,
    /// branch → head sha (for "branch containing the sha").
    pub branches: HashMap<String, String>,
    /// Every sha that `project.commit(sha)` resolves.
    pub commits: Vec<String>,
    /// Public: anyone may download its generic packages, without a token.
    pub public: bool,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: u64,
    pub project_id: u64,
    pub sha: String,
    pub reference: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// A real CI job (Ci::Build).
    Build,
    /// A commit status posted through the API (GenericCommitStatus).
    External,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub pipeline_id: u64,
    pub kind: JobKind,
    /// CI jobs' stage; statuses are in GitLab's `external` stage.
    pub stage: String,
    pub name: String,
    pub status: String,
    pub reference: String,
    pub sha: String,
    pub user_id: u64,
    pub description: Option<String>,
    pub target_url: Option<String>,
    pub retried: bool,
    /// CI jobs: may fail without failing the pipeline.
    pub allow_failure: bool,
    /// CI jobs: the log GitLab holds (gitlab.md §K).
    pub trace: String,
}

/// A version of a merge request's diff: the SHAs a diff position names.
#[derive(Debug, Clone)]
pub struct DiffVersion {
    pub id: u64,
    pub head_commit_sha: String,
    pub base_commit_sha: String,
    pub start_commit_sha: String,
}

/// One changed file of a merge request, with its unified diff.
#[derive(Debug, Clone)]
pub struct FileDiff {
    pub old_path: String,
    pub new_path: String,
    pub new_file: bool,
    pub deleted_file: bool,
    pub diff: String,
}

/// A thread on a merge request: its notes, and whether it is resolved.
#[derive(Debug, Clone)]
pub struct Discussion {
    /// 40 hex characters, as GitLab's.
    pub id: String,
    pub notes: Vec<DiscussionNote>,
    pub resolved: bool,
}

#[derive(Debug, Clone)]
pub struct DiscussionNote {
    pub id: u64,
    pub author_id: u64,
    pub body: String,
    /// The diff position of the thread's first note: (new_path, new_line).
    pub position: Option<(String, u64)>,
}

/// A note on a merge request.
#[derive(Debug, Clone)]
pub struct Note {
    pub id: u64,
    pub mr_iid: u64,
    pub body: String,
    pub author_id: u64,
    pub system: bool,
    /// Logical clock of the last change (GitLab keeps `updated_at` when a PUT changes nothing).
    pub updated: u64,
    /// `updated_at`, in Unix seconds.
    pub updated_at: f64,
}

/// A fault to inject instead of (or around) the normal answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Answer with this 5xx and a small HTML body.
    ServerError(u16),
    /// GitLab's exclusive-lease timeout: 409 `Another update to this commit status is in progress`.
    Lock,
    /// Rack::Attack: 429, plain-text `Retry later`, `Retry-After: n`, `RateLimit-*` headers.
    RateLimited { retry_after_secs: u64 },
    /// Close the connection with a TCP reset before the request takes effect.
    Reset,
    /// Apply the request, then reset the connection: the client never learns it worked.
    ResetAfterApplying,
    /// Never answer (until the stand-in is dropped).
    Hang,
    /// Answer after this delay.
    Slow(Duration),
    /// Send headers and half the body, then close.
    CutBody,
    /// 500 whose body lists the request headers, as some proxies' error pages do.
    EchoHeaders,
}

/// Which requests get faults: `rate` of them at random (seeded), or all with `always`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub rate: f64,
    pub kinds: Vec<Fault>,
    pub always: Option<Fault>,
    /// Only requests whose method is this (e.g. "POST"); None for all.
    pub method: Option<&'static str>,
    /// Only requests whose path ends with this (e.g. "/notes"); None for all.
    pub path_ends_with: Option<&'static str>,
    random: u64,
}

impl Faults {
    pub fn random(rate: f64, kinds: &[Fault], seed: u64) -> Faults {
        Faults { rate, kinds: kinds.to_vec(), always: None, method: None, path_ends_with: None, random: seed | 1 }
    }

    pub fn always(fault: Fault) -> Faults {
        Faults { always: Some(fault), ..Faults::default() }
    }

    /// Only for requests of this method whose path ends so.
    pub fn only(self, method: &'static str, path_ends_with: &'static str) -> Faults {
        Faults { method: Some(method), path_ends_with: Some(path_ends_with), ..self }
    }

    fn pick(&mut self, method: &str, path: &str) -> Option<Fault> {
        if self.method.is_some_and(|only| only != method) || self.path_ends_with.is_some_and(|end| !path.ends_with(end))
        {
            return None;
        }
        if self.always.is_some() {
            return self.always;
        }
        if self.kinds.is_empty() || self.rate <= 0.0 {
            return None;
        }
        let roll = self.next();
        if roll >= self.rate {
            return None;
        }
        let index = (self.next() * self.kinds.len() as f64) as usize;
        Some(self.kinds[index.min(self.kinds.len() - 1)])
    }

    fn next(&mut self) -> f64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random >> 11) as f64 / (1u64 << 53) as f64
    }
}

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
}

/// Everything the stand-in knows. Tests may change it through `GitLab::with`.
#[derive(Debug)]
pub struct World {
    pub users: Vec<User>,
    pub tokens: HashMap<String, TokenRecord>,
    pub projects: Vec<Project>,
    pub pipelines: Vec<Pipeline>,
    pub jobs: Vec<Job>,
    /// Merge requests of the project, by IID (the standard world has !1, from `feature`).
    pub merge_requests: Vec<u64>,
    pub notes: Vec<Note>,
    /// Quick actions GitLab would have executed, as `(note body line, user id)`.
    pub quick_actions: Vec<(String, u64)>,
    /// Repository files of projects: (project path, ref, file path, content). A missing ref means
    /// the default branch, `main`.
    pub files: Vec<(String, String, String, String)>,
    /// GitLab's bundled CI templates by key (`Bash` for `Bash.gitlab-ci.yml`).
    pub templates: Vec<(String, String)>,
    /// Releases of projects, oldest first: (project path, tag name).
    pub releases: Vec<(String, String)>,
    /// Generic package files, oldest upload first (a name uploaded twice keeps both, and a
    /// download gets the newest, as GitLab's duplicates do): (project id, package, version, file).
    pub packages: Vec<(u64, String, String, String, Vec<u8>)>,
    /// MR !1's diff versions, newest last (gitlab.md §L).
    pub mr_versions: Vec<DiffVersion>,
    /// MR !1's changed files in its newest version.
    pub mr_diffs: Vec<FileDiff>,
    /// MR !1's discussions (threads), oldest first.
    pub discussions: Vec<Discussion>,
    /// Violations: thread or reply bodies that held a secret-looking value (a token of this
    /// world, or a string shaped like a GitLab token), as `(what, body)`. Should stay empty.
    pub secrets_in_threads: Vec<(String, String)>,
    /// `notes_create` limit per user and minute (§D.1: 60 on GitLab.com, 300 self-managed).
    pub notes_create_per_minute: Option<usize>,
    notes_created: Vec<(u64, Instant)>,
    /// Every note created through the API, in order: its merge request and first body (each
    /// creation may e-mail the MR's participants).
    pub notes_created_by_api: Vec<(u64, String)>,
    /// Requests of herald's that GitLab's API description does not have (a method, path or
    /// parameter name), and routes served that `ROUTES` does not list: the test fails when its
    /// stand-in is dropped (see `GitLab`'s `Drop`).
    pub api_violations: Vec<String>,
    /// Answer every success with this status instead of the route's own: GitLab's description
    /// lists 200 for a status post where GitLab answers 201, and herald takes any 2xx.
    pub success_status: Option<u16>,
    pub faults: Faults,
    pub requests: Vec<Recorded>,
    /// How many answers were 429 (injected storms and the notes rate limit alike).
    pub answered_429: usize,
    /// Answer the statuses list oldest first whatever `sort` says, as GitLab before `sort` did.
    pub ignores_status_sort: bool,
    /// GitLab as far away as this round trip: each answer waits it once, and a new connection
    /// once more (TCP's handshake) and, over TLS, once again (TLS 1.3's). Zero on loopback.
    pub round_trip: Duration,
    /// Connections accepted so far (a client that keeps its connection alive opens few).
    pub connections: usize,
    next_id: u64,
    clock: u64,
}

impl World {
    fn standard() -> World {
        let user = |id, name: &str, bot| User { id, username: name.into(), bot };
        let token = |user_id, name: &str, scopes: &[&'static str], expires_in_days, revoked| TokenRecord {
            user_id,
            name: name.into(),
            scopes: scopes.to_vec(),
            expires_in_days,
            revoked,
        };
        let tokens = HashMap::from([
            (TOKEN_DEVELOPER.into(), token(100, "herald", &["api"], Some(300), false)),
            (TOKEN_MAINTAINER.into(), token(102, "herald-maintainer", &["api"], None, false)),
            (TOKEN_REPORTER.into(), token(101, "herald-reporter", &["api"], Some(300), false)),
            (TOKEN_READ_API.into(), token(100, "herald-readonly", &["read_api"], Some(300), false)),
            (TOKEN_EXPIRED.into(), token(100, "herald-old", &["api"], Some(-2), false)),
            (TOKEN_REVOKED.into(), token(100, "herald-revoked", &["api"], Some(300), true)),
            (TOKEN_EXPIRING.into(), token(100, "herald-expiring", &["api"], Some(3), false)),
            (TOKEN_OUTSIDER.into(), token(103, "stranger", &["api"], None, false)),
        ]);
        let project = Project {
            id: PROJECT_ID,
            path: PROJECT_PATH.into(),
            members: HashMap::from([(100, 30), (101, 20), (102, 40)]),
            protected_branches: vec!["main".into()],
            branches: HashMap::from([("feature".into(), SHA_FEATURE.into()), ("main".into(), SHA_MAIN.into())]),
            commits: vec![SHA_FEATURE.into(), SHA_MAIN.into(), SHA_MERGE.into()],
            public: false,
        };
        // (The pipeline's source, push or merge_request_event, is what CI_PIPELINE_SOURCE tells jobs.)
        let pipeline = |id, sha: &str, reference: &str| Pipeline {
            id,
            project_id: PROJECT_ID,
            sha: sha.into(),
            reference: reference.into(),
        };
        let mut world = World {
            users: vec![
                user(100, "project_42_bot", true),
                user(101, "reporter_bot", true),
                user(102, "maintainer", false),
                user(103, "stranger", false),
            ],
            tokens,
            projects: vec![project],
            pipelines: vec![
                pipeline(PIPELINE_BRANCH, SHA_FEATURE, "feature"),
                pipeline(PIPELINE_DETACHED, SHA_FEATURE, "refs/merge-requests/1/head"),
                pipeline(PIPELINE_MERGED, SHA_MERGE, "refs/merge-requests/1/merge"),
                pipeline(PIPELINE_MAIN, SHA_MAIN, "main"),
            ],
            jobs: Vec::new(),
            merge_requests: vec![1],
            notes: Vec::new(),
            quick_actions: Vec::new(),
            files: Vec::new(),
            releases: Vec::new(),
            packages: Vec::new(),
            mr_versions: Vec::new(),
            mr_diffs: Vec::new(),
            discussions: Vec::new(),
            secrets_in_threads: Vec::new(),
            templates: Vec::new(),
            notes_create_per_minute: None,
            notes_created: Vec::new(),
            notes_created_by_api: Vec::new(),
            api_violations: Vec::new(),
            success_status: None,
            faults: Faults::default(),
            requests: Vec::new(),
            answered_429: 0,
            ignores_status_sort: false,
            round_trip: Duration::ZERO,
            connections: 0,
            next_id: 5000,
            clock: 0,
        };
        // Each pipeline runs a real CI job named "test", so statuses are mixed with builds.
        for pipeline in world.pipelines.clone() {
            world.add_job(pipeline.id, "test", "test", "running");
        }
        world
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Adds a CI job to a pipeline; returns its id and web URL (what `CI_JOB_URL` would be).
    pub fn add_job(&mut self, pipeline_id: u64, name: &str, stage: &str, status: &str) -> (u64, String) {
        let id = self.new_id();
        let pipeline = self.pipelines.iter().find(|p| p.id == pipeline_id).expect("pipeline").clone();
        self.jobs.push(Job {
            id,
            pipeline_id,
            kind: JobKind::Build,
            stage: stage.into(),
            name: name.into(),
            status: status.into(),
            reference: pipeline.reference,
            sha: pipeline.sha,
            user_id: 102,
            description: None,
            target_url: None,
            retried: false,
            allow_failure: false,
            trace: String::new(),
        });
        (id, job_url(id))
    }

    /// Adds a commit status of the token's user (100) to a pipeline, as posting it would have.
    pub fn add_status(&mut self, pipeline_id: u64, name: &str, status: &str, target_url: &str) -> u64 {
        let id = self.new_id();
        let pipeline = self.pipelines.iter().find(|p| p.id == pipeline_id).expect("pipeline").clone();
        self.jobs.push(Job {
            id,
            pipeline_id,
            kind: JobKind::External,
            stage: "external".into(),
            name: name.into(),
            status: status.into(),
            reference: pipeline.reference,
            sha: pipeline.sha,
            user_id: 100,
            description: Some(format!("{status} in 1 s")),
            target_url: Some(target_url.into()),
            retried: false,
            allow_failure: false,
            trace: String::new(),
        });
        id
    }

    /// Adds a pipeline of the project for a commit (registered as one of its commits), as GitLab
    /// creates one when a runner-side tool such as gitlab-ci-local makes up its own.
    pub fn add_pipeline(&mut self, id: u64, sha: &str, reference: &str) {
        let project = self.projects.iter_mut().find(|p| p.id == PROJECT_ID).expect("the project");
        project.commits.push(sha.into());
        self.pipelines.push(Pipeline { id, project_id: PROJECT_ID, sha: sha.into(), reference: reference.into() });
    }

    /// The pipeline's verdict as GitLab composes it from its latest jobs and statuses
    /// (`Gitlab::Ci::Status::Composite`): running while anything runs; else `failed` if a job
    /// that may not fail failed (a commit status never may, gitlab.md §J), `canceled` if one
    /// was canceled, `success_with_warnings` if an allowed job failed, else `success`.
    pub fn pipeline_verdict(&self, pipeline_id: u64) -> &'static str {
        self.verdict_of(pipeline_id, |_| true)
    }

    /// The verdict GitLab would give on the pipeline's CI jobs alone, without any commit status:
    /// what herald must never make worse.
    pub fn verdict_of_jobs(&self, pipeline_id: u64) -> &'static str {
        self.verdict_of(pipeline_id, |job| job.kind == JobKind::Build)
    }

    fn verdict_of(&self, pipeline_id: u64, counted: impl Fn(&Job) -> bool) -> &'static str {
        let latest: Vec<&Job> =
            self.jobs.iter().filter(|j| j.pipeline_id == pipeline_id && !j.retried && counted(j)).collect();
        let any = |f: &dyn Fn(&Job) -> bool| latest.iter().any(|j| f(j));
        if any(&|j| matches!(j.status.as_str(), "running" | "pending" | "created")) {
            "running"
        } else if any(&|j| j.status == "failed" && !j.allow_failure) {
            "failed"
        } else if any(&|j| j.status == "canceled") {
            "canceled"
        } else if any(&|j| j.status == "failed") {
            "success_with_warnings"
        } else {
            "success"
        }
    }

    pub fn set_job_status(&mut self, job_id: u64, status: &str) {
        self.jobs.iter_mut().filter(|j| j.id == job_id).for_each(|j| j.status = status.into());
    }

    /// The notes of a merge request that herald wrote (its marker) — whoever the author.
    pub fn herald_notes(&self, mr_iid: u64) -> Vec<Note> {
        self.notes.iter().filter(|n| n.mr_iid == mr_iid && n.body.starts_with("<!-- herald:note")).cloned().collect()
    }

    /// Adds a note as `author_id` wrote it (e.g. a person quoting herald's marker).
    pub fn add_note(&mut self, mr_iid: u64, author_id: u64, body: &str) -> u64 {
        let id = self.new_id();
        let updated = self.tick();
        self.notes.push(Note {
            id,
            mr_iid,
            body: body.into(),
            author_id,
            system: false,
            updated,
            updated_at: unix_now(),
        });
        id
    }

    /// Adds a project readable by every user (for `include: project` and components).
    pub fn add_public_project(&mut self, id: u64, path: &str) {
        let members = self.users.iter().map(|u| (u.id, 20)).collect();
        self.projects.push(Project {
            id,
            path: path.into(),
            members,
            protected_branches: Vec::new(),
            branches: HashMap::new(),
            commits: Vec::new(),
            public: true,
        });
    }

    /// Puts a file into a project's repository at a ref.
    pub fn add_file(&mut self, project: &str, reference: &str, path: &str, content: &str) {
        self.files.push((project.into(), reference.into(), path.into(), content.into()));
    }

    /// Makes a note look `seconds` older, as if time had passed since its last edit.
    pub fn age_note(&mut self, id: u64, seconds: f64) {
        self.notes.iter_mut().filter(|n| n.id == id).for_each(|n| n.updated_at -= seconds);
    }

    /// The external statuses (latest, not retried) of a pipeline, by name.
    pub fn statuses(&self, pipeline_id: u64) -> BTreeMap<String, Job> {
        self.jobs
            .iter()
            .filter(|job| job.pipeline_id == pipeline_id && job.kind == JobKind::External && !job.retried)
            .map(|job| (job.name.clone(), job.clone()))
            .collect()
    }

    /// Every external status of every pipeline, retried ones included.
    pub fn all_statuses(&self) -> Vec<Job> {
        self.jobs.iter().filter(|job| job.kind == JobKind::External).cloned().collect()
    }
}

/// The web URL of a job, as GitLab builds it.
pub fn job_url(id: u64) -> String {
    format!("https://gitlab.example.com/{PROJECT_PATH}/-/jobs/{id}")
}

/// The running stand-in. Dropping it stops the server.
pub struct GitLab {
    address: SocketAddr,
    world: Arc<Mutex<World>>,
    stopping: Arc<AtomicBool>,
    scheme: &'static str,
    /// The temporary directory of the runner machine whose jobs talk to this GitLab.
    machine: tempfile::TempDir,
}

impl GitLab {
    /// Plain HTTP on loopback.
    pub fn start() -> GitLab {
        GitLab::serving(None)
    }

    /// HTTPS, with `certificates`' server certificate (for 127.0.0.1): herald trusts it through
    /// HERALD_CA_FILE set to `certificates.ca`.
    pub fn start_tls(certificates: &super::tls::Certificates) -> GitLab {
        GitLab::serving(Some(Arc::new(certificates.server_config())))
    }

    fn serving(tls: Option<Arc<rustls::ServerConfig>>) -> GitLab {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let address = listener.local_addr().unwrap();
        let world = Arc::new(Mutex::new(World::standard()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (shared, stop) = (world.clone(), stopping.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        thread::spawn(move || {
            for connection in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(connection) = connection else { continue };
                let (shared, stop, tls) = (shared.clone(), stop.clone(), tls.clone());
                thread::spawn(move || serve(connection, &shared, &stop, tls));
            }
        });
        GitLab {
            address,
            world,
            stopping,
            scheme,
            machine: tempfile::Builder::new()
                .prefix("herald-test-runner-tmp-")
                .tempdir()
                .expect("a temporary directory"),
        }
    }

    /// The temporary directory (`TMPDIR`) of the runner machine whose jobs talk to this stand-in.
    /// herald keeps a job's state there between its steps, keyed by server, project, pipeline and
    /// job; job ids are unique within one GitLab, but every stand-in numbers its jobs alike and
    /// may get the port of one that stopped, so each stand-in's jobs get their own machine.
    pub fn machine_tmp(&self) -> &std::path::Path {
        self.machine.path()
    }

    /// The API root, as `CI_API_V4_URL` would give it.
    pub fn api_url(&self) -> String {
        format!("{}://{}/api/v4", self.scheme, self.address)
    }

    /// Reads or changes the world.
    pub fn with<R>(&self, change: impl FnOnce(&mut World) -> R) -> R {
        change(&mut self.lock())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for GitLab {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
        // Every request herald sent, in every test, is one GitLab's API description has.
        let violations = std::mem::take(&mut self.world.lock().unwrap_or_else(|p| p.into_inner()).api_violations);
        if !thread::panicking() {
            assert!(violations.is_empty(), "not in GitLab's API description:\n{}", violations.join("\n"));
        }
    }
}

/// Every route the stand-in serves (`route`), as `(method, path)` with parameters in braces:
/// `tests/standin.rs` checks each against GitLab's API description, and the stand-in records a
/// violation when it answers a request that none of these covers.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/user"),
    ("GET", "/personal_access_tokens/self"),
    ("GET", "/projects/{id}"),
    ("POST", "/projects/{id}/statuses/{sha}"),
    ("GET", "/projects/{id}/repository/commits/{sha}/statuses"),
    ("GET", "/projects/{id}/pipelines/{pipeline_id}"),
    ("GET", "/projects/{id}/pipelines/{pipeline_id}/jobs"),
    ("GET", "/projects/{id}/jobs/{job_id}"),
    ("GET", "/projects/{id}/jobs/{job_id}/trace"),
    ("GET", "/projects/{id}/repository/files/{file_path}/raw"),
    ("GET", "/projects/{id}/releases"),
    ("PUT", "/projects/{id}/packages/generic/{package_name}/{package_version}/{file_name}"),
    ("GET", "/projects/{id}/packages/generic/{package_name}/{package_version}/{file_name}"),
    ("GET", "/templates/gitlab_ci_ymls/{key}"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/pipelines"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/versions"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/diffs"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/discussions"),
    ("POST", "/projects/{id}/merge_requests/{merge_request_iid}/discussions"),
    ("PUT", "/projects/{id}/merge_requests/{merge_request_iid}/discussions/{discussion_id}"),
    ("POST", "/projects/{id}/merge_requests/{merge_request_iid}/discussions/{discussion_id}/notes"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/notes"),
    ("POST", "/projects/{id}/merge_requests/{merge_request_iid}/notes"),
    ("GET", "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}"),
    ("PUT", "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}"),
    ("DELETE", "/projects/{id}/merge_requests/{merge_request_iid}/notes/{note_id}"),
];

/// Whether `ROUTES` has a route for this request.
fn listed_route(method: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    ROUTES.iter().any(|(m, template)| {
        let wanted: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        *m == method
            && wanted.len() == segments.len()
            && wanted.iter().zip(&segments).all(|(w, got)| w.starts_with('{') || w == got)
    })
}

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into(),
        }
    }

    fn message(status: u16, message: &str) -> Answer {
        Answer::json(status, json!({ "message": message }))
    }
}

/// What a connection is read from and written to: the TCP stream, or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One connection, kept alive for as many requests as the client sends on it (as GitLab's
/// front end does), each answered in turn.
fn serve(tcp: TcpStream, world: &Mutex<World>, stopping: &AtomicBool, tls: Option<Arc<rustls::ServerConfig>>) {
    let lock = || world.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // GitLab's nginx closes a connection idle for 65 s (keepalive_timeout, gitlab.md §O).
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(65)));
    let _ = tcp.set_nodelay(true);
    let Ok(socket) = tcp.try_clone() else { return };
    lock().connections += 1;
    // A new connection costs the client a round trip (TCP's handshake); TLS 1.3's, one more.
    let round_trip = lock().round_trip;
    thread::sleep(round_trip);
    let stream: Box<dyn Stream> = match tls {
        Some(config) => {
            thread::sleep(round_trip);
            let Ok(session) = rustls::ServerConnection::new(config) else { return };
            Box::new(rustls::StreamOwned::new(session, tcp))
        }
        None => Box::new(tcp),
    };
    let mut connection = BufReader::new(stream);
    // Playing an HTTPS proxy: after CONNECT, what comes through the tunnel is for that host.
    let mut tunnel: Option<String> = None;
    while let Some(mut request) = read_request(&mut connection) {
        if request.method == "CONNECT" {
            let host = request.path.trim_start_matches('/').to_owned();
            lock().requests.push(request);
            if connection.get_mut().write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
                return;
            }
            tunnel = Some(host);
            continue;
        }
        if tunnel.is_some() {
            request.proxied_host = tunnel.clone();
        }
        let closing = request.headers.get("connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
        if !answer(request, connection.get_mut(), &socket, world, stopping) || closing {
            return;
        }
    }
}

/// Answers one request, faults included; false when the connection must end with it.
fn answer(
    mut request: Recorded,
    connection: &mut dyn Stream,
    socket: &TcpStream,
    world: &Mutex<World>,
    stopping: &AtomicBool,
) -> bool {
    let lock = || world.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let fault = lock().faults.pick(&request.method, &request.path);
    request.fault = fault;
    lock().requests.push(request.clone());
    if request.headers.get("user-agent").is_some_and(|agent| agent.starts_with("herald/")) {
        if let Err(violation) =
            super::api_description::check(&request.method, &request.path, &request.query, &request.body)
        {
            lock().api_violations.push(violation);
        }
    }
    let round_trip = lock().round_trip;
    thread::sleep(round_trip);

    let answer = match fault {
        Some(Fault::Reset) => return reset(socket),
        Some(Fault::Hang) => {
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until && !stopping.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
            }
            return false;
        }
        Some(Fault::ServerError(status)) => Answer {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: format!("<html><body><h1>{status}</h1>We're sorry, something went wrong.</body></html>").into(),
        },
        Some(Fault::Lock) => Answer::message(409, "Another update to this commit status is in progress"),
        Some(Fault::RateLimited { retry_after_secs }) => rack_attack_429(retry_after_secs),
        Some(Fault::EchoHeaders) => Answer {
            status: 500,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: format!("upstream error, request headers: {:?}", request.headers).into(),
        },
        Some(Fault::ResetAfterApplying) => {
            route(&request, &mut lock());
            return reset(socket);
        }
        Some(Fault::Slow(delay)) => {
            thread::sleep(delay);
            route(&request, &mut lock())
        }
        Some(Fault::CutBody) | None => route(&request, &mut lock()),
    };
    let mut answer = answer;
    if answer.status != 404 && answer.status != 429 && !listed_route(&request.method, &request.path) {
        lock()
            .api_violations
            .push(format!("the stand-in served {} {}, which ROUTES lacks", request.method, request.path));
    }
    if let (Some(status), true) = (lock().success_status, (200..300).contains(&answer.status)) {
        answer.status = status;
    }
    if answer.status == 429 {
        lock().answered_429 += 1;
    }
    let mut text = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Date: {}\r\n", http_date(unix_now())));
    text.push_str(&format!("Content-Length: {}\r\n\r\n", answer.body.len()));
    let mut bytes = text.into_bytes();
    if fault == Some(Fault::CutBody) {
        // Half the bytes, wherever that falls (inside a character too, as a dropped connection does).
        bytes.extend_from_slice(&answer.body[..answer.body.len() / 2]);
        let _ = connection.write_all(&bytes);
        let _ = connection.flush();
        return reset(socket);
    }
    bytes.extend_from_slice(&answer.body);
    connection.write_all(&bytes).and_then(|()| connection.flush()).is_ok()
}

/// Closes with RST instead of FIN: what a crashed proxy or a dropped connection looks like.
/// Returns false: the connection ends (the caller drops it, and with it the socket).
fn reset(connection: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a valid socket and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            connection.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    false
}

fn rack_attack_429(retry_after_secs: u64) -> Answer {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    Answer {
        status: 429,
        headers: vec![
            ("Content-Type".into(), "text/plain".into()),
            ("Retry-After".into(), retry_after_secs.to_string()),
            ("RateLimit-Name".into(), "throttle_authenticated_api".into()),
            ("RateLimit-Limit".into(), "2000".into()),
            ("RateLimit-Observed".into(), "2001".into()),
            ("RateLimit-Remaining".into(), "0".into()),
            ("RateLimit-Reset".into(), (now + retry_after_secs).to_string()),
        ],
        body: "Retry later\n".into(),
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
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
fn params(query: &str, body: &str) -> HashMap<String, String> {
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

fn reason(status: u16) -> &'static str {
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

/// Authentication (§C): returns the user id, or the error answer.
fn authenticate(request: &Recorded, world: &World) -> Result<(u64, Vec<&'static str>, TokenRecord), Answer> {
    let secret =
        request.headers.get("private-token").cloned().or_else(|| {
            request.headers.get("authorization").and_then(|a| a.strip_prefix("Bearer ")).map(str::to_owned)
        });
    let unauthorized = || Answer::message(401, "401 Unauthorized");
    let Some(secret) = secret else { return Err(unauthorized()) };
    // A job token sent as PRIVATE-TOKEN is ignored (§A.1), so it is simply unknown here.
    let Some(record) = world.tokens.get(&secret) else { return Err(unauthorized()) };
    let invalid_token = |description: &str| {
        let mut answer = Answer::json(401, json!({ "error": "invalid_token", "error_description": description }));
        answer.headers.push((
            "WWW-Authenticate".into(),
            format!("Bearer realm=\"The API\", error=\"invalid_token\", error_description=\"{description}\""),
        ));
        answer
    };
    if record.revoked {
        return Err(invalid_token("Token was revoked. You have to re-authorize from the user."));
    }
    if record.expires_in_days.is_some_and(|days| days < 0) {
        return Err(invalid_token("Token is expired. You can either do re-authorization or token refresh."));
    }
    Ok((record.user_id, record.scopes.clone(), record.clone()))
}

/// Scope check (§C.2): `api` allows all; `read_api` only GET/HEAD; `read_user` only `/user` reads.
/// `/personal_access_tokens/self` accepts any scope (§C.4).
fn scope_allows(scopes: &[&str], method: &str, path: &str) -> bool {
    path == "/personal_access_tokens/self"
        || scopes.contains(&"api")
        || (method == "GET" && scopes.contains(&"read_api"))
        || (method == "GET" && path == "/user" && scopes.contains(&"read_user"))
}

fn route(request: &Recorded, world: &mut World) -> Answer {
    let anonymous = !request.headers.contains_key("private-token") && !request.headers.contains_key("authorization");
    if anonymous && request.method == "GET" {
        if let Some(answer) = public_package_file(request, world) {
            return answer;
        }
    }
    let (user_id, scopes, token) = match authenticate(request, world) {
        Ok(found) => found,
        Err(answer) => return answer,
    };
    if !scope_allows(&scopes, &request.method, &request.path) {
        let scope = if request.method == "GET" { "api read_api" } else { "api" };
        return Answer::json(
            403,
            json!({
                "error": "insufficient_scope",
                "error_description": "The request requires higher privileges than provided by the access token.",
                "scope": scope
            }),
        );
    }
    let segments: Vec<String> = request.path.trim_start_matches('/').split('/').map(decode).collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let params = params(&request.query, &request.body);
    match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["user"]) => {
            let user = world.users.iter().find(|u| u.id == user_id).unwrap();
            Answer::json(
                200,
                json!({ "id": user.id, "username": user.username, "name": user.username, "state": "active", "bot": user.bot }),
            )
        }
        ("GET", ["personal_access_tokens", "self"]) => Answer::json(
            200,
            json!({
                "id": 1, "name": token.name, "revoked": false, "active": true, "expired": false,
                "scopes": token.scopes, "user_id": token.user_id,
                "created_at": "2026-01-01T00:00:00.000Z", "last_used_at": null,
                "expires_at": token.expires_in_days.map(date_in_days),
            }),
        ),
        ("GET", ["projects", project]) => match visible_project(world, project, user_id) {
            Ok(project) => {
                let level = project.members.get(&user_id).copied();
                Answer::json(
                    200,
                    json!({
                        "id": project.id, "path_with_namespace": project.path,
                        "permissions": { "project_access": level.map(|l| json!({"access_level": l, "notification_level": 3})), "group_access": null }
                    }),
                )
            }
            Err(answer) => answer,
        },
        ("POST", ["projects", project, "statuses", sha]) => post_status(world, project, sha, user_id, &params),
        ("GET", ["projects", project, "pipelines", id]) => match pipeline_of(world, project, id, user_id) {
            Ok(pipeline) => Answer::json(200, pipeline_entity(world, &pipeline)),
            Err(answer) => answer,
        },
        ("GET", ["projects", project, "pipelines", id, "jobs"]) => match pipeline_of(world, project, id, user_id) {
            Ok(pipeline) => {
                let jobs: Vec<&Job> = world
                    .jobs
                    .iter()
                    .filter(|j| j.pipeline_id == pipeline.id && j.kind == JobKind::Build)
                    .filter(|j| !j.retried || params.get("include_retried").is_some_and(|v| v == "true"))
                    .collect();
                paginate(&jobs, &params, |job| job_entity(job))
            }
            Err(answer) => answer,
        },
        ("GET", ["projects", project, "repository", "files", path, "raw"]) => {
            match visible_project(world, project, user_id) {
                Ok(project) => {
                    let reference = params.get("ref").cloned().unwrap_or_else(|| "main".into());
                    match world.files.iter().find(|(p, r, f, _)| *p == project.path && *r == reference && f == path) {
                        Some((_, _, _, content)) => Answer {
                            status: 200,
                            headers: vec![("Content-Type".into(), "text/plain".into())],
                            body: content.clone().into(),
                        },
                        None => Answer::message(404, "404 File Not Found"),
                    }
                }
                Err(answer) => answer,
            }
        }
        // Newest first, as GitLab sorts them by default (released_at desc).
        ("GET", ["projects", project, "releases"]) => match visible_project(world, project, user_id) {
            Ok(project) => {
                let releases: Vec<&(String, String)> =
                    world.releases.iter().rev().filter(|(path, _)| *path == project.path).collect();
                paginate(&releases, &params, |(_, tag)| json!({ "tag_name": tag, "name": tag }))
            }
            Err(answer) => answer,
        },
        // One job (`lib/api/jobs.rb`): the same entity as the pipeline's list.
        ("GET", ["projects", project, "jobs", id]) => match visible_project(world, project, user_id) {
            Ok(project) => {
                let job = world.jobs.iter().find(|j| {
                    j.id.to_string() == *id
                        && j.kind == JobKind::Build
                        && world.pipelines.iter().any(|p| p.id == j.pipeline_id && p.project_id == project.id)
                });
                match job {
                    Some(job) => Answer::json(200, job_entity(job)),
                    None => Answer::message(404, "404 Not found"),
                }
            }
            Err(answer) => answer,
        },
        ("GET", ["projects", project, "jobs", id, "trace"]) => match visible_project(world, project, user_id) {
            Ok(project) => {
                let job = world.jobs.iter().find(|j| {
                    j.id.to_string() == *id
                        && j.kind == JobKind::Build
                        && world.pipelines.iter().any(|p| p.id == j.pipeline_id && p.project_id == project.id)
                });
                match job {
                    Some(job) => Answer {
                        status: 200,
                        headers: vec![("Content-Type".into(), "text/plain".into())],
                        body: job.trace.clone().into(),
                    },
                    None => Answer::message(404, "404 Not found"),
                }
            }
            Err(answer) => answer,
        },
        ("PUT", ["projects", project, "packages", "generic", name, version, file]) => {
            match visible_project(world, project, user_id) {
                Ok(project) if project.members.get(&user_id).copied().unwrap_or(0) < 30 => {
                    Answer::message(403, "403 Forbidden")
                }
                Ok(project) => put_package_file(world, project.id, name, version, file, &request.raw_body),
                Err(answer) => answer,
            }
        }
        ("GET", ["projects", project, "packages", "generic", name, version, file]) => {
            match visible_project(world, project, user_id) {
                Ok(project) => package_file(world, project.id, name, version, file),
                Err(answer) => answer,
            }
        }
        ("GET", ["templates", "gitlab_ci_ymls", key]) => match world.templates.iter().find(|(k, _)| k == key) {
            Some((name, content)) => Answer::json(200, json!({ "name": name, "content": content })),
            None => Answer::json(404, json!({ "message": "404 Template Not Found" })),
        },
        // The merge request's pipelines, newest first: its own (refs/merge-requests/<iid>/…) and
        // its source branch's (`MergeRequest#all_pipelines`).
        ("GET", ["projects", project, "merge_requests", iid, "pipelines"]) => {
            match visible_project(world, project, user_id) {
                Ok(project) if iid.parse::<u64>().is_ok_and(|iid| world.merge_requests.contains(&iid)) => {
                    let own = format!("refs/merge-requests/{iid}/");
                    let mut pipelines: Vec<&Pipeline> = world
                        .pipelines
                        .iter()
                        .filter(|p| {
                            p.project_id == project.id && (p.reference.starts_with(&own) || p.reference == "feature")
                        })
                        .collect();
                    pipelines.sort_by_key(|p| std::cmp::Reverse(p.id));
                    let rows: Vec<Value> = pipelines
                    .iter()
                    .map(|p| {
                        json!({ "id": p.id, "sha": p.sha, "ref": p.reference, "status": world.pipeline_verdict(p.id),
                                "web_url": format!("https://gitlab.example.com/{}/-/pipelines/{}", project.path, p.id) })
                    })
                    .collect();
                    paginate(&rows, &params, Clone::clone)
                }
                Ok(_) => Answer::message(404, "404 Merge Request Not Found"),
                Err(answer) => answer,
            }
        }
        (
            method,
            ["projects", project, "merge_requests", iid, what @ ("versions" | "diffs" | "discussions"), rest @ ..],
        ) => diff_threads(world, method, project, iid, what, rest, user_id, &params),
        (method, ["projects", project, "merge_requests", iid, "notes", rest @ ..]) => {
            notes(world, method, project, iid, rest.first().copied(), user_id, &params)
        }
        ("GET", ["projects", project, "repository", "commits", sha, "statuses"]) => {
            list_statuses(world, project, sha, user_id, &params)
        }
        _ => Answer::json(404, json!({ "error": "404 Not Found" })),
    }
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// `2026-11-21T00:31:13.123Z`, as GitLab's JSON has it.
fn iso8601(unix: f64) -> String {
    let (y, m, d) = civil(unix.div_euclid(86_400.0) as i64);
    let seconds = unix.rem_euclid(86_400.0);
    let whole = seconds as u64;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        whole / 3600,
        whole / 60 % 60,
        whole % 60,
        ((seconds - whole as f64) * 1000.0) as u64
    )
}

/// `Sun, 22 Nov 2026 00:31:13 GMT`, as HTTP's Date header has it.
fn http_date(unix: f64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    let days = unix.div_euclid(86_400.0) as i64;
    let (y, m, d) = civil(days);
    let whole = unix.rem_euclid(86_400.0) as u64;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[m as usize - 1],
        whole / 3600,
        whole / 60 % 60,
        whole % 60
    )
}

fn date_in_days(days: i64) -> String {
    let (y, m, d) = civil((unix_now() as i64).div_euclid(86_400) + days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The civil date of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(day: i64) -> (i64, i64, i64) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The project by id or path, if the user can see it (private project: members only, §C.2).
fn visible_project(world: &World, id_or_path: &str, user_id: u64) -> Result<Project, Answer> {
    world
        .projects
        .iter()
        .find(|p| p.id.to_string() == id_or_path || p.path == id_or_path)
        .filter(|p| p.members.contains_key(&user_id))
        .cloned()
        .ok_or_else(|| Answer::message(404, "404 Project Not Found"))
}

/// `PUT /projects/:id/packages/generic/:name/:version/:file` (gitlab.md §N): the names checked by
/// `Gitlab::Regex::Packages`' generic regexes; a second upload of a name adds a newer file.
fn put_package_file(world: &mut World, project: u64, name: &str, version: &str, file: &str, bytes: &[u8]) -> Answer {
    let name_ok =
        |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b));
    let version_ok = !version.is_empty()
        && !version.contains("..")
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(&b));
    if !name_ok(name) || !name_ok(file) || !version_ok {
        return Answer::message(400, "400 Bad request - package_name, package_version or file_name is invalid");
    }
    world.packages.push((project, name.into(), version.into(), file.into(), bytes.to_vec()));
    Answer::message(201, "201 Created")
}

/// A generic package file's bytes, the newest upload of that name.
fn package_file(world: &World, project: u64, name: &str, version: &str, file: &str) -> Answer {
    match world.packages.iter().rev().find(|(p, n, v, f, _)| *p == project && n == name && v == version && f == file) {
        Some((_, _, _, _, bytes)) => Answer {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: bytes.clone(),
        },
        None => Answer::message(404, "404 Package Not Found"),
    }
}

/// A public project's generic package files can be downloaded without a token.
fn public_package_file(request: &Recorded, world: &World) -> Option<Answer> {
    let segments: Vec<String> = request.path.trim_start_matches('/').split('/').map(decode).collect();
    let ["projects", project, "packages", "generic", name, version, file] =
        segments.iter().map(String::as_str).collect::<Vec<_>>()[..]
    else {
        return None;
    };
    let project = world.projects.iter().find(|p| p.public && (p.id.to_string() == project || p.path == project))?;
    Some(package_file(world, project.id, name, version, file))
}

/// A merge request of a project the user can see: its iid and the user's access level, or the
/// 404 GitLab answers (project first, then merge request).
fn merge_request_access(world: &World, project: &str, iid: &str, user_id: u64) -> Result<(u64, u32), Answer> {
    let project = visible_project(world, project, user_id)?;
    let level = project.members.get(&user_id).copied().unwrap_or(0);
    match iid.parse::<u64>().ok().filter(|iid| world.merge_requests.contains(iid)) {
        Some(iid) => Ok((iid, level)),
        None => Err(Answer::message(404, "404 Merge Request Not Found")),
    }
}

/// `POST /projects/:id/statuses/:sha`, following `Ci::CreateCommitStatusService` (§A.1).
/// Simplification: the exclusive lease is not modelled (requests are serialised by the world's
/// lock); its 409 is available as an injected fault.
fn post_status(world: &mut World, project: &str, sha: &str, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let project = match visible_project(world, project, user_id) {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    let level = project.members.get(&user_id).copied().unwrap_or(0);
    if level < 30 {
        return Answer::message(403, "403 Forbidden");
    }
    let Some(state) = params.get("state") else {
        return Answer::json(400, json!({ "error": "state is missing" }));
    };
    if !["pending", "running", "success", "failed", "canceled", "skipped"].contains(&state.as_str()) {
        return Answer::json(400, json!({ "error": "state does not have a valid value" }));
    }
    if !project.commits.iter().any(|c| c == sha) {
        return Answer::message(404, "404 Commit Not Found");
    }
    let pipeline_id: Option<u64> = params.get("pipeline_id").and_then(|id| id.parse().ok());
    let requested_ref = params.get("ref").cloned();

    // first_matching_pipeline: newest first, filtered by ref and id when given.
    let mut candidates: Vec<&Pipeline> =
        world.pipelines.iter().filter(|p| p.project_id == project.id && p.sha == sha).collect();
    candidates.sort_by_key(|p| std::cmp::Reverse(p.id));
    let matching = candidates
        .into_iter()
        .filter(|p| requested_ref.as_ref().is_none_or(|r| &p.reference == r))
        .find(|p| pipeline_id.is_none_or(|id| p.id == id))
        .cloned();
    let branch_with_sha = project.branches.iter().find(|(_, head)| *head == sha).map(|(name, _)| name.clone());
    let Some(reference) =
        requested_ref.clone().or_else(|| matching.as_ref().map(|p| p.reference.clone())).or(branch_with_sha)
    else {
        return Answer::message(404, "404 References for commit Not Found");
    };
    let pipeline = match (matching, pipeline_id) {
        (Some(pipeline), _) => pipeline,
        (None, Some(_)) => return Answer::message(404, "404 Pipeline for pipeline_id, sha and ref Not Found"),
        (None, None) => {
            let id = world.new_id();
            // A new pipeline with source `external`.
            let pipeline = Pipeline { id, project_id: project.id, sha: sha.into(), reference: reference.clone() };
            world.pipelines.push(pipeline.clone());
            pipeline
        }
    };
    // update_pipeline: a Developer may not update a protected branch's pipeline.
    if project.protected_branches.contains(&pipeline.reference) && level < 40 {
        return Answer::message(403, "403 Forbidden");
    }
    let name = params.get("name").or_else(|| params.get("context")).cloned().unwrap_or_else(|| "default".into());
    if world.jobs.iter().any(|j| j.pipeline_id == pipeline.id && j.kind == JobKind::Build && j.name == name) {
        return Answer::json(400, json!({ "message": { "name": ["has already been taken"] } }));
    }
    if let Some(description) = params.get("description") {
        if description.chars().count() > 255 {
            return Answer::json(
                400,
                json!({ "message": { "description": ["is too long (maximum is 255 characters)"] } }),
            );
        }
    }
    if let Some(url) = params.get("target_url") {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 255 {
            return Answer::json(
                400,
                json!({ "message": { "target_url": ["is blocked: Only allowed schemes are http, https"] } }),
            );
        }
    }

    // Find a pending/running status of this name, ref and user in the pipeline, or build one.
    let existing = world.jobs.iter().position(|j| {
        j.kind == JobKind::External
            && j.pipeline_id == pipeline.id
            && j.name == name
            && j.reference == pipeline.reference
            && j.user_id == user_id
            && (j.status == "pending" || j.status == "running")
    });
    let current = existing.map_or("created".to_owned(), |i| world.jobs[i].status.clone());
    let next = match transition(&current, state) {
        Ok(next) => next,
        Err((event, from)) => {
            return Answer::message(
                400,
                &format!("Cannot transition status via :{event} from :{from} (Reason(s): Status cannot transition via \"{event}\")"),
            )
        }
    };
    let index = match existing {
        Some(index) => index,
        None => {
            let id = world.new_id();
            world.jobs.push(Job {
                id,
                pipeline_id: pipeline.id,
                kind: JobKind::External,
                stage: "external".into(),
                name: name.clone(),
                status: "created".into(),
                reference: pipeline.reference.clone(),
                sha: sha.into(),
                user_id,
                description: None,
                target_url: None,
                retried: false,
                allow_failure: false,
                trace: String::new(),
            });
            world.jobs.len() - 1
        }
    };
    let job_id = world.jobs[index].id;
    {
        let job = &mut world.jobs[index];
        job.status = next.into();
        if let Some(description) = params.get("description") {
            job.description = Some(description.clone());
        }
        if let Some(url) = params.get("target_url") {
            job.target_url = Some(url.clone());
        }
    }
    // update_older_statuses_retried!: every other latest job of that name in the pipeline.
    for job in world.jobs.iter_mut() {
        if job.pipeline_id == pipeline.id && job.name == name && job.id != job_id {
            job.retried = true;
        }
    }
    let job = world.jobs[index].clone();
    Answer::json(201, status_entity(world, &job))
}

fn pipeline_of(world: &World, project: &str, id: &str, user_id: u64) -> Result<Pipeline, Answer> {
    let project = visible_project(world, project, user_id)?;
    if project.members.get(&user_id).copied().unwrap_or(0) < 20 {
        return Err(Answer::message(403, "403 Forbidden"));
    }
    world
        .pipelines
        .iter()
        .find(|p| p.id.to_string() == id && p.project_id == project.id)
        .cloned()
        .ok_or_else(|| Answer::message(404, "404 Not found"))
}

/// A pipeline's status, derived from its jobs as GitLab does in the common cases.
fn pipeline_status(world: &World, pipeline_id: u64) -> &'static str {
    let statuses: Vec<&str> =
        world.jobs.iter().filter(|j| j.pipeline_id == pipeline_id && !j.retried).map(|j| j.status.as_str()).collect();
    if statuses.iter().any(|s| matches!(*s, "running" | "pending" | "created")) {
        "running"
    } else if statuses.contains(&"failed") {
        "failed"
    } else if statuses.contains(&"canceled") {
        "canceled"
    } else {
        "success"
    }
}

fn pipeline_entity(world: &World, pipeline: &Pipeline) -> Value {
    json!({
        "id": pipeline.id, "iid": pipeline.id - 1000, "project_id": pipeline.project_id, "sha": pipeline.sha,
        "ref": pipeline.reference, "status": pipeline_status(world, pipeline.id),
        "web_url": format!("https://gitlab.example.com/{PROJECT_PATH}/-/pipelines/{}", pipeline.id),
    })
}

fn job_entity(job: &Job) -> Value {
    json!({
        "id": job.id, "name": job.name, "stage": job.stage, "status": job.status, "ref": job.reference,
        "allow_failure": job.allow_failure, "web_url": job_url(job.id), "pipeline": { "id": job.pipeline_id },
        "started_at": null, "finished_at": null, "duration": null,
    })
}

/// Merge-request notes (§B.1–B.4).
fn notes(
    world: &mut World,
    method: &str,
    project: &str,
    iid: &str,
    note_id: Option<&str>,
    user_id: u64,
    params: &HashMap<String, String>,
) -> Answer {
    let (iid, level) = match merge_request_access(world, project, iid, user_id) {
        Ok(access) => access,
        Err(answer) => return answer,
    };
    let note_index = match note_id
        .map(|id| id.parse::<u64>().ok().and_then(|id| world.notes.iter().position(|n| n.id == id && n.mr_iid == iid)))
    {
        Some(None) => return Answer::message(404, "404 Note Not Found"),
        Some(Some(index)) => Some(index),
        None => None,
    };
    // admin_note: the author, or a Maintainer; never a system note (§B.2).
    let may_admin = |note: &Note| !note.system && (note.author_id == user_id || level >= 40);
    match (method, note_index) {
        ("GET", None) => {
            let filter = params.get("activity_filter").map(String::as_str).unwrap_or("all_notes");
            let mut list: Vec<&Note> = world
                .notes
                .iter()
                .filter(|n| n.mr_iid == iid)
                .filter(|n| match filter {
                    "only_comments" => !n.system,
                    "only_activity" => n.system,
                    _ => true,
                })
                .collect();
            // order_by created_at is ordering by id; default sort is desc (§B.1).
            let by_updated = params.get("order_by").is_some_and(|o| o == "updated_at");
            list.sort_by_key(|n| if by_updated { (n.updated, n.id) } else { (n.id, 0) });
            if params.get("sort").is_none_or(|s| s != "asc") {
                list.reverse();
            }
            paginate(&list, params, |n| note_entity(world, n))
        }
        ("GET", Some(index)) => Answer::json(200, note_entity(world, &world.notes[index])),
        ("POST", None) => {
            let Some(body) = params.get("body").filter(|b| !b.is_empty()) else {
                return Answer::json(400, json!({ "error": "body is missing" }));
            };
            if let Some(refused) = notes_create_limit(world, user_id) {
                return refused;
            }
            if body.chars().count() > 1_000_000 {
                return Answer::message(
                    400,
                    "400 Bad request - Note {:note=>[\"is too long (maximum is 1000000 characters)\"]}",
                );
            }
            let remaining = run_quick_actions(world, body, user_id);
            if remaining.trim().is_empty() {
                return Answer::json(202, json!({ "commands_changes": {}, "summary": ["Commands applied"] }));
            }
            let id = world.add_note(iid, user_id, body);
            world.notes_created_by_api.push((iid, body.clone()));
            let note = world.notes.iter().find(|n| n.id == id).unwrap().clone();
            Answer::json(201, note_entity(world, &note))
        }
        ("PUT", Some(index)) => {
            if !may_admin(&world.notes[index]) {
                return Answer::message(403, "403 Forbidden");
            }
            let Some(body) = params.get("body").filter(|b| !b.is_empty()) else {
                return Answer::json(400, json!({ "error": "body is empty" }));
            };
            if body.chars().count() > 1_000_000 {
                return Answer::message(
                    400,
                    "400 Bad request - Note {:note=>[\"is too long (maximum is 1000000 characters)\"]}",
                );
            }
            let remaining = run_quick_actions(world, body, user_id);
            let note = world.notes[index].clone();
            if remaining.trim().is_empty() {
                // Notes::UpdateService: only commands left, so the note is deleted (§B.3).
                world.notes.remove(index);
                return Answer::json(200, note_entity(world, &note));
            }
            if &world.notes[index].body != body {
                let updated = world.tick();
                let stored = &mut world.notes[index];
                stored.body = body.clone();
                stored.updated = updated;
                stored.updated_at = unix_now();
            }
            let note = world.notes[index].clone();
            Answer::json(200, note_entity(world, &note))
        }
        ("DELETE", Some(index)) => {
            if !may_admin(&world.notes[index]) {
                return Answer::message(403, "403 Forbidden");
            }
            world.notes.remove(index);
            Answer { status: 204, headers: Vec::new(), body: Vec::new() }
        }
        _ => Answer::json(404, json!({ "error": "404 Not Found" })),
    }
}

/// Runs (records) the quick actions in a body, as GitLab does on create and update; returns the
/// body without them. Lines starting with `/word` outside fenced code blocks are commands.
fn run_quick_actions(world: &mut World, body: &str, user_id: u64) -> String {
    let mut in_code = false;
    let mut kept = Vec::new();
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        let command =
            !in_code && line.starts_with('/') && line[1..].chars().next().is_some_and(|c| c.is_ascii_alphabetic());
        if command {
            world.quick_actions.push((line.to_owned(), user_id));
        } else {
            kept.push(line);
        }
    }
    kept.join("\n")
}

fn note_entity(world: &World, note: &Note) -> Value {
    let author = world.users.iter().find(|u| u.id == note.author_id).unwrap();
    json!({
        "id": note.id, "type": null, "body": note.body, "system": note.system,
        "author": { "id": author.id, "username": author.username, "name": author.username, "state": "active", "bot": author.bot },
        "created_at": "2026-11-21T00:00:00.000Z", "updated_at": iso8601(note.updated_at),
        "noteable_type": "MergeRequest", "noteable_iid": note.mr_iid, "resolvable": false, "confidential": false,
        "internal": false, "commands_changes": {},
    })
}

/// An MR's diff versions, diffs and discussions (gitlab.md §L): positions are checked against the
/// newest version's SHAs and its diff (a line that is not an added line of the diff is refused
/// with GitLab's 400); creating a thread or a reply counts against the notes rate limit and runs
/// quick actions like any note.
#[allow(clippy::too_many_arguments)]
fn diff_threads(
    world: &mut World,
    method: &str,
    project: &str,
    iid: &str,
    what: &str,
    rest: &[&str],
    user_id: u64,
    params: &HashMap<String, String>,
) -> Answer {
    let level = match merge_request_access(world, project, iid, user_id) {
        Ok((_, level)) => level,
        Err(answer) => return answer,
    };
    let note_json = |world: &World, note: &DiscussionNote, resolved: bool| {
        let author = world.users.iter().find(|u| u.id == note.author_id).unwrap();
        json!({
            "id": note.id, "type": "DiffNote", "body": note.body, "system": false, "resolvable": true, "resolved": resolved,
            "author": { "id": author.id, "username": author.username },
            "position": note.position.as_ref().map(|(path, line)| json!({ "new_path": path, "new_line": line })),
        })
    };
    match (method, what, rest) {
        ("GET", "versions", []) => {
            let versions: Vec<Value> = world
                .mr_versions
                .iter()
                .rev()
                .map(|v| {
                    json!({ "id": v.id, "head_commit_sha": v.head_commit_sha, "base_commit_sha": v.base_commit_sha,
                                 "start_commit_sha": v.start_commit_sha, "state": "collected" })
                })
                .collect();
            Answer::json(200, Value::Array(versions))
        }
        ("GET", "diffs", []) => paginate(&world.mr_diffs, params, |d| {
            json!({ "old_path": d.old_path, "new_path": d.new_path, "new_file": d.new_file, "renamed_file": d.old_path != d.new_path,
                    "deleted_file": d.deleted_file, "diff": d.diff })
        }),
        ("GET", "discussions", []) => paginate(
            &world.discussions,
            params,
            |d| json!({ "id": d.id, "individual_note": false, "notes": d.notes.iter().map(|n| note_json(world, n, d.resolved)).collect::<Vec<_>>() }),
        ),
        ("POST", "discussions", [] | [_, "notes"]) => {
            let Some(body) = params.get("body").filter(|b| !b.is_empty()) else {
                return Answer::json(400, json!({ "error": "body is missing" }));
            };
            if let Some(refused) = notes_create_limit(world, user_id) {
                return refused;
            }
            let body = body.clone();
            if let Some(secret) = secret_looking(world, &body) {
                world.secrets_in_threads.push((secret, body.clone()));
            }
            run_quick_actions(world, &body, user_id);
            let id = world.new_id();
            if let [discussion, _] = rest {
                let Some(thread) = world.discussions.iter_mut().find(|d| d.id == *discussion) else {
                    return Answer::message(404, "404 Not found");
                };
                thread.notes.push(DiscussionNote { id, author_id: user_id, body, position: None });
                let note = thread.notes.last().unwrap().clone();
                let resolved = thread.resolved;
                return Answer::json(201, note_json(world, &note, resolved));
            }
            let position = match params.get("position").map(|p| serde_json::from_str::<Value>(p)) {
                None => None,
                Some(Ok(position)) => match check_position(world, &position) {
                    Ok(at) => Some(at),
                    Err(answer) => return answer,
                },
                Some(Err(_)) => return Answer::json(400, json!({ "error": "position is invalid" })),
            };
            let thread = Discussion {
                id: format!("{id:040x}"),
                notes: vec![DiscussionNote { id, author_id: user_id, body, position }],
                resolved: false,
            };
            world.discussions.push(thread.clone());
            Answer::json(
                201,
                json!({ "id": thread.id, "individual_note": false, "notes": [note_json(world, &thread.notes[0], false)] }),
            )
        }
        ("PUT", "discussions", [discussion]) => {
            let Some(index) = world.discussions.iter().position(|d| d.id == *discussion) else {
                return Answer::message(404, "404 Not found");
            };
            // resolve_note: Developer or more, or the MR's author (§B.6).
            if level < 30 {
                return Answer::message(403, "403 Forbidden");
            }
            match params.get("resolved").map(String::as_str) {
                Some("true") => world.discussions[index].resolved = true,
                Some("false") => world.discussions[index].resolved = false,
                _ => return Answer::json(400, json!({ "error": "resolved is missing" })),
            }
            let thread = world.discussions[index].clone();
            Answer::json(
                200,
                json!({ "id": thread.id, "individual_note": false,
                "notes": thread.notes.iter().map(|n| note_json(world, n, thread.resolved)).collect::<Vec<_>>() }),
            )
        }
        _ => Answer::json(404, json!({ "error": "404 Not Found" })),
    }
}

/// The secret-looking value in `body`, if any: a token of the world, whole or its part after
/// `test-token-` (`developer-0001`), or anything shaped like a GitLab token (`glpat-` and 20 or
/// more token characters).
fn secret_looking(world: &World, body: &str) -> Option<String> {
    for token in world.tokens.keys() {
        let tail = token.strip_prefix("test-token-").unwrap_or(token);
        if body.contains(token.as_str()) || body.contains(tail) {
            return Some(token.clone());
        }
    }
    let bytes = body.as_bytes();
    for (start, _) in body.match_indices("gl") {
        let rest = &bytes[start + 2..];
        let letters = rest.iter().take_while(|b| b.is_ascii_lowercase()).count();
        if (2..=6).contains(&letters) && rest.get(letters) == Some(&b'-') {
            let run = rest[letters + 1..].iter().take_while(|b| b.is_ascii_alphanumeric() || b"_-".contains(b)).count();
            if run >= 20 {
                return Some(String::from_utf8_lossy(&bytes[start..start + 3 + letters + run]).into_owned());
            }
        }
    }
    None
}

/// A diff position herald may post on: the newest version's SHAs, a file of its diff, and an added
/// line of that file's hunks. Anything else is GitLab's 400 for a line that is not in the diff.
fn check_position(world: &World, position: &Value) -> Result<(String, u64), Answer> {
    let text = |key: &str| position.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let refused = || {
        Answer::message(400, "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}")
    };
    let Some(version) = world.mr_versions.last() else { return Err(refused()) };
    if text("base_sha") != version.base_commit_sha
        || text("head_sha") != version.head_commit_sha
        || text("start_sha") != version.start_commit_sha
        || text("position_type") != "text"
    {
        return Err(refused());
    }
    let path = text("new_path");
    let line = position.get("new_line").and_then(|l| l.as_u64().or_else(|| l.as_str()?.parse().ok()));
    let (Some(line), Some(diff)) = (line, world.mr_diffs.iter().find(|d| d.new_path == path)) else {
        return Err(refused());
    };
    // A renamed file's position names both its paths.
    let old_path = text("old_path");
    if !added_lines(&diff.diff).contains(&line) || (!old_path.is_empty() && old_path != diff.old_path) {
        return Err(refused());
    }
    Ok((path, line))
}

/// The new-file line numbers of a unified diff's added lines.
pub fn added_lines(diff: &str) -> Vec<u64> {
    let mut added = Vec::new();
    let mut new_line = 0u64;
    for line in diff.lines() {
        if let Some(header) = line.strip_prefix("@@ ") {
            // @@ -a,b +c,d @@
            let start = header.split_whitespace().find_map(|part| part.strip_prefix('+'));
            new_line = start.and_then(|s| s.split(',').next()?.parse().ok()).unwrap_or(1);
        } else if line.starts_with('+') {
            added.push(new_line);
            new_line += 1;
        } else if line.starts_with('-') || line.starts_with('\\') {
        } else {
            new_line += 1;
        }
    }
    added
}

/// The `notes_create` rate limit (§D.1), for notes and threads alike: the 429 when this user has
/// used it up within the last minute, else None (and the creation is counted).
fn notes_create_limit(world: &mut World, user_id: u64) -> Option<Answer> {
    let limit = world.notes_create_per_minute?;
    let now = Instant::now();
    world.notes_created.retain(|(_, at)| now.duration_since(*at) < Duration::from_secs(60));
    if world.notes_created.iter().filter(|(user, _)| *user == user_id).count() >= limit {
        return Some(Answer::json(
            429,
            json!({ "message": { "error": "This endpoint has been requested too many times. Try again later." } }),
        ));
    }
    world.notes_created.push((user_id, now));
    None
}

/// GitLab's state machine as the API drives it (§A.1 table). Ok(new state) or Err((event, from)).
fn transition(from: &str, to: &str) -> Result<&'static str, (&'static str, String)> {
    let fail = |event: &'static str| Err((event, from.to_owned()));
    match to {
        "pending" => match from {
            "created" | "skipped" | "manual" | "scheduled" => Ok("pending"),
            _ => fail("enqueue"),
        },
        // `enqueue` (non-raising) then `run!`.
        "running" => match from {
            "created" | "pending" => Ok("running"),
            _ => fail("run"),
        },
        "success" => match from {
            "created" | "pending" | "running" => Ok("success"),
            _ => fail("success"),
        },
        "failed" => match from {
            "created" | "pending" | "running" | "manual" | "scheduled" => Ok("failed"),
            _ => fail("drop"),
        },
        "canceled" => match from {
            "created" | "pending" | "running" | "manual" | "scheduled" => Ok("canceled"),
            _ => fail("cancel"),
        },
        "skipped" => match from {
            "created" | "pending" => Ok("skipped"),
            _ => fail("skip"),
        },
        _ => fail("unknown"),
    }
}

fn status_entity(world: &World, job: &Job) -> Value {
    let author = world.users.iter().find(|u| u.id == job.user_id).unwrap();
    json!({
        "id": job.id, "sha": job.sha, "ref": job.reference, "status": job.status, "name": job.name,
        "target_url": job.target_url, "description": job.description,
        "created_at": "2026-11-21T00:00:00.000Z", "started_at": null, "finished_at": null,
        "allow_failure": false, "coverage": null, "pipeline_id": job.pipeline_id,
        "author": { "id": author.id, "username": author.username, "name": author.username, "state": "active", "bot": author.bot },
    })
}

/// `GET /projects/:id/repository/commits/:sha/statuses` (§A.2): every job of every pipeline on
/// the SHA, CI jobs included; filters `ref`, `name`, `pipeline_id`, `all`; `order_by` (id or
/// pipeline_id) and `sort`; offset pagination.
fn list_statuses(world: &World, project: &str, sha: &str, user_id: u64, params: &HashMap<String, String>) -> Answer {
    let project = match visible_project(world, project, user_id) {
        Ok(project) => project,
        Err(answer) => return answer,
    };
    if project.members.get(&user_id).copied().unwrap_or(0) < 20 {
        return Answer::message(403, "403 Forbidden");
    }
    if !project.commits.iter().any(|c| c == sha) {
        return Answer::message(404, "404 Commit Not Found");
    }
    let all = params.get("all").is_some_and(|v| v == "true");
    let newest_first = match (params.get("order_by").map(String::as_str), params.get("sort").map(String::as_str)) {
        (Some("id" | "pipeline_id") | None, Some("desc")) => !world.ignores_status_sort,
        (Some("id" | "pipeline_id") | None, Some("asc") | None) => false,
        (Some(_), _) => return Answer::json(400, json!({ "error": "order_by does not have a valid value" })),
        (_, Some(_)) => return Answer::json(400, json!({ "error": "sort does not have a valid value" })),
    };
    let mut rows: Vec<&Job> = world
        .jobs
        .iter()
        .filter(|j| j.sha == sha && (all || !j.retried))
        .filter(|j| params.get("ref").is_none_or(|r| &j.reference == r))
        .filter(|j| params.get("name").is_none_or(|n| &j.name == n))
        .filter(|j| params.get("pipeline_id").is_none_or(|id| j.pipeline_id.to_string() == *id))
        .filter(|j| params.get("stage").is_none_or(|stage| &j.stage == stage))
        .collect();
    // By id (pipeline ids grow with job ids here, so order_by=pipeline_id sorts the same).
    rows.sort_by_key(|job| job.id);
    if newest_first {
        rows.reverse();
    }
    paginate(&rows, params, |job| status_entity(world, job))
}

/// Offset pagination with GitLab's headers (§B.8): per_page default 20, at most 100. Only the
/// page asked for is turned into JSON, as a database pages before it serializes: the stand-in's
/// own cost must not grow with the list (the scale campaign reads big ones concurrently).
fn paginate<T>(items: &[T], params: &HashMap<String, String>, entity: impl Fn(&T) -> Value) -> Answer {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_matches_the_reference_table() {
        assert_eq!(transition("created", "running"), Ok("running"));
        assert_eq!(transition("pending", "running"), Ok("running"));
        assert_eq!(transition("running", "running"), Err(("run", "running".into())));
        assert_eq!(transition("pending", "pending"), Err(("enqueue", "pending".into())));
        assert_eq!(transition("running", "pending"), Err(("enqueue", "running".into())));
        assert_eq!(transition("running", "skipped"), Err(("skip", "running".into())));
        assert_eq!(transition("running", "success"), Ok("success"));
        assert_eq!(transition("running", "canceled"), Ok("canceled"));
    }

    #[test]
    fn decodes_parameters() {
        let found = params("name=a%2Fb+c&ref=x", r#"{"state":"running","pipeline_id":7}"#);
        assert_eq!(found["name"], "a/b c");
        assert_eq!(found["pipeline_id"], "7");
        assert_eq!(found["state"], "running");
    }

    #[test]
    fn dates() {
        assert_eq!(date_in_days(0).len(), 10);
        assert_eq!(iso8601(20_778.0 * 86_400.0 + 3661.5), "2026-11-21T01:01:01.500Z");
        assert_eq!(http_date(20_778.0 * 86_400.0 + 10.0), "Sat, 21 Nov 2026 00:00:10 GMT");
    }
}
