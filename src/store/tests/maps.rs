//! The AID map, IID allocators, `c#`, settings, camera removal and the schema migration.

use std::sync::Arc;

use hap_proto::pairing::{PairingStore as _, Permissions};
use rusqlite::params;

use super::{rng, setup};
use crate::store::{ServerKey, Store};
use crate::testutil::TempDir;

#[test]
fn aids_are_stable_and_never_reused() {
    let dir = TempDir::new("aid");
    let b = ServerKey::Bridge;
    {
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.assign_aids(&b, &["cam:front", "cam:back"]).unwrap(),
            [2, 3]
        );
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.assign_aids(&b, &["cam:back", "cam:front"]).unwrap(),
        [3, 2]
    );
    store.remove_camera("front", "cam:front").unwrap();
    store.remove_camera("unknown", "cam:unknown").unwrap();
    assert_eq!(store.assign_aids(&b, &["cam:side"]).unwrap(), [4]);
    assert_eq!(store.assign_aids(&b, &["cam:front"]).unwrap(), [5]);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.assign_aids(&b, &["cam:side", "cam:new"]).unwrap(),
        [4, 6]
    );
    // AID maps are per server.
    assert_eq!(
        store
            .assign_aids(&ServerKey::Camera("x".into()), &["cam:side"])
            .unwrap(),
        [2]
    );
}

#[test]
fn config_number_bumps_only_on_shape_change_and_wraps() {
    let dir = TempDir::new("cn");
    let store = Store::open(dir.path()).unwrap();
    let b = ServerKey::Bridge;
    assert!(
        store.update_config_number(&b, b"h1").is_err(),
        "no record yet"
    );
    store.server(&b, &mut rng(1), setup()).unwrap();
    assert_eq!(store.update_config_number(&b, b"h1").unwrap(), 1);
    assert_eq!(store.update_config_number(&b, b"h1").unwrap(), 1);
    assert_eq!(store.update_config_number(&b, b"h2").unwrap(), 2);
    assert_eq!(store.update_config_number(&b, b"h2").unwrap(), 2);
    assert_eq!(store.server_record(&b).unwrap().unwrap().config_number, 2);
    store
        .lock()
        .execute("UPDATE servers SET config_number = 65535", [])
        .unwrap();
    assert_eq!(store.update_config_number(&b, b"h3").unwrap(), 1);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.update_config_number(&b, b"h3").unwrap(), 1);
    assert_eq!(store.update_config_number(&b, b"h4").unwrap(), 2);
}

#[test]
fn settings_cameras_setup_code_and_forget() {
    let dir = TempDir::new("misc");
    let store = Store::open(dir.path()).unwrap();
    assert!(store.bridge_enabled().unwrap());
    store.set_bridge_enabled(false).unwrap();
    store.put_runtime_camera("b", r#"{"id":"b"}"#).unwrap();
    store.put_runtime_camera("a", r#"{"id":"a"}"#).unwrap();
    store
        .put_runtime_camera("b", r#"{"id":"b","name":"B"}"#)
        .unwrap();
    let b = ServerKey::Bridge;
    store.server(&b, &mut rng(1), setup()).unwrap();
    store.set_setup_code(&b, "031-45-154").unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert!(!store.bridge_enabled().unwrap());
    assert_eq!(
        store.runtime_cameras().unwrap(),
        [
            ("b".to_owned(), r#"{"id":"b","name":"B"}"#.to_owned()),
            ("a".to_owned(), r#"{"id":"a"}"#.to_owned()),
        ]
    );
    store.remove_camera("b", "camera:b").unwrap();
    assert_eq!(store.runtime_cameras().unwrap().len(), 1);
    assert_eq!(
        store.server_record(&b).unwrap().unwrap().setup.setup_code,
        "031-45-154"
    );
    // Debug never shows the setup code or the key.
    let debug = format!("{:?}", store.server_record(&b).unwrap());
    assert!(
        !debug.contains("031-45-154") && debug.contains("7OSX"),
        "{debug}"
    );

    // A removed standalone camera's identity is forgotten with it.
    let cam = ServerKey::Camera("a".into());
    let first = store.server(&cam, &mut rng(2), setup()).unwrap();
    store.remove_camera("a", "camera:a").unwrap();
    assert!(store.server_record(&cam).unwrap().is_none());
    assert!(store.runtime_cameras().unwrap().is_empty());
    let second = store.server(&cam, &mut rng(9), setup()).unwrap();
    assert_ne!(second.identity.device_id, first.identity.device_id);
}

#[test]
fn removing_a_camera_is_one_transaction() {
    let dir = TempDir::new("remove-camera");
    let store = Store::open(dir.path()).unwrap();
    let cam = ServerKey::Camera("porch".into());
    store
        .put_runtime_camera("porch", r#"{"id":"porch"}"#)
        .unwrap();
    let aid = store
        .assign_aids(&ServerKey::Bridge, &["camera:porch"])
        .unwrap();
    store.server(&cam, &mut rng(3), setup()).unwrap();
    // The last step fails (as on a full disk): nothing of the removal is kept.
    store
        .lock()
        .execute_batch(
            "CREATE TRIGGER no_delete BEFORE DELETE ON servers \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    assert!(store.remove_camera("porch", "camera:porch").is_err());
    assert_eq!(store.runtime_cameras().unwrap().len(), 1);
    assert_eq!(
        store
            .assign_aids(&ServerKey::Bridge, &["camera:porch"])
            .unwrap(),
        aid
    );
    assert!(store.server_record(&cam).unwrap().is_some());
    store
        .lock()
        .execute_batch("DROP TRIGGER no_delete;")
        .unwrap();
    store.remove_camera("porch", "camera:porch").unwrap();
    assert!(store.runtime_cameras().unwrap().is_empty());
    assert!(store.server_record(&cam).unwrap().is_none());
}

/// A store as the release before IID allocators had their own table wrote it (schema 1, IIDs as
/// JSON settings) opens with every pairing, AID and IID kept, and without the dead `iid_map`.
#[test]
fn a_schema_1_store_migrates_keeping_pairings_aids_and_iids() {
    let dir = TempDir::new("migrate-v1");
    let b = ServerKey::Bridge;
    let iids_json = r#"{"entries":{"/3e":1,"/3e/14":2,"/110":9},"next_iid":12}"#;
    {
        let conn = rusqlite::Connection::open(dir.path().join(super::DB_FILE)).unwrap();
        conn.execute_batch(crate::store::schema::SCHEMA_V1_FOR_TESTS)
            .unwrap();
        conn.pragma_update(None, "application_id", super::APPLICATION_ID)
            .unwrap();
        conn.execute("INSERT INTO schema_version (version) VALUES (1)", [])
            .unwrap();
        conn.execute(
            "INSERT INTO servers (key, device_id, secret_key, setup_id, setup_code)
             VALUES ('bridge', ?1, ?2, '7OSX', '031-45-154')",
            params![[1u8, 2, 3, 4, 5, 6].to_vec(), [9u8; 32].to_vec()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO pairings (server, id, public_key, permissions) VALUES ('bridge', ?1, ?2, 1)",
            params![b"controller-1".to_vec(), [4u8; 32].to_vec()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO aid_map (server, key, aid) VALUES ('bridge', 'camera:front', 2)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO high_water (server, scope, next) VALUES ('bridge', 'aid', 3)",
            [],
        )
        .unwrap();
        for (name, value) in [
            ("iids/bridge/1", r#"{"entries":{"/3e":1},"next_iid":7}"#),
            ("iids/bridge/2", iids_json),
            ("enabled", "false"),
        ] {
            conn.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)",
                [name, value],
            )
            .unwrap();
        }
    }
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let pairings = store.pairing_store(&b).unwrap();
    let stored = pairings.pairings();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id.0, b"controller-1");
    assert_eq!(stored[0].permissions, Permissions::Admin);
    assert_eq!(store.aid(&b, "camera:front").unwrap(), Some(2));
    assert_eq!(store.assign_aids(&b, &["camera:back"]).unwrap(), [3]);
    let iids = store.iid_allocator(&b, 2).unwrap();
    assert_eq!(iids, serde_json::from_str(iids_json).unwrap());
    assert_eq!(store.iid_allocator(&b, 1).unwrap().next_iid, 7);
    assert!(!store.bridge_enabled().unwrap(), "other settings stay");
    assert_eq!(store.setting("iids/bridge/2").unwrap(), None);
    let tables: i64 = store
        .lock()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'iid_map'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the dead table is dropped");
    let version: i64 = store
        .lock()
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    drop(pairings);
    drop(store);
    // Opening again changes nothing.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.iid_allocator(&b, 2).unwrap(),
        serde_json::from_str(iids_json).unwrap()
    );
}

#[test]
fn iid_allocators_persist_per_accessory_and_go_with_their_aid() {
    let dir = TempDir::new("iids");
    let store = Store::open(dir.path()).unwrap();
    let b = ServerKey::Bridge;
    let aid = store.assign_aids(&b, &["camera:porch"]).unwrap()[0];
    let mut iids = store.iid_allocator(&b, aid).unwrap();
    assert_eq!(iids, hap_proto::db::IidAllocator::default());
    assert_eq!(iids.iid("/3e"), 1);
    assert_eq!(iids.iid("/110"), 2);
    store.put_iid_allocator(&b, aid, &iids).unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.iid_allocator(&b, aid).unwrap(), iids);
    store.remove_camera("porch", "camera:porch").unwrap();
    assert_eq!(
        store.iid_allocator(&b, aid).unwrap(),
        hap_proto::db::IidAllocator::default(),
        "a removed accessory's IIDs go with its AID"
    );
}
