//! The demo camera's sound: a 1 kHz beep during the first [`BEEP_MS`] of every wall-clock second,
//! silence otherwise. The test pattern flashes on the same pictures, so a receiver can measure
//! audio/video sync from the beeps and the flashes.

use std::time::Duration;

/// The beep's frequency (Hz).
pub const TONE_HZ: f64 = 1000.0;
/// How long each beep lasts, from the start of each second (ms).
pub const BEEP_MS: u64 = 100;
/// The beep's amplitude (a fraction of full scale).
const AMPLITUDE: f64 = 0.5;

/// Whether the beep (and the test pattern's flash) is on at `since_epoch`.
pub fn beeping(since_epoch: Duration) -> bool {
    u64::from(since_epoch.subsec_millis()) < BEEP_MS
}

/// Fills `out` with the tone at `sample_rate` for the span starting at `start` (time since the
/// Unix epoch). The sine's phase follows absolute time, so consecutive spans join smoothly.
pub fn fill(out: &mut [i16], sample_rate: u32, start: Duration) {
    let rate = f64::from(sample_rate.max(1));
    let step = Duration::from_secs_f64(1.0 / rate);
    // Phase within the current second, exact for any start.
    let base = f64::from(start.subsec_nanos()) / 1e9;
    let whole = start.as_secs();
    for (i, sample) in out.iter_mut().enumerate() {
        let t = base + i as f64 / rate;
        let at = Duration::from_secs(whole) + Duration::from_secs_f64(t);
        let on = beeping(at) && !step.is_zero();
        *sample = if on {
            let v = AMPLITUDE * (2.0 * std::f64::consts::PI * TONE_HZ * t).sin();
            (v * f64::from(i16::MAX)) as i16
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beeps_in_the_first_tenth_of_each_second() {
        let mut out = vec![0i16; 16_000];
        fill(&mut out, 16_000, Duration::from_secs(1_700_000_000));
        let loud = |s: &[i16]| s.iter().any(|&v| v.unsigned_abs() > 1000);
        assert!(loud(&out[..1600]), "beep at the start of the second");
        assert!(!loud(&out[1610..]), "silence after 100 ms");
        // 1 kHz: 100 cycles in the 100 ms beep = 200 sign changes.
        let changes = out[..1600]
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((195..=205).contains(&changes), "{changes}");
    }

    #[test]
    fn spans_join_without_a_phase_jump() {
        let start = Duration::from_millis(1_700_000_000_010);
        let mut whole = vec![0i16; 640];
        fill(&mut whole, 16_000, start);
        let mut a = vec![0i16; 320];
        let mut b = vec![0i16; 320];
        fill(&mut a, 16_000, start);
        fill(&mut b, 16_000, start + Duration::from_millis(20));
        for (i, (&w, &p)) in whole.iter().zip(a.iter().chain(&b)).enumerate() {
            assert!(
                (i32::from(w) - i32::from(p)).abs() <= 2,
                "sample {i}: {w} vs {p}"
            );
        }
    }
}
