//! The JSON shapes of GET /accessories (HAP §6.2) and of characteristic entries (§5.2, §5.3).

use serde::Serialize;
use serde_json::Value as Json;

use super::value::DEFAULT_MAX_LEN;
use super::{Characteristic, Database, Format, Perms, Service};

impl Database {
    /// The body of GET /accessories (HAP §6.2), `application/hap+json`.
    pub fn accessories_json(&self) -> Vec<u8> {
        accessories(self, true)
    }
}

/// Serializes the database; without values for the shape hash (§6.5).
pub(super) fn accessories(db: &Database, with_values: bool) -> Vec<u8> {
    let accessories: Vec<AccessoryJson<'_>> = db
        .accessories
        .iter()
        .map(|a| AccessoryJson {
            aid: a.aid,
            services: a.services.iter().map(|s| service(s, with_values)).collect(),
        })
        .collect();
    to_vec(&AccessoriesJson { accessories })
}

fn service(s: &Service, with_values: bool) -> ServiceJson<'_> {
    let opts = Fields {
        meta: true,
        perms: true,
        ty: true,
        value: with_values,
        // Descriptions are part of the full listing only.
        description: true,
    };
    ServiceJson {
        iid: s.iid,
        ty: s.ty.to_json_string(),
        primary: s.primary.then_some(true),
        hidden: s.hidden.then_some(true),
        linked: (!s.linked.is_empty()).then_some(&s.linked),
        characteristics: s
            .characteristics
            .iter()
            .map(|c| characteristic(None, c, opts))
            .collect(),
    }
}

/// Which optional keys of a characteristic entry to write.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fields {
    /// `format`, `unit`, `minValue`, `maxValue`, `minStep`, `maxLen`, `maxDataLen`, `valid-values`.
    pub(super) meta: bool,
    /// `perms`.
    pub(super) perms: bool,
    /// `type`.
    pub(super) ty: bool,
    /// `value` (only for `pr` characteristics; `null` for Programmable Switch Event).
    pub(super) value: bool,
    /// `description`.
    pub(super) description: bool,
}

/// One characteristic entry with the requested fields.
pub(super) fn characteristic(aid: Option<u64>, c: &Characteristic, f: Fields) -> CharJson<'_> {
    let k = &c.constraints;
    let value = (f.value && c.perms.contains(Perms::PR)).then(|| {
        if c.reads_null() {
            Json::Null
        } else {
            c.value.to_json()
        }
    });
    let numeric = f.meta && c.format.is_numeric();
    CharJson {
        aid,
        iid: c.iid,
        ty: f.ty.then(|| c.ty.to_json_string()),
        perms: f.perms.then(|| c.perms.names()),
        format: f.meta.then(|| c.format.as_str()),
        value,
        status: None,
        ev: None,
        description: if f.description {
            c.description.as_deref()
        } else {
            None
        },
        unit: if f.meta {
            c.unit.map(|u| u.as_str())
        } else {
            None
        },
        min_value: k.min.filter(|_| numeric).map(number),
        max_value: k.max.filter(|_| numeric).map(number),
        min_step: k.step.filter(|_| numeric).map(number),
        // maxLen is omitted when it is the default 64 (§6.2).
        max_len: k
            .max_len
            .filter(|&m| f.meta && c.format == Format::String && usize::from(m) != DEFAULT_MAX_LEN),
        max_data_len: k
            .max_data_len
            .filter(|_| f.meta && c.format == Format::Data),
        valid_values: k.valid_values.as_deref().filter(|_| f.meta),
    }
}

/// A bare entry `{"aid":..,"iid":..,"status":..}`.
pub(super) fn status_entry(aid: u64, iid: u64, status: i32) -> CharJson<'static> {
    CharJson {
        aid: Some(aid),
        iid,
        status: Some(status),
        ..CharJson::default()
    }
}

/// `{"characteristics":[...]}`.
pub(super) fn characteristics_body(entries: &[CharJson<'_>]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'b, 'c> {
        characteristics: &'b [CharJson<'c>],
    }
    to_vec(&Body {
        characteristics: entries,
    })
}

/// An integral float as a JSON integer (`0` rather than `0.0`), others as floats.
fn number(x: f64) -> Json {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Json::from(x as i64)
    } else {
        Json::from(x)
    }
}

fn to_vec<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail: all map keys are strings.
    serde_json::to_vec(v).unwrap_or_default()
}

#[derive(Serialize)]
struct AccessoriesJson<'a> {
    accessories: Vec<AccessoryJson<'a>>,
}

#[derive(Serialize)]
struct AccessoryJson<'a> {
    aid: u64,
    services: Vec<ServiceJson<'a>>,
}

#[derive(Serialize)]
struct ServiceJson<'a> {
    iid: u64,
    #[serde(rename = "type")]
    ty: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hidden: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    linked: Option<&'a Vec<u64>>,
    characteristics: Vec<CharJson<'a>>,
}

/// A characteristic entry; absent keys are omitted (never `"value":null` unless meant).
#[derive(Serialize, Default, Debug, Clone)]
pub(super) struct CharJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) aid: Option<u64>,
    pub(super) iid: u64,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(super) ty: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) perms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) value: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) ev: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) unit: Option<&'static str>,
    #[serde(rename = "minValue", skip_serializing_if = "Option::is_none")]
    pub(super) min_value: Option<Json>,
    #[serde(rename = "maxValue", skip_serializing_if = "Option::is_none")]
    pub(super) max_value: Option<Json>,
    #[serde(rename = "minStep", skip_serializing_if = "Option::is_none")]
    pub(super) min_step: Option<Json>,
    #[serde(rename = "maxLen", skip_serializing_if = "Option::is_none")]
    pub(super) max_len: Option<u16>,
    #[serde(rename = "maxDataLen", skip_serializing_if = "Option::is_none")]
    pub(super) max_data_len: Option<u32>,
    #[serde(rename = "valid-values", skip_serializing_if = "Option::is_none")]
    pub(super) valid_values: Option<&'a [u64]>,
}
