use std::process::{Command, Stdio};
use std::time::Instant;

use hap_proto::mdns::{TxtParams, category, txt_record};
use mdns_sd::ServiceEvent;

use super::*;

const NETNS_ENV: &str = "HAP_BRIDGE_TEST_IN_NETNS";

fn txt(config_number: u16, paired: bool) -> Vec<(&'static str, String)> {
    txt_record(&TxtParams {
        model: "HAP Bridge".to_owned(),
        device_id: DEVICE_ID,
        config_number,
        paired,
        category: category::BRIDGE,
        setup_hash: Some("yf4bzw==".to_owned()),
    })
}

const DEVICE_ID: DeviceId = DeviceId([0xe1, 0x91, 0x1a, 0x70, 0x85, 0xaa]);

#[test]
fn names_are_unique_per_device_id() {
    assert_eq!(instance_name("HAP Bridge", DEVICE_ID), "HAP Bridge 7085AA");
    // Names longer than a DNS label allows are cut at a character boundary.
    let long = instance_name(&"x".repeat(64), DEVICE_ID);
    assert_eq!(long, format!("{} 7085AA", "x".repeat(56)));
    let cjk = instance_name(&"門".repeat(22), DEVICE_ID);
    assert_eq!(cjk, format!("{} 7085AA", "門".repeat(18)));
    assert!(cjk.len() <= 63);
    assert_eq!(host_name(DEVICE_ID), "hap-bridge-E1911A7085AA.local.");
    assert!(matches!(if_kind("127.0.0.1"), IfKind::Addr(_)));
    assert!(matches!(if_kind("eth0"), IfKind::Name(n) if n == "eth0"));
}

/// Runs `netns_child` in a private network namespace where only loopback exists, so that the
/// test neither depends on nor leaks onto the machine's network.
#[test]
fn advertises_updates_and_withdraws_in_private_netns() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("unshare")
        // `-r` (a user namespace mapping us to root) lets this run without root privileges too.
        .args(["-rn", "sh", "-c", r#"ip link set lo up && exec "$0" "$@""#])
        .arg(exe)
        .args([
            "--exact",
            "mdns::tests::netns_child",
            "--ignored",
            "--nocapture",
        ])
        .env(NETNS_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) must be installed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("netns child timed out");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "child failed:\n{stdout}\n{stderr}");
    // The child really ran (a filter typo would run zero tests and succeed).
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(stdout.contains("netns: all steps seen"), "{stdout}");
}

/// Waits for the first event that `f` accepts.
fn wait_for<T>(
    rx: &mdns_sd::Receiver<ServiceEvent>,
    what: &str,
    mut f: impl FnMut(ServiceEvent) -> Option<T>,
) -> T {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
        if let Some(t) = f(event) {
            return t;
        }
    }
}

#[test]
#[ignore = "child process of advertises_updates_and_withdraws_in_private_netns"]
fn netns_child() {
    if std::env::var_os(NETNS_ENV).is_none() {
        return;
    }
    let advertiser = Advertiser::new(&["lo".to_owned()]).unwrap();
    let spec = ServiceSpec {
        name: "HAP Bridge".to_owned(),
        device_id: DEVICE_ID,
        port: 51826,
    };
    let mut reg = advertiser.register(&spec, &txt(1, false)).unwrap();
    let fullname = reg.fullname().to_owned();
    assert_eq!(fullname, "HAP Bridge 7085AA._hap._tcp.local.");

    let browser = ServiceDaemon::new().unwrap();
    browser.disable_interface(IfKind::All).unwrap();
    browser
        .enable_interface(IfKind::Name("lo".to_owned()))
        .unwrap();
    let rx = browser.browse(SERVICE_TYPE).unwrap();

    let resolved = |want_c: &'static str| {
        let fullname = fullname.clone();
        move |event| match event {
            ServiceEvent::ServiceResolved(s)
                if s.fullname == fullname
                    && s.txt_properties.get_property_val_str("c#") == Some(want_c) =>
            {
                Some(s)
            }
            _ => None,
        }
    };
    let s = wait_for(&rx, "the first announcement", resolved("1"));
    assert_eq!(s.port, 51826);
    assert!(
        s.addresses.iter().any(|a| a.to_ip_addr().is_loopback()),
        "{:?}",
        s.addresses
    );
    let props = &s.txt_properties;
    for (key, value) in txt(1, false) {
        assert_eq!(
            props.get_property_val_str(key),
            Some(value.as_str()),
            "TXT {key}"
        );
    }
    assert_eq!(props.get_property_val_str("sf"), Some("1"));
    println!("netns: announcement seen");

    // A name longer than a DNS label allows is still announced (cut to fit).
    let long = ServiceSpec {
        name: "Back Garden Camera ".repeat(4),
        device_id: DeviceId([1, 2, 3, 4, 5, 6]),
        port: 51827,
    };
    let long_reg = advertiser.register(&long, &txt(1, false)).unwrap();
    let long_name = long_reg.fullname().to_owned();
    wait_for(&rx, "the long name's announcement", |event| match event {
        ServiceEvent::ServiceResolved(s) if s.fullname == long_name => Some(()),
        _ => None,
    });
    long_reg.unregister().unwrap();
    println!("netns: long name seen");

    // c# bump and paired: the browser sees the new record.
    reg.update(&txt(2, true)).unwrap();
    let s = wait_for(&rx, "the updated record", resolved("2"));
    assert_eq!(s.txt_properties.get_property_val_str("sf"), Some("0"));
    println!("netns: update seen");

    reg.unregister().unwrap();
    wait_for(&rx, "the removal", |event| match event {
        ServiceEvent::ServiceRemoved(_, name) if name == fullname => Some(()),
        _ => None,
    });
    println!("netns: all steps seen");
    advertiser.shutdown();
    let _ = browser.shutdown();
}

/// Bound of each step in the namespace (a browser on loopback sees records within a second).
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
