#!/usr/bin/env bash
# One command on a fresh Debian machine: install the build's packages, build, and serve the
# bundled sample image over plain HTTP. Usage: bash examples/quickstart.sh [HOST:PORT]
set -euo pipefail
cd "$(dirname "$0")/.."
addr=${1:-127.0.0.1:8080}

packages=$(grep -v '^#' .ci/debian-packages | tr '\n' ' ')
need_install() {
  for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 0
  done
  return 1
}
if need_install; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "Rust is needed: https://rustup.rs (or apt-get install cargo)" >&2
  exit 1
fi
cargo build --release --locked

base="http://$addr"
cat <<MSG

iipsrv is serving fixtures/ on $base (Ctrl-C stops it). Look at the sample in a browser
(IIIF, DeepZoom, Zoomify and IIP tile sources to choose from):
  $base/viewer/sample.tif
or ask for its parts:
  $base/?FIF=sample.tif&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Resolutions
  $base/?FIF=sample.tif&JTL=2,0
  $base/iiif/sample.tif/info.json
  $base/iiif/sample.tif/full/max/0/default.jpg
  $base/?DeepZoom=sample.tif.dzi
  $base/?Zoomify=sample.tif/ImageProperties.xml

MSG
export FILESYSTEM_PREFIX="$PWD/fixtures/" URI_MAP="iiif=>IIIF" CORS="*" VERBOSITY="${VERBOSITY:-1}" \
  LOGFILE="${LOGFILE:-/tmp/iipsrv.log}"
exec ./target/release/iipsrv --http "$addr"
