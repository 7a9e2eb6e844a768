//! Certificates for HTTPS in the tests, made with the openssl command: a CA, and a server
//! certificate for localhost and 127.0.0.1 signed by it. herald trusts the CA through
//! HERALD_CA_FILE; the stand-in (`GitLab::start_tls`) and `openssl s_server` serve the rest.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Certificates {
    /// The CA, PEM: what HERALD_CA_FILE names. (server.pem and server.key lie beside it.)
    pub ca: PathBuf,
    dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

impl Certificates {
    /// Made in `dir` (the caller checks that openssl is there: `support::needs("openssl")`).
    pub fn new(dir: &Path) -> Certificates {
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let subject = ["-days", "2", "-subj", "/CN=herald test CA"];
        openssl(dir, &[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.pem"], &subject].concat());
        let request = ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"];
        openssl(dir, &[&["req"][..], &ec, &request].concat());
        std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
            .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        );
        // DER copies for rustls: the certificate, and the key as PKCS#8.
        openssl(dir, &["x509", "-in", "server.pem", "-outform", "DER", "-out", "server.der"]);
        openssl(
            dir,
            &["pkcs8", "-topk8", "-nocrypt", "-in", "server.key", "-outform", "DER", "-out", "server.key.der"],
        );
        Certificates { ca: dir.join("ca.pem"), dir: dir.to_owned() }
    }

    /// A rustls server configuration with the server certificate.
    pub fn server_config(&self) -> rustls::ServerConfig {
        let certificate = std::fs::read(self.dir.join("server.der")).unwrap();
        let key = std::fs::read(self.dir.join("server.key.der")).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.into());
        rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![certificate.into()], key)
            .expect("the server certificate")
    }
}
