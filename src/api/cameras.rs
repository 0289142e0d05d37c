//! `/api/v1/homekit/cameras[/{id}]`: list, show, add, change and remove cameras at run time.
//!
//! A camera is a JSON object; every field but `id`, `name` and `source` is optional on `POST`
//! (defaults as in the configuration file), and `PUT` changes only the fields it carries. RTSP
//! URLs come back with the password masked (`rtsp://user:***@host/...`); a `PUT` that sends the
//! masked URL back keeps the stored one. Cameras from the configuration file are read-only
//! (409). A standalone camera, which pairs on its own, shows its `setup_code` and `setup_uri`
//! while unpaired. Errors name the field: `{"error": "max_streams: must be 1..=8"}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{ApiState, error, qr_png};
use crate::config::{CameraFields, CameraMode, CameraSettings, Sensors, field_error};
use crate::registry::{CameraEntry, CameraError};

pub(super) async fn list(State(state): State<Arc<ApiState>>) -> Response {
    let list: Vec<Json> = state
        .servers
        .cameras()
        .iter()
        .map(|c| view(c, &state))
        .collect();
    (StatusCode::OK, axum::Json(json!({"cameras": list}))).into_response()
}

pub(super) async fn show(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match state.servers.cameras().iter().find(|c| c.config.id == id) {
        Some(entry) => (StatusCode::OK, axum::Json(view(entry, &state))).into_response(),
        None => camera_error(&CameraError::NotFound(id)),
    }
}

pub(super) async fn create(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    let parsed = match object(&body) {
        Ok(obj) => camera_from(&obj, None),
        Err(e) => Err(e),
    };
    let camera = match parsed {
        Ok(camera) => camera,
        Err(e) => return e,
    };
    let id = camera.id.clone();
    match state.servers.add_camera(camera).await {
        Ok(()) => reply(&state, &id, StatusCode::CREATED),
        Err(e) => camera_error(&e),
    }
}

pub(super) async fn update(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let obj = match object(&body) {
        Ok(obj) => obj,
        Err(e) => return e,
    };
    // The edit runs under the controller's lock, on the camera as it is then.
    let mut refused = None;
    let result = state
        .servers
        .update_camera(&id, |current| {
            camera_from(&obj, Some(current)).map_err(|response| {
                refused = Some(response);
                CameraError::NotFound(String::new())
            })
        })
        .await;
    if let Some(response) = refused {
        return response;
    }
    match result {
        Ok(_) => reply(&state, &id, StatusCode::OK),
        Err(e) => camera_error(&e),
    }
}

pub(super) async fn remove(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match state.servers.remove_camera(&id).await {
        Ok(_) => (StatusCode::OK, axum::Json(json!({"removed": id}))).into_response(),
        Err(e) => camera_error(&e),
    }
}

/// `GET /cameras/{id}/qrcode`: a standalone camera's setup QR code (PNG) while unpaired.
pub(super) async fn qrcode(State(state): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let servers = &state.servers;
    let Some(entry) = servers.cameras().into_iter().find(|c| c.config.id == id) else {
        return camera_error(&CameraError::NotFound(id));
    };
    let Some((_, uri)) = servers.standalone_setup(&id) else {
        let why = if entry.config.mode != CameraMode::Standalone {
            "a bridged camera pairs with the bridge: use /api/v1/homekit/qrcode"
        } else if !entry.config.enabled {
            "the camera is disabled"
        } else {
            "the camera is paired: its setup code is only shown while unpaired"
        };
        return error(StatusCode::NOT_FOUND, &format!("camera {id:?}: {why}"));
    };
    qr_png(&uri)
}

fn reply(state: &ApiState, id: &str, code: StatusCode) -> Response {
    match state.servers.cameras().iter().find(|c| c.config.id == id) {
        Some(entry) => (code, axum::Json(view(entry, state))).into_response(),
        None => camera_error(&CameraError::NotFound(id.to_owned())),
    }
}

/// A camera as the API shows it: passwords masked, with its origin and AID (while exposed), and
/// its motion state.
fn view(entry: &CameraEntry, state: &ApiState) -> Json {
    let servers = &state.servers;
    let c = &entry.config;
    // A standalone camera pairs on its own: its code, while unpaired.
    let setup = servers.standalone_setup(&c.id);
    json!({
        "id": c.id,
        "name": c.name,
        "source": c.source.to_string(),
        "substream": c.substream.as_ref().map(ToString::to_string),
        "enabled": c.enabled,
        "mode": mode_name(c.mode),
        "port": c.port,
        "sensors": sensor_names(&c.sensors),
        "max_streams": c.max_streams,
        "always_on": c.always_on,
        "transcode": c.transcode.as_str(),
        "motion_detection": c.motion_detection,
        "motion": super::motion::view(state, &c.id),
        "origin": entry.origin,
        "aid": servers.camera_aid(&c.id),
        "setup_code": setup.as_ref().map(|(code, _)| code.clone()),
        "setup_uri": setup.as_ref().map(|(_, uri)| uri.clone()),
    })
}

fn mode_name(mode: CameraMode) -> &'static str {
    match mode {
        CameraMode::Bridged => "bridged",
        CameraMode::Standalone => "standalone",
    }
}

fn sensor_names(s: &Sensors) -> Vec<&'static str> {
    [
        (s.motion, "motion"),
        (s.occupancy, "occupancy"),
        (s.doorbell, "doorbell"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

fn camera_error(e: &CameraError) -> Response {
    let code = match e {
        CameraError::NotFound(_) => StatusCode::NOT_FOUND,
        CameraError::ReadOnly(_) | CameraError::Conflict { .. } => StatusCode::CONFLICT,
        CameraError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        CameraError::Failed(e) => {
            tracing::error!(error = %format!("{e:#}"), "camera change failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    error(code, &e.to_string())
}

/// The body as a JSON object.
#[allow(clippy::result_large_err)] // the error is the finished HTTP response
fn object(body: &[u8]) -> Result<Map<String, Json>, Response> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(obj)) => Ok(obj),
        Ok(_) => Err(invalid("body: must be a JSON object")),
        Err(e) => Err(error(
            StatusCode::BAD_REQUEST,
            &format!("body: not JSON ({e})"),
        )),
    }
}

/// A camera from a JSON object, through the configuration file's parser ([`CameraFields`]): a
/// new one (`current` is `None`: `id`, `name` and `source` required), or `current` with the
/// fields the object carries. Field-level checks only; the whole camera is validated when the
/// change is applied.
#[allow(clippy::result_large_err)] // the error is the finished HTTP response
fn camera_from(
    obj: &Map<String, Json>,
    current: Option<&CameraSettings>,
) -> Result<CameraSettings, Response> {
    // What `GET` shows but a client cannot set: ignored, so that it can be sent back.
    let settable: Map<String, Json> = obj
        .iter()
        .filter(|(key, _)| !READ_ONLY.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    let fields: CameraFields = serde_path_to_error::deserialize(Json::Object(settable))
        .map_err(|e| invalid(&field_error(&e.path().to_string(), &e.inner().to_string())))?;
    fields
        .into_settings(current)
        .map_err(|e| invalid(&e.to_string()))
}

fn invalid(message: &str) -> Response {
    error(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// Fields `GET` shows that a client cannot set (ignored in `POST` and `PUT` bodies).
const READ_ONLY: &[&str] = &["origin", "aid", "setup_code", "setup_uri", "motion"];
