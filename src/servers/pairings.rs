//! Pairing administration by the owner (admin API, `hap-bridge pairings`) across the servers,
//! also of standalone cameras that are switched off (their pairings stay in the store). The
//! HAP §2.8 rule (no admin left: every pairing goes) is hap-proto's
//! ([`hap_proto::pairing::removal`]), applied by the running servers and to stored pairings alike.

use hap_proto::pairing::removal::{self, Removal};
use hap_proto::pairing::{PairingId, PairingStore as _, Permissions};

use super::{Servers, read};
use crate::config::CameraMode;
use crate::store::ServerKey;

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
    /// The store refused a write; what was removed before it stays removed (and its sessions
    /// closed), the rest is unchanged.
    #[error("the state store failed while removing pairings ({0}); see the log")]
    Store(&'static str),
}

impl Servers {
    /// Every pairing of every server, also of standalone cameras that are switched off.
    pub(crate) fn pairings(&self) -> Vec<PairingEntry> {
        let mut out = Vec::new();
        for server in self.servers() {
            let state = server.state();
            let key = state.key().as_db();
            out.extend(state.pairings().into_iter().map(|p| PairingEntry {
                server: key.clone(),
                id: id_text(&p.id),
                admin: p.permissions == Permissions::Admin,
            }));
        }
        for key in self.dormant_servers() {
            match self.store.pairings(&key) {
                Ok(pairings) => out.extend(pairings.into_iter().map(|p| PairingEntry {
                    server: key.as_db(),
                    id: id_text(&p.id),
                    admin: p.permissions == Permissions::Admin,
                })),
                Err(e) => {
                    tracing::warn!(server = %key.as_db(), error = %e, "cannot read the pairings of a switched-off camera")
                }
            }
        }
        out
    }

    /// Removes the pairing `id` from every server that has it; its sessions close at once. A
    /// server left without an admin loses every pairing (HAP §2.8).
    pub(crate) async fn remove_pairing(&self, id: &str) -> Result<Removed, PairingError> {
        // Not while a camera change starts or stops a standalone server.
        let _op = self.op.lock().await;
        let id = parse_id(id);
        let mut out = Removed::default();
        let mut found = false;
        let mut failed = None;
        for server in self.servers() {
            let state = server.state();
            if let Some(removal) = state.remove_pairing(&id) {
                found = true;
                record(&state.key().as_db(), removal, &mut out, &mut failed);
            }
        }
        for key in self.dormant_servers() {
            let removal = self.with_stored_pairings(&key, |store| {
                store
                    .pairing(&id)
                    .map(|_| removal::remove_pairing(store, &id))
            });
            match removal {
                Ok(Some(removal)) => {
                    found = true;
                    record(&key.as_db(), removal, &mut out, &mut failed);
                }
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        match (failed, found) {
            (Some(what), _) => Err(PairingError::Store(what)),
            (None, true) => Ok(out),
            (None, false) => Err(PairingError::Unknown(id_text(&id))),
        }
    }

    /// Removes every pairing of every server: the accessories become unpaired. Also clears
    /// each server's failed pair-setup counter, so that pair-setup works again after MaxTries
    /// (HAP §2.5: refused after 100 failed attempts).
    pub(crate) async fn reset_pairings(&self) -> Result<Removed, PairingError> {
        let _op = self.op.lock().await;
        let mut out = Removed::default();
        let mut failed = None;
        for server in self.servers() {
            let state = server.state();
            let mut removal = state.remove_all_pairings();
            if let Err(e) = state.reset_failed_attempts() {
                removal.error.get_or_insert(e);
            }
            record(&state.key().as_db(), removal, &mut out, &mut failed);
        }
        for key in self.dormant_servers() {
            let reset = |store: &mut crate::store::ServerStore| {
                let mut removal = removal::remove_all(store);
                if store.failed_attempts() != 0
                    && let Err(e) = store.set_failed_attempts(0)
                {
                    removal.error.get_or_insert(e);
                }
                Some(removal)
            };
            match self.with_stored_pairings(&key, reset) {
                Ok(Some(removal)) => record(&key.as_db(), removal, &mut out, &mut failed),
                Ok(None) => {}
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(what) => Err(PairingError::Store(what)),
            None => Ok(out),
        }
    }

    /// The standalone cameras that are switched off: no server runs for them, but their
    /// identity and pairings stay in the store for when they are switched on again.
    fn dormant_servers(&self) -> Vec<ServerKey> {
        let running = read(&self.standalone);
        self.cameras()
            .into_iter()
            .filter(|c| {
                c.config.mode == CameraMode::Standalone && !running.contains_key(&c.config.id)
            })
            .map(|c| ServerKey::Camera(c.config.id))
            .collect()
    }

    /// Runs `f` on the stored pairings of a switched-off camera (no session is open to close).
    fn with_stored_pairings(
        &self,
        key: &ServerKey,
        f: impl FnOnce(&mut crate::store::ServerStore) -> Option<Removal>,
    ) -> Result<Option<Removal>, &'static str> {
        match self.store.pairing_store(key) {
            Ok(mut store) => Ok(f(&mut store)),
            Err(e) => {
                tracing::error!(server = %key.as_db(), error = %e, "pairings of a switched-off camera");
                Err("a switched-off camera's pairings")
            }
        }
    }
}

/// Adds one server's removal to `out`; a store failure is logged and kept in `failed`.
fn record(server: &str, removal: Removal, out: &mut Removed, failed: &mut Option<&'static str>) {
    if let Some(e) = removal.error {
        tracing::error!(server, error = %e, removed = removal.removed.len(), "the state store failed while removing pairings");
        *failed = Some(e.what);
    }
    if removal.removed.is_empty() {
        return;
    }
    tracing::info!(
        server,
        removed = removal.removed.len(),
        now_unpaired = removal.now_unpaired,
        "pairings removed by the owner"
    );
    out.ids.extend(removal.removed.iter().map(id_text));
    if removal.now_unpaired {
        out.now_unpaired.push(server.to_owned());
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
