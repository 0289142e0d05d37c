//! The camera list as the bridge knows it, without I/O: where each camera is defined, the
//! checks a whole list must pass, the edits the admin API makes, and what changed between two
//! lists. The server set ([`crate::servers`]) applies a list to the running servers and
//! persists it.
//!
//! Cameras come from two places: the configuration file's `[[cameras]]` ([`Origin::Config`],
//! read-only through the API: edit the file and restart) and the admin API ([`Origin::Api`],
//! kept in the state store, surviving restarts). Ids are unique across both; a configuration
//! camera shadows a stored one with the same id (logged at start).

use std::collections::BTreeMap;

use crate::config::{CameraMode, CameraSettings, Config, ConfigError, MAX_BRIDGED_CAMERAS};

/// Where a camera is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Origin {
    /// The configuration file's `[[cameras]]`: read-only through the API.
    Config,
    /// Added through the admin API, kept in the state store.
    Api,
}

/// A camera and where it is defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CameraEntry {
    /// The camera.
    pub(crate) config: CameraSettings,
    /// Where it comes from.
    pub(crate) origin: Origin,
}

/// What changed for HomeKit between two camera lists (disabled cameras count as absent).
#[derive(Debug, Default)]
pub(crate) struct CameraChanges {
    /// Cameras now exposed that were not.
    pub(crate) added: Vec<CameraSettings>,
    /// Exposed before and after, with a different configuration: (before, after).
    pub(crate) changed: Vec<(CameraSettings, CameraSettings)>,
    /// Exposed before, not any more (deleted or disabled).
    pub(crate) removed: Vec<CameraSettings>,
}

/// A refused or failed camera change; the message names the field where there is one.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CameraError {
    /// No camera with this id (404).
    #[error("id: no camera {0:?}")]
    NotFound(String),
    /// The camera comes from the configuration file (409).
    #[error("id: camera {0:?} is defined in the configuration file; edit the file and restart")]
    ReadOnly(String),
    /// The change conflicts with another camera or the bridge (409).
    #[error("{field}: {message}")]
    Conflict {
        /// The field.
        field: &'static str,
        /// Why.
        message: String,
    },
    /// A field is not acceptable (422).
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// The change could not be applied or persisted (500); nothing was persisted.
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// The cameras to start with: the configuration file's, then `stored` (id and JSON, as kept in
/// the state store by [`stored_json`]). A stored camera that is unreadable, invalid or shadowed
/// by a configuration camera with the same id is skipped with a warning (and left in the store).
pub(crate) fn load(config: &Config, stored: Vec<(String, String)>) -> Vec<CameraEntry> {
    let mut out: Vec<CameraEntry> = config
        .cameras
        .iter()
        .map(|c| CameraEntry {
            config: c.clone(),
            origin: Origin::Config,
        })
        .collect();
    for (id, json) in stored {
        let camera = match serde_json::from_str::<CameraSettings>(&json) {
            Ok(camera) if camera.id == id => camera,
            Ok(_) => {
                tracing::warn!(camera = %id, "stored camera has another id inside: skipped");
                continue;
            }
            Err(e) => {
                tracing::warn!(camera = %id, error = %e, "stored camera is unreadable: skipped");
                continue;
            }
        };
        if out.iter().any(|c| c.config.id == id) {
            tracing::warn!(camera = %id, "a camera in the configuration file has the id of one added through the API: the file's is used");
            continue;
        }
        out.push(CameraEntry {
            config: camera,
            origin: Origin::Api,
        });
        if let Err(e) = check(&out, config.bridge.port) {
            tracing::warn!(camera = %id, error = %e, "stored camera is not valid with the others: skipped");
            out.pop();
        }
    }
    out
}

/// A camera as the state store keeps it.
pub(crate) fn stored_json(camera: &CameraSettings) -> anyhow::Result<String> {
    Ok(serde_json::to_string(camera)?)
}

/// `list` with `camera` added through the API (its id must be new).
pub(crate) fn with_added(
    list: &[CameraEntry],
    camera: CameraSettings,
) -> Result<Vec<CameraEntry>, CameraError> {
    if list.iter().any(|c| c.config.id == camera.id) {
        return Err(CameraError::Conflict {
            field: "id",
            message: format!("a camera {:?} exists already", camera.id),
        });
    }
    let mut next = list.to_vec();
    next.push(CameraEntry {
        config: camera,
        origin: Origin::Api,
    });
    Ok(next)
}

/// `list` with the API camera `id` replaced by what `edit` makes of it (its id must stay).
pub(crate) fn with_updated(
    list: &[CameraEntry],
    id: &str,
    edit: impl FnOnce(&CameraSettings) -> Result<CameraSettings, CameraError>,
) -> Result<(Vec<CameraEntry>, CameraSettings), CameraError> {
    let mut next = list.to_vec();
    let entry = next
        .iter_mut()
        .find(|c| c.config.id == id)
        .ok_or_else(|| CameraError::NotFound(id.to_owned()))?;
    if entry.origin == Origin::Config {
        return Err(CameraError::ReadOnly(id.to_owned()));
    }
    let camera = edit(&entry.config)?;
    entry.config = camera.clone();
    Ok((next, camera))
}

/// `list` without the API camera `id`, and the camera removed.
pub(crate) fn without(
    list: &[CameraEntry],
    id: &str,
) -> Result<(Vec<CameraEntry>, CameraSettings), CameraError> {
    let mut next = list.to_vec();
    let at = next
        .iter()
        .position(|c| c.config.id == id)
        .ok_or_else(|| CameraError::NotFound(id.to_owned()))?;
    if next.get(at).is_some_and(|c| c.origin == Origin::Config) {
        return Err(CameraError::ReadOnly(id.to_owned()));
    }
    let removed = next.remove(at);
    Ok((next, removed.config))
}

/// Checks a whole camera list: each camera's fields, unique ids, ports not used twice (nor the
/// bridge's), and how many cameras a bridge may hold.
pub(crate) fn check(cameras: &[CameraEntry], bridge_port: u16) -> Result<(), CameraError> {
    let mut ports = BTreeMap::new();
    let mut bridged = 0usize;
    for (i, entry) in cameras.iter().enumerate() {
        let cam = &entry.config;
        cam.validate("")?;
        if cameras.iter().take(i).any(|c| c.config.id == cam.id) {
            return Err(CameraError::Conflict {
                field: "id",
                message: format!("a camera {:?} exists already", cam.id),
            });
        }
        if let Some(port) = cam.port {
            if port == bridge_port {
                return Err(CameraError::Conflict {
                    field: "port",
                    message: format!("port {port} is the bridge's HAP port"),
                });
            }
            if let Some(other) = ports.insert(port, cam.id.clone()) {
                return Err(CameraError::Conflict {
                    field: "port",
                    message: format!("port {port} is already used by camera {other:?}"),
                });
            }
        }
        if cam.mode == CameraMode::Bridged {
            bridged += 1;
        }
    }
    if bridged > MAX_BRIDGED_CAMERAS {
        return Err(CameraError::Conflict {
            field: "mode",
            message: format!("a bridge holds at most {MAX_BRIDGED_CAMERAS} bridged cameras"),
        });
    }
    Ok(())
}

/// What changed for HomeKit from `before` to `after` (only enabled cameras are exposed).
pub(crate) fn diff(before: &[CameraEntry], after: &[CameraEntry]) -> CameraChanges {
    let exposed = |list: &[CameraEntry]| -> BTreeMap<String, CameraSettings> {
        list.iter()
            .filter(|c| c.config.enabled)
            .map(|c| (c.config.id.clone(), c.config.clone()))
            .collect()
    };
    let (old, new) = (exposed(before), exposed(after));
    let mut changes = CameraChanges::default();
    for (id, cam) in &new {
        match old.get(id) {
            None => changes.added.push(cam.clone()),
            Some(prev) if prev != cam => changes.changed.push((prev.clone(), cam.clone())),
            Some(_) => {}
        }
    }
    changes.removed = old
        .into_iter()
        .filter(|(id, _)| !new.contains_key(id))
        .map(|(_, cam)| cam)
        .collect();
    changes
}

/// Whether a change needs the camera's standalone server restarted (its mDNS name, port,
/// category or mode change); otherwise its database is swapped in place.
pub(crate) fn needs_restart(before: &CameraSettings, after: &CameraSettings) -> bool {
    before.mode != after.mode
        || before.name != after.name
        || before.port != after.port
        || before.sensors.doorbell != after.sensors.doorbell
}

/// Whether a change needs a new media runtime (hubs, stream slots): the source, the stream
/// services or the accessory moved.
pub(crate) fn media_changed(before: &CameraSettings, after: &CameraSettings) -> bool {
    before.source != after.source
        || before.substream != after.substream
        || before.always_on != after.always_on
        || before.transcode != after.transcode
        || before.max_streams != after.max_streams
        || before.mode != after.mode
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(id: &str, mode: CameraMode, port: Option<u16>) -> CameraEntry {
        let mut config = Config::default().cameras.remove(0);
        config.id = id.to_owned();
        config.mode = mode;
        config.port = port;
        CameraEntry {
            config,
            origin: Origin::Api,
        }
    }

    #[test]
    fn camera_changes_count_only_enabled_cameras() {
        let a = camera("a", CameraMode::Bridged, None);
        let b = camera("b", CameraMode::Standalone, None);
        let mut b2 = b.clone();
        b2.config.sensors.occupancy = true;
        let mut a_off = a.clone();
        a_off.config.enabled = false;
        let c = camera("c", CameraMode::Bridged, None);

        let d = diff(&[a.clone(), b], &[a_off, b2.clone(), c]);
        let ids = |v: &[CameraSettings]| v.iter().map(|c| c.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.added), ["c"]);
        assert_eq!(ids(&d.removed), ["a"], "disabled counts as removed");
        assert_eq!(d.changed.len(), 1);
        assert!(
            !needs_restart(&d.changed[0].0, &d.changed[0].1),
            "sensors: swap in place"
        );
        let mut renamed = b2.config.clone();
        renamed.name = "Other".to_owned();
        assert!(needs_restart(&b2.config, &renamed));
        let mut doorbell = b2.config.clone();
        doorbell.sensors.doorbell = true;
        assert!(needs_restart(&b2.config, &doorbell), "category changes");
        assert!(
            diff(std::slice::from_ref(&a), std::slice::from_ref(&a))
                .added
                .is_empty()
        );
    }

    #[test]
    fn camera_lists_are_checked_as_a_whole() {
        let ok = [
            camera("a", CameraMode::Bridged, None),
            camera("b", CameraMode::Standalone, Some(5000)),
        ];
        assert!(check(&ok, 51826).is_ok());
        let message = |list: &[CameraEntry], port| match check(list, port) {
            Err(e) => e.to_string(),
            Ok(()) => String::new(),
        };
        assert_eq!(
            message(&ok, 5000),
            "port: port 5000 is the bridge's HAP port"
        );
        let mut twice = ok.to_vec();
        twice.push(camera("c", CameraMode::Standalone, Some(5000)));
        assert_eq!(
            message(&twice, 1),
            "port: port 5000 is already used by camera \"b\""
        );
        let dup = [ok[0].clone(), ok[0].clone()];
        assert_eq!(message(&dup, 1), "id: a camera \"a\" exists already");
        let mut bad = ok.to_vec();
        bad[0].config.max_streams = 0;
        assert_eq!(message(&bad, 1), "max_streams: must be 1..=8");
        let many: Vec<CameraEntry> = (0..=MAX_BRIDGED_CAMERAS)
            .map(|i| camera(&format!("c{i}"), CameraMode::Bridged, None))
            .collect();
        assert!(message(&many, 1).starts_with("mode: a bridge holds at most 149"));
    }

    #[test]
    fn api_edits_respect_origin_and_ids() {
        let mut file = camera("file", CameraMode::Bridged, None);
        file.origin = Origin::Config;
        let list = vec![file, camera("api", CameraMode::Bridged, None)];
        let dup = with_added(&list, list[1].config.clone());
        assert!(matches!(
            dup,
            Err(CameraError::Conflict { field: "id", .. })
        ));
        let added = with_added(&list, camera("new", CameraMode::Bridged, None).config);
        assert_eq!(added.map(|l| l.len()).ok(), Some(3));
        assert!(matches!(
            with_updated(&list, "file", |c| Ok(c.clone())),
            Err(CameraError::ReadOnly(_))
        ));
        let (next, cam) = with_updated(&list, "api", |c| {
            let mut c = c.clone();
            c.name = "Renamed".to_owned();
            Ok(c)
        })
        .map_err(|e| e.to_string())
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cam.name, "Renamed");
        assert_eq!(next[1].config.name, "Renamed");
        assert!(matches!(
            without(&list, "file"),
            Err(CameraError::ReadOnly(_))
        ));
        assert!(matches!(
            without(&list, "nope"),
            Err(CameraError::NotFound(_))
        ));
        let (next, gone) = without(&list, "api").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((next.len(), gone.id.as_str()), (1, "api"));
    }
}
