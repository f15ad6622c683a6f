//! Times the arbitrary rotation (`pipeline::rotate_arbitrary`) of a 1024×1024 RGB image.
//!
//! ```text
//! cargo run --release --example rotate_bench [RUNS]
//! ```
//!
//! RUNS (default 15) rotations per case; the median is printed, on rayon's default pool (one
//! thread per core) and on a single thread, as wall time and, for the single thread, as the
//! thread's CPU time (steadier on a busy machine). For comparison, the 90° case is the
//! quarter-turn copy of `pipeline::rotate`.

use std::time::{Duration, Instant};

use iipsrv::image::{ColourSpace, RawImage};
use iipsrv::pipeline::rotate_arbitrary::{Background, apply};

fn image(side: u32) -> RawImage {
    let data = (0..side * side * 3)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    RawImage::from_u8(side, side, 3, ColourSpace::Srgb, data)
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Median wall time and median CPU time of the calling thread.
fn median(
    img: &RawImage,
    degrees: f64,
    background: Background,
    runs: usize,
) -> (Duration, Duration) {
    let (mut wall, mut cpu): (Vec<Duration>, Vec<Duration>) = (0..runs)
        .map(|_| {
            let input = img.clone();
            let (start, start_cpu) = (Instant::now(), thread_cpu());
            std::hint::black_box(apply(input, degrees, false, background).expect("rotates"));
            (start.elapsed(), thread_cpu() - start_cpu)
        })
        .unzip();
    wall.sort();
    cpu.sort();
    (wall[runs / 2], cpu[runs / 2])
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15)
        .max(1);
    let img = image(1024);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a thread pool");
    println!("1024×1024 RGB, {runs} runs, median");
    println!(
        "| case | {} threads | 1 thread | 1 thread, CPU time |",
        rayon::current_num_threads()
    );
    println!("|---|---|---|---|");
    for (name, degrees, background) in [
        ("30°, transparent (→ RGBA)", 30.0, Background::Transparent),
        ("30°, white (RGB)", 30.0, Background::White),
        ("45°, transparent", 45.0, Background::Transparent),
        ("90° (quarter turn)", 90.0, Background::Transparent),
    ] {
        let (all, _) = median(&img, degrees, background, runs);
        let (one, one_cpu) = single.install(|| median(&img, degrees, background, runs));
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms |",
            all.as_secs_f64() * 1e3,
            one.as_secs_f64() * 1e3,
            one_cpu.as_secs_f64() * 1e3
        );
    }
}
