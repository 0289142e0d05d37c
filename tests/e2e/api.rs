//! The admin API against the running binary: enable/disable (persisted), status shape, the QR
//! PNG, pairings, metrics, the token off loopback and request validation.

use std::net::TcpStream;
use std::time::Duration;

use hap_proto::controller::setup::SrpPadding;
use serde_json::Value;

use crate::controller::{Conn, Identity};
use crate::util::{Bridge, SETUP_CODE, TempDir};

/// Decodes a QR code PNG to its text.
fn decode_qr(png: &[u8]) -> String {
    let img = image::load_from_memory(png).unwrap().to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        img.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

fn decode_data_uri(uri: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = uri.strip_prefix("data:image/png;base64,").unwrap();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn hap_accepts(bridge: &Bridge) -> bool {
    TcpStream::connect_timeout(&bridge.hap, Duration::from_secs(2)).is_ok()
}

#[test]
fn status_enable_disable_persist_and_qr() {
    let tmp = TempDir::new("api-enable");
    let mut bridge = Bridge::start_in(&tmp.0, None);
    let (code, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(code, 200);
    assert_eq!(status["enabled"], true);
    assert_eq!(status["running"], true);
    assert_eq!(status["paired"], false);
    assert_eq!(status["setup_code"], SETUP_CODE);
    assert_eq!(status["camera_count"], 1);
    assert_eq!(status["accessory_count"], 2);
    assert_eq!(status["active_streams"], 0);
    assert_eq!(status["transcoder"]["engine"], "openh264");
    assert!(status["transcoder"]["available"].is_boolean());
    assert_eq!(status["port"], bridge.hap.port());
    let uri = status["setup_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("X-HM://"), "{uri}");

    let (code, png) = bridge.api_request("GET", "/api/v1/homekit/qrcode", None, None);
    assert_eq!(code, 200);
    assert_eq!(decode_qr(&png), uri);

    // Disabling closes open connections; enabling again serves on the same port even with
    // the closed connections in TIME_WAIT.
    let mut open = Conn::open(bridge.hap);
    assert_eq!(open.call("GET", "/accessories", None, b"").status, 470);
    let (code, _) = bridge.api_post("/api/v1/homekit/disable", "");
    assert_eq!(code, 200);
    assert!(open.closed_within(Duration::from_secs(3)));
    assert!(!hap_accepts(&bridge));
    assert_eq!(bridge.api_post("/api/v1/homekit/enable", "").0, 200);
    assert!(hap_accepts(&bridge), "same port after re-enable");

    let (code, off) = bridge.api_post("/api/v1/homekit/disable", "");
    assert_eq!(code, 200, "{off}");
    assert_eq!(off, serde_json::json!({"enabled": false, "running": false}));
    assert!(!hap_accepts(&bridge), "HAP stops listening when disabled");
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(
        (status["enabled"].clone(), status["running"].clone()),
        (false.into(), false.into())
    );

    // The flag persists: the next start leaves HAP off but serves the API.
    assert!(bridge.stop());
    let mut bridge = Bridge::start_in(&tmp.0, None);
    assert!(bridge.started_disabled);
    assert!(!hap_accepts(&bridge));
    let (code, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(code, 200);
    assert_eq!(status["enabled"], false);
    assert_eq!(status["running"], false);

    let (code, on) = bridge.api_post("/api/v1/homekit/enable", "");
    assert_eq!(code, 200, "{on}");
    assert_eq!(on["enabled"], true);
    assert_eq!(on["running"], true);
    assert_eq!(on["port"], bridge.hap.port());
    assert_eq!(on["setup_code"], SETUP_CODE);
    let png = decode_data_uri(on["qr_code_data"].as_str().unwrap());
    assert_eq!(decode_qr(&png), uri, "same identity and setup code");
    assert!(hap_accepts(&bridge));
    // Enabling twice is harmless.
    assert_eq!(bridge.api_post("/api/v1/homekit/enable", "").0, 200);

    // Pairing works after a disable/enable cycle.
    let me = Identity::new(7);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut s = Conn::open(bridge.hap);
    s.pair_verify(&me, &acc).unwrap();
    assert!(bridge.stop());
}

#[test]
fn pairings_list_remove_reset_and_metrics() {
    let bridge = Bridge::start();
    let (code, list) = bridge.api_get("/api/v1/homekit/pairings");
    assert_eq!(code, 200);
    assert_eq!(list["pairings"], serde_json::json!([]));

    let me = Identity::new(1);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let (_, list) = bridge.api_get("/api/v1/homekit/pairings");
    let pairings = list["pairings"].as_array().unwrap();
    assert_eq!(pairings.len(), 1);
    assert_eq!(pairings[0]["admin"], true);
    assert_eq!(pairings[0]["server"], "bridge");
    let id = pairings[0]["id"].as_str().unwrap().to_owned();

    // Paired: no setup code, no QR.
    let (code, body) = bridge.api_get("/api/v1/homekit/qrcode");
    assert_eq!(code, 404);
    assert!(body["error"].as_str().unwrap().contains("paired"), "{body}");
    let (_, on) = bridge.api_post("/api/v1/homekit/enable", "");
    assert!(
        on["setup_code"].is_null() && on["qr_code_data"].is_null(),
        "{on}"
    );

    let mut s = Conn::open(bridge.hap);
    s.pair_verify(&me, &acc).unwrap();
    let (code, text) = bridge.api_request("GET", "/metrics", None, None);
    assert_eq!(code, 200);
    let text = String::from_utf8(text).unwrap();
    for line in [
        "hap_bridge_pairings{server=\"bridge\"} 1",
        "hap_bridge_verified_sessions{server=\"bridge\"} 1",
        "hap_bridge_accessories{server=\"bridge\"} 2",
        "hap_bridge_up{server=\"bridge\"} 1",
        "hap_bridge_snapshots_served_total{server=\"bridge\"} 0",
        "# TYPE hap_bridge_connections gauge",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");

    // Unknown id: 404 naming it.
    let (code, body) = bridge.api_request("DELETE", "/api/v1/homekit/pairings/nobody", None, None);
    assert_eq!(code, 404);
    assert!(String::from_utf8_lossy(&body).contains("nobody"));

    // Removing the only (admin) pairing closes its session at once and unpairs.
    let (code, body) = bridge.api_request(
        "DELETE",
        &format!("/api/v1/homekit/pairings/{id}"),
        None,
        None,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["removed"], serde_json::json!([id]));
    assert_eq!(body["now_unpaired"], serde_json::json!(["bridge"]));
    assert!(s.closed_within(Duration::from_secs(3)), "session closed");
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(status["paired"], false);
    assert_eq!(status["setup_code"], SETUP_CODE);

    // Pair again, then reset: the body must confirm.
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut s = Conn::open(bridge.hap);
    s.pair_verify(&me, &acc).unwrap();
    for bad in ["", "{}", "{\"confirm\": false}", "{\"confirm\": \"yes\"}"] {
        let (code, body) = bridge.api_post("/api/v1/homekit/pairings/reset", bad);
        assert_eq!(code, 400, "{bad}");
        assert!(
            body["error"].as_str().unwrap().contains("confirm") || bad.is_empty(),
            "{bad}: {body}"
        );
    }
    let (code, body) = bridge.api_post("/api/v1/homekit/pairings/reset", "{\"confirm\": true}");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["removed"].as_array().unwrap().len(), 1);
    assert!(s.closed_within(Duration::from_secs(3)));
    let (_, list) = bridge.api_get("/api/v1/homekit/pairings");
    assert_eq!(list["pairings"], serde_json::json!([]));
}

#[test]
fn token_required_off_loopback_and_bad_requests() {
    let tmp = TempDir::new("api-token");
    let mut bridge = Bridge::start_with(&tmp.0, None, "0.0.0.0:0");
    let token = bridge
        .printed_token
        .clone()
        .expect("token printed at first start");
    assert_eq!(token.len(), 64);
    let path = "/api/v1/homekit/status";
    for given in [None, Some("wrong"), Some(&token[..63])] {
        let (code, body) = bridge.api_request("GET", path, None, given);
        assert_eq!(code, 401, "{given:?}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    }
    assert_eq!(bridge.api_request("GET", "/metrics", None, None).0, 401);
    assert_eq!(bridge.api_request("GET", path, None, Some(&token)).0, 200);
    // The page needs no token (it holds no data).
    let (code, page) = bridge.api_request("GET", "/", None, None);
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&page).contains("<html"));

    // Oversized and invalid bodies.
    let big = format!("{{\"confirm\": true, \"pad\": \"{}\"}}", "x".repeat(20_000));
    let (code, body) = bridge.api_request(
        "POST",
        "/api/v1/homekit/pairings/reset",
        Some(&big),
        Some(&token),
    );
    assert_eq!(code, 413, "{}", String::from_utf8_lossy(&body));
    let (code, body) = bridge.api_request(
        "POST",
        "/api/v1/homekit/cameras/demo/motion",
        Some("{\"detected\": 1}"),
        Some(&token),
    );
    assert_eq!(code, 422);
    assert!(String::from_utf8_lossy(&body).contains("detected"));
    let (code, body) = bridge.api_request("POST", "/api/v1/homekit/status", None, Some(&token));
    assert_eq!(code, 405);
    assert!(String::from_utf8_lossy(&body).contains("\"error\""));

    // The generated token is kept and not printed again.
    assert!(bridge.stop());
    let bridge = Bridge::start_with(&tmp.0, None, "0.0.0.0:0");
    assert!(bridge.printed_token.is_none());
    assert_eq!(bridge.api_request("GET", path, None, Some(&token)).0, 200);
}

/// Runs the binary with `args`: (success, stdout, stderr).
fn cli(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hap-bridge"))
        .args(args)
        .env_remove("HAP_BRIDGE_API_TOKEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_qr_and_pairings() {
    let tmp = TempDir::new("api-cli");
    let mut bridge = Bridge::start_with(&tmp.0, None, "0.0.0.0:0");
    let token = bridge.printed_token.clone().unwrap();
    let api = format!("0.0.0.0:{}", bridge.api.port());
    let state = bridge.data_dir.join("state");
    let state = state.to_str().unwrap();

    // Running: the store is locked, qr asks the API.
    let (ok, out, err) = cli(&[
        "qr",
        "--data-dir",
        state,
        "--api-addr",
        &api,
        "--api-token",
        &token,
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("the bridge is running"), "{err}");
    assert!(out.contains(&format!("Setup code: {SETUP_CODE}")), "{out}");
    assert!(out.contains("X-HM://"), "{out}");

    let (ok, _, err) = cli(&["pairings", "list", "--api-addr", &api]);
    assert!(!ok);
    assert!(err.contains("--api-token"), "{err}");
    let me = Identity::new(3);
    Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let (ok, out, err) = cli(&[
        "pairings",
        "list",
        "--api-addr",
        &api,
        "--api-token",
        &token,
    ]);
    assert!(ok, "{err}");
    let line = out.lines().next().unwrap();
    assert!(line.ends_with("\tadmin\tbridge"), "{out}");
    let id = line.split('\t').next().unwrap().to_owned();
    let (ok, _, err) = cli(&[
        "pairings",
        "reset",
        "--api-addr",
        &api,
        "--api-token",
        &token,
    ]);
    assert!(!ok && err.contains("--yes"), "{err}");
    let (ok, out, err) = cli(&[
        "pairings",
        "remove",
        &id,
        "--api-addr",
        &api,
        "--api-token",
        &token,
    ]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("removed {id}")), "{out}");
    assert!(out.contains("bridge is unpaired now"), "{out}");
    let (ok, out, _) = cli(&[
        "pairings",
        "list",
        "--api-addr",
        &api,
        "--api-token",
        &token,
    ]);
    assert!(ok && out.contains("no pairings"), "{out}");

    // Stopped: qr reads the store; pairings says the bridge is not running.
    assert!(bridge.stop());
    let (ok, out, err) = cli(&["qr", "--data-dir", state]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("Setup code: {SETUP_CODE}")), "{out}");
    let (ok, _, err) = cli(&["pairings", "list", "--api-addr", &api]);
    assert!(!ok);
    assert!(err.contains("not running"), "{err}");
}

/// Sends `head` (request line and headers, without the final blank line): the status code.
fn raw_status(addr: std::net::SocketAddr, head: &str) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{head}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap()
}

#[test]
fn browser_cross_origin_and_dns_rebinding_refused() {
    let bridge = Bridge::start();
    let addr = bridge.api;
    let port = addr.port();
    let post = "POST /api/v1/homekit/disable HTTP/1.1";
    // A page elsewhere making the browser POST (a simple request, no preflight).
    assert_eq!(
        raw_status(
            addr,
            &format!("{post}\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example")
        ),
        403
    );
    // DNS rebinding: the browser thinks it talks to evil.example.
    assert_eq!(
        raw_status(
            addr,
            &format!("{post}\r\nHost: evil.example:{port}\r\nOrigin: http://evil.example:{port}")
        ),
        403
    );
    assert_eq!(
        raw_status(
            addr,
            &format!("GET /api/v1/homekit/status HTTP/1.1\r\nHost: evil.example:{port}")
        ),
        403
    );
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(status["running"], true, "nothing was disabled");
    // The bridge's own page (same origin) and curl (no Origin) are fine.
    assert_eq!(
        raw_status(
            addr,
            &format!(
                "GET /api/v1/homekit/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}"
            )
        ),
        200
    );
    assert_eq!(
        raw_status(
            addr,
            &format!("GET /api/v1/homekit/status HTTP/1.1\r\nHost: localhost:{port}")
        ),
        200
    );
}

#[test]
fn removing_the_last_admin_removes_every_pairing() {
    use hap_proto::controller::verify::{add_pairing_request, parse_pairings_status};
    use hap_proto::pairing::Permissions;

    use crate::controller::TLV;

    let bridge = Bridge::start();
    let admin = Identity::new(10);
    let user = Identity::new(11);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&admin, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut a = Conn::open(bridge.hap);
    a.pair_verify(&admin, &acc).unwrap();
    let add = |a: &mut Conn| {
        let body = add_pairing_request(
            &user.id,
            &user.key.verifying_key().to_bytes(),
            Permissions::User,
        );
        let m = a.call("POST", "/pairings", TLV, &body);
        assert_eq!(m.status, 200);
        parse_pairings_status(&m.body).unwrap();
    };
    add(&mut a);
    let user_id = String::from_utf8(user.id.clone()).unwrap();
    let admin_id = String::from_utf8(admin.id.clone()).unwrap();
    let (_, list) = bridge.api_get("/api/v1/homekit/pairings");
    assert_eq!(
        list["pairings"],
        serde_json::json!([
            {"id": admin_id, "admin": true, "server": "bridge"},
            {"id": user_id, "admin": false, "server": "bridge"},
        ])
    );

    // Removing the user leaves the admin and its session.
    let (code, body) = bridge.api_request(
        "DELETE",
        &format!("/api/v1/homekit/pairings/{user_id}"),
        None,
        None,
    );
    assert_eq!(code, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["removed"], serde_json::json!([user_id]));
    assert_eq!(body["now_unpaired"], serde_json::json!([]));
    assert!(!a.closed_within(Duration::from_millis(300)));

    // With the user back, removing the only admin removes the user too (HAP §2.8).
    add(&mut a);
    let mut u = Conn::open(bridge.hap);
    u.pair_verify(&user, &acc).unwrap();
    let (code, body) = bridge.api_request(
        "DELETE",
        &format!("/api/v1/homekit/pairings/{admin_id}"),
        None,
        None,
    );
    assert_eq!(code, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["removed"], serde_json::json!([admin_id, user_id]));
    assert!(a.closed_within(Duration::from_secs(3)));
    assert!(u.closed_within(Duration::from_secs(3)));
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(status["paired"], false);
}
