//! The LOGFILE writer: append mode, one `write` per record under a lock, and reopening after
//! logrotate has moved or deleted the file.
//!
//! tracing-appender keeps writing to a renamed file forever (`docs/dependencies.md` §8), so this
//! writer notices by itself: at most once per `check_every` it compares the device and inode at
//! LOGFILE with those of the open file, and reopens when they differ or the path is gone.
//! `reopen` does the same on demand (SIGHUP).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Device and inode: what identifies "the same file" across a rename.
type FileId = (u64, u64);

pub(super) struct LogFile {
    path: PathBuf,
    check_every: Duration,
    state: Mutex<State>,
}

struct State {
    file: File,
    id: FileId,
    checked: Instant,
    /// A failed reopen was already reported on stderr; stay quiet until one succeeds.
    reported: bool,
}

fn open(path: &Path) -> io::Result<(File, FileId)> {
    let file = OpenOptions::new().append(true).create(true).open(path)?;
    let meta = file.metadata()?;
    Ok((file, (meta.dev(), meta.ino())))
}

impl LogFile {
    pub(super) fn open(path: &Path, check_every: Duration) -> io::Result<LogFile> {
        let (file, id) = open(path)?;
        let state = State {
            file,
            id,
            checked: Instant::now(),
            reported: false,
        };
        Ok(LogFile {
            path: path.to_path_buf(),
            check_every,
            state: Mutex::new(state),
        })
    }

    /// Append `record` with a single write, reopening first if the file was rotated away.
    pub(super) fn write(&self, record: &[u8]) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.checked.elapsed() >= self.check_every {
            state.checked = Instant::now();
            let moved = match std::fs::metadata(&self.path) {
                Ok(meta) => (meta.dev(), meta.ino()) != state.id,
                Err(_) => true,
            };
            if moved {
                self.reopen_locked(&mut state);
            }
        }
        // Nowhere to report a failed log write; iipsrv ignores these too.
        let _ = state.file.write_all(record);
    }

    /// Close and reopen LOGFILE (after logrotate, on SIGHUP).
    pub(super) fn reopen(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.reopen_locked(&mut state);
    }

    /// On failure the old file stays open: a line in a rotated file beats a lost line.
    fn reopen_locked(&self, state: &mut State) {
        match open(&self.path) {
            Ok((file, id)) => {
                state.file = file;
                state.id = id;
                state.reported = false;
            }
            Err(e) if !state.reported => {
                state.reported = true;
                eprintln!(
                    "iipsrv: cannot reopen log file '{}': {e}; still writing to the old file",
                    self.path.display()
                );
            }
            Err(_) => {}
        }
    }
}
