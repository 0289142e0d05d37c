//! Open newtype enums for the wire values of pairing TLVs (HAP §1.3-1.5): unknown values
//! round-trip, known ones print their names. And [`ItemType`], what names the type of an item.

/// The type of a TLV8 item, by name: what [`Items`](super::Items) are read by and what a
/// [`Writer`](super::Writer) writes. Pairing messages use [`TlvType`]; each camera message
/// has its own set of types, so that no call site spells a type as a bare number.
pub trait ItemType: Copy {
    /// The type byte on the wire.
    fn byte(self) -> u8;
}

impl ItemType for TlvType {
    fn byte(self) -> u8 {
        self.0
    }
}

macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $($(#[$vmeta])* pub const $variant: Self = Self($value);)*

            /// The name of a known value.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($value => Some(stringify!($variant)),)*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}(0x{:02x})", stringify!($name), self.0),
                }
            }
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                Self(value)
            }
        }
    };
}

open_enum! {
    /// A pairing TLV type (`kTLVType_*`, HAP §1.3).
    TlvType {
        /// Method (1 byte).
        METHOD = 0x00,
        /// Pairing identifier (UTF-8).
        IDENTIFIER = 0x01,
        /// SRP salt (16 bytes).
        SALT = 0x02,
        /// SRP, Curve25519 or Ed25519 public key.
        PUBLIC_KEY = 0x03,
        /// SRP proof (64 bytes).
        PROOF = 0x04,
        /// ChaCha20-Poly1305 ciphertext with its tag.
        ENCRYPTED_DATA = 0x05,
        /// Message number, 1 = M1.
        STATE = 0x06,
        /// `kTLVError` code.
        ERROR = 0x07,
        /// Seconds to wait (obsolete since R3).
        RETRY_DELAY = 0x08,
        /// X.509 certificate (MFi only).
        CERTIFICATE = 0x09,
        /// Ed25519 signature (64 bytes).
        SIGNATURE = 0x0A,
        /// Pairing permissions: 0 regular, 1 admin.
        PERMISSIONS = 0x0B,
        /// Obsolete BLE fragment.
        FRAGMENT_DATA = 0x0C,
        /// Obsolete BLE last fragment.
        FRAGMENT_LAST = 0x0D,
        /// BLE pair-resume session id.
        SESSION_ID = 0x0E,
        /// Pair-setup flags (uint32 LE, minimal bytes).
        FLAGS = 0x13,
        /// Zero-length list separator.
        SEPARATOR = 0xFF,
    }
}

open_enum! {
    /// A pairing error code (`kTLVError_*`, HAP §1.4).
    TlvError {
        /// Generic error.
        UNKNOWN = 0x01,
        /// Wrong setup code, bad signature, decryption failure, unknown controller, non-admin.
        AUTHENTICATION = 0x02,
        /// Obsolete: wait RetryDelay.
        BACKOFF = 0x03,
        /// Pairing storage is full.
        MAX_PEERS = 0x04,
        /// 100 or more failed setup-code attempts.
        MAX_TRIES = 0x05,
        /// Pair-setup while already paired.
        UNAVAILABLE = 0x06,
        /// Pair-setup already in progress with another controller.
        BUSY = 0x07,
    }
}

open_enum! {
    /// A pairing method (HAP §1.5).
    Method {
        /// Pair-setup.
        PAIR_SETUP = 0,
        /// Pair-setup with MFi authentication.
        PAIR_SETUP_WITH_AUTH = 1,
        /// Pair-verify.
        PAIR_VERIFY = 2,
        /// Add a pairing.
        ADD_PAIRING = 3,
        /// Remove a pairing.
        REMOVE_PAIRING = 4,
        /// List pairings.
        LIST_PAIRINGS = 5,
        /// BLE pair-resume.
        PAIR_RESUME = 6,
    }
}
