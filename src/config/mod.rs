//! Configuration: every environment variable iipsrv reads, with its name, default, clamping and
//! quirks (`docs/behaviour/server-and-config.md` §2), read once at start-up into a typed [`Config`].
//!
//! # Brief overview
//!
//! Each variable is defined once, in the table of `vars.rs`: its name, its default, what it
//! means, how its value is read into the [`Config`], and the line iipsrv logs for it at
//! start-up. [`Config::from_lookup`] runs the table's readers, [`Config::settings_lines`] its
//! log lines, and a test checks the README's configuration tables against it, so the three
//! cannot drift apart.
//!
//! Raw values are looked up through a function so that tests need no process environment.
//! A numeric value is read as iipsrv reads it (C `atoi`/`atof`, with its clamping); a value that
//! is not a number at all (`true`, `abc`, `12abc`) gets the default and a warning that `main`
//! logs (iipsrv would silently read `atoi`'s 0 or prefix; docs/compatibility.md). Nothing here
//! can fail.
//!
//! The values are typed for the layer that uses them (a [`TiffCompression`], a [`Limit`]
//! instead of iipsrv's `-1`), and grouped by what they configure: [`Config::logging`],
//! [`Config::files`], [`Config::caches`], [`Config::output`], [`Config::exports`],
//! [`Config::decoding`], [`Config::http`], [`Config::iiif`], [`Config::server`], [`Config::load`].

mod settings;
mod types;
pub(crate) mod vars;

pub use settings::{
    CacheSettings, Config, DecodingSettings, ExportSettings, FileSettings, HttpSettings,
    IiifSettings, LoadSettings, LoggingSettings, OutputSettings, ServerSettings, StorageSettings,
    UriMap, Warnings, parse_uri_map,
};
pub use types::{AvifCodec, Interpolation, Limit, LogFormat, MaxLayers, TiffCompression};

impl Default for Config {
    fn default() -> Self {
        Config::from_lookup(|_| None).0
    }
}

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> (Config, Warnings) {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Read the configuration through `lookup` (the environment, or a test's map): every
    /// variable of the table in `vars.rs`, in its order.
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(lookup: F) -> (Config, Warnings) {
        let mut config = Config {
            logging: LoggingSettings::default(),
            files: FileSettings::default(),
            caches: CacheSettings::default(),
            output: OutputSettings::default(),
            exports: ExportSettings::default(),
            decoding: DecodingSettings::default(),
            http: HttpSettings::default(),
            iiif: IiifSettings::default(),
            server: ServerSettings::default(),
            storage: StorageSettings::default(),
            load: LoadSettings::default(),
        };
        let mut warnings = Warnings::new();
        for var in vars::VARIABLES {
            let mut reader = vars::Reader::new(&lookup, var, &mut warnings);
            (var.read)(&mut reader, &mut config);
        }
        (config, warnings)
    }

    /// The settings lines iipsrv logs at start-up, in its order (`docs/behaviour/server-and-config.md` §1.4).
    pub fn settings_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for var in vars::VARIABLES {
            var.banner.write(self, &mut lines);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> (Config, Warnings) {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn cors_origins_are_a_list_read_after_cors() {
        let (c, w) = cfg(&[
            ("CORS", "https://main.example"),
            (
                "IIPSRV_CORS_ORIGINS",
                "https://a.example, https://b.example:8443",
            ),
        ]);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            c.http.cors_origins,
            ["https://a.example", "https://b.example:8443"]
        );
        let (c, w) = cfg(&[("IIPSRV_CORS_ORIGINS", "a.example")]);
        assert_eq!(c.http.cors_origins, ["a.example"]);
        assert_eq!(w.len(), 2, "not an origin, and no CORS: {w:?}");
        assert!(cfg(&[]).0.http.cors_origins.is_empty());
    }

    #[test]
    fn defaults_are_iipsrvs() {
        let (c, w) = cfg(&[]);
        assert!(w.is_empty());
        assert_eq!(c.logging.verbosity, 1);
        assert_eq!(c.logging.logfile, "/tmp/iipsrv.log");
        assert_eq!(c.max_image_cache_bytes(), 10 * 1_024_000);
        assert_eq!(c.caches.metadata_entries, Limit::Max(1000));
        assert_eq!(c.files.pattern, "_pyr_");
        assert_eq!(c.output.jpeg_quality, 75);
        assert_eq!(c.output.png_quality, 1);
        assert_eq!(c.output.webp_quality, 50);
        assert_eq!(c.output.avif_quality, 50);
        assert_eq!(c.output.tiff_compression, TiffCompression::Deflate);
        assert_eq!(c.output.tiff_quality, 1);
        assert_eq!(c.exports.max_cvt, Limit::Max(5000));
        assert_eq!(c.caches.memcached_servers, "localhost");
        assert_eq!(c.caches.memcached_timeout, 86400);
        assert_eq!(c.output.interpolation, Interpolation::Bilinear);
        assert_eq!(c.http.cache_control, "max-age=86400");
        assert!(c.exports.allow_upscaling);
        assert!(c.output.codec_passthrough);
        assert_eq!(c.output.max_icc, Limit::Max(65536));
        assert_eq!(c.iiif.version, 3);
        assert!(!c.iiif.extensions);
        assert!(c.http.uri_map.is_none());
        assert!(c.server.web_server_addrs.is_none());
        assert!(c.server.workers >= 1);
        assert_eq!(c.caches.decoded_jpeg_mib, 256);
    }

    #[test]
    fn heavy_threads_are_four_per_core_with_object_storage_unless_set() {
        let local = cfg(&[]).0.load.heavy_threads;
        for prefix in ["s3://bucket/images/", "HTTPS://host/iiif/", "http://host/"] {
            let (c, _) = cfg(&[("FILESYSTEM_PREFIX", prefix)]);
            assert_eq!(c.load.heavy_threads, 4 * local, "{prefix}");
        }
        let (c, _) = cfg(&[("FILESYSTEM_PREFIX", "/images/s3://")]);
        assert_eq!(c.load.heavy_threads, local);
        let (c, _) = cfg(&[
            ("FILESYSTEM_PREFIX", "s3://bucket/"),
            ("IIPSRV_HEAVY_THREADS", "3"),
        ]);
        assert_eq!(c.load.heavy_threads, 3);
    }

    #[test]
    fn verbosity_negative_is_zero() {
        assert_eq!(cfg(&[("VERBOSITY", "-3")]).0.logging.verbosity, 0);
        assert_eq!(cfg(&[("VERBOSITY", "5")]).0.logging.verbosity, 5);
    }

    #[test]
    fn cache_size_is_upstream_megabytes() {
        assert_eq!(
            cfg(&[("MAX_IMAGE_CACHE_SIZE", "2.5")])
                .0
                .max_image_cache_bytes(),
            2_560_000
        );
        assert_eq!(
            cfg(&[("MAX_IMAGE_CACHE_SIZE", "0")])
                .0
                .max_image_cache_bytes(),
            0
        );
        let (c, w) = cfg(&[("MAX_IMAGE_CACHE_SIZE", "-4")]);
        assert_eq!(c.max_image_cache_bytes(), 0);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn metadata_cache_both_names_code_name_wins() {
        assert_eq!(
            cfg(&[("MAX_IMAGE_METADATA_CACHE_SIZE", "7")])
                .0
                .caches
                .metadata_entries,
            Limit::Max(7)
        );
        assert_eq!(
            cfg(&[
                ("MAX_IMAGE_METADATA_CACHE_SIZE", "7"),
                ("MAX_METADATA_CACHE_SIZE", "9")
            ])
            .0
            .caches
            .metadata_entries,
            Limit::Max(9)
        );
        assert_eq!(
            cfg(&[("MAX_METADATA_CACHE_SIZE", "-1")])
                .0
                .caches
                .metadata_entries,
            Limit::Unlimited
        );
    }

    #[test]
    fn qualities_clamp() {
        assert_eq!(cfg(&[("JPEG_QUALITY", "0")]).0.output.jpeg_quality, 1);
        assert_eq!(cfg(&[("JPEG_QUALITY", "150")]).0.output.jpeg_quality, 100);
        let (c, w) = cfg(&[("JPEG_QUALITY", "abc")]);
        assert_eq!(
            c.output.jpeg_quality, 75,
            "not a number: the default, with a warning"
        );
        assert_eq!(w.len(), 1);
        assert_eq!(cfg(&[("JPEG_QUALITY", " 80 ")]).0.output.jpeg_quality, 80);
        assert_eq!(cfg(&[("PNG_QUALITY", "12")]).0.output.png_quality, 9);
        assert_eq!(cfg(&[("WEBP_QUALITY", "-5")]).0.output.webp_quality, -1);
        assert_eq!(cfg(&[("AVIF_QUALITY", "101")]).0.output.avif_quality, 100);
        assert_eq!(
            cfg(&[("AVIF_CODEC", "4")]).0.output.avif_codec,
            AvifCodec::Auto
        );
        assert_eq!(
            cfg(&[("AVIF_CODEC", "-1")]).0.output.avif_codec,
            AvifCodec::Auto
        );
        assert_eq!(
            cfg(&[("AVIF_CODEC", "2")]).0.output.avif_codec,
            AvifCodec::Rav1e
        );
    }

    #[test]
    fn tiff_compression_and_quality_quirks() {
        let none = TiffCompression::None;
        assert_eq!(
            cfg(&[("TIFF_COMPRESSION", "5")]).0.output.tiff_compression,
            none
        );
        assert_eq!(
            cfg(&[("TIFF_COMPRESSION", "-1")]).0.output.tiff_compression,
            none
        );
        assert_eq!(
            cfg(&[("TIFF_COMPRESSION", "3")]).0.output.tiff_compression,
            TiffCompression::Jpeg
        );
        assert_eq!(
            cfg(&[("TIFF_QUALITY", "50")]).0.output.tiff_quality,
            9,
            "deflate caps at 9"
        );
        assert_eq!(
            cfg(&[("TIFF_COMPRESSION", "3"), ("TIFF_QUALITY", "50")])
                .0
                .output
                .tiff_quality,
            50
        );
    }

    #[test]
    fn max_cvt_rules() {
        assert_eq!(
            cfg(&[("MAX_CVT", "-1")]).0.exports.max_cvt,
            Limit::Unlimited
        );
        assert_eq!(cfg(&[("MAX_CVT", "0")]).0.exports.max_cvt, Limit::Max(5000));
        assert_eq!(cfg(&[("MAX_CVT", "-7")]).0.exports.max_cvt, Limit::Max(1));
        assert_eq!(
            cfg(&[("MAX_CVT", "800")]).0.exports.max_cvt,
            Limit::Max(800)
        );
    }

    #[test]
    fn booleans_are_atoi() {
        assert!(!cfg(&[("ALLOW_UPSCALING", "0")]).0.exports.allow_upscaling);
        assert!(
            cfg(&[("CODEC_PASSTHROUGH", "2")])
                .0
                .output
                .codec_passthrough
        );
        // Not numbers: the default (iipsrv would read 0), with a warning.
        let (c, w) = cfg(&[("ALLOW_UPSCALING", "true"), ("CODEC_PASSTHROUGH", "no")]);
        assert!(c.exports.allow_upscaling);
        assert!(c.output.codec_passthrough);
        assert_eq!(w.len(), 2);
        assert!(cfg(&[("IIIF_EXTENSIONS", "1")]).0.iiif.extensions);
    }

    #[test]
    fn iiif_version_below_one_is_three() {
        assert_eq!(cfg(&[("IIIF_VERSION", "0")]).0.iiif.version, 3);
        assert_eq!(cfg(&[("IIIF_VERSION", "-1")]).0.iiif.version, 3);
        assert_eq!(cfg(&[("IIIF_VERSION", "x")]).0.iiif.version, 3);
        assert_eq!(
            cfg(&[("MAX_IMAGE_CACHE_SIZE", "lots")]).0.caches.tile_mb,
            10.0
        );
        assert_eq!(cfg(&[("VERBOSITY", "loud")]).0.logging.verbosity, 1);
        assert_eq!(cfg(&[("IIIF_VERSION", "2")]).0.iiif.version, 2);
    }

    #[test]
    fn interpolation_and_memcached_timeout() {
        assert_eq!(
            cfg(&[("INTERPOLATION", "0")]).0.output.interpolation,
            Interpolation::Nearest
        );
        assert_eq!(
            cfg(&[("INTERPOLATION", "7")]).0.output.interpolation,
            Interpolation::Bilinear
        );
        assert_eq!(
            cfg(&[("MEMCACHED_TIMEOUT", "-1")])
                .0
                .caches
                .memcached_timeout,
            u32::MAX
        );
    }

    #[test]
    fn watermark_values_clamp() {
        let (c, _) = cfg(&[("WATERMARK_PROBABILITY", "2"), ("WATERMARK_OPACITY", "-1")]);
        assert_eq!(c.output.watermark_probability, 1.0);
        assert_eq!(c.output.watermark_opacity, 0.0);
    }

    #[test]
    fn uri_map_parsing() {
        let m = parse_uri_map("iiif=>IIIF").unwrap();
        assert_eq!(
            m,
            UriMap {
                prefix: "iiif".into(),
                protocol: "IIIF".into(),
                command: "iiif"
            }
        );
        assert_eq!(m.value(), "iiif=>IIIF");
        assert_eq!(parse_uri_map("img=>iip").unwrap().command, "fif");
        assert_eq!(parse_uri_map("=>DeepZoom").unwrap().prefix, "");
        assert!(
            parse_uri_map("a=>b=>zoomify")
                .unwrap_err()
                .contains("Unsupported")
        );
        assert!(parse_uri_map("iiif").is_err());
        let (c, w) = cfg(&[("URI_MAP", "x=>nope")]);
        assert!(c.http.uri_map.is_none());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn web_server_addrs() {
        let (c, w) = cfg(&[("FCGI_WEB_SERVER_ADDRS", "127.0.0.1, ::1,bogus")]);
        assert_eq!(c.server.web_server_addrs.unwrap().len(), 2);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn settings_lines_start_like_iipsrvs() {
        let (c, _) = cfg(&[]);
        let l = c.settings_lines();
        assert_eq!(l[0], "Setting maximum image tile data cache size to 10MB");
        assert_eq!(
            l[1],
            "Setting maximum image metadata cache size to 1000 images"
        );
        assert_eq!(
            l[4],
            "Setting default TIFF output compression/quality to Deflate/1"
        );
    }

    /// The settings part of the start-up log, byte for byte (it mimics iipsrv's log).
    #[test]
    fn settings_lines_are_unchanged() {
        let lines = |pairs: &[(&str, &str)]| cfg(pairs).0.settings_lines();
        assert_eq!(
            lines(&[("IIPSRV_WORKERS", "2")]),
            [
                "Setting maximum image tile data cache size to 10MB",
                "Setting maximum image metadata cache size to 1000 images",
                "Setting filesystem prefix to ''",
                "Setting filesystem suffix to ''",
                "Setting default TIFF output compression/quality to Deflate/1",
                "Setting default JPEG output quality to 75",
                "Setting default PNG output compression level to 1",
                "Setting default WebP output compression level to 50",
                "Setting default AVIF compression level to 50",
                "Setting AVIF codec to auto",
                "Setting maximum CVT size to 5000",
                "Setting HTTP Cache-Control header to 'max-age=86400'",
                "Setting 3D file sequence name pattern to '_pyr_'",
                "Setting default IIIF Image API version to 3",
                "Setting IIIF image processing API extension support to false",
                "Setting Allow Upscaling to true",
                "Setting maximum ICC profile size to 65536 bytes",
                "Setting codec passthrough to true",
                "Setting image processing engine to CPU processor",
                "Image work runs on 2 worker threads",
            ]
        );
        assert_eq!(
            lines(&[
                ("MAX_IMAGE_CACHE_SIZE", "2.5"),
                ("MAX_METADATA_CACHE_SIZE", "-1"),
                ("FILESYSTEM_PREFIX", "/srv/images/"),
                ("FILESYSTEM_SUFFIX", ".tif"),
                ("TIFF_COMPRESSION", "3"),
                ("TIFF_QUALITY", "50"),
                ("JPEG_QUALITY", "90"),
                ("PNG_QUALITY", "6"),
                ("WEBP_QUALITY", "-1"),
                ("AVIF_QUALITY", "-1"),
                ("AVIF_CODEC", "2"),
                ("MAX_CVT", "-1"),
                ("CACHE_CONTROL", ""),
                ("FILENAME_PATTERN", "_seq_"),
                ("IIIF_VERSION", "2"),
                ("IIIF_EXTENSIONS", "1"),
                ("IIIF_DELIMITER", "_p"),
                ("CORS", "*"),
                ("BASE_URL", "https://example.org/iiif/"),
                ("MAX_LAYERS", "-1"),
                ("ALLOW_UPSCALING", "0"),
                ("MAX_ICC", "-1"),
                ("CODEC_PASSTHROUGH", "0"),
                ("COPYRIGHT", "CC0"),
                ("IIPSRV_WORKERS", "3"),
                ("URI_MAP", "iiif=>IIIF"),
            ]),
            [
                "Setting maximum image tile data cache size to 2.5MB",
                "Setting maximum image metadata cache size to -1 (unlimited) images",
                "Setting filesystem prefix to '/srv/images/'",
                "Setting filesystem suffix to '.tif'",
                "Setting default TIFF output compression/quality to JPEG/50",
                "Setting default JPEG output quality to 90",
                "Setting default PNG output compression level to 6",
                "Setting default WebP output compression level to lossless",
                "Setting default AVIF compression level to lossless",
                "Setting AVIF codec to rav1e",
                "Setting maximum CVT size to -1",
                "Setting HTTP Cache-Control header to ''",
                "Setting 3D file sequence name pattern to '_seq_'",
                "Setting default IIIF Image API version to 2",
                "Setting IIIF image processing API extension support to true",
                "Setting default IIIF multi-page delimiter to '_p'",
                "Setting Cross Origin Resource Sharing to '*'",
                "Setting base URL to 'https://example.org/iiif/'",
                "Setting max quality layers (for supported file formats) to all layers",
                "Setting Allow Upscaling to false",
                "Setting maximum ICC profile size to unlimited",
                "Setting codec passthrough to false",
                "Setting default rights/copyright statement to 'CC0'",
                "Setting image processing engine to CPU processor",
                "Image work runs on 3 worker threads",
                "Setting URI mapping to iiif=>IIIF. Supported protocol: IIIF (prefix 'iiif', command iiif)",
            ]
        );
        assert_eq!(
            lines(&[
                ("MAX_IMAGE_CACHE_SIZE", "0"),
                ("MAX_METADATA_CACHE_SIZE", "0"),
                ("TIFF_COMPRESSION", "9"),
                ("WEBP_QUALITY", "0"),
                ("AVIF_CODEC", "3"),
                ("MAX_CVT", "0"),
                ("MAX_LAYERS", "4"),
                ("MAX_ICC", "0"),
                ("IIPSRV_WORKERS", "1"),
                ("URI_MAP", "=>DeepZoom"),
            ]),
            [
                "Setting maximum image tile data cache size to 0MB",
                "Setting maximum image metadata cache size to 0 images",
                "Setting filesystem prefix to ''",
                "Setting filesystem suffix to ''",
                "Setting default TIFF output compression/quality to None/1",
                "Setting default JPEG output quality to 75",
                "Setting default PNG output compression level to 1",
                "Setting default WebP output compression level to 0",
                "Setting default AVIF compression level to 50",
                "Setting AVIF codec to svt",
                "Setting maximum CVT size to 5000",
                "Setting HTTP Cache-Control header to 'max-age=86400'",
                "Setting 3D file sequence name pattern to '_pyr_'",
                "Setting default IIIF Image API version to 3",
                "Setting IIIF image processing API extension support to false",
                "Setting max quality layers (for supported file formats) to 4",
                "Setting Allow Upscaling to true",
                "Setting maximum ICC profile size to 0 bytes",
                "Setting codec passthrough to true",
                "Setting image processing engine to CPU processor",
                "Image work runs on 1 worker threads",
                "Setting URI mapping to =>DeepZoom. Supported protocol: DeepZoom (prefix '', command deepzoom)",
            ]
        );
    }
}
