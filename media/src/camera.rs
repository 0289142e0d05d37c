//! A camera's sources: the main stream and an optional substream, each with its own hub. A
//! request is served from the stream whose picture fits it best.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::frame::AccessUnit;
use crate::h264::{H264Profile, fits};
use crate::hub::{Hub, Subscription};
use crate::transcode::{TranscodeParams, TranscodeStats, Transcoder};

/// The hubs of one camera.
#[derive(Clone)]
pub struct Camera {
    main: Hub,
    sub: Option<Hub>,
}

impl Camera {
    /// A camera with its main stream and, when the camera names one, a substream.
    pub fn new(main: Hub, sub: Option<Hub>) -> Self {
        Self { main, sub }
    }

    /// The main stream's hub.
    pub fn main(&self) -> &Hub {
        &self.main
    }

    /// The substream's hub.
    pub fn sub(&self) -> Option<&Hub> {
        self.sub.as_ref()
    }

    /// The hub for a request of `width`×`height`: the smallest stream at least that large in
    /// both dimensions (less to decode and scale, or passthrough), else the largest stream.
    /// A stream of unknown size counts as the largest for the main stream and is skipped for the
    /// substream.
    pub fn pick(&self, width: u32, height: u32) -> &Hub {
        let Some(sub) = &self.sub else {
            return &self.main;
        };
        let Some((sw, sh)) = sub.video_size() else {
            return &self.main;
        };
        let covers = sw >= width && sh >= height;
        match self.main.video_size() {
            _ if covers => sub,
            Some((mw, mh)) if mw * mh < sw * sh => sub,
            _ => &self.main,
        }
    }
}

impl Camera {
    /// [`Camera::pick`] among the streams not larger than `cap` (in both dimensions); when
    /// none is known to be, the smallest stream.
    pub fn pick_up_to(&self, width: u32, height: u32, cap: (u32, u32)) -> &Hub {
        let within = |hub: &Hub| {
            hub.video_size()
                .is_some_and(|(w, h)| w <= cap.0 && h <= cap.1)
        };
        let picked = self.pick(width, height);
        if within(picked) {
            return picked;
        }
        let Some(sub) = &self.sub else {
            return &self.main;
        };
        let other = if std::ptr::eq(picked, sub) {
            &self.main
        } else {
            sub
        };
        if within(other) {
            return other;
        }
        match (self.main.video_size(), sub.video_size()) {
            (Some((mw, mh)), Some((sw, sh))) if mw * mh <= sw * sh => &self.main,
            (_, Some(_)) => sub,
            _ => &self.main,
        }
    }
}

/// What a live-stream consumer asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoRequest {
    /// Largest picture width the consumer takes.
    pub width: u32,
    /// Largest picture height the consumer takes.
    pub height: u32,
    /// Pictures per second wanted (used when re-encoding).
    pub fps: u32,
    /// Bitrate wanted in bits per second (used when re-encoding).
    pub bitrate_bps: u32,
    /// Highest profile the consumer decodes.
    pub max_profile: H264Profile,
    /// Passthrough when the source fits (auto), always, or never.
    pub mode: FeedMode,
}

/// How to choose between passing the camera's pictures through and re-encoding them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FeedMode {
    /// Pass the source through when it fits the request, re-encode otherwise.
    #[default]
    Auto,
    /// Always pass the source through, even larger than the request (the request's size is
    /// advisory; its profile limit too).
    Passthrough,
    /// Always re-encode (e.g. to honour the bitrate).
    Transcode,
    /// Always pass a stream through: the best-fitting one not larger than `width`×`height` (the
    /// largest size the consumer was offered), even when it is larger than the request.
    PassthroughUpTo {
        /// Largest width passed through.
        width: u32,
        /// Largest height passed through.
        height: u32,
    },
}

/// Why a feed passes the source through or re-encodes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FeedReason {
    /// The source fits the request (size and profile).
    #[default]
    Fits,
    /// The source is larger than the request, or of a higher profile.
    DoesNotFit,
    /// The source's size was not known in time.
    SourceUnknown,
    /// Passthrough was asked for.
    PassthroughAsked,
    /// Re-encoding was asked for.
    TranscodeAsked,
}

impl FeedReason {
    /// A short name (metrics label, API).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fits => "fits",
            Self::DoesNotFit => "does_not_fit",
            Self::SourceUnknown => "source_unknown",
            Self::PassthroughAsked => "passthrough_asked",
            Self::TranscodeAsked => "transcode_asked",
        }
    }
}

/// Pictures for one live stream: the camera's own H.264 when it fits the request, else
/// re-encoded.
pub enum VideoFeed {
    /// The source's access units as they are (SPS/PPS on each IDR).
    Passthrough(Subscription),
    /// Re-encoded access units.
    Transcode(Transcoder),
}

impl VideoFeed {
    /// The next picture.
    pub async fn recv(&mut self) -> Result<Arc<AccessUnit>, Error> {
        match self {
            Self::Passthrough(sub) => sub.recv().await,
            Self::Transcode(t) => t.recv().await,
        }
    }

    /// Asks for an IDR soon. A passthrough feed cannot ask the camera; it waits for the camera's
    /// next IDR (the GOP prebuffer already started it on one).
    pub fn request_keyframe(&self) {
        if let Self::Transcode(t) = self {
            t.request_keyframe();
        }
    }

    /// Changes the bitrate of a re-encoded feed (no effect on passthrough).
    pub fn set_bitrate(&self, bitrate_bps: u32) {
        if let Self::Transcode(t) = self {
            t.set_bitrate(bitrate_bps);
        }
    }

    /// Whether pictures are re-encoded.
    pub fn is_transcoding(&self) -> bool {
        matches!(self, Self::Transcode(_))
    }

    /// The transcoder's counters, for a re-encoded feed.
    pub fn transcode_stats(&self) -> Option<TranscodeStats> {
        match self {
            Self::Passthrough(_) => None,
            Self::Transcode(t) => Some(t.stats()),
        }
    }
}

impl Camera {
    /// Opens a live feed for `request`: picks the stream ([`Camera::pick`]), waits (up to
    /// `wait`) until its SPS is known, then passes it through when it fits
    /// ([`crate::h264::fits`]) or starts a transcoder otherwise; [`FeedMode`] can force either.
    pub async fn open_video(
        &self,
        request: &VideoRequest,
        wait: Duration,
    ) -> Result<(VideoFeed, FeedReason), Error> {
        let hub = match request.mode {
            FeedMode::PassthroughUpTo { width, height } => {
                self.pick_up_to(request.width, request.height, (width, height))
            }
            _ => self.pick(request.width, request.height),
        };
        let sub = hub.subscribe()?;
        let mut status = hub.watch_status();
        let sps = tokio::time::timeout(wait, status.wait_for(|s| s.video.is_some()))
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|s| s.video);
        let fits =
            sps.is_some_and(|sps| fits(&sps, request.width, request.height, request.max_profile));
        let reason = match request.mode {
            FeedMode::Passthrough | FeedMode::PassthroughUpTo { .. } => {
                return Ok((VideoFeed::Passthrough(sub), FeedReason::PassthroughAsked));
            }
            FeedMode::Auto if fits => return Ok((VideoFeed::Passthrough(sub), FeedReason::Fits)),
            FeedMode::Auto if sps.is_none() => FeedReason::SourceUnknown,
            FeedMode::Auto => FeedReason::DoesNotFit,
            FeedMode::Transcode => FeedReason::TranscodeAsked,
        };
        let (width, height) = fit_size(
            sps.map(|s| (s.width, s.height)),
            request.width,
            request.height,
        );
        let params = TranscodeParams {
            width,
            height,
            fps: request.fps.max(1),
            bitrate_bps: request.bitrate_bps,
            profile: request.max_profile,
            keyframe_interval: request.fps.max(1) * KEYFRAME_SECONDS,
        };
        Ok((
            VideoFeed::Transcode(Transcoder::start(sub, params)?),
            reason,
        ))
    }
}

/// The output size: the requested box, never larger than the source, even dimensions.
fn fit_size(source: Option<(u32, u32)>, width: u32, height: u32) -> (u32, u32) {
    let (w, h) = match source {
        Some((sw, sh)) => (width.min(sw), height.min(sh)),
        None => (width, height),
    };
    ((w & !1).max(2), (h & !1).max(2))
}

/// Periodic IDR interval of re-encoded feeds, on top of IDRs on request.
const KEYFRAME_SECONDS: u32 = 4;
