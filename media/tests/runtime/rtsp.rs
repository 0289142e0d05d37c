//! RTSP ingest against the GStreamer RTSP server fixture.

use std::time::Duration;

use media::frame::SourceState;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::source::{RtspConfig, RtspTransport, SourceConfig};

use crate::fixture::RtspServer;
use crate::{bounded, decode_sizes};

fn rtsp_hub(url: &str, transport: RtspTransport, mode: ConnectMode) -> Hub {
    let mut config = RtspConfig::new(url);
    config.transport = transport;
    config.stall_timeout = Duration::from_secs(3);
    Hub::new(HubConfig {
        name: "fixture".into(),
        source: SourceConfig::Rtsp(config),
        mode,
        size_hint: None,
    })
    .unwrap()
}

async fn pull(transport: RtspTransport) {
    let server = RtspServer::start();
    let hub = rtsp_hub(
        &server.url,
        transport,
        ConnectMode::Lazy {
            idle_timeout: Duration::from_secs(1),
        },
    );
    let mut sub = hub.subscribe().unwrap();
    let mut aus = Vec::new();
    bounded("30 pictures", Duration::from_secs(30), async {
        while aus.len() < 30 {
            aus.push(sub.recv().await.unwrap());
        }
    })
    .await;
    assert!(
        aus[0].is_idr && aus[0].parameter_sets.is_some(),
        "starts at an IDR with SPS/PPS"
    );
    let sizes = decode_sizes(aus.iter().map(|a| &**a));
    assert_eq!(sizes.len(), 30, "every picture decodes");
    assert!(sizes.iter().all(|&s| s == (1920, 1080)), "{sizes:?}");
    // Timestamps advance by about one 30 fps frame (3000 ticks at 90 kHz).
    let span = aus[29].timestamp_90k - aus[0].timestamp_90k;
    assert!(
        (2600 * 29..3400 * 29).contains(&span),
        "timestamps span {span}"
    );
    let status = hub.status();
    assert_eq!(status.state, SourceState::Streaming);
    assert!(status.frames >= 30 && status.keyframes >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_over_tcp_delivers_idr_and_pictures() {
    pull(RtspTransport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_over_udp_delivers_idr_and_pictures() {
    pull(RtspTransport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_reconnects_after_server_restart() {
    let server = RtspServer::start();
    let hub = rtsp_hub(&server.url, RtspTransport::Tcp, ConnectMode::AlwaysOn);
    let mut sub = hub.subscribe().unwrap();
    bounded("first picture", Duration::from_secs(30), sub.recv())
        .await
        .unwrap();
    let url = server.url.clone();
    let port = server.kill();
    let mut status = hub.watch_status();
    bounded(
        "reconnecting state",
        Duration::from_secs(15),
        status.wait_for(|s| matches!(s.state, SourceState::Reconnecting { .. })),
    )
    .await
    .unwrap();
    let error = hub.status().last_error.expect("the reason is reported");
    assert!(error.url().is_some_and(|u| u == url), "{error}");
    // Drain what was queued before the loss.
    while sub.try_recv().is_some() {}
    let _server = RtspServer::start_on(port);
    let first = bounded("picture after restart", Duration::from_secs(40), sub.recv())
        .await
        .unwrap();
    assert!(first.is_idr, "the consumer resumes at an IDR");
    bounded(
        "streaming again",
        Duration::from_secs(10),
        status.wait_for(|s| s.state == SourceState::Streaming),
    )
    .await
    .unwrap();
    for _ in 0..10 {
        bounded(
            "pictures after restart",
            Duration::from_secs(10),
            sub.recv(),
        )
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_stay_out_of_errors() {
    // Nothing listens on this port: a connect error must name the URL without the password.
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    drop(socket);
    let url = format!("rtsp://admin:hunter2@127.0.0.1:{port}/main");
    let hub = rtsp_hub(&url, RtspTransport::Tcp, ConnectMode::AlwaysOn);
    let mut status = hub.watch_status();
    bounded(
        "reconnecting",
        Duration::from_secs(15),
        status.wait_for(|s| s.last_error.is_some()),
    )
    .await
    .unwrap();
    let error = hub.status().last_error.unwrap();
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains(&format!("127.0.0.1:{port}/main")), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_substream_serves_small_requests() {
    let server = RtspServer::start();
    let main = rtsp_hub(
        &server.url,
        RtspTransport::Tcp,
        ConnectMode::Lazy {
            idle_timeout: Duration::from_secs(1),
        },
    );
    let sub = rtsp_hub(&server.sub_url(), RtspTransport::Tcp, ConnectMode::AlwaysOn);
    let mut status = sub.watch_status();
    bounded(
        "substream SPS",
        Duration::from_secs(30),
        status.wait_for(|s| s.video.is_some()),
    )
    .await
    .unwrap();
    let camera = media::camera::Camera::new(main, Some(sub));
    assert_eq!(camera.pick(320, 240).video_size(), Some((640, 360)));
    assert_eq!(
        camera.pick(1280, 720).video_size(),
        None,
        "the lazy main stream is not connected yet"
    );
    let mut s = camera.pick(320, 240).subscribe().unwrap();
    let first = bounded("substream picture", Duration::from_secs(10), s.recv())
        .await
        .unwrap();
    assert_eq!(decode_sizes([&*first]), [(640, 360)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_detects_a_stalled_camera_and_recovers() {
    let server = RtspServer::start();
    let hub = rtsp_hub(&server.url, RtspTransport::Tcp, ConnectMode::AlwaysOn);
    let mut sub = hub.subscribe().unwrap();
    bounded("first picture", Duration::from_secs(30), sub.recv())
        .await
        .unwrap();
    server.freeze(true);
    let mut status = hub.watch_status();
    // Stall timeout is 3 s in `rtsp_hub`.
    bounded(
        "stall detected",
        Duration::from_secs(15),
        status.wait_for(|s| matches!(s.state, SourceState::Reconnecting { .. })),
    )
    .await
    .unwrap();
    let error = hub.status().last_error.unwrap();
    assert_eq!(error.kind(), media::ErrorKind::Stalled, "{error}");
    server.freeze(false);
    while sub.try_recv().is_some() {}
    let first = bounded("picture after thaw", Duration::from_secs(40), sub.recv())
        .await
        .unwrap();
    assert!(first.is_idr, "resumes at an IDR");
}

/// A camera whose pictures stop while its session goes on (RTCP sender and receiver reports
/// keep coming, as from a camera whose encoder froze) is stalled too: only pictures count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_detects_pictures_stopping_while_rtcp_goes_on() {
    let server = RtspServer::start();
    let mut config = RtspConfig::new(server.stalls_url());
    config.transport = RtspTransport::Tcp;
    // Longer than the gaps between the server's RTCP reports (5 s, randomised by ±50%), so
    // reports alone would keep a stall hidden.
    config.stall_timeout = Duration::from_secs(8);
    let hub = Hub::new(HubConfig {
        name: "stalls".into(),
        source: SourceConfig::Rtsp(config),
        mode: ConnectMode::AlwaysOn,
        size_hint: None,
    })
    .unwrap();
    let mut sub = hub.subscribe().unwrap();
    bounded("first picture", Duration::from_secs(30), sub.recv())
        .await
        .unwrap();
    let mut status = hub.watch_status();
    // Pictures stop 3 s into the session; the stall shows 8 s after the last one.
    bounded(
        "stall detected",
        Duration::from_secs(25),
        status.wait_for(|s| matches!(s.state, SourceState::Reconnecting { .. })),
    )
    .await
    .unwrap();
    let error = hub.status().last_error.unwrap();
    assert_eq!(error.kind(), media::ErrorKind::Stalled, "{error}");
    // A new session starts pictures again, at an IDR.
    while sub.try_recv().is_some() {}
    let first = bounded(
        "picture after reconnect",
        Duration::from_secs(30),
        sub.recv(),
    )
    .await
    .unwrap();
    assert!(first.is_idr, "resumes at an IDR");
}
