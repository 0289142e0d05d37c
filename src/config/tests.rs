use super::*;

fn err(text: &str) -> String {
    Config::parse(text, "test.toml").unwrap_err().to_string()
}

const FULL: &str = r#"
[bridge]
name = "Garage Bridge"
port = 51900
bind = ["127.0.0.1", "::1"]
mdns_interfaces = ["eth0", "192.168.1.10"]
manufacturer = "ACME"
model = "B1"
data_dir = "/var/lib/hap-bridge"

[[cameras]]
id = "front"
name = "Front Door"
source = "rtsp://admin:s3cret@10.0.0.5:554/main"
substream = "rtsp://admin:s3cret@10.0.0.5:554/sub"
mode = "standalone"
port = 51901
sensors = { motion = true, occupancy = true, doorbell = true }
max_streams = 3
always_on = true

[[cameras]]
id = "back_yard-2"
name = "Back Yard"
source = "test-pattern"
enabled = false

[timings]
motion_reset_seconds = 10
max_motion_duration = 60
"#;

#[test]
fn full_file_parses() {
    let c = Config::parse(FULL, "full.toml").unwrap();
    assert_eq!(c.bridge.name, "Garage Bridge");
    assert_eq!(c.bridge.port, 51900);
    assert_eq!(c.bridge.bind.len(), 2);
    assert_eq!(c.bridge.mdns_interfaces, ["eth0", "192.168.1.10"]);
    assert_eq!(c.bridge.data_dir, PathBuf::from("/var/lib/hap-bridge"));
    let front = &c.cameras[0];
    assert_eq!(front.mode, CameraMode::Standalone);
    assert_eq!(front.port, Some(51901));
    assert_eq!(
        front.sensors,
        Sensors {
            motion: true,
            occupancy: true,
            doorbell: true
        }
    );
    assert_eq!(front.max_streams, 3);
    assert!(front.always_on && front.enabled);
    let Source::Rtsp(url) = &front.source else {
        panic!("expected rtsp")
    };
    assert_eq!(url.expose(), "rtsp://admin:s3cret@10.0.0.5:554/main");
    let back = &c.cameras[1];
    assert_eq!(back.source, Source::TestPattern);
    assert!(!back.enabled);
    assert_eq!(back.mode, CameraMode::Bridged);
    assert_eq!(back.sensors, Sensors::default());
    assert_eq!(
        c.timings,
        Timings {
            motion_reset_seconds: 10,
            max_motion_duration: 60
        }
    );
}

#[test]
fn defaults() {
    let c = Config::parse("", "empty.toml").unwrap();
    assert_eq!(c.bridge.name, "HAP Bridge");
    assert_eq!(c.bridge.port, 51826);
    assert_eq!(c.bridge.bind, [IpAddr::V4(Ipv4Addr::UNSPECIFIED)]);
    assert!(c.bridge.mdns_interfaces.is_empty());
    assert_eq!(c.bridge.data_dir, PathBuf::from("data/homekit"));
    assert!(c.cameras.is_empty());
    assert_eq!(c.timings.motion_reset_seconds, 30);
    assert_eq!(c.timings.max_motion_duration, 300);

    let c = Config::parse(
        "[[cameras]]\nid = \"a\"\nname = \"A\"\nsource = \"test-pattern\"\n",
        "x",
    )
    .unwrap();
    let cam = &c.cameras[0];
    assert!(cam.enabled && !cam.always_on);
    assert_eq!(cam.mode, CameraMode::Bridged);
    assert_eq!(cam.max_streams, 2);
    assert_eq!(
        cam.sensors,
        Sensors {
            motion: true,
            occupancy: false,
            doorbell: false
        }
    );
    assert_eq!(cam.substream, None);
}

#[test]
fn default_config_has_demo_camera_and_is_valid() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.cameras.len(), 1);
    assert_eq!(c.cameras[0].id, "demo");
    assert_eq!(c.cameras[0].name, "Demo Camera");
    assert_eq!(c.cameras[0].source, Source::TestPattern);
    // The default serializes to TOML that parses back to itself.
    let text = toml::to_string(&c).unwrap();
    assert_eq!(Config::parse(&text, "round-trip").unwrap(), c);
}

fn cam(id: &str) -> String {
    format!("[[cameras]]\nid = \"{id}\"\nname = \"N\"\nsource = \"test-pattern\"\n")
}

#[test]
fn every_validation_error_names_its_field() {
    let cases: &[(String, &str)] = &[
        (
            "[bridge]\nname = \"\"".into(),
            "bridge.name: must not be empty",
        ),
        (
            "[bridge]\nname = \"a\\u0007b\"".into(),
            "bridge.name: must not contain control",
        ),
        (
            format!("[bridge]\nname = \"{}\"", "x".repeat(65)),
            "bridge.name: longer than 64",
        ),
        (
            "[bridge]\nbind = []".into(),
            "bridge.bind: must list at least one address",
        ),
        (
            "[bridge]\nmdns_interfaces = [\"eth0\", \" \"]".into(),
            "bridge.mdns_interfaces[1]:",
        ),
        (
            "[bridge]\nmanufacturer = \"\"".into(),
            "bridge.manufacturer: must not be empty",
        ),
        (
            "[bridge]\nmodel = \" \"".into(),
            "bridge.model: must not be empty",
        ),
        (
            "[bridge]\ndata_dir = \"\"".into(),
            "bridge.data_dir: must not be empty",
        ),
        (
            format!("{}{}", cam("front"), cam("front")),
            "cameras[1].id: duplicate id \"front\"",
        ),
        (cam("Front"), "cameras[0].id: \"Front\" contains 'F'"),
        (cam(""), "cameras[0].id: must be 1..=32 characters"),
        (
            cam(&"a".repeat(33)),
            "cameras[0].id: must be 1..=32 characters",
        ),
        (
            cam("a").replace("name = \"N\"", "name = \"\""),
            "cameras[0].name: must not be empty",
        ),
        (
            cam("a").replace("test-pattern", "http://x/y"),
            "cameras[0].source: http://x/y is neither an rtsp:// URL",
        ),
        (
            cam("a").replace("test-pattern", "rtsp://u:p@/x"),
            "cameras[0].source: rtsp://u:***@/x has no host",
        ),
        (
            cam("a").replace("test-pattern", "rtsps://u:p@h/x"),
            "cameras[0].source: rtsps://u:***@h/x: rtsps:// (RTSP over TLS) is not supported",
        ),
        (
            cam("a").replace("test-pattern", "rtsp://admin:1234#5@192.0.2.7/s"),
            "cameras[0].source: rtsp://***@192.0.2.7/s: the part before '@' is not a user:password",
        ),
        (
            cam("a").replace("test-pattern", "rtsp://h/a b"),
            "cameras[0].source: rtsp://h/a b contains whitespace",
        ),
        (
            cam("a").replace("test-pattern", "rtsp://u:p@h:99999/x"),
            "cameras[0].source: rtsp://u:***@h:99999/x: bad URL: invalid port number",
        ),
        (
            cam("a").replace("test-pattern", "rtsp://[fe80::1%eth0]/x"),
            "cameras[0].source: rtsp://[fe80::1%eth0]/x: bad URL: invalid IPv6 address",
        ),
        (
            cam("a").replace("test-pattern", "rtsp:/u:hunter2@h/x"),
            "cameras[0].source: ***@h/x is neither an rtsp:// URL",
        ),
        (
            format!("{}substream = \"test-pattern\"", cam("a")),
            "cameras[0].substream: must be an rtsp",
        ),
        (
            format!("{}substream = \"ftp://h\"", cam("a")),
            "cameras[0].substream: ftp://h is neither",
        ),
        (
            format!("{}max_streams = 0", cam("a")),
            "cameras[0].max_streams: must be 1..=8",
        ),
        (
            format!("{}max_streams = 9", cam("a")),
            "cameras[0].max_streams: must be 1..=8",
        ),
        (
            format!("{}port = 5000", cam("a")),
            "cameras[0].port: only a standalone camera",
        ),
        (
            format!("{}mode = \"standalone\"\nport = 0", cam("a")),
            "cameras[0].port: must be 1..=65535",
        ),
        (
            format!("{}mode = \"standalone\"\nport = 51826", cam("a")),
            "cameras[0].port: port 51826 is already used",
        ),
        (
            format!(
                "{}mode = \"standalone\"\nport = 6000\n{}mode = \"standalone\"\nport = 6000",
                cam("a"),
                cam("b")
            ),
            "cameras[1].port: port 6000 is already used",
        ),
        (
            "[timings]\nmotion_reset_seconds = 0".into(),
            "timings.motion_reset_seconds: must be at least 1",
        ),
        (
            "[timings]\nmotion_reset_seconds = 60\nmax_motion_duration = 30".into(),
            "timings.max_motion_duration: must be at least",
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(
            got.starts_with(want),
            "for {text:?}\n got: {got}\nwant: {want}..."
        );
    }
}

#[test]
fn too_many_bridged_cameras() {
    let text: String = (0..150).map(|i| cam(&format!("c{i}"))).collect();
    assert_eq!(
        err(&text),
        "cameras: 150 bridged cameras; a bridge holds at most 149"
    );
}

#[test]
fn unknown_fields_are_rejected_with_position() {
    let got = err("[bridge]\nname = \"x\"\nprot = 1\n");
    assert!(
        got.starts_with("test.toml:3:1: unknown field `prot`"),
        "{got}"
    );
    let got = err(&format!("{}colour = \"red\"\n", cam("a")));
    assert!(
        got.starts_with("test.toml:5:1: unknown field `colour`"),
        "{got}"
    );
    let got = err("[camera]\n");
    assert!(got.contains("unknown field `camera`"), "{got}");
    let got = err(&format!("{}sensors = {{ smoke = true }}\n", cam("a")));
    assert!(got.contains("unknown field `smoke`"), "{got}");
}

#[test]
fn syntax_and_type_errors_have_line_and_column() {
    let got = err("[bridge]\nname = \"x\"\nport = = 3\n");
    assert!(got.starts_with("test.toml:3:"), "{got}");
    let got = err("[bridge]\n  port = 70000\n");
    assert!(got.starts_with("test.toml:2:10:"), "{got}");
    let got = err("[bridge]\nbind = [\"not-an-ip\"]\n");
    assert!(got.starts_with("test.toml:2:"), "{got}");
    let got = err(&format!("{}mode = \"sideways\"\n", cam("a")));
    assert!(
        got.starts_with("test.toml:5:8:") && got.contains("sideways"),
        "{got}"
    );
}

#[test]
fn load_reports_missing_file_by_name() {
    let e = Config::load(Path::new("/nonexistent/hap.toml")).unwrap_err();
    assert!(e.to_string().starts_with("/nonexistent/hap.toml: "), "{e}");
}

#[test]
fn mask_url_hides_passwords_only() {
    let cases = [
        (
            "rtsp://admin:s3cret@10.0.0.5:554/main",
            "rtsp://admin:***@10.0.0.5:554/main",
        ),
        ("rtsp://admin:p@ss@cam/x", "rtsp://admin:***@cam/x"),
        ("rtsp://admin:pa/ss@cam/x", "rtsp://***@cam/x"),
        ("rtsps://u:p@h", "rtsps://u:***@h"),
        ("rtsp://user@cam/stream", "rtsp://user@cam/stream"),
        ("rtsp://cam:554/stream", "rtsp://cam:554/stream"),
        ("test-pattern", "test-pattern"),
        ("rtsp:/u:hunter2@h/x", "***@h/x"),
        ("u:hunter2@h/x", "***@h/x"),
        // Credentials outside the userinfo, as several camera brands take them.
        (
            "rtsp://10.0.0.5/user=admin&password=s3cret&channel=1&stream=0.sdp",
            "rtsp://10.0.0.5/user=admin&password=***&channel=1&stream=0.sdp",
        ),
        (
            "rtsp://10.0.0.5:554/live?user=admin&pwd=s3cret&subtype=0",
            "rtsp://10.0.0.5:554/live?user=admin&pwd=***&subtype=0",
        ),
        (
            "rtsp://10.0.0.5/cam;user=admin;Password=s3cret",
            "rtsp://10.0.0.5/cam;user=admin;Password=***",
        ),
        (
            "rtsp://10.0.0.5/user=admin/PASSWD=s3cret/ch1",
            "rtsp://10.0.0.5/user=admin/PASSWD=***/ch1",
        ),
        (
            "rtsp://10.0.0.5/s?pass=s3/cret&secret=x&token=y&key=z&auth=w&pw=v",
            "rtsp://10.0.0.5/s?pass=***&secret=***&token=***&key=***&auth=***&pw=***",
        ),
        (
            "rtsp://admin:s3cret@10.0.0.5/s?password=s3cret",
            "rtsp://admin:***@10.0.0.5/s?password=***",
        ),
        ("u:hunter2@h/x?pwd=1", "***@h/x?pwd=***"),
        (
            "rtsp://cam/h264?channel=1&user=admin",
            "rtsp://cam/h264?channel=1&user=admin",
        ),
    ];
    for (url, want) in cases {
        assert_eq!(mask_url(url), want, "{url}");
    }
}

#[test]
fn debug_and_display_never_show_the_password() {
    let c = Config::parse(FULL, "full.toml").unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(
        debug.contains("rtsp://admin:***@10.0.0.5:554/main"),
        "{debug}"
    );
    assert!(!format!("{:#?}", c.cameras[0]).contains("s3cret"));
    assert_eq!(
        c.cameras[0].source.to_string(),
        "rtsp://admin:***@10.0.0.5:554/main"
    );
    // Errors show the masked form too.
    let got = err(&cam("a").replace("test-pattern", "rtsp://u:hidden@/x"));
    assert!(!got.contains("hidden"), "{got}");
}

#[test]
fn line_column_counts_characters() {
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("é\nx", 3), (2, 1));
    assert_eq!(line_column("éx", 2), (1, 2));
}

#[test]
fn api_token_is_validated_and_masked() {
    let config = Config::parse("[api]\ntoken = \"0123456789abcdef-secret\"\n", "t").unwrap();
    assert_eq!(config.api.token.as_deref(), Some("0123456789abcdef-secret"));
    let debug = format!("{config:?}");
    assert!(!debug.contains("secret"), "{debug}");
    let e = Config::parse("[api]\ntoken = \"short\"\n", "t").unwrap_err();
    assert!(e.to_string().contains("api.token"), "{e}");
    let e = Config::parse("[api]\ntoken = \"0123456789abcdef with space\"\n", "t").unwrap_err();
    assert!(e.to_string().contains("api.token"), "{e}");
}

/// The file, the admin API and the store read cameras through one parser (`CameraFields`).
#[test]
fn one_parser_for_the_file_the_api_and_the_store() {
    // `rtsp_url` is the old service's name of `source`; `sensors` may be a list.
    let text = "[[cameras]]\nid = \"a\"\nname = \"A\"\nrtsp_url = \"rtsp://u:p@cam/x\"\nsensors = [\"doorbell\"]\n";
    let config = Config::parse(text, "test.toml").unwrap();
    let cam = &config.cameras[0];
    assert_eq!(cam.source.to_string(), "rtsp://u:***@cam/x");
    assert_eq!(
        cam.sensors,
        Sensors {
            motion: false,
            occupancy: false,
            doorbell: true
        },
        "a list names exactly the sensors wanted"
    );
    // The JSON of the API goes through the same fields.
    let json = serde_json::json!({"id": "b", "name": "B", "rtsp_url": "test-pattern",
        "sensors": {"occupancy": true}, "port": null, "substream": null});
    let b: CameraSettings = serde_json::from_value(json).unwrap();
    assert_eq!(b.source, Source::TestPattern);
    assert!(
        b.sensors.motion && b.sensors.occupancy,
        "a table keeps defaults"
    );
    // What the store keeps reads back the same.
    let stored = serde_json::to_string(cam).unwrap();
    assert_eq!(
        &serde_json::from_str::<CameraSettings>(&stored).unwrap(),
        cam
    );
    // Missing fields and changes name the field.
    let missing = CameraFields::default().into_settings(None).unwrap_err();
    assert_eq!(missing.to_string(), "id: missing");
    let got = err("[[cameras]]\nid = \"a\"\nname = \"A\"\n");
    assert!(got.contains("source: missing"), "{got}");
    let changed: CameraFields = serde_json::from_value(serde_json::json!({"id": "x"})).unwrap();
    let refused = changed.into_settings(Some(cam)).unwrap_err().to_string();
    assert!(refused.starts_with("id: cannot change"), "{refused}");
    let renamed: CameraFields = serde_json::from_value(serde_json::json!({"name": "New"})).unwrap();
    let kept = renamed.into_settings(Some(cam)).unwrap();
    assert_eq!(
        (kept.name.as_str(), kept.source.clone()),
        ("New", cam.source.clone())
    );
}

#[test]
fn parser_messages_name_the_field() {
    for (path, message, want) in [
        (
            ".",
            "unknown field `colour`, expected one of `id`",
            "colour: unknown field (known: id,",
        ),
        (
            "sensors",
            "unknown field `smoke`, expected `motion`",
            "sensors.smoke: unknown field (known: motion",
        ),
        (
            "id",
            "invalid type: integer `7`, expected a string",
            "id: must be a string (got integer `7`)",
        ),
        (
            "port",
            "invalid type: string \"x\", expected u16",
            "port: must be a port number 0..=65535",
        ),
        (
            "sensors[0]",
            "unknown variant `smoke`, expected one of",
            "sensors[0]: unknown variant",
        ),
    ] {
        let got = field_error(path, message);
        assert!(got.starts_with(want), "{got:?} for {path} {message:?}");
    }
}

#[test]
fn transcode_is_auto_never_or_always() {
    let with = |v: &str| format!("{}transcode = \"{v}\"\n", cam("a"));
    let config = Config::parse(&with("never"), "test.toml").unwrap();
    assert_eq!(config.cameras[0].transcode, Transcode::Never);
    let config = Config::parse(&cam("a"), "test.toml").unwrap();
    assert_eq!(config.cameras[0].transcode, Transcode::Auto, "the default");
    let got = err(&with("sometimes"));
    assert!(got.contains("sometimes") && got.contains("never"), "{got}");
}

#[test]
fn motion_detection_parses_and_checks_every_field() {
    let with = |table: &str| format!("{}[cameras.motion_detection]\n{table}\n", cam("a"));
    let config = Config::parse(
        &with(
            "enabled = true\nsensitivity = 70\nmin_area = 1.5\ncooldown = 30\nfps = 4\n\
             zones = [[[0.0, 0.0], [1.0, 0.0], [1.0, 0.5], [0.0, 0.5]]]",
        ),
        "test.toml",
    )
    .unwrap();
    let m = &config.cameras[0].motion_detection;
    assert!(m.enabled);
    assert_eq!(
        (m.sensitivity, m.min_area, m.cooldown, m.fps),
        (70, 1.5, 30, 4.0)
    );
    let watch = m.watch_config();
    assert_eq!(watch.settings.zones.len(), 1);
    assert!(
        (watch.settings.min_area - 0.015).abs() < 1e-6,
        "percent to fraction"
    );
    assert!(watch.settings.zones[0].contains(0.5, 0.25));
    // Left out: off, and defaults for the rest.
    let config = Config::parse(&cam("a"), "test.toml").unwrap();
    assert_eq!(
        config.cameras[0].motion_detection,
        MotionDetection::default()
    );
    assert!(!config.cameras[0].motion_detection.enabled);

    for (table, want) in [
        (
            "sensitivity = 0",
            "cameras[0].motion_detection.sensitivity: must be 1..=100",
        ),
        (
            "min_area = 80",
            "cameras[0].motion_detection.min_area: must be 0.01..=50",
        ),
        (
            "cooldown = 4000",
            "cameras[0].motion_detection.cooldown: must be 0..=3600",
        ),
        (
            "fps = 60",
            "cameras[0].motion_detection.fps: must be 1..=15",
        ),
        (
            "zones = [[[0.0, 0.0], [1.0, 1.0]]]",
            "cameras[0].motion_detection.zones[0]: a zone needs 3..=64 points",
        ),
        (
            "zones = [[[0.0, 0.0], [1.0, 0.0], [0.5, 1.5]]]",
            "cameras[0].motion_detection.zones[0]: point 2: coordinates are fractions",
        ),
    ] {
        let got = err(&with(table));
        assert!(got.contains(want), "{table}: {got}");
    }
    let got = err(&with("sensitivty = 3"));
    assert!(
        got.contains("sensitivty") && got.contains("sensitivity"),
        "{got}"
    );
    let no_sensor = format!(
        "{}sensors = []\n[cameras.motion_detection]\nenabled = true\n",
        cam("a")
    );
    let got = err(&no_sensor);
    assert!(
        got.contains("cameras[0].motion_detection.enabled: needs the camera's motion sensor"),
        "{got}"
    );
}

#[test]
fn motion_detection_through_the_api_parser_names_the_field() {
    let fields: CameraFields = serde_json::from_str(
        r#"{"id": "a", "name": "A", "source": "test-pattern",
            "motion_detection": {"enabled": true, "zones": [[[0, 0], [1, 0], [0, 1]]]}}"#,
    )
    .unwrap();
    let cam = fields.into_settings(None).unwrap();
    assert!(cam.motion_detection.enabled);
    cam.validate("").unwrap();
    assert_eq!(
        field_error(
            "motion_detection",
            "unknown field `zone`, expected one of `enabled`"
        ),
        "motion_detection.zone: unknown field (known: enabled, sensitivity, zones, min_area, \
         cooldown, fps)"
    );
}
