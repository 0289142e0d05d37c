//! `hap-bridge stream`: the media pipeline from the command line, for benchmarks and for trying a
//! camera without an iPhone. Streams until Ctrl-C or SIGTERM, then prints the figures.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use media::camera::Camera;
use media::h264::H264Profile;
use media::hub::{ConnectMode, Hub, HubConfig};
use media::session::{self, Mode, SrtpKeys, StreamParams};
use media::source::{RtspConfig, SourceConfig, TestPatternConfig};
use media::srtp::{SrtpSuite, decode_params};
use rand::RngExt as _;
use tokio::net::UdpSocket;

use crate::cli::StreamArgs;
use crate::config::mask_url;

/// Runs the stream until a signal, then prints its statistics.
pub(crate) fn run(args: &StreamArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(stream(args))
}

async fn stream(args: &StreamArgs) -> anyhow::Result<()> {
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let keys = decode_params(suite, &args.srtp_key).map_err(|e| {
        anyhow::anyhow!("--srtp-key: {e} (base64 of the 16-byte key + 14-byte salt)")
    })?;
    let (width, height) = args.size;
    let warm = Duration::try_from_secs_f64(args.warm_up)
        .ok()
        .filter(|d| *d <= MAX_WARM_UP)
        .with_context(|| {
            format!(
                "--warm-up: {} is not 0..={} seconds",
                args.warm_up,
                MAX_WARM_UP.as_secs()
            )
        })?;
    let source = if args.rtsp == "test-pattern" {
        SourceConfig::TestPattern(TestPatternConfig {
            width: 1920,
            height: 1080,
            fps: 30,
            bitrate_bps: 4_000_000,
            keyframe_interval: 60,
        })
    } else {
        // The config file's checks (scheme, host, credentials that parse as such).
        let checked = crate::config::Source::from(args.rtsp.clone());
        crate::config::check_source("--rtsp", &checked).map_err(|e| anyhow::anyhow!("{e}"))?;
        SourceConfig::Rtsp(RtspConfig::new(args.rtsp.clone()))
    };
    let hub = Hub::new(HubConfig {
        name: "stream".into(),
        source,
        mode: ConnectMode::AlwaysOn,
        size_hint: None,
    })
    .context("camera")?;
    let camera = Arc::new(Camera::new(hub, None));
    let bind = if args.dest.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = Arc::new(UdpSocket::bind(bind).await.context("UDP socket")?);
    let mode = match args.mode.as_str() {
        "passthrough" => Mode::Passthrough,
        "transcode" => Mode::Transcode,
        _ => Mode::Auto,
    };
    let mut rng = rand::rng();
    let params = StreamParams {
        width,
        height,
        fps: args.fps,
        kbps: args.kbps,
        max_profile: H264Profile::High,
        payload_type: args.pt,
        ssrc: args.ssrc,
        mtu: args.mtu,
        srtp: SrtpKeys {
            suite,
            key: keys.key.to_vec(),
            salt: keys.salt.to_vec(),
        },
        destination: args.dest,
        rtcp_destination: args
            .rtcp_port
            .map(|p| std::net::SocketAddr::new(args.dest.ip(), p)),
        rtcp_interval: Duration::from_millis(500),
        rtcp_timeout: None,
        mode,
        initial_sequence: rng.random(),
        initial_timestamp: rng.random(),
    };
    eprintln!(
        "hap-bridge stream: {} -> {} ({}x{}@{} {} kbit/s, mode {})",
        mask_url(&args.rtsp),
        args.dest,
        width,
        height,
        args.fps,
        args.kbps,
        args.mode
    );
    if !warm.is_zero() {
        warm_up(camera.main(), warm).await?;
    }
    // Benchmarks time the first packet and picture from this line (benches/latency.rs).
    eprintln!("hap-bridge stream: session start");
    let audio = match args.audio_dest {
        Some(dest) => Some(start_audio(args, dest).await?),
        None => None,
    };
    let mut handle = session::start(camera, socket, params)
        .await
        .context("starting the stream")?;
    tokio::select! {
        reason = handle.wait() => eprintln!("hap-bridge stream: ended: {reason:?}"),
        () = crate::bridge::shutdown_signal() => {
            handle.stop();
            let reason = handle.wait().await;
            eprintln!("hap-bridge stream: stopped ({reason:?})");
        }
    }
    print_stats(&handle.stats());
    if let Some(audio) = audio {
        let s = audio.stats();
        println!(
            "audio: {} packets, {} payload bytes, {} send errors, encode {:.3} ms/packet",
            s.packets,
            s.octets,
            s.send_errors,
            s.encode_time.as_secs_f64() * 1000.0 / s.packets.max(1) as f64
        );
        audio.stop().await;
    }
    Ok(())
}

/// The audio stream of `--audio-dest`: the test pattern's beep, Opus over SRTP.
async fn start_audio(
    args: &StreamArgs,
    dest: std::net::SocketAddr,
) -> anyhow::Result<media::audio::sender::AudioHandle> {
    use media::audio::sender::{self, AudioInput, AudioParams};
    anyhow::ensure!(
        args.rtsp == "test-pattern",
        "--audio-dest: only the test pattern has audio so far (camera audio is not ingested yet)"
    );
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let key = args.audio_srtp_key.as_deref().unwrap_or_default();
    let keys = decode_params(suite, key).map_err(|e| {
        anyhow::anyhow!("--audio-srtp-key: {e} (base64 of the 16-byte key + 14-byte salt)")
    })?;
    let bind = if dest.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = Arc::new(UdpSocket::bind(bind).await.context("audio UDP socket")?);
    let mut rng = rand::rng();
    let params = AudioParams {
        sample_rate: args.audio_rate,
        packet_time_ms: args.audio_ptime,
        bitrate_bps: AUDIO_BITRATE,
        payload_type: args.audio_pt,
        ssrc: args.audio_ssrc.unwrap_or_default(),
        srtp: SrtpKeys {
            suite,
            key: keys.key.to_vec(),
            salt: keys.salt.to_vec(),
        },
        destination: dest,
        rtcp_interval: Duration::from_millis(500),
        initial_sequence: rng.random(),
        initial_timestamp: rng.random(),
        mute: Arc::default(),
    };
    eprintln!(
        "hap-bridge stream: audio -> {dest} (Opus {} Hz, {} ms packets)",
        args.audio_rate, args.audio_ptime
    );
    sender::start(AudioInput::Tone, socket, params).context("starting the audio stream")
}

/// Opus bit rate of `--audio-dest` (iOS asks 24 kbit/s).
const AUDIO_BITRATE: u32 = 24_000;

/// Waits `secs`, then until the hub holds a GOP (an IDR and what follows), at most
/// [`WARM_UP_LIMIT`] longer.
async fn warm_up(hub: &Hub, secs: Duration) -> anyhow::Result<()> {
    tokio::time::sleep(secs).await;
    let deadline = tokio::time::Instant::now() + WARM_UP_LIMIT;
    while hub.gop().is_empty() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "--warm-up: the camera sent no key frame within {WARM_UP_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "hap-bridge stream: warm hub, GOP of {} pictures",
        hub.gop().len()
    );
    Ok(())
}

fn print_stats(s: &session::LiveStats) {
    let st = &s.stream;
    let ms = |d: Option<Duration>| {
        d.map_or_else(
            || "-".to_owned(),
            |d| format!("{:.2} ms", d.as_secs_f64() * 1e3),
        )
    };
    let elapsed = s
        .started
        .map(|t| t.elapsed().as_secs_f64())
        .unwrap_or_default();
    let first = match (s.started, s.first_packet) {
        (Some(a), Some(b)) => format!("{:.1} ms", b.duration_since(a).as_secs_f64() * 1e3),
        _ => "-".to_owned(),
    };
    println!(
        "mode            {}",
        if s.transcoding {
            "transcode"
        } else {
            "passthrough"
        }
    );
    println!(
        "size            {}x{} @ {} fps, {} kbit/s",
        s.width, s.height, s.fps, s.kbps
    );
    println!("duration        {elapsed:.1} s");
    println!("first packet    {first} after start");
    println!(
        "frames          {} ({} key frames, {} dropped)",
        st.frames_sent, st.key_frames_sent, st.frames_dropped
    );
    println!(
        "packets         {} ({} bytes, {} send errors)",
        st.packets_sent, st.bytes_sent, st.send_errors
    );
    if elapsed > 0.0 {
        println!(
            "rate            {:.1} fps, {:.0} kbit/s",
            st.frames_sent as f64 / elapsed,
            st.bytes_sent as f64 * 8.0 / elapsed / 1000.0
        );
    }
    println!(
        "added latency   p50 {} p95 {} p99 {} max {} mean {} (percentiles: histogram bucket \
         bounds, at most a third over; the mean is exact)",
        ms(st.latency.p50()),
        ms(st.latency.p95()),
        ms(st.latency.p99()),
        ms(st.latency.max()),
        ms(st.latency.mean())
    );
    println!(
        "rtcp received   {} (lost {} cumulative, jitter {})",
        st.rtcp_received, s.cumulative_lost, s.jitter
    );
    if let Some(t) = &s.transcode {
        println!(
            "transcoded      {} pictures decoded, {} encoded, {} skipped (rate cap, catch-up)",
            t.decoded, t.encoded, t.skipped
        );
        if let Some([wait, decode, scale, encode]) = t.mean_stages() {
            println!(
                "per picture     wait {}, decode {}, scale {}, encode {} (means)",
                ms(Some(wait)),
                ms(Some(decode)),
                ms(Some(scale)),
                ms(Some(encode))
            );
        }
    }
}

/// How long `--warm-up` waits for a key frame after its delay.
const WARM_UP_LIMIT: Duration = Duration::from_secs(10);

/// Longest `--warm-up`.
const MAX_WARM_UP: Duration = Duration::from_secs(3600);
