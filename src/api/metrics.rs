//! `GET /metrics`: Prometheus text exposition format 0.0.4, encoded by `prometheus-client`.
//! Only series with real values.
//!
//! The figures stay where they are made (the HAP servers, the [`CameraManager`]); one process-wide
//! registry holds a collector that reads them at each scrape. Counters and the stream latency
//! histogram count over the process's life: the camera manager folds each stream's figures into
//! its totals when the stream ends ([`CameraManager::stream_totals`]), so they never go back when a
//! stream ends. Gauges (`hap_bridge_active_streams`, connections, the live streams' key frames)
//! are figures of now.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use media::stats::LatencyHistogram;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::ApiState;
use crate::camera::motion::MotionTotals;
use crate::camera::{CameraManager, StreamTotals};

/// The bridge's metrics registry, built once with the API's router.
pub(super) struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A registry whose one collector reads `state` at each scrape.
    pub(super) fn new(state: Arc<ApiState>) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Live(state)));
        Self { registry }
    }

    /// The text of one scrape.
    fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// `GET /metrics`.
pub(super) async fn metrics(metrics: Arc<Metrics>) -> Response {
    match metrics.render() {
        Ok(text) => (
            [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(fmt::Error) => super::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "/metrics: the figures could not be encoded",
        ),
    }
}

/// The collector of the process-wide registry: the figures of `ApiState` at each scrape.
struct Live(Arc<ApiState>);

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Live(ApiState)")
    }
}

impl Collector for Live {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> fmt::Result {
        Snapshot::read(&self.0).encode(encoder)
    }
}

/// The figures of one HAP server.
#[derive(Debug)]
struct ServerRow {
    /// `bridge` or `camera:<id>`.
    server: String,
    connections: usize,
    verified: usize,
    pairings: usize,
    accessories: usize,
    snapshots: u64,
    serving: bool,
}

/// Everything one scrape reports, read at once.
#[derive(Debug)]
struct Snapshot {
    servers: Vec<ServerRow>,
    active_streams: usize,
    /// Deferred camera timers pending.
    camera_timers: usize,
    streams_started: u64,
    /// Every stream of the process: the ended ones and the live ones now.
    totals: StreamTotals,
    live_key_frames: u64,
    live_dropped_frames: u64,
    camera_snapshots: u64,
    /// RTSP reconnects per camera id.
    reconnects: Vec<(String, u64)>,
    /// Motion detection per camera id: events, pictures analysed, seconds analysing, seconds
    /// decoding.
    motion: Vec<(String, MotionRow)>,
    /// Live streams by (mode, reason).
    live_modes: std::collections::BTreeMap<(&'static str, &'static str), u64>,
    resident_bytes: Option<u64>,
}

impl Snapshot {
    fn read(state: &ApiState) -> Self {
        let servers = state
            .servers
            .servers()
            .iter()
            .map(|s| {
                let stats = s.state().stats();
                ServerRow {
                    server: stats.server,
                    connections: stats.connections,
                    verified: stats.verified,
                    pairings: stats.pairings,
                    accessories: stats.accessories,
                    snapshots: stats.snapshots,
                    serving: s.is_serving(),
                }
            })
            .collect();
        let cameras: &CameraManager = &state.streams;
        let live = cameras.streams();
        let (mut live_key_frames, mut live_dropped_frames) = (0u64, 0u64);
        let mut live_modes = std::collections::BTreeMap::new();
        for s in &live {
            let stats = s.stats();
            let st = stats.stream;
            live_key_frames = live_key_frames.saturating_add(st.key_frames_sent);
            live_dropped_frames = live_dropped_frames.saturating_add(st.frames_dropped);
            let mode = if stats.transcoding {
                "transcode"
            } else {
                "passthrough"
            };
            *live_modes
                .entry((mode, stats.feed_reason.as_str()))
                .or_insert(0) += 1;
        }
        Self {
            servers,
            active_streams: live.len(),
            camera_timers: cameras.pending_timers(),
            streams_started: cameras.streams_started.load(Ordering::Relaxed),
            totals: cameras.stream_totals(),
            live_key_frames,
            live_dropped_frames,
            camera_snapshots: cameras.snapshots.load(Ordering::Relaxed),
            reconnects: cameras.reconnects(),
            motion: cameras
                .motion_totals()
                .into_iter()
                .map(|(id, t)| (id, MotionRow::of(&t)))
                .collect(),
            live_modes,
            resident_bytes: resident_bytes(),
        }
    }

    /// Encodes the families in a fixed order. Counter names are given without `_total`: the
    /// encoder appends it.
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let servers = &self.servers;
        let per_server = |encoder: &mut DescriptorEncoder<'_>,
                          name: &str,
                          help: &str,
                          kind: Kind,
                          value: &dyn Fn(&ServerRow) -> u64|
         -> fmt::Result {
            let mut family = encoder.encode_descriptor(name, help, None, kind.metric_type())?;
            for row in servers {
                let labels = [("server", row.server.as_str())];
                kind.encode(family.encode_family(&labels)?, value(row))?;
            }
            Ok(())
        };
        let e = &mut encoder;
        per_server(
            e,
            "hap_bridge_up",
            "Whether the HAP server accepts connections (1) or HomeKit is disabled (0).",
            Kind::Gauge,
            &|r| u64::from(r.serving),
        )?;
        per_server(
            e,
            "hap_bridge_connections",
            "Open HAP TCP connections.",
            Kind::Gauge,
            &|r| count(r.connections),
        )?;
        per_server(
            e,
            "hap_bridge_verified_sessions",
            "HAP connections with a completed pair-verify.",
            Kind::Gauge,
            &|r| count(r.verified),
        )?;
        per_server(
            e,
            "hap_bridge_pairings",
            "Stored controller pairings.",
            Kind::Gauge,
            &|r| count(r.pairings),
        )?;
        per_server(
            e,
            "hap_bridge_accessories",
            "Accessories in the server's database.",
            Kind::Gauge,
            &|r| count(r.accessories),
        )?;
        per_server(
            e,
            "hap_bridge_snapshots_served",
            "Snapshot requests answered with an image.",
            Kind::Counter,
            &|r| r.snapshots,
        )?;
        let single = |encoder: &mut DescriptorEncoder<'_>,
                      name: &str,
                      help: &str,
                      kind: Kind,
                      value: u64|
         -> fmt::Result {
            kind.encode(
                encoder.encode_descriptor(name, help, None, kind.metric_type())?,
                value,
            )
        };
        single(
            e,
            "hap_bridge_active_streams",
            "Camera video streams running now.",
            Kind::Gauge,
            count(self.active_streams),
        )?;
        single(
            e,
            "hap_bridge_camera_timers",
            "Camera timers pending (prepared stream sessions expiring); at most one per stream service.",
            Kind::Gauge,
            count(self.camera_timers),
        )?;
        single(
            e,
            "hap_bridge_streams_started",
            "Camera video streams started.",
            Kind::Counter,
            self.streams_started,
        )?;
        single(
            e,
            "hap_bridge_stream_frames_sent",
            "Video frames sent to controllers.",
            Kind::Counter,
            self.totals.frames,
        )?;
        single(
            e,
            "hap_bridge_stream_bytes_sent",
            "SRTP bytes sent to controllers.",
            Kind::Counter,
            self.totals.bytes,
        )?;
        single(
            e,
            "hap_bridge_live_stream_key_frames",
            "Key frames sent by the streams running now.",
            Kind::Gauge,
            self.live_key_frames,
        )?;
        single(
            e,
            "hap_bridge_live_stream_dropped_frames",
            "Frames dropped by the streams running now.",
            Kind::Gauge,
            self.live_dropped_frames,
        )?;
        single(
            e,
            "hap_bridge_camera_snapshots",
            "Snapshots made (HomeKit and the admin API).",
            Kind::Counter,
            self.camera_snapshots,
        )?;
        let latency = e.encode_descriptor(
            "hap_bridge_stream_frame_latency_seconds",
            "Added latency per frame of every stream since the bridge started: frame received \
             from the camera to its last packet sent.",
            None,
            MetricType::Histogram,
        )?;
        KeptHistogram(&self.totals.latency).encode(latency)?;
        let mut reconnects = e.encode_descriptor(
            "hap_bridge_rtsp_reconnects",
            "RTSP sessions re-established after a failure, per camera.",
            None,
            MetricType::Counter,
        )?;
        for (camera, n) in &self.reconnects {
            let labels = [("camera", camera.as_str())];
            Kind::Counter.encode(reconnects.encode_family(&labels)?, *n)?;
        }
        let motion_counts: [MotionFamily<u64>; 2] = [
            (
                "hap_bridge_motion_events",
                "Motion events started by the detector, per camera.",
                |m| m.events,
            ),
            (
                "hap_bridge_motion_analysed_pictures",
                "Pictures the motion detector analysed, per camera.",
                |m| m.analysed,
            ),
        ];
        for (name, help, value) in motion_counts {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (camera, row) in &self.motion {
                let labels = [("camera", camera.as_str())];
                Kind::Counter.encode(family.encode_family(&labels)?, value(row))?;
            }
        }
        let motion_times: [MotionFamily<f64>; 2] = [
            (
                "hap_bridge_motion_analysis_seconds",
                "Time the motion detector spent analysing (downscale and detector), per camera.",
                |m| m.analysis_seconds,
            ),
            (
                "hap_bridge_motion_decode_seconds",
                "Time spent decoding pictures for the motion detector, per camera.",
                |m| m.decode_seconds,
            ),
        ];
        for (name, help, value) in motion_times {
            let mut family = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (camera, row) in &self.motion {
                let labels = [("camera", camera.as_str())];
                ConstCounter::new(value(row)).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut modes = e.encode_descriptor(
            "hap_bridge_live_streams",
            "Live streams by mode (passthrough, transcode) and why (fits, does_not_fit, \
             source_unknown, passthrough_asked, transcode_asked).",
            None,
            MetricType::Gauge,
        )?;
        for ((mode, reason), n) in &self.live_modes {
            let labels = [("mode", *mode), ("reason", *reason)];
            Kind::Gauge.encode(modes.encode_family(&labels)?, *n)?;
        }
        if let Some(rss) = self.resident_bytes {
            single(
                e,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                Kind::Gauge,
                rss,
            )?;
        }
        Ok(())
    }
}

/// The two kinds of single-value metric the bridge reports.
/// A motion metric family: name, help, and its value per camera.
type MotionFamily<T> = (&'static str, &'static str, fn(&MotionRow) -> T);

/// A camera's motion detection figures over the process's life.
#[derive(Debug)]
struct MotionRow {
    events: u64,
    analysed: u64,
    analysis_seconds: f64,
    decode_seconds: f64,
}

impl MotionRow {
    fn of(t: &MotionTotals) -> Self {
        Self {
            events: t.events.load(Ordering::Relaxed),
            analysed: t.analysed.load(Ordering::Relaxed),
            analysis_seconds: t.analysis_us.load(Ordering::Relaxed) as f64 / 1e6,
            decode_seconds: t.decode_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    /// Goes up only, over the process's life.
    Counter,
    /// A figure of now.
    Gauge,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Self::Counter => MetricType::Counter,
            Self::Gauge => MetricType::Gauge,
        }
    }

    fn encode(self, encoder: MetricEncoder<'_>, value: u64) -> fmt::Result {
        match self {
            Self::Counter => ConstCounter::new(value).encode(encoder),
            Self::Gauge => ConstGauge::new(value).encode(encoder),
        }
    }
}

/// A histogram kept as a [`LatencyHistogram`] (microsecond buckets), encoded in seconds.
struct KeptHistogram<'a>(&'a LatencyHistogram);

impl KeptHistogram<'_> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> fmt::Result {
        let buckets: Vec<(f64, u64)> = self
            .0
            .buckets()
            .map(|(bound, n)| (bound.map_or(f64::INFINITY, |us| us as f64 / 1e6), n))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum().as_secs_f64(),
            self.0.count(),
            &buckets,
            None,
        )
    }
}

/// A count of things as a metric value.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `VmRSS` from `/proc/self/status`, in bytes (Linux only).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn vm_rss() {
        let status = "Name:\thap-bridge\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(resident_bytes().is_some_and(|b| b > 0));
    }

    /// Renders `snapshot` as a scrape does.
    fn render(snapshot: Snapshot) -> String {
        #[derive(Debug)]
        struct Fixed(Snapshot);
        impl Collector for Fixed {
            fn encode(&self, encoder: DescriptorEncoder<'_>) -> fmt::Result {
                self.0.encode(encoder)
            }
        }
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed(snapshot)));
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).unwrap();
        out
    }

    #[test]
    fn names_types_labels_and_histogram_lines() {
        let mut latency = LatencyHistogram::new();
        latency.record(Duration::from_micros(90));
        latency.record(Duration::from_millis(3));
        latency.record(Duration::from_secs(9));
        let text = render(Snapshot {
            servers: vec![ServerRow {
                server: "camera:a\"b\\c".to_owned(),
                connections: 2,
                verified: 1,
                pairings: 1,
                accessories: 1,
                snapshots: 4,
                serving: true,
            }],
            active_streams: 1,
            camera_timers: 0,
            streams_started: 3,
            totals: StreamTotals {
                frames: 10,
                bytes: 1000,
                latency,
            },
            live_key_frames: 1,
            live_dropped_frames: 0,
            camera_snapshots: 5,
            reconnects: vec![("door".to_owned(), 2)],
            motion: vec![(
                "door".to_owned(),
                MotionRow {
                    events: 3,
                    analysed: 50,
                    analysis_seconds: 0.25,
                    decode_seconds: 1.5,
                },
            )],
            live_modes: [(("transcode", "does_not_fit"), 1)].into_iter().collect(),
            resident_bytes: Some(4096),
        });
        for line in [
            "# TYPE hap_bridge_up gauge",
            "hap_bridge_up{server=\"camera:a\\\"b\\\\c\"} 1",
            "hap_bridge_connections{server=\"camera:a\\\"b\\\\c\"} 2",
            "# TYPE hap_bridge_snapshots_served_total counter",
            "hap_bridge_snapshots_served_total{server=\"camera:a\\\"b\\\\c\"} 4",
            "hap_bridge_active_streams 1",
            "hap_bridge_streams_started_total 3",
            "hap_bridge_stream_frames_sent_total 10",
            "hap_bridge_stream_bytes_sent_total 1000",
            "# TYPE hap_bridge_live_stream_key_frames gauge",
            "hap_bridge_live_stream_key_frames 1",
            "hap_bridge_live_stream_dropped_frames 0",
            "hap_bridge_camera_snapshots_total 5",
            "# TYPE hap_bridge_stream_frame_latency_seconds histogram",
            "hap_bridge_stream_frame_latency_seconds_bucket{le=\"0.0001\"} 1",
            "hap_bridge_stream_frame_latency_seconds_bucket{le=\"0.003\"} 2",
            "hap_bridge_stream_frame_latency_seconds_bucket{le=\"5\"} 2",
            "hap_bridge_stream_frame_latency_seconds_bucket{le=\"+Inf\"} 3",
            "hap_bridge_stream_frame_latency_seconds_sum 9.00309",
            "hap_bridge_stream_frame_latency_seconds_count 3",
            "# TYPE hap_bridge_rtsp_reconnects_total counter",
            "hap_bridge_rtsp_reconnects_total{camera=\"door\"} 2",
            "# TYPE hap_bridge_motion_events_total counter",
            "hap_bridge_motion_events_total{camera=\"door\"} 3",
            "hap_bridge_motion_analysed_pictures_total{camera=\"door\"} 50",
            "hap_bridge_motion_analysis_seconds_total{camera=\"door\"} 0.25",
            "hap_bridge_motion_decode_seconds_total{camera=\"door\"} 1.5",
            "# TYPE hap_bridge_live_streams gauge",
            "hap_bridge_live_streams{mode=\"transcode\",reason=\"does_not_fit\"} 1",
            "# TYPE process_resident_memory_bytes gauge",
            "process_resident_memory_bytes 4096",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        assert!(!text.contains("_total_total"), "{text}");
    }
}
