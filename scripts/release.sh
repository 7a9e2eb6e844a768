#!/usr/bin/env bash
# Builds herald's release archives: a static musl binary per target, small (lto, strip), packed as
# dist/<version>/herald-<version>-<target>.tar.gz with a sha256 file beside it, plus install.sh,
# and dist/latest/{VERSION,install.sh}: the tree install.sh --base-url and the CI templates'
# install_source expect. Publish dist/ as it is (herald's own pipeline uploads it as a GitLab
# generic package: scripts/publish-release.sh), or serve it from any web server or directory.
#
#   scripts/release.sh                      # x86_64 and aarch64
#   TARGETS=x86_64-unknown-linux-musl scripts/release.sh
#
# Installs what it needs when it is missing: the Rust targets (rustup), and for aarch64 (and for
# x86_64 without Debian's musl-gcc) Zig as the cross C compiler that ring, under rustls, needs:
# cargo-zigbuild and the ziglang wheel from PyPI, pinned below (needs python3 with pip). Debian packages no aarch64 musl C
# compiler; Zig ships musl's headers and libc for every target in one download, and cargo-zigbuild
# drives it as cargo's linker and C compiler.
set -euo pipefail
cd "$(dirname "$0")/.."

zig_packages=(ziglang==0.17.1 cargo-zigbuild==0.24.1)

# cargo-zigbuild with the Zig wheel, pinned, from PyPI into target/tools/zig (pip's --target: no
# virtualenv, and Debian's "externally managed" Python accepts it).
zigbuild() {
  local tools="$PWD/target/tools/zig"
  if [ ! -x "$tools/bin/cargo-zigbuild" ] || [ ! -x "$tools/ziglang/zig" ]; then
    echo "release: installing ${zig_packages[*]} from PyPI into $tools (the cross C toolchain)" >&2
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --upgrade --target "$tools" "${zig_packages[@]}" >&2
  fi
  PATH="$tools/bin:$tools/ziglang:$PATH" cargo zigbuild "$@"
}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
targets=${TARGETS:-"x86_64-unknown-linux-musl aarch64-unknown-linux-musl"}
out="dist/$version"
mkdir -p "$out" dist/latest
cp install.sh "$out/install.sh"
for target in $targets; do
  arch=${target%%-*}
  if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
  fi
  if [ "$arch" = x86_64 ] && command -v musl-gcc >/dev/null 2>&1; then
    # The same build install.sh makes from a checkout: the two share target/.
    CC_x86_64_unknown_linux_musl=musl-gcc cargo build --quiet --locked --release --target "$target"
  else
    zigbuild --quiet --locked --release --target "$target"
  fi
  name="herald-$version-$target"
  staging=$(mktemp -d)
  cp "target/$target/release/herald" "$staging/herald"
  # The README links the guide for everything past the first steps: it travels with it.
  mkdir "$staging/docs"
  cp README.md CHANGELOG.md "$staging/"
  cp docs/guide.md "$staging/docs/"
  # Fixed owner and times: the same sources give the same archive.
  tar --owner=0 --group=0 --numeric-owner --mtime="@${SOURCE_DATE_EPOCH:-0}" --sort=name \
    -cf - -C "$staging" herald README.md CHANGELOG.md docs/guide.md | gzip -n -9 >"$out/$name.tar.gz"
  rm -rf "$staging"
  (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
  echo "$out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1)), sha256 $(cut -d' ' -f1 "$out/$name.tar.gz.sha256")"
done
# What install.sh --version latest and the templates' default read; published last, so that it
# never names a version whose archives are not there yet.
cp install.sh dist/latest/install.sh
echo "$version" >dist/latest/VERSION
echo "dist/latest/VERSION: $version"
