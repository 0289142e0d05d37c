//! The built-in test pattern.

use std::time::{Duration, Instant};

use media::frame::SourceState;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::source::{SourceConfig, TestPattern, TestPatternConfig};

use crate::{bounded, decode_sizes};

#[test]
fn pattern_decodes_at_its_size_and_starts_with_idr() {
    let config = TestPatternConfig { width: 640, height: 360, fps: 30, bitrate_bps: 1_000_000, keyframe_interval: 10 };
    let mut pattern = TestPattern::new("pattern", config).unwrap();
    let aus: Vec<_> = (0..25).map(|i| pattern.next_frame(i * 3000).unwrap()).collect();
    assert!(aus[0].is_idr && aus[0].parameter_sets.is_some(), "first picture is an IDR with SPS/PPS");
    assert!(aus[10].is_idr && aus[20].is_idr && !aus[1].is_idr, "IDR every 10 pictures");
    let sizes = decode_sizes(&aus);
    assert_eq!(sizes.len(), 25);
    assert!(sizes.iter().all(|&s| s == (640, 360)), "{sizes:?}");
    pattern.force_keyframe();
    assert!(pattern.next_frame(25 * 3000).unwrap().is_idr, "forced IDR");
}

/// Prints the encode rate at 1080p and 720p (figures for the report).
#[test]
fn pattern_encode_rate() {
    for (w, h) in [(1920, 1080), (1280, 720)] {
        let config = TestPatternConfig { width: w, height: h, fps: 30, bitrate_bps: 4_000_000, keyframe_interval: 60 };
        let mut pattern = TestPattern::new("rate", config).unwrap();
        let started = Instant::now();
        let mut n = 0u64;
        while started.elapsed() < Duration::from_secs(2) {
            pattern.next_frame(n * 3000).unwrap();
            n += 1;
        }
        let fps = n as f64 / started.elapsed().as_secs_f64();
        println!("test pattern {w}x{h}: {fps:.0} pictures/s (draw + encode, one thread)");
        assert!(n > 5, "{w}x{h}: only {n} pictures in 2 s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_hub_paces_frames() {
    let hub = Hub::new(HubConfig {
        name: "pattern".into(),
        source: SourceConfig::TestPattern(TestPatternConfig { width: 320, height: 240, fps: 25, bitrate_bps: 300_000, keyframe_interval: 25 }),
        mode: ConnectMode::Lazy { idle_timeout: Duration::from_millis(300) },
    })
    .unwrap();
    assert_eq!(hub.status().state, SourceState::Idle);
    let mut sub = hub.subscribe().unwrap();
    let first = bounded("first picture", Duration::from_secs(10), sub.recv()).await.unwrap();
    assert!(first.is_idr);
    let started = Instant::now();
    for _ in 0..25 {
        bounded("picture", Duration::from_secs(5), sub.recv()).await.unwrap();
    }
    let took = started.elapsed();
    assert!(took > Duration::from_millis(800) && took < Duration::from_millis(1600), "25 pictures at 25 fps took {took:?}");
    assert_eq!(hub.status().state, SourceState::Streaming);
    drop(sub);
    // Lazy: the source closes after the idle timeout.
    let mut status = hub.watch_status();
    bounded("idle", Duration::from_secs(5), status.wait_for(|s| s.state == SourceState::Idle)).await.unwrap();
}
