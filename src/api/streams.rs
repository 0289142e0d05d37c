//! Live camera streams and snapshots in the admin API: `GET /api/v1/homekit/streams` (each
//! stream with its figures), `DELETE /api/v1/homekit/streams/{id}` (ends it),
//! `GET /api/v1/homekit/cameras/{id}/snapshot?width=W&height=H` (a JPEG, as HomeKit gets it).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{ApiState, error};
use crate::camera::StreamEntry;

/// `GET /api/v1/homekit/streams`.
pub(super) async fn list(State(state): State<Arc<ApiState>>) -> Response {
    let streams: Vec<Json> = state.streams.streams().iter().map(describe).collect();
    (StatusCode::OK, axum::Json(json!({ "streams": streams }))).into_response()
}

/// `DELETE /api/v1/homekit/streams/{id}`.
pub(super) async fn stop(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let Ok(n) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "id: must be a stream number");
    };
    if state.streams.stop_stream(n) {
        (StatusCode::OK, axum::Json(json!({ "stopped": n }))).into_response()
    } else {
        error(StatusCode::NOT_FOUND, &format!("no live stream {n}"))
    }
}

/// `?width=&height=` of the snapshot endpoint.
#[derive(serde::Deserialize)]
pub(super) struct SnapshotSize {
    width: Option<u32>,
    height: Option<u32>,
}

/// `GET /api/v1/homekit/cameras/{id}/snapshot`.
pub(super) async fn snapshot(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(size): Query<SnapshotSize>,
) -> Response {
    let (width, height) = (
        size.width.unwrap_or(DEFAULT_SNAPSHOT.0),
        size.height.unwrap_or(DEFAULT_SNAPSHOT.1),
    );
    if !(MIN_SIDE..=MAX_SIDE).contains(&width) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("width: must be {MIN_SIDE}..={MAX_SIDE}"),
        );
    }
    if !(MIN_SIDE..=MAX_SIDE).contains(&height) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("height: must be {MIN_SIDE}..={MAX_SIDE}"),
        );
    }
    let Some(cam) = state.streams.camera(&id) else {
        return error(StatusCode::NOT_FOUND, &format!("no enabled camera {id}"));
    };
    match tokio::time::timeout(SNAPSHOT_TIMEOUT, cam.snapshot(width, height)).await {
        Ok(Ok(jpeg)) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            jpeg,
        )
            .into_response(),
        Ok(Err(e)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("camera {id}: {e}"),
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("camera {id}: no picture in time"),
        ),
    }
}

fn describe(s: &StreamEntry) -> Json {
    let live = s.stats();
    let st = &live.stream;
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let secs = s.started.elapsed().as_secs_f64();
    json!({
        "id": s.id,
        "camera": s.camera,
        "controller": s.controller.to_string(),
        "width": live.width,
        "height": live.height,
        "fps": live.fps,
        "kbps": live.kbps,
        "mode": if live.transcoding { "transcode" } else { "passthrough" },
        // Why: fits, does_not_fit, source_unknown, passthrough_asked, transcode_asked (the
        // camera's `transcode` setting).
        "mode_reason": live.feed_reason.as_str(),
        "latency_p50_ms": ms(st.latency.p50()),
        "latency_p95_ms": ms(st.latency.p95()),
        "frames": st.frames_sent,
        "key_frames": st.key_frames_sent,
        "dropped_frames": st.frames_dropped,
        "bytes": st.bytes_sent,
        "sent_kbps": if secs > 0.0 { (st.bytes_sent as f64 * 8.0 / secs / 1000.0).round() } else { 0.0 },
        "seconds": secs.round(),
        "rtcp_received": st.rtcp_received,
        "fraction_lost": live.fraction_lost,
        "jitter": live.jitter,
    })
}

/// Snapshot size when the query names none.
const DEFAULT_SNAPSHOT: (u32, u32) = (640, 360);
/// Smallest snapshot side.
const MIN_SIDE: u32 = 16;
/// Largest snapshot side.
const MAX_SIDE: u32 = 3840;
/// A snapshot that takes longer is answered with 504.
const SNAPSHOT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);
