#!/usr/bin/env bash
# Region exports (CVT) through nginx: this server against Debian's iipsrv 1.1 (iipimage-server),
# in one run on the same machine and the same nginx. Two workloads on a 3000×2000 JPEG pyramid
# (levels 3000×2000, 1500×1000, 750×500) made from fixtures/sample.tif:
#   - the whole image at 1000 px wide (read from the 1500×1000 level, resized, JPEG);
#   - 16 regions of a quarter of the width and height (750×500 at full resolution), scaled to
#     512 px wide, taken in turn (wrk Lua script).
# Prints a markdown table of requests/s and latency (wrk --latency).
# Usage: bash examples/bench/cvt.sh [seconds-per-run] [connections]
# Needs: nginx-light, wrk, spawn-fcgi, iipimage-server, libvips-tools (apt-get install ...).
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
secs=${1:-10}
conns=${2:-4}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f "$work/nginx.pid" ]; then nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true; fi
  sleep 0.2
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --locked -q
ours_port=19200; ref_port=19201; http_port=19280

# The test image: sample.tif stretched to 3000×2000, saved as a tiled JPEG pyramid.
vips resize fixtures/sample.tif "$work/big.v" 3 --vscale 2
vips tiffsave "$work/big.v" "$work/bench.tif" --tile --tile-width 256 --tile-height 256 \
  --pyramid --compression jpeg --Q 85
rm -f "$work/big.v"

FILESYSTEM_PREFIX="$work/" VERBOSITY=0 ./target/release/iipsrv --bind 127.0.0.1:$ours_port &
pids+=($!)
# iipsrv: one process per connection; two processes, as on a 2-core machine.
spawned=$(FILESYSTEM_PREFIX="$work/" VERBOSITY=0 spawn-fcgi -a 127.0.0.1 -p $ref_port -F 2 -- \
  /usr/lib/iipimage-server/iipsrv.fcgi 2>&1)
for p in $(grep -o 'PID: [0-9]*' <<<"$spawned" | awk '{print $2}'); do pids+=("$p"); done

write_nginx_conf "$work" "$http_port" "upstream ours { server 127.0.0.1:$ours_port; keepalive 32; }" "location /ours-ka { fastcgi_pass ours; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location /ours-nk { fastcgi_pass 127.0.0.1:$ours_port; include /etc/nginx/fastcgi_params; }
    location /ref-nk  { fastcgi_pass 127.0.0.1:$ref_port;  include /etc/nginx/fastcgi_params; }"
nginx -p "$work" -c "$work/nginx.conf"
sleep 1

# The region list, as a wrk script per location.
regions() {
  local loc=$1
  echo "local paths = {"
  for y in 0.05 0.25 0.45 0.7; do
    for x in 0.05 0.3 0.5 0.72; do
      echo "  \"/$loc?FIF=bench.tif&RGN=$x,$y,0.25,0.25&WID=512&CVT=jpeg\","
    done
  done
  echo "}"
  echo 'local i = 0'
  echo 'request = function() i = i % #paths + 1; return wrk.format("GET", paths[i]) end'
}
for loc in ours-ka ours-nk ref-nk; do regions $loc > "$work/$loc.lua"; done

# IIIF (v2 URLs, which iipsrv 1.1 understands): 12 regions of 1000 to 3000 pixels across, scaled
# to 512 wide.
iiif_regions() {
  local loc=$1
  echo "local paths = {"
  for r in 0,0,1000,1000 1000,500,1000,1000 2000,1000,1000,1000 500,0,1500,1500 1500,500,1500,1500 \
           0,0,2000,2000 1000,0,2000,2000 0,0,2000,1500 500,250,2500,1750 0,0,3000,2000 \
           250,250,2500,1500 0,500,3000,1500; do
    echo "  \"/$loc?IIIF=bench.tif/$r/512,/0/default.jpg\","
  done
  echo "}"
  echo 'local i = 0'
  echo 'request = function() i = i % #paths + 1; return wrk.format("GET", paths[i]) end'
}
for loc in ours-ka ours-nk ref-nk; do iiif_regions $loc > "$work/iiif-$loc.lua"; done

# Check both servers answer with an image, and warm their tile caches.
for loc in ours-nk ref-nk; do
  curl -sf -o "$work/check.jpg" "http://127.0.0.1:$http_port/$loc?FIF=bench.tif&WID=1000&CVT=jpeg"
  file "$work/check.jpg" | grep -q '1000x667' || { echo "$loc: unexpected output: $(file "$work/check.jpg")"; exit 1; }
done

run() {
  local what=$1 who=$2; shift 2
  local out rps p50 p99 errors
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency "$@" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$what" "$who" "$rps" "$p50" "$p99" "${errors:-none}"
}

whole="FIF=bench.tif&WID=1000&CVT=jpeg"
echo "wrk -t2 -c$conns -d${secs}s, nginx in front, $(nproc) cores, 3000×2000 JPEG pyramid"
echo
echo '| workload | server, upstream keep-alive | requests/s | p50 | p99 | errors |'
echo '|---|---|---|---|---|---|'
run "whole image → 1000×667" "this server, keep-alive off" "http://127.0.0.1:$http_port/ours-nk?$whole"
run "whole image → 1000×667" "this server, keep-alive on" "http://127.0.0.1:$http_port/ours-ka?$whole"
run "whole image → 1000×667" "iipsrv 1.1 (2 processes)" "http://127.0.0.1:$http_port/ref-nk?$whole"
run "16 regions → 512×341" "this server, keep-alive off" -s "$work/ours-nk.lua" "http://127.0.0.1:$http_port"
run "16 regions → 512×341" "this server, keep-alive on" -s "$work/ours-ka.lua" "http://127.0.0.1:$http_port"
run "16 regions → 512×341" "iipsrv 1.1 (2 processes)" -s "$work/ref-nk.lua" "http://127.0.0.1:$http_port"
run "12 IIIF regions 1000–3000 px → 512 wide" "this server, keep-alive off" -s "$work/iiif-ours-nk.lua" "http://127.0.0.1:$http_port"
run "12 IIIF regions 1000–3000 px → 512 wide" "this server, keep-alive on" -s "$work/iiif-ours-ka.lua" "http://127.0.0.1:$http_port"
run "12 IIIF regions 1000–3000 px → 512 wide" "iipsrv 1.1 (2 processes)" -s "$work/iiif-ref-nk.lua" "http://127.0.0.1:$http_port"
