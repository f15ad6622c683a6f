# shellcheck shell=bash
# Shared by the benchmark scripts in this folder (sourced, not run). See docs/performance.md,
# "How to run the benchmarks".
#
# Every scenario runs this server and iipsrv 1.3 one after the other, in the same run, behind
# the same nginx, each in its best configuration:
#   - this server: one process, IIPSRV_WORKERS = number of cores, nginx upstream keep-alive
#     (`keepalive 32; fastcgi_keep_conn on`);
#   - iipsrv 1.3: `spawn-fcgi -F N` (N = number of cores: one single-threaded process per core,
#     as production runs it; the processes are counted with pgrep), OMP_NUM_THREADS=1, nginx
#     WITHOUT upstream keep-alive (iipsrv stalls behind a keep-alive pool).
# Both: tile cache off (MAX_IMAGE_CACHE_SIZE=0) unless a script says otherwise, VERBOSITY=0.
#
# Environment:
#   IIPSRV13=/path/iipsrv.fcgi   iipsrv 1.3 FastCGI binary (default: $BENCH_DIR/iipsrv-1.3.fcgi,
#                                which build-iipsrv13.sh makes); missing → exit 2
#   ONLY_OURS=1                  measure this server alone when iipsrv 1.3 is missing
#   WITH_IIPSRV11=1              add Debian's iipsrv 1.1 (/usr/lib/iipimage-server/iipsrv.fcgi,
#                                package iipimage-server) as extra columns, configured like 1.3
#   BENCH_DIR=/path              where the test images are made once (default /tmp/iipsrv-bench)
#   BENCH_PORT=19500             first of the local ports used (base … base+80)
#   IIPSRV_BIN=/path             this server's binary to measure (default: target/release/iipsrv,
#                                built first)
#   BENCH_THREADS=2              wrk threads
#   BENCH_LOG=/path              keep every wrk output there (default: discarded)
#   BENCH_ROWS_ONLY=1            print table rows only (all.sh uses it)
#   BENCH_KEEP=1                 leave the servers, nginx and the work directory running
#                                after the script (to investigate; end them by hand)
# Needs (Debian): wrk nginx-light spawn-fcgi curl libvips-tools libopenjp2-tools, and cargo.

bench_ncpu=$(nproc)

# bench_setup "$@": arguments [seconds-per-run] [connections]; checks the tools and the
# reference, makes the work directory and the ports, builds the release binary.
bench_setup() {
  secs=${1:-10}
  conns=${2:-16}
  threads=${BENCH_THREADS:-2}
  [ "$threads" -le "$conns" ] || threads=$conns
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  dir=${BENCH_DIR:-/tmp/iipsrv-bench}
  local tool missing=()
  for tool in wrk nginx spawn-fcgi curl vips opj_compress pgrep awk; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "missing tools: ${missing[*]} (apt-get install wrk nginx-light spawn-fcgi curl" \
      "libvips-tools libopenjp2-tools procps)" >&2
    exit 2
  fi
  ref13=$(readlink -f "${IIPSRV13:-$(default_ref13)}" || echo "${IIPSRV13:-$(default_ref13)}")
  with13=1
  if [ ! -x "$ref13" ]; then
    if [ "${ONLY_OURS:-0}" = 1 ]; then
      echo "iipsrv 1.3 not found at $ref13: measuring this server alone (ONLY_OURS=1)" >&2
      with13=0
    else
      echo "iipsrv 1.3 not found at $ref13: set IIPSRV13=/path/to/iipsrv.fcgi (iipsrv 1.3" \
        "built with OpenJPEG, PNG, WebP and AVIF), or ONLY_OURS=1 to measure this server alone" >&2
      exit 2
    fi
  fi
  ref11=/usr/lib/iipimage-server/iipsrv.fcgi
  with11=0
  if [ "${WITH_IIPSRV11:-0}" = 1 ]; then
    [ -x "$ref11" ] || { echo "WITH_IIPSRV11=1 but $ref11 is missing (iipimage-server)" >&2; exit 2; }
    with11=1
  fi
  local base=${BENCH_PORT:-19500}
  ours_port=$base
  ref13_port=$((base + 1))
  ref11_port=$((base + 2))
  http_port=$((base + 80))
  local p
  for p in $ours_port $ref13_port $ref11_port $http_port; do
    if port_open "$p"; then
      echo "port $p is in use: another benchmark running? (set BENCH_PORT)" >&2
      exit 2
    fi
  done
  mkdir -p "$dir"
  work=$(mktemp -d /tmp/iipsrv-bench-run.XXXXXX)
  trap bench_cleanup EXIT
  [ -z "${BENCH_KEEP:-}" ] || trap - EXIT
  # Our own names for the reference binaries, so that pgrep counts exactly the processes this
  # run started.
  [ "$with13" = 0 ] || ln -s "$(readlink -f "$ref13")" "$work/iipsrv-1.3.fcgi"
  [ "$with11" = 0 ] || ln -s "$ref11" "$work/iipsrv-1.1.fcgi"
  if [ -n "${IIPSRV_BIN:-}" ]; then
    ln -s "$(readlink -f "$IIPSRV_BIN")" "$work/iipsrv-ours"
  else
    (cd "$root" && cargo build --release --locked -q --bin iipsrv)
    ln -s "$root/target/release/iipsrv" "$work/iipsrv-ours"
  fi
  write_nginx_conf
  nginx -p "$work" -c "$work/nginx.conf"
  rows=()
}

# The binary build-iipsrv13.sh makes, in the benchmarks' work directory.
default_ref13() {
  echo "${BENCH_DIR:-/tmp/iipsrv-bench}/iipsrv-1.3.fcgi"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT: until something listens there (10 s at most).
wait_port() {
  local _
  for _ in $(seq 100); do
    port_open "$1" && return 0
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}

# nginx in front of all servers: /ours through a keep-alive upstream pool, /ours-nk without
# (for the banner's extra row), /ref13 and /ref11 without (their best).
write_nginx_conf() {
  cat > "$work/nginx.conf" <<CONF
user root;
worker_processes $bench_ncpu;
error_log $work/error.log crit;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/b; fastcgi_temp_path $work/f; proxy_temp_path $work/p;
  uwsgi_temp_path $work/u; scgi_temp_path $work/s;
  fastcgi_buffers 64 16k;
  fastcgi_read_timeout 120s;
  upstream ours { server 127.0.0.1:$ours_port; keepalive 32; }
  server {
    listen 127.0.0.1:$http_port;
    location /ours { fastcgi_pass ours; fastcgi_keep_conn on; include /etc/nginx/fastcgi_params; }
    location /ours-nk { fastcgi_pass 127.0.0.1:$ours_port; include /etc/nginx/fastcgi_params; }
    location /ref13 { fastcgi_pass 127.0.0.1:$ref13_port; include /etc/nginx/fastcgi_params; }
    location /ref11 { fastcgi_pass 127.0.0.1:$ref11_port; include /etc/nginx/fastcgi_params; }
  }
}
CONF
}

# start_servers [VAR=value ...]: (re)start every server with the common settings plus these.
start_servers() {
  stop_servers
  local common=(FILESYSTEM_PREFIX="$dir/" MAX_IMAGE_CACHE_SIZE=0 VERBOSITY=0 LOGFILE=/dev/null)
  # In a session of its own, as spawn-fcgi puts each iipsrv process (and a service manager a
  # service): with the scheduler's autogroups, a server left in this script's session would
  # share one CPU share with wrk.
  env "${common[@]}" IIPSRV_WORKERS="$bench_ncpu" "$@" setsid "$work/iipsrv-ours" \
    --bind "127.0.0.1:$ours_port" </dev/null >>"$work/ours.log" 2>&1 &
  if [ "$with13" = 1 ]; then
    env "${common[@]}" OMP_NUM_THREADS=1 "$@" spawn-fcgi -F "$bench_ncpu" -a 127.0.0.1 \
      -p "$ref13_port" -- "$work/iipsrv-1.3.fcgi" >/dev/null
  fi
  if [ "$with11" = 1 ]; then
    env "${common[@]}" OMP_NUM_THREADS=1 "$@" spawn-fcgi -F "$bench_ncpu" -a 127.0.0.1 \
      -p "$ref11_port" -- "$work/iipsrv-1.1.fcgi" >/dev/null
  fi
  wait_port "$ours_port"
  ref13_procs=0
  ref11_procs=0
  if [ "$with13" = 1 ]; then
    wait_port "$ref13_port"
    ref13_procs=$(pgrep -c -f "^$work/iipsrv-1.3.fcgi" || true)
  fi
  if [ "$with11" = 1 ]; then
    wait_port "$ref11_port"
    ref11_procs=$(pgrep -c -f "^$work/iipsrv-1.1.fcgi" || true)
  fi
}

# stop_servers: end the servers this run started, by their process ids.
stop_servers() {
  local pids=()
  if [ -n "${work:-}" ]; then
    mapfile -t pids < <(pgrep -f "^$work/iipsrv-(ours|1\.[13]\.fcgi)" || true)
  fi
  [ ${#pids[@]} -eq 0 ] && return 0
  kill "${pids[@]}" 2>/dev/null || true
  local p alive
  for _ in $(seq 50); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 1 ] || break
    sleep 0.1
  done
  [ "$alive" = 0 ] || kill -9 "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}

# bench_cleanup: stop what this run started and remove its work directory (trap on EXIT).
bench_cleanup() {
  stop_servers
  if [ -f "$work/nginx.pid" ]; then
    nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
    sleep 0.2
  fi
  rm -rf "$work"
}

# The header of the configuration: what each column measures.
describe_servers() {
  echo "wrk -t$threads -c$conns -d${secs}s --latency, nginx $(nginx -v 2>&1 | sed 's/.*nginx\///')" \
    "($bench_ncpu workers) in front, $bench_ncpu cores, tile cache off unless stated."
  echo "- this server: 1 process (own session, like each spawn-fcgi child), IIPSRV_WORKERS=$bench_ncpu, upstream keep-alive (keepalive 32; fastcgi_keep_conn on)."
  if [ "$with13" = 1 ]; then
    echo "- iipsrv 1.3 ($ref13): spawn-fcgi -F $bench_ncpu, $ref13_procs processes counted by pgrep," \
      "OMP_NUM_THREADS=1, no upstream keep-alive."
  fi
  if [ "$with11" = 1 ]; then
    echo "- iipsrv 1.1 (Debian): spawn-fcgi -F $bench_ncpu, $ref11_procs processes counted by pgrep," \
      "OMP_NUM_THREADS=1, no upstream keep-alive."
  fi
}

table_header() {
  local h="| scenario | this server req/s | p50 ms | p99 ms |" s="|---|---|---|---|"
  [ "$with13" = 0 ] || { h+=" iipsrv 1.3 req/s | p50 ms | p99 ms | ratio |"; s+="---|---|---|---|"; }
  [ "$with11" = 0 ] || { h+=" iipsrv 1.1 req/s | p99 ms |"; s+="---|---|"; }
  echo "$h notes |"
  echo "$s---|"
}

# print_table TITLE: the configuration, the header and every row of this run (rows only with
# BENCH_ROWS_ONLY=1).
print_table() {
  if [ "${BENCH_ROWS_ONLY:-0}" != 1 ]; then
    echo
    echo "$1"
    echo
    describe_servers
    echo
    table_header
  fi
  printf '%s\n' "${rows[@]}"
  if [ -n "${BENCH_META:-}" ]; then
    echo "$(basename "$0"): iipsrv 1.3 processes: $ref13_procs; iipsrv 1.1 processes: $ref11_procs" >> "$BENCH_META"
  fi
}

# ---------------------------------------------------------------------------------------------
# Request lists. A list is a file of lines "TAG PATH"; PATH starts with "?" and is appended to
# the server's location (/ours?..., /ref13?...). TAG names the request kind (used by the mixed
# scenarios). Random lists are seeded, so both servers get the same requests in the same order.

# list_one FILE PATH: a list of one request.
list_one() { echo "- $2" > "$1"; }

# list_tiles FILE IMAGE CMD RES COLUMNS ROWS [COUNT]: CMD=RES,n tiles (JTL, PTL, WTL, ATL) of
# a level with COLUMNS×ROWS tiles, at random.
list_tiles() {
  awk -v img="$2" -v cmd="$3" -v res="$4" -v n=$(($5 * $6)) -v count="${7:-5000}" 'BEGIN {
    srand(11)
    for (i = 0; i < count; i++) printf "- ?FIF=%s&%s=%d,%d\n", img, cmd, res, int(rand() * n)
  }' > "$1"
}

# list_iiif_tiles FILE IMAGE W H LEVELS [COUNT] [TAG]: IIIF tile requests as OpenSeadragon makes
# them (256² tiles, `x,y,w,h/w,/0/default.jpg`) of an image of W×H, at the largest LEVELS
# scale factors (1, 2, 4, …), each scale factor equally likely, then a random tile of it.
list_iiif_tiles() {
  awk -v img="$2" -v W="$3" -v H="$4" -v levels="$5" -v count="${6:-5000}" -v tag="${7:--}" 'BEGIN {
    srand(13)
    for (i = 0; i < count; i++) {
      s = 2 ^ int(rand() * levels); span = 256 * s
      cols = int((W + span - 1) / span); rows = int((H + span - 1) / span)
      tx = int(rand() * cols); ty = int(rand() * rows)
      x = tx * span; y = ty * span
      w = (x + span > W) ? W - x : span; h = (y + span > H) ? H - y : span
      printf "%s ?IIIF=%s/%d,%d,%d,%d/%d,/0/default.jpg\n", tag, img, x, y, w, h, int((w + s - 1) / s)
    }
  }' > "$1"
}

# list_regions FILE IMAGE W H MIN MAX OUT [COUNT] [TAG]: IIIF regions of random position and
# random width and height in [MIN, MAX] full-resolution pixels, scaled to OUT pixels wide.
list_regions() {
  awk -v img="$2" -v W="$3" -v H="$4" -v min="$5" -v max="$6" -v out="$7" -v count="${8:-2000}" \
    -v tag="${9:--}" 'BEGIN {
    srand(17)
    for (i = 0; i < count; i++) {
      w = min + int(rand() * (max - min + 1)); h = min + int(rand() * (max - min + 1))
      if (w > W) w = W; if (h > H) h = H
      x = int(rand() * (W - w + 1)); y = int(rand() * (H - h + 1))
      printf "%s ?IIIF=%s/%d,%d,%d,%d/%d,/0/default.jpg\n", tag, img, x, y, w, h, out
    }
  }' > "$1"
}

# list_mix FILE COUNT SEED LIST:WEIGHT...: COUNT requests drawn from the lists at random, each
# list with its weight (integers).
list_mix() {
  local out=$1 count=$2 seed=$3
  shift 3
  local files=() weights=() spec
  for spec in "$@"; do
    files+=("${spec%%:*}")
    weights+=("${spec##*:}")
  done
  awk -v count="$count" -v seed="$seed" -v weights="${weights[*]}" '
    FNR == 1 { f++ }
    { line[f, ++n[f]] = $0 }
    END {
      srand(seed)
      k = split(weights, wt, " "); total = 0
      for (j = 1; j <= k; j++) total += wt[j]
      for (i = 0; i < count; i++) {
        r = rand() * total; j = 1
        while (r >= wt[j] && j < k) { r -= wt[j]; j++ }
        print line[j, 1 + int(rand() * n[j])]
      }
    }' "${files[@]}" > "$out"
}

# ---------------------------------------------------------------------------------------------
# wrk scripts.

# list.lua: requests drawn at random from BENCH_LIST (seeded per thread), prefixed with
# BENCH_LOC; done() prints one machine-readable line:
#   BENCH requests duration_us p50_us p99_us status_errors connect read write timeout
write_lua() {
  cat > "$work/list.lua" <<'LUA'
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
function init(args)
  math.randomseed(7919 * id)
  local loc = os.getenv("BENCH_LOC")
  paths = {}
  for line in io.lines(os.getenv("BENCH_LIST")) do
    paths[#paths + 1] = loc .. line:match("^%S+ (.*)$")
  end
end
function request() return wrk.format("GET", paths[math.random(#paths)]) end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), e.status, e.connect,
    e.read, e.write, e.timeout))
end
LUA
  # tagged.lua: as list.lua, but each thread has one connection (wrk -t C -c C) and times its
  # own requests by tag (a request is answered before the next is sent), so that each kind of
  # a mix gets its own latency figures, kept per thread as a histogram of 1 % wide buckets in
  # global numbers (wrk copies numbers and strings between threads, not tables). done()
  # prints the line above, then per tag:
  #   TAG tag count p50_us p99_us non200
  cat > "$work/tagged.lua" <<'LUA'
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
end
local STEP = math.log(1.01)
local BUCKETS = 1900  -- 1.01^1900 µs > 100 s
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end
function init(args)
  math.randomseed(7919 * id)
  local loc = os.getenv("BENCH_LOC")
  paths, tags = {}, {}
  for line in io.lines(os.getenv("BENCH_LIST")) do
    local tag, path = line:match("^(%S+) (.*)$")
    paths[#paths + 1] = loc .. path
    tags[#tags + 1] = tag
  end
  seen = ""
end
local pending, started
function request()
  local i = math.random(#paths)
  pending, started = tags[i], now_us()
  return wrk.format("GET", paths[i])
end
function response(status, headers, body)
  if pending == nil then return end
  local us = math.max(1, now_us() - started)
  local b = math.min(BUCKETS, math.floor(math.log(us) / STEP))
  local key = "h_" .. pending .. "_" .. b
  if _G["n_" .. pending] == nil then
    seen = seen .. pending .. " "
    _G["n_" .. pending] = 0
    _G["bad_" .. pending] = 0
  end
  _G[key] = (_G[key] or 0) + 1
  _G["n_" .. pending] = _G["n_" .. pending] + 1
  if status ~= 200 then _G["bad_" .. pending] = _G["bad_" .. pending] + 1 end
  pending = nil
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d %d %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), e.status, e.connect,
    e.read, e.write, e.timeout))
  local hist, count, bad, order = {}, {}, {}, {}
  for _, t in ipairs(threads) do
    for tag in string.gmatch(t:get("seen") or "", "%S+") do
      if hist[tag] == nil then
        hist[tag], count[tag], bad[tag] = {}, 0, 0
        table.insert(order, tag)
      end
      count[tag] = count[tag] + t:get("n_" .. tag)
      bad[tag] = bad[tag] + t:get("bad_" .. tag)
      for b = 0, BUCKETS do
        local v = t:get("h_" .. tag .. "_" .. b)
        if v then hist[tag][b] = (hist[tag][b] or 0) + v end
      end
    end
  end
  for _, tag in ipairs(order) do
    local function pct(p)
      local want, acc = math.ceil(count[tag] * p / 100), 0
      for b = 0, BUCKETS do
        acc = acc + (hist[tag][b] or 0)
        if acc >= want then return math.exp((b + 0.5) * STEP) end
      end
      return 0
    end
    io.write(string.format("TAG %s %d %d %d %d\n", tag, count[tag], pct(50), pct(99), bad[tag]))
  end
end
LUA
}

# ---------------------------------------------------------------------------------------------
# Measuring.

# check_list SERVER LIST TYPE: the first requests of LIST answer 200 with content type TYPE on
# SERVER (ours, ref13, ref11). Prints nothing and returns 0 if so, else prints what came back.
check_list() {
  local server=$1 list=$2 type=$3 path code got
  while read -r _ path; do
    read -r code got < <(curl -s -o /dev/null -w '%{http_code} %{content_type}\n' \
      "http://127.0.0.1:$http_port/$server$path" </dev/null)
    if [ "$code" != 200 ] || [[ "$got" != "$type"* ]]; then
      echo "HTTP $code ${got:-(no type)} for ${path:0:90}"
      return 1
    fi
  done < <(head -n 5 "$list")
}

# ms MICROSECONDS: milliseconds, 2 significant decimals below 10 ms.
ms() { awk -v u="$1" 'BEGIN { m = u / 1000; printf (m < 10 ? "%.2f" : (m < 100 ? "%.1f" : "%.0f")), m }'; }
# rate R: requests/s, one decimal below 100.
rate() { awk -v r="$1" 'BEGIN { printf (r < 100 ? "%.1f" : "%.0f"), r }'; }

# run_wrk SERVER LIST SCRIPT [CONNS] [THREADS]: wrk against SERVER with LIST; sets the globals
# w_rps w_p50 w_p99 w_err (a description of errors, empty if none) and w_out (wrk's output).
run_wrk() {
  local server=$1 list=$2 script=$3 c=${4:-$conns} t=${5:-$threads}
  w_out=$(BENCH_LOC="/$server" BENCH_LIST="$list" wrk -t"$t" -c"$c" -d"${secs}s" --timeout 60s \
    --latency -s "$work/$script" "http://127.0.0.1:$http_port" 2>&1)
  if [ -n "${BENCH_LOG:-}" ]; then
    mkdir -p "$BENCH_LOG"
    printf '%s\n' "$w_out" >> "$BENCH_LOG/$(basename "$0" .sh)-$server.log"
  fi
  local line
  line=$(grep '^BENCH ' <<<"$w_out" || true)
  if [ -z "$line" ]; then
    w_rps=0 w_p50=0 w_p99=0 w_err="wrk failed: $(head -n 3 <<<"$w_out" | tr '\n' ' ')"
    return
  fi
  local n dur p50 p99 st co rd wr to
  read -r _ n dur p50 p99 st co rd wr to <<<"$line"
  w_rps=$(awk -v n="$n" -v d="$dur" 'BEGIN { print (d > 0 ? n * 1e6 / d : 0) }')
  w_p50=$p50
  w_p99=$p99
  w_err=""
  [ "$st" = 0 ] || w_err+="$st non-2xx of $n, "
  [ $((co + rd + wr + to)) = 0 ] || w_err+="socket errors $co/$rd/$wr/$to (connect/read/write/timeout), "
  [ "$n" -gt 0 ] || w_err+="no request completed, "
  w_err=${w_err%, }
}

# scenario LABEL LIST TYPE [NOTE]: measure LIST on every server and add a table row. TYPE is
# the expected content type (checked on the first requests before measuring). A server that
# does not answer 200 is not measured; its answer is reported in the notes.
scenario() {
  local label=$1 list=$2 type=$3 note=${4:-}
  local row="| $label |" notes=() ours_rps=0 server fail
  for server in ours ref13 ref11; do
    case $server in
      ref13) [ "$with13" = 1 ] || continue ;;
      ref11) [ "$with11" = 1 ] || continue ;;
    esac
    local name
    case $server in ours) name="this server" ;; ref13) name="iipsrv 1.3" ;; ref11) name="iipsrv 1.1" ;; esac
    local loc=$server
    [ "$server" != ours ] || loc=${OURS_LOC:-ours}
    if fail=$(check_list "$loc" "$list" "$type"); then
      run_wrk "$loc" "$list" list.lua
      [ -z "$w_err" ] || notes+=("**$name: $w_err**")
      local r50 r99 rr
      rr=$(rate "$w_rps")
      r50=$(ms "$w_p50")
      r99=$(ms "$w_p99")
      case $server in
        ours) ours_rps=$w_rps; row+=" $rr | $r50 | $r99 |" ;;
        ref13) row+=" $rr | $r50 | $r99 | $(awk -v a="$ours_rps" -v b="$w_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "—" }') |" ;;
        ref11) row+=" $rr | $r99 |" ;;
      esac
    else
      notes+=("**$name not measured: $fail**")
      case $server in
        ours) row+=" — | — | — |" ;;
        ref13) row+=" — | — | — | — |" ;;
        ref11) row+=" — | — |" ;;
      esac
    fi
  done
  [ -z "$note" ] || notes=("$note" "${notes[@]}")
  local joined
  joined=$(printf '%s; ' "${notes[@]}")
  rows+=("$row ${joined%; } |")
  [ "${BENCH_QUIET:-0}" = 1 ] || echo "${rows[-1]}" >&2
}

# mixed_scenario LABEL LIST TYPE TAG:NAME...: measure a tagged mix on every server (one
# connection per wrk thread) and add one row per named tag, with that kind's own requests/s,
# p50 and p99.
mixed_scenario() {
  local label=$1 list=$2 type=$3
  shift 3
  local server fail
  declare -A m_rps m_p50 m_p99 m_note
  for server in ours ref13 ref11; do
    case $server in
      ref13) [ "$with13" = 1 ] || continue ;;
      ref11) [ "$with11" = 1 ] || continue ;;
    esac
    if ! fail=$(check_list "$server" "$list" "$type"); then
      m_note[$server]="not measured: $fail"
      continue
    fi
    run_wrk "$server" "$list" tagged.lua "$conns" "$conns"
    [ -z "$w_err" ] || m_note[$server]="$w_err"
    local dur tag n p50 p99 nbad
    dur=$(awk '$1 == "BENCH" { print $3 }' <<<"$w_out")
    while read -r _ tag n p50 p99 nbad; do
      m_rps[$server:$tag]=$(awk -v n="$n" -v d="${dur:-0}" 'BEGIN { print (d > 0 ? n * 1e6 / d : 0) }')
      m_p50[$server:$tag]=$p50
      m_p99[$server:$tag]=$p99
      [ "$nbad" = 0 ] || m_note[$server]+=" $nbad non-200 ($tag)"
    done < <(grep '^TAG ' <<<"$w_out")
  done
  local spec
  for spec in "$@"; do
    local tag=${spec%%:*} name=${spec#*:} row notes=()
    row="| $label: $name |"
    for server in ours ref13 ref11; do
      case $server in
        ref13) [ "$with13" = 1 ] || continue ;;
        ref11) [ "$with11" = 1 ] || continue ;;
      esac
      local rps=${m_rps[$server:$tag]:-}
      if [ -z "$rps" ]; then
        case $server in ours) row+=" — | — | — |" ;; ref13) row+=" — | — | — | — |" ;; ref11) row+=" — | — |" ;; esac
      else
        local rr r50 r99
        rr=$(rate "$rps")
        r50=$(ms "${m_p50[$server:$tag]}")
        r99=$(ms "${m_p99[$server:$tag]}")
        case $server in
          ours) row+=" $rr | $r50 | $r99 |" ;;
          ref13) row+=" $rr | $r50 | $r99 | $(awk -v a="${m_rps[ours:$tag]:-0}" -v b="$rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "—" }') |" ;;
          ref11) row+=" $rr | $r99 |" ;;
        esac
      fi
    done
    for server in ours ref13 ref11; do
      local note=${m_note[$server]:-}
      [ -z "$note" ] && continue
      case $server in ours) notes+=("**this server: $note**") ;; ref13) notes+=("**iipsrv 1.3: $note**") ;; ref11) notes+=("**iipsrv 1.1: $note**") ;; esac
    done
    local joined
    joined=$(printf '%s; ' "${notes[@]}")
    rows+=("$row ${joined%; } |")
    [ "${BENCH_QUIET:-0}" = 1 ] || echo "${rows[-1]}" >&2
  done
}

# ---------------------------------------------------------------------------------------------
# Test images, made once in $dir.

# make_texture W H OUT: a W×H 8-bit RGB procedural texture (three Perlin-noise bands plus light
# noise) as a vips image OUT (.v), in the current directory. JPEG Q90 tiles of it are ~36 KB.
make_texture() {
  local w=$1 h=$2 out=$3 b
  for b in 1 2 3; do
    vips perlin a$b.v "$w" "$h" --cell-size 64 --seed $b
    vips perlin b$b.v "$w" "$h" --cell-size 16 --seed $((b + 10))
    vips gaussnoise n$b.v "$w" "$h" --sigma 2.5 --mean 0 --seed $b
    vips add a$b.v b$b.v s$b.v && vips linear s$b.v l$b.v 90 128 && vips add l$b.v n$b.v c$b.v
    rm -f a$b.v b$b.v n$b.v s$b.v l$b.v
  done
  vips bandjoin "c1.v c2.v c3.v" rgb.v && vips cast rgb.v "$out" uchar
  rm -f c1.v c2.v c3.v rgb.v
}

# The pyramid: big.tif, 16384×12288, tiled 256², JPEG Q90 (~39 KB tiles, ~160 MB; ~4 GB of
# scratch space and a few minutes to make).
PYR_W=16384
PYR_H=12288
ensure_pyramid() {
  [ -f "$dir/big.tif" ] && return
  echo "making $dir/big.tif (once) ..." >&2
  (
    cd "$dir" || exit 1
    make_texture $PYR_W $PYR_H big-rgb.v
    vips tiffsave big-rgb.v big.tif.part --tile --pyramid --compression jpeg --Q 90 \
      --tile-width 256 --tile-height 256
    rm -f big-rgb.v
    mv big.tif.part big.tif
  )
}

# The JPEG2000 and plain JPEG sources, 5003×3701 (odd sizes on purpose): tex5003.jp2 (256²
# codestream tiles, 6 resolutions, 3 quality layers at 80:1, 40:1, 20:1; ~2.7 MB),
# tex5003-untiled.jp2 (the same without codestream tiles but with precincts of 256² at the
# two largest resolutions, 128² and 64² below, RPCL order: the layout of many archival
# masters; ~2.8 MB) and tex5003.jpg (baseline JPEG Q90, ~5.8 MB).
J2K_W=5003
J2K_H=3701
ensure_small_sources() {
  [ -f "$dir/tex5003.jp2" ] && [ -f "$dir/tex5003-untiled.jp2" ] && [ -f "$dir/tex5003.jpg" ] && return
  echo "making $dir/tex5003.jp2, tex5003-untiled.jp2 and tex5003.jpg (once) ..." >&2
  (
    cd "$dir" || exit 1
    make_texture $J2K_W $J2K_H tex5003.v
    vips ppmsave tex5003.v tex5003.ppm
    vips jpegsave tex5003.v tex5003.jpg --Q 90
    opj_compress -i tex5003.ppm -o tex5003.part.jp2 -t 256,256 -n 6 -r 80,40,20 >/dev/null
    mv tex5003.part.jp2 tex5003.jp2
    opj_compress -i tex5003.ppm -o tex5003-untiled.part.jp2 -n 6 -r 80,40,20 -p RPCL \
      -c '[256,256],[256,256],[128,128],[128,128],[64,64],[64,64]' >/dev/null
    mv tex5003-untiled.part.jp2 tex5003-untiled.jp2
    rm -f tex5003.v tex5003.ppm
  )
}
