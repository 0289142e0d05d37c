//! The maps that keep a database's shape stable across restarts (HAP §6.1, §6.5): AIDs per
//! accessory key, each accessory's IID allocator, the configuration number (`c#`), and the
//! removal of a camera's entries.

use hap_proto::db::IidAllocator;
use rusqlite::{OptionalExtension, params};

use super::{Error, ServerKey, Store};

impl Store {
    /// The IID allocator of accessory `aid` of a server (HAP §6.1: IIDs stay stable and are never
    /// reused); a new one when none is stored.
    pub(crate) fn iid_allocator(&self, key: &ServerKey, aid: u64) -> Result<IidAllocator, Error> {
        let aid = i64::try_from(aid).map_err(|_| self.bad(format!("aid {aid} out of range")))?;
        let state: Option<String> = self
            .lock()
            .query_row(
                "SELECT state FROM iid_allocators WHERE server = ?1 AND aid = ?2",
                params![key.as_db(), aid],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("cannot read an IID map"))?;
        match state {
            None => Ok(IidAllocator::default()),
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| self.bad(format!("IID map of {} aid {aid}: {e}", key.as_db()))),
        }
    }

    /// Stores the IID allocator of accessory `aid` of a server (only when it changed).
    pub(crate) fn put_iid_allocator(
        &self,
        key: &ServerKey,
        aid: u64,
        iids: &IidAllocator,
    ) -> Result<(), Error> {
        if self
            .iid_allocator(key, aid)
            .is_ok_and(|stored| stored == *iids)
        {
            return Ok(());
        }
        let aid = i64::try_from(aid).map_err(|_| self.bad(format!("aid {aid} out of range")))?;
        let json = serde_json::to_string(iids)
            .map_err(|e| self.bad(format!("IID map of {} aid {aid}: {e}", key.as_db())))?;
        let k = key.as_db();
        self.write("store an IID map", |tx| {
            tx.execute(
                "INSERT INTO iid_allocators (server, aid, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (server, aid) DO UPDATE SET state = excluded.state",
                params![k, aid, json],
            )?;
            Ok(())
        })
    }

    /// Removes a run-time camera for good in one transaction: its stored configuration, its
    /// AID on the bridge (`accessory`, not handed out again) and its own server's identity and
    /// pairings (a standalone camera's).
    pub(crate) fn remove_camera(&self, id: &str, accessory: &str) -> Result<(), Error> {
        self.write("remove a camera", |tx| {
            tx.execute("DELETE FROM runtime_cameras WHERE id = ?1", [id])?;
            delete_aid(tx, &ServerKey::Bridge, accessory)?;
            delete_server(tx, &ServerKey::Camera(id.to_owned()))
        })
    }

    /// Records the database shape hash and returns the `c#` to advertise (HAP §6.5).
    ///
    /// `c#` is bumped (65535 wraps to 1) only when a previous hash exists and differs; the first
    /// hash recorded keeps the initial 1. Values and pairings must not enter the hash.
    pub(crate) fn update_config_number(
        &self,
        key: &ServerKey,
        shape_hash: &[u8],
    ) -> Result<u16, Error> {
        let k = key.as_db();
        let path = self.path.clone();
        let mut out = 0;
        self.write("update c#", |tx| {
            let (current, stored): (i64, Option<Vec<u8>>) = tx.query_row(
                "SELECT config_number, shape_hash FROM servers WHERE key = ?1",
                [&k],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let current = u16::try_from(current).unwrap_or(1).max(1);
            out = match stored {
                Some(h) if h == shape_hash => current,
                Some(_) => hap_proto::db::next_config_number(current),
                None => current,
            };
            tx.execute(
                "UPDATE servers SET config_number = ?2, shape_hash = ?3 WHERE key = ?1",
                params![k, out, shape_hash],
            )?;
            Ok(())
        })
        .map_err(|e| match e {
            Error::Sqlite {
                source: rusqlite::Error::QueryReturnedNoRows,
                ..
            } => Error::BadValue {
                path,
                what: format!("no server record for {k}"),
            },
            e => e,
        })?;
        Ok(out)
    }

    /// The AID of each accessory key, assigning new ones in one transaction (HAP §6.1).
    ///
    /// AIDs start at 2 (1 is the server's primary accessory) and are never reused, even after
    /// [`Store::remove_camera`].
    pub(crate) fn assign_aids(
        &self,
        key: &ServerKey,
        accessories: &[&str],
    ) -> Result<Vec<u64>, Error> {
        let k = key.as_db();
        let mut out = Vec::with_capacity(accessories.len());
        self.write("assign AIDs", |tx| {
            out.clear();
            for accessory in accessories {
                let aid = assign(
                    tx,
                    &k,
                    "aid",
                    FIRST_BRIDGED_AID,
                    |tx, next| {
                        tx.execute(
                            "INSERT INTO aid_map (server, key, aid) VALUES (?1, ?2, ?3)",
                            params![k, accessory, next],
                        )
                    },
                    |tx| {
                        tx.query_row(
                            "SELECT aid FROM aid_map WHERE server = ?1 AND key = ?2",
                            params![k, accessory],
                            |r| r.get(0),
                        )
                        .optional()
                    },
                )?;
                out.push(aid);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The AID of an accessory key, if one was assigned.
    pub(crate) fn aid(&self, key: &ServerKey, accessory: &str) -> Result<Option<u64>, Error> {
        let aid: Option<i64> = self
            .lock()
            .query_row(
                "SELECT aid FROM aid_map WHERE server = ?1 AND key = ?2",
                params![key.as_db(), accessory],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql("cannot read an AID"))?;
        Ok(aid.map(i64::unsigned_abs))
    }
}

/// Looks up `item` with `find`, or allocates the scope's next number with `insert`.
fn assign(
    tx: &rusqlite::Transaction<'_>,
    server: &str,
    scope: &str,
    first: i64,
    insert: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> rusqlite::Result<usize>,
    find: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<Option<i64>>,
) -> rusqlite::Result<u64> {
    if let Some(existing) = find(tx)? {
        return Ok(existing.unsigned_abs());
    }
    let next: i64 = tx
        .query_row(
            "SELECT next FROM high_water WHERE server = ?1 AND scope = ?2",
            [server, scope],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(first);
    insert(tx, next)?;
    tx.execute(
        "INSERT INTO high_water (server, scope, next) VALUES (?1, ?2, ?3)
         ON CONFLICT (server, scope) DO UPDATE SET next = excluded.next",
        params![server, scope, next + 1],
    )?;
    Ok(next.unsigned_abs())
}

/// Deletes a server's identity, pairings, `c#` and maps (in `tx`).
fn delete_server(tx: &rusqlite::Transaction<'_>, key: &ServerKey) -> rusqlite::Result<()> {
    let k = key.as_db();
    tx.execute("DELETE FROM servers WHERE key = ?1", [&k])?;
    tx.execute("DELETE FROM aid_map WHERE server = ?1", [&k])?;
    tx.execute("DELETE FROM iid_allocators WHERE server = ?1", [&k])?;
    tx.execute("DELETE FROM high_water WHERE server = ?1", [&k])?;
    Ok(())
}

/// Deletes an accessory's AID and its IIDs (in `tx`); the AID is not handed out again.
fn delete_aid(
    tx: &rusqlite::Transaction<'_>,
    key: &ServerKey,
    accessory: &str,
) -> rusqlite::Result<()> {
    let k = key.as_db();
    let aid: Option<i64> = tx
        .query_row(
            "SELECT aid FROM aid_map WHERE server = ?1 AND key = ?2",
            params![k, accessory],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(aid) = aid {
        tx.execute(
            "DELETE FROM aid_map WHERE server = ?1 AND aid = ?2",
            params![k, aid],
        )?;
        tx.execute(
            "DELETE FROM iid_allocators WHERE server = ?1 AND aid = ?2",
            params![k, aid],
        )?;
    }
    Ok(())
}

/// The first AID given to a bridged accessory (1 is the primary accessory, HAP §6.1).
const FIRST_BRIDGED_AID: i64 = 2;
