//! The `session` fuzz target: the whole connection state machine past the cryptography. The
//! accessory is paired once per process (pair-setup's SRP costs milliseconds) by the project's
//! own controller over a real [`Connection`]; each input then runs a real pair-verify on a
//! fresh connection with randomness seeded from the input, and feeds the rest as
//! [`Op`]s: sealed requests, raw and tampered frames, simulated time, value changes and
//! snapshot answers.
//!
//! Invariants: no panic; everything the server transmits opens with the controller's session
//! keys and is a sequence of HTTP messages with `Content-Length`; never more responses than
//! requests, and (when only well-formed requests were sent and the server did not close) exactly
//! one response per request; after a tampered frame no response ever comes.
// A fuzz harness: a broken expectation is a finding, reported by panicking.
#![allow(clippy::expect_used)]

use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

use super::ops::{self, Op, Request};
use super::paired::{
    CONTROLLER_ID, FuzzHandler, PAIRED, Paired, Server, database, pair_once, plain_call,
};
use crate::admission::AdmitAll;
use crate::controller::client::ClientConnection;
use crate::controller::verify::{ControllerCredentials, ControllerVerify};
use crate::db::{CharId, HapStatus, Value};
use crate::pairing::setup::{ConnectionId, PairSetupGate};
use crate::server::{Connection, ConnectionEvent};
use crate::session::Session;

/// Operations per input: bounds the work of one run.
const MAX_OPS: usize = 64;
/// Backlog turns handled at the end of a run before giving up on a connection.
const MAX_RESUMES: usize = 64;

/// One verified connection and what the controller observed on it.
struct Run<'p> {
    paired: &'p Paired,
    server: Server,
    conn: Connection,
    /// The controller's session (seals requests, opens responses).
    session: Session,
    /// The controller's HTTP parser, fed with opened plaintext.
    http: ClientConnection,
    requests: usize,
    responses: usize,
    /// Only well-formed requests were sent: each must get exactly one response.
    exact: bool,
    /// Sealed requests held back for one read.
    held: Option<Vec<u8>>,
    awaiting_snapshot: bool,
    /// Responses seen when a tampered frame was delivered: no more may come.
    tampered_at: Option<usize>,
    closed: bool,
}

/// Runs one fuzz input: `[seed, handler mode, ops...]`.
pub fn session(data: &[u8]) {
    let _ = run(data);
}

/// What a run observed: requests sent, responses received, whether the server closed.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: usize,
    responses: usize,
    closed: bool,
}

fn run(data: &[u8]) -> Option<Outcome> {
    let paired = PAIRED.get_or_init(pair_once);
    let (seed, mode, rest) = match data {
        [seed, mode, rest @ ..] => (*seed, *mode, rest),
        _ => return None,
    };
    let mut run = Run::verified(paired, seed, mode);
    for op in ops::ops(rest).take(MAX_OPS) {
        if run.closed {
            break;
        }
        run.apply(op);
    }
    Some(run.finish())
}

impl<'p> Run<'p> {
    /// Pair-verify M1..M4 on a fresh connection, randomness from `seed`.
    fn verified(paired: &'p Paired, seed: u8, mode: u8) -> Self {
        let mut server = Server {
            store: paired.store.clone(),
            gate: PairSetupGate::new(),
            db: database(),
            rng: ChaCha20Rng::seed_from_u64(u64::from(seed)),
            now: paired.epoch,
            handler: FuzzHandler { mode, writes: 0 },
            admission: AdmitAll,
        };
        let mut controller_rng = ChaCha20Rng::seed_from_u64(u64::from(seed) | 0x100);
        let mut conn = Connection::new(ConnectionId(1));
        let mut http = ClientConnection::new();
        let (expect_m2, m1) = ControllerVerify::start(&mut controller_rng);
        let mut cx = server.context(paired);
        let m2 = plain_call(&mut conn, &mut http, "/pair-verify", &m1, &mut cx);
        let device_id = paired.accessory.device_id.to_string();
        let creds = ControllerCredentials {
            pairing_id: CONTROLLER_ID,
            signing_key: &paired.key,
            accessory_pairing_id: device_id.as_bytes(),
            accessory_ltpk: paired.accessory.public_key,
        };
        let (expect_m4, m3) = expect_m2.handle(&m2, &creds).expect("pair-verify M2");
        let m4 = plain_call(&mut conn, &mut http, "/pair-verify", &m3, &mut cx);
        let verified = expect_m4.handle(&m4).expect("pair-verify M4");
        assert!(conn.is_encrypted(), "pair-verify M4 did not encrypt");
        Self {
            paired,
            server,
            conn,
            session: Session::controller(verified.keys),
            http,
            requests: 0,
            responses: 0,
            exact: true,
            held: None,
            awaiting_snapshot: false,
            tampered_at: None,
            closed: false,
        }
    }

    fn apply(&mut self, op: Op<'_>) {
        match op {
            Op::Request(req) => {
                let wire = self.seal_request(&req);
                self.requests += 1;
                self.send(wire);
            }
            Op::RawFrame(bytes) => {
                self.exact = false;
                let wire = self.seal(bytes);
                self.send(wire);
            }
            Op::Tampered { at, mask } => {
                self.flush(usize::MAX);
                self.catch_up();
                let req = Request {
                    method: "GET",
                    target: "/accessories".into(),
                    content_type: None,
                    body: Vec::new(),
                };
                let mut wire = self.seal_request(&req);
                let len = wire.len();
                // A zero mask would leave the frame intact (and answered): flip at least a bit.
                if let Some(b) = wire.get_mut(at % len.max(1)) {
                    *b ^= mask.max(1);
                }
                self.exact = false;
                // Checked from when the server notices (a flipped length prefix only shows once
                // more bytes arrive; until then a pending snapshot may still be answered).
                self.deliver(&wire);
            }
            Op::Advance(ms) => {
                self.server.now += Duration::from_millis(ms);
                if self
                    .conn
                    .poll_timeout()
                    .is_some_and(|t| t <= self.server.now)
                {
                    self.conn.handle_timeout(self.server.now);
                    self.pump();
                }
            }
            Op::Notify([a, i, k, v]) => self.notify(a, i, k, v),
            Op::RespondResource(answer) => self.respond_resource(answer),
            Op::Resume => {
                if self.conn.has_backlog() {
                    let mut cx = self.server.context(self.paired);
                    self.conn.resume(&mut cx);
                    self.pump();
                }
            }
            Op::Hold => match self.held.take() {
                Some(bytes) => self.deliver(&bytes),
                None => self.held = Some(Vec::new()),
            },
            Op::Flush(piece) => self.flush(piece),
        }
    }

    fn seal_request(&mut self, req: &Request) -> Vec<u8> {
        let mut plain = Vec::new();
        ClientConnection::new()
            .request(
                req.method,
                &req.target,
                req.content_type,
                &req.body,
                &mut plain,
            )
            .expect("a plaintext request encodes");
        self.seal(&plain)
    }

    fn seal(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        self.session
            .seal(plain, &mut wire)
            .expect("the controller seals");
        wire
    }

    /// Delivers `wire` now, or holds it back while holding.
    fn send(&mut self, wire: Vec<u8>) {
        match &mut self.held {
            Some(held) => held.extend_from_slice(&wire),
            None => self.deliver(&wire),
        }
    }

    /// Delivers what is held, in pieces of `piece` bytes, one read each.
    fn flush(&mut self, piece: usize) {
        if let Some(bytes) = self.held.take() {
            for chunk in bytes.chunks(piece) {
                self.deliver(chunk);
            }
        }
    }

    /// Handles the backlog, as the bridge does before it reads more input.
    fn catch_up(&mut self) {
        for _ in 0..MAX_RESUMES {
            if self.closed || !self.conn.has_backlog() {
                return;
            }
            let mut cx = self.server.context(self.paired);
            self.conn.resume(&mut cx);
            self.pump();
        }
    }

    /// One read of the bridge.
    fn deliver(&mut self, bytes: &[u8]) {
        self.catch_up();
        if self.closed {
            return;
        }
        let mut cx = self.server.context(self.paired);
        if self.conn.handle_input(bytes, &mut cx).is_err() {
            // HAP §4: an authentication failure closes without a response, now or later.
            assert!(
                self.conn.poll_transmit().is_none(),
                "output after a protocol error"
            );
            self.tampered_at.get_or_insert(self.responses);
            self.closed = true;
            return;
        }
        self.pump();
    }

    /// The bridge's value change of characteristic `aid.iid` to a value from `k` and `v`.
    fn notify(&mut self, a: u8, i: u8, k: u8, v: u8) {
        let id = CharId {
            aid: u64::from(1 + a % 2),
            iid: u64::from(i % 32),
        };
        let value = match k % 4 {
            0 => Value::Bool(v % 2 == 1),
            1 => Value::Uint(u64::from(v)),
            2 => Value::Float(f64::from(v)),
            _ => Value::Tlv8(vec![1, 1, v]),
        };
        if let Ok(Some(change)) = self.server.db.set_value(id, value) {
            self.conn.notify(&change, self.server.now);
            self.pump();
        }
    }

    fn respond_resource(&mut self, answer: Option<&[u8]>) {
        if !self.awaiting_snapshot {
            return;
        }
        self.awaiting_snapshot = false;
        let result = answer
            .map(<[u8]>::to_vec)
            .ok_or(HapStatus::RESOURCE_DOES_NOT_EXIST);
        let mut cx = self.server.context(self.paired);
        self.conn.respond_resource(result, &mut cx);
        self.pump();
    }

    /// Acts on the connection's events and moves its output to the controller, checking it.
    fn pump(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                ConnectionEvent::PairingsRemoved { removed, .. } => {
                    self.conn.close_if_controller(&removed);
                }
                ConnectionEvent::Snapshot(_) => self.awaiting_snapshot = true,
                ConnectionEvent::Paired { .. } | ConnectionEvent::Verified { .. } => {
                    panic!("pairing event on a verified connection: {event:?}")
                }
                _ => {}
            }
        }
        if let Some(out) = self.conn.poll_transmit() {
            self.session.feed(&out);
            let mut plain = Vec::new();
            if let Err(e) = self.session.open_available(&mut plain) {
                panic!("the controller cannot open the accessory's frames: {e}");
            }
            self.http.feed(&plain).expect("plaintext feeds");
            loop {
                match self.http.poll_message() {
                    Ok(Some(m)) => {
                        assert!(m.has_content_length, "a message without Content-Length");
                        if !m.is_event {
                            self.responses += 1;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => panic!("the accessory sent malformed HTTP: {e}"),
                }
            }
        }
        assert!(
            self.responses <= self.requests || !self.exact,
            "{} responses to {} requests",
            self.responses,
            self.requests
        );
        if let Some(at) = self.tampered_at {
            assert_eq!(self.responses, at, "a response after a tampered frame");
        }
        if self.conn.closing().is_some() {
            self.closed = true;
        }
    }

    /// Delivers what is held, answers a pending snapshot, handles the backlog; then every
    /// request has its response unless the server closed.
    fn finish(mut self) -> Outcome {
        self.flush(usize::MAX);
        for _ in 0..MAX_RESUMES {
            self.catch_up();
            if self.awaiting_snapshot {
                self.respond_resource(None);
            } else {
                break;
            }
        }
        if !self.closed && self.exact && !self.conn.has_backlog() && !self.awaiting_snapshot {
            assert_eq!(self.responses, self.requests, "a request went unanswered");
        }
        Outcome {
            requests: self.requests,
            responses: self.responses,
            closed: self.closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Outcome, run};

    /// Every seed of `fuzz/corpus/session` (and the regression inputs there) keeps the
    /// invariants.
    #[test]
    fn corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/session");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the session corpus") {
            let path = entry.expect("an entry").path();
            eprintln!("replaying {}", path.display());
            let data = std::fs::read(&path).expect("a corpus file");
            assert!(run(&data).is_some(), "a corpus file too short to run");
            n += 1;
        }
        assert!(n >= 5, "only {n} corpus files");
    }

    /// Nine pipelined reads of `/accessories` (over a backlog turn) get nine responses.
    #[test]
    fn pipelined_requests_are_all_answered() {
        let mut data = vec![1, 0, 18, 0];
        data.extend([0, 0].repeat(9));
        data.extend([19, 1, 7]);
        let outcome = run(&data);
        assert_eq!(
            outcome,
            Some(Outcome {
                requests: 9,
                responses: 9,
                closed: false
            })
        );
    }

    /// Removing the session's own pairing answers, then closes the connection.
    #[test]
    fn removing_own_pairing_closes() {
        let outcome = run(&[2, 0, 8, 2, 2, 0, 0, 0]);
        assert_eq!(
            outcome,
            Some(Outcome {
                requests: 1,
                responses: 1,
                closed: true
            })
        );
    }
}
