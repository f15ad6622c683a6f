//! The part of OpenJPEG's C API (`openjpeg.h`, libopenjp2 ≥ 2.5.0) that the decoder uses,
//! linked against Debian's `libopenjp2-7` (`libopenjp2-7-dev` for the link name).
//!
//! Declared by hand from the 2.5 header, whose ABI is stable across 2.x (soname 7): only the
//! structs the decoder reads or passes by pointer are spelled out, and their sizes and field
//! offsets are checked below against the values bindgen reports for the header.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_void};

pub type OPJ_BOOL = c_int;
pub const OPJ_TRUE: OPJ_BOOL = 1;

/// `CODEC_FORMAT`.
pub const OPJ_CODEC_J2K: c_int = 0;
pub const OPJ_CODEC_JP2: c_int = 2;

/// Opaque `opj_codec_t` and `opj_stream_t` (both `void *` in the header).
pub enum opj_codec {}
pub enum opj_stream {}

/// `opj_dparameters_t`: decoder parameters.
#[repr(C)]
pub struct opj_dparameters_t {
    pub cp_reduce: u32,
    pub cp_layer: u32,
    pub infile: [c_char; 4096],
    pub outfile: [c_char; 4096],
    pub decod_format: c_int,
    pub cod_format: c_int,
    pub da_x0: u32,
    pub da_x1: u32,
    pub da_y0: u32,
    pub da_y1: u32,
    pub m_verbose: OPJ_BOOL,
    pub tile_index: u32,
    pub nb_tile_to_decode: u32,
    pub jpwl_correct: OPJ_BOOL,
    pub jpwl_exp_comps: c_int,
    pub jpwl_max_tiles: c_int,
    pub flags: c_uint,
}

/// `opj_image_comp_t`: one decoded component.
#[repr(C)]
pub struct opj_image_comp_t {
    pub dx: u32,
    pub dy: u32,
    pub w: u32,
    pub h: u32,
    pub x0: u32,
    pub y0: u32,
    pub prec: u32,
    pub bpp: u32,
    pub sgnd: u32,
    pub resno_decoded: u32,
    pub factor: u32,
    pub data: *mut i32,
    pub alpha: u16,
}

/// `opj_image_t`.
#[repr(C)]
pub struct opj_image_t {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub numcomps: u32,
    pub color_space: c_int,
    pub comps: *mut opj_image_comp_t,
    pub icc_profile_buf: *mut u8,
    pub icc_profile_len: u32,
}

const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<opj_dparameters_t>() == 8252);
    assert!(offset_of!(opj_dparameters_t, flags) == 8248);
    assert!(offset_of!(opj_image_comp_t, data) == 44usize.next_multiple_of(align_of::<usize>()));
    assert!(offset_of!(opj_image_t, comps) == 24);
    assert!(offset_of!(opj_image_t, icc_profile_len) == 24 + 2 * size_of::<usize>());
};

pub type opj_msg_callback = Option<unsafe extern "C" fn(msg: *const c_char, data: *mut c_void)>;
pub type opj_stream_read_fn =
    Option<unsafe extern "C" fn(buf: *mut c_void, n: usize, data: *mut c_void) -> usize>;
pub type opj_stream_skip_fn = Option<unsafe extern "C" fn(n: i64, data: *mut c_void) -> i64>;
pub type opj_stream_seek_fn = Option<unsafe extern "C" fn(n: i64, data: *mut c_void) -> OPJ_BOOL>;
pub type opj_stream_free_user_data_fn = Option<unsafe extern "C" fn(data: *mut c_void)>;

#[link(name = "openjp2")]
unsafe extern "C" {
    pub fn opj_version() -> *const c_char;

    pub fn opj_create_decompress(format: c_int) -> *mut opj_codec;
    pub fn opj_destroy_codec(codec: *mut opj_codec);
    pub fn opj_set_default_decoder_parameters(parameters: *mut opj_dparameters_t);
    pub fn opj_setup_decoder(codec: *mut opj_codec, parameters: *mut opj_dparameters_t)
    -> OPJ_BOOL;
    pub fn opj_decoder_set_strict_mode(codec: *mut opj_codec, strict: OPJ_BOOL) -> OPJ_BOOL;
    pub fn opj_codec_set_threads(codec: *mut opj_codec, num_threads: c_int) -> OPJ_BOOL;
    pub fn opj_set_info_handler(
        codec: *mut opj_codec,
        handler: opj_msg_callback,
        data: *mut c_void,
    ) -> OPJ_BOOL;
    pub fn opj_set_warning_handler(
        codec: *mut opj_codec,
        handler: opj_msg_callback,
        data: *mut c_void,
    ) -> OPJ_BOOL;
    pub fn opj_set_error_handler(
        codec: *mut opj_codec,
        handler: opj_msg_callback,
        data: *mut c_void,
    ) -> OPJ_BOOL;

    pub fn opj_read_header(
        stream: *mut opj_stream,
        codec: *mut opj_codec,
        image: *mut *mut opj_image_t,
    ) -> OPJ_BOOL;
    pub fn opj_set_decode_area(
        codec: *mut opj_codec,
        image: *mut opj_image_t,
        start_x: i32,
        start_y: i32,
        end_x: i32,
        end_y: i32,
    ) -> OPJ_BOOL;
    pub fn opj_decode(
        codec: *mut opj_codec,
        stream: *mut opj_stream,
        image: *mut opj_image_t,
    ) -> OPJ_BOOL;
    pub fn opj_end_decompress(codec: *mut opj_codec, stream: *mut opj_stream) -> OPJ_BOOL;
    pub fn opj_image_destroy(image: *mut opj_image_t);

    pub fn opj_stream_create(buffer_size: usize, is_input: OPJ_BOOL) -> *mut opj_stream;
    pub fn opj_stream_destroy(stream: *mut opj_stream);
    pub fn opj_stream_set_read_function(stream: *mut opj_stream, f: opj_stream_read_fn);
    pub fn opj_stream_set_skip_function(stream: *mut opj_stream, f: opj_stream_skip_fn);
    pub fn opj_stream_set_seek_function(stream: *mut opj_stream, f: opj_stream_seek_fn);
    pub fn opj_stream_set_user_data(
        stream: *mut opj_stream,
        data: *mut c_void,
        free: opj_stream_free_user_data_fn,
    );
    pub fn opj_stream_set_user_data_length(stream: *mut opj_stream, length: u64);
}
