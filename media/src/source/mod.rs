//! Video sources: RTSP cameras ([`rtsp`]) and the built-in test pattern ([`test_pattern`]).
//!
//! A source pushes [`AccessUnit`]s into a [`FrameSink`] (in practice a hub) and reports its
//! [`SourceState`]. Sources never block on consumers: `publish` is cheap and never waits.

pub mod rtsp;
pub mod test_pattern;
pub mod tone;

use crate::error::Error;
use crate::frame::{AccessUnit, AudioChunk, SourceState};

pub use rtsp::{RtspConfig, RtspTransport};
pub use test_pattern::{TestPattern, TestPatternConfig};

/// What a hub ingests.
#[derive(Clone, Debug)]
pub enum SourceConfig {
    /// An RTSP camera (or any RTSP server) serving H.264.
    Rtsp(RtspConfig),
    /// The in-process test pattern.
    TestPattern(TestPatternConfig),
}

/// Receives what a source produces. Implementations must return quickly and never block on a
/// consumer.
pub trait FrameSink: Send + Sync + 'static {
    /// A new picture.
    fn publish(&self, au: AccessUnit);
    /// A new piece of the camera's audio (sources without audio never call it).
    fn publish_audio(&self, chunk: AudioChunk) {
        let _ = chunk;
    }
    /// The source changed state; `error` is the reason for a `Reconnecting` state.
    fn set_state(&self, state: SourceState, error: Option<Error>);
}
