#!/bin/sh
# Rebuild the committed seed corpora in fuzz/seeds/TARGET/ (small on purpose: libFuzzer grows
# its working corpus in fuzz/corpus/, which is not committed). Copies of small fixtures, tiny
# images made with vips and opj_compress, and hand-written requests, streams and replies.
# Usage: sh fuzz/make-seeds.sh   (from anywhere; needs vips, opj_compress, python3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fx="$here/../fixtures"
seeds="$here/seeds"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$seeds"
mkdir -p "$seeds"

mkdir "$seeds/tiff"
for f in rgb8_jpeg rgb8_webp rgb8_zstd rgb8_lzw rgb8_nonsquare grey16 grey1 grey12 grey32f \
	grey8_sparse grey8_bigtiff_be palette4 lab8 metadata stack_classic stack_subifd \
	bad_mask_only bad_loop bad_jpeg; do
	cp "$fx/tiff/$f.tif" "$seeds/tiff/"
done

# 40x30 crops of the sample: JPEG2000 with tiles, layers and resolutions; raw codestream.
vips crop "$fx/sample.tif" "$work/crop.v" 300 300 40 30
vips copy "$work/crop.v" "$work/crop.ppm"
vips colourspace "$work/crop.v" "$work/grey.v" b-w
vips copy "$work/grey.v" "$work/grey.pgm"
mkdir "$seeds/jp2"
opj_compress -i "$work/crop.ppm" -o "$seeds/jp2/tiled_layers.jp2" -n 3 -t 16,16 -r 40,20,10 >/dev/null
opj_compress -i "$work/grey.pgm" -o "$seeds/jp2/grey.j2k" -n 2 >/dev/null
for f in bilevel.jp2 bad_truncated_header.jp2 bad_no_codestream.jp2; do
	cp "$fx/jp2/$f" "$seeds/jp2/"
done

mkdir "$seeds/jpeg"
vips jpegsave "$work/crop.v" "$seeds/jpeg/progressive.jpg" --interlace --Q 60
vips jpegsave "$work/grey.v" "$seeds/jpeg/grey.jpg" --Q 50
vips jpegsave "$work/crop.v" "$seeds/jpeg/rgb444.jpg" --Q 80 --subsample-mode off
for f in small.jpg cmyk.jpg bad_header_only.jpg; do
	cp "$fx/jpeg/$f" "$seeds/jpeg/"
done

python3 - "$seeds" <<'PY'
import os, struct, sys
seeds = sys.argv[1]

def put(target, name, data):
    os.makedirs(f'{seeds}/{target}', exist_ok=True)
    with open(f'{seeds}/{target}/{name}', 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# request: first line the request string, then NAME=VALUE lines, an empty line, the body.
requests = [
    'FIF=t.tif&OBJ=IIP,1.0&OBJ=Max-size&OBJ=Tile-size&OBJ=Resolution-number',
    'FIF=t.tif&JTL=2,3',
    'FIF=g.tif&PTL=1,0',
    'FIF=s.tif&SDS=1,90&JTL=0,0',
    'FIF=j.jp2&WID=200&RGN=0.1,0.1,0.5,0.5&CVT=jpeg',
    'FIF=p.jpg&HEI=100&ROT=90&CVT=png',
    'FIF=f.tif&MINMAX=1:0,1&CMP=JET&CVT=webp',
    'FIF=t.tif&CNT=2.5&GAM=log&INV&SHD=45,30&JTL=1,0',
    'FIF=m.tif&OBJ=IIP,1.0&OBJ=Metadata&OBJ=dpi&OBJ=colorspace,*,*',
    'FIF=obj&OBJ=Horizontal-views&OBJ=Vertical-views&SDS=30,90&JTL=0,0',
    'FIF=t.tif&SPECTRA=1,0,10,10',
    'FIF=g.tif&CTW=[0.5,0.5,0.5]&CNV=sobel&QLT=90&CVT=tiff',
    'IIIF=t.tif/info.json',
    'IIIF=t.tif/full/max/0/default.jpg',
    'IIIF=j.jp2/0,0,4200,1/max/0/default.jpg',
    'IIIF=t.tif/pct:10,10,50,50/^!300,300/!90/gray.png',
    'IIIF=s.tif;1/square/,40/180/bitonal.webp',
    'IIIF=t.tif',
    'Zoomify=t.tif/ImageProperties.xml',
    'Zoomify=t.tif/TileGroup0/1-0-0.jpg',
    'DeepZoom=t.tif.dzi',
    'DeepZoom=j.jp2_files/7/0_0.jpg',
    '/iiif/t.tif/info.json',
    '/iiif/t.tif/full/full/0/default.jpg',
    '/iiif/g.tif/0,0,1,150/99999999999999999999,/0/default.jpg',
    '/iiif/s.tif',
    'FIF=t.tif&JTL=0,0\nREQUEST_METHOD=HEAD',
    'FIF=t.tif&OBJ=IIP,1.0&OBJ=Max-size\nHTTP_IF_MODIFIED_SINCE=Thu, 01 Jan 1970 00:00:00 GMT',
    'IIIF=t.tif/info.json\nHTTP_ACCEPT=application/ld+json;profile="http://iiif.io/api/image/2/context.json"\nHTTP_X_IIIF_ID=https://example.org/x',
    '\nREQUEST_METHOD=POST\nCONTENT_LENGTH=29\n\nFIF=t.tif&OBJ=IIP,1.0&OBJ=dpi',
    'FIF=../../etc/passwd&OBJ=Max-size',
    'FIF=b.tif&JTL=0,0',
]
for i, r in enumerate(requests):
    put('request', f'{i:02}', r)

# iiif_params: width, height (u32 LE), settings byte, the parameters.
params = [
    (1000, 750, 0, 'full/max/0/default.jpg'),
    (5000, 5000, 4, '0,0,4200,1/max/0/default.jpg'),
    (5000, 5000, 0, '0,0,1,150/^99999999999999999999,/0/default.jpg'),
    (1000, 750, 1, 'pct:10,10,50,50/!200,200/!90/gray.png'),
    (1000, 750, 9, 'square/full/180/bitonal.webp'),
    (70000, 3, 2, 'full/^pct:150/270/color.tif'),
    (1, 1, 16, 'full/^1,1/360/negative.avif'),
]
for i, (w, h, s, p) in enumerate(params):
    put('iiif_params', f'{i:02}', struct.pack('<IIB', w, h, s) + p.encode())

# fastcgi: mode byte 0 (records) or 1 (a bare PARAMS stream).
def rec(t, rid, content, pad=None):
    pad = (-len(content)) % 8 if pad is None else pad
    return struct.pack('>BBHHBB', 1, t, rid, len(content), pad, 0) + content + bytes(pad)
def nv(n, v):
    def ln(x):
        return bytes([x]) if x < 128 else struct.pack('>I', x | 0x80000000)
    return ln(len(n)) + ln(len(v)) + n + v
def begin(rid, keep, role=1):
    return rec(1, rid, struct.pack('>HB5x', role, 1 if keep else 0))
pairs = nv(b'REQUEST_METHOD', b'GET') + nv(b'QUERY_STRING', b'FIF=t.tif&JTL=0,0') + \
    nv(b'HTTP_COOKIE', b'x' * 200) + nv(b'N\xc3', b'\xff')
request = begin(1, True) + rec(4, 1, pairs[:7]) + rec(4, 1, pairs[7:]) + rec(4, 1, b'') + \
    rec(5, 1, b'')
put('fastcgi', 'request', b'\0' + request)
put('fastcgi', 'two-requests', b'\0' + request + begin(1, False) + rec(4, 1, pairs) + rec(4, 1, b'') +
    rec(5, 1, b'body') + rec(5, 1, b''))
put('fastcgi', 'get-values', b'\0' + rec(9, 0, nv(b'FCGI_MAX_CONNS', b'') + nv(b'FCGI_MPXS_CONNS', b'')) +
    rec(42, 0, b'unknown'))
put('fastcgi', 'abort-mpx', b'\0' + begin(1, True) + rec(4, 1, pairs) + begin(2, True) +
    rec(2, 1, b'') + rec(4, 1, b'') + rec(5, 1, b''))
put('fastcgi', 'params-stream', b'\x01' + pairs)
put('fastcgi', 'params-long', b'\x01' + nv(b'A' * 130, b'B' * 300) + nv(b'', b''))

# http: raw requests.
http = [
    b'GET /fcgi-bin/iipsrv.fcgi?FIF=t.tif&JTL=0,0 HTTP/1.1\r\nHost: example.org\r\n\r\n',
    b'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 41\r\n\r\nStatus: 404 Not Found\r\nX-A: b\r\n\r\nbody',
    b'GET /iiif/t.tif/info.json HTTP/1.1\r\nHost: a\r\nAccept: application/ld+json\r\nX-IIIF-ID: x\r\n\r\n',
    b'GET /a?b HTTP/1.1\r\nHost: a\r\n\r\nGET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    b'HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
    b'POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    b'OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n',
]
for i, r in enumerate(http):
    put('http', f'{i:02}', r)

# memcached: mode byte 0 (reply frames) or 1 (a stored value).
value = b'Server: iipsrv/1.3\r\nLast-Modified: Thu, 01 Jan 1970 00:00:00 GMT\r\n' \
    b'Content-Type: image/jpeg\r\nContent-Length: 4\r\n\r\n\xff\xd8\xff\xd9'
def reply(op, status, extras, key, val):
    body = extras + key + val
    return struct.pack('>BBHBBHIIQ', 0x81, op, len(key), len(extras), 0, status, len(body), 0, 0) + body
put('memcached', 'hit', b'\0' + reply(0, 0, bytes(4), b'', value) + reply(1, 0, b'', b'', b'') +
    reply(0x0a, 0, b'', b'', b''))
put('memcached', 'miss', b'\0' + reply(0, 1, b'', b'', b'Not found'))
put('memcached', 'value', b'\x01' + value)
put('memcached', 'status', b'\x01Status: 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nError/7:3 2 x\r\n')
PY
du -sh "$seeds"
