//! Rate limit for log lines a peer can cause at will (refused pair-setups: a 16 KiB read holds
//! hundreds of them): at most [`LINES_PER_INTERVAL`] lines per [`INTERVAL`], then one summary line
//! with the count of the ones left out. Time is passed in.

use std::time::{Duration, Instant};

/// What to do with one log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Log it; first log a summary of `suppressed` lines left out before it, when not 0.
    Log {
        /// Lines left out in the previous interval.
        suppressed: u64,
    },
    /// Leave it out (counted for the next summary).
    Suppress,
}

/// Counts the lines of the current interval.
#[derive(Debug, Default)]
pub(super) struct LogLimiter {
    interval_start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    /// Nothing logged yet.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Whether the line that happens `now` is logged.
    pub(super) fn admit(&mut self, now: Instant) -> Verdict {
        let current = self
            .interval_start
            .is_some_and(|start| now.saturating_duration_since(start) < INTERVAL);
        if !current {
            self.interval_start = Some(now);
            let suppressed = std::mem::take(&mut self.suppressed);
            self.logged = 1;
            return Verdict::Log { suppressed };
        }
        if self.logged < LINES_PER_INTERVAL {
            self.logged += 1;
            return Verdict::Log { suppressed: 0 };
        }
        self.suppressed = self.suppressed.saturating_add(1);
        Verdict::Suppress
    }
}

/// Lines logged per interval before the rest are only counted.
pub(super) const LINES_PER_INTERVAL: u32 = 5;
/// The interval.
pub(super) const INTERVAL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_a_few_lines_then_one_summary() {
        let t0 = Instant::now();
        let mut limiter = LogLimiter::new();
        let verdicts: Vec<Verdict> = (0..300)
            .map(|i| limiter.admit(t0 + Duration::from_millis(i)))
            .collect();
        let logged = verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Log { .. }))
            .count();
        assert_eq!(logged, LINES_PER_INTERVAL as usize);
        assert_eq!(verdicts[0], Verdict::Log { suppressed: 0 });
        // The next interval starts with the summary of what was left out.
        assert_eq!(
            limiter.admit(t0 + INTERVAL + Duration::from_millis(299)),
            Verdict::Log { suppressed: 295 }
        );
        assert_eq!(
            limiter.admit(t0 + INTERVAL + Duration::from_secs(1)),
            Verdict::Log { suppressed: 0 }
        );
        // A quiet peer is logged every time.
        let mut quiet = LogLimiter::new();
        for i in 0..10 {
            assert_eq!(
                quiet.admit(t0 + INTERVAL * i),
                Verdict::Log { suppressed: 0 }
            );
        }
    }
}
