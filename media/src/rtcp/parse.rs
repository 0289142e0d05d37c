//! Parsing of (decrypted) RTCP compound packets (RFC 3550 §6.1).
#![deny(clippy::indexing_slicing)]

use super::{
    NtpTimestamp, PT_BYE, PT_RR, PT_SDES, PT_SR, ReceiverReport, ReportBlock, SDES_CNAME,
    SenderInfo, SenderReport,
};

/// One packet of a compound RTCP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// Sender Report (PT 200).
    SenderReport(SenderReport),
    /// Receiver Report (PT 201).
    ReceiverReport(ReceiverReport),
    /// Source description (PT 202): the SSRC and CNAME (if any) of each chunk.
    Sdes(Vec<(u32, Option<String>)>),
    /// Goodbye (PT 203): the sources leaving.
    Bye(Vec<u32>),
    /// Transport or payload-specific feedback (PT 205/206, RFC 4585 §6.1), e.g. PLI (206/1) or
    /// FIR (206/4): a request for a key frame.
    Feedback {
        /// 205 (transport layer) or 206 (payload specific).
        packet_type: u8,
        /// The FMT field.
        fmt: u8,
        /// SSRC of the packet sender.
        sender_ssrc: u32,
        /// SSRC of the media source.
        media_ssrc: u32,
    },
    /// Any other packet type (APP, XR, ...), skipped.
    Other {
        /// The packet type.
        packet_type: u8,
    },
}

impl RtcpPacket {
    /// The SSRC of the source that sent this packet, where the packet names one: the SR's or
    /// RR's SSRC, the first SDES chunk's or BYE source's, a feedback packet's sender SSRC.
    pub fn sender_ssrc(&self) -> Option<u32> {
        match self {
            Self::SenderReport(sr) => Some(sr.ssrc),
            Self::ReceiverReport(rr) => Some(rr.ssrc),
            Self::Sdes(chunks) => chunks.first().map(|&(ssrc, _)| ssrc),
            Self::Bye(ssrcs) => ssrcs.first().copied(),
            Self::Feedback { sender_ssrc, .. } => Some(*sender_ssrc),
            Self::Other { .. } => None,
        }
    }

    /// True for a Picture Loss Indication (RFC 4585 §6.3.1) or a Full Intra Request
    /// (RFC 5104 §4.3.1): the receiver wants a key frame.
    pub fn requests_key_frame(&self) -> bool {
        matches!(
            self,
            Self::Feedback {
                packet_type: PT_PSFB,
                fmt: 1 | 4,
                ..
            }
        )
    }
}

/// Splits and parses a compound RTCP packet. Every packet must be version 2 and its length must
/// lie within the input; the first packet must be an SR or RR only by RFC 3550 §6.1 convention,
/// which is not enforced (peers send lone feedback packets, RFC 5506).
pub fn parse_compound(data: &[u8]) -> Result<Vec<RtcpPacket>, RtcpParseError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    if data.is_empty() {
        return Err(RtcpParseError {
            offset: 0,
            context: "empty packet",
        });
    }
    while pos < data.len() {
        let err = |context| RtcpParseError {
            offset: pos,
            context,
        };
        let header = data
            .get(pos..pos + 4)
            .ok_or_else(|| err("truncated header"))?;
        let [b0, packet_type, l0, l1] = *header else {
            return Err(err("truncated header"));
        };
        if b0 >> 6 != 2 {
            return Err(err("version is not 2"));
        }
        let len = (usize::from(u16::from_be_bytes([l0, l1])) + 1) * 4;
        let packet = data
            .get(pos..pos + len)
            .ok_or_else(|| err("length past the end"))?;
        let mut body = packet.get(4..).unwrap_or_default();
        if b0 & 0x20 != 0 {
            let pad = usize::from(packet.last().copied().unwrap_or_default());
            let end = body
                .len()
                .checked_sub(pad)
                .filter(|_| pad > 0)
                .ok_or_else(|| err("bad padding"))?;
            body = body.get(..end).unwrap_or_default();
        }
        let count = usize::from(b0 & 0x1f);
        out.push(parse_one(packet_type, count, body).map_err(err)?);
        pos += len;
    }
    Ok(out)
}

/// Error parsing RTCP: what was wrong and at which byte of the compound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("RTCP {context} at byte {offset}")]
pub struct RtcpParseError {
    /// Offset of the packet (within the compound) where the problem was found.
    pub offset: usize,
    /// What was wrong.
    pub context: &'static str,
}

fn parse_one(packet_type: u8, count: usize, body: &[u8]) -> Result<RtcpPacket, &'static str> {
    let mut r = Reader(body);
    Ok(match packet_type {
        PT_SR => {
            let ssrc = r.u32().ok_or("SR too short")?;
            let ntp = r.u64().ok_or("SR too short")?;
            let info = SenderInfo {
                ntp: NtpTimestamp(ntp),
                rtp_timestamp: r.u32().ok_or("SR too short")?,
                packet_count: r.u32().ok_or("SR too short")?,
                octet_count: r.u32().ok_or("SR too short")?,
            };
            let reports = report_blocks(&mut r, count)?;
            RtcpPacket::SenderReport(SenderReport {
                ssrc,
                info,
                reports,
            })
        }
        PT_RR => {
            let ssrc = r.u32().ok_or("RR too short")?;
            let reports = report_blocks(&mut r, count)?;
            RtcpPacket::ReceiverReport(ReceiverReport { ssrc, reports })
        }
        PT_SDES => {
            let mut chunks = Vec::with_capacity(count);
            for _ in 0..count {
                let ssrc = r.u32().ok_or("SDES chunk too short")?;
                let mut cname = None;
                let mut used = 4usize;
                loop {
                    let item = r.u8().ok_or("SDES item past the end")?;
                    used += 1;
                    if item == 0 {
                        break;
                    }
                    let len = usize::from(r.u8().ok_or("SDES item past the end")?);
                    let text = r.take(len).ok_or("SDES item past the end")?;
                    used += 1 + len;
                    if item == SDES_CNAME {
                        cname = Some(String::from_utf8_lossy(text).into_owned());
                    }
                }
                // Chunks end on a 32-bit boundary (the null item plus padding).
                r.take((4 - used % 4) % 4)
                    .ok_or("SDES chunk padding past the end")?;
                chunks.push((ssrc, cname));
            }
            RtcpPacket::Sdes(chunks)
        }
        PT_BYE => {
            let ssrcs = (0..count)
                .map(|_| r.u32().ok_or("BYE too short"))
                .collect::<Result<_, _>>()?;
            RtcpPacket::Bye(ssrcs)
        }
        PT_RTPFB | PT_PSFB => RtcpPacket::Feedback {
            packet_type,
            fmt: u8::try_from(count).unwrap_or_default(),
            sender_ssrc: r.u32().ok_or("feedback too short")?,
            media_ssrc: r.u32().ok_or("feedback too short")?,
        },
        other => RtcpPacket::Other { packet_type: other },
    })
}

fn report_blocks(r: &mut Reader<'_>, count: usize) -> Result<Vec<ReportBlock>, &'static str> {
    (0..count)
        .map(|_| {
            let ssrc = r.u32().ok_or("report block too short")?;
            let lost = r.u32().ok_or("report block too short")?;
            // 24-bit two's complement cumulative loss.
            let cumulative = ((lost << 8) as i32) >> 8;
            Ok(ReportBlock {
                ssrc,
                fraction_lost: lost.to_be_bytes().first().copied().unwrap_or_default(),
                cumulative_lost: cumulative,
                highest_sequence: r.u32().ok_or("report block too short")?,
                jitter: r.u32().ok_or("report block too short")?,
                last_sr: r.u32().ok_or("report block too short")?,
                delay_since_last_sr: r.u32().ok_or("report block too short")?,
            })
        })
        .collect()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_be_bytes)
    }
}

const PT_RTPFB: u8 = 205;
const PT_PSFB: u8 = 206;
