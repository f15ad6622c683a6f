//! Times every output encoder on a 256×256 tile and a 1000×1000 image.
//!
//! ```text
//! cargo run --release --example encode_bench [RUNS]
//! ```
//!
//! RUNS (default 15) encodes per setting; the median time and the output size are printed.
//! The input is synthetic but photo-like (smooth gradients, edges and mild noise), so that
//! compressors neither collapse it nor face pure noise.

use std::time::{Duration, Instant};

use iipsrv::config::{AvifCodec, TiffCompression};
use iipsrv::encode::{
    AvifEncoder, EncodeOptions, Encoder, GifEncoder, Jp2Encoder, JpegEncoder, PdfEncoder,
    PngEncoder, TiffEncoder, WebpEncoder,
};
use iipsrv::image::{ColourSpace, RawImage};

fn synthetic(width: u32, height: u32) -> RawImage {
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    let mut seed = 0x2545_F491_u32;
    for y in 0..height {
        for x in 0..width {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let noise = (seed % 9) as f64 - 4.0;
            let (fx, fy) = (x as f64 / width as f64, y as f64 / height as f64);
            let disc = if (fx - 0.6).powi(2) + (fy - 0.4).powi(2) < 0.05 {
                60.0
            } else {
                0.0
            };
            let stripes = ((fx * 40.0).sin() * 20.0).round();
            for v in [
                fx * 200.0 + disc,
                fy * 180.0 + stripes,
                (fx + fy) * 100.0 - disc,
            ] {
                data.push((v + 30.0 + noise).clamp(0.0, 255.0) as u8);
            }
        }
    }
    RawImage::from_u8(width, height, 3, ColourSpace::Srgb, data)
}

fn median(
    encoder: &dyn Encoder,
    image: &RawImage,
    options: &EncodeOptions<'_>,
    runs: usize,
) -> (Duration, usize) {
    let size = encoder.encode(image, options).expect("encodes").len(); // warm-up
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(encoder.encode(image, options).expect("encodes"));
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[times.len() / 2], size)
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15)
        .max(1);
    let tile = synthetic(256, 256);
    let big = synthetic(1000, 1000);
    let avif = AvifEncoder::new(AvifCodec::Auto, 10, 1);
    let avif8 = AvifEncoder::new(AvifCodec::Auto, 8, 1);
    let (webp0, webp4, tiff) = (
        WebpEncoder::new(0),
        WebpEncoder::new(4),
        TiffEncoder::new(0),
    );
    let cases: Vec<(&str, &dyn Encoder, i32, TiffCompression)> = vec![
        ("JPEG q75", &JpegEncoder, 75, TiffCompression::None),
        ("JPEG q90", &JpegEncoder, 90, TiffCompression::None),
        ("PNG 0 (stored)", &PngEncoder, 0, TiffCompression::None),
        (
            "PNG 1 (fdeflate, default)",
            &PngEncoder,
            1,
            TiffCompression::None,
        ),
        ("PNG 2 (zlib 2)", &PngEncoder, 2, TiffCompression::None),
        ("PNG 6 (zlib 6)", &PngEncoder, 6, TiffCompression::None),
        ("PNG 9 (zlib 9)", &PngEncoder, 9, TiffCompression::None),
        (
            "WebP q50 method 0 (default)",
            &webp0,
            50,
            TiffCompression::None,
        ),
        ("WebP q75 method 0", &webp0, 75, TiffCompression::None),
        ("WebP q75 method 4", &webp4, 75, TiffCompression::None),
        ("WebP lossless", &webp0, -1, TiffCompression::None),
        (
            "AVIF q50 speed 10 (default)",
            &avif,
            50,
            TiffCompression::None,
        ),
        ("AVIF q50 speed 8", &avif8, 50, TiffCompression::None),
        ("AVIF lossless speed 10", &avif, -1, TiffCompression::None),
        ("TIFF none", &tiff, 1, TiffCompression::None),
        ("TIFF LZW", &tiff, 1, TiffCompression::Lzw),
        (
            "TIFF Deflate 1 (default)",
            &tiff,
            1,
            TiffCompression::Deflate,
        ),
        ("TIFF Deflate 6", &tiff, 6, TiffCompression::Deflate),
        ("TIFF JPEG q75", &tiff, 75, TiffCompression::Jpeg),
        ("TIFF WebP q75", &tiff, 75, TiffCompression::Webp),
        ("TIFF ZSTD 1", &tiff, 1, TiffCompression::Zstd),
        ("TIFF ZSTD 9", &tiff, 9, TiffCompression::Zstd),
        ("GIF (imagequant)", &GifEncoder, 0, TiffCompression::None),
        (
            "JPEG2000 q75 (PSNR target)",
            &Jp2Encoder,
            75,
            TiffCompression::None,
        ),
        ("JPEG2000 lossless", &Jp2Encoder, -1, TiffCompression::None),
        ("PDF (JPEG q75)", &PdfEncoder, 75, TiffCompression::None),
    ];
    println!(
        "AVIF encoder: {} ({runs} runs per cell, median)",
        avif.codec().encoder_name().unwrap_or("?")
    );
    println!("| encoder | 256×256 time / size | 1000×1000 time / size |");
    println!("|---|---|---|");
    for (name, encoder, quality, tiff_compression) in cases {
        let options = EncodeOptions {
            quality,
            tiff_compression,
            ..Default::default()
        };
        let (t1, s1) = median(encoder, &tile, &options, runs);
        let (t2, s2) = median(encoder, &big, &options, runs.div_ceil(3));
        println!(
            "| {name} | {:.2} ms / {s1} B | {:.1} ms / {s2} B |",
            t1.as_secs_f64() * 1e3,
            t2.as_secs_f64() * 1e3
        );
    }
}
