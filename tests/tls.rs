//! HTTPS to a self-hosted GitLab with a private CA: trusted only through `HERALD_CA_FILE`.
//! The server is `openssl s_server -WWW`, which serves files, so `/api/v4/user` is a JSON file.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

use crate::support::gitlab::{GitLab, TOKEN_DEVELOPER};
use crate::support::tls::Certificates;
use crate::support::{herald, herald_in_ci, run, wait_until, PipelineKind, TempDir};

struct TlsServer {
    process: Child,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A CA, a server certificate for localhost signed by it, and a server answering `/api/v4/user`.
fn start_server(dir: &TempDir) -> TlsServer {
    Certificates::new(dir.path());
    std::fs::create_dir_all(dir.join("api/v4")).unwrap();
    std::fs::write(dir.join("api/v4/user"), r#"{"id": 7, "username": "tls_bot", "bot": true}"#).unwrap();

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let process = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept", &port.to_string(), "-cert", "server.pem", "-key", "server.key"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("openssl s_server to listen", || TcpStream::connect(("127.0.0.1", port)).is_ok());
    TlsServer { process, port }
}

fn doctor(server: &TlsServer, ca_file: Option<&std::path::Path>) -> String {
    let mut command = herald();
    command
        .env("HERALD_MODE", "always")
        .env("HERALD_TOKEN", "glpat-tls-test-token")
        .env("HERALD_API_URL", format!("https://localhost:{}/api/v4", server.port))
        .env("HERALD_PROJECT", "group/app")
        .env("HERALD_SHA", "abc")
        .arg("doctor");
    if let Some(path) = ca_file {
        command.env("HERALD_CA_FILE", path);
    }
    run(&mut command).stderr_text()
}

#[test]
fn a_private_ca_is_trusted_through_herald_ca_file_and_only_then() {
    if !crate::support::needs("openssl") {
        return;
    }
    let dir = TempDir::new("tls");
    let server = start_server(&dir);

    let without = doctor(&server, None);
    let api = without.lines().find(|l| l.contains(" api: ")).unwrap_or_else(|| panic!("{without}"));
    assert!(api.starts_with("FAIL") && api.contains("TLS failed") && api.contains("set HERALD_CA_FILE"), "{without}");

    let with = doctor(&server, Some(&dir.join("ca.pem")));
    assert!(with.contains("ok   ca file: 1 certificate(s) from "), "{with}");
    assert!(with.contains("ok   api: https://localhost:"), "{with}");
    assert!(with.contains("ok   user: @tls_bot"), "{with}");
}

#[test]
fn an_unusable_ca_file_is_named() {
    let dir = TempDir::new("bad-ca");
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    let finished = run(herald()
        .env("HERALD_MODE", "always")
        .env("HERALD_TOKEN", "glpat-x-test-token")
        .env("HERALD_API_URL", "https://localhost:9/api/v4")
        .env("HERALD_PROJECT", "p")
        .env("HERALD_SHA", "abc")
        .env("HERALD_CA_FILE", dir.join("empty.pem"))
        .args(["run", "--", "true"]));
    assert_eq!(finished.code, Some(0), "the step's code, whatever the CA file");
    assert!(finished.stderr_text().contains("holds no PEM certificate"), "{}", finished.stderr_text());
}

/// A step published over HTTPS, as to a self-hosted GitLab with a private CA: the status and
/// the note, every request of the process on connections it keeps alive, since at a distance a
/// new connection costs a TCP and a TLS handshake (issue #19). Two of them: the note's look-ups
/// go on their own, so that they travel alongside the status posts and the other reads.
#[test]
fn a_step_publishes_over_tls_on_kept_alive_connections() {
    if !crate::support::needs("openssl") {
        return;
    }
    let dir = TempDir::new("tls-standin");
    let certificates = Certificates::new(dir.path());
    let gitlab = GitLab::start_tls(&certificates);
    let finished = run(herald_in_ci(&gitlab, PipelineKind::MergedResults, TOKEN_DEVELOPER)
        .env("HERALD_CA_FILE", &certificates.ca)
        .args(["run", "--name", "unit", "--", "true"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(
        finished.stderr_text().is_empty() || !finished.stderr_text().contains("not published"),
        "{}",
        finished.stderr_text()
    );
    let statuses = gitlab.with(|w| w.all_statuses());
    assert_eq!(statuses.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(), ["success"]);
    assert_eq!(gitlab.with(|w| w.herald_notes(1)).len(), 1);
    let (requests, connections) = gitlab.with(|w| (w.requests.len(), w.connections));
    eprintln!("{requests} requests over {connections} connection(s)");
    assert!(requests >= 4, "a status and the note: {requests} requests");
    assert!(connections <= 2, "{requests} requests took {connections} connections");
}

/// A step that runs longer than a few seconds still posts its final status on the connection its
/// `running` post opened: at a distance a new connection costs two more round trips (TCP and
/// TLS) after the step ends. GitLab's nginx keeps an idle connection 65 s (gitlab.md §O); ureq's
/// own default dropped it after 15 s.
#[test]
fn a_step_of_twenty_seconds_ends_on_the_connection_it_started_with() {
    let gitlab = GitLab::start();
    let finished = run(herald_in_ci(&gitlab, PipelineKind::Branch, TOKEN_DEVELOPER)
        .args(["run", "--name", "long", "--", "sleep", "20"]));
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    let (states, connections) =
        gitlab.with(|w| (w.all_statuses().iter().map(|s| s.status.clone()).collect::<Vec<_>>(), w.connections));
    assert_eq!(states, ["success"]);
    assert_eq!(connections, 1, "the final status took a new connection");
}
