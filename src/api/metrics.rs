//! `GET /metrics`: Prometheus text exposition format 0.0.4. Only series with real values.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiState;

pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
        .into_response()
}

struct Row {
    server: String,
    connections: usize,
    verified: usize,
    pairings: usize,
    accessories: usize,
    snapshots: u64,
    serving: bool,
}

fn render(state: &ApiState) -> String {
    let rows: Vec<Row> = state
        .servers
        .servers()
        .iter()
        .map(|s| {
            let stats = s.state().stats();
            Row {
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
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: &dyn Fn(&Row) -> String| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for row in &rows {
            let _ = writeln!(
                out,
                "{name}{{server=\"{}\"}} {}",
                escape(&row.server),
                value(row)
            );
        }
    };
    family(
        "hap_bridge_up",
        "gauge",
        "Whether the HAP server accepts connections (1) or HomeKit is disabled (0).",
        &|r| u8::from(r.serving).to_string(),
    );
    family(
        "hap_bridge_connections",
        "gauge",
        "Open HAP TCP connections.",
        &|r| r.connections.to_string(),
    );
    family(
        "hap_bridge_verified_sessions",
        "gauge",
        "HAP connections with a completed pair-verify.",
        &|r| r.verified.to_string(),
    );
    family(
        "hap_bridge_pairings",
        "gauge",
        "Stored controller pairings.",
        &|r| r.pairings.to_string(),
    );
    family(
        "hap_bridge_accessories",
        "gauge",
        "Accessories in the server's database.",
        &|r| r.accessories.to_string(),
    );
    family(
        "hap_bridge_snapshots_served_total",
        "counter",
        "Snapshot requests answered with an image.",
        &|r| r.snapshots.to_string(),
    );
    let _ = writeln!(
        out,
        "# HELP hap_bridge_active_streams Camera video streams running now.\n\
         # TYPE hap_bridge_active_streams gauge\nhap_bridge_active_streams {}",
        state.streams.active_streams()
    );
    super::streams::metrics(state, &mut out);
    if let Some(rss) = resident_bytes() {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}"
        );
    }
    out
}

/// Label value escaping (backslash, quote, newline).
pub(super) fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
    use super::*;

    #[test]
    fn vm_rss_and_escaping() {
        let status = "Name:\thap-bridge\nVmPeak:\t  100 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert!(resident_bytes().is_some_and(|b| b > 0));
        assert_eq!(escape("camera:a\"b\\c"), "camera:a\\\"b\\\\c");
    }
}
