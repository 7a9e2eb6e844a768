#!/usr/bin/env bash
# Coverage-guided fuzzing of the configuration loader, the note renderer, the token file's reader,
# the findings readers (Code Quality, SARIF) and diff matcher, and the step summary's reader
# (fuzz/fuzz_targets/).
#   scripts/fuzz.sh              # the campaign: 5 minutes per target
#   scripts/fuzz.sh 10           # seconds per target (CI runs this)
#   scripts/fuzz.sh 60 note_render
#
# cargo-fuzz wants a nightly toolchain for `-Zsanitizer=address`; this machine (and CI) has only
# stable, so the build runs with RUSTC_BOOTSTRAP=1, which lets stable rustc accept the flag. Same
# compiler, same code generation: only the gate on unstable flags is lifted, for this build alone.
#
# Seeds: the test fixtures and the CI templates (config_load), hostile names (note_render), a few
# token files (token_file), the real reports and diffs of tests/fixtures/findings
# (codequality_read, sarif_read, diff_match), hostile Markdown (step_summary), and
# every input that once failed (fuzz/regressions/<target>, committed). The corpus grows in
# fuzz/corpus/<target> (not committed). A failure leaves its input in fuzz/artifacts/<target>/
# and fails the script; reproduce with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config_load note_render token_file codequality_read sarif_read diff_match step_summary)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1

seeds=fuzz/target/seeds
rm -rf "$seeds"
mkdir -p "$seeds/config_load" "$seeds/note_render" "$seeds/token_file" "$seeds/codequality_read" "$seeds/sarif_read" "$seeds/diff_match" "$seeds/step_summary"
printf 'glpat-%s\n' 0123456789abcdefghij >"$seeds/token_file/plain"
printf '  glpat-a b\r\n\tglpat-c\n' >"$seeds/token_file/words"
printf '\xff\xfe glpat-\x00\n' >"$seeds/token_file/binary"
for file in tests/fixtures/findings/*/*.json tests/fixtures/findings/*/*.sarif; do
  case "$(head -c 1 "$file")" in
    '[') cp "$file" "$seeds/codequality_read/$(basename "$file")" ;;
    *) cp "$file" "$seeds/sarif_read/$(basename "$file")" ;;
  esac
done
for file in tests/fixtures/findings/*/*.diff; do
  # Lines 1..=40 asked for: 16 bytes of range, then the diff.
  { printf '\001\000\000\000\000\000\000\000\050\000\000\000\000\000\000\000'; cat "$file"; } >"$seeds/diff_match/$(basename "$file")"
done
n=0
while IFS= read -r file; do
  n=$((n + 1))
  cp "$file" "$seeds/config_load/$n.yml"
done < <(find tests/fixtures templates -name '*.yml' | sort)
i=0
while IFS= read -r line; do
  i=$((i + 1))
  printf '%s\n%s\n%s\n' "$line" "https://gitlab.example.com/g/p/-/jobs/$i" "$line" >"$seeds/note_render/$i"
done <<'EOF'
/merge
  /approve
@all please look
<script>alert(1)</script>
[click](javascript:alert(1))
| a | b |
**bold** `code` ~~strike~~ #123 !456 %milestone ~label $snippet
<!-- herald:pipeline:999 -->
<details><summary>x</summary>
EOF

printf '# Plan: 1 to add\n/merge\n@all <!-- herald:note -->\n```\n</pre><b>x\n' >"$seeds/step_summary/hostile"
printf '| a | b |\n|---|---|\n| s3cr3t-fuzz-value | \xff |\n' >"$seeds/step_summary/table"
cargo fuzz build --release --debug-assertions  # every target: one build
for target in "${targets[@]}"; do
  echo "--- fuzz $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  log="fuzz/target/$target.log"
  # -timeout: an input that takes 5 s is a hang, and reported as a failure.
  inputs=("fuzz/corpus/$target" "$seeds/$target")
  [ -d "fuzz/regressions/$target" ] && inputs+=("fuzz/regressions/$target")
  if ! cargo fuzz run --release --debug-assertions "$target" "${inputs[@]}" -- \
    -max_total_time="$seconds" -timeout=5 -print_final_stats=1 >"$log" 2>&1; then
    grep -E -A12 'ERROR|panicked' "$log" | head -n 40 >&2
    echo "scripts/fuzz.sh: $target failed (log: $log; inputs in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' "$log"
done
