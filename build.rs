//! Records what `herald --version` reports besides the version: the target triple and the git
//! commit the binary was built from (HERALD_BUILD_COMMIT when set, e.g. by a build from a source
//! archive; else git; else "unknown").

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok().filter(|out| out.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=HERALD_TARGET={target}");

    println!("cargo:rerun-if-env-changed=HERALD_BUILD_COMMIT");
    let commit = std::env::var("HERALD_BUILD_COMMIT")
        .ok()
        .filter(|commit| !commit.is_empty())
        .map(|commit| commit.chars().take(12).collect())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HERALD_GIT_COMMIT={commit}");

    // Rebuild when HEAD moves: HEAD itself (a checkout), the branch it points to (a commit), and
    // packed-refs. Missing paths are fine.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/packed-refs");
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        println!("cargo:rerun-if-changed=.git/{branch}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
