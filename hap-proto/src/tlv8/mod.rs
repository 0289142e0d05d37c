//! TLV8, the type-length-value encoding of HAP pairing and camera messages (HAP §1).
//!
//! An item is `type (1 B) | length (1 B) | value`. Values longer than 255 bytes travel as
//! consecutive fragments of the same type, every fragment but the last exactly 255 bytes
//! (§1.1). Two adjacent items of the same type that are not fragments of one value form a list
//! and are separated by an empty separator item: `FF 00` in pairing messages, `00 00` in camera
//! messages (§1.2).
//!
//! Items are read and written by a named type, an [`ItemType`]: the pairing types are
//! [`TlvType`]; each camera message names its own.
//!
//! ```
//! use hap_proto::tlv8::{self, TlvType, Writer};
//! let mut w = Writer::new();
//! w.put_u8(TlvType::STATE, 2).put(TlvType::PUBLIC_KEY, &[7u8; 300]);
//! let bytes = w.into_vec();
//! assert_eq!(bytes.len(), 3 + 2 + 255 + 2 + 45);
//! let items = tlv8::decode(&bytes).unwrap();
//! assert_eq!(items.get(TlvType::PUBLIC_KEY).map(<[u8]>::len), Some(300));
//! ```
#![deny(clippy::indexing_slicing)]

mod types;

use std::borrow::Cow;

pub use types::{ItemType, Method, TlvError, TlvType};

use crate::decode_error::{DecodeError, DecodeErrorKind};

/// One decoded item, its fragments merged. The value borrows the input unless it was fragmented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item<'a> {
    /// The item's type byte.
    pub ty: u8,
    /// The item's value.
    pub value: Cow<'a, [u8]>,
}

impl Item<'_> {
    /// Whether the item is of type `ty`.
    pub fn is(&self, ty: impl ItemType) -> bool {
        self.ty == ty.byte()
    }
}

/// The items of one TLV8 message, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Items<'a> {
    items: Vec<Item<'a>>,
}

/// Decodes a whole TLV8 message, merging fragments (§1.2).
///
/// Rejects a truncated header or value and a zero-length continuation fragment. Two adjacent
/// items of the same type where the first is shorter than 255 bytes are kept as two items (a
/// list without separator, as HAP-python writes camera lists).
pub fn decode(buf: &[u8]) -> Result<Items<'_>, DecodeError> {
    let mut items: Vec<Item<'_>> = Vec::new();
    // Length of the previous fragment (not of the merged value), to apply the 255 rule.
    let mut last_fragment_len: Option<usize> = None;
    let mut pos = 0usize;
    while pos < buf.len() {
        let header = buf
            .get(pos..pos + 2)
            .ok_or_else(|| DecodeError::new(pos, "TLV8 item header", DecodeErrorKind::Truncated))?;
        let (ty, len) = match header {
            [ty, len] => (*ty, usize::from(*len)),
            _ => {
                return Err(DecodeError::new(
                    pos,
                    "TLV8 item header",
                    DecodeErrorKind::Truncated,
                ));
            }
        };
        let start = pos + 2;
        let value = buf.get(start..start + len).ok_or_else(|| {
            DecodeError::new(start, "TLV8 item value", DecodeErrorKind::Truncated)
        })?;
        let continues = match (items.last(), last_fragment_len) {
            (Some(prev), Some(FRAGMENT_MAX)) => prev.ty == ty,
            _ => false,
        };
        if continues {
            if len == 0 {
                return Err(DecodeError::new(
                    pos,
                    "TLV8 continuation fragment",
                    DecodeErrorKind::EmptyContinuation,
                ));
            }
            if let Some(prev) = items.last_mut() {
                prev.value.to_mut().extend_from_slice(value);
            }
        } else {
            items.push(Item {
                ty,
                value: Cow::Borrowed(value),
            });
        }
        last_fragment_len = Some(len);
        pos = start + len;
    }
    Ok(Items { items })
}

impl<'a> Items<'a> {
    /// All items in wire order.
    pub fn iter(&self) -> impl Iterator<Item = &Item<'a>> {
        self.items.iter()
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The value of the first item of type `ty`.
    pub fn get(&self, ty: impl ItemType) -> Option<&[u8]> {
        let ty = ty.byte();
        self.items.iter().find(|i| i.ty == ty).map(|i| &*i.value)
    }

    /// The values of every item of type `ty`, in wire order (the entries of a list; separators
    /// are of another type and not included).
    pub(crate) fn all(&self, ty: impl ItemType) -> impl Iterator<Item = &[u8]> {
        let ty = ty.byte();
        self.items
            .iter()
            .filter(move |i| i.ty == ty)
            .map(|i| &*i.value)
    }

    /// The value of the item of type `ty`, which must appear at most once.
    pub fn get_unique(&self, ty: impl ItemType) -> Result<Option<&[u8]>, DecodeError> {
        let ty = ty.byte();
        let mut found = None;
        for (index, item) in self.items.iter().enumerate() {
            if item.ty == ty {
                if found.is_some() {
                    return Err(DecodeError::new(
                        index,
                        "TLV8 item",
                        DecodeErrorKind::Duplicate,
                    ));
                }
                found = Some(&*item.value);
            }
        }
        Ok(found)
    }

    /// The value of the first item of type `ty` as a one-byte integer.
    pub fn get_u8(&self, ty: impl ItemType) -> Option<u8> {
        match self.get(ty) {
            Some([b]) => Some(*b),
            _ => None,
        }
    }

    /// The value of the first item of type `ty` as a little-endian unsigned integer of 1..=8
    /// bytes (HAP §1.1: multi-byte integers are little-endian).
    pub fn get_uint_le(&self, ty: impl ItemType) -> Option<u64> {
        let value = self.get(ty)?;
        if value.is_empty() || value.len() > 8 {
            return None;
        }
        Some(
            value
                .iter()
                .rev()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
    }

    /// Splits the items into list entries at every separator item of type `separator` (`0xFF`
    /// for pairing lists, `0x00` for camera lists). The separators themselves are dropped.
    pub fn split(&self, separator: impl ItemType) -> Vec<Self> {
        let separator = separator.byte();
        let mut out = vec![Self::default()];
        for item in &self.items {
            if item.ty == separator && item.value.is_empty() {
                out.push(Self::default());
            } else if let Some(current) = out.last_mut() {
                current.items.push(item.clone());
            }
        }
        out
    }

    /// Encodes the items again (fragmenting long values). Adjacent items of one type are written
    /// back to back, so a decoded list round-trips.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        for item in &self.items {
            w.put_byte(item.ty, &item.value);
        }
        w.into_vec()
    }
}

impl<'a> IntoIterator for Items<'a> {
    type Item = Item<'a>;
    type IntoIter = std::vec::IntoIter<Item<'a>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// Builds a TLV8 message.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an item, split into 255-byte fragments when longer (§1.1). An empty value is one
    /// item of length zero; a value whose length is a multiple of 255 ends with a full fragment.
    pub fn put(&mut self, ty: impl ItemType, value: &[u8]) -> &mut Self {
        self.put_byte(ty.byte(), value)
    }

    /// [`Writer::put`] with the type as its wire byte, for items copied from a decoded message.
    fn put_byte(&mut self, ty: u8, value: &[u8]) -> &mut Self {
        if value.is_empty() {
            self.buf.extend_from_slice(&[ty, 0]);
            return self;
        }
        for chunk in value.chunks(FRAGMENT_MAX) {
            // `chunks(255)` yields at most 255 bytes, so the length fits in a u8.
            let len = u8::try_from(chunk.len()).unwrap_or(u8::MAX);
            self.buf.push(ty);
            self.buf.push(len);
            self.buf.extend_from_slice(chunk);
        }
        self
    }

    /// Appends a one-byte integer item.
    pub fn put_u8(&mut self, ty: impl ItemType, value: u8) -> &mut Self {
        self.put(ty, &[value])
    }

    /// Appends an unsigned integer little-endian in the minimal number of bytes (at least one),
    /// as pairing Flags are written (§1.1).
    pub fn put_uint_le_minimal(&mut self, ty: impl ItemType, value: u64) -> &mut Self {
        let bytes = value.to_le_bytes();
        let used = (8 - (value.leading_zeros() / 8) as usize).max(1);
        self.put(ty, bytes.get(..used).unwrap_or(&bytes))
    }

    /// Appends an empty separator item of type `ty` (`0xFF` pairing, `0x00` camera).
    pub fn separator(&mut self, ty: impl ItemType) -> &mut Self {
        self.put(ty, &[])
    }

    /// Appends bytes that are already TLV8-encoded (a nested message).
    pub fn put_raw(&mut self, encoded: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(encoded);
        self
    }

    /// The encoded length so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The encoded message.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// The largest fragment of a TLV8 value (§1.1).
pub const FRAGMENT_MAX: usize = 255;

#[cfg(test)]
mod tests;
