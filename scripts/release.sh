#!/usr/bin/env bash
# Builds herald's release archives: a static musl binary per target, small (lto, strip), packed as
# dist/<version>/herald-<version>-<target>.tar.gz with a sha256 file beside it, plus install.sh:
# the tree install.sh --base-url and the CI templates' install_source expect. Publish dist/ as it
# is (a GitLab generic package, a web server, a directory in the runner image).
#
#   scripts/release.sh                      # every target whose toolchain is installed
#   TARGETS=x86_64-unknown-linux-musl scripts/release.sh
#
# Needs the Rust target (`rustup target add <target>`) and a C compiler for it (ring, under
# rustls, compiles C): `musl-gcc` from Debian's musl-tools for x86_64, `aarch64-linux-musl-gcc`
# for aarch64. Targets without one are skipped with a line saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
targets=${TARGETS:-"x86_64-unknown-linux-musl aarch64-unknown-linux-musl"}
out="dist/$version"
mkdir -p "$out"
cp install.sh "$out/install.sh"
built=0
for target in $targets; do
  arch=${target%%-*}
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "release: skipping $target: rustup target add $target" >&2
    continue
  fi
  case $arch in
    x86_64) cc=musl-gcc ;;
    *) cc="$arch-linux-musl-gcc" ;;
  esac
  if ! command -v "$cc" >/dev/null 2>&1; then
    echo "release: skipping $target: no C compiler for it ($cc)" >&2
    continue
  fi
  env_name="CC_$(echo "$target" | tr '-' '_')"
  env "$env_name=$cc" cargo build --quiet --locked --release --target "$target"
  name="herald-$version-$target"
  staging=$(mktemp -d)
  cp "target/$target/release/herald" "$staging/herald"
  cp README.md "$staging/"
  tar -czf "$out/$name.tar.gz" -C "$staging" herald README.md
  rm -rf "$staging"
  (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
  echo "$out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1)), sha256 $(cut -d' ' -f1 "$out/$name.tar.gz.sha256")"
  built=$((built + 1))
done
[ "$built" -gt 0 ] || { echo "release: no target could be built" >&2; exit 1; }
