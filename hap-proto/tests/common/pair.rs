//! [`Pair`]: an accessory server's `server::Connection` and a controller's `ClientConnection`
//! wired together in memory (quinn's `Pair` idea, without sockets): pair-setup and pair-verify
//! over HTTP, then requests, responses and events pumped between the two ends, with seeded
//! randomness and simulated time.

use std::time::Instant;

use ed25519_dalek::SigningKey;
use hap_proto::admission::{Admission, AdmitAll};
use hap_proto::controller::client::{ClientConnection, Message};
use hap_proto::controller::setup::{ControllerSetup, PairedAccessory, SrpPadding};
use hap_proto::controller::verify::{ControllerCredentials, ControllerVerify, ExpectM4};
use hap_proto::db::services::{self, AccessoryInfo};
use hap_proto::db::{AccessoryBuilder, Change, CharId, Database, HapType, IidAllocator};
use hap_proto::pairing::setup::{ConnectionId, PairSetupGate};
use hap_proto::pairing::{AccessoryIdentity, MemoryStore, PairingId};
use hap_proto::server::{Connection, ConnectionEvent, ServerContext};
use hap_proto::setup::SetupCode;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// The setup code of every test server.
pub(crate) const CODE: &str = "518-08-582";
/// The content type of pairing requests.
pub(crate) const TLV: Option<&str> = Some("application/pairing+tlv8");
/// The pairing identifier of the test controller.
pub(crate) const CONTROLLER_ID: &[u8] = b"6A2B7B1C-0D5E-4F60-8172-93A4B5C6D7E8";

/// The accessory server: everything its connections share (a bridge with a motion sensor).
pub(crate) struct Server {
    /// The accessory's long-term identity.
    pub(crate) identity: AccessoryIdentity,
    /// The setup code ([`CODE`]).
    pub(crate) code: SetupCode,
    /// Pairings.
    pub(crate) store: MemoryStore,
    /// One pair-setup at a time.
    pub(crate) gate: PairSetupGate,
    /// The accessory database.
    pub(crate) db: Database,
    /// The server's randomness.
    pub(crate) rng: ChaCha20Rng,
    /// Simulated time.
    pub(crate) now: Instant,
    /// The Motion Detected characteristic.
    pub(crate) motion: CharId,
    /// Side effects of writes: none.
    handler: (),
    /// Costly steps: all admitted, unless a test says otherwise.
    pub(crate) admission: Box<dyn Admission>,
}

impl Server {
    /// A server whose identity and randomness come from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let identity = AccessoryIdentity::generate(&mut rng);
        let mut iids = IidAllocator::default();
        let info = AccessoryInfo::new("hap-bridge", "Bridge", "Test Bridge", "SN0001", "0.1.0");
        let mut b = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
        b.add_service(services::protocol_information());
        b.add_service(services::motion_sensor());
        let db = Database::new(vec![b.build()]);
        let motion = db
            .find(1, &HapType::Apple(0x85), &HapType::Apple(0x22))
            .unwrap();
        Self {
            identity,
            code: SetupCode::parse(CODE).unwrap(),
            store: MemoryStore::default(),
            gate: PairSetupGate::new(),
            db,
            rng,
            now: Instant::now(),
            motion,
            handler: (),
            admission: Box::new(AdmitAll),
        }
    }

    /// What a connection of this server handles its input with.
    pub(crate) fn context(&mut self) -> ServerContext<'_> {
        ServerContext {
            identity: &self.identity,
            setup_code: &self.code,
            store: &mut self.store,
            gate: &mut self.gate,
            db: &mut self.db,
            handler: &mut self.handler,
            now: self.now,
            rng: &mut self.rng,
            admission: &mut *self.admission,
        }
    }
}

/// A server and a controller with one connection between them.
pub(crate) struct Pair {
    /// The accessory server.
    pub(crate) server: Server,
    /// The server's end of the current connection.
    pub(crate) conn: Connection,
    /// The controller's end of the current connection.
    pub(crate) http: ClientConnection,
    /// What pair-setup gave the controller, once paired.
    pub(crate) accessory: Option<PairedAccessory>,
    /// The controller's long-term key.
    key: SigningKey,
    /// The controller's randomness.
    rng: ChaCha20Rng,
    /// The id of the current connection.
    conn_id: u64,
}

impl Pair {
    /// Server and controller from `seed`, on connection 1, not paired.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            server: Server::new(seed),
            conn: Connection::new(ConnectionId(1)),
            http: ClientConnection::new(),
            accessory: None,
            key: SigningKey::from_bytes(&[seed as u8; 32]),
            rng: ChaCha20Rng::seed_from_u64(seed + 1000),
            conn_id: 1,
        }
    }

    /// Paired over connection 1, then on a fresh connection 2 that is not verified yet.
    pub(crate) fn paired(seed: u64) -> Self {
        let mut pair = Self::new(seed);
        pair.pair();
        pair.reconnect();
        pair
    }

    /// Paired over connection 1, then verified on connection 2.
    pub(crate) fn verified(seed: u64) -> Self {
        let mut pair = Self::paired(seed);
        pair.verify();
        pair
    }

    /// The accessory from pair-setup.
    pub(crate) fn accessory(&self) -> &PairedAccessory {
        self.accessory.as_ref().expect("paired first")
    }

    /// Closes the current connection and opens the next one, the controller's HTTP state reset.
    pub(crate) fn reconnect(&mut self) {
        self.conn_id += 1;
        self.conn = Connection::new(ConnectionId(self.conn_id));
        self.http = ClientConnection::new();
    }

    /// Feeds `bytes` to the server's end; returns what it transmits and its events.
    pub(crate) fn input(&mut self, bytes: &[u8]) -> (Vec<u8>, Vec<ConnectionEvent>) {
        let mut cx = self.server.context();
        self.conn.handle_input(bytes, &mut cx).unwrap();
        let out = self.conn.poll_transmit().unwrap_or_default();
        let events = std::iter::from_fn(|| self.conn.poll_event()).collect();
        (out, events)
    }

    /// The server's end of the connection and its context, to call a `Connection` method.
    pub(crate) fn server_end(&mut self) -> (&mut Connection, ServerContext<'_>) {
        (&mut self.conn, self.server.context())
    }

    /// Sends one request and returns the first message back (and the server's events).
    pub(crate) fn call(
        &mut self,
        method: &str,
        target: &str,
        ct: Option<&str>,
        body: &[u8],
    ) -> (Message, Vec<ConnectionEvent>) {
        let mut wire = Vec::new();
        self.http
            .request(method, target, ct, body, &mut wire)
            .unwrap();
        let (out, events) = self.input(&wire);
        self.http.feed(&out).unwrap();
        let msg = self.http.poll_message().unwrap().expect("a response");
        (msg, events)
    }

    /// Moves what the server end has to transmit to the controller and returns the next
    /// message, `None` when the server had nothing to send.
    pub(crate) fn pump(&mut self) -> Option<Message> {
        let out = self.conn.poll_transmit()?;
        self.http.feed(&out).unwrap();
        self.http.poll_message().unwrap()
    }

    /// Hands a database change to the server end, at the server's time.
    pub(crate) fn notify(&mut self, change: &Change) {
        self.conn.notify(change, self.server.now);
    }

    /// Pair-setup M1..M6 on the current connection.
    pub(crate) fn pair(&mut self) -> PairedAccessory {
        let mut setup = ControllerSetup::new(
            CODE,
            SrpPadding::Strip,
            PairingId(CONTROLLER_ID.to_vec()),
            self.key.clone(),
            &mut self.rng,
        );
        let m1 = setup.start();
        let (m2, _) = self.call("POST", "/pair-setup", TLV, &m1);
        let m3 = setup.handle_m2(&m2.body).unwrap();
        let (m4, _) = self.call("POST", "/pair-setup", TLV, &m3);
        let m5 = setup.handle_m4(&m4.body).unwrap();
        let (m6, events) = self.call("POST", "/pair-setup", TLV, &m5);
        assert!(matches!(
            events.as_slice(),
            [ConnectionEvent::Paired { .. }]
        ));
        let accessory = setup.handle_m6(&m6.body).unwrap();
        self.accessory = Some(accessory.clone());
        accessory
    }

    /// Pair-verify M1 and M2 on the current connection: returns M3 and what checks M4.
    pub(crate) fn verify_to_m3(&mut self) -> (ExpectM4, Vec<u8>) {
        let (expect_m2, m1) = ControllerVerify::start(&mut self.rng);
        let (m2, _) = self.call("POST", "/pair-verify", TLV, &m1);
        let acc = self.accessory().clone();
        let device_id = acc.device_id.to_string();
        let creds = ControllerCredentials {
            pairing_id: CONTROLLER_ID,
            signing_key: &self.key,
            accessory_pairing_id: device_id.as_bytes(),
            accessory_ltpk: acc.public_key,
        };
        expect_m2.handle(&m2.body, &creds).unwrap()
    }

    /// Pair-verify M1..M4 on the current connection; the controller's end then encrypts.
    pub(crate) fn verify(&mut self) {
        let (expect_m4, m3) = self.verify_to_m3();
        let (m4, events) = self.call("POST", "/pair-verify", TLV, &m3);
        assert!(matches!(
            events.as_slice(),
            [ConnectionEvent::Verified { .. }]
        ));
        let verified = expect_m4.handle(&m4.body).unwrap();
        self.http.start_session(verified.keys);
    }
}
