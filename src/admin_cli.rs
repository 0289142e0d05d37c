//! `hap-bridge qr [--camera ID]` and `hap-bridge pairings ...`.
//!
//! The running bridge holds the state store's lock, so `pairings` talks to its admin API
//! (`--api-addr`, token from `--api-token` or `HAP_BRIDGE_API_TOKEN`). `qr` (the bridge's, or
//! with `--camera ID` a standalone camera's) reads the store when no bridge runs, and asks the
//! admin API when one does.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use hap_proto::setup::{Category, setup_uri};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value as Json;

use crate::cli::{Cli, PairingsAction};
use crate::config::{CameraMode, Config};
use crate::store::{self, ServerKey, Store};

/// `hap-bridge pairings ...` against the running bridge.
pub(crate) fn pairings(cli: &Cli, action: &PairingsAction) -> anyhow::Result<()> {
    let api = ApiClient::new(cli);
    match action {
        PairingsAction::List => {
            let list = api.json("GET", "/api/v1/homekit/pairings", None)?;
            let pairings = list["pairings"].as_array().cloned().unwrap_or_default();
            if pairings.is_empty() {
                println!("no pairings");
            }
            for p in pairings {
                println!(
                    "{}\t{}\t{}",
                    p["id"].as_str().unwrap_or("?"),
                    if p["admin"] == true { "admin" } else { "user" },
                    p["server"].as_str().unwrap_or("?"),
                );
            }
        }
        PairingsAction::Remove { id } => {
            let reply = api.json(
                "DELETE",
                &format!("/api/v1/homekit/pairings/{}", percent_encode(id)),
                None,
            )?;
            print_removed(&reply);
        }
        PairingsAction::Reset { yes } => {
            if !yes {
                anyhow::bail!(
                    "pairings reset removes every pairing (the Home app loses the accessories): \
                     run it again with --yes"
                );
            }
            let reply = api.json(
                "POST",
                "/api/v1/homekit/pairings/reset",
                Some(r#"{"confirm": true}"#),
            )?;
            print_removed(&reply);
        }
    }
    Ok(())
}

fn print_removed(reply: &Json) {
    for id in reply["removed"].as_array().into_iter().flatten() {
        println!("removed {}", id.as_str().unwrap_or("?"));
    }
    for server in reply["now_unpaired"].as_array().into_iter().flatten() {
        println!("{} is unpaired now", server.as_str().unwrap_or("?"));
    }
}

/// `hap-bridge qr [--camera ID]`: the setup code, URI and QR code of the bridge (or of a
/// standalone camera), from the store or the running bridge.
pub(crate) fn qr(cli: &Cli, config: &Config, camera: Option<&str>) -> anyhow::Result<()> {
    let what = camera.map_or_else(|| "the bridge".to_owned(), |id| format!("camera {id:?}"));
    let paired = || {
        println!("{what} is paired: the setup code is only shown while unpaired");
        Ok(())
    };
    let (code, uri) = match Store::open_existing(&config.bridge.data_dir) {
        Ok(store) => {
            let (key, category) = match camera {
                None => (ServerKey::Bridge, Category::BRIDGE),
                Some(id) => (
                    ServerKey::Camera(id.to_owned()),
                    standalone(config, &store, id)?,
                ),
            };
            let Some(record) = store.server_record(&key)? else {
                anyhow::bail!(
                    "{}: no identity for {what} yet; start the bridge once to create it",
                    store.path().display()
                );
            };
            if !store.pairings(&key)?.is_empty() {
                return paired();
            }
            let (code, id) = crate::setup_adapter::parse(&record.setup, &key.as_db())?;
            let uri = setup_uri(&code, &id, category);
            (code.as_str().to_owned(), uri)
        }
        Err(store::Error::Locked { path }) => {
            eprintln!(
                "hap-bridge: the bridge is running (it holds the lock on {}); asking its admin \
                 API at {}",
                path.display(),
                cli.api_addr
            );
            let api = ApiClient::new(cli);
            let reply = match camera {
                None => api.json("GET", "/api/v1/homekit/status", None)?,
                Some(id) => {
                    let cam = api.json(
                        "GET",
                        &format!("/api/v1/homekit/cameras/{}", percent_encode(id)),
                        None,
                    )?;
                    if cam["mode"] != "standalone" {
                        anyhow::bail!(
                            "{what} is bridged: it pairs with the bridge (hap-bridge qr)"
                        );
                    }
                    cam
                }
            };
            match (reply["setup_code"].as_str(), reply["setup_uri"].as_str()) {
                (Some(code), Some(uri)) => (code.to_owned(), uri.to_owned()),
                _ => return paired(),
            }
        }
        Err(e) => return Err(e.into()),
    };
    println!("Setup code: {code}");
    println!("Setup URI:  {uri}");
    println!("{}", crate::qr::terminal(&uri));
    Ok(())
}

/// The category of standalone camera `id` (from the file or the store), or why it has none.
fn standalone(config: &Config, store: &Store, id: &str) -> anyhow::Result<Category> {
    let cameras = crate::registry::load(config, store.runtime_cameras()?);
    let Some(cam) = cameras.iter().find(|c| c.config.id == id) else {
        anyhow::bail!("no camera {id:?} in the configuration file or the state store");
    };
    if cam.config.mode != CameraMode::Standalone {
        anyhow::bail!("camera {id:?} is bridged: it pairs with the bridge (hap-bridge qr)");
    }
    Ok(if cam.config.sensors.doorbell {
        Category::VIDEO_DOORBELL
    } else {
        Category::IP_CAMERA
    })
}

/// A blocking client of the admin API (ureq, plain HTTP).
struct ApiClient {
    addr: SocketAddr,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    fn new(cli: &Cli) -> Self {
        let mut addr = cli.api_addr;
        // A bridge listening on every address is reached on loopback.
        match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => addr.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => addr.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        let token = cli
            .api_token
            .clone()
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .filter(|t| !t.is_empty());
        let agent = ureq::Agent::config_builder()
            // Every answer comes back with its status: the API's message is in the body.
            .http_status_as_error(false)
            // The bridge is on this machine: never through an HTTP proxy from the environment.
            .proxy(None)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_global(Some(TIMEOUT))
            .build()
            .new_agent();
        Self { addr, token, agent }
    }

    /// One request; a non-2xx reply becomes an error with the API's message.
    fn json(&self, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<Json> {
        let (status, body) = self.request(method, path, body)?;
        let json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
        let message = json["error"].as_str().unwrap_or("(no message)");
        match status {
            200..=299 => Ok(json),
            401 => anyhow::bail!(
                "the admin API at {} refused the token ({message}): pass --api-token or set \
                 {TOKEN_ENV}",
                self.addr
            ),
            _ => anyhow::bail!("{method} {path}: HTTP {status}: {message}"),
        }
    }

    /// Status and body (at most [`MAX_REPLY`] bytes) of one request.
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let reply = match body {
            Some(body) => request
                .header("Content-Type", "application/json")
                .body(body)
                .map(|r| self.agent.run(r)),
            None => request.body(()).map(|r| self.agent.run(r)),
        }
        .with_context(|| format!("{method} {path}: not a valid request"))?;
        let mut reply = reply.map_err(|e| self.unreachable(&e))?;
        let status = reply.status().as_u16();
        let body = reply
            .body_mut()
            .with_config()
            .limit(MAX_REPLY)
            .read_to_vec()
            .with_context(|| format!("admin API at {}: cannot read the reply", self.addr))?;
        Ok((status, body))
    }

    /// What a failed exchange with the admin API means to the user.
    fn unreachable(&self, e: &ureq::Error) -> anyhow::Error {
        match e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                anyhow::anyhow!(
                    "the bridge is not running: nothing listens on its admin API at {} \
                     (start it, or pass the --api-addr it uses)",
                    self.addr
                )
            }
            ureq::Error::Protocol(_) => {
                anyhow::anyhow!("admin API at {}: not an HTTP reply ({e})", self.addr)
            }
            _ => anyhow::anyhow!("cannot reach the admin API at {}: {e}", self.addr),
        }
    }
}

/// Characters percent-encoded in a path segment: all but RFC 3986's unreserved ones and `:`
/// (pairing ids and camera ids keep their colons readable).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Percent-encodes a path segment.
fn percent_encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// Environment variable with the admin API token.
const TOKEN_ENV: &str = "HAP_BRIDGE_API_TOKEN";
/// The longest one request may take (connect, send, answer).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read.
const MAX_REPLY: u64 = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(percent_encode("AB-12:cd"), "AB-12:cd");
        assert_eq!(percent_encode("x.y_z~"), "x.y_z~");
        assert_eq!(percent_encode("é?#%"), "%C3%A9%3F%23%25");
        assert_eq!(percent_encode("a/b c"), "a%2Fb%20c");
    }
}
