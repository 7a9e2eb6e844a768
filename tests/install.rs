//! install.sh as a runner image's Dockerfile would use it: a release archive, checked by sha256,
//! into a prefix, under POSIX shells; and shellcheck over every shell script in the repository.
//! (The checkout mode, which builds with cargo, is exercised by .ci/run from its clean clone.)

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{run, Finished, TempDir};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn arch() -> String {
    String::from_utf8(Command::new("uname").arg("-m").output().unwrap().stdout).unwrap().trim().to_owned()
}

/// A release archive of the herald under test, as scripts/release.sh lays it out, in `dir`.
fn archive(dir: &Path, version: &str, content: &Path) -> PathBuf {
    let name = format!("herald-{version}-{}-unknown-linux-musl.tar.gz", arch());
    let staging = dir.join(format!("staging-{version}"));
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(content, staging.join("herald")).unwrap();
    let path = dir.join(&name);
    let status = Command::new("tar").arg("-czf").arg(&path).arg("-C").arg(&staging).arg("herald").status().unwrap();
    assert!(status.success());
    let sum = Command::new("sha256sum").arg(&name).current_dir(dir).output().unwrap();
    std::fs::write(dir.join(format!("{name}.sha256")), sum.stdout).unwrap();
    path
}

fn install(shell: &str, args: &[&str]) -> Finished {
    run(Command::new(shell).arg(repo().join("install.sh")).args(args).env_remove("HERALD_RELEASE_URL"))
}

#[test]
fn installs_a_checked_archive_under_posix_shells_and_is_idempotent() {
    let dir = TempDir::new("install");
    let archive = archive(dir.path(), "9.9.9", Path::new(env!("CARGO_BIN_EXE_herald")));
    // dash: the POSIX sh of Debian's images, stricter than bash.
    let shells = if crate::support::needs("dash") { &["dash", "bash"][..] } else { &["bash"] };
    for &shell in shells {
        let prefix = dir.join(&format!("prefix-{shell}"));
        let prefix = prefix.to_str().unwrap();
        let first = install(shell, &["--prefix", prefix, "--from", archive.to_str().unwrap()]);
        assert_eq!(first.code, Some(0), "{shell}: {}", first.stderr_text());
        assert!(first.stdout_text().contains("installed "), "{shell}: {}", first.stdout_text());
        let version = Command::new(format!("{prefix}/bin/herald")).arg("--version").output().unwrap();
        assert!(String::from_utf8_lossy(&version.stdout).starts_with("herald "));
        let again = install(shell, &["--prefix", prefix, "--from", archive.to_str().unwrap()]);
        assert_eq!(again.code, Some(0));
        assert!(again.stdout_text().contains("up to date"), "{shell}: {}", again.stdout_text());
    }
}

#[test]
fn a_version_pin_finds_its_archive_under_the_base_url() {
    let dir = TempDir::new("install-version");
    std::fs::create_dir_all(dir.join("releases/1.2.3")).unwrap();
    archive(&dir.join("releases/1.2.3"), "1.2.3", Path::new(env!("CARGO_BIN_EXE_herald")));
    let prefix = dir.join("prefix");
    let base = dir.join("releases");
    let finished = install(
        "sh",
        &["--prefix", prefix.to_str().unwrap(), "--version", "1.2.3", "--base-url", base.to_str().unwrap()],
    );
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(prefix.join("bin/herald").exists());
}

/// A `file://` URL is a directory by another name (a Dockerfile's `--base-url file:///releases`),
/// for the latest release and for a pinned one; a host other than this one is one clear line.
#[test]
fn a_file_url_works_like_a_plain_directory() {
    let dir = TempDir::new("install-file-url");
    std::fs::create_dir_all(dir.join("releases/1.2.3")).unwrap();
    std::fs::create_dir_all(dir.join("releases/latest")).unwrap();
    std::fs::write(dir.join("releases/latest/VERSION"), "1.2.3\n").unwrap();
    archive(&dir.join("releases/1.2.3"), "1.2.3", Path::new(env!("CARGO_BIN_EXE_herald")));
    let base = dir.join("releases");
    let base = base.to_str().unwrap();
    for (prefix, url, pin) in
        [("latest", format!("file://{base}"), None), ("pinned", format!("file://localhost{base}/"), Some("1.2.3"))]
    {
        let prefix = dir.join(prefix);
        let mut args = vec!["--prefix", prefix.to_str().unwrap(), "--base-url", &url];
        args.extend(pin.iter().flat_map(|version| ["--version", *version]));
        let finished = install("sh", &args);
        assert_eq!(finished.code, Some(0), "{url}: {}", finished.stderr_text());
        assert!(prefix.join("bin/herald").exists(), "{url}");
    }
    let elsewhere =
        install("sh", &["--prefix", dir.join("x").to_str().unwrap(), "--base-url", "file://server/releases"]);
    assert_eq!(elsewhere.code, Some(1));
    assert_eq!(elsewhere.stderr_text().lines().count(), 1, "{}", elsewhere.stderr_text());
    assert!(elsewhere.stderr_text().contains("names a file on another host"), "{}", elsewhere.stderr_text());
}

/// An image for ARM runners built on an x86_64 machine (or the other way round): `--arch` installs
/// the other architecture's archive, which cannot run here to say its version; one clear line.
#[test]
fn another_architectures_archive_installs_and_says_so() {
    let dir = TempDir::new("install-other-arch");
    let other = if arch() == "x86_64" { "aarch64" } else { "x86_64" };
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    // Not runnable here, as the other architecture's binary is not.
    std::fs::write(staging.join("herald"), b"\x7fELF for another machine").unwrap();
    let name = format!("herald-1.0.0-{other}-unknown-linux-musl.tar.gz");
    let status = Command::new("tar").arg("-czf").arg(dir.join(&name)).arg("-C").arg(&staging).arg("herald").status();
    assert!(status.unwrap().success());
    let sum = Command::new("sha256sum").arg(&name).current_dir(dir.path()).output().unwrap();
    std::fs::write(dir.join(&format!("{name}.sha256")), sum.stdout).unwrap();

    let prefix = dir.join("prefix");
    let archive = dir.join(&name);
    let finished =
        install("sh", &["--prefix", prefix.to_str().unwrap(), "--from", archive.to_str().unwrap(), "--arch", other]);
    assert_eq!(finished.code, Some(0), "{}", finished.stderr_text());
    assert!(finished.stderr_text().is_empty(), "{}", finished.stderr_text());
    let expected =
        format!("installed {} (for {other}: it does not run on this machine)", prefix.join("bin/herald").display());
    assert_eq!(finished.stdout_text().lines().next(), Some(expected.as_str()));
}

/// Without a pinned version, the base URL's latest/VERSION names the release to install.
#[test]
fn without_a_pin_the_latest_release_is_installed() {
    let dir = TempDir::new("install-latest");
    let base = dir.join("releases");
    for version in ["1.2.3", "1.3.0"] {
        std::fs::create_dir_all(base.join(version)).unwrap();
    }
    // 1.2.3 holds a binary that is not herald: installing it would show.
    archive(&base.join("1.2.3"), "1.2.3", Path::new("/bin/true"));
    archive(&base.join("1.3.0"), "1.3.0", Path::new(env!("CARGO_BIN_EXE_herald")));
    std::fs::create_dir_all(base.join("latest")).unwrap();
    std::fs::write(base.join("latest/VERSION"), "1.3.0\n").unwrap();

    for args in [vec![], vec!["--version", "latest"]] {
        let prefix = dir.join(&format!("prefix-{}", args.len()));
        let mut all = vec!["--prefix", prefix.to_str().unwrap(), "--base-url", base.to_str().unwrap()];
        all.extend(args);
        let finished = install("sh", &all);
        assert_eq!(finished.code, Some(0), "{all:?}: {}", finished.stderr_text());
        let installed = std::fs::read(prefix.join("bin/herald")).unwrap();
        assert_eq!(installed, std::fs::read(env!("CARGO_BIN_EXE_herald")).unwrap(), "{all:?}: not 1.3.0's binary");
    }

    std::fs::remove_file(base.join("latest/VERSION")).unwrap();
    let prefix = dir.join("prefix-missing");
    let finished = install("sh", &["--prefix", prefix.to_str().unwrap(), "--base-url", base.to_str().unwrap()]);
    assert_eq!(finished.code, Some(1));
    assert!(finished.stderr_text().contains("latest/VERSION to find the latest release"), "{}", finished.stderr_text());
    assert_eq!(finished.stderr_text().lines().count(), 1);
}

#[test]
fn a_tampered_archive_is_rejected_and_nothing_is_installed() {
    let dir = TempDir::new("install-tampered");
    let archive = archive(dir.path(), "9.9.9", Path::new(env!("CARGO_BIN_EXE_herald")));
    let checksum = std::fs::read_to_string(format!("{}.sha256", archive.display())).unwrap();
    // Same name, other content (any binary will do), old checksum.
    let archive = self::archive(dir.path(), "9.9.9", Path::new("/bin/true"));
    std::fs::write(format!("{}.sha256", archive.display()), checksum).unwrap();
    let prefix = dir.join("prefix");
    let finished = install("sh", &["--prefix", prefix.to_str().unwrap(), "--from", archive.to_str().unwrap()]);
    assert_eq!(finished.code, Some(1));
    assert!(finished.stderr_text().starts_with("install.sh: checksum mismatch for "), "{}", finished.stderr_text());
    assert!(finished.stderr_text().contains("not installed"));
    assert!(!prefix.join("bin/herald").exists());
}

#[test]
fn wrong_inputs_get_one_clear_line() {
    let dir = TempDir::new("install-errors");
    let archive = archive(dir.path(), "9.9.9", Path::new(env!("CARGO_BIN_EXE_herald")));
    let prefix = dir.join("prefix");
    let prefix = prefix.to_str().unwrap();
    let from = archive.to_str().unwrap();
    let bare = dir.join("bare.tar.gz");
    std::fs::copy(&archive, &bare).unwrap();
    for (args, expected) in [
        (vec!["--prefix", prefix, "--from", from, "--arch", "sparc"], "unsupported architecture 'sparc'"),
        (
            vec!["--prefix", prefix, "--from", from, "--arch", if arch() == "x86_64" { "aarch64" } else { "x86_64" }],
            "is not for",
        ),
        (vec!["--prefix", prefix, "--version", "1.0"], "--version needs --base-url"),
        (vec!["--prefix", prefix, "--from", "/nonexistent/herald.tar.gz"], "cannot get /nonexistent/herald.tar.gz"),
        (vec!["--prefix", prefix, "--from", bare.to_str().unwrap()], "no checksum: give --sha256"),
        (vec!["--prefix", prefix, "--frobnicate"], "unknown argument '--frobnicate'"),
        (vec!["--prefix"], "--prefix needs a value"),
    ] {
        let finished = install("sh", &args);
        assert_eq!(finished.code, Some(1), "{args:?}");
        let stderr = finished.stderr_text();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: expected {expected:?} in {stderr}");
    }
}

#[test]
fn every_shell_script_passes_shellcheck() {
    if !crate::support::needs("shellcheck") {
        return;
    }
    let mut scripts = vec!["install.sh".to_owned(), ".ci/run".to_owned()];
    for dir in ["scripts", "bench"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".sh") {
                scripts.push(format!("{dir}/{name}"));
            }
        }
    }
    assert!(scripts.len() > 8, "{scripts:?}");
    let output = Command::new("shellcheck").args(scripts).current_dir(repo()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    // install.sh and the image context script must stay POSIX: check them as sh.
    let posix = Command::new("shellcheck")
        .args(["--shell=sh", "install.sh", "scripts/image-context.sh"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(posix.status.success(), "{}", String::from_utf8_lossy(&posix.stdout));
}

/// The fuzz crate's lock file names this version of herald: otherwise every `scripts/fuzz.sh`
/// (and so `.ci/run`, which ends by checking the clone is still clean) rewrites it.
#[test]
fn the_fuzz_lock_file_names_this_version() {
    let lock = std::fs::read_to_string(repo().join("fuzz/Cargo.lock")).unwrap();
    let entry = format!("name = \"gitlab-herald\"\nversion = \"{}\"\n", env!("CARGO_PKG_VERSION"));
    assert!(lock.contains(&entry), "fuzz/Cargo.lock does not name gitlab-herald {}", env!("CARGO_PKG_VERSION"));
}
