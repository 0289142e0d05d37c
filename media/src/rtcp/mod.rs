//! RTCP (RFC 3550 §6): Sender Reports and SDES out, compound packets from the controller in
//! (RR, SR, SDES, BYE, feedback such as PLI/FIR of RFC 4585 §6.3.1 / RFC 5104 §4.3.1), and the
//! receiver statistics used for stream liveness.
//!
//! No clock is read here: NTP times and `Instant`s are parameters.
#![deny(clippy::indexing_slicing)]

mod parse;
mod stats;

use std::time::Duration;

pub use parse::{RtcpPacket, RtcpParseError, parse_compound};
pub use stats::RtcpStats;

/// The SDES CNAME of every stream this crate sends (RFC 3550 §6.5.1): one name for a camera's
/// video and audio sessions, so a receiver knows they belong together.
pub const CNAME: &str = "hap-bridge";

/// A 64-bit NTP timestamp (RFC 3550 §4): seconds since 1900 in the high 32 bits, fraction in the
/// low 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The NTP time of a wall-clock time given as the duration since the Unix epoch.
    pub fn from_unix(since_epoch: Duration) -> Self {
        let secs = since_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET);
        let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
        Self((secs << 32) | frac)
    }

    /// The middle 32 bits, as carried in LSR fields (RFC 3550 §6.4.1).
    pub fn middle_32(self) -> u32 {
        // Bits 16..48 of a u64 always fit in a u32.
        ((self.0 >> 16) & 0xffff_ffff) as u32
    }
}

/// The sender information block of a Sender Report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// Wall-clock time when the report is sent.
    pub ntp: NtpTimestamp,
    /// RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent since the start (wrapping).
    pub packet_count: u32,
    /// Payload octets sent since the start (wrapping).
    pub octet_count: u32,
}

/// A reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// SSRC of the source reported on.
    pub ssrc: u32,
    /// Fraction lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub highest_sequence: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from that source (0 if none).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// A Sender Report (PT 200).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Sender information.
    pub info: SenderInfo,
    /// Reception reports (at most 31).
    pub reports: Vec<ReportBlock>,
}

/// A Receiver Report (PT 201).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverReport {
    /// SSRC of the receiver.
    pub ssrc: u32,
    /// Reception reports.
    pub reports: Vec<ReportBlock>,
}

impl SenderReport {
    /// Appends the SR (RFC 3550 §6.4.1) to `out`. Report blocks past the 31st are not written.
    pub fn write(&self, out: &mut Vec<u8>) {
        let reports = self
            .reports
            .get(..self.reports.len().min(31))
            .unwrap_or_default();
        let words = 6 + 6 * reports.len();
        write_header(out, reports.len(), PT_SR, words);
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(&self.info.ntp.0.to_be_bytes());
        out.extend_from_slice(&self.info.rtp_timestamp.to_be_bytes());
        out.extend_from_slice(&self.info.packet_count.to_be_bytes());
        out.extend_from_slice(&self.info.octet_count.to_be_bytes());
        for r in reports {
            r.write(out);
        }
    }
}

impl ReportBlock {
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(self.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&self.highest_sequence.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

impl ReceiverReport {
    /// Appends the RR (RFC 3550 §6.4.2) to `out`. Report blocks past the 31st are not written.
    pub fn write(&self, out: &mut Vec<u8>) {
        let reports = self
            .reports
            .get(..self.reports.len().min(31))
            .unwrap_or_default();
        write_header(out, reports.len(), PT_RR, 1 + 6 * reports.len());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for r in reports {
            r.write(out);
        }
    }
}

/// Appends an SDES packet with one chunk carrying a CNAME item (RFC 3550 §6.5.1); the CNAME is
/// cut to 255 bytes.
pub fn write_sdes_cname(ssrc: u32, cname: &str, out: &mut Vec<u8>) {
    let cname = cname.as_bytes();
    let cname = cname.get(..cname.len().min(255)).unwrap_or_default();
    // SSRC + type + length + text + at least one terminating zero, padded to 32 bits.
    let chunk_len = (4 + 2 + cname.len() + 1).div_ceil(4) * 4;
    write_header(out, 1, PT_SDES, chunk_len / 4);
    let start = out.len();
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.push(SDES_CNAME);
    out.push(u8::try_from(cname.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(cname);
    out.resize(start + chunk_len, 0);
}

/// Appends a BYE packet for `ssrc` (RFC 3550 §6.6), without reason.
pub fn write_bye(ssrc: u32, out: &mut Vec<u8>) {
    write_header(out, 1, PT_BYE, 1);
    out.extend_from_slice(&ssrc.to_be_bytes());
}

/// A compound packet of an SR and an SDES CNAME (RFC 3550 §6.1), what a sender sends each RTCP
/// interval.
pub fn sender_report_compound(sr: &SenderReport, cname: &str, out: &mut Vec<u8>) {
    sr.write(out);
    write_sdes_cname(sr.ssrc, cname, out);
}

/// Header word: V=2, no padding, count, packet type, length in 32-bit words minus one.
fn write_header(out: &mut Vec<u8>, count: usize, packet_type: u8, words_after_header: usize) {
    out.push(0x80 | (u8::try_from(count).unwrap_or(31) & 0x1f));
    out.push(packet_type);
    out.extend_from_slice(
        &u16::try_from(words_after_header)
            .unwrap_or(u16::MAX)
            .to_be_bytes(),
    );
}

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
const SDES_CNAME: u8 = 1;

#[cfg(test)]
mod tests;
