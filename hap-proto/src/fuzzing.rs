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

/// Camera TLVs: whatever decodes re-encodes to bytes that decode to the same value.
pub fn camera_tlv(data: &[u8]) {
    use crate::camera::{
        SelectedStreamConfig, SetupEndpointsRequest, SetupEndpointsResponse, SupportedAudioConfig,
        SupportedRtpConfig, SupportedVideoConfig,
    };
    macro_rules! round_trip {
        ($ty:ty) => {
            if let Ok(v) = <$ty>::decode(data) {
                let again = <$ty>::decode(&v.encode());
                assert_eq!(
                    again.as_ref(),
                    Ok(&v),
                    concat!(stringify!($ty), " round trip")
                );
            }
        };
    }
    round_trip!(SetupEndpointsRequest);
    round_trip!(SetupEndpointsResponse);
    round_trip!(SupportedVideoConfig);
    round_trip!(SupportedAudioConfig);
    round_trip!(SupportedRtpConfig);
    // Floats (the RTCP interval) may be NaN-free but -0.0 == 0.0: compare re-encodings instead.
    if let Ok(v) = SelectedStreamConfig::decode(data) {
        let once = v.encode();
        let twice = SelectedStreamConfig::decode(&once).map(|v| v.encode());
        assert_eq!(
            twice.as_deref(),
            Ok(&once[..]),
            "SelectedStreamConfig round trip"
        );
    }
}
