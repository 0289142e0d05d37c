//! Starting the bridge binary, talking to its admin API, and running outside peers.
//!
//! [`Bridge::start`] runs the binary built by Cargo (named by a [`BridgeBinary`]: only the root
//! package's tests and benches have `env!("CARGO_BIN_EXE_hap-bridge")`) in a fresh temporary
//! data directory, bound to 127.0.0.1 with OS-chosen ports and mDNS limited to loopback, and
//! waits for the two "listening on" lines on its stdout. Everything it prints is kept ([`Bridge::output`]) for
//! failure messages. Dropping the [`Bridge`] sends SIGTERM, then kills it after a grace period.
//! [`http`] is a tiny blocking HTTP client for the admin API; [`python`] finds the interpreter
//! of the test venv (aiohomekit); [`run_with_timeout`] runs a peer process with a time limit.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The setup code every test bridge uses (HAP's own example code).
pub const SETUP_CODE: &str = "031-45-154";

/// Where the bridge binary is. The root package's tests and benches implement it on a marker type
/// with `env!("CARGO_BIN_EXE_hap-bridge")` and name `Bridge<ThatType>` with a type alias.
pub trait BridgeBinary {
    /// The path of the `hap-bridge` executable.
    const PATH: &'static str;
}

/// A running bridge (the binary `B` names); SIGTERM then kill on drop.
pub struct Bridge<B> {
    child: Option<Child>,
    /// The HAP server's address.
    pub hap: SocketAddr,
    /// The admin API's address.
    pub api: SocketAddr,
    /// The directory holding the config file and the state directory (`state/`).
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    /// The admin API token, when the bridge printed one (first start off loopback).
    pub printed_token: Option<String>,
    /// Whether the bridge started with HomeKit disabled.
    pub started_disabled: bool,
    _tmp: Option<TempDir>,
    _binary: PhantomData<fn() -> B>,
}

impl<B: BridgeBinary> Bridge<B> {
    /// Starts the bridge with the demo camera in a fresh data directory.
    pub fn start() -> Self {
        let tmp = TempDir::new("bridge");
        let mut b = Self::start_in(&tmp.0, None);
        b._tmp = Some(tmp);
        b
    }

    /// Starts the bridge on `data_dir` (kept; restart tests reuse it) with a config file body
    /// (`None`: [`default_config`]). Panics with the bridge's output if it does not come up.
    pub fn start_in(data_dir: &Path, config: Option<&str>) -> Self {
        Self::start_with(data_dir, config, "127.0.0.1:0")
    }

    /// Starts the bridge with its admin API on `api_addr` (a non-loopback bind needs a token).
    pub fn start_with(data_dir: &Path, config: Option<&str>, api_addr: &str) -> Self {
        Self::start_bound(data_dir, config, api_addr, "127.0.0.1")
    }

    /// Starts the bridge with its HAP servers bound to `bind` (e.g. `::1`).
    pub fn start_bound(data_dir: &Path, config: Option<&str>, api_addr: &str, bind: &str) -> Self {
        let config_path = data_dir.join("e2e-config.toml");
        let body = config.map_or_else(default_config, str::to_owned);
        std::fs::write(&config_path, body).unwrap();
        let mut child = Command::new(B::PATH)
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir.join("state"))
            .args(["--hap-port", "0", "--api-addr", api_addr, "--bind", bind])
            .args(["--setup-code", SETUP_CODE])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start hap-bridge");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out_log = Arc::clone(&log);
        thread::spawn(move || {
            // Keeps draining stdout after the addresses are known, so the child never blocks.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut l) = out_log.lock() {
                    l.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().unwrap();
        let err_log = Arc::clone(&log);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = err_log.lock() {
                    l.push(format!("[stderr] {line}"));
                }
            }
        });

        let deadline = Instant::now() + STARTUP;
        let (mut hap, mut api): (Option<SocketAddr>, Option<SocketAddr>) = (None, None);
        let mut printed_token = None;
        let mut started_disabled = false;
        while hap.is_none() || api.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(HAP_LINE) {
                        hap = Some(parse_addr(rest, &line));
                    } else if let Some(rest) = line.strip_prefix(HAP_DISABLED_LINE) {
                        hap = Some(parse_addr(rest, &line));
                        started_disabled = true;
                    } else if let Some(rest) = line.strip_prefix(TOKEN_LINE) {
                        printed_token = Some(rest.trim().to_owned());
                    } else if let Some(rest) = line.strip_prefix(API_LINE) {
                        api = Some(parse_addr(rest, &line));
                    }
                }
                Err(why) => startup_failed(&mut child, why, &log),
            }
        }
        let (Some(mut hap), Some(mut api)) = (hap, api) else {
            unreachable!("the loop only ends with both addresses")
        };
        for addr in [&mut hap, &mut api] {
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
        }
        Self {
            child: Some(child),
            hap,
            api,
            data_dir: data_dir.to_owned(),
            log,
            printed_token,
            started_disabled,
            _tmp: None,
            _binary: PhantomData,
        }
    }
}

impl<B> Bridge<B> {
    /// SIGTERM and wait for a clean exit; true when it exited with status 0 in time.
    pub fn stop(&mut self) -> bool {
        self.stop_status().is_some_and(|s| s.success())
    }

    /// SIGTERM and wait; the exit status, or `None` if it had to be killed after the grace
    /// period (or was already stopped).
    pub fn stop_status(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The process id of the running binary (for /proc readings).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET` on the admin API: (status, JSON body).
    pub fn api_get(&self, path: &str) -> (u16, serde_json::Value) {
        http(self.api, "GET", path, None)
    }

    /// `POST` JSON on the admin API: (status, JSON body).
    pub fn api_post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        http(self.api, "POST", path, Some(body))
    }

    /// Any request on the admin API with an optional bearer token: (status, raw body).
    pub fn api_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Vec<u8>) {
        http_raw(self.api, method, path, body, token)
    }

    /// `GET /api/v1/homekit/status`, asserting 200.
    pub fn status(&self) -> serde_json::Value {
        let (code, body) = self.api_get("/api/v1/homekit/status");
        assert_eq!(code, 200, "GET /api/v1/homekit/status: {body}");
        body
    }

    /// `http://127.0.0.1:<port>` of the admin API.
    pub fn api_base(&self) -> String {
        format!("http://{}", self.api)
    }

    /// Everything the bridge printed so far, stdout and (`[stderr]`-tagged) stderr.
    pub fn output(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    /// The address and setup code the standalone camera `id` (named `name`) printed: the last
    /// "listening on" line after the first `after` lines of output (waits up to 10 s).
    pub fn standalone_server(&self, id: &str, name: &str, after: usize) -> (SocketAddr, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = self.output();
            let lines: Vec<&str> = out.lines().skip(after).collect();
            let prefix = format!("hap-bridge: HAP server camera:{id} listening on ");
            let addr = lines.iter().rev().find_map(|l| {
                l.strip_prefix(prefix.as_str())
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            });
            let code_prefix = format!("{name}: not paired. Setup code ");
            let code = out.lines().find_map(|l| {
                l.strip_prefix(code_prefix.as_str())
                    .map(|r| r[..10].to_owned())
            });
            if let (Some(addr), Some(code)) = (addr, code) {
                return (addr, code);
            }
            assert!(Instant::now() < deadline, "no server for {id} in:\n{out}");
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl<B> Drop for Bridge<B> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The config every test bridge starts with: mDNS on loopback only, the demo camera.
pub fn default_config() -> String {
    "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[[cameras]]\nid = \"demo\"\nname = \"Demo Camera\"\n\
     source = \"test-pattern\"\n"
        .to_owned()
}

/// A minimal blocking HTTP/1.1 client for the admin API (`Connection: close`; Content-Length,
/// chunked or read-to-EOF bodies): (status, JSON body or `Null`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, text) = http_text(addr, method, path, body)
        .unwrap_or_else(|e| panic!("admin API {method} {path}: {e}"));
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// A minimal HTTP/1.1 request with an optional bearer token: (status, body bytes).
pub fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).unwrap();
    s.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    let body = body.unwrap_or("");
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = Vec::new();
    // The server may close early (e.g. 413 before the body is read): keep what arrived.
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let start = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |i| i + 4);
    (status, resp[start..].to_vec())
}

/// [`http`] with the body as text, and errors as values.
pub fn http_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(HTTP_TIMEOUT)).ok();
    s.set_write_timeout(Some(HTTP_TIMEOUT)).ok();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of head in {:?}", String::from_utf8_lossy(&raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
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
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The Python interpreter with aiohomekit: `$HAP_BRIDGE_PYTHON`, else `<repo>/.venv/bin/python`.
/// Panics (the test fails) when it is missing or lacks aiohomekit.
pub fn python() -> PathBuf {
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
         .venv with aiohomekit), or point HAP_BRIDGE_PYTHON at a python that has \
         `aiohomekit>=4,<5`",
        python.display()
    );
    python
}

/// The repository root (the root package's manifest directory, the parent of this crate's).
pub fn repo_root() -> &'static Path {
    let support = Path::new(env!("CARGO_MANIFEST_DIR"));
    support.parent().unwrap_or(support)
}

/// Runs `cmd` with a time limit, killing it on timeout. Returns the exit status (`None` on
/// timeout), its stdout lines and its stderr text.
pub fn run_with_timeout(
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
pub fn show(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `<tmp>/hap-bridge-e2e-<tag>-<pid>-<n>-<nanos>`.
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "hap-bridge-e2e-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The bridge exited, closed stdout or timed out before printing both addresses: fail with what
/// it printed.
fn startup_failed(child: &mut Child, why: RecvTimeoutError, log: &Mutex<Vec<String>>) -> ! {
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
        (RecvTimeoutError::Timeout, None) => format!("printed nothing useful for {STARTUP:?}"),
        (RecvTimeoutError::Disconnected, None) => "closed its stdout".to_owned(),
    };
    let output = log.lock().map(|l| l.join("\n")).unwrap_or_default();
    panic!(
        "hap-bridge {what} before printing both addresses ({HAP_LINE:?}, {API_LINE:?}); \
         its output:\n{output}"
    );
}

fn parse_addr(rest: &str, line: &str) -> SocketAddr {
    let s = rest.trim();
    let s = s.strip_prefix("http://").unwrap_or(s).trim_end_matches('/');
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
        body.extend_from_slice(rest.get(..size).ok_or("truncated chunk")?);
        rest = rest.get(size + 2..).ok_or("chunk without trailing CRLF")?;
    }
}

/// The stdout line prefixes of the binary's contract.
const HAP_LINE: &str = "hap-bridge: HAP server bridge listening on ";
const API_LINE: &str = "hap-bridge: admin API listening on ";
const HAP_DISABLED_LINE: &str = "hap-bridge: HAP server bridge disabled on ";
const TOKEN_LINE: &str = "hap-bridge: admin API token: ";
/// How long the binary may take to print its addresses (debug build, busy 2-core machine).
const STARTUP: Duration = Duration::from_secs(30);
/// How long SIGTERM may take before the bridge is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
