#!/usr/bin/env bash
# Every benchmark of this folder in one run, one markdown table: banner, tiles and formats,
# IIIF regions and thumbnails, viewer traffic, CVT exports, JPEG2000 and plain JPEG sources,
# and the mixed load. Each scenario measures this server and iipsrv 1.3 one after the other
# in the same run (lib.sh describes the configurations and the environment variables).
# Usage: bash examples/bench/all.sh [seconds-per-run] [connections]
# Needs: see lib.sh. Takes about 2 × (number of scenarios ≈ 25) × seconds, plus the images
# the first time (a few minutes).
set -euo pipefail
here=$(dirname "$0")
secs=${1:-10}
conns=${2:-16}
meta=$(mktemp)
trap 'rm -f "$meta"' EXIT
out=()
for script in banner tiles iiif cvt formats mixed; do
  echo "running $script.sh ..." >&2
  out+=("$(BENCH_ROWS_ONLY=1 BENCH_META="$meta" bash "$here/$script.sh" "$secs" "$conns")")
done
# shellcheck source=examples/bench/lib.sh
source "$here/lib.sh"
with13=1
root=$(cd "$here/../.." && pwd)  # used by default_ref13
ref13=$(readlink -f "${IIPSRV13:-$(default_ref13)}" || echo "${IIPSRV13:-$(default_ref13)}")
[ -x "$ref13" ] || with13=0
with11=0
[ "${WITH_IIPSRV11:-0}" != 1 ] || with11=1
threads=${BENCH_THREADS:-2}
echo "All benchmarks: wrk -t$threads -c$conns -d${secs}s --latency (the mixed rows: -t$conns -c$conns)," \
  "nginx $(nginx -v 2>&1 | sed 's/.*nginx\///') ($bench_ncpu workers) in front, $bench_ncpu cores, tile cache off."
echo "- this server: 1 process (own session, like each spawn-fcgi child), IIPSRV_WORKERS=$bench_ncpu, upstream keep-alive (keepalive 32; fastcgi_keep_conn on)."
[ "$with13" = 0 ] || echo "- iipsrv 1.3 ($ref13): spawn-fcgi -F $bench_ncpu, OMP_NUM_THREADS=1, no upstream keep-alive;" \
  "processes counted by pgrep: $(sed 's/; iipsrv 1.1.*//; s/iipsrv 1.3 processes: //' "$meta" | tr '\n' ' ')"
[ "$with11" = 0 ] || echo "- iipsrv 1.1 (Debian): spawn-fcgi -F $bench_ncpu, OMP_NUM_THREADS=1, no upstream keep-alive."
echo "- latencies: wrk's own figures (wrk adds samples for responses slower than twice the mean"
echo "  interval of a connection: its coordinated-omission correction), except the mixed rows: raw"
echo "  per-request latencies by kind, timed by the wrk script (lib.sh, tagged.lua)."
echo
table_header
printf '%s\n' "${out[@]}"
