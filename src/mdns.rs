//! The `_hap._tcp` mDNS/DNS-SD advertiser (HAP §8) over `mdns-sd`.
//!
//! One [`Advertiser`] (one responder daemon) per process; one [`Registration`] per HAP server.
//! The TXT record comes from `hap_proto::mdns::txt_record`; [`Registration::update`]
//! re-announces it when `c#` or `sf` changes (HAP §8.4).

use std::net::IpAddr;
use std::time::Duration;

use hap_proto::mdns::SERVICE_TYPE;
use hap_proto::pairing::DeviceId;
use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};

/// An mDNS failure, naming the service it concerns.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The responder could not be started or configured.
    #[error("mDNS responder: {what}: {source}")]
    Daemon {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: mdns_sd::Error,
    },
    /// A service could not be (re-)registered or removed.
    #[error("mDNS service {instance:?}: {what}: {source}")]
    Service {
        /// The instance name.
        instance: String,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: mdns_sd::Error,
    },
}

/// The process's mDNS responder, limited to the configured interfaces (clones share it).
#[derive(Clone)]
pub(crate) struct Advertiser {
    daemon: ServiceDaemon,
}

/// Where and how one HAP server is advertised.
#[derive(Clone, Debug)]
pub(crate) struct ServiceSpec {
    /// Accessory name; the instance name is made unique with the Device ID.
    pub(crate) name: String,
    /// The server's Device ID.
    pub(crate) device_id: DeviceId,
    /// The HAP TCP port.
    pub(crate) port: u16,
}

/// One advertised HAP server; dropped without [`Registration::unregister`], it stays announced
/// until the advertiser shuts down.
pub(crate) struct Registration {
    daemon: ServiceDaemon,
    instance: String,
    host: String,
    port: u16,
    fullname: String,
}

impl Advertiser {
    /// Starts a responder on `interfaces` (names like `eth0`, or addresses); empty = all.
    pub(crate) fn new(interfaces: &[String]) -> Result<Self, Error> {
        let daemon_err = |what| move |source| Error::Daemon { what, source };
        let daemon = ServiceDaemon::new().map_err(daemon_err("cannot start"))?;
        if !interfaces.is_empty() {
            // Selections apply in order, the last match wins: everything off, then the listed on.
            daemon
                .disable_interface(IfKind::All)
                .map_err(daemon_err("cannot select interfaces"))?;
            let kinds: Vec<IfKind> = interfaces.iter().map(|s| if_kind(s)).collect();
            warn_unknown_interfaces(&kinds);
            daemon
                .enable_interface(kinds)
                .map_err(daemon_err("cannot select interfaces"))?;
        }
        Ok(Self { daemon })
    }

    /// Announces a HAP server with its TXT record.
    pub(crate) fn register(
        &self,
        spec: &ServiceSpec,
        txt: &[(&'static str, String)],
    ) -> Result<Registration, Error> {
        let instance = instance_name(&spec.name, spec.device_id);
        let host = host_name(spec.device_id);
        let mut reg = Registration {
            daemon: self.daemon.clone(),
            fullname: String::new(),
            instance,
            host,
            port: spec.port,
        };
        reg.update(txt)?;
        Ok(reg)
    }

    /// Stops the responder (registrations still alive send goodbyes first).
    pub(crate) fn shutdown(self) {
        match self.daemon.shutdown() {
            Ok(rx) => {
                let _ = rx.recv_timeout(SHUTDOWN_TIMEOUT);
            }
            Err(e) => tracing::warn!(error = %e, "mDNS responder shutdown failed"),
        }
    }
}

impl Registration {
    /// Re-announces the service with a new TXT record (after a `c#` or `sf` change, HAP §8.4).
    pub(crate) fn update(&mut self, txt: &[(&'static str, String)]) -> Result<(), Error> {
        let err = |what| {
            let instance = self.instance.clone();
            move |source| Error::Service {
                instance,
                what,
                source,
            }
        };
        let info = ServiceInfo::new(SERVICE_TYPE, &self.instance, &self.host, "", self.port, txt)
            .map_err(err("invalid service"))?
            .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        self.daemon.register(info).map_err(err("cannot register"))?;
        tracing::debug!(service = %fullname, port = self.port, "mDNS service announced");
        self.fullname = fullname;
        Ok(())
    }

    /// The DNS-SD full name, e.g. `HAP Bridge 7085AA._hap._tcp.local.`.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests; the bridge logs at register
    pub(crate) fn fullname(&self) -> &str {
        &self.fullname
    }

    /// Withdraws the service (sends goodbye packets) and waits briefly for it.
    pub(crate) fn unregister(self) -> Result<(), Error> {
        let rx = self
            .daemon
            .unregister(&self.fullname)
            .map_err(|source| Error::Service {
                instance: self.instance.clone(),
                what: "cannot unregister",
                source,
            })?;
        if rx.recv_timeout(SHUTDOWN_TIMEOUT).is_err() {
            tracing::warn!(service = %self.fullname, "mDNS unregister not confirmed in time");
        }
        Ok(())
    }
}

/// The instance name: the accessory name plus the last 3 Device ID bytes in hex, as HAP-python
/// does (HAP §8), so that two bridges with the same name do not collide.
///
/// A DNS label holds at most 63 bytes (RFC 1035 §2.3.4) and the mDNS responder drops records
/// it cannot encode, so a longer name is cut at a character boundary; the name controllers show
/// is the Name characteristic, not this.
fn instance_name(name: &str, id: DeviceId) -> String {
    let [.., d, e, f] = id.0;
    let suffix = format!(" {d:02X}{e:02X}{f:02X}");
    let room = MAX_LABEL - suffix.len();
    let mut end = name.len().min(room);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = name.get(..end).unwrap_or_default().trim_end();
    format!("{cut}{suffix}")
}

/// Bytes in one DNS label (RFC 1035 §2.3.4).
const MAX_LABEL: usize = 63;

/// Warns about interface names this machine does not have (a typo would leave the bridge
/// announced nowhere, silently). Linux lists its interfaces in `/sys/class/net`.
fn warn_unknown_interfaces(kinds: &[IfKind]) {
    let sys = std::path::Path::new("/sys/class/net");
    if !sys.is_dir() {
        return;
    }
    for kind in kinds {
        if let IfKind::Name(name) = kind
            && !sys.join(name).exists()
        {
            tracing::warn!(interface = %name, "bridge.mdns_interfaces names an interface this machine does not have: nothing is announced on it");
        }
    }
}

/// A host name unique per Device ID (the A/AAAA records' owner).
fn host_name(id: DeviceId) -> String {
    let hex: String = id.0.iter().map(|b| format!("{b:02X}")).collect();
    format!("hap-bridge-{hex}.local.")
}

fn if_kind(s: &str) -> IfKind {
    match s.parse::<IpAddr>() {
        Ok(ip) => IfKind::Addr(ip),
        Err(_) => IfKind::Name(s.to_owned()),
    }
}

/// How long to wait for the daemon to confirm an unregister or shutdown.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests;
