//! The GStreamer RTSP server fixture (`fixtures/rtsp_server.py` of this crate) as a child
//! process, used by media's runtime tests and the bridge's end-to-end tests.
//!
//! Besides the camera-like streams (`/main`, `/sub`, `/bframes`, `/stalls`) it serves scenes for
//! testing a motion detector ([`RtspServer::scene_url`]: `static`, `object`, `object-low`), each
//! session with its own timeline, and reports their changes as `EVENT <name> <unix time>
//! session=<n>` lines on its stdout, which [`RtspServer::wait_event`] waits for. The script's
//! docstring has the scenes' details and timings.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::time::{Duration, Instant};

const PACKAGES: &str = "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly \
                        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad";

/// A running RTSP server; killed on drop.
pub struct RtspServer {
    child: Child,
    /// `rtsp://127.0.0.1:PORT/main` (1920x1080@30).
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    /// Its stdout lines after the `URL` one.
    output: Arc<Output>,
}

/// The fixture's stdout lines after its `URL` line, filled by the thread draining its stdout.
#[derive(Default)]
struct Output {
    lines: Mutex<OutputLines>,
    /// Notified at each new line and at the end of the output.
    grew: Condvar,
}

#[derive(Default)]
struct OutputLines {
    lines: Vec<String>,
    /// The stdout closed (the fixture exited or was killed): no more lines.
    ended: bool,
}

impl Output {
    /// The lines, even after a panic elsewhere while they were locked (a line list stays valid).
    fn lock(&self) -> MutexGuard<'_, OutputLines> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: Option<String>) {
        let mut output = self.lock();
        match line {
            Some(line) => output.lines.push(line),
            None => output.ended = true,
        }
        self.grew.notify_all();
    }
}

/// `(name, unix time)` of an `EVENT <name> <unix time> ...` line; panics on an `EVENT` line
/// without a readable time (the fixture and this parser disagree).
fn parse_event(line: &str) -> Option<(&str, f64)> {
    let mut words = line.split_whitespace();
    if words.next()? != "EVENT" {
        return None;
    }
    let name = words.next()?;
    let time = words
        .next()
        .and_then(|time| time.parse().ok())
        .unwrap_or_else(|| panic!("malformed RTSP fixture line {line:?}"));
    Some((name, time))
}

impl RtspServer {
    /// Starts on a port the OS picks.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts on `port` (0: the OS picks).
    pub fn start_on(port: u16) -> Self {
        Self::spawn(port, None)
    }

    /// Starts with the main stream at `width`×`height` (the substream stays 640x360).
    pub fn start_sized(width: u32, height: u32) -> Self {
        Self::spawn(0, Some((width, height)))
    }

    fn spawn(port: u16, size: Option<(u32, u32)>) -> Self {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCRIPT);
        assert!(
            script.exists(),
            "the RTSP fixture {} is missing",
            script.display()
        );
        let mut command = Command::new("/usr/bin/python3");
        command.arg(script).arg("--port").arg(port.to_string());
        if let Some((w, h)) = size {
            command.args(["--width", &w.to_string(), "--height", &h.to_string()]);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run /usr/bin/python3 ({e}); install: apt-get install -y {PACKAGES}")
            });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let output = Arc::new(Output::default());
        let later = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            // Keeps the pipe drained and every later line for wait_event and friends.
            for line in lines.map_while(Result::ok) {
                later.push(Some(line));
            }
            later.push(None);
        });
        match rx.recv_timeout(STARTUP_LIMIT) {
            Ok(Some(line)) if line.starts_with("URL ") => {
                let url = line.trim_start_matches("URL ").trim().to_owned();
                let port = url
                    .trim_start_matches("rtsp://127.0.0.1:")
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .expect("port in fixture URL");
                Self {
                    child,
                    url,
                    port,
                    output,
                }
            }
            other => {
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    let _ = stderr.read_to_string(&mut err);
                }
                panic!(
                    "the GStreamer RTSP fixture did not start ({other:?}): {err}\n\
                     It needs: apt-get install -y {PACKAGES}"
                );
            }
        }
    }

    /// The 640x360 substream URL.
    pub fn sub_url(&self) -> String {
        self.url.replace("/main", "/sub")
    }

    /// The 640x360 stream whose pictures stop 3 s into each session while the session (RTCP
    /// reports included) goes on.
    pub fn stalls_url(&self) -> String {
        self.url.replace("/main", "/stalls")
    }

    /// The 640x360 stream with a 1 kHz sine audio track coded as `audio`: `aac` (AAC-LC
    /// 16 kHz, mpeg4-generic), `pcmu` (G.711 µ-law 8 kHz) or `opus` (48 kHz).
    pub fn av_url(&self, audio: &str) -> String {
        assert!(
            matches!(audio, "aac" | "pcmu" | "opus"),
            "the fixture has no /av-{audio} path"
        );
        self.url.replace("/main", &format!("/av-{audio}"))
    }

    /// The 1280x720 stream with two B-frames between reference pictures.
    pub fn bframes_url(&self) -> String {
        self.url.replace("/main", "/bframes")
    }

    /// The URL of a motion-detector scene (640x360@15, each session its own pipeline and
    /// timeline from its DESCRIBE; see the script's docstring), `name` being one of:
    /// - `static`: a still, detailed, noisy picture (every pixel flickers by a few luma levels
    ///   each frame) with lighting changes only: a slow brightness ramp from 6 s to 14 s
    ///   (event `static-ramp-start`), a sudden IR-like switch at 16 s (`static-ir-switch`);
    /// - `object`: the same picture with an 80x48 white object in the top band (y 30..78): still
    ///   for 4 s, then crossing the whole width in 3 s, still 8 s, crossing back, and so on
    ///   (event `object-move` at the first picture of every crossing);
    /// - `object-low`: the same with a black object in the bottom band (y 288..336, 0.8 to 0.93
    ///   of the height; event `object-low-move`).
    ///
    /// A leading `/scene/` in `name` is allowed.
    pub fn scene_url(&self, name: &str) -> String {
        let name = name.trim_start_matches("/scene/");
        assert!(
            matches!(name, "static" | "object" | "object-low"),
            "the RTSP fixture has no scene {name:?}"
        );
        self.url.replace("/main", &format!("/scene/{name}"))
    }

    /// The number of stdout lines the fixture printed after its `URL` line so far: a mark to
    /// pass to [`Self::wait_event`] to wait only for events printed from now on.
    pub fn output_len(&self) -> usize {
        self.output.lock().lines.len()
    }

    /// A copy of the stdout lines the fixture printed after its `URL` line so far (`EVENT`
    /// lines include the session number: `EVENT <name> <unix time> session=<n>`).
    pub fn output_lines(&self) -> Vec<String> {
        self.output.lock().lines.clone()
    }

    /// The `EVENT <name> ...` lines printed so far, as `(line index, unix time in seconds)`, in
    /// order. Every session of a scene prints its own.
    pub fn events(&self, name: &str) -> Vec<(usize, f64)> {
        let output = self.output.lock();
        output
            .lines
            .iter()
            .enumerate()
            .filter_map(|(index, line)| match parse_event(line) {
                Some((event, time)) if event == name => Some((index, time)),
                _ => None,
            })
            .collect()
    }

    /// Waits up to `timeout` for the first `EVENT <name> <unix time> ...` line (see
    /// [`Self::scene_url`] for the names) at line index `from` or later (0: any; a mark from
    /// [`Self::output_len`]: only later ones), and returns its `(line index, unix time in
    /// seconds)`, the time the fixture made the change (its pictures reach a client some 0.2 s
    /// later). The next one: `wait_event(name, index + 1, ..)`. `None` once `timeout` passed or
    /// the fixture's output ended without one.
    pub fn wait_event(&self, name: &str, from: usize, timeout: Duration) -> Option<(usize, f64)> {
        let deadline = Instant::now() + timeout;
        let mut output = self.output.lock();
        let mut next = from;
        loop {
            while let Some(line) = output.lines.get(next) {
                match parse_event(line) {
                    Some((event, time)) if event == name => return Some((next, time)),
                    _ => next += 1,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if output.ended || left.is_zero() {
                return None;
            }
            output = self
                .output
                .grew
                .wait_timeout(output, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Freezes (`true`, SIGSTOP) or thaws (`false`, SIGCONT) the server: connections stay open
    /// but nothing flows, like a hung camera.
    pub fn freeze(&self, frozen: bool) {
        let signal = if frozen { "-STOP" } else { "-CONT" };
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// Kills the server (as if the camera lost power).
    pub fn kill(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixture script, relative to this crate's manifest directory.
const SCRIPT: &str = "fixtures/rtsp_server.py";
/// GStreamer start-up on a loaded 2-core machine can take a few seconds.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
