#!/bin/sh
# Installs herald. POSIX sh: runs under Alpine's ash, dash and bash alike.
#
# From a checkout of herald, it builds a release binary with cargo and installs it into PREFIX/bin:
# static musl (the fastest and most portable build) when the Rust target and a musl C compiler are
# installed (TLS code is partly C), otherwise for this system's libc.
# Running it again replaces the binary only when the build changed.
#
#   ./install.sh                     # into /usr/local (root) or ~/.local (anyone else)
#   ./install.sh --prefix /opt/ci    # into /opt/ci/bin/herald
set -eu

usage() {
  cat <<'EOF'
Usage: install.sh [--prefix DIR]

Builds herald from this checkout with cargo and installs it as DIR/bin/herald.
  --prefix DIR   where to install [default: /usr/local as root, else $HOME/.local]
  -h, --help     show this help
EOF
}

fail() {
  printf 'install.sh: %s\n' "$1" >&2
  exit 1
}

if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="${HOME:-}/.local"; fi

while [ $# -gt 0 ]; do
  case $1 in
    --prefix)
      if [ $# -lt 2 ] || [ -z "$2" ]; then fail "--prefix needs a directory"; fi
      prefix=$2
      shift 2
      ;;
    --prefix=*)
      prefix=${1#--prefix=}
      [ -n "$prefix" ] || fail "--prefix needs a directory"
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) fail "unknown argument '$1' (see --help)" ;;
  esac
done

source_dir=$(cd "$(dirname "$0")" && pwd)
grep -q '^name = "gitlab-herald"' "$source_dir/Cargo.toml" 2>/dev/null ||
  fail "run this script from a herald checkout (no herald Cargo.toml next to it)"
command -v cargo >/dev/null 2>&1 ||
  fail "cargo is needed to build herald from source; install Rust from https://rustup.rs"

musl_target="$(uname -m)-unknown-linux-musl"
have_musl_cc() { command -v musl-gcc >/dev/null 2>&1 || command -v "$(uname -m)-linux-musl-gcc" >/dev/null 2>&1; }
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$musl_target" && have_musl_cc; then
  (cd "$source_dir" && cargo build --quiet --locked --release --target "$musl_target") || fail "cargo build failed"
  built="$source_dir/target/$musl_target/release/herald"
else
  printf 'install.sh: building for this system'"'"'s libc; for the faster static build: rustup target add %s, and a musl C compiler (Debian: apt-get install musl-tools)\n' "$musl_target" >&2
  (cd "$source_dir" && cargo build --quiet --locked --release) || fail "cargo build failed"
  built="$source_dir/target/release/herald"
fi

target="$prefix/bin/herald"
mkdir -p "$prefix/bin" || fail "cannot create $prefix/bin"
if [ -f "$target" ] && cmp -s "$built" "$target"; then
  printf 'herald is up to date at %s\n' "$target"
else
  # Copy next to the target, then rename: a running herald is never overwritten in place.
  if ! { cp "$built" "$target.new.$$" && chmod 755 "$target.new.$$" && mv -f "$target.new.$$" "$target"; }; then
    rm -f "$target.new.$$"
    fail "cannot write $target"
  fi
  printf 'installed %s (%s)\n' "$target" "$("$target" --version)"
fi

case ":${PATH:-}:" in
  *":$prefix/bin:"*) ;;
  *) printf 'note: %s is not on PATH\n' "$prefix/bin" ;;
esac
