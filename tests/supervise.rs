//! `herald run` as a process supervisor: exit codes, signals, timeouts, leftovers, stdio, TTYs.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{finish, herald, process_alive, run, send_signal, wait_for_file, TempDir, PATIENCE};

fn sh(script: &str) -> std::process::Command {
    let mut command = herald();
    command.args(["run", "--", "sh", "-c", script]);
    command
}

#[test]
fn passes_the_childs_exit_code_back() {
    for code in [0, 1, 2, 255] {
        let finished = run(&mut sh(&format!("exit {code}")));
        assert_eq!(finished.code, Some(code));
        assert_eq!(finished.stderr_text(), "", "nothing to say outside CI");
    }
}

#[test]
fn reports_death_by_signal_as_128_plus_n() {
    for (signal, name) in
        [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT"), (libc::SIGKILL, "KILL"), (libc::SIGSEGV, "SEGV")]
    {
        let finished = run(&mut sh(&format!("kill -{name} $$")));
        assert_eq!(finished.code, Some(128 + signal), "SIG{name}");
    }
}

#[test]
fn command_not_found_is_127_with_one_line() {
    let finished = run(herald().args(["run", "--", "herald-test-no-such-command"]));
    assert_eq!(finished.code, Some(127));
    assert_eq!(finished.stderr_text(), "herald: herald-test-no-such-command: command not found\n");

    let finished = run(herald().args(["run", "--", "/nonexistent/tool"]));
    assert_eq!(finished.code, Some(127));
    assert_eq!(finished.stderr_text(), "herald: /nonexistent/tool: no such file or directory\n");
}

#[test]
fn missing_interpreter_is_127_and_named() {
    let dir = TempDir::new("interp");
    let script = dir.join("script");
    std::fs::write(&script, "#!/nonexistent/interpreter\necho hi\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let finished = run(herald().arg("run").arg("--").arg(&script));
    assert_eq!(finished.code, Some(127));
    assert!(finished.stderr_text().contains("bad interpreter"), "{}", finished.stderr_text());
    assert_eq!(finished.stderr_text().lines().count(), 1);
}

#[test]
fn not_executable_is_126() {
    let dir = TempDir::new("noexec");
    let file = dir.join("plain.txt");
    std::fs::write(&file, "echo hi\n").unwrap();
    for target in [file, dir.path().to_path_buf()] {
        let finished = run(herald().arg("run").arg("--").arg(&target));
        assert_eq!(finished.code, Some(126), "{}", target.display());
        assert!(finished.stderr_text().starts_with("herald: "), "{}", finished.stderr_text());
        assert_eq!(finished.stderr_text().lines().count(), 1);
    }
}

/// Starts herald on `script`, waits for the script to create `ready`, and returns the running
/// herald (stdout and stderr piped).
fn start_and_wait_until_ready(args: &[&str], script: &str, ready: &std::path::Path) -> std::process::Child {
    let mut command = herald();
    command.arg("run").args(args).args(["--", "sh", "-c", script]);
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_file(ready);
    child
}

#[test]
fn forwards_termination_signals_to_grandchildren() {
    let dir = TempDir::new("forward");
    let (ready, seen) = (dir.join("ready"), dir.join("seen"));
    // The grandchild traps SIGTERM and records it; the shell in between just waits.
    let script = format!(
        "sh -c 'trap \"echo TERM > {seen}; exit 0\" TERM; touch {ready}; while :; do sleep 0.05; done' & wait",
        seen = seen.display(),
        ready = ready.display()
    );
    let herald = start_and_wait_until_ready(&[], &script, &ready);
    send_signal(herald.id(), libc::SIGTERM);
    let finished = finish(herald);
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "TERM\n");
    // The middle shell had no trap, so it died of SIGTERM: herald reports 128+15.
    assert_eq!(finished.code, Some(143));
}

#[test]
fn handled_signals_are_forwarded_and_the_childs_code_comes_back() {
    for (signal, name) in
        [(libc::SIGINT, "INT"), (libc::SIGQUIT, "QUIT"), (libc::SIGHUP, "HUP"), (libc::SIGUSR1, "USR1")]
    {
        let dir = TempDir::new("each");
        let (ready, seen) = (dir.join("ready"), dir.join("seen"));
        let script = format!(
            "trap 'echo {name} > {seen}; exit 7' {name}; touch {ready}; while :; do sleep 0.05; done",
            seen = seen.display(),
            ready = ready.display()
        );
        let herald = start_and_wait_until_ready(&[], &script, &ready);
        send_signal(herald.id(), signal);
        let finished = finish(herald);
        assert_eq!(std::fs::read_to_string(&seen).unwrap(), format!("{name}\n"));
        assert_eq!(finished.code, Some(7), "SIG{name}: the child's own exit code comes back");
    }
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let dir = TempDir::new("ignore");
    let ready = dir.join("ready");
    let script = format!("trap '' TERM; touch {}; while :; do sleep 0.05; done", ready.display());
    let herald = start_and_wait_until_ready(&["--grace", "1s"], &script, &ready);
    let signaled_at = Instant::now();
    send_signal(herald.id(), libc::SIGTERM);
    let finished = finish(herald);
    assert_eq!(finished.code, Some(128 + libc::SIGKILL));
    // Not a timing assertion on speed, only that the grace was granted before SIGKILL.
    assert!(signaled_at.elapsed() >= Duration::from_secs(1));
}

#[test]
fn a_second_signal_kills_at_once() {
    let dir = TempDir::new("second");
    let ready = dir.join("ready");
    let forwarded = dir.join("forwarded");
    // The step notes the first TERM (and lives on); a grace longer than the test's patience:
    // only escalation can end this in time.
    let script =
        format!("trap 'touch {}' TERM; touch {}; while :; do sleep 0.05; done", forwarded.display(), ready.display());
    let herald = start_and_wait_until_ready(&["--grace", "1h"], &script, &ready);
    send_signal(herald.id(), libc::SIGTERM);
    // The second only once herald has passed the first on: two pending TERMs would be one.
    wait_for_file(&forwarded);
    send_signal(herald.id(), libc::SIGTERM);
    assert_eq!(finish(herald).code, Some(128 + libc::SIGKILL));
}

#[test]
fn timeout_terminates_the_step() {
    let finished = run(herald().args(["run", "--timeout", "1s", "--", "sleep", "60"]));
    assert_eq!(finished.code, Some(128 + libc::SIGTERM));

    // A step that shrugs off SIGTERM is killed after the grace.
    let finished =
        run(herald().args(["run", "--timeout", "1s", "--grace", "1s", "--", "sh", "-c", "trap '' TERM; sleep 60"]));
    assert_eq!(finished.code, Some(128 + libc::SIGKILL));
}

#[test]
fn timed_out_steps_say_so_in_the_job_log() {
    let finished =
        run(herald().env("GITLAB_CI", "true").args(["run", "--name", "slow", "--timeout", "1s", "--", "sleep", "60"]));
    assert_eq!(finished.code, Some(143));
    // The limit and how the step took being stopped: what to change next.
    assert!(
        finished.stderr_text().contains("✘ slow timed out after 1.")
            && finished.stderr_text().contains("(--timeout 1.0s; stopped by SIGTERM)"),
        "{}",
        finished.stderr_text()
    );
}

/// A limit under a second is reported as it was written, not rounded to tenths (`0.2s`).
#[test]
fn a_sub_second_timeout_is_reported_as_written() {
    let finished = run(herald().env("GITLAB_CI", "true").args([
        "run",
        "--name",
        "quick",
        "--timeout",
        "250ms",
        "--",
        "sleep",
        "60",
    ]));
    assert_eq!(finished.code, Some(143));
    let stderr = finished.stderr_text();
    assert!(stderr.contains("(--timeout 250ms; stopped by SIGTERM)"), "{stderr}");
    assert!(stderr.contains("✘ quick timed out after ") && !stderr.contains("0.2s"), "{stderr}");
}

#[test]
fn background_processes_that_hold_stdout_do_not_hang_herald() {
    let dir = TempDir::new("leftover");
    let pid_file = dir.join("pid");
    // `sleep` keeps the step's stdout open for five minutes after the shell exits.
    let script = format!("sleep 300 & echo $! > {}; echo started", pid_file.display());
    let finished = run(&mut sh(&script));
    assert_eq!(finished.code, Some(0));
    assert_eq!(finished.stdout_text(), "started\n");
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(!process_alive(pid), "the backgrounded sleep {pid} survived the step");
}

#[test]
fn orphans_that_left_the_group_are_stopped_and_reaped_too() {
    let dir = TempDir::new("setsid");
    let pid_file = dir.join("pid");
    // setsid moves the orphan to its own session and group; only subreaping finds it.
    let script = format!("setsid sleep 300 & echo $! > {}", pid_file.display());
    let finished = run(&mut sh(&script));
    assert_eq!(finished.code, Some(0));
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(!process_alive(pid), "the setsid'd sleep {pid} survived the step");
}

#[test]
fn leftovers_that_ignore_sigterm_are_killed_after_the_grace() {
    let dir = TempDir::new("stubborn");
    let pid_file = dir.join("pid");
    let script = format!("(trap '' TERM; exec sleep 300) & echo $! > {}; exit 4", pid_file.display());
    let finished = run(herald().args(["run", "--grace", "1s", "--", "sh", "-c", &script]));
    assert_eq!(finished.code, Some(4), "the main child's code, not the leftover's");
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(!process_alive(pid));
}

#[test]
fn output_bytes_arrive_unchanged() {
    let dir = TempDir::new("bytes");
    let data = dir.join("data");
    let mut bytes: Vec<u8> = (0..=255u8).collect();
    bytes.extend((0..200_000u32).map(|i| (i * 7 % 251) as u8));
    bytes.extend(b"\r\n\x1b[0Kno trailing newline");
    std::fs::write(&data, &bytes).unwrap();
    let finished = run(herald().arg("run").arg("--").arg("cat").arg(&data));
    assert_eq!(finished.code, Some(0));
    assert!(finished.stdout == bytes, "stdout differs from what the child wrote");
    let finished = run(herald().arg("run").args(["--", "sh", "-c", "cat \"$0\" >&2"]).arg(&data));
    assert!(finished.stderr == bytes, "stderr differs from what the child wrote");
}

#[test]
fn stdout_and_stderr_keep_their_order() {
    let (reader, writer) = std::io::pipe().unwrap();
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo out$i; echo err$i >&2; done";
    let mut command = herald();
    command.args(["run", "--", "sh", "-c", script]);
    command.stdout(writer.try_clone().unwrap()).stderr(writer);
    let mut child = command.spawn().unwrap();
    drop(command); // our copies of the write end, so EOF arrives when herald is done
    let mut combined = String::new();
    let mut reader = reader;
    reader.read_to_string(&mut combined).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let expected: String = (1..=10).map(|i| format!("out{i}\nerr{i}\n")).collect();
    assert_eq!(combined, expected);
}

#[test]
fn stdin_is_passed_through() {
    let mut child = herald()
        .args(["run", "--", "sh", "-c", "read line; echo \"got $line\""])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let finished = finish(child);
    assert_eq!(finished.stdout_text(), "got hello\n");
}

#[test]
fn a_tty_stays_a_tty_and_the_step_can_read_from_it() {
    let (master, slave) = open_pty();
    let mut command = herald();
    command.args([
        "run",
        "--",
        "sh",
        "-c",
        "if [ -t 0 ] && [ -t 1 ] && [ -t 2 ]; then echo TTY-OK; else echo NO-TTY; fi; read line; echo \"got:$line\"",
    ]);
    command.stdin(slave.try_clone().unwrap()).stdout(slave.try_clone().unwrap()).stderr(slave);
    // SAFETY: between fork and exec: setsid and ioctl are async-signal-safe. herald gets the
    // terminal as its controlling terminal, like a login shell or `docker run -t` would give it.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    drop(command);

    let (send, output) = mpsc::channel::<Vec<u8>>();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 || send.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let read_until = |needle: &str, seen: &mut String| {
        let deadline = Instant::now() + PATIENCE;
        while !seen.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let chunk =
                output.recv_timeout(left).unwrap_or_else(|_| panic!("no {needle:?} on the terminal; saw {seen:?}"));
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    read_until("TTY-OK", &mut seen);
    // A step in a background process group would be stopped (SIGTTIN) by this read.
    (&master).write_all(b"hello\n").unwrap();
    read_until("got:hello", &mut seen);
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "herald did not exit");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(0), "terminal said: {seen:?}");
}

/// A pseudo-terminal pair (master, slave).
fn open_pty() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    // SAFETY: standard pty allocation; every returned descriptor is checked and owned exactly once.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt failed");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0, "opening the pty slave failed");
        (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave))
    }
}

/// Counts zombies whose parent is herald, from inside the step (herald is the step's parent).
const COUNT_HERALDS_ZOMBIES: &str = "grep -l \") Z $PPID \" /proc/[0-9]*/stat 2>/dev/null | wc -l";

#[test]
fn orphans_that_end_during_the_step_are_reaped_at_once() {
    // The subshell exits at once, orphaning `sleep 0.1`, which herald adopts as subreaper. When it
    // ends, herald must reap it while the step is still running, or it stays a zombie.
    let script = format!("( sleep 0.1 & ); sleep 1; {COUNT_HERALDS_ZOMBIES}");
    let finished = run(&mut sh(&script));
    assert_eq!(finished.code, Some(0));
    assert_eq!(finished.stdout_text().trim(), "0", "zombies left unreaped under herald");
}

#[test]
fn as_pid_1_herald_reaps_everything_and_passes_the_code_back() {
    // A new PID namespace makes herald PID 1, as in a container (`docker run … herald run …`).
    let probe = std::process::Command::new("unshare").args(["--pid", "--fork", "--mount-proc", "true"]).output();
    if !crate::support::available(
        "`unshare --pid --fork --mount-proc` (util-linux, as root)",
        probe.is_ok_and(|out| out.status.success()),
    ) {
        return;
    }
    let script =
        format!("echo \"herald is $PPID\"; ( sleep 0.1 & ); sleep 300 & sleep 1; {COUNT_HERALDS_ZOMBIES}; exit 3");
    let mut command = std::process::Command::new("unshare");
    command.args(["--pid", "--fork", "--mount-proc", env!("CARGO_BIN_EXE_herald"), "run", "--", "sh", "-c", &script]);
    command.env_remove("GITLAB_CI").stdin(Stdio::null());
    let finished = run(&mut command);
    assert_eq!(finished.stdout_text(), "herald is 1\n0\n");
    assert_eq!(finished.code, Some(3));
}
