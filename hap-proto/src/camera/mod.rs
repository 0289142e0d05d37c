//! Camera RTP stream management TLVs (HAP §7), one module per characteristic: the capabilities
//! the accessory advertises (Supported Video 114, Audio 115 and RTP 116 Configuration), Setup
//! Endpoints (118), Selected RTP Stream Configuration (117) and Streaming Status (120). Each
//! message names its TLV types in an enum of its own. Lists inside these TLVs are separated by
//! `00 00` (§1.2); decoders also accept entries written back to back.
//!
//! These are plain data types with `encode`/`decode`; mapping them to media parameters is the
//! bridge's job (`src/camera/negotiate.rs`).
#![deny(clippy::indexing_slicing)]

pub(crate) mod audio_config;
mod fields;
pub(crate) mod rtp_config;
pub(crate) mod selected_stream;
pub(crate) mod setup_endpoints;
pub(crate) mod streaming_status;
mod types;
pub(crate) mod video_config;

pub use audio_config::{AudioCodecConfig, SupportedAudioConfig};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use fields::ListSeparator;
pub use rtp_config::SupportedRtpConfig;
pub use selected_stream::{RtpParams, SelectedAudio, SelectedStreamConfig, SelectedVideo};
pub use setup_endpoints::{
    EndpointAddress, SetupEndpointsRequest, SetupEndpointsResponse, SrtpParams,
};
pub use streaming_status::{decode_streaming_status, encode_streaming_status};
pub use types::{
    AudioCodecType, AudioSampleRate, BitrateMode, H264Level, H264Profile, SessionCommand,
    SetupStatus, SrtpCryptoSuite, StreamingStatus, VideoCodecType,
};
pub use video_config::{SupportedVideoConfig, VideoAttributes, VideoCodecConfig};

#[cfg(test)]
mod tests;
