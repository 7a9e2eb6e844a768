//! The environment herald reads its settings from — the process's, or a job's as the custom
//! executor passes it — and the one kind of mistake found in it. The lowest layer of settings:
//! `config` (a step's settings) and `context` (where results go) both read through it.

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
