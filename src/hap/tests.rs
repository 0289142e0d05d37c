//! A HAP server on loopback with a controller from test-support: control messages to the
//! connections cannot be lost.

use std::sync::Arc;
use std::time::Duration;

use hap_proto::controller::setup::PairedAccessory;
use hap_proto::db::services::{self, AccessoryInfo};
use hap_proto::db::{AccessoryBuilder, Database, IidAllocator};
use hap_proto::pairing::{Pairing, PairingId, PairingStore as _, Permissions};
use hap_proto::setup::{Category, SetupCode, SetupId};
use test_support::controller::{Conn, Identity};

use super::{CONTROL_QUEUE, ConnectionCommand, HapServer, ServerParams};
use crate::store::{ServerKey, SetupSecrets, Store};
use crate::testutil::{TempDir, rng};

/// A bridge server with `me` paired as admin, serving on loopback.
async fn server_with(dir: &TempDir, me: &Identity) -> (HapServer, PairedAccessory) {
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let record = store
        .server(&ServerKey::Bridge, &mut rng(1), |_| SetupSecrets {
            setup_id: "7OSX".to_owned(),
            setup_code: "518-08-582".to_owned(),
        })
        .unwrap();
    let mut pairings = store.pairing_store(&ServerKey::Bridge).unwrap();
    pairings
        .put_pairing(Pairing {
            id: PairingId(me.id.clone()),
            public_key: me.key.verifying_key().to_bytes(),
            permissions: Permissions::Admin,
        })
        .unwrap();
    let info = AccessoryInfo::new("hap-bridge", "Bridge", "Test Bridge", "SN0001", "0.1.0");
    let mut iids = IidAllocator::default();
    let mut b = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
    b.add_service(services::protocol_information());
    let accessory = PairedAccessory {
        device_id: record.identity.device_id,
        public_key: record.identity.public_key(),
    };
    let params = ServerParams {
        key: ServerKey::Bridge,
        name: "Test Bridge".to_owned(),
        model: "Bridge".to_owned(),
        category: Category::BRIDGE,
        identity: record.identity,
        setup_code: SetupCode::parse(&record.setup.setup_code).unwrap(),
        setup_id: SetupId::parse(&record.setup.setup_id).unwrap(),
        store: pairings,
        db: Database::new(vec![b.build()]),
        config_number: 1,
        cameras: crate::camera::Routes::default(),
    };
    let server = HapServer::create(params, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    server.resume().await.unwrap();
    (server, accessory)
}

// One thread: nothing else runs while the test sends, so the connection's control queue
// overflows for certain.
#[tokio::test(flavor = "current_thread")]
async fn a_lagged_connection_still_closes_for_its_removed_controller() {
    let dir = TempDir::new("lagged-control");
    let me = Identity::new(1);
    let (server, acc) = server_with(&dir, &me).await;
    let addr = server.state().local_addr();
    let verified_me = me.clone();
    let mut conn = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::open(addr);
        conn.pair_verify(&verified_me, &acc).unwrap();
        conn
    })
    .await
    .unwrap();
    let state = Arc::clone(server.state());
    // The removal's CloseControllers, then a full queue of other messages behind it: the
    // connection's receiver lags and loses it.
    let removal = state.remove_pairing(&PairingId(me.id.clone())).unwrap();
    assert_eq!(removal.removed.len(), 1);
    for n in 0..CONTROL_QUEUE {
        let other = PairingId(format!("other-{n}").into_bytes());
        let _ = state
            .commands
            .send(ConnectionCommand::CloseControllers(Arc::new(vec![other])));
    }
    let closed = tokio::task::spawn_blocking(move || conn.closed_within(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(closed, "the removed controller's session is closed");
    server.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_owners_removal_under_a_store_failure_is_all_or_nothing_then_cuts_the_session() {
    let dir = TempDir::new("owner-removal");
    let me = Identity::new(2);
    let (server, acc) = server_with(&dir, &me).await;
    let addr = server.state().local_addr();
    let verified_me = me.clone();
    let mut conn = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::open(addr);
        conn.pair_verify(&verified_me, &acc).unwrap();
        conn
    })
    .await
    .unwrap();
    // An injected store failure (a second connection to the database adds a failing trigger).
    let db = rusqlite::Connection::open(dir.path().join(crate::store::DB_FILE)).unwrap();
    db.execute_batch(
        "CREATE TRIGGER injected BEFORE DELETE ON pairings
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
    )
    .unwrap();
    let state = Arc::clone(server.state());
    let id = PairingId(me.id.clone());
    let removal = state.remove_pairing(&id).unwrap();
    assert!(removal.error.is_some() && removal.removed.is_empty());
    assert_eq!(state.pairings().len(), 1, "nothing removed, still paired");
    let (mut conn, closed) = tokio::task::spawn_blocking(move || {
        let closed = conn.closed_within(Duration::from_millis(300));
        (conn, closed)
    })
    .await
    .unwrap();
    assert!(!closed, "a controller still paired keeps its session");

    db.execute_batch("DROP TRIGGER injected").unwrap();
    let removal = state.remove_pairing(&id).unwrap();
    assert_eq!(removal.removed, [id]);
    let closed = tokio::task::spawn_blocking(move || conn.closed_within(Duration::from_secs(2)))
        .await
        .unwrap();
    assert!(closed, "the removed controller's session is closed");
    server.shutdown().await;
}
