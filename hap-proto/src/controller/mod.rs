//! The controller side of pairing and of HTTP over HAP, written independently of the accessory
//! side as far as the math allows. For tests, fuzzing and benches (feature `controller`).

pub mod client;
pub mod setup;
pub mod verify;
