//! Sequence parameter set parsing (H.264 §7.3.2.1.1) up to the frame cropping fields, and the
//! passthrough decision built on it.
#![deny(clippy::indexing_slicing)]

use super::bits::{BitReader, SpsError};
use super::nal::{NalType, nal_type, remove_emulation_prevention};

/// The SPS fields the bridge uses: codec string fields and the displayed picture size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsInfo {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The byte of `constraint_set0..5_flag` and the two reserved bits, as in `profile-level-id`.
    pub constraint_flags: u8,
    /// `level_idc` (31 = level 3.1, ...).
    pub level_idc: u8,
    /// Displayed width in pixels, after frame cropping.
    pub width: u32,
    /// Displayed height in pixels, after frame cropping.
    pub height: u32,
}

/// The H.264 profiles a controller negotiates, in increasing order of decoder capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum H264Profile {
    /// Constrained Baseline.
    ConstrainedBaseline,
    /// Main.
    Main,
    /// High.
    High,
}

impl H264Profile {
    /// `profile_idc` and constraint flags an encoder would write for this profile
    /// (Constrained Baseline = 66 with constraint_set0 and constraint_set1, RFC 6184 §8.1 table 5).
    pub fn profile_idc_and_constraints(self) -> (u8, u8) {
        match self {
            Self::ConstrainedBaseline => (66, 0xc0),
            Self::Main => (77, 0x40),
            Self::High => (100, 0x00),
        }
    }
}

impl SpsInfo {
    /// The smallest of these profiles a decoder needs for this stream, or `None` when the stream
    /// needs more than High (High 10, 4:2:2, 4:4:4, ...).
    ///
    /// Main with constraint_set0 and Extended with constraint_set0 + constraint_set1 are
    /// Constrained Baseline streams (RFC 6184 §8.1 table 5). Plain Baseline (66 without
    /// constraint_set1) counts as Constrained Baseline too: cameras do not use its extra tools
    /// (FMO, ASO, redundant slices) in practice.
    pub fn min_profile(&self) -> Option<H264Profile> {
        let cs0 = self.constraint_flags & 0x80 != 0;
        let cs1 = self.constraint_flags & 0x40 != 0;
        match self.profile_idc {
            66 => Some(H264Profile::ConstrainedBaseline),
            77 if cs0 => Some(H264Profile::ConstrainedBaseline),
            88 if cs0 && cs1 => Some(H264Profile::ConstrainedBaseline),
            77 => Some(H264Profile::Main),
            100 => Some(H264Profile::High),
            _ => None,
        }
    }

    /// The `profile-level-id` SDP value of this stream (RFC 6184 §8.1), e.g. `42e01f`.
    pub fn profile_level_id(&self) -> String {
        super::profile_level_id(self.profile_idc, self.constraint_flags, self.level_idc)
    }
}

/// Whether a stream with this SPS can be passed through for a request of `width` x `height` at
/// most `max_profile`: its picture is no larger than requested and its profile is no higher.
pub fn fits(sps: &SpsInfo, width: u32, height: u32, max_profile: H264Profile) -> bool {
    sps.width <= width
        && sps.height <= height
        && sps.min_profile().is_some_and(|p| p <= max_profile)
}

/// Parses an SPS NAL unit (with its one-byte NAL header, without start code).
pub fn parse_sps(nal: &[u8]) -> Result<SpsInfo, SpsError> {
    if nal_type(nal) != Some(NalType::SPS) {
        return Err(SpsError::NotAnSps);
    }
    let rbsp = remove_emulation_prevention(nal.get(1..).unwrap_or_default());
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.u8("profile_idc")?;
    let constraint_flags = r.u8("constraint_flags")?;
    let level_idc = r.u8("level_idc")?;
    let sps_id = r.ue("seq_parameter_set_id")?;
    if sps_id > 31 {
        return Err(SpsError::OutOfRange("seq_parameter_set_id"));
    }

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue("chroma_format_idc")?;
        if chroma_format_idc > 3 {
            return Err(SpsError::OutOfRange("chroma_format_idc"));
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag("separate_colour_plane_flag")?;
        }
        let _bit_depth_luma_minus8 = r.ue("bit_depth_luma_minus8")?;
        let _bit_depth_chroma_minus8 = r.ue("bit_depth_chroma_minus8")?;
        let _qpprime_y_zero_transform_bypass = r.flag("qpprime_y_zero_transform_bypass_flag")?;
        if r.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    let _log2_max_frame_num_minus4 = r.ue("log2_max_frame_num_minus4")?;
    match r.ue("pic_order_cnt_type")? {
        0 => {
            let _ = r.ue("log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            let _delta_pic_order_always_zero = r.flag("delta_pic_order_always_zero_flag")?;
            let _ = r.se("offset_for_non_ref_pic")?;
            let _ = r.se("offset_for_top_to_bottom_field")?;
            let cycle = r.ue("num_ref_frames_in_pic_order_cnt_cycle")?;
            if cycle > 255 {
                return Err(SpsError::OutOfRange(
                    "num_ref_frames_in_pic_order_cnt_cycle",
                ));
            }
            for _ in 0..cycle {
                let _ = r.se("offset_for_ref_frame")?;
            }
        }
        2 => {}
        _ => return Err(SpsError::OutOfRange("pic_order_cnt_type")),
    }
    let _max_num_ref_frames = r.ue("max_num_ref_frames")?;
    let _gaps = r.flag("gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = r.ue("pic_width_in_mbs_minus1")?.saturating_add(1);
    let height_map_units = r.ue("pic_height_in_map_units_minus1")?.saturating_add(1);
    let frame_mbs_only = r.flag("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        let _mb_adaptive_frame_field = r.flag("mb_adaptive_frame_field_flag")?;
    }
    let _direct_8x8_inference = r.flag("direct_8x8_inference_flag")?;
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0, 0, 0, 0);
    if r.flag("frame_cropping_flag")? {
        crop_left = r.ue("frame_crop_left_offset")?;
        crop_right = r.ue("frame_crop_right_offset")?;
        crop_top = r.ue("frame_crop_top_offset")?;
        crop_bottom = r.ue("frame_crop_bottom_offset")?;
    }

    // H.264 §7.4.2.1.1 (7-18..7-21) and Table 6-1.
    let field_factor: u32 = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let full_width = width_mbs.checked_mul(16).filter(|&w| w <= MAX_DIMENSION);
    let full_height = height_map_units
        .checked_mul(16 * field_factor)
        .filter(|&h| h <= MAX_DIMENSION);
    let (Some(full_width), Some(full_height)) = (full_width, full_height) else {
        return Err(SpsError::OutOfRange("picture size"));
    };
    let crop_x = crop_left
        .checked_add(crop_right)
        .and_then(|c| c.checked_mul(crop_unit_x))
        .filter(|&c| c < full_width)
        .ok_or(SpsError::OutOfRange("frame cropping"))?;
    let crop_y = crop_top
        .checked_add(crop_bottom)
        .and_then(|c| c.checked_mul(crop_unit_y))
        .filter(|&c| c < full_height)
        .ok_or(SpsError::OutOfRange("frame cropping"))?;

    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width: full_width - crop_x,
        height: full_height - crop_y,
    })
}

/// scaling_list() of H.264 §7.3.2.1.1.1, read and discarded.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), SpsError> {
    let mut last: i64 = 8;
    let mut next: i64 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return Err(SpsError::OutOfRange("delta_scale"));
            }
            next = (last + delta + 256).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Largest picture dimension accepted (pixels); H.264 level 6.2 allows 8192 x 4320 at most.
const MAX_DIMENSION: u32 = 16_384;

#[cfg(test)]
mod tests;
