//! `GET /api/v1/homekit/cameras/{id}/motion/picture`: the motion detector's last analysed picture
//! as a PNG (grey; outside the zones darkened, zone borders yellow, the changed area red), and
//! the `motion` object of a camera's JSON.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{ApiState, error};

/// `GET /cameras/{id}/motion/picture`.
pub(super) async fn picture(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Response {
    let Some(cam) = state.streams.camera(&id) else {
        return error(StatusCode::NOT_FOUND, &format!("no enabled camera {id}"));
    };
    let Some(rgb) = cam.motion_picture() else {
        let why = if cam.motion_status().is_some() {
            "no picture analysed yet"
        } else {
            "motion detection is off for this camera"
        };
        return error(StatusCode::NOT_FOUND, &format!("camera {id}: {why}"));
    };
    let (Ok(w), Ok(h)) = (u32::try_from(rgb.width), u32::try_from(rgb.height)) else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "picture too large");
    };
    let Some(image) = image::RgbImage::from_raw(w, h, rgb.data) else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the detector's picture has the wrong size",
        );
    };
    let mut png = std::io::Cursor::new(Vec::new());
    if let Err(e) = image.write_to(&mut png, image::ImageFormat::Png) {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode the PNG: {e}"),
        );
    }
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        png.into_inner(),
    )
        .into_response()
}

/// A camera's `motion` object: Motion Detected now (`null` without a motion sensor or while
/// the camera is not exposed) and the detection's figures (`null` when it is off).
pub(super) fn view(state: &ApiState, id: &str) -> Json {
    let detected = state.sensors.motion_state(id).ok().map(|s| s.active);
    let detection = state
        .streams
        .camera(id)
        .and_then(|c| c.motion_status())
        .map(|s| serde_json::to_value(s).unwrap_or(Json::Null));
    json!({"detected": detected, "detection": detection})
}
