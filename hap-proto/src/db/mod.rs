//! The accessory attribute database (HAP §6) and the requests on it (HAP §5.2-§5.4).
//!
//! A [`Database`] holds the accessories of the bridge: aid 1 is the bridge itself, bridged
//! cameras and sensors follow. It is built once at startup with an [`AccessoryBuilder`] per
//! accessory; IIDs come from an [`IidAllocator`] the caller persists, so that every service and
//! characteristic keeps its IID across restarts and removed ones never give their number to
//! another (§6.1).
//!
//! The connection calls pure functions on it:
//! - [`Database::accessories_json`] for GET /accessories (§6.2);
//! - [`Database::read`] for GET /characteristics (§5.2);
//! - [`Database::write`] for PUT /characteristics (§5.3), delegating side effects to a
//!   [`WriteHandler`], and [`Database::prepare`] for PUT /prepare (§5.4);
//! - [`Database::set_value`] when the bridge sees a sensor change.
//!
//! Per-connection state (subscriptions, the prepared timed write, the event queue) lives in a
//! [`ClientState`] owned by the connection.
//!
//! ```
//! use hap_proto::db::{services, AccessoryBuilder, ClientState, Database, IidAllocator};
//! let info = services::AccessoryInfo::new("Acme", "Bridge", "Acme Bridge", "SN0001", "1.0.0");
//! let mut iids = IidAllocator::default();
//! let mut bridge = AccessoryBuilder::new(1, services::accessory_information(&info), &mut iids);
//! bridge.add_service(services::protocol_information());
//! let db = Database::new(vec![bridge.build()]);
//! let (status, body) = db.read("id=1.9", &ClientState::default());
//! assert_eq!(status.0, 200);
//! assert_eq!(body, br#"{"characteristics":[{"aid":1,"iid":9,"value":"1.1.0"}]}"#);
//! ```

pub(crate) mod change;
pub mod events;
mod iid;
mod json;
mod read;
pub mod services;
pub(crate) mod value;
mod write;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;

use sha2::Digest as _;

pub use change::{Change, CharId};
pub use iid::{AccessoryBuilder, IidAllocator};
pub use value::{
    Constraints, DEFAULT_MAX_DATA_LEN, DEFAULT_MAX_LEN, Format, MAX_MAX_LEN, Perms, Unit, Value,
};
pub use write::{WriteHandler, WriteRequest, WriteResponse, WriteResult};

use events::EventQueue;

/// A service or characteristic type: an Apple-defined UUID
/// `000000XX-0000-1000-8000-0026BB765291`, kept as its short number, or another UUID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HapType {
    /// An Apple-defined type by its short form (`0x3E` for Accessory Information).
    Apple(u32),
    /// Any other UUID, uppercase with dashes.
    Custom(String),
}

impl HapType {
    /// Parses a short form (`"3E"`) or a full UUID; Apple UUIDs become [`HapType::Apple`].
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() <= 8 {
            return u32::from_str_radix(s, 16).ok().map(Self::Apple);
        }
        let upper = s.to_ascii_uppercase();
        let b = upper.as_bytes();
        let shape_ok = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            });
        if !shape_ok {
            return None;
        }
        match upper.strip_suffix(APPLE_UUID_SUFFIX) {
            Some(head) if head.len() == 8 => u32::from_str_radix(head, 16).ok().map(Self::Apple),
            _ => Some(Self::Custom(upper)),
        }
    }

    /// The JSON form (HAP §6.2): short uppercase hex without leading zeros for Apple types, the
    /// full uppercase UUID otherwise.
    pub fn to_json_string(&self) -> String {
        match self {
            Self::Apple(n) => format!("{n:X}"),
            Self::Custom(s) => s.clone(),
        }
    }
}

impl fmt::Debug for HapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_string())
    }
}

impl fmt::Display for HapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json_string())
    }
}

/// A HAP status code carried in JSON `status` (HAP §5.7).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HapStatus(pub i32);

impl HapStatus {
    /// 0: success.
    pub const SUCCESS: Self = Self(0);
    /// -70401: insufficient privileges.
    pub const INSUFFICIENT_PRIVILEGES: Self = Self(-70401);
    /// -70402: unable to communicate with the service (device unreachable).
    pub const SERVICE_COMMUNICATION_FAILURE: Self = Self(-70402);
    /// -70403: resource busy.
    pub const RESOURCE_BUSY: Self = Self(-70403);
    /// -70404: write to a read-only characteristic.
    pub const READ_ONLY: Self = Self(-70404);
    /// -70405: read from a write-only characteristic.
    pub const WRITE_ONLY: Self = Self(-70405);
    /// -70406: notification not supported.
    pub const NOTIFICATION_NOT_SUPPORTED: Self = Self(-70406);
    /// -70407: out of resources.
    pub const OUT_OF_RESOURCES: Self = Self(-70407);
    /// -70408: operation timed out.
    pub const OPERATION_TIMED_OUT: Self = Self(-70408);
    /// -70409: resource does not exist.
    pub const RESOURCE_DOES_NOT_EXIST: Self = Self(-70409);
    /// -70410: invalid value in a write.
    pub const INVALID_VALUE: Self = Self(-70410);
    /// -70411: insufficient authorization.
    pub const INSUFFICIENT_AUTHORIZATION: Self = Self(-70411);
    /// -70412: not allowed in the current state.
    pub const NOT_ALLOWED_IN_CURRENT_STATE: Self = Self(-70412);
}

/// A characteristic (HAP §6.2).
#[derive(Clone, PartialEq, Debug)]
pub struct Characteristic {
    /// Instance id; 0 in a template until [`AccessoryBuilder::add_service`] assigns it.
    pub iid: u64,
    /// Type.
    pub ty: HapType,
    /// Format.
    pub format: Format,
    /// Permissions.
    pub perms: Perms,
    /// Current value; it must match `format`.
    pub value: Value,
    /// Unit of a numeric value.
    pub unit: Option<Unit>,
    /// Constraints (`minValue` ...).
    pub constraints: Constraints,
    /// Optional `description`.
    pub description: Option<String>,
}

impl Characteristic {
    /// A characteristic of an Apple type without unit, constraints or description.
    pub fn new(ty: u32, format: Format, perms: Perms, value: Value) -> Self {
        Self {
            iid: 0,
            ty: HapType::Apple(ty),
            format,
            perms,
            value,
            unit: None,
            constraints: Constraints::default(),
            description: None,
        }
    }

    /// Sets the constraints.
    pub fn with_constraints(mut self, constraints: Constraints) -> Self {
        self.constraints = constraints;
        self
    }

    /// Sets the unit.
    pub fn with_unit(mut self, unit: Unit) -> Self {
        self.unit = Some(unit);
        self
    }

    /// Whether changes are sent at once on every trigger rather than coalesced (HAP §5.8):
    /// Programmable Switch Event (`73`).
    pub fn is_immediate(&self) -> bool {
        self.ty == HapType::Apple(PROGRAMMABLE_SWITCH_EVENT)
    }

    /// Whether reads return `null` whatever the value (HAP §5.2: Programmable Switch Event).
    fn reads_null(&self) -> bool {
        self.is_immediate()
    }
}

/// A service (HAP §6.2).
#[derive(Clone, PartialEq, Debug)]
pub struct Service {
    /// Instance id; 0 in a template until [`AccessoryBuilder::add_service`] assigns it.
    pub iid: u64,
    /// Type.
    pub ty: HapType,
    /// `primary`.
    pub primary: bool,
    /// `hidden`.
    pub hidden: bool,
    /// IIDs of linked services of the same accessory.
    pub linked: Vec<u64>,
    /// Characteristics.
    pub characteristics: Vec<Characteristic>,
}

impl Service {
    /// A service template of an Apple type.
    pub fn new(ty: u32, characteristics: Vec<Characteristic>) -> Self {
        Self {
            iid: 0,
            ty: HapType::Apple(ty),
            primary: false,
            hidden: false,
            linked: Vec::new(),
            characteristics,
        }
    }

    /// Marks the service primary.
    pub fn primary(mut self) -> Self {
        self.primary = true;
        self
    }
}

/// An accessory: aid 1 is the bridge, bridged accessories have other aids (HAP §6.1).
#[derive(Clone, PartialEq, Debug)]
pub struct Accessory {
    /// Accessory instance id.
    pub aid: u64,
    /// Services; the first is Accessory Information with iid 1.
    pub services: Vec<Service>,
}

/// The accessories of one HAP server.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Database {
    accessories: Vec<Accessory>,
}

/// The state of one controller connection that the database requests use.
#[derive(Debug, Default)]
pub struct ClientState {
    /// Characteristics this connection subscribed to with `"ev":true` (HAP §5.3).
    pub subscriptions: BTreeSet<CharId>,
    /// The pending timed write of PUT /prepare (HAP §5.4).
    pub prepared: Option<PreparedWrite>,
    /// Events waiting to go out on this connection.
    pub events: EventQueue,
    /// Values that answer this connection's own writes ([`WriteResult::Answer`]): its reads of
    /// these characteristics return them instead of the stored value. At most
    /// [`MAX_ANSWERS`], the oldest dropped first.
    pub answers: Vec<(CharId, Value)>,
}

/// Characteristics with a per-connection answer kept per connection (Setup Endpoints: one per
/// camera stream service).
pub const MAX_ANSWERS: usize = 64;

impl ClientState {
    /// This connection's answer to its last write of `id`, if any.
    pub fn answer(&self, id: CharId) -> Option<&Value> {
        self.answers.iter().find(|(c, _)| *c == id).map(|(_, v)| v)
    }

    fn set_answer(&mut self, id: CharId, value: Value) {
        self.answers.retain(|(c, _)| *c != id);
        if self.answers.len() >= MAX_ANSWERS {
            self.answers.remove(0);
        }
        self.answers.push((id, value));
    }

    /// Queues `change` if this connection subscribed to it. Call it on every connection except
    /// the one whose write caused the change (HAP §5.8).
    pub fn notify(&mut self, change: &Change, now: Instant) {
        if self.subscriptions.contains(&change.id) {
            self.events.push(change.clone(), now);
        }
    }
}

/// A timed write prepared by PUT /prepare (HAP §5.4).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PreparedWrite {
    /// The transaction id.
    pub pid: u64,
    /// When the preparation expires.
    pub deadline: Instant,
}

impl Database {
    /// A database of `accessories` (aid 1 first).
    pub fn new(accessories: Vec<Accessory>) -> Self {
        Self { accessories }
    }

    /// Sets a characteristic's value from the bridge side (a sensor changed).
    ///
    /// Returns the [`Change`] to pass to [`ClientState::notify`] on every connection, or `None`
    /// when the value did not change or the characteristic has no `ev` permission.
    /// Programmable Switch Event always yields a change, even with the same value (§5.8).
    ///
    /// # Errors
    /// -70409 if there is no such characteristic, -70410 if the value does not fit its format
    /// and constraints.
    pub fn set_value(&mut self, id: CharId, value: Value) -> Result<Option<Change>, HapStatus> {
        let c = self
            .characteristic_mut(id)
            .ok_or(HapStatus::RESOURCE_DOES_NOT_EXIST)?;
        if !value.check(c.format, &c.constraints) {
            return Err(HapStatus::INVALID_VALUE);
        }
        Ok(store(c, id, value))
    }

    /// The accessories.
    pub fn accessories(&self) -> &[Accessory] {
        &self.accessories
    }

    /// The characteristic at `id`.
    pub fn characteristic(&self, id: CharId) -> Option<&Characteristic> {
        self.accessories
            .iter()
            .find(|a| a.aid == id.aid)?
            .services
            .iter()
            .flat_map(|s| &s.characteristics)
            .find(|c| c.iid == id.iid)
    }

    /// The characteristic at `id`, mutably.
    fn characteristic_mut(&mut self, id: CharId) -> Option<&mut Characteristic> {
        self.accessories
            .iter_mut()
            .find(|a| a.aid == id.aid)?
            .services
            .iter_mut()
            .flat_map(|s| &mut s.characteristics)
            .find(|c| c.iid == id.iid)
    }

    /// The first characteristic of type `ty` in the service of type `service` of accessory
    /// `aid`, as a [`CharId`] (e.g. to find Motion Detected of a bridged camera).
    pub fn find(&self, aid: u64, service: &HapType, ty: &HapType) -> Option<CharId> {
        let acc = self.accessories.iter().find(|a| a.aid == aid)?;
        acc.services
            .iter()
            .filter(|s| &s.ty == service)
            .flat_map(|s| &s.characteristics)
            .find(|c| &c.ty == ty)
            .map(|c| CharId::new(aid, c.iid))
    }

    /// A hash of the database without values (HAP §6.5): it changes when an accessory,
    /// service or characteristic is added or removed, or any metadata changes, and not when a
    /// value changes. Persist it with `c#` and bump `c#` with [`next_config_number`] when it
    /// differs at startup. SHA-256, so it is stable across builds and versions.
    pub fn shape_hash(&self) -> [u8; 32] {
        sha2::Sha256::digest(json::accessories(self, false)).into()
    }
}

/// Stores `value` in `c` and returns the change to notify, if any.
fn store(c: &mut Characteristic, id: CharId, value: Value) -> Option<Change> {
    let immediate = c.is_immediate();
    let changed = c.value != value;
    c.value = value;
    (c.perms.contains(Perms::EV) && (changed || immediate)).then(|| Change {
        id,
        value: c.value.clone(),
        immediate,
    })
}

/// The configuration number after `current` (HAP §6.5): 1…65535, wrapping 65535 → 1, never 0.
pub fn next_config_number(current: u16) -> u16 {
    match current {
        u16::MAX => 1,
        n => n + 1,
    }
}

/// The suffix of Apple-defined UUIDs (HAP §6.2).
const APPLE_UUID_SUFFIX: &str = "-0000-1000-8000-0026BB765291";

/// Programmable Switch Event (HAP §6.6, Doorbell).
pub const PROGRAMMABLE_SWITCH_EVENT: u32 = 0x73;

#[cfg(test)]
mod tests;
