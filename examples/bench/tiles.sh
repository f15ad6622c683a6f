#!/usr/bin/env bash
# JTL throughput on a large JPEG-compressed pyramid (16384×12288, 256² tiles, Q90, ~36 KB per
# tile, made by vips from a procedural texture), random full-resolution tiles, through nginx:
# this server (pass-through and CODEC_PASSTHROUGH=0; tile cache off and on) against Debian's
# iipsrv 1.1 (2 processes; cache off and on; without upstream keep-alive, with which it
# stalls), in one run. Prints a markdown table.
# Usage: bash examples/bench/tiles.sh [seconds-per-run] [connections]
# Needs: nginx-light, wrk, spawn-fcgi, iipimage-server, libvips-tools. The image (~1.3 GB of
# scratch while building, ~350 MB result) is made once under ${BENCH_DIR:-/tmp/iipsrv-bench}.
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
secs=${1:-10}
conns=${2:-16}
dir=${BENCH_DIR:-/tmp/iipsrv-bench}
mkdir -p "$dir"
work=$(mktemp -d)
trap bench_cleanup EXIT

W=16384; H=12288
if [ ! -f "$dir/big.tif" ]; then
  echo "making $dir/big.tif ..." >&2
  (
    cd "$dir"
    make_texture $W $H rgbc.v
    vips tiffsave rgbc.v big.tif --tile --pyramid --compression jpeg --Q 90 --tile-width 256 --tile-height 256
    rm -f c1.v c2.v c3.v rgb.v rgbc.v
  )
fi

cargo build --release --locked -q
port=19300; http_port=19380
write_nginx_conf "$work" "$http_port" "upstream backend { server 127.0.0.1:$port; keepalive 32; }" "location /fcgi { fastcgi_pass backend; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location /fcgi-nk { fastcgi_pass 127.0.0.1:$port; include /etc/nginx/fastcgi_params; }"
nginx -p "$work" -c "$work/nginx.conf"

# Random full-resolution tiles (resolution 6 is 16384×12288: 64×48 tiles), seeded per thread.
cat > "$work/random.lua" <<'LUA'
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args) math.randomseed(seed * 7919); loc = os.getenv("LOC") or "/fcgi" end
function request()
  return wrk.format("GET", loc .. "?FIF=big.tif&JTL=6," .. math.random(0, 64 * 48 - 1))
end
LUA

stop_server() {
  kill $(jobs -p) 2>/dev/null || true
  pkill -f /usr/lib/iipimage-server/iipsrv.fcgi || true
  sleep 0.5
}

measure() { # label
  local out rps p99 avg
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$work/random.lua" "http://127.0.0.1:$http_port" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  avg=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
  printf '| %s | %s | %s | %s |\n' "$1" "$rps" "$p99" "$avg"
}

run_ours() { # label cache_mb passthrough
  stop_server
  FILESYSTEM_PREFIX="$dir/" MAX_IMAGE_CACHE_SIZE=$2 CODEC_PASSTHROUGH=$3 VERBOSITY=0 \
    ./target/release/iipsrv --bind 127.0.0.1:$port &
  sleep 0.5
  if [ "$2" != 0 ]; then wrk -t2 -c"$conns" -d"${secs}s" -s "$work/random.lua" "http://127.0.0.1:$http_port" >/dev/null; fi
  measure "$1"
}

run_ref() { # label cache_mb
  stop_server
  FILESYSTEM_PREFIX="$dir/" MAX_IMAGE_CACHE_SIZE=$2 VERBOSITY=0 \
    spawn-fcgi -a 127.0.0.1 -p $port -F 2 -- /usr/lib/iipimage-server/iipsrv.fcgi >/dev/null
  sleep 0.5
  export LOC=/fcgi-nk   # iipsrv stalls with upstream keep-alive (banner benchmark)
  if [ "$2" != 0 ]; then wrk -t2 -c"$conns" -d"${secs}s" -s "$work/random.lua" "http://127.0.0.1:$http_port" >/dev/null; fi
  measure "$1"
  unset LOC
}

echo "wrk -t2 -c$conns -d${secs}s, random JTL tiles of a 16384×12288 Q90 JPEG pyramid, nginx in front, $(nproc) cores"
echo
echo '| server | tiles/s | p99 latency | transfer/s |'
echo '|---|---|---|---|'
run_ours "this server, pass-through, cache off" 0 1
run_ours "this server, pass-through, cache 400 MB" 400 1
run_ours "this server, transcoded (CODEC_PASSTHROUGH=0), cache off" 0 0
run_ours "this server, transcoded (CODEC_PASSTHROUGH=0), cache 400 MB" 400 0
run_ref "iipsrv 1.1 (2 processes, transcodes), cache off" 0
run_ref "iipsrv 1.1 (2 processes, transcodes), cache 400 MB each" 400
