//! The admin API against the running binary: enable/disable (persisted), status shape, the QR
//! PNG, pairings, metrics, the token off loopback and request validation, cameras added, changed
//! and removed at run time (reflected in `/accessories` and `c#`, AIDs stable, passwords masked).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use hap_proto::controller::setup::SrpPadding;
use serde_json::Value;

use crate::controller::{Conn, Identity, TLV};
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
    // Built on this machine: with openh264's assembly exactly when nasm is here (tests/run.sh
    // installs it), and the start-up log says which.
    let nasm = std::process::Command::new("nasm")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert_eq!(status["transcoder"]["assembly"], nasm, "{status}");
    assert!(
        bridge.output().contains("transcoder: openh264"),
        "{}",
        bridge.output()
    );
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
    // The HTTP layer's own refusals are JSON too: a chunked body over the limit (no
    // Content-Length to check up front) and a query string that does not parse.
    let mut s = TcpStream::connect_timeout(&bridge.api, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = "x".repeat(20_000);
    write!(
        s,
        "POST /api/v1/homekit/pairings/reset HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \
         {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\
         \r\n0\r\n\r\n",
        chunk.len()
    )
    .unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("application/json"), "{reply}");
    assert!(reply.contains("{\"error\":"), "{reply}");
    let (code, body) = bridge.api_request(
        "GET",
        "/api/v1/homekit/cameras/demo/snapshot?width=abc",
        None,
        Some(&token),
    );
    assert_eq!(code, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["error"].as_str().unwrap().contains("width"), "{body}");
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
fn raw_status(addr: SocketAddr, head: &str) -> u16 {
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

/// Sends `head` (request line and headers, without the final blank line): the status code and
/// the response headers, names in lowercase.
fn raw_head(addr: SocketAddr, head: &str) -> (u16, Vec<(String, String)>) {
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
    let head = text.split("\r\n\r\n").next().unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

#[test]
fn no_answer_can_be_framed() {
    let bridge = Bridge::start();
    let addr = bridge.api;
    let host = format!("Host: 127.0.0.1:{}", addr.port());
    let requests = [
        // The page, an API reply, the router's 404 and 405, the auth layer's refusal.
        (format!("GET / HTTP/1.1\r\n{host}"), 200),
        (
            format!("GET /api/v1/homekit/status HTTP/1.1\r\n{host}"),
            200,
        ),
        (format!("GET /api/v1/homekit/nope HTTP/1.1\r\n{host}"), 404),
        (
            format!("PATCH /api/v1/homekit/status HTTP/1.1\r\n{host}"),
            405,
        ),
        (
            format!(
                "POST /api/v1/homekit/disable HTTP/1.1\r\n{host}\r\nOrigin: http://evil.example"
            ),
            403,
        ),
    ];
    for (request, want) in requests {
        let (status, headers) = raw_head(addr, &request);
        assert_eq!(status, want, "{request}");
        let get = |name: &str| -> Vec<&str> {
            headers
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("x-frame-options"), ["DENY"], "{request}: {headers:?}");
        let csp = get("content-security-policy");
        assert_eq!(csp.len(), 1, "{request}: {headers:?}");
        let directives: Vec<&str> = csp[0].split(';').map(str::trim).collect();
        assert!(
            directives.contains(&"frame-ancestors 'none'"),
            "{request}: {headers:?}"
        );
    }
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(status["running"], true, "nothing was disabled");
}

#[test]
fn removing_the_last_admin_removes_every_pairing() {
    use hap_proto::controller::verify::{add_pairing_request, parse_pairings_status};
    use hap_proto::pairing::Permissions;

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

// --- cameras at run time -----------------------------------------------------------------------

const CAMERAS: &str = "/api/v1/homekit/cameras";

/// A request with a JSON body (or none): (status, JSON body or `Null`).
fn call(bridge: &Bridge, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let text = body.map(Value::to_string);
    let (code, raw) = bridge.api_request(method, path, text.as_deref(), None);
    (code, serde_json::from_slice(&raw).unwrap_or(Value::Null))
}

/// The accessories' AIDs in a `/accessories` reply.
fn aids(db: &Value) -> Vec<u64> {
    db["accessories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["aid"].as_u64().unwrap())
        .collect()
}

fn config_number(bridge: &Bridge) -> u64 {
    bridge.status()["config_number"].as_u64().unwrap()
}

/// `runtime_cameras.json` of one camera, read from the stopped bridge's state store.
fn stored_camera(state_dir: &std::path::Path, id: &str) -> String {
    let conn = rusqlite::Connection::open(state_dir.join("state.sqlite3")).unwrap();
    conn.query_row(
        "SELECT json FROM runtime_cameras WHERE id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn cameras_crud_reflected_in_accessories_and_config_number() {
    use crate::pairing::{event_value, find_char, motion_char, subscribe, trigger_motion};

    let tmp = TempDir::new("api-cameras");
    let mut bridge = Bridge::start_in(&tmp.0, None);
    let me = Identity::new(30);
    let acc = Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(&me, &acc).unwrap();
    let (_, db) = c.json("GET", "/accessories", None);
    assert_eq!(aids(&db), [1, 2]);
    assert_eq!(config_number(&bridge), 1);
    let (aid, iid) = motion_char(&mut c);
    subscribe(&mut c, aid, iid);

    let (code, list) = call(&bridge, "GET", CAMERAS, None);
    assert_eq!(code, 200);
    let demo = &list["cameras"][0];
    assert_eq!(
        (&demo["id"], &demo["origin"], &demo["aid"], &demo["source"]),
        (
            &Value::from("demo"),
            &Value::from("config"),
            &Value::from(2),
            &Value::from("test-pattern")
        )
    );

    // Add: a new accessory with a new AID on the open connection, c# bumped, password masked.
    let garage = serde_json::json!({
        "id": "garage", "name": "Garage", "source": "rtsp://admin:s3cret@192.0.2.7/live",
        "sensors": ["motion", "occupancy"], "max_streams": 3,
    });
    let (code, body) = call(&bridge, "POST", CAMERAS, Some(&garage));
    assert_eq!(code, 201, "{body}");
    assert!(!body.to_string().contains("s3cret"), "{body}");
    assert_eq!(body["source"], "rtsp://admin:***@192.0.2.7/live");
    assert_eq!(body["origin"], "api");
    assert_eq!(body["aid"], 3);
    assert_eq!(body["mode"], "bridged");
    assert_eq!(body["enabled"], true);
    assert_eq!(body["max_streams"], 3);
    assert_eq!(body["sensors"], serde_json::json!(["motion", "occupancy"]));
    let (_, db) = c.json("GET", "/accessories", None);
    assert_eq!(aids(&db), [1, 2, 3]);
    assert!(find_char(&db, 3, "86", "71").is_some(), "occupancy sensor");
    assert_eq!(config_number(&bridge), 2);
    assert_eq!(bridge.status()["camera_count"], 2);
    let (code, all) = call(&bridge, "GET", CAMERAS, None);
    assert_eq!(code, 200);
    assert!(!all.to_string().contains("s3cret"), "{all}");
    // Its sensors work at once.
    let (code, body) = call(
        &bridge,
        "POST",
        &format!("{CAMERAS}/garage/occupancy"),
        Some(&serde_json::json!({"detected": true})),
    );
    assert_eq!(code, 200, "{body}");

    // The existing connection and its subscription survived the swap.
    trigger_motion(&bridge, true);
    let event = c.next_message(Duration::from_secs(3), true).expect("EVENT");
    assert_eq!(event_value(&event, aid, iid), Some(Value::Bool(true)));

    // Change: a name alone is a value (c# stays); dropping a sensor changes the shape. The
    // masked URL sent back keeps the stored password.
    let (code, body) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/garage"),
        Some(
            &serde_json::json!({"name": "Garage Door", "source": "rtsp://admin:***@192.0.2.7/live"}),
        ),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["name"], "Garage Door");
    assert_eq!(body["aid"], 3);
    assert_eq!(
        config_number(&bridge),
        2,
        "a name is a value, not the shape"
    );
    let (code, body) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/garage"),
        Some(&serde_json::json!({"sensors": ["motion"]})),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["max_streams"], 3, "fields not sent are kept");
    let (_, db) = c.json("GET", "/accessories", None);
    assert_eq!(aids(&db), [1, 2, 3], "AIDs stay");
    assert!(find_char(&db, 3, "86", "71").is_none());
    assert!(find_char(&db, 3, "85", "22").is_some());
    assert_eq!(config_number(&bridge), 3);

    // Another one, then remove the first: AIDs of the others stay, removed ones are not reused.
    let porch = serde_json::json!({"id": "porch", "name": "Porch", "source": "test-pattern"});
    assert_eq!(call(&bridge, "POST", CAMERAS, Some(&porch)).0, 201);
    // Its media runtime came with it: a snapshot of the test pattern.
    let snapshot = format!("{CAMERAS}/porch/snapshot?width=320&height=180");
    let (code, jpeg) = bridge.api_request("GET", &snapshot, None, None);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&jpeg));
    assert!(
        jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]) && jpeg.len() > 1000,
        "not a JPEG ({} bytes)",
        jpeg.len()
    );
    let (code, body) = call(&bridge, "DELETE", &format!("{CAMERAS}/garage"), None);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["removed"], "garage");
    let (_, db) = c.json("GET", "/accessories", None);
    assert_eq!(aids(&db), [1, 2, 4]);
    assert_eq!(config_number(&bridge), 5);
    let (code, body) = call(&bridge, "POST", CAMERAS, Some(&garage));
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body["aid"], 5,
        "a removed camera's AID is not handed out again"
    );
    // Disabled: not exposed, still listed, AID kept for when it comes back.
    let (code, body) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/porch"),
        Some(&serde_json::json!({"enabled": false})),
    );
    assert_eq!(code, 200, "{body}");
    assert!(body["aid"].is_null(), "{body}");
    assert_eq!(
        bridge.api_request("GET", &snapshot, None, None).0,
        404,
        "a disabled camera has no media runtime"
    );
    let (_, db) = c.json("GET", "/accessories", None);
    assert_eq!(aids(&db), [1, 2, 5]);
    let (_, body) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/porch"),
        Some(&serde_json::json!({"enabled": true})),
    );
    assert_eq!(body["aid"], 4);
    let number = config_number(&bridge);

    // Configuration-file cameras are read-only.
    let (code, body) = call(&bridge, "DELETE", &format!("{CAMERAS}/demo"), None);
    assert_eq!(code, 409);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("configuration file"),
        "{body}"
    );

    // Persisted: the same cameras, AIDs and c# after a restart; the password is stored whole.
    drop(c);
    assert!(bridge.stop());
    let garage_json = stored_camera(&tmp.0.join("state"), "garage");
    assert!(
        garage_json.contains("rtsp://admin:s3cret@192.0.2.7/live"),
        "{garage_json}"
    );
    let bridge = Bridge::start_in(&tmp.0, None);
    let (_, list) = call(&bridge, "GET", CAMERAS, None);
    let ids: Vec<(&str, u64)> = list["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["aid"].as_u64().unwrap()))
        .collect();
    assert_eq!(ids, [("demo", 2), ("porch", 4), ("garage", 5)]);
    assert_eq!(config_number(&bridge), number, "no bump without a change");
    let mut c = Conn::open(bridge.hap);
    c.pair_verify(&me, &acc).unwrap();
    let (_, db) = c.json("GET", "/accessories", None);
    assert_eq!(aids(&db), [1, 2, 4, 5]);
}

#[test]
fn bad_camera_bodies_get_4xx_naming_the_field() {
    let bridge = Bridge::start();
    let ok = serde_json::json!({"id": "cam1", "name": "Cam", "source": "test-pattern"});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    let post = |body: &Value| call(&bridge, "POST", CAMERAS, Some(body));
    for (body, code, field) in [
        (with("id", "Bad Id".into()), 422, "id:"),
        (with("id", 7.into()), 422, "id: must be a string"),
        (with("name", "".into()), 422, "name:"),
        (with("source", "http://x/y".into()), 422, "source:"),
        (with("substream", "test-pattern".into()), 422, "substream:"),
        (with("max_streams", 0.into()), 422, "max_streams:"),
        (with("max_streams", "two".into()), 422, "max_streams:"),
        (with("mode", "floating".into()), 422, "mode:"),
        (with("port", 5000.into()), 422, "port:"),
        (with("enabled", "yes".into()), 422, "enabled:"),
        (
            with("sensors", serde_json::json!(["smoke"])),
            422,
            "sensors[0]:",
        ),
        (with("colour", "red".into()), 422, "colour: unknown field"),
        (
            serde_json::json!({"id": "x", "name": "X"}),
            422,
            "source: missing",
        ),
        (
            serde_json::json!({"name": "X", "source": "test-pattern"}),
            422,
            "id: missing",
        ),
        (serde_json::json!([1, 2]), 422, "body:"),
    ] {
        let (got, reply) = post(&body);
        assert_eq!(got, code, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(field),
            "{body}: {message:?} does not start with {field:?}"
        );
    }
    let (code, reply) = call_raw(&bridge, "POST", CAMERAS, "{not json");
    assert_eq!(code, 400);
    assert!(reply.contains("body: not JSON"), "{reply}");

    assert_eq!(post(&ok).0, 201);
    let (code, reply) = post(&ok);
    assert_eq!(code, 409);
    assert!(
        reply["error"].as_str().unwrap().starts_with("id:"),
        "{reply}"
    );
    let (code, reply) =
        post(&serde_json::json!({"id": "demo", "name": "D", "source": "test-pattern"}));
    assert_eq!(code, 409, "{reply}");
    let standalone = |id: &str, port: u16| serde_json::json!({"id": id, "name": id, "source": "test-pattern", "mode": "standalone", "port": port});
    let (code, reply) = post(&standalone("s1", bridge.hap.port()));
    assert_eq!(code, 409, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().starts_with("port:"),
        "{reply}"
    );

    // A port another process holds: refused, nothing changed.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (code, reply) = post(&standalone("s2", taken.local_addr().unwrap().port()));
    assert_eq!(code, 500, "{reply}");
    let message = reply["error"].as_str().unwrap();
    assert!(
        message.contains("s2") && message.contains("cannot listen"),
        "{message}"
    );
    drop(taken);

    let put = |id: &str, body: Value| call(&bridge, "PUT", &format!("{CAMERAS}/{id}"), Some(&body));
    let (code, reply) = put("cam1", serde_json::json!({"id": "cam2"}));
    assert_eq!(code, 422);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("id: cannot change"),
        "{reply}"
    );
    let (code, reply) = put("cam1", serde_json::json!({"max_streams": 99}));
    assert_eq!(code, 422);
    assert!(
        reply["error"].as_str().unwrap().starts_with("max_streams:"),
        "{reply}"
    );
    let (code, reply) = put("nope", serde_json::json!({"name": "N"}));
    assert_eq!(code, 404);
    assert!(reply["error"].as_str().unwrap().contains("nope"), "{reply}");
    assert_eq!(
        call(&bridge, "DELETE", &format!("{CAMERAS}/nope"), None).0,
        404
    );
    // Nothing half-applied: only the one good camera was added.
    let (_, list) = call(&bridge, "GET", CAMERAS, None);
    assert_eq!(list["cameras"].as_array().unwrap().len(), 2);
    assert_eq!(config_number(&bridge), 2);
}

/// The old service's name for the source (`rtsp_url`) is accepted, through the configuration
/// file's parser, and a camera's own `GET` body can be sent back as it is.
#[test]
fn the_api_reads_cameras_with_the_configuration_files_parser() {
    let bridge = Bridge::start();
    let (code, reply) = call(
        &bridge,
        "POST",
        CAMERAS,
        Some(&serde_json::json!({"id": "old-style", "name": "Old",
            "rtsp_url": "rtsp://admin:pw@192.0.2.7/live", "sensors": ["doorbell"]})),
    );
    assert_eq!(code, 201, "{reply}");
    assert_eq!(reply["source"], "rtsp://admin:***@192.0.2.7/live");
    assert_eq!(reply["sensors"], serde_json::json!(["doorbell"]));
    let (code, again) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/old-style"),
        Some(&reply),
    );
    assert_eq!(code, 200, "{again}");
    assert_eq!(again, reply, "what GET shows can be sent back unchanged");
    let (code, both) = call(
        &bridge,
        "POST",
        CAMERAS,
        Some(&serde_json::json!({"id": "two", "name": "Two",
            "rtsp_url": "test-pattern", "source": "test-pattern"})),
    );
    assert_eq!(code, 422, "{both}");
}

fn call_raw(bridge: &Bridge, method: &str, path: &str, body: &str) -> (u16, String) {
    let (code, raw) = bridge.api_request(method, path, Some(body), None);
    (code, String::from_utf8_lossy(&raw).into_owned())
}

#[test]
fn a_standalone_camera_added_at_run_time_is_its_own_server() {
    let bridge = Bridge::start();
    let body = serde_json::json!({
        "id": "porch", "name": "Porch", "source": "test-pattern", "mode": "standalone",
        "sensors": ["motion", "doorbell"],
    });
    let (code, reply) = call(&bridge, "POST", CAMERAS, Some(&body));
    assert_eq!(code, 201, "{reply}");
    assert_eq!(reply["aid"], 1);
    let (addr, code) = bridge.standalone_server("porch", "Porch", 0);
    assert_eq!(
        reply["setup_code"],
        code.as_str(),
        "its own code while unpaired"
    );
    let uri = reply["setup_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("X-HM://"));
    let (status, png) = bridge.api_request("GET", &format!("{CAMERAS}/porch/qrcode"), None, None);
    assert_eq!(status, 200);
    assert_eq!(decode_qr(&png), uri, "its own QR code");
    let (status, body) = call(&bridge, "GET", &format!("{CAMERAS}/demo/qrcode"), None);
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("bridged"),
        "{body}"
    );
    assert_ne!(addr, bridge.hap);
    let me = Identity::new(31);
    let cam = Conn::open(addr)
        .pair_setup(&me, &code, SrpPadding::Strip)
        .unwrap();
    let mut c = Conn::open(addr);
    c.pair_verify(&me, &cam).unwrap();
    let (_, db) = c.json("GET", "/accessories", None);
    assert_eq!(aids(&db), [1]);
    assert!(
        crate::pairing::find_char(&db, 1, "121", "73").is_some(),
        "doorbell"
    );
    assert_eq!(bridge.status()["accessory_count"], 2, "not on the bridge");
    let (_, list) = bridge.api_get("/api/v1/homekit/pairings");
    assert_eq!(list["pairings"][0]["server"], "camera:porch");
    let (_, shown) = call(&bridge, "GET", &format!("{CAMERAS}/porch"), None);
    assert!(shown["setup_code"].is_null(), "paired: no code ({shown})");
    let (status, body) = call(&bridge, "GET", &format!("{CAMERAS}/porch/qrcode"), None);
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("paired"), "{body}");
    // Its sensors are wired.
    let (code, reply) = call(&bridge, "POST", &format!("{CAMERAS}/porch/doorbell"), None);
    assert_eq!(code, 200, "{reply}");

    // A sensor change swaps its database in place: the session stays.
    let (code, reply) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/porch"),
        Some(&serde_json::json!({"sensors": ["motion", "doorbell", "occupancy"]})),
    );
    assert_eq!(code, 200, "{reply}");
    let (status, db) = c.json("GET", "/accessories", None);
    assert_eq!(status, 200);
    assert!(crate::pairing::find_char(&db, 1, "86", "71").is_some());

    // Disabled: its server stops. Enabled again: same identity and pairing.
    let lines_before = bridge.output().lines().count();
    let (code, _) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/porch"),
        Some(&serde_json::json!({"enabled": false})),
    );
    assert_eq!(code, 200);
    assert!(c.closed_within(Duration::from_secs(3)), "session closed");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
    let (code, _) = call(
        &bridge,
        "PUT",
        &format!("{CAMERAS}/porch"),
        Some(&serde_json::json!({"enabled": true})),
    );
    assert_eq!(code, 200);
    let (addr, _) = bridge.standalone_server("porch", "Porch", lines_before);
    let mut c = Conn::open(addr);
    c.pair_verify(&me, &cam).unwrap();

    // Removed: server gone, identity and pairings forgotten.
    let (code, _) = call(&bridge, "DELETE", &format!("{CAMERAS}/porch"), None);
    assert_eq!(code, 200);
    assert!(c.closed_within(Duration::from_secs(3)));
    let (_, list) = bridge.api_get("/api/v1/homekit/pairings");
    assert_eq!(list["pairings"], serde_json::json!([]));
}

#[test]
fn pairings_of_a_switched_off_standalone_camera_are_listed_removed_and_reset() {
    let bridge = Bridge::start();
    let porch = |enabled: bool| Some(serde_json::json!({"enabled": enabled}));
    let body = serde_json::json!({
        "id": "porch", "name": "Porch", "source": "test-pattern", "mode": "standalone",
    });
    assert_eq!(call(&bridge, "POST", CAMERAS, Some(&body)).0, 201);
    let (addr, code) = bridge.standalone_server("porch", "Porch", 0);
    let (admin, user) = (Identity::new(41), Identity::new(42));
    let cam = Conn::open(addr)
        .pair_setup(&admin, &code, SrpPadding::Strip)
        .unwrap();
    let mut c = Conn::open(addr);
    c.pair_verify(&admin, &cam).unwrap();
    let add = hap_proto::controller::verify::add_pairing_request(
        &user.id,
        user.key.verifying_key().as_bytes(),
        hap_proto::pairing::Permissions::User,
    );
    assert_eq!(c.call("POST", "/pairings", TLV, &add).status, 200);
    let porch_url = format!("{CAMERAS}/porch");
    assert_eq!(
        call(&bridge, "PUT", &porch_url, porch(false).as_ref()).0,
        200
    );

    // Switched off, its pairings are still listed and can be removed.
    let (_, list) = bridge.api_get("/api/v1/homekit/pairings");
    let ids = |list: &Value, server: &str| -> Vec<String> {
        list["pairings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["server"] == server)
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let text = |i: &Identity| String::from_utf8(i.id.clone()).unwrap();
    assert_eq!(ids(&list, "camera:porch"), [text(&admin), text(&user)]);
    let (code, reply) = bridge.api_request(
        "DELETE",
        &format!("/api/v1/homekit/pairings/{}", text(&user)),
        None,
        None,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&reply));
    let (_, list) = bridge.api_get("/api/v1/homekit/pairings");
    assert_eq!(ids(&list, "camera:porch"), [text(&admin)]);

    // Reset reaches it too: switched on again, it is unpaired.
    let (code, reply) = bridge.api_post("/api/v1/homekit/pairings/reset", "{\"confirm\": true}");
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["removed"], serde_json::json!([text(&admin)]));
    assert_eq!(reply["now_unpaired"], serde_json::json!(["camera:porch"]));
    let lines_before = bridge.output().lines().count();
    assert_eq!(
        call(&bridge, "PUT", &porch_url, porch(true).as_ref()).0,
        200
    );
    let (addr, _) = bridge.standalone_server("porch", "Porch", lines_before);
    let (_, shown) = call(&bridge, "GET", &porch_url, None);
    assert!(
        shown["setup_code"].is_string(),
        "unpaired: its code is shown ({shown})"
    );
    assert!(Conn::open(addr).pair_verify(&admin, &cam).is_err());
}

/// The `c#` the bridge at `port` announces over mDNS on loopback, once it equals `want`.
fn announced_config_number(
    rx: &mdns_sd::Receiver<mdns_sd::ServiceEvent>,
    port: u16,
    want: &str,
) -> Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(mdns_sd::ServiceEvent::ServiceResolved(s)) if s.port == port => {
                let c = s
                    .txt_properties
                    .get_property_val_str("c#")
                    .map(str::to_owned);
                if c.as_deref() == Some(want) {
                    return Ok(());
                }
                seen.push(c);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Err(format!(
        "c#={want} not announced for port {port}; seen {seen:?}"
    ))
}

#[test]
fn a_camera_added_at_run_time_is_announced_with_the_new_config_number() {
    use mdns_sd::{IfKind, ServiceDaemon};

    let bridge = Bridge::start();
    let browser = ServiceDaemon::new().unwrap();
    browser.disable_interface(IfKind::All).unwrap();
    browser
        .enable_interface(IfKind::Name("lo".to_owned()))
        .unwrap();
    let rx = browser.browse(hap_proto::mdns::SERVICE_TYPE).unwrap();
    let port = bridge.hap.port();
    announced_config_number(&rx, port, "1").unwrap();
    let cam = serde_json::json!({"id": "garage", "name": "Garage", "source": "test-pattern"});
    assert_eq!(call(&bridge, "POST", CAMERAS, Some(&cam)).0, 201);
    let result = announced_config_number(&rx, port, "2");
    let _ = browser.shutdown();
    result.unwrap();
}

#[test]
fn cli_qr_of_a_standalone_camera() {
    let tmp = TempDir::new("api-cli-camera");
    let config = format!(
        "{}\n[[cameras]]\nid = \"porch\"\nname = \"Porch\"\nsource = \"test-pattern\"\n\
         mode = \"standalone\"\nsensors = {{ doorbell = true }}\n",
        crate::util::default_config()
    );
    let mut bridge = Bridge::start_in(&tmp.0, Some(&config));
    let (code, porch) = call(&bridge, "GET", &format!("{CAMERAS}/porch"), None);
    assert_eq!(code, 200, "{porch}");
    let setup_code = porch["setup_code"].as_str().unwrap().to_owned();
    let uri = porch["setup_uri"].as_str().unwrap().to_owned();
    let api = bridge.api.to_string();
    let config_file = bridge.data_dir.join("e2e-config.toml");
    let config_file = config_file.to_str().unwrap();
    let state = bridge.data_dir.join("state");
    let state = state.to_str().unwrap();

    // `hap-bridge qr --camera ID` with the bridge's API or its config file as the source.
    let qr = |camera: &str, source: [&str; 2]| {
        cli(&[
            "qr",
            "--camera",
            camera,
            source[0],
            source[1],
            "--data-dir",
            state,
        ])
    };

    // Running: asked through the API.
    let (ok, out, err) = qr("porch", ["--api-addr", &api]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("Setup code: {setup_code}")), "{out}");
    assert!(out.contains(&uri), "{out}");
    let (ok, _, err) = qr("demo", ["--api-addr", &api]);
    assert!(!ok && err.contains("bridged"), "{err}");

    // Stopped: from the store, with the same URI (a video doorbell's category).
    assert!(bridge.stop());
    let (ok, out, err) = qr("porch", ["--config", config_file]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("Setup code: {setup_code}")), "{out}");
    assert!(out.contains(&uri), "{out}");
    let (ok, _, err) = qr("nope", ["--config", config_file]);
    assert!(!ok && err.contains("no camera \"nope\""), "{err}");
}
