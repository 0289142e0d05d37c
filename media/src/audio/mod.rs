//! Camera audio out: PCM from a source (the demo camera's tone, `source::tone`, or a camera's
//! own track), encoded to Opus in
//! process (libopus built from its bundled source and linked statically), one RTP packet per
//! negotiated packet time, SRTP-protected, with RTCP Sender Reports on the audio session.
//!
//! ```text
//!  tone (or a camera's decoded audio) ─► OpusEncoder ─► AudioPacketizer ─► SRTP ─► UDP
//!                                                        SR every interval ◄─┘
//! ```
//!
//! RTP timestamps tick at the *negotiated* sample rate (16 or 24 kHz for the controllers' Opus, not
//! RFC 7587's 48 kHz), and each packet lasts exactly the packet time.

pub mod g711;
pub mod rtp;

#[cfg(feature = "runtime")]
pub mod decode;
#[cfg(feature = "runtime")]
pub mod opus;
#[cfg(feature = "runtime")]
pub mod resample;
#[cfg(feature = "runtime")]
pub mod sender;

/// Sample rates an audio stream may use (Hz): what controllers negotiate (8, 16, 24 kHz) and what
/// Opus encodes natively.
pub const SAMPLE_RATES: [u32; 5] = [8_000, 12_000, 16_000, 24_000, 48_000];
/// Packet times an audio stream may use (ms): Opus frame durations (controllers ask 20 or 60; 30 is
/// not an Opus frame size).
pub const PACKET_TIMES_MS: [u32; 4] = [10, 20, 40, 60];

/// Samples in one packet of `packet_time_ms` at `sample_rate`.
pub fn samples_per_packet(sample_rate: u32, packet_time_ms: u32) -> u32 {
    sample_rate / 1000 * packet_time_ms
}
