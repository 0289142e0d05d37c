//! Pairing against the running binary with hap-proto's controller.

use std::time::Duration;

use hap_proto::controller::setup::SrpPadding;

use crate::controller::{Conn, Identity};
use crate::util::{Bridge, SETUP_CODE};

#[test]
fn pair_verify_read_and_plaintext_refused_after_pairing() {
    let bridge = Bridge::start();
    let me = Identity::new(1);
    let mut c = Conn::open(bridge.hap);
    let acc = c.pair_setup(&me, SETUP_CODE, SrpPadding::Strip).unwrap();
    let (_, status) = bridge.api_get("/api/v1/homekit/status");
    assert_eq!(status["paired"], true);
    assert!(
        status["setup_code"].is_null(),
        "the setup code is hidden once paired"
    );

    let mut plain = Conn::open(bridge.hap);
    let m = plain.call("GET", "/accessories", None, b"");
    assert_eq!(m.status, 470);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&m.body).unwrap()["status"],
        -70401
    );

    let mut s = Conn::open(bridge.hap);
    s.pair_verify(&me, &acc).unwrap();
    let (code, db) = s.json("GET", "/accessories", None);
    assert_eq!(code, 200);
    assert_eq!(db["accessories"][0]["aid"], 1);
    assert!(
        db["accessories"].as_array().unwrap().len() >= 2,
        "bridge + demo camera"
    );
    assert!(!s.closed_within(Duration::from_millis(300)));
}
