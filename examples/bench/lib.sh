# Shared by the benchmark scripts in this folder (sourced, not run).

# write_nginx_conf WORK HTTP_PORT UPSTREAMS LOCATIONS: an nginx.conf in WORK, 2 workers, no
# access log, temporary paths in WORK, listening on 127.0.0.1:HTTP_PORT. UPSTREAMS is the text
# of upstream blocks, LOCATIONS the text of the server's location blocks.
write_nginx_conf() {
  cat > "$1/nginx.conf" <<CONF
user root;
worker_processes 2;
error_log $1/error.log crit;
pid $1/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $1/b; fastcgi_temp_path $1/f; proxy_temp_path $1/p;
  uwsgi_temp_path $1/u; scgi_temp_path $1/s;
  fastcgi_buffers 64 16k;
  $3
  server {
    listen 127.0.0.1:$2;
    $4
  }
}
CONF
}

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

# bench_cleanup: stop what a benchmark started (its jobs, iipsrv 1.1 processes, nginx in
# $work) and remove $work. Use as `trap bench_cleanup EXIT`.
bench_cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  pkill -f /usr/lib/iipimage-server/iipsrv.fcgi || true
  nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$work"
}
