//! What the sender learns from the controller's RTCP: liveness, loss, jitter and round-trip time.

use std::time::{Duration, Instant};

use super::{NtpTimestamp, RtcpPacket};

/// Receiver statistics about one outgoing stream, fed with the controller's RTCP packets.
///
/// The controllers' liveness rule: every RTCP packet from the receiver counts as a keep-alive; a
/// stream with no RTCP for 5 × the RTCP interval is dead. Packets sent as our own SSRC are not
/// the receiver's: our own reports reflected back (they authenticate, both directions share the
/// keys) neither keep the stream alive nor change the statistics.
#[derive(Debug, Clone, Default)]
pub struct RtcpStats {
    /// When the last RTCP packet (any type) arrived.
    pub last_seen: Option<Instant>,
    /// RTCP compound packets received.
    pub packets: u64,
    /// Fraction lost (in 1/256) from the last report block about our SSRC.
    pub fraction_lost: u8,
    /// Cumulative packets lost from the last report block about our SSRC.
    pub cumulative_lost: i32,
    /// Extended highest sequence number the receiver reported.
    pub highest_sequence: u32,
    /// Interarrival jitter (RTP timestamp units) the receiver reported.
    pub jitter: u32,
    /// Round-trip time from the last report block that echoed one of our SRs (RFC 3550 §6.4.1).
    pub round_trip: Option<Duration>,
    /// Key frames requested (PLI/FIR) and not yet taken with
    /// [`take_key_frame_request`](Self::take_key_frame_request).
    pub key_frame_requested: bool,
    /// The controller said BYE for a source.
    pub bye: bool,
}

impl RtcpStats {
    /// Empty statistics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one parsed compound packet received at `now` (NTP time `now_ntp`, for the round
    /// trip) about our stream `our_ssrc`. Packets whose sender SSRC is `our_ssrc` (our own
    /// reports, reflected) are ignored; returns whether any packet was the receiver's, i.e.
    /// whether the compound counted (for liveness and statistics).
    pub fn on_compound(
        &mut self,
        packets: &[RtcpPacket],
        our_ssrc: u32,
        now: Instant,
        now_ntp: NtpTimestamp,
    ) -> bool {
        let mut theirs = packets
            .iter()
            .filter(|p| p.sender_ssrc() != Some(our_ssrc))
            .peekable();
        if theirs.peek().is_none() {
            return false;
        }
        self.last_seen = Some(now);
        self.packets = self.packets.saturating_add(1);
        for packet in theirs {
            let blocks = match packet {
                RtcpPacket::ReceiverReport(rr) => rr.reports.as_slice(),
                RtcpPacket::SenderReport(sr) => sr.reports.as_slice(),
                RtcpPacket::Bye(_) => {
                    self.bye = true;
                    continue;
                }
                p if p.requests_key_frame() => {
                    self.key_frame_requested = true;
                    continue;
                }
                _ => continue,
            };
            for b in blocks.iter().filter(|b| b.ssrc == our_ssrc) {
                self.fraction_lost = b.fraction_lost;
                self.cumulative_lost = b.cumulative_lost;
                self.highest_sequence = b.highest_sequence;
                self.jitter = b.jitter;
                if b.last_sr != 0 {
                    // RTT = A - LSR - DLSR in 1/65536 s (RFC 3550 §6.4.1).
                    let rtt = now_ntp
                        .middle_32()
                        .wrapping_sub(b.last_sr)
                        .wrapping_sub(b.delay_since_last_sr);
                    if rtt < MAX_RTT_UNITS {
                        self.round_trip =
                            Some(Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536));
                    }
                }
            }
        }
        true
    }

    /// Whether RTCP arrived within `timeout` before `now` (controllers use 5 × the RTCP interval). A
    /// stream that never received RTCP counts as alive until `started + timeout`.
    pub fn is_alive(&self, started: Instant, now: Instant, timeout: Duration) -> bool {
        let since = self.last_seen.unwrap_or(started);
        now.saturating_duration_since(since) < timeout
    }

    /// Returns and clears a pending key-frame request.
    pub fn take_key_frame_request(&mut self) -> bool {
        std::mem::take(&mut self.key_frame_requested)
    }
}

/// Round trips above 60 s (in 1/65536 s) are taken as clock nonsense and ignored.
const MAX_RTT_UNITS: u32 = 60 * 65_536;
