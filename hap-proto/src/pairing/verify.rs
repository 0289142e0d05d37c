//! Pair-verify, accessory side (HAP §3): M1-M4 on POST /pair-verify.
//!
//! ```text
//!  controller                                   accessory (PairVerify)
//!  M1 State=1, PublicKey=iOSDeviceCvPK   ──►    ExpectM1: new X25519 key, SharedSecret,
//!                                               sign AccessoryCvPK || DeviceID || iOSDeviceCvPK
//!  M2 State=2, PublicKey, EncryptedData  ◄──    (sub-TLV Identifier, Signature; nonce PV-Msg02)
//!  M3 State=3, EncryptedData             ──►    ExpectM3: open (PV-Msg03), look up the controller,
//!                                               verify iOSDeviceCvPK || id || AccessoryCvPK
//!  M4 State=4 (plaintext)                ◄──    Verified: session keys (§3.1)
//! ```
//!
//! After M4 has been sent, every byte on the connection in both directions is framed
//! ([`crate::session::Session::accessory`] with [`Verified::keys`]).
//!
//! Outcomes of [`PairVerify::handle`]:
//! - `Ok(reply)`: send `reply.body` (HTTP 200, `application/pairing+tlv8`). The body may carry an
//!   `Error` item: decryption failure, unknown controller or bad signature answer
//!   `State=4, Error=Authentication` (`06 01 04 07 01 02`).
//!   An M1 whose public key is a low-order X25519 point (no shared secret) is answered
//!   `State=2, Error=Authentication`.
//! - `Err(e)`: the request was malformed (bad TLV, missing or mis-sized item, unexpected State);
//!   answer HTTP 400.
//!
//! In every case but a successful M2 the machine is back at `ExpectM1`; a new M1 always restarts.

use ed25519_dalek::{Signature, Signer, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use super::{AccessoryIdentity, MAX_PAIRING_ID_LEN, PairingId, PairingStore, Permissions};
use crate::crypto::{hkdf_sha512, label_nonce, open, seal};
use crate::error::{DecodeError, DecodeErrorKind, Error, PeerMisbehaved};
use crate::session::SessionKeys;
use crate::tlv8::{self, TlvError, TlvType, Writer};
use crate::{CryptoRandom, random_array};

/// What pair-verify needs from the accessory for one request.
pub struct VerifyContext<'a> {
    /// The accessory's Device ID and long-term key.
    pub identity: &'a AccessoryIdentity,
    /// Where the controllers' pairings are looked up (read only).
    pub store: &'a dyn PairingStore,
    /// Source of the ephemeral X25519 key.
    pub rng: &'a mut dyn CryptoRandom,
}

/// The pair-verify state of one connection.
#[derive(Debug, Default)]
pub struct PairVerify {
    state: State,
}

/// The reply to one pair-verify request.
#[derive(Debug)]
pub struct VerifyReply {
    /// The TLV8 body to send, unencrypted.
    pub body: Vec<u8>,
    /// Set after a successful M3: once `body` (M4) is sent, switch the connection to the
    /// encrypted session.
    pub established: Option<Verified>,
}

/// A controller that completed pair-verify.
pub struct Verified {
    /// The controller's pairing identifier, as stored.
    pub controller: PairingId,
    /// Its permissions at the time of M3. Re-read them from the store before acting on them
    /// later (HAP §2.8: an admin can be demoted while connected).
    pub permissions: Permissions,
    /// The keys of the encrypted session (HAP §3.1).
    pub keys: SessionKeys,
    /// The X25519 shared secret; HomeKit Data Stream derives its keys from it. Zeroized on drop.
    pub shared_secret: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for Verified {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.debug_struct("Verified")
            .field("controller", &self.controller)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

impl PairVerify {
    /// A machine waiting for M1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one POST /pair-verify body (see the module docs for the outcomes).
    pub fn handle(
        &mut self,
        body: &[u8],
        cx: &mut VerifyContext<'_>,
    ) -> Result<VerifyReply, Error> {
        // Take the state: whatever happens, nothing of the old state survives a failure.
        let state = core::mem::take(&mut self.state);
        let items = tlv8::decode(body)?;
        let received = items
            .get_unique(TlvType::STATE)?
            .ok_or(PeerMisbehaved::MissingItem {
                ty: TlvType::STATE.0,
            })
            .map_err(Error::PeerMisbehaved)?;
        match (received, state) {
            // A new M1 restarts the procedure in any state (ADK: iOS may abort and restart).
            ([STATE_M1], _) => {
                let (next, reply) = ExpectM1.handle(&items, cx)?;
                self.state = next;
                Ok(reply)
            }
            ([STATE_M3], State::ExpectM3(expect)) => (*expect).handle(&items, cx),
            ([other], _) => Err(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
                received: *other,
            })),
            (_, _) => Err(Error::Decode(DecodeError::new(
                0,
                "pair-verify State",
                DecodeErrorKind::InvalidValue,
            ))),
        }
    }

    /// Whether an M1 was answered and M3 is awaited.
    pub fn is_expecting_m3(&self) -> bool {
        matches!(self.state, State::ExpectM3(_))
    }
}

#[derive(Debug, Default)]
enum State {
    #[default]
    ExpectM1,
    ExpectM3(Box<ExpectM3>),
}

struct ExpectM1;

impl ExpectM1 {
    fn handle(
        self,
        items: &tlv8::Items<'_>,
        cx: &mut VerifyContext<'_>,
    ) -> Result<(State, VerifyReply), Error> {
        let controller_pk = fixed::<32>(items, TlvType::PUBLIC_KEY)?;

        let secret = StaticSecret::from(random_array::<32>(cx.rng));
        let accessory_pk = PublicKey::from(&secret).to_bytes();
        let shared = secret.diffie_hellman(&PublicKey::from(controller_pk));
        if !shared.was_contributory() {
            // A low-order point from the controller: no secret would be shared.
            return Ok((
                State::ExpectM1,
                error_reply(STATE_M2, TlvError::AUTHENTICATION),
            ));
        }
        let shared_secret = Zeroizing::new(shared.to_bytes());

        let device_id = cx.identity.device_id.to_string();
        let mut info = Vec::with_capacity(32 + device_id.len() + 32);
        info.extend_from_slice(&accessory_pk);
        info.extend_from_slice(device_id.as_bytes());
        info.extend_from_slice(&controller_pk);
        let signature = cx.identity.signing_key.sign(&info);

        let mut sub = Writer::new();
        sub.put(TlvType::IDENTIFIER, device_id.as_bytes())
            .put(TlvType::SIGNATURE, &signature.to_bytes());
        let sub = Zeroizing::new(sub.into_vec());
        let session_key = Zeroizing::new(hkdf_sha512(
            shared_secret.as_ref(),
            PV_ENCRYPT_SALT,
            PV_ENCRYPT_INFO,
        ));
        let encrypted = seal(&session_key, &label_nonce(b"PV-Msg02"), &[], &sub);

        let mut reply = Writer::new();
        reply
            .put_u8(TlvType::STATE, STATE_M2)
            .put(TlvType::PUBLIC_KEY, &accessory_pk)
            .put(TlvType::ENCRYPTED_DATA, &encrypted);
        let next = ExpectM3 {
            session_key,
            shared_secret,
            accessory_pk,
            controller_pk,
        };
        Ok((
            State::ExpectM3(Box::new(next)),
            VerifyReply {
                body: reply.into_vec(),
                established: None,
            },
        ))
    }
}

struct ExpectM3 {
    session_key: Zeroizing<[u8; 32]>,
    shared_secret: Zeroizing<[u8; 32]>,
    accessory_pk: [u8; 32],
    controller_pk: [u8; 32],
}

impl core::fmt::Debug for ExpectM3 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ExpectM3 { .. }")
    }
}

impl ExpectM3 {
    fn handle(
        self,
        items: &tlv8::Items<'_>,
        cx: &mut VerifyContext<'_>,
    ) -> Result<VerifyReply, Error> {
        let encrypted = required(items, TlvType::ENCRYPTED_DATA)?;
        let Ok(mut plain) = open(&self.session_key, &label_nonce(b"PV-Msg03"), &[], encrypted)
        else {
            return Ok(auth_failure());
        };
        let result = self.finish(&plain, cx);
        plain.zeroize();
        result
    }

    fn finish(self, plain: &[u8], cx: &mut VerifyContext<'_>) -> Result<VerifyReply, Error> {
        let Self {
            shared_secret,
            accessory_pk,
            controller_pk,
            ..
        } = self;
        let sub = tlv8::decode(plain)?;
        let identifier = required(&sub, TlvType::IDENTIFIER)?;
        let signature = fixed::<64>(&sub, TlvType::SIGNATURE)?;
        if identifier.len() > MAX_PAIRING_ID_LEN {
            // As ADK: an identifier no pairing can have is malformed, not unknown.
            return Err(Error::Decode(DecodeError::new(
                MAX_PAIRING_ID_LEN,
                "pair-verify M3 Identifier",
                DecodeErrorKind::TooLong,
            )));
        }
        let id = PairingId(identifier.to_vec());
        let Some(pairing) = cx.store.pairing(&id) else {
            return Ok(auth_failure());
        };
        let Ok(ltpk) = VerifyingKey::from_bytes(&pairing.public_key) else {
            return Ok(auth_failure());
        };
        let mut info = Vec::with_capacity(32 + identifier.len() + 32);
        info.extend_from_slice(&controller_pk);
        info.extend_from_slice(identifier);
        info.extend_from_slice(&accessory_pk);
        if ltpk
            .verify_strict(&info, &Signature::from_bytes(&signature))
            .is_err()
        {
            return Ok(auth_failure());
        }
        let mut reply = Writer::new();
        reply.put_u8(TlvType::STATE, STATE_M4);
        Ok(VerifyReply {
            body: reply.into_vec(),
            established: Some(Verified {
                controller: pairing.id,
                permissions: pairing.permissions,
                keys: SessionKeys::derive(&shared_secret),
                shared_secret,
            }),
        })
    }
}

/// `State=4, Error=Authentication`: bad tag, unknown controller or bad signature (HAP §3).
fn auth_failure() -> VerifyReply {
    error_reply(STATE_M4, TlvError::AUTHENTICATION)
}

fn error_reply(state: u8, error: TlvError) -> VerifyReply {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, state)
        .put_u8(TlvType::ERROR, error.0);
    VerifyReply {
        body: w.into_vec(),
        established: None,
    }
}

/// The value of a required item that appears once.
fn required<'i>(items: &'i tlv8::Items<'_>, ty: TlvType) -> Result<&'i [u8], Error> {
    items
        .get_unique(ty)?
        .ok_or(Error::PeerMisbehaved(PeerMisbehaved::MissingItem {
            ty: ty.0,
        }))
}

/// The value of a required item of exactly `N` bytes.
fn fixed<const N: usize>(items: &tlv8::Items<'_>, ty: TlvType) -> Result<[u8; N], Error> {
    let value = required(items, ty)?;
    value.try_into().map_err(|_| {
        Error::PeerMisbehaved(PeerMisbehaved::BadLength {
            ty: ty.0,
            len: value.len(),
        })
    })
}

/// HKDF salt of the pair-verify encryption key (HAP §3).
const PV_ENCRYPT_SALT: &[u8] = b"Pair-Verify-Encrypt-Salt";
/// HKDF info of the pair-verify encryption key (HAP §3).
const PV_ENCRYPT_INFO: &[u8] = b"Pair-Verify-Encrypt-Info";
const STATE_M1: u8 = 1;
const STATE_M2: u8 = 2;
const STATE_M3: u8 = 3;
const STATE_M4: u8 = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::MemoryStore;

    struct Counter(u8);
    impl CryptoRandom for Counter {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                self.0 = self.0.wrapping_add(1);
                *b = self.0;
            }
        }
    }

    fn m1() -> Vec<u8> {
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 1).put(
            TlvType::PUBLIC_KEY,
            PublicKey::from(&StaticSecret::from([9u8; 32])).as_bytes(),
        );
        w.into_vec()
    }

    #[test]
    fn any_error_returns_to_expect_m1() {
        let mut rng = Counter(0);
        let identity = AccessoryIdentity::generate(&mut rng);
        let store = MemoryStore::default();
        let mut cx = VerifyContext {
            identity: &identity,
            store: &store,
            rng: &mut rng,
        };
        let mut pv = PairVerify::new();
        let reply = pv.handle(&m1(), &mut cx).unwrap();
        assert!(reply.established.is_none());
        assert!(pv.is_expecting_m3());
        // A malformed body drops the M1 state.
        assert!(pv.handle(&[0x06], &mut cx).is_err());
        assert!(!pv.is_expecting_m3());
        pv.handle(&m1(), &mut cx).unwrap();
        // An M3 without EncryptedData too.
        assert_eq!(
            pv.handle(&[6, 1, 3], &mut cx).err(),
            Some(Error::PeerMisbehaved(PeerMisbehaved::MissingItem { ty: 5 }))
        );
        assert!(!pv.is_expecting_m3());
        // Undecryptable M3 (wrong key): Authentication reply, back to M1.
        pv.handle(&m1(), &mut cx).unwrap();
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 3)
            .put(TlvType::ENCRYPTED_DATA, &[0u8; 40]);
        let reply = pv.handle(&w.into_vec(), &mut cx).unwrap();
        assert_eq!(reply.body, [6, 1, 4, 7, 1, 2]);
        assert!(!pv.is_expecting_m3());
        // Debug shows the state, never key material.
        pv.handle(&m1(), &mut cx).unwrap();
        assert_eq!(
            format!("{pv:?}"),
            "PairVerify { state: ExpectM3(ExpectM3 { .. }) }"
        );
    }

    #[test]
    fn m2_is_fresh_per_m1() {
        let mut rng = Counter(0);
        let identity = AccessoryIdentity::generate(&mut rng);
        let store = MemoryStore::default();
        let mut cx = VerifyContext {
            identity: &identity,
            store: &store,
            rng: &mut rng,
        };
        let mut pv = PairVerify::new();
        let a = pv.handle(&m1(), &mut cx).unwrap().body;
        let b = pv.handle(&m1(), &mut cx).unwrap().body;
        // Same controller key, new accessory ephemeral key each time.
        assert_ne!(a.get(5..37), b.get(5..37));
    }
}
