#!/usr/bin/env bash
# Builds the reference the benchmarks compare with: upstream iipsrv at its 1.3 release tag,
# with OpenJPEG, PNG, WebP, AVIF and libmemcached enabled, on Debian 12.
#
# Usage: bash examples/bench/build-iipsrv13.sh [OUT]   (default: $BENCH_DIR or /tmp/iipsrv-bench)
# Result: OUT/iipsrv-1.3.fcgi, which lib.sh uses when IIPSRV13 is not set.
set -euo pipefail
out=${1:-${BENCH_DIR:-/tmp/iipsrv-bench}}
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
  build-essential autoconf automake libtool pkg-config git ca-certificates \
  libtiff-dev libjpeg-dev zlib1g-dev libpng-dev libwebp-dev libavif-dev \
  libopenjp2-7-dev libmemcached-dev libfcgi-dev
git clone -q https://github.com/ruven/iipsrv "$src/iipsrv"
cd "$src/iipsrv"
# The release is tagged iipsrv-1.3 (commit 29d981b35f30acf44cdb418b54cb80bff1b87322).
git checkout -q 29d981b35f30acf44cdb418b54cb80bff1b87322
if [ -x ./autogen.sh ]; then ./autogen.sh; else autoreconf -fi; fi
./configure --enable-openjpeg | tee configure.out
# configure's summary must show every codec, or the comparison would not be like for like.
for want in 'Memcached *: *true' 'JPEG2000 *: *true' 'PNG +Output *: *true' \
            'WebP Output *: *true' 'AVIF Output *: *true'; do
  grep -Eq "$want" configure.out || { echo "configure did not enable: $want" >&2; exit 1; }
done
make -j"$(nproc)"
mkdir -p "$out"
install -m 755 src/iipsrv.fcgi "$out/iipsrv-1.3.fcgi"
echo "built $out/iipsrv-1.3.fcgi"
