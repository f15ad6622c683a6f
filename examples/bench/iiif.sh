#!/usr/bin/env bash
# IIIF throughput through nginx: info.json and the 21 tile URLs OpenSeadragon asks for on the
# sample image (1000×1000, 256² JPEG tiles, 3 levels), this server against Debian's iipsrv
# (iipimage-server 1.1), in one run on the same machine and the same nginx. Both serve IIIF 2
# (1.1 knows no other) by query string; tiles use the `w,` size form that 1.1 also takes as a
# tile. Prints a markdown table of requests/s and p99 latency (wrk --latency).
# Usage: bash examples/bench/iiif.sh [seconds-per-run] [connections]
# Needs: nginx-light, wrk, spawn-fcgi, iipimage-server (apt-get install ...).
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
secs=${1:-10}
conns=${2:-16}
work=$(mktemp -d)
pids=()
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked -q
cp fixtures/sample.tif "$work/sample.tif"
ours_port=19200; ref_port=19201; http_port=19280
export VERBOSITY=0 LOGFILE=/dev/null FILESYSTEM_PREFIX="$work/" IIIF_VERSION=2

./target/release/iipsrv --bind 127.0.0.1:$ours_port &
pids+=($!)
# iipsrv: one process per connection; two processes, as on a 2-core machine.
out=$(spawn-fcgi -a 127.0.0.1 -p $ref_port -F 2 -- /usr/lib/iipimage-server/iipsrv.fcgi)
for p in $(grep -o 'PID: [0-9]*' <<<"$out" | awk '{print $2}'); do pids+=("$p"); done

write_nginx_conf "$work" "$http_port" "upstream ours { server 127.0.0.1:$ours_port; keepalive 32; }" "location /ours-ka { fastcgi_pass ours; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location /ours-nk { fastcgi_pass 127.0.0.1:$ours_port; include /etc/nginx/fastcgi_params; }
    location /ref-nk  { fastcgi_pass 127.0.0.1:$ref_port;  include /etc/nginx/fastcgi_params; }"
nginx -p "$work" -c "$work/nginx.conf"
sleep 1

# The OpenSeadragon IIIF 2 tile URLs of the sample image (levels 250², 500², 1000²).
tiles=("full/250,/0/default.jpg")
for y in 0 1; do for x in 0 1; do
  w=$(( x == 1 ? 488 : 512 )); h=$(( y == 1 ? 488 : 512 ))
  tiles+=("$((x*512)),$((y*512)),$w,$h/$(( (w+1)/2 )),/0/default.jpg")
done; done
for y in 0 1 2 3; do for x in 0 1 2 3; do
  w=$(( x == 3 ? 232 : 256 )); h=$(( y == 3 ? 232 : 256 ))
  tiles+=("$((x*256)),$((y*256)),$w,$h/$w,/0/default.jpg")
done; done
{
  echo 'local paths = {'
  for t in "${tiles[@]}"; do echo "  \"$t\","; done
  echo '}'
  echo 'local i = 0'
  echo 'local prefix = os.getenv("BENCH_PREFIX")'
  echo 'request = function()'
  echo '  i = i + 1'
  echo '  return wrk.format("GET", prefix .. paths[(i % #paths) + 1])'
  echo 'end'
} > "$work/tiles.lua"

# Every URL must work on both servers before measuring.
for loc in ours-nk ref-nk; do
  for t in "${tiles[@]}" info.json; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port/$loc?IIIF=sample.tif/$t")
    [ "$code" = 200 ] || { echo "$loc $t: HTTP $code" >&2; exit 1; }
  done
done

run() {
  local out rps p99 errors
  if [ "$2" = tiles ]; then
    out=$(BENCH_PREFIX="/$1?IIIF=sample.tif/" wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency \
      -s "$work/tiles.lua" "http://127.0.0.1:$http_port" 2>&1)
  else
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency \
      "http://127.0.0.1:$http_port/$1?IIIF=sample.tif/info.json" 2>&1)
  fi
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
  printf '| %s | %s | %s | %s | %s |\n' "$2" "$3" "$rps" "$p99" "${errors:-none}"
}

echo "wrk -t2 -c$conns -d${secs}s, IIIF 2 by query string, nginx in front, $(nproc) cores"
echo
echo '| requests | server, upstream keep-alive | requests/s | p99 latency | errors |'
echo '|---|---|---|---|---|'
run ours-nk tiles "this server, keep-alive off"
run ref-nk tiles "iipsrv 1.1 (2 processes), keep-alive off"
run ours-ka tiles "this server, keep-alive on"
run ours-nk info.json "this server, keep-alive off"
run ref-nk info.json "iipsrv 1.1 (2 processes), keep-alive off"
run ours-ka info.json "this server, keep-alive on"
