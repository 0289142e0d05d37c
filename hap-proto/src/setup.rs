//! Setup code, setup ID, the `X-HM://` setup URI and the mDNS setup hash (HAP §8.3, §9).
//!
//! ```
//! use hap_proto::setup::{setup_uri, Category, SetupCode, SetupId};
//! let code: SetupCode = "518-08-582".parse().unwrap();
//! let id: SetupId = "7OSX".parse().unwrap();
//! assert_eq!(setup_uri(&code, &id, Category::OUTLET), "X-HM://0071WK4SM7OSX");
//! assert_eq!(format!("{code:?}"), "SetupCode(***)"); // Debug never shows the code
//! ```
#![deny(clippy::indexing_slicing)]

use base64::Engine as _;
use sha2::{Digest, Sha512};
use zeroize::Zeroize;

use crate::CryptoRandom;
use crate::device_id::DeviceId;

/// An 8-digit setup code, `XXX-XX-XXX` (HAP §9.1). Its dashed form is the SRP password.
///
/// `Debug` prints `SetupCode(***)`; only `Display` and [`SetupCode::as_str`] reveal the code.
/// The digits are wiped when the value is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode {
    /// ASCII `DDD-DD-DDD`, validated.
    dashed: [u8; 10],
}

impl SetupCode {
    /// Parses `XXX-XX-XXX` (8 decimal digits, dashes at index 3 and 6) and refuses the codes
    /// HAP forbids: all digits the same, `123-45-678` and `876-54-321` (§9.1).
    pub fn parse(s: &str) -> Result<Self, SetupCodeError> {
        let bytes: [u8; 10] = s
            .as_bytes()
            .try_into()
            .map_err(|_| SetupCodeError::Format)?;
        for (i, b) in bytes.iter().enumerate() {
            let ok = match i {
                3 | 6 => *b == b'-',
                _ => b.is_ascii_digit(),
            };
            if !ok {
                return Err(SetupCodeError::Format);
            }
        }
        let code = Self { dashed: bytes };
        if is_trivial(code.to_u32()) {
            return Err(SetupCodeError::Trivial);
        }
        Ok(code)
    }

    /// A uniformly random valid code: 8 random digits by rejection sampling, invalid codes
    /// rejected (as ADK does).
    pub fn generate(rng: &mut dyn CryptoRandom) -> Self {
        loop {
            let mut buf = [0u8; 4];
            rng.fill(&mut buf);
            let raw = u32::from_le_bytes(buf);
            buf.zeroize();
            // 42 * 10^8 is the largest multiple of 10^8 below 2^32: no modulo bias.
            if raw >= 42 * CODE_SPACE {
                continue;
            }
            let value = raw % CODE_SPACE;
            if !is_trivial(value) {
                return Self::from_u32(value);
            }
        }
    }

    /// The dashed form `XXX-XX-XXX`, the SRP password of pair-setup (HAP §2.1).
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and dashes are ever stored.
        core::str::from_utf8(&self.dashed).unwrap_or("")
    }

    /// The 8 digits as one decimal integer (`031-45-154` → 3145154), as in the setup payload.
    pub fn to_u32(&self) -> u32 {
        self.dashed
            .iter()
            .filter(|b| b.is_ascii_digit())
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    }

    fn from_u32(value: u32) -> Self {
        let mut digits = [0u8; 8];
        let mut rest = value;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        let [a, b, c, d, e, f, g, h] = digits;
        Self {
            dashed: [a, b, c, b'-', d, e, b'-', f, g, h],
        }
    }
}

impl core::str::FromStr for SetupCode {
    type Err = SetupCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl core::fmt::Display for SetupCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SetupCode(***)")
    }
}

impl Drop for SetupCode {
    fn drop(&mut self) {
        self.dashed.zeroize();
    }
}

/// Why a setup code was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SetupCodeError {
    /// Not `XXX-XX-XXX` with 8 decimal digits.
    #[error("setup code must have the form XXX-XX-XXX with 8 decimal digits")]
    Format,
    /// One of the codes HAP forbids (all digits the same, 123-45-678, 876-54-321; HAP §9.1).
    #[error("setup code is too easy to guess (all digits equal, 123-45-678 or 876-54-321)")]
    Trivial,
}

/// A 4-character setup ID from `0-9A-Z` (HAP §9.2), appended to the setup URI and hashed into
/// the mDNS `sh` key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SetupId([u8; 4]);

impl SetupId {
    /// Parses 4 characters of `0-9A-Z` (uppercase only, as ADK validates).
    pub fn parse(s: &str) -> Result<Self, SetupIdError> {
        let bytes: [u8; 4] = s.as_bytes().try_into().map_err(|_| SetupIdError)?;
        if bytes
            .iter()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        {
            Ok(Self(bytes))
        } else {
            Err(SetupIdError)
        }
    }

    /// A uniformly random setup ID (rejection sampling of random bytes).
    pub fn generate(rng: &mut dyn CryptoRandom) -> Self {
        let mut out = [0u8; 4];
        let mut filled = 0;
        while filled < out.len() {
            let mut byte = [0u8; 1];
            rng.fill(&mut byte);
            let [b] = byte;
            // 252 = 7 * 36: accept only bytes that map to base-36 digits without bias.
            if b < 252 {
                if let Some(slot) = out.get_mut(filled) {
                    *slot = BASE36.get(usize::from(b % 36)).copied().unwrap_or(b'0');
                }
                filled += 1;
            }
        }
        Self(out)
    }

    /// The 4 characters.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or("0000")
    }
}

impl core::str::FromStr for SetupId {
    type Err = SetupIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl core::fmt::Display for SetupId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for SetupId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SetupId({})", self.as_str())
    }
}

/// A setup ID that is not 4 characters of `0-9A-Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("setup ID must be 4 characters of 0-9A-Z")]
pub struct SetupIdError;

/// An accessory category identifier: mDNS `ci` and the 8-bit category of the setup payload
/// (HAP §8.2). Open: unknown values round-trip; `Debug` prints known names.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(pub u8);

macro_rules! categories {
    ($($(#[$meta:meta])* $name:ident = $value:expr,)*) => {
        impl Category {
            $($(#[$meta])* pub const $name: Self = Self($value);)*

            /// The name of a known category.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($name)),)*
                    _ => None,
                }
            }
        }
    };
}

categories! {
    /// Other (1).
    OTHER = 1,
    /// Bridge (2).
    BRIDGE = 2,
    /// Fan (3).
    FAN = 3,
    /// Garage door opener (4).
    GARAGE_DOOR_OPENER = 4,
    /// Lightbulb (5).
    LIGHTBULB = 5,
    /// Door lock (6).
    DOOR_LOCK = 6,
    /// Outlet (7).
    OUTLET = 7,
    /// Switch (8).
    SWITCH = 8,
    /// Thermostat (9).
    THERMOSTAT = 9,
    /// Sensor (10).
    SENSOR = 10,
    /// Security system (11).
    SECURITY_SYSTEM = 11,
    /// Door (12).
    DOOR = 12,
    /// Window (13).
    WINDOW = 13,
    /// Window covering (14).
    WINDOW_COVERING = 14,
    /// Programmable switch (15).
    PROGRAMMABLE_SWITCH = 15,
    /// Range extender (16).
    RANGE_EXTENDER = 16,
    /// IP camera (17): a stand-alone camera.
    IP_CAMERA = 17,
    /// Video doorbell (18): a camera with a doorbell.
    VIDEO_DOORBELL = 18,
    /// Air purifier (19).
    AIR_PURIFIER = 19,
    /// Heater (20).
    HEATER = 20,
    /// Air conditioner (21).
    AIR_CONDITIONER = 21,
    /// Humidifier (22).
    HUMIDIFIER = 22,
    /// Dehumidifier (23).
    DEHUMIDIFIER = 23,
    /// Apple TV (24, HAP-NodeJS only).
    APPLE_TV = 24,
    /// HomePod (25, HAP-NodeJS only).
    HOMEPOD = 25,
    /// Speaker (26).
    SPEAKER = 26,
    /// AirPort (27, HAP-NodeJS only).
    AIRPORT = 27,
    /// Sprinkler (28).
    SPRINKLER = 28,
    /// Faucet (29).
    FAUCET = 29,
    /// Shower head (30).
    SHOWER_HEAD = 30,
    /// Television (31).
    TELEVISION = 31,
    /// Target controller / remote (32).
    TARGET_CONTROLLER = 32,
    /// Router (33, HAP-NodeJS only).
    ROUTER = 33,
    /// Audio receiver (34, HAP-NodeJS only).
    AUDIO_RECEIVER = 34,
    /// TV set-top box (35, HAP-NodeJS only).
    TV_SET_TOP_BOX = 35,
    /// TV streaming stick (36, HAP-NodeJS only).
    TV_STREAMING_STICK = 36,
}

impl core::fmt::Debug for Category {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "Category({})", self.0),
        }
    }
}

impl From<u8> for Category {
    fn from(value: u8) -> Self {
        Self(value)
    }
}

/// The fields of the 46-bit setup payload (HAP §9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetupPayload<'a> {
    /// The setup code; `None` writes 0 (ADK's paired NFC tag case).
    pub code: Option<&'a SetupCode>,
    /// The setup ID; `None` writes `0000`.
    pub setup_id: Option<&'a SetupId>,
    /// The accessory category.
    pub category: Category,
    /// Flag 2 (bit 28): supports HAP over IP. Set for this bridge.
    pub ip: bool,
    /// Flag 4 (bit 29): supports HAP over BLE.
    pub ble: bool,
    /// Flag 8 (bit 30): Wi-Fi Accessory Configuration.
    pub wac: bool,
    /// Flag 1 (bit 27): ADK "paired" (programmable NFC tags only).
    pub paired: bool,
}

impl SetupPayload<'_> {
    /// The payload as an integer: version 0 (bits 45-43), reserved 0 (42-39), category
    /// (38-31), flags (30-27), setup code (26-0).
    pub fn to_u64(&self) -> u64 {
        let code = self.code.map_or(0, |c| u64::from(c.to_u32())) & CODE_MASK;
        (u64::from(self.category.0) << 31)
            | (u64::from(self.wac) << 30)
            | (u64::from(self.ble) << 29)
            | (u64::from(self.ip) << 28)
            | (u64::from(self.paired) << 27)
            | code
    }

    /// The URI `X-HM://` + 9 base-36 characters + setup ID (`0000` without one).
    pub fn to_uri(&self) -> String {
        encode_setup_uri(self.to_u64(), self.setup_id)
    }
}

/// The setup URI of an IP accessory (HAP §9.3), the text of its QR code:
/// `X-HM://` + the payload in base 36 (9 characters) + the setup ID.
pub fn setup_uri(code: &SetupCode, setup_id: &SetupId, category: Category) -> String {
    SetupPayload {
        code: Some(code),
        setup_id: Some(setup_id),
        category,
        ip: true,
        ble: false,
        wac: false,
        paired: false,
    }
    .to_uri()
}

/// Writes `payload` in base 36 (`0-9A-Z`, most significant first, zero-padded to 9
/// characters) after `X-HM://` and appends the setup ID, or `0000` without one (HAP §9.3).
pub fn encode_setup_uri(payload: u64, setup_id: Option<&SetupId>) -> String {
    let mut digits = [b'0'; URI_PAYLOAD_CHARS];
    let mut rest = payload;
    for d in digits.iter_mut().rev() {
        *d = BASE36.get((rest % 36) as usize).copied().unwrap_or(b'0');
        rest /= 36;
    }
    let mut out = String::with_capacity(URI_PREFIX.len() + URI_PAYLOAD_CHARS + 4);
    out.push_str(URI_PREFIX);
    out.extend(digits.iter().map(|b| char::from(*b)));
    out.push_str(setup_id.map_or("0000", SetupId::as_str));
    out
}

/// A decoded setup URI (HAP §9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedSetupUri {
    /// The 46-bit payload.
    pub payload: u64,
    /// The accessory category (bits 38-31).
    pub category: Category,
    /// Flag 2 (bit 28): HAP over IP.
    pub ip: bool,
    /// Flag 4 (bit 29): HAP over BLE.
    pub ble: bool,
    /// The setup code digits as an integer (bits 26-0); 0 when absent.
    pub code: u32,
    /// The 4-character setup ID (`0000` when absent).
    pub setup_id: [u8; 4],
}

impl ParsedSetupUri {
    /// The setup code in `XXX-XX-XXX` form, if it is a valid code.
    pub fn setup_code(&self) -> Option<SetupCode> {
        let d = format!("{:08}", self.code);
        SetupCode::parse(&format!("{}-{}-{}", d.get(..3)?, d.get(3..5)?, d.get(5..)?)).ok()
    }
}

/// Parses an `X-HM://` setup URI: the prefix, 9 base-36 characters (`0-9A-Z`) whose value fits
/// in 46 bits with version 0, and a 4-character setup ID from `0-9A-Z`.
pub fn parse_setup_uri(uri: &str) -> Option<ParsedSetupUri> {
    let rest = uri.strip_prefix(URI_PREFIX)?;
    if rest.len() != URI_PAYLOAD_CHARS + 4 || !rest.is_ascii() {
        return None;
    }
    let (digits, id) = rest.split_at(URI_PAYLOAD_CHARS);
    let mut payload = 0u64;
    for c in digits.bytes() {
        let v = BASE36.iter().position(|b| *b == c)? as u64;
        payload = payload.checked_mul(36)?.checked_add(v)?;
    }
    if payload >> 43 != 0 {
        return None; // version bits must be 0 (and the value must fit in 46 bits)
    }
    let setup_id: [u8; 4] = id.as_bytes().try_into().ok()?;
    if !setup_id.iter().all(|b| BASE36.contains(b)) {
        return None;
    }
    Some(ParsedSetupUri {
        payload,
        category: Category(((payload >> 31) & 0xFF) as u8),
        ip: payload >> 28 & 1 == 1,
        ble: payload >> 29 & 1 == 1,
        code: (payload & CODE_MASK) as u32,
        setup_id,
    })
}

/// The mDNS `sh` value: base64 of the first 4 bytes of SHA-512(setup ID || Device ID string)
/// (HAP §8.3), e.g. `yf4bzw==`.
pub fn setup_hash(setup_id: &SetupId, device_id: &DeviceId) -> String {
    setup_hash_ascii(setup_id.as_str(), &device_id.to_string())
}

/// [`setup_hash`] over arbitrary ASCII strings (HAP-python's tests use a 3-character ID).
fn setup_hash_ascii(setup_id: &str, device_id: &str) -> String {
    let digest = Sha512::new()
        .chain_update(setup_id.as_bytes())
        .chain_update(device_id.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest.get(..4).unwrap_or(&[]))
}

fn is_trivial(value: u32) -> bool {
    // All digits equal (000-00-000 ... 999-99-999), 123-45-678, 876-54-321 (HAP §9.1).
    value.is_multiple_of(11_111_111) || value == 12_345_678 || value == 87_654_321
}

const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const URI_PREFIX: &str = "X-HM://";
/// Base-36 characters of the payload in the URI.
const URI_PAYLOAD_CHARS: usize = 9;
/// The number of distinct 8-digit codes.
const CODE_SPACE: u32 = 100_000_000;
/// The setup code occupies bits 26-0 of the payload.
const CODE_MASK: u64 = (1 << 27) - 1;

#[cfg(test)]
mod tests;
