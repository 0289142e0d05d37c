//! Camera sensors driven from outside (the admin API, later the camera's own events): motion with
//! its reset and cap timers, occupancy, doorbell presses.
//!
//! Motion goes back to "not detected" `motion_reset_seconds` after the last trigger, and at the
//! latest `max_motion_duration` after the first trigger of a continuous run, as the old Python
//! service did.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hap_proto::db::{HapStatus, Value};
use tokio::time::Instant;

use crate::accessories::SensorIds;
use crate::camera::CameraHost;
use crate::camera::motion::{MotionSink, MotionState};

/// Why a sensor trigger could not be applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SensorError {
    #[error("no camera with id {0:?}")]
    UnknownCamera(String),
    #[error("camera {camera:?} has no {sensor} sensor")]
    NoSuchSensor {
        camera: String,
        sensor: &'static str,
    },
    #[error("the accessory refused the value (HAP status {0})")]
    Refused(i32),
}

#[derive(Default)]
struct MotionRun {
    /// When the current run of motion started.
    since: Option<Instant>,
    /// Incremented on every trigger; a reset timer only acts if no newer trigger came.
    generation: u64,
    /// When the last run ended (reset, cap or cleared).
    ended: Option<Instant>,
}

struct Camera {
    server: Arc<dyn CameraHost>,
    ids: SensorIds,
    motion: Mutex<MotionRun>,
}

/// The sensors of every camera, by camera id.
pub(crate) struct Sensors {
    /// Replaced when cameras change at run time ([`Sensors::replace`]).
    cameras: RwLock<BTreeMap<String, Arc<Camera>>>,
    reset: Duration,
    cap: Duration,
}

impl Sensors {
    /// Sensors for `cameras` (id, the server that holds them, their characteristics).
    pub(crate) fn new(
        cameras: Vec<(String, Arc<dyn CameraHost>, SensorIds)>,
        reset: Duration,
        cap: Duration,
    ) -> Self {
        Self {
            cameras: RwLock::new(camera_map(cameras)),
            reset,
            cap,
        }
    }

    /// Replaces the cameras (after a run-time change of the accessory databases). A camera on
    /// the same server with the same characteristics keeps its entry (and its motion run).
    pub(crate) fn replace(&self, cameras: Vec<(String, Arc<dyn CameraHost>, SensorIds)>) {
        let mut map = self
            .cameras
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = BTreeMap::new();
        for (id, server, ids) in cameras {
            let kept = map
                .remove(&id)
                .filter(|old| Arc::ptr_eq(&old.server, &server) && old.ids == ids);
            let cam = kept.unwrap_or_else(|| {
                Arc::new(Camera {
                    server,
                    ids,
                    motion: Mutex::new(MotionRun::default()),
                })
            });
            next.insert(id, cam);
        }
        *map = next;
    }

    /// Motion detected (or cleared).
    pub(crate) fn motion(&self, camera: &str, detected: bool) -> Result<(), SensorError> {
        let cam = self.camera(camera)?;
        let id = cam.ids.motion.ok_or_else(|| no_sensor(camera, "motion"))?;
        // The value is written under the run's lock, as the reset below: a concurrent trigger,
        // clear or reset cannot write between another one's bookkeeping and its value (which
        // could leave motion on with no timer to end it, or end a run that just restarted).
        let (generation, reset_at) = {
            let mut run = cam
                .motion
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            run.generation += 1;
            if detected {
                run.since.get_or_insert_with(Instant::now);
            } else if run.since.take().is_some() {
                run.ended = Some(Instant::now());
            }
            cam.server
                .set_value(id, Value::Bool(detected))
                .map_err(refused)?;
            let reset_at = run
                .since
                .map(|since| (Instant::now() + self.reset).min(since + self.cap));
            (run.generation, reset_at)
        };
        tracing::info!(camera, detected, "motion");
        if let Some(at) = reset_at {
            let camera = camera.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let mut run = cam
                    .motion
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // Only the newest trigger's timer resets; its deadline already respects the
                // cap (at most `since + cap`).
                if run.generation == generation {
                    run.since = None;
                    run.ended = Some(Instant::now());
                    let _ = cam.server.set_value(id, Value::Bool(false));
                    drop(run);
                    tracing::info!(camera, "motion reset");
                }
            });
        }
        Ok(())
    }

    /// Whether camera `camera`'s Motion Detected is on, and when its last run ended.
    pub(crate) fn motion_state(&self, camera: &str) -> Result<MotionState, SensorError> {
        let cam = self.camera(camera)?;
        let run = cam
            .motion
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(MotionState {
            active: run.since.is_some(),
            ended: run.ended,
        })
    }

    /// Occupancy detected (1) or not (0).
    pub(crate) fn occupancy(&self, camera: &str, detected: bool) -> Result<(), SensorError> {
        let cam = self.camera(camera)?;
        let id = cam
            .ids
            .occupancy
            .ok_or_else(|| no_sensor(camera, "occupancy"))?;
        cam.server
            .set_value(id, Value::Uint(u64::from(detected)))
            .map_err(refused)?;
        tracing::info!(camera, detected, "occupancy");
        Ok(())
    }

    /// One doorbell press (Programmable Switch Event 0 = single press), sent at once.
    pub(crate) fn doorbell(&self, camera: &str) -> Result<(), SensorError> {
        let cam = self.camera(camera)?;
        let id = cam
            .ids
            .doorbell
            .ok_or_else(|| no_sensor(camera, "doorbell"))?;
        cam.server.set_value(id, Value::Uint(0)).map_err(refused)?;
        tracing::info!(camera, "doorbell press");
        Ok(())
    }

    fn camera(&self, camera: &str) -> Result<Arc<Camera>, SensorError> {
        self.cameras
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(camera)
            .cloned()
            .ok_or_else(|| SensorError::UnknownCamera(camera.to_owned()))
    }
}

impl MotionSink for Sensors {
    fn motion_state(&self, camera: &str) -> Option<MotionState> {
        let cam = self.camera(camera).ok()?;
        cam.ids.motion?;
        Self::motion_state(self, camera).ok()
    }

    fn trigger_motion(&self, camera: &str) -> Result<(), String> {
        self.motion(camera, true).map_err(|e| e.to_string())
    }

    fn motion_reset(&self) -> Duration {
        self.reset
    }
}

fn camera_map(
    cameras: Vec<(String, Arc<dyn CameraHost>, SensorIds)>,
) -> BTreeMap<String, Arc<Camera>> {
    cameras
        .into_iter()
        .map(|(id, server, ids)| {
            let cam = Camera {
                server,
                ids,
                motion: Mutex::new(MotionRun::default()),
            };
            (id, Arc::new(cam))
        })
        .collect()
}

fn no_sensor(camera: &str, sensor: &'static str) -> SensorError {
    SensorError::NoSuchSensor {
        camera: camera.to_owned(),
        sensor,
    }
}

fn refused(status: HapStatus) -> SensorError {
    SensorError::Refused(status.0)
}
