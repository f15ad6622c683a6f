//! Raw bindings to Debian's libavif, generated from the installed `avif/avif.h` by `build.rs`
//! (bindgen), so struct layouts always match the linked library. Only [`super::avif`] uses them.

#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all
)]

include!(concat!(env!("OUT_DIR"), "/avif_bindings.rs"));
