//! The built-in test pattern.

use std::time::{Duration, Instant};

use media::frame::SourceState;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::source::{SourceConfig, TestPattern, TestPatternConfig};

use crate::{bounded, decode_sizes};

#[test]
fn pattern_decodes_at_its_size_and_starts_with_idr() {
    let config = TestPatternConfig {
        width: 640,
        height: 360,
        fps: 30,
        bitrate_bps: 1_000_000,
        keyframe_interval: 10,
    };
    let mut pattern = TestPattern::new("pattern", config).unwrap();
    let aus: Vec<_> = (0..25)
        .map(|i| {
            pattern
                .next_frame(i * 3000)
                .unwrap()
                .expect("not skipped at this bitrate")
        })
        .collect();
    assert!(
        aus[0].is_idr && aus[0].parameter_sets.is_some(),
        "first picture is an IDR with SPS/PPS"
    );
    assert!(
        aus[10].is_idr && aus[20].is_idr && !aus[1].is_idr,
        "IDR every 10 pictures"
    );
    let sizes = decode_sizes(&aus);
    assert_eq!(sizes.len(), 25);
    assert!(sizes.iter().all(|&s| s == (640, 360)), "{sizes:?}");
    pattern.force_keyframe();
    assert!(
        pattern.next_frame(25 * 3000).unwrap().unwrap().is_idr,
        "forced IDR"
    );
}

/// Prints the encode rate at 1080p and 720p (figures for the report).
#[test]
fn pattern_encode_rate() {
    for (w, h) in [(1920, 1080), (1280, 720)] {
        let config = TestPatternConfig {
            width: w,
            height: h,
            fps: 30,
            bitrate_bps: 4_000_000,
            keyframe_interval: 60,
        };
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
        source: SourceConfig::TestPattern(TestPatternConfig {
            width: 320,
            height: 240,
            fps: 25,
            bitrate_bps: 300_000,
            keyframe_interval: 25,
        }),
        mode: ConnectMode::Lazy {
            idle_timeout: Duration::from_millis(300),
        },
        size_hint: None,
    })
    .unwrap();
    assert_eq!(hub.status().state, SourceState::Idle);
    let mut sub = hub.subscribe().unwrap();
    let first = bounded("first picture", Duration::from_secs(10), sub.recv())
        .await
        .unwrap();
    assert!(first.is_idr);
    let started = Instant::now();
    for _ in 0..25 {
        bounded("picture", Duration::from_secs(5), sub.recv())
            .await
            .unwrap();
    }
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(800) && took < Duration::from_millis(1600),
        "25 pictures at 25 fps took {took:?}"
    );
    assert_eq!(hub.status().state, SourceState::Streaming);
    drop(sub);
    // Lazy: the source closes after the idle timeout.
    let mut status = hub.watch_status();
    bounded(
        "idle",
        Duration::from_secs(5),
        status.wait_for(|s| s.state == SourceState::Idle),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn camera_picks_the_stream_that_fits() {
    let hub = |w, h| {
        Hub::new(HubConfig {
            name: format!("cam-{w}"),
            source: SourceConfig::TestPattern(TestPatternConfig {
                width: w,
                height: h,
                ..TestPatternConfig::default()
            }),
            mode: ConnectMode::Lazy {
                idle_timeout: Duration::from_secs(1),
            },
            size_hint: None,
        })
        .unwrap()
    };
    let camera = media::camera::Camera::new(hub(1920, 1080), Some(hub(640, 360)));
    assert_eq!(camera.pick(320, 240).name(), "cam-640");
    assert_eq!(camera.pick(640, 360).name(), "cam-640");
    assert_eq!(camera.pick(1280, 720).name(), "cam-1920");
    assert_eq!(camera.pick(3840, 2160).name(), "cam-1920");
    // Never above a cap (what the controller was offered): the substream then.
    assert_eq!(
        camera.pick_up_to(1280, 720, (1920, 1080)).name(),
        "cam-1920"
    );
    assert_eq!(camera.pick_up_to(1280, 720, (1280, 720)).name(), "cam-640");
    assert_eq!(
        camera.pick_up_to(320, 240, (320, 240)).name(),
        "cam-640",
        "smallest"
    );
    let single = media::camera::Camera::new(hub(1280, 720), None);
    assert_eq!(single.pick(320, 240).name(), "cam-1280");
    assert_eq!(single.pick_up_to(320, 240, (320, 240)).name(), "cam-1280");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_video_passes_through_when_the_source_fits() {
    use media::camera::{Camera, FeedMode, FeedReason, VideoRequest};
    use media::h264::H264Profile;
    let hub = Hub::new(HubConfig {
        name: "cam".into(),
        source: SourceConfig::TestPattern(TestPatternConfig {
            width: 640,
            height: 360,
            ..TestPatternConfig::default()
        }),
        mode: ConnectMode::Lazy {
            idle_timeout: Duration::from_secs(1),
        },
        size_hint: None,
    })
    .unwrap();
    let camera = Camera::new(hub, None);
    let mut request = VideoRequest {
        width: 1280,
        height: 720,
        fps: 30,
        bitrate_bps: 300_000,
        max_profile: H264Profile::High,
        mode: FeedMode::Auto,
    };
    let mut feed = bounded(
        "open",
        Duration::from_secs(10),
        camera.open_video(&request, Duration::from_secs(5)),
    )
    .await
    .unwrap()
    .0;
    assert!(!feed.is_transcoding(), "640x360 fits 1280x720");
    let first = bounded("passthrough picture", Duration::from_secs(10), feed.recv())
        .await
        .unwrap();
    assert!(first.is_idr);
    assert_eq!(
        camera.main().status().video.map(|v| (v.width, v.height)),
        Some((640, 360))
    );
    request.width = 320;
    request.height = 180;
    let mut feed = bounded(
        "open",
        Duration::from_secs(10),
        camera.open_video(&request, Duration::from_secs(5)),
    )
    .await
    .unwrap()
    .0;
    assert!(feed.is_transcoding(), "640x360 does not fit 320x180");
    let first = bounded("transcoded picture", Duration::from_secs(10), feed.recv())
        .await
        .unwrap();
    assert!(first.is_idr);
    assert_eq!(decode_sizes([&*first]), [(320, 180)]);
    // An explicit passthrough is honoured even though the source is larger than asked.
    request.mode = FeedMode::Passthrough;
    let mut feed = bounded(
        "open",
        Duration::from_secs(10),
        camera.open_video(&request, Duration::from_secs(5)),
    )
    .await
    .unwrap()
    .0;
    assert!(!feed.is_transcoding(), "passthrough was asked for");
    let reason = |request: &VideoRequest| {
        let camera = &camera;
        let request = *request;
        async move {
            bounded(
                "open",
                Duration::from_secs(10),
                camera.open_video(&request, Duration::from_secs(5)),
            )
            .await
            .unwrap()
            .1
        }
    };
    assert_eq!(reason(&request).await, FeedReason::PassthroughAsked);
    let first = bounded("passthrough picture", Duration::from_secs(10), feed.recv())
        .await
        .unwrap();
    assert_eq!(decode_sizes([&*first]), [(640, 360)]);
    // And an explicit transcode even though it fits.
    request.mode = FeedMode::Transcode;
    request.width = 1280;
    request.height = 720;
    let feed = bounded(
        "open",
        Duration::from_secs(10),
        camera.open_video(&request, Duration::from_secs(5)),
    )
    .await
    .unwrap()
    .0;
    assert!(feed.is_transcoding(), "transcode was asked for");
    assert_eq!(reason(&request).await, FeedReason::TranscodeAsked);
    request.mode = FeedMode::Auto;
    assert_eq!(reason(&request).await, FeedReason::Fits);
    request.width = 320;
    request.height = 180;
    assert_eq!(reason(&request).await, FeedReason::DoesNotFit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_loses_backlog_not_the_others() {
    let hub = Hub::new(HubConfig {
        name: "fast".into(),
        source: SourceConfig::TestPattern(TestPatternConfig {
            width: 160,
            height: 120,
            fps: 100,
            bitrate_bps: 200_000,
            keyframe_interval: 20,
        }),
        mode: ConnectMode::AlwaysOn,
        size_hint: None,
    })
    .unwrap();
    let mut slow = hub.subscribe().unwrap();
    let mut fast = hub.subscribe().unwrap();
    // The fast consumer keeps up while the slow one reads nothing for 2 s (~200 pictures,
    // more than the queue holds).
    let started = Instant::now();
    let mut got = 0;
    while started.elapsed() < Duration::from_secs(2) {
        bounded("fast consumer", Duration::from_secs(5), fast.recv())
            .await
            .unwrap();
        got += 1;
    }
    assert!(got > 100, "fast consumer got only {got} pictures in 2 s");
    assert_eq!(fast.dropped(), 0, "the fast consumer lost nothing");
    assert!(slow.dropped() > 0, "the slow consumer lost its backlog");
    assert!(slow.pending() <= media::hub::QUEUE_CAPACITY);
    let next = slow.try_recv().unwrap().unwrap();
    assert!(
        next.is_idr,
        "after a loss the slow consumer resumes at an IDR"
    );
}
