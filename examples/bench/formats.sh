#!/usr/bin/env bash
# JPEG2000 and plain JPEG sources, tile cache off, this server against iipsrv 1.3, each in its
# best configuration (lib.sh). Images (made once by vips and opj_compress from a procedural
# texture, 5003×3701 so that edges are partial): tex5003.jp2 (256² codestream tiles, 6
# resolutions, 3 quality layers), tex5003-untiled.jp2 (one codestream tile, precincts; see
# lib.sh) and tex5003.jpg (baseline JPEG Q90).
#   - JPEG2000: random full-resolution tiles (JTL), regions of random position 1000–3000 px
#     wide and high scaled to 512 wide (IIIF), thumbnails `full/!200,200` and `full/,120`;
#     tiles and regions of the untiled file too;
#   - plain JPEG: random full-resolution tiles (JTL) and the same regions. This server keeps
#     decoded levels of plain JPEGs in its shared decoded-image cache (IIPSRV_JPEG_CACHE_SIZE,
#     default 256 MiB, on here as by default); iipsrv 1.3 decodes the file for every request.
# Usage: bash examples/bench/formats.sh [seconds-per-run] [connections]
# Needs: see lib.sh.
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"
ensure_small_sources
write_lua
# Resolution 5 is the full size of both: 20×15 tiles.
list_tiles "$work/jp2-tiles.list" tex5003.jp2 JTL 5 20 15
list_regions "$work/jp2-regions.list" tex5003.jp2 $J2K_W $J2K_H 1000 3000 512
list_one "$work/jp2-thumb200.list" '?IIIF=tex5003.jp2/full/!200,200/0/default.jpg'
list_one "$work/jp2-thumb120.list" '?IIIF=tex5003.jp2/full/,120/0/default.jpg'
list_tiles "$work/jp2u-tiles.list" tex5003-untiled.jp2 JTL 5 20 15
list_regions "$work/jp2u-regions.list" tex5003-untiled.jp2 $J2K_W $J2K_H 1000 3000 512
list_tiles "$work/jpg-tiles.list" tex5003.jpg JTL 5 20 15
list_regions "$work/jpg-regions.list" tex5003.jpg $J2K_W $J2K_H 1000 3000 512

start_servers
scenario "JPEG2000 tile (JTL, full resolution)" "$work/jp2-tiles.list" image/jpeg
scenario "JPEG2000 region 1000–3000 px → 512 wide" "$work/jp2-regions.list" image/jpeg
scenario "JPEG2000 thumbnail full/!200,200" "$work/jp2-thumb200.list" image/jpeg
scenario "JPEG2000 thumbnail full/,120" "$work/jp2-thumb120.list" image/jpeg
scenario "JPEG2000 untiled (precincts) tile (JTL, full resolution)" "$work/jp2u-tiles.list" image/jpeg
scenario "JPEG2000 untiled (precincts) region 1000–3000 px → 512 wide" "$work/jp2u-regions.list" image/jpeg
scenario "plain JPEG tile (JTL, full resolution)" "$work/jpg-tiles.list" image/jpeg
scenario "plain JPEG region 1000–3000 px → 512 wide" "$work/jpg-regions.list" image/jpeg
print_table "JPEG2000 (5003×3701, 256² codestream tiles, 6 resolutions, 3 layers) and plain JPEG (5003×3701, Q90) sources"
