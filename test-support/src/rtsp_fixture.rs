//! The GStreamer RTSP server fixture (`fixtures/rtsp_server.py` of this crate) as a child
//! process, used by media's runtime tests and the bridge's end-to-end tests.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PACKAGES: &str = "gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-ugly \
                        gstreamer1.0-plugins-good gstreamer1.0-plugins-bad";

/// A running RTSP server; killed on drop.
pub struct RtspServer {
    child: Child,
    /// `rtsp://127.0.0.1:PORT/main` (1920x1080@30).
    pub url: String,
    /// The port it listens on.
    pub port: u16,
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
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {} // keep the pipe drained
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
                Self { child, url, port }
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

    /// The 1280x720 stream with two B-frames between reference pictures.
    pub fn bframes_url(&self) -> String {
        self.url.replace("/main", "/bframes")
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
