#!/bin/sh
# Installs herald. POSIX sh: runs under Alpine's ash, dash and bash alike.
#
# Two ways:
# - From a checkout of herald (no --from/--version): builds a release binary with cargo: static
#   musl (the fastest and most portable build) when the Rust target and a musl C compiler are
#   installed (TLS code is partly C), otherwise for this system's libc.
# - In a runner image: installs a release archive (scripts/release.sh makes them) for this
#   machine's target, from a URL or a local file, after checking its sha256.
#
# Either way it installs PREFIX/bin/herald, and running it again changes nothing when the binary
# is the same.
set -eu

usage() {
  cat <<'EOF'
Usage: install.sh [--prefix DIR] [--from URL|FILE [--sha256 HEX]] [--base-url URL [--version V]] [--arch ARCH]

From a herald checkout, with no --from, --version or --base-url: builds herald with cargo and
installs it. Otherwise installs a release archive herald-<version>-<arch>-unknown-linux-musl.tar.gz:
  --from URL|FILE  the archive; its checksum is --sha256, or the file <archive>.sha256 beside it
  --sha256 HEX     the archive's expected sha256
  --base-url URL   where releases are published (a GitLab generic package, a directory or a
                   file:// URL), as scripts/release.sh lays them out [default: $HERALD_RELEASE_URL]
  --version V      the release to install from there: X.Y.Z, or latest (the version named in
                   <base-url>/latest/VERSION) [default: latest]
  --arch ARCH      x86_64 or aarch64 [default: this machine's]
  --prefix DIR     where to install [default: /usr/local as root, else $HOME/.local]
  -h, --help       show this help
EOF
}

fail() {
  printf 'install.sh: %s\n' "$1" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is needed${2:+ $2}, and was not found"
}

if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix="${HOME:-}/.local"; fi
from="" sha256="" version="" base_url="${HERALD_RELEASE_URL:-}" base_url_given="" arch=""

# value OPTION ARGC VALUE: the option's value, or a clear error.
value() {
  if [ "$2" -lt 2 ] || [ -z "$3" ]; then fail "$1 needs a value (see --help)"; fi
  printf '%s' "$3"
}

while [ $# -gt 0 ]; do
  case $1 in
    --prefix) prefix=$(value "$1" $# "${2:-}"); shift 2 ;;
    --from) from=$(value "$1" $# "${2:-}"); shift 2 ;;
    --sha256) sha256=$(value "$1" $# "${2:-}"); shift 2 ;;
    --version) version=$(value "$1" $# "${2:-}"); shift 2 ;;
    --base-url) base_url=$(value "$1" $# "${2:-}") base_url_given=1; shift 2 ;;
    --arch) arch=$(value "$1" $# "${2:-}"); shift 2 ;;
    --*=*)
      # --option=value: split, and read again as --option value.
      option=${1%%=*} argument=${1#*=}
      shift
      set -- "$option" "$argument" "$@"
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) fail "unknown argument '$1' (see --help)" ;;
  esac
done

target="$prefix/bin/herald"

# Puts $1 at $target, unless the same binary is already there.
install_binary() {
  mkdir -p "$prefix/bin" || fail "cannot create $prefix/bin"
  if [ -f "$target" ] && cmp -s "$1" "$target"; then
    printf 'herald is up to date at %s\n' "$target"
    return
  fi
  # Copy next to the target, then rename: a running herald is never overwritten in place.
  if ! { cp "$1" "$target.new.$$" && chmod 755 "$target.new.$$" && mv -f "$target.new.$$" "$target"; }; then
    rm -f "$target.new.$$"
    fail "cannot write $target"
  fi
  # A binary for another architecture (an ARM image built on x86_64, --arch) cannot say its
  # version here: the archive's name says what it is.
  if version_line=$("$target" --version 2>/dev/null); then
    printf 'installed %s (%s)\n' "$target" "$version_line"
  else
    printf 'installed %s (for %s: it does not run on this machine)\n' "$target" "${arch:-$(uname -m)}"
  fi
}

from_checkout() {
  source_dir=$(cd "$(dirname "$0")" && pwd)
  grep -q '^name = "gitlab-herald"' "$source_dir/Cargo.toml" 2>/dev/null ||
    fail "not in a herald checkout: give a release archive with --from, or --version with --base-url"
  need cargo "to build herald from source (install Rust from https://rustup.rs)"
  musl_target="$(uname -m)-unknown-linux-musl"
  musl_cc=""
  for cc in musl-gcc "$(uname -m)-linux-musl-gcc"; do
    if [ -z "$musl_cc" ] && command -v "$cc" >/dev/null 2>&1; then musl_cc=$cc; fi
  done
  if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$musl_target" &&
    [ -n "$musl_cc" ]; then
    # The C compiler named as scripts/release.sh names it, so the two builds share target/.
    (cd "$source_dir" && env "CC_$(printf '%s' "$musl_target" | tr '-' '_')=$musl_cc" \
      cargo build --quiet --locked --release --target "$musl_target") || fail "cargo build failed"
    install_binary "$source_dir/target/$musl_target/release/herald"
  else
    printf 'install.sh: building for this system'"'"'s libc; for the faster static build: rustup target add %s, and a musl C compiler (Debian: apt-get install musl-tools)\n' "$musl_target" >&2
    (cd "$source_dir" && cargo build --quiet --locked --release) || fail "cargo build failed"
    install_binary "$source_dir/target/release/herald"
  fi
}

# fetch SOURCE DEST: a URL or a local file, to DEST; fails quietly (the caller says what failed).
fetch() {
  case $1 in
    http://* | https://*)
      if command -v curl >/dev/null 2>&1; then
        curl -fsSL -o "$2" "$1"
      elif command -v wget >/dev/null 2>&1; then
        wget -q -O "$2" "$1"
      else
        fail "curl or wget is needed to download $1, and neither was found"
      fi
      ;;
    file://*)
      # A file: URL names a local file, as a plain path does (curl would read it too, but curl may
      # be missing): file:///srv/herald/x and file://localhost/srv/herald/x are /srv/herald/x.
      local_path=${1#file://}
      case $local_path in
        localhost/*) local_path=${local_path#localhost} ;;
        /*) ;;
        *) fail "$1 names a file on another host; give a local path, file:///path, or an https:// URL" ;;
      esac
      fetch "$local_path" "$2"
      ;;
    *)
      if [ ! -f "$1" ]; then return 1; fi
      cp "$1" "$2"
      ;;
  esac
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 256 "$1" | cut -d' ' -f1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha256 "$1" | sed 's/.*= *//'
  else
    fail "sha256sum, shasum or openssl is needed to check the archive, and none was found"
  fi
}

from_archive() {
  [ "$(uname -s)" = Linux ] || fail "herald runs on Linux only (this is $(uname -s))"
  case ${arch:-$(uname -m)} in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) fail "unsupported architecture '${arch:-$(uname -m)}': herald ships x86_64 and aarch64 Linux builds" ;;
  esac
  need tar "to unpack the archive"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if [ -z "$from" ]; then
    [ -n "$base_url" ] || fail "--version needs --base-url (or HERALD_RELEASE_URL): where releases are published"
    if [ "${version:-latest}" = latest ]; then
      # The release script publishes latest/VERSION beside the versions: one line, the newest.
      fetch "${base_url%/}/latest/VERSION" "$work/VERSION" ||
        fail "cannot get ${base_url%/}/latest/VERSION to find the latest release (or give --version X.Y.Z)"
      version=$(tr -d ' \r\n' <"$work/VERSION")
    fi
    case $version in
      '' | *[!0-9A-Za-z.+-]*) fail "'$version' is not a release version (X.Y.Z)" ;;
    esac
    from="${base_url%/}/$version/herald-$version-$arch-unknown-linux-musl.tar.gz"
  fi
  case $from in
    *"-$arch-unknown-linux-musl.tar.gz") ;;
    *-unknown-linux-musl.tar.gz) fail "$from is not for $arch (use the $arch archive, or --arch)" ;;
  esac
  fetch "$from" "$work/herald.tar.gz" || fail "cannot get $from"
  if [ -z "$sha256" ]; then
    fetch "$from.sha256" "$work/herald.tar.gz.sha256" 2>/dev/null ||
      fail "no checksum: give --sha256, or publish $from.sha256 beside the archive"
    sha256=$(cut -d' ' -f1 <"$work/herald.tar.gz.sha256")
  fi
  actual=$(sha256_of "$work/herald.tar.gz")
  [ "$actual" = "$sha256" ] || fail "checksum mismatch for $from: expected $sha256, got $actual; not installed"
  tar -xzf "$work/herald.tar.gz" -C "$work" herald 2>/dev/null || fail "$from holds no herald binary"
  install_binary "$work/herald"
}

if [ -n "$from" ] || [ -n "$version" ] || [ -n "$base_url_given" ]; then
  from_archive
else
  from_checkout
fi

case ":${PATH:-}:" in
  *":$prefix/bin:"*) ;;
  *) printf 'note: %s is not on PATH\n' "$prefix/bin" ;;
esac
