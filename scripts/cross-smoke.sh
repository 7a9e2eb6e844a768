#!/usr/bin/env bash
# The aarch64 release archive, tested for real under emulation: scripts/release.sh builds it, and
# the suite's supervision, exit-code, signal, CLI, TLS and publishing tests run against the binary
# from the archive under qemu-user (HERALD_TEST_BINARY / HERALD_TEST_RUNNER, see tests/support).
#   scripts/cross-smoke.sh                 # aarch64
#   scripts/cross-smoke.sh TARGET          # another musl target qemu-user can run
#   scripts/cross-smoke.sh --prebuilt      # the archive already in dist/ (herald's pipeline)
#
# Installs Debian's qemu-user when it is missing. Skipped tests, and why:
# - those that need herald to adopt orphans (PR_SET_CHILD_SUBREAPER): qemu-user 7.2 refuses that
#   prctl, so under emulation a setsid'd daemon escapes to init. The kernel, not the instruction
#   set, does the adopting: on an ARM machine it works as on x86_64.
set -euo pipefail
cd "$(dirname "$0")/.."

prebuilt=false
if [ "${1:-}" = --prebuilt ]; then
  prebuilt=true
  shift
fi
target=${1:-aarch64-unknown-linux-musl}
arch=${target%%-*}
qemu="qemu-$arch"
if ! command -v "$qemu" >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq qemu-user >/dev/null
fi

$prebuilt || TARGETS=$target scripts/release.sh
version=$(cat dist/latest/VERSION)
unpacked=$(mktemp -d)
trap 'rm -rf "$unpacked"' EXIT
tar -xzf "dist/$version/herald-$version-$target.tar.gz" -C "$unpacked" herald
echo "--- $("$qemu" "$unpacked/herald" --version), under $qemu"

HERALD_TEST_EVERYTHING=1 HERALD_TEST_BINARY="$unpacked/herald" HERALD_TEST_RUNNER="$qemu" cargo test --locked --test suite -- \
  supervise:: cli:: publish:: tls:: junit:: doctor:: \
  --skip supervise::orphans_that_left_the_group_are_stopped_and_reaped_too
