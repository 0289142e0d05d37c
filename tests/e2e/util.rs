//! Running the real `hap-bridge` binary for end-to-end tests.
//!
//! [`Bridge::start`] runs the binary built by Cargo in a fresh temporary data directory, bound to
//! 127.0.0.1 with OS-chosen ports and mDNS limited to loopback, and waits for the two
//! "listening on" lines on its stdout. Dropping the [`Bridge`] sends SIGTERM, then kills it after
//! a grace period, and removes the data directory. [`Bridge::api`] is a tiny blocking HTTP client
//! for the admin API. [`python`] finds the interpreter of the test venv (aiohomekit).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The setup code tests pair with (HAP's own example code).
pub(crate) const SETUP_CODE: &str = "031-45-154";

/// What to run; [`BridgeOptions::default`] is the demo camera config of the contract.
#[derive(Clone, Debug)]
pub(crate) struct BridgeOptions {
    /// TOML appended to the generated config after `[bridge]` (cameras, timings).
    pub(crate) config_tail: String,
    /// `--setup-code`.
    pub(crate) setup_code: String,
    /// Extra command-line arguments.
    pub(crate) args: Vec<String>,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        Self {
            config_tail: DEMO_CAMERA.to_owned(),
            setup_code: SETUP_CODE.to_owned(),
            args: Vec::new(),
        }
    }
}

/// A running bridge; SIGTERMed (then killed) and its data directory removed on drop.
pub(crate) struct Bridge {
    child: Child,
    /// The HAP server's address.
    pub(crate) hap: SocketAddr,
    /// The admin API's address.
    pub(crate) api: SocketAddr,
    /// The setup code it was started with.
    pub(crate) setup_code: String,
    dir: TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl Bridge {
    /// Starts the demo bridge (aid 1 + bridged camera `demo`).
    pub(crate) fn start() -> Self {
        Self::start_with(&BridgeOptions::default())
    }

    /// Starts a bridge with `opts`; panics with the bridge's output if it does not come up.
    pub(crate) fn start_with(opts: &BridgeOptions) -> Self {
        let dir = TempDir::new("bridge");
        let config = dir.path().join("bridge.toml");
        // mDNS on loopback only: the tests must not announce anything on the machine's network.
        let text = format!(
            "[bridge]\nmdns_interfaces = [\"lo\"]\n\n{}",
            opts.config_tail
        );
        std::fs::write(&config, text).unwrap();
        let data = dir.path().join("data");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hap-bridge"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--hap-port",
                "0",
                "--api-addr",
                "127.0.0.1:0",
                "--bind",
                "127.0.0.1",
            ])
            .args(["--setup-code", &opts.setup_code])
            .args(&opts.args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = pump_stdout(child.stdout.take().unwrap(), Arc::clone(&log));
        pump_stderr(child.stderr.take().unwrap(), Arc::clone(&log));

        let deadline = Instant::now() + START_TIMEOUT;
        let (mut hap, mut api) = (None, None);
        while hap.is_none() || api.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(HAP_LINE) {
                        hap = Some(parse_addr(rest.trim(), &line));
                    } else if let Some(rest) = line.strip_prefix(API_LINE) {
                        api = Some(parse_addr(rest.trim(), &line));
                    }
                }
                Err(why) => {
                    // Disconnected: stdout closed, the process is exiting; give it a moment.
                    let wait_until = Instant::now() + Duration::from_secs(2);
                    let mut status = child.try_wait().ok().flatten();
                    while status.is_none() && Instant::now() < wait_until {
                        thread::sleep(Duration::from_millis(20));
                        status = child.try_wait().ok().flatten();
                    }
                    let _ = child.kill();
                    let _ = child.wait();
                    thread::sleep(Duration::from_millis(50)); // let the stderr pump catch up
                    let what = match (why, status) {
                        (_, Some(status)) => format!("exited ({status})"),
                        (RecvTimeoutError::Timeout, None) => {
                            format!("timed out ({START_TIMEOUT:?})")
                        }
                        (RecvTimeoutError::Disconnected, None) => "closed its stdout".to_owned(),
                    };
                    panic!(
                        "hap-bridge {what} before printing both listening lines \
                         ({HAP_LINE:?}, {API_LINE:?}); its output:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
        }
        let (Some(hap), Some(api)) = (hap, api) else {
            unreachable!("the loop only ends with both addresses")
        };
        Self {
            child,
            hap,
            api,
            setup_code: opts.setup_code.clone(),
            dir,
            log,
        }
    }

    /// `http://127.0.0.1:<port>` of the admin API.
    pub(crate) fn api_base(&self) -> String {
        format!("http://{}", self.api)
    }

    /// One admin API request (`body` as JSON when given).
    pub(crate) fn api(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        http_request(self.api, method, path, body)
            .unwrap_or_else(|e| panic!("admin API {method} {path}: {e}\n{}", self.output()))
    }

    /// `GET /api/v1/homekit/status` as JSON.
    pub(crate) fn status(&self) -> serde_json::Value {
        let resp = self.api("GET", "/api/v1/homekit/status", None);
        assert_eq!(resp.status, 200, "status: {resp:?}");
        resp.json()
    }

    /// The data directory given to the binary.
    #[allow(dead_code)] // for the other e2e modules (restart/persistence tests)
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the bridge printed so far (stdout and stderr, in arrival order per stream).
    pub(crate) fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// SIGTERM, then waits up to the grace period (kills after it); returns the exit status.
    pub(crate) fn stop(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let status = self.child.wait().unwrap();
        panic!(
            "hap-bridge ignored SIGTERM for {STOP_GRACE:?} and was killed ({status}); output:\n{}",
            self.output()
        );
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A response of [`http_request`].
#[derive(Debug)]
pub(crate) struct HttpResponse {
    /// Status code.
    pub(crate) status: u16,
    /// Body text.
    pub(crate) body: String,
}

impl HttpResponse {
    /// The body parsed as JSON (panics with the body if it is not).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// A blocking HTTP/1.1 request with `Connection: close`; handles Content-Length, chunked and
/// read-to-EOF bodies.
pub(crate) fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<HttpResponse, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).ok();
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).ok();
    let body = body.unwrap_or("");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !body.is_empty() || method != "GET" {
        req.push_str("Content-Type: application/json\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| format!("bad Content-Length {len}"))?;
        rest.get(..len)
            .ok_or_else(|| format!("body shorter than Content-Length {len}"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// The Python interpreter with aiohomekit: `$HAP_BRIDGE_PYTHON`, else `<repo>/.venv/bin/python`.
/// Panics (the test fails) when it is missing or lacks aiohomekit.
pub(crate) fn python() -> PathBuf {
    let (python, origin) = match std::env::var_os("HAP_BRIDGE_PYTHON") {
        Some(p) => (PathBuf::from(p), "HAP_BRIDGE_PYTHON"),
        None => (
            repo_root().join(".venv/bin/python"),
            "the repository's .venv",
        ),
    };
    let ok = Command::new(&python)
        .args(["-c", "import aiohomekit"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no Python with aiohomekit at {} ({origin}): run `bash tests/run.sh` once (it creates \
         .venv with aiohomekit), or point HAP_BRIDGE_PYTHON at a python that has `aiohomekit>=4,<5`",
        python.display()
    );
    python
}

/// The repository root (the root package's manifest directory).
pub(crate) fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `cmd` with a time limit, collecting stdout lines as they come; kills it on timeout.
/// Returns the exit status (`None` on timeout), stdout lines and stderr text.
pub(crate) fn run_with_timeout(
    cmd: &mut Command,
    limit: Duration,
) -> (Option<ExitStatus>, Vec<String>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let err_thread = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let lines = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    (status, lines, stderr)
}

/// Writes straight to the process's stderr, bypassing libtest's capture, so that figures show in
/// the output of passing tests too.
pub(crate) fn show(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/hap-bridge-e2e-<label>-<pid>-<n>-<nanos>`.
    pub(crate) fn new(label: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "hap-bridge-e2e-{label}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pump_stdout(out: ChildStdout, log: Arc<Mutex<Vec<String>>>) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Ok(mut l) = log.lock() {
                l.push(line.clone());
            }
            // The receiver goes away once both addresses are known; keep draining the pipe.
            let _ = tx.send(line);
        }
    });
    rx
}

fn pump_stderr(err: impl std::io::Read + Send + 'static, log: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if let Ok(mut l) = log.lock() {
                l.push(format!("[stderr] {line}"));
            }
        }
    });
}

fn parse_addr(s: &str, line: &str) -> SocketAddr {
    let s = s.strip_prefix("http://").unwrap_or(s);
    let s = s
        .split_whitespace()
        .next()
        .unwrap_or(s)
        .trim_end_matches('/');
    s.parse()
        .unwrap_or_else(|e| panic!("bad address {s:?} in line {line:?}: {e}"))
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line without CRLF")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("chunk without trailing CRLF")?;
    }
}

/// The bridged demo camera of the contract (what the binary serves without `--config`).
pub(crate) const DEMO_CAMERA: &str = "[[cameras]]\nid = \"demo\"\nname = \"Demo Camera\"\n\
                                      source = \"test-pattern\"\n";
/// The stdout line prefixes of the binary's contract.
const HAP_LINE: &str = "hap-bridge: HAP server bridge listening on ";
const API_LINE: &str = "hap-bridge: admin API listening on ";
/// How long the binary may take to print both lines (a debug build on a busy 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long SIGTERM may take before the bridge is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
