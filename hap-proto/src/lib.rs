//! The HomeKit Accessory Protocol (HAP over IP), sans-IO.
//!
//! `hap-proto` turns bytes from a controller into bytes for the controller and events for its
//! caller. It performs **no I/O**: it never opens a socket, reads a clock, touches the file
//! system or reads the operating system's random number generator. Time (`now: Instant`) and
//! randomness ([`CryptoRandom`]) are parameters; persistent state is reached through traits the
//! caller implements ([`pairing::PairingStore`]).
//!
//! ```text
//!  controller bytes ──► session::Opener ──► HTTP request ──► pair-setup / pair-verify / routes
//!                                                               │
//!  controller bytes ◄── session::Sealer ◄── HTTP response ◄─────┘
//! ```
//!
//! # Structure
//! - [`tlv8`]: the TLV8 codec (HAP §1: 255-byte fragments, `FF 00` / `00 00` list separators).
//! - [`camera`]: camera RTP stream management TLVs (HAP §7).
//! - [`crypto`]: HKDF-SHA-512 derivations and ChaCha20-Poly1305 with HAP nonces.
//! - [`db`]: the accessory database: services, IIDs, /accessories JSON, reads and writes (§5-§6).
//! - [`events`]: per-connection event coalescing and `EVENT/1.0` encoding (§5.8).
//! - [`http`]: the incremental HTTP/1.1 request parser and the response encoder (§5).
//! - [`srp`]: SRP-6a over the 3072-bit group with SHA-512, both padding conventions.
//! - [`pairing`]: pair-setup (M1-M6), pair-verify (M1-M4), pairings management, the store trait.
//! - [`server`]: one controller connection of an accessory server (routes, phases, events).
//! - [`session`]: the encrypted framing of a verified connection (1024-byte frames).
//! - [`mdns`]: the `_hap._tcp` TXT record (HAP §8.1).
//! - [`setup`]: setup codes, setup IDs, the `X-HM://` setup URI and the setup hash.
//! - `controller` (feature `controller`): the controller side, for tests, fuzzing and benches.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod camera;
pub mod crypto;
pub mod db;
mod decode_error;
mod device_id;
pub mod error;
/// Event notifications (HAP §6.8), kept per connection in the database's client state.
pub use db::events;
pub mod http;
pub mod mdns;
pub mod pairing;
pub mod server;
pub mod session;
pub mod setup;
pub mod srp;
pub mod tlv8;

#[cfg(feature = "controller")]
pub mod controller;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use error::{DecodeError, DecodeErrorKind, Error, PeerMisbehaved};

/// A source of cryptographically secure random bytes, supplied by the caller.
///
/// `hap-proto` never reads the OS RNG itself: the bridge passes the system generator, tests pass
/// a seeded generator so that every run is reproducible.
pub trait CryptoRandom {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<R: rand_core::CryptoRng + ?Sized> CryptoRandom for R {
    fn fill(&mut self, buf: &mut [u8]) {
        self.fill_bytes(buf);
    }
}

/// Returns `N` random bytes from `rng`.
pub(crate) fn random_array<const N: usize>(rng: &mut dyn CryptoRandom) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill(&mut out);
    out
}
