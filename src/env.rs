//! The environment herald reads its settings from — the process's, or a job's as the custom
//! executor passes it — and the one kind of mistake found in it. The lowest layer of settings:
//! `config` (a step's settings) and `context` (where results go) both read through it, and the
//! callers of `pipeline::load` take the CI/CD variables from it (`ci_variables`): pipeline/ itself
//! reads no environment.

use std::ffi::OsString;

/// A configuration mistake: herald exits 125 with this one line, before the step runs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }
}

/// Reads one environment variable; `std::env::var_os` in the binary, a map in tests.
pub trait Env {
    fn get(&self, key: &str) -> Option<OsString>;

    /// Every variable, for finding secrets to mask.
    fn vars(&self) -> Vec<(String, String)>;

    /// A variable that is set to something other than blanks.
    fn non_empty(&self, key: &str) -> Option<OsString> {
        self.get(key).filter(|value| !value.to_string_lossy().trim().is_empty())
    }
}

/// The process environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<OsString> {
        std::env::var_os(key)
    }

    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect()
    }
}

/// The CI/CD variables a pipeline's rules see: the environment's, and the job's as the custom
/// executor passes them (`CUSTOM_ENV_<NAME>`), which do not override the environment's own.
pub fn ci_variables(env: &dyn Env) -> Vec<(String, String)> {
    let own = env.vars();
    let job = own.iter().filter_map(|(k, v)| Some((k.strip_prefix("CUSTOM_ENV_")?.to_owned(), v.clone())));
    // Later entries win in lookups: the job's first, then the environment's own.
    job.collect::<Vec<_>>().into_iter().chain(own.iter().cloned()).collect()
}

/// An environment of fixed pairs, for unit tests of everything that reads variables.
#[cfg(test)]
pub(crate) struct MapEnv(pub std::collections::HashMap<&'static str, &'static str>);

#[cfg(test)]
impl MapEnv {
    pub(crate) fn of(pairs: &[(&'static str, &'static str)]) -> MapEnv {
        MapEnv(pairs.iter().copied().collect())
    }
}

#[cfg(test)]
impl Env for MapEnv {
    fn get(&self, key: &str) -> Option<OsString> {
        self.0.get(key).map(OsString::from)
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A custom executor's job variables are seen, under the process's own of the same name.
    #[test]
    fn ci_variables_add_the_jobs_under_the_environments_own() {
        let env =
            MapEnv::of(&[("CUSTOM_ENV_CI_COMMIT_BRANCH", "feature"), ("CUSTOM_ENV_HOME", "/job"), ("HOME", "/own")]);
        let variables = ci_variables(&env);
        let last = |name: &str| variables.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        assert_eq!(last("CI_COMMIT_BRANCH"), Some("feature"));
        assert_eq!(last("HOME"), Some("/own"));
        assert_eq!(last("CUSTOM_ENV_HOME"), Some("/job"), "kept as it is too");
    }
}
