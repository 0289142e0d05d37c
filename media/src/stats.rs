//! Per-stream counters and a fixed-bucket latency histogram, filled by the runtime.

use std::time::Duration;

/// Counters of one outgoing stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Access units sent.
    pub frames_sent: u64,
    /// IDR access units sent.
    pub key_frames_sent: u64,
    /// Access units dropped before packetizing (queue full, waiting for an IDR, ...).
    pub frames_dropped: u64,
    /// RTP packets sent.
    pub packets_sent: u64,
    /// Bytes sent on the wire (SRTP packets, UDP payload).
    pub bytes_sent: u64,
    /// Packets that failed to protect or send.
    pub send_errors: u64,
    /// RTCP packets received from the controller.
    pub rtcp_received: u64,
    /// Controller RTCP packets that failed SRTCP authentication or parsing.
    pub rtcp_errors: u64,
    /// Camera-to-socket latency of each access unit.
    pub latency: LatencyHistogram,
}

impl StreamStats {
    /// Records one access unit sent as `packets` packets of `bytes` bytes in total.
    pub fn record_frame(&mut self, key_frame: bool, packets: u64, bytes: u64, latency: Duration) {
        self.frames_sent = self.frames_sent.saturating_add(1);
        if key_frame {
            self.key_frames_sent = self.key_frames_sent.saturating_add(1);
        }
        self.packets_sent = self.packets_sent.saturating_add(packets);
        self.bytes_sent = self.bytes_sent.saturating_add(bytes);
        self.latency.record(latency);
    }
}

/// A histogram of durations over fixed buckets (upper bounds in [`BUCKETS_US`]); percentiles are
/// reported as the upper bound of the bucket they fall in, so they over-estimate by at most one
/// bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u64; BUCKETS_US.len() + 1],
    total: u64,
    sum_us: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS_US.len() + 1],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BUCKETS_US.len());
        if let Some(c) = self.counts.get_mut(bucket) {
            *c = c.saturating_add(1);
        }
        self.total = self.total.saturating_add(1);
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// Mean of the samples, `None` when empty.
    pub fn mean(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.sum_us / self.total))
    }

    /// Sum of the samples.
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_us)
    }

    /// Samples per bucket, as (upper bound in µs, count); the last entry (`None`) counts the
    /// samples above [`BUCKETS_US`]'s last bound. Not cumulative.
    pub fn buckets(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &n)| (BUCKETS_US.get(i).copied(), n))
    }

    /// Largest sample, `None` when empty.
    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_us))
    }

    /// The `p`-th percentile (0.0..=100.0) as the upper bound of its bucket; samples above the last
    /// bucket report the maximum. `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let p = p.clamp(0.0, 100.0);
        // The rank of the sample, 1-based: ceil(p% of total), at least 1.
        let rank = ((p / 100.0 * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                let us = BUCKETS_US
                    .get(i)
                    .copied()
                    .unwrap_or(self.max_us)
                    .min(self.max_us);
                return Some(Duration::from_micros(us));
            }
        }
        Some(Duration::from_micros(self.max_us))
    }

    /// Median.
    pub fn p50(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    /// 95th percentile.
    pub fn p95(&self) -> Option<Duration> {
        self.percentile(95.0)
    }

    /// 99th percentile.
    pub fn p99(&self) -> Option<Duration> {
        self.percentile(99.0)
    }

    /// Adds another histogram's samples to this one.
    pub fn merge(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total = self.total.saturating_add(other.total);
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
    }
}

/// Bucket upper bounds in microseconds: 100 µs .. 5 s, ten per decade (1, 1.2, 1.5, 2, 2.5, 3,
/// 4, 5, 6, 8), so a percentile over-estimates by at most a third (a 12 ms target is told
/// apart from 15 ms, which 1-2-5 steps could not: they reported 11 ms as 20 ms).
pub const BUCKETS_US: [u64; 48] = [
    100, 120, 150, 200, 250, 300, 400, 500, 600, 800, // 100 µs ..
    1_000, 1_200, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000, // 1 ms ..
    10_000, 12_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000, 60_000,
    80_000, // 10 ms ..
    100_000, 120_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000, 600_000,
    800_000, // 100 ms ..
    1_000_000, 1_200_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000, 4_000_000,
    5_000_000, // 1 s .. 5 s; slower samples count above the last bound.
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_report_bucket_upper_bounds() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.p50(), None);
        // 90 samples of 3 ms, 9 of 40 ms, 1 of 700 ms.
        for _ in 0..90 {
            h.record(Duration::from_millis(3));
        }
        for _ in 0..9 {
            h.record(Duration::from_millis(40));
        }
        h.record(Duration::from_millis(700));
        assert_eq!(h.count(), 100);
        assert_eq!(h.p50(), Some(Duration::from_millis(3)));
        assert_eq!(h.p95(), Some(Duration::from_millis(40)));
        assert_eq!(h.p99(), Some(Duration::from_millis(40)));
        assert_eq!(h.percentile(100.0), Some(Duration::from_millis(700)));
        assert_eq!(h.max(), Some(Duration::from_millis(700)));
        assert_eq!(
            h.mean(),
            Some(Duration::from_micros(
                (90 * 3_000 + 9 * 40_000 + 700_000) / 100
            ))
        );
        // Between bounds: the next bound up, at most a third more, and never above the
        // largest sample.
        let mut h = LatencyHistogram::new();
        h.record(Duration::from_micros(11_700));
        h.record(Duration::from_micros(14_000));
        assert_eq!(h.p50(), Some(Duration::from_millis(12)));
        assert_eq!(h.p99(), Some(Duration::from_millis(14)));
    }

    #[test]
    fn buckets_rise_by_at_most_a_third() {
        for pair in BUCKETS_US.windows(2) {
            assert!(pair[0] < pair[1], "{pair:?}");
            assert!(pair[1] * 3 <= pair[0] * 4, "{pair:?}");
        }
    }

    #[test]
    fn overflow_bucket_and_merge() {
        let mut a = LatencyHistogram::new();
        a.record(Duration::from_secs(9));
        assert_eq!(a.p50(), Some(Duration::from_secs(9)));
        let mut b = LatencyHistogram::new();
        b.record(Duration::from_micros(50));
        b.merge(&a);
        assert_eq!(b.count(), 2);
        assert_eq!(
            b.percentile(0.0),
            Some(Duration::from_micros(100).min(Duration::from_secs(9)))
        );
        assert_eq!(b.max(), Some(Duration::from_secs(9)));
    }

    #[test]
    fn stream_stats_record_frames() {
        let mut s = StreamStats::default();
        s.record_frame(true, 20, 25_000, Duration::from_millis(4));
        s.record_frame(false, 2, 1_500, Duration::from_millis(2));
        assert_eq!(
            (
                s.frames_sent,
                s.key_frames_sent,
                s.packets_sent,
                s.bytes_sent
            ),
            (2, 1, 22, 26_500)
        );
        assert_eq!(s.latency.count(), 2);
    }
}
