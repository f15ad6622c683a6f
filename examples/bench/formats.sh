#!/usr/bin/env bash
# Tile throughput by source and output format, through nginx, random full-resolution tiles,
# tile cache off (MAX_IMAGE_CACHE_SIZE=0, so every request decodes):
#   - JPEG2000 source (4096², tiled codestream, 6 resolutions) and plain JPEG source (4096²):
#     this server against Debian's iipsrv 1.1 (2 processes), in one run;
#   - PNG, WebP and AVIF tiles (PTL, WTL, ATL) from a JPEG pyramid TIFF: this server only
#     (iipsrv 1.1 has no PTL/WTL/ATL), with JPEG (JTL, CODEC_PASSTHROUGH=0) for reference.
# Usage: bash examples/bench/formats.sh [seconds-per-run] [connections]
# Needs: nginx-light, wrk, spawn-fcgi, iipimage-server, libvips-tools, libopenjp2-tools.
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

N=4096
if [ ! -f "$dir/tex.jp2" ]; then
  echo "making the $N² test images in $dir ..." >&2
  (
    cd "$dir"
    make_texture $N $N tex.v
    vips tiffsave tex.v tex_plain.tif
    vips jpegsave tex.v tex.jpg --Q 90
    vips tiffsave tex.v tex.tif --tile --pyramid --compression jpeg --Q 90 --tile-width 256 --tile-height 256
    opj_compress -i tex_plain.tif -o tex.jp2 -t 256,256 -n 6 -r 20 >/dev/null
    rm -f ./*.v tex_plain.tif
  )
fi

cargo build --release --locked -q
port=19400; http_port=19480
write_nginx_conf "$work" "$http_port" "upstream backend { server 127.0.0.1:$port; keepalive 32; }" "location /fcgi { fastcgi_pass backend; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location /fcgi-nk { fastcgi_pass 127.0.0.1:$port; include /etc/nginx/fastcgi_params; }"
nginx -p "$work" -c "$work/nginx.conf"

# Random tiles of resolution R (env), TILES tiles, command CMD (env), image FILE (env).
cat > "$work/random.lua" <<'LUA'
local counter = 0
function setup(thread) counter = counter + 1; thread:set("seed", counter) end
function init(args)
  math.randomseed(seed * 7919)
  file, cmd, res, tiles = os.getenv("FILE"), os.getenv("CMD"), os.getenv("R"), tonumber(os.getenv("TILES"))
  loc = os.getenv("LOC") or "/fcgi"
end
function request()
  return wrk.format("GET", loc .. "?FIF=" .. file .. "&" .. cmd .. "=" .. res .. "," .. math.random(0, tiles - 1))
end
LUA

stop_server() {
  kill $(jobs -p) 2>/dev/null || true
  pkill -f /usr/lib/iipimage-server/iipsrv.fcgi || true
  sleep 0.5
}
start_ours() { stop_server; FILESYSTEM_PREFIX="$dir/" MAX_IMAGE_CACHE_SIZE=0 CODEC_PASSTHROUGH=0 VERBOSITY=0 ./target/release/iipsrv --bind 127.0.0.1:$port & sleep 0.5; }
start_ref() { stop_server; FILESYSTEM_PREFIX="$dir/" MAX_IMAGE_CACHE_SIZE=0 VERBOSITY=0 spawn-fcgi -a 127.0.0.1 -p $port -F 2 -- /usr/lib/iipimage-server/iipsrv.fcgi >/dev/null; sleep 0.5; }

# The top resolution number of FILE as the running server reports it.
top() { curl -s "http://127.0.0.1:$http_port${LOC:-/fcgi}?FIF=$1&OBJ=Resolution-number" | tr -d '\r' | sed -n 's/^Resolution-number://p' | awk '{print $1 - 1}'; }

measure() { # label file cmd
  local r tiles out rps p99 errors
  r=$(top "$2")
  tiles=$(( (N / 256) * (N / 256) ))
  out=$(FILE=$2 CMD=$3 R=$r TILES=$tiles wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$work/random.lua" "http://127.0.0.1:$http_port" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $NF " non-2xx"} /Socket errors/ {print $0}' <<<"$out")
  printf '| %s | %s | %s | %s |\n' "$1" "$rps" "$p99" "${errors:-none}"
}

echo "wrk -t2 -c$conns -d${secs}s, random full-resolution tiles of $N² images, tile cache off, nginx in front, $(nproc) cores"
echo
echo '| source / output, server | tiles/s | p99 latency | errors |'
echo '|---|---|---|---|'
start_ours
measure "JPEG2000 → JPEG, this server" tex.jp2 JTL
measure "plain JPEG → JPEG, this server" tex.jpg JTL
measure "JPEG TIFF → JPEG (transcoded), this server" tex.tif JTL
measure "JPEG TIFF → PNG, this server" tex.tif PTL
measure "JPEG TIFF → WebP, this server" tex.tif WTL
measure "JPEG TIFF → AVIF, this server" tex.tif ATL
start_ref
export LOC=/fcgi-nk   # iipsrv stalls with upstream keep-alive (banner benchmark)
measure "JPEG2000 → JPEG, iipsrv 1.1 (2 processes)" tex.jp2 JTL
measure "plain JPEG → JPEG, iipsrv 1.1 (2 processes)" tex.jpg JTL
measure "JPEG TIFF → JPEG, iipsrv 1.1 (2 processes)" tex.tif JTL
