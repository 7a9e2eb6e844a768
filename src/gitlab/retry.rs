//! The one way herald calls GitLab: every request is tried again on GitLab's lock (409), rate
//! limits (429), server errors (5xx) and no answer, after a jittered, growing pause that is never
//! shorter than what GitLab asked for (`Retry-After`, `RateLimit-Reset`), each try bounded by
//! `REQUEST_TIMEOUT` and all of them by a deadline. Statuses, the note, `herald finalize` and
//! `herald note`, includes and `herald doctor` all go through `call`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::ApiError;

/// Longest a single request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call gave up.
#[derive(Debug)]
pub enum GaveUp {
    /// GitLab refused (not worth trying again), or the deadline came after this error.
    Api(ApiError),
    /// The deadline passed before any answer.
    OutOfTime,
    /// The caller's `wait` said to stop (something more important happened).
    Interrupted,
}

impl GaveUp {
    /// The GitLab error behind it, if there was one.
    pub fn into_api(self) -> Option<ApiError> {
        match self {
            GaveUp::Api(error) => Some(error),
            _ => None,
        }
    }
}

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GaveUp::Api(error) => write!(f, "{error}"),
            GaveUp::OutOfTime => f.write_str("GitLab did not answer in time"),
            GaveUp::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// Calls `request` (given the time the try may take) until it succeeds, fails in a way that
/// trying again cannot fix, or `deadline` comes. Between tries, `pause(d)` waits `d` and tells
/// whether to stop instead (the publisher wakes when the step ends); `sleep` for plain waiting.
pub fn call<T>(
    deadline: Instant,
    mut pause: impl FnMut(Duration) -> bool,
    mut request: impl FnMut(Duration) -> Result<T, ApiError>,
) -> Result<T, GaveUp> {
    let mut backoff = Backoff::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(GaveUp::OutOfTime);
        }
        match request(left.min(REQUEST_TIMEOUT)) {
            Ok(value) => return Ok(value),
            Err(error) if error.is_retryable() => {
                let wait = backoff.next_wait(error.retry_after());
                if Instant::now() + wait >= deadline {
                    return Err(GaveUp::Api(error));
                }
                log!(Debug, "{error}; trying again in {} ms", wait.as_millis());
                if pause(wait) {
                    return Err(GaveUp::Interrupted);
                }
            }
            Err(error) => return Err(GaveUp::Api(error)),
        }
    }
}

/// `call`'s plain pause: sleeps, never interrupted.
pub fn sleep(wait: Duration) -> bool {
    std::thread::sleep(wait);
    false
}

const FIRST: Duration = Duration::from_millis(200);
const MOST: Duration = Duration::from_secs(5);

pub struct Backoff {
    attempt: u32,
    random: u64,
    first: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff::starting_at(FIRST)
    }

    /// A backoff whose first wait is at most `first` (and at least half of it).
    pub fn starting_at(first: Duration) -> Backoff {
        // Seeded per process, so many jobs retrying at once spread out instead of stampeding.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Backoff { attempt: 0, random: (nanos ^ (u64::from(std::process::id()) << 32)) | 1, first }
    }

    /// The wait before the next try: between half and all of first × 2^attempt (200 ms unless
    /// chosen otherwise; at most 5 s), or what the server asked for, if that is longer.
    pub fn next_wait(&mut self, server_asked: Option<Duration>) -> Duration {
        let ceiling = self.first.saturating_mul(1 << self.attempt.min(10)).min(MOST);
        self.attempt += 1;
        let jittered = ceiling.mul_f64(0.5 + 0.5 * self.unit_random());
        server_asked.map_or(jittered, |asked| asked.max(jittered))
    }

    /// xorshift64*: a uniform number in [0, 1).
    fn unit_random(&mut self) -> f64 {
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        (self.random.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_a_ceiling() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..12).map(|_| backoff.next_wait(None)).collect();
        assert!(waits[0] >= Duration::from_millis(100) && waits[0] <= FIRST);
        assert!(waits[3] >= Duration::from_millis(800) && waits[3] <= Duration::from_millis(1600));
        assert!(waits.iter().all(|w| *w <= MOST));
    }

    #[test]
    fn honours_what_the_server_asked() {
        let mut backoff = Backoff::new();
        assert_eq!(backoff.next_wait(Some(Duration::from_secs(30))), Duration::from_secs(30));
    }
}
