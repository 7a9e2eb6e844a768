//! herald's integration tests: one binary, so the suite links once. Each module runs the real
//! `herald` binary the way users and runners do.

mod support;

mod agreement;
mod baseline;
mod campaign;
mod cli;
mod distribution;
mod doctor;
mod e2e;
mod executor;
mod findings;
mod findings_trust;
mod install;
mod joblog;
mod junit;
mod note_render;
mod note_sync;
mod pipeline_props;
mod publish;
mod real_world;
mod standin;
mod summaries;
mod supervise;
mod tasks;
mod tls;
mod trust;
