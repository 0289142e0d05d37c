//! Integration tests of the media runtime: test pattern, RTSP ingest against a GStreamer RTSP
//! server, hub reconnects, transcoding and snapshots. One test binary to save link time.
// Tests may unwrap/expect: a failure is the test failing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod pattern;
mod rtsp;
mod session;
mod snapshot;
mod transcode;

// Shared with the bridge's e2e tests (the test-support crate).
use test_support::rtsp_fixture as fixture;
use test_support::srtp_sdp;

use std::time::Duration;

use media::frame::AccessUnit;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::source::{RtspConfig, SourceConfig};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;

/// Decodes a sequence starting at an IDR; returns the size of each decoded picture.
pub(crate) fn decode_sizes<'a>(
    aus: impl IntoIterator<Item = &'a AccessUnit>,
) -> Vec<(usize, usize)> {
    let mut decoder = Decoder::new().unwrap();
    let mut buf = Vec::new();
    let mut sizes = Vec::new();
    for au in aus {
        buf.clear();
        au.write_annex_b(&mut buf);
        if let Some(picture) = decoder.decode(&buf).unwrap() {
            sizes.push(picture.dimensions());
        }
    }
    sizes
}

/// An always-on hub pulling `url` (the RTSP fixture) over TCP.
pub(crate) fn rtsp_hub(name: &str, url: String) -> Hub {
    Hub::new(HubConfig {
        name: name.into(),
        source: SourceConfig::Rtsp(RtspConfig::new(url)),
        mode: ConnectMode::AlwaysOn,
        size_hint: None,
    })
    .unwrap()
}

/// Runs `f` with a deadline so no test can hang.
pub(crate) async fn bounded<T>(what: &str, limit: Duration, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {limit:?}"))
}

/// Median of `samples` (sorted in place).
pub(crate) fn median(samples: &mut [u64]) -> u64 {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or(0)
}
