#!/usr/bin/env bash
# Memory and tail latency under a burst of maximum-size exports (docs/reliability.md, "Memory
# and overload"): N concurrent `WID=5000&CVT=png` exports of a 5003×3701 image sent at once to
# one server on --http, while one client asks for small tiles of another image one after the
# other. Reports the peak resident size (VmRSS sampled every 100 ms from /proc), the exports'
# answers by status, the tiles answered and their p50/p99, and the burst's duration.
#
# Usage: bash examples/bench/burst.sh N [VAR=value ...]
#   N            concurrent exports (e.g. 40, 200)
#   VAR=value    environment of the server (IIPSRV_MEMORY_BUDGET=0 …)
# Environment:
#   IIPSRV_BIN=/path   the binary to measure (default: target/release/iipsrv, built if missing)
#   BENCH_DIR=/path    the images (default /tmp/iipsrv-bench; made once as the other scripts do)
#   EXPORT_IMAGE=name  the exported image in BENCH_DIR (default tex5003.jp2)
#   PORT=19590
# Needs (Debian): curl, vips, opj_compress (to make the images once), python3.
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
n=${1:?usage: burst.sh N [VAR=value ...]}
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${BENCH_DIR:-/tmp/iipsrv-bench}
mkdir -p "$dir"
ensure_pyramid
ensure_small_sources
bin=${IIPSRV_BIN:-$root/target/release/iipsrv}
[ -x "$bin" ] || (cd "$root" && cargo build --release --quiet --bin iipsrv)
port=${PORT:-19590}
image=${EXPORT_IMAGE:-tex5003.jp2}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
env -i PATH="$PATH" FILESYSTEM_PREFIX="$dir/" VERBOSITY=1 LOGFILE="$work/iipsrv.log" \
  MEMCACHED_SERVERS= "$@" "$bin" --http "127.0.0.1:$port" &
pid=$!
for _ in $(seq 100); do port_open "$port" && break; sleep 0.1; done

# The tiles: the pyramid's full resolution.
tile_res=$(($(curl -s "http://127.0.0.1:$port/?FIF=big.tif&OBJ=Resolution-number" | tr -dc 0-9) - 1))
tile_count=$(( (PYR_W / 256) * (PYR_H / 256) ))

# Peak VmRSS, sampled until the burst ends.
(
  peak=0
  while [ ! -f "$work/done" ]; do
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    echo "$peak" > "$work/peak"
    sleep 0.1
  done
) &
base_rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")

start=$(date +%s.%N)
seq "$n" | xargs -P "$n" -I{} curl -s -o /dev/null --max-time 900 \
  -w '%{http_code}\n' "http://127.0.0.1:$port/?FIF=$image&WID=5000&CVT=png" > "$work/codes" &
burst=$!
# Tiles of the big pyramid (JPEG pass-through), one after the other, while the burst runs.
: > "$work/tiles"
t=0
while kill -0 "$burst" 2>/dev/null; do
  curl -s -o /dev/null --max-time 60 -w '%{http_code} %{time_total}\n' \
    "http://127.0.0.1:$port/?FIF=big.tif&JTL=$tile_res,$((t % tile_count))" >> "$work/tiles" || echo "000 60" >> "$work/tiles"
  t=$((t + 37))
done
wait "$burst" || true
end=$(date +%s.%N)
touch "$work/done"
sleep 0.3

echo "exports: $n concurrent WID=5000&CVT=png of $image; server env: ${*:-(defaults)}"
echo "  answers: $(sort "$work/codes" | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')"
awk -v s="$start" -v e="$end" 'BEGIN { printf "  burst duration: %.1f s\n", e - s }'
echo "  resident size: $((base_rss / 1024)) MiB before, peak $(( $(cat "$work/peak") / 1024 )) MiB"
sent=$(wc -l < "$work/tiles")
ok=$(awk '$1 == 200' "$work/tiles" | wc -l)
awk '{ printf "%.3f\n", $2 * 1000 }' "$work/tiles" | sort -n > "$work/sorted"
pct() { awk -v q="$1" -v n="$sent" 'BEGIN { i = int(n * q + 0.999); if (i < 1) i = 1 } NR == i { print; exit }' "$work/sorted"; }
echo "  tiles during the burst: $sent sent, $ok answered 200, p50 $(pct 0.50) ms, p99 $(pct 0.99) ms, max $(tail -1 "$work/sorted") ms"
grep -c "not admitted" "$work/iipsrv.log" | awk '{ print "  refusals logged: " $1 }' || true
