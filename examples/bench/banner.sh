#!/usr/bin/env bash
# The daemon alone: the banner page (a request without a command) through nginx, this server
# against iipsrv 1.3, each in its best configuration (lib.sh), plus a row with this server
# behind the same upstream without keep-alive as 1.3 (what keep-alive is worth).
# Usage: bash examples/bench/banner.sh [seconds-per-run] [connections]
# Needs: see lib.sh (wrk, nginx-light, spawn-fcgi, curl; IIPSRV13 or build-iipsrv13.sh).
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"
write_lua
list_one "$work/banner.list" ""

start_servers
scenario "banner (empty request)" "$work/banner.list" text/html
OURS_LOC=ours-nk scenario "banner, this server WITHOUT upstream keep-alive" "$work/banner.list" text/html \
  "this server behind the same upstream as 1.3"
print_table "Banner page through nginx (the daemon alone)"
