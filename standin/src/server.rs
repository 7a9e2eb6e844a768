//! The running stand-in (`GitLab`): a listener on 127.0.0.1, one thread per connection, each
//! connection kept alive for as many requests as the client sends (as GitLab's front end does,
//! §O), and each request recorded, checked against GitLab's API description, delayed by the
//! world's round trip, faulted or routed, and answered.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::clock::{http_date, unix_now};
use crate::fault_answers;
use crate::faults::Fault;
use crate::http::{read_request, reason, Answer};
use crate::request::Recorded;
use crate::routes::{listed_route, route};
use crate::tls::Certificates;
use crate::world::World;

/// The running stand-in. Dropping it stops the server.
pub struct GitLab {
    address: SocketAddr,
    world: Arc<Mutex<World>>,
    stopping: Arc<AtomicBool>,
    scheme: &'static str,
    /// The temporary directory of the runner machine whose jobs talk to this GitLab.
    machine: tempfile::TempDir,
}

impl GitLab {
    /// Plain HTTP on loopback.
    pub fn start() -> GitLab {
        GitLab::serving(None)
    }

    /// HTTPS, with `certificates`' server certificate (for 127.0.0.1): herald trusts it through
    /// HERALD_CA_FILE set to `certificates.ca`.
    pub fn start_tls(certificates: &Certificates) -> GitLab {
        GitLab::serving(Some(Arc::new(certificates.server_config())))
    }

    fn serving(tls: Option<Arc<rustls::ServerConfig>>) -> GitLab {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stand-in");
        let address = listener.local_addr().unwrap();
        let world = Arc::new(Mutex::new(World::standard()));
        let stopping = Arc::new(AtomicBool::new(false));
        let (shared, stop) = (world.clone(), stopping.clone());
        let scheme = if tls.is_some() { "https" } else { "http" };
        thread::spawn(move || {
            for connection in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(connection) = connection else { continue };
                let (shared, stop, tls) = (shared.clone(), stop.clone(), tls.clone());
                thread::spawn(move || serve(connection, &shared, &stop, tls));
            }
        });
        GitLab {
            address,
            world,
            stopping,
            scheme,
            machine: tempfile::Builder::new()
                .prefix("herald-test-runner-tmp-")
                .tempdir()
                .expect("a temporary directory"),
        }
    }

    /// The temporary directory (`TMPDIR`) of the runner machine whose jobs talk to this stand-in.
    /// herald keeps a job's state there between its steps, keyed by server, project, pipeline and
    /// job; job ids are unique within one GitLab, but every stand-in numbers its jobs alike and
    /// may get the port of one that stopped, so each stand-in's jobs get their own machine.
    pub fn machine_tmp(&self) -> &std::path::Path {
        self.machine.path()
    }

    /// The API root, as `CI_API_V4_URL` would give it.
    pub fn api_url(&self) -> String {
        format!("{}://{}/api/v4", self.scheme, self.address)
    }

    /// Reads or changes the world.
    pub fn with<R>(&self, change: impl FnOnce(&mut World) -> R) -> R {
        change(&mut self.lock())
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        lock(&self.world)
    }
}

impl Drop for GitLab {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
        // Every request herald sent, in every test, is one GitLab's API description has.
        let violations = std::mem::take(&mut self.lock().api_violations);
        if !thread::panicking() {
            assert!(violations.is_empty(), "not in GitLab's API description:\n{}", violations.join("\n"));
        }
    }
}

/// The world, even if a panicking test thread poisoned its lock.
fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What a connection is read from and written to: the TCP stream, or TLS over it.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// One connection, kept alive for as many requests as the client sends on it (as GitLab's
/// front end does), each answered in turn.
fn serve(tcp: TcpStream, world: &Mutex<World>, stopping: &AtomicBool, tls: Option<Arc<rustls::ServerConfig>>) {
    // GitLab's nginx closes a connection idle for 65 s (keepalive_timeout, gitlab.md §O).
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(65)));
    let _ = tcp.set_nodelay(true);
    let Ok(socket) = tcp.try_clone() else { return };
    lock(world).connections += 1;
    // A new connection costs the client a round trip (TCP's handshake); TLS 1.3's, one more.
    let round_trip = lock(world).round_trip;
    thread::sleep(round_trip);
    let stream: Box<dyn Stream> = match tls {
        Some(config) => {
            thread::sleep(round_trip);
            let Ok(session) = rustls::ServerConnection::new(config) else { return };
            Box::new(rustls::StreamOwned::new(session, tcp))
        }
        None => Box::new(tcp),
    };
    let mut connection = BufReader::new(stream);
    // Playing an HTTPS proxy: after CONNECT, what comes through the tunnel is for that host.
    let mut tunnel: Option<String> = None;
    while let Some(mut request) = read_request(&mut connection) {
        if request.method == "CONNECT" {
            let host = request.path.trim_start_matches('/').to_owned();
            lock(world).requests.push(request);
            if connection.get_mut().write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
                return;
            }
            tunnel = Some(host);
            continue;
        }
        if tunnel.is_some() {
            request.proxied_host = tunnel.clone();
        }
        let closing = request.headers.get("connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
        if !answer(request, connection.get_mut(), &socket, world, stopping) || closing {
            return;
        }
    }
}

/// Answers one request, faults included; false when the connection must end with it.
fn answer(
    mut request: Recorded,
    connection: &mut dyn Stream,
    socket: &TcpStream,
    world: &Mutex<World>,
    stopping: &AtomicBool,
) -> bool {
    let fault = lock(world).faults.pick(&request.method, &request.path);
    request.fault = fault;
    lock(world).requests.push(request.clone());
    if request.headers.get("user-agent").is_some_and(|agent| agent.starts_with("herald/")) {
        if let Err(violation) =
            crate::api_description::check(&request.method, &request.path, &request.query, &request.body)
        {
            lock(world).api_violations.push(violation);
        }
    }
    let round_trip = lock(world).round_trip;
    thread::sleep(round_trip);
    let Some(answer) = faulted_or_routed(&request, socket, world, stopping) else { return false };
    let answer = as_served(answer, &request, &mut lock(world));
    let mut bytes = head(&answer).into_bytes();
    if fault == Some(Fault::CutBody) {
        // Half the bytes, wherever that falls (inside a character too, as a dropped connection does).
        bytes.extend_from_slice(&answer.body[..answer.body.len() / 2]);
        let _ = connection.write_all(&bytes);
        let _ = connection.flush();
        return fault_answers::reset(socket);
    }
    bytes.extend_from_slice(&answer.body);
    connection.write_all(&bytes).and_then(|()| connection.flush()).is_ok()
}

/// The request's fault acted out, or its route's answer; None when the connection ends without
/// one (a reset, a hang).
fn faulted_or_routed(
    request: &Recorded,
    socket: &TcpStream,
    world: &Mutex<World>,
    stopping: &AtomicBool,
) -> Option<Answer> {
    match request.fault {
        Some(Fault::Reset) => {
            fault_answers::reset(socket);
            None
        }
        Some(Fault::Hang) => {
            let until = Instant::now() + Duration::from_secs(120);
            while Instant::now() < until && !stopping.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(20));
            }
            None
        }
        Some(Fault::ResetAfterApplying) => {
            route(request, &mut lock(world));
            fault_answers::reset(socket);
            None
        }
        Some(Fault::Slow(delay)) => {
            thread::sleep(delay);
            Some(route(request, &mut lock(world)))
        }
        Some(fault) => {
            Some(fault_answers::answer_instead(fault, request).unwrap_or_else(|| route(request, &mut lock(world))))
        }
        None => Some(route(request, &mut lock(world))),
    }
}

/// The answer as served: a route `ROUTES` lacks is recorded as a violation, a success takes the
/// world's `success_status`, and 429s are counted.
fn as_served(mut answer: Answer, request: &Recorded, world: &mut World) -> Answer {
    if answer.status != 404 && answer.status != 429 && !listed_route(&request.method, &request.path) {
        world
            .api_violations
            .push(format!("the stand-in served {} {}, which ROUTES lacks", request.method, request.path));
    }
    if let (Some(status), true) = (world.success_status, (200..300).contains(&answer.status)) {
        answer.status = status;
    }
    if answer.status == 429 {
        world.answered_429 += 1;
    }
    answer
}

/// The status line and headers of an answer.
fn head(answer: &Answer) -> String {
    let mut text = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    for (name, value) in &answer.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str(&format!("Date: {}\r\n", http_date(unix_now())));
    text.push_str(&format!("Content-Length: {}\r\n\r\n", answer.body.len()));
    text
}
