//! H.264 RTP packetizer, RFC 6184 packetization-mode 1 (non-interleaved): single NAL unit
//! packets, FU-A fragments for NAL units over the MTU, and a STAP-A with SPS + PPS before every
//! IDR picture so that a receiver joining at any IDR can decode.
#![deny(clippy::indexing_slicing)]

use bytes::Bytes;

use super::{RTP_HEADER_LEN, RtpHeader};
use crate::h264::{NalType, nal_type};

/// Stream parameters of an [`H264Packetizer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpConfig {
    /// SSRC of the outgoing stream.
    pub ssrc: u32,
    /// RTP payload type (typically 99 for video).
    pub payload_type: u8,
    /// Largest RTP packet in bytes, including the 12-byte header, before SRTP adds its tag.
    ///
    /// Controllers negotiate 1378 (IPv4) / 1228 (IPv6). ffmpeg, which the Python and Node.js
    /// camera bridges use, applies that `pkt_size` to the whole SRTP packet (its RTP packets are 14
    /// bytes smaller), so pass the negotiated value minus
    /// [`SrtpSuite::rtp_overhead`](crate::srtp::SrtpSuite::rtp_overhead) to do the same.
    pub mtu: usize,
    /// Sequence number of the first packet (random, RFC 3550 §5.1).
    pub initial_sequence: u16,
    /// RTP timestamp at media time 0 (random, RFC 3550 §5.1).
    pub initial_timestamp: u32,
}

/// Turns H.264 access units into RTP packets (RFC 6184 packetization-mode 1): single NAL unit
/// packets, FU-A fragments for NAL units over the MTU, and a STAP-A with SPS + PPS before every
/// IDR picture so that a receiver joining at any IDR can decode.
#[derive(Debug)]
pub struct H264Packetizer {
    cfg: RtpConfig,
    sequence: u16,
    last_timestamp: u32,
    sps: Option<Bytes>,
    pps: Option<Bytes>,
    packets: u64,
    payload_octets: u64,
}

impl H264Packetizer {
    /// A packetizer for `cfg`; fails when the MTU leaves no room for an FU-A fragment.
    pub fn new(cfg: RtpConfig) -> Result<Self, PacketizeError> {
        if cfg.mtu < MIN_MTU {
            return Err(PacketizeError::MtuTooSmall { mtu: cfg.mtu });
        }
        if cfg.payload_type > 127 {
            return Err(PacketizeError::BadPayloadType {
                payload_type: cfg.payload_type,
            });
        }
        Ok(Self {
            cfg,
            sequence: cfg.initial_sequence,
            last_timestamp: cfg.initial_timestamp,
            sps: None,
            pps: None,
            packets: 0,
            payload_octets: 0,
        })
    }

    /// Parameter sets from the SDP (used when the camera does not repeat them in-band).
    pub fn set_parameter_sets(&mut self, sps: Bytes, pps: Bytes) {
        self.sps = Some(sps).filter(|n| !n.is_empty());
        self.pps = Some(pps).filter(|n| !n.is_empty());
    }

    /// Packetizes one access unit (NAL units without start codes) and appends the RTP packets to
    /// `out`.
    ///
    /// `timestamp_90k` is the media clock relative to stream start; the initial timestamp is added
    /// here. AUD, SEI and filler NAL units are dropped, and so are NAL types 0 and 24..=31 (which
    /// would clash with RTP aggregation and fragmentation units). In-band SPS/PPS replace the stored ones;
    /// before the first IDR slice of an access unit a STAP-A with SPS + PPS is sent (in-band
    /// copies in such an access unit are not sent a second time). NAL units over the MTU go out
    /// as FU-A fragments. The last packet of the access unit carries the marker bit. Nothing is
    /// written when the access unit is rejected.
    pub fn packetize(
        &mut self,
        nals: &[Bytes],
        timestamp_90k: u32,
        out: &mut Vec<Bytes>,
    ) -> Result<(), PacketizeError> {
        for (index, nal) in nals.iter().enumerate() {
            if nal.first().is_some_and(|h| h & 0x80 != 0) {
                return Err(PacketizeError::ForbiddenBit { index });
            }
        }
        let timestamp = self.cfg.initial_timestamp.wrapping_add(timestamp_90k);
        let has_idr = nals.iter().any(|n| nal_type(n) == Some(NalType::IDR));
        for nal in nals {
            match nal_type(nal) {
                Some(NalType::SPS) => self.sps = Some(nal.clone()),
                Some(NalType::PPS) => self.pps = Some(nal.clone()),
                _ => {}
            }
        }

        // Payloads first, so the marker can be set on the last one.
        let mut payloads: Vec<Payload> = Vec::new();
        let mut sent_parameter_sets = false;
        for nal in nals {
            let Some(ty) = nal_type(nal) else { continue };
            match ty {
                NalType::AUD | NalType::SEI | NalType::FILLER => continue,
                // Types 0 and 24..=31 are unspecified in H.264 and taken by RTP payload
                // structures (STAP-A = 24, FU-A = 28; RFC 6184 §5.2): a receiver would misread
                // them, and no encoder emits them.
                t if t.0 == 0 || t.0 >= 24 => continue,
                NalType::SPS | NalType::PPS if has_idr => continue,
                NalType::IDR if !sent_parameter_sets => {
                    sent_parameter_sets = true;
                    self.push_parameter_sets(&mut payloads);
                }
                _ => {}
            }
            self.push_nal(nal, &mut payloads);
        }

        let count = payloads.len();
        out.reserve(count);
        for (i, payload) in payloads.into_iter().enumerate() {
            let header = RtpHeader {
                marker: i + 1 == count,
                payload_type: self.cfg.payload_type,
                sequence: self.sequence,
                timestamp,
                ssrc: self.cfg.ssrc,
            };
            let mut buf = Vec::with_capacity(RTP_HEADER_LEN + payload.len());
            header.write(&mut buf);
            payload.write(&mut buf);
            self.payload_octets = self.payload_octets.wrapping_add(payload.len() as u64);
            self.packets = self.packets.wrapping_add(1);
            self.sequence = self.sequence.wrapping_add(1);
            out.push(Bytes::from(buf));
        }
        if count > 0 {
            self.last_timestamp = timestamp;
        }
        Ok(())
    }

    /// Sequence number the next packet will carry.
    pub fn next_sequence(&self) -> u16 {
        self.sequence
    }

    /// RTP timestamp of the last access unit that produced packets (the initial timestamp before
    /// any), for RTCP Sender Reports.
    pub fn last_rtp_timestamp(&self) -> u32 {
        self.last_timestamp
    }

    /// Packets produced so far (RTCP SR sender's packet count, RFC 3550 §6.4.1).
    pub fn packet_count(&self) -> u64 {
        self.packets
    }

    /// Payload octets produced so far, headers excluded (RTCP SR sender's octet count).
    pub fn payload_octets(&self) -> u64 {
        self.payload_octets
    }

    /// The configuration given to [`new`](Self::new).
    pub fn config(&self) -> &RtpConfig {
        &self.cfg
    }

    fn max_payload(&self) -> usize {
        self.cfg.mtu - RTP_HEADER_LEN
    }

    /// SPS + PPS as one STAP-A (RFC 6184 §5.7.1) when it fits, else as separate NAL units.
    fn push_parameter_sets(&self, payloads: &mut Vec<Payload>) {
        let (Some(sps), Some(pps)) = (self.sps.clone(), self.pps.clone()) else {
            return;
        };
        let stap_len = 1 + 2 + sps.len() + 2 + pps.len();
        let lengths_fit = u16::try_from(sps.len()).is_ok() && u16::try_from(pps.len()).is_ok();
        if stap_len <= self.max_payload() && lengths_fit {
            payloads.push(Payload::StapA(sps, pps));
        } else {
            self.push_nal(&sps, payloads);
            self.push_nal(&pps, payloads);
        }
    }

    /// One NAL unit as a single NAL unit packet, or as FU-A fragments (RFC 6184 §5.8).
    fn push_nal(&self, nal: &Bytes, payloads: &mut Vec<Payload>) {
        let max = self.max_payload();
        if nal.len() <= max {
            payloads.push(Payload::Single(nal.clone()));
            return;
        }
        let header = nal.first().copied().unwrap_or_default();
        let indicator = (header & 0xe0) | NalType::FU_A.0;
        let ty = header & 0x1f;
        let body = nal.slice(1..);
        let chunk = max - FU_A_OVERHEAD;
        let mut start = 0;
        while start < body.len() {
            let end = body.len().min(start + chunk);
            let mut fu_header = ty;
            if start == 0 {
                fu_header |= 0x80;
            }
            if end == body.len() {
                fu_header |= 0x40;
            }
            payloads.push(Payload::FuA {
                indicator,
                fu_header,
                data: body.slice(start..end),
            });
            start = end;
        }
    }
}

/// Error packetizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketizeError {
    /// The MTU is below [`MIN_MTU`].
    #[error("MTU {mtu} is too small for H.264 RTP packets")]
    MtuTooSmall {
        /// The MTU given.
        mtu: usize,
    },
    /// The payload type does not fit in 7 bits.
    #[error("RTP payload type {payload_type} does not fit in 7 bits")]
    BadPayloadType {
        /// The payload type given.
        payload_type: u8,
    },
    /// A NAL unit has its forbidden_zero_bit set (H.264 §7.4.1): the input is not H.264.
    #[error("NAL unit {index} of the access unit has forbidden_zero_bit set")]
    ForbiddenBit {
        /// Index of the NAL unit in the access unit.
        index: usize,
    },
}

/// The payload of one RTP packet, still as references to the NAL data.
enum Payload {
    Single(Bytes),
    StapA(Bytes, Bytes),
    FuA {
        indicator: u8,
        fu_header: u8,
        data: Bytes,
    },
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Self::Single(n) => n.len(),
            Self::StapA(a, b) => 1 + 2 + a.len() + 2 + b.len(),
            Self::FuA { data, .. } => FU_A_OVERHEAD + data.len(),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Single(n) => out.extend_from_slice(n),
            Self::StapA(a, b) => {
                // RFC 6184 §5.7.1: F and NRI are the maxima of the aggregated units.
                let ha = a.first().copied().unwrap_or_default();
                let hb = b.first().copied().unwrap_or_default();
                let f = (ha | hb) & 0x80;
                let nri = (ha & 0x60).max(hb & 0x60);
                out.push(f | nri | NalType::STAP_A.0);
                for n in [a, b] {
                    // Both lengths were checked to fit in u16 before building the STAP-A.
                    out.extend_from_slice(
                        &u16::try_from(n.len()).unwrap_or(u16::MAX).to_be_bytes(),
                    );
                    out.extend_from_slice(n);
                }
            }
            Self::FuA {
                indicator,
                fu_header,
                data,
            } => {
                out.push(*indicator);
                out.push(*fu_header);
                out.extend_from_slice(data);
            }
        }
    }
}

/// FU indicator + FU header (RFC 6184 §5.8).
const FU_A_OVERHEAD: usize = 2;

/// Smallest MTU accepted: the RTP header, the FU-A bytes and some payload.
pub const MIN_MTU: usize = RTP_HEADER_LEN + FU_A_OVERHEAD + 16;

#[cfg(test)]
mod tests;
