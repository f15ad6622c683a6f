//! Build script: bindings to Debian's libavif (`libavif-dev`) for `src/encode/avif_ffi.rs`.
//!
//! The bindings are generated from the installed `avif/avif.h` rather than written by hand,
//! because libavif's structs (`avifEncoder`, `avifImage`) change layout between releases
//! (0.11 in Debian 12, 1.x later) and the encoder writes their fields directly.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let avif = pkg_config::Config::new()
        .atleast_version("0.9")
        .probe("libavif")
        .expect("libavif not found by pkg-config: install Debian's libavif-dev");

    let mut builder = bindgen::Builder::default()
        .header_contents("avif_wrapper.h", "#include <avif/avif.h>\n")
        .rust_target(bindgen::RustTarget::stable(85, 0).expect("supported Rust target"))
        .rust_edition(bindgen::RustEdition::Edition2024)
        .allowlist_function("avif.*")
        .allowlist_type("avif.*")
        .allowlist_var("AVIF_.*")
        .prepend_enum_name(false)
        .layout_tests(false)
        .derive_debug(false)
        .generate_comments(false);
    for path in &avif.include_paths {
        builder = builder.clang_arg(format!("-I{}", path.display()));
    }
    let bindings = builder.generate().expect("bindgen over avif/avif.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("avif_bindings.rs");
    bindings.write_to_file(out).expect("write avif bindings");
}
