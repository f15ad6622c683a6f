//! One OpenJPEG decode: a codec and a stream of its own over the shared file, so any number of
//! decodes run at once without a lock.
//!
//! The stream is a list of [`Piece`]s: ranges of the file, read with positional reads (`pread`,
//! so the file handle is shared but its offset is not), and bytes in memory. For a tiled file
//! the pieces are a cut-down codestream holding only the tiles under the window
//! ([`super::index`]); otherwise the whole file. OpenJPEG is asked for one window of the
//! reference grid at one reduction and layer count, in strict mode (a truncated codestream is an
//! error, not black pixels), with as many threads as the caller grants (1: no thread pool;
//! parallelism comes from concurrent requests, and OpenJPEG's pool only pays for large windows).

use std::ffi::{CStr, c_char, c_void};
use std::ptr::{self, NonNull};

use super::ffi;
use super::index::Piece;
use crate::source::ImageFormat;
use crate::source::error::{Corrupt, DecodeStep, Defect, Result, SourceError, SourceErrorKind};
use crate::storage::{Blob, StorageError};
use ffi::{Codec, Stream};

/// OpenJPEG's stream buffer: reads smaller than this are served from it.
const STREAM_BUFFER: usize = 64 << 10;
/// OpenJPEG reads the codestream front to back: bytes that must be fetched from remote
/// storage are fetched this far ahead (local files ignore it).
const READ_AHEAD: u64 = 1 << 20;
/// Messages kept per decode (OpenJPEG can warn once per code-block).
const MAX_MESSAGES: usize = 16;
/// Most threads one decode is given.
pub const MAX_THREADS: u32 = 64;

/// Where the codestream comes from: `pieces` of `file` (and of memory), in order.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    pub file: &'a dyn Blob,
    pub pieces: &'a [Piece],
    /// `ffi::OPJ_CODEC_JP2` or `ffi::OPJ_CODEC_J2K`.
    pub format: i32,
}

/// What to decode: a window [x0, x1) × [y0, y1) of the full-resolution reference grid, at
/// `reduce` halvings, with at most `layers` quality layers (0 = all), on `threads` threads
/// (1 or less: OpenJPEG's own, no pool).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub reduce: u32,
    pub layers: u32,
    pub threads: u32,
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// A decoded image, freed on drop.
pub struct Decoded(NonNull<ffi::opj_image_t>);

impl Drop for Decoded {
    fn drop(&mut self) {
        // SAFETY: the pointer came from opj_read_header and is destroyed exactly once.
        unsafe { ffi::opj_image_destroy(self.0.as_ptr()) }
    }
}

/// One decoded component: its size and samples (row-major, `width * height`).
pub struct Plane<'a> {
    pub width: u32,
    pub height: u32,
    pub precision: u32,
    pub signed: bool,
    pub data: &'a [i32],
}

impl Decoded {
    /// The components, each checked to hold `w * h` samples.
    pub fn planes(&self) -> Result<Vec<Plane<'_>>> {
        // SAFETY: OpenJPEG filled the image; comps points to numcomps components whose data
        // (after a successful decode) holds w * h samples each. Null data is rejected.
        let image = unsafe { self.0.as_ref() };
        if image.comps.is_null() || image.numcomps == 0 {
            return Err(defect(Defect::NoComponents));
        }
        let comps = unsafe { std::slice::from_raw_parts(image.comps, image.numcomps as usize) };
        comps
            .iter()
            .map(|c| {
                if c.data.is_null() {
                    return Err(defect(Defect::EmptyComponent));
                }
                let n = c.w as usize * c.h as usize;
                Ok(Plane {
                    width: c.w,
                    height: c.h,
                    precision: c.prec,
                    signed: c.sgnd != 0,
                    data: unsafe { std::slice::from_raw_parts(c.data, n) },
                })
            })
            .collect()
    }
}

/// The messages OpenJPEG reported during one decode.
#[derive(Default)]
struct Messages {
    errors: Vec<String>,
    warnings: Vec<String>,
}

unsafe extern "C" fn on_error(msg: *const c_char, data: *mut c_void) {
    // SAFETY: data is the &mut Messages registered for this codec, alive for its lifetime;
    // msg is a NUL-terminated string from OpenJPEG.
    let messages = unsafe { &mut *(data as *mut Messages) };
    if !msg.is_null() && messages.errors.len() < MAX_MESSAGES {
        let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
        messages.errors.push(text.trim_end().to_string());
    }
}

unsafe extern "C" fn on_warning(msg: *const c_char, data: *mut c_void) {
    // SAFETY: as for on_error.
    let messages = unsafe { &mut *(data as *mut Messages) };
    if !msg.is_null() && messages.warnings.len() < MAX_MESSAGES {
        let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
        messages.warnings.push(text.trim_end().to_string());
    }
}

/// The read position of one stream over its pieces.
struct StreamState<'a> {
    file: &'a dyn Blob,
    pieces: &'a [Piece],
    /// Where each piece starts in the stream, and the stream's length at the end.
    starts: Vec<u64>,
    pos: u64,
    /// The first remote storage failure (OpenJPEG only sees the end of the stream): the
    /// decode's error is that failure, not a broken file.
    failed: Option<StorageError>,
}

impl StreamState<'_> {
    fn len(&self) -> u64 {
        self.starts.last().copied().unwrap_or(0)
    }

    /// Copy the stream's bytes at `pos` into `dst`; how many were available. A remote storage
    /// failure is kept in `failed`.
    fn read(&mut self, dst: &mut [u8]) -> usize {
        let mut got = 0;
        let mut pos = self.pos;
        // The piece holding `pos`: the last one starting at or before it.
        let mut i = self.starts.partition_point(|&s| s <= pos).saturating_sub(1);
        while got < dst.len() && i < self.pieces.len() {
            let within = pos - self.starts[i];
            let here = (self.pieces[i].len() - within).min((dst.len() - got) as u64) as usize;
            let out = &mut dst[got..got + here];
            let n = match &self.pieces[i] {
                Piece::Mem(b) => {
                    out.copy_from_slice(&b[within as usize..within as usize + here]);
                    here
                }
                Piece::File { offset, .. } => {
                    match self.file.read_at(out, offset + within, READ_AHEAD) {
                        Ok(()) => here,
                        Err(e) => {
                            if e.is_remote() && self.failed.is_none() {
                                self.failed = Some(e);
                            }
                            0
                        }
                    }
                }
            };
            got += n;
            pos += n as u64;
            if n < here {
                break;
            }
            i += 1;
        }
        got
    }
}

unsafe extern "C" fn stream_read(buf: *mut c_void, n: usize, data: *mut c_void) -> usize {
    // SAFETY: data is the StreamState registered for this stream; buf has room for n bytes.
    let state = unsafe { &mut *(data as *mut StreamState) };
    if state.pos >= state.len() {
        return usize::MAX;
    }
    let want = (n as u64).min(state.len() - state.pos) as usize;
    let dst = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, want) };
    let got = state.read(dst);
    state.pos += got as u64;
    if got == 0 { usize::MAX } else { got }
}

unsafe extern "C" fn stream_skip(n: i64, data: *mut c_void) -> i64 {
    // SAFETY: as for stream_read.
    let state = unsafe { &mut *(data as *mut StreamState) };
    match state.pos.checked_add_signed(n) {
        Some(p) => {
            state.pos = p;
            n
        }
        None => -1,
    }
}

unsafe extern "C" fn stream_seek(n: i64, data: *mut c_void) -> ffi::OPJ_BOOL {
    // SAFETY: as for stream_read.
    let state = unsafe { &mut *(data as *mut StreamState) };
    match u64::try_from(n) {
        Ok(p) => {
            state.pos = p;
            ffi::OPJ_TRUE
        }
        Err(_) => 0,
    }
}

/// A decode failure at `step`: OpenJPEG's first error is shown (as iipsrv reports it), all of
/// them are the cause.
fn failure(step: DecodeStep, errors: &[String]) -> SourceError {
    let e = SourceError::new(
        Some(ImageFormat::Jpeg2000),
        SourceErrorKind::Corrupt(Corrupt::Rejected {
            step,
            message: errors.first().cloned(),
        }),
    );
    if errors.len() > 1 {
        e.because(errors.join("; "))
    } else {
        e
    }
}

/// A decoded image that is not what the header announced.
fn defect(d: Defect) -> SourceError {
    SourceError::new(
        Some(ImageFormat::Jpeg2000),
        SourceErrorKind::Corrupt(Corrupt::Decoded(d)),
    )
}

/// Read the header only (used at open to check that OpenJPEG accepts the file) and return
/// the image area and component count it reports.
pub fn header(input: Input<'_>) -> Result<(u32, u32, u32, u32, u32)> {
    let image = run(input, None)?;
    // SAFETY: opj_read_header succeeded, so the image header is filled in.
    let i = unsafe { image.0.as_ref() };
    Ok((i.x0, i.y0, i.x1, i.y1, i.numcomps))
}

/// Decode `window`.
pub fn decode(input: Input<'_>, window: Window) -> Result<Decoded> {
    run(input, Some(window))
}

fn run(input: Input<'_>, window: Option<Window>) -> Result<Decoded> {
    let mut messages = Box::new(Messages::default());
    let mut starts = Vec::with_capacity(input.pieces.len() + 1);
    let mut at = 0u64;
    starts.push(0);
    for p in input.pieces {
        at += p.len();
        starts.push(at);
    }
    let mut state = Box::new(StreamState {
        file: input.file,
        pieces: input.pieces,
        starts,
        pos: 0,
        failed: None,
    });
    let result = (|| {
        // SAFETY: plain constructor; checked for null.
        let codec = Codec(
            NonNull::new(unsafe { ffi::opj_create_decompress(input.format) }).ok_or_else(|| {
                SourceError::internal(ImageFormat::Jpeg2000, "cannot create a decoder")
            })?,
        );
        let c = codec.0.as_ptr();
        let msg_data = &mut *messages as *mut Messages as *mut c_void;
        // SAFETY: the handlers only touch `messages`, which outlives the codec (it is dropped
        // after `codec` at the end of this closure's caller).
        unsafe {
            ffi::opj_set_error_handler(c, Some(on_error), msg_data);
            ffi::opj_set_warning_handler(c, Some(on_warning), msg_data);
            ffi::opj_set_info_handler(c, None, ptr::null_mut());
        }
        let mut params = std::mem::MaybeUninit::<ffi::opj_dparameters_t>::zeroed();
        // SAFETY: opj_set_default_decoder_parameters fills the whole struct.
        let mut params = unsafe {
            ffi::opj_set_default_decoder_parameters(params.as_mut_ptr());
            params.assume_init()
        };
        let mut threads = 0;
        if let Some(w) = window {
            params.cp_reduce = w.reduce;
            params.cp_layer = w.layers;
            if w.threads > 1 {
                threads = w.threads.min(MAX_THREADS) as i32;
            }
        }
        // SAFETY: valid codec and parameters.
        let ok = unsafe {
            ffi::opj_setup_decoder(c, &mut params) == ffi::OPJ_TRUE
                && ffi::opj_decoder_set_strict_mode(c, ffi::OPJ_TRUE) == ffi::OPJ_TRUE
                && ffi::opj_codec_set_threads(c, threads) == ffi::OPJ_TRUE
        };
        if !ok {
            return Err(failure(DecodeStep::SetupDecoder, &messages.errors));
        }

        // SAFETY: a new input stream; its callbacks use `state`, which outlives it.
        let stream = Stream(
            NonNull::new(unsafe { ffi::opj_stream_create(STREAM_BUFFER, ffi::OPJ_TRUE) })
                .ok_or_else(|| {
                    SourceError::internal(ImageFormat::Jpeg2000, "cannot create a stream")
                })?,
        );
        let s = stream.0.as_ptr();
        unsafe {
            ffi::opj_stream_set_read_function(s, Some(stream_read));
            ffi::opj_stream_set_skip_function(s, Some(stream_skip));
            ffi::opj_stream_set_seek_function(s, Some(stream_seek));
            ffi::opj_stream_set_user_data(s, &mut *state as *mut StreamState as *mut c_void, None);
            ffi::opj_stream_set_user_data_length(s, state.len());
        }

        let mut raw: *mut ffi::opj_image_t = ptr::null_mut();
        // SAFETY: valid stream and codec; raw receives a new image (or stays null).
        let ok = unsafe { ffi::opj_read_header(s, c, &mut raw) } == ffi::OPJ_TRUE;
        let image = NonNull::new(raw).map(Decoded);
        let image = match (ok, image) {
            (true, Some(image)) => image,
            _ => {
                return Err(failure(DecodeStep::ReadHeader, &messages.errors));
            }
        };
        let Some(w) = window else {
            return Ok(image);
        };
        // SAFETY: the window lies inside the image area (checked by the caller, i32 range
        // checked at open).
        let ok = unsafe {
            ffi::opj_set_decode_area(
                c,
                image.0.as_ptr(),
                w.x0 as i32,
                w.y0 as i32,
                w.x1 as i32,
                w.y1 as i32,
            )
        } == ffi::OPJ_TRUE;
        if !ok {
            return Err(failure(DecodeStep::SetDecodeArea, &messages.errors));
        }
        // SAFETY: valid codec, stream and image from the same header read.
        let ok = unsafe {
            ffi::opj_decode(c, s, image.0.as_ptr()) == ffi::OPJ_TRUE
                && ffi::opj_end_decompress(c, s) == ffi::OPJ_TRUE
        };
        if !ok {
            return Err(failure(DecodeStep::Decode, &messages.errors));
        }
        drop(stream);
        drop(codec);
        Ok(image)
    })();
    if !messages.warnings.is_empty() {
        tracing::debug!("OpenJPEG warnings: {}", messages.warnings.join("; "));
    }
    match (result, state.failed.take()) {
        (Err(_), Some(failed)) => Err(SourceError::from_storage(
            Some(ImageFormat::Jpeg2000),
            failed,
            |e| SourceError::internal(ImageFormat::Jpeg2000, "local read").because(e),
        )),
        (result, _) => result,
    }
}
