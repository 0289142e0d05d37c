//! Snapshots: JPEG size, cache, latency from a warm hub.

use std::time::{Duration, Instant};

use media::decode::SourceDecoder;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::snapshot::{Snapshotter, render};
use media::source::{SourceConfig, TestPatternConfig};

use crate::fixture::RtspServer;
use crate::{bounded, median, rtsp_hub};

fn jpeg_size(jpeg: &[u8]) -> (u16, u16) {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    let pixels = decoder.decode().unwrap();
    let info = decoder.info().unwrap();
    assert_eq!(
        pixels.len(),
        usize::from(info.width) * usize::from(info.height) * 3
    );
    (info.width, info.height)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_has_requested_size_and_is_cached() {
    let hub = Hub::new(HubConfig {
        name: "pattern".into(),
        source: SourceConfig::TestPattern(TestPatternConfig {
            width: 1920,
            height: 1080,
            fps: 30,
            bitrate_bps: 4_000_000,
            keyframe_interval: 60,
        }),
        mode: ConnectMode::Lazy {
            idle_timeout: Duration::from_secs(30),
        },
        size_hint: None,
    })
    .unwrap();
    let snaps = Snapshotter::new(hub.clone(), Duration::from_millis(1500));
    // Cold lazy hub: the first snapshot starts the source and waits for a keyframe.
    let first = bounded(
        "cold snapshot",
        Duration::from_secs(30),
        snaps.snapshot(640, 360),
    )
    .await
    .unwrap();
    assert_eq!(jpeg_size(&first.jpeg), (640, 360));
    let again = snaps.snapshot(640, 360).await.unwrap();
    assert_eq!(again.jpeg, first.jpeg, "served from the cache");
    let odd = bounded(
        "odd size",
        Duration::from_secs(10),
        snaps.snapshot(321, 239),
    )
    .await
    .unwrap();
    assert_eq!(jpeg_size(&odd.jpeg), (321, 239));

    // Warm hub: keep a consumer so the source stays up, let the GOP grow, then measure.
    let _keep = hub.subscribe().unwrap();
    let mut times = Vec::new();
    for i in 0..6u32 {
        tokio::time::sleep(Duration::from_millis(1600)).await; // past the cache age
        let started = Instant::now();
        let s = bounded(
            "warm snapshot",
            Duration::from_secs(10),
            snaps.snapshot(1920, 1080),
        )
        .await
        .unwrap();
        times.push(started.elapsed().as_micros() as u64);
        println!(
            "  1080p snapshot: {} pictures decoded+scaled in {:?}, JPEG {:?}",
            s.decoded, s.decode_time, s.jpeg_time
        );
        assert_eq!((s.width, s.height), (1920, 1080));
        if i == 0 {
            assert_eq!(jpeg_size(&s.jpeg), (1920, 1080));
        }
        // From the current GOP (2 s at 30 fps; longer in wall time when a loaded machine makes
        // the pattern skip pictures); the decode budget may stop before the newest picture.
        assert!(
            s.frame_received_at.elapsed() < Duration::from_secs(6),
            "picture from the current GOP"
        );
    }
    let mut small = Vec::new();
    for _ in 0..4u32 {
        tokio::time::sleep(Duration::from_millis(1600)).await;
        let started = Instant::now();
        let s = bounded(
            "warm snapshot",
            Duration::from_secs(10),
            snaps.snapshot(640, 360),
        )
        .await
        .unwrap();
        small.push(started.elapsed().as_micros() as u64);
        assert_eq!(jpeg_size(&s.jpeg), (640, 360));
    }
    println!(
        "snapshot 640x360 from a warm 1080p hub: p50 {} us, all {:?}",
        median(&mut small),
        small
    );
    println!(
        "snapshot 1920x1080 from a warm 1080p hub: p50 {} us, all {:?}",
        median(&mut times),
        times
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_of_a_camera_with_b_frames_shows_its_newest_picture() {
    let server = RtspServer::start();
    let hub = rtsp_hub("bframes", server.bframes_url());
    let gop = bounded("a GOP of 20 pictures", Duration::from_secs(30), async {
        loop {
            let gop = hub.gop();
            if gop.len() >= 20 {
                return gop;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Decoded in display order: every access unit gives one picture (the last ones at the
    // flush), stamped with ascending presentation times, ending with the GOP's highest (in
    // decode order often not the last access unit's: B-pictures follow it).
    let mut times = Vec::new();
    let mut decoder = SourceDecoder::new().unwrap();
    for au in &gop {
        if let Some(picture) = decoder.decode(au).unwrap() {
            times.push(picture.stamp.timestamp_90k);
        }
    }
    assert!(decoder.reorders(), "B-slices seen");
    let flushed = decoder.flush().unwrap().map(|p| p.stamp);
    times.extend(flushed.map(|s| s.timestamp_90k));
    let newest = gop.iter().max_by_key(|au| au.timestamp_90k).unwrap();
    assert!(times.windows(2).all(|t| t[0] < t[1]), "{times:?}");
    assert_eq!(flushed.map(|s| s.received_at), Some(newest.received_at));
    assert!(
        times.len() + 2 >= gop.len(),
        "{} pictures of {}",
        times.len(),
        gop.len()
    );

    // A snapshot of that GOP shows its newest picture (unless the machine is so slow that the
    // decode budget cut it short).
    let gop_for_render = gop.clone();
    let s = tokio::task::spawn_blocking(move || render("bframes", &gop_for_render, 640, 360))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jpeg_size(&s.jpeg), (640, 360));
    if s.decoded == gop.len() {
        assert_eq!(
            s.frame_received_at, newest.received_at,
            "the newest picture shown"
        );
    }

    // The live path (the tracking decoder) too: the second snapshot after the cache age.
    let snaps = Snapshotter::new(hub.clone(), Duration::from_millis(200));
    for _ in 0..2 {
        let s = bounded(
            "snapshot",
            Duration::from_secs(10),
            snaps.snapshot(320, 180),
        )
        .await
        .unwrap();
        assert_eq!(jpeg_size(&s.jpeg), (320, 180));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
