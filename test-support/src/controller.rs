//! A HAP controller over a real TCP socket, built on hap-proto's `controller` feature: pair-setup,
//! pair-verify and HTTP requests with the encrypted framing.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use hap_proto::controller::client::{ClientConnection, Message};
use hap_proto::controller::setup::{ControllerSetup, PairedAccessory, SrpPadding};
use hap_proto::controller::verify::{ControllerCredentials, ControllerVerify};
use hap_proto::pairing::PairingId;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng as _;

/// The content type of pair-setup and pair-verify bodies.
pub const TLV: Option<&str> = Some("application/pairing+tlv8");
/// The content type of HAP JSON bodies.
pub const JSON: Option<&str> = Some("application/hap+json");

/// A controller identity: its pairing id and long-term key.
#[derive(Clone)]
pub struct Identity {
    /// The controller's pairing id.
    pub id: Vec<u8>,
    /// The controller's long-term Ed25519 key.
    pub key: SigningKey,
}

impl Identity {
    /// The `n`th test identity (a fixed id and key derived from `n`).
    pub fn new(n: u8) -> Self {
        Self {
            id: format!("E2E000{n:02X}-0000-4000-8000-0000000000{n:02X}").into_bytes(),
            key: SigningKey::from_bytes(&[n.wrapping_add(1); 32]),
        }
    }
}

/// One TCP connection to the accessory.
pub struct Conn {
    stream: TcpStream,
    http: ClientConnection,
    /// The randomness of pairing on this connection (randomly seeded).
    pub rng: ChaCha20Rng,
}

impl Conn {
    /// Connects to `addr` (TCP, no delay, 200 ms read timeout).
    pub fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            http: ClientConnection::new(),
            rng: ChaCha20Rng::seed_from_u64(rand_seed()),
        }
    }

    /// Sends a request and waits for its response (events that arrive first are skipped).
    pub fn call(&mut self, method: &str, target: &str, ct: Option<&str>, body: &[u8]) -> Message {
        self.send(method, target, ct, body);
        self.next_message(Duration::from_secs(15), false)
            .expect("no response")
    }

    /// Like [`Conn::call`], but `None` instead of a panic when the socket fails or no response
    /// arrives within `timeout` (for tests that kill the accessory mid-request).
    pub fn try_call(
        &mut self,
        method: &str,
        target: &str,
        ct: Option<&str>,
        body: &[u8],
        timeout: Duration,
    ) -> Option<Message> {
        let mut wire = Vec::new();
        self.http
            .request(method, target, ct, body, &mut wire)
            .ok()?;
        self.stream.write_all(&wire).ok()?;
        self.next_message(timeout, false)
    }

    /// Sends a request without waiting for the response.
    pub fn send(&mut self, method: &str, target: &str, ct: Option<&str>, body: &[u8]) {
        let mut wire = Vec::new();
        self.http
            .request(method, target, ct, body, &mut wire)
            .unwrap();
        self.stream.write_all(&wire).unwrap();
    }

    /// Sends `requests` in one write, as a pipelining controller would.
    pub fn send_pipelined(&mut self, requests: &[(&str, &str, Option<&str>, &[u8])]) {
        let mut wire = Vec::new();
        for (method, target, ct, body) in requests {
            self.http
                .request(method, target, *ct, body, &mut wire)
                .unwrap();
        }
        self.stream.write_all(&wire).unwrap();
    }

    /// The next response (or event when `event` is true) within `timeout`; `None` on timeout or
    /// when the accessory closed the connection.
    pub fn next_message(&mut self, timeout: Duration, event: bool) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(m) = self.http.poll_message().unwrap() {
                if m.is_event == event {
                    return Some(m);
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut buf = [0u8; 8192];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self
                    .http
                    .feed(&buf[..n])
                    .expect("accessory frames authenticate"),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// Whether the accessory closed the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    let _ = self.http.feed(&buf[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }

    /// Full pair-setup with `code`; `Err` carries the accessory's refusal.
    pub fn pair_setup(
        &mut self,
        me: &Identity,
        code: &str,
        padding: SrpPadding,
    ) -> Result<PairedAccessory, hap_proto::Error> {
        let mut setup = ControllerSetup::new(
            code,
            padding,
            PairingId(me.id.clone()),
            me.key.clone(),
            &mut self.rng,
        );
        let m1 = setup.start();
        let m2 = self.call("POST", "/pair-setup", TLV, &m1);
        let m3 = setup.handle_m2(&m2.body)?;
        let m4 = self.call("POST", "/pair-setup", TLV, &m3);
        let m5 = setup.handle_m4(&m4.body)?;
        let m6 = self.call("POST", "/pair-setup", TLV, &m5);
        setup.handle_m6(&m6.body)
    }

    /// Pair-verify; on success the connection is encrypted.
    pub fn pair_verify(
        &mut self,
        me: &Identity,
        acc: &PairedAccessory,
    ) -> Result<(), hap_proto::Error> {
        let (expect_m2, m1) = ControllerVerify::start(&mut self.rng);
        let m2 = self.call("POST", "/pair-verify", TLV, &m1);
        let device_id = acc.device_id.to_string();
        let creds = ControllerCredentials {
            pairing_id: &me.id,
            signing_key: &me.key,
            accessory_pairing_id: device_id.as_bytes(),
            accessory_ltpk: acc.public_key,
        };
        let (expect_m4, m3) = expect_m2.handle(&m2.body, &creds)?;
        let m4 = self.call("POST", "/pair-verify", TLV, &m3);
        let verified = expect_m4.handle(&m4.body)?;
        self.http.start_session(verified.keys);
        Ok(())
    }

    /// A request with an optional JSON body; the status and the JSON response (`Null` if none).
    pub fn json(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        let m = self.call(method, target, body.and(JSON), &bytes);
        let json = serde_json::from_slice(&m.body).unwrap_or(serde_json::Value::Null);
        (m.status, json)
    }
}

/// The aid of the accessory whose Name (`23`) is `name`.
pub fn aid_named(db: &serde_json::Value, name: &str) -> Option<u64> {
    db["accessories"].as_array()?.iter().find_map(|a| {
        let named = a["services"].as_array()?.iter().any(|s| {
            s["characteristics"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "23" && c["value"] == name))
        });
        named.then(|| a["aid"].as_u64()).flatten()
    })
}

/// `(aid, iid)` of characteristic type `ch` in service type `svc` of accessory `aid`.
pub fn find_char(db: &serde_json::Value, aid: u64, svc: &str, ch: &str) -> Option<(u64, u64)> {
    let acc = db["accessories"]
        .as_array()?
        .iter()
        .find(|a| a["aid"] == aid)?;
    acc["services"]
        .as_array()?
        .iter()
        .filter(|s| s["type"] == svc)
        .flat_map(|s| s["characteristics"].as_array().into_iter().flatten())
        .find(|c| c["type"] == ch)
        .and_then(|c| Some((aid, c["iid"].as_u64()?)))
}

fn rand_seed() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(Instant::now())
}
