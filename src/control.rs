//! The running HAP servers as one unit for the admin API: HomeKit on and off (persisted in the
//! store's enabled flag) and pairings management across the servers.
//!
//! Disabling stops serving HAP (listeners, connections and mDNS records go away) but keeps every
//! identity and pairing; enabling serves again on the same ports with the same state.

use std::sync::Arc;

use hap_proto::pairing::{Pairing, PairingId, PairingStore as _, Permissions};

use crate::hap::{Control, HapServer, Inner};
use crate::store::Store;

/// Owns the HAP servers: the bridge first, then the standalone cameras.
pub(crate) struct Controller {
    bridge: HapServer,
    cameras: Vec<HapServer>,
    store: Arc<Store>,
    /// Serializes enable/disable.
    op: tokio::sync::Mutex<()>,
}

/// One pairing of one server, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PairingEntry {
    /// The server (`bridge` or `camera:<id>`).
    pub(crate) server: String,
    /// The controller's pairing identifier as text (see [`id_text`]).
    pub(crate) id: String,
    /// Admin or regular user.
    pub(crate) admin: bool,
}

/// What a removal did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Removed {
    /// Identifiers removed (with the ones removed because no admin was left, HAP §2.8).
    pub(crate) ids: Vec<String>,
    /// Servers that are unpaired now.
    pub(crate) now_unpaired: Vec<String>,
}

/// A failed pairing change.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PairingError {
    /// No server has a pairing with this identifier.
    #[error("id: no pairing {0:?}")]
    Unknown(String),
    /// The store refused the write; the pairing is unchanged.
    #[error("the state store failed while removing pairings ({0}); see the log")]
    Store(&'static str),
}

impl Controller {
    /// Takes over the servers; `bridge` is the bridge's server.
    pub(crate) fn new(bridge: HapServer, cameras: Vec<HapServer>, store: Arc<Store>) -> Self {
        Self {
            bridge,
            cameras,
            store,
            op: tokio::sync::Mutex::new(()),
        }
    }

    /// The bridge's server state.
    pub(crate) fn bridge(&self) -> &Arc<Inner> {
        self.bridge.inner()
    }

    /// Every server, the bridge first.
    pub(crate) fn servers(&self) -> impl Iterator<Item = &HapServer> {
        std::iter::once(&self.bridge).chain(&self.cameras)
    }

    /// Whether HomeKit is enabled (the persisted flag; `true` when it cannot be read).
    pub(crate) fn enabled(&self) -> bool {
        self.store.bridge_enabled().unwrap_or(true)
    }

    /// Whether the bridge's server accepts connections now.
    pub(crate) fn running(&self) -> bool {
        self.bridge.is_serving()
    }

    /// Serves every server and persists "enabled".
    pub(crate) async fn enable(&self) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        for server in self.servers() {
            server.resume().await?;
        }
        // Persisted once serving: a failed start leaves the flag as it was.
        self.store.set_bridge_enabled(true)?;
        tracing::info!("HomeKit enabled");
        Ok(())
    }

    /// Persists "disabled" and stops serving; identities and pairings stay.
    pub(crate) async fn disable(&self) -> anyhow::Result<()> {
        let _op = self.op.lock().await;
        self.store.set_bridge_enabled(false)?;
        for server in self.servers() {
            server.shutdown().await;
        }
        tracing::info!("HomeKit disabled");
        Ok(())
    }

    /// Stops every server (process exit).
    pub(crate) async fn shutdown(&self) {
        let _op = self.op.lock().await;
        for server in self.servers() {
            server.shutdown().await;
        }
    }

    /// Every pairing of every server.
    pub(crate) fn pairings(&self) -> Vec<PairingEntry> {
        self.servers()
            .flat_map(|s| {
                let inner = s.inner();
                let server = inner.key.as_db();
                inner
                    .lock()
                    .store
                    .pairings()
                    .into_iter()
                    .map(move |p| PairingEntry {
                        server: server.clone(),
                        id: id_text(&p.id),
                        admin: p.permissions == Permissions::Admin,
                    })
            })
            .collect()
    }

    /// Removes the pairing `id` from every server that has it; its sessions close at once. A
    /// server left without an admin loses every pairing (HAP §2.8).
    pub(crate) fn remove_pairing(&self, id: &str) -> Result<Removed, PairingError> {
        let id = parse_id(id);
        let mut out = Removed::default();
        let mut found = false;
        for server in self.servers() {
            let inner = server.inner();
            let removed = {
                let mut shared = inner.lock();
                if shared.store.pairing(&id).is_none() {
                    continue;
                }
                found = true;
                let mut removed = Vec::new();
                shared
                    .store
                    .remove_pairing(&id)
                    .map_err(|e| PairingError::Store(e.what))?;
                removed.push(id.clone());
                let left = shared.store.pairings();
                if !left.iter().any(|p| p.permissions == Permissions::Admin) {
                    removed.extend(remove_all(&mut shared.store, left)?);
                }
                removed
            };
            after_removal(inner, removed, &mut out);
        }
        if found {
            Ok(out)
        } else {
            Err(PairingError::Unknown(id_text(&id)))
        }
    }

    /// Removes every pairing of every server: the accessories become unpaired.
    pub(crate) fn reset_pairings(&self) -> Result<Removed, PairingError> {
        let mut out = Removed::default();
        for server in self.servers() {
            let inner = server.inner();
            let removed = {
                let mut shared = inner.lock();
                let all = shared.store.pairings();
                remove_all(&mut shared.store, all)?
            };
            if !removed.is_empty() {
                after_removal(inner, removed, &mut out);
            }
        }
        Ok(out)
    }
}

fn remove_all(
    store: &mut crate::store::ServerStore,
    pairings: Vec<Pairing>,
) -> Result<Vec<PairingId>, PairingError> {
    let mut removed = Vec::with_capacity(pairings.len());
    for pairing in pairings {
        store
            .remove_pairing(&pairing.id)
            .map_err(|e| PairingError::Store(e.what))?;
        removed.push(pairing.id);
    }
    Ok(removed)
}

/// Closes the removed controllers' sessions and re-announces `sf=1` when unpaired (HAP §8.4).
fn after_removal(inner: &Arc<Inner>, removed: Vec<PairingId>, out: &mut Removed) {
    let now_unpaired = !inner.lock().store.is_paired();
    tracing::info!(server = %inner.key.as_db(), removed = removed.len(), now_unpaired, "pairings removed through the admin API");
    out.ids.extend(removed.iter().map(id_text));
    let _ = inner
        .control
        .send(Control::CloseControllers(Arc::new(removed)));
    if now_unpaired {
        out.now_unpaired.push(inner.key.as_db());
        inner.pairing_changed(false);
    }
}

/// A pairing identifier as text: itself when it is printable UTF-8 (controllers use UUIDs),
/// else `hex:` and its bytes in hex.
pub(crate) fn id_text(id: &PairingId) -> String {
    match std::str::from_utf8(&id.0) {
        Ok(s) if !s.is_empty() && !s.starts_with("hex:") && !s.chars().any(char::is_control) => {
            s.to_owned()
        }
        _ => {
            let hex: String = id.0.iter().map(|b| format!("{b:02x}")).collect();
            format!("hex:{hex}")
        }
    }
}

/// The inverse of [`id_text`]; text that is not valid `hex:` is taken as it is.
pub(crate) fn parse_id(text: &str) -> PairingId {
    if let Some(hex) = text.strip_prefix("hex:") {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| {
                hex.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        if let Some(bytes) = bytes.filter(|b| !b.is_empty()) {
            return PairingId(bytes);
        }
    }
    PairingId(text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairing_ids_round_trip_as_text() {
        for bytes in [
            b"D3A9C1E2-0B7F-4C55-9E3A-1B2C3D4E5F60".to_vec(),
            vec![0, 1, 0xff],
            b"hex:41".to_vec(),
            b"tab\there".to_vec(),
        ] {
            let id = PairingId(bytes);
            let text = id_text(&id);
            assert_eq!(parse_id(&text), id, "{text}");
        }
        assert_eq!(
            id_text(&PairingId(b"ABC".to_vec())),
            "ABC",
            "printable ids are shown as they are"
        );
        assert_eq!(id_text(&PairingId(vec![0, 0xab])), "hex:00ab");
        assert_eq!(parse_id("hex:zz"), PairingId(b"hex:zz".to_vec()));
    }
}
