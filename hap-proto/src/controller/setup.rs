//! The controller side of pair-setup (HAP §2.2), for tests, fuzzing and benches.
//!
//! The SRP client math is written here on its own, not borrowed from the accessory's
//! [`crate::srp::SrpServer`]: the controller computes S = (B − k·g^x)^(a + u·x) while the
//! accessory computes (A·v^u)^b, and each side hashes its own proofs, so a formula error on one
//! side cannot hide behind the same error on the other. Only the group constants N and k are
//! shared (they are checked against the §10.1 vector).
//!
//! [`SrpPadding`] selects which convention for leading zero bytes the controller follows, so
//! tests can play both an Apple-style and an aiohomekit-style controller (hap-reference §2.1).
//!
//! ```text
//! ControllerSetup::start ─► M1 ─► accessory ─► M2 ─► handle_m2 ─► M3 ─► ... ─► M4
//!   ─► handle_m4 (verifies M2 proof) ─► M5 ─► ... ─► M6 ─► handle_m6 (verifies signature)
//! ```
#![deny(clippy::indexing_slicing)]

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use num_bigint::BigUint;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::{label_nonce, open, seal};
use crate::error::{DecodeError, DecodeErrorKind, Error, PeerMisbehaved};
use crate::pairing::setup::SetupKeys;
use crate::pairing::{DeviceId, PairingId};
use crate::srp::{modulus, modulus_bytes, multiplier};
use crate::tlv8::{self, Items, Method, TlvError, TlvType, Writer};
use crate::{CryptoRandom, random_array};

/// How the controller writes values with leading zero bytes into its SRP hashes
/// (hap-reference §2.1 padding table). u = H(PAD(A) | PAD(B)) in every style but
/// [`SrpPadding::ReceivedB`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SrpPadding {
    /// Apple ADK style: A sent stripped; A and B stripped inside M1, S stripped inside K;
    /// M2 expected over PAD(A).
    Strip,
    /// fast-srp / aiohomekit style: A sent padded; A, B and S padded to 384 bytes everywhere.
    Pad,
    /// aiohomekit 4.x exactly: like [`SrpPadding::Pad`], but B is hashed as received (also
    /// inside u), so a stripped B changes u.
    ReceivedB,
}

/// Which of A, B and S of the finished SRP exchange began with a zero byte (as 384-byte
/// values). Lets tests prove that a padding corner case really happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeadingZeros {
    /// A = g^a had a leading zero byte.
    pub a: bool,
    /// B had a leading zero byte.
    pub b: bool,
    /// S had a leading zero byte.
    pub s: bool,
}

/// What pair-setup established about the accessory: its pairing identifier and LTPK, both
/// checked against its M6 signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairedAccessory {
    /// The accessory's Device ID (AccessoryPairingID).
    pub device_id: DeviceId,
    /// The accessory's Ed25519 long-term public key (AccessoryLTPK).
    pub public_key: [u8; 32],
}

/// A controller running one pair-setup.
pub struct ControllerSetup {
    padding: SrpPadding,
    password: Zeroizing<Vec<u8>>,
    controller_id: PairingId,
    signing_key: SigningKey,
    secret_a: Zeroizing<[u8; 32]>,
    state: State,
    leading_zeros: LeadingZeros,
}

enum State {
    Start,
    ExpectM2,
    ExpectM4(Box<Exchange>),
    ExpectM6(Box<SetupKeys>),
    Done,
}

impl ControllerSetup {
    /// A controller that will use `setup_code` (the dashed form, as typed) as the SRP password,
    /// `controller_id` as iOSDevicePairingID and `signing_key` as its long-term key. The SRP
    /// secret a (32 bytes) comes from `rng`.
    pub fn new(
        setup_code: &str,
        padding: SrpPadding,
        controller_id: PairingId,
        signing_key: SigningKey,
        rng: &mut dyn CryptoRandom,
    ) -> Self {
        Self {
            padding,
            password: Zeroizing::new(setup_code.as_bytes().to_vec()),
            controller_id,
            signing_key,
            secret_a: Zeroizing::new(random_array(rng)),
            state: State::Start,
            leading_zeros: LeadingZeros::default(),
        }
    }

    /// M1: `Method = PairSetup, State = 1`, byte for byte as iOS sends it.
    pub fn start(&mut self) -> Vec<u8> {
        self.state = State::ExpectM2;
        let mut w = Writer::new();
        w.put_u8(TlvType::METHOD, Method::PAIR_SETUP.0)
            .put_u8(TlvType::STATE, 1);
        w.into_vec()
    }

    /// Reads M2 (B, salt) and returns M3 (A, M1).
    pub fn handle_m2(&mut self, body: &[u8]) -> Result<Vec<u8>, Error> {
        let State::ExpectM2 = self.state else {
            return Err(out_of_order(2));
        };
        self.state = State::Done;
        let items = reply_items(body, 2)?;
        let b = required(&items, TlvType::PUBLIC_KEY)?;
        let salt = required(&items, TlvType::SALT)?;
        let exchange = client_exchange(
            USERNAME,
            &self.password,
            salt,
            &self.secret_a,
            b,
            self.padding,
        )?;
        self.leading_zeros = exchange.leading_zeros;
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 3)
            .put(TlvType::PUBLIC_KEY, &exchange.a_sent)
            .put(TlvType::PROOF, &exchange.m1);
        self.state = State::ExpectM4(Box::new(exchange));
        Ok(w.into_vec())
    }

    /// Reads M4, verifies the accessory's proof M2, and returns M5 (the encrypted controller
    /// identifier, LTPK and signature). M5 is written `EncryptedData` first, as iOS does.
    pub fn handle_m4(&mut self, body: &[u8]) -> Result<Vec<u8>, Error> {
        let State::ExpectM4(exchange) = core::mem::replace(&mut self.state, State::Done) else {
            return Err(out_of_order(4));
        };
        let items = reply_items(body, 4)?;
        let m2 = required(&items, TlvType::PROOF)?;
        if !bool::from(exchange.expected_m2.ct_eq(m2)) {
            return Err(Error::Authentication);
        }
        let keys = SetupKeys::derive(&exchange.key[..]);
        let public_key = self.signing_key.verifying_key().to_bytes();
        let mut info = Vec::with_capacity(32 + self.controller_id.0.len() + 32);
        info.extend_from_slice(&keys.controller_x[..]);
        info.extend_from_slice(&self.controller_id.0);
        info.extend_from_slice(&public_key);
        let signature = self.signing_key.sign(&info);
        let mut sub = Writer::new();
        sub.put(TlvType::IDENTIFIER, &self.controller_id.0)
            .put(TlvType::PUBLIC_KEY, &public_key)
            .put(TlvType::SIGNATURE, &signature.to_bytes());
        let sub = Zeroizing::new(sub.into_vec());
        let sealed = seal(&keys.session_key, &label_nonce(b"PS-Msg05"), &[], &sub);
        let mut w = Writer::new();
        w.put(TlvType::ENCRYPTED_DATA, &sealed)
            .put_u8(TlvType::STATE, 5);
        self.state = State::ExpectM6(Box::new(keys));
        Ok(w.into_vec())
    }

    /// Reads M6: decrypts it and verifies the accessory's signature over
    /// AccessoryX || AccessoryPairingID || AccessoryLTPK.
    pub fn handle_m6(&mut self, body: &[u8]) -> Result<PairedAccessory, Error> {
        let State::ExpectM6(keys) = core::mem::replace(&mut self.state, State::Done) else {
            return Err(out_of_order(6));
        };
        let items = reply_items(body, 6)?;
        let sealed = required(&items, TlvType::ENCRYPTED_DATA)?;
        let plain = Zeroizing::new(open(
            &keys.session_key,
            &label_nonce(b"PS-Msg06"),
            &[],
            sealed,
        )?);
        let sub = tlv8::decode(&plain)?;
        let id = required(&sub, TlvType::IDENTIFIER)?;
        let public_key: [u8; 32] = required(&sub, TlvType::PUBLIC_KEY)?
            .try_into()
            .map_err(|_| Error::Authentication)?;
        let signature: [u8; 64] = required(&sub, TlvType::SIGNATURE)?
            .try_into()
            .map_err(|_| Error::Authentication)?;
        let mut info = Vec::with_capacity(32 + id.len() + 32);
        info.extend_from_slice(&keys.accessory_x[..]);
        info.extend_from_slice(id);
        info.extend_from_slice(&public_key);
        VerifyingKey::from_bytes(&public_key)
            .map_err(|_| Error::Authentication)?
            .verify_strict(&info, &Signature::from_bytes(&signature))
            .map_err(|_| Error::Authentication)?;
        let device_id = core::str::from_utf8(id)
            .ok()
            .and_then(DeviceId::parse)
            .ok_or_else(|| {
                Error::Decode(DecodeError::new(
                    0,
                    "M6 accessory pairing identifier",
                    DecodeErrorKind::InvalidValue,
                ))
            })?;
        Ok(PairedAccessory {
            device_id,
            public_key,
        })
    }

    /// Which SRP values began with a zero byte; meaningful once M2 has been handled.
    pub fn leading_zeros(&self) -> LeadingZeros {
        self.leading_zeros
    }

    /// The pair-setup session key (HKDF of K) between M4 and M6, so that tests can forge an M5
    /// (e.g. with a bad signature) that still decrypts.
    pub fn session_key(&self) -> Option<&[u8; 32]> {
        match &self.state {
            State::ExpectM6(keys) => Some(&keys.session_key),
            _ => None,
        }
    }
}

impl core::fmt::Debug for ControllerSetup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControllerSetup")
            .field("padding", &self.padding)
            .field("controller_id", &self.controller_id)
            .finish_non_exhaustive()
    }
}

/// The client's view of one SRP exchange, computed from M2.
pub(crate) struct Exchange {
    /// A as sent in M3 (stripped or padded, per [`SrpPadding`]).
    pub(crate) a_sent: Vec<u8>,
    /// The client proof M1.
    pub(crate) m1: [u8; 64],
    /// The server proof M2 the accessory must send.
    pub(crate) expected_m2: [u8; 64],
    /// The session key K.
    pub(crate) key: Zeroizing<[u8; 64]>,
    pub(crate) leading_zeros: LeadingZeros,
}

/// SRP-6a client math (RFC 5054 / HAP §2.1) with the secret `a` and the accessory's `b_received`.
pub(crate) fn client_exchange(
    username: &[u8],
    password: &[u8],
    salt: &[u8],
    a: &[u8; 32],
    b_received: &[u8],
    padding: SrpPadding,
) -> Result<Exchange, Error> {
    let n = modulus();
    if b_received.is_empty() || b_received.len() > LEN {
        return Err(Error::PeerMisbehaved(PeerMisbehaved::BadLength {
            ty: TlvType::PUBLIC_KEY.0,
            len: b_received.len(),
        }));
    }
    let b_int = BigUint::from_bytes_be(b_received) % n;
    // SRP-6a: the client aborts if B ≡ 0 mod N.
    if b_int.bits() == 0 {
        return Err(Error::PeerMisbehaved(PeerMisbehaved::InvalidSrpPublicKey));
    }
    let a_int = BigUint::from_bytes_be(a);
    let a_pub = left_pad(&BigUint::from(5u8).modpow(&a_int, n).to_bytes_be());
    let b_pad = left_pad(b_received);

    let inner = Zeroizing::new(sha512(&[username, b":", password]));
    let x = BigUint::from_bytes_be(&Zeroizing::new(sha512(&[salt, &inner[..]]))[..]);
    let v = BigUint::from(5u8).modpow(&x, n);

    let u_b: &[u8] = match padding {
        SrpPadding::ReceivedB => b_received,
        SrpPadding::Strip | SrpPadding::Pad => &b_pad,
    };
    let u = BigUint::from_bytes_be(&sha512(&[&a_pub, u_b]));
    if u.bits() == 0 {
        return Err(Error::Authentication);
    }
    // S = (B − k·v)^(a + u·x) mod N, with B − k·v taken mod N.
    let kv = (multiplier() * &v) % n;
    let base = ((&b_int + n) - kv) % n;
    let s = left_pad(&base.modpow(&(&a_int + &u * &x), n).to_bytes_be());

    let leading_zeros = LeadingZeros {
        a: a_pub.first() == Some(&0),
        b: b_pad.first() == Some(&0),
        s: s.first() == Some(&0),
    };
    let (a_m1, b_m1, s_k): (&[u8], &[u8], &[u8]) = match padding {
        SrpPadding::Strip => (
            no_leading_zeros(&a_pub),
            no_leading_zeros(b_received),
            no_leading_zeros(&s[..]),
        ),
        SrpPadding::Pad => (&a_pub, &b_pad, &s[..]),
        SrpPadding::ReceivedB => (&a_pub, b_received, &s[..]),
    };
    let key = Zeroizing::new(sha512(&[s_k]));
    let h_n = sha512(&[modulus_bytes()]);
    let h_g = sha512(&[&[5u8]]);
    let group: Vec<u8> = h_n.iter().zip(h_g.iter()).map(|(n, g)| n ^ g).collect();
    let m1 = sha512(&[&group, &sha512(&[username]), salt, a_m1, b_m1, &key[..]]);
    // Every style expects M2 over the padded A (ADK pads A in M2; the others send A padded).
    let expected_m2 = sha512(&[&a_pub, &m1, &key[..]]);
    let a_sent = match padding {
        SrpPadding::Strip => no_leading_zeros(&a_pub).to_vec(),
        SrpPadding::Pad | SrpPadding::ReceivedB => a_pub.to_vec(),
    };
    Ok(Exchange {
        a_sent,
        m1,
        expected_m2,
        key,
        leading_zeros,
    })
}

/// Decodes an accessory reply and checks its State; an Error item becomes
/// [`Error::Pairing`].
fn reply_items(body: &[u8], expected_state: u8) -> Result<Items<'_>, Error> {
    let items = tlv8::decode(body)?;
    if let Some(code) = items.get_u8(TlvType::ERROR) {
        return Err(Error::Pairing(TlvError(code)));
    }
    match items.get_u8(TlvType::STATE) {
        Some(state) if state == expected_state => Ok(items),
        Some(received) => Err(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
            received,
        })),
        None => Err(Error::PeerMisbehaved(PeerMisbehaved::MissingItem {
            ty: TlvType::STATE.0,
        })),
    }
}

fn required<'i>(items: &'i Items<'_>, ty: TlvType) -> Result<&'i [u8], Error> {
    items
        .get(ty)
        .ok_or(Error::PeerMisbehaved(PeerMisbehaved::MissingItem {
            ty: ty.0,
        }))
}

fn out_of_order(expected: u8) -> Error {
    Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState { received: expected })
}

fn sha512(parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

fn left_pad(value: &[u8]) -> [u8; LEN] {
    let mut out = [0u8; LEN];
    let value = no_leading_zeros(value);
    let start = LEN.saturating_sub(value.len());
    if let (Some(dst), Some(src)) = (
        out.get_mut(start..),
        value.get(value.len().saturating_sub(LEN)..),
    ) {
        dst.copy_from_slice(src);
    }
    out
}

fn no_leading_zeros(value: &[u8]) -> &[u8] {
    match value.iter().position(|b| *b != 0) {
        Some(first) => value.get(first..).unwrap_or(value),
        None => value.get(value.len().saturating_sub(1)..).unwrap_or(value),
    }
}

/// The SRP username of pair-setup.
const USERNAME: &[u8] = b"Pair-Setup";
/// Bytes of N, padded A, B and S.
const LEN: usize = 384;

#[cfg(test)]
mod tests;
