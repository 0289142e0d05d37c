//! A server's pairings as its owner and its connections change them: removals (HAP §2.8) that
//! close the removed controllers' sessions, the owner's reset of the failed pair-setup counter,
//! and what a connection that missed control messages must check.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hap_proto::error::StoreError;
use hap_proto::pairing::removal::{self, Removal};
use hap_proto::pairing::{Pairing, PairingId, PairingStore as _};

use super::{ConnectionCommand, ServerState};

impl ServerState {
    /// The stored pairings.
    pub(crate) fn pairings(&self) -> Vec<Pairing> {
        self.lock().store.pairings()
    }

    /// The owner removes the pairing `id` (HAP §2.8: with every other one when no admin is
    /// left); `None` when this server has no such pairing. The removed controllers' sessions
    /// close, also when the store failed part way (see [`Removal`]).
    pub(crate) fn remove_pairing(&self, id: &PairingId) -> Option<Removal> {
        let removal = {
            let mut shared = self.lock();
            shared.store.pairing(id)?;
            removal::remove_pairing(&mut shared.store, id)
        };
        self.pairings_removed(&removal.removed, removal.now_unpaired);
        Some(removal)
    }

    /// The owner removes every pairing: the accessory becomes unpaired.
    pub(crate) fn remove_all_pairings(&self) -> Removal {
        let removal = removal::remove_all(&mut self.lock().store);
        self.pairings_removed(&removal.removed, removal.now_unpaired);
        removal
    }

    /// After pairings were removed (by a controller's request or by the owner): closes the
    /// removed controllers' sessions and, when none is left, re-announces `sf=1` (HAP §8.4).
    pub(super) fn pairings_removed(&self, removed: &[PairingId], now_unpaired: bool) {
        if removed.is_empty() {
            return;
        }
        let _ = self
            .commands
            .send(ConnectionCommand::CloseControllers(Arc::new(
                removed.to_vec(),
            )));
        if now_unpaired {
            self.pairing_changed(false);
        }
    }

    /// The owner clears the failed pair-setup counter, so that pair-setup works again after
    /// MaxTries (HAP §2.5 locks it after 100 failed attempts).
    pub(crate) fn reset_failed_attempts(&self) -> Result<(), StoreError> {
        let mut shared = self.lock();
        if shared.store.failed_attempts() == 0 {
            return Ok(());
        }
        shared.store.set_failed_attempts(0)
    }

    /// For a connection whose control receiver lagged (its queue dropped the oldest messages):
    /// why it must close, had it received them. A lost `CloseControllers` shows as its
    /// controller no longer being paired, a lost `Shutdown` as [`ServerState::stops`] having
    /// changed since `stops_seen`.
    pub(super) fn missed_control(
        &self,
        controller: Option<&PairingId>,
        stops_seen: u64,
    ) -> Option<&'static str> {
        if self.stops.load(Ordering::Relaxed) != stops_seen {
            return Some("shutdown");
        }
        let controller = controller?;
        self.lock()
            .store
            .pairing(controller)
            .is_none()
            .then_some("pairing removed")
    }

    /// How many times the server stopped serving so far (see [`ServerState::missed_control`]).
    pub(super) fn stops(&self) -> u64 {
        self.stops.load(Ordering::Relaxed)
    }
}
