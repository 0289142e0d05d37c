//! Templates of the services the bridge exposes (HAP §6.6).
//!
//! Each function returns a [`Service`] with IIDs 0; [`super::AccessoryBuilder::add_service`]
//! assigns them. Type constants are the short forms of the Apple UUIDs.

use super::{Characteristic, Constraints, Format, Perms, Service, Unit, Value};

/// The strings of the Accessory Information service.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AccessoryInfo {
    /// Manufacturer (`20`).
    pub manufacturer: String,
    /// Model (`21`).
    pub model: String,
    /// Name (`23`).
    pub name: String,
    /// Serial Number (`30`), 2-64 bytes.
    pub serial_number: String,
    /// Firmware Revision (`52`), `x[.y[.z]]`.
    pub firmware_revision: String,
}

impl AccessoryInfo {
    /// The five strings, in the order of the fields.
    pub fn new(
        manufacturer: &str,
        model: &str,
        name: &str,
        serial_number: &str,
        firmware_revision: &str,
    ) -> Self {
        Self {
            manufacturer: manufacturer.to_owned(),
            model: model.to_owned(),
            name: name.to_owned(),
            serial_number: serial_number.to_owned(),
            firmware_revision: firmware_revision.to_owned(),
        }
    }
}

/// Accessory Information (`3E`): Identify (`14`, bool, pw only: no value in JSON), Manufacturer,
/// Model, Name, Serial Number, Firmware Revision (all strings, pr). It gets IID 1.
pub fn accessory_information(info: &AccessoryInfo) -> Service {
    let string = |ty: u32, s: &str| {
        Characteristic::new(ty, Format::String, Perms::PR, Value::String(s.to_owned()))
    };
    Service::new(
        ACCESSORY_INFORMATION,
        vec![
            Characteristic::new(IDENTIFY, Format::Bool, Perms::PW, Value::Bool(false)),
            string(MANUFACTURER, &info.manufacturer),
            string(MODEL, &info.model),
            string(NAME, &info.name),
            string(SERIAL_NUMBER, &info.serial_number),
            string(FIRMWARE_REVISION, &info.firmware_revision),
        ],
    )
}

/// HAP Protocol Information (`A2`) with Version (`37`) = `"1.1.0"`; only on aid 1 (§6.1).
pub fn protocol_information() -> Service {
    Service::new(
        PROTOCOL_INFORMATION,
        vec![Characteristic::new(
            VERSION,
            Format::String,
            Perms::PR,
            Value::String("1.1.0".to_owned()),
        )],
    )
}

/// Motion Sensor (`85`) with Motion Detected (`22`, bool, pr ev) = false.
pub fn motion_sensor() -> Service {
    Service::new(
        MOTION_SENSOR,
        vec![Characteristic::new(
            MOTION_DETECTED,
            Format::Bool,
            Perms::PR | Perms::EV,
            Value::Bool(false),
        )],
    )
}

/// Occupancy Sensor (`86`) with Occupancy Detected (`71`, uint8 0/1, pr ev) = 0.
pub fn occupancy_sensor() -> Service {
    Service::new(
        OCCUPANCY_SENSOR,
        vec![
            Characteristic::new(
                OCCUPANCY_DETECTED,
                Format::Uint8,
                Perms::PR | Perms::EV,
                Value::Uint(0),
            )
            .with_constraints(Constraints {
                valid_values: Some(vec![0, 1]),
                ..Constraints::range(0.0, 1.0, 1.0)
            }),
        ],
    )
}

/// Doorbell (`121`) with Programmable Switch Event (`73`, uint8 0-2 step 1, pr ev; reads
/// return `null`, every trigger is sent at once, §5.8). Mark it primary on a video doorbell.
pub fn doorbell() -> Service {
    Service::new(
        DOORBELL,
        vec![
            Characteristic::new(
                super::PROGRAMMABLE_SWITCH_EVENT,
                Format::Uint8,
                Perms::PR | Perms::EV,
                Value::Uint(0),
            )
            .with_constraints(Constraints::range(0.0, 2.0, 1.0)),
        ],
    )
}

/// The three read-only configuration TLVs of a camera (HAP §7.2-§7.4) and its initial
/// Streaming Status (§7.7), as TLV8 bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CameraConfig {
    /// Supported Video Stream Configuration (`114`).
    pub supported_video: Vec<u8>,
    /// Supported Audio Stream Configuration (`115`).
    pub supported_audio: Vec<u8>,
    /// Supported RTP Configuration (`116`).
    pub supported_rtp: Vec<u8>,
    /// Streaming Status (`120`), e.g. `01 01 00` = available.
    pub streaming_status: Vec<u8>,
}

/// Camera RTP Stream Management (`110`): `114`/`115`/`116` tlv8 pr, Selected RTP Stream
/// Configuration `117` and Setup Endpoints `118` tlv8 pr pw (empty until written), Streaming
/// Status `120` tlv8 pr ev, Active `B0` uint8 0/1 pr pw ev = 1.
pub fn camera_rtp_stream_management(config: &CameraConfig) -> Service {
    let tlv = |ty: u32, perms: Perms, v: &[u8]| {
        Characteristic::new(ty, Format::Tlv8, perms, Value::Tlv8(v.to_vec()))
    };
    Service::new(
        CAMERA_RTP_STREAM_MANAGEMENT,
        vec![
            tlv(
                SUPPORTED_VIDEO_STREAM_CONFIGURATION,
                Perms::PR,
                &config.supported_video,
            ),
            tlv(
                SUPPORTED_AUDIO_STREAM_CONFIGURATION,
                Perms::PR,
                &config.supported_audio,
            ),
            tlv(
                SUPPORTED_RTP_CONFIGURATION,
                Perms::PR,
                &config.supported_rtp,
            ),
            tlv(
                SELECTED_RTP_STREAM_CONFIGURATION,
                Perms::PR | Perms::PW,
                &[],
            ),
            tlv(SETUP_ENDPOINTS, Perms::PR | Perms::PW, &[]),
            tlv(
                STREAMING_STATUS,
                Perms::PR | Perms::EV,
                &config.streaming_status,
            ),
            Characteristic::new(
                ACTIVE,
                Format::Uint8,
                Perms::PR | Perms::PW | Perms::EV,
                Value::Uint(1),
            )
            .with_constraints(Constraints {
                valid_values: Some(vec![0, 1]),
                ..Constraints::range(0.0, 1.0, 1.0)
            }),
        ],
    )
}

/// Microphone (`112`): Mute (`11A`, bool pr pw ev) = false, and with `volume` Volume (`119`,
/// uint8 0-100 %, step 1, pr pw ev) = 100.
pub fn microphone(volume: bool) -> Service {
    let mut chars = vec![Characteristic::new(
        MUTE,
        Format::Bool,
        Perms::PR | Perms::PW | Perms::EV,
        Value::Bool(false),
    )];
    if volume {
        chars.push(
            Characteristic::new(
                VOLUME,
                Format::Uint8,
                Perms::PR | Perms::PW | Perms::EV,
                Value::Uint(100),
            )
            .with_constraints(Constraints::range(0.0, 100.0, 1.0))
            .with_unit(Unit::Percentage),
        );
    }
    Service::new(MICROPHONE, chars)
}

/// Accessory Information service (`3E`).
pub const ACCESSORY_INFORMATION: u32 = 0x3E;
/// HAP Protocol Information service (`A2`).
pub const PROTOCOL_INFORMATION: u32 = 0xA2;
/// Motion Sensor service (`85`).
pub const MOTION_SENSOR: u32 = 0x85;
/// Occupancy Sensor service (`86`).
pub const OCCUPANCY_SENSOR: u32 = 0x86;
/// Doorbell service (`121`).
pub const DOORBELL: u32 = 0x121;
/// Camera RTP Stream Management service (`110`).
pub const CAMERA_RTP_STREAM_MANAGEMENT: u32 = 0x110;
/// Microphone service (`112`).
pub const MICROPHONE: u32 = 0x112;

/// Identify (`14`).
pub const IDENTIFY: u32 = 0x14;
/// Manufacturer (`20`).
pub const MANUFACTURER: u32 = 0x20;
/// Model (`21`).
pub const MODEL: u32 = 0x21;
/// Name (`23`).
pub const NAME: u32 = 0x23;
/// Serial Number (`30`).
pub const SERIAL_NUMBER: u32 = 0x30;
/// Firmware Revision (`52`).
pub const FIRMWARE_REVISION: u32 = 0x52;
/// Version (`37`).
pub const VERSION: u32 = 0x37;
/// Motion Detected (`22`).
pub const MOTION_DETECTED: u32 = 0x22;
/// Occupancy Detected (`71`).
pub const OCCUPANCY_DETECTED: u32 = 0x71;
/// Supported Video Stream Configuration (`114`).
pub const SUPPORTED_VIDEO_STREAM_CONFIGURATION: u32 = 0x114;
/// Supported Audio Stream Configuration (`115`).
pub const SUPPORTED_AUDIO_STREAM_CONFIGURATION: u32 = 0x115;
/// Supported RTP Configuration (`116`).
pub const SUPPORTED_RTP_CONFIGURATION: u32 = 0x116;
/// Selected RTP Stream Configuration (`117`).
pub const SELECTED_RTP_STREAM_CONFIGURATION: u32 = 0x117;
/// Setup Endpoints (`118`).
pub const SETUP_ENDPOINTS: u32 = 0x118;
/// Streaming Status (`120`).
pub const STREAMING_STATUS: u32 = 0x120;
/// Active (`B0`).
pub const ACTIVE: u32 = 0xB0;
/// Mute (`11A`).
pub const MUTE: u32 = 0x11A;
/// Volume (`119`).
pub const VOLUME: u32 = 0x119;
