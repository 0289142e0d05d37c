//! The persistent state store: one SQLite database in the data directory.
//!
//! Everything that must never be lost (ARCHITECTURE.md key decision 2, HAP §2.7) lives here:
//! per HAP server (the bridge, and each standalone camera) its accessory identity, setup ID and
//! setup code, pairings, failed pair-setup counter and `c#`; the AID map and each accessory's
//! IID allocator; bridge settings and cameras added at run time. The schema and its migrations
//! are in `schema`, the maps in `maps`, identities and pairings in `pairings`.
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
//! A directory the store creates is `0700`; an existing one is used as it is (never chmodded),
//! unless it is group- or world-writable, which is refused. The database file is `0600`; SQLite
//! gives its journal the database file's mode.

use std::fs::{self, DirBuilder, OpenOptions, Permissions as FsPermissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hap_proto::pairing::AccessoryIdentity;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

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
    /// The directory is shared with other users (group- or world-writable, like `/tmp`): it is
    /// neither used nor restricted.
    #[error(
        "{path}: a directory shared with other users (group- or world-writable) cannot hold the \
         bridge's keys; use a directory of its own, e.g. {path}/hap-bridge (created 0700), or \
         remove the group and world write permissions"
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
    #[error(
        "{path}: schema version {found} is newer than this program's {}",
        schema::SCHEMA_VERSION
    )]
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

    /// Creates or opens the store in `dir` (created `0700` if missing; an existing directory is
    /// used as it is, or refused when other users can write to it, see [`Self::prepare_dir`]).
    ///
    /// An existing file that is not a hap-bridge database, is damaged or was written by a newer
    /// version is reported and left untouched.
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let io = |path: &Path, what: &'static str| {
            let path = path.to_owned();
            move |source| Error::Io { path, what, source }
        };
        Self::prepare_dir(dir)?;

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

    /// Makes sure the state directory `dir` exists and only its owner can write to it.
    ///
    /// A directory the bridge creates (with any missing parents) is made `0700`. An existing one
    /// is never chmodded (`--data-dir /var/lib` by mistake, as root, must not change a system
    /// directory): it is used as it is, unless it is group- or world-writable, which is refused
    /// ([`Error::SharedDirectory`]) and left untouched.
    fn prepare_dir(dir: &Path) -> Result<(), Error> {
        let io = |what: &'static str| {
            let path = dir.to_owned();
            move |source| Error::Io { path, what, source }
        };
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io("cannot create the state directory's parent"))?;
        }
        match DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {
                // Ours: 0700 whatever the umask.
                return fs::set_permissions(dir, FsPermissions::from_mode(0o700))
                    .map_err(io("cannot restrict the state directory to 0700"));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("cannot create the state directory")(e)),
        }
        let meta = fs::metadata(dir).map_err(io("cannot inspect the state directory"))?;
        if !meta.is_dir() {
            return Err(io("cannot use the state directory")(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        if meta.permissions().mode() & SHARED_DIR_BITS != 0 {
            // `/tmp`, a group's directory and the like: other users could swap the database or
            // the lock file, and tightening it would break the machine for everyone else.
            return Err(Error::SharedDirectory {
                path: dir.to_owned(),
            });
        }
        Ok(())
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
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

/// The database file name inside the data directory.
pub(crate) const DB_FILE: &str = "state.sqlite3";
/// The lock file inside the data directory.
const LOCK_FILE: &str = "lock";
/// Permission bits that make an existing state directory shared: group- or world-writable.
const SHARED_DIR_BITS: u32 = 0o022;
/// `PRAGMA application_id` of a hap-bridge database: "HAPB".
const APPLICATION_ID: i64 = 0x4841_5042;
/// How long a write waits for another process (e.g. the CLI) holding the database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Settings key of the enabled flag.
const SETTING_ENABLED: &str = "enabled";

mod maps;
mod pairings;
mod schema;

pub(crate) use pairings::ServerStore;

#[cfg(test)]
mod tests;
