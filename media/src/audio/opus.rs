//! The Opus encoder (libopus through the `opus` crate, built from its bundled source), set up for
//! low delay: mono, the VoIP application, variable bit rate, no in-band FEC, no DTX (each packet
//! lasts exactly the packet time).

use super::{PACKET_TIMES_MS, SAMPLE_RATES, samples_per_packet};

/// Largest encoded packet (libopus's recommended bound for one packet is 1275 bytes per frame).
const MAX_PACKET: usize = 4000;

/// Why an encoder could not be made or a frame not encoded.
#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    /// A sample rate Opus does not take.
    #[error("sample rate {0} Hz: Opus takes 8000, 12000, 16000, 24000 or 48000")]
    SampleRate(u32),
    /// A packet time that is not one Opus frame.
    #[error("packet time {0} ms: Opus frames last 10, 20, 40 or 60 ms")]
    PacketTime(u32),
    /// A frame of the wrong length.
    #[error("{got} samples given, a packet holds {want}")]
    FrameLength {
        /// Samples given.
        got: usize,
        /// Samples per packet.
        want: usize,
    },
    /// libopus refused.
    #[error("libopus: {0}")]
    Codec(#[from] ::opus::Error),
}

/// A mono Opus encoder producing one packet per packet time.
pub struct OpusEncoder {
    encoder: ::opus::Encoder,
    frame: usize,
    out: Vec<u8>,
}

impl OpusEncoder {
    /// An encoder at `sample_rate` Hz, `packet_time_ms` per packet, about `bitrate_bps`.
    pub fn new(sample_rate: u32, packet_time_ms: u32, bitrate_bps: u32) -> Result<Self, OpusError> {
        if !SAMPLE_RATES.contains(&sample_rate) {
            return Err(OpusError::SampleRate(sample_rate));
        }
        if !PACKET_TIMES_MS.contains(&packet_time_ms) {
            return Err(OpusError::PacketTime(packet_time_ms));
        }
        let mut encoder = ::opus::Encoder::new(
            sample_rate,
            ::opus::Channels::Mono,
            ::opus::Application::Voip,
        )?;
        let bits = i32::try_from(bitrate_bps.clamp(MIN_BITRATE, MAX_BITRATE)).unwrap_or(24_000);
        encoder.set_bitrate(::opus::Bitrate::Bits(bits))?;
        encoder.set_vbr(true)?;
        encoder.set_inband_fec(false)?;
        Ok(Self {
            encoder,
            frame: samples_per_packet(sample_rate, packet_time_ms) as usize,
            out: vec![0; MAX_PACKET],
        })
    }

    /// Samples one packet takes.
    pub fn samples_per_packet(&self) -> usize {
        self.frame
    }

    /// Encodes exactly one packet's samples; the packet is valid until the next call.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<&[u8], OpusError> {
        if pcm.len() != self.frame {
            return Err(OpusError::FrameLength {
                got: pcm.len(),
                want: self.frame,
            });
        }
        let n = self.encoder.encode(pcm, &mut self.out)?;
        Ok(self.out.get(..n).unwrap_or_default())
    }
}

/// Bit rates the encoder is held to (bit/s): Opus's useful range for mono speech.
const MIN_BITRATE: u32 = 6_000;
const MAX_BITRATE: u32 = 128_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_decode_back_to_the_tone() {
        let mut enc = OpusEncoder::new(24_000, 20, 24_000).unwrap();
        assert_eq!(enc.samples_per_packet(), 480);
        let mut dec = ::opus::Decoder::new(24_000, ::opus::Channels::Mono).unwrap();
        let mut decoded = Vec::new();
        for k in 0..50 {
            let mut pcm = vec![0i16; 480];
            // A continuous 1 kHz tone (the beep's pitch), 20 ms at a time.
            for (i, s) in pcm.iter_mut().enumerate() {
                let t = (k * 480 + i) as f64 / 24_000.0;
                *s = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16;
            }
            let packet = enc.encode(&pcm).unwrap().to_vec();
            assert!(!packet.is_empty() && packet.len() < 400, "{}", packet.len());
            let mut out = vec![0i16; 480];
            let n = dec.decode(&packet, &mut out, false).unwrap();
            assert_eq!(n, 480, "each packet lasts the packet time");
            decoded.extend_from_slice(&out);
        }
        // After the codec's start-up, ~1 kHz: 2 sign changes a millisecond.
        let tail = &decoded[24_000 / 2..];
        let changes = tail.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        let ms = tail.len() as f64 / 24.0;
        let hz = changes as f64 / 2.0 / ms * 1000.0;
        assert!((hz - 1000.0).abs() < 20.0, "{hz} Hz");
    }

    #[test]
    fn bad_rates_times_and_lengths_are_named() {
        assert!(matches!(
            OpusEncoder::new(44_100, 20, 24_000),
            Err(OpusError::SampleRate(44_100))
        ));
        assert!(matches!(
            OpusEncoder::new(16_000, 30, 24_000),
            Err(OpusError::PacketTime(30))
        ));
        let mut enc = OpusEncoder::new(16_000, 60, 24_000).unwrap();
        assert_eq!(enc.samples_per_packet(), 960);
        assert!(matches!(
            enc.encode(&[0; 320]),
            Err(OpusError::FrameLength {
                got: 320,
                want: 960
            })
        ));
    }
}
