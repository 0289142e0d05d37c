//! Admission of the costly unauthenticated steps. Anyone who can reach the accessory may send
//! pair-setup M1 (two 3072-bit modular exponentiations, HAP §5.6.2) and pair-verify M1 (an X25519
//! key pair, a Diffie-Hellman and an Ed25519 signature, HAP §5.7.2), so the caller decides
//! whether each one may run, e.g. with a rate limit per peer address. A refused step is
//! answered `Busy` without doing its cryptography: the controller may try again later.

use std::time::Instant;

/// A step whose cryptography is costly and needs no authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CostlyStep {
    /// Pair-setup M1: starts an SRP session.
    PairSetupStart,
    /// Pair-verify M1: starts a key agreement.
    PairVerifyStart,
}

/// Decides whether a costly step runs now.
pub trait Admission {
    /// Whether `step` may run at `now`; `false` answers it `Busy`.
    fn admit(&mut self, step: CostlyStep, now: Instant) -> bool;
}

/// Admits everything (tests, fuzzing, benches of the state machines).
#[derive(Clone, Copy, Debug, Default)]
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&mut self, _: CostlyStep, _: Instant) -> bool {
        true
    }
}
