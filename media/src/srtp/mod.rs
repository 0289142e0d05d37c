//! SRTP and SRTCP (RFC 3711) for the suites a controller negotiates:
//! AES_CM_128_HMAC_SHA1_80, AES_256_CM_HMAC_SHA1_80 (RFC 6188) and "none".
//!
//! One [`SrtpContext`] per direction: the sender protects its RTP and RTCP with the key it
//! announced; the receiver side unprotects the controller's SRTCP (and, in tests, SRTP). The
//! context keeps per-SSRC state (rollover counter, highest sequence number, SRTCP index, replay
//! window), needs no runtime and performs no I/O. Keys are zeroized on drop and never printed.
//!
//! Key derivation rate is 0 and no MKI is used, as the controllers and ffmpeg do.
#![deny(clippy::indexing_slicing)]

mod keys;
mod params;
mod replay;

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use hmac::Mac;

pub use params::{MasterKey, SrtpKeyError, decode_params, encode_params};

use self::keys::{Aes, SessionKeys};
use self::replay::ReplayWindow;
use crate::rtp::rtp_header_len;

/// An SRTP crypto suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 3711).
    AesCm128HmacSha1_80,
    /// AES-256 counter mode, HMAC-SHA1 with an 80-bit tag (RFC 6188).
    AesCm256HmacSha1_80,
    /// No encryption and no authentication: packets go out as plain RTP/RTCP.
    Null,
}

impl SrtpSuite {
    /// Master key length in bytes (0 for [`Null`](Self::Null)).
    pub fn key_len(self) -> usize {
        match self {
            Self::AesCm128HmacSha1_80 => 16,
            Self::AesCm256HmacSha1_80 => 32,
            Self::Null => 0,
        }
    }

    /// Master salt length in bytes (0 for [`Null`](Self::Null)).
    pub fn salt_len(self) -> usize {
        match self {
            Self::Null => 0,
            _ => SALT_LEN,
        }
    }

    /// Bytes SRTP adds to an RTP packet (the authentication tag).
    pub fn rtp_overhead(self) -> usize {
        match self {
            Self::Null => 0,
            _ => TAG_LEN,
        }
    }

    /// Bytes SRTCP adds to an RTCP packet (E flag + index, and the tag).
    pub fn rtcp_overhead(self) -> usize {
        match self {
            Self::Null => 0,
            _ => SRTCP_INDEX_LEN + TAG_LEN,
        }
    }

    /// The SDES name used in SDP `a=crypto` lines (RFC 4568 §6.2, RFC 6188 §7.1), or `None` for
    /// [`Null`](Self::Null).
    pub fn sdp_name(self) -> Option<&'static str> {
        match self {
            Self::AesCm128HmacSha1_80 => Some("AES_CM_128_HMAC_SHA1_80"),
            Self::AesCm256HmacSha1_80 => Some("AES_256_CM_HMAC_SHA1_80"),
            Self::Null => None,
        }
    }
}

/// SRTP/SRTCP state for one direction of one media session.
pub struct SrtpContext {
    suite: SrtpSuite,
    keys: Option<Box<Keys>>,
    streams: HashMap<u32, StreamState>,
}

struct Keys {
    rtp: SessionKeys,
    rtcp: SessionKeys,
}

#[derive(Default)]
struct StreamState {
    /// RTP: rollover counter and highest sequence number seen (RFC 3711 §3.3.1).
    roc: u32,
    highest_seq: Option<u16>,
    rtp_replay: ReplayWindow,
    /// Next SRTCP index to send (RFC 3711 §3.4).
    next_srtcp_index: u32,
    rtcp_replay: ReplayWindow,
}

impl SrtpContext {
    /// A context for `suite` with the master key and salt (16 + 14 bytes for the 128 suite,
    /// 32 + 14 for the 256 suite, both empty for [`SrtpSuite::Null`]).
    pub fn new(
        suite: SrtpSuite,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Self, SrtpKeyError> {
        if master_key.len() != suite.key_len() {
            return Err(SrtpKeyError::KeyLength {
                expected: suite.key_len(),
                got: master_key.len(),
            });
        }
        if master_salt.len() != suite.salt_len() {
            return Err(SrtpKeyError::SaltLength {
                expected: suite.salt_len(),
                got: master_salt.len(),
            });
        }
        let keys = match suite {
            SrtpSuite::Null => None,
            _ => {
                let bad_key = || SrtpKeyError::KeyLength {
                    expected: suite.key_len(),
                    got: master_key.len(),
                };
                let master = Aes::new(master_key).ok_or_else(bad_key)?;
                let mut salt = zeroize::Zeroizing::new([0u8; SALT_LEN]);
                salt.copy_from_slice(master_salt);
                Some(Box::new(Keys {
                    rtp: SessionKeys::derive(&master, &salt, LABEL_RTP).ok_or_else(bad_key)?,
                    rtcp: SessionKeys::derive(&master, &salt, LABEL_RTCP).ok_or_else(bad_key)?,
                }))
            }
        };
        Ok(Self {
            suite,
            keys,
            streams: HashMap::new(),
        })
    }

    /// A context from the ffmpeg `-srtp_out_params` / SDES `inline:` form: base64 of key || salt.
    pub fn from_base64(suite: SrtpSuite, params: &str) -> Result<Self, SrtpKeyError> {
        let master = decode_params(suite, params)?;
        Self::new(suite, &master.key, &master.salt)
    }

    /// Protects one RTP packet (RFC 3711 §3.3): encrypts the payload and appends the tag.
    /// Packets of one SSRC must be given in sending order (the rollover counter follows the
    /// sequence number).
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Bytes, SrtpError> {
        let (ssrc, seq) = rtp_ids(packet);
        let header_len = rtp_header_len(packet)
            .map_err(|_| SrtpError::new(SrtpErrorKind::Malformed, ssrc, seq.map(u32::from)))?;
        let Some(keys) = self.keys.as_deref() else {
            return Ok(Bytes::copy_from_slice(packet));
        };
        let (ssrc, seq) = (ssrc.unwrap_or_default(), seq.unwrap_or_default());
        let state = self.streams.entry(ssrc).or_default();
        let roc = estimate_roc(state, seq);
        update_highest(state, roc, seq);

        let mut out = Vec::with_capacity(packet.len() + TAG_LEN);
        out.extend_from_slice(packet);
        let index = (u64::from(roc) << 16) | u64::from(seq);
        keys.rtp.cipher.apply_keystream(
            keys.rtp.iv(ssrc, index),
            out.get_mut(header_len..).unwrap_or_default(),
        );
        let tag = rtp_tag(&keys.rtp, &out, roc);
        out.extend_from_slice(&tag);
        Ok(Bytes::from(out))
    }

    /// Protects one RTCP (compound) packet (RFC 3711 §3.4): encrypts everything after the first
    /// 8 bytes, appends E flag + SRTCP index and the tag.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Bytes, SrtpError> {
        let ssrc = rtcp_ssrc(packet);
        let Some(ssrc) = ssrc else {
            return Err(SrtpError::new(SrtpErrorKind::TooShort, None, None));
        };
        let Some(keys) = self.keys.as_deref() else {
            return Ok(Bytes::copy_from_slice(packet));
        };
        let state = self.streams.entry(ssrc).or_default();
        let index = state.next_srtcp_index;
        state.next_srtcp_index = (index + 1) & SRTCP_INDEX_MASK;

        let mut out = Vec::with_capacity(packet.len() + SRTCP_INDEX_LEN + TAG_LEN);
        out.extend_from_slice(packet);
        keys.rtcp.cipher.apply_keystream(
            keys.rtcp.iv(ssrc, u64::from(index)),
            out.get_mut(RTCP_HEADER_LEN..).unwrap_or_default(),
        );
        out.extend_from_slice(&(index | E_FLAG).to_be_bytes());
        let tag = tag(&keys.rtcp, &out, &[]);
        out.extend_from_slice(&tag);
        Ok(Bytes::from(out))
    }

    /// Verifies and decrypts one SRTP packet (RFC 3711 §3.3): checks the tag against the
    /// estimated rollover counter and the replay window, then returns the plain RTP packet.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Bytes, SrtpError> {
        let (ssrc, seq) = rtp_ids(packet);
        let err = |kind| SrtpError::new(kind, ssrc, seq.map(u32::from));
        let header_len = rtp_header_len(packet).map_err(|_| err(SrtpErrorKind::Malformed))?;
        let Some(keys) = self.keys.as_deref() else {
            return Ok(Bytes::copy_from_slice(packet));
        };
        let body_end = packet
            .len()
            .checked_sub(TAG_LEN)
            .filter(|&e| e >= header_len)
            .ok_or_else(|| err(SrtpErrorKind::TooShort))?;
        let (ssrc, seq) = (ssrc.unwrap_or_default(), seq.unwrap_or_default());
        // No state is created before the packet authenticates: forged packets with random SSRCs
        // must not grow the map.
        let roc = self.streams.get(&ssrc).map_or(0, |s| estimate_roc(s, seq));
        let index = (u64::from(roc) << 16) | u64::from(seq);
        let (authenticated, received_tag) = packet.split_at(body_end);
        if !rtp_verify(&keys.rtp, authenticated, roc, received_tag) {
            return Err(err(SrtpErrorKind::Authentication));
        }
        let state = self.streams.entry(ssrc).or_default();
        if !state.rtp_replay.check(index) {
            return Err(err(SrtpErrorKind::Replayed));
        }
        state.rtp_replay.accept(index);
        update_highest(state, roc, seq);
        let mut out = authenticated.to_vec();
        keys.rtp.cipher.apply_keystream(
            keys.rtp.iv(ssrc, index),
            out.get_mut(header_len..).unwrap_or_default(),
        );
        Ok(Bytes::from(out))
    }

    /// Verifies and decrypts one SRTCP packet (RFC 3711 §3.4) and returns the plain RTCP
    /// (compound) packet. Replayed indexes are rejected.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Bytes, SrtpError> {
        let Some(ssrc) = rtcp_ssrc(packet) else {
            return Err(SrtpError::new(SrtpErrorKind::TooShort, None, None));
        };
        let Some(keys) = self.keys.as_deref() else {
            return Ok(Bytes::copy_from_slice(packet));
        };
        let err = |kind, index| SrtpError::new(kind, Some(ssrc), index);
        let min = RTCP_HEADER_LEN + SRTCP_INDEX_LEN + TAG_LEN;
        if packet.len() < min {
            return Err(err(SrtpErrorKind::TooShort, None));
        }
        let (authenticated, received_tag) = packet.split_at(packet.len() - TAG_LEN);
        let (body, trailer) = authenticated.split_at(authenticated.len() - SRTCP_INDEX_LEN);
        let e_index = trailer
            .try_into()
            .map(u32::from_be_bytes)
            .unwrap_or_default();
        let index = e_index & SRTCP_INDEX_MASK;
        if !verify(&keys.rtcp, authenticated, &[], received_tag) {
            return Err(err(SrtpErrorKind::Authentication, Some(index)));
        }
        let state = self.streams.entry(ssrc).or_default();
        if !state.rtcp_replay.check(u64::from(index)) {
            return Err(err(SrtpErrorKind::Replayed, Some(index)));
        }
        state.rtcp_replay.accept(u64::from(index));
        let mut out = body.to_vec();
        if e_index & E_FLAG != 0 {
            keys.rtcp.cipher.apply_keystream(
                keys.rtcp.iv(ssrc, u64::from(index)),
                out.get_mut(RTCP_HEADER_LEN..).unwrap_or_default(),
            );
        }
        Ok(Bytes::from(out))
    }

    /// The suite of this context.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The rollover counter of an SSRC (0 before its first packet).
    pub fn rollover_counter(&self, ssrc: u32) -> u32 {
        self.streams.get(&ssrc).map_or(0, |s| s.roc)
    }
}

impl fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are secrets: never printed.
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("ssrcs", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// An SRTP/SRTCP failure on one packet, with what identifies the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct SrtpError {
    /// What went wrong.
    pub kind: SrtpErrorKind,
    /// SSRC of the packet, when the packet was long enough to hold one.
    pub ssrc: Option<u32>,
    /// RTP sequence number or SRTCP index, when known.
    pub seq: Option<u32>,
}

impl SrtpError {
    fn new(kind: SrtpErrorKind, ssrc: Option<u32>, seq: Option<u32>) -> Self {
        Self { kind, ssrc, seq }
    }
}

impl fmt::Display for SrtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(ssrc) = self.ssrc {
            write!(f, " (ssrc {ssrc:#010x}")?;
            if let Some(seq) = self.seq {
                write!(f, ", seq {seq}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Kinds of [`SrtpError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpErrorKind {
    /// The packet is too short for its header and tag.
    #[error("packet too short")]
    TooShort,
    /// The RTP header is invalid (version, CSRC count or extension length).
    #[error("malformed RTP header")]
    Malformed,
    /// The authentication tag does not match (wrong key, or a corrupted packet).
    #[error("authentication tag mismatch")]
    Authentication,
    /// The packet index was already received or is too old for the replay window.
    #[error("replayed or too old packet")]
    Replayed,
}

fn rtp_ids(packet: &[u8]) -> (Option<u32>, Option<u16>) {
    let seq = packet
        .get(2..4)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_be_bytes);
    let ssrc = packet
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes);
    (ssrc, seq)
}

fn rtcp_ssrc(packet: &[u8]) -> Option<u32> {
    packet
        .get(4..RTCP_HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
}

/// The rollover counter guess v of RFC 3711 §3.3.1 / Appendix A for sequence number `seq`.
fn estimate_roc(state: &StreamState, seq: u16) -> u32 {
    let Some(s_l) = state.highest_seq else {
        return state.roc;
    };
    let roc = state.roc;
    if s_l < 0x8000 {
        if roc > 0 && seq > s_l && seq - s_l > 0x8000 {
            roc - 1
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc.wrapping_add(1)
    } else {
        roc
    }
}

/// Moves the highest index forward when (v, seq) is beyond it (RFC 3711 §3.3.1).
fn update_highest(state: &mut StreamState, v: u32, seq: u16) {
    match state.highest_seq {
        None => {
            state.roc = v;
            state.highest_seq = Some(seq);
        }
        Some(s_l) => {
            let new = (u64::from(v) << 16) | u64::from(seq);
            let old = (u64::from(state.roc) << 16) | u64::from(s_l);
            if new > old {
                state.roc = v;
                state.highest_seq = Some(seq);
            }
        }
    }
}

/// HMAC-SHA1-80 over the authenticated portion and the ROC (RFC 3711 §4.2).
fn rtp_tag(keys: &SessionKeys, authenticated: &[u8], roc: u32) -> [u8; TAG_LEN] {
    tag(keys, authenticated, &roc.to_be_bytes())
}

fn rtp_verify(keys: &SessionKeys, authenticated: &[u8], roc: u32, tag: &[u8]) -> bool {
    verify(keys, authenticated, &roc.to_be_bytes(), tag)
}

fn tag(keys: &SessionKeys, data: &[u8], suffix: &[u8]) -> [u8; TAG_LEN] {
    let mut mac = keys.auth.clone();
    mac.update(data);
    mac.update(suffix);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(full.get(..TAG_LEN).unwrap_or_default());
    out
}

/// Constant-time tag check.
fn verify(keys: &SessionKeys, data: &[u8], suffix: &[u8], tag: &[u8]) -> bool {
    let mut mac = keys.auth.clone();
    mac.update(data);
    mac.update(suffix);
    tag.len() == TAG_LEN && mac.verify_truncated_left(tag).is_ok()
}

/// Master and session salt length (RFC 3711 §8.2: 112 bits).
pub const SALT_LEN: usize = 14;
/// Authentication tag length of the *_HMAC_SHA1_80 suites.
pub const TAG_LEN: usize = 10;
/// Length of the E flag + SRTCP index word.
const SRTCP_INDEX_LEN: usize = 4;
/// RTCP bytes left in the clear: the first header word and the sender SSRC (RFC 3711 §3.4).
const RTCP_HEADER_LEN: usize = 8;
const SRTCP_INDEX_MASK: u32 = 0x7fff_ffff;
const E_FLAG: u32 = 0x8000_0000;
/// KDF labels: SRTP encryption key (then auth key, salt), SRTCP encryption key (RFC 3711 §4.3.2).
const LABEL_RTP: u8 = 0x00;
const LABEL_RTCP: u8 = 0x03;

/// SRTP keying material (the `Debug` form hides it).
#[derive(Clone)]
pub struct SrtpKeys {
    /// The suite.
    pub suite: SrtpSuite,
    /// Master key.
    pub key: Vec<u8>,
    /// Master salt.
    pub salt: Vec<u8>,
}

impl core::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SrtpKeys")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
