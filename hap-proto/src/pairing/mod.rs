//! Pairing: pair-setup (HAP §2), pair-verify (§3) and pairings management (§2.8).
//!
//! The accessory side keeps no persistent state itself: the long-term identity is passed in
//! ([`AccessoryIdentity`]) and pairings and the failed-attempt counter live behind
//! [`PairingStore`], which the caller implements over its crash-safe store. Every change is
//! written through the store **before** the reply that acknowledges it is produced.

pub use crate::device_id::DeviceId;

pub mod pairings;
pub mod removal;
pub mod setup;
pub mod verify;

use ed25519_dalek::SigningKey;

use crate::error::StoreError;

/// The accessory's long-term identity: its Device ID (the accessory pairing identifier) and its
/// Ed25519 key pair (LTSK/LTPK, HAP §2.7).
#[derive(Clone)]
pub struct AccessoryIdentity {
    /// Device ID, e.g. `AA:BB:CC:DD:EE:FF` (uppercase).
    pub device_id: DeviceId,
    /// Long-term signing key (LTSK); its verifying key is the LTPK.
    pub signing_key: SigningKey,
}

impl AccessoryIdentity {
    /// A fresh identity from `rng`: 6 random Device ID bytes and a new Ed25519 key.
    pub fn generate(rng: &mut dyn crate::CryptoRandom) -> Self {
        Self {
            device_id: DeviceId(crate::random_array(rng)),
            signing_key: SigningKey::from_bytes(&crate::random_array(rng)),
        }
    }

    /// The long-term public key (LTPK).
    pub fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }
}

impl core::fmt::Debug for AccessoryIdentity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the secret key.
        f.debug_struct("AccessoryIdentity")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

/// A controller's pairing identifier, kept byte for byte as received (iOS 16+ unpairs when the
/// case changes, HAP §2.8). At most [`MAX_PAIRING_ID_LEN`] bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairingId(pub Vec<u8>);

impl core::fmt::Debug for PairingId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl core::fmt::Display for PairingId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// Permissions of a pairing (HAP §1.3 type 0x0B).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Permissions {
    /// A regular user (0x00).
    User,
    /// An admin (0x01): may add, remove and list pairings.
    Admin,
}

impl Permissions {
    /// The wire byte.
    pub fn to_byte(self) -> u8 {
        match self {
            Self::User => 0,
            Self::Admin => 1,
        }
    }

    /// Parses the wire byte; anything but 0 or 1 is invalid (§2.8).
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::User),
            1 => Some(Self::Admin),
            _ => None,
        }
    }
}

/// A stored pairing: a controller's identifier, long-term public key and permissions.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Pairing {
    /// The controller's pairing identifier.
    pub id: PairingId,
    /// The controller's Ed25519 long-term public key (iOSDeviceLTPK).
    pub public_key: [u8; 32],
    /// Admin or regular user.
    pub permissions: Permissions,
}

/// The caller's persistent store of pairings and the failed pair-setup counter.
///
/// Each mutating call must be durable when it returns `Ok` (a committed transaction, or
/// write + fsync + rename): the reply that acknowledges the change is produced only after it.
pub trait PairingStore {
    /// All pairings, in a stable order.
    fn pairings(&self) -> Vec<Pairing>;
    /// The pairing with this identifier (compared byte for byte).
    fn pairing(&self, id: &PairingId) -> Option<Pairing> {
        self.pairings().into_iter().find(|p| &p.id == id)
    }
    /// Whether any pairing exists.
    fn is_paired(&self) -> bool {
        !self.pairings().is_empty()
    }
    /// Adds a pairing or replaces the one with the same identifier.
    fn put_pairing(&mut self, pairing: Pairing) -> Result<(), StoreError>;
    /// Removes the pairing with this identifier; removing an unknown one is not an error.
    fn remove_pairing(&mut self, id: &PairingId) -> Result<(), StoreError>;
    /// Removes every pairing in `ids` (unknown ones are not an error), as one change where the
    /// store can: a removal and its HAP §2.8 cascade must not stop half way, leaving only
    /// non-admin pairings after a crash. The default removes them one at a time and stops at
    /// the first failure, so on `Err` some may be gone; callers learn which with
    /// [`PairingStore::pairing`]. A transactional store overrides it: all or nothing.
    fn remove_pairings(&mut self, ids: &[PairingId]) -> Result<(), StoreError> {
        ids.iter().try_for_each(|id| self.remove_pairing(id))
    }
    /// The number of failed pair-setup proofs since the last success (HAP §2.5).
    fn failed_attempts(&self) -> u32;
    /// Persists the failed-attempt counter.
    fn set_failed_attempts(&mut self, count: u32) -> Result<(), StoreError>;
}

/// An in-memory [`PairingStore`], for tests, fuzzing and benches.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    /// The pairings.
    pub pairings: Vec<Pairing>,
    /// The failed-attempt counter.
    pub failed_attempts: u32,
}

impl PairingStore for MemoryStore {
    fn pairings(&self) -> Vec<Pairing> {
        self.pairings.clone()
    }
    fn pairing(&self, id: &PairingId) -> Option<Pairing> {
        self.pairings.iter().find(|p| &p.id == id).cloned()
    }
    fn is_paired(&self) -> bool {
        !self.pairings.is_empty()
    }
    fn put_pairing(&mut self, pairing: Pairing) -> Result<(), StoreError> {
        match self.pairings.iter_mut().find(|p| p.id == pairing.id) {
            Some(existing) => *existing = pairing,
            None => self.pairings.push(pairing),
        }
        Ok(())
    }
    fn remove_pairing(&mut self, id: &PairingId) -> Result<(), StoreError> {
        self.pairings.retain(|p| &p.id != id);
        Ok(())
    }
    fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }
    fn set_failed_attempts(&mut self, count: u32) -> Result<(), StoreError> {
        self.failed_attempts = count;
        Ok(())
    }
}

/// The longest controller pairing identifier accepted (HAP §2.7: 36 bytes).
pub const MAX_PAIRING_ID_LEN: usize = 36;
/// The most pairings an accessory stores (HAP §2.5 MaxPeers, ADK minimum 16).
pub const MAX_PAIRINGS: usize = 16;
/// Failed setup-code attempts after which pair-setup answers MaxTries (HAP §2.5).
pub const MAX_FAILED_ATTEMPTS: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_round_trip() {
        let id = DeviceId::parse("e1:91:1a:70:85:aa").unwrap();
        assert_eq!(id.to_string(), "E1:91:1A:70:85:AA");
        assert!(DeviceId::parse("E1:91:1A:70:85").is_none());
        assert!(DeviceId::parse("E1:91:1A:70:85:AA:00").is_none());
        assert!(DeviceId::parse("E1:91:1A:70:85:A").is_none());
    }
}
