//! Runs one step the way a good init process would: the child in its own process group with stdio
//! inherited untouched, herald's termination signals forwarded to that group, a timeout with grace
//! then SIGKILL, every zombie reaped, and nothing of the step left running when herald returns.
//!
//! The design is tini's, not an async runtime's: the handled signals are blocked before the child
//! exists and taken synchronously with `sigtimedwait`, so no signal is ever lost or handled in a
//! signal handler, and the whole supervisor is one loop on one thread. That loop is the only caller
//! of `waitpid` in herald. Whatever else herald does while a step runs (publishing) happens on
//! other threads, which inherit the blocked mask and so never steal a signal.

mod sys;
mod tee;

use std::ffi::OsString;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::step::{signal_name, ProcessEnd, StepEnd, StepOutcome, StopCause};
use sys::{Pid, Reaped, SignalSet};

/// Signals that mean "stop": forwarded to the step's group; a second one escalates to SIGKILL.
const TERMINATING: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGHUP];
/// Signals passed through to the step's group as they are, for programs that use them
/// (log reopening, status dumps).
const PASSED_THROUGH: [i32; 2] = [libc::SIGUSR1, libc::SIGUSR2];
/// How long to wait, after SIGKILL, for leftovers to disappear before herald gives up on them and
/// returns anyway (a process stuck in the kernel cannot be killed; herald must not hang on it).
const AFTER_KILL_WAIT: Duration = Duration::from_secs(2);
/// While stopping leftovers, herald also polls: processes that are not its children end silently.
const LEFTOVER_POLL: Duration = Duration::from_millis(20);

/// Time limits for one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Stop the step (SIGTERM, grace, SIGKILL) after this long; reported as "timed out".
    pub timeout: Option<Duration>,
    /// Time between SIGTERM and SIGKILL, for signals, timeouts and leftovers alike.
    pub grace: Duration,
}

impl Limits {
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
}

/// Why the command did not start. Maps to the shell's codes: 127 not found, 126 not executable.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{program}: command not found")]
    NotFound { program: String },
    #[error("{program}: {reason}")]
    BadInterpreter { program: String, reason: String },
    #[error("{program}: cannot execute: {source}")]
    NotExecutable { program: String, source: io::Error },
}

impl SpawnError {
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } | SpawnError::BadInterpreter { .. } => 127,
            SpawnError::NotExecutable { .. } => 126,
        }
    }
}

/// The process-wide part of supervision. Create it first thing, before any thread exists, so that
/// every thread inherits the blocked signals.
pub struct Supervisor {
    signals: SignalSet,
}

impl Supervisor {
    pub fn install() -> io::Result<Supervisor> {
        let mut waited = vec![libc::SIGCHLD];
        waited.extend(TERMINATING);
        waited.extend(PASSED_THROUGH);
        // SIGTTOU/SIGTTIN are blocked, never waited for: after handing the terminal to the step,
        // herald is a background process, and a blocked SIGTTOU lets its last lines still print.
        let mut blocked = waited.clone();
        blocked.extend([libc::SIGTTOU, libc::SIGTTIN]);
        sys::block(&SignalSet::of(&blocked))?;
        sys::default_sigchld();
        // As PID 1 herald already inherits every orphan; otherwise ask to. Without it (an old
        // kernel), orphans escape to init and only the step's group can be found and stopped.
        if sys::own_pid() != 1 && !sys::become_subreaper() {
            log!(Debug, "cannot become the child subreaper: only the step's group is stopped at its end");
        }
        Ok(Supervisor { signals: SignalSet::of(&waited) })
    }

    /// Starts `command` now, in a new process group, with herald's stdio and environment as
    /// `setup` changes them (and as `setup.run_as`, if set); or, with `tail`, with its output
    /// copied through herald keeping the last `tail` lines (tee.rs).
    pub fn spawn(
        &self,
        command: &[OsString],
        tail: Option<usize>,
        setup: &ChildSetup,
    ) -> Result<RunningStep<'_>, SpawnError> {
        let (program, args) = command.split_first().expect("the command line is checked to be non-empty");
        let mut child = Command::new(program);
        child.args(args).process_group(0);
        for var in setup.hidden_vars {
            child.env_remove(var);
        }
        for (name, value) in &setup.vars {
            child.env(name, value);
        }
        let identity = setup.run_as.as_ref().map(|user| (user.uid, user.gid, user.groups.clone()));
        if let Some(user) = &setup.run_as {
            child.env("HOME", &user.home);
            if let Some(name) = &user.name {
                child.env("USER", name).env("LOGNAME", name);
            }
        }
        let readers = match tail {
            None => None,
            Some(_) => match tee::pipes() {
                Ok(((out, err), readers)) => {
                    child.stdout(out).stderr(err);
                    Some(readers)
                }
                // No pipes, no excerpt; the step still runs, with stdio inherited.
                Err(_) => None,
            },
        };
        let terminal = sys::foreground_terminal();
        let herald = sys::own_pid();
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
        // (sigaction, sigprocmask, tcsetpgrp, getpid, prctl, setgroups, setgid, setuid); the
        // groups were looked up before the fork. Not taking the terminal is not worth failing the
        // step for, so that error is ignored.
        unsafe {
            child.pre_exec(move || {
                if let Some(fd) = terminal {
                    let _ = sys::give_terminal(fd, sys::own_pid());
                }
                // The step must not run at all if it cannot run as that user. Before the death
                // signal: the kernel clears that setting when the credentials change.
                if let Some((uid, gid, groups)) = &identity {
                    sys::become_user(*uid, *gid, groups)?;
                }
                // Best effort: a kernel without it still runs the step.
                let _ = sys::die_with_parent(herald);
                sys::reset_for_exec()
            });
        }
        let started = Instant::now();
        let spawned = child.spawn().map_err(|error| spawn_error(program, error))?;
        // Dropping std's handle neither waits nor kills: the reap loop below owns the child.
        let pid = spawned.id() as Pid;
        log!(Debug, "step started: pid {pid}, its own process group");
        // Our copies of the pipes' write ends go with `child`, so EOF comes when the step's do.
        drop(child);
        let tee = readers.and_then(|(out, err)| tee::Tee::start(out, err, tail.unwrap_or(1)).ok());
        Ok(RunningStep { supervisor: self, pid, started, terminal, tee })
    }
}

/// How the step's process differs from herald's: variables removed or set, another user.
#[derive(Debug, Default)]
pub struct ChildSetup<'a> {
    /// Removed from the step's environment.
    pub hidden_vars: &'a [&'a str],
    /// Set in the step's environment.
    pub vars: Vec<(String, OsString)>,
    /// The user the step runs as; herald's own when None.
    pub run_as: Option<RunAs>,
}

/// Another user for a step, as GitLab Runner's shell executor runs scripts with `--user`: that
/// user's uid, gid and supplementary groups, and its `HOME`, `USER` and `LOGNAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// The account's home directory; `/` for a uid without an account (as Docker does).
    pub home: std::path::PathBuf,
    /// The account's name, when the uid has one.
    pub name: Option<String>,
}

impl RunAs {
    /// `spec` is a user name, a uid, or `uid:gid`. A name or a bare uid must have an account on
    /// this host; `uid:gid` need not (then its only group is `gid`). The error is one line, and a
    /// string: its callers (the executor, `herald doctor`) only print it, whatever the case.
    pub fn resolve(spec: &str) -> Result<RunAs, String> {
        let spec = spec.trim();
        let number = |text: &str| text.parse::<u32>().ok().filter(|_| text.bytes().all(|b| b.is_ascii_digit()));
        let lookup_failed = |error: io::Error| format!("cannot look up the user '{spec}': {error}");
        let (account, gid) = match spec.split_once(':') {
            Some((uid, gid)) => {
                let (Some(uid), Some(gid)) = (number(uid), number(gid)) else {
                    return Err(format!("'{spec}' is neither a user name nor uid:gid (two numbers)"));
                };
                let account = sys::find_account(None, uid).map_err(lookup_failed)?;
                match account {
                    Some(account) => (account, gid),
                    None => return Ok(RunAs { uid, gid, groups: vec![gid], home: "/".into(), name: None }),
                }
            }
            None => {
                let account = match number(spec) {
                    Some(uid) => sys::find_account(None, uid),
                    None if !spec.is_empty() => sys::find_account(Some(spec), 0),
                    None => return Err("the user is empty".to_owned()),
                };
                let account =
                    account.map_err(lookup_failed)?.ok_or_else(|| format!("no user '{spec}' on this host"))?;
                let gid = account.gid;
                (account, gid)
            }
        };
        let groups = sys::groups_of(&account.name, gid).map_err(lookup_failed)?;
        Ok(RunAs { uid: account.uid, gid, groups, home: account.home, name: Some(account.name) })
    }

    /// A short description for messages: `nobody (uid 65534)`, or `uid 65534`.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// herald's own effective uid and gid.
pub fn own_ids() -> (u32, u32) {
    sys::effective_ids()
}

/// Keeps this process's memory to itself from now on (`PR_SET_DUMPABLE` 0, design.md §8), for a
/// process that holds a token: steps of the same user can no longer read `/proc/<herald>/environ`
/// or `mem`, nor ptrace herald. Steps themselves are unaffected: execve makes them ordinary,
/// dumpable processes again. Best effort: the answer says whether it took effect.
pub fn keep_memory_private() -> bool {
    sys::set_non_dumpable().is_ok()
}

/// Whether `env` gives herald a token (the variable, `HERALD_TOKEN_VARIABLE`'s variable, or a
/// token file): then the process keeps its memory private (`keep_memory_private`).
pub fn holds_token(env: &dyn crate::env::Env) -> bool {
    let named = env.non_empty("HERALD_TOKEN_VARIABLE").map(|name| name.to_string_lossy().trim().to_owned());
    ["HERALD_TOKEN", "HERALD_TOKEN_FILE"].iter().any(|key| env.non_empty(key).is_some())
        || named.is_some_and(|name| env.non_empty(&name).is_some())
}

/// Takes `name` out of herald's environment for good — out of what children inherit and out of
/// the environment block `/proc/<herald>/environ` shows — and returns its value. Call it before
/// herald starts any thread.
pub fn take_env_var(name: &str) -> Option<OsString> {
    sys::take_env_var(name)
}

fn spawn_error(program: &OsString, error: io::Error) -> SpawnError {
    let program_text = program.to_string_lossy().into_owned();
    let has_path = program_text.contains('/');
    match error.kind() {
        // ENOENT for a file that exists means its `#!` interpreter is missing.
        io::ErrorKind::NotFound if has_path && std::path::Path::new(program).exists() => SpawnError::BadInterpreter {
            program: program_text,
            reason: "bad interpreter: its #! line names a program that does not exist".into(),
        },
        io::ErrorKind::NotFound if has_path => {
            SpawnError::BadInterpreter { program: program_text, reason: "no such file or directory".into() }
        }
        io::ErrorKind::NotFound => SpawnError::NotFound { program: program_text },
        _ => SpawnError::NotExecutable { program: program_text, source: error },
    }
}

/// A step whose process is running.
pub struct RunningStep<'s> {
    supervisor: &'s Supervisor,
    /// The main child; also the id of its process group.
    pid: Pid,
    started: Instant,
    terminal: Option<libc::c_int>,
    tee: Option<tee::Tee>,
}

/// How long to wait for the output pipes to drain after the step and its leftovers are gone.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// herald is stopping the step: why, and when SIGKILL follows (None once it was sent).
struct Stopping {
    cause: StopCause,
    kill_at: Option<Instant>,
}

impl RunningStep<'_> {
    /// Supervises the step until it and everything it left behind are gone. Returns how it
    /// ended, and its last output lines when they were asked for at spawn.
    pub fn wait(mut self, limits: &Limits) -> (StepOutcome, Vec<String>) {
        let timeout_at = limits.timeout.map(|t| self.started + t);
        let mut stopping: Option<Stopping> = None;

        let process = loop {
            if let Some(end) = self.reap_until_main() {
                break end;
            }
            let now = Instant::now();
            if let (None, Some(at), Some(limit)) = (&stopping, timeout_at, limits.timeout) {
                if now >= at {
                    log!(Info, "timeout: stopping the step (SIGTERM, then SIGKILL after {:?})", limits.grace);
                    self.signal_group(libc::SIGTERM);
                    // A stopped (SIGSTOP'd) process only acts on SIGTERM once continued.
                    self.signal_group(libc::SIGCONT);
                    stopping =
                        Some(Stopping { cause: StopCause::TimedOut { limit }, kill_at: Some(now + limits.grace) });
                    continue;
                }
            }
            if let Some(stop) = &mut stopping {
                if stop.kill_at.is_some_and(|at| now >= at) {
                    self.signal_group(libc::SIGKILL);
                    stop.kill_at = None;
                }
            }
            let next_deadline = match &stopping {
                None => timeout_at,
                Some(stop) => stop.kill_at,
            };
            let received =
                sys::wait_signal(&self.supervisor.signals, next_deadline.map(|at| at.saturating_duration_since(now)));
            match received {
                None | Some(libc::SIGCHLD) => {}
                Some(signal) if TERMINATING.contains(&signal) => match &mut stopping {
                    None => {
                        log!(Info, "got {}: forwarding it to the step's group", signal_name(signal));
                        self.signal_group(signal);
                        stopping = Some(Stopping {
                            cause: StopCause::Signal(signal),
                            kill_at: Some(Instant::now() + limits.grace),
                        });
                    }
                    Some(stop) => {
                        // A second request to stop: no more patience.
                        self.signal_group(libc::SIGKILL);
                        stop.kill_at = None;
                    }
                },
                Some(signal) => {
                    self.signal_group(signal);
                }
            }
        };
        let elapsed = self.started.elapsed();

        self.stop_leftovers(limits.grace);
        if let Some(fd) = self.terminal {
            let _ = sys::give_terminal(fd, sys::own_group());
        }
        let tail = self.tee.take().map(|tee| tee.finish(DRAIN_WAIT)).unwrap_or_default();
        (StepOutcome { end: StepEnd::Ran { process, stop: stopping.map(|s| s.cause) }, elapsed }, tail)
    }

    /// Reaps every ended child; returns the main child's end once it is among them.
    fn reap_until_main(&self) -> Option<ProcessEnd> {
        loop {
            match sys::reap_one() {
                Reaped::Child(pid, status) if pid == self.pid => {
                    return Some(match sys::decode_status(status) {
                        Ok(code) => ProcessEnd::Exited(code),
                        Err(signal) => ProcessEnd::Signaled(signal),
                    });
                }
                Reaped::Child(..) => continue, // an adopted orphan: reaped, nothing more to do
                Reaped::NoneEnded => return None,
                // Cannot happen while the main child is unreaped (SIGCHLD is at its default).
                // Rather than spin, report the status as unknown.
                Reaped::NoChildren => return Some(ProcessEnd::Exited(125)),
            }
        }
    }

    fn signal_group(&self, signal: i32) {
        sys::signal_group(self.pid, signal);
    }

    /// When the main process has ended, whatever is left of the step is stopped: the whole tree,
    /// that is every process that descends from herald (as subreaper, herald adopts the step's
    /// orphans, including those that left its group with `setsid`, and their children in turn)
    /// and every member of the step's process group, together with the process groups they lead.
    /// SIGTERM, then SIGKILL after `grace`, reaped. Processes that appear meanwhile (a daemon's
    /// child forked during the grace) get the same. herald waits only while something is alive,
    /// so leftovers that obey SIGTERM cost what they take to exit, not the grace. Such leftovers
    /// would otherwise keep running past the step and, holding the job log's pipe open, hang the
    /// job. The common case, no leftovers, costs two system calls.
    fn stop_leftovers(&self, grace: Duration) {
        if !self.leftovers_exist() {
            return;
        }
        let kill_at = Instant::now() + grace;
        let mut killed_at: Option<Instant> = None;
        let mut terminated: Vec<Pid> = Vec::new();
        let mut skip_grace = false;
        log!(Info, "the step left processes behind: SIGTERM, then SIGKILL after {grace:?}");
        loop {
            self.reap_all();
            let tree = sys::tree_of(sys::own_pid(), self.pid);
            if tree.is_empty() && !self.group_alive_without_proc() {
                return;
            }
            let now = Instant::now();
            if killed_at.is_none() && (now >= kill_at || skip_grace) {
                killed_at = Some(now);
            }
            match killed_at {
                // Unkillable (stuck in the kernel): do not hang the job on it.
                Some(at) if now >= at + AFTER_KILL_WAIT => return,
                Some(_) => self.signal_tree(&tree, libc::SIGKILL),
                None => {
                    let new: Vec<sys::Process> =
                        tree.iter().filter(|p| !terminated.contains(&p.pid)).copied().collect();
                    if !new.is_empty() || terminated.is_empty() {
                        self.signal_tree(&new, libc::SIGTERM);
                        // A stopped (SIGSTOP'd) process only acts on SIGTERM once continued.
                        self.signal_tree(&new, libc::SIGCONT);
                        terminated.extend(new.iter().map(|p| p.pid));
                    }
                }
            }
            let wake = match killed_at {
                None => kill_at.saturating_duration_since(now).min(LEFTOVER_POLL),
                Some(_) => LEFTOVER_POLL,
            };
            // SIGCHLD (an adopted orphan ended) wakes this early; grandchildren are polled for.
            let received = sys::wait_signal(&self.supervisor.signals, Some(wake));
            if received.is_some_and(|signal| TERMINATING.contains(&signal)) {
                skip_grace = true; // asked to stop while cleaning up: no more patience
            }
        }
    }

    /// Reaps every ended child (adopted orphans included).
    fn reap_all(&self) {
        while let Reaped::Child(..) = sys::reap_one() {}
    }

    /// Reaps what has ended, then tells whether anything of the step is still alive.
    fn leftovers_exist(&self) -> bool {
        let children_remain = loop {
            match sys::reap_one() {
                Reaped::Child(..) => continue,
                Reaped::NoneEnded => break true,
                Reaped::NoChildren => break false,
            }
        };
        // Signal 0 checks for existence. Without subreaper rights herald cannot adopt orphans,
        // so the group is the only handle on them.
        children_remain || sys::signal_group(self.pid, 0)
    }

    /// Without /proc (a container that does not mount it), the step's group is all herald can
    /// see; with /proc, `tree_of` already counts its members.
    fn group_alive_without_proc(&self) -> bool {
        !std::path::Path::new("/proc/self/stat").exists() && sys::signal_group(self.pid, 0)
    }

    /// Signals each process of `tree`, the groups they lead, and the step's group. Never herald's
    /// own group: a step that moved a process into it must not take herald (and the job's shell)
    /// down with it.
    fn signal_tree(&self, tree: &[sys::Process], signal: i32) {
        let own_group = sys::own_group();
        sys::signal_group(self.pid, signal);
        for process in tree {
            sys::signal_process(process.pid, signal);
            let leads_group = process.group == process.pid || tree.iter().any(|p| p.pid == process.group);
            if leads_group && process.group != own_group && process.group > 1 {
                sys::signal_group(process.group, signal);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_users_are_names_uids_or_uid_gid() {
        let bare = RunAs::resolve("65534:65534").expect("uid:gid needs no account");
        assert_eq!((bare.uid, bare.gid), (65534, 65534));
        assert!(bare.groups.contains(&65534));
        let numbered = RunAs::resolve("4000123:4000124").expect("uid:gid needs no account");
        assert_eq!(numbered, RunAs { uid: 4000123, gid: 4000124, groups: vec![4000124], home: "/".into(), name: None });
        assert_eq!(numbered.describe(), "uid 4000123");
        let root = RunAs::resolve("root").unwrap();
        assert_eq!((root.uid, root.gid, root.name.as_deref()), (0, 0, Some("root")));
        assert_eq!(RunAs::resolve("0").unwrap(), root);
        for (spec, why) in [
            ("1:x", "'1:x' is neither a user name nor uid:gid (two numbers)"),
            (":5", "':5' is neither a user name nor uid:gid (two numbers)"),
            ("-1:5", "'-1:5' is neither a user name nor uid:gid (two numbers)"),
            ("", "the user is empty"),
            ("no-such-user-here", "no user 'no-such-user-here' on this host"),
            ("4000123", "no user '4000123' on this host"),
        ] {
            assert_eq!(RunAs::resolve(spec).unwrap_err(), why, "{spec}");
        }
    }
}
