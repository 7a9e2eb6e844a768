//! Faults injected for resilience tests, and GitLab's rate limits (§D): which requests get a
//! fault (`Faults`). The answers that stand for a broken or busy GitLab are `fault_answers`'; how a
//! fault acts on the connection (a reset, a hang, a cut body) is `server`'s part.

use std::time::Duration;

/// A fault to inject instead of (or around) the normal answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Answer with this 5xx and a small HTML body.
    ServerError(u16),
    /// GitLab's exclusive-lease timeout: 409 `Another update to this commit status is in progress`.
    Lock,
    /// Rack::Attack: 429, plain-text `Retry later`, `Retry-After: n`, `RateLimit-*` headers.
    RateLimited { retry_after_secs: u64 },
    /// Close the connection with a TCP reset before the request takes effect.
    Reset,
    /// Apply the request, then reset the connection: the client never learns it worked.
    ResetAfterApplying,
    /// Never answer (until the stand-in is dropped).
    Hang,
    /// Answer after this delay.
    Slow(Duration),
    /// Send headers and half the body, then close.
    CutBody,
    /// 500 whose body lists the request headers, as some proxies' error pages do.
    EchoHeaders,
}

/// Which requests get faults: `rate` of them at random (seeded), or all with `always`.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub rate: f64,
    pub kinds: Vec<Fault>,
    pub always: Option<Fault>,
    /// Only requests whose method is this (e.g. "POST"); None for all.
    pub method: Option<&'static str>,
    /// Only requests whose path ends with this (e.g. "/notes"); None for all.
    pub path_ends_with: Option<&'static str>,
    /// How many more faults to inject; None for no end.
    pub left: Option<u32>,
    random: u64,
}

impl Faults {
    pub fn random(rate: f64, kinds: &[Fault], seed: u64) -> Faults {
        Faults { rate, kinds: kinds.to_vec(), random: seed | 1, ..Faults::default() }
    }

    pub fn always(fault: Fault) -> Faults {
        Faults { always: Some(fault), ..Faults::default() }
    }

    /// Only for requests of this method whose path ends so.
    pub fn only(self, method: &'static str, path_ends_with: &'static str) -> Faults {
        Faults { method: Some(method), path_ends_with: Some(path_ends_with), ..self }
    }

    /// Only the first `n` faults, then none: a GitLab that recovers.
    pub fn times(self, n: u32) -> Faults {
        Faults { left: Some(n), ..self }
    }

    pub(crate) fn pick(&mut self, method: &str, path: &str) -> Option<Fault> {
        let picked = self.pick_any(method, path)?;
        match &mut self.left {
            Some(0) => return None,
            Some(left) => *left -= 1,
            None => {}
        }
        Some(picked)
    }

    fn pick_any(&mut self, method: &str, path: &str) -> Option<Fault> {
        if self.method.is_some_and(|only| only != method) || self.path_ends_with.is_some_and(|end| !path.ends_with(end))
        {
            return None;
        }
        if self.always.is_some() {
            return self.always;
        }
        if self.kinds.is_empty() || self.rate <= 0.0 {
            return None;
        }
        let roll = self.next();
        if roll >= self.rate {
            return None;
        }
        let index = (self.next() * self.kinds.len() as f64) as usize;
        Some(self.kinds[index.min(self.kinds.len() - 1)])
    }

    fn next(&mut self) -> f64 {
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        (self.random >> 11) as f64 / (1u64 << 53) as f64
    }
}
