//! Pair-verify and pairings management, controller side (HAP §3, §2.8).
//!
//! Written from the spec tables, independently of [`crate::pairing::verify`], so that the
//! in-memory tests check the accessory against a second reading of the protocol.
//!
//! ```text
//!  ControllerVerify::start ──M1──► accessory
//!  ExpectM2::handle        ◄─M2─── (checks the accessory's signature and Device ID)
//!                          ──M3──►
//!  ExpectM4::handle        ◄─M4─── → ControllerVerified { keys, shared_secret }
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::crypto::{hkdf_sha512, label_nonce, open, seal};
use crate::error::{Error, PeerMisbehaved};
use crate::pairing::{Pairing, PairingId, Permissions};
use crate::session::SessionKeys;
use crate::tlv8::{self, Method, TlvError, TlvType, Writer};
use crate::{CryptoRandom, random_array};

/// What the controller knows about itself and the accessory it verifies with.
pub struct ControllerCredentials<'a> {
    /// The controller's pairing identifier (iOSDevicePairingID).
    pub pairing_id: &'a [u8],
    /// The controller's long-term signing key (iOSDeviceLTSK).
    pub signing_key: &'a SigningKey,
    /// The accessory's pairing identifier (its Device ID string, `XX:XX:XX:XX:XX:XX`).
    pub accessory_pairing_id: &'a [u8],
    /// The accessory's long-term public key (AccessoryLTPK), learned at pair-setup.
    pub accessory_ltpk: [u8; 32],
}

/// Starts pair-verify.
pub struct ControllerVerify;

impl ControllerVerify {
    /// Generates a fresh X25519 key and returns the M1 body with the state awaiting M2.
    pub fn start(rng: &mut dyn CryptoRandom) -> (ExpectM2, Vec<u8>) {
        let secret = StaticSecret::from(random_array::<32>(rng));
        let public = PublicKey::from(&secret).to_bytes();
        let mut m1 = Writer::new();
        m1.put_u8(TlvType::STATE, 1)
            .put(TlvType::PUBLIC_KEY, &public);
        (ExpectM2 { secret, public }, m1.into_vec())
    }
}

/// Pair-verify after M1: waiting for the accessory's M2.
pub struct ExpectM2 {
    secret: StaticSecret,
    public: [u8; 32],
}

impl ExpectM2 {
    /// Checks M2 (the accessory's identifier and signature over
    /// `AccessoryCvPK || AccessoryPairingID || iOSDeviceCvPK`) and returns the M3 body.
    ///
    /// Errors: `Error::Pairing(code)` if M2 carries an Error item, [`Error::Authentication`]
    /// if decryption, the identifier or the signature fail, other errors for malformed bodies.
    pub fn handle(
        self,
        m2: &[u8],
        creds: &ControllerCredentials<'_>,
    ) -> Result<(ExpectM4, Vec<u8>), Error> {
        let items = tlv8::decode(m2)?;
        check_state(&items, 2)?;
        let accessory_pk: [u8; 32] = exact(&items, TlvType::PUBLIC_KEY)?;
        let encrypted = items
            .get(TlvType::ENCRYPTED_DATA)
            .ok_or_else(|| missing(TlvType::ENCRYPTED_DATA))?;

        let shared = self.secret.diffie_hellman(&PublicKey::from(accessory_pk));
        if !shared.was_contributory() {
            return Err(Error::Authentication);
        }
        let shared_secret = Zeroizing::new(shared.to_bytes());
        let key = Zeroizing::new(hkdf_sha512(
            shared_secret.as_ref(),
            b"Pair-Verify-Encrypt-Salt",
            b"Pair-Verify-Encrypt-Info",
        ));
        let inner = Zeroizing::new(open(&key, &label_nonce(b"PV-Msg02"), &[], encrypted)?);
        let sub = tlv8::decode(&inner)?;
        let identifier = sub
            .get(TlvType::IDENTIFIER)
            .ok_or_else(|| missing(TlvType::IDENTIFIER))?;
        let signature: [u8; 64] = exact(&sub, TlvType::SIGNATURE)?;
        if identifier != creds.accessory_pairing_id {
            return Err(Error::Authentication);
        }
        let ltpk =
            VerifyingKey::from_bytes(&creds.accessory_ltpk).map_err(|_| Error::Authentication)?;
        let signed = [&accessory_pk[..], identifier, &self.public[..]].concat();
        ltpk.verify_strict(&signed, &Signature::from_bytes(&signature))
            .map_err(|_| Error::Authentication)?;

        let proof = [&self.public[..], creds.pairing_id, &accessory_pk[..]].concat();
        let my_signature = creds.signing_key.sign(&proof);
        let mut inner = Writer::new();
        inner
            .put(TlvType::IDENTIFIER, creds.pairing_id)
            .put(TlvType::SIGNATURE, &my_signature.to_bytes());
        let inner = Zeroizing::new(inner.into_vec());
        let mut m3 = Writer::new();
        m3.put_u8(TlvType::STATE, 3).put(
            TlvType::ENCRYPTED_DATA,
            &seal(&key, &label_nonce(b"PV-Msg03"), &[], &inner),
        );
        Ok((ExpectM4 { shared_secret }, m3.into_vec()))
    }
}

/// Pair-verify after M3: waiting for the accessory's M4.
pub struct ExpectM4 {
    shared_secret: Zeroizing<[u8; 32]>,
}

impl ExpectM4 {
    /// Checks M4; on success the session keys are ready and every later byte is framed.
    pub fn handle(self, m4: &[u8]) -> Result<ControllerVerified, Error> {
        let items = tlv8::decode(m4)?;
        check_state(&items, 4)?;
        Ok(ControllerVerified {
            keys: SessionKeys::derive(&self.shared_secret),
            shared_secret: self.shared_secret,
        })
    }
}

/// A completed pair-verify, controller side.
pub struct ControllerVerified {
    /// The session keys (use with [`crate::session::Session::controller`]).
    pub keys: SessionKeys,
    /// The X25519 shared secret (for HomeKit Data Stream). Zeroized on drop.
    pub shared_secret: Zeroizing<[u8; 32]>,
}

/// The body of an AddPairing request (HAP §2.8): `State=1, Method=3, Identifier, PublicKey,
/// Permissions`.
pub fn add_pairing_request(id: &[u8], public_key: &[u8; 32], permissions: Permissions) -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 1)
        .put_u8(TlvType::METHOD, Method::ADD_PAIRING.0)
        .put(TlvType::IDENTIFIER, id)
        .put(TlvType::PUBLIC_KEY, public_key)
        .put_u8(TlvType::PERMISSIONS, permissions.to_byte());
    w.into_vec()
}

/// The body of a RemovePairing request: `State=1, Method=4, Identifier`.
pub fn remove_pairing_request(id: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 1)
        .put_u8(TlvType::METHOD, Method::REMOVE_PAIRING.0)
        .put(TlvType::IDENTIFIER, id);
    w.into_vec()
}

/// The body of a ListPairings request: `State=1, Method=5`.
pub fn list_pairings_request() -> Vec<u8> {
    let mut w = Writer::new();
    w.put_u8(TlvType::STATE, 1)
        .put_u8(TlvType::METHOD, Method::LIST_PAIRINGS.0);
    w.into_vec()
}

/// Parses the reply to an add or remove request: `Ok(())`, or `Error::Pairing(code)`.
pub fn parse_pairings_status(body: &[u8]) -> Result<(), Error> {
    let items = tlv8::decode(body)?;
    check_state(&items, 2)
}

/// Parses the reply to a list request into the pairings, in the accessory's order.
pub fn parse_list_pairings(body: &[u8]) -> Result<Vec<Pairing>, Error> {
    let items = tlv8::decode(body)?;
    check_state(&items, 2)?;
    let mut out = Vec::new();
    for entry in items.split(TlvType::SEPARATOR) {
        // The first entry also holds the State item; a list of no pairings is State alone.
        let Some(id) = entry.get(TlvType::IDENTIFIER) else {
            if entry.iter().all(|i| i.is(TlvType::STATE)) {
                continue;
            }
            return Err(missing(TlvType::IDENTIFIER));
        };
        let public_key: [u8; 32] = exact(&entry, TlvType::PUBLIC_KEY)?;
        let permissions = entry
            .get_u8(TlvType::PERMISSIONS)
            .and_then(Permissions::from_byte)
            .ok_or_else(|| missing(TlvType::PERMISSIONS))?;
        out.push(Pairing {
            id: PairingId(id.to_vec()),
            public_key,
            permissions,
        });
    }
    Ok(out)
}

/// Checks the State item, and turns an Error item into `Error::Pairing`.
fn check_state(items: &tlv8::Items<'_>, expected: u8) -> Result<(), Error> {
    match items.get_u8(TlvType::STATE) {
        Some(state) if state == expected => {}
        Some(received) => {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
                received,
            }));
        }
        None => return Err(missing(TlvType::STATE)),
    }
    match items.get_u8(TlvType::ERROR) {
        Some(code) => Err(Error::Pairing(TlvError(code))),
        None => Ok(()),
    }
}

fn exact<const N: usize>(items: &tlv8::Items<'_>, ty: TlvType) -> Result<[u8; N], Error> {
    let value = items.get(ty).ok_or_else(|| missing(ty))?;
    value.try_into().map_err(|_| {
        Error::PeerMisbehaved(PeerMisbehaved::BadLength {
            ty: ty.0,
            len: value.len(),
        })
    })
}

fn missing(ty: TlvType) -> Error {
    Error::PeerMisbehaved(PeerMisbehaved::MissingItem { ty: ty.0 })
}
