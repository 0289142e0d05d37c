//! Interoperability with an independent controller: aiohomekit (Home Assistant's HomeKit
//! library) drives the running bridge through `tests/interop/aiohomekit_driver.py`: pair-setup
//! with a wrong and the right code (and refused once paired), 50 pair-verifies, the database,
//! reads, error statuses, a write, events triggered through the admin API (latency and
//! coalescing), pairings management, unpairing, and pair-verify refused afterwards. The driver's
//! JSON lines (with the figures) are printed even when the test passes.

use std::process::Command;
use std::time::Duration;

use crate::util::{self, Bridge};

#[test]
fn aiohomekit_pairs_reads_writes_gets_events_and_unpairs() {
    let python = util::python();
    let mut bridge = Bridge::start();
    let script = util::repo_root().join("tests/interop/aiohomekit_driver.py");
    let mut cmd = Command::new(&python);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(&script)
        .args(["--host", &bridge.hap.ip().to_string()])
        .args(["--port", &bridge.hap.port().to_string()])
        .args(["--api", &bridge.api_base()])
        .args(["--setup-code", util::SETUP_CODE])
        .args(["--camera", "demo", "--verify-rounds", "50"]);
    let (status, lines, stderr) = util::run_with_timeout(&mut cmd, DRIVER_TIMEOUT);

    util::show("aiohomekit interop (tests/interop/aiohomekit_driver.py):");
    for line in &lines {
        util::show(&format!("  {line}"));
    }
    let failure = |why: &str| {
        format!(
            "{why}\n--- driver stdout ---\n{}\n--- driver stderr ---\n{stderr}\n--- bridge output \
             ---\n{}",
            lines.join("\n"),
            bridge.output()
        )
    };
    let Some(status) = status else {
        panic!(
            "{}",
            failure(&format!("the driver ran over {DRIVER_TIMEOUT:?}"))
        );
    };
    assert!(
        status.success(),
        "{}",
        failure(&format!("the driver failed ({status})"))
    );
    let steps: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect();
    for step in [
        "pair_setup_wrong_code",
        "pair_setup",
        "refused_while_paired",
        "pair_verify",
        "concurrent_sessions",
        "accessories",
        "read_all",
        "error_statuses",
        "write_identify",
        "motion_event",
        "list_pairings",
        "add_remove_pairing",
        "unpair",
        "pair_verify_after_unpair",
        "done",
    ] {
        assert!(
            steps.iter().any(|s| s["step"] == step && s["ok"] == true),
            "{}",
            failure(&format!("step {step} did not report ok"))
        );
    }

    // The bridge saw its only pairing removed: unpaired, the setup code shown again.
    let st = bridge.status();
    assert_eq!(st["paired"], false, "{st}");
    assert_eq!(st["setup_code"], util::SETUP_CODE, "{st}");

    let exit = bridge.stop_status();
    assert!(
        exit.is_some_and(|s| s.success()),
        "SIGTERM: exit {exit:?} (None = killed after the grace period); bridge output:\n{}",
        bridge.output()
    );
}

/// The whole driver run: 50 pair-verifies plus 10 events take a few seconds; a busy CI machine
/// gets a wide margin.
const DRIVER_TIMEOUT: Duration = Duration::from_secs(120);
