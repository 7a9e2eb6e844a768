#!/usr/bin/env bash
# Output throughput and memory: a 1 GiB stream through a pipe, written directly, by a step under
# herald with inherited stdio (the default: herald is not in the data path), and by a step under
# herald with the failure-excerpt tee on (HERALD_FAILURE_TAIL: herald copies every byte and keeps
# the last lines). Two kinds of stream: 1 GiB without newlines (/dev/zero), and 1 GiB of 60-byte
# lines (a compiler's chatter). Then herald's peak RSS for a 1-step run and for a step printing
# 10,000 lines, with and without the tee.
#
#   bench/throughput.sh          # 9 interleaved rounds (about two minutes)
#   RUNS=3 bench/throughput.sh
#
# Needs GNU time and python3 (Debian: time python3). Results go to stdout as Markdown;
# docs/benchmarks.md keeps a run.
set -euo pipefail

cd "$(dirname "$0")/.."
runs=${RUNS:-9}
command -v python3 >/dev/null 2>&1 || { echo "bench/throughput.sh: python3 is missing" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/throughput.sh: GNU time is missing (apt-get install time)" >&2; exit 1; }

musl_target="$(uname -m)-unknown-linux-musl"
if rustup target list --installed 2>/dev/null | grep -qx "$musl_target" && command -v musl-gcc >/dev/null 2>&1; then
  cargo build --quiet --release --target "$musl_target"
  herald="$PWD/target/$musl_target/release/herald"
else
  cargo build --quiet --release
  herald="$PWD/target/release/herald"
fi
unset GITLAB_CI HERALD_JUNIT HERALD_FAILURE_TAIL

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# 1 GiB of 60-byte lines, made once: the step is `cat` of it, so both cases do the same work.
lines="$out/lines"
python3 - "$lines" <<'PY'
import sys
line = b"warning: unused variable `x` in src/lib.rs:42:9 (a 60-b line)\n"[:59] + b"\n"
block = line * (1 << 16)
with open(sys.argv[1], "wb") as f:
    for _ in range((1 << 30) // len(block)):
        f.write(block)
PY

gib=1073741824
# Interleaved rounds (direct, inherited, tee, direct, ...) rather than one block per command:
# this machine's speed drifts by ±20 % over a minute, and blocks would measure the drift.
python3 - "$out" "$runs" "$herald" "$gib" "$lines" <<'PY'
import json, subprocess, sys, time
out, runs, herald, gib, lines = sys.argv[1:]
streams = {
    "zero": f"head -c {gib} /dev/zero",
    "lines": f"cat {lines}",
}
for name, step in streams.items():
    commands = [
        ("direct", f"{step} | cat >/dev/null"),
        ("herald, inherited stdio", f"{herald} run -- {step} | cat >/dev/null"),
        ("herald, failure-excerpt tee", f"HERALD_FAILURE_TAIL=20 {herald} run -- {step} | cat >/dev/null"),
    ]
    times = {label: [] for label, _ in commands}
    for _ in range(int(runs) + 1):  # the first round warms up
        for label, command in commands:
            started = time.perf_counter()
            subprocess.run(command, shell=True, check=True)
            times[label].append(time.perf_counter() - started)
    results = [{"command": label, "times": times[label][1:]} for label, _ in commands]
    json.dump({"results": results}, open(f"{out}/{name}.json", "w"))
PY

rss() { # prints herald's peak RSS in KiB, median of 20 runs
  for _ in $(seq 20); do /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1; done | sort -n | sed -n '10p'
}
rss_true=$(rss "$herald" run -- true)
rss_lines=$(rss "$herald" run -- seq 10000)
rss_lines_tee=$(rss env HERALD_FAILURE_TAIL=20 "$herald" run -- seq 10000)
rss_gib_tee=$(rss env HERALD_FAILURE_TAIL=20 "$herald" run -- head -c $gib /dev/zero)

python3 - "$out" "$rss_true" "$rss_lines" "$rss_lines_tee" "$rss_gib_tee" <<'PY'
import json, statistics, sys
out, rss_true, rss_lines, rss_lines_tee, rss_gib_tee = sys.argv[1:]
for name, title in (("zero", "1 GiB without newlines (`head -c 1G /dev/zero`)"),
                    ("lines", "1 GiB of 60-byte lines (`cat` of a file)")):
    results = json.load(open(f"{out}/{name}.json"))["results"]
    direct = statistics.median(results[0]["times"])
    print(f"\n{title}, into `cat >/dev/null` through a pipe:\n")
    print("| how | median | throughput | of direct |")
    print("|---|---:|---:|---:|")
    for r in results:
        t = statistics.median(r["times"])
        print(f"| {r['command']} | {t:.2f} s | {1024 / t:.0f} MiB/s | {100 * direct / t:.0f} % |")
mib = lambda kib: f"{int(kib) / 1024:.1f} MiB"
print("\nPeak RSS of herald (median of 20 runs):\n")
print("| step | peak RSS |")
print("|---|---:|")
print(f"| `true` | {mib(rss_true)} |")
print(f"| `seq 10000` (10,000 lines) | {mib(rss_lines)} |")
print(f"| `seq 10000`, failure-excerpt tee | {mib(rss_lines_tee)} |")
print(f"| 1 GiB without newlines, failure-excerpt tee | {mib(rss_gib_tee)} |")
PY
