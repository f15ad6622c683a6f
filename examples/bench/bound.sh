#!/usr/bin/env bash
# What bounds the codec-bound requests: instructions per request of this server and of
# iipsrv 1.3 for the same requests, each split into the codec libraries' (libjpeg-turbo,
# libwebp, OpenJPEG, libpng, zlib) and everything else, counted by valgrind's callgrind
# (docs/performance.md, "What bounds the codec-bound requests"). Valid on a busy machine.
#
# Both servers call the same Debian libraries for the same work (the same tiles of the same
# level decoded, the same encoder and quality), so a server that did nothing but the codec
# work would run at most iipsrv 1.3's total / the codec's instructions times iipsrv 1.3's
# speed on one core: the "ceiling" column (instructions are not time, but for the same library
# code on both sides they compare like for like).
#
# For each scenario (examples/perf_requests.rs): a run with the set-up request alone, a run
# with K more; the difference over K is one request. This server in-process
# (`perf_requests`, one worker, tile cache off); iipsrv 1.3 as a FastCGI process under
# callgrind (spawn-fcgi -n, OMP_NUM_THREADS=1, MAX_IMAGE_CACHE_SIZE=0), sent the same query
# strings one by one with cgi-fcgi, ended with SIGTERM (it exits, and callgrind writes its
# counts).
#
# Usage: bash examples/bench/bound.sh [K] SCENARIO...
# Environment: IIPSRV13 (default $BENCH_DIR/iipsrv-1.3.fcgi), BENCH_DIR (default
# /tmp/iipsrv-bench, the images the other scripts make), OUT (default /tmp/iipsrv-bound: the
# callgrind files), BIN (a perf_requests binary instead of building this tree's), and server
# variables for both servers (CODEC_PASSTHROUGH=0 for transcoded tiles).
# Needs: valgrind, spawn-fcgi, cgi-fcgi (libfcgi-bin), python3.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
k=10
if [[ ${1:-} =~ ^[0-9]+$ ]]; then k=$1; shift; fi
dir=${BENCH_DIR:-/tmp/iipsrv-bench}
ref13=${IIPSRV13:-$dir/iipsrv-1.3.fcgi}
out=${OUT:-/tmp/iipsrv-bound}
mkdir -p "$out"
for tool in valgrind spawn-fcgi cgi-fcgi python3; do
  command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 2; }
done
[ -x "$ref13" ] || { echo "iipsrv 1.3 not found at $ref13 (set IIPSRV13)" >&2; exit 2; }
bin=${BIN:-$root/target/release/examples/perf_requests}
if [[ -z ${BIN:-} ]]; then
  (cd "$root" && cargo build --release --locked -q --example perf_requests)
fi
split="python3 $root/examples/bench/callgrind_objects.py --codec"
pid=""
cleanup() { [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true; }
trap cleanup EXIT

# ours SCENARIO N: "codec total" instructions of this server running N requests.
ours() {
  local file=$out/ours.$1.$2.callgrind
  IIPSRV_WORKERS=1 valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$1" "$2" \
    >/dev/null 2>"$out/ours.$1.$2.log"
  $split "$file"
}

# ref SCENARIO N: the same for iipsrv 1.3 answering the same N query strings.
ref() {
  local file=$out/ref13.$1.$2.callgrind sock=$out/ref13.sock q answer
  rm -f "$sock"
  env FILESYSTEM_PREFIX="$dir/" MAX_IMAGE_CACHE_SIZE=0 VERBOSITY=0 LOGFILE=/dev/null \
    OMP_NUM_THREADS=1 spawn-fcgi -n -s "$sock" -- "$(command -v valgrind)" --tool=callgrind \
    --callgrind-out-file="$file" "$ref13" >/dev/null 2>"$out/ref13.$1.$2.log" &
  pid=$!
  for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.1; done
  while read -r q; do
    answer=$(QUERY_STRING="$q" REQUEST_METHOD=GET cgi-fcgi -bind -connect "$sock" | head -c 400 | tr -d '\0' || true)
    if ! grep -qi '^Content-Type: image' <<<"$answer"; then
      echo "iipsrv 1.3 did not answer an image for $q" >&2
      exit 1
    fi
  done < <("$bin" "$1" "$2" print)
  kill -TERM "$pid"
  wait "$pid" || true
  pid=""
  $split "$file"
}

printf '| scenario | this server: codec / other (M instructions per request) | iipsrv 1.3: codec / other | ratio of totals (1.3 / this) | ceiling (1.3 total / this codec) |\n|---|---|---|---|---|\n'
for s in "$@"; do
  read -r oc1 ot1 < <(ours "$s" 1)
  read -r oc2 ot2 < <(ours "$s" $((k + 1)))
  read -r rc1 rt1 < <(ref "$s" 1)
  read -r rc2 rt2 < <(ref "$s" $((k + 1)))
  awk -v s="$s" -v k="$k" -v oc1="$oc1" -v ot1="$ot1" -v oc2="$oc2" -v ot2="$ot2" \
    -v rc1="$rc1" -v rt1="$rt1" -v rc2="$rc2" -v rt2="$rt2" 'BEGIN {
      oc = (oc2 - oc1) / k / 1e6; ot = (ot2 - ot1) / k / 1e6
      rc = (rc2 - rc1) / k / 1e6; rt = (rt2 - rt1) / k / 1e6
      printf "| %s | %.1f / %.1f | %.1f / %.1f | %.2f | %.2f |\n", s, oc, ot - oc, rc, rt - rc, rt / ot, rt / oc
    }'
done
