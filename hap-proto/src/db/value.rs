//! Formats, permissions, units, constraints and values of characteristics (HAP §6.3, §6.4).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value as Json;

/// The format of a characteristic's value (HAP §6.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Format {
    /// `bool`: JSON `true`/`false` (`0`/`1` accepted on write).
    Bool,
    /// `uint8`.
    Uint8,
    /// `uint16`.
    Uint16,
    /// `uint32`.
    Uint32,
    /// `uint64`.
    Uint64,
    /// `int`: signed 32-bit.
    Int,
    /// `float`.
    Float,
    /// `string`: UTF-8, `maxLen` bytes (default 64).
    String,
    /// `tlv8`: base64 in JSON.
    Tlv8,
    /// `data`: base64 in JSON, `maxDataLen` bytes (default 2097152).
    Data,
}

impl Format {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Uint8 => "uint8",
            Self::Uint16 => "uint16",
            Self::Uint32 => "uint32",
            Self::Uint64 => "uint64",
            Self::Int => "int",
            Self::Float => "float",
            Self::String => "string",
            Self::Tlv8 => "tlv8",
            Self::Data => "data",
        }
    }

    /// Whether the format is numeric (takes `minValue`, `maxValue`, `minStep`).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Uint8 | Self::Uint16 | Self::Uint32 | Self::Uint64 | Self::Int | Self::Float
        )
    }

    /// The range of an integer format, as `f64` for comparisons.
    fn int_range(self) -> Option<(f64, f64)> {
        Some(match self {
            Self::Uint8 => (0.0, f64::from(u8::MAX)),
            Self::Uint16 => (0.0, f64::from(u16::MAX)),
            Self::Uint32 => (0.0, f64::from(u32::MAX)),
            // u64::MAX is not exact in f64; the integer parse below checks the range.
            Self::Uint64 => (0.0, 18_446_744_073_709_551_615.0),
            Self::Int => (f64::from(i32::MIN), f64::from(i32::MAX)),
            _ => return None,
        })
    }
}

/// Characteristic permissions, a set of the flags of HAP §6.4.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u8);

impl Perms {
    /// `pr`: paired read.
    pub const PR: Self = Self(1);
    /// `pw`: paired write.
    pub const PW: Self = Self(2);
    /// `ev`: events.
    pub const EV: Self = Self(4);
    /// `aa`: additional authorization.
    pub const AA: Self = Self(8);
    /// `tw`: timed write required (§5.4).
    pub const TW: Self = Self(16);
    /// `hd`: hidden.
    pub const HD: Self = Self(32);
    /// `wr`: write response (`"r":true`).
    pub const WR: Self = Self(64);

    const NAMES: [(Self, &'static str); 7] = [
        (Self::PR, "pr"),
        (Self::PW, "pw"),
        (Self::EV, "ev"),
        (Self::AA, "aa"),
        (Self::TW, "tw"),
        (Self::HD, "hd"),
        (Self::WR, "wr"),
    ];

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The JSON names of the set flags, in the order `pr pw ev aa tw hd wr`.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(p, _)| self.contains(*p))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl std::ops::BitOr for Perms {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::fmt::Debug for Perms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The unit of a numeric characteristic (HAP §6.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Unit {
    /// `celsius`.
    Celsius,
    /// `percentage`.
    Percentage,
    /// `arcdegrees`.
    Arcdegrees,
    /// `lux`.
    Lux,
    /// `seconds`.
    Seconds,
}

impl Unit {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Celsius => "celsius",
            Self::Percentage => "percentage",
            Self::Arcdegrees => "arcdegrees",
            Self::Lux => "lux",
            Self::Seconds => "seconds",
        }
    }
}

/// Metadata constraints of a characteristic (HAP §6.2 keys), all optional.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Constraints {
    /// `minValue`.
    pub min: Option<f64>,
    /// `maxValue`.
    pub max: Option<f64>,
    /// `minStep`.
    pub step: Option<f64>,
    /// `valid-values`: the only values accepted (integer formats).
    pub valid_values: Option<Vec<u64>>,
    /// `maxLen` for strings; `None` means the default [`DEFAULT_MAX_LEN`] (then omitted in JSON).
    pub max_len: Option<u16>,
    /// `maxDataLen` for data; `None` means [`DEFAULT_MAX_DATA_LEN`].
    pub max_data_len: Option<u32>,
}

impl Constraints {
    /// `minValue`/`maxValue`/`minStep` constraints.
    pub fn range(min: f64, max: f64, step: f64) -> Self {
        Self {
            min: Some(min),
            max: Some(max),
            step: Some(step),
            ..Self::default()
        }
    }
}

/// A characteristic value. `Tlv8` and `Data` hold the decoded bytes (base64 in JSON).
///
/// `Debug` shows only the length of `Tlv8` and `Data`: Setup Endpoints (`118`) carries SRTP
/// master keys, which must never reach a log.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// `bool`.
    Bool(bool),
    /// Any unsigned integer format.
    Uint(u64),
    /// `int`.
    Int(i64),
    /// `float` (always finite).
    Float(f64),
    /// `string`.
    String(String),
    /// `tlv8`.
    Tlv8(Vec<u8>),
    /// `data`.
    Data(Vec<u8>),
}

impl Value {
    /// The JSON form: booleans as `true`/`false`, bytes as base64 strings.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Bool(b) => Json::Bool(*b),
            Self::Uint(n) => Json::from(*n),
            Self::Int(n) => Json::from(*n),
            Self::Float(x) => Json::from(*x),
            Self::String(s) => Json::String(s.clone()),
            Self::Tlv8(b) | Self::Data(b) => Json::String(BASE64.encode(b)),
        }
    }

    /// Whether the value has the Rust shape of `format` (not checking ranges).
    pub fn matches(&self, format: Format) -> bool {
        matches!(
            (self, format),
            (Self::Bool(_), Format::Bool)
                | (
                    Self::Uint(_),
                    Format::Uint8 | Format::Uint16 | Format::Uint32 | Format::Uint64
                )
                | (Self::Int(_), Format::Int)
                | (Self::Float(_), Format::Float)
                | (Self::String(_), Format::String)
                | (Self::Tlv8(_), Format::Tlv8)
                | (Self::Data(_), Format::Data)
        )
    }

    /// Parses a written JSON value for `format` and checks it against `c`; `None` if invalid
    /// (the write then fails with -70410, HAP §5.3).
    pub fn from_json(json: &Json, format: Format, c: &Constraints) -> Option<Self> {
        let v = match format {
            Format::Bool => match json {
                Json::Bool(b) => Self::Bool(*b),
                // ADK writes 0/1 (HAP §6.3).
                Json::Number(n) => match n.as_u64() {
                    Some(0) => Self::Bool(false),
                    Some(1) => Self::Bool(true),
                    _ => return None,
                },
                _ => return None,
            },
            Format::Uint8 | Format::Uint16 | Format::Uint32 | Format::Uint64 => {
                Self::Uint(integral(json)?.try_into().ok()?)
            }
            Format::Int => Self::Int(integral(json)?.try_into().ok()?),
            Format::Float => Self::Float(json.as_f64().filter(|x| x.is_finite())?),
            Format::String => Self::String(json.as_str()?.to_owned()),
            Format::Tlv8 => Self::Tlv8(BASE64.decode(json.as_str()?).ok()?),
            Format::Data => Self::Data(BASE64.decode(json.as_str()?).ok()?),
        };
        v.check(format, c).then_some(v)
    }

    /// Whether the value fits `format` and the constraints `c`.
    pub fn check(&self, format: Format, c: &Constraints) -> bool {
        if !self.matches(format) {
            return false;
        }
        let x = match self {
            Self::Uint(n) => *n as f64,
            Self::Int(n) => *n as f64,
            Self::Float(x) if !x.is_finite() => return false,
            Self::Float(x) => *x,
            Self::String(s) => {
                let max = c.max_len.map_or(DEFAULT_MAX_LEN, usize::from);
                return s.len() <= max.min(MAX_MAX_LEN);
            }
            Self::Data(b) => {
                let max = c.max_data_len.map_or(DEFAULT_MAX_DATA_LEN, |m| m as usize);
                return b.len() <= max;
            }
            Self::Bool(_) | Self::Tlv8(_) => return true,
        };
        if let Some((lo, hi)) = format.int_range()
            && (x < lo || x > hi)
        {
            return false;
        }
        if c.min.is_some_and(|m| x < m) || c.max.is_some_and(|m| x > m) {
            return false;
        }
        if let Some(valid) = &c.valid_values {
            let Self::Uint(n) = self else { return false };
            if !valid.contains(n) {
                return false;
            }
        }
        true
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "Bool({b})"),
            Self::Uint(n) => write!(f, "Uint({n})"),
            Self::Int(n) => write!(f, "Int({n})"),
            Self::Float(x) => write!(f, "Float({x})"),
            Self::String(s) => write!(f, "String({s:?})"),
            Self::Tlv8(b) => write!(f, "Tlv8({} bytes)", b.len()),
            Self::Data(b) => write!(f, "Data({} bytes)", b.len()),
        }
    }
}

/// An integer from a JSON number, also from an integral float such as `1.0`.
fn integral(json: &Json) -> Option<i128> {
    let n = json.as_number()?;
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    let x = n.as_f64()?;
    // Floats beyond ±2^63 are not valid integer values for any HAP format anyway.
    (x.fract() == 0.0 && x.abs() < 9.2e18).then_some(x as i128)
}

/// The default `maxLen` of a string (HAP §6.3); omitted from JSON when it applies.
pub const DEFAULT_MAX_LEN: usize = 64;

/// The largest `maxLen` a string may declare (HAP §6.3).
pub const MAX_MAX_LEN: usize = 256;

/// The default `maxDataLen` of a data value (HAP §6.3).
pub const DEFAULT_MAX_DATA_LEN: usize = 2_097_152;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bool_accepts_true_false_0_1() {
        let c = Constraints::default();
        assert_eq!(
            Value::from_json(&json!(true), Format::Bool, &c),
            Some(Value::Bool(true))
        );
        assert_eq!(
            Value::from_json(&json!(0), Format::Bool, &c),
            Some(Value::Bool(false))
        );
        assert_eq!(
            Value::from_json(&json!(1), Format::Bool, &c),
            Some(Value::Bool(true))
        );
        assert_eq!(Value::from_json(&json!(2), Format::Bool, &c), None);
        assert_eq!(Value::from_json(&json!("true"), Format::Bool, &c), None);
        assert_eq!(Value::Bool(true).to_json(), json!(true));
    }

    #[test]
    fn integer_ranges_and_constraints() {
        let c = Constraints::default();
        assert_eq!(
            Value::from_json(&json!(255), Format::Uint8, &c),
            Some(Value::Uint(255))
        );
        assert_eq!(Value::from_json(&json!(256), Format::Uint8, &c), None);
        assert_eq!(Value::from_json(&json!(-1), Format::Uint16, &c), None);
        assert_eq!(
            Value::from_json(&json!(1.0), Format::Uint8, &c),
            Some(Value::Uint(1))
        );
        assert_eq!(Value::from_json(&json!(1.5), Format::Uint8, &c), None);
        assert_eq!(
            Value::from_json(&json!(u64::MAX), Format::Uint64, &c),
            Some(Value::Uint(u64::MAX))
        );
        assert_eq!(
            Value::from_json(&json!(-5), Format::Int, &c),
            Some(Value::Int(-5))
        );
        assert_eq!(
            Value::from_json(&json!(i64::from(i32::MAX) + 1), Format::Int, &c),
            None
        );
        let pct = Constraints::range(0.0, 100.0, 1.0);
        assert_eq!(
            Value::from_json(&json!(100), Format::Uint8, &pct),
            Some(Value::Uint(100))
        );
        assert_eq!(Value::from_json(&json!(101), Format::Uint8, &pct), None);
        let vv = Constraints {
            valid_values: Some(vec![0, 1]),
            ..Constraints::default()
        };
        assert_eq!(
            Value::from_json(&json!(1), Format::Uint8, &vv),
            Some(Value::Uint(1))
        );
        assert_eq!(Value::from_json(&json!(2), Format::Uint8, &vv), None);
    }

    #[test]
    fn float_string_bytes() {
        let c = Constraints::default();
        assert_eq!(
            Value::from_json(&json!(2.5), Format::Float, &c),
            Some(Value::Float(2.5))
        );
        assert_eq!(Value::from_json(&json!("x"), Format::Float, &c), None);
        let long = "a".repeat(65);
        assert_eq!(Value::from_json(&json!(long), Format::String, &c), None);
        let c100 = Constraints {
            max_len: Some(100),
            ..Constraints::default()
        };
        assert!(Value::from_json(&json!(long), Format::String, &c100).is_some());
        assert_eq!(
            Value::from_json(&json!("AQEA"), Format::Tlv8, &c),
            Some(Value::Tlv8(vec![1, 1, 0]))
        );
        assert_eq!(
            Value::from_json(&json!("not base64!"), Format::Tlv8, &c),
            None
        );
        assert_eq!(Value::Tlv8(vec![1, 1, 0]).to_json(), json!("AQEA"));
        let small = Constraints {
            max_data_len: Some(2),
            ..Constraints::default()
        };
        assert_eq!(Value::from_json(&json!("AQEA"), Format::Data, &small), None);
    }

    #[test]
    fn debug_hides_bytes() {
        let v = Value::Tlv8(vec![0xAB; 30]);
        assert_eq!(format!("{v:?}"), "Tlv8(30 bytes)");
        assert_eq!(format!("{:?}", Value::Uint(3)), "Uint(3)");
    }

    #[test]
    fn perms_names_in_order() {
        assert_eq!(
            (Perms::EV | Perms::PR | Perms::WR).names(),
            ["pr", "ev", "wr"]
        );
        assert!((Perms::PR | Perms::PW).contains(Perms::PW));
        assert!(!Perms::PR.contains(Perms::PW));
    }
}
