//! The pipelines under test, each a child process started against the same RTSP source and
//! SRTP destination. Another pipeline (e.g. the whole bridge driven over HAP) plugs in by
//! implementing [`Pipeline`].

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where and how a pipeline sends.
pub(crate) struct Target {
    /// `rtsp://127.0.0.1:PORT/bench`.
    pub(crate) source_url: String,
    /// The receiver's UDP address.
    pub(crate) dest: SocketAddr,
    /// Base64 of the 16-byte SRTP master key + 14-byte salt (ffmpeg's `-srtp_out_params`).
    pub(crate) srtp_params: String,
    pub(crate) ssrc: u32,
}

/// A started pipeline.
pub(crate) struct Running {
    pub(crate) child: Child,
    /// Just before the process was spawned: the origin of the cold figures.
    pub(crate) spawned: Instant,
    /// When the process said the stream session starts (warm start); the origin of the warm
    /// figures.
    pub(crate) session_start: Arc<Mutex<Option<Instant>>>,
    /// The last lines of its stderr, for diagnostics.
    pub(crate) log: Arc<Mutex<VecDeque<String>>>,
}

impl Running {
    /// Spawns `cmd` with stderr watched for `start_line`.
    pub(crate) fn spawn(mut cmd: Command, start_line: Option<&'static str>) -> Self {
        // LATENCY_BENCH_VERBOSE=1 shows what the pipelines print (hap-bridge: its own figures).
        let stdout = if std::env::var_os("LATENCY_BENCH_VERBOSE").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped());
        let spawned = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let session_start = Arc::new(Mutex::new(None));
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let stderr = child.stderr.take().unwrap();
        let (s, l) = (Arc::clone(&session_start), Arc::clone(&log));
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let at = Instant::now();
                if start_line.is_some_and(|m| line.contains(m)) {
                    s.lock().unwrap().get_or_insert(at);
                }
                let mut l = l.lock().unwrap();
                if l.len() == LOG_LINES {
                    l.pop_front();
                }
                l.push_back(line);
            }
        });
        Self {
            child,
            spawned,
            session_start,
            log,
        }
    }

    /// The warm-start instant, waiting up to `limit` for it.
    pub(crate) fn wait_session_start(&self, limit: Duration) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(t) = *self.session_start.lock().unwrap() {
                return Some(t);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(crate) fn log_tail(&self) -> String {
        self.log
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A pipeline under test.
pub(crate) trait Pipeline {
    /// Row label.
    fn name(&self) -> String;
    /// Whether [`Pipeline::start`] with `warm` waits for a warm source and then marks the
    /// session start (`Running::session_start`).
    fn warm_start(&self) -> bool;
    /// Starts streaming `target`'s source to its destination.
    fn start(&self, target: &Target, warm: bool) -> Running;
}

/// `hap-bridge stream` (our pipeline), release build.
pub(crate) struct HapBridgeStream {
    pub(crate) size: (u32, u32),
    pub(crate) mode: &'static str,
    /// Seconds of `--warm-up` for warm starts.
    pub(crate) warm_up_secs: f64,
}

impl Pipeline for HapBridgeStream {
    fn name(&self) -> String {
        format!("hap-bridge {} {}x{}", self.mode, self.size.0, self.size.1)
    }

    fn warm_start(&self) -> bool {
        true
    }

    fn start(&self, t: &Target, warm: bool) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hap-bridge"));
        cmd.arg("stream")
            .args(["--rtsp", &t.source_url])
            .args(["--dest", &t.dest.to_string()])
            .args(["--srtp-key", &t.srtp_params])
            .args(["--ssrc", &t.ssrc.to_string(), "--pt", "99"])
            .args(["--size", &format!("{}x{}", self.size.0, self.size.1)])
            .args(["--fps", "30", "--kbps", "2000", "--mtu", "1378"])
            .args(["--mode", self.mode])
            .env("RUST_LOG", "warn");
        if warm {
            cmd.args(["--warm-up", &self.warm_up_secs.to_string()]);
        }
        Running::spawn(cmd, Some("hap-bridge stream: session start"))
    }
}

/// The old pipeline: one ffmpeg per stream, re-encoding with libx264 (exactly the command of
/// issue 6), or copying (`-vcodec copy`) for reference.
pub(crate) struct Ffmpeg {
    pub(crate) copy: bool,
}

impl Pipeline for Ffmpeg {
    fn name(&self) -> String {
        if self.copy {
            "ffmpeg -vcodec copy".into()
        } else {
            "ffmpeg libx264 (old pipeline)".into()
        }
    }

    fn warm_start(&self) -> bool {
        false
    }

    fn start(&self, t: &Target, _warm: bool) -> Running {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(["-rtsp_transport", "tcp", "-i", &t.source_url, "-an"]);
        if self.copy {
            cmd.args(["-vcodec", "copy"]);
        } else {
            cmd.args([
                "-vcodec",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-profile:v",
                "baseline",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-b:v",
                "2000k",
                "-bufsize",
                "2000k",
                "-maxrate",
                "2000k",
            ]);
        }
        cmd.args(["-payload_type", "99", "-ssrc", &t.ssrc.to_string()])
            .args(["-f", "rtp", "-srtp_out_suite", "AES_CM_128_HMAC_SHA1_80"])
            .args(["-srtp_out_params", &t.srtp_params])
            .arg(format!(
                "srtp://{}?rtcpport={}&pkt_size=1378",
                t.dest,
                t.dest.port()
            ));
        Running::spawn(cmd, None)
    }
}

const LOG_LINES: usize = 20;
