//! The table of environment variables: each one defined once, with its name, default, meaning,
//! reader and start-up log line.
//!
//! [`VARIABLES`] is in the order of iipsrv's start-up log (the variables that log nothing come
//! last), so that [`Config::settings_lines`] is the table's log lines in order and
//! [`Config::from_lookup`] reads a variable after those it depends on (`TIFF_QUALITY` after
//! `TIFF_COMPRESSION`). The README's configuration tables are checked against this one by a test
//! below: every row there is a variable here, with the same default and meaning, and the other
//! way round.

use super::settings::{Config, Warnings, parse_uri_map};
use super::types::{AvifCodec, Interpolation, Limit, LogFormat, MaxLayers, TiffCompression};
use crate::text::number::{atof, atoi};

/// One environment variable.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the meaning and origin are read by the README check"
    )
)]
pub(crate) struct Variable {
    pub name: &'static str,
    /// Another name, read when `name` is unset (the spelling of iipsrv's documentation).
    pub alias: Option<&'static str>,
    pub default: DefaultValue,
    /// What it does, as the README says it (Markdown).
    pub meaning: &'static str,
    pub origin: Origin,
    /// Reads the variable (through the reader, which knows its name and default) into the
    /// configuration.
    pub read: fn(&mut Reader<'_>, &mut Config),
    /// The line iipsrv logs for the setting at start-up (many log none).
    pub banner: Banner,
}

/// What a variable logs at start-up: a template whose `{}` is replaced by the value.
#[derive(Clone, Copy)]
pub(crate) enum Banner {
    /// Nothing.
    Silent,
    /// The template with the value, always.
    Always(&'static str, fn(&Config) -> String),
    /// The template with the value, when there is one (most: when the setting is not empty).
    When(&'static str, fn(&Config) -> Option<String>),
    /// Lines of its own.
    Lines(fn(&Config) -> Vec<String>),
}

impl Banner {
    /// Appends the lines to `out`.
    pub fn write(self, config: &Config, out: &mut Vec<String>) {
        match self {
            Banner::Silent => {}
            Banner::Always(template, value) => out.push(template.replacen("{}", &value(config), 1)),
            Banner::When(template, value) => {
                if let Some(value) = value(config) {
                    out.push(template.replacen("{}", &value, 1));
                }
            }
            Banner::Lines(lines) => out.extend(lines(config)),
        }
    }
}

/// A text setting's value for [`Banner::When`]: logged unless empty.
fn unless_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_string())
}

/// A variable's default.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "the description is read by the README check")
)]
pub(crate) enum DefaultValue {
    /// A number, read as the variable's own values are.
    Number(&'static str),
    /// A text (the README shows an empty one as "empty").
    Text(&'static str),
    /// Not a fixed value: what the README says instead (the value comes from the reader).
    Described(&'static str),
}

impl DefaultValue {
    /// How the README writes it.
    #[cfg(test)]
    pub fn shown(self) -> String {
        match self {
            DefaultValue::Number(n) => n.to_string(),
            DefaultValue::Text("") => "empty".to_string(),
            DefaultValue::Text(t) => format!("`{t}`"),
            DefaultValue::Described(d) => d.to_string(),
        }
    }
}

/// Whose variable it is: iipsrv's, or one of ours (which never change the meaning of
/// iipsrv's). The README lists them in two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Iipsrv,
    Ours,
}

/// Reads one variable's value for its [`Variable::read`], warning about values that are not
/// what iipsrv's parser expects.
pub(crate) struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    var: &'static Variable,
    warnings: &'a mut Warnings,
}

impl<'a> Reader<'a> {
    pub fn new(
        lookup: &'a dyn Fn(&str) -> Option<String>,
        var: &'static Variable,
        warnings: &'a mut Warnings,
    ) -> Self {
        Reader {
            lookup,
            var,
            warnings,
        }
    }

    /// The value as given, and the name it was given under (the name, else the alias).
    pub fn given(&self) -> Option<(&'static str, String)> {
        if let Some(v) = (self.lookup)(self.var.name) {
            return Some((self.var.name, v));
        }
        let alias = self.var.alias?;
        (self.lookup)(alias).map(|v| (alias, v))
    }

    /// The value as text, or the default.
    pub fn text(&self) -> String {
        match (self.given(), self.var.default) {
            (Some((_, v)), _) => v,
            (None, DefaultValue::Text(t)) => t.to_string(),
            (None, _) => String::new(),
        }
    }

    /// The default as a whole number (0 when it is not a number).
    pub fn default_int(&self) -> i64 {
        match self.var.default {
            DefaultValue::Number(n) => atoi(n).value,
            _ => 0,
        }
    }

    /// The value as C `atoi` reads it, or the default (with a warning when the value is not
    /// entirely a number).
    pub fn int(&mut self) -> i64 {
        self.int_or(self.default_int())
    }

    /// [`int`](Self::int) with a computed default.
    pub fn int_or(&mut self, default: i64) -> i64 {
        let Some((name, raw)) = self.given() else {
            return default;
        };
        let p = atoi(&raw);
        if p.clean {
            p.value
        } else {
            self.warn(format!(
                "{name}='{raw}' is not a whole number: using the default {default}"
            ));
            default
        }
    }

    /// The value as C `atof` reads it, or the default (with a warning when the value is not
    /// entirely a finite number).
    pub fn float(&mut self) -> f64 {
        let default = match self.var.default {
            DefaultValue::Number(n) => atof(n).value,
            _ => 0.0,
        };
        let Some((name, raw)) = self.given() else {
            return default;
        };
        let p = atof(&raw);
        if p.clean && p.value.is_finite() {
            p.value
        } else {
            self.warn(format!(
                "{name}='{raw}' is not a number: using the default {default}"
            ));
            default
        }
    }

    /// A switch: `atoi` ≠ 0.
    pub fn flag(&mut self) -> bool {
        self.int() != 0
    }

    /// [`int`](Self::int) clamped to `lo..=hi`.
    pub fn clamped(&mut self, lo: i64, hi: i64) -> i64 {
        let v = self.int();
        self.clamp(v, lo, hi)
    }

    /// `v` clamped to `lo..=hi`, with a warning when it was outside.
    pub fn clamp(&mut self, v: i64, lo: i64, hi: i64) -> i64 {
        let c = v.clamp(lo, hi);
        if c != v {
            let name = self.var.name;
            self.warn(format!("{name}={v} is outside {lo}..{hi}: using {c}"));
        }
        c
    }

    pub fn warn(&mut self, message: String) {
        self.warnings.push(message);
    }
}

/// The default memory budget is the machine's memory divided by this: 768 MiB of 24 GiB, so
/// that the resident size stays under 2 GiB however many exports arrive (docs/reliability.md).
const MEMORY_BUDGET_FRACTION: u64 = 32;

/// The memory this process may use: MemTotal, or the cgroup's limit when lower (cgroup v2
/// `memory.max`, v1 `memory.limit_in_bytes`); 4 GiB when neither can be read.
fn machine_memory() -> u64 {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let total = read("/proc/meminfo").and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib << 10)
    });
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|p| read(p)?.trim().parse::<u64>().ok())
    .min();
    match (total, cgroup) {
        (Some(t), Some(c)) => t.min(c),
        (Some(t), None) => t,
        (None, Some(c)) => c,
        (None, None) => 4 << 30,
    }
}

fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A quality for the log: -1 is `lossless`.
/// Heavy threads per core when images are in object storage: a heavy request waits for its
/// round of fetches on its thread, so more of them keep the cores busy (the memory budget
/// still bounds what they hold; docs/performance.md, "Object storage").
const HEAVY_THREADS_PER_CORE_REMOTE: usize = 4;

/// Whether FILESYSTEM_PREFIX names object storage (`storage::location` parses it fully).
fn remote_prefix(prefix: &str) -> bool {
    let lower = prefix.get(..8).unwrap_or(prefix).to_ascii_lowercase();
    ["s3://", "http://", "https://"]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

fn quality(q: i32) -> String {
    if q == -1 {
        "lossless".to_string()
    } else {
        q.to_string()
    }
}

/// The fields every entry shares unless it says otherwise.
const VARIABLE: Variable = Variable {
    name: "",
    alias: None,
    default: DefaultValue::Text(""),
    meaning: "",
    origin: Origin::Iipsrv,
    read: |_, _| {},
    banner: Banner::Silent,
};

use Banner::{Always, Lines, When};
use DefaultValue::{Described, Number, Text};

/// Every variable, in the order of iipsrv's start-up log.
pub(crate) static VARIABLES: &[Variable] = &[
    Variable {
        name: "VERBOSITY",
        default: Number("1"),
        meaning: "0 no log; 1 start-up and errors; 2 per-request lines with timings; 3+ detail",
        // Logged by the log itself, before the settings.
        read: |r, c| c.logging.verbosity = r.int().max(0),
        ..VARIABLE
    },
    Variable {
        name: "LOGFILE",
        default: Text("/tmp/iipsrv.log"),
        meaning: "log file (appended; reopened on SIGHUP or when rotated away), or `syslog`; `stdout` or `stderr` for those streams (ours)",
        read: |r, c| c.logging.logfile = r.text(),
        ..VARIABLE
    },
    Variable {
        name: "MAX_IMAGE_CACHE_SIZE",
        default: Number("10"),
        meaning: "tile cache size in MB (of 1,024,000 bytes, as iipsrv); 0 disables",
        read: |r, c| {
            let mb = r.float();
            c.caches.tile_mb = if mb < 0.0 {
                r.warn("MAX_IMAGE_CACHE_SIZE is negative: the tile cache is off".into());
                0.0
            } else {
                mb
            };
        },
        banner: Always("Setting maximum image tile data cache size to {}MB", |c| {
            c.caches.tile_mb.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        // The code's name wins over the documented alias.
        name: "MAX_METADATA_CACHE_SIZE",
        alias: Some("MAX_IMAGE_METADATA_CACHE_SIZE"),
        default: Number("1000"),
        meaning: "images whose metadata is cached; -1 unlimited, 0 off",
        read: |r, c| {
            let v = r.int();
            if v < -1 {
                r.warn(format!(
                    "MAX_METADATA_CACHE_SIZE={v}: any negative value is unlimited (-1)"
                ));
            }
            c.caches.metadata_entries = u64::try_from(v).map_or(Limit::Unlimited, Limit::Max);
        },
        banner: Always(
            "Setting maximum image metadata cache size to {} images",
            |c| match c.caches.metadata_entries {
                Limit::Unlimited => "-1 (unlimited)".into(),
                Limit::Max(n) => n.to_string(),
            },
        ),
        ..VARIABLE
    },
    Variable {
        name: "FILESYSTEM_PREFIX",
        meaning: "prepended to every image identifier; `s3://BUCKET/key/prefix/` or `http(s)://HOST/path/` reads images from object storage (see \"Images in object storage\")",
        read: |r, c| c.files.prefix = r.text(),
        banner: Always("Setting filesystem prefix to '{}'", |c| {
            c.files.prefix.clone()
        }),
        ..VARIABLE
    },
    Variable {
        name: "FILESYSTEM_SUFFIX",
        meaning: "appended to every image identifier",
        read: |r, c| c.files.suffix = r.text(),
        banner: Always("Setting filesystem suffix to '{}'", |c| {
            c.files.suffix.clone()
        }),
        ..VARIABLE
    },
    Variable {
        name: "TIFF_COMPRESSION",
        default: Number("2"),
        meaning: "TIFF output: 0 none, 1 LZW, 2 Deflate, 3 JPEG, 4 WebP",
        // Logged with TIFF_QUALITY.
        read: |r, c| {
            let v = r.int();
            c.output.tiff_compression = TiffCompression::from_setting(v).unwrap_or_else(|| {
                r.warn(format!(
                    "TIFF_COMPRESSION={v} is outside 0..4: using 0 (None)"
                ));
                TiffCompression::None
            });
        },
        ..VARIABLE
    },
    Variable {
        name: "TIFF_QUALITY",
        default: Number("1"),
        meaning: "TIFF output quality: Deflate level 0–9, JPEG or WebP quality 0–100",
        read: |r, c| {
            let max = c.output.tiff_compression.max_quality();
            c.output.tiff_quality = (r.clamped(0, 100) as i32).min(max);
        },
        banner: Always(
            "Setting default TIFF output compression/quality to {}",
            |c| {
                format!(
                    "{}/{}",
                    c.output.tiff_compression.name(),
                    c.output.tiff_quality
                )
            },
        ),
        ..VARIABLE
    },
    Variable {
        name: "JPEG_QUALITY",
        default: Number("75"),
        meaning: "1–100",
        read: |r, c| c.output.jpeg_quality = r.clamped(1, 100) as i32,
        banner: Always("Setting default JPEG output quality to {}", |c| {
            c.output.jpeg_quality.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "PNG_QUALITY",
        default: Number("1"),
        meaning: "deflate level 0–9",
        read: |r, c| c.output.png_quality = r.clamped(0, 9) as i32,
        banner: Always("Setting default PNG output compression level to {}", |c| {
            c.output.png_quality.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "WEBP_QUALITY",
        default: Number("50"),
        meaning: "-1 lossless, 0–100",
        read: |r, c| c.output.webp_quality = r.clamped(-1, 100) as i32,
        banner: Always("Setting default WebP output compression level to {}", |c| {
            quality(c.output.webp_quality)
        }),
        ..VARIABLE
    },
    Variable {
        name: "AVIF_QUALITY",
        default: Number("50"),
        meaning: "-1 lossless, 0–100",
        read: |r, c| c.output.avif_quality = r.clamped(-1, 100) as i32,
        banner: Always("Setting default AVIF compression level to {}", |c| {
            quality(c.output.avif_quality)
        }),
        ..VARIABLE
    },
    Variable {
        name: "AVIF_CODEC",
        default: Number("0"),
        meaning: "0 auto, 1 aom, 2 rav1e, 3 svt",
        read: |r, c| c.output.avif_codec = AvifCodec::from_setting(r.int()),
        banner: Always("Setting AVIF codec to {}", |c| {
            c.output.avif_codec.name().to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "MAX_CVT",
        default: Number("5000"),
        meaning: "largest exported width/height; -1 unlimited",
        read: |r, c| {
            c.exports.max_cvt = match r.int() {
                -1 => Limit::Unlimited,
                0 => Limit::Max(r.default_int() as u64),
                v if v < -1 => Limit::Max(1),
                v => Limit::Max(v as u64),
            }
        },
        banner: Always("Setting maximum CVT size to {}", |c| {
            c.exports.max_cvt.as_sentinel().to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "CACHE_CONTROL",
        default: Text("max-age=86400"),
        meaning: "`Cache-Control` of successful responses",
        read: |r, c| c.http.cache_control = r.text(),
        banner: Always("Setting HTTP Cache-Control header to '{}'", |c| {
            c.http.cache_control.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "FILENAME_PATTERN",
        default: Text("_pyr_"),
        meaning: "image-sequence name infix",
        read: |r, c| c.files.pattern = r.text(),
        banner: Always("Setting 3D file sequence name pattern to '{}'", |c| {
            c.files.pattern.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "IIIF_VERSION",
        default: Number("3"),
        meaning: "default IIIF Image API version (2 or 3)",
        read: |r, c| {
            let v = r.int();
            c.iiif.version = u32::try_from(v)
                .ok()
                .filter(|v| *v >= 1)
                .unwrap_or(r.default_int() as u32);
        },
        banner: Always("Setting default IIIF Image API version to {}", |c| {
            c.iiif.version.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "IIIF_EXTENSIONS",
        default: Number("0"),
        meaning: "extra IIIF qualities",
        read: |r, c| c.iiif.extensions = r.flag(),
        banner: Always(
            "Setting IIIF image processing API extension support to {}",
            |c| c.iiif.extensions.to_string(),
        ),
        ..VARIABLE
    },
    Variable {
        name: "IIIF_DELIMITER",
        meaning: "IIIF page delimiter",
        read: |r, c| c.iiif.delimiter = r.text(),
        banner: When("Setting default IIIF multi-page delimiter to '{}'", |c| {
            unless_empty(&c.iiif.delimiter)
        }),
        ..VARIABLE
    },
    Variable {
        name: "CORS",
        meaning: "`Access-Control-Allow-Origin` value; enables the CORS headers",
        read: |r, c| c.http.cors = r.text(),
        banner: When("Setting Cross Origin Resource Sharing to '{}'", |c| {
            unless_empty(&c.http.cors)
        }),
        ..VARIABLE
    },
    Variable {
        name: "BASE_URL",
        meaning: "public base URL for IIIF ids",
        read: |r, c| c.http.base_url = r.text(),
        banner: When("Setting base URL to '{}'", |c| {
            unless_empty(&c.http.base_url)
        }),
        ..VARIABLE
    },
    Variable {
        name: "MAX_LAYERS",
        default: Number("0"),
        meaning: "JPEG2000 quality layers (0 default, -1 all)",
        read: |r, c| c.decoding.max_layers = MaxLayers::from_setting(r.int()),
        banner: When(
            "Setting max quality layers (for supported file formats) to {}",
            |c| match c.decoding.max_layers {
                MaxLayers::Default => None,
                MaxLayers::All => Some("all layers".into()),
                MaxLayers::AtMost(n) => Some(n.to_string()),
            },
        ),
        ..VARIABLE
    },
    Variable {
        name: "ALLOW_UPSCALING",
        default: Number("1"),
        meaning: "allow exports larger than the image",
        read: |r, c| c.exports.allow_upscaling = r.flag(),
        banner: Always("Setting Allow Upscaling to {}", |c| {
            c.exports.allow_upscaling.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "MAX_ICC",
        default: Number("65536"),
        meaning: "embed ICC profiles smaller than this; -1 unlimited, 0 never",
        read: |r, c| {
            c.output.max_icc = u64::try_from(r.int()).map_or(Limit::Unlimited, Limit::Max);
        },
        banner: Always("Setting maximum ICC profile size to {}", |c| {
            match c.output.max_icc {
                Limit::Unlimited => "unlimited".into(),
                Limit::Max(n) => format!("{n} bytes"),
            }
        }),
        ..VARIABLE
    },
    Variable {
        name: "CODEC_PASSTHROUGH",
        default: Number("1"),
        meaning: "send stored JPEG/WebP tiles without re-encoding",
        read: |r, c| c.output.codec_passthrough = r.flag(),
        banner: Always("Setting codec passthrough to {}", |c| {
            c.output.codec_passthrough.to_string()
        }),
        ..VARIABLE
    },
    Variable {
        name: "COPYRIGHT",
        meaning: "rights statement for images that have none",
        read: |r, c| c.output.copyright = r.text(),
        banner: When("Setting default rights/copyright statement to '{}'", |c| {
            unless_empty(&c.output.copyright)
        }),
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_WORKERS",
        default: Described("number of cores"),
        meaning: "worker threads (they read requests and do the image work)",
        origin: Origin::Ours,
        read: |r, c| {
            let v = r.int_or(cores() as i64);
            c.server.workers = r.clamp(v, 1, 1024) as usize;
        },
        // iipsrv's line about its processing engine, then ours about the workers.
        banner: Lines(|c| {
            vec![
                "Setting image processing engine to CPU processor".into(),
                format!("Image work runs on {} worker threads", c.server.workers),
            ]
        }),
        ..VARIABLE
    },
    Variable {
        name: "URI_MAP",
        meaning: "path routing, e.g. `iiif=>IIIF` serves `/iiif/{id}/info.json`",
        read: |r, c| {
            let raw = r.text();
            c.http.uri_map = if raw.is_empty() {
                None
            } else {
                parse_uri_map(&raw).map_err(|warning| r.warn(warning)).ok()
            };
        },
        banner: When("Setting URI mapping to {}", |c| {
            c.http.uri_map.as_ref().map(|m| {
                format!(
                    "{}. Supported protocol: {} (prefix '{}', command {})",
                    m.value(),
                    m.protocol,
                    m.prefix,
                    m.command
                )
            })
        }),
        ..VARIABLE
    },
    // The variables iipsrv does not log.
    Variable {
        name: "INTERPOLATION",
        default: Number("1"),
        meaning: "0 nearest neighbour, otherwise bilinear",
        read: |r, c| c.output.interpolation = Interpolation::from_setting(r.int()),
        ..VARIABLE
    },
    Variable {
        name: "IIIF_EXTRA_INFO",
        meaning: "raw text added to info.json",
        read: |r, c| c.iiif.extra_info = r.text(),
        ..VARIABLE
    },
    Variable {
        name: "WATERMARK",
        meaning: "tile watermark: a TIFF image",
        read: |r, c| c.output.watermark = r.text(),
        ..VARIABLE
    },
    Variable {
        name: "WATERMARK_PROBABILITY",
        default: Number("1.0"),
        meaning: "chance that a tile gets the watermark, 0–1",
        read: |r, c| c.output.watermark_probability = r.float().clamp(0.0, 1.0),
        ..VARIABLE
    },
    Variable {
        name: "WATERMARK_OPACITY",
        default: Number("1.0"),
        meaning: "watermark opacity, 0–1",
        read: |r, c| c.output.watermark_opacity = r.float().clamp(0.0, 1.0),
        ..VARIABLE
    },
    Variable {
        name: "MEMCACHED_SERVERS",
        default: Text("localhost"),
        meaning: "response cache: comma list of memcached servers",
        read: |r, c| c.caches.memcached_servers = r.text(),
        ..VARIABLE
    },
    Variable {
        name: "MEMCACHED_TIMEOUT",
        default: Number("86400"),
        meaning: "seconds memcached keeps a response",
        // C assigns atoi's int to an unsigned int: negative values wrap.
        read: |r, c| c.caches.memcached_timeout = r.int() as i32 as u32,
        ..VARIABLE
    },
    Variable {
        name: "KAKADU_READMODE",
        default: Number("0"),
        meaning: "accepted for compatibility (no Kakadu)",
        read: |r, c| c.decoding.kakadu_readmode = r.int().clamp(0, 2) as u32,
        ..VARIABLE
    },
    Variable {
        name: "FCGI_WEB_SERVER_ADDRS",
        default: Described("unset"),
        meaning: "comma list of addresses allowed to connect over TCP",
        read: |r, c| {
            let Some((_, raw)) = r.given() else {
                c.server.web_server_addrs = None;
                return;
            };
            let mut addrs = Vec::new();
            for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse() {
                    Ok(a) => addrs.push(a),
                    Err(_) => r.warn(format!("FCGI_WEB_SERVER_ADDRS: '{part}' is not an address")),
                }
            }
            c.server.web_server_addrs = Some(addrs);
        },
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_MAX_CONNECTIONS",
        default: Number("4096"),
        meaning: "connections served at once (more wait in the backlog)",
        origin: Origin::Ours,
        read: |r, c| c.server.max_connections = r.clamped(1, 1_000_000) as usize,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_SHUTDOWN_TIMEOUT",
        default: Number("10"),
        meaning: "seconds in-flight requests get to finish on SIGTERM",
        origin: Origin::Ours,
        read: |r, c| c.server.shutdown_timeout_secs = r.clamped(0, 3600) as u64,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_JPEG_CACHE_SIZE",
        default: Number("256"),
        meaning: "MiB of decoded plain-JPEG levels shared by all requests (0 off)",
        origin: Origin::Ours,
        read: |r, c| c.caches.decoded_jpeg_mib = r.clamped(0, 1 << 20) as u64,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_LOG_FORMAT",
        default: Text("text"),
        meaning: "`text`: iipsrv's log lines; `json`: one JSON object per line, with one line per request at VERBOSITY 2 and above",
        origin: Origin::Ours,
        read: |r, c| {
            let raw = r.text();
            c.logging.format = LogFormat::from_setting(&raw).unwrap_or_else(|| {
                r.warn(format!(
                    "IIPSRV_LOG_FORMAT='{raw}' is neither text nor json: using text"
                ));
                LogFormat::Text
            });
        },
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_CORS_ORIGINS",
        default: Described("unset"),
        meaning: "origins (space- or comma-separated) whose requests get their own `Origin` as `Access-Control-Allow-Origin` instead of the `CORS` value, with `Vary: Origin`; needs `CORS`",
        origin: Origin::Ours,
        read: |r, c| {
            // Read after CORS (the table's order), so its value is known here.
            c.http.cors_origins = r
                .text()
                .split([' ', ',', '\t'])
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect();
            for o in c.http.cors_origins.iter().filter(|o| !o.contains("://")) {
                r.warn(format!(
                    "IIPSRV_CORS_ORIGINS: '{o}' is not an origin (scheme://host[:port]); it matches no browser's Origin"
                ));
            }
            if !c.http.cors_origins.is_empty() && c.http.cors.is_empty() {
                r.warn("IIPSRV_CORS_ORIGINS has no effect without CORS".to_string());
            }
        },
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_ADMIN_TOKEN",
        default: Described("unset"),
        meaning: "bearer token that `POST /cache/purge` on the admin listener (`--admin`) requires; without it, purging is allowed only on a loopback admin address",
        origin: Origin::Ours,
        read: |r, c| c.server.admin_token = Some(r.text()).filter(|t| !t.is_empty()),
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_STORAGE_TIMEOUT",
        default: Number("10000"),
        meaning: "object storage: each call's timeout in milliseconds (then 504 after the retries)",
        origin: Origin::Ours,
        read: |r, c| c.storage.timeout_ms = r.clamped(1, 3_600_000) as u64,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_STORAGE_RETRIES",
        default: Number("3"),
        meaning: "object storage: retries of a failed call, with exponential back-off from 100 ms (at most 2 s)",
        origin: Origin::Ours,
        read: |r, c| c.storage.retries = r.clamped(0, 100) as u32,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_STORAGE_REVALIDATE",
        default: Number("10"),
        meaning: "object storage: seconds an object's size and ETag (or a listing) are trusted before storage is asked again; a changed object is reopened, a deleted one is 404",
        origin: Origin::Ours,
        read: |r, c| c.storage.revalidate_secs = r.clamped(0, 86_400 * 365) as u64,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_STORAGE_CACHE_SIZE",
        default: Number("256"),
        meaning: "object storage: MiB of fetched object bytes kept (blocks of 64 KiB; at least 1)",
        origin: Origin::Ours,
        read: |r, c| c.storage.cache_bytes = (r.clamped(1, 1 << 20) as u64) << 20,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_MEMORY_BUDGET",
        default: Described("1/32 of the memory (MemTotal, or the cgroup limit when lower)"),
        meaning: "MiB of estimated memory that heavy requests (large exports) may hold at once; more wait in line (0: no bound)",
        origin: Origin::Ours,
        read: |r, c| {
            let v = r.int_or(((machine_memory() / MEMORY_BUDGET_FRACTION) >> 20) as i64);
            c.load.memory_budget_bytes = (r.clamp(v, 0, 1 << 30) as u64) << 20;
        },
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_HEAVY_THREADS",
        default: Described("number of cores (4 × with object storage)"),
        meaning: "threads that run heavy requests, at a lower CPU priority than the workers (with object storage a heavy request holds its thread while its tiles are fetched)",
        origin: Origin::Ours,
        read: |r, c| {
            let per_core = if remote_prefix(&c.files.prefix) {
                HEAVY_THREADS_PER_CORE_REMOTE
            } else {
                1
            };
            let v = r.int_or((cores() * per_core) as i64);
            c.load.heavy_threads = r.clamp(v, 1, 1024) as usize;
        },
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_HEAVY_NICE",
        default: Number("10"),
        meaning: "steps of niceness (0–19) the heavy threads run below the workers; 0: the same priority",
        origin: Origin::Ours,
        read: |r, c| c.load.heavy_nice = r.clamped(0, 19) as i32,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_QUEUE_LENGTH",
        default: Number("1024"),
        meaning: "heavy requests that may wait for memory; more are answered 503 with `Retry-After`",
        origin: Origin::Ours,
        read: |r, c| c.load.queue_length = r.clamped(0, 1_000_000) as usize,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_QUEUE_TIMEOUT",
        default: Number("30"),
        meaning: "seconds a heavy request may wait for memory before it is answered 503 with `Retry-After`",
        origin: Origin::Ours,
        read: |r, c| c.load.queue_timeout_secs = r.clamped(0, 3600) as u64,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_READ_TIMEOUT",
        default: Number("60"),
        meaning: "seconds a client may take to send a request (HTTP: its headers, also the longest idle keep-alive; FastCGI: from its first record to its last)",
        origin: Origin::Ours,
        read: |r, c| c.load.read_timeout_secs = r.clamped(1, 86400) as u64,
        ..VARIABLE
    },
    Variable {
        name: "IIPSRV_WRITE_TIMEOUT",
        default: Number("60"),
        meaning: "seconds a response may make no progress to the client before the connection is dropped",
        origin: Origin::Ours,
        read: |r, c| c.load.write_timeout_secs = r.clamped(1, 86400) as u64,
        ..VARIABLE
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's row for a variable: `| name | default | meaning |`.
    fn readme_row(v: &Variable) -> String {
        let name = match v.alias {
            Some(alias) => format!("`{}` (also `{alias}`)", v.name),
            None => format!("`{}`", v.name),
        };
        format!("| {name} | {} | {} |", v.default.shown(), v.meaning)
    }

    /// The variable rows of the README's configuration section, by table: iipsrv's variables,
    /// then ours.
    fn readme_tables() -> (Vec<String>, Vec<String>) {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
        let start = readme
            .find("\n## Configuration\n")
            .expect("a Configuration section");
        let section = &readme[start + 1..];
        let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
        let (theirs, ours) = section
            .split_once("Variables of our own")
            .expect("a table of our own variables");
        let rows = |text: &str| -> Vec<String> {
            text.lines()
                .filter(|l| l.starts_with("| `"))
                .map(str::to_string)
                .collect()
        };
        (rows(theirs), rows(ours))
    }

    #[test]
    fn readme_tables_match_the_variables() {
        let (theirs, ours) = readme_tables();
        for (origin, readme) in [(Origin::Iipsrv, theirs), (Origin::Ours, ours)] {
            let mut expected: Vec<String> = VARIABLES
                .iter()
                .filter(|v| v.origin == origin)
                .map(readme_row)
                .collect();
            let mut got = readme.clone();
            expected.sort();
            got.sort();
            let missing: Vec<&String> = expected.iter().filter(|r| !got.contains(r)).collect();
            let extra: Vec<&String> = got.iter().filter(|r| !expected.contains(r)).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "README's {origin:?} table differs from src/config/vars.rs\n\
                 rows to add:\n{}\nrows to remove:\n{}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                extra
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = VARIABLES
            .iter()
            .flat_map(|v| std::iter::once(v.name).chain(v.alias))
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }

    /// Setting a variable to its documented default changes nothing.
    #[test]
    fn documented_defaults_are_the_defaults() {
        let unset = format!("{:?}", Config::default());
        for v in VARIABLES {
            let value = match v.default {
                DefaultValue::Number(n) | DefaultValue::Text(n) => n,
                DefaultValue::Described(_) => continue,
            };
            let (config, warnings) =
                Config::from_lookup(|name| (name == v.name).then(|| value.to_string()));
            assert!(warnings.is_empty(), "{}: {warnings:?}", v.name);
            assert_eq!(format!("{config:?}"), unset, "{}={value}", v.name);
        }
    }
}
