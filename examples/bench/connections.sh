#!/usr/bin/env bash
# 10,000 connections opened at once to the --http listener, none sending anything (a
# slow-loris flood): the resident size while they are held, the threads of the process, and
# how long a normal request then takes (it waits in the kernel's backlog until connections
# time out: IIPSRV_READ_TIMEOUT). docs/reliability.md, "Memory and overload".
#
# Usage: bash examples/bench/connections.sh [connections] [VAR=value ...]
# Environment: IIPSRV_BIN (default target/release/iipsrv), PORT (default 19591).
# Needs: python3, curl.
set -euo pipefail
n=${1:-10000}
shift || true
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${IIPSRV_BIN:-$root/target/release/iipsrv}
[ -x "$bin" ] || (cd "$root" && cargo build --release --quiet --bin iipsrv)
port=${PORT:-19591}
work=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"
env -i PATH="$PATH" VERBOSITY=1 LOGFILE="$work/iipsrv.log" MEMCACHED_SERVERS= "$@" \
  "$bin" --http "127.0.0.1:$port" --backlog 16384 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; kill "$flood" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 0.5
rss() { awk '/^VmRSS:/ { print int($2 / 1024) }' "/proc/$pid/status"; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$pid/status"; }
echo "before: $(rss) MiB resident, $(threads) threads"
python3 - "$port" "$n" "$work/opened" <<'EOF' &
import socket, sys, time
port, n, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    socks.append(s)
open(flag, "w").write(str(len(socks)))
time.sleep(600)
EOF
flood=$!
while [ ! -f "$work/opened" ]; do sleep 0.1; done
sleep 2
echo "with $n silent connections: $(rss) MiB resident, $(threads) threads"
start=$(date +%s.%N)
code=$(curl -s -o /dev/null --max-time 600 -w '%{http_code}' "http://127.0.0.1:$port/?OBJ=IIP,1.0")
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v c="$code" 'BEGIN { printf "a new request meanwhile: %s after %.1f s\n", c, e - s }'
echo "after: $(rss) MiB resident, $(threads) threads"
