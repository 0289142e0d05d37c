//! What the camera glue needs of the HAP server its accessory lives in, as a trait the camera
//! module owns: the server (`hap`) implements it, so `camera` never names the server's types and
//! the dependency points one way (`hap -> camera`).

use std::net::SocketAddr;
use std::sync::Arc;

use hap_proto::db::{CharId, HapStatus, Value};

use super::CameraRuntime;

/// A HAP server as seen by its cameras and sensors.
pub(crate) trait CameraHost: Send + Sync {
    /// Sets a characteristic from the bridge side and notifies subscribed connections; `true`
    /// when the value changed.
    fn set_value(&self, id: CharId, value: Value) -> Result<bool, HapStatus>;

    /// Whether this server routes `cam`'s accessory to `cam` now (a runtime replaced by a
    /// camera change must not write over what its successor says).
    fn serves(&self, cam: &CameraRuntime) -> bool;
}

/// Where a write or snapshot request came from.
pub(crate) struct RequestOrigin {
    /// The server the connection belongs to.
    pub(crate) host: Arc<dyn CameraHost>,
    /// The connection id.
    pub(crate) conn: u64,
    /// Our address of the connection (the interface the controller reached us on).
    pub(crate) local: SocketAddr,
    /// The controller's address.
    pub(crate) peer: SocketAddr,
}
