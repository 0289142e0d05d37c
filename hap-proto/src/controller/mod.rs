//! The controller side of pairing, written independently of the accessory side as far as the
//! math allows. For tests, fuzzing and benches (feature `controller`).

pub mod setup;
pub mod verify;
