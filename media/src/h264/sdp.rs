//! SDP `fmtp` parameters for H.264 (RFC 6184 §8.1): `profile-level-id` and
//! `sprop-parameter-sets`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;

/// `profile-level-id`: the three bytes `profile_idc`, constraint flags and `level_idc` as six
/// lowercase hex digits (RFC 6184 §8.1), e.g. `42e01f` for Constrained Baseline level 3.1.
pub fn profile_level_id(profile_idc: u8, constraint_flags: u8, level_idc: u8) -> String {
    format!("{profile_idc:02x}{constraint_flags:02x}{level_idc:02x}")
}

/// `sprop-parameter-sets`: base64 of the SPS and PPS NAL units (without start codes), joined by a
/// comma (RFC 6184 §8.1).
pub fn sprop_parameter_sets(sps: &[u8], pps: &[u8]) -> String {
    format!("{},{}", STANDARD.encode(sps), STANDARD.encode(pps))
}

/// Parses a `sprop-parameter-sets` value (as a camera's SDP gives it) into NAL units; empty
/// entries are skipped.
pub fn parse_sprop_parameter_sets(value: &str) -> Result<Vec<Bytes>, SpropError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
        .map(|(index, s)| {
            STANDARD
                .decode(s)
                .map(Bytes::from)
                .map_err(|_| SpropError { index })
        })
        .collect()
}

/// A `sprop-parameter-sets` entry is not valid base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sprop-parameter-sets entry {index} is not valid base64")]
pub struct SpropError {
    /// Zero-based index of the entry among the non-empty ones.
    pub index: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_level_id_is_six_hex_digits() {
        assert_eq!(profile_level_id(66, 0xe0, 31), "42e01f");
        assert_eq!(profile_level_id(100, 0, 40), "640028");
    }

    #[test]
    fn sprop_round_trip() {
        let sps = [0x67, 0x42, 0xc0, 0x1f, 0xda];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let s = sprop_parameter_sets(&sps, &pps);
        assert_eq!(s, "Z0LAH9o=,aM48gA==");
        let nals = parse_sprop_parameter_sets(&s).unwrap();
        assert_eq!(
            nals,
            vec![Bytes::copy_from_slice(&sps), Bytes::copy_from_slice(&pps)]
        );
        assert_eq!(
            parse_sprop_parameter_sets("Z0LAH9o=,%%"),
            Err(SpropError { index: 1 })
        );
        assert!(parse_sprop_parameter_sets("").unwrap().is_empty());
    }
}
