//! RTSP ingest with retina: DESCRIBE → SETUP (TCP interleaved or UDP) → PLAY, H.264 pictures out,
//! and a reconnect loop with backoff, because retina itself never reconnects (its stream simply
//! ends with `None` when the camera goes away).
//!
//! Credentials are taken out of the URL and handed to retina as [`retina::client::Credentials`];
//! every log line and error shows the URL without them.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt as _, StreamExt};
use retina::client::{
    Credentials, InitialTimestampPolicy, PlayOptions, Session, SessionOptions, SetupOptions,
    TcpTransportOptions, Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, FrameFormat, ParameterSetInsertion, ParametersRef, VideoFrame};

use super::FrameSink;
use crate::error::{Error, ErrorKind, redact_url};
use crate::frame::{AccessUnit, AudioChunk, AudioCoding, ParameterSets, SourceState};
use crate::h264::{NalType, avcc_nals, nal_type};

/// How RTP reaches us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RtspTransport {
    /// Interleaved on the RTSP TCP connection (RFC 2326 §10.12). The safe default.
    #[default]
    Tcp,
    /// Separate UDP ports; retina has no reorder buffer, so use it on a LAN only.
    Udp,
}

/// One RTSP source.
#[derive(Clone, PartialEq, Eq)]
pub struct RtspConfig {
    /// `rtsp://[user:password@]host[:port]/path`.
    pub url: String,
    /// TCP or UDP.
    pub transport: RtspTransport,
    /// With no picture for this long the session counts as stalled and is restarted.
    pub stall_timeout: Duration,
    /// Limit for each of DESCRIBE, SETUP and PLAY.
    pub connect_timeout: Duration,
}

impl RtspConfig {
    /// A TCP source with the default timeouts.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            transport: RtspTransport::Tcp,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// The URL without credentials, for display.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl fmt::Debug for RtspConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtspConfig")
            .field("url", &self.redacted_url())
            .field("transport", &self.transport)
            .field("stall_timeout", &self.stall_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// Pulls from the camera for ever, reconnecting with backoff (0.5 s doubling to 8 s, reset after
/// a session that delivered pictures). Ends when the task is aborted, or with state `Stopped`
/// when the URL itself is unusable.
pub(crate) async fn run(name: String, config: RtspConfig, sink: Arc<dyn FrameSink>) {
    let mut backoff = INITIAL_BACKOFF;
    let mut attempt: u32 = 0;
    sink.set_state(SourceState::Connecting, None);
    loop {
        let mut delivered = false;
        // A panic in the RTSP client (on input it did not expect) ends this session like a
        // failure, not the source for good with the hub still reporting it streaming.
        let played = AssertUnwindSafe(play(&name, &config, &*sink, &mut delivered))
            .catch_unwind()
            .await;
        let error = match played {
            Ok(Ok(never)) => match never {},
            Ok(Err(e)) => e,
            Err(_) => Error::new(ErrorKind::Stream, &name)
                .with_url(&config.url)
                .with_detail("the RTSP client panicked", None),
        };
        if error.kind() == ErrorKind::Config {
            // A URL that cannot work (scheme, syntax) does not get better by retrying.
            tracing::error!(camera = %name, error = %error, "RTSP source unusable; stopped");
            sink.set_state(SourceState::Stopped, Some(error));
            return;
        }
        if delivered {
            backoff = INITIAL_BACKOFF;
            attempt = 0;
        }
        attempt = attempt.saturating_add(1);
        tracing::warn!(camera = %name, error = %error, attempt, retry_in = ?backoff,
            "RTSP source lost; reconnecting");
        sink.set_state(SourceState::Reconnecting { attempt }, Some(error));
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Never {}

/// One session: connect, then publish pictures until something fails.
async fn play(
    name: &str,
    config: &RtspConfig,
    sink: &dyn FrameSink,
    delivered: &mut bool,
) -> Result<Never, Error> {
    let (url, creds) = split_credentials(name, &config.url)?;
    let secret = creds.as_ref().map(|c| c.password.clone());
    let err = |kind: ErrorKind, detail: &dyn fmt::Display| {
        Error::new(kind, name)
            .with_url(&config.url)
            .with_detail(detail, secret.as_deref())
    };
    let limit = config.connect_timeout;
    let timed_out = |stage: &str| format!("{stage} timed out after {limit:?}");

    let options = SessionOptions::default()
        .creds(creds)
        .user_agent(USER_AGENT.to_owned());
    let mut session = tokio::time::timeout(limit, Session::describe(url, options))
        .await
        .map_err(|_| err(ErrorKind::Connect, &timed_out("DESCRIBE")))?
        .map_err(|e| err(ErrorKind::Connect, &e))?;
    let stream_i = session
        .streams()
        .iter()
        .position(|s| s.media() == "video" && s.encoding_name().eq_ignore_ascii_case("h264"))
        .ok_or_else(|| err(ErrorKind::NoVideo, &"no video/h264 stream in the SDP"))?;
    let transport = || match config.transport {
        RtspTransport::Tcp => Transport::Tcp(TcpTransportOptions::default()),
        RtspTransport::Udp => Transport::Udp(UdpTransportOptions::default()),
    };
    // Length-prefixed NALs (easy to split without scanning) with SPS/PPS before every keyframe.
    let format = FrameFormat {
        parameter_set_insertion: ParameterSetInsertion::EachKeyFrame,
        ..FrameFormat::MP4
    };
    let setup = || {
        SetupOptions::default()
            .transport(transport())
            .frame_format(format)
    };
    tokio::time::timeout(limit, session.setup(stream_i, setup()))
        .await
        .map_err(|_| err(ErrorKind::Connect, &timed_out("SETUP")))?
        .map_err(|e| err(ErrorKind::Connect, &e))?;
    // The camera's audio, when it has a track we can decode; a camera without one (or with
    // another codec) streams its video alone.
    let audio = match audio_track(&session) {
        Ok(Some((i, coding, rate, channels))) => {
            tokio::time::timeout(limit, session.setup(i, setup()))
                .await
                .map_err(|_| err(ErrorKind::Connect, &timed_out("SETUP (audio)")))?
                .map_err(|e| err(ErrorKind::Connect, &e))?;
            tracing::info!(camera = %name, codec = ?coding_name(&coding), rate, channels, "RTSP audio");
            Some((i, coding, rate, channels))
        }
        Ok(None) => None,
        Err(why) => {
            tracing::info!(camera = %name, "RTSP audio not used: {why}");
            None
        }
    };
    // Two streams: their RTP clocks may start anywhere (some cameras send no rtptime).
    let play = PlayOptions::default().initial_timestamp(InitialTimestampPolicy::Permissive);
    let playing = tokio::time::timeout(limit, session.play(play))
        .await
        .map_err(|_| err(ErrorKind::Connect, &timed_out("PLAY")))?
        .map_err(|e| err(ErrorKind::Connect, &e))?;
    let demuxed = playing.demuxed().map_err(|e| err(ErrorKind::Connect, &e))?;
    let mut demuxed = std::pin::pin!(demuxed);
    tracing::info!(camera = %name, url = %config.redacted_url(), transport = ?config.transport,
        "RTSP playing");

    let mut parameter_sets: Option<Arc<ParameterSets>> = None;
    // Only a picture moves the stall deadline: a camera whose encoder froze may still send
    // RTCP sender reports, which retina yields as items too.
    let mut stall_at = tokio::time::Instant::now() + config.stall_timeout;
    loop {
        let item = tokio::time::timeout_at(stall_at, demuxed.next())
            .await
            .map_err(|_| {
                err(
                    ErrorKind::Stalled,
                    &format!("no picture for {:?}", config.stall_timeout),
                )
            })?;
        let frame = match item {
            None => return Err(err(ErrorKind::Ended, &"the server ended the session")),
            Some(Err(e)) => return Err(err(ErrorKind::Stream, &e)),
            Some(Ok(CodecItem::VideoFrame(frame))) => frame,
            Some(Ok(CodecItem::AudioFrame(frame))) => {
                if let Some((i, coding, rate, channels)) = &audio
                    && frame.stream_id() == *i
                {
                    sink.publish_audio(AudioChunk {
                        coding: coding.clone(),
                        sample_rate: *rate,
                        channels: *channels,
                        data: Bytes::copy_from_slice(frame.data()),
                        timestamp: frame.timestamp().elapsed(),
                        received_at: Instant::now(),
                    });
                }
                continue;
            }
            Some(Ok(_)) => continue,
        };
        if frame.loss() > 0 {
            tracing::debug!(camera = %name, lost = frame.loss(), "RTP packets lost before picture");
        }
        if let Some(au) = access_unit(frame, &mut parameter_sets) {
            if !*delivered {
                *delivered = true;
                sink.set_state(SourceState::Streaming, None);
            }
            sink.publish(au);
            stall_at = tokio::time::Instant::now() + config.stall_timeout;
        }
    }
}

/// The first audio track the audio decoder takes: (stream index, coding, sample rate,
/// channels); `Ok(None)` without an audio track, `Err` naming an audio track we cannot use.
fn audio_track(
    session: &Session<retina::client::Described>,
) -> Result<Option<(usize, AudioCoding, u32, u16)>, String> {
    let mut unusable = None;
    for (i, stream) in session.streams().iter().enumerate() {
        if stream.media() != "audio" {
            continue;
        }
        let encoding = stream.encoding_name().to_ascii_lowercase();
        let Some(ParametersRef::Audio(params)) = stream.parameters() else {
            unusable = Some(format!("{encoding}: not depacketized by the RTSP client"));
            continue;
        };
        let coding = match encoding.as_str() {
            "pcmu" => AudioCoding::Pcmu,
            "pcma" => AudioCoding::Pcma,
            "l16" => AudioCoding::L16,
            "mpeg4-generic" => AudioCoding::Aac {
                config: Bytes::copy_from_slice(params.extra_data()),
            },
            other => {
                unusable = Some(format!("{other}: no decoder"));
                continue;
            }
        };
        return Ok(Some((
            i,
            coding,
            params.clock_rate(),
            params.channels().get(),
        )));
    }
    unusable.map_or(Ok(None), Err)
}

/// A short name for logs.
fn coding_name(coding: &AudioCoding) -> &'static str {
    match coding {
        AudioCoding::Pcmu => "PCMU",
        AudioCoding::Pcma => "PCMA",
        AudioCoding::L16 => "L16",
        AudioCoding::Aac { .. } => "AAC",
    }
}

/// Turns a retina picture (4-byte length-prefixed NALs) into an [`AccessUnit`]: SPS/PPS go to
/// `parameter_sets`, AUD and SEI are dropped. Returns `None` for a picture with no slices.
fn access_unit(
    frame: VideoFrame,
    parameter_sets: &mut Option<Arc<ParameterSets>>,
) -> Option<AccessUnit> {
    let received_at = Instant::now();
    let timestamp_90k = u64::try_from(frame.timestamp().elapsed()).unwrap_or(0);
    let data = Bytes::from(frame.into_data());
    let (mut sps, mut pps, mut nals, mut is_idr) = (None, None, Vec::new(), false);
    // retina frames are well formed; a malformed one is skipped rather than half-used.
    let units = avcc_nals(&data, 4).ok()?;
    for unit in units {
        match nal_type(&unit) {
            Some(NalType::SPS) => sps = Some(unit),
            Some(NalType::PPS) => pps = Some(unit),
            Some(NalType::AUD | NalType::SEI) | None => {}
            Some(t) => {
                is_idr |= t == NalType::IDR;
                nals.push(unit);
            }
        }
    }
    let mut changed = false;
    if let (Some(sps), Some(pps)) = (sps, pps) {
        let new = ParameterSets { sps, pps };
        if parameter_sets.as_deref() != Some(&new) {
            *parameter_sets = Some(Arc::new(new));
            changed = true;
        }
    }
    if nals.is_empty() {
        return None;
    }
    Some(AccessUnit {
        nals,
        is_idr,
        timestamp_90k,
        received_at,
        parameter_sets: if is_idr || changed {
            parameter_sets.clone()
        } else {
            None
        },
    })
}

/// Checks that `raw` is an `rtsp://` URL this client can open (as it parses it when it
/// connects). The error says what is wrong without quoting the URL, which may hold a password.
pub fn check_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("bad URL: {e}"))?;
    if url.scheme() != "rtsp" {
        return Err("the URL scheme must be rtsp".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    Ok(())
}

/// Removes `user:password@` from `raw` and returns the clean URL and the (percent-decoded)
/// credentials.
fn split_credentials(name: &str, raw: &str) -> Result<(url::Url, Option<Credentials>), Error> {
    let mut url = url::Url::parse(raw).map_err(|e| {
        Error::new(ErrorKind::Config, name)
            .with_url(raw)
            .with_detail(format!("bad URL: {e}"), None)
    })?;
    if url.scheme() != "rtsp" {
        return Err(Error::new(ErrorKind::Config, name)
            .with_url(raw)
            .with_detail("the URL scheme must be rtsp", None));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let creds = if url.username().is_empty() && url.password().is_none() {
        None
    } else {
        Some(Credentials {
            username: decode(url.username()),
            password: decode(url.password().unwrap_or("")),
        })
    };
    // Only fail for URLs that cannot carry credentials, which an rtsp:// URL always can.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url, creds))
}

/// First retry delay after a failure.
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Retry delay ceiling.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// Default [`RtspConfig::stall_timeout`].
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`RtspConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = "hap-bridge";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_url_refuses_what_the_client_could_not_open() {
        assert_eq!(check_url("rtsp://u:p%23w@cam.lan:554/s?x=1"), Ok(()));
        assert_eq!(check_url("rtsp://[::1]:8554/s"), Ok(()));
        for (raw, why) in [
            ("rtsp://u:secret@cam:99999/s", "invalid port number"),
            ("rtsp://u:secret@cam:554x/s", "invalid port number"),
            ("rtsp://[fe80::1%eth0]/s", "invalid IPv6 address"),
            ("http://u:secret@cam/s", "scheme must be rtsp"),
        ] {
            let e = check_url(raw).expect_err(raw);
            assert!(e.contains(why), "{raw}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn credentials_leave_the_url() {
        let (url, creds) = split_credentials("cam", "rtsp://ad%40min:p%3Ass@192.0.2.1/s").unwrap();
        assert_eq!(url.as_str(), "rtsp://192.0.2.1/s");
        let creds = creds.unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("ad@min", "p:ss")
        );
        let shown = format!("{:?}", RtspConfig::new("rtsp://u:hunter2@h/x"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(split_credentials("cam", "http://h/").is_err());
    }
}
