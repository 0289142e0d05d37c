//! The accessory databases of the HAP servers: the bridge (aid 1) with one bridged accessory per
//! bridged camera, and one database per standalone camera. AIDs come from the store (stable per
//! camera id, never reused) and IIDs from a persisted allocator per accessory (never reused).

use std::collections::BTreeMap;

use hap_proto::db::services::{self, AccessoryInfo};
use hap_proto::db::{AccessoryBuilder, CharId, Database, HapType, IidAllocator};

use crate::camera::Placement;
use crate::config::{CameraMode, CameraSettings, Config};
use crate::store::{ServerKey, Store};

/// The characteristics the bridge drives for one camera's sensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SensorIds {
    /// Motion Detected (`22`).
    pub(crate) motion: Option<CharId>,
    /// Occupancy Detected (`71`).
    pub(crate) occupancy: Option<CharId>,
    /// Programmable Switch Event (`73`) of the Doorbell service.
    pub(crate) doorbell: Option<CharId>,
}

/// A built database and where each camera's sensors and stream services live in it.
#[derive(Debug)]
pub(crate) struct Built {
    /// The database.
    pub(crate) db: Database,
    /// Camera id → its sensors.
    pub(crate) sensors: BTreeMap<String, SensorIds>,
    /// Camera id → its accessory and stream services.
    pub(crate) cameras: BTreeMap<String, Placement>,
}

/// Builds the bridge's database: aid 1 (AccessoryInformation, ProtocolInformation) and one
/// accessory per enabled bridged camera.
pub(crate) fn build_bridge(config: &Config, store: &Store) -> anyhow::Result<Built> {
    let key = ServerKey::Bridge;
    let cameras: Vec<&CameraSettings> = config
        .cameras
        .iter()
        .filter(|c| c.enabled && c.mode == CameraMode::Bridged)
        .collect();
    let names: Vec<String> = cameras.iter().map(|c| accessory_key(&c.id)).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let aids = store.assign_aids(&key, &name_refs)?;

    let b = &config.bridge;
    let info = AccessoryInfo::new(
        &b.manufacturer,
        &b.model,
        &b.name,
        &serial(&b.name),
        VERSION,
    );
    let mut accessories = Vec::with_capacity(cameras.len() + 1);
    let mut sensors = BTreeMap::new();
    let mut iids = load_iids(store, &key, 1)?;
    let mut bridge = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
    bridge.add_service_keyed("protocol", services::protocol_information());
    accessories.push(bridge.build());
    save_iids(store, &key, 1, &iids)?;

    let mut placed = Vec::with_capacity(cameras.len());
    for (cam, aid) in cameras.into_iter().zip(aids) {
        let mut iids = load_iids(store, &key, aid)?;
        accessories.push(camera_accessory(
            cam,
            aid,
            &b.manufacturer,
            false,
            &mut iids,
        ));
        save_iids(store, &key, aid, &iids)?;
        placed.push((cam.id.clone(), aid));
    }
    let db = Database::new(accessories);
    let mut placements = BTreeMap::new();
    for (id, aid) in placed {
        sensors.insert(id.clone(), sensor_ids(&db, aid));
        placements.insert(id, Placement::find(&db, aid));
    }
    Ok(Built {
        db,
        sensors,
        cameras: placements,
    })
}

/// Builds a standalone camera's database: aid 1 is the camera itself.
pub(crate) fn build_standalone(
    cam: &CameraSettings,
    manufacturer: &str,
    store: &Store,
) -> anyhow::Result<Built> {
    let key = ServerKey::Camera(cam.id.clone());
    let mut iids = load_iids(store, &key, 1)?;
    let accessory = camera_accessory(cam, 1, manufacturer, true, &mut iids);
    save_iids(store, &key, 1, &iids)?;
    let db = Database::new(vec![accessory]);
    let mut sensors = BTreeMap::new();
    sensors.insert(cam.id.clone(), sensor_ids(&db, 1));
    let mut cameras = BTreeMap::new();
    cameras.insert(cam.id.clone(), Placement::find(&db, 1));
    Ok(Built {
        db,
        sensors,
        cameras,
    })
}

/// One camera's accessory (HAP §6.6, hap-reference §7): AccessoryInformation (and Protocol
/// Information when standalone), `max_streams` Camera RTP Stream Management services, a
/// Microphone (iOS refuses cameras without one), and its sensors; the motion sensor and the
/// doorbell are linked from the first stream service, and a doorbell is the primary service of a
/// video doorbell.
fn camera_accessory(
    cam: &CameraSettings,
    aid: u64,
    manufacturer: &str,
    standalone: bool,
    iids: &mut IidAllocator,
) -> hap_proto::db::Accessory {
    let info = AccessoryInfo::new(manufacturer, "Camera", &cam.name, &serial(&cam.id), VERSION);
    let mut b = AccessoryBuilder::new(aid, services::accessory_information(&info), iids);
    if standalone {
        // A standalone accessory is its own primary accessory (HAP §6.1).
        b.add_service_keyed("protocol", services::protocol_information());
    }
    let stream_config = crate::camera::advert::stream_service_config();
    let streams: Vec<u64> = (0..cam.max_streams.max(1))
        .map(|i| {
            b.add_service_keyed(
                &format!("stream{i}"),
                services::camera_rtp_stream_management(&stream_config),
            )
        })
        .collect();
    b.add_service_keyed("microphone", services::microphone(true));
    let mut linked = Vec::new();
    if cam.sensors.motion {
        linked.push(b.add_service_keyed("motion", services::motion_sensor()));
    }
    if cam.sensors.occupancy {
        b.add_service_keyed("occupancy", services::occupancy_sensor());
    }
    if cam.sensors.doorbell {
        linked.push(b.add_service_keyed("doorbell", services::doorbell().primary()));
    }
    if let Some(&first) = streams.first() {
        for to in linked {
            b.link(first, to);
        }
    }
    b.build()
}

fn sensor_ids(db: &Database, aid: u64) -> SensorIds {
    let find = |svc: u32, ch: u32| db.find(aid, &HapType::Apple(svc), &HapType::Apple(ch));
    SensorIds {
        motion: find(services::MOTION_SENSOR, services::MOTION_DETECTED),
        occupancy: find(services::OCCUPANCY_SENSOR, services::OCCUPANCY_DETECTED),
        doorbell: find(services::DOORBELL, PROGRAMMABLE_SWITCH_EVENT),
    }
}

/// The bridge's AID-map key of a camera (the admin API looks AIDs up with it).
pub(crate) fn accessory_key(camera_id: &str) -> String {
    format!("camera:{camera_id}")
}

/// A stable serial number (2-64 bytes, HAP §6.6) derived from an id.
fn serial(id: &str) -> String {
    let mut s: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(60)
        .collect();
    if s.len() < 2 {
        s.push_str("00");
    }
    format!("HB-{s}")
}

fn load_iids(store: &Store, key: &ServerKey, aid: u64) -> anyhow::Result<IidAllocator> {
    Ok(store.iid_allocator(key, aid)?)
}

fn save_iids(store: &Store, key: &ServerKey, aid: u64, iids: &IidAllocator) -> anyhow::Result<()> {
    Ok(store.put_iid_allocator(key, aid, iids)?)
}

/// Firmware revision advertised by every accessory.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the configuration number (`c#`) follows: the database's shape (without values) and the
/// firmware version, so that `c#` goes up when accessories, services or characteristics change
/// and also after an upgrade (hap-reference §6.5), when iOS must drop its cached database.
pub(crate) fn config_hash(db: &Database) -> Vec<u8> {
    config_hash_for(db, VERSION)
}

fn config_hash_for(db: &Database, version: &str) -> Vec<u8> {
    let mut hash = db.shape_hash().to_vec();
    hash.extend_from_slice(b"\0firmware ");
    hash.extend_from_slice(version.as_bytes());
    hash
}
/// Programmable Switch Event (HAP §6.6 Doorbell).
const PROGRAMMABLE_SWITCH_EVENT: u32 = 0x73;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SetupSecrets;
    use crate::testutil::{TempDir, rng};

    #[test]
    fn the_configuration_number_goes_up_after_an_upgrade_only() {
        let dir = TempDir::new("config-number");
        let store = Store::open(dir.path()).unwrap();
        let key = ServerKey::Bridge;
        let setup = |_: &mut dyn hap_proto::CryptoRandom| SetupSecrets {
            setup_id: "7OSX".to_owned(),
            setup_code: "518-08-582".to_owned(),
        };
        store.server(&key, &mut rng(1), setup).unwrap();
        let db = build_bridge(&Config::default(), &store).unwrap().db;
        let number = |version| {
            store
                .update_config_number(&key, &config_hash_for(&db, version))
                .unwrap()
        };
        let first = number("0.1.0");
        assert_eq!(number("0.1.0"), first, "same firmware, same shape");
        assert_eq!(number("0.2.0"), first + 1, "an upgrade");
        assert_eq!(number("0.2.0"), first + 1);
    }
}
