//! Everything the stand-in knows (`World`), and the standard world every test starts from: one
//! private project with three commits and four pipelines, its members and their tokens. The
//! areas (statuses, notes, …) add the methods that read and change their part of it; adding a CI
//! job is here, below them, because the standard world itself runs one per pipeline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::faults::Faults;
use crate::records::{DiffVersion, Discussion, FileDiff, Job, JobKind, Note, Pipeline};
use crate::request::Recorded;

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
    pub(crate) notes_created: Vec<(u64, Instant)>,
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

/// The standard world's tokens: one per user and per way a token can be wrong.
fn standard_tokens() -> HashMap<String, TokenRecord> {
    let token = |user_id, name: &str, scopes: &[&'static str], expires_in_days, revoked| TokenRecord {
        user_id,
        name: name.into(),
        scopes: scopes.to_vec(),
        expires_in_days,
        revoked,
    };
    HashMap::from([
        (TOKEN_DEVELOPER.into(), token(100, "herald", &["api"], Some(300), false)),
        (TOKEN_MAINTAINER.into(), token(102, "herald-maintainer", &["api"], None, false)),
        (TOKEN_REPORTER.into(), token(101, "herald-reporter", &["api"], Some(300), false)),
        (TOKEN_READ_API.into(), token(100, "herald-readonly", &["read_api"], Some(300), false)),
        (TOKEN_EXPIRED.into(), token(100, "herald-old", &["api"], Some(-2), false)),
        (TOKEN_REVOKED.into(), token(100, "herald-revoked", &["api"], Some(300), true)),
        (TOKEN_EXPIRING.into(), token(100, "herald-expiring", &["api"], Some(3), false)),
        (TOKEN_OUTSIDER.into(), token(103, "stranger", &["api"], None, false)),
    ])
}

/// The standard world's project, `group/app`: a Developer bot, a Reporter, a Maintainer.
fn standard_project() -> Project {
    Project {
        id: PROJECT_ID,
        path: PROJECT_PATH.into(),
        members: HashMap::from([(100, 30), (101, 20), (102, 40)]),
        protected_branches: vec!["main".into()],
        branches: HashMap::from([("feature".into(), SHA_FEATURE.into()), ("main".into(), SHA_MAIN.into())]),
        commits: vec![SHA_FEATURE.into(), SHA_MAIN.into(), SHA_MERGE.into()],
        public: false,
    }
}

impl World {
    pub(crate) fn standard() -> World {
        let user = |id, name: &str, bot| User { id, username: name.into(), bot };
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
            tokens: standard_tokens(),
            projects: vec![standard_project()],
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

    pub(crate) fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The logical clock of note changes.
    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Adds a CI job to a pipeline; returns its id and web URL (what `CI_JOB_URL` would be).
    pub fn add_job(&mut self, pipeline_id: u64, name: &str, stage: &str, status: &str) -> (u64, String) {
        let id = self.new_id();
        let pipeline = self.pipelines.iter().find(|p| p.id == pipeline_id).expect("pipeline");
        let job = Job { stage: stage.into(), ..Job::new(id, pipeline, JobKind::Build, name, status, 102) };
        self.jobs.push(job);
        (id, job_url(id))
    }

    pub fn set_job_status(&mut self, job_id: u64, status: &str) {
        self.jobs.iter_mut().filter(|j| j.id == job_id).for_each(|j| j.status = status.into());
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
}

/// The web URL of a job, as GitLab builds it.
pub fn job_url(id: u64) -> String {
    format!("https://gitlab.example.com/{PROJECT_PATH}/-/jobs/{id}")
}
