//! How a step is shown to people and tools without any token: the job log (collapsible sections
//! and a summary line) and a JUnit XML report for GitLab's test widget. The merge-request note
//! will live here too.

pub mod excerpt;
pub mod joblog;
pub mod junit;
pub mod note;
