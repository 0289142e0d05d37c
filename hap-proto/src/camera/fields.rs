//! What the camera messages share: how their TLV types are declared, the `00 00` list
//! separator (HAP §1.2) and the readers of required and optional fields that name the field in
//! their errors.

use crate::error::{DecodeError, DecodeErrorKind};
use crate::tlv8::{ItemType, Items, Writer};

/// Declares the TLV types of one camera message as an enum of named wire values that
/// [`Items`] and [`Writer`] accept.
macro_rules! item_types {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum $name {
            $($(#[$vmeta])* $variant = $value,)*
        }

        impl crate::tlv8::ItemType for $name {
            fn byte(self) -> u8 {
                self as u8
            }
        }
    };
}
pub(super) use item_types;

/// The type of the empty item between the entries of a camera list (`00 00`, HAP §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ListSeparator;

impl ItemType for ListSeparator {
    fn byte(self) -> u8 {
        0x00
    }
}

/// Writes `entries` as items of type `ty` with `00 00` between them.
pub(super) fn put_list(w: &mut Writer, ty: impl ItemType, entries: &[Vec<u8>]) {
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            w.separator(ListSeparator);
        }
        w.put(ty, e);
    }
}

/// Writes one-byte `values` as items of type `ty` with `00 00` between them.
pub(super) fn put_list_u8(w: &mut Writer, ty: impl ItemType, values: impl Iterator<Item = u8>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            w.separator(ListSeparator);
        }
        w.put_u8(ty, v);
    }
}

/// Every one-byte value of type `ty`, separators ignored.
pub(super) fn list_u8(
    items: &Items<'_>,
    ty: impl ItemType,
    context: &'static str,
) -> Result<Vec<u8>, DecodeError> {
    items
        .all(ty)
        .map(|v| match v {
            [b] => Ok(*b),
            _ => Err(invalid(context)),
        })
        .collect()
}

/// The value of the required item `ty`.
pub(super) fn req<'i>(
    items: &'i Items<'_>,
    ty: impl ItemType,
    context: &'static str,
) -> Result<&'i [u8], DecodeError> {
    items.get(ty).ok_or_else(|| missing(context))
}

/// The required one-byte item `ty`.
pub(super) fn req_u8(
    items: &Items<'_>,
    ty: impl ItemType,
    context: &'static str,
) -> Result<u8, DecodeError> {
    match items.get(ty) {
        Some([b]) => Ok(*b),
        Some(_) => Err(invalid(context)),
        None => Err(missing(context)),
    }
}

/// The required little-endian `u16` item `ty`.
pub(super) fn req_u16(
    items: &Items<'_>,
    ty: impl ItemType,
    context: &'static str,
) -> Result<u16, DecodeError> {
    opt_u16(items, ty, context)?.ok_or_else(|| missing(context))
}

/// The optional little-endian `u16` item `ty`.
pub(super) fn opt_u16(
    items: &Items<'_>,
    ty: impl ItemType,
    context: &'static str,
) -> Result<Option<u16>, DecodeError> {
    match items.get(ty) {
        Some(&[a, b]) => Ok(Some(u16::from_le_bytes([a, b]))),
        Some(_) => Err(invalid(context)),
        None => Ok(None),
    }
}

/// The optional little-endian `u32` item `ty`.
pub(super) fn opt_u32(
    items: &Items<'_>,
    ty: impl ItemType,
    context: &'static str,
) -> Result<Option<u32>, DecodeError> {
    match items.get(ty) {
        Some(&[a, b, c, d]) => Ok(Some(u32::from_le_bytes([a, b, c, d]))),
        Some(_) => Err(invalid(context)),
        None => Ok(None),
    }
}

/// The required 16-byte session id `ty` (a raw UUID).
pub(super) fn session_id(items: &Items<'_>, ty: impl ItemType) -> Result<[u8; 16], DecodeError> {
    items
        .get(ty)
        .ok_or_else(|| missing("session id"))?
        .try_into()
        .map_err(|_| invalid("session id"))
}

/// A required field is absent.
pub(super) fn missing(context: &'static str) -> DecodeError {
    DecodeError::new(0, context, DecodeErrorKind::Truncated)
}

/// A field's value is not of its form or out of range.
pub(super) fn invalid(context: &'static str) -> DecodeError {
    DecodeError::new(0, context, DecodeErrorKind::InvalidValue)
}
