//! `/metrics`: the table of atomics and a [`Snapshot`] of the values that live elsewhere,
//! written in the Prometheus text format (0.0.4) by `prometheus-client`, which does the naming
//! (`_total`, units), escaping and histogram layout.
//!
//! Series of the request counters appear once they are non-zero (so an idle label combination
//! costs nothing); every other series is always there. Either way the set of series is bounded
//! by the label enums, whatever clients request.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use super::histogram::Read;
use super::table::{Codec, Format, Kind, METRICS, Protocol, StatusClass, Transport};

/// One in-process cache, as read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub entries: u64,
    /// Accounted bytes (0 where the cache counts entries, not bytes).
    pub bytes: u64,
    /// The configured capacity in bytes (0 where it counts entries).
    pub capacity_bytes: u64,
}

/// The memcached client's counters.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MemcachedStats {
    pub hits: u64,
    pub misses: u64,
    pub errors: u64,
    pub stale: u64,
    pub stored: u64,
    pub dropped: u64,
    pub servers: u64,
    pub servers_up: u64,
}

/// The values read at scrape time from the layers above.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Snapshot {
    pub in_flight: u64,
    pub tile_cache: CacheStats,
    pub metadata_cache: CacheStats,
    /// `None` when memcached is not configured.
    pub memcached: Option<MemcachedStats>,
    /// Seconds since the Unix epoch when the process started.
    pub start_time_seconds: f64,
}

/// The whole exposition: the table of atomics and `snapshot`.
pub(crate) fn render(snapshot: &Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition(*snapshot)));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail, and every name and label is ours.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Exposition(Snapshot);

/// Prefix of every metric name.
const PREFIX: &str = "iipsrv_";

fn counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: u64,
) -> fmt::Result {
    let name = format!("{PREFIX}{name}");
    let m = e.encode_descriptor(&name, help, unit, MetricType::Counter)?;
    ConstCounter::new(v).encode(m)
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: i64,
) -> fmt::Result {
    let name = format!("{PREFIX}{name}");
    let m = e.encode_descriptor(&name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

fn gauge_f64(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: f64,
) -> fmt::Result {
    let name = format!("{PREFIX}{name}");
    let m = e.encode_descriptor(&name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// A histogram family with one label.
fn histograms(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &'static str,
    series: impl Iterator<Item = (&'static str, Read)>,
) -> fmt::Result {
    let name = format!("{PREFIX}{name}");
    let mut m = e.encode_descriptor(&name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for (value, read) in series {
        let labels = [(label, value)];
        m.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
            read.sum_seconds,
            read.count,
            &read.buckets,
            None,
        )?;
    }
    Ok(())
}

fn caches(
    e: &mut DescriptorEncoder,
    which: &str,
    what: &str,
    c: &CacheStats,
    bytes: bool,
) -> fmt::Result {
    counter(
        e,
        &format!("{which}_hits"),
        &format!("Lookups answered by the {what}."),
        None,
        c.hits,
    )?;
    counter(
        e,
        &format!("{which}_misses"),
        &format!(
            "Lookups the {what} could not answer (absent, or stored for another version of the file)."
        ),
        None,
        c.misses,
    )?;
    counter(
        e,
        &format!("{which}_evictions"),
        &format!("Entries the {what} dropped to stay within its capacity."),
        None,
        c.evictions,
    )?;
    gauge(
        e,
        &format!("{which}_entries"),
        &format!("Entries in the {what}."),
        None,
        c.entries as i64,
    )?;
    if bytes {
        gauge(
            e,
            which,
            &format!("Bytes held by the {what}, as accounted against its capacity."),
            Some(&Unit::Bytes),
            c.bytes as i64,
        )?;
        gauge(
            e,
            &format!("{which}_capacity"),
            &format!("The capacity of the {what}."),
            Some(&Unit::Bytes),
            c.capacity_bytes as i64,
        )?;
    }
    Ok(())
}

impl Collector for Exposition {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let m = &METRICS;

        // Requests.
        {
            let name = format!("{PREFIX}requests");
            let mut d = e.encode_descriptor(
                &name,
                "Requests answered, by protocol, kind, output format and status class.",
                None,
                MetricType::Counter,
            )?;
            for p in Protocol::ALL {
                for k in Kind::ALL {
                    for f in Format::ALL {
                        for c in StatusClass::ALL {
                            let v = m.requests[*p as usize][*k as usize][*f as usize][*c as usize]
                                .load(Ordering::Relaxed);
                            if v == 0 {
                                continue;
                            }
                            let labels = [
                                ("protocol", p.label()),
                                ("kind", k.label()),
                                ("format", f.label()),
                                ("status", c.label()),
                            ];
                            ConstCounter::new(v).encode(d.encode_family(&labels)?)?;
                        }
                    }
                }
            }
        }
        histograms(
            &mut e,
            "request_duration",
            "Time from the complete request to the complete response, by kind.",
            "kind",
            Kind::ALL
                .iter()
                .map(|k| (k.label(), m.durations[*k as usize].read())),
        )?;
        {
            let name = format!("{PREFIX}sent");
            let mut d = e.encode_descriptor(
                &name,
                "Response body bytes, by kind.",
                Some(&Unit::Bytes),
                MetricType::Counter,
            )?;
            for k in Kind::ALL {
                let labels = [("kind", k.label())];
                let v = m.sent_bytes[*k as usize].load(Ordering::Relaxed);
                ConstCounter::new(v).encode(d.encode_family(&labels)?)?;
            }
        }
        gauge(
            &mut e,
            "requests_in_flight",
            "Requests being answered now.",
            None,
            s.in_flight as i64,
        )?;
        {
            let name = format!("{PREFIX}open_connections");
            let mut d = e.encode_descriptor(
                &name,
                "Open client connections, by listener (FastCGI from the web server, or HTTP).",
                None,
                MetricType::Gauge,
            )?;
            for t in Transport::ALL {
                let labels = [("transport", t.label())];
                let v = m.connections[*t as usize].load(Ordering::Relaxed);
                ConstGauge::new(v).encode(d.encode_family(&labels)?)?;
            }
        }

        // Caches.
        caches(&mut e, "tile_cache", "tile cache", &s.tile_cache, true)?;
        caches(
            &mut e,
            "metadata_cache",
            "metadata cache (opened images)",
            &s.metadata_cache,
            false,
        )?;
        if let Some(mc) = &s.memcached {
            counter(
                &mut e,
                "memcached_hits",
                "Responses answered from memcached.",
                None,
                mc.hits,
            )?;
            counter(
                &mut e,
                "memcached_misses",
                "memcached lookups that found no usable entry (errors included).",
                None,
                mc.misses,
            )?;
            counter(
                &mut e,
                "memcached_errors",
                "memcached operations that failed (connection, timeout, protocol); the server is then skipped until it answers again.",
                None,
                mc.errors,
            )?;
            counter(
                &mut e,
                "memcached_stale",
                "memcached entries found but not served because the image changed since they were stored.",
                None,
                mc.stale,
            )?;
            counter(
                &mut e,
                "memcached_stored",
                "Responses stored in memcached.",
                None,
                mc.stored,
            )?;
            counter(
                &mut e,
                "memcached_dropped",
                "Responses not stored (too large, queue full, server down or refusing).",
                None,
                mc.dropped,
            )?;
            gauge(
                &mut e,
                "memcached_servers",
                "memcached servers configured.",
                None,
                mc.servers as i64,
            )?;
            gauge(
                &mut e,
                "memcached_servers_up",
                "memcached servers reachable now.",
                None,
                mc.servers_up as i64,
            )?;
        }

        // Codecs.
        histograms(
            &mut e,
            "decode_duration",
            "Time spent decoding a stored tile, by source format.",
            "codec",
            Codec::ALL
                .iter()
                .map(|c| (c.label(), m.decode[*c as usize].read())),
        )?;
        histograms(
            &mut e,
            "encode_duration",
            "Time spent encoding an image, by output format.",
            "format",
            Format::ALL[1..]
                .iter()
                .map(|f| (f.label(), m.encode[*f as usize].read())),
        )?;

        // Operations.
        {
            let name = format!("{PREFIX}cache_purges");
            let mut d = e.encode_descriptor(
                &name,
                "Cache purges through the admin listener: of everything, or of one image.",
                None,
                MetricType::Counter,
            )?;
            for (i, scope) in ["all", "image"].into_iter().enumerate() {
                let labels = [("scope", scope)];
                let v = m.purges[i].load(Ordering::Relaxed);
                ConstCounter::new(v).encode(d.encode_family(&labels)?)?;
            }
        }
        {
            let name = format!("{PREFIX}build");
            let mut d = e.encode_descriptor(
                &name,
                "Always 1; the labels name this server's version and the iipsrv version it is compatible with.",
                None,
                MetricType::Info,
            )?;
            let labels = [
                ("version", crate::CRATE_VERSION),
                ("iipsrv_version", crate::IIPSRV_VERSION),
            ];
            d.encode_info(&labels)?;
        }
        gauge_f64(
            &mut e,
            "process_start_time",
            "When the process started, in seconds since the Unix epoch.",
            Some(&Unit::Seconds),
            s.start_time_seconds,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_family_once() {
        let text = render(&Snapshot {
            memcached: Some(MemcachedStats::default()),
            ..Snapshot::default()
        });
        let mut types = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_string();
                assert!(types.insert(name.clone()), "{name} twice");
            }
        }
        for name in [
            "iipsrv_requests_total",
            "iipsrv_request_duration_seconds",
            "iipsrv_sent_bytes_total",
            "iipsrv_requests_in_flight",
            "iipsrv_open_connections",
            "iipsrv_tile_cache_hits_total",
            "iipsrv_tile_cache_bytes",
            "iipsrv_metadata_cache_entries",
            "iipsrv_memcached_errors_total",
            "iipsrv_decode_duration_seconds",
            "iipsrv_encode_duration_seconds",
            "iipsrv_build_info",
        ] {
            assert!(types.contains(name), "{name} missing in\n{text}");
        }
    }
}
