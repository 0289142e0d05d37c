//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`). Each checks the
//! invariants of one parser or state machine and panics when one is broken.

use crate::tlv8;

/// TLV8: whatever decodes re-encodes to bytes that decode to the same items.
pub fn tlv8_roundtrip(data: &[u8]) {
    let Ok(items) = tlv8::decode(data) else {
        return;
    };
    let encoded = items.encode();
    let again = tlv8::decode(&encoded);
    assert_eq!(
        again.as_ref(),
        Ok(&items),
        "TLV8 round trip changed the items"
    );
    for entry in items.split(0xFF).iter().chain(items.split(0x00).iter()) {
        let _ = entry.encode();
    }
}
