//! The admin API (axum), in the old Python service's shapes: HomeKit status, enable and
//! disable, the setup QR code, cameras at run time, pairings, the sensor triggers
//! `POST /api/v1/homekit/cameras/{id}/motion|occupancy|doorbell`, Prometheus `/metrics` and a
//! small web page at `/`.
//!
//! Errors are JSON `{"error": "..."}` with a status code; validation messages name the field.
//! When a token is set (always on a non-loopback address) every endpoint but the page requires
//! `Authorization: Bearer <token>`, compared in constant time. No answer may be framed
//! (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`).

mod auth;
mod cameras;
mod homekit;
mod metrics;
mod motion;
mod streams;

pub(crate) use auth::{ApiToken, resolve_token};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value as Json, json};

use crate::sensors::{SensorError, Sensors};
use crate::servers::Servers;

/// What the API reads and drives.
pub(crate) struct ApiState {
    /// The HAP servers.
    pub(crate) servers: Arc<Servers>,
    /// Camera sensors.
    pub(crate) sensors: Arc<Sensors>,
    /// The bridge's configured name.
    pub(crate) bridge_name: String,
    /// The cameras' runtimes and live streams.
    pub(crate) streams: Arc<crate::camera::CameraManager>,
    /// The video transcoder.
    pub(crate) transcoder: Transcoder,
    /// The bearer token every request must carry, if any.
    pub(crate) token: Option<ApiToken>,
}

/// The video transcoder, as `/status` reports it.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(crate) struct Transcoder {
    /// Encoder name.
    pub(crate) engine: &'static str,
    /// Whether it can be used.
    pub(crate) available: bool,
    /// Whether the encoder has its assembly (built with `nasm`); without it transcoding costs
    /// about 2.5 times as much.
    pub(crate) assembly: bool,
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
    let h = "/api/v1/homekit";
    let registry = Arc::new(metrics::Metrics::new(state.clone()));
    let api = Router::new()
        .route(&format!("{h}/status"), get(homekit::status))
        .route(&format!("{h}/enable"), post(homekit::enable))
        .route(&format!("{h}/disable"), post(homekit::disable))
        .route(&format!("{h}/qrcode"), get(homekit::qrcode))
        .route(
            &format!("{h}/cameras"),
            get(cameras::list).post(cameras::create),
        )
        .route(
            &format!("{h}/cameras/{{id}}"),
            get(cameras::show)
                .put(cameras::update)
                .delete(cameras::remove),
        )
        .route(&format!("{h}/pairings"), get(homekit::pairings))
        .route(
            &format!("{h}/pairings/reset"),
            post(homekit::reset_pairings),
        )
        .route(
            &format!("{h}/pairings/{{id}}"),
            delete(homekit::remove_pairing),
        )
        .route(&format!("{h}/cameras/{{id}}/qrcode"), get(cameras::qrcode))
        .route(&format!("{h}/cameras/{{id}}/motion"), post(motion))
        .route(
            &format!("{h}/cameras/{{id}}/motion/picture"),
            get(motion::picture),
        )
        .route(&format!("{h}/cameras/{{id}}/occupancy"), post(occupancy))
        .route(&format!("{h}/cameras/{{id}}/doorbell"), post(doorbell))
        .route(&format!("{h}/streams"), get(streams::list))
        .route(&format!("{h}/streams/{{id}}"), delete(streams::stop))
        .route(
            &format!("{h}/cameras/{{id}}/snapshot"),
            get(streams::snapshot),
        )
        .route("/metrics", get(move || metrics::metrics(registry.clone())))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this endpoint",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check,
        ));
    // The page holds no data (it asks the API, with the token it is given): no token needed.
    Router::new()
        .route("/", get(page))
        .merge(api)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(json_errors))
        // Outermost: every answer, errors of the layers above included.
        .layer(axum::middleware::map_response(auth::forbid_framing))
        .with_state(state)
}

/// Error answers of the HTTP layer itself (a query string that does not parse, a chunked body
/// over the limit ...) come as plain text; every error of the API is JSON `{"error": ...}`.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), MAX_ERROR_TEXT)
        .await
        .unwrap_or_default();
    error(status, String::from_utf8_lossy(&text).trim())
}

/// The web page.
async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
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

/// A setup URI as a QR code PNG, never cached (it shows a secret while unpaired).
fn qr_png(uri: &str) -> Response {
    match crate::qr::png(uri) {
        Ok(png) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            png,
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
    }
}

pub(crate) fn error(code: StatusCode, message: &str) -> Response {
    (code, axum::Json(json!({"error": message}))).into_response()
}

/// Longest plain-text error of the HTTP layer carried into a JSON error.
const MAX_ERROR_TEXT: usize = 4096;
/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 16 * 1024;
/// The web page at `/`.
const PAGE: &str = include_str!("api/index.html");
