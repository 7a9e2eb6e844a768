//! Output capture for the failure excerpt (`HERALD_FAILURE_TAIL`), the one case where herald
//! stands between the step and its output: the step writes into pipes, two threads copy every
//! byte on to herald's own stdout and stderr as it arrives, and keep the last lines in a bounded
//! ring. Without the setting none of this exists and stdio is inherited untouched.
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

/// A captured line is cut to this many bytes; a ring of N lines stays small whatever the step prints.
const MAX_LINE: usize = 512;
const CHUNK: usize = 64 * 1024;

/// The last lines of a step's output (stdout and stderr together, in arrival order).
pub struct Tee {
    ring: Arc<Mutex<Ring>>,
    pumps: Vec<JoinHandle<()>>,
}

struct Ring {
    lines: VecDeque<String>,
    capacity: usize,
}

impl Ring {
    fn push(&mut self, raw: &[u8]) {
        let text = clean(raw);
        if text.trim().is_empty() {
            return;
        }
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        self.lines.push_back(text);
    }
}

impl Tee {
    /// Starts copying `stdout` and `stderr` (the read ends of the step's pipes) to herald's own.
    pub fn start(
        stdout: impl Read + Send + 'static,
        stderr: impl Read + Send + 'static,
        lines: usize,
    ) -> std::io::Result<Tee> {
        let ring = Arc::new(Mutex::new(Ring { lines: VecDeque::with_capacity(lines), capacity: lines.max(1) }));
        let own_stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
        let own_stderr = File::from(std::io::stderr().as_fd().try_clone_to_owned()?);
        let pumps = vec![pump(stdout, own_stdout, ring.clone())?, pump(stderr, own_stderr, ring.clone())?];
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
        ring.lines.iter().cloned().collect()
    }
}

fn pump(mut from: impl Read + Send + 'static, mut to: File, ring: Arc<Mutex<Ring>>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("tee".into()).spawn(move || {
        let mut buffer = vec![0u8; CHUNK];
        let mut partial: Vec<u8> = Vec::new();
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if to.write_all(&buffer[..n]).is_err() {
                break; // our output is gone: drop the pipe so the step learns it too
            }
            let mut ring = ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for byte in &buffer[..n] {
                if *byte == b'\n' {
                    ring.push(&partial);
                    partial.clear();
                } else if partial.len() < MAX_LINE {
                    partial.push(*byte);
                }
            }
        }
        if !partial.is_empty() {
            ring.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(&partial);
        }
    })
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

    #[test]
    fn the_ring_keeps_the_last_lines() {
        let mut ring = Ring { lines: VecDeque::new(), capacity: 2 };
        for line in ["one", "", "two", "three"] {
            ring.push(line.as_bytes());
        }
        assert_eq!(ring.lines, ["two", "three"]);
    }
}
