#!/usr/bin/env bash
# Step overhead, side by side in one run: `true` bare, under tini (dynamic and static), under
# dumb-init, and under `herald run` with no GitLab context, both as shipped (static musl) and as
# built from a checkout (glibc, dynamic). Reports median wall time, the ratio to the faster tini,
# and peak RSS. Then herald publishing to the GitLab stand-in on loopback (plain HTTP, so no TLS
# handshake is included): the time it adds per step and the requests it sends per step, for a
# step that ends at once (`true`) and one that runs a moment (`sleep 0.05`).
#
#   bench/overhead.sh            # 2000 runs each (about a minute)
#   RUNS=300 bench/overhead.sh   # quicker, noisier
#
# Needs: hyperfine, tini, dumb-init, GNU time, python3 (Debian packages: hyperfine tini dumb-init
# time). herald is measured as shipped: a static musl release build when that target and a musl C
# compiler are installed (`rustup target add x86_64-unknown-linux-musl`, Debian's musl-tools), else
# the native release build, which is reported as such. Results go to stdout as a Markdown table; docs/benchmarks.md keeps a run.
set -euo pipefail

cd "$(dirname "$0")/.."
runs=${RUNS:-2000}
rss_runs=${RSS_RUNS:-50}

missing=""
for tool in hyperfine tini dumb-init python3; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -x /usr/bin/time ] || missing="$missing time"
if [ -n "$missing" ]; then
  echo "bench/overhead.sh: missing:$missing (apt-get install hyperfine tini dumb-init time python3)" >&2
  exit 1
fi

arch=$(uname -m)
musl_target="$arch-unknown-linux-musl"
cargo build --quiet --release
herald_glibc="target/release/herald"
if rustup target list --installed 2>/dev/null | grep -qx "$musl_target" && command -v musl-gcc >/dev/null 2>&1; then
  # The C compiler named as install.sh and release.sh name it: the three share one build.
  env "CC_$(echo "$musl_target" | tr '-' '_')=musl-gcc" cargo build --quiet --release --target "$musl_target"
  herald="target/$musl_target/release/herald"
  build="static musl release build ($musl_target)"
else
  herald="$herald_glibc"
  build="native release build (musl target not installed)"
fi
tini_static=$(command -v tini-static || command -v tini)

# No GitLab context: herald must behave as a pure supervisor.
unset GITLAB_CI HERALD_JUNIT CI_JOB_NAME HERALD_JOB_NAME

true_bin=$(command -v true)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

hyperfine --shell=none --warmup 100 --runs "$runs" --export-json "$out/times.json" \
  --command-name "true" "$true_bin" \
  --command-name "tini -s -- true" "tini -s -- $true_bin" \
  --command-name "tini-static -s -- true" "$tini_static -s -- $true_bin" \
  --command-name "dumb-init true" "dumb-init $true_bin" \
  --command-name "herald run -- true" "$herald run -- $true_bin" \
  --command-name "herald run -- true (glibc build)" "$herald_glibc run -- $true_bin" >/dev/null

# Peak RSS (KiB) of the largest process in each command's tree, median of $rss_runs runs.
for name in "true" "tini" "tini-static" "dumb-init" "herald" "herald-glibc"; do
  case $name in
    true) cmd=("$true_bin") ;;
    tini) cmd=(tini -s -- "$true_bin") ;;
    tini-static) cmd=("$tini_static" -s -- "$true_bin") ;;
    dumb-init) cmd=(dumb-init "$true_bin") ;;
    herald) cmd=("$herald" run -- "$true_bin") ;;
    herald-glibc) cmd=("$herald_glibc" run -- "$true_bin") ;;
  esac
  for _ in $(seq "$rss_runs"); do
    /usr/bin/time -f '%M' -a -o "$out/rss-$name" "${cmd[@]}"
  done
done

# Publishing: herald as a CI job would run it, against the stand-in (standin/, run by examples/gitlab_standin.rs).
publish_runs=${PUBLISH_RUNS:-300}
cargo build --quiet --release --example gitlab_standin
mkfifo "$out/standin-stdin"
target/release/examples/gitlab_standin <"$out/standin-stdin" >"$out/standin-out" &
exec 3>"$out/standin-stdin" # keeps the stand-in serving until closed
for _ in $(seq 100); do [ -s "$out/standin-out" ] && break; sleep 0.05; done
api_url=$(head -n 1 "$out/standin-out")
branch_job=(GITLAB_CI=true CI_API_V4_URL="$api_url" HERALD_TOKEN=test-token-developer-0001
  CI_PROJECT_ID=42 CI_COMMIT_SHA=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa CI_PIPELINE_ID=1001
  CI_COMMIT_BRANCH=feature CI_JOB_NAME=bench)
env "${branch_job[@]}" hyperfine --shell=none --warmup 20 --runs "$publish_runs" --export-json "$out/publish.json" \
  --command-name "herald run -- true (publishing)" "$herald run -- $true_bin" \
  --command-name "herald run -- sleep 0.05 (publishing)" "$herald run -- sleep 0.05" >/dev/null
for _ in $(seq "$rss_runs"); do
  env "${branch_job[@]}" /usr/bin/time -f '%M' -a -o "$out/rss-publishing" "$herald" run -- sleep 0.05 2>/dev/null
done
hyperfine --shell=none --warmup 20 --runs "$publish_runs" --export-json "$out/sleep.json" \
  --command-name "herald run -- sleep 0.05" "$herald run -- sleep 0.05" >/dev/null
exec 3>&-
wait
stats=$(tail -n 1 "$out/standin-out")

# With the merge-request note: steps of one job in a merge-request pipeline, one after another,
# each with its own name so that each really changes the note (hyperfine would repeat one step,
# and an unchanged note is never rewritten). Timed as a whole against the same loop unpublished.
# The concurrent case is measured by the test suite's 30-job scenario.
note_runs=${NOTE_RUNS:-100}
: >"$out/standin-out"
target/release/examples/gitlab_standin <"$out/standin-stdin" >"$out/standin-out" &
exec 3>"$out/standin-stdin"
for _ in $(seq 100); do [ -s "$out/standin-out" ] && break; sleep 0.05; done
api_url=$(head -n 1 "$out/standin-out")
merge_request_job=(GITLAB_CI=true CI_API_V4_URL="$api_url" HERALD_TOKEN=test-token-developer-0001
  CI_PROJECT_ID=42 CI_COMMIT_SHA=cccccccccccccccccccccccccccccccccccccccc CI_PIPELINE_ID=1003
  CI_PIPELINE_SOURCE=merge_request_event CI_MERGE_REQUEST_IID=1 CI_JOB_NAME=bench CI_JOB_ID=$$)
steps_loop() { # $1: HERALD_MODE; prints the loop's wall time in nanoseconds
  local started
  started=$(date +%s%N)
  for i in $(seq "$note_runs"); do
    env "${merge_request_job[@]}" HERALD_MODE="$1" "$herald" run --name "step $i" -- sleep 0.05 2>/dev/null
  done
  echo $(($(date +%s%N) - started))
}
note_plain_ns=$(steps_loop off)
note_ns=$(steps_loop ci-only)
exec 3>&-
wait
rm -f "${TMPDIR:-/tmp}"/herald-*-$$ # what the job's steps told each other (finalize's part in CI)

# Configuration parsing, cold process each time: the largest fixture, a generated pipeline of
# 20 included files with 200 jobs using extends and !reference, and GitLab Runner's own pipeline.
large="$out/large"
mkdir -p "$large/ci"
printf 'include:\n  - local: ci/*.yml\n' >"$large/.gitlab-ci.yml"
for f in $(seq 20); do
  {
    printf '.base-%s:\n  image: rust\n  before_script:\n    - herald run --name setup -- ./setup.sh\n' "$f"
    printf '.steps-%s:\n  test:\n    - herald run -- cargo test --workspace\n' "$f"
    for j in $(seq 10); do
      printf 'job-%s-%s:\n  extends: .base-%s\n  stage: test\n  script:\n    - !reference [.steps-%s, test]\n    - herald run --name "check %s" -- ./check.sh\n' "$f" "$j" "$f" "$f" "$j"
    done
  } >"$large/ci/file-$f.yml"
done
hyperfine --shell=none --warmup 20 --runs "${PARSE_RUNS:-300}" --export-json "$out/parse.json" \
  --command-name "herald tasks (largest fixture)" "$herald tasks --format json --file tests/fixtures/pipelines/nested/.gitlab-ci.yml" \
  --command-name "herald tasks (200 jobs, 20 includes)" "$herald tasks --format json --file $large/.gitlab-ci.yml" \
  --command-name "herald tasks (GitLab Runner's pipeline: 18 files, 125 jobs)" "$herald tasks --format json --variable CI_PROJECT_PATH=gitlab-org/gitlab-runner --file tests/fixtures/real/gitlab-runner/.gitlab-ci.yml" \
  --command-name "herald --version (process start)" "$herald --version" >/dev/null
note_stats=$(tail -n 1 "$out/standin-out")

python3 - "$out" "$build" "$runs" "$rss_runs" "$publish_runs" "$stats" "$note_runs" "$note_stats" "$note_plain_ns" "$note_ns" <<'PY'
import json, statistics, sys, platform, os
out, build, runs, rss_runs, publish_runs, stats, note_runs, note_stats, note_plain_ns, note_ns = sys.argv[1:11]
results = {r["command"]: r for r in json.load(open(f"{out}/times.json"))["results"]}
rss_files = {"true": "true", "tini -s -- true": "tini", "tini-static -s -- true": "tini-static",
             "dumb-init true": "dumb-init", "herald run -- true": "herald",
             "herald run -- true (glibc build)": "herald-glibc"}
# The fair yardstick is the faster of the two tini builds.
tini = min(statistics.median(results[name]["times"]) for name in ("tini -s -- true", "tini-static -s -- true"))
print(f"herald: {build}; {runs} runs each; {os.cpu_count()} cores; kernel {platform.release()}\n")
print("| command | median | mean ± σ | × faster tini (median) | peak RSS (median) |")
print("|---|---:|---:|---:|---:|")
for name, result in results.items():
    median = statistics.median(result["times"])
    rss = [int(line) for line in open(f"{out}/rss-{rss_files[name]}") if line.strip()]
    print(f"| `{name}` | {median*1e3:.3f} ms | {result['mean']*1e3:.3f} ± {result['stddev']*1e3:.3f} ms "
          f"| {median/tini:.2f} | {statistics.median(rss)/1024:.1f} MiB |")
herald = statistics.median(results["herald run -- true"]["times"])
rss = statistics.median(int(l) for l in open(f"{out}/rss-herald") if l.strip()) / 1024
verdict = lambda ok: "met" if ok else "MISSED"
verdicts = (f"\nTargets (herald as shipped): wall time ≤ 1.2 × tini: {herald/tini:.2f} ({verdict(herald/tini <= 1.2)}); "
      f"peak RSS ≤ 8 MiB: {rss:.1f} MiB ({verdict(rss <= 8)})")
print(verdicts)

publish = {r["command"]: r for r in json.load(open(f"{out}/publish.json"))["results"]}
sleep = json.load(open(f"{out}/sleep.json"))["results"][0]
stats = json.loads(stats)
steps = 2 * (20 + int(publish_runs)) + int(rss_runs)  # every publishing herald run above
med = lambda r: statistics.median(r["times"]) * 1e3
pairs = [("true", results["herald run -- true"], publish["herald run -- true (publishing)"]),
         ("sleep 0.05", sleep, publish["herald run -- sleep 0.05 (publishing)"])]
print(f"\nPublishing to the stand-in on loopback ({publish_runs} runs each):\n")
print("| step | without publishing | with publishing | added per step |")
print("|---|---:|---:|---:|")
for step, plain, published in pairs:
    print(f"| `{step}` | {med(plain):.3f} ms | {med(published):.3f} ms | {med(published) - med(plain):.3f} ms |")
publishing_rss = statistics.median(int(l) for l in open(f"{out}/rss-publishing") if l.strip()) / 1024
print(f"\nPeak RSS while publishing (median of {rss_runs}): {publishing_rss:.1f} MiB.")
print(f"Requests: {stats['requests']} for {steps} steps = {stats['requests'] / steps:.2f} per step "
      f"({stats['by_method']}); statuses left open: {stats['left_open']} of {stats['statuses']}.")

note_stats = json.loads(note_stats)
steps = int(note_runs)
per_step = lambda ns: int(ns) / steps / 1e6
print(f"\nWith the merge-request note ({steps} distinct `sleep 0.05` steps of one job, one after another): "
      f"{per_step(note_ns):.1f} ms per step against {per_step(note_plain_ns):.1f} ms unpublished, "
      f"{per_step(note_ns) - per_step(note_plain_ns):.1f} ms added; "
      f"{note_stats['requests'] / steps:.1f} requests per step ({note_stats['by_method']}); "
      f"statuses left open: {note_stats['left_open']}.")

print("\nConfiguration parsing (a fresh process each run):\n")
print("| command | median | mean ± σ |")
print("|---|---:|---:|")
for result in json.load(open(f"{out}/parse.json"))["results"]:
    print(f"| {result['command']} | {med(result):.3f} ms | {result['mean']*1e3:.3f} ± {result['stddev']*1e3:.3f} ms |")
PY
