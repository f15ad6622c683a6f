//! Times the stages of a region export in-process (docs/performance.md):
//! `cargo run --release --example profile_cvt -- FILE [WID]`, FILE a pyramid TIFF.
use std::time::Instant;

use iipsrv::config::{Config, Interpolation};
use iipsrv::encode::{EncodeOptions, OutputFormat};
use iipsrv::pipeline::{self, Settings};
use iipsrv::render;
use iipsrv::shared::Shared;
use iipsrv::view::View;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = std::path::PathBuf::from(args.next().expect("a TIFF file"));
    let wid: u32 = args.next().and_then(|w| w.parse().ok()).unwrap_or(1000);
    let dir = path.parent().unwrap().to_path_buf();
    let key = path.file_name().unwrap().to_string_lossy().into_owned();
    let (mut config, _) = Config::from_lookup(|_| None);
    config.files.prefix = format!("{}/", dir.display());
    config.caches.tile_mb = 100.0;
    let shared = Shared::new(config);
    let image = iipsrv::open_image::open_image(&shared, key.as_bytes()).unwrap();
    let view = View {
        width: Some(wid),
        ..View::default()
    };
    let options = render::RegionOptions::iip(shared.config());
    for round in 0..3 {
        let t = Instant::now();
        let plan = render::region_plan(&shared, &image, &view, &options).unwrap();
        let t_plan = t.elapsed();
        let t = Instant::now();
        let raw = render::read_region(
            &shared,
            &image,
            &view,
            plan.resolution,
            (plan.x, plan.y, plan.w, plan.h),
        )
        .unwrap();
        let t_read = t.elapsed();
        let t = Instant::now();
        let px = pipeline::process(
            std::borrow::Cow::Owned(raw.clone()),
            &Settings {
                info: image.info(),
                view: &view,
                format: OutputFormat::Jpeg,
                histogram: None,
                resize: Some((plan.out_width, plan.out_height)),
                interpolation: Interpolation::Bilinear,
                watermark: None,
            },
        )
        .unwrap();
        let t_proc = t.elapsed();
        let t = Instant::now();
        let _r = pipeline::resize::resize(
            raw.clone(),
            plan.out_width,
            plan.out_height,
            Interpolation::Bilinear,
        );
        let t_resize = t.elapsed();
        println!("resize alone (with a clone of the input) {t_resize:?}");
        let t = Instant::now();
        let bytes = shared
            .encoders()
            .get(OutputFormat::Jpeg)
            .encode(
                &px,
                &EncodeOptions {
                    quality: 75,
                    ..EncodeOptions::default()
                },
            )
            .unwrap();
        let t_enc = t.elapsed();
        println!(
            "round {round}: plan {t_plan:?} read {t_read:?} ({}x{}) process+resize {t_proc:?} ({}x{}) encode {t_enc:?} ({} bytes)",
            plan.w,
            plan.h,
            px.width,
            px.height,
            bytes.len()
        );
    }
}
