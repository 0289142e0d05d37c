//! The address of a characteristic and a change of its value: what the event queue of a
//! connection needs of the database, in a module of its own so that the
//! database can hold the queue without the two depending on each other.

use super::value::Value;

/// The address of a characteristic: accessory id and instance id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CharId {
    /// Accessory instance id (`aid`).
    pub aid: u64,
    /// Instance id of the characteristic within its accessory (`iid`).
    pub iid: u64,
}

impl CharId {
    /// `aid.iid`.
    pub fn new(aid: u64, iid: u64) -> Self {
        Self { aid, iid }
    }
}

/// A value change that subscribed connections must hear about (HAP §5.8).
#[derive(Clone, PartialEq, Debug)]
pub struct Change {
    /// The characteristic.
    pub id: CharId,
    /// Its new value.
    pub value: Value,
    /// Sent on every trigger without coalescing (Programmable Switch Event).
    pub immediate: bool,
}
