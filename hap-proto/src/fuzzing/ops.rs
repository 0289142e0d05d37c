//! The operations of the `session` fuzz target, decoded from the input: one kind byte, one
//! length byte, then that many payload bytes (fewer at the end of the input). Structured kinds
//! build well-formed requests from their payload so the fuzzer reaches the handlers behind the
//! parsers; raw kinds pass the payload through.

use crate::controller::verify::{
    add_pairing_request, list_pairings_request, remove_pairing_request,
};
use crate::pairing::Permissions;

/// One step of a fuzzed session.
#[derive(Debug)]
pub(super) enum Op<'a> {
    /// An HTTP request, sealed by the controller (`method`, `target`, content type, body).
    Request(Request),
    /// Plaintext sealed as-is: any bytes, possibly several or partial requests.
    RawFrame(&'a [u8]),
    /// A sealed `GET /accessories` with one byte flipped (`at`, `mask`): the server must never
    /// answer again.
    Tampered { at: usize, mask: u8 },
    /// Simulated time passes (milliseconds).
    Advance(u64),
    /// The bridge changes a value (`aid` selector, `iid`, value kind, value byte).
    Notify([u8; 4]),
    /// The caller answers a pending `/resource` request: a JPEG, or a HAP status when `None`.
    RespondResource(Option<&'a [u8]>),
    /// The caller handles the next backlog turn.
    Resume,
    /// Toggles holding requests back, to deliver several in one read (pipelining).
    Hold,
    /// Delivers what is held in pieces of this size.
    Flush(usize),
}

/// A request for the controller to seal.
#[derive(Debug)]
pub(super) struct Request {
    pub(super) method: &'static str,
    pub(super) target: String,
    pub(super) content_type: Option<&'static str>,
    pub(super) body: Vec<u8>,
}

const JSON: Option<&str> = Some("application/hap+json");
const TLV: Option<&str> = Some("application/pairing+tlv8");

/// The operations of `data`.
pub(super) fn ops(data: &[u8]) -> impl Iterator<Item = Op<'_>> {
    let mut rest = data;
    core::iter::from_fn(move || {
        let (&kind, tail) = rest.split_first()?;
        let (len, tail) = match tail.split_first() {
            Some((&len, tail)) => (usize::from(len), tail),
            None => (0, tail),
        };
        let (payload, tail) = tail.split_at(len.min(tail.len()));
        rest = tail;
        Some(decode(kind, payload))
    })
}

fn decode(kind: u8, p: &[u8]) -> Op<'_> {
    let byte = |i: usize| p.get(i).copied().unwrap_or(0);
    let req = |method, target: String, content_type, body: Vec<u8>| {
        Op::Request(Request {
            method,
            target,
            content_type,
            body,
        })
    };
    match kind % 20 {
        0 => req("GET", "/accessories".into(), None, Vec::new()),
        1 => req(
            "GET",
            format!("/characteristics?{}", printable(p)),
            None,
            Vec::new(),
        ),
        2 => req(
            "GET",
            format!("/characteristics?{}", read_query(p)),
            None,
            Vec::new(),
        ),
        3 => req("PUT", "/characteristics".into(), JSON, p.to_vec()),
        4 => req("PUT", "/characteristics".into(), JSON, write_body(p)),
        5 => req("PUT", "/prepare".into(), JSON, p.to_vec()),
        6 => {
            let ttl = u16::from_be_bytes([byte(0), byte(1)]);
            let body = format!("{{\"ttl\":{ttl},\"pid\":{}}}", byte(2) % 4);
            req("PUT", "/prepare".into(), JSON, body.into_bytes())
        }
        7 => req("POST", "/pairings".into(), TLV, p.to_vec()),
        8 => req("POST", "/pairings".into(), TLV, pairings_body(p)),
        9 => req("POST", "/resource".into(), JSON, p.to_vec()),
        10 => {
            let side = |i: usize| u16::from_be_bytes([byte(i), byte(i + 1)]) % 8000;
            let body = format!(
                "{{\"resource-type\":\"image\",\"image-width\":{},\"image-height\":{},\"aid\":{}}}",
                side(0),
                side(2),
                byte(4) % 4
            );
            req("POST", "/resource".into(), JSON, body.into_bytes())
        }
        11 => {
            let methods = ["GET", "PUT", "POST", "DELETE", "HEAD"];
            let method = methods[usize::from(byte(0)) % methods.len()];
            let target = format!("/{}", printable(p.get(1..).unwrap_or_default()));
            req(method, target, JSON, Vec::new())
        }
        12 => Op::RawFrame(p),
        13 => Op::Tampered {
            at: usize::from(u16::from_be_bytes([byte(0), byte(1)])),
            mask: byte(2) | 1,
        },
        14 => Op::Advance(u64::from(u16::from_be_bytes([byte(0), byte(1)])) * 10),
        15 => Op::Notify([byte(0), byte(1), byte(2), byte(3)]),
        16 => Op::RespondResource((byte(0) % 2 == 0).then(|| p.get(1..).unwrap_or_default())),
        17 => Op::Resume,
        18 => Op::Hold,
        _ => Op::Flush(usize::from(byte(0)).max(1)),
    }
}

/// The payload as a request-target fragment: visible ASCII only, so the request stays HTTP.
fn printable(p: &[u8]) -> String {
    p.iter().map(|&b| char::from(0x21 + b % 0x5e)).collect()
}

/// `aid` 1..=3 (3 does not exist) and `iid` < 32 from two bytes.
fn char_id(a: u8, i: u8) -> (u8, u8) {
    (1 + a % 3, i % 32)
}

/// `id=A.I,...` with `meta`, `perms`, `type` and `ev` chosen by the first byte's bits.
fn read_query(p: &[u8]) -> String {
    let flags = p.first().copied().unwrap_or(0);
    let ids: Vec<String> = p
        .get(1..)
        .unwrap_or_default()
        .chunks(2)
        .map(|c| {
            let (a, i) = char_id(c[0], c.get(1).copied().unwrap_or(0));
            format!("{a}.{i}")
        })
        .collect();
    let mut q = format!("id={}", ids.join(","));
    for (bit, name) in [(1, "meta"), (2, "perms"), (4, "type"), (8, "ev")] {
        if flags & bit != 0 {
            q.push_str(&format!("&{name}={}", (flags >> 4) & 1));
        }
    }
    q
}

/// A JSON value of the kind `k` from the byte `v`.
pub(super) fn json_value(k: u8, v: u8) -> String {
    match k % 8 {
        0 => (v % 2 == 1).to_string(),
        1 => v.to_string(),
        2 => format!("-{v}"),
        3 => format!("{v}.5"),
        4 => format!("\"s{v}\""),
        5 => "null".into(),
        6 => "\"AQEA\"".into(),
        _ => format!("{}", u64::from(v) << 40),
    }
}

/// `{"characteristics":[...],"pid":N}`: four bytes per write (id, value kind and byte, with
/// `ev` and `r` from the kind's high bits), the first byte's bits choosing `pid`.
fn write_body(p: &[u8]) -> Vec<u8> {
    let flags = p.first().copied().unwrap_or(0);
    let writes: Vec<String> = p
        .get(1..)
        .unwrap_or_default()
        .chunks(4)
        .map(|c| {
            let b = |i: usize| c.get(i).copied().unwrap_or(0);
            let (a, i) = char_id(b(0), b(1));
            let mut w = format!("{{\"aid\":{a},\"iid\":{i}");
            if b(2) & 0x10 == 0 {
                w.push_str(&format!(",\"value\":{}", json_value(b(2), b(3))));
            }
            if b(2) & 0x20 != 0 {
                w.push_str(&format!(",\"ev\":{}", b(2) & 0x40 != 0));
            }
            if b(2) & 0x80 != 0 {
                w.push_str(",\"r\":true");
            }
            w.push('}');
            w
        })
        .collect();
    let mut body = format!("{{\"characteristics\":[{}]", writes.join(","));
    if flags & 1 != 0 {
        body.push_str(&format!(",\"pid\":{}", (flags >> 1) % 4));
    }
    body.push('}');
    body.into_bytes()
}

/// The controller ids the pairings operations use: the session's own and three others.
pub(super) fn pairing_id(sel: u8) -> Vec<u8> {
    match sel % 4 {
        0 => super::paired::CONTROLLER_ID.to_vec(),
        n => format!("FUZZ-CONTROLLER-{n}").into_bytes(),
    }
}

/// List, add (an id, a key byte, admin or not) or remove pairings.
fn pairings_body(p: &[u8]) -> Vec<u8> {
    let byte = |i: usize| p.get(i).copied().unwrap_or(0);
    let perms = if byte(0) & 0x80 != 0 {
        Permissions::Admin
    } else {
        Permissions::User
    };
    match byte(0) % 3 {
        0 => list_pairings_request(),
        1 => add_pairing_request(&pairing_id(byte(1)), &[byte(2); 32], perms),
        _ => remove_pairing_request(&pairing_id(byte(1))),
    }
}
