#!/usr/bin/env bash
# Object storage against local files: the large JPEG pyramid (16384×12288, 256² tiles, JPEG
# Q90; see tiles.sh) served by this server from
#   - local files (FILESYSTEM_PREFIX=<dir>/),
#   - a Garage node on loopback (FILESYSTEM_PREFIX=s3://bench/),
#   - the same Garage node behind a small delaying TCP proxy that adds BENCH_DELAY_MS (default
#     50) of round-trip time between this server and storage (half on the way there, half on
#     the way back; every byte is delayed, none is held longer, so only latency is added),
#   - an nginx file server over HTTP (FILESYSTEM_PREFIX=http://…/, Range requests), directly
#     and behind the same kind of delaying proxy,
# each with the tile cache off and on (MAX_IMAGE_CACHE_SIZE=0 / 256), for
#   - JTL pass-through tiles of the full resolution, at random;
#   - IIIF regions of random position, 1000–4000 px wide and high, scaled to 512 px wide.
# Same run, same nginx, same wrk settings (default 64 connections: the goal of issue 10 is
# ≥ 800 pass-through tiles/s on 2 cores with 64 clients and 50 ms of storage latency, which only
# non-blocking storage I/O can reach). iipsrv 1.3 has no object storage: this server alone.
#
# The bytes this server keeps from storage are limited to IIPSRV_STORAGE_CACHE_SIZE =
# BENCH_STORAGE_CACHE MiB (default 1, the minimum), so that the remote rows measure fetches
# from storage and not a warm in-memory copy of the image (the default of 256 MiB would hold
# most of this 160 MB pyramid after a while). The delaying proxy is Python (asyncio) and takes
# CPU of its own on the same cores: the delayed rows are a lower bound.
#
# Usage: bash examples/bench/storage.sh [seconds-per-run] [connections]
# Environment (besides lib.sh's): SOURCES="local garage delayed files files-delayed" (which
# sources, in order: files = an nginx file server over HTTP with Range requests),
# CACHES="0 256" (the MAX_IMAGE_CACHE_SIZE values), BENCH_DELAY_MS=50, BENCH_STORAGE_CACHE=1.
# Needs: see lib.sh; Garage (`cargo install garage --locked`, or IIPSRV_GARAGE=/path/garage;
# bash .ci/run builds it once per machine), python3. Ports: BENCH_PORT+40 … +45.
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
export ONLY_OURS=${ONLY_OURS:-1}
bench_setup "${1:-10}" "${2:-64}"
with13=0
with11=0
ensure_pyramid
write_lua

delay_ms=${BENCH_DELAY_MS:-50}
storage_cache=${BENCH_STORAGE_CACHE:-1}
base=${BENCH_PORT:-19500}
g_rpc=$((base + 40))
g_s3=$((base + 41))
g_admin=$((base + 42))
proxy_port=$((base + 43))
files_port=$((base + 44))
files_proxy_port=$((base + 45))
bucket=bench
key_id=GK0b0e0c0b0e0c0b0e0c0b0e0c
secret=5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e
storage_pids=()

# storage_cleanup: end the Garage node and the proxy this run started, by their ids.
storage_cleanup() {
  local p
  for p in "${storage_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${storage_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
  done
}
if [ -z "${BENCH_KEEP:-}" ]; then
  trap 'storage_cleanup; bench_cleanup' EXIT
fi

garage=${IIPSRV_GARAGE:-$(command -v garage || true)}
for g in "$garage" "$HOME/.cargo/bin/garage" "${IIPSRV_TOOLS:-$HOME/.cache/iipsrv-tools}/bin/garage"; do
  if [ -n "$g" ] && [ -x "$g" ]; then garage=$g; break; fi
done
[ -x "$garage" ] || { echo "garage not found: cargo install garage --locked, or IIPSRV_GARAGE" >&2; exit 2; }

# One Garage node (replication factor 1) with its data in the work directory.
mkdir -p "$work/garage"
cat > "$work/garage/garage.toml" <<TOML
metadata_dir = "$work/garage/meta"
data_dir = "$work/garage/data"
db_engine = "sqlite"
replication_factor = 1
# Tuned for small ranged reads, as a bucket of tiled images would be: with Garage's defaults
# (1 MiB blocks, zstd level 1) every ranged GET reads, checks and decompresses a whole 1 MiB
# block, about 2.8 ms of Garage's CPU per tile on these shared cores (measured: Garage then
# took 1.2 of the 2 cores and bounded the uncached rows at ~420 tiles/s).
block_size = "128K"
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$g_rpc"
rpc_public_addr = "127.0.0.1:$g_rpc"
rpc_secret = "$(printf '%064d' 7)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$g_s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$g_admin"
TOML
chmod 600 "$work/garage/garage.toml"
gcli() { "$garage" -c "$work/garage/garage.toml" "$@"; }
# Started from a subshell, so that they are not jobs of this shell (lib.sh's stop_servers
# `wait`s for its jobs); ended by id in storage_cleanup.
storage_pids+=("$(RUST_LOG=garage=warn setsid "$garage" -c "$work/garage/garage.toml" server \
  </dev/null >>"$work/garage/log" 2>&1 & echo $!)")
wait_port "$g_s3"
node=$(gcli node id -q | cut -c1-16)
gcli layout assign -z dc1 -c 1G "$node" >/dev/null
gcli layout apply --version 1 >/dev/null
gcli bucket create "$bucket" >/dev/null
gcli key import --yes "$key_id" "$secret" -n bench >/dev/null
gcli bucket allow --read --write "$bucket" --key "$key_id" >/dev/null

# Upload the pyramid (curl signs the request; retried while the new layout settles).
put() {
  curl -sf --aws-sigv4 "aws:amz:garage:s3" --user "$key_id:$secret" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$1" "http://127.0.0.1:$g_s3/$bucket/$2"
}
echo "uploading big.tif to Garage ..." >&2
for i in $(seq 30); do
  put "$dir/big.tif" big.tif && break
  [ "$i" -lt 30 ] || { echo "Garage refused the upload: $(tail -n 5 "$work/garage/log")" >&2; exit 1; }
  sleep 1
done

# The delaying proxy: every chunk is forwarded half the delay after it arrived, in order.
cat > "$work/delay.py" <<'PY'
import asyncio, sys, time
listen, target, delay = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 2000

async def pipe(reader, writer):
    queue = asyncio.Queue()
    async def feed():
        while True:
            data = await reader.read(1 << 16)
            queue.put_nowait((time.monotonic() + delay, data))
            if not data:
                return
    feeder = asyncio.ensure_future(feed())
    try:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    finally:
        feeder.cancel()

async def handle(client_r, client_w):
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pipe(client_r, up_w), pipe(up_r, client_w), return_exceptions=True)
    for w in (up_w, client_w):
        w.close()

async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=1024)
    async with server:
        await server.serve_forever()

asyncio.run(main())
PY
storage_pids+=("$(setsid python3 "$work/delay.py" "$proxy_port" "$g_s3" "$delay_ms" \
  </dev/null >>"$work/delay.log" 2>&1 & echo $!)")
wait_port "$proxy_port"

# A plain HTTP file server for the http(s):// source: a second nginx serving the images with
# Range requests. Unlike Garage, a static file server costs next to no CPU per request, so
# these rows show what this server does with 50 ms of latency when storage is not competing
# for the same two cores.
mkdir -p "$work/files/logs"
cat > "$work/files/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $work/files/nginx.pid;
error_log $work/files/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$files_port;
    root $dir;
  }
}
NGINX
storage_pids+=("$(setsid nginx -p "$work/files" -c "$work/files/nginx.conf" \
  </dev/null >>"$work/files/logs/out" 2>&1 & echo $!)")
wait_port "$files_port"
storage_pids+=("$(setsid python3 "$work/delay.py" "$files_proxy_port" "$files_port" "$delay_ms" \
  </dev/null >>"$work/delay-files.log" 2>&1 & echo $!)")
wait_port "$files_proxy_port"

# Resolution 6 is the full size: 64×48 tiles.
list_tiles "$work/JTL.list" big.tif JTL 6 64 48
list_regions "$work/regions.list" big.tif $PYR_W $PYR_H 1000 4000 512

s3_env() {
  echo FILESYSTEM_PREFIX="s3://$bucket/" AWS_ENDPOINT_URL="http://127.0.0.1:$1" \
    AWS_REGION=garage AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID="$key_id" \
    AWS_SECRET_ACCESS_KEY="$secret" IIPSRV_STORAGE_CACHE_SIZE="$storage_cache"
}
read -r -a sources <<<"${SOURCES:-local garage delayed files files-delayed}"
read -r -a caches <<<"${CACHES:-0 256}"
for source in "${sources[@]}"; do
  case $source in
    local) env_source=(); name="local files" ;;
    garage) read -r -a env_source <<<"$(s3_env "$g_s3")"; name="Garage" ;;
    delayed) read -r -a env_source <<<"$(s3_env "$proxy_port")"; name="Garage +${delay_ms} ms" ;;
    files)
      env_source=(FILESYSTEM_PREFIX="http://127.0.0.1:$files_port/" IIPSRV_STORAGE_CACHE_SIZE="$storage_cache")
      name="nginx file server (HTTP)" ;;
    files-delayed)
      env_source=(FILESYSTEM_PREFIX="http://127.0.0.1:$files_proxy_port/" IIPSRV_STORAGE_CACHE_SIZE="$storage_cache")
      name="nginx file server +${delay_ms} ms" ;;
  esac
  for cache in "${caches[@]}"; do
    start_servers "${env_source[@]}" MAX_IMAGE_CACHE_SIZE=$cache
    label="$name, tile cache $([ $cache = 0 ] && echo off || echo on)"
    scenario "$label: JTL pass-through" "$work/JTL.list" image/jpeg
    scenario "$label: IIIF region 1000–4000 px → 512 wide" "$work/regions.list" image/jpeg
  done
done
print_table "Object storage: the 16384×12288 JPEG-Q90 pyramid from local files, a Garage node on loopback, and that node with ${delay_ms} ms more round-trip time (IIPSRV_STORAGE_CACHE_SIZE=${storage_cache} MiB)"
