//! Sample-rate conversion of mono audio (rubato's FFT resampler, 20 ms chunks, about 10 ms of
//! delay); equal rates pass through.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler as _};

/// Input per conversion step (ms).
const CHUNK_MS: u32 = 20;

/// Converts a stream of mono samples from one rate to another.
pub struct MonoResampler {
    fft: Option<Fft<f32>>,
    pending: Vec<f32>,
    out: Vec<f32>,
}

/// The resampler could not be made for these rates.
#[derive(Debug, thiserror::Error)]
#[error("resampling {from} Hz to {to} Hz: {why}")]
pub struct ResampleError {
    from: u32,
    to: u32,
    why: String,
}

impl MonoResampler {
    /// From `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Result<Self, ResampleError> {
        let fft = if from == to {
            None
        } else {
            let chunk = (from * CHUNK_MS / 1000) as usize;
            Some(
                Fft::<f32>::new(
                    from as usize,
                    to as usize,
                    chunk.max(1),
                    1,
                    FixedSync::Input,
                )
                .map_err(|e| ResampleError {
                    from,
                    to,
                    why: e.to_string(),
                })?,
            )
        };
        Ok(Self {
            fft,
            pending: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Converts `input` (appended to what was left over) and appends what is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let Some(fft) = self.fft.as_mut() else {
            out.extend_from_slice(input);
            return;
        };
        self.pending.extend_from_slice(input);
        loop {
            let need = fft.input_frames_next();
            if self.pending.len() < need {
                break;
            }
            self.out.resize(fft.output_frames_next(), 0.0);
            let frames_out = self.out.len();
            let (Ok(inp), Ok(mut dst)) = (
                InterleavedSlice::new(&self.pending[..need], 1, need),
                InterleavedSlice::new_mut(&mut self.out[..], 1, frames_out),
            ) else {
                self.pending.clear();
                return;
            };
            match fft.process_into_buffer(&inp, &mut dst, None) {
                Ok((used, made)) => {
                    out.extend_from_slice(&self.out[..made.min(frames_out)]);
                    self.pending.drain(..used.min(need));
                }
                Err(_) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_keeps_its_pitch_and_the_length_scales() {
        for (from, to) in [(8_000u32, 24_000u32), (48_000, 16_000), (16_000, 16_000)] {
            let mut r = MonoResampler::new(from, to).unwrap();
            let input: Vec<f32> = (0..from as usize)
                .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / from as f32).sin() * 0.5)
                .collect();
            let mut out = Vec::new();
            for piece in input.chunks(37) {
                r.push(piece, &mut out);
            }
            let want = to as usize;
            assert!(
                out.len() + to as usize / 20 >= want && out.len() <= want,
                "{from}->{to}: {}",
                out.len()
            );
            let tail = &out[out.len() / 4..];
            let changes = tail
                .windows(2)
                .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
                .count();
            let hz = changes as f64 / 2.0 / (tail.len() as f64 / f64::from(to));
            assert!((hz - 1000.0).abs() < 10.0, "{from}->{to}: {hz} Hz");
        }
    }
}
