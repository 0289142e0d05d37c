//! The admin API (axum), in the old Python service's shapes: `GET /api/v1/homekit/status` and
//! the sensor triggers `POST /api/v1/homekit/cameras/{id}/motion|occupancy|doorbell`.
//!
//! Errors are JSON `{"error": "..."}` with a status code; validation messages name the field.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};

use crate::hap::Inner;
use crate::sensors::{SensorError, Sensors};

/// What the API reads and drives.
pub(crate) struct ApiState {
    /// The bridge's HAP server.
    pub(crate) bridge: Arc<Inner>,
    /// Camera sensors.
    pub(crate) sensors: Arc<Sensors>,
    /// The bridge's configured name.
    pub(crate) bridge_name: String,
}

/// Binds the API and serves it until `shutdown` resolves. Returns the bound address at once.
pub(crate) async fn serve(
    addr: SocketAddr,
    state: Arc<ApiState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--api-addr {addr}: cannot listen: {e}"))?;
    let local = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %e, "admin API stopped");
        }
    });
    Ok((local, task))
}

fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/homekit/status", get(status))
        .route("/api/v1/homekit/cameras/{id}/motion", post(motion))
        .route("/api/v1/homekit/cameras/{id}/occupancy", post(occupancy))
        .route("/api/v1/homekit/cameras/{id}/doorbell", post(doorbell))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

async fn status(State(state): State<Arc<ApiState>>) -> Response {
    let bridge = &state.bridge;
    let setup = bridge.setup_info();
    let body = json!({
        "enabled": true,
        "running": true,
        "paired": setup.is_none(),
        "accessory_count": bridge.accessory_count(),
        "bridge_name": state.bridge_name,
        "setup_code": setup.as_ref().map(|(code, _)| code.clone()),
        "setup_uri": setup.as_ref().map(|(_, uri)| uri.clone()),
        "port": bridge.local_addr.port(),
        "config_number": bridge.config_number,
        "connections": bridge.connections.load(std::sync::atomic::Ordering::Relaxed),
        "verified_sessions": bridge.verified.load(std::sync::atomic::Ordering::Relaxed),
        "error": Json::Null,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn motion(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match detected(&body) {
        Ok(detected) => sensor_reply(state.sensors.motion(&id, detected), &id, "motion", detected),
        Err(e) => e,
    }
}

async fn occupancy(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    match detected(&body) {
        Ok(detected) => sensor_reply(
            state.sensors.occupancy(&id, detected),
            &id,
            "occupancy",
            detected,
        ),
        Err(e) => e,
    }
}

async fn doorbell(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match state.sensors.doorbell(&id) {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({"camera": id, "doorbell": "pressed"})),
        )
            .into_response(),
        Err(e) => sensor_error(&e),
    }
}

/// Parses `{"detected": bool}`; errors name the field.
#[allow(clippy::result_large_err)] // the error is the finished HTTP response
fn detected(body: &[u8]) -> Result<bool, Response> {
    let json: Json = serde_json::from_slice(body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("body: not JSON: {e}")))?;
    match json.get("detected") {
        Some(Json::Bool(b)) => Ok(*b),
        Some(_) => Err(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "detected: must be true or false",
        )),
        None => Err(error(StatusCode::UNPROCESSABLE_ENTITY, "detected: missing")),
    }
}

fn sensor_reply(
    result: Result<(), SensorError>,
    id: &str,
    sensor: &str,
    detected: bool,
) -> Response {
    match result {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({"camera": id, sensor: detected})),
        )
            .into_response(),
        Err(e) => sensor_error(&e),
    }
}

fn sensor_error(e: &SensorError) -> Response {
    let code = match e {
        SensorError::UnknownCamera(_) => StatusCode::NOT_FOUND,
        SensorError::NoSuchSensor { .. } => StatusCode::CONFLICT,
        SensorError::Refused(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(code, &e.to_string())
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(json!({"error": message}))).into_response()
}

/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 16 * 1024;
