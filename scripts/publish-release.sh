#!/usr/bin/env bash
# Publishes what scripts/release.sh built in dist/ as the GitLab generic package `herald` of this
# project: dist/<version>/* under version <version>, then dist/latest/* under version `latest`
# (last, so that latest/VERSION never names a version whose files are not there yet). That is the
# tree install.sh --base-url and the templates' install_source read. Also writes
# release-notes.md, the CHANGELOG's section for the version, for the GitLab release.
#
#   scripts/publish-release.sh --dry-run    # checks everything, prints the uploads, sends nothing
#   scripts/publish-release.sh              # uploads
#
# Reads CI_API_V4_URL and CI_PROJECT_ID, and CI_COMMIT_TAG when set (herald's pipeline runs this
# on a version tag, which must equal Cargo.toml's version). Authenticates with HERALD_RELEASE_TOKEN
# (PRIVATE-TOKEN: a token with the api scope) or else the job's CI_JOB_TOKEN (JOB-TOKEN), handed to
# curl on stdin, never on its command line or in any output.
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
case ${1:-} in
  --dry-run) dry_run=true ;;
  "") ;;
  *) echo "publish-release.sh: unknown argument '$1' (--dry-run or nothing)" >&2; exit 2 ;;
esac
fail() {
  echo "publish-release.sh: $1" >&2
  exit 1
}

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
if [ -n "${CI_COMMIT_TAG:-}" ] && [ "$CI_COMMIT_TAG" != "$version" ]; then
  fail "the tag $CI_COMMIT_TAG is not Cargo.toml's version $version: tag X.Y.Z after setting the version"
fi
if [ -z "${CI_API_V4_URL:-}" ] || [ -z "${CI_PROJECT_ID:-}" ]; then
  fail "CI_API_V4_URL and CI_PROJECT_ID are needed"
fi

# The CHANGELOG's "## <version>" section, up to the next "## ": the release's description.
awk -v heading="## $version" '
  $0 == heading { found = 1; next }
  found && /^## / { exit }
  found { print }
' CHANGELOG.md >release-notes.md
grep -q '[^[:space:]]' release-notes.md || fail "CHANGELOG.md has no '## $version' section to describe the release"

# Exactly what release.sh makes, each archive matching its checksum.
files=(install.sh)
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  archive="herald-$version-$target.tar.gz"
  [ -f "dist/$version/$archive" ] || fail "dist/$version/$archive is missing: run scripts/release.sh"
  (cd "dist/$version" && sha256sum --check --quiet "$archive.sha256" >/dev/null 2>&1) || fail "dist/$version/$archive does not match its sha256"
  files+=("$archive" "$archive.sha256")
done
[ -f "dist/$version/install.sh" ] || fail "dist/$version/install.sh is missing: run scripts/release.sh"
[ "$(cat dist/latest/VERSION 2>/dev/null)" = "$version" ] || fail "dist/latest/VERSION does not name $version: run scripts/release.sh"

packages="${CI_API_V4_URL%/}/projects/$CI_PROJECT_ID/packages/generic/herald"
if [ -n "${HERALD_RELEASE_TOKEN:-}" ]; then
  header="PRIVATE-TOKEN: $HERALD_RELEASE_TOKEN"
elif [ -n "${CI_JOB_TOKEN:-}" ]; then
  header="JOB-TOKEN: $CI_JOB_TOKEN"
elif ! $dry_run; then
  fail "no token: HERALD_RELEASE_TOKEN or CI_JOB_TOKEN"
fi

# upload FILE PACKAGE_VERSION
upload() {
  local file=$1 url
  url="$packages/$2/${1##*/}"
  echo "PUT $url ($(wc -c <"$file") bytes, sha256 $(sha256sum "$file" | cut -d' ' -f1))"
  $dry_run && return
  printf '%s\n' "$header" | curl --silent --show-error --fail --header @- --upload-file "$file" "$url" >/dev/null ||
    fail "the upload to $url failed"
}

for file in "${files[@]}"; do
  upload "dist/$version/$file" "$version"
done
upload dist/latest/install.sh latest
upload dist/latest/VERSION latest
if $dry_run; then
  echo "dry run: nothing sent; release-notes.md holds the release's description"
else
  echo "published herald $version: $packages/$version/"
fi
