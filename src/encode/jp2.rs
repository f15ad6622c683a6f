//! JPEG2000 output (an IIIF extension, `image/jp2`) through OpenJPEG's encoder (Debian's
//! libopenjp2, the library the JPEG2000 source decodes with; declarations in
//! [`super::jp2_ffi`]).
//!
//! The file is a JP2 (signature, `ftyp`, `jp2h` with `ihdr`/`colr`/`cdef`, `jp2c`), not a raw
//! codestream, so that browsers and validators recognise the type. One tile, one quality
//! layer, LRCP progression, 64×64 code-blocks, up to 6 resolutions (fewer for small images:
//! 2^(resolutions−1) ≤ min(width, height), as OpenJPEG requires).
//!
//! Quality ([`EncodeOptions::quality`]):
//!
//! | quality | coding |
//! |---|---|
//! | below 0 (−1) | lossless: reversible 5/3 wavelet and colour transform |
//! | 0–100 (0 acts as 1) | lossy: irreversible 9/7 wavelet, rate allocated for a target PSNR of 20 + q/4 dB (q = 75 → 38.75 dB, about what JPEG quality 75 gives; 100 → 45 dB) |
//!
//! A PSNR target rather than a compression ratio keeps the look of a quality setting the same
//! on simple and busy images (OpenJPEG's `opj_compress -q`).
//!
//! Input: 8- or 16-bit samples (written with precision 8 or 16), 1 (grey), 2 (grey + alpha),
//! 3 (sRGB) or 4 (sRGB + alpha) channels; alpha is declared in a `cdef` box. An ICC profile
//! given in the options replaces the enumerated colour space in the `colr` box (method 2,
//! spliced in after encoding: [`with_icc`]). The codestream comment is [`super::SOFTWARE`].
//! No resolution box is written (OpenJPEG has no parameter for it).
//!
//! OpenJPEG runs without its thread pool, as for decoding (requests run in parallel). It
//! holds the image as 32-bit integers plus its own tile buffers, about 8 bytes per sample,
//! so images above [`MAX_JP2_SAMPLES`] are refused.

use std::ffi::{CStr, c_char, c_void};
use std::ptr::{self, NonNull};

use super::jp2_ffi as ffi;
use super::{Accepts, EncodeError, EncodeOptions, Encoder, OutputFormat};
use crate::error::Result;
use crate::image::{RawImage, Samples};
use ffi::{Codec, Stream};

/// Largest JPEG2000 output, in samples (width × height × channels): 2^27, e.g. 5000² RGBA;
/// OpenJPEG then holds about 1 GiB.
pub const MAX_JP2_SAMPLES: u64 = 1 << 27;

/// Most resolution levels (OpenJPEG's default).
const MAX_RESOLUTIONS: u32 = 6;

/// OpenJPEG's stream buffer.
const STREAM_BUFFER: usize = 64 << 10;

/// Error messages kept per encode.
const MAX_MESSAGES: usize = 8;

/// The codestream comment.
const COMMENT: &CStr = c"iipsrv/1.3";

/// The PSNR target (dB) of a lossy quality 0–100.
pub fn target_psnr(quality: i32) -> f32 {
    20.0 + quality.clamp(1, 100) as f32 / 4.0
}

/// Resolution levels for an image: at most [`MAX_RESOLUTIONS`], and the smallest level at
/// least one pixel wide and high.
fn resolutions(width: u32, height: u32) -> u32 {
    let side = width.min(height).max(1);
    (32 - side.leading_zeros()).min(MAX_RESOLUTIONS)
}

/// JPEG2000 encoder (JP2 file): 8- or 16-bit, 1–4 channels; lossless below quality 0.
#[derive(Debug, Clone, Copy, Default)]
pub struct Jp2Encoder;

impl Encoder for Jp2Encoder {
    fn format(&self) -> OutputFormat {
        OutputFormat::Jp2
    }

    fn accepts(&self) -> Accepts {
        Accepts::SIXTEEN_BIT
    }

    fn encode(&self, image: &RawImage, options: &EncodeOptions<'_>) -> Result<Vec<u8>> {
        Ok(encode(image, options.quality, options.icc)?)
    }
}

/// The samples of `image` as 32-bit values, and their precision.
enum Input<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
}

fn encode(image: &RawImage, quality: i32, icc: Option<&[u8]>) -> Result<Vec<u8>, EncodeError> {
    let unsupported = || EncodeError::UnsupportedInput {
        format: OutputFormat::Jp2,
        channels: image.channels,
        bits: image.bits_per_sample,
    };
    let input = match &image.samples {
        Samples::U8(v) => {
            super::check_len(image, v.len())?;
            Input::U8(v)
        }
        Samples::U16(v) => {
            super::check_len(image, v.len())?;
            Input::U16(v)
        }
        _ => return Err(unsupported()),
    };
    let channels = image.channels as usize;
    if !(1..=4).contains(&channels) {
        return Err(unsupported());
    }
    let (w, h) = (image.width, image.height);
    if w as u64 * h as u64 * channels as u64 > MAX_JP2_SAMPLES {
        return Err(EncodeError::OverLimit {
            format: OutputFormat::Jp2,
            width: w,
            height: h,
        });
    }
    let precision = match input {
        Input::U8(_) => 8,
        Input::U16(_) => 16,
    };
    let fail = |m: &str| EncodeError::codec(OutputFormat::Jp2, m);

    // The image: one component per channel, filled from the interleaved samples.
    let mut params: Vec<ffi::opj_image_cmptparm_t> = (0..channels)
        .map(|_| ffi::opj_image_cmptparm_t {
            dx: 1,
            dy: 1,
            w,
            h,
            x0: 0,
            y0: 0,
            prec: precision,
            bpp: precision,
            sgnd: 0,
        })
        .collect();
    let colour_space = if channels >= 3 {
        ffi::OPJ_CLRSPC_SRGB
    } else {
        ffi::OPJ_CLRSPC_GRAY
    };
    // SAFETY: params holds `channels` initialised descriptions; the result is checked.
    let raw = unsafe { ffi::opj_image_create(channels as u32, params.as_mut_ptr(), colour_space) };
    let image_ptr = Image(NonNull::new(raw).ok_or_else(|| fail("cannot create an image"))?);
    // SAFETY: opj_image_create returned an image with `channels` components of w × h samples.
    unsafe {
        let img = &mut *image_ptr.0.as_ptr();
        img.x0 = 0;
        img.y0 = 0;
        img.x1 = w;
        img.y1 = h;
        let comps = std::slice::from_raw_parts_mut(img.comps, channels);
        if comps.iter().any(|c| c.data.is_null()) {
            return Err(fail("cannot allocate the image"));
        }
        let n = w as usize * h as usize;
        for (c, comp) in comps.iter_mut().enumerate() {
            comp.alpha = u16::from((channels == 2 || channels == 4) && c == channels - 1);
            let plane = std::slice::from_raw_parts_mut(comp.data, n);
            match input {
                Input::U8(v) => plane
                    .iter_mut()
                    .zip(v.iter().skip(c).step_by(channels))
                    .for_each(|(d, &s)| *d = s as i32),
                Input::U16(v) => plane
                    .iter_mut()
                    .zip(v.iter().skip(c).step_by(channels))
                    .for_each(|(d, &s)| *d = s as i32),
            }
        }
    }

    // SAFETY: the zeroed struct is a valid bit pattern (integers, arrays, null pointers) and
    // is then filled with OpenJPEG's defaults (18 KiB, on the stack like the decoder's).
    let mut cp: ffi::opj_cparameters_t = unsafe {
        let mut p = std::mem::MaybeUninit::<ffi::opj_cparameters_t>::zeroed();
        ffi::opj_set_default_encoder_parameters(p.as_mut_ptr());
        p.assume_init()
    };
    cp.tcp_numlayers = 1;
    cp.numresolution = resolutions(w, h) as i32;
    cp.tcp_mct = i8::from(channels >= 3) as c_char;
    cp.cp_comment = COMMENT.as_ptr() as *mut c_char;
    if quality < 0 {
        cp.irreversible = 0;
        cp.tcp_rates[0] = 0.0;
        cp.cp_disto_alloc = 1;
    } else {
        cp.irreversible = 1;
        cp.tcp_distoratio[0] = target_psnr(quality);
        cp.cp_fixed_quality = 1;
    }

    let mut messages = Box::new(Vec::<String>::new());
    let mut sink = Box::new(Sink::default());
    // SAFETY: plain constructor, checked for null.
    let codec = Codec(
        NonNull::new(unsafe { ffi::opj_create_compress(ffi::OPJ_CODEC_JP2) })
            .ok_or_else(|| fail("cannot create an encoder"))?,
    );
    let c = codec.0.as_ptr();
    let img = image_ptr.0.as_ptr();
    // SAFETY: the handlers only push to `messages`, which outlives the codec (declared
    // before it, so dropped after it).
    let ok = unsafe {
        let data = &mut *messages as *mut Vec<String> as *mut c_void;
        ffi::opj_set_error_handler(c, Some(on_error), data);
        ffi::opj_set_warning_handler(c, None, ptr::null_mut());
        ffi::opj_set_info_handler(c, None, ptr::null_mut());
        ffi::opj_setup_encoder(c, &mut cp, img) == ffi::OPJ_TRUE
            && ffi::opj_codec_set_threads(c, 0) == ffi::OPJ_TRUE
    };
    if !ok {
        return Err(failure("cannot set up the encoder", &messages));
    }
    // SAFETY: plain constructor, checked for null.
    let stream = Stream(
        NonNull::new(unsafe { ffi::opj_stream_create(STREAM_BUFFER, ffi::OPJ_FALSE) })
            .ok_or_else(|| fail("cannot create a stream"))?,
    );
    let s = stream.0.as_ptr();
    // SAFETY: the callbacks only touch `sink`, which outlives the stream (declared before
    // it); the stream has no free function for it.
    let ok = unsafe {
        ffi::opj_stream_set_write_function(s, Some(sink_write));
        ffi::opj_stream_set_skip_function(s, Some(sink_skip));
        ffi::opj_stream_set_seek_function(s, Some(sink_seek));
        ffi::opj_stream_set_user_data(s, &mut *sink as *mut Sink as *mut c_void, None);
        ffi::opj_start_compress(c, img, s) == ffi::OPJ_TRUE
            && ffi::opj_encode(c, s) == ffi::OPJ_TRUE
            && ffi::opj_end_compress(c, s) == ffi::OPJ_TRUE
    };
    // The stream flushes its buffer into the sink when destroyed at the latest; end_compress
    // already flushed it.
    drop(stream);
    drop(codec);
    if !ok {
        return Err(failure("encoding failed", &messages));
    }
    let file = std::mem::take(&mut sink.data);
    match icc.filter(|i| !i.is_empty()) {
        Some(icc) => with_icc(file, icc),
        None => Ok(file),
    }
}

/// Replaces the enumerated `colr` box OpenJPEG wrote inside `jp2h` with one carrying the ICC
/// profile (METH 2, restricted ICC). OpenJPEG 2.5.0 cannot write it itself: given a profile it
/// announces METH 2 but never copies the data (an assertion fails in `opj_jp2_write_colr`).
fn with_icc(file: Vec<u8>, icc: &[u8]) -> Result<Vec<u8>, EncodeError> {
    let malformed = || EncodeError::Malformed {
        format: OutputFormat::Jp2,
        message: "no jp2h/colr box in OpenJPEG's output".into(),
    };
    // (offset, length, type) of the boxes in data[start..end]; 32-bit lengths only (OpenJPEG
    // writes no others in the header).
    let boxes = |start: usize, end: usize| -> Vec<(usize, usize, [u8; 4])> {
        let mut out = Vec::new();
        let mut at = start;
        while at + 8 <= end {
            let len = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = file[at + 4..at + 8].try_into().unwrap();
            let len = if len == 0 { end - at } else { len };
            if len < 8 || at + len > end {
                break;
            }
            out.push((at, len, kind));
            at += len;
        }
        out
    };
    let (h_at, h_len, _) = *boxes(0, file.len())
        .iter()
        .find(|b| &b.2 == b"jp2h")
        .ok_or_else(malformed)?;
    let (c_at, c_len, _) = *boxes(h_at + 8, h_at + h_len)
        .iter()
        .find(|b| &b.2 == b"colr")
        .ok_or_else(malformed)?;
    let colr_len = 8 + 3 + icc.len();
    let new_h_len = h_len - c_len + colr_len;
    let (Ok(colr_len32), Ok(h_len32)) = (u32::try_from(colr_len), u32::try_from(new_h_len)) else {
        return Err(malformed());
    };
    let mut out = Vec::with_capacity(file.len() + icc.len());
    out.extend_from_slice(&file[..h_at]);
    out.extend_from_slice(&h_len32.to_be_bytes());
    out.extend_from_slice(&file[h_at + 4..c_at]);
    out.extend_from_slice(&colr_len32.to_be_bytes());
    out.extend_from_slice(b"colr");
    out.extend_from_slice(&[2, 0, 0]); // METH restricted ICC, PREC 0, APPROX 0
    out.extend_from_slice(icc);
    out.extend_from_slice(&file[c_at + c_len..]);
    Ok(out)
}

/// An image from `opj_image_create`, destroyed on drop.
struct Image(NonNull<ffi::opj_image_t>);

impl Drop for Image {
    fn drop(&mut self) {
        // SAFETY: created by opj_image_create and destroyed once.
        unsafe { ffi::opj_image_destroy(self.0.as_ptr()) }
    }
}

/// The output file and the write position (the JP2 writer seeks back to fill in box
/// lengths).
#[derive(Default)]
struct Sink {
    data: Vec<u8>,
    pos: usize,
}

impl Sink {
    fn reach(&mut self, end: usize) {
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
    }
}

unsafe extern "C" fn sink_write(buf: *mut c_void, n: usize, data: *mut c_void) -> usize {
    // SAFETY: data is the Sink registered for this stream; buf holds n bytes.
    let sink = unsafe { &mut *(data as *mut Sink) };
    let bytes = unsafe { std::slice::from_raw_parts(buf as *const u8, n) };
    let Some(end) = sink.pos.checked_add(n) else {
        return usize::MAX;
    };
    sink.reach(end);
    sink.data[sink.pos..end].copy_from_slice(bytes);
    sink.pos = end;
    n
}

unsafe extern "C" fn sink_skip(n: i64, data: *mut c_void) -> i64 {
    // SAFETY: as for sink_write.
    let sink = unsafe { &mut *(data as *mut Sink) };
    match (sink.pos as u64)
        .checked_add_signed(n)
        .and_then(|p| usize::try_from(p).ok())
    {
        Some(p) => {
            sink.reach(p);
            sink.pos = p;
            n
        }
        None => -1,
    }
}

unsafe extern "C" fn sink_seek(n: i64, data: *mut c_void) -> ffi::OPJ_BOOL {
    // SAFETY: as for sink_write.
    let sink = unsafe { &mut *(data as *mut Sink) };
    match usize::try_from(n) {
        Ok(p) => {
            sink.reach(p);
            sink.pos = p;
            ffi::OPJ_TRUE
        }
        Err(_) => ffi::OPJ_FALSE,
    }
}

unsafe extern "C" fn on_error(msg: *const c_char, data: *mut c_void) {
    // SAFETY: data is the Vec<String> registered for this codec, alive for its lifetime; msg
    // is a NUL-terminated string from OpenJPEG.
    let messages = unsafe { &mut *(data as *mut Vec<String>) };
    if !msg.is_null() && messages.len() < MAX_MESSAGES {
        let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
        messages.push(text.trim_end().to_string());
    }
}

fn failure(fallback: &str, messages: &[String]) -> EncodeError {
    let message = if messages.is_empty() {
        fallback.to_string()
    } else {
        messages.join("; ")
    };
    EncodeError::codec(OutputFormat::Jp2, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::test_util::{fake_icc, gradient, gradient16, psnr};
    use crate::image::ColourSpace;
    use crate::source::ImageSource;
    use crate::source::jp2::Jp2Source;

    fn opts(quality: i32) -> EncodeOptions<'static> {
        EncodeOptions {
            quality,
            ..EncodeOptions::default()
        }
    }

    /// Decodes with the JPEG2000 source (OpenJPEG) at full resolution.
    fn decode(bytes: &[u8]) -> RawImage {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jp2");
        std::fs::write(&path, bytes).unwrap();
        let source = Jp2Source::open(&path).expect("OpenJPEG opens the file");
        let info = source.info();
        let top = info.num_resolutions() - 1;
        source
            .region(top, 0, 0, info.width, info.height, 0)
            .expect("OpenJPEG decodes the file")
    }

    /// The JP2 signature box and the `ftyp` brand.
    fn is_jp2(bytes: &[u8]) -> bool {
        bytes.starts_with(&[0, 0, 0, 12, b'j', b'P', b' ', b' ', 13, 10, 0x87, 10])
            && &bytes[16..24] == b"ftypjp2 "
    }

    #[test]
    fn lossless_round_trips_every_layout() {
        for ch in 1..=4 {
            let img = gradient(37, 23, ch);
            let bytes = Jp2Encoder.encode(&img, &opts(-1)).unwrap();
            assert!(is_jp2(&bytes), "{ch} channels");
            let back = decode(&bytes);
            assert_eq!((back.width, back.height, back.channels), (37, 23, ch));
            assert_eq!(back.as_u8().unwrap(), img.as_u8().unwrap(), "{ch} channels");
        }
    }

    #[test]
    fn sixteen_bit_lossless_round_trips() {
        for ch in [1, 3] {
            let img = gradient16(20, 9, ch);
            let back = decode(&Jp2Encoder.encode(&img, &opts(-1)).unwrap());
            assert_eq!(back.samples, img.samples, "{ch} channels");
            assert_eq!(back.bits_per_sample, 16);
        }
    }

    #[test]
    fn lossy_quality_trades_size_for_fidelity() {
        let img = gradient(128, 96, 3);
        let lossless = Jp2Encoder.encode(&img, &opts(-1)).unwrap();
        let high = Jp2Encoder.encode(&img, &opts(100)).unwrap();
        let low = Jp2Encoder.encode(&img, &opts(1)).unwrap();
        assert!(low.len() < high.len() && high.len() < lossless.len());
        let (h, l) = (decode(&high), decode(&low));
        let ph = psnr(h.as_u8().unwrap(), img.as_u8().unwrap());
        let pl = psnr(l.as_u8().unwrap(), img.as_u8().unwrap());
        assert!(ph > 40.0, "quality 100: {ph:.1} dB");
        assert!(pl < ph, "quality 1: {pl:.1} dB");
        // The default JPEG quality lands near its target (OpenJPEG measures the distortion
        // in its own domain, after the colour transform: a few dB off in pixels).
        let mid = decode(&Jp2Encoder.encode(&img, &opts(75)).unwrap());
        let pm = psnr(mid.as_u8().unwrap(), img.as_u8().unwrap());
        assert!(
            (pm - target_psnr(75) as f64).abs() < 4.0,
            "quality 75: {pm:.1} dB"
        );
        assert!(pl < pm && pm < ph);
    }

    #[test]
    fn tiny_and_odd_images_encode() {
        for (w, h) in [(1, 1), (1, 7), (5, 2), (3, 300)] {
            let img = gradient(w, h, 3);
            for q in [-1, 50] {
                let back = decode(&Jp2Encoder.encode(&img, &opts(q)).unwrap());
                assert_eq!((back.width, back.height), (w, h), "{w}x{h} q{q}");
            }
        }
        assert_eq!(resolutions(1, 1), 1);
        assert_eq!(resolutions(2, 100), 2);
        assert_eq!(resolutions(31, 40), 5);
        assert_eq!(resolutions(32, 40), 6);
        assert_eq!(resolutions(4000, 3000), 6);
    }

    #[test]
    fn icc_profile_and_alpha_are_declared() {
        let icc = fake_icc(600);
        let img = gradient(16, 16, 4);
        let options = EncodeOptions {
            quality: -1,
            icc: Some(&icc),
            ..EncodeOptions::default()
        };
        let bytes = Jp2Encoder.encode(&img, &options).unwrap();
        // colr box, method 2 (restricted ICC), then the profile.
        let colr = bytes
            .windows(4)
            .position(|w| w == b"colr")
            .expect("a colr box");
        assert_eq!(bytes[colr + 4], 2);
        assert_eq!(&bytes[colr + 7..colr + 7 + icc.len()], icc.as_slice());
        assert!(
            bytes.windows(4).any(|w| w == b"cdef"),
            "alpha channel definition"
        );
        let back = decode(&bytes);
        assert_eq!(back.as_u8().unwrap(), img.as_u8().unwrap());
    }

    #[test]
    fn refuses_unsupported_and_oversized_input() {
        let five = RawImage::from_u8(2, 2, 5, ColourSpace::Multiband, vec![0; 20]);
        assert!(Jp2Encoder.encode(&five, &opts(50)).is_err());
        let float = RawImage {
            width: 1,
            height: 1,
            channels: 1,
            bits_per_sample: 32,
            colour: ColourSpace::Grey,
            samples: Samples::F32(vec![0.5]),
        };
        assert!(Jp2Encoder.encode(&float, &opts(50)).is_err());
        // Checked before OpenJPEG allocates anything.
        let side = 7000;
        let huge = RawImage::from_u8(
            side,
            side,
            3,
            ColourSpace::Srgb,
            vec![0; (side * side * 3) as usize],
        );
        let e = Jp2Encoder.encode(&huge, &opts(50)).unwrap_err();
        assert_eq!(e.kind(), Some(crate::error::ErrorKind::TooLarge));
    }
}
