//! Output capture for the failure excerpt (`HERALD_FAILURE_TAIL`), the one case where herald
//! stands between the step and its output: the step writes into pipes, two threads pass every
//! byte on to herald's own stdout and stderr as it arrives, and keep the last lines in a bounded
//! ring. When herald's output is a pipe too (as under a runner), the kernel duplicates the bytes
//! (tee(2)) and herald only reads its copy; otherwise herald copies them. Without the setting none
//! of this exists and stdio is inherited untouched.
//!
//! When herald's own output is closed, copying stops and the pipe is closed too, so the step
//! sees the broken pipe it would have seen without herald.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::sys;

/// A captured line is cut to this many bytes (and marked `…` where it was cut); a ring of N lines
/// stays small whatever the step prints. More than the 512 bytes an excerpt line shows, so that a
/// secret that begins within those is captured whole and masked before the line is shortened.
const MAX_LINE: usize = 512 + 256;
/// `crate::redact::CUT`: where a line was cut.
const CUT: &[u8] = "…".as_bytes();
const CHUNK: usize = 64 * 1024;
/// The pipes from the step to herald, when the tee is on: bigger than the default 64 KiB, so that
/// each round of tee, splice and read moves more at a time (fewer wake-ups of both processes).
/// Kept well under the kernel's per-user budget for pipe buffers (pipe-user-pages-soft, 64 MiB),
/// past which a user's new pipes get one page.
const PIPE_BYTES: usize = 256 * 1024;

/// The last lines of a step's output.
pub struct Tee {
    ring: Arc<Mutex<Ring>>,
    pumps: Vec<JoinHandle<()>>,
}

/// The last `capacity` lines of each stream, numbered in arrival order. Two pipes cannot tell
/// which of two lines written at nearly the same moment came first, and a chunk of stdout read
/// after a stderr line may hold lines written before it; so each stream keeps its own tail, and
/// the excerpt reserves room for stderr, where failures usually explain themselves.
struct Ring {
    streams: [VecDeque<(u64, String)>; 2],
    next: u64,
    capacity: usize,
}

const STDOUT: usize = 0;
const STDERR: usize = 1;

impl Ring {
    fn push(&mut self, stream: usize, raw: &[u8]) {
        let text = clean(raw);
        if text.trim().is_empty() {
            return;
        }
        let lines = &mut self.streams[stream];
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back((self.next, text));
        self.next += 1;
    }

    /// The last `capacity` lines in arrival order, at least half of them (rounded up) from
    /// stderr when stderr has that many.
    fn excerpt(&self) -> Vec<String> {
        let mut merged: Vec<(u64, usize, &String)> = (0..2)
            .flat_map(|stream| self.streams[stream].iter().map(move |(seq, line)| (*seq, stream, line)))
            .collect();
        merged.sort_by_key(|(seq, _, _)| *seq);
        let mut chosen: Vec<(u64, usize, &String)> = merged.iter().rev().take(self.capacity).copied().collect();
        let wanted_err = self.streams[STDERR].len().min(self.capacity.div_ceil(2));
        let missing: Vec<&(u64, String)> =
            self.streams[STDERR].iter().rev().filter(|(seq, _)| !chosen.iter().any(|(s, _, _)| s == seq)).collect();
        let mut missing = missing.into_iter();
        while chosen.iter().filter(|(_, stream, _)| *stream == STDERR).count() < wanted_err {
            let Some((seq, line)) = missing.next() else { break };
            // Give the oldest stdout line's place to the newest stderr line not yet shown.
            let Some(oldest_out) = chosen.iter().rposition(|(_, stream, _)| *stream == STDOUT) else { break };
            chosen[oldest_out] = (*seq, STDERR, line);
        }
        chosen.sort_by_key(|(seq, _, _)| *seq);
        chosen.into_iter().map(|(_, _, line)| line.clone()).collect()
    }
}

impl Tee {
    /// Starts copying `stdout` and `stderr` (the read ends of the step's pipes) to herald's own.
    pub fn start(
        stdout: impl Read + AsFd + Send + 'static,
        stderr: impl Read + AsFd + Send + 'static,
        lines: usize,
    ) -> std::io::Result<Tee> {
        let ring =
            Arc::new(Mutex::new(Ring { streams: [VecDeque::new(), VecDeque::new()], next: 0, capacity: lines.max(1) }));
        let own_stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
        let own_stderr = File::from(std::io::stderr().as_fd().try_clone_to_owned()?);
        let pumps =
            vec![pump(STDOUT, stdout, own_stdout, ring.clone())?, pump(STDERR, stderr, own_stderr, ring.clone())?];
        Ok(Tee { ring, pumps })
    }

    /// Waits for both pipes to close (the step and everything it started have ended), at most
    /// `patience`, and returns the last lines.
    pub fn finish(self, patience: Duration) -> Vec<String> {
        let until = Instant::now() + patience;
        for pump in self.pumps {
            while !pump.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if pump.is_finished() {
                let _ = pump.join();
            }
        }
        let ring = self.ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        ring.excerpt()
    }
}

fn pump(
    stream: usize,
    mut from: impl Read + AsFd + Send + 'static,
    mut to: File,
    ring: Arc<Mutex<Ring>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("tee".into()).spawn(move || {
        let copied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| copy(stream, &mut from, &mut to, &ring)));
        if copied.is_err() {
            // A bug in the excerpt's bookkeeping must not cost the step its output (a closed pipe
            // would kill it with SIGPIPE): the rest is passed on plainly, without an excerpt.
            let _ = std::io::copy(&mut from, &mut to);
        }
    })
}

/// Passes the step's output on to herald's own, keeping its last lines in `ring`.
fn copy(stream: usize, from: &mut (impl Read + AsFd), to: &mut File, ring: &Arc<Mutex<Ring>>) {
    crate::fault_injection::maybe_panic("tee");
    let mut buffer = vec![0u8; CHUNK];
    let mut partial: Vec<u8> = Vec::new();
    let capacity = ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).capacity;
    let keep = |data: &[u8], partial: &mut Vec<u8>| {
        let lines = last_lines(partial, data, capacity);
        if !lines.is_empty() {
            let mut ring = ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for line in &lines {
                ring.push(stream, line);
            }
        }
    };
    // Pipe to pipe, the usual case in CI (the runner reads herald's output through a pipe):
    // tee(2) duplicates the bytes into herald's output inside the kernel, so no byte is
    // written from user space, and herald reads only what it needs of its own copy.
    let discard = std::fs::OpenOptions::new().write(true).open("/dev/null").ok();
    let mut in_kernel = true;
    let mut first = true;
    loop {
        let n = match sys::tee_pipe(from.as_fd(), to.as_fd(), PIPE_BYTES) {
            Ok(0) => break,
            Ok(n) => n,
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) && first => {
                in_kernel = false; // not two pipes (a file, a terminal): copy through herald
                break;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                // herald's output was handed over non-blocking, and its reader is behind.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(_) => return, // our output is gone: drop the pipe so the step learns it too
        };
        first = false;
        // Only the chunk's tail can hold the last lines: the rest is dropped in the kernel
        // (spliced to /dev/null) instead of being copied out. A line that started in the
        // dropped part is then kept from where the tail begins.
        let window = (capacity + 1) * MAX_LINE;
        let mut unread = n;
        if let (Some(null), true) = (&discard, n > window) {
            let mut skip = n - window;
            while skip > 0 {
                match sys::splice_out(from.as_fd(), null.as_fd(), skip) {
                    Ok(0) | Err(_) => return,
                    Ok(moved) => skip -= moved,
                }
            }
            // The window may begin inside a line: it is marked as cut at its start.
            partial.clear();
            partial.extend_from_slice(CUT);
            unread = window;
        }
        while unread > 0 {
            let take = unread.min(buffer.len());
            if from.read_exact(&mut buffer[..take]).is_err() {
                return;
            }
            keep(&buffer[..take], &mut partial);
            unread -= take;
        }
    }
    if !in_kernel {
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if to.write_all(&buffer[..n]).is_err() {
                break; // our output is gone: drop the pipe so the step learns it too
            }
            keep(&buffer[..n], &mut partial);
        }
    }
    if !partial.is_empty() {
        ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(stream, &partial);
    }
}

/// The complete lines that `data` ends, oldest first, at most the last `keep` of them (earlier
/// ones would only be pushed out of the ring again), each cut to `MAX_LINE` bytes. `partial` holds
/// the unfinished line before `data`, and afterwards the one `data` leaves unfinished. Only the
/// tail of the chunk is looked at line by line, so a step printing a gigabyte of short lines costs
/// herald a scan for its last newline per chunk, not work per line.
fn last_lines(partial: &mut Vec<u8>, data: &[u8], keep: usize) -> Vec<Vec<u8>> {
    // One byte more than is kept, so that a line that reached the limit is known to be cut.
    let cut = |line: &[u8]| {
        if line.len() <= MAX_LINE {
            return line.to_vec();
        }
        let mut kept = line[..MAX_LINE].to_vec();
        kept.extend_from_slice(CUT);
        kept
    };
    let Some(last_newline) = data.iter().rposition(|b| *b == b'\n') else {
        let room = (MAX_LINE + 1).saturating_sub(partial.len());
        partial.extend_from_slice(&data[..data.len().min(room)]);
        return Vec::new();
    };
    let mut newest_first = Vec::new();
    let mut end = last_newline;
    while newest_first.len() < keep {
        match data[..end].iter().rposition(|b| *b == b'\n') {
            Some(newline) => {
                newest_first.push(cut(&data[newline + 1..end]));
                end = newline;
            }
            None => {
                // The chunk's first line finishes the one left unfinished before it.
                partial.extend_from_slice(&data[..end.min((MAX_LINE + 1).saturating_sub(partial.len()))]);
                newest_first.push(cut(partial));
                break;
            }
        }
    }
    partial.clear();
    let rest = &data[last_newline + 1..];
    partial.extend_from_slice(&rest[..rest.len().min(MAX_LINE + 1)]);
    newest_first.reverse();
    newest_first
}

/// A line as a person would read it: UTF-8, no colour codes, no carriage-return overprints
/// (progress bars keep their last state), no other control characters.
fn clean(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let text = text.rsplit('\r').find(|part| !part.is_empty()).unwrap_or("");
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences: ESC [ parameters final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(if c.is_control() && c != '\t' { ' ' } else { c });
    }
    out.trim_end().to_owned()
}

/// Pipes for the step's stdout and stderr: (the step's write ends, herald's read ends).
pub(crate) fn pipes() -> std::io::Result<((OwnedFd, OwnedFd), (std::io::PipeReader, std::io::PipeReader))> {
    let (out_read, out_write) = std::io::pipe()?;
    let (err_read, err_write) = std::io::pipe()?;
    sys::grow_pipe(out_read.as_fd(), PIPE_BYTES);
    sys::grow_pipe(err_read.as_fd(), PIPE_BYTES);
    Ok(((out_write.into(), err_write.into()), (out_read, err_read)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cleaned_for_reading() {
        assert_eq!(clean(b"\x1b[31merror\x1b[0m: boom"), "error: boom");
        assert_eq!(clean(b"10%\r50%\r100% done"), "100% done");
        assert_eq!(clean(b"tab\there\x07"), "tab\there");
    }

    fn ring(capacity: usize, lines: &[(usize, &str)]) -> Vec<String> {
        let mut ring = Ring { streams: [VecDeque::new(), VecDeque::new()], next: 0, capacity };
        for (stream, line) in lines {
            ring.push(*stream, line.as_bytes());
        }
        ring.excerpt()
    }

    #[test]
    fn chunks_give_their_last_lines_joined_to_what_came_before() {
        let mut partial = b"hel".to_vec();
        let lines = last_lines(&mut partial, b"lo\nworld\nand mo", 10);
        assert_eq!(lines, [b"hello".to_vec(), b"world".to_vec()]);
        assert_eq!(partial, b"and mo");
        assert_eq!(last_lines(&mut partial, b"re", 10), Vec::<Vec<u8>>::new());
        assert_eq!(last_lines(&mut partial, b"\n", 10), [b"and more".to_vec()]);
        // Only the last `keep` lines; the older ones (and the unfinished line they finish) go.
        let mut partial = b"old".to_vec();
        assert_eq!(last_lines(&mut partial, b"a\nb\nc\nd\ntail", 2), [b"c".to_vec(), b"d".to_vec()]);
        assert_eq!(partial, b"tail");
        // A line without end is kept to MAX_LINE bytes, and marked as cut.
        let mut partial = Vec::new();
        last_lines(&mut partial, &vec![b'x'; 3 * MAX_LINE], 2);
        let mut cut = vec![b'x'; MAX_LINE];
        cut.extend_from_slice(CUT);
        assert_eq!(last_lines(&mut partial, b"\n", 2), [cut]);
        let mut partial = Vec::new();
        assert_eq!(
            last_lines(&mut partial, &[vec![b'y'; MAX_LINE], b"\n".to_vec()].concat(), 2),
            [vec![b'y'; MAX_LINE]]
        );
    }

    #[test]
    fn the_ring_keeps_the_last_lines() {
        assert_eq!(ring(2, &[(STDOUT, "one"), (STDOUT, ""), (STDOUT, "two"), (STDOUT, "three")]), ["two", "three"]);
    }

    #[test]
    fn stderr_keeps_its_share_when_stdout_arrives_late() {
        // The stderr line was read before a chunk of stdout written around it.
        let lines = [(STDERR, "error: boom"), (STDOUT, "a"), (STDOUT, "b"), (STDOUT, "c"), (STDOUT, "aborting")];
        assert_eq!(ring(3, &lines), ["error: boom", "c", "aborting"]);
        assert_eq!(ring(1, &lines), ["error: boom"]);
        let only_out = [(STDOUT, "a"), (STDOUT, "b"), (STDOUT, "c")];
        assert_eq!(ring(2, &only_out), ["b", "c"]);
    }
}
