#!/usr/bin/env bash
# Memory and tail latency under a burst of maximum-size exports (docs/reliability.md, "Memory
# and overload"). For each burst size N and each configuration, a fresh server on --http is
# measured:
#   1. tiles alone: one client asks for full-resolution tiles of the large pyramid (JPEG
#      pass-through) one after the other on a keep-alive connection for TILE_SECONDS: their
#      normal p50/p99;
#   2. one export alone (`WID=5000&CVT=png` of the 5003×3701 JPEG2000): its time;
#   3. the burst: N such exports sent at once (one connection each), while the same tile
#      client goes on until the last export is answered.
# One table row per run: the exports' answers by status, their latency (p50, max) beside the
# one export alone, the peak resident size of the process (VmHWM) and its size before, the
# burst's duration, and the tiles' p50/p99/max during the burst beside their p99 alone.
# Admission is FIFO, so no export should wait much longer than the work admitted before it:
# its latency stays near ceil(N / heavy threads) × the one export's time (less when several
# run at once in the budget, more when they share the cores).
#
# Usage: bash examples/bench/burst.sh [N ...]            (default: 50 200)
#   N                  concurrent exports per burst
# Environment:
#   CONFIGS="default unbounded"  which configurations, in order (default: these two):
#                      default    the server's defaults (memory budget, one heavy thread per
#                                 core);
#                      nobudget   IIPSRV_MEMORY_BUDGET=0: no memory bound, the heavy threads
#                                 still bound the exports running at once;
#                      unbounded  IIPSRV_MEMORY_BUDGET=0 and IIPSRV_HEAVY_THREADS=N: every
#                                 export runs at once, as before the budget existed
#   SERVER_ENV="VAR=value ..."   extra environment for every server
#   TILE_SECONDS=10    how long the tiles are measured alone
#   IIPSRV_BIN=/path   the binary to measure (default: target/release/iipsrv, built if missing)
#   BENCH_DIR=/path    the images (default /tmp/iipsrv-bench; made once as the other scripts do)
#   EXPORT_IMAGE=name  the exported image in BENCH_DIR (default tex5003.jp2)
#   EXPORT_QUERY=...   the export (default WID=5000&CVT=png)
#   PORT=19590
# Needs (Debian): curl, python3, vips and opj_compress (to make the images once).
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(50 200)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=${BENCH_DIR:-/tmp/iipsrv-bench}
mkdir -p "$dir"
for tool in curl python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
ensure_pyramid
ensure_small_sources
bin=${IIPSRV_BIN:-$root/target/release/iipsrv}
[ -x "$bin" ] || (cd "$root" && cargo build --release --locked --quiet --bin iipsrv)
port=${PORT:-19590}
image=${EXPORT_IMAGE:-tex5003.jp2}
query=${EXPORT_QUERY:-WID=5000&CVT=png}
tile_secs=${TILE_SECONDS:-10}
read -r -a configs <<<"${CONFIGS:-default unbounded}"
read -r -a extra <<<"${SERVER_ENV:-}"
work=$(mktemp -d /tmp/iipsrv-burst.XXXXXX)
pid=
stop_server() {
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
}
trap 'stop_server; rm -rf "$work"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if port_open "$port"; then
  echo "port $port is in use (set PORT)" >&2
  exit 2
fi

# The tile client: sequential requests on one keep-alive connection, for SECONDS or until
# the file STOP exists; prints "sent ok p50_ms p99_ms max_ms".
cat > "$work/tiles.py" <<'PY'
import http.client, os, sys, time
port, res, count, seconds, stop = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
end = time.monotonic() + seconds
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
times, ok, t = [], 0, 0
def going():
    return not os.path.exists(stop) if seconds <= 0 else time.monotonic() < end
while going():
    start = time.monotonic()
    try:
        conn.request("GET", f"/?FIF=big.tif&JTL={res},{t % count}")
        r = conn.getresponse()
        r.read()
        ok += r.status == 200
    except Exception:
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    times.append((time.monotonic() - start) * 1000)
    t += 37
times.sort()
pct = lambda q: times[min(len(times) - 1, max(0, int(len(times) * q + 0.999) - 1))] if times else 0
print(len(times), ok, f"{pct(0.5):.1f}", f"{pct(0.99):.1f}", f"{times[-1] if times else 0:.0f}")
PY

# mib FIELD: a /proc/PID/status size (VmRSS, VmHWM) of the server, in MiB.
mib() { awk -v f="$1:" '$1 == f { print int($2 / 1024) }' "/proc/$pid/status"; }

# run_burst N CONFIG: one table row.
run_burst() {
  local n=$1 config=$2 env=()
  case $config in
    default) ;;
    nobudget) env+=(IIPSRV_MEMORY_BUDGET=0) ;;
    unbounded) env+=(IIPSRV_MEMORY_BUDGET=0 "IIPSRV_HEAVY_THREADS=$n") ;;
    *) echo "unknown configuration $config" >&2; exit 2 ;;
  esac
  rm -f "$work/iipsrv.log"
  # In a session of its own, as a service manager starts it (lib.sh, start_servers).
  env -i PATH="$PATH" FILESYSTEM_PREFIX="$dir/" VERBOSITY=1 LOGFILE="$work/iipsrv.log" \
    MEMCACHED_SERVERS= MAX_IMAGE_CACHE_SIZE=0 "${env[@]}" "${extra[@]}" \
    setsid "$bin" --http "127.0.0.1:$port" --backlog 4096 </dev/null >/dev/null 2>&1 &
  pid=$!
  wait_port "$port"
  local budget
  budget=$(grep -o 'memory budget of [0-9]* MiB, [0-9]* threads\|no memory budget, [0-9]* threads' \
    "$work/iipsrv.log" | head -1 | sed 's/memory budget of //')
  local levels res count
  levels=$(curl -s "http://127.0.0.1:$port/?FIF=big.tif&OBJ=Resolution-number" | tr -dc 0-9)
  res=$((levels - 1))
  count=$(( (PYR_W / 256) * (PYR_H / 256) ))
  curl -s -o /dev/null "http://127.0.0.1:$port/?FIF=$image&OBJ=IIP,1.0"
  local alone one
  alone=$(python3 "$work/tiles.py" "$port" "$res" "$count" "$tile_secs" /nonexistent)
  one=$(curl -s -o /dev/null --max-time 900 -w '%{time_total}' "http://127.0.0.1:$port/?FIF=$image&$query")
  local before start end
  before=$(mib VmRSS)
  rm -f "$work/stop"
  python3 "$work/tiles.py" "$port" "$res" "$count" 0 "$work/stop" > "$work/during" &
  local tiles=$!
  start=$(date +%s.%N)
  seq "$n" | xargs -P "$n" -I{} curl -s -o /dev/null --max-time 900 \
    -w '%{http_code} %{time_total}\n' "http://127.0.0.1:$port/?FIF=$image&$query" > "$work/codes" || true
  end=$(date +%s.%N)
  touch "$work/stop"
  wait "$tiles" || true
  local peak
  peak=$(mib VmHWM)
  stop_server
  local answers lat d_sent d_ok d_p50 d_p99 d_max a_p99
  answers=$(awk '{ print $1 }' "$work/codes" | sort | uniq -c | awk '{ printf "%s×%s ", $1, $2 }')
  lat=$(awk '$1 == 200 { print $2 }' "$work/codes" | sort -n |
    awk '{ v[NR] = $1 } END { if (NR) printf "%.1f / %.1f", v[int((NR + 1) / 2)], v[NR]; else print "—" }')
  read -r d_sent d_ok d_p50 d_p99 d_max < "$work/during"
  read -r _ _ _ a_p99 _ <<<"$alone"
  printf '| %s | %s (%s) | %s| %s | %.1f | %s / %s MiB | %.1f | %s sent, %s ok: %s / %s / %s | %s |\n' \
    "$n" "$config" "${budget:-?}" "$answers" "$lat" "$one" "$peak" "$before" \
    "$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')" \
    "$d_sent" "$d_ok" "$d_p50" "$d_p99" "$d_max" "$a_p99"
}

echo "Burst of \`$query\` exports of $image (${J2K_W}×${J2K_H}) on --http, $(nproc) cores," \
  "$(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);" \
  "tiles: full-resolution JTL of big.tif, one client, keep-alive; server env: ${SERVER_ENV:-(defaults)}"
echo
echo "| exports at once | configuration | answers | export s p50 / max | one export alone s | peak / before MiB | burst s | tiles during: p50 / p99 / max ms | tiles alone p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|"
for n in "${sizes[@]}"; do
  for config in "${configs[@]}"; do
    run_burst "$n" "$config"
  done
done
