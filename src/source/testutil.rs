//! The test harness the sources share (tests only), in the manner of ripgrep's
//! `SearcherTester`: one hostile file runs through every operation a source offers, the same
//! way for every format.
//!
//! A [`SourceTester`] knows how to open one format and, for the formats that decode arbitrary
//! windows, how to read a region. [`SourceTester::check`] writes the bytes to a file, opens it,
//! and when that succeeds reads the description, every tile of every level and page (up to a
//! bound), the stored bytes for pass-through, and a region of every level. Each call must answer
//! with pixels of the advertised size or an error, never a panic. A [`Mutator`] makes the
//! hostile files: deterministic corruptions of a fixture, optionally focused on the part of the
//! file where the structure is, and truncations.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use super::error::SourceError;
use super::{ImageFormat, ImageSource};
use crate::image::RawImage;

/// The path of fixture `name` in `fixtures/<dir>/`.
pub(crate) fn fixture(dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(dir)
        .join(name)
}

type Open<S, E> = Box<dyn Fn(&Path) -> Result<S, E>>;
type Region<S, E> = Box<dyn Fn(&S, u32, (u32, u32, u32, u32)) -> Result<RawImage, E>>;

/// Runs hostile files through one format's source.
pub(crate) struct SourceTester<S, E> {
    open: Open<S, E>,
    region: Option<Region<S, E>>,
    max_tiles: u64,
    dir: tempfile::TempDir,
}

impl<S: ImageSource, E: Debug> SourceTester<S, E> {
    /// A tester opening files with `open`, reading at most 4 tiles per level.
    pub(crate) fn new(open: impl Fn(&Path) -> Result<S, E> + 'static) -> Self {
        SourceTester {
            open: Box::new(open),
            region: None,
            max_tiles: 4,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Also read a region of every level with `region(source, resolution, (x, y, w, h))`.
    pub(crate) fn region(
        mut self,
        region: impl Fn(&S, u32, (u32, u32, u32, u32)) -> Result<RawImage, E> + 'static,
    ) -> Self {
        self.region = Some(Box::new(region));
        self
    }

    /// Read at most `n` tiles of each level and page.
    pub(crate) fn max_tiles(mut self, n: u64) -> Self {
        self.max_tiles = n;
        self
    }

    /// Write `data` to a file named `name`, open it and, when that succeeds, run every
    /// operation on it.
    pub(crate) fn check(&self, name: &str, data: &[u8]) {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        if let Ok(source) = (self.open)(&path) {
            self.exercise(&source, name);
        }
        std::fs::remove_file(&path).unwrap();
    }

    /// Every operation on an opened source: pixels of the advertised size, or an error.
    pub(crate) fn exercise(&self, source: &S, name: &str) {
        let info = source.info();
        assert!(!info.levels.is_empty(), "{name}: no levels");
        let pages = info.stack.len().max(1) as u32;
        for page in 0..pages {
            for r in 0..info.num_resolutions() {
                let level = *info.level(r).unwrap();
                for t in 0..level.tile_count().min(self.max_tiles) as u32 {
                    if let Ok(img) = source.tile(r, t, page, 0) {
                        assert_eq!(
                            Some((img.width, img.height)),
                            level.tile_size(t),
                            "{name}: tile {r},{t}"
                        );
                        assert_whole(&img, name);
                    }
                    let _ = source.raw_tile(r, t, page);
                }
            }
        }
        let Some(region) = &self.region else {
            return;
        };
        for r in 0..info.num_resolutions() {
            let level = *info.level(r).unwrap();
            let (w, h) = ((level.width / 2).max(1), (level.height / 2).max(1));
            let rect = (level.width / 4, level.height / 4, w, h);
            if let Ok(img) = region(source, r, rect) {
                assert_eq!((img.width, img.height), (w, h), "{name}: region of {r}");
                assert_whole(&img, name);
            }
        }
    }

    /// `rounds` corruptions of fixture `path` by `mutator`, each checked.
    pub(crate) fn mutations(&self, path: &Path, mutator: &mut Mutator, rounds: u32) {
        let original = std::fs::read(path).unwrap();
        let stem = path.file_name().unwrap().to_string_lossy();
        for round in 0..rounds {
            let data = mutator.mutate(&original, round);
            self.check(&format!("m{round}_{stem}"), &data);
        }
    }

    /// Every prefix of fixture `path` whose length is a multiple of `step`, and the file
    /// without its last byte, each checked.
    pub(crate) fn truncations(&self, path: &Path, step: usize) {
        let data = std::fs::read(path).unwrap();
        let stem = path.file_name().unwrap().to_string_lossy();
        for len in (0..data.len()).step_by(step).chain([data.len() - 1]) {
            self.check(&format!("t{len}_{stem}"), &data[..len]);
        }
    }
}

/// A decoded image holds width × height × channels samples.
fn assert_whole(img: &RawImage, name: &str) {
    assert_eq!(
        img.samples.len(),
        img.width as usize * img.height as usize * img.channels as usize,
        "{name}: sample count"
    );
}

/// Where in the file a [`Mutator`] puts half of its changes (the other half go anywhere).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Focus {
    /// Nowhere in particular.
    Anywhere,
    /// The first n bytes (JPEG markers, TIFF headers).
    Head(usize),
    /// The last n bytes (the directories vips writes at the end of a TIFF).
    Tail(usize),
}

/// Deterministic corruption of a file (xorshift64): 1 to 8 bytes set to 0, 0xFF or a random
/// value, half of them in the [`Focus`]; every `truncate_every`-th round is also cut short.
#[derive(Debug, Clone)]
pub(crate) struct Mutator {
    state: u64,
    focus: Focus,
    truncate_every: Option<u32>,
}

impl Mutator {
    pub(crate) fn new(seed: u64, focus: Focus) -> Mutator {
        Mutator {
            state: seed.max(1),
            focus,
            truncate_every: None,
        }
    }

    /// Also truncate every `n`-th round (round 0 included) at a random length.
    pub(crate) fn truncate_every(mut self, n: u32) -> Mutator {
        self.truncate_every = Some(n);
        self
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A corrupted copy of `original` for round `round`.
    pub(crate) fn mutate(&mut self, original: &[u8], round: u32) -> Vec<u8> {
        let mut data = original.to_vec();
        if data.is_empty() {
            return data;
        }
        let len = data.len();
        for _ in 0..1 + self.below(8) {
            let focused = self.next().is_multiple_of(2);
            let at = match (focused, self.focus) {
                (true, Focus::Head(n)) => self.below(n.min(len)),
                (true, Focus::Tail(n)) => len - 1 - self.below(n.min(len)),
                _ => self.below(len),
            };
            data[at] = match self.next() % 4 {
                0 => 0,
                1 => 0xFF,
                _ => self.next() as u8,
            };
        }
        if self.truncate_every.is_some_and(|n| round.is_multiple_of(n)) {
            let keep = self.below(len);
            data.truncate(keep.max(1));
        }
        data
    }
}

/// `e` is the file's fault, reported by the `format` reader: a broken, unsupported or
/// unreadable file (iipsrv answers 404). What the client may see of it (the kind and the name)
/// holds no server path; the log-only detail names the file (`name`).
pub(crate) fn assert_file_fault(e: &SourceError, format: ImageFormat, name: &str) {
    use super::error::SourceErrorKind::{Corrupt, Io, Unsupported};
    assert!(
        matches!(e.kind, Corrupt(_) | Unsupported(_) | Io(_)),
        "{name}: {e}"
    );
    assert_eq!(e.format, Some(format), "{name}: {e}");
    let shown = format!("{:?} {:?}", e.kind, e.name);
    assert!(!shown.contains("fixtures"), "{name}: a path in {shown}");
    assert!(
        e.detail().contains(name),
        "{name}: not in the detail of {e}"
    );
}
