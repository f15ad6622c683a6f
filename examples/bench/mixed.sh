#!/usr/bin/env bash
# Short tails under mixed load (issue: heavy requests must not delay light ones), on the large
# JPEG pyramid (16384×12288, 256² tiles, JPEG Q90; see tiles.sh), tile cache off, this server
# against iipsrv 1.3, each in its best configuration (lib.sh):
#   - MIXED: 90 % IIIF full-resolution tiles (pass-through) and 10 % IIIF region exports
#     (1000–4000 px regions scaled to 512 wide), drawn at random (seeded); the tiles' and the
#     exports' requests/s, p50 and p99 are reported separately;
#   - the same tiles alone, measured the same way, for comparison.
# Each wrk thread has one connection (wrk -t C -c C) and times its own requests by kind
# (LuaJIT ffi clock_gettime), so that the tiles' latency is known apart from the exports'.
# Usage: bash examples/bench/mixed.sh [seconds-per-run] [connections]
# Needs: see lib.sh (wrk built with LuaJIT, as Debian's is).
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"
ensure_pyramid
write_lua
list_iiif_tiles "$work/tiles.list" big.tif $PYR_W $PYR_H 1 5000 T
list_regions "$work/exports.list" big.tif $PYR_W $PYR_H 1000 4000 512 2000 E
list_mix "$work/mixed.list" 10000 29 "$work/tiles.list:90" "$work/exports.list:10"

start_servers
mixed_scenario "tiles alone" "$work/tiles.list" image/jpeg "T:IIIF full-resolution tiles"
mixed_scenario "MIXED 90/10" "$work/mixed.list" image/jpeg "T:tiles" "E:region exports"
print_table "Mixed load: 90 % tiles + 10 % region exports on a 16384×12288 JPEG-Q90 pyramid (one connection per wrk thread)"
