#!/usr/bin/env bash
# Tiles and info.json of a large JPEG pyramid (16384×12288, 256² tiles, JPEG Q90, made once by
# vips from a procedural texture): random full-resolution tiles, tile cache off, this server
# against iipsrv 1.3, each in its best configuration (lib.sh):
#   - JTL pass-through (both send the stored JPEG tile as it is: CODEC_PASSTHROUGH=1, the
#     default of both) and IIIF info.json;
#   - JTL transcoded, PNG (PTL), WebP (WTL) and AVIF (ATL) tiles, with CODEC_PASSTHROUGH=0 on
#     both (every tile decoded and encoded; PNG and AVIF never pass through anyway, nor WebP
#     from a JPEG-compressed TIFF).
# Usage: bash examples/bench/tiles.sh [seconds-per-run] [connections]
# Needs: see lib.sh.
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"
ensure_pyramid
write_lua
# Resolution 6 is the full size: 64×48 tiles.
for cmd in JTL PTL WTL ATL; do list_tiles "$work/$cmd.list" big.tif $cmd 6 64 48; done
list_one "$work/info.list" "?IIIF=big.tif/info.json"

start_servers
scenario "JTL pass-through" "$work/JTL.list" image/jpeg
scenario "IIIF info.json" "$work/info.list" application/
start_servers CODEC_PASSTHROUGH=0
scenario "JTL transcoded (CODEC_PASSTHROUGH=0 on both)" "$work/JTL.list" image/jpeg
scenario "PNG tile (PTL)" "$work/PTL.list" image/png
scenario "WebP tile (WTL)" "$work/WTL.list" image/webp
scenario "AVIF tile (ATL)" "$work/ATL.list" image/avif
print_table "Tiles of a 16384×12288 JPEG-Q90 pyramid (256² tiles): random full-resolution tiles"
