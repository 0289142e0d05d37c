//! The figures of every stream the process has run, for the counters and the latency histogram
//! of `/metrics`: the ended streams' figures are folded in when each stream ends, and a reading
//! adds the live streams' figures at that moment, so no total ever goes back.

use media::stats::{LatencyHistogram, StreamStats};

/// Frames, bytes and per-frame latency of a set of streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamTotals {
    /// Video frames sent.
    pub(crate) frames: u64,
    /// SRTP bytes sent.
    pub(crate) bytes: u64,
    /// Added latency of each frame sent (camera to last packet).
    pub(crate) latency: LatencyHistogram,
}

impl StreamTotals {
    /// Adds the figures of one stream.
    pub(crate) fn add(&mut self, stream: &StreamStats) {
        self.frames = self.frames.saturating_add(stream.frames_sent);
        self.bytes = self.bytes.saturating_add(stream.bytes_sent);
        self.latency.merge(&stream.latency);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn adding_streams_sums_frames_bytes_and_latency() {
        let mut one = StreamStats::default();
        one.record_frame(true, 3, 3000, Duration::from_millis(4));
        one.record_frame(false, 1, 500, Duration::from_millis(9));
        let mut two = StreamStats::default();
        two.record_frame(false, 2, 1200, Duration::from_millis(30));
        let mut totals = StreamTotals::default();
        totals.add(&one);
        totals.add(&two);
        assert_eq!(totals.frames, 3);
        assert_eq!(totals.bytes, 4700);
        assert_eq!(totals.latency.count(), 3);
        assert_eq!(totals.latency.sum(), Duration::from_millis(43));
    }
}
