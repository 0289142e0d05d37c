use super::*;
use crate::motion::{Zone, grid_size};

/// A deterministic scene: a textured background, per-picture noise, an optional square object.
struct Scene {
    size: (usize, usize),
    rng: u64,
    /// Noise amplitude (uniform, ± levels).
    noise: i32,
    /// Added to every pixel (lighting).
    light: i32,
}

impl Scene {
    fn new(noise: i32) -> Self {
        Self {
            size: grid_size(640, 360),
            rng: 0x9E37_79B9_7F4A_7C15,
            noise,
            light: 0,
        }
    }

    fn next_noise(&mut self) -> i32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % (2 * self.noise as u64 + 1)) as i32 - self.noise
    }

    /// One picture; `object` is the top-left cell of a 16x9 square (1 % of 160x90) of level 230.
    fn picture(&mut self, object: Option<(usize, usize)>) -> Vec<u8> {
        let (w, h) = self.size;
        let mut out = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                // Bars and a gradient, some of it white (clips when brightened).
                let base = if x < 20 {
                    245
                } else {
                    40 + ((x / 20) * 20 + y / 3) as i32
                };
                let inside = object.is_some_and(|(ox, oy)| {
                    (ox..ox + 16).contains(&x) && (oy..oy + 9).contains(&y)
                });
                let v = if inside {
                    230
                } else {
                    base + self.light + self.next_noise()
                };
                out.push(v.clamp(0, 255) as u8);
            }
        }
        out
    }
}

fn detector(settings: MotionSettings) -> Detector {
    Detector::new(&settings, grid_size(640, 360))
}

/// Motion in the pictures of `scene` with the object at `path[i]` for picture i.
fn run(
    d: &mut Detector,
    scene: &mut Scene,
    path: impl IntoIterator<Item = Option<(usize, usize)>>,
) -> Vec<Analysis> {
    path.into_iter()
        .map(|o| d.analyse(&scene.picture(o)).unwrap())
        .collect()
}

#[test]
fn a_noisy_static_scene_never_fires() {
    let mut scene = Scene::new(4);
    let mut d = detector(MotionSettings {
        sensitivity: 80,
        ..MotionSettings::default()
    });
    let out = run(&mut d, &mut scene, (0..3000).map(|_| Some((70, 40))));
    assert_eq!(out.iter().filter(|a| a.motion).count(), 0);
    let noise = out.last().unwrap().noise;
    assert!(noise > 1.0 && noise < 4.0, "noise estimate {noise}");
}

#[test]
fn a_slow_brightness_ramp_and_a_sudden_switch_never_fire() {
    let mut scene = Scene::new(3);
    let mut d = detector(MotionSettings::default());
    let mut out = run(&mut d, &mut scene, (0..10).map(|_| None));
    // +40 levels over 40 pictures (8 s at 5 pictures/s), white bars clipping.
    for _ in 0..40 {
        scene.light += 1;
        out.extend(run(&mut d, &mut scene, [None]));
    }
    // An IR switch: everything 60 levels darker at once.
    scene.light -= 100;
    let switch = run(&mut d, &mut scene, [None])[0];
    assert!(switch.lighting_change, "{switch:?}");
    out.extend(run(&mut d, &mut scene, (0..20).map(|_| None)));
    let fired: Vec<_> = out.iter().enumerate().filter(|(_, a)| a.motion).collect();
    assert!(fired.is_empty(), "{fired:?}");
}

#[test]
fn a_small_moving_object_fires_at_once_and_stops_after_it_stops() {
    let mut scene = Scene::new(3);
    let mut d = detector(MotionSettings::default());
    let still = run(&mut d, &mut scene, (0..10).map(|_| Some((10, 10))));
    assert!(still.iter().all(|a| !a.motion));
    // 10 cells a picture: across the picture in 3 s at 5 pictures a second.
    let moving = run(
        &mut d,
        &mut scene,
        (1..=12).map(|i| Some((10 + 10 * i, 10))),
    );
    assert!(
        moving[0].motion,
        "the first moved picture fires: {:?}",
        moving[0]
    );
    assert!(
        moving.iter().all(|a| a.motion),
        "every moving picture fires"
    );
    // It stops: it (and the place it left) joins the background.
    let parked = run(&mut d, &mut scene, (0..30).map(|_| Some((130, 10))));
    let last_motion = parked.iter().rposition(|a| a.motion).map_or(0, |i| i + 1);
    assert!(
        last_motion <= usize::from(STILL_ABSORB) + 2,
        "motion went on for {last_motion} pictures"
    );
    assert!(parked[last_motion..].iter().all(|a| !a.motion));
}

#[test]
fn a_slow_object_fires_by_its_third_picture() {
    let mut scene = Scene::new(3);
    let mut d = detector(MotionSettings::default());
    run(&mut d, &mut scene, (0..10).map(|_| Some((10, 10))));
    // 4 cells a picture (across the picture in 8 s): the first difference is two slivers of
    // 0.25 % each, the opening trims the next ones.
    let moving = run(&mut d, &mut scene, (1..=20).map(|i| Some((10 + 4 * i, 10))));
    assert!(moving[2..].iter().all(|a| a.motion), "{:?}", &moving[..3]);
}

#[test]
fn motion_outside_the_zones_does_not_count() {
    let bottom = Zone {
        points: vec![(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)],
    };
    let mut scene = Scene::new(3);
    let mut d = detector(MotionSettings {
        zones: vec![bottom],
        ..MotionSettings::default()
    });
    run(&mut d, &mut scene, (0..10).map(|_| Some((10, 10))));
    let top = run(&mut d, &mut scene, (1..=30).map(|i| Some((10 + 4 * i, 10))));
    assert!(top.iter().all(|a| !a.motion));
    let low = run(&mut d, &mut scene, (1..=10).map(|i| Some((10 + 4 * i, 60))));
    assert!(low.iter().skip(1).all(|a| a.motion), "{low:?}");
}

#[test]
fn objects_below_the_minimum_area_do_not_count() {
    let mut scene = Scene::new(3);
    // 1 % object, 2 % minimum.
    let mut d = detector(MotionSettings {
        min_area: 0.02,
        ..MotionSettings::default()
    });
    run(&mut d, &mut scene, (0..10).map(|_| None));
    // Appearing and moving: at most the object's own 1 % (plus its trail) changes per picture.
    let out = run(
        &mut d,
        &mut scene,
        (1..=20).map(|i| Some((10 + 20 * i % 140, 40))),
    );
    assert!(out.iter().all(|a| a.area < 0.02 || a.motion));
    assert!(out.iter().filter(|a| a.motion).count() < out.len());
}

#[test]
fn a_picture_of_another_size_is_refused() {
    let mut d = detector(MotionSettings::default());
    assert_eq!(
        d.analyse(&[0; 10]),
        Err(DetectorError::Size {
            got: 10,
            want: 160 * 90
        })
    );
}
