//! The handful of Linux calls the supervisor needs, each wrapped once with its reason. Nothing else
//! in herald calls libc for process or signal work.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

pub(crate) type Pid = libc::pid_t;

/// A set of signals, for blocking and waiting.
pub(crate) struct SignalSet(libc::sigset_t);

impl SignalSet {
    pub(crate) fn of(signals: &[i32]) -> SignalSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set; sigaddset only writes into it. The signal numbers
        // are libc constants, so sigaddset cannot fail.
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            for &signal in signals {
                libc::sigaddset(set.as_mut_ptr(), signal);
            }
            SignalSet(set.assume_init())
        }
    }
}

/// Blocks `set` in the calling thread (and so in every thread it spawns later). Blocked signals stay
/// pending until `wait_signal` takes them: no handler runs, nothing is lost between two waits.
/// The mask is inherited across exec, so the step must get a clean one: `reset_for_exec`.
pub(crate) fn block(set: &SignalSet) -> io::Result<()> {
    // SAFETY: a valid, initialised set; the old mask is not needed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Gives the about-to-exec child the signal state a program expects: nothing blocked (herald's own
/// mask would otherwise make the step deaf to SIGTERM), SIGPIPE at its default (Rust ignores it,
/// and `yes | head` must end). Async-signal-safe: called between fork and exec.
pub(crate) fn reset_for_exec() -> io::Result<()> {
    let empty = SignalSet::of(&[]);
    // SAFETY: a valid, initialised set; sigaction-based calls are async-signal-safe.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let rc = libc::pthread_sigmask(libc::SIG_SETMASK, &empty.0, std::ptr::null_mut());
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }
}

/// Makes the about-to-exec child get SIGKILL when herald dies (killed with SIGKILL, or crashed),
/// so a step never goes on running unsupervised with nobody to report it or stop it. If herald
/// died before this took effect, the child ends itself at once. Async-signal-safe.
pub(crate) fn die_with_parent(parent: Pid) -> io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; getppid and raise cannot fail.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != parent {
            libc::raise(libc::SIGKILL);
        }
    }
    Ok(())
}

/// Restores the default action of SIGCHLD. A parent may have exec'd us with SIGCHLD ignored, which
/// makes the kernel reap children itself and leaves `waitpid` nothing to report: the exit code of
/// the step would be lost.
pub(crate) fn default_sigchld() {
    // SAFETY: setting a standard disposition; no handler function is involved.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
}

/// Waits for one signal of `set` (which must be blocked), at most `timeout`. `None` on timeout.
pub(crate) fn wait_signal(set: &SignalSet, timeout: Option<Duration>) -> Option<i32> {
    loop {
        let spec = timeout.map(|t| libc::timespec {
            // `as _`: time_t differs between glibc and musl; the cap keeps either in range.
            tv_sec: t.as_secs().min(i32::MAX as u64) as _,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        let spec_ptr = spec.as_ref().map_or(std::ptr::null(), |s| s as *const libc::timespec);
        // SAFETY: valid set and timespec pointers; siginfo is not needed (null is allowed).
        let signal = unsafe { libc::sigtimedwait(&set.0, std::ptr::null_mut(), spec_ptr) };
        if signal > 0 {
            return Some(signal);
        }
        match io::Error::last_os_error().raw_os_error() {
            // Interrupted by a signal outside the set (e.g. SIGCONT after a stop): wait again.
            // The caller recomputes deadlines on every return, so a slightly longer wait is harmless.
            Some(libc::EINTR) => continue,
            _ => return None,
        }
    }
}

/// What one non-blocking `waitpid(-1)` found.
pub(crate) enum Reaped {
    /// A child ended; its raw wait status.
    Child(Pid, i32),
    /// Children exist, none has ended yet.
    NoneEnded,
    /// No children at all.
    NoChildren,
}

/// Reaps one ended child, if any. The supervisor is the only caller of `waitpid` in herald, so the
/// main child's status cannot be taken by anyone else.
pub(crate) fn reap_one() -> Reaped {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        match pid {
            0 => return Reaped::NoneEnded,
            p if p > 0 => return Reaped::Child(p, status),
            _ => match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => return Reaped::NoChildren,
            },
        }
    }
}

/// Decodes a raw wait status into (exited with code) or (killed by signal).
pub(crate) fn decode_status(status: i32) -> Result<i32, i32> {
    if libc::WIFSIGNALED(status) {
        Err(libc::WTERMSIG(status))
    } else {
        Ok(libc::WEXITSTATUS(status))
    }
}

/// Sends `signal` to every process in group `pgid`. Returns false when the group no longer exists.
pub(crate) fn signal_group(pgid: Pid, signal: i32) -> bool {
    // SAFETY: kill has no memory effects; a negative pid addresses the process group.
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// Sends `signal` to one process. Returns false when it no longer exists.
pub(crate) fn signal_process(pid: Pid, signal: i32) -> bool {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, signal) == 0 }
}

pub(crate) fn own_pid() -> Pid {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// Makes herald the reaper of its orphaned descendants (unless it is PID 1, which already is), so
/// that a step's background processes are herald's to find, stop and reap when the step ends,
/// instead of escaping to init.
pub(crate) fn become_subreaper() -> bool {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and touches no memory.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) == 0 }
}

/// A live process as /proc shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Process {
    pub pid: Pid,
    pub parent: Pid,
    pub group: Pid,
}

/// Every process that descends from `root` (children, their children, …) or belongs to process
/// group `group`, read from /proc; zombies left out (they have ended, only their reaping is owed).
/// Used only when a step left processes behind.
pub(crate) fn tree_of(root: Pid, group: Pid) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    let all: Vec<Process> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<Pid>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command name, which is in parentheses and may itself contain ") ".
            let mut fields = stat.rsplit_once(") ")?.1.split(' ');
            let state = fields.next()?;
            let parent = fields.next()?.parse().ok()?;
            let group = fields.next()?.parse().ok()?;
            (state != "Z" && state != "X").then_some(Process { pid, parent, group })
        })
        .collect();
    let mut tree: Vec<Process> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for process in all.iter().filter(|p| p.parent == parent && p.pid != root) {
            if !tree.iter().any(|p| p.pid == process.pid) {
                tree.push(*process);
                frontier.push(process.pid);
            }
        }
    }
    for process in all.iter().filter(|p| p.group == group && p.pid != root) {
        if !tree.iter().any(|p| p.pid == process.pid) {
            tree.push(*process);
        }
    }
    tree
}

/// The terminal on stdin, when herald is its foreground process group. Only then does herald hand
/// the terminal to the step (like a shell does for a foreground job), so the step can read from it
/// without being stopped by SIGTTIN, and Ctrl-C reaches it directly.
pub(crate) fn foreground_terminal() -> Option<libc::c_int> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: isatty, tcgetpgrp and getpgrp only query state of a descriptor and this process.
    unsafe { (libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp()).then_some(fd) }
}

/// Gives the terminal's foreground to `pgid`. SIGTTOU is blocked around the call: a process that is
/// not in the foreground group (the step's fresh group; herald after the handover) would otherwise
/// be stopped by it. Async-signal-safe: called between fork and exec.
pub(crate) fn give_terminal(fd: libc::c_int, pgid: Pid) -> io::Result<()> {
    // SAFETY: sigset operations on a local set, then tcsetpgrp on a descriptor we were handed.
    unsafe {
        let mut ttou = MaybeUninit::<libc::sigset_t>::uninit();
        let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(ttou.as_mut_ptr());
        libc::sigaddset(ttou.as_mut_ptr(), libc::SIGTTOU);
        libc::pthread_sigmask(libc::SIG_BLOCK, ttou.as_ptr(), previous.as_mut_ptr());
        let rc = libc::tcsetpgrp(fd, pgid);
        let err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, previous.as_ptr(), std::ptr::null_mut());
        if rc == 0 {
            Ok(())
        } else {
            Err(err)
        }
    }
}

/// The process group of the calling process.
pub(crate) fn own_group() -> Pid {
    // SAFETY: getpgrp cannot fail.
    unsafe { libc::getpgrp() }
}

/// tee(2): duplicates up to `len` bytes waiting in pipe `from` into pipe `to` without consuming
/// them; waits for data like a read. 0 at end of input. EINVAL when either is not a pipe.
pub(crate) fn tee_pipe(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: two open descriptors borrowed for the call; flags 0 (blocking, like read).
    let n = unsafe { libc::tee(from.as_raw_fd(), to.as_raw_fd(), len, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Asks for a pipe buffer of `bytes` (F_SETPIPE_SZ). Best effort: the kernel caps it (1 MiB for
/// unprivileged processes by default) and may refuse; the pipe then keeps its size.
pub(crate) fn grow_pipe(pipe: BorrowedFd<'_>, bytes: usize) {
    // SAFETY: an open descriptor borrowed for the call; F_SETPIPE_SZ takes an int.
    let _ = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, bytes as libc::c_int) };
}

/// splice(2): moves up to `len` bytes from pipe `from` to `to` (here /dev/null: dropped without
/// being copied). Returns how many were moved.
pub(crate) fn splice_out(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: two open descriptors borrowed for the call; no offsets (both are streams).
    let n =
        unsafe { libc::splice(from.as_raw_fd(), std::ptr::null_mut(), to.as_raw_fd(), std::ptr::null_mut(), len, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Makes this process non-dumpable (`PR_SET_DUMPABLE` 0): its `/proc/PID/environ`, `mem`, `fd`
/// and ptrace are closed to other processes of the same uid (the kernel then shows `/proc/PID` as
/// root's), and it leaves no core dump. What herald holds in memory — the token — is then out of
/// reach of the steps it runs. execve resets it for the step itself, which stays an ordinary
/// process.
pub(crate) fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_DUMPABLE takes an integer flag and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

extern "C" {
    /// The C library's environment array: glibc and musl both export it.
    static mut environ: *mut *mut libc::c_char;
}

/// Takes variable `name` out of this process's environment for good: returns its value, removes
/// it from the environment (no child inherits it), and overwrites its bytes where they were. That
/// last part matters: `/proc/PID/environ` shows the environment block the process started with,
/// which `unsetenv` leaves untouched. Must run while herald has a single thread (nothing may read
/// the environment meanwhile).
pub(crate) fn take_env_var(name: &str) -> Option<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let prefix = format!("{name}=");
    let mut value = None;
    loop {
        // SAFETY: single-threaded (the caller's contract): `environ` is a null-terminated array
        // of pointers to NUL-terminated strings, and nothing changes it while this reads it.
        let found = unsafe {
            let mut entry = environ;
            let mut found = None;
            while !entry.is_null() && !(*entry).is_null() {
                let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
                if bytes.starts_with(prefix.as_bytes()) {
                    found = Some((*entry, bytes.len(), bytes[prefix.len()..].to_vec()));
                    break;
                }
                entry = entry.add(1);
            }
            found
        };
        let Some((start, len, bytes)) = found else { return value };
        // The first copy is the one getenv would have answered.
        value.get_or_insert_with(|| std::ffi::OsStr::from_bytes(&bytes).to_owned());
        // Out of the array first (unsetenv matches by name), then the bytes themselves. The C
        // library never frees an entry it did not allocate, so `start` stays valid memory.
        // SAFETY: single-threaded; `start..start+len` is the entry's string, found above.
        unsafe {
            libc::unsetenv(std::ffi::CString::new(name).ok()?.as_ptr());
            for offset in 0..len {
                std::ptr::write_volatile(start.add(offset), 0);
            }
        }
    }
}

/// This process's effective user and group.
pub(crate) fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid and getegid cannot fail.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// A user account as the system's user database (`/etc/passwd`, NSS) has it.
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: std::path::PathBuf,
}

/// The account named `name`, or with uid `uid`; None when there is none.
pub(crate) fn find_account(name: Option<&str>, uid: u32) -> io::Result<Option<Account>> {
    use std::os::unix::ffi::OsStrExt;
    let c_name = match name {
        Some(name) => Some(std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?),
        None => None,
    };
    let mut buffer = vec![0 as libc::c_char; 4096];
    loop {
        let mut entry = MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: valid out-pointers and a buffer of the length given; the strings the entry
        // points to live in `buffer`, which outlives their use below.
        let rc = unsafe {
            match &c_name {
                Some(c_name) => libc::getpwnam_r(
                    c_name.as_ptr(),
                    entry.as_mut_ptr(),
                    buffer.as_mut_ptr(),
                    buffer.len(),
                    &mut result,
                ),
                None => libc::getpwuid_r(uid, entry.as_mut_ptr(), buffer.as_mut_ptr(), buffer.len(), &mut result),
            }
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if result.is_null() {
            return Ok(None);
        }
        // SAFETY: getpw*_r succeeded and filled `entry`; its strings are NUL-terminated in `buffer`.
        let account = unsafe {
            let entry = entry.assume_init();
            let text = |p: *const libc::c_char| std::ffi::CStr::from_ptr(p).to_bytes().to_vec();
            Account {
                name: String::from_utf8_lossy(&text(entry.pw_name)).into_owned(),
                uid: entry.pw_uid,
                gid: entry.pw_gid,
                home: std::ffi::OsStr::from_bytes(&text(entry.pw_dir)).into(),
            }
        };
        return Ok(Some(account));
    }
}

/// The groups user `name` belongs to, `gid` included, as `initgroups` would set them.
pub(crate) fn groups_of(name: &str, gid: u32) -> io::Result<Vec<u32>> {
    let c_name = std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut count: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; count as usize];
        let asked = count;
        // SAFETY: `groups` has room for `count` entries; getgrouplist writes at most that many and
        // sets `count` to how many there are.
        let rc = unsafe { libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count as usize);
            return Ok(groups);
        }
        if count <= asked {
            count = asked * 2; // some C libraries do not say how many are needed
        }
        if count > 65_536 {
            return Err(io::Error::other("too many groups"));
        }
    }
}

/// Gives the about-to-exec child another user's identity: its supplementary groups, group and
/// user, in that order (each step needs the privilege the next one drops), then checks that the
/// old identity cannot come back. Async-signal-safe: called between fork and exec, with `groups`
/// prepared before the fork.
pub(crate) fn become_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    // SAFETY: setgroups reads `groups.len()` entries of a live slice; the other calls take integers.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(io::Error::last_os_error());
        }
        if uid != 0 && libc::setuid(0) == 0 {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
    }
    Ok(())
}
