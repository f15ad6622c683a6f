//! Where the time of a JPEG2000 region export goes (docs/performance.md): for seeded random
//! regions of 1000–3000 full-resolution pixels scaled to 512 wide (as `examples/bench/
//! formats.sh` asks for them), compares in-process, tile cache off:
//! - the region as served today (`render::read_region`: one OpenJPEG decode per 256² tile of
//!   the chosen level, decoded in parallel on the shared thread pool, then stitched);
//! - the same pixels from one OpenJPEG decode of the whole window (`Jp2Source::region`);
//! - the whole request (`render::region_with`: read, resize, JPEG encode);
//! - one decode of a 1×1 window at the same level (what every decode pays before any pixel:
//!   the code-blocks under that pixel), and at the smallest level (opening and parsing alone);
//!
//! and prints wall and CPU time (all threads) per region for each.
//!
//! `cargo run --release --example profile_jp2 -- FILE.jp2 [REGIONS] [MIN MAX]`
//! (RAYON_NUM_THREADS=1 for the tiles decoded one after the other; PROFILE_REGIONS=FILE writes
//! the regions as `x,y,w,h` lines).
use std::time::{Duration, Instant};

use iipsrv::config::Config;
use iipsrv::encode::OutputFormat;
use iipsrv::render::{self, RegionOptions};
use iipsrv::shared::Shared;
use iipsrv::source::jp2::Jp2Source;
use iipsrv::view::{Region, View};

/// CPU time of the whole process (every thread).
fn cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[derive(Default)]
struct Clock {
    wall: Duration,
    cpu: Duration,
}

impl Clock {
    fn time<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let (w, c) = (Instant::now(), cpu());
        let r = f();
        self.wall += w.elapsed();
        self.cpu += cpu() - c;
        r
    }

    fn line(&self, what: &str, n: u32) {
        println!(
            "{what:<58} wall {:>7.1} ms  cpu {:>7.1} ms  per region",
            self.wall.as_secs_f64() * 1e3 / n as f64,
            self.cpu.as_secs_f64() * 1e3 / n as f64
        );
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = std::path::PathBuf::from(args.next().expect("a JPEG2000 file"));
    let n: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(20);
    let min: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let max: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let dir = path.parent().unwrap().to_path_buf();
    let key = path.file_name().unwrap().to_string_lossy().into_owned();
    let (mut config, _) = Config::from_lookup(|_| None);
    config.files.prefix = format!("{}/", dir.display());
    config.caches.tile_mb = 0.0;
    let app = Shared::new(config);
    let image = iipsrv::open_image::open_image(&app, key.as_bytes()).unwrap();
    let jp2 = Jp2Source::open(&path).unwrap();
    let info = image.info();
    let levels = info.levels.len() as u32;
    let (width, height) = (info.width, info.height);
    println!(
        "{key}: {width}x{height}, {levels} levels, {} quality layers; regions {min}–{max} px → 512 wide",
        info.quality_layers
    );

    // A seeded LCG, so that every run asks for the same regions.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = |below: u32| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) % below.max(1) as u64) as u32
    };
    let options = RegionOptions::iip(app.config());
    let (mut tiled, mut window, mut whole, mut empty, mut fixed) = (
        Clock::default(),
        Clock::default(),
        Clock::default(),
        Clock::default(),
        Clock::default(),
    );
    // PROFILE_REGIONS=FILE writes the regions (x,y,w,h), to ask another server for them.
    let mut urls = std::env::var_os("PROFILE_REGIONS").map(|p| std::fs::File::create(p).unwrap());
    let (mut tiles, mut pixels, mut decoded) = (0u64, 0u64, 0u64);
    let mut by_level = std::collections::BTreeMap::<u32, u32>::new();
    for i in 0..n {
        let w = (min + next(max - min + 1)).min(width);
        let h = (min + next(max - min + 1)).min(height);
        let (x, y) = (next(width - w + 1), next(height - h + 1));
        let view = View {
            region: Some(Region::Pixels { x, y, w, h }),
            width: Some(512),
            ..View::default()
        };
        let plan = render::region_plan(&app, &image, &view, &options).unwrap();
        let level = info.levels[plan.level];
        let (tw, th) = (level.tile_width, level.tile_height);
        let cells = ((plan.x + plan.w - 1) / tw - plan.x / tw + 1) as u64
            * ((plan.y + plan.h - 1) / th - plan.y / th + 1) as u64;
        let area = (plan.x, plan.y, plan.w, plan.h);
        let a = tiled.time(|| render::read_region(&app, &image, &view, plan.resolution, area));
        let b = window.time(|| jp2.region(plan.resolution, plan.x, plan.y, plan.w, plan.h, 0));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.samples == b.samples, "region {i}: the two paths differ");
        whole
            .time(|| render::region_with(&app, &image, &view, OutputFormat::Jpeg, &options))
            .unwrap();
        empty
            .time(|| jp2.region(plan.resolution, plan.x, plan.y, 1, 1, 0))
            .unwrap();
        fixed.time(|| jp2.region(0, 0, 0, 1, 1, 0)).unwrap();
        if let Some(out) = urls.as_mut() {
            use std::io::Write;
            writeln!(out, "{x},{y},{w},{h}").unwrap();
        }
        tiles += cells;
        pixels += plan.w as u64 * plan.h as u64;
        decoded += cells * tw as u64 * th as u64;
        *by_level.entry(plan.level as u32).or_default() += 1;
        if i < 5 {
            println!(
                "  region {x},{y} {w}x{h}: level {} ({}x{}), window {}x{} at {},{}, {cells} tiles of {tw}x{th}",
                plan.level, level.width, level.height, plan.w, plan.h, plan.x, plan.y
            );
        }
    }
    println!(
        "{n} regions; levels used (0 = full size): {by_level:?}; {:.1} tiles and {:.2} Mpx per region \
         ({:.2} Mpx counting whole edge tiles)",
        tiles as f64 / n as f64,
        pixels as f64 / n as f64 / 1e6,
        decoded as f64 / n as f64 / 1e6
    );
    tiled.line("read_region (one decode per 256² tile, as served today)", n);
    window.line("Jp2Source::region (one decode of the whole window)", n);
    empty.line("one decode of a 1x1 window at the same level", n);
    fixed.line("one decode of a 1x1 window at the smallest level", n);
    whole.line("region_with (read_region + resize + JPEG encode)", n);
}
