#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests call, then runs cargo test on
# the workspace.
#   scripts/test.sh               # everything
#   scripts/test.sh note_sync     # arguments go to cargo test
#
# Installs (when missing): Debian's openssl (a private CA), util-linux (unshare, setsid), shellcheck
# and dash (the shell scripts), rsync, strace (a ptrace tool run as a step under a non-dumpable
# herald), and gitlab-ci-local 4.72.0 from npm into target/tools (the newest that runs on Node 20;
# the agreement test compares herald's reading of .gitlab-ci.yml with it, and the end-to-end test
# runs the CI templates with it), and rustup's rustfmt and clippy (the Rust template's jobs in
# that pipeline call them).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in openssl:openssl unshare:util-linux setsid:util-linux shellcheck:shellcheck dash:dash rsync:rsync strace:strace; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done

tools="$PWD/target/tools"
if [ ! -x "$tools/node_modules/.bin/gitlab-ci-local" ]; then
  command -v npm >/dev/null 2>&1 || { echo "scripts/test.sh: npm (Node 20) is needed for gitlab-ci-local" >&2; exit 1; }
  mkdir -p "$tools"
  npm install --prefix "$tools" --no-audit --no-fund --silent gitlab-ci-local@4.72.0
fi
export GITLAB_CI_LOCAL="$tools/node_modules/.bin/gitlab-ci-local"
# PyYAML with its C loader, libyaml — what GitLab's Ruby (Psych) reads YAML with: the YAML
# agreement test compares herald's reading of tests/fixtures/yaml with it.
if ! python3 -c 'import sys, yaml; sys.exit(0 if yaml.__with_libyaml__ else 1)' 2>/dev/null; then
  python3 -m pip install --quiet pyyaml || python3 -m pip install --quiet --break-system-packages pyyaml
fi
# Everything is installed now: a test that finds a tool missing fails instead of skipping.
export HERALD_TEST_EVERYTHING=1

# The workspace: herald's suite (tests/main.rs and its unit tests) and the stand-in's and the
# campaigns' own unit tests (standin/, campaigns/).
cargo test --locked --workspace "$@"
