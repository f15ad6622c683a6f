#!/usr/bin/env bash
# Instructions per request, counted by valgrind (callgrind), for the scenarios of
# examples/perf_requests.rs: valid on a busy machine, where wall-clock figures are not
# (docs/performance.md, "Instruction counts per request").
#
# For each scenario: one run with the set-up request alone, one with K more requests; the
# difference divided by K is one request's cost, every thread counted. The callgrind output of
# the second run is kept in OUT (default /tmp/iipsrv-instructions) for callgrind_annotate.
#
# Usage: bash examples/bench/instructions.sh [K] SCENARIO...   (scenarios: `perf_requests list`)
# Environment: BENCH_DIR (the benchmark images, made by the scripts of this folder), OUT, and
# any server variable (CODEC_PASSTHROUGH=0 for transcoded tiles, as tiles.sh runs them).
# BIN=/path/to/perf_requests counts another build (e.g. of an older commit, for before/after
# figures) instead of building this tree's.
# IIPSRV_WORKERS is 1 unless given: a lone request then gets no decoder threads
# (render::decoder_threads), so that the count is the work a request costs on a busy server.
# Needs: valgrind.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
k=10
if [[ ${1:-} =~ ^[0-9]+$ ]]; then k=$1; shift; fi
out=${OUT:-/tmp/iipsrv-instructions}
mkdir -p "$out"
bin=${BIN:-$root/target/release/examples/perf_requests}
if [[ -z ${BIN:-} ]]; then
  (cd "$root" && cargo build --release --locked -q --example perf_requests)
fi
export IIPSRV_WORKERS=${IIPSRV_WORKERS:-1}

# count SCENARIO N: total instructions of a run of N requests.
count() {
  local file=$out/$1.$2.callgrind
  valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$1" "$2" >/dev/null 2>"$out/$1.$2.log"
  awk '/^summary:/ { print $2 }' "$file"
}

printf '| scenario | instructions per request (M) |\n|---|---|\n'
for s in "$@"; do
  base=$(count "$s" 1)
  total=$(count "$s" $((k + 1)))
  awk -v s="$s" -v a="$base" -v b="$total" -v k="$k" \
    'BEGIN { printf "| %s | %.2f |\n", s, (b - a) / k / 1e6 }'
done
