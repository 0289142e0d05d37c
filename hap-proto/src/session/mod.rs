//! The encrypted session of a verified connection (HAP §3.1, §4).
//!
//! After pair-verify M4 every byte in both directions travels in frames
//! `len (u16 LE) || ciphertext || tag`, at most [`MAX_FRAME_PLAINTEXT`] bytes of plaintext each,
//! sealed with ChaCha20-Poly1305 under one key per direction. [`SessionKeys`] derives the two
//! keys from the pair-verify shared secret; [`Session`] seals and opens frames for either side.
//!
//! ```
//! use hap_proto::session::{Session, SessionKeys};
//! let keys = SessionKeys::derive(&[7u8; 32]);
//! let mut controller = Session::controller(keys.clone());
//! let mut accessory = Session::accessory(keys);
//! let mut wire = Vec::new();
//! controller.seal(b"GET /accessories HTTP/1.1\r\n\r\n", &mut wire).unwrap();
//! accessory.feed(&wire);
//! let plaintext = accessory.poll_plaintext().unwrap().unwrap();
//! assert_eq!(plaintext, b"GET /accessories HTTP/1.1\r\n\r\n");
//! ```

mod frame;

use zeroize::Zeroize;

pub use frame::{MAX_FRAME_PLAINTEXT, Opener, Sealer, Session};

use crate::crypto::hkdf_sha512;

/// The two keys of an encrypted session, named by direction (HAP §3.1).
///
/// The spec names them from the controller's point of view: the controller *reads* with
/// `Control-Read-Encryption-Key`, which is therefore the key the accessory encrypts with.
#[derive(Clone)]
pub struct SessionKeys {
    /// Seals what the accessory sends: HKDF(SharedSecret, `Control-Salt`,
    /// `Control-Read-Encryption-Key`).
    pub accessory_to_controller: [u8; 32],
    /// Seals what the controller sends: HKDF(SharedSecret, `Control-Salt`,
    /// `Control-Write-Encryption-Key`).
    pub controller_to_accessory: [u8; 32],
}

impl SessionKeys {
    /// Derives both keys from the X25519 shared secret of pair-verify (HAP §3.1).
    pub fn derive(shared_secret: &[u8; 32]) -> Self {
        Self {
            accessory_to_controller: hkdf_sha512(shared_secret, CONTROL_SALT, CONTROL_READ_INFO),
            controller_to_accessory: hkdf_sha512(shared_secret, CONTROL_SALT, CONTROL_WRITE_INFO),
        }
    }
}

impl Drop for SessionKeys {
    fn drop(&mut self) {
        self.accessory_to_controller.zeroize();
        self.controller_to_accessory.zeroize();
    }
}

impl core::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print key material.
        f.write_str("SessionKeys { .. }")
    }
}

/// HKDF salt of both session keys (HAP §3.1).
const CONTROL_SALT: &[u8] = b"Control-Salt";
/// HKDF info of the accessory-to-controller key (HAP §3.1).
const CONTROL_READ_INFO: &[u8] = b"Control-Read-Encryption-Key";
/// HKDF info of the controller-to-accessory key (HAP §3.1).
const CONTROL_WRITE_INFO: &[u8] = b"Control-Write-Encryption-Key";
