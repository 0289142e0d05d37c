//! H.264 bitstream helpers (ITU-T H.264): NAL unit framing, access-unit grouping and the sequence
//! parameter set fields the bridge needs to decide between passthrough and re-encoding.
//!
//! Everything here is pure: it works on byte slices and [`Bytes`](bytes::Bytes) and never
//! allocates more than the NAL list it returns.

mod access_unit;
mod bits;
mod nal;
mod sdp;
mod slice;
mod sps;

pub use access_unit::AccessUnitSplitter;
pub use bits::SpsError;
pub use nal::{
    AnnexBNals, AvccError, NalType, annex_b_nals, annex_b_to_bytes, avcc_nals, nal_type,
    remove_emulation_prevention,
};
pub use sdp::{SpropError, parse_sprop_parameter_sets, profile_level_id, sprop_parameter_sets};
pub use slice::{has_b_slice, slice_type};
pub use sps::{H264Profile, SpsInfo, fits, parse_sps};
