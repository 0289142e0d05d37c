//! One controller connection of an accessory server, sans-IO (the quinn-proto shape).
//!
//! The caller (the bridge's connection task) feeds the bytes it reads with
//! [`Connection::handle_input`], writes whatever [`Connection::poll_transmit`] yields, acts on
//! [`Connection::poll_event`], forwards value changes of other connections with
//! [`Connection::notify`] and wakes the connection at [`Connection::poll_timeout`].
//!
//! ```text
//!  socket bytes ─► [Encrypted: Opener] ─► RequestParser ─► route ─► response ─► [Sealer] ─► out
//!                                                   pair-setup, pair-verify, /pairings,
//!                                                   /accessories, /characteristics, /prepare,
//!                                                   /resource (answered later by the caller)
//! ```
//!
//! Rules kept here: before pair-verify only `/pair-setup`, `/pair-verify` and (unpaired)
//! `/identify` are served; anything else gets `470` with `{"status":-70401}` (HAP §5.1). After
//! pair-verify M4 every byte is framed (§4) and any authentication failure closes the connection
//! without a response. Events go out only between responses, never inside one (§5.8). Each
//! encrypted request is served only while the session's controller is still paired (§2.8).

use std::collections::VecDeque;
use std::time::Instant;

use crate::CryptoRandom;
use crate::admission::{Admission, CostlyStep};
use crate::db::events;
use crate::db::{Change, ClientState, Database, HapStatus, WriteHandler};
use crate::error::Error;
use crate::http::{ContentType, Method, Parsed, Request, RequestParser, Status, encode_response};
use crate::pairing::pairings;
use crate::pairing::setup::{ConnectionId, PairSetup, PairSetupGate, SetupContext};
use crate::pairing::verify::{PairVerify, VerifyContext};
use crate::pairing::{AccessoryIdentity, Pairing, PairingId, PairingStore};
use crate::session::Session;
use crate::setup::SetupCode;
use crate::tlv8::{self, TlvError, TlvType, Writer};

/// What one request needs from the accessory server.
pub struct ServerContext<'a> {
    /// The accessory's identity.
    pub identity: &'a AccessoryIdentity,
    /// The setup code.
    pub setup_code: &'a SetupCode,
    /// Pairings and the failed-attempt counter.
    pub store: &'a mut dyn PairingStore,
    /// One pair-setup at a time across the server's connections.
    pub gate: &'a mut PairSetupGate,
    /// The accessory database.
    pub db: &'a mut Database,
    /// Side effects of characteristic writes (cameras, identify).
    pub handler: &'a mut dyn WriteHandler,
    /// The current time.
    pub now: Instant,
    /// Randomness.
    pub rng: &'a mut dyn CryptoRandom,
    /// Whether costly unauthenticated steps (pair-setup and pair-verify M1) may run now.
    pub admission: &'a mut dyn Admission,
}

/// Something the caller must act on.
#[derive(Debug)]
pub enum ConnectionEvent {
    /// Pair-verify succeeded: the connection is encrypted and belongs to this controller.
    Verified {
        /// The controller.
        controller: PairingId,
    },
    /// Pair-setup stored a pairing; once the M6 reply is written, announce `sf=0` (HAP §8.4).
    Paired {
        /// The new pairing.
        pairing: Pairing,
    },
    /// Pairings were removed through `/pairings`: close every connection of these controllers
    /// once this reply is written; if `now_unpaired`, announce `sf=1`.
    PairingsRemoved {
        /// The removed controllers.
        removed: Vec<PairingId>,
        /// Whether no pairing is left.
        now_unpaired: bool,
    },
    /// A write changed values: call [`Connection::notify`] on every *other* connection.
    Changes(Vec<Change>),
    /// A pair-setup request was refused with a TLV error (wrong code, Busy, MaxTries, ...), for
    /// the caller's log.
    PairSetupRefused {
        /// Why.
        error: Error,
    },
    /// `POST /identify` while unpaired (HAP §5.1).
    Identify,
    /// `POST /resource`: produce a snapshot and answer with [`Connection::respond_resource`].
    /// No other request of this connection is processed until then.
    Snapshot(SnapshotRequest),
}

/// A snapshot request (HAP §5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// The camera's accessory id, when given (bridged cameras).
    pub aid: Option<u64>,
    /// Requested width in pixels.
    pub width: u32,
    /// Requested height in pixels.
    pub height: u32,
}

/// Why a connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// A frame failed to authenticate or was malformed (HAP §4): closed without a response.
    Protocol(Error),
    /// The request could not be parsed; the error response is flushed, then the connection ends.
    BadRequest,
    /// The controller's pairing was removed.
    PairingRemoved,
    /// A pair-setup or pair-verify start was refused by the caller's admission: the `Busy`
    /// answer is flushed, then the connection ends (a peer pipelining starts gets one answer per
    /// connection, not one per request).
    Refused,
}

enum Phase {
    Plain {
        setup: PairSetup,
        verify: PairVerify,
    },
    Encrypted {
        session: Session,
        controller: PairingId,
    },
}

/// One connection from a controller to an accessory server.
pub struct Connection {
    id: ConnectionId,
    phase: Phase,
    parser: RequestParser,
    client: ClientState,
    /// Plaintext that the opener produced but the parser has not consumed yet is inside the
    /// parser; this holds bytes ready to be written to the socket.
    out: Vec<u8>,
    events: VecDeque<ConnectionEvent>,
    /// A `/resource` request awaiting the caller's answer.
    awaiting_snapshot: bool,
    /// Requests may be waiting in the parser: a turn stopped at [`MAX_REQUESTS_PER_TURN`].
    backlog: bool,
    closing: Option<CloseReason>,
}

impl Connection {
    /// A new plaintext connection.
    pub fn new(id: ConnectionId) -> Self {
        Self {
            id,
            phase: Phase::Plain {
                setup: PairSetup::new(),
                verify: PairVerify::new(),
            },
            parser: RequestParser::new(),
            client: ClientState::default(),
            out: Vec::new(),
            events: VecDeque::new(),
            awaiting_snapshot: false,
            backlog: false,
            closing: None,
        }
    }

    /// Feeds bytes read from the socket.
    ///
    /// # Errors
    /// A framing or authentication error (HAP §4): close the socket at once, without writing
    /// anything more.
    pub fn handle_input(&mut self, bytes: &[u8], cx: &mut ServerContext<'_>) -> Result<(), Error> {
        if self.closing.is_some() {
            return Ok(());
        }
        let mut plain = Vec::new();
        let input = match &mut self.phase {
            Phase::Plain { .. } => bytes,
            Phase::Encrypted { session, .. } => {
                session.feed(bytes);
                if let Err(e) = session.open_available(&mut plain) {
                    self.closing = Some(CloseReason::Protocol(e.clone()));
                    self.out.clear();
                    return Err(e);
                }
                &plain
            }
        };
        if self.awaiting_snapshot {
            // The pending `/resource` answer comes first (HAP §5.5): keep these requests
            // unparsed for `respond_resource` (parsing one here would drop it).
            self.parser.push(input);
            return Ok(());
        }
        let mut parsed = self.parser.feed(input);
        self.drive(&mut parsed, cx);
        Ok(())
    }

    /// Whether requests that arrived are still waiting because a turn handled
    /// [`MAX_REQUESTS_PER_TURN`] already: the caller releases what it holds (its server lock),
    /// lets others run, and calls [`Connection::resume`] before reading more input.
    pub fn has_backlog(&self) -> bool {
        self.backlog && !self.awaiting_snapshot && self.closing.is_none()
    }

    /// Handles the next requests of the backlog (at most [`MAX_REQUESTS_PER_TURN`]).
    pub fn resume(&mut self, cx: &mut ServerContext<'_>) {
        self.backlog = false;
        let mut parsed = self.parser.poll();
        self.drive(&mut parsed, cx);
    }

    /// Bytes to write to the socket, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.out.is_empty()).then(|| std::mem::take(&mut self.out))
    }

    /// The next event for the caller.
    pub fn poll_event(&mut self) -> Option<ConnectionEvent> {
        self.events.pop_front()
    }

    /// Queues a value change made elsewhere (another connection's write, or the bridge) for this
    /// connection's subscriptions, and sends it if it is due and no request is in progress.
    pub fn notify(&mut self, change: &Change, now: Instant) {
        if self.is_encrypted() {
            self.client.notify(change, now);
            self.flush_events(now);
        }
    }

    /// Sends events whose coalescing delay has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.flush_events(now);
    }

    /// When [`Connection::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.awaiting_snapshot || self.closing.is_some() {
            return None;
        }
        self.client.events.poll_timeout()
    }

    /// Answers the pending `/resource` request with a JPEG, or with a HAP status on failure.
    pub fn respond_resource(
        &mut self,
        result: Result<Vec<u8>, HapStatus>,
        cx: &mut ServerContext<'_>,
    ) {
        if !self.awaiting_snapshot {
            return;
        }
        self.awaiting_snapshot = false;
        match result {
            Ok(jpeg) => self.respond(Status::OK, Some((ContentType::Jpeg, &jpeg))),
            Err(status) => {
                let body = format!("{{\"status\":{}}}", status.0);
                let code = if status == HapStatus::RESOURCE_DOES_NOT_EXIST {
                    Status::NOT_FOUND
                } else {
                    Status::INTERNAL_SERVER_ERROR
                };
                self.respond(code, Some((ContentType::HapJson, body.as_bytes())));
            }
        }
        // Requests that arrived meanwhile are still in the parser.
        let mut parsed = self.parser.poll();
        self.drive(&mut parsed, cx);
    }

    /// Closes the connection if it belongs to one of `controllers` (their pairing was removed).
    /// Returns whether it did.
    pub fn close_if_controller(&mut self, controllers: &[PairingId]) -> bool {
        let hit = self.controller().is_some_and(|c| controllers.contains(c));
        if hit {
            self.closing = Some(CloseReason::PairingRemoved);
        }
        hit
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The verified controller, once pair-verify succeeded.
    pub fn controller(&self) -> Option<&PairingId> {
        match &self.phase {
            Phase::Encrypted { controller, .. } => Some(controller),
            Phase::Plain { .. } => None,
        }
    }

    /// Whether pair-verify succeeded.
    pub fn is_encrypted(&self) -> bool {
        matches!(self.phase, Phase::Encrypted { .. })
    }

    /// Set when the connection must end: the caller writes what [`Connection::poll_transmit`]
    /// still yields (nothing for a protocol error) and closes the socket.
    pub fn closing(&self) -> Option<&CloseReason> {
        self.closing.as_ref()
    }

    /// Processes complete requests one at a time, at most [`MAX_REQUESTS_PER_TURN`] (the rest
    /// waits in the parser, see [`Connection::has_backlog`]), then sends due events.
    fn drive(&mut self, parsed: &mut Parsed, cx: &mut ServerContext<'_>) {
        let mut handled = 0;
        loop {
            if self.awaiting_snapshot || self.closing.is_some() {
                return;
            }
            match std::mem::replace(parsed, Parsed::Incomplete) {
                Parsed::Incomplete => break,
                Parsed::Request(req) => self.route(&req, cx),
                Parsed::Invalid(invalid) => {
                    self.respond(invalid.status(), None);
                    self.closing = Some(CloseReason::BadRequest);
                    return;
                }
            }
            if self.awaiting_snapshot || self.closing.is_some() {
                return;
            }
            handled += 1;
            if handled == MAX_REQUESTS_PER_TURN {
                // The next requests stay in the parser for the next turn.
                self.backlog = true;
                break;
            }
            *parsed = self.parser.poll();
        }
        self.flush_events(cx.now);
    }

    fn route(&mut self, req: &Request, cx: &mut ServerContext<'_>) {
        if !self.controller_still_paired(cx) {
            return;
        }
        let path = req.path.as_str();
        let allowed = match path {
            "/pair-setup" | "/pair-verify" | "/pairings" | "/identify" | "/resource" => {
                req.method == Method::Post
            }
            "/accessories" => req.method == Method::Get,
            "/characteristics" => matches!(req.method, Method::Get | Method::Put),
            "/prepare" => req.method == Method::Put,
            _ => {
                self.respond(Status::NOT_FOUND, None);
                return;
            }
        };
        if !allowed {
            self.respond(Status::METHOD_NOT_ALLOWED, None);
            return;
        }
        match path {
            "/pair-setup" => self.pair_setup(req, cx),
            "/pair-verify" => self.pair_verify(req, cx),
            "/identify" => self.identify(cx),
            _ if !self.is_encrypted() => {
                // HAP §5.1: every other endpoint needs a verified session.
                self.respond_status(Status::CONNECTION_AUTHORIZATION_REQUIRED, HapStatus(-70401));
            }
            "/pairings" => self.pairings(req, cx),
            "/accessories" => {
                let json = cx.db.accessories_json();
                self.respond(Status::OK, Some((ContentType::HapJson, &json)));
            }
            "/characteristics" if req.method == Method::Get => {
                let (status, body) = cx.db.read(req.query.as_deref().unwrap_or(""), &self.client);
                self.respond_json(status, &body);
            }
            "/characteristics" => {
                let resp = cx.db.write(&req.body, &mut self.client, cx.now, cx.handler);
                if !resp.changes.is_empty() {
                    self.events
                        .push_back(ConnectionEvent::Changes(resp.changes));
                }
                self.respond_json(resp.status, &resp.body);
            }
            "/prepare" => {
                let (status, body) = cx.db.prepare(&req.body, &mut self.client, cx.now);
                self.respond_json(status, &body);
            }
            "/resource" => match parse_snapshot(&req.body) {
                Some(snapshot) => {
                    self.awaiting_snapshot = true;
                    self.events.push_back(ConnectionEvent::Snapshot(snapshot));
                }
                None => self.respond(Status::BAD_REQUEST, None),
            },
            _ => self.respond(Status::NOT_FOUND, None),
        }
    }

    /// HAP §2.8: a removed controller is cut off. Its sessions are closed when the removal is
    /// announced, but requests already read (pipelined, or queued behind a snapshot) must not
    /// run meanwhile: every encrypted request first checks, in the store, that the session's
    /// controller is still paired, and otherwise the connection closes without serving it.
    fn controller_still_paired(&mut self, cx: &ServerContext<'_>) -> bool {
        let paired = match &self.phase {
            Phase::Encrypted { controller, .. } => cx.store.pairing(controller).is_some(),
            Phase::Plain { .. } => true,
        };
        if !paired {
            self.closing = Some(CloseReason::PairingRemoved);
        }
        paired
    }

    fn pair_setup(&mut self, req: &Request, cx: &mut ServerContext<'_>) {
        if !matches!(self.phase, Phase::Plain { .. }) {
            // HAP §2.5: pair-setup only on a plain connection.
            self.respond(Status::BAD_REQUEST, None);
            return;
        }
        if !self.admitted(&req.body, CostlyStep::PairSetupStart, cx) {
            return;
        }
        let Phase::Plain { setup, .. } = &mut self.phase else {
            return;
        };
        let mut scx = SetupContext {
            identity: cx.identity,
            setup_code: cx.setup_code,
            store: &mut *cx.store,
            gate: &mut *cx.gate,
            conn: self.id,
            now: cx.now,
            rng: &mut *cx.rng,
        };
        match setup.handle(&req.body, &mut scx) {
            Ok(reply) => {
                self.respond(Status::OK, Some((ContentType::PairingTlv8, &reply.body)));
                if let Some(pairing) = reply.paired {
                    self.events.push_back(ConnectionEvent::Paired { pairing });
                }
                if let Some(error) = reply.error {
                    self.events
                        .push_back(ConnectionEvent::PairSetupRefused { error });
                }
            }
            Err(_) => self.respond(Status::BAD_REQUEST, None),
        }
    }

    fn pair_verify(&mut self, req: &Request, cx: &mut ServerContext<'_>) {
        if !matches!(self.phase, Phase::Plain { .. }) {
            self.respond(Status::BAD_REQUEST, None);
            return;
        }
        if !self.admitted(&req.body, CostlyStep::PairVerifyStart, cx) {
            return;
        }
        let Phase::Plain { verify, .. } = &mut self.phase else {
            return;
        };
        let mut vcx = VerifyContext {
            identity: cx.identity,
            store: &*cx.store,
            rng: &mut *cx.rng,
        };
        match verify.handle(&req.body, &mut vcx) {
            Ok(reply) => {
                // M4 goes out in plaintext; every byte after it is framed (HAP §3).
                self.respond(Status::OK, Some((ContentType::PairingTlv8, &reply.body)));
                if let Some(verified) = reply.established {
                    let controller = verified.controller.clone();
                    cx.gate.connection_closed(self.id);
                    let mut session = Session::accessory(verified.keys);
                    // Bytes that came after M3 in the same read are frames of the new session,
                    // never plaintext requests (HAP §3): decrypt them or end the connection.
                    let after_m3 = self.parser.take_buffered();
                    if !after_m3.is_empty() {
                        session.feed(&after_m3);
                        let mut plain = Vec::new();
                        if let Err(e) = session.open_available(&mut plain) {
                            self.closing = Some(CloseReason::Protocol(e));
                            self.out.clear();
                            return;
                        }
                        self.parser.push(&plain);
                    }
                    self.phase = Phase::Encrypted {
                        session,
                        controller: controller.clone(),
                    };
                    self.events
                        .push_back(ConnectionEvent::Verified { controller });
                }
            }
            Err(_) => self.respond(Status::BAD_REQUEST, None),
        }
    }

    /// Whether a pair-setup or pair-verify body may be handled: an M1 (`State=1`), whose
    /// cryptography is costly and unauthenticated, only when the caller admits it (see
    /// [`crate::admission`]); a refused one is answered `State=2, Error=Busy` here.
    fn admitted(&mut self, body: &[u8], step: CostlyStep, cx: &mut ServerContext<'_>) -> bool {
        let is_m1 = tlv8::decode(body)
            .ok()
            .and_then(|items| items.get_u8(TlvType::STATE))
            == Some(1);
        if !is_m1 || cx.admission.admit(step, cx.now) {
            return true;
        }
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 2)
            .put_u8(TlvType::ERROR, TlvError::BUSY.0);
        self.respond(Status::OK, Some((ContentType::PairingTlv8, &w.into_vec())));
        self.closing = Some(CloseReason::Refused);
        false
    }

    fn pairings(&mut self, req: &Request, cx: &mut ServerContext<'_>) {
        let Some(caller) = self.controller().cloned() else {
            return;
        };
        match pairings::handle(&req.body, &caller, cx.store) {
            Ok(reply) => {
                self.respond(Status::OK, Some((ContentType::PairingTlv8, &reply.body)));
                if !reply.removed.is_empty() || reply.now_unpaired {
                    if reply.removed.contains(&caller) {
                        self.closing = Some(CloseReason::PairingRemoved);
                    }
                    self.events.push_back(ConnectionEvent::PairingsRemoved {
                        removed: reply.removed,
                        now_unpaired: reply.now_unpaired,
                    });
                }
            }
            Err(Error::Store(_)) => {
                let mut w = Writer::new();
                w.put_u8(TlvType::STATE, 2).put_u8(TlvType::ERROR, 1);
                self.respond(Status::OK, Some((ContentType::PairingTlv8, &w.into_vec())));
            }
            Err(_) => self.respond(Status::BAD_REQUEST, None),
        }
    }

    fn identify(&mut self, cx: &mut ServerContext<'_>) {
        if cx.store.is_paired() {
            // HAP §5.1: identify is for unpaired accessories only.
            self.respond_status(Status::BAD_REQUEST, HapStatus(-70401));
        } else {
            self.respond(Status::NO_CONTENT, None);
            self.events.push_back(ConnectionEvent::Identify);
        }
    }

    fn respond_status(&mut self, status: Status, hap: HapStatus) {
        let body = format!("{{\"status\":{}}}", hap.0);
        self.respond(status, Some((ContentType::HapJson, body.as_bytes())));
    }

    fn respond_json(&mut self, status: Status, body: &[u8]) {
        let body = (!body.is_empty()).then_some((ContentType::HapJson, body));
        self.respond(status, body);
    }

    /// Encodes a response and queues it, sealed once the session is encrypted.
    fn respond(&mut self, status: Status, body: Option<(ContentType, &[u8])>) {
        let mut plain = Vec::new();
        encode_response(status, body, &mut plain);
        self.send(&plain);
    }

    fn send(&mut self, plain: &[u8]) {
        match &mut self.phase {
            Phase::Plain { .. } => self.out.extend_from_slice(plain),
            Phase::Encrypted { session, .. } => {
                if let Err(e) = session.seal(plain, &mut self.out) {
                    self.closing = Some(CloseReason::Protocol(e));
                }
            }
        }
    }

    fn flush_events(&mut self, now: Instant) {
        if self.awaiting_snapshot || self.closing.is_some() || !self.is_encrypted() {
            return;
        }
        while let Some(batch) = self.client.events.poll_event(now) {
            let mut plain = Vec::new();
            events::encode(&batch, &mut plain);
            self.send(&plain);
        }
    }
}

impl core::fmt::Debug for Connection {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("controller", &self.controller())
            .field("closing", &self.closing)
            .finish_non_exhaustive()
    }
}

/// Parses a `/resource` body: `{"resource-type":"image","image-width":W,"image-height":H,
/// "aid":A}` (HAP §5.5).
fn parse_snapshot(body: &[u8]) -> Option<SnapshotRequest> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    if json
        .get("resource-type")
        .is_some_and(|ty| ty.as_str() != Some("image"))
    {
        return None;
    }
    let dim = |key: &str| -> Option<u32> {
        let v = u32::try_from(json.get(key)?.as_u64()?).ok()?;
        (1..=MAX_SNAPSHOT_SIDE).contains(&v).then_some(v)
    };
    Some(SnapshotRequest {
        aid: json.get("aid").and_then(serde_json::Value::as_u64),
        width: dim("image-width")?,
        height: dim("image-height")?,
    })
}

/// The largest snapshot side we accept (larger requests are malformed).
const MAX_SNAPSHOT_SIDE: u32 = 7680;

/// Requests one turn of [`Connection::handle_input`] or [`Connection::resume`] handles at most:
/// a single read can hold a hundred pipelined requests, and the caller holds its server's lock
/// for a turn.
pub const MAX_REQUESTS_PER_TURN: usize = 8;
