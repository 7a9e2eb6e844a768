#!/usr/bin/env bash
# Step overhead of herald builds side by side: `tini-static -s -- true` and each build's
# `herald run -- true` (no GitLab context), interleaved so that the machine's drift hits them all:
# ROUNDS rounds (default 10) of 300 runs each (`hyperfine -N`, 30 warm-up runs), the order
# rotated every round. Prints each round's medians, then each build against tini-static and
# every build against the first, as the median of the rounds' ratios (lowest–highest).
#
#   bench/overhead-ab.sh BEFORE AFTER [MORE...]   # herald binaries, e.g. two static musl builds
#   ROUNDS=20 bench/overhead-ab.sh ...
#
# Needs hyperfine, tini-static (Debian's tini package) and python3. With GITLAB_CI=true in the
# environment it measures herald in a job without a token instead (the summary file, the log
# section).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: bench/overhead-ab.sh HERALD_BEFORE HERALD_AFTER [MORE...]" >&2; exit 2; }
for tool in hyperfine tini-static python3; do
  command -v "$tool" >/dev/null || { echo "bench/overhead-ab.sh: missing $tool" >&2; exit 1; }
done
true_bin=$(command -v true)
commands=("tini-static -s -- $true_bin")
for herald in "$@"; do
  commands+=("$(realpath "$herald") run -- $true_bin")
done
unset HERALD_JUNIT CI_JOB_NAME HERALD_JOB_NAME HERALD_TOKEN
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for round in $(seq 1 "${ROUNDS:-10}"); do
  turn=$((round % ${#commands[@]}))
  hyperfine --shell=none --warmup 30 --runs 300 --export-json "$out/round-$(printf %03d "$round").json" \
    "${commands[@]:$turn}" "${commands[@]:0:$turn}" >/dev/null 2>&1
done

python3 - "$out" "${commands[@]}" <<'EOF'
import glob, json, statistics, sys

out, commands = sys.argv[1], sys.argv[2:]
rounds = []
for path in sorted(glob.glob(f"{out}/round-*.json")):
    medians = {r["command"]: statistics.median(r["times"]) * 1000 for r in json.load(open(path))["results"]}
    rounds.append([medians[c] for c in commands])
    print(" | ".join(f"{m:.3f} ms" for m in rounds[-1]))
names = ["tini-static"] + [c.split(" run ")[0] for c in commands[1:]]

def ratio(a, b, label):
    r = [row[a] / row[b] for row in rounds]
    print(f"{label}: {statistics.median(r):.2f} ({min(r):.2f}–{max(r):.2f})")

for i in range(1, len(commands)):
    ratio(i, 0, f"{names[i]} ÷ tini-static")
for i in range(2, len(commands)):
    ratio(i, 1, f"{names[i]} ÷ {names[1]}")
EOF
