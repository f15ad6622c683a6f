#!/bin/sh
# Start iipsrv under spawn-fcgi, which hands it the listening socket on file descriptor 0 (no
# --bind), as older iipsrv set-ups do. The settings below can be overridden in the environment.
# Usage:  sh examples/spawn-fcgi-iipsrv.sh            (as root: the process runs as $RUN_AS)
#         FOREGROUND=1 sh examples/spawn-fcgi-iipsrv.sh   (stay in the foreground, for a supervisor)
# Debian:  apt-get install spawn-fcgi
set -eu

IIPSRV=${IIPSRV:-/usr/local/bin/iipsrv}
SOCKET=${SOCKET:-/run/iipsrv/iipsrv.sock}   # a UNIX socket path, or HOST:PORT
RUN_AS=${RUN_AS:-www-data}                  # the process's user, and the socket's owner
PIDFILE=${PIDFILE:-/run/iipsrv/iipsrv.pid}

export VERBOSITY="${VERBOSITY:-1}"
export LOGFILE="${LOGFILE:-/var/log/iipsrv/iipsrv.log}"
export FILESYSTEM_PREFIX="${FILESYSTEM_PREFIX:-/var/www/images/}"
export MAX_IMAGE_CACHE_SIZE="${MAX_IMAGE_CACHE_SIZE:-256}"
export JPEG_QUALITY="${JPEG_QUALITY:-90}"
export URI_MAP="${URI_MAP:-iiif=>IIIF}"
export CORS="${CORS:-*}"
export MEMCACHED_SERVERS="${MEMCACHED_SERVERS:-localhost}"

case "$SOCKET" in
    /*) set -- -s "$SOCKET" -M 0660 ;;
    *) set -- -a "${SOCKET%:*}" -p "${SOCKET##*:}" ;;
esac
if [ "$(id -u)" = 0 ]; then
    set -- "$@" -u "$RUN_AS" -g "$RUN_AS" -U "$RUN_AS" -G "$RUN_AS"
fi
if [ -n "${FOREGROUND:-}" ]; then
    set -- "$@" -n
else
    set -- "$@" -P "$PIDFILE"
fi
exec spawn-fcgi "$@" -- "$IIPSRV"
