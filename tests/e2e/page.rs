//! The web page at `/` in headless Chromium (Debian's `chromium`, installed by `tests/run.sh`):
//! the DOM after the page's scripts ran (`--dump-dom`) shows the status, the setup code and the
//! QR code while unpaired, the cameras (masked RTSP URLs, snapshot thumbnails or a note while
//! there is none), the live streams section, and no code once paired; a screenshot (PNG, kept in
//! `target/tmp/`) decodes and the QR code in it decodes back to the setup URI. Off loopback the
//! page asks for the API token.
//!
//! Without Chromium the test is skipped with a loud message, except under CI (`CI=true`), where
//! a missing browser fails it. Chromium runs in its own process group, killed after a timeout.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use hap_proto::controller::setup::SrpPadding;

use crate::controller::{Conn, Identity};
use crate::util::{Bridge, SETUP_CODE, TempDir, show};

/// Two bridged cameras, one with extra sensors, and a standalone one.
const CONFIG: &str = "[bridge]\nmdns_interfaces = [\"lo\"]\n\n\
    [[cameras]]\nid = \"demo\"\nname = \"Demo Camera\"\nsource = \"test-pattern\"\n\n\
    [[cameras]]\nid = \"garage\"\nname = \"Garage Door\"\nsource = \"rtsp://admin:s3cret@127.0.0.1:9/live\"\n\
    sensors = { motion = true, occupancy = true }\n\n\
    [[cameras]]\nid = \"porch\"\nname = \"Porch\"\nsource = \"test-pattern\"\nmode = \"standalone\"\n";

#[test]
fn page_shows_status_setup_code_qr_and_cameras_in_chromium() {
    let Some(chromium) = chromium() else {
        return;
    };
    let tmp = TempDir::new("page");
    let bridge = Bridge::start_in(&tmp.0, Some(CONFIG));
    let url = format!("{}/", bridge.api_base());
    let status = bridge.status();
    let uri = status["setup_uri"].as_str().unwrap().to_owned();

    let dom = dump_dom(&chromium, &tmp.0, &url);
    let fail = |why: &str| {
        format!(
            "{why}\n--- DOM ---\n{dom}\n--- bridge ---\n{}",
            bridge.output()
        )
    };
    assert!(
        dom.contains("<title>hap-bridge</title>"),
        "{}",
        fail("no page")
    );
    assert!(
        dom.contains(&format!("class=\"code\">{SETUP_CODE}<")),
        "{}",
        fail("the setup code is not shown")
    );
    assert!(
        dom.contains("id=\"qr\"") && dom.contains("src=\"blob:"),
        "{}",
        fail("no QR image")
    );
    for text in [
        "Demo Camera",
        "Garage Door",
        "garage · bridged",
        "sensors: motion, occupancy",
        // The RTSP URL, password masked.
        "rtsp://admin:***@127.0.0.1:9/live",
    ] {
        assert!(
            dom.contains(text),
            "{}",
            fail(&format!("{text:?} not listed"))
        );
    }
    // Each camera card asks for its snapshot; while there is none the card says so.
    assert!(
        dom.contains(
            "data-src=\"/api/v1/homekit/cameras/garage/snapshot?width=320&amp;height=180\""
        ),
        "{}",
        fail("no snapshot thumbnail for garage")
    );
    // The test pattern's thumbnail is a picture; the unreachable RTSP camera's is a note.
    assert!(
        dom.contains("<img alt=\"Snapshot of Demo Camera\" src=\"blob:"),
        "{}",
        fail("no snapshot thumbnail of the test pattern")
    );
    assert!(
        dom.contains("180\">no snapshot"),
        "{}",
        fail("the camera without a snapshot has no note")
    );
    // The standalone camera pairs on its own: its code and QR code are on its card.
    let porch = bridge.api_get("/api/v1/homekit/cameras/porch").1;
    let porch_code = porch["setup_code"].as_str().unwrap();
    assert!(
        dom.contains(&format!("Pairs on its own: setup code {porch_code}")),
        "{}",
        fail("no setup code on the standalone camera's card")
    );
    assert!(
        dom.contains("<img class=\"cam-qr\" alt=\"Setup QR code of Porch\" src=\"blob:"),
        "{}",
        fail("no QR code on the standalone camera's card")
    );
    // Live streams: a table, or a note while the bridge has no stream statistics.
    assert!(
        dom.contains("No live streams.")
            || dom.contains("Live stream statistics are not available"),
        "{}",
        fail("no live streams section")
    );
    assert!(
        dom.contains("<form id=\"token-form\" hidden=\"\""),
        "{}",
        fail("the token form shows on loopback")
    );
    assert!(
        dom.contains(&format!(">{}<", bridge.hap.port())),
        "{}",
        fail("the HAP port is not in the status")
    );
    assert!(
        !dom.contains("s3cret"),
        "{}",
        fail("an RTSP password leaked")
    );
    assert!(
        dom.contains("id=\"error\"></p>") || dom.contains("id=\"error\" hidden=\"\""),
        "{}",
        fail("the page shows an error")
    );

    // The screenshot: a real PNG of the window's size, with the QR code readable in it.
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("page-unpaired.png");
    let _ = std::fs::remove_file(&shot);
    screenshot(&chromium, &tmp.0, &url, &shot);
    let bytes = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(bytes.len() > 20_000, "screenshot of {} bytes", bytes.len());
    let img = image::load_from_memory(&bytes).unwrap().to_luma8();
    assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
    let distinct: std::collections::BTreeSet<u8> = img.pixels().map(|p| p.0[0]).collect();
    assert!(distinct.len() > 16, "a nearly blank screenshot");
    let codes = decode_qrs(&img);
    assert!(
        codes.contains(&uri),
        "the bridge's QR code is not readable in the screenshot ({}): {codes:?}",
        shot.display()
    );
    show(&format!(
        "page test: screenshot {} ({} bytes)",
        shot.display(),
        bytes.len()
    ));

    // Paired: the page says so, without code or QR.
    let me = Identity::new(21);
    Conn::open(bridge.hap)
        .pair_setup(&me, SETUP_CODE, SrpPadding::Strip)
        .unwrap();
    let dom = dump_dom(&chromium, &tmp.0, &url);
    assert!(dom.contains("Paired."), "{dom}");
    assert!(
        dom.contains("id=\"error\"></p>"),
        "the page shows an error: {dom}"
    );
    assert!(
        dom.contains("<td>admin</td><td>bridge</td>"),
        "the pairing is listed: {dom}"
    );
    assert!(!dom.contains(SETUP_CODE), "{dom}");
    assert!(!dom.contains("id=\"qr\""), "{dom}");
}

#[test]
fn page_asks_for_the_token_when_the_api_needs_one() {
    let Some(chromium) = chromium() else {
        return;
    };
    let tmp = TempDir::new("page-token");
    // Off loopback the API requires a token; the page itself is served without one.
    let bridge = Bridge::start_with(&tmp.0, None, "0.0.0.0:0");
    let dom = dump_dom(&chromium, &tmp.0, &format!("{}/", bridge.api_base()));
    assert!(dom.contains("<form id=\"token-form\">"), "{dom}");
    assert!(dom.contains("The admin API needs a token."), "{dom}");
    assert!(!dom.contains(SETUP_CODE), "{dom}");
}

/// Finds Chromium: `$HAP_BRIDGE_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
/// Missing: `None` with a loud message, or a panic under CI.
fn chromium() -> Option<PathBuf> {
    let found = std::env::var_os("HAP_BRIDGE_CHROMIUM")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).find_map(|dir| {
                ["chromium", "chromium-browser"]
                    .iter()
                    .map(|name| dir.join(name))
                    .find(|p| p.is_file())
            })
        });
    if found.is_none() {
        let why = "headless Chromium not found (install Debian's `chromium`, as tests/run.sh \
                   does, or set HAP_BRIDGE_CHROMIUM)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{why}: the page test cannot be skipped under CI"
        );
        show(&format!(
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !!! SKIPPED the web page test: {why}\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        ));
    }
    found
}

/// The DOM after the page's scripts ran, without the text of its `<script>` and `<style>`
/// elements (so that a string the script merely contains does not count as shown).
fn dump_dom(chromium: &Path, tmp: &Path, url: &str) -> String {
    // The DOM is complete once its closing tag is out (Chromium prints it in one piece).
    let run = run_chromium(chromium, tmp, &["--dump-dom", url], |out| {
        String::from_utf8_lossy(out).contains("</html>")
    });
    assert!(run.done, "chromium --dump-dom failed:\n{}", run.err);
    let mut dom = run.out;
    for tag in ["script", "style"] {
        while let Some(start) = dom.find(&format!("<{tag}>")) {
            let close = format!("</{tag}>");
            let Some(len) = dom[start..].find(&close) else {
                break;
            };
            dom.replace_range(start..start + len + close.len(), "");
        }
    }
    dom
}

fn screenshot(chromium: &Path, tmp: &Path, url: &str, file: &Path) {
    let shot = format!("--screenshot={}", file.display());
    let size = format!("--window-size={WIDTH},{HEIGHT}");
    let run = run_chromium(chromium, tmp, &[&shot, &size, url], |_| png_complete(file));
    assert!(
        run.done && file.is_file(),
        "chromium --screenshot failed ({}):\n{}",
        match std::fs::metadata(file) {
            Ok(m) => format!(
                "{} has {} bytes, not a complete PNG",
                file.display(),
                m.len()
            ),
            Err(_) => format!("no {}", file.display()),
        },
        run.err
    );
}

/// Whether `file` holds a whole PNG: it ends with the IEND chunk (PNG spec §11.2.5), so the
/// browser has finished writing it.
fn png_complete(file: &Path) -> bool {
    const IEND: [u8; 12] = [0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82];
    std::fs::read(file).is_ok_and(|b| b.starts_with(b"\x89PNG") && b.ends_with(&IEND))
}

/// What a Chromium run produced.
struct ChromiumRun {
    /// It exited with 0, or its result was complete (it may hang on exit after writing it).
    done: bool,
    out: String,
    err: String,
}

/// Runs headless Chromium with `args` in its own process group. It is done when it exits, or
/// as soon as `finished(stdout so far)` says its result is complete: headless Chromium now
/// and then writes its screenshot or DOM and then never exits. The whole group is killed at
/// the end, or after [`CHROMIUM_TIMEOUT`].
fn run_chromium(
    chromium: &Path,
    tmp: &Path,
    args: &[&str],
    finished: impl Fn(&[u8]) -> bool,
) -> ChromiumRun {
    let profile = tmp.join("chromium-profile");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            // Time for the page's fetches to complete before the DOM or picture is taken.
            "--virtual-time-budget=8000",
            // A bound in real time as well: the budget is not one when virtual time stalls.
            "--timeout=40000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromium.display()));
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        collect(child.stdout.take().map(|s| Box::new(s) as _), out.clone()),
        collect(child.stderr.take().map(|s| Box::new(s) as _), err.clone()),
    ];
    let started = Instant::now();
    let outcome = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Ok(status.success() || finished(&out.lock().unwrap()));
        }
        if finished(&out.lock().unwrap()) {
            break Ok(true);
        }
        if started.elapsed() >= CHROMIUM_TIMEOUT {
            break Err(format!("killed after {CHROMIUM_TIMEOUT:?}"));
        }
        thread::sleep(Duration::from_millis(50));
    };
    // The browser's helper processes share its group: end them all (also after a normal exit).
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    for r in readers {
        let _ = r.join();
    }
    let text = |b: &Mutex<Vec<u8>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
    let (out, mut err) = (text(&out), text(&err));
    let done = match outcome {
        Ok(done) => done,
        Err(why) => {
            err.insert_str(0, &format!("{why}\n"));
            false
        }
    };
    if done && started.elapsed() > CHROMIUM_SLOW {
        show(&format!(
            "page test: chromium took {:?} for {args:?}",
            started.elapsed()
        ));
    }
    ChromiumRun { done, out, err }
}

/// Copies everything `from` yields into `into`, on a thread.
fn collect(
    from: Option<Box<dyn Read + Send>>,
    into: Arc<Mutex<Vec<u8>>>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let Some(mut from) = from else { return };
        let mut buf = [0u8; 8192];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

/// The texts of the QR codes found in a greyscale picture.
fn decode_qrs(img: &image::GrayImage) -> Vec<String> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        img.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    grids
        .iter()
        .filter_map(|g| g.decode().ok().map(|(_, text)| text))
        .collect()
}

/// Screenshot size.
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1300;
/// Longest a Chromium run may take (debug bridge, busy 2-core machine).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);
/// A Chromium run longer than this is reported (one normally takes ~10 s, most of it the
/// unreachable camera's snapshot request timing out).
const CHROMIUM_SLOW: Duration = Duration::from_secs(25);
