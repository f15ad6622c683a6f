//! JPEG2000 files (JP2 boxes or raw codestreams) through the source layer: open, info, a few
//! tiles of every level, and a region of the smallest and of the largest level.
#![no_main]

use std::sync::{LazyLock, Mutex};

use iipsrv::config::MaxLayers;
use iipsrv::source::ImageSource;
use iipsrv::source::jp2::Jp2Source;
use iipsrv_fuzz::{MemFile, Rng, exercise_source};
use libfuzzer_sys::fuzz_target;

static FILE: LazyLock<Mutex<MemFile>> = LazyLock::new(|| Mutex::new(MemFile::new("jp2")));

fuzz_target!(|data: &[u8]| {
    let mut file = FILE.lock().unwrap();
    let path = file.write(data).to_path_buf();
    let mut rng = Rng::from_data(data);
    // MAX_LAYERS: the default, all layers, or a few.
    let max_layers =
        [MaxLayers::Default, MaxLayers::All, MaxLayers::AtMost(1)][rng.below(3) as usize];
    let Ok(source) = Jp2Source::open_with(&path, max_layers) else {
        return;
    };
    exercise_source(&source, &mut rng);
    let info = source.info().clone();
    let n = info.num_resolutions();
    for r in [0, n - 1] {
        let level = info.level(r).unwrap();
        let w = 1 + rng.below(level.width.min(300) as u64) as u32;
        let h = 1 + rng.below(level.height.min(300) as u64) as u32;
        let x = rng.below((level.width - w + 1) as u64) as u32;
        let y = rng.below((level.height - h + 1) as u64) as u32;
        let layers = rng.below(4) as u32;
        if let Ok(img) = source.region(r, x, y, w, h, layers) {
            assert_eq!((img.width, img.height), (w, h));
            assert_eq!(img.samples.len(), (w * h) as usize * img.channels as usize);
        }
    }
    // Outside the level: an error.
    let top = info.level(n - 1).unwrap();
    assert!(source.region(n - 1, top.width, 0, 1, 1, 0).is_err());
});
