use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use super::services::{self, AccessoryInfo, CameraConfig};
use super::*;
use crate::http::Status;

const REFERENCE_6_2: &str = include_str!("../../testdata/db/accessories-6.2.json");

fn reference_json() -> String {
    REFERENCE_6_2
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::trim_start)
        .collect()
}

fn info(name: &str) -> AccessoryInfo {
    AccessoryInfo::new("Acme", "Cam1", name, "SN0001", "1.0.0")
}

/// The database of hap-reference §6.2.
fn reference_db() -> Database {
    let mut iids = IidAllocator::default();
    let mut b = AccessoryBuilder::new(
        1,
        services::accessory_information(&info("Front Door")),
        &mut iids,
    );
    b.add_service(services::protocol_information());
    b.add_service(services::motion_sensor().primary());
    Database::new(vec![b.build()])
}

fn camera_config() -> CameraConfig {
    CameraConfig {
        supported_video: vec![1, 0],
        supported_audio: vec![1, 0],
        // hap-reference §10.8, Homebridge camera: `AgEA`.
        supported_rtp: vec![2, 1, 0],
        // hap-reference §10.8: `AQEA` = available.
        streaming_status: vec![1, 1, 0],
    }
}

/// Timed-write and write-response characteristics that the service templates do not have.
fn extra_service() -> Service {
    let night_vision = Characteristic::new(
        0x11B,
        Format::Bool,
        Perms::PR | Perms::PW | Perms::EV | Perms::TW,
        Value::Bool(false),
    );
    let setup_transport = Characteristic::new(
        0x131,
        Format::Tlv8,
        Perms::PR | Perms::PW | Perms::WR,
        Value::Tlv8(Vec::new()),
    );
    Service::new(0x21A, vec![night_vision, setup_transport])
}

/// A bridge (aid 1) and one video doorbell camera (aid 2).
fn bridge_db(iids1: &mut IidAllocator, iids2: &mut IidAllocator) -> Database {
    let mut bridge =
        AccessoryBuilder::new(1, services::accessory_information(&info("Bridge")), iids1);
    bridge.add_service(services::protocol_information());
    let mut cam = AccessoryBuilder::new(2, services::accessory_information(&info("Door")), iids2);
    let bell = cam.add_service(services::doorbell().primary());
    let rtp1 = cam.add_service(services::camera_rtp_stream_management(&camera_config()));
    cam.add_service(services::camera_rtp_stream_management(&camera_config()));
    cam.add_service(services::microphone(true));
    cam.add_service(services::motion_sensor());
    cam.add_service(extra_service());
    cam.link(bell, rtp1);
    Database::new(vec![bridge.build(), cam.build()])
}

fn db() -> Database {
    bridge_db(&mut IidAllocator::default(), &mut IidAllocator::default())
}

fn id(db: &Database, svc: u32, ty: u32) -> CharId {
    db.find(2, &HapType::Apple(svc), &HapType::Apple(ty))
        .unwrap()
}

fn body(bytes: &[u8]) -> Json {
    serde_json::from_slice(bytes).unwrap()
}

// ---- GET /accessories (§6.2)

#[test]
fn accessories_json_is_byte_exact_to_reference() {
    let out = reference_db().accessories_json();
    assert_eq!(String::from_utf8(out).unwrap(), reference_json());
}

#[test]
fn bridge_json_shape() {
    let db = db();
    let j = body(&db.accessories_json());
    let text = String::from_utf8(db.accessories_json()).unwrap();
    // Never "value":null for write-only Identify; the one null is the Programmable Switch
    // Event, which reads null over IP (§5.2; HAP-NodeJS also lists it so).
    assert_eq!(text.matches("null").count(), 1, "{text}");
    let cam = &j["accessories"][1];
    assert_eq!(cam["aid"], 2);
    let types: Vec<&str> = cam["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["3E", "121", "110", "110", "112", "85", "21A"]);
    let bell = &cam["services"][1];
    assert_eq!(bell["primary"], true);
    assert_eq!(bell["linked"], json!([cam["services"][2]["iid"]]));
    assert!(cam["services"][2].get("primary").is_none());
    let pse = &bell["characteristics"][0];
    assert_eq!(pse["type"], "73");
    assert_eq!(pse["value"], Json::Null);
    assert_eq!(pse["format"], "uint8");
    assert_eq!(
        (&pse["minValue"], &pse["maxValue"], &pse["minStep"]),
        (&json!(0), &json!(2), &json!(1))
    );
    let rtp = &cam["services"][2]["characteristics"];
    assert_eq!(rtp[5]["type"], "120");
    assert_eq!(rtp[5]["value"], "AQEA");
    assert_eq!(rtp[5]["perms"], json!(["pr", "ev"]));
    assert_eq!(rtp[4]["perms"], json!(["pr", "pw"]));
    assert_eq!(rtp[6]["type"], "B0");
    assert_eq!(rtp[6]["valid-values"], json!([0, 1]));
    let mic = &cam["services"][4]["characteristics"];
    assert_eq!(mic[0]["value"], false);
    assert_eq!(mic[1]["unit"], "percentage");
    // maxLen is omitted at the default 64.
    assert!(!text.contains("maxLen"));
    let identify = &cam["services"][0]["characteristics"][0];
    assert_eq!(identify["perms"], json!(["pw"]));
    assert!(identify.get("value").is_none());
}

#[test]
fn max_len_and_custom_types() {
    let mut c = Characteristic::new(0x23, Format::String, Perms::PR, Value::String("x".into()));
    c.constraints.max_len = Some(100);
    c.ty = HapType::parse("d8a1b7c4-1234-4a5b-9c1d-0123456789ab").unwrap();
    c.description = Some("Custom".into());
    let mut svc = Service::new(0x85, vec![c]);
    svc.hidden = true;
    let mut iids = IidAllocator::default();
    let mut b = AccessoryBuilder::new(1, services::accessory_information(&info("x")), &mut iids);
    b.add_service(svc);
    let j = body(&Database::new(vec![b.build()]).accessories_json());
    let s = &j["accessories"][0]["services"][1];
    assert_eq!(s["hidden"], true);
    let c = &s["characteristics"][0];
    assert_eq!(c["maxLen"], 100);
    assert_eq!(c["type"], "D8A1B7C4-1234-4A5B-9C1D-0123456789AB");
    assert_eq!(c["description"], "Custom");
}

#[test]
fn hap_type_forms() {
    assert_eq!(
        HapType::parse("0000003E-0000-1000-8000-0026BB765291"),
        Some(HapType::Apple(0x3E))
    );
    assert_eq!(
        HapType::parse("00000110-0000-1000-8000-0026bb765291")
            .unwrap()
            .to_json_string(),
        "110"
    );
    assert_eq!(HapType::parse("3e"), Some(HapType::Apple(0x3E)));
    assert_eq!(HapType::Apple(0xB0).to_json_string(), "B0");
    assert_eq!(
        HapType::parse("nonsense-uuid-of-the-wrong-shape-at-all"),
        None
    );
    assert_eq!(HapType::parse("zz"), None);
}

// ---- c# (§6.5) and IIDs (§6.1)

#[test]
fn shape_hash_ignores_values_only() {
    let mut db = db();
    let h0 = db.shape_hash();
    let motion = id(&db, 0x85, 0x22);
    db.set_value(motion, Value::Bool(true)).unwrap();
    assert_eq!(db.shape_hash(), h0, "a value change keeps the shape");
    assert_eq!(
        bridge_db(&mut IidAllocator::default(), &mut IidAllocator::default()).shape_hash(),
        h0,
        "rebuilds agree"
    );

    let mut changed = reference_db();
    let h_ref = changed.shape_hash();
    changed.accessories[0].services[2].characteristics[0].description = Some("Motion".into());
    assert_ne!(changed.shape_hash(), h_ref, "metadata change");
    let mut fewer = reference_db();
    fewer.accessories[0].services.pop();
    assert_ne!(fewer.shape_hash(), h_ref, "removed service");
    let mut perms = reference_db();
    perms.accessories[0].services[2].characteristics[0].perms = Perms::PR;
    assert_ne!(perms.shape_hash(), h_ref, "perms change");
}

#[test]
fn config_number_wraps_to_one() {
    assert_eq!(next_config_number(1), 2);
    assert_eq!(next_config_number(65534), 65535);
    assert_eq!(next_config_number(65535), 1);
    assert_eq!(next_config_number(0), 1);
}

#[test]
fn iids_are_stable_across_rebuilds_and_never_reused() {
    let mut iids = IidAllocator::default();
    let first = bridge_db(&mut IidAllocator::default(), &mut iids);
    // The caller persists the allocator (here through JSON) and loads it at the next start.
    let saved = serde_json::to_string(&iids).unwrap();
    let mut loaded: IidAllocator = serde_json::from_str(&saved).unwrap();
    assert_eq!(loaded, iids);

    // Next start: the motion sensor is gone, an occupancy sensor is new, services reordered.
    let mut cam = AccessoryBuilder::new(
        2,
        services::accessory_information(&info("Door")),
        &mut loaded,
    );
    cam.add_service(services::occupancy_sensor());
    cam.add_service(services::microphone(true));
    cam.add_service(services::camera_rtp_stream_management(&camera_config()));
    cam.add_service(services::camera_rtp_stream_management(&camera_config()));
    cam.add_service(services::doorbell().primary());
    let second = Database::new(vec![cam.build()]);

    let iid_of = |db: &Database, aid: u64, svc: u32, nth: usize, ty: u32| -> u64 {
        db.accessories
            .iter()
            .find(|a| a.aid == aid)
            .unwrap()
            .services
            .iter()
            .filter(|s| s.ty == HapType::Apple(svc))
            .nth(nth)
            .unwrap()
            .characteristics
            .iter()
            .find(|c| c.ty == HapType::Apple(ty))
            .unwrap()
            .iid
    };
    for (svc, nth, ty) in [
        (0x121, 0, 0x73),
        (0x110, 0, 0x118),
        (0x110, 1, 0x118),
        (0x110, 1, 0xB0),
        (0x112, 0, 0x119),
        (0x3E, 0, 0x14),
    ] {
        assert_eq!(
            iid_of(&first, 2, svc, nth, ty),
            iid_of(&second, 2, svc, nth, ty),
            "{svc:X}#{nth}/{ty:X}"
        );
    }
    let max_first = first.accessories[1]
        .services
        .iter()
        .flat_map(|s| std::iter::once(s.iid).chain(s.characteristics.iter().map(|c| c.iid)))
        .max()
        .unwrap();
    let occ = iid_of(&second, 2, 0x86, 0, 0x71);
    assert!(
        occ > max_first,
        "new IIDs come after every IID ever given ({occ} > {max_first})"
    );
    // IID 1 is Accessory Information, its characteristics follow.
    assert_eq!(second.accessories[0].services[0].iid, 1);
    assert_eq!(iid_of(&second, 2, 0x3E, 0, 0x14), 2);
    // No IID appears twice within the accessory.
    let mut all: Vec<u64> = second.accessories[0]
        .services
        .iter()
        .flat_map(|s| std::iter::once(s.iid).chain(s.characteristics.iter().map(|c| c.iid)))
        .collect();
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n);
}

// ---- GET /characteristics (§5.2)

#[test]
fn read_all_ok_is_200_without_status() {
    let db = reference_db();
    let (st, b) = db.read("id=1.9,1.11", &ClientState::default());
    assert_eq!(st, Status::OK);
    assert_eq!(b, br#"{"characteristics":[{"aid":1,"iid":9,"value":"1.1.0"},{"aid":1,"iid":11,"value":false}]}"#);
}

#[test]
fn read_failures_are_207_with_status_everywhere() {
    let db = reference_db();
    let (st, b) = db.read("id=1.9,1.2,1.99,7.1", &ClientState::default());
    assert_eq!(st, Status::MULTI_STATUS);
    assert_eq!(
        body(&b),
        json!({"characteristics":[
            {"aid":1,"iid":9,"value":"1.1.0","status":0},
            {"aid":1,"iid":2,"status":-70405},
            {"aid":1,"iid":99,"status":-70409},
            {"aid":7,"iid":1,"status":-70409}]})
    );
}

#[test]
fn read_flags_meta_perms_type_ev() {
    let db = db();
    let vol = id(&db, 0x112, 0x119);
    let mut client = ClientState::default();
    client.subscriptions.insert(vol);
    let q = format!("id=2.{}&meta=1&perms=1&type=1&ev=1", vol.iid);
    let (st, b) = db.read(&q, &client);
    assert_eq!(st, Status::OK);
    assert_eq!(
        body(&b),
        json!({"characteristics":[{"aid":2,"iid":vol.iid,"value":100,"type":"119","perms":["pr","pw","ev"],
            "format":"uint8","unit":"percentage","minValue":0,"maxValue":100,"minStep":1,"ev":true}]})
    );
    let q = format!("id=2.{}&ev=true&meta=0#ignored", vol.iid);
    let (_, b) = db.read(&q, &ClientState::default());
    assert_eq!(
        body(&b),
        json!({"characteristics":[{"aid":2,"iid":vol.iid,"value":100,"ev":false}]})
    );
}

#[test]
fn programmable_switch_event_reads_null() {
    let mut db = db();
    let pse = id(&db, 0x121, 0x73);
    db.set_value(pse, Value::Uint(1)).unwrap();
    let (st, b) = db.read(&format!("id=2.{}", pse.iid), &ClientState::default());
    assert_eq!(st, Status::OK);
    assert_eq!(
        String::from_utf8(b).unwrap(),
        format!(
            r#"{{"characteristics":[{{"aid":2,"iid":{},"value":null}}]}}"#,
            pse.iid
        )
    );
}

#[test]
fn read_malformed_and_empty_queries() {
    let db = reference_db();
    let c = ClientState::default();
    for q in [
        "",
        "meta=1",
        "id=1",
        "id=1.x",
        "id=a.9",
        "id=1.9&ev=2",
        "id=1.9&meta",
        "id=-1.9",
    ] {
        assert_eq!(db.read(q, &c).0, Status::BAD_REQUEST, "{q:?}");
    }
    assert_eq!(db.read("id=", &c), (Status::NO_CONTENT, Vec::new()));
    assert_eq!(db.read("id=1.9&foo=bar", &c).0, Status::OK);
}

// ---- PUT /characteristics (§5.3)

fn put(db: &mut Database, client: &mut ClientState, body: Json) -> WriteResponse {
    db.write(body.to_string().as_bytes(), client, Instant::now(), &mut ())
}

#[test]
fn write_ok_is_204_and_reports_the_change() {
    let mut db = db();
    let mute = id(&db, 0x112, 0x11A);
    let mut c = ClientState::default();
    let r = put(
        &mut db,
        &mut c,
        json!({"characteristics":[{"aid":2,"iid":mute.iid,"value":1}]}),
    );
    assert_eq!((r.status, r.body.as_slice()), (Status::NO_CONTENT, &[][..]));
    assert_eq!(
        r.changes,
        [Change {
            id: mute,
            value: Value::Bool(true),
            immediate: false
        }]
    );
    assert_eq!(db.characteristic(mute).unwrap().value, Value::Bool(true));
    // Writing the same value again changes nothing to notify.
    let r = put(
        &mut db,
        &mut c,
        json!({"characteristics":[{"aid":2,"iid":mute.iid,"value":true}]}),
    );
    assert_eq!(r.status, Status::NO_CONTENT);
    assert!(r.changes.is_empty());
}

#[test]
fn write_errors_are_207_with_status_everywhere() {
    let mut db = db();
    let mute = id(&db, 0x112, 0x11A);
    let vol = id(&db, 0x112, 0x119);
    let motion = id(&db, 0x85, 0x22);
    let model = CharId::new(2, 4);
    let mut c = ClientState::default();
    let r = put(
        &mut db,
        &mut c,
        json!({"characteristics":[
        {"aid":2,"iid":mute.iid,"value":false},
        {"aid":2,"iid":model.iid,"value":"x"},
        {"aid":2,"iid":vol.iid,"value":101},
        {"aid":2,"iid":vol.iid,"value":"loud"},
        {"aid":2,"iid":999,"value":1},
        {"aid":2,"iid":2,"ev":true},
        {"aid":2,"iid":motion.iid},
        {"aid":2,"iid":motion.iid,"ev":"yes"}]}),
    );
    assert_eq!(r.status, Status::MULTI_STATUS);
    let statuses: Vec<i64> = body(&r.body)["characteristics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_i64().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [0, -70404, -70410, -70410, -70409, -70406, -70410, -70410]
    );
    assert_eq!(
        db.characteristic(vol).unwrap().value,
        Value::Uint(100),
        "invalid writes store nothing"
    );
}

#[test]
fn ev_subscribes_and_unsubscribes_this_connection() {
    let mut db = db();
    let motion = id(&db, 0x85, 0x22);
    let mut c = ClientState::default();
    let r = put(
        &mut db,
        &mut c,
        json!({"characteristics":[{"aid":2,"iid":motion.iid,"ev":true}]}),
    );
    assert_eq!(r.status, Status::NO_CONTENT);
    assert!(c.subscriptions.contains(&motion));
    let (_, b) = db.read(&format!("id=2.{}&ev=1", motion.iid), &c);
    assert_eq!(body(&b)["characteristics"][0]["ev"], true);
    let r = put(
        &mut db,
        &mut c,
        json!({"characteristics":[{"aid":2,"iid":motion.iid,"ev":0}]}),
    );
    assert_eq!(r.status, Status::NO_CONTENT);
    assert!(c.subscriptions.is_empty());
}

#[test]
fn write_malformed_json_is_400() {
    let mut db = db();
    let mut c = ClientState::default();
    for b in [
        &b"{"[..],
        b"[]",
        br#"{"characteristics":{}}"#,
        br#"{"characteristics":[{"aid":1}]}"#,
        br#"{"characteristics":[{"aid":"1","iid":2,"value":1}]}"#,
        br#"{"characteristics":[],"pid":"x"}"#,
        br#"{"characteristics":[{"aid":1,"iid":2,"value":true,"r":"yes"}]}"#,
    ] {
        let r = db.write(b, &mut c, Instant::now(), &mut ());
        assert_eq!(
            r.status,
            Status::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(b)
        );
    }
}

/// A stand-in for the bridge's camera: answers Setup Endpoints with its own TLV, refuses
/// Selected RTP Stream Configuration, records Identify.
#[derive(Default)]
struct Camera {
    identified: u32,
    written: Vec<(CharId, Value)>,
}

impl WriteHandler for Camera {
    fn write(&mut self, r: &WriteRequest<'_>) -> WriteResult {
        self.written.push((r.id, r.value.clone()));
        match r.ty {
            HapType::Apple(services::IDENTIFY) => {
                self.identified += 1;
                WriteResult::Store
            }
            HapType::Apple(services::SETUP_ENDPOINTS) => {
                let Value::Tlv8(req) = r.value else {
                    return WriteResult::Fail(HapStatus::INVALID_VALUE);
                };
                // Echo the session id item with a "success" status item.
                let mut resp = req.clone();
                resp.extend_from_slice(&[2, 1, 0]);
                WriteResult::Answer(Value::Tlv8(resp))
            }
            HapType::Apple(services::SELECTED_RTP_STREAM_CONFIGURATION) => {
                WriteResult::Fail(HapStatus::RESOURCE_BUSY)
            }
            _ => WriteResult::Store,
        }
    }
}

#[test]
fn handler_setup_endpoints_read_after_write_and_write_response() {
    let mut db = db();
    let se = id(&db, 0x110, 0x118);
    let sel = id(&db, 0x110, 0x117);
    let mut cam = Camera::default();
    let mut c = ClientState::default();
    let now = Instant::now();
    // iOS: write, then read.
    let w = json!({"characteristics":[{"aid":2,"iid":se.iid,"value":"AQEA"}]}).to_string();
    let r = db.write(w.as_bytes(), &mut c, now, &mut cam);
    assert_eq!(r.status, Status::NO_CONTENT);
    let read = |db: &Database, c: &ClientState| {
        let (_, b) = db.read(&format!("id=2.{}", se.iid), c);
        body(&b)["characteristics"][0]["value"].clone()
    };
    assert_eq!(read(&db, &c), "AQEAAgEA");
    // Each connection reads the answer to its own write: another controller's write in
    // between does not replace it, and one that wrote nothing reads the stored value.
    let (mut other, idle) = (ClientState::default(), ClientState::default());
    let w2 = json!({"characteristics":[{"aid":2,"iid":se.iid,"value":"AQEC"}]}).to_string();
    assert_eq!(
        db.write(w2.as_bytes(), &mut other, now, &mut cam).status,
        Status::NO_CONTENT
    );
    assert_eq!(read(&db, &c), "AQEAAgEA");
    assert_eq!(read(&db, &other), "AQECAgEA");
    assert_eq!(read(&db, &idle), "");
    // Other controllers: write with "r":true gets the response in the 207.
    let w = json!({"characteristics":[{"aid":2,"iid":se.iid,"value":"AQEB","r":true}]}).to_string();
    let r = db.write(w.as_bytes(), &mut c, now, &mut cam);
    assert_eq!(r.status, Status::MULTI_STATUS);
    assert_eq!(
        body(&r.body),
        json!({"characteristics":[{"aid":2,"iid":se.iid,"value":"AQEBAgEA","status":0}]})
    );
    // A handler failure is the entry's status and stores nothing.
    let w = json!({"characteristics":[{"aid":2,"iid":sel.iid,"value":"AQEA"}]}).to_string();
    let r = db.write(w.as_bytes(), &mut c, now, &mut cam);
    assert_eq!(body(&r.body)["characteristics"][0]["status"], -70403);
    assert_eq!(
        db.characteristic(sel).unwrap().value,
        Value::Tlv8(Vec::new())
    );
    // Identify is write-only: the handler runs, reads fail with -70405.
    let w = json!({"characteristics":[{"aid":2,"iid":2,"value":true}]}).to_string();
    assert_eq!(
        db.write(w.as_bytes(), &mut c, now, &mut cam).status,
        Status::NO_CONTENT
    );
    assert_eq!(cam.identified, 1);
    assert_eq!(cam.written.len(), 5);
}

#[test]
fn write_response_on_wr_characteristic() {
    let mut db = db();
    let st = id(&db, 0x21A, 0x131);
    let mut c = ClientState::default();
    let r = put(
        &mut db,
        &mut c,
        json!({"characteristics":[{"aid":2,"iid":st.iid,"value":"AQEA","r":true}]}),
    );
    assert_eq!(r.status, Status::MULTI_STATUS);
    assert_eq!(
        body(&r.body)["characteristics"][0],
        json!({"aid":2,"iid":st.iid,"value":"AQEA","status":0})
    );
}

// ---- Timed writes (§5.4)

#[test]
fn timed_write_needs_a_live_prepare() {
    let mut db = db();
    let nv = id(&db, 0x21A, 0x11B);
    let mute = id(&db, 0x112, 0x11A);
    let mut c = ClientState::default();
    let t0 = Instant::now();
    let w = |pid: Option<u64>| {
        let mut j = json!({"characteristics":[{"aid":2,"iid":nv.iid,"value":true},{"aid":2,"iid":mute.iid,"value":true}]});
        if let Some(p) = pid {
            j["pid"] = json!(p);
        }
        j.to_string()
    };
    // tw characteristic without prepare: -70410; the plain one still succeeds.
    let r = db.write(w(None).as_bytes(), &mut c, t0, &mut ());
    assert_eq!(
        body(&r.body),
        json!({"characteristics":[{"aid":2,"iid":nv.iid,"status":-70410},{"aid":2,"iid":mute.iid,"status":0}]})
    );
    db.set_value(mute, Value::Bool(false)).unwrap();

    assert_eq!(
        db.prepare(br#"{"ttl":2500,"pid":42}"#, &mut c, t0),
        (Status::OK, br#"{"status":0}"#.to_vec())
    );
    // Mismatched pid: every entry fails, and the preparation is used up.
    let r = db.write(w(Some(41)).as_bytes(), &mut c, t0, &mut ());
    assert_eq!(
        body(&r.body)["characteristics"],
        json!([{"aid":2,"iid":nv.iid,"status":-70410},{"aid":2,"iid":mute.iid,"status":-70410}])
    );
    assert_eq!(db.characteristic(mute).unwrap().value, Value::Bool(false));
    let r = db.write(w(Some(42)).as_bytes(), &mut c, t0, &mut ());
    assert_eq!(
        r.status,
        Status::MULTI_STATUS,
        "consumed by the failed attempt"
    );

    // Expired.
    db.prepare(br#"{"ttl":2500,"pid":43}"#, &mut c, t0)
        .0
        .eq(&Status::OK)
        .then_some(())
        .unwrap();
    let r = db.write(
        w(Some(43)).as_bytes(),
        &mut c,
        t0 + Duration::from_millis(2500),
        &mut (),
    );
    assert_eq!(r.status, Status::MULTI_STATUS);
    assert_eq!(db.characteristic(nv).unwrap().value, Value::Bool(false));

    // In time: both writes happen, 204.
    db.prepare(br#"{"ttl":2500,"pid":44}"#, &mut c, t0)
        .0
        .eq(&Status::OK)
        .then_some(())
        .unwrap();
    let r = db.write(
        w(Some(44)).as_bytes(),
        &mut c,
        t0 + Duration::from_millis(2499),
        &mut (),
    );
    assert_eq!(r.status, Status::NO_CONTENT);
    assert_eq!(db.characteristic(nv).unwrap().value, Value::Bool(true));
    assert!(c.prepared.is_none());
}

#[test]
fn second_prepare_replaces_the_first() {
    let db = db();
    let mut c = ClientState::default();
    let t0 = Instant::now();
    db.prepare(br#"{"ttl":1000,"pid":1}"#, &mut c, t0);
    db.prepare(br#"{"ttl":5000,"pid":2}"#, &mut c, t0);
    assert_eq!(
        c.prepared,
        Some(PreparedWrite {
            pid: 2,
            deadline: t0 + Duration::from_secs(5)
        })
    );
    for b in [
        &b"{}"[..],
        br#"{"ttl":1}"#,
        br#"{"ttl":-1,"pid":1}"#,
        b"nope",
    ] {
        assert_eq!(db.prepare(b, &mut c, t0).0, Status::BAD_REQUEST);
    }
}

// ---- set_value

#[test]
fn set_value_reports_changes() {
    let mut db = db();
    let motion = id(&db, 0x85, 0x22);
    let pse = id(&db, 0x121, 0x73);
    let model = CharId::new(2, 4);
    assert_eq!(db.set_value(motion, Value::Bool(false)), Ok(None));
    assert_eq!(
        db.set_value(motion, Value::Bool(true)),
        Ok(Some(Change {
            id: motion,
            value: Value::Bool(true),
            immediate: false
        }))
    );
    // Every doorbell press is an event, even the same value twice.
    for _ in 0..2 {
        assert_eq!(
            db.set_value(pse, Value::Uint(0)),
            Ok(Some(Change {
                id: pse,
                value: Value::Uint(0),
                immediate: true
            }))
        );
    }
    assert_eq!(
        db.set_value(pse, Value::Uint(3)),
        Err(HapStatus::INVALID_VALUE)
    );
    assert_eq!(
        db.set_value(motion, Value::Uint(1)),
        Err(HapStatus::INVALID_VALUE)
    );
    assert_eq!(
        db.set_value(CharId::new(9, 9), Value::Bool(true)),
        Err(HapStatus::RESOURCE_DOES_NOT_EXIST)
    );
    // Without `ev` there is nothing to notify, but the value is stored.
    assert_eq!(db.set_value(model, Value::String("Cam2".into())), Ok(None));
    assert_eq!(
        db.characteristic(model).unwrap().value,
        Value::String("Cam2".into())
    );
}

#[test]
fn keyed_services_survive_removal_of_their_siblings() {
    let mut iids = IidAllocator::default();
    let info = services::accessory_information(&info("Door"));
    let mut b = AccessoryBuilder::new(2, info.clone(), &mut iids);
    let main = b.add_service_keyed(
        "stream:main",
        services::camera_rtp_stream_management(&camera_config()),
    );
    let sub = b.add_service_keyed(
        "stream:sub",
        services::camera_rtp_stream_management(&camera_config()),
    );
    drop(b.build());
    let mut b = AccessoryBuilder::new(2, info, &mut iids);
    // The main stream is gone; the sub stream keeps its IIDs instead of taking main's.
    assert_eq!(
        b.add_service_keyed(
            "stream:sub",
            services::camera_rtp_stream_management(&camera_config())
        ),
        sub
    );
    assert_ne!(sub, main);
    let acc = b.build();
    assert_eq!(acc.services[1].characteristics[0].iid, sub + 1);
}
