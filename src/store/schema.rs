//! The database schema and its migrations: each version's changes run in one transaction, so a
//! store written by an earlier release opens and keeps everything it held.

use super::{APPLICATION_ID, Error, Store};

impl Store {
    /// Creates the schema in a new database, or brings an existing one up to
    /// [`SCHEMA_VERSION`], one version per transaction.
    pub(super) fn migrate(&self, fresh: bool) -> Result<(), Error> {
        if fresh {
            self.write("create the schema", |tx| {
                tx.execute_batch(SCHEMA_V1)?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)?;
                tx.execute("INSERT INTO schema_version (version) VALUES (1)", [])?;
                Ok(())
            })?;
        }
        loop {
            let version: Option<i64> = self
                .lock()
                .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
                .map_err(|e| Error::Corrupt {
                    path: self.path.clone(),
                    detail: e.to_string(),
                })?;
            match version {
                Some(SCHEMA_VERSION) => return Ok(()),
                Some(found) if found > SCHEMA_VERSION => {
                    return Err(Error::TooNew {
                        path: self.path.clone(),
                        found,
                    });
                }
                Some(1) => self.write("migrate the store to schema 2", to_v2)?,
                other => {
                    return Err(Error::Corrupt {
                        path: self.path.clone(),
                        detail: format!("unknown schema version {other:?}"),
                    });
                }
            }
        }
    }
}

/// Schema 2: IID allocators get their own table (they were JSON in `settings`, under
/// `iids/<server>/<aid>`), and the `iid_map` table, never written, and the `iid:` scopes of
/// `high_water`, never used, are dropped.
fn to_v2(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE iid_allocators (
             server TEXT NOT NULL,
             aid INTEGER NOT NULL CHECK (aid >= 1),
             state TEXT NOT NULL,
             PRIMARY KEY (server, aid)
         );",
    )?;
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT name, value FROM settings WHERE name LIKE 'iids/%'")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    for (name, state) in rows {
        // `iids/<server>/<aid>`; server keys (`bridge`, `camera:<id>`) hold no `/`.
        let parsed = name
            .strip_prefix("iids/")
            .and_then(|rest| rest.rsplit_once('/'))
            .and_then(|(server, aid)| Some((server.to_owned(), aid.parse::<i64>().ok()?)));
        match parsed {
            Some((server, aid)) if aid >= 1 => {
                tx.execute(
                    "INSERT INTO iid_allocators (server, aid, state) VALUES (?1, ?2, ?3)",
                    rusqlite::params![server, aid, state],
                )?;
            }
            _ => {
                tracing::warn!(setting = %name, "store migration: an IID map with an unreadable name is dropped")
            }
        }
    }
    tx.execute_batch(
        "DELETE FROM settings WHERE name LIKE 'iids/%';
         DROP TABLE iid_map;
         DELETE FROM high_water WHERE scope LIKE 'iid:%';
         INSERT INTO schema_version (version) VALUES (2);",
    )
}

/// The schema this program writes.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// Schema 1 for the migration tests.
#[cfg(test)]
pub(super) const SCHEMA_V1_FOR_TESTS: &str = SCHEMA_V1;

/// Schema 1, as the first release created it; later versions migrate from it.
const SCHEMA_V1: &str = "
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE servers (
    key TEXT PRIMARY KEY,
    device_id BLOB NOT NULL CHECK (length(device_id) = 6),
    secret_key BLOB NOT NULL CHECK (length(secret_key) = 32),
    setup_id TEXT NOT NULL,
    setup_code TEXT NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    config_number INTEGER NOT NULL DEFAULT 1 CHECK (config_number BETWEEN 1 AND 65535),
    shape_hash BLOB
);
CREATE TABLE pairings (
    server TEXT NOT NULL REFERENCES servers (key) ON DELETE CASCADE,
    id BLOB NOT NULL,
    public_key BLOB NOT NULL CHECK (length(public_key) = 32),
    permissions INTEGER NOT NULL CHECK (permissions IN (0, 1)),
    PRIMARY KEY (server, id)
);
CREATE TABLE aid_map (
    server TEXT NOT NULL,
    key TEXT NOT NULL,
    aid INTEGER NOT NULL CHECK (aid >= 2),
    PRIMARY KEY (server, key),
    UNIQUE (server, aid)
);
CREATE TABLE iid_map (
    server TEXT NOT NULL,
    aid INTEGER NOT NULL,
    key TEXT NOT NULL,
    iid INTEGER NOT NULL CHECK (iid >= 1),
    PRIMARY KEY (server, aid, key),
    UNIQUE (server, aid, iid)
);
CREATE TABLE high_water (
    server TEXT NOT NULL,
    scope TEXT NOT NULL,
    next INTEGER NOT NULL,
    PRIMARY KEY (server, scope)
);
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runtime_cameras (id TEXT PRIMARY KEY, json TEXT NOT NULL);
";
