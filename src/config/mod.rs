//! Configuration: every environment variable iipsrv reads, with its name, default, clamping and
//! quirks (`server-and-config.md` §2), read once at start-up into a typed [`Config`].
//!
//! Raw values are looked up through a function so that tests need no process environment.
//! A numeric value is read as iipsrv reads it (C `atoi`/`atof`, with its clamping); a value that
//! is not a number at all (`true`, `abc`, `12abc`) gets the default and a warning that `main`
//! logs (iipsrv would silently read `atoi`'s 0 or prefix; docs/compatibility.md). Nothing here
//! can fail.

use std::net::IpAddr;

use crate::encode::{AvifCodec, TiffCompression};
use crate::pipeline::resize::Interpolation;
use crate::source::jp2::MaxLayers;

use crate::text::number::{atof, atoi};

use crate::http::HeaderDefaults;

/// A bound that may be lifted: iipsrv's `-1` ("unlimited") sentinels, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Max(u64),
}

impl Limit {
    /// The bound, `None` when unlimited.
    pub fn max(self) -> Option<u64> {
        match self {
            Limit::Unlimited => None,
            Limit::Max(n) => Some(n),
        }
    }

    /// The value as iipsrv holds it in its `int` settings: -1 for unlimited.
    pub fn as_sentinel(self) -> i64 {
        match self {
            Limit::Unlimited => -1,
            Limit::Max(n) => n.min(i64::MAX as u64) as i64,
        }
    }
}

/// Which protocol a `URI_MAP` prefix routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriMap {
    /// The path prefix, matched right after the leading `/` of `REQUEST_URI`.
    pub prefix: String,
    /// The command the path is handed to: `fif`, `iiif`, `zoomify` or `deepzoom`.
    pub command: &'static str,
}

/// The whole configuration. Field docs name the environment variable.
#[derive(Debug, Clone)]
pub struct Config {
    /// `VERBOSITY` (default 1; negative → 0).
    pub verbosity: i64,
    /// `LOGFILE` (default `/tmp/iipsrv.log`; `syslog` for syslog).
    pub logfile: String,
    /// `MAX_IMAGE_CACHE_SIZE` in upstream "MB" (default 10.0).
    pub max_image_cache_mb: f64,
    /// `MAX_METADATA_CACHE_SIZE` (or the documented alias `MAX_IMAGE_METADATA_CACHE_SIZE`):
    /// entries; negative = unlimited, 0 = off. Default 1000.
    pub max_metadata_cache: Limit,
    /// `FILENAME_PATTERN` (default `_pyr_`).
    pub filename_pattern: String,
    /// `FILESYSTEM_PREFIX` (default empty).
    pub filesystem_prefix: String,
    /// `FILESYSTEM_SUFFIX` (default empty).
    pub filesystem_suffix: String,
    /// `JPEG_QUALITY` (default 75, clamped 1–100).
    pub jpeg_quality: i32,
    /// `PNG_QUALITY` (default 1, clamped 0–9).
    pub png_quality: i32,
    /// `WEBP_QUALITY` (default 50, clamped -1–100; -1 lossless).
    pub webp_quality: i32,
    /// `AVIF_QUALITY` (default 50, clamped -1–100; -1 lossless).
    pub avif_quality: i32,
    /// `AVIF_CODEC` (0 auto, 1 aom, 2 rav1e, 3 svt; anything else 0).
    pub avif_codec: AvifCodec,
    /// `TIFF_COMPRESSION` (default 2 Deflate; outside 0–4 → 0 None).
    pub tiff_compression: TiffCompression,
    /// `TIFF_QUALITY` (default 1, clamped 0–100; ≤ 9 with Deflate).
    pub tiff_quality: i32,
    /// `MAX_CVT` (default 5000; -1 unlimited; 0 → 5000; < -1 → 1).
    pub max_cvt: Limit,
    /// `MAX_LAYERS` (default 0).
    pub max_layers: MaxLayers,
    /// `WATERMARK` (a TIFF path; empty = none).
    pub watermark: String,
    /// `WATERMARK_PROBABILITY` (default 1.0, clamped 0–1).
    pub watermark_probability: f64,
    /// `WATERMARK_OPACITY` (default 1.0, clamped 0–1).
    pub watermark_opacity: f64,
    /// `MEMCACHED_SERVERS` (default `localhost`).
    pub memcached_servers: String,
    /// `MEMCACHED_TIMEOUT`: expiry of stored responses in seconds (default 86400).
    pub memcached_timeout: u32,
    /// `INTERPOLATION` (0 nearest; anything else bilinear; default 1).
    pub interpolation: Interpolation,
    /// `CORS` (empty = off).
    pub cors: String,
    /// `BASE_URL` (empty = derive from the request).
    pub base_url: String,
    /// `CACHE_CONTROL` (default `max-age=86400`; an empty value is sent empty).
    pub cache_control: String,
    /// `ALLOW_UPSCALING` (atoi ≠ 0; default true).
    pub allow_upscaling: bool,
    /// `URI_MAP` as given.
    pub uri_map_raw: String,
    /// `URI_MAP` parsed; `None` when unset, malformed or naming an unsupported protocol.
    pub uri_map: Option<UriMap>,
    /// `MAX_ICC` (default 65536; negative unlimited; 0 never). An ICC profile is embedded only if
    /// its size is strictly less than this.
    pub max_icc: Limit,
    /// `CODEC_PASSTHROUGH` (default true).
    pub codec_passthrough: bool,
    /// `KAKADU_READMODE` (accepted for compatibility; > 2 → 2).
    pub kakadu_readmode: u32,
    /// `IIIF_VERSION` (default 3; < 1 → 3).
    pub iiif_version: u32,
    /// `IIIF_DELIMITER` (default empty).
    pub iiif_delimiter: String,
    /// `IIIF_EXTRA_INFO` (raw text appended to info.json).
    pub iiif_extra_info: String,
    /// `IIIF_EXTENSIONS` (default false).
    pub iiif_extensions: bool,
    /// `COPYRIGHT` (default rights statement).
    pub copyright: String,
    /// `FCGI_WEB_SERVER_ADDRS`: when set, only these peers may connect over TCP.
    pub fcgi_web_server_addrs: Option<Vec<IpAddr>>,
    /// `IIPSRV_WORKERS` (ours): runtime worker threads, which read requests and do the image
    /// work; default the number of cores.
    pub workers: usize,
    /// `IIPSRV_MAX_CONNECTIONS` (ours): connections served at once; default 4096.
    pub max_connections: usize,
    /// `IIPSRV_SHUTDOWN_TIMEOUT` (ours): seconds in-flight requests get on SIGTERM; default 10.
    pub shutdown_timeout_secs: u64,
    /// `IIPSRV_JPEG_CACHE_SIZE` (ours): MiB of decoded plain-JPEG levels kept; default 256, 0 off.
    pub jpeg_cache_mib: u64,
}

/// Warnings about values that were not what iipsrv's parser expects.
pub type Warnings = Vec<String>;

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Default for Config {
    fn default() -> Self {
        Config::from_lookup(|_| None).0
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
    warnings: Warnings,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn string(&self, name: &str, default: &str) -> String {
        (self.lookup)(name).unwrap_or_else(|| default.to_string())
    }

    fn int(&mut self, name: &str, default: i64) -> i64 {
        match (self.lookup)(name) {
            None => default,
            Some(raw) => {
                let p = atoi(&raw);
                if p.clean {
                    p.value
                } else {
                    self.warnings.push(format!(
                        "{name}='{raw}' is not a whole number: using the default {default}"
                    ));
                    default
                }
            }
        }
    }

    fn float(&mut self, name: &str, default: f64) -> f64 {
        match (self.lookup)(name) {
            None => default,
            Some(raw) => {
                let p = atof(&raw);
                if p.clean && p.value.is_finite() {
                    p.value
                } else {
                    self.warnings.push(format!(
                        "{name}='{raw}' is not a number: using the default {default}"
                    ));
                    default
                }
            }
        }
    }

    fn boolean(&mut self, name: &str, default: bool) -> bool {
        match (self.lookup)(name) {
            None => default,
            Some(_) => self.int(name, default as i64) != 0,
        }
    }

    fn clamp(&mut self, name: &str, v: i64, lo: i64, hi: i64) -> i64 {
        let c = v.clamp(lo, hi);
        if c != v {
            self.warnings
                .push(format!("{name}={v} is outside {lo}..{hi}: using {c}"));
        }
        c
    }
}

/// Parse `URI_MAP` (`prefix=>protocol`, split at the first `=>`).
pub fn parse_uri_map(raw: &str) -> Result<UriMap, String> {
    let Some((prefix, protocol)) = raw.split_once("=>") else {
        return Err(format!("Malformed URI map: {raw}"));
    };
    let command = match protocol.to_ascii_lowercase().as_str() {
        "iip" => "fif",
        "iiif" => "iiif",
        "zoomify" => "zoomify",
        "deepzoom" => "deepzoom",
        _ => {
            return Err(format!(
                "Setting URI mapping to {raw}. Unsupported protocol: {protocol}"
            ));
        }
    };
    Ok(UriMap {
        prefix: prefix.to_string(),
        command,
    })
}

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> (Config, Warnings) {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Read the configuration through `lookup` (the environment, or a test's map).
    pub fn from_lookup<F: Fn(&str) -> Option<String>>(lookup: F) -> (Config, Warnings) {
        let mut r = Reader {
            lookup: &lookup,
            warnings: Vec::new(),
        };

        let verbosity = r.int("VERBOSITY", 1).max(0);
        let logfile = r.string("LOGFILE", "/tmp/iipsrv.log");

        let mut max_image_cache_mb = r.float("MAX_IMAGE_CACHE_SIZE", 10.0);
        if max_image_cache_mb < 0.0 {
            r.warnings
                .push("MAX_IMAGE_CACHE_SIZE is negative: the tile cache is off".into());
            max_image_cache_mb = 0.0;
        }

        // The code's name wins over the documented alias.
        let entries = if lookup("MAX_METADATA_CACHE_SIZE").is_some() {
            r.int("MAX_METADATA_CACHE_SIZE", 1000)
        } else {
            r.int("MAX_IMAGE_METADATA_CACHE_SIZE", 1000)
        };
        let max_metadata_cache = if entries < 0 {
            Limit::Unlimited
        } else {
            Limit::Max(entries as u64)
        };

        let filename_pattern = r.string("FILENAME_PATTERN", "_pyr_");
        let filesystem_prefix = r.string("FILESYSTEM_PREFIX", "");
        let filesystem_suffix = r.string("FILESYSTEM_SUFFIX", "");

        let v = r.int("JPEG_QUALITY", 75);
        let jpeg_quality = r.clamp("JPEG_QUALITY", v, 1, 100) as i32;
        let v = r.int("PNG_QUALITY", 1);
        let png_quality = r.clamp("PNG_QUALITY", v, 0, 9) as i32;
        let v = r.int("WEBP_QUALITY", 50);
        let webp_quality = r.clamp("WEBP_QUALITY", v, -1, 100) as i32;
        let v = r.int("AVIF_QUALITY", 50);
        let avif_quality = r.clamp("AVIF_QUALITY", v, -1, 100) as i32;
        let v = r.int("AVIF_CODEC", 0);
        let avif_codec = AvifCodec::from_setting(v);

        let v = r.int("TIFF_COMPRESSION", 2);
        let tiff_compression = TiffCompression::from_setting(v).unwrap_or_else(|| {
            r.warnings.push(format!(
                "TIFF_COMPRESSION={v} is outside 0..4: using 0 (None)"
            ));
            TiffCompression::None
        });
        let v = r.int("TIFF_QUALITY", 1);
        let tiff_quality =
            (r.clamp("TIFF_QUALITY", v, 0, 100) as i32).min(tiff_compression.max_quality());

        let v = r.int("MAX_CVT", 5000);
        let max_cvt = match v {
            -1 => Limit::Unlimited,
            0 => Limit::Max(5000),
            v if v < -1 => Limit::Max(1),
            v => Limit::Max(v as u64),
        };
        let max_layers = MaxLayers::from_setting(r.int("MAX_LAYERS", 0));

        let watermark = r.string("WATERMARK", "");
        let watermark_probability = r.float("WATERMARK_PROBABILITY", 1.0).clamp(0.0, 1.0);
        let watermark_opacity = r.float("WATERMARK_OPACITY", 1.0).clamp(0.0, 1.0);

        let memcached_servers = r.string("MEMCACHED_SERVERS", "localhost");
        // C assigns atoi's int to an unsigned int: negative values wrap.
        let memcached_timeout = r.int("MEMCACHED_TIMEOUT", 86400) as i32 as u32;

        let interpolation = Interpolation::from_setting(r.int("INTERPOLATION", 1));

        let cors = r.string("CORS", "");
        let base_url = r.string("BASE_URL", "");
        let cache_control = r.string("CACHE_CONTROL", "max-age=86400");
        let allow_upscaling = r.boolean("ALLOW_UPSCALING", true);

        let uri_map_raw = r.string("URI_MAP", "");
        let uri_map = if uri_map_raw.is_empty() {
            None
        } else {
            match parse_uri_map(&uri_map_raw) {
                Ok(m) => Some(m),
                Err(w) => {
                    r.warnings.push(w);
                    None
                }
            }
        };

        let v = r.int("MAX_ICC", 65536);
        let max_icc = if v < 0 {
            Limit::Unlimited
        } else {
            Limit::Max(v as u64)
        };
        let codec_passthrough = r.boolean("CODEC_PASSTHROUGH", true);
        let kakadu_readmode = r.int("KAKADU_READMODE", 0).clamp(0, 2) as u32;

        let v = r.int("IIIF_VERSION", 3);
        let iiif_version = if v < 1 || v > u32::MAX as i64 {
            3
        } else {
            v as u32
        };
        let iiif_delimiter = r.string("IIIF_DELIMITER", "");
        let iiif_extra_info = r.string("IIIF_EXTRA_INFO", "");
        let iiif_extensions = r.boolean("IIIF_EXTENSIONS", false);
        let copyright = r.string("COPYRIGHT", "");

        let fcgi_web_server_addrs = lookup("FCGI_WEB_SERVER_ADDRS").map(|raw| {
            let mut addrs = Vec::new();
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<IpAddr>() {
                    Ok(a) => addrs.push(a),
                    Err(_) => r
                        .warnings
                        .push(format!("FCGI_WEB_SERVER_ADDRS: '{part}' is not an address")),
                }
            }
            addrs
        });

        let v = r.int("IIPSRV_WORKERS", cores() as i64);
        let workers = r.clamp("IIPSRV_WORKERS", v, 1, 1024) as usize;
        let v = r.int("IIPSRV_MAX_CONNECTIONS", 4096);
        let max_connections = r.clamp("IIPSRV_MAX_CONNECTIONS", v, 1, 1_000_000) as usize;
        let v = r.int("IIPSRV_SHUTDOWN_TIMEOUT", 10);
        let shutdown_timeout_secs = r.clamp("IIPSRV_SHUTDOWN_TIMEOUT", v, 0, 3600) as u64;
        let v = r.int("IIPSRV_JPEG_CACHE_SIZE", 256);
        let jpeg_cache_mib = r.clamp("IIPSRV_JPEG_CACHE_SIZE", v, 0, 1 << 20) as u64;

        let config = Config {
            verbosity,
            logfile,
            max_image_cache_mb,
            max_metadata_cache,
            filename_pattern,
            filesystem_prefix,
            filesystem_suffix,
            jpeg_quality,
            png_quality,
            webp_quality,
            avif_quality,
            avif_codec,
            tiff_compression,
            tiff_quality,
            max_cvt,
            max_layers,
            watermark,
            watermark_probability,
            watermark_opacity,
            memcached_servers,
            memcached_timeout,
            interpolation,
            cors,
            base_url,
            cache_control,
            allow_upscaling,
            uri_map_raw,
            uri_map,
            max_icc,
            codec_passthrough,
            kakadu_readmode,
            iiif_version,
            iiif_delimiter,
            iiif_extra_info,
            iiif_extensions,
            copyright,
            fcgi_web_server_addrs,
            workers,
            max_connections,
            shutdown_timeout_secs,
            jpeg_cache_mib,
        };
        (config, r.warnings)
    }

    /// The tile cache's capacity in bytes: ⌊MB × 1,024,000⌋ (an upstream "MB").
    pub fn max_image_cache_bytes(&self) -> u64 {
        (self.max_image_cache_mb * 1_024_000.0) as u64
    }

    /// The header values every response builder needs.
    pub fn header_defaults(&self) -> HeaderDefaults {
        HeaderDefaults {
            cors: (!self.cors.is_empty()).then(|| self.cors.clone()),
            cache_control: self.cache_control.clone(),
        }
    }

    /// The settings lines iipsrv logs at start-up, in its order (`server-and-config.md` §1.4).
    pub fn settings_lines(&self) -> Vec<String> {
        let mut l = Vec::new();
        let quality = |q: i32| {
            if q == -1 {
                "lossless".to_string()
            } else {
                q.to_string()
            }
        };
        l.push(format!(
            "Setting maximum image tile data cache size to {}MB",
            self.max_image_cache_mb
        ));
        match self.max_metadata_cache {
            Limit::Unlimited => {
                l.push("Setting maximum image metadata cache size to -1 (unlimited) images".into())
            }
            Limit::Max(n) => l.push(format!(
                "Setting maximum image metadata cache size to {n} images"
            )),
        }
        l.push(format!(
            "Setting filesystem prefix to '{}'",
            self.filesystem_prefix
        ));
        l.push(format!(
            "Setting filesystem suffix to '{}'",
            self.filesystem_suffix
        ));
        l.push(format!(
            "Setting default TIFF output compression/quality to {}/{}",
            self.tiff_compression.name(),
            self.tiff_quality
        ));
        l.push(format!(
            "Setting default JPEG output quality to {}",
            self.jpeg_quality
        ));
        l.push(format!(
            "Setting default PNG output compression level to {}",
            self.png_quality
        ));
        l.push(format!(
            "Setting default WebP output compression level to {}",
            quality(self.webp_quality)
        ));
        l.push(format!(
            "Setting default AVIF compression level to {}",
            quality(self.avif_quality)
        ));
        l.push(format!("Setting AVIF codec to {}", self.avif_codec.name()));
        l.push(format!(
            "Setting maximum CVT size to {}",
            self.max_cvt.as_sentinel()
        ));
        l.push(format!(
            "Setting HTTP Cache-Control header to '{}'",
            self.cache_control
        ));
        l.push(format!(
            "Setting 3D file sequence name pattern to '{}'",
            self.filename_pattern
        ));
        l.push(format!(
            "Setting default IIIF Image API version to {}",
            self.iiif_version
        ));
        l.push(format!(
            "Setting IIIF image processing API extension support to {}",
            self.iiif_extensions
        ));
        if !self.iiif_delimiter.is_empty() {
            l.push(format!(
                "Setting default IIIF multi-page delimiter to '{}'",
                self.iiif_delimiter
            ));
        }
        if !self.cors.is_empty() {
            l.push(format!(
                "Setting Cross Origin Resource Sharing to '{}'",
                self.cors
            ));
        }
        if !self.base_url.is_empty() {
            l.push(format!("Setting base URL to '{}'", self.base_url));
        }
        let layers = match self.max_layers {
            MaxLayers::Default => None,
            MaxLayers::All => Some("all layers".to_string()),
            MaxLayers::AtMost(n) => Some(n.to_string()),
        };
        if let Some(v) = layers {
            l.push(format!(
                "Setting max quality layers (for supported file formats) to {v}"
            ));
        }
        l.push(format!(
            "Setting Allow Upscaling to {}",
            self.allow_upscaling
        ));
        match self.max_icc {
            Limit::Unlimited => l.push("Setting maximum ICC profile size to unlimited".into()),
            Limit::Max(n) => l.push(format!("Setting maximum ICC profile size to {n} bytes")),
        }
        l.push(format!(
            "Setting codec passthrough to {}",
            self.codec_passthrough
        ));
        if !self.copyright.is_empty() {
            l.push(format!(
                "Setting default rights/copyright statement to '{}'",
                self.copyright
            ));
        }
        l.push("Setting image processing engine to CPU processor".into());
        l.push(format!(
            "Image work runs on {} worker threads",
            self.workers
        ));
        if let Some(m) = &self.uri_map {
            let proto = self.uri_map_raw.split_once("=>").map(|x| x.1).unwrap_or("");
            l.push(format!(
                "Setting URI mapping to {}. Supported protocol: {proto} (prefix '{}', command {})",
                self.uri_map_raw, m.prefix, m.command
            ));
        }
        l
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
    fn defaults_are_iipsrvs() {
        let (c, w) = cfg(&[]);
        assert!(w.is_empty());
        assert_eq!(c.verbosity, 1);
        assert_eq!(c.logfile, "/tmp/iipsrv.log");
        assert_eq!(c.max_image_cache_bytes(), 10 * 1_024_000);
        assert_eq!(c.max_metadata_cache, Limit::Max(1000));
        assert_eq!(c.filename_pattern, "_pyr_");
        assert_eq!(c.jpeg_quality, 75);
        assert_eq!(c.png_quality, 1);
        assert_eq!(c.webp_quality, 50);
        assert_eq!(c.avif_quality, 50);
        assert_eq!(c.tiff_compression, TiffCompression::Deflate);
        assert_eq!(c.tiff_quality, 1);
        assert_eq!(c.max_cvt, Limit::Max(5000));
        assert_eq!(c.memcached_servers, "localhost");
        assert_eq!(c.memcached_timeout, 86400);
        assert_eq!(c.interpolation, Interpolation::Bilinear);
        assert_eq!(c.cache_control, "max-age=86400");
        assert!(c.allow_upscaling);
        assert!(c.codec_passthrough);
        assert_eq!(c.max_icc, Limit::Max(65536));
        assert_eq!(c.iiif_version, 3);
        assert!(!c.iiif_extensions);
        assert!(c.uri_map.is_none());
        assert!(c.fcgi_web_server_addrs.is_none());
        assert!(c.workers >= 1);
        assert_eq!(c.jpeg_cache_mib, 256);
    }

    #[test]
    fn verbosity_negative_is_zero() {
        assert_eq!(cfg(&[("VERBOSITY", "-3")]).0.verbosity, 0);
        assert_eq!(cfg(&[("VERBOSITY", "5")]).0.verbosity, 5);
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
                .max_metadata_cache,
            Limit::Max(7)
        );
        assert_eq!(
            cfg(&[
                ("MAX_IMAGE_METADATA_CACHE_SIZE", "7"),
                ("MAX_METADATA_CACHE_SIZE", "9")
            ])
            .0
            .max_metadata_cache,
            Limit::Max(9)
        );
        assert_eq!(
            cfg(&[("MAX_METADATA_CACHE_SIZE", "-1")])
                .0
                .max_metadata_cache,
            Limit::Unlimited
        );
    }

    #[test]
    fn qualities_clamp() {
        assert_eq!(cfg(&[("JPEG_QUALITY", "0")]).0.jpeg_quality, 1);
        assert_eq!(cfg(&[("JPEG_QUALITY", "150")]).0.jpeg_quality, 100);
        let (c, w) = cfg(&[("JPEG_QUALITY", "abc")]);
        assert_eq!(
            c.jpeg_quality, 75,
            "not a number: the default, with a warning"
        );
        assert_eq!(w.len(), 1);
        assert_eq!(cfg(&[("JPEG_QUALITY", " 80 ")]).0.jpeg_quality, 80);
        assert_eq!(cfg(&[("PNG_QUALITY", "12")]).0.png_quality, 9);
        assert_eq!(cfg(&[("WEBP_QUALITY", "-5")]).0.webp_quality, -1);
        assert_eq!(cfg(&[("AVIF_QUALITY", "101")]).0.avif_quality, 100);
        assert_eq!(cfg(&[("AVIF_CODEC", "4")]).0.avif_codec, AvifCodec::Auto);
        assert_eq!(cfg(&[("AVIF_CODEC", "-1")]).0.avif_codec, AvifCodec::Auto);
        assert_eq!(cfg(&[("AVIF_CODEC", "2")]).0.avif_codec, AvifCodec::Rav1e);
    }

    #[test]
    fn tiff_compression_and_quality_quirks() {
        let none = TiffCompression::None;
        assert_eq!(cfg(&[("TIFF_COMPRESSION", "5")]).0.tiff_compression, none);
        assert_eq!(cfg(&[("TIFF_COMPRESSION", "-1")]).0.tiff_compression, none);
        assert_eq!(
            cfg(&[("TIFF_COMPRESSION", "3")]).0.tiff_compression,
            TiffCompression::Jpeg
        );
        assert_eq!(
            cfg(&[("TIFF_QUALITY", "50")]).0.tiff_quality,
            9,
            "deflate caps at 9"
        );
        assert_eq!(
            cfg(&[("TIFF_COMPRESSION", "3"), ("TIFF_QUALITY", "50")])
                .0
                .tiff_quality,
            50
        );
    }

    #[test]
    fn max_cvt_rules() {
        assert_eq!(cfg(&[("MAX_CVT", "-1")]).0.max_cvt, Limit::Unlimited);
        assert_eq!(cfg(&[("MAX_CVT", "0")]).0.max_cvt, Limit::Max(5000));
        assert_eq!(cfg(&[("MAX_CVT", "-7")]).0.max_cvt, Limit::Max(1));
        assert_eq!(cfg(&[("MAX_CVT", "800")]).0.max_cvt, Limit::Max(800));
    }

    #[test]
    fn booleans_are_atoi() {
        assert!(!cfg(&[("ALLOW_UPSCALING", "0")]).0.allow_upscaling);
        assert!(cfg(&[("CODEC_PASSTHROUGH", "2")]).0.codec_passthrough);
        // Not numbers: the default (iipsrv would read 0), with a warning.
        let (c, w) = cfg(&[("ALLOW_UPSCALING", "true"), ("CODEC_PASSTHROUGH", "no")]);
        assert!(c.allow_upscaling);
        assert!(c.codec_passthrough);
        assert_eq!(w.len(), 2);
        assert!(cfg(&[("IIIF_EXTENSIONS", "1")]).0.iiif_extensions);
    }

    #[test]
    fn iiif_version_below_one_is_three() {
        assert_eq!(cfg(&[("IIIF_VERSION", "0")]).0.iiif_version, 3);
        assert_eq!(cfg(&[("IIIF_VERSION", "-1")]).0.iiif_version, 3);
        assert_eq!(cfg(&[("IIIF_VERSION", "x")]).0.iiif_version, 3);
        assert_eq!(
            cfg(&[("MAX_IMAGE_CACHE_SIZE", "lots")])
                .0
                .max_image_cache_mb,
            10.0
        );
        assert_eq!(cfg(&[("VERBOSITY", "loud")]).0.verbosity, 1);
        assert_eq!(cfg(&[("IIIF_VERSION", "2")]).0.iiif_version, 2);
    }

    #[test]
    fn interpolation_and_memcached_timeout() {
        assert_eq!(
            cfg(&[("INTERPOLATION", "0")]).0.interpolation,
            Interpolation::Nearest
        );
        assert_eq!(
            cfg(&[("INTERPOLATION", "7")]).0.interpolation,
            Interpolation::Bilinear
        );
        assert_eq!(
            cfg(&[("MEMCACHED_TIMEOUT", "-1")]).0.memcached_timeout,
            u32::MAX
        );
    }

    #[test]
    fn watermark_values_clamp() {
        let (c, _) = cfg(&[("WATERMARK_PROBABILITY", "2"), ("WATERMARK_OPACITY", "-1")]);
        assert_eq!(c.watermark_probability, 1.0);
        assert_eq!(c.watermark_opacity, 0.0);
    }

    #[test]
    fn uri_map_parsing() {
        let m = parse_uri_map("iiif=>IIIF").unwrap();
        assert_eq!(
            m,
            UriMap {
                prefix: "iiif".into(),
                command: "iiif"
            }
        );
        assert_eq!(parse_uri_map("img=>iip").unwrap().command, "fif");
        assert_eq!(parse_uri_map("=>DeepZoom").unwrap().prefix, "");
        assert!(
            parse_uri_map("a=>b=>zoomify")
                .unwrap_err()
                .contains("Unsupported")
        );
        assert!(parse_uri_map("iiif").is_err());
        let (c, w) = cfg(&[("URI_MAP", "x=>nope")]);
        assert!(c.uri_map.is_none());
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn web_server_addrs() {
        let (c, w) = cfg(&[("FCGI_WEB_SERVER_ADDRS", "127.0.0.1, ::1,bogus")]);
        assert_eq!(c.fcgi_web_server_addrs.unwrap().len(), 2);
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
