//! The `_hap._tcp` DNS-SD TXT record (HAP §8.1), as data.
//!
//! This module only builds the ordered key/value list; the bridge hands it to its mDNS responder
//! and re-announces it when `c#` or the paired state changes (HAP §8.4).

use crate::device_id::DeviceId;

/// The DNS-SD service type of HAP over IP (HAP §8), with the `local.` domain.
pub const SERVICE_TYPE: &str = "_hap._tcp.local.";

/// Accessory category identifiers advertised as `ci` (HAP §8.2); the ones this project uses.
pub mod category {
    /// Other (1).
    pub const OTHER: u8 = 1;
    /// Bridge (2).
    pub const BRIDGE: u8 = 2;
    /// IP camera (17).
    pub const IP_CAMERA: u8 = 17;
    /// Video doorbell (18).
    pub const VIDEO_DOORBELL: u8 = 18;
}

/// What goes into the TXT record of one HAP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxtParams {
    /// Model name (`md`).
    pub model: String,
    /// Device ID (`id`), advertised uppercase.
    pub device_id: DeviceId,
    /// Configuration number (`c#`, 1..=65535, HAP §6.5).
    pub config_number: u16,
    /// Whether at least one pairing exists (`sf` is 0 when paired, 1 when not).
    pub paired: bool,
    /// Category identifier (`ci`, HAP §8.2).
    pub category: u8,
    /// Setup hash (`sh`, HAP §8.3), present only when a setup ID exists.
    pub setup_hash: Option<String>,
}

/// The TXT record as an ordered list of `(key, value)` pairs (HAP §8.1).
///
/// The order is the one HAP-python advertises (`md, pv, id, c#, s#, ff, ci, sf, sh`); DNS-SD does
/// not give the order a meaning, but a fixed one keeps records comparable.
pub fn txt_record(params: &TxtParams) -> Vec<(&'static str, String)> {
    let mut txt = vec![
        ("md", params.model.clone()),
        ("pv", PROTOCOL_VERSION.to_owned()),
        ("id", params.device_id.to_string()),
        ("c#", params.config_number.to_string()),
        ("s#", STATE_NUMBER.to_owned()),
        ("ff", FEATURE_FLAGS.to_owned()),
        ("ci", params.category.to_string()),
        ("sf", status_flags(params.paired).to_string()),
    ];
    if let Some(sh) = &params.setup_hash {
        txt.push(("sh", sh.clone()));
    }
    txt
}

/// The `sf` status flags: bit 0 set while the accessory is not paired (HAP §8.1).
pub fn status_flags(paired: bool) -> u8 {
    if paired { 0 } else { STATUS_NOT_PAIRED }
}

/// Protocol version `pv` of HAP over IP (HAP §8.1).
pub const PROTOCOL_VERSION: &str = "1.1";
/// Current state number `s#`: always 1 for IP accessories (HAP §8.1).
pub const STATE_NUMBER: &str = "1";
/// Pairing feature flags `ff`: 0 for a non-MFi accessory (HAP §8.1).
pub const FEATURE_FLAGS: &str = "0";
/// `sf` bit 0: not paired (HAP §8.1).
pub const STATUS_NOT_PAIRED: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses the vector file: `key=value` lines after the `#` provenance header.
    fn vector() -> Vec<(String, String)> {
        include_str!("../testdata/mdns_txt_py.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    #[test]
    fn txt_matches_hap_python_vector() {
        // HAP §10.6: HAP-python `tests/test_accessory_driver.py`, unpaired "Test Accessory".
        let txt = txt_record(&TxtParams {
            model: "Test Accessory".to_owned(),
            device_id: DeviceId::parse("00:00:00:00:00:00").unwrap(),
            config_number: 1,
            paired: false,
            category: category::OTHER,
            setup_hash: Some("+KjpzQ==".to_owned()),
        });
        let got: Vec<(String, String)> = txt.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(got, vector());
    }

    #[test]
    fn paired_bridge_without_setup_hash() {
        let txt = txt_record(&TxtParams {
            model: "HAP Bridge".to_owned(),
            device_id: DeviceId([0xe1, 0x91, 0x1a, 0x70, 0x85, 0xaa]),
            config_number: 65535,
            paired: true,
            category: category::BRIDGE,
            setup_hash: None,
        });
        let get = |k: &str| {
            txt.iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("id"), Some("E1:91:1A:70:85:AA"));
        assert_eq!(get("c#"), Some("65535"));
        assert_eq!(get("sf"), Some("0"));
        assert_eq!(get("ci"), Some("2"));
        assert_eq!(get("sh"), None);
        assert_eq!(txt.len(), 8);
    }
}
