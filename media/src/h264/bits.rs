//! Reading the RBSP of a NAL unit (emulation prevention removed) bit by bit (H.264 §7.2).

/// Error parsing an SPS (and the error of every `BitReader` read: the SPS parser is its main
/// user; the slice header reader maps it to `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpsError {
    /// The NAL unit is empty or not of type 7.
    #[error("not an SPS NAL unit")]
    NotAnSps,
    /// The RBSP ended inside the named field.
    #[error("SPS truncated in {0}")]
    Truncated(&'static str),
    /// The named field has a value outside its range.
    #[error("SPS field {0} out of range")]
    OutOfRange(&'static str),
}

/// MSB-first bit reader with Exp-Golomb codes (H.264 §9.1).
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    bit: usize,
}

impl<'a> BitReader<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Self { data, bit: 0 }
    }

    pub(super) fn bit(&mut self, field: &'static str) -> Result<u32, SpsError> {
        let byte = self
            .data
            .get(self.bit / 8)
            .ok_or(SpsError::Truncated(field))?;
        let v = (byte >> (7 - self.bit % 8)) & 1;
        self.bit = self.bit.saturating_add(1);
        Ok(u32::from(v))
    }

    pub(super) fn bits(&mut self, n: u32, field: &'static str) -> Result<u32, SpsError> {
        let mut v = 0u32;
        for _ in 0..n {
            v = (v << 1) | self.bit(field)?;
        }
        Ok(v)
    }

    pub(super) fn u8(&mut self, field: &'static str) -> Result<u8, SpsError> {
        // Eight bits always fit in a u8.
        u8::try_from(self.bits(8, field)?).map_err(|_| SpsError::OutOfRange(field))
    }

    pub(super) fn flag(&mut self, field: &'static str) -> Result<bool, SpsError> {
        Ok(self.bit(field)? == 1)
    }

    /// ue(v); values needing more than 31 leading zeros are rejected.
    pub(super) fn ue(&mut self, field: &'static str) -> Result<u32, SpsError> {
        let mut zeros = 0u32;
        while self.bit(field)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return Err(SpsError::OutOfRange(field));
            }
        }
        let rest = self.bits(zeros, field)?;
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).map_err(|_| SpsError::OutOfRange(field))
    }

    /// se(v) (H.264 §9.1.1).
    pub(super) fn se(&mut self, field: &'static str) -> Result<i64, SpsError> {
        let k = i64::from(self.ue(field)?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}
