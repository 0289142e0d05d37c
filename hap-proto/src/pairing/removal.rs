//! Removing pairings under HAP §2.8's rule: when no admin pairing is left, every pairing is
//! removed, since nobody could manage the accessory any more. Used by `/pairings` RemovePairing
//! and AddPairing (a demotion) and by an accessory owner's own tools (an admin API), so that
//! every path applies the rule the same way.

use super::{PairingId, PairingStore, Permissions};
use crate::error::StoreError;

/// What a removal did. `removed` lists what is gone from the store even when `error` says a
/// later step failed: the sessions of those controllers must close all the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Removal {
    /// Pairings removed, in order.
    pub removed: Vec<PairingId>,
    /// The store write that failed, if one did; the removals after it did not happen.
    pub error: Option<StoreError>,
    /// No pairing is left: the accessory is unpaired (`sf=1`, HAP §8.1).
    pub now_unpaired: bool,
}

impl Removal {
    fn finish(mut self, store: &dyn PairingStore) -> Self {
        self.now_unpaired = !self.removed.is_empty() && !store.is_paired();
        self
    }
}

/// Removes the pairing `id` (when stored), then every pairing when no admin is left (HAP §2.8),
/// in one [`PairingStore::remove_pairings`] call: a transactional store removes all of them or
/// none. Removing an unknown identifier removes nothing (and is not an error).
pub fn remove_pairing(store: &mut dyn PairingStore, id: &PairingId) -> Removal {
    let all = store.pairings();
    let mut ids = Vec::new();
    if all.iter().any(|p| &p.id == id) {
        ids.push(id.clone());
    }
    let left = || all.iter().filter(|p| &p.id != id);
    if !left().any(|p| p.permissions == Permissions::Admin) {
        ids.extend(left().map(|p| p.id.clone()));
    }
    remove_ids(store, ids, Removal::default())
}

/// Every pairing when none of them is an admin (HAP §2.8); appends to `out`, which the caller
/// may have started (nothing is removed when `out` already carries an error).
pub fn remove_all_without_admin(store: &mut dyn PairingStore, out: Removal) -> Removal {
    if out.error.is_some() {
        return out.finish(store);
    }
    let left = store.pairings();
    if left.iter().any(|p| p.permissions == Permissions::Admin) {
        return out.finish(store);
    }
    remove_ids(store, left.into_iter().map(|p| p.id).collect(), out)
}

/// Every pairing: the accessory becomes unpaired (an owner's reset, or a demotion of the last
/// admin).
pub fn remove_all(store: &mut dyn PairingStore) -> Removal {
    let all = store.pairings();
    remove_ids(
        store,
        all.into_iter().map(|p| p.id).collect(),
        Removal::default(),
    )
}

/// Removes `ids` in one store call; what is gone afterwards is reported as removed, also when
/// the store failed part way (a store without transactions).
fn remove_ids(store: &mut dyn PairingStore, ids: Vec<PairingId>, mut out: Removal) -> Removal {
    if ids.is_empty() {
        return out.finish(store);
    }
    let result = store.remove_pairings(&ids);
    out.removed
        .extend(ids.into_iter().filter(|id| store.pairing(id).is_none()));
    if let Err(e) = result {
        out.error = Some(e);
    }
    out.finish(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::{MemoryStore, Pairing};

    fn pairing(id: &str, permissions: Permissions) -> Pairing {
        Pairing {
            id: PairingId(id.as_bytes().to_vec()),
            public_key: [7; 32],
            permissions,
        }
    }

    fn id(text: &str) -> PairingId {
        PairingId(text.as_bytes().to_vec())
    }

    #[test]
    fn removing_the_last_admin_removes_everyone() {
        let mut store = MemoryStore {
            pairings: vec![
                pairing("admin", Permissions::Admin),
                pairing("user", Permissions::User),
            ],
            failed_attempts: 0,
        };
        let out = remove_pairing(&mut store, &id("admin"));
        assert_eq!(out.removed, [id("admin"), id("user")]);
        assert!(out.now_unpaired && out.error.is_none());
        assert!(store.pairings.is_empty());
    }

    #[test]
    fn another_admin_keeps_the_rest() {
        let mut store = MemoryStore {
            pairings: vec![
                pairing("a", Permissions::Admin),
                pairing("b", Permissions::Admin),
                pairing("user", Permissions::User),
            ],
            failed_attempts: 0,
        };
        let out = remove_pairing(&mut store, &id("a"));
        assert_eq!(out.removed, [id("a")]);
        assert!(!out.now_unpaired);
        assert_eq!(store.pairings.len(), 2);
        let out = remove_pairing(&mut store, &id("nobody"));
        assert_eq!(out, Removal::default(), "unknown ids remove nothing");
        let out = remove_all(&mut store);
        assert_eq!(out.removed, [id("b"), id("user")]);
        assert!(out.now_unpaired);
    }

    #[test]
    fn a_removal_and_its_cascade_are_one_store_call() {
        /// Counts the store calls that remove.
        #[derive(Default)]
        struct Counting(MemoryStore, Vec<Vec<PairingId>>);
        impl PairingStore for Counting {
            fn pairings(&self) -> Vec<Pairing> {
                self.0.pairings()
            }
            fn put_pairing(&mut self, p: Pairing) -> Result<(), StoreError> {
                self.0.put_pairing(p)
            }
            fn remove_pairing(&mut self, id: &PairingId) -> Result<(), StoreError> {
                self.1.push(vec![id.clone()]);
                self.0.remove_pairing(id)
            }
            fn remove_pairings(&mut self, ids: &[PairingId]) -> Result<(), StoreError> {
                self.1.push(ids.to_vec());
                ids.iter().try_for_each(|id| self.0.remove_pairing(id))
            }
            fn failed_attempts(&self) -> u32 {
                0
            }
            fn set_failed_attempts(&mut self, _: u32) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let mut store = Counting::default();
        store.0.pairings = vec![
            pairing("user", Permissions::User),
            pairing("admin", Permissions::Admin),
            pairing("other", Permissions::User),
        ];
        let out = remove_pairing(&mut store, &id("admin"));
        assert_eq!(out.removed, [id("admin"), id("user"), id("other")]);
        assert_eq!(
            store.1,
            [vec![id("admin"), id("user"), id("other")]],
            "one call: a transactional store makes it all or nothing"
        );
        assert!(out.now_unpaired);
    }

    #[test]
    fn a_failure_part_way_reports_what_is_gone() {
        /// Refuses to remove `user`.
        struct Stubborn(MemoryStore);
        impl PairingStore for Stubborn {
            fn pairings(&self) -> Vec<Pairing> {
                self.0.pairings()
            }
            fn put_pairing(&mut self, p: Pairing) -> Result<(), StoreError> {
                self.0.put_pairing(p)
            }
            fn remove_pairing(&mut self, id: &PairingId) -> Result<(), StoreError> {
                if id.0 == b"user" {
                    return Err(StoreError { what: "remove" });
                }
                self.0.remove_pairing(id)
            }
            fn failed_attempts(&self) -> u32 {
                0
            }
            fn set_failed_attempts(&mut self, _: u32) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let mut store = Stubborn(MemoryStore {
            pairings: vec![
                pairing("admin", Permissions::Admin),
                pairing("user", Permissions::User),
            ],
            failed_attempts: 0,
        });
        let out = remove_pairing(&mut store, &id("admin"));
        assert_eq!(out.removed, [id("admin")], "the admin is gone");
        assert_eq!(out.error, Some(StoreError { what: "remove" }));
        assert!(!out.now_unpaired, "the user is still stored");
    }
}
