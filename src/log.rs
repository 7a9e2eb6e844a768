//! `HERALD_LOG`: what herald says about its own work on stderr, for troubleshooting. `warn` (the
//! default) prints only problems, the one-line messages herald always prints; `info` adds what
//! was published; `debug` every request, retry and decision; `trace` request and response
//! bodies. Bodies are logged by the HTTP client only, with the token masked there.
//!
//! One level for the process, set once at start-up; no dependency, no formatting cost when off.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Error = 1,
    Warn = 2,
    Info = 3,
    Debug = 4,
    Trace = 5,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

impl Level {
    /// `error`, `warn`, `info`, `debug`, `trace`; also `herald=debug`, the form of other tools'
    /// filters. None for anything else.
    pub fn parse(filter: &str) -> Option<Level> {
        let level = filter.trim().rsplit('=').next()?.trim().to_ascii_lowercase();
        Some(match level.as_str() {
            "error" => Level::Error,
            "warn" | "warning" | "" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            "trace" => Level::Trace,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        }
    }
}

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Prints one log line; call through `log!`, which skips the formatting when the level is off.
pub fn write(level: Level, message: std::fmt::Arguments<'_>) {
    crate::output::say(&format!("herald[{}]: {message}", level.name()));
}

/// `log!(Debug, "posted {}", name)`.
#[macro_export]
macro_rules! log {
    ($level:ident, $($arg:tt)*) => {
        if $crate::log::enabled($crate::log::Level::$level) {
            $crate::log::write($crate::log::Level::$level, format_args!($($arg)*));
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_like_other_tools() {
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("herald=TRACE"), Some(Level::Trace));
        assert_eq!(Level::parse(""), Some(Level::Warn));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Error < Level::Trace);
    }
}
