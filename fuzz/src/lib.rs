//! Helpers shared by the fuzz targets (`fuzz_targets/*.rs`); see docs/reliability.md.
//!
//! - [`MemFile`]: fuzz input as a file (a `memfd`, opened by the sources through
//!   `/proc/self/fd/N`), so file targets leave nothing on disk and cost no disk I/O;
//! - [`app`]: an [`App`] from explicit settings (no environment, no memcached, no caches unless
//!   asked);
//! - [`exercise_source`]: open, info, a few tiles of every level and page, the stored tiles;
//! - [`check_response`]: the properties every response must have (header lines without CR, LF
//!   or NUL, `Content-Length` equal to the body, no server path in the body);
//! - [`Rng`]: a small deterministic generator, seeded from the input, for splits and choices;
//! - [`Mock`]: the client side of a connection for the transport targets.

use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;

use iipsrv::app::App;
use iipsrv::config::Config;
use iipsrv::http::Response;
use iipsrv::source::{ImageInfo, ImageSource};

/// Tiles decoded per level (the first and the last, then a few chosen by the input).
pub const TILES_PER_LEVEL: usize = 4;
/// Levels whose tiles are decoded (the smallest ones: cheapest, and a pyramid's small levels
/// exercise the same code as the large ones).
pub const MAX_LEVELS: usize = 6;
/// Stack pages whose tiles are decoded.
pub const MAX_PAGES: u32 = 3;

/// An anonymous in-memory file, rewritten for every input.
pub struct MemFile {
    file: std::fs::File,
    path: PathBuf,
}

impl MemFile {
    /// A new empty memfd named `name` (the name only shows in `/proc`).
    pub fn new(name: &str) -> MemFile {
        let cname = std::ffi::CString::new(name).unwrap();
        // SAFETY: memfd_create takes a NUL-terminated name and flags; the fd is owned below.
        let fd = unsafe { libc::memfd_create(cname.as_ptr(), 0) };
        assert!(fd >= 0, "memfd_create failed");
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let file = unsafe { std::fs::File::from_raw_fd(fd) };
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        MemFile { file, path }
    }

    /// Replace the contents with `data`; returns the path to open.
    pub fn write(&mut self, data: &[u8]) -> &std::path::Path {
        self.file.set_len(0).unwrap();
        self.file.seek(SeekFrom::Start(0)).unwrap();
        self.file.write_all(data).unwrap();
        &self.path
    }
}

/// An application with the given settings (names as the environment variables) on top of
/// quiet defaults: no log, no memcached, no tile or metadata cache (so that every input is
/// decoded afresh and inputs do not influence each other).
pub fn app(settings: &[(&str, &str)]) -> App {
    let defaults = [
        ("VERBOSITY", "0"),
        ("LOGFILE", "/dev/null"),
        ("MEMCACHED_SERVERS", ""),
        ("MAX_IMAGE_CACHE_SIZE", "0"),
        ("MAX_METADATA_CACHE_SIZE", "0"),
        ("IIPSRV_JPEG_CACHE_SIZE", "0"),
        ("IIPSRV_WORKERS", "1"),
    ];
    let lookup = |name: &str| {
        settings
            .iter()
            .chain(defaults.iter())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    };
    let (config, _) = Config::from_lookup(lookup);
    App::new(config)
}

/// A xorshift generator: cheap, deterministic, seeded from the input.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// Seeded from a hash of `data`.
    pub fn from_data(data: &[u8]) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Rng::new(h)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// Cut `len` bytes into pieces of 1..=max bytes; returns the piece lengths.
    pub fn cuts(&mut self, len: usize, max: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut left = len;
        while left > 0 {
            let n = (1 + self.below(max.max(1) as u64) as usize).min(left);
            out.push(n);
            left -= n;
        }
        out
    }
}

/// Check what the source says about itself, then decode a few tiles of every level (the
/// smallest [`MAX_LEVELS`]) and page, and read the stored tiles for pass-through. Every tile
/// must have the size its level promises. Errors are fine; panics and wrong sizes are not.
pub fn exercise_source(source: &dyn ImageSource, rng: &mut Rng) {
    let info = source.info();
    check_info(info);
    let n = info.num_resolutions();
    let pages = (info.stack.len() as u32).clamp(1, MAX_PAGES);
    for page in 0..pages {
        for r in 0..n.min(MAX_LEVELS as u32) {
            let level = *info.level(r).unwrap();
            let count = level.tile_count();
            let mut tiles = vec![0, count.saturating_sub(1)];
            for _ in 2..TILES_PER_LEVEL {
                tiles.push(rng.below(count));
            }
            tiles.dedup();
            for t in tiles {
                let t = t as u32;
                if let Ok(img) = source.tile(r, t, page, 0) {
                    let (w, h) = level.tile_size(t).unwrap();
                    assert_eq!(
                        (img.width, img.height),
                        (w, h),
                        "tile {t} of resolution {r}"
                    );
                    assert_eq!(
                        img.samples.len(),
                        w as usize * h as usize * img.channels as usize,
                        "sample count of tile {t} of resolution {r}"
                    );
                }
                let _ = source.raw_tile(r, t, page);
            }
        }
    }
    // Out of range: errors, not panics.
    assert!(source.tile(n, 0, 0, 0).is_err());
    if let Some(level) = info.level(0) {
        let past = level.tile_count().min(u32::MAX as u64) as u32;
        assert!(source.tile(0, past, 0, 0).is_err());
    }
}

/// What an [`ImageInfo`] must satisfy: levels largest first, each smaller or equal, the first
/// the full size, no zero-sized level or tile.
pub fn check_info(info: &ImageInfo) {
    assert!(!info.levels.is_empty(), "no levels");
    assert_eq!(
        (info.levels[0].width, info.levels[0].height),
        (info.width, info.height),
        "level 0 is not the full size"
    );
    for pair in info.levels.windows(2) {
        assert!(
            pair[1].width <= pair[0].width && pair[1].height <= pair[0].height,
            "levels not largest first: {:?}",
            info.levels
        );
    }
    for l in &info.levels {
        assert!(l.width > 0 && l.height > 0, "empty level {l:?}");
        assert!(l.tile_width > 0 && l.tile_height > 0, "empty tiles {l:?}");
    }
    assert!(info.channels > 0, "no channels");
}

/// The properties of every response: header names are tokens, header values hold no CR, LF or
/// NUL, a `Content-Length` equals the body length, and the body names none of `secrets` (server
/// paths).
pub fn check_response(r: &Response, secrets: &[&str]) {
    for (name, value) in r.headers() {
        assert!(
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
            "header name {name:?}"
        );
        assert!(
            !value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)),
            "header {name}: {value:?} holds CR, LF or NUL"
        );
        for s in secrets {
            assert!(!value.contains(s), "header {name}: {value:?} names {s}");
        }
    }
    if let Some(len) = r.header("Content-Length") {
        assert_eq!(
            len.trim().parse::<usize>().ok(),
            Some(r.body.len()),
            "Content-Length"
        );
    }
    let status = r.status();
    assert!((100..600).contains(&status), "status {status}");
    for s in secrets {
        assert!(
            !r.body.windows(s.len()).any(|w| w == s.as_bytes()),
            "the body names {s}"
        );
    }
}

/// The client side of a connection: reads deliver `input` in pieces of the sizes in `cuts`
/// (taken from the end), then end of file; writes are collected in `output`.
pub struct Mock {
    input: Vec<u8>,
    at: usize,
    cuts: Vec<usize>,
    pub output: Vec<u8>,
}

impl Mock {
    pub fn new(input: Vec<u8>, cuts: Vec<usize>) -> Mock {
        Mock {
            input,
            at: 0,
            cuts,
            output: Vec::new(),
        }
    }
}

impl tokio::io::AsyncRead for Mock {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        let want = this.cuts.pop().unwrap_or(usize::MAX);
        let n = want.min(buf.remaining()).min(this.input.len() - this.at);
        buf.put_slice(&this.input[this.at..this.at + n]);
        this.at += n;
        std::task::Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Mock {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.output.extend_from_slice(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
