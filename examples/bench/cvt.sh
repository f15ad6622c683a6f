#!/usr/bin/env bash
# Region exports (CVT) of the large JPEG pyramid (16384×12288, 256² tiles, JPEG Q90; see
# tiles.sh), tile cache off, this server against iipsrv 1.3, each in its best configuration
# (lib.sh):
#   - the whole image 1000 px wide (`WID=1000&CVT=jpeg`: the 1024×768 level, resized);
#   - random regions of 1/16 to 1/4 of the image's width and height (RGN), 1000 px wide
#     (2000 seeded random regions).
# Usage: bash examples/bench/cvt.sh [seconds-per-run] [connections]
# Needs: see lib.sh.
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"
ensure_pyramid
write_lua
list_one "$work/whole.list" "?FIF=big.tif&WID=1000&CVT=jpeg"
awk 'BEGIN {
  srand(19)
  for (i = 0; i < 2000; i++) {
    w = 0.0625 + rand() * 0.1875; h = 0.0625 + rand() * 0.1875
    printf "- ?FIF=big.tif&RGN=%.4f,%.4f,%.4f,%.4f&WID=1000&CVT=jpeg\n", rand() * (1 - w), rand() * (1 - h), w, h
  }
}' > "$work/rgn.list"

start_servers
scenario "CVT whole image → 1000 px wide" "$work/whole.list" image/jpeg
scenario "CVT region (RGN 1/16–1/4 of the image) → 1000 px wide" "$work/rgn.list" image/jpeg
print_table "Region exports (CVT) of a 16384×12288 JPEG-Q90 pyramid"
