#!/bin/sh
# The container image's build context, as the Dockerfile copies it: image/amd64/herald and
# image/arm64/herald, unpacked from the release archives scripts/release.sh left in dist/.
set -eu
cd "$(dirname "$0")/.."

version=$(cat dist/latest/VERSION)
for pair in amd64:x86_64 arm64:aarch64; do
  platform=${pair%%:*} arch=${pair#*:}
  archive="dist/$version/herald-$version-$arch-unknown-linux-musl.tar.gz"
  [ -f "$archive" ] || { echo "image-context.sh: $archive is missing: run scripts/release.sh" >&2; exit 1; }
  rm -rf "image/$platform"
  mkdir -p "image/$platform"
  tar -xzf "$archive" -C "image/$platform" herald
done
echo "image/amd64/herald, image/arm64/herald: herald $version"
