//! The configuration's groups of settings, as the table of `vars.rs` fills them in.

use std::net::IpAddr;

use super::types::{AvifCodec, Interpolation, Limit, LogFormat, MaxLayers, TiffCompression};
use crate::http::HeaderDefaults;

/// Which protocol a `URI_MAP` prefix routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriMap {
    /// The path prefix, matched right after the leading `/` of `REQUEST_URI`.
    pub prefix: String,
    /// The protocol as the variable names it (`IIIF`, `DeepZoom`, …).
    pub protocol: String,
    /// The command the path is handed to: `fif`, `iiif`, `zoomify` or `deepzoom`.
    pub command: &'static str,
}

impl UriMap {
    /// The variable's value: `prefix=>protocol`.
    pub fn value(&self) -> String {
        format!("{}=>{}", self.prefix, self.protocol)
    }
}

/// The whole configuration, by what it configures. `Config::default()` is iipsrv's defaults
/// (every variable unset); the groups' own `Default` is only the empty value that the table of
/// `vars.rs` fills in.
#[derive(Debug, Clone)]
pub struct Config {
    pub logging: LoggingSettings,
    pub files: FileSettings,
    pub caches: CacheSettings,
    pub output: OutputSettings,
    pub exports: ExportSettings,
    pub decoding: DecodingSettings,
    pub http: HttpSettings,
    pub iiif: IiifSettings,
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub load: LoadSettings,
}

/// The log.
#[derive(Debug, Clone, Default)]
pub struct LoggingSettings {
    /// `VERBOSITY` (negative → 0).
    pub verbosity: i64,
    /// `LOGFILE` (`syslog` for syslog, `stdout` or `stderr` for those streams).
    pub logfile: String,
    /// `IIPSRV_LOG_FORMAT` (ours): iipsrv's lines or JSON lines.
    pub format: LogFormat,
}

/// Where images are found.
#[derive(Debug, Clone, Default)]
pub struct FileSettings {
    /// `FILESYSTEM_PREFIX`.
    pub prefix: String,
    /// `FILESYSTEM_SUFFIX`.
    pub suffix: String,
    /// `FILENAME_PATTERN`: the image-sequence name infix.
    pub pattern: String,
}

/// The caches.
#[derive(Debug, Clone, Default)]
pub struct CacheSettings {
    /// `MAX_IMAGE_CACHE_SIZE`: the tile cache in upstream "MB" (see
    /// [`Config::max_image_cache_bytes`]); never negative.
    pub tile_mb: f64,
    /// `MAX_METADATA_CACHE_SIZE` (or the documented alias `MAX_IMAGE_METADATA_CACHE_SIZE`):
    /// images whose opened source is kept; `Max(0)` = off.
    pub metadata_entries: Limit,
    /// `IIPSRV_JPEG_CACHE_SIZE` (ours): MiB of decoded plain-JPEG levels kept; 0 off.
    pub decoded_jpeg_mib: u64,
    /// `MEMCACHED_SERVERS`.
    pub memcached_servers: String,
    /// `MEMCACHED_TIMEOUT`: expiry of stored responses in seconds.
    pub memcached_timeout: u32,
}

/// The encoders and what they embed.
#[derive(Debug, Clone, Default)]
pub struct OutputSettings {
    /// `JPEG_QUALITY` (1–100).
    pub jpeg_quality: i32,
    /// `PNG_QUALITY` (0–9).
    pub png_quality: i32,
    /// `WEBP_QUALITY` (-1 lossless, 0–100).
    pub webp_quality: i32,
    /// `AVIF_QUALITY` (-1 lossless, 0–100).
    pub avif_quality: i32,
    /// `AVIF_CODEC`.
    pub avif_codec: AvifCodec,
    /// `TIFF_COMPRESSION`.
    pub tiff_compression: TiffCompression,
    /// `TIFF_QUALITY` (0 to the compression's [`TiffCompression::max_quality`]).
    pub tiff_quality: i32,
    /// `INTERPOLATION`: how region exports are resampled.
    pub interpolation: Interpolation,
    /// `MAX_ICC`: an ICC profile is embedded only if its size is strictly less than this;
    /// `Max(0)` = never.
    pub max_icc: Limit,
    /// `CODEC_PASSTHROUGH`: send stored JPEG/WebP tiles without re-encoding.
    pub codec_passthrough: bool,
    /// `COPYRIGHT`: the rights statement of images that have none (empty = none).
    pub copyright: String,
    /// `WATERMARK`: a TIFF path (empty = none).
    pub watermark: String,
    /// `WATERMARK_PROBABILITY` (0–1).
    pub watermark_probability: f64,
    /// `WATERMARK_OPACITY` (0–1).
    pub watermark_opacity: f64,
}

/// Region exports (CVT, IIIF).
#[derive(Debug, Clone, Default)]
pub struct ExportSettings {
    /// `MAX_CVT`: the largest exported width and height.
    pub max_cvt: Limit,
    /// `ALLOW_UPSCALING`.
    pub allow_upscaling: bool,
}

/// How sources decode.
#[derive(Debug, Clone, Default)]
pub struct DecodingSettings {
    /// `MAX_LAYERS`: JPEG2000 quality layers.
    pub max_layers: MaxLayers,
    /// `KAKADU_READMODE` (accepted for compatibility; 0–2).
    pub kakadu_readmode: u32,
}

/// Response headers and routing.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// `CORS` (empty = off).
    pub cors: String,
    /// `IIPSRV_CORS_ORIGINS` (ours): request origins answered with themselves (empty = none).
    pub cors_origins: Vec<String>,
    /// `CACHE_CONTROL` (an empty value is sent empty).
    pub cache_control: String,
    /// `BASE_URL` (empty = derive from the request).
    pub base_url: String,
    /// `URI_MAP`; `None` when unset, malformed or naming an unsupported protocol.
    pub uri_map: Option<UriMap>,
}

/// IIIF.
#[derive(Debug, Clone, Default)]
pub struct IiifSettings {
    /// `IIIF_VERSION`: the default Image API version.
    pub version: u32,
    /// `IIIF_DELIMITER`: the page delimiter in identifiers (empty = none).
    pub delimiter: String,
    /// `IIIF_EXTRA_INFO`: raw text appended to info.json.
    pub extra_info: String,
    /// `IIIF_EXTENSIONS`: the extra qualities.
    pub extensions: bool,
}

/// The server process.
#[derive(Debug, Clone, Default)]
pub struct ServerSettings {
    /// `IIPSRV_WORKERS` (ours): runtime worker threads, which read requests and do the image
    /// work.
    pub workers: usize,
    /// `IIPSRV_MAX_CONNECTIONS` (ours): connections served at once.
    pub max_connections: usize,
    /// `IIPSRV_SHUTDOWN_TIMEOUT` (ours): seconds in-flight requests get on SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// `FCGI_WEB_SERVER_ADDRS`: when set, only these peers may connect over TCP.
    pub web_server_addrs: Option<Vec<IpAddr>>,
    /// `IIPSRV_ADMIN_TOKEN` (ours): the bearer token of the admin listener's purge; `None`
    /// when unset or empty.
    pub admin_token: Option<String>,
}

/// Object storage (ours; used when FILESYSTEM_PREFIX is an `s3://` or `http(s)://` URL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageSettings {
    /// `IIPSRV_STORAGE_TIMEOUT`: each storage call's timeout, in milliseconds.
    pub timeout_ms: u64,
    /// `IIPSRV_STORAGE_RETRIES`: retries of a failed call, with exponential back-off.
    pub retries: u32,
    /// `IIPSRV_STORAGE_REVALIDATE`: seconds an object's description (size, ETag) or a listing
    /// is trusted before storage is asked again.
    pub revalidate_secs: u64,
    /// `IIPSRV_STORAGE_CACHE_SIZE`: bytes of fetched object blocks kept.
    pub cache_bytes: u64,
}

/// Heavy work and slow clients (ours): the memory budget and pool of heavy requests, the
/// transports' timeouts.
#[derive(Debug, Clone, Default)]
pub struct LoadSettings {
    /// `IIPSRV_MEMORY_BUDGET`: bytes of estimated memory that heavy requests may hold at once
    /// (0: no bound).
    pub memory_budget_bytes: u64,
    /// `IIPSRV_HEAVY_THREADS`: threads that run heavy requests.
    pub heavy_threads: usize,
    /// `IIPSRV_HEAVY_NICE`: steps of niceness the heavy threads add to the process's.
    pub heavy_nice: i32,
    /// `IIPSRV_QUEUE_LENGTH`: heavy requests that may wait for admission.
    pub queue_length: usize,
    /// `IIPSRV_QUEUE_TIMEOUT`: seconds a heavy request may wait for admission.
    pub queue_timeout_secs: u64,
    /// `IIPSRV_READ_TIMEOUT`: seconds a client may take to send a request (HTTP: its headers,
    /// and the longest idle keep-alive; FastCGI: from its first record to its last).
    pub read_timeout_secs: u64,
    /// `IIPSRV_WRITE_TIMEOUT`: seconds a response may make no progress to the client before
    /// the connection is dropped.
    pub write_timeout_secs: u64,
}

/// Warnings about values that were not what iipsrv's parser expects.
pub type Warnings = Vec<String>;

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
        protocol: protocol.to_string(),
        command,
    })
}

impl Config {
    /// The tile cache's capacity in bytes: ⌊MB × 1,024,000⌋ (an upstream "MB").
    pub fn max_image_cache_bytes(&self) -> u64 {
        (self.caches.tile_mb * 1_024_000.0) as u64
    }

    /// The header values every response builder needs.
    pub fn header_defaults(&self) -> HeaderDefaults {
        HeaderDefaults {
            cors: (!self.http.cors.is_empty()).then(|| self.http.cors.clone()),
            cache_control: self.http.cache_control.clone(),
        }
    }
}
