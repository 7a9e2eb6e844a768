//! A GitLab API stand-in: an HTTP server on 127.0.0.1 that behaves as docs/gitlab.md (the
//! project's facts page, cited as "§X") says GitLab does, for the endpoints herald uses. herald's
//! tests, examples and benchmarks run the real binary against it; there is no GitLab here.
//!
//! What it models, by module:
//!
//! - `statuses`: commit statuses (§A): the state machine with GitLab's exact 400/404 bodies;
//!   status identity (name, pipeline, ref, user); pipeline lookup with and without
//!   `pipeline_id`/`ref`, new external pipelines; retried older statuses; the statuses list with
//!   CI jobs mixed in, filters and pagination (§B.8).
//! - `auth`: authentication (§C): `PRIVATE-TOKEN`/Bearer, the 401 shapes (unknown, expired,
//!   revoked), the 403 `insufficient_scope` of a `read_api` token on a write, 403 for roles below
//!   Developer and for Developers on protected branches, 404 for projects the user cannot see.
//!   `/user`, `/personal_access_tokens/self`, `/projects/:id` with `permissions`.
//! - `notes`: merge-request notes (§B): authors, edit/delete rights (author or Maintainer; system
//!   notes never), list pagination with GitLab's default `sort=desc`, `activity_filter`, quick
//!   actions executed on create *and* update (recorded in `World::quick_actions`; a body of
//!   commands only is not saved, or on update deletes the note), the 1,000,000-character limit,
//!   and the `notes_create` application rate limit (a JSON 429 without headers, §D.1).
//! - `discussions`: a merge request's diff versions, diffs and threads (§L), positions checked
//!   against the newest version.
//! - `pipelines` and `jobs`: pipelines (§P) and their CI jobs and logs (§K); the pipeline's
//!   composite verdict (§J). `merge_requests`: a merge request's pipelines and who may see it.
//! - `repository`: repository files and CI templates, for includes (§I, §M); releases (§N).
//!   `packages`: generic packages (§N): uploads, and downloads (without a token for a public
//!   project).
//! - `faults`: rate limits (§D: Rack::Attack's 429, plain text, `Retry-After`, `RateLimit-*`
//!   headers) and faults for resilience tests: 5xx, 409 lock, 429 storms, connection resets before
//!   and after the request took effect, hangs, slow answers, bodies cut off mid-way, and a 500 that
//!   echoes the request headers (the token among them). `faults` says which requests get one,
//!   `fault_answers` what a fault answers instead.
//! - `server`: connections, kept alive for as many requests as the client sends, as GitLab's
//!   front end does (§O; a fault that resets or hangs ends its connection); distance: HTTPS
//!   (`GitLab::start_tls`, certificates from `tls`), and `World::round_trip`, which makes each
//!   answer wait a round trip and each new connection one more for TCP and one for TLS.
//! - `routes`: which area answers a request, and `ROUTES`, every route served, each checked
//!   against GitLab's own API description (`api_description`), as every request of herald's is.
//!
//! Data flows one way, from the bottom up: the data (`world`, holding `records` and each
//! `request` as received, and `faults`), then HTTP as the areas see it (`http`: `Answer`, `Call`,
//! `paginate`), then `auth`, then the areas, each using only what is below it (`jobs` uses
//! `pipelines`, `notes` and `discussions` use `merge_requests`, `discussions` uses `notes`), then
//! `routes` and `server`.
//!
//! Every request is recorded for assertions (`GitLab::requests`); `GitLab::with` reads or changes
//! the `World`. Where it simplifies GitLab, it says so inline.

pub mod api_description;
mod auth;
mod clock;
mod discussions;
mod fault_answers;
mod faults;
mod http;
mod jobs;
mod merge_requests;
mod notes;
mod packages;
mod pipelines;
mod records;
mod repository;
mod request;
mod routes;
mod server;
mod statuses;
pub mod tls;
mod world;

pub use discussions::added_lines;
pub use faults::{Fault, Faults};
pub use records::{DiffVersion, Discussion, DiscussionNote, FileDiff, Job, JobKind, Note, Pipeline};
pub use request::Recorded;
pub use routes::ROUTES;
pub use server::GitLab;
pub use world::*;
