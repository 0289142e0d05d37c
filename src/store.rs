//! The persistent state store: one SQLite database in the data directory.
//!
//! Everything that must never be lost (ARCHITECTURE.md key decision 2, HAP §2.7) lives here:
//! per HAP server (the bridge, and each standalone camera) its accessory identity, setup ID and
//! setup code, pairings, failed pair-setup counter and `c#`; the AID and IID maps; bridge
//! settings and cameras added at run time.
//!
//! # Durability
//! The database runs in rollback-journal mode (`journal_mode=DELETE`) with `synchronous=EXTRA`:
//! every commit fsyncs the journal, the database, and the directory after the journal is deleted
//! (deleting the journal is the commit point; `FULL` does not sync that unlink, so a power loss
//! right after a commit could bring the journal back and roll the commit back). A mutation that
//! returned `Ok` therefore survives a crash or power loss, and an interrupted one is rolled back
//! on the next open. WAL was not chosen: writes are rare (pairings, `c#`), WAL with the common
//! `synchronous=NORMAL` may lose the last commits on power loss, and rollback mode leaves a single
//! file to back up, with no `-wal`/`-shm` files lying next to it.
//!
//! # Safety of existing state
//! [`Store::open`] never overwrites or regenerates anything: a file that is not a readable
//! hap-bridge database is reported (naming the file) and left byte for byte as it was. An
//! identity is created once, on first use of a server, and from then on only read.
//!
//! The directory is created `0700` and the database file `0600`; SQLite gives its journal the
//! database file's mode.

use std::fs::{self, DirBuilder, OpenOptions, Permissions as FsPermissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use hap_proto::CryptoRandom;
use hap_proto::error::StoreError as ProtoStoreError;
use hap_proto::pairing::{
    AccessoryIdentity, DeviceId, Pairing, PairingId, PairingStore, Permissions,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use zeroize::Zeroizing;

/// Which HAP server a record belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ServerKey {
    /// The bridge accessory's server.
    Bridge,
    /// A standalone camera's server, by camera id.
    Camera(String),
}

impl ServerKey {
    /// The key as stored: `bridge` or `camera:<id>` (camera ids cannot collide with `bridge`).
    pub(crate) fn as_db(&self) -> String {
        match self {
            Self::Bridge => "bridge".to_owned(),
            Self::Camera(id) => format!("camera:{id}"),
        }
    }
}

/// Setup ID and setup code of a server (HAP §9), stored as given.
///
/// Strings on purpose: the store reads back whatever the file holds, and
/// `crate::setup_adapter` (the one place that creates and parses them with
/// `hap_proto::setup`) reports a stored value that no longer parses, naming the server, instead
/// of the store failing to load or silently replacing it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SetupSecrets {
    /// 4 characters `0-9A-Z`.
    pub(crate) setup_id: String,
    /// `XXX-XX-XXX`.
    pub(crate) setup_code: String,
}

impl std::fmt::Debug for SetupSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The setup code is a secret (the SRP password).
        f.debug_struct("SetupSecrets")
            .field("setup_id", &self.setup_id)
            .finish_non_exhaustive()
    }
}

/// A server's persistent record.
#[derive(Clone, Debug)]
pub(crate) struct ServerRecord {
    /// Device ID and long-term key pair.
    pub(crate) identity: AccessoryIdentity,
    /// Setup ID and code.
    pub(crate) setup: SetupSecrets,
    /// Current configuration number `c#` (HAP §6.5).
    pub(crate) config_number: u16,
}

/// A failure of the state store; every variant names the database file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The data directory or database file could not be created or inspected.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("{path}: {what}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        source: rusqlite::Error,
    },
    /// The file is not a readable hap-bridge database; it was left untouched.
    #[error(
        "{path}: not a readable hap-bridge state database ({detail}); left untouched: restore \
         it from a backup or move it away to start unpaired with a new identity"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What was found.
        detail: String,
    },
    /// The directory is shared with other users (world-writable, like `/tmp`): it is neither
    /// used nor restricted.
    #[error(
        "{path}: a directory shared with other users (world-writable) cannot hold the bridge's \
         keys; use a directory of its own, e.g. {path}/hap-bridge"
    )]
    SharedDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// There is no state database (yet) in this directory.
    #[error("{path}: no bridge state here; start the bridge once with this data directory")]
    Missing {
        /// The database file looked for.
        path: PathBuf,
    },
    /// The database was written by a newer version of hap-bridge.
    #[error("{path}: schema version {found} is newer than this program's {SCHEMA_VERSION}")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// Another process (or another `Store`) has this data directory open.
    #[error("{path}: the state directory is in use by another hap-bridge process")]
    Locked {
        /// The data directory.
        path: PathBuf,
    },
    /// A stored value is out of range (a damaged or hand-edited database).
    #[error("{path}: invalid stored value: {what}")]
    BadValue {
        /// The database file.
        path: PathBuf,
        /// Which value.
        what: String,
    },
}

/// The state store of one data directory.
pub(crate) struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Held (exclusive `flock`) while the store is open: one process per data directory.
    _lock: fs::File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `dir` only if it has a database already (for commands that read the
    /// bridge's state and must not create an empty one, e.g. `hap-bridge qr`).
    pub(crate) fn open_existing(dir: &Path) -> Result<Self, Error> {
        let db = dir.join(DB_FILE);
        if !db.exists() {
            return Err(Error::Missing { path: db });
        }
        Self::open(dir)
    }

    /// Creates or opens the store in `dir` (created `0700` if missing).
    ///
    /// An existing file that is not a hap-bridge database, is damaged or was written by a newer
    /// version is reported and left untouched.
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let io = |path: &Path, what: &'static str| {
            let path = path.to_owned();
            move |source| Error::Io { path, what, source }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir, "cannot create the state directory"))?;
        let mode = fs::metadata(dir)
            .map_err(io(dir, "cannot inspect the state directory"))?
            .permissions()
            .mode();
        if mode & 0o002 != 0 {
            // `/tmp` and the like: tightening it would break the machine for everyone else.
            return Err(Error::SharedDirectory {
                path: dir.to_owned(),
            });
        }
        fs::set_permissions(dir, FsPermissions::from_mode(0o700))
            .map_err(io(dir, "cannot restrict the state directory to 0700"))?;

        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path, "cannot open the lock file"))?;
        lock.try_lock().map_err(|e| match e {
            fs::TryLockError::WouldBlock => Error::Locked {
                path: dir.to_owned(),
            },
            fs::TryLockError::Error(source) => {
                io(&lock_path, "cannot lock the state directory")(source)
            }
        })?;

        let path = dir.join(DB_FILE);
        match fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_file() => {
                return Err(Error::Corrupt {
                    path,
                    detail: "not a regular file".to_owned(),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Create it ourselves so that it is 0600 from the start (SQLite would use 0644).
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io(&path, "cannot create the database file"))?;
            }
            Err(e) => return Err(io(&path, "cannot inspect the database file")(e)),
        }

        let sql = |what| {
            let path = path.clone();
            move |source| Error::Sqlite { path, what, source }
        };
        // The file exists now: never let SQLite create one.
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql("cannot open"))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(sql("cannot set the busy timeout"))?;

        // Read before anything else: a file that is not a database fails here, unmodified.
        let check: Result<String, _> = conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
        match check {
            Ok(ok) if ok == "ok" => {}
            Ok(detail) => return Err(Error::Corrupt { path, detail }),
            Err(e) => {
                return Err(Error::Corrupt {
                    path,
                    detail: e.to_string(),
                });
            }
        }
        let app_id: i64 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(sql("cannot read the application id"))?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(sql("cannot read the schema"))?;
        if tables > 0 && app_id != APPLICATION_ID {
            return Err(Error::Corrupt {
                path,
                detail: format!("application_id {app_id:#x} is not hap-bridge's"),
            });
        }

        let mode: String = conn
            .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
            .map_err(sql("cannot set the journal mode"))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(Error::Corrupt {
                path,
                detail: format!("journal mode stuck at {mode}"),
            });
        }
        conn.pragma_update(None, "synchronous", "EXTRA")
            .map_err(sql("cannot set synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql("cannot enable foreign keys"))?;

        let store = Self {
            conn: Mutex::new(conn),
            path,
            _lock: lock,
        };
        store.migrate(tables == 0)?;
        fs::set_permissions(&store.path, FsPermissions::from_mode(0o600))
            .map_err(io(&store.path, "cannot restrict the database file to 0600"))?;
        Ok(store)
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

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

    /// A bridge setting, if set.
    pub(crate) fn setting(&self, name: &str) -> Result<Option<String>, Error> {
        self.lock()
            .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(self.sql("cannot read a setting"))
    }

    /// Sets a bridge setting.
    pub(crate) fn set_setting(&self, name: &str, value: &str) -> Result<(), Error> {
        self.write("store a setting", |tx| {
            tx.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [name, value],
            )?;
            Ok(())
        })
    }

    /// Whether HomeKit is enabled (the admin API's enable/disable); `true` until set.
    pub(crate) fn bridge_enabled(&self) -> Result<bool, Error> {
        Ok(self.setting(SETTING_ENABLED)?.is_none_or(|v| v == "true"))
    }

    /// Persists the enabled flag.
    pub(crate) fn set_bridge_enabled(&self, enabled: bool) -> Result<(), Error> {
        self.set_setting(SETTING_ENABLED, if enabled { "true" } else { "false" })
    }

    /// Cameras added at run time: `(camera id, JSON)` in insertion order.
    pub(crate) fn runtime_cameras(&self) -> Result<Vec<(String, String)>, Error> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare("SELECT id, json FROM runtime_cameras ORDER BY rowid")
            .map_err(self.sql("cannot read cameras"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.sql("cannot read cameras"))?;
        rows.collect::<Result<_, _>>()
            .map_err(self.sql("cannot read cameras"))
    }

    /// Adds or replaces a run-time camera.
    pub(crate) fn put_runtime_camera(&self, id: &str, json: &str) -> Result<(), Error> {
        self.write("store a camera", |tx| {
            tx.execute(
                "INSERT INTO runtime_cameras (id, json) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                [id, json],
            )?;
            Ok(())
        })
    }

    fn migrate(&self, fresh: bool) -> Result<(), Error> {
        if fresh {
            return self.write("create the schema", |tx| {
                tx.execute_batch(SCHEMA_V1)?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )?;
                Ok(())
            });
        }
        let version: Option<i64> = self
            .lock()
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(|e| Error::Corrupt {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        match version {
            Some(SCHEMA_VERSION) => Ok(()),
            Some(found) if found > SCHEMA_VERSION => Err(Error::TooNew {
                path: self.path.clone(),
                found,
            }),
            // Future migrations from older versions go here, each in its own transaction.
            other => Err(Error::Corrupt {
                path: self.path.clone(),
                detail: format!("unknown schema version {other:?}"),
            }),
        }
    }

    fn update_server(
        &self,
        what: &'static str,
        key: &ServerKey,
        set: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<(), Error> {
        let k = key.as_db();
        let mut changed = 0;
        self.write(what, |tx| {
            changed = tx.execute(
                &format!("UPDATE servers SET {set} WHERE key = ?1"),
                params![k, value],
            )?;
            Ok(())
        })?;
        if changed == 0 {
            return Err(self.bad(format!("no server record for {k}")));
        }
        Ok(())
    }

    /// Runs `f` in one immediate transaction and commits it.
    fn write(
        &self,
        what: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>,
    ) -> Result<(), Error> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.sql(what))?;
        f(&tx).map_err(self.sql(what))?;
        tx.commit().map_err(self.sql(what))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-written transaction behind (SQLite
        // rolls back an uncommitted one), so the connection stays usable.
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sql(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error + use<> {
        let path = self.path.clone();
        move |source| Error::Sqlite { path, what, source }
    }

    fn bad(&self, what: String) -> Error {
        Error::BadValue {
            path: self.path.clone(),
            what,
        }
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
    tx.execute("DELETE FROM iid_map WHERE server = ?1", [&k])?;
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
            "DELETE FROM iid_map WHERE server = ?1 AND aid = ?2",
            params![k, aid],
        )?;
        tx.execute(
            "DELETE FROM high_water WHERE server = ?1 AND scope = ?2",
            params![k, iid_scope(aid)],
        )?;
    }
    Ok(())
}

fn iid_scope(aid: i64) -> String {
    format!("iid:{aid}")
}

/// The database file name inside the data directory.
pub(crate) const DB_FILE: &str = "state.sqlite3";
/// The lock file inside the data directory.
const LOCK_FILE: &str = "lock";
/// `PRAGMA application_id` of a hap-bridge database: "HAPB".
const APPLICATION_ID: i64 = 0x4841_5042;
/// The schema this program writes.
const SCHEMA_VERSION: i64 = 1;
/// How long a write waits for another process (e.g. the CLI) holding the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The first AID given to a bridged accessory (1 is the primary accessory, HAP §6.1).
const FIRST_BRIDGED_AID: i64 = 2;
/// Settings key of the enabled flag.
const SETTING_ENABLED: &str = "enabled";

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

#[cfg(test)]
mod tests;
