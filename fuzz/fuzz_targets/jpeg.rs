//! Plain JPEG files through the source layer: open, info, a few tiles of every virtual level,
//! and a region of the smallest and of the largest level.
#![no_main]

use std::sync::{LazyLock, Mutex};

use iipsrv::source::ImageSource;
use iipsrv::source::jpeg::JpegSource;
use iipsrv_fuzz::{MemFile, Rng, exercise_source};
use libfuzzer_sys::fuzz_target;

static FILE: LazyLock<Mutex<MemFile>> = LazyLock::new(|| {
    // Decoded levels are cached per source; a small cache keeps it in play without letting
    // inputs fill memory.
    iipsrv::source::jpeg::set_decoded_cache_bytes(8 << 20);
    Mutex::new(MemFile::new("jpeg"))
});

fuzz_target!(|data: &[u8]| {
    let mut file = FILE.lock().unwrap();
    let path = file.write(data).to_path_buf();
    let Ok(source) = JpegSource::open(&path) else {
        return;
    };
    let mut rng = Rng::from_data(data);
    exercise_source(&source, &mut rng);
    let info = source.info().clone();
    let n = info.num_resolutions();
    for r in [0, n - 1] {
        let level = info.level(r).unwrap();
        let w = 1 + rng.below(level.width.min(300) as u64) as u32;
        let h = 1 + rng.below(level.height.min(300) as u64) as u32;
        let x = rng.below((level.width - w + 1) as u64) as u32;
        let y = rng.below((level.height - h + 1) as u64) as u32;
        if let Ok(img) = source.region(r, x, y, w, h) {
            assert_eq!((img.width, img.height), (w, h));
            assert_eq!(img.samples.len(), (w * h) as usize * img.channels as usize);
        }
    }
    let top = info.level(n - 1).unwrap();
    assert!(source.region(n - 1, top.width, 0, 1, 1).is_err());
});
