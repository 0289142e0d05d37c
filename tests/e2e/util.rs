//! Starting the bridge binary and talking to its admin API.
// Shared helpers: not every test module uses every one.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The setup code every test bridge uses.
pub(crate) const SETUP_CODE: &str = "031-45-154";

/// A running bridge; SIGTERM then kill on drop.
pub(crate) struct Bridge {
    child: Option<Child>,
    pub(crate) hap: SocketAddr,
    pub(crate) api: SocketAddr,
    pub(crate) data_dir: PathBuf,
    _tmp: Option<TempDir>,
}

/// A temporary directory removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "hap-bridge-e2e-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(rand_u64())
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

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher as _, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Bridge {
    /// Starts the bridge with no config (the demo camera) in a fresh data directory.
    pub(crate) fn start() -> Self {
        let tmp = TempDir::new("bridge");
        let dir = tmp.0.clone();
        let mut b = Self::start_in(&dir, None);
        b._tmp = Some(tmp);
        b
    }

    /// Starts the bridge on `data_dir` with an optional config file body.
    pub(crate) fn start_in(data_dir: &Path, config: Option<&str>) -> Self {
        let config_path = data_dir.join("e2e-config.toml");
        let body = config.map_or_else(default_config, str::to_owned);
        std::fs::write(&config_path, body).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hap-bridge"))
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir.join("state"))
            .args([
                "--hap-port",
                "0",
                "--api-addr",
                "127.0.0.1:0",
                "--bind",
                "127.0.0.1",
            ])
            .args(["--setup-code", SETUP_CODE])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start hap-bridge");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut hap = None;
        let mut api = None;
        let deadline = Instant::now() + STARTUP;
        while hap.is_none() || api.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("hap-bridge did not print its addresses within {STARTUP:?}")
            });
            if let Some(rest) = line.strip_prefix("hap-bridge: HAP server bridge listening on ") {
                hap = Some(rest.trim().parse().unwrap());
            }
            if let Some(rest) = line.strip_prefix("hap-bridge: admin API listening on http://") {
                api = Some(rest.trim().parse().unwrap());
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Self {
            child: Some(child),
            hap: hap.unwrap(),
            api: api.unwrap(),
            data_dir: data_dir.to_owned(),
            _tmp: None,
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status success.
    pub(crate) fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The process id of the running binary (for /proc readings).
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET` on the admin API: (status, JSON body).
    pub(crate) fn api_get(&self, path: &str) -> (u16, serde_json::Value) {
        http(self.api, "GET", path, None)
    }

    /// `POST` JSON on the admin API: (status, JSON body).
    pub(crate) fn api_post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        http(self.api, "POST", path, Some(body))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The config every test bridge starts with: mDNS on loopback only.
pub(crate) fn default_config() -> String {
    "[bridge]\nmdns_interfaces = [\"lo\"]\n\n[[cameras]]\nid = \"demo\"\nname = \"Demo Camera\"\nsource = \"test-pattern\"\n".to_owned()
}

/// A minimal HTTP/1.1 client for the admin API.
pub(crate) fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    let status: u16 = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap();
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// How long the binary may take to print its addresses.
const STARTUP: Duration = Duration::from_secs(30);
