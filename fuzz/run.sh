#!/usr/bin/env bash
# A fuzz campaign: every target (`cargo fuzz list`) for SECONDS each, one after the other (one
# fuzzer process at a time, one core), each on a temporary copy of its checked-in corpus, with
# AddressSanitizer when the toolchain can build it (RUSTC_BOOTSTRAP=1 on stable), else without.
# Prints one row per target: executions, coverage (libFuzzer's cov: edges and ft: features),
# corpus size, crashes (crash-/leak-/timeout-/oom- artifacts). Exits non-zero if any crashed.
#
#   bash fuzz/run.sh 60              # every target, 60 s each
#   bash fuzz/run.sh 300 session     # only the named targets
#
# Artifacts of a crashing target are kept in fuzz/artifacts/<target>/ (gitignored); minimise one
# with `cargo fuzz tmin <target> <artifact>` and commit it to fuzz/corpus/<target>/ with a test.
set -euo pipefail

SECONDS_EACH=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked --quiet
fi

# ASan needs -Zsanitizer: a nightly toolchain, or stable with RUSTC_BOOTSTRAP=1.
export RUSTC_BOOTSTRAP=1
SAN=address
if ! cargo fuzz build -s address --release >build.log 2>&1; then
  echo "AddressSanitizer build failed (see fuzz/build.log): fuzzing WITHOUT sanitizer (-s none)" >&2
  SAN=none
  cargo fuzz build -s none --release
fi
rm -f build.log

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
rows=()
for t in "${targets[@]}"; do
  work="$tmp/corpus-$t"
  arts="$tmp/artifacts-$t/"
  log="$tmp/$t.log"
  mkdir -p "$work" "$arts"
  if [ -d "corpus/$t" ]; then cp -r "corpus/$t/." "$work/"; fi
  echo "fuzzing $t for ${SECONDS_EACH}s (sanitizer: $SAN)" >&2
  status=ok
  if ! cargo fuzz run -s "$SAN" --release "$t" "$work" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 -timeout=30 \
    -artifact_prefix="$arts" >"$log" 2>&1; then
    status=FAILED
  fi
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  last=$(grep -E ' (cov|ft): ' "$log" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
  corpus=$(find "$work" -type f | wc -l)
  crashes=$(find "$arts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
    -o -name 'oom-*' \) | wc -l)
  if [ "$crashes" -gt 0 ] || [ "$status" != ok ]; then
    failed=1
    mkdir -p "artifacts/$t"
    cp -r "$arts." "artifacts/$t/" 2>/dev/null || true
    cp "$log" "artifacts/$t/run.log"
    echo "$t FAILED: log and artifacts in fuzz/artifacts/$t/" >&2
    grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5 >&2 || true
  fi
  rows+=("$(printf '| %-16s | %7s | %12s | %6s | %7s | %6s | %7s |' "$t" "$SECONDS_EACH" \
    "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$crashes")")
done

echo
echo "sanitizer: $SAN; $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf '| %-16s | %7s | %12s | %6s | %7s | %6s | %7s |\n' target seconds executions cov ft corpus crashes
echo "|------------------|---------|--------------|--------|---------|--------|---------|"
printf '%s\n' "${rows[@]}"
exit "$failed"
