//! `/api/v1/homekit/...`: status, enable/disable, the setup QR code, cameras and pairings.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::{ApiState, error, qr_png};
use crate::servers::{PairingError, Removed};

pub(super) async fn status(State(state): State<Arc<ApiState>>) -> Response {
    let servers = &state.servers;
    let bridge = servers.bridge();
    let setup = bridge.setup_info();
    let (connections, verified) = bridge.connection_counts();
    let body = json!({
        "enabled": servers.enabled(),
        "running": servers.running(),
        "paired": setup.is_none(),
        "accessory_count": bridge.accessory_count(),
        "camera_count": servers.cameras().iter().filter(|c| c.config.enabled).count(),
        "active_streams": state.streams.active_streams(),
        "transcoder": state.transcoder,
        "bridge_name": state.bridge_name,
        "setup_code": setup.as_ref().map(|(code, _)| code.clone()),
        "setup_uri": setup.as_ref().map(|(_, uri)| uri.clone()),
        "port": bridge.local_addr().port(),
        "config_number": bridge.config_number(),
        "connections": connections,
        "verified_sessions": verified,
        "error": Json::Null,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

pub(super) async fn enable(State(state): State<Arc<ApiState>>) -> Response {
    if let Err(e) = state.servers.enable().await {
        tracing::error!(error = %e, "enable failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot start HomeKit: {e:#}"),
        );
    }
    let bridge = state.servers.bridge();
    let setup = bridge.setup_info();
    let qr = match setup.as_ref().map(|(_, uri)| crate::qr::png_data_uri(uri)) {
        Some(Ok(data)) => Some(data),
        Some(Err(e)) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"));
        }
        None => None,
    };
    let body = json!({
        "enabled": true,
        "running": state.servers.running(),
        "paired": setup.is_none(),
        "port": bridge.local_addr().port(),
        "setup_code": setup.as_ref().map(|(code, _)| code.clone()),
        "setup_uri": setup.as_ref().map(|(_, uri)| uri.clone()),
        "qr_code_data": qr,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

pub(super) async fn disable(State(state): State<Arc<ApiState>>) -> Response {
    if let Err(e) = state.servers.disable().await {
        tracing::error!(error = %e, "disable failed");
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot disable HomeKit: {e:#}"),
        );
    }
    let body = json!({"enabled": false, "running": state.servers.running()});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// The bridge's setup QR code as PNG, while unpaired.
pub(super) async fn qrcode(State(state): State<Arc<ApiState>>) -> Response {
    let Some((_, uri)) = state.servers.bridge().setup_info() else {
        return error(
            StatusCode::NOT_FOUND,
            "the bridge is paired: the setup code is only shown while unpaired \
             (remove the pairings to pair again)",
        );
    };
    qr_png(&uri)
}

pub(super) async fn pairings(State(state): State<Arc<ApiState>>) -> Response {
    let list: Vec<Json> = state
        .servers
        .pairings()
        .into_iter()
        .map(|p| json!({"id": p.id, "admin": p.admin, "server": p.server}))
        .collect();
    (StatusCode::OK, axum::Json(json!({"pairings": list}))).into_response()
}

pub(super) async fn remove_pairing(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Response {
    if id.is_empty() || id.len() > MAX_ID_TEXT {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("id: must be 1 to {MAX_ID_TEXT} characters"),
        );
    }
    removed_reply(state.servers.remove_pairing(&id).await)
}

pub(super) async fn reset_pairings(State(state): State<Arc<ApiState>>, body: Bytes) -> Response {
    let json: Json = match serde_json::from_slice(&body) {
        Ok(json) => json,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("body: not JSON ({e}); send {{\"confirm\": true}}"),
            );
        }
    };
    match json.get("confirm") {
        Some(Json::Bool(true)) => removed_reply(state.servers.reset_pairings().await),
        Some(_) => error(
            StatusCode::BAD_REQUEST,
            "confirm: must be true to remove every pairing",
        ),
        None => error(
            StatusCode::BAD_REQUEST,
            "confirm: missing; send {\"confirm\": true} to remove every pairing",
        ),
    }
}

fn removed_reply(result: Result<Removed, PairingError>) -> Response {
    match result {
        Ok(removed) => (
            StatusCode::OK,
            axum::Json(json!({"removed": removed.ids, "now_unpaired": removed.now_unpaired})),
        )
            .into_response(),
        Err(e @ PairingError::Unknown(_)) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ PairingError::Store(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Longest pairing identifier text accepted (36 bytes as `hex:` is 76 characters).
const MAX_ID_TEXT: usize = 80;
