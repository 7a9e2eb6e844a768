#!/usr/bin/env bash
# Step overhead, side by side in one run: `true` bare, under tini (dynamic and static), under
# dumb-init, and under `herald run` with no GitLab context, both as shipped (static musl) and as
# built from a checkout (glibc, dynamic). Reports median wall time, the ratio to the faster tini,
# and peak RSS.
#
#   bench/overhead.sh            # 2000 runs each (about a minute)
#   RUNS=300 bench/overhead.sh   # quicker, noisier
#
# Needs: hyperfine, tini, dumb-init, GNU time (Debian packages: hyperfine tini dumb-init time),
# python3. herald is measured as shipped: a static musl release build when that target is
# installed (`rustup target add x86_64-unknown-linux-musl`), else the native release build, which
# is reported as such. Results go to stdout as a Markdown table; docs/benchmarks.md keeps a run.
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
if rustup target list --installed 2>/dev/null | grep -qx "$musl_target"; then
  cargo build --quiet --release --target "$musl_target"
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

python3 - "$out" "$build" "$runs" "$rss_runs" <<'PY'
import json, statistics, sys, platform, os
out, build, runs, rss_runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
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
print(f"\nTargets (herald as shipped): wall time ≤ 1.2 × tini: {herald/tini:.2f} ({verdict(herald/tini <= 1.2)}); "
      f"peak RSS ≤ 8 MiB: {rss:.1f} MiB ({verdict(rss <= 8)})")
PY
