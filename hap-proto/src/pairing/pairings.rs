//! Pairings management, accessory side (HAP §2.8): POST /pairings on a verified session.
//!
//! One request, one reply: `State=1` with `Method` AddPairing (3), RemovePairing (4) or
//! ListPairings (5), answered with `State=2` and, on refusal, an `Error` item.
//!
//! Outcomes of [`handle`]:
//! - `Ok(reply)`: send `reply.body` (HTTP 200, `application/pairing+tlv8`) on the encrypted
//!   session, then close every session verified with a pairing in `reply.removed`, and advertise
//!   `sf=1` when `reply.now_unpaired`.
//! - `Err(Error::Store(_))`: the store failed and nothing was acknowledged; answer
//!   `State=2, Error=`[`Error::tlv_error`] (Unknown), as ADK does.
//! - A removal the store failed part way (a store without transactions) is `Ok`: the body is
//!   `State=2, Error=Unknown`, and `reply.removed` still lists what is gone, whose sessions
//!   close as for a success.
//! - any other `Err`: the request was malformed (answer HTTP 400).
//!
//! The caller's rights are read from the store on every request, so an admin that was demoted
//! or removed while connected loses them at once.

use super::removal::{self, Removal};
use super::{MAX_PAIRING_ID_LEN, MAX_PAIRINGS, Pairing, PairingId, PairingStore, Permissions};
use crate::error::{DecodeError, DecodeErrorKind, Error, PeerMisbehaved};
use crate::tlv8::{self, Method, TlvError, TlvType, Writer};

/// The reply to one /pairings request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingsReply {
    /// The TLV8 body to send.
    pub body: Vec<u8>,
    /// Pairings removed by this request: close their sessions after sending `body`.
    pub removed: Vec<PairingId>,
    /// The last pairing is gone: the accessory is unpaired again (`sf=1`, HAP §8.1).
    pub now_unpaired: bool,
}

/// Handles one POST /pairings body from the controller `caller` (the pairing its session was
/// verified with). See the module docs for the outcomes.
///
/// Refusals are replies, not errors: a caller that is not (or no longer) an admin gets
/// `Authentication`, an add for a known identifier with another key gets `Unknown`, an add
/// into a full store gets `MaxPeers`. When a remove, or an add that demotes, leaves no admin,
/// every pairing is removed (HAP §2.8) and listed in [`PairingsReply::removed`].
pub fn handle(
    body: &[u8],
    caller: &PairingId,
    store: &mut dyn PairingStore,
) -> Result<PairingsReply, Error> {
    let items = tlv8::decode(body)?;
    match items.get_unique(TlvType::STATE)? {
        Some([STATE_M1]) => {}
        Some([received]) => {
            return Err(Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState {
                received: *received,
            }));
        }
        Some(_) => return Err(invalid(0, "pairings State")),
        None => return Err(missing(TlvType::STATE)),
    }
    let method = match items.get_unique(TlvType::METHOD)? {
        Some([m]) => Method(*m),
        Some(_) => return Err(invalid(0, "pairings Method")),
        None => return Err(missing(TlvType::METHOD)),
    };
    if !matches!(
        method,
        Method::ADD_PAIRING | Method::REMOVE_PAIRING | Method::LIST_PAIRINGS
    ) {
        return Err(Error::PeerMisbehaved(PeerMisbehaved::UnsupportedMethod {
            method: method.0,
        }));
    }
    // HAP §2.8: admin only, judged by what is stored now. As in ADK, rights are checked before
    // the method's own items, so a non-admin learns nothing about its request's validity.
    let is_admin = store
        .pairing(caller)
        .is_some_and(|p| p.permissions == Permissions::Admin);
    if !is_admin {
        return Ok(refusal(TlvError::AUTHENTICATION));
    }
    match method {
        Method::ADD_PAIRING => add(parse_add(&items)?, store),
        Method::REMOVE_PAIRING => remove(&parse_identifier(&items)?, store),
        _ => Ok(list(store)),
    }
}

fn add(pairing: Pairing, store: &mut dyn PairingStore) -> Result<PairingsReply, Error> {
    match store.pairing(&pairing.id) {
        // HAP §2.8: a known identifier may only change its permissions.
        Some(existing) if existing.public_key != pairing.public_key => {
            return Ok(refusal(TlvError::UNKNOWN));
        }
        Some(_) => {}
        None if store.pairings().len() >= MAX_PAIRINGS => {
            return Ok(refusal(TlvError::MAX_PEERS));
        }
        None => {}
    }
    // HAP §2.8: demoting the last admin leaves nobody to manage the accessory, so every
    // pairing goes (ADK runs the same cleanup after a permissions update). Done as one
    // removal rather than the write and then the removal, so that a crash between the two
    // cannot leave only non-admin pairings behind.
    let admin_left = pairing.permissions == Permissions::Admin
        || store
            .pairings()
            .iter()
            .any(|p| p.id != pairing.id && p.permissions == Permissions::Admin);
    if !admin_left {
        return removal_reply(removal::remove_all(store));
    }
    store.put_pairing(pairing).map_err(Error::Store)?;
    Ok(success(Vec::new(), false))
}

/// Removing an unknown identifier succeeds (HAP §2.8); with no admin left, every pairing goes.
fn remove(id: &PairingId, store: &mut dyn PairingStore) -> Result<PairingsReply, Error> {
    removal_reply(removal::remove_pairing(store, id))
}

/// The reply to a removal (see [`super::removal`]). A store failure with nothing removed is an
/// error (nothing is acknowledged). One after some pairings were removed (a store without
/// transactions) is answered `Unknown` all the same, but the reply lists what is gone so that
/// those controllers' sessions still close.
fn removal_reply(out: Removal) -> Result<PairingsReply, Error> {
    match out.error {
        Some(e) if out.removed.is_empty() => Err(Error::Store(e)),
        Some(_) => Ok(PairingsReply {
            body: refusal(TlvError::UNKNOWN).body,
            removed: out.removed,
            now_unpaired: out.now_unpaired,
        }),
        None => Ok(success(out.removed, out.now_unpaired)),
    }
}

/// `State=2` then Identifier, PublicKey, Permissions per pairing, `FF 00` between pairings.
fn list(store: &dyn PairingStore) -> PairingsReply {
    let mut body = Writer::new();
    body.put_u8(TlvType::STATE, STATE_M2);
    for (index, pairing) in store.pairings().iter().enumerate() {
        if index > 0 {
            body.separator(TlvType::SEPARATOR);
        }
        body.put(TlvType::IDENTIFIER, &pairing.id.0)
            .put(TlvType::PUBLIC_KEY, &pairing.public_key)
            .put_u8(TlvType::PERMISSIONS, pairing.permissions.to_byte());
    }
    PairingsReply {
        body: body.into_vec(),
        removed: Vec::new(),
        now_unpaired: false,
    }
}

fn parse_add(items: &tlv8::Items<'_>) -> Result<Pairing, Error> {
    let id = parse_identifier(items)?;
    let key = items
        .get_unique(TlvType::PUBLIC_KEY)?
        .ok_or_else(|| missing(TlvType::PUBLIC_KEY))?;
    let public_key: [u8; 32] = key.try_into().map_err(|_| {
        Error::PeerMisbehaved(PeerMisbehaved::BadLength {
            ty: TlvType::PUBLIC_KEY.0,
            len: key.len(),
        })
    })?;
    let permissions = match items.get_unique(TlvType::PERMISSIONS)? {
        Some([b]) => {
            Permissions::from_byte(*b).ok_or_else(|| invalid(0, "pairings Permissions"))?
        }
        Some(_) => return Err(invalid(0, "pairings Permissions")),
        None => return Err(missing(TlvType::PERMISSIONS)),
    };
    Ok(Pairing {
        id,
        public_key,
        permissions,
    })
}

fn parse_identifier(items: &tlv8::Items<'_>) -> Result<PairingId, Error> {
    let id = items
        .get_unique(TlvType::IDENTIFIER)?
        .ok_or_else(|| missing(TlvType::IDENTIFIER))?;
    if id.is_empty() {
        return Err(invalid(0, "pairings Identifier"));
    }
    if id.len() > MAX_PAIRING_ID_LEN {
        return Err(Error::Decode(DecodeError::new(
            MAX_PAIRING_ID_LEN,
            "pairings Identifier",
            DecodeErrorKind::TooLong,
        )));
    }
    Ok(PairingId(id.to_vec()))
}

/// `State=2` alone: the add or remove succeeded.
fn success(removed: Vec<PairingId>, now_unpaired: bool) -> PairingsReply {
    let mut body = Writer::new();
    body.put_u8(TlvType::STATE, STATE_M2);
    PairingsReply {
        body: body.into_vec(),
        removed,
        now_unpaired,
    }
}

/// `State=2, Error=error`.
fn refusal(error: TlvError) -> PairingsReply {
    let mut body = Writer::new();
    body.put_u8(TlvType::STATE, STATE_M2)
        .put_u8(TlvType::ERROR, error.0);
    PairingsReply {
        body: body.into_vec(),
        removed: Vec::new(),
        now_unpaired: false,
    }
}

fn missing(ty: TlvType) -> Error {
    Error::PeerMisbehaved(PeerMisbehaved::MissingItem { ty: ty.0 })
}

fn invalid(offset: usize, context: &'static str) -> Error {
    Error::Decode(DecodeError::new(
        offset,
        context,
        DecodeErrorKind::InvalidValue,
    ))
}

const STATE_M1: u8 = 1;
const STATE_M2: u8 = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::MemoryStore;

    fn admin_store() -> (MemoryStore, PairingId) {
        let id = PairingId(b"ADMIN".to_vec());
        let store = MemoryStore {
            pairings: vec![Pairing {
                id: id.clone(),
                public_key: [1; 32],
                permissions: Permissions::Admin,
            }],
            failed_attempts: 0,
        };
        (store, id)
    }

    #[test]
    fn request_shape_errors() {
        let (mut store, admin) = admin_store();
        // No State, State 3, no Method, method 2 (pair-verify), truncated TLV.
        let cases: [(&[u8], Error); 4] = [
            (&[0x00, 0x01, 0x05], missing(TlvType::STATE)),
            (
                &[0x06, 0x01, 0x03, 0x00, 0x01, 0x05],
                Error::PeerMisbehaved(PeerMisbehaved::UnexpectedState { received: 3 }),
            ),
            (&[0x06, 0x01, 0x01], missing(TlvType::METHOD)),
            (
                &[0x06, 0x01, 0x01, 0x00, 0x01, 0x02],
                Error::PeerMisbehaved(PeerMisbehaved::UnsupportedMethod { method: 2 }),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(handle(body, &admin, &mut store), Err(expected));
        }
        assert!(matches!(
            handle(&[0x06, 0x01], &admin, &mut store),
            Err(Error::Decode(_))
        ));
        // Add with a 31-byte key.
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 1)
            .put_u8(TlvType::METHOD, 3)
            .put(TlvType::IDENTIFIER, b"X")
            .put(TlvType::PUBLIC_KEY, &[0; 31])
            .put_u8(TlvType::PERMISSIONS, 0);
        assert_eq!(
            handle(&w.into_vec(), &admin, &mut store),
            Err(Error::PeerMisbehaved(PeerMisbehaved::BadLength {
                ty: 3,
                len: 31
            }))
        );
        // Remove with an empty identifier.
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 1)
            .put_u8(TlvType::METHOD, 4)
            .put(TlvType::IDENTIFIER, b"");
        assert!(matches!(
            handle(&w.into_vec(), &admin, &mut store),
            Err(Error::Decode(_))
        ));
        assert_eq!(store.pairings.len(), 1);
    }

    #[test]
    fn store_failure_is_reported_not_acknowledged() {
        struct Failing(MemoryStore);
        impl PairingStore for Failing {
            fn pairings(&self) -> Vec<Pairing> {
                self.0.pairings()
            }
            fn put_pairing(&mut self, _: Pairing) -> Result<(), crate::error::StoreError> {
                Err(crate::error::StoreError { what: "disk full" })
            }
            fn remove_pairing(&mut self, _: &PairingId) -> Result<(), crate::error::StoreError> {
                Err(crate::error::StoreError { what: "disk full" })
            }
            fn failed_attempts(&self) -> u32 {
                0
            }
            fn set_failed_attempts(&mut self, _: u32) -> Result<(), crate::error::StoreError> {
                Ok(())
            }
        }
        let (store, admin) = admin_store();
        let mut store = Failing(store);
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 1)
            .put_u8(TlvType::METHOD, 3)
            .put(TlvType::IDENTIFIER, b"NEW")
            .put(TlvType::PUBLIC_KEY, &[2; 32])
            .put_u8(TlvType::PERMISSIONS, 0);
        assert_eq!(
            handle(&w.into_vec(), &admin, &mut store),
            Err(Error::Store(crate::error::StoreError { what: "disk full" }))
        );
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 1)
            .put_u8(TlvType::METHOD, 4)
            .put(TlvType::IDENTIFIER, b"ADMIN");
        assert!(matches!(
            handle(&w.into_vec(), &admin, &mut store),
            Err(Error::Store(_))
        ));
    }

    #[test]
    fn a_removal_failing_part_way_still_reports_what_is_gone() {
        /// Refuses to remove `USER`; removes one pairing at a time (the default).
        struct Stubborn(MemoryStore);
        impl PairingStore for Stubborn {
            fn pairings(&self) -> Vec<Pairing> {
                self.0.pairings()
            }
            fn put_pairing(&mut self, p: Pairing) -> Result<(), crate::error::StoreError> {
                self.0.put_pairing(p)
            }
            fn remove_pairing(&mut self, id: &PairingId) -> Result<(), crate::error::StoreError> {
                if id.0 == b"USER" {
                    return Err(crate::error::StoreError { what: "disk full" });
                }
                self.0.remove_pairing(id)
            }
            fn failed_attempts(&self) -> u32 {
                0
            }
            fn set_failed_attempts(&mut self, _: u32) -> Result<(), crate::error::StoreError> {
                Ok(())
            }
        }
        let (mut store, admin) = admin_store();
        store.pairings.push(Pairing {
            id: PairingId(b"USER".to_vec()),
            public_key: [2; 32],
            permissions: Permissions::User,
        });
        let mut store = Stubborn(store);
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 1)
            .put_u8(TlvType::METHOD, 4)
            .put(TlvType::IDENTIFIER, b"ADMIN");
        // The admin is gone, the §2.8 cascade failed on the user: the controller hears of the
        // failure, and the caller still learns the admin is gone, to close its sessions.
        let reply = handle(&w.into_vec(), &admin, &mut store).unwrap();
        assert_eq!(reply.body, [6, 1, 2, 7, 1, 1]);
        assert_eq!(reply.removed, std::slice::from_ref(&admin));
        assert!(!reply.now_unpaired);
        assert_eq!(store.0.pairings.len(), 1);
    }

    #[test]
    fn empty_list_is_state_alone() {
        let (mut store, admin) = admin_store();
        store.pairings.clear();
        // Nobody is left, so nobody is admin: even listing is refused.
        let mut w = Writer::new();
        w.put_u8(TlvType::STATE, 1).put_u8(TlvType::METHOD, 5);
        let reply = handle(&w.into_vec(), &admin, &mut store).unwrap();
        assert_eq!(reply.body, [6, 1, 2, 7, 1, 2]);
        assert_eq!(list(&store).body, [6, 1, 2]);
    }
}
