//! What an injected fault does instead of the route's answer (`Faults` picks which requests get
//! one): the answers that stand for a broken or busy GitLab, and a TCP reset.

use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::faults::Fault;
use crate::http::Answer;
use crate::request::Recorded;

/// The answer a fault gives instead of the route's, for the faults that are an answer at all.
pub(crate) fn answer_instead(fault: Fault, request: &Recorded) -> Option<Answer> {
    match fault {
        Fault::ServerError(status) => Some(Answer::typed(
            status,
            "text/html",
            format!("<html><body><h1>{status}</h1>We're sorry, something went wrong.</body></html>").into(),
        )),
        Fault::Lock => Some(Answer::message(409, "Another update to this commit status is in progress")),
        Fault::RateLimited { retry_after_secs } => Some(rack_attack_429(retry_after_secs)),
        Fault::EchoHeaders => Some(Answer::typed(
            500,
            "text/plain",
            format!("upstream error, request headers: {:?}", request.headers).into(),
        )),
        Fault::Reset | Fault::ResetAfterApplying | Fault::Hang | Fault::Slow(_) | Fault::CutBody => None,
    }
}

fn rack_attack_429(retry_after_secs: u64) -> Answer {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut answer = Answer::typed(429, "text/plain", "Retry later\n".into());
    answer.headers.extend([
        ("Retry-After".into(), retry_after_secs.to_string()),
        ("RateLimit-Name".into(), "throttle_authenticated_api".into()),
        ("RateLimit-Limit".into(), "2000".into()),
        ("RateLimit-Observed".into(), "2001".into()),
        ("RateLimit-Remaining".into(), "0".into()),
        ("RateLimit-Reset".into(), (now + retry_after_secs).to_string()),
    ]);
    answer
}

/// Closes with RST instead of FIN: what a crashed proxy or a dropped connection looks like.
/// Returns false: the connection ends (the caller drops it, and with it the socket).
pub(crate) fn reset(connection: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt with a valid socket and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            connection.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    false
}
