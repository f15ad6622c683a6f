//! The part of OpenJPEG's C API (`openjpeg.h`, libopenjp2 ≥ 2.5.0) that the JPEG2000 source
//! (decoding) and the JPEG2000 encoder use, linked against Debian's `libopenjp2-7`
//! (`libopenjp2-7-dev` for the link name). Why by hand and not a `-sys` crate:
//! docs/dependencies.md §4.
//!
//! Declared by hand from the 2.5 header, whose ABI is stable across 2.x (soname 7): only the
//! structs the two read or pass by pointer are spelled out, and their sizes and field offsets
//! are checked below against the values a C compiler reports for the installed header
//! (x86-64 and other LP64 targets).

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::ptr::NonNull;

pub type OPJ_BOOL = c_int;
pub const OPJ_TRUE: OPJ_BOOL = 1;
pub const OPJ_FALSE: OPJ_BOOL = 0;

/// `CODEC_FORMAT`.
pub const OPJ_CODEC_J2K: c_int = 0;
pub const OPJ_CODEC_JP2: c_int = 2;

/// `OPJ_COLOR_SPACE`.
pub const OPJ_CLRSPC_SRGB: c_int = 1;
pub const OPJ_CLRSPC_GRAY: c_int = 2;

/// `OPJ_PATH_LEN`, `OPJ_J2K_MAXRLVLS`, `JPWL_MAX_NO_TILESPECS`, `JPWL_MAX_NO_PACKSPECS`.
const PATH_LEN: usize = 4096;
const MAXRLVLS: usize = 33;
const JPWL_TILESPECS: usize = 16;
const JPWL_PACKSPECS: usize = 16;

/// Opaque `opj_codec_t` and `opj_stream_t` (both `void *` in the header).
pub enum opj_codec {}
pub enum opj_stream {}

/// `opj_dparameters_t`: decoder parameters.
#[repr(C)]
pub struct opj_dparameters_t {
    pub cp_reduce: u32,
    pub cp_layer: u32,
    pub infile: [c_char; PATH_LEN],
    pub outfile: [c_char; PATH_LEN],
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

/// `opj_poc_t` (progression order changes): never used here, only its size matters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct opj_poc_t {
    _private: [u32; 37],
}

/// `opj_cparameters_t`: encoder parameters, filled by `opj_set_default_encoder_parameters`.
#[repr(C)]
pub struct opj_cparameters_t {
    pub tile_size_on: OPJ_BOOL,
    pub cp_tx0: c_int,
    pub cp_ty0: c_int,
    pub cp_tdx: c_int,
    pub cp_tdy: c_int,
    pub cp_disto_alloc: c_int,
    pub cp_fixed_alloc: c_int,
    pub cp_fixed_quality: c_int,
    pub cp_matrice: *mut c_int,
    pub cp_comment: *mut c_char,
    pub csty: c_int,
    pub prog_order: c_int,
    pub poc: [opj_poc_t; 32],
    pub numpocs: u32,
    pub tcp_numlayers: c_int,
    pub tcp_rates: [f32; 100],
    pub tcp_distoratio: [f32; 100],
    pub numresolution: c_int,
    pub cblockw_init: c_int,
    pub cblockh_init: c_int,
    pub mode: c_int,
    pub irreversible: c_int,
    pub roi_compno: c_int,
    pub roi_shift: c_int,
    pub res_spec: c_int,
    pub prcw_init: [c_int; MAXRLVLS],
    pub prch_init: [c_int; MAXRLVLS],
    pub infile: [c_char; PATH_LEN],
    pub outfile: [c_char; PATH_LEN],
    pub index_on: c_int,
    pub index: [c_char; PATH_LEN],
    pub image_offset_x0: c_int,
    pub image_offset_y0: c_int,
    pub subsampling_dx: c_int,
    pub subsampling_dy: c_int,
    pub decod_format: c_int,
    pub cod_format: c_int,
    pub jpwl_epc_on: OPJ_BOOL,
    pub jpwl_hprot_mh: c_int,
    pub jpwl_hprot_tph_tileno: [c_int; JPWL_TILESPECS],
    pub jpwl_hprot_tph: [c_int; JPWL_TILESPECS],
    pub jpwl_pprot_tileno: [c_int; JPWL_PACKSPECS],
    pub jpwl_pprot_packno: [c_int; JPWL_PACKSPECS],
    pub jpwl_pprot: [c_int; JPWL_PACKSPECS],
    pub jpwl_sens_size: c_int,
    pub jpwl_sens_addr: c_int,
    pub jpwl_sens_range: c_int,
    pub jpwl_sens_mh: c_int,
    pub jpwl_sens_tph_tileno: [c_int; JPWL_TILESPECS],
    pub jpwl_sens_tph: [c_int; JPWL_TILESPECS],
    pub cp_cinema: c_int,
    pub max_comp_size: c_int,
    pub cp_rsiz: c_int,
    pub tp_on: c_char,
    pub tp_flag: c_char,
    pub tcp_mct: c_char,
    pub jpip_on: OPJ_BOOL,
    pub mct_data: *mut c_void,
    pub max_cs_size: c_int,
    pub rsiz: u16,
}

/// `opj_image_cmptparm_t`: the description of one component for `opj_image_create`.
#[repr(C)]
pub struct opj_image_cmptparm_t {
    pub dx: u32,
    pub dy: u32,
    pub w: u32,
    pub h: u32,
    pub x0: u32,
    pub y0: u32,
    pub prec: u32,
    /// Deprecated (`prec` is used).
    pub bpp: u32,
    pub sgnd: u32,
}

/// `opj_image_comp_t`: one component of an image.
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
    assert!(size_of::<opj_poc_t>() == 148);
    assert!(size_of::<opj_image_cmptparm_t>() == 36);
    assert!(size_of::<opj_cparameters_t>() == 18720);
    assert!(offset_of!(opj_cparameters_t, cp_matrice) == 32);
    assert!(offset_of!(opj_cparameters_t, poc) == 56);
    assert!(offset_of!(opj_cparameters_t, numpocs) == 4792);
    assert!(offset_of!(opj_cparameters_t, tcp_rates) == 4800);
    assert!(offset_of!(opj_cparameters_t, tcp_distoratio) == 5200);
    assert!(offset_of!(opj_cparameters_t, numresolution) == 5600);
    assert!(offset_of!(opj_cparameters_t, irreversible) == 5616);
    assert!(offset_of!(opj_cparameters_t, prcw_init) == 5632);
    assert!(offset_of!(opj_cparameters_t, infile) == 5896);
    assert!(offset_of!(opj_cparameters_t, index_on) == 14088);
    assert!(offset_of!(opj_cparameters_t, cod_format) == 18208);
    assert!(offset_of!(opj_cparameters_t, jpwl_sens_tph) == 18620);
    assert!(offset_of!(opj_cparameters_t, cp_cinema) == 18684);
    assert!(offset_of!(opj_cparameters_t, tcp_mct) == 18698);
    assert!(offset_of!(opj_cparameters_t, jpip_on) == 18700);
    assert!(offset_of!(opj_cparameters_t, mct_data) == 18704);
    assert!(offset_of!(opj_cparameters_t, rsiz) == 18716);
    assert!(size_of::<opj_dparameters_t>() == 8252);
    assert!(offset_of!(opj_dparameters_t, flags) == 8248);
    assert!(offset_of!(opj_image_comp_t, data) == 44usize.next_multiple_of(align_of::<usize>()));
    assert!(offset_of!(opj_image_t, comps) == 24);
    assert!(offset_of!(opj_image_t, icc_profile_len) == 24 + 2 * size_of::<usize>());
};

pub type opj_msg_callback = Option<unsafe extern "C" fn(msg: *const c_char, data: *mut c_void)>;
pub type opj_stream_read_fn =
    Option<unsafe extern "C" fn(buf: *mut c_void, n: usize, data: *mut c_void) -> usize>;
pub type opj_stream_write_fn =
    Option<unsafe extern "C" fn(buf: *mut c_void, n: usize, data: *mut c_void) -> usize>;
pub type opj_stream_skip_fn = Option<unsafe extern "C" fn(n: i64, data: *mut c_void) -> i64>;
pub type opj_stream_seek_fn = Option<unsafe extern "C" fn(n: i64, data: *mut c_void) -> OPJ_BOOL>;
pub type opj_stream_free_user_data_fn = Option<unsafe extern "C" fn(data: *mut c_void)>;

#[link(name = "openjp2")]
unsafe extern "C" {
    pub fn opj_version() -> *const c_char;

    pub fn opj_create_decompress(format: c_int) -> *mut opj_codec;
    pub fn opj_destroy_codec(codec: *mut opj_codec);
    pub fn opj_create_compress(format: c_int) -> *mut opj_codec;
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
    pub fn opj_set_default_encoder_parameters(parameters: *mut opj_cparameters_t);
    pub fn opj_setup_encoder(
        codec: *mut opj_codec,
        parameters: *mut opj_cparameters_t,
        image: *mut opj_image_t,
    ) -> OPJ_BOOL;
    pub fn opj_start_compress(
        codec: *mut opj_codec,
        image: *mut opj_image_t,
        stream: *mut opj_stream,
    ) -> OPJ_BOOL;
    pub fn opj_encode(codec: *mut opj_codec, stream: *mut opj_stream) -> OPJ_BOOL;
    pub fn opj_end_compress(codec: *mut opj_codec, stream: *mut opj_stream) -> OPJ_BOOL;
    pub fn opj_image_create(
        numcmpts: u32,
        cmptparms: *mut opj_image_cmptparm_t,
        clrspc: c_int,
    ) -> *mut opj_image_t;
    pub fn opj_stream_set_write_function(stream: *mut opj_stream, f: opj_stream_write_fn);
    pub fn opj_stream_set_user_data_length(stream: *mut opj_stream, length: u64);
}

/// A codec from `opj_create_compress` or `opj_create_decompress`, destroyed on drop.
pub struct Codec(pub NonNull<opj_codec>);

impl Drop for Codec {
    fn drop(&mut self) {
        // SAFETY: created by opj_create_(de)compress and owned here, destroyed once.
        unsafe { opj_destroy_codec(self.0.as_ptr()) }
    }
}

/// A stream from `opj_stream_create`, destroyed on drop. Its user data has no free function:
/// the caller owns the state and keeps it alive while the stream is used.
pub struct Stream(pub NonNull<opj_stream>);

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: created by opj_stream_create and owned here, destroyed once.
        unsafe { opj_stream_destroy(self.0.as_ptr()) }
    }
}
