//! Open newtype enums of the camera TLVs (HAP §7).

macro_rules! camera_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $($(#[$vmeta])* pub const $variant: Self = Self($value);)*
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.0 {
                    $($value => f.write_str(stringify!($variant)),)*
                    other => write!(f, "{}({})", stringify!($name), other),
                }
            }
        }
    };
}

camera_enum! {
    /// Video codec type (§7.2).
    VideoCodecType { /// H.264.
    H264 = 0, /// H.265 (not used for live streaming).
    H265 = 1, }
}

camera_enum! {
    /// H.264 profile (§7.2).
    H264Profile { /// Constrained Baseline.
    CONSTRAINED_BASELINE = 0, /// Main.
    MAIN = 1, /// High.
    HIGH = 2, }
}

camera_enum! {
    /// H.264 level (§7.2).
    H264Level { /// Level 3.1.
    L3_1 = 0, /// Level 3.2.
    L3_2 = 1, /// Level 4.0.
    L4_0 = 2, }
}

camera_enum! {
    /// SRTP crypto suite (§7.4).
    SrtpCryptoSuite { /// AES_CM_128_HMAC_SHA1_80.
    AES_CM_128_HMAC_SHA1_80 = 0, /// AES_256_CM_HMAC_SHA1_80.
    AES_256_CM_HMAC_SHA1_80 = 1, /// Unencrypted.
    NONE = 2, }
}

camera_enum! {
    /// Audio codec type (§7.3).
    AudioCodecType { /// G.711 µ-law.
    PCMU = 0, /// G.711 A-law.
    PCMA = 1, /// AAC-ELD.
    AAC_ELD = 2, /// Opus.
    OPUS = 3, /// mSBC.
    MSBC = 4, /// AMR.
    AMR = 5, /// AMR-WB.
    AMR_WB = 6, }
}

camera_enum! {
    /// Audio bit-rate mode (§7.3).
    BitrateMode { /// Variable bit rate.
    VARIABLE = 0, /// Constant bit rate.
    CONSTANT = 1, }
}

camera_enum! {
    /// Audio sample rate (§7.3).
    AudioSampleRate { /// 8 kHz.
    KHZ_8 = 0, /// 16 kHz.
    KHZ_16 = 1, /// 24 kHz.
    KHZ_24 = 2, }
}

camera_enum! {
    /// Session command of a Selected RTP Stream Configuration (§7.6).
    SessionCommand { /// End the session.
    END = 0, /// Start streaming.
    START = 1, /// Suspend.
    SUSPEND = 2, /// Resume.
    RESUME = 3, /// Reconfigure size, rate or bit rate.
    RECONFIGURE = 4, }
}

camera_enum! {
    /// Status in a Setup Endpoints response (§7.5).
    SetupStatus { /// Success.
    SUCCESS = 0, /// Busy.
    BUSY = 1, /// Error.
    ERROR = 2, }
}

camera_enum! {
    /// Streaming Status (§7.7).
    StreamingStatus { /// Available.
    AVAILABLE = 0, /// In use.
    IN_USE = 1, /// Unavailable.
    UNAVAILABLE = 2, }
}
