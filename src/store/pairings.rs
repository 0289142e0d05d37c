//! Per server: the accessory identity, setup secrets, pairings and the failed pair-setup
//! counter, and [`ServerStore`], the [`PairingStore`] a HAP server runs on.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use hap_proto::CryptoRandom;
use hap_proto::error::StoreError as ProtoStoreError;
use hap_proto::pairing::{
    AccessoryIdentity, DeviceId, Pairing, PairingId, PairingStore, Permissions,
};
use rusqlite::{OptionalExtension, params};
use zeroize::Zeroizing;

use super::{Error, ServerKey, ServerRecord, SetupSecrets, Store};

impl Store {
    /// The server's record, creating its identity and setup secrets on first use.
    ///
    /// `new_setup` is called only when the server has no record yet. An existing identity is
    /// returned as stored, whatever the configuration says.
    pub(crate) fn server(
        &self,
        key: &ServerKey,
        rng: &mut dyn CryptoRandom,
        new_setup: impl FnOnce(&mut dyn CryptoRandom) -> SetupSecrets,
    ) -> Result<ServerRecord, Error> {
        if let Some(record) = self.server_record(key)? {
            return Ok(record);
        }
        let identity = AccessoryIdentity::generate(rng);
        let setup = new_setup(rng);
        let secret = Zeroizing::new(identity.signing_key.to_bytes());
        self.write("create server identity", |tx| {
            tx.execute(
                "INSERT INTO servers (key, device_id, secret_key, setup_id, setup_code)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    key.as_db(),
                    identity.device_id.0.as_slice(),
                    secret.as_slice(),
                    setup.setup_id,
                    setup.setup_code
                ],
            )?;
            Ok(())
        })?;
        Ok(ServerRecord {
            identity,
            setup,
            config_number: 1,
        })
    }

    /// The server's record if it has one.
    pub(crate) fn server_record(&self, key: &ServerKey) -> Result<Option<ServerRecord>, Error> {
        let row = self
            .lock()
            .query_row(
                "SELECT device_id, secret_key, setup_id, setup_code, config_number
                 FROM servers WHERE key = ?1",
                [key.as_db()],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        Zeroizing::new(r.get::<_, Vec<u8>>(1)?),
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .optional()
            .map_err(self.sql("cannot read a server record"))?;
        let Some((device_id, secret, setup_id, setup_code, config_number)) = row else {
            return Ok(None);
        };
        let device_id = <[u8; 6]>::try_from(device_id.as_slice())
            .map_err(|_| self.bad(format!("{} device id length", key.as_db())))?;
        let secret = <[u8; 32]>::try_from(secret.as_slice())
            .map(Zeroizing::new)
            .map_err(|_| self.bad(format!("{} secret key length", key.as_db())))?;
        let config_number = u16::try_from(config_number)
            .ok()
            .filter(|c| *c >= 1)
            .ok_or_else(|| self.bad(format!("{} c# {config_number}", key.as_db())))?;
        Ok(Some(ServerRecord {
            identity: AccessoryIdentity {
                device_id: DeviceId(device_id),
                signing_key: SigningKey::from_bytes(&secret),
            },
            setup: SetupSecrets {
                setup_id,
                setup_code,
            },
            config_number,
        }))
    }

    /// Replaces the server's setup code (e.g. from `--setup-code`).
    pub(crate) fn set_setup_code(&self, key: &ServerKey, code: &str) -> Result<(), Error> {
        self.update_server("set the setup code", key, "setup_code = ?2", code)
    }

    /// A [`PairingStore`] handle for one server, with its pairings loaded.
    ///
    /// Reads are served from memory and every mutation is written through in one committed
    /// transaction: keep a single handle per server.
    pub(crate) fn pairing_store(self: &Arc<Self>, key: &ServerKey) -> Result<ServerStore, Error> {
        let pairings = self.pairings(key)?;
        let failed_attempts = self.failed_attempts(key)?;
        Ok(ServerStore {
            store: Arc::clone(self),
            key: key.clone(),
            pairings,
            failed_attempts,
        })
    }

    /// The server's pairings in insertion order.
    pub(crate) fn pairings(&self, key: &ServerKey) -> Result<Vec<Pairing>, Error> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, public_key, permissions FROM pairings WHERE server = ?1 ORDER BY rowid",
            )
            .map_err(self.sql("cannot read pairings"))?;
        let rows = stmt
            .query_map([key.as_db()], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(self.sql("cannot read pairings"))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, public_key, permissions) = row.map_err(self.sql("cannot read pairings"))?;
            let public_key = <[u8; 32]>::try_from(public_key.as_slice())
                .map_err(|_| self.bad(format!("pairing {:?} key length", PairingId(id.clone()))))?;
            let permissions = u8::try_from(permissions)
                .ok()
                .and_then(Permissions::from_byte)
                .ok_or_else(|| self.bad(format!("pairing permissions {permissions}")))?;
            out.push(Pairing {
                id: PairingId(id),
                public_key,
                permissions,
            });
        }
        Ok(out)
    }

    /// Adds or replaces a pairing (same identifier bytes) in one transaction.
    pub(crate) fn put_pairing(&self, key: &ServerKey, pairing: &Pairing) -> Result<(), Error> {
        self.write("store a pairing", |tx| {
            tx.execute(
                "INSERT INTO pairings (server, id, public_key, permissions) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (server, id) DO UPDATE
                 SET public_key = excluded.public_key, permissions = excluded.permissions",
                params![
                    key.as_db(),
                    pairing.id.0,
                    pairing.public_key.as_slice(),
                    pairing.permissions.to_byte()
                ],
            )?;
            Ok(())
        })
    }

    /// Removes a pairing; an unknown identifier is not an error.
    pub(crate) fn remove_pairing(&self, key: &ServerKey, id: &PairingId) -> Result<(), Error> {
        self.write("remove a pairing", |tx| {
            tx.execute(
                "DELETE FROM pairings WHERE server = ?1 AND id = ?2",
                params![key.as_db(), id.0],
            )?;
            Ok(())
        })
    }

    /// Removes these pairings in one transaction: all of them or, on error, none (a removal
    /// and its HAP §2.8 cascade). Unknown identifiers are not an error.
    pub(crate) fn remove_pairings(&self, key: &ServerKey, ids: &[PairingId]) -> Result<(), Error> {
        self.write("remove pairings", |tx| {
            let mut delete =
                tx.prepare_cached("DELETE FROM pairings WHERE server = ?1 AND id = ?2")?;
            for id in ids {
                delete.execute(params![key.as_db(), id.0])?;
            }
            Ok(())
        })
    }

    /// The failed pair-setup counter (0 for a server without a record).
    pub(crate) fn failed_attempts(&self, key: &ServerKey) -> Result<u32, Error> {
        let n: Option<i64> = self
            .lock()
            .query_row(
                "SELECT failed_attempts FROM servers WHERE key = ?1",
                [key.as_db()],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("cannot read the failed-attempt counter"))?;
        u32::try_from(n.unwrap_or(0)).map_err(|_| self.bad(format!("failed attempts {n:?}")))
    }

    /// Persists the failed pair-setup counter.
    pub(crate) fn set_failed_attempts(&self, key: &ServerKey, count: u32) -> Result<(), Error> {
        self.update_server(
            "store the failed-attempt counter",
            key,
            "failed_attempts = ?2",
            count,
        )
    }
}

/// A server's [`PairingStore`]: pairings cached in memory, every change committed first.
#[derive(Debug)]
pub(crate) struct ServerStore {
    store: Arc<Store>,
    key: ServerKey,
    pairings: Vec<Pairing>,
    failed_attempts: u32,
}

impl PairingStore for ServerStore {
    fn pairings(&self) -> Vec<Pairing> {
        self.pairings.clone()
    }

    /// Checked before every encrypted request: one lookup, no copy of the list.
    fn pairing(&self, id: &PairingId) -> Option<Pairing> {
        self.pairings.iter().find(|p| &p.id == id).cloned()
    }

    fn is_paired(&self) -> bool {
        !self.pairings.is_empty()
    }

    fn put_pairing(&mut self, pairing: Pairing) -> Result<(), ProtoStoreError> {
        self.store
            .put_pairing(&self.key, &pairing)
            .map_err(|e| report(&e, "put_pairing"))?;
        match self.pairings.iter_mut().find(|p| p.id == pairing.id) {
            Some(existing) => *existing = pairing,
            None => self.pairings.push(pairing),
        }
        Ok(())
    }

    fn remove_pairing(&mut self, id: &PairingId) -> Result<(), ProtoStoreError> {
        self.store
            .remove_pairing(&self.key, id)
            .map_err(|e| report(&e, "remove_pairing"))?;
        self.pairings.retain(|p| &p.id != id);
        Ok(())
    }

    /// One transaction: the cache changes only once it is committed.
    fn remove_pairings(&mut self, ids: &[PairingId]) -> Result<(), ProtoStoreError> {
        self.store
            .remove_pairings(&self.key, ids)
            .map_err(|e| report(&e, "remove_pairings"))?;
        self.pairings.retain(|p| !ids.contains(&p.id));
        Ok(())
    }

    fn failed_attempts(&self) -> u32 {
        self.failed_attempts
    }

    fn set_failed_attempts(&mut self, count: u32) -> Result<(), ProtoStoreError> {
        self.store
            .set_failed_attempts(&self.key, count)
            .map_err(|e| report(&e, "set_failed_attempts"))?;
        self.failed_attempts = count;
        Ok(())
    }
}

/// Logs the full error and returns hap-proto's string-free one.
fn report(e: &Error, what: &'static str) -> ProtoStoreError {
    tracing::error!(error = %e, operation = what, "state store write failed");
    ProtoStoreError { what }
}
