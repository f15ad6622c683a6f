#!/usr/bin/env bash
# Banner requests through nginx, keep-alive to the upstream on and off, this server against
# Debian's iipsrv (iipimage-server 1.1), in one run on the same machine and the same nginx.
# Prints a markdown table of requests/s and p99 latency (wrk --latency).
# Usage: bash examples/bench/banner.sh [seconds-per-run] [connections]
# Needs: nginx-light, wrk, spawn-fcgi, iipimage-server (apt-get install ...).
set -euo pipefail
# shellcheck source=examples/bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/../.."
secs=${1:-10}
conns=${2:-16}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; pkill -f /usr/lib/iipimage-server/iipsrv.fcgi; nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null; rm -rf "$work"' EXIT

cargo build --release --locked -q
ours_port=19100; ref_port=19101; http_port=19180

VERBOSITY=0 ./target/release/iipsrv --bind 127.0.0.1:$ours_port &
# iipsrv: one process per connection; two processes, as on a 2-core machine.
VERBOSITY=0 spawn-fcgi -a 127.0.0.1 -p $ref_port -F 2 -- /usr/lib/iipimage-server/iipsrv.fcgi >/dev/null

write_nginx_conf "$work" "$http_port" "upstream ours { server 127.0.0.1:$ours_port; keepalive 32; }
  upstream ref  { server 127.0.0.1:$ref_port;  keepalive 32; }" "location /ours-ka { fastcgi_pass ours; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location /ref-ka  { fastcgi_pass ref;  fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location /ours-nk { fastcgi_pass 127.0.0.1:$ours_port; include /etc/nginx/fastcgi_params; }
    location /ref-nk  { fastcgi_pass 127.0.0.1:$ref_port;  include /etc/nginx/fastcgi_params; }"
nginx -p "$work" -c "$work/nginx.conf"
sleep 1

run() {
  local out
  out=$(wrk -t2 -c"$conns" -d"${secs}s" --timeout 30s --latency "http://127.0.0.1:$http_port/$1" 2>&1)
  local rps p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
  printf '| %s | %s | %s | %s |\n' "$2" "$rps" "$p99" "${errors:-none}"
}

echo "wrk -t2 -c$conns -d${secs}s, banner page (empty request), nginx 1 in front, $(nproc) cores"
echo
echo '| server, upstream keep-alive | requests/s | p99 latency | errors |'
echo '|---|---|---|---|'
run ours-nk "this server, keep-alive off"
run ref-nk "iipsrv 1.1 (2 processes), keep-alive off"
run ours-ka "this server, keep-alive on"
run ref-ka "iipsrv 1.1 (2 processes), keep-alive on"
