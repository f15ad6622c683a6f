//! TIFF files through the source layer: open, info, a few tiles of every level and page, the
//! stored tiles (pass-through), and a region stitched from tiles as region exports read it.
#![no_main]

use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

use iipsrv::app::App;
use iipsrv::open_image::OpenImage;
use iipsrv::source::resolve::Located;
use iipsrv::source::{ImageFormat, ImageSource, tiff::TiffSource};
use iipsrv::view::View;
use iipsrv_fuzz::{MemFile, Rng, exercise_source};
use libfuzzer_sys::fuzz_target;

static FILE: LazyLock<Mutex<MemFile>> = LazyLock::new(|| Mutex::new(MemFile::new("tiff")));
static APP: LazyLock<App> = LazyLock::new(|| iipsrv_fuzz::app(&[]));

fuzz_target!(|data: &[u8]| {
    let mut file = FILE.lock().unwrap();
    let path = file.write(data).to_path_buf();
    let Ok(source) = TiffSource::open(&path) else {
        return;
    };
    let mut rng = Rng::from_data(data);
    exercise_source(&source, &mut rng);
    region(Arc::new(source), path, &mut rng);
});

/// A region of the smallest level and one of the largest, through `render::read_region`.
fn region(source: Arc<dyn ImageSource>, path: std::path::PathBuf, rng: &mut Rng) {
    let info = source.info().clone();
    let image = OpenImage {
        key: Arc::from(&b"fuzz.tif"[..]),
        located: Located {
            key: b"fuzz.tif".to_vec(),
            path,
            mtime: SystemTime::UNIX_EPOCH,
            format: ImageFormat::Tiff,
        },
        source,
        sequence: None,
        last_modified: String::new(),
    };
    let view = View::default();
    let n = info.num_resolutions();
    for r in [0, n - 1] {
        let level = info.level(r).unwrap();
        // At most 300×300 pixels, somewhere inside the level.
        let w = 1 + rng.below(level.width.min(300) as u64) as u32;
        let h = 1 + rng.below(level.height.min(300) as u64) as u32;
        let x = rng.below((level.width - w + 1) as u64) as u32;
        let y = rng.below((level.height - h + 1) as u64) as u32;
        if let Ok(img) = iipsrv::render::read_region(APP.shared(), &image, &view, r, (x, y, w, h)) {
            assert_eq!((img.width, img.height), (w, h));
            assert_eq!(img.samples.len(), (w * h) as usize * img.channels as usize);
        }
    }
}
