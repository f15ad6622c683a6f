#!/usr/bin/env bash
# IIIF requests on the large JPEG pyramid (16384×12288, 256² tiles, JPEG Q90; see tiles.sh),
# tile cache off, this server against iipsrv 1.3, each in its best configuration (lib.sh):
#   - regions of random position, 1000–4000 px wide and high at full resolution, scaled to
#     512 px wide (`x,y,w,h/512,/0/default.jpg`, 2000 seeded random regions);
#   - thumbnails `full/!200,200` and `full/,120`;
#   - viewer traffic: a seeded mix of what a viewer such as Mirador (OpenSeadragon) asks for
#     while a user opens images and zooms: 4 % info.json, 4 % `full/!200,200` and 4 %
#     `full/,120` thumbnails (gallery and thumbnail strip), 88 % IIIF tiles
#     (`x,y,w,h/w,/0/default.jpg`) of the six largest levels, each level equally likely.
# Both servers take IIIF by query string (`?IIIF=big.tif/...`) and default to IIIF 3.
# Usage: bash examples/bench/iiif.sh [seconds-per-run] [connections]
# Needs: see lib.sh.
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"
ensure_pyramid
write_lua
list_regions "$work/regions.list" big.tif $PYR_W $PYR_H 1000 4000 512
list_one "$work/thumb200.list" '?IIIF=big.tif/full/!200,200/0/default.jpg'
list_one "$work/thumb120.list" '?IIIF=big.tif/full/,120/0/default.jpg'
list_one "$work/info.list" '?IIIF=big.tif/info.json'
list_iiif_tiles "$work/tiles.list" big.tif $PYR_W $PYR_H 6
list_mix "$work/viewer.list" 5000 23 "$work/info.list:4" "$work/thumb200.list:4" \
  "$work/thumb120.list:4" "$work/tiles.list:88"

start_servers
scenario "IIIF region 1000–4000 px → 512 wide" "$work/regions.list" image/jpeg
scenario "thumbnail full/!200,200" "$work/thumb200.list" image/jpeg
scenario "thumbnail full/,120" "$work/thumb120.list" image/jpeg
scenario "IIIF tiles, six largest levels" "$work/tiles.list" image/jpeg
scenario "viewer traffic (88 % tiles, 8 % thumbnails, 4 % info.json)" "$work/viewer.list" ""
print_table "IIIF on a 16384×12288 JPEG-Q90 pyramid: regions, thumbnails, viewer traffic"
