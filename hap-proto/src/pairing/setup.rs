//! The accessory side of pair-setup, M1 to M6 (HAP §2.2), over `POST /pair-setup`.
//!
//! One [`PairSetup`] lives in each plain (not yet verified) connection; one [`PairSetupGate`] is
//! shared by all connections of one accessory server, so that only one pair-setup runs at a time
//! (HAP §2.5). The caller feeds each request body to [`PairSetup::handle`] with a
//! [`SetupContext`] and answers with the returned [`SetupReply`]:
//!
//! ```text
//!  M1 ─► checks (paired? tries? gate?) ─► salt, b, B      ─► M2 (State=2, PublicKey=B, Salt)
//!  M3 ─► SRP: u, S, K, check M1 (all padding variants)   ─► M4 (State=4, Proof=M2)
//!  M5 ─► open(PS-Msg05), verify controller signature,
//!        store the pairing as admin                       ─► M6 (State=6, EncryptedData)
//! ```
//!
//! # Contract
//!
//! - `Ok(reply)`: send `reply.body` as HTTP 200 `application/pairing+tlv8`. A refusal (wrong
//!   setup code, Busy, ...) is such a reply, with `State = received + 1` and a `kTLVError`; the
//!   machine is then back at M1 and the gate released. When `reply.paired` is `Some`, the
//!   pairing has been stored: after the response has been **sent**, update mDNS `sf` to 0 (HAP
//!   §8.4; iOS aborts if it changes earlier).
//! - `Err(Error::Decode(_))`: the body is not TLV8 or has no valid State item; answer HTTP 400.
//!   The machine is unchanged.
//! - The caller must only route pair-setup from plain connections (HAP §2.5: HTTP 400 on an
//!   encrypted session) and must call [`PairSetupGate::connection_closed`] when a connection
//!   closes, so that a vanished controller does not hold the gate for 30 s.
//!
//! Rules, in ADK order at M1: already paired → `Unavailable`; failed-attempt counter ≥ 100 →
//! `MaxTries`; another connection owns the gate and spoke less than 30 s ago → `Busy` (after 30 s
//! of silence it is taken over, as ADK does), and so is a connection that has held the gate for
//! [`MAX_HOLD_PER_CONNECTION`] in all (a peer repeating M1 cannot keep it for ever). A wrong proof at M3 increments the counter through
//! the store (persisted before the reply) and answers `Authentication`; a good one resets it. M1
//! on the same connection restarts the procedure (iOS 12.1 does this, per ADK). Store failures
//! answer `Unknown` and acknowledge nothing.
//!
//! Not supported: the pair-setup Flags (Transient, Split; HAP §2.6) are ignored, so a controller
//! asking for a transient setup gets a normal one; Method 1 (PairSetupWithAuth, MFi) answers
//! `Unknown`.
#![deny(clippy::indexing_slicing)]

use std::time::Instant;

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use zeroize::Zeroizing;

use super::{
    AccessoryIdentity, MAX_FAILED_ATTEMPTS, MAX_PAIRING_ID_LEN, MAX_PAIRINGS, Pairing, PairingId,
    PairingStore, Permissions,
};
use crate::crypto::{hkdf_sha512, label_nonce, open, seal};
use crate::error::{DecodeError, DecodeErrorKind, Error, PeerMisbehaved};
use crate::setup::SetupCode;
use crate::srp::{self, SrpServer};
use crate::tlv8::{self, Items, Method, TlvError, TlvType, Writer};
use crate::{CryptoRandom, random_array};

mod gate;

pub use gate::{ConnectionId, MAX_HOLD_PER_CONNECTION, PairSetupGate, TAKEOVER_AFTER};

/// Everything [`PairSetup::handle`] needs from the accessory server for one message.
pub struct SetupContext<'a> {
    /// The accessory's Device ID and long-term key.
    pub identity: &'a AccessoryIdentity,
    /// The setup code (its dashed form is the SRP password).
    pub setup_code: &'a SetupCode,
    /// Pairings and the failed-attempt counter.
    pub store: &'a mut dyn PairingStore,
    /// The gate shared by the server's connections.
    pub gate: &'a mut PairSetupGate,
    /// The connection this message arrived on.
    pub conn: ConnectionId,
    /// The time the message arrived.
    pub now: Instant,
    /// Randomness for the salt and the SRP secret.
    pub rng: &'a mut dyn CryptoRandom,
}

/// The answer to one pair-setup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReply {
    /// The TLV8 body, sent with HTTP 200.
    pub body: Vec<u8>,
    /// The pairing stored at M5; `Some` only with the M6 reply. After sending the reply, the
    /// caller updates mDNS `sf` to 0.
    pub paired: Option<Pairing>,
    /// The refusal this reply carries (`kTLVError` in `body`), for the caller's log.
    pub error: Option<Error>,
}

/// The pair-setup state of one connection.
#[derive(Debug, Default)]
pub struct PairSetup {
    state: State,
}

/// Where the procedure is: the rustls shape of boxed per-state structs, consumed by each step.
#[derive(Debug, Default)]
enum State {
    #[default]
    ExpectM1,
    ExpectM3(Box<ExpectM3>),
    ExpectM5(Box<ExpectM5>),
}

#[derive(Debug)]
struct ExpectM3 {
    srp: SrpServer,
}

#[derive(Debug)]
struct ExpectM5 {
    /// The keys derived from the SRP session key K (HAP §2.3).
    keys: SetupKeys,
}

impl PairSetup {
    /// A connection's machine, waiting for M1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one `POST /pair-setup` body. See the module documentation for the contract.
    pub fn handle(&mut self, body: &[u8], cx: &mut SetupContext<'_>) -> Result<SetupReply, Error> {
        let items = tlv8::decode(body)?;
        let received = match items.get_unique(TlvType::STATE)? {
            Some([state]) => *state,
            _ => {
                return Err(Error::Decode(DecodeError::new(
                    0,
                    "pair-setup State item",
                    DecodeErrorKind::InvalidValue,
                )));
            }
        };
        let state = core::mem::take(&mut self.state);
        let step = match (received, state) {
            // M1 on the same connection restarts the procedure (ADK, iOS 12.1).
            (STATE_M1, _) => handle_m1(&items, cx),
            (STATE_M3, State::ExpectM3(s)) => (*s).handle(&items, cx),
            (STATE_M5, State::ExpectM5(s)) => (*s).handle(&items, cx),
            (received, _) => Err(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
                received,
            })),
        };
        match step {
            Ok(Step { next, body, paired }) => {
                if matches!(next, State::ExpectM1) {
                    cx.gate.release(cx.conn, cx.now);
                }
                self.state = next;
                Ok(SetupReply {
                    body,
                    paired,
                    error: None,
                })
            }
            Err(error) => {
                // The old state was moved out: the machine is back at M1.
                cx.gate.release(cx.conn, cx.now);
                let mut w = Writer::new();
                w.put_u8(TlvType::STATE, received.wrapping_add(1))
                    .put_u8(TlvType::ERROR, reply_code(&error).0);
                Ok(SetupReply {
                    body: w.into_vec(),
                    paired: None,
                    error: Some(error),
                })
            }
        }
    }

    /// Whether the machine waits for M1 (no procedure in progress on this connection).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::ExpectM1)
    }
}

/// The outcome of one successful step.
struct Step {
    next: State,
    body: Vec<u8>,
    paired: Option<Pairing>,
}

fn handle_m1(items: &Items<'_>, cx: &mut SetupContext<'_>) -> Result<Step, Error> {
    let method = items.get_u8(TlvType::METHOD).ok_or(Error::PeerMisbehaved(
        PeerMisbehaved::MissingItem {
            ty: TlvType::METHOD.0,
        },
    ))?;
    match Method(method) {
        Method::PAIR_SETUP => {}
        // MFi authentication needs an Apple coprocessor we do not have.
        Method::PAIR_SETUP_WITH_AUTH => return Err(Error::Pairing(TlvError::UNKNOWN)),
        _ => {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::UnsupportedMethod {
                method,
            }));
        }
    }
    // HAP §2.2 M1 checks, in ADK order.
    if cx.store.is_paired() {
        return Err(Error::Pairing(TlvError::UNAVAILABLE));
    }
    if cx.store.failed_attempts() >= MAX_FAILED_ATTEMPTS {
        return Err(Error::Pairing(TlvError::MAX_TRIES));
    }
    if !cx.gate.acquire(cx.conn, cx.now) {
        return Err(Error::Pairing(TlvError::BUSY));
    }
    // Flags (Transient / Split, HAP §2.6) are ignored: a normal pair-setup follows.
    let salt = random_array::<{ srp::SALT_LEN }>(cx.rng);
    let secret = Zeroizing::new(random_array::<{ srp::SECRET_LEN }>(cx.rng));
    let srp = SrpServer::new(
        srp::USERNAME,
        cx.setup_code.as_str().as_bytes(),
        salt,
        *secret,
    );
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, STATE_M2)
        .put(TlvType::PUBLIC_KEY, srp.public_key())
        .put(TlvType::SALT, srp.salt());
    Ok(Step {
        next: State::ExpectM3(Box::new(ExpectM3 { srp })),
        body: w.into_vec(),
        paired: None,
    })
}

impl ExpectM3 {
    fn handle(self, items: &Items<'_>, cx: &mut SetupContext<'_>) -> Result<Step, Error> {
        if !cx.gate.touch(cx.conn, cx.now) {
            // Another connection took the procedure over after 30 s of silence.
            return Err(Error::Pairing(TlvError::BUSY));
        }
        let a = required(items, TlvType::PUBLIC_KEY)?;
        let m1 = required(items, TlvType::PROOF)?;
        let session = match self.srp.verify_client(a, m1) {
            Ok(session) => session,
            Err(Error::Authentication) => {
                // Persist the failed attempt before answering (HAP §2.5).
                let failed = cx.store.failed_attempts().saturating_add(1);
                cx.store.set_failed_attempts(failed).map_err(Error::Store)?;
                return Err(Error::Authentication);
            }
            Err(e) => return Err(e),
        };
        if cx.store.failed_attempts() != 0 {
            cx.store.set_failed_attempts(0).map_err(Error::Store)?;
        }
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, STATE_M4)
            .put(TlvType::PROOF, session.server_proof());
        Ok(Step {
            next: State::ExpectM5(Box::new(ExpectM5 {
                keys: SetupKeys::derive(session.key()),
            })),
            body: w.into_vec(),
            paired: None,
        })
    }
}

impl ExpectM5 {
    fn handle(self, items: &Items<'_>, cx: &mut SetupContext<'_>) -> Result<Step, Error> {
        if !cx.gate.touch(cx.conn, cx.now) {
            return Err(Error::Pairing(TlvError::BUSY));
        }
        let sealed = required(items, TlvType::ENCRYPTED_DATA)?;
        let plain = Zeroizing::new(open(
            &self.keys.session_key,
            &label_nonce(b"PS-Msg05"),
            &[],
            sealed,
        )?);
        // The sub-TLV was authenticated: a malformed one is refused, not answered with 400.
        let sub = tlv8::decode(&plain)?;
        let id = required(&sub, TlvType::IDENTIFIER)?;
        if id.is_empty() || id.len() > MAX_PAIRING_ID_LEN {
            return Err(bad_length(TlvType::IDENTIFIER, id.len()));
        }
        let ltpk: [u8; 32] = required(&sub, TlvType::PUBLIC_KEY)?
            .try_into()
            .map_err(|_| bad_length(TlvType::PUBLIC_KEY, sub_len(&sub, TlvType::PUBLIC_KEY)))?;
        let signature: [u8; 64] = required(&sub, TlvType::SIGNATURE)?
            .try_into()
            .map_err(|_| bad_length(TlvType::SIGNATURE, sub_len(&sub, TlvType::SIGNATURE)))?;

        // iOSDeviceInfo = iOSDeviceX || iOSDevicePairingID || iOSDeviceLTPK (HAP §2.2 M5).
        let mut info = Vec::with_capacity(32 + id.len() + 32);
        info.extend_from_slice(&self.keys.controller_x[..]);
        info.extend_from_slice(id);
        info.extend_from_slice(&ltpk);
        let key = VerifyingKey::from_bytes(&ltpk).map_err(|_| Error::Authentication)?;
        key.verify_strict(&info, &Signature::from_bytes(&signature))
            .map_err(|_| Error::Authentication)?;

        let pairing = Pairing {
            id: PairingId(id.to_vec()),
            public_key: ltpk,
            permissions: Permissions::Admin,
        };
        if cx.store.pairing(&pairing.id).is_none() && cx.store.pairings().len() >= MAX_PAIRINGS {
            return Err(Error::Pairing(TlvError::MAX_PEERS));
        }
        // Durable before M6 acknowledges it.
        cx.store
            .put_pairing(pairing.clone())
            .map_err(Error::Store)?;

        // AccessoryInfo = AccessoryX || AccessoryPairingID || AccessoryLTPK (HAP §2.2 M6).
        let device_id = cx.identity.device_id.to_string();
        let public_key = cx.identity.public_key();
        let mut info = Vec::with_capacity(32 + device_id.len() + 32);
        info.extend_from_slice(&self.keys.accessory_x[..]);
        info.extend_from_slice(device_id.as_bytes());
        info.extend_from_slice(&public_key);
        let signature = cx.identity.signing_key.sign(&info);
        let mut sub = Writer::new();
        sub.put(TlvType::IDENTIFIER, device_id.as_bytes())
            .put(TlvType::PUBLIC_KEY, &public_key)
            .put(TlvType::SIGNATURE, &signature.to_bytes());
        let sub = Zeroizing::new(sub.into_vec());
        let sealed = seal(&self.keys.session_key, &label_nonce(b"PS-Msg06"), &[], &sub);
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, STATE_M6)
            .put(TlvType::ENCRYPTED_DATA, &sealed);
        Ok(Step {
            next: State::ExpectM1,
            body: w.into_vec(),
            paired: Some(pairing),
        })
    }
}

/// The keys HAP §2.3 derives from the SRP session key K.
pub struct SetupKeys {
    /// HKDF(K, `Pair-Setup-Encrypt-Salt`, `Pair-Setup-Encrypt-Info`): encrypts M5 and M6.
    pub session_key: Zeroizing<[u8; 32]>,
    /// HKDF(K, `Pair-Setup-Controller-Sign-Salt`, `...-Info`): iOSDeviceX, signed at M5.
    pub controller_x: Zeroizing<[u8; 32]>,
    /// HKDF(K, `Pair-Setup-Accessory-Sign-Salt`, `...-Info`): AccessoryX, signed at M6.
    pub accessory_x: Zeroizing<[u8; 32]>,
}

impl SetupKeys {
    /// Derives the three keys from K.
    pub fn derive(srp_key: &[u8]) -> Self {
        Self {
            session_key: Zeroizing::new(hkdf_sha512(srp_key, ENCRYPT_SALT, ENCRYPT_INFO)),
            controller_x: Zeroizing::new(hkdf_sha512(
                srp_key,
                CONTROLLER_SIGN_SALT,
                CONTROLLER_SIGN_INFO,
            )),
            accessory_x: Zeroizing::new(hkdf_sha512(
                srp_key,
                ACCESSORY_SIGN_SALT,
                ACCESSORY_SIGN_INFO,
            )),
        }
    }
}

impl core::fmt::Debug for SetupKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SetupKeys { .. }")
    }
}

/// The `kTLVError` a refusal carries. A ≡ 0 mod N is answered `Authentication` as ADK does
/// (HAP §2.1); everything else follows [`Error::tlv_error`].
fn reply_code(error: &Error) -> TlvError {
    match error {
        Error::PeerMisbehaved(PeerMisbehaved::InvalidSrpPublicKey) => TlvError::AUTHENTICATION,
        e => e.tlv_error(),
    }
}

fn required<'i>(items: &'i Items<'_>, ty: TlvType) -> Result<&'i [u8], Error> {
    items
        .get(ty)
        .ok_or(Error::PeerMisbehaved(PeerMisbehaved::MissingItem {
            ty: ty.0,
        }))
}

fn sub_len(items: &Items<'_>, ty: TlvType) -> usize {
    items.get(ty).map_or(0, <[u8]>::len)
}

fn bad_length(ty: TlvType, len: usize) -> Error {
    Error::PeerMisbehaved(PeerMisbehaved::BadLength { ty: ty.0, len })
}

const STATE_M1: u8 = 1;
const STATE_M2: u8 = 2;
const STATE_M3: u8 = 3;
const STATE_M4: u8 = 4;
const STATE_M5: u8 = 5;
const STATE_M6: u8 = 6;

const ENCRYPT_SALT: &[u8] = b"Pair-Setup-Encrypt-Salt";
const ENCRYPT_INFO: &[u8] = b"Pair-Setup-Encrypt-Info";
const CONTROLLER_SIGN_SALT: &[u8] = b"Pair-Setup-Controller-Sign-Salt";
const CONTROLLER_SIGN_INFO: &[u8] = b"Pair-Setup-Controller-Sign-Info";
const ACCESSORY_SIGN_SALT: &[u8] = b"Pair-Setup-Accessory-Sign-Salt";
const ACCESSORY_SIGN_INFO: &[u8] = b"Pair-Setup-Accessory-Sign-Info";

#[cfg(test)]
mod tests;
