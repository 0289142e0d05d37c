//! Unauthenticated input cannot make a connection hold its caller for long: requests are
//! handled at most `MAX_REQUESTS_PER_TURN` per turn, and the costly M1 steps run only when the
//! caller's admission lets them (a refusal is a cheap `Busy`).
#![cfg(feature = "controller")]
// Test code: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use hap_proto::admission::{Admission, CostlyStep};
use hap_proto::server::{CloseReason, MAX_REQUESTS_PER_TURN};
use hap_proto::tlv8::{self, TlvError, TlvType, Writer};

use common::pair::Pair;

/// A pair-verify M1: State 1 and a (syntactically valid) X25519 public key.
fn verify_m1() -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 1)
        .put(TlvType::PUBLIC_KEY, &[9u8; 32]);
    w.into_vec()
}

fn request(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST /pair-verify HTTP/1.1\r\nHost: a\r\nContent-Type: application/pairing+tlv8\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The number of complete HTTP responses in `out`.
fn responses(out: &[u8]) -> usize {
    out.windows(9).filter(|w| w == b"HTTP/1.1 ").count()
}

/// Admits `left` pair-verify starts and no pair-setup start.
struct Budget {
    left: usize,
}

impl Admission for Budget {
    fn admit(&mut self, step: CostlyStep, _: Instant) -> bool {
        if step == CostlyStep::PairSetupStart || self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

#[test]
fn pipelined_requests_are_handled_a_bounded_number_per_turn() {
    let mut pair = Pair::new(3);
    let batch: Vec<u8> = (0..3 * MAX_REQUESTS_PER_TURN + 2)
        .flat_map(|_| request(&verify_m1()))
        .collect();
    let (out, _) = pair.input(&batch);
    assert_eq!(responses(&out), MAX_REQUESTS_PER_TURN, "one turn");
    assert!(pair.conn.has_backlog());
    let mut total = responses(&out);
    let mut turns = 1;
    while pair.conn.has_backlog() {
        let (conn, mut cx) = pair.server_end();
        conn.resume(&mut cx);
        let out = conn.poll_transmit().unwrap_or_default();
        assert!(responses(&out) <= MAX_REQUESTS_PER_TURN);
        total += responses(&out);
        turns += 1;
        assert!(turns < 10, "the backlog ends");
    }
    assert_eq!(
        total,
        3 * MAX_REQUESTS_PER_TURN + 2,
        "every request is answered"
    );
}

#[test]
fn a_refused_m1_is_answered_busy_without_its_cryptography() {
    let mut pair = Pair::new(4);
    pair.server.admission = Box::new(Budget { left: 1 });
    // The first M1 is admitted: M2 carries the accessory's public key.
    let (msg, _) = pair.call("POST", "/pair-verify", None, &verify_m1());
    let items = tlv8::decode(&msg.body).unwrap();
    assert_eq!(items.get_u8(TlvType::STATE), Some(2));
    assert!(items.get(TlvType::PUBLIC_KEY).is_some());
    // The next one on a fresh connection is refused: Busy, no key, and the connection ends
    // (the requests pipelined behind it get nothing).
    pair.reconnect();
    let batch: Vec<u8> = (0..3).flat_map(|_| request(&verify_m1())).collect();
    let (out, _) = pair.input(&batch);
    assert_eq!(responses(&out), 1);
    pair.http.feed(&out).unwrap();
    let msg = pair.http.poll_message().unwrap().unwrap();
    let items = tlv8::decode(&msg.body).unwrap();
    assert_eq!(items.get_u8(TlvType::ERROR), Some(TlvError::BUSY.0));
    assert!(items.get(TlvType::PUBLIC_KEY).is_none());
    assert_eq!(pair.conn.closing(), Some(&CloseReason::Refused));
    // Pair-setup M1 goes through admission too.
    pair.reconnect();
    let mut m1 = Writer::new();
    m1.put_u8(TlvType::STATE, 1).put_u8(TlvType::METHOD, 0);
    let (msg, _) = pair.call("POST", "/pair-setup", None, &m1.into_vec());
    let items = tlv8::decode(&msg.body).unwrap();
    assert_eq!(items.get_u8(TlvType::ERROR), Some(TlvError::BUSY.0));
    assert!(items.get(TlvType::SALT).is_none(), "no SRP session started");
}
