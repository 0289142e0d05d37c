use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use hap_proto::CryptoRandom;
use hap_proto::pairing::{Pairing, PairingId, PairingStore as _, Permissions};

use super::*;
use crate::testutil::{TempDir, rng};

mod maps;

fn setup() -> impl FnOnce(&mut dyn CryptoRandom) -> SetupSecrets {
    |_| SetupSecrets {
        setup_id: "7OSX".to_owned(),
        setup_code: "518-08-582".to_owned(),
    }
}

fn never() -> impl FnOnce(&mut dyn CryptoRandom) -> SetupSecrets {
    |_| panic!("an existing server must not get new setup secrets")
}

fn pairing(id: &[u8], key_byte: u8, permissions: Permissions) -> Pairing {
    Pairing {
        id: PairingId(id.to_vec()),
        public_key: [key_byte; 32],
        permissions,
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn reopen_keeps_identity_and_pairings_byte_exact() {
    let dir = TempDir::new("reopen");
    let data = dir.path().join("state");
    let (device_id, secret, ids) = {
        let store = Arc::new(Store::open(&data).unwrap());
        let rec = store
            .server(&ServerKey::Bridge, &mut rng(1), setup())
            .unwrap();
        assert_eq!(rec.config_number, 1);
        let mut ps = store.pairing_store(&ServerKey::Bridge).unwrap();
        assert!(!ps.is_paired());
        // iOS pairing ids are uppercase UUIDs; case and odd bytes must survive exactly.
        let ids: Vec<&[u8]> = vec![
            b"A1B2C3D4-0000-4000-8000-ABCDEFabcdef",
            b"x",
            &[0xff, 0x00, 0x7f],
        ];
        ps.put_pairing(pairing(ids[0], 1, Permissions::Admin))
            .unwrap();
        ps.put_pairing(pairing(ids[1], 2, Permissions::User))
            .unwrap();
        ps.put_pairing(pairing(ids[2], 3, Permissions::User))
            .unwrap();
        (
            rec.identity.device_id,
            rec.identity.signing_key.to_bytes(),
            ids.iter().map(|i| i.to_vec()).collect::<Vec<_>>(),
        )
    };
    let store = Arc::new(Store::open(&data).unwrap());
    // A different RNG: an identity created again would differ.
    let rec = store
        .server(&ServerKey::Bridge, &mut rng(2), never())
        .unwrap();
    assert_eq!(rec.identity.device_id, device_id);
    assert_eq!(rec.identity.signing_key.to_bytes(), secret);
    assert_eq!(rec.setup.setup_id, "7OSX");
    assert_eq!(rec.setup.setup_code, "518-08-582");
    let ps = store.pairing_store(&ServerKey::Bridge).unwrap();
    let got: Vec<Vec<u8>> = ps.pairings().into_iter().map(|p| p.id.0).collect();
    assert_eq!(got, ids);
    assert_eq!(ps.pairings()[0].public_key, [1; 32]);
    assert_eq!(ps.pairings()[0].permissions, Permissions::Admin);
    // A lowercase variant of an id is another controller.
    assert!(
        ps.pairing(&PairingId(b"a1b2c3d4-0000-4000-8000-abcdefabcdef".to_vec()))
            .is_none()
    );
    // Standalone cameras have their own identity.
    let cam = store
        .server(&ServerKey::Camera("front".into()), &mut rng(3), setup())
        .unwrap();
    assert_ne!(cam.identity.device_id, device_id);
    assert!(
        store
            .pairings(&ServerKey::Camera("front".into()))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn permissions_are_0700_and_0600() {
    let dir = TempDir::new("perm");
    let data = dir.path().join("a/b");
    let store = Store::open(&data).unwrap();
    store
        .server(&ServerKey::Bridge, &mut rng(1), setup())
        .unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(store.path(), data.join(DB_FILE));
    // Rollback-journal mode: no journal, -wal or -shm files remain after a commit.
    let mut names: Vec<_> = fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, [LOCK_FILE, DB_FILE]);
    assert_eq!(mode(&data.join(LOCK_FILE)), 0o600);
    drop(store);

    // The parents the store created are its own too.
    assert_eq!(mode(&dir.path().join("a")), 0o700);

    // An existing directory that only its owner can write to is used as it is (never chmodded:
    // `--data-dir /var/lib` by mistake must not change a system directory); a too open database
    // file is tightened.
    fs::set_permissions(&data, FsPermissions::from_mode(0o755)).unwrap();
    fs::set_permissions(data.join(DB_FILE), FsPermissions::from_mode(0o644)).unwrap();
    let store = Store::open(&data).unwrap();
    assert_eq!(mode(&data), 0o755);
    assert_eq!(mode(&data.join(DB_FILE)), 0o600);
    drop(store);

    // An existing 0755 directory without a database: opened, left 0755, the file is 0600.
    let existing = dir.path().join("existing");
    fs::create_dir(&existing).unwrap();
    fs::set_permissions(&existing, FsPermissions::from_mode(0o755)).unwrap();
    let store = Store::open(&existing).unwrap();
    assert_eq!(mode(&existing), 0o755);
    assert_eq!(mode(store.path()), 0o600);
    drop(store);

    // A group-writable directory is refused, naming it, and left as it is.
    let group = dir.path().join("group");
    fs::create_dir(&group).unwrap();
    fs::set_permissions(&group, FsPermissions::from_mode(0o775)).unwrap();
    let Err(e) = Store::open(&group) else {
        panic!("a group-writable directory must be refused")
    };
    assert!(matches!(e, Error::SharedDirectory { .. }), "{e}");
    assert!(e.to_string().contains(&*group.to_string_lossy()), "{e}");
    assert_eq!(mode(&group), 0o775);
    assert_eq!(fs::read_dir(&group).unwrap().count(), 0, "nothing created");
    // The same for a database already there: refused, file and directory untouched.
    fs::set_permissions(&data, FsPermissions::from_mode(0o770)).unwrap();
    fs::set_permissions(data.join(DB_FILE), FsPermissions::from_mode(0o640)).unwrap();
    let Err(e) = Store::open(&data) else {
        panic!("a group-writable directory must be refused")
    };
    assert!(matches!(e, Error::SharedDirectory { .. }), "{e}");
    assert_eq!(mode(&data), 0o770);
    assert_eq!(mode(&data.join(DB_FILE)), 0o640);

    // A directory shared with other users (`/tmp`-like) is refused and left as it is.
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, FsPermissions::from_mode(0o1777)).unwrap();
    let Err(e) = Store::open(&shared) else {
        panic!("a shared directory must be refused")
    };
    assert!(matches!(e, Error::SharedDirectory { .. }), "{e}");
    assert_eq!(
        fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    assert_eq!(fs::read_dir(&shared).unwrap().count(), 0, "nothing created");
}

#[test]
fn open_existing_creates_nothing() {
    let dir = TempDir::new("existing");
    let data = dir.path().join("none");
    let Err(e) = Store::open_existing(&data) else {
        panic!("no state to open")
    };
    assert!(matches!(e, Error::Missing { .. }), "{e}");
    assert!(!data.exists());
    drop(Store::open(&data).unwrap());
    assert!(Store::open_existing(&data).is_ok());
}

#[test]
fn durability_pragmas_and_single_process_lock() {
    use rusqlite::types::Value;
    let dir = TempDir::new("pragma");
    let store = Store::open(dir.path()).unwrap();
    {
        let conn = store.lock();
        let q = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, Value>(0)).unwrap();
        assert_eq!(q("PRAGMA journal_mode"), Value::Text("delete".into()));
        assert_eq!(q("PRAGMA synchronous"), Value::Integer(3)); // EXTRA
        assert_eq!(q("PRAGMA foreign_keys"), Value::Integer(1));
        assert_eq!(q("PRAGMA application_id"), Value::Integer(APPLICATION_ID));
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("in use by another hap-bridge process")
    );
    drop(store);
    drop(Store::open(dir.path()).unwrap());
}

fn assert_refused_untouched(data: &Path, bytes: &[u8], want: &str) {
    let path = data.join(DB_FILE);
    fs::write(&path, bytes).unwrap();
    let err = Store::open(data).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with(&path.display().to_string()), "{msg}");
    assert!(msg.contains(want), "{msg}");
    assert_eq!(
        fs::read(&path).unwrap(),
        bytes,
        "the file must be left untouched"
    );
    assert!(!data.join(format!("{DB_FILE}-journal")).exists());
}

#[test]
fn garbage_file_is_reported_and_untouched() {
    let dir = TempDir::new("garbage");
    let mut garbage = b"this is not a database\n".repeat(200);
    garbage.extend((0..=255u8).cycle().take(4096));
    assert_refused_untouched(
        dir.path(),
        &garbage,
        "not a readable hap-bridge state database",
    );
}

#[test]
fn damaged_database_is_reported_and_untouched() {
    let dir = TempDir::new("damaged");
    let path = dir.path().join(DB_FILE);
    {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        store
            .server(&ServerKey::Bridge, &mut rng(1), setup())
            .unwrap();
        let mut ps = store.pairing_store(&ServerKey::Bridge).unwrap();
        ps.put_pairing(pairing(b"ctrl", 9, Permissions::Admin))
            .unwrap();
    }
    let good = fs::read(&path).unwrap();
    let page = 4096;
    assert!(
        good.len() >= 3 * page,
        "expected several pages, got {}",
        good.len()
    );
    // Overwrite the second page (a b-tree page of the schema's tables) with garbage.
    let mut bad = good.clone();
    for (i, b) in bad.iter_mut().skip(page).take(page).enumerate() {
        *b = (i * 7 + 13) as u8;
    }
    assert_refused_untouched(dir.path(), &bad, "not a readable hap-bridge state database");
    // Truncated to its header page.
    assert_refused_untouched(dir.path(), &good[..page], "not a readable");
}

#[test]
fn foreign_or_newer_database_is_refused() {
    let dir = TempDir::new("foreign");
    let path = dir.path().join(DB_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("CREATE TABLE other (x INTEGER); INSERT INTO other VALUES (1);")
            .unwrap();
    }
    let before = fs::read(&path).unwrap();
    let msg = Store::open(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("application_id 0x0 is not hap-bridge's"),
        "{msg}"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
    fs::remove_file(&path).unwrap();

    drop(Store::open(dir.path()).unwrap());
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    let msg = Store::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("schema version 99 is newer"), "{msg}");
}

#[test]
fn pairing_store_crud() {
    let dir = TempDir::new("crud");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    store
        .server(&ServerKey::Bridge, &mut rng(1), setup())
        .unwrap();
    let mut ps = store.pairing_store(&ServerKey::Bridge).unwrap();
    ps.put_pairing(pairing(b"admin", 1, Permissions::Admin))
        .unwrap();
    ps.put_pairing(pairing(b"user", 2, Permissions::User))
        .unwrap();
    assert!(ps.is_paired());
    // Replace keeps the position and changes permissions.
    ps.put_pairing(pairing(b"admin", 1, Permissions::User))
        .unwrap();
    assert_eq!(ps.pairings().len(), 2);
    assert_eq!(
        ps.pairing(&PairingId(b"admin".to_vec()))
            .unwrap()
            .permissions,
        Permissions::User
    );
    ps.remove_pairing(&PairingId(b"user".to_vec())).unwrap();
    ps.remove_pairing(&PairingId(b"unknown".to_vec())).unwrap();
    assert_eq!(ps.pairings(), [pairing(b"admin", 1, Permissions::User)]);
    // What the handle holds is what is stored.
    assert_eq!(store.pairings(&ServerKey::Bridge).unwrap(), ps.pairings());
    ps.remove_pairing(&PairingId(b"admin".to_vec())).unwrap();
    assert!(!ps.is_paired());
    assert!(store.pairings(&ServerKey::Bridge).unwrap().is_empty());

    // A server without a record cannot hold pairings: the write fails and the cache is unchanged.
    let mut orphan = store
        .pairing_store(&ServerKey::Camera("none".into()))
        .unwrap();
    let err = orphan
        .put_pairing(pairing(b"x", 1, Permissions::Admin))
        .unwrap_err();
    assert_eq!(err.what, "put_pairing");
    assert!(orphan.pairings().is_empty());
}

#[test]
fn a_removal_with_its_cascade_is_all_or_nothing() {
    let dir = TempDir::new("removal-tx");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    store
        .server(&ServerKey::Bridge, &mut rng(1), setup())
        .unwrap();
    let mut ps = store.pairing_store(&ServerKey::Bridge).unwrap();
    let all = [
        pairing(b"admin", 1, Permissions::Admin),
        pairing(b"user", 2, Permissions::User),
        pairing(b"last", 3, Permissions::User),
    ];
    for p in &all {
        ps.put_pairing(p.clone()).unwrap();
    }
    // The last delete of the removal fails (a full disk, an I/O error).
    store
        .lock()
        .execute_batch(
            "CREATE TRIGGER injected BEFORE DELETE ON pairings WHEN old.id = X'6C617374'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
        )
        .unwrap();
    // Removing the only admin removes everyone (HAP §2.8): in one transaction, so its failure
    // leaves every pairing in place, never only the non-admin ones.
    let out = hap_proto::pairing::removal::remove_pairing(&mut ps, &PairingId(b"admin".to_vec()));
    assert_eq!(out.error.map(|e| e.what), Some("remove_pairings"));
    assert!(out.removed.is_empty(), "{:?}", out.removed);
    assert_eq!(ps.pairings(), all, "the handle's cache is unchanged");
    assert_eq!(store.pairings(&ServerKey::Bridge).unwrap(), all);

    store.lock().execute_batch("DROP TRIGGER injected").unwrap();
    let out = hap_proto::pairing::removal::remove_pairing(&mut ps, &PairingId(b"admin".to_vec()));
    assert_eq!(out.removed.len(), 3);
    assert!(out.now_unpaired && out.error.is_none());
    assert!(store.pairings(&ServerKey::Bridge).unwrap().is_empty());
}

#[test]
fn failed_attempts_persist() {
    let dir = TempDir::new("failed");
    {
        let store = Arc::new(Store::open(dir.path()).unwrap());
        store
            .server(&ServerKey::Bridge, &mut rng(1), setup())
            .unwrap();
        let mut ps = store.pairing_store(&ServerKey::Bridge).unwrap();
        assert_eq!(ps.failed_attempts(), 0);
        ps.set_failed_attempts(7).unwrap();
        assert_eq!(ps.failed_attempts(), 7);
    }
    let store = Arc::new(Store::open(dir.path()).unwrap());
    assert_eq!(
        store
            .pairing_store(&ServerKey::Bridge)
            .unwrap()
            .failed_attempts(),
        7
    );
    assert!(
        store
            .set_failed_attempts(&ServerKey::Camera("none".into()), 1)
            .is_err()
    );
}

const CRASH_DIR_ENV: &str = "HAP_BRIDGE_TEST_CRASH_DIR";

fn crash_key(i: u32) -> [u8; 32] {
    let mut key = [0x5a; 32];
    key[..4].copy_from_slice(&i.to_le_bytes());
    key
}

/// The child of `crash_safety_under_sigkill`: writes pairings one per transaction until killed.
#[test]
#[ignore = "child process of crash_safety_under_sigkill"]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let store = Arc::new(Store::open(Path::new(&dir)).unwrap());
    store
        .server(&ServerKey::Bridge, &mut rng(1), setup())
        .unwrap();
    let mut ps = store.pairing_store(&ServerKey::Bridge).unwrap();
    let start = u32::try_from(ps.pairings().len()).unwrap();
    // A previous child may have been killed between a pairing and its counter update.
    ps.set_failed_attempts(start).unwrap();
    println!("ready");
    std::io::stdout().flush().unwrap();
    for i in start..start + 100_000 {
        let p = Pairing {
            id: PairingId(format!("ctrl-{i:06}").into_bytes()),
            public_key: crash_key(i),
            permissions: if i % 2 == 0 {
                Permissions::Admin
            } else {
                Permissions::User
            },
        };
        ps.put_pairing(p).unwrap();
        ps.set_failed_attempts(i + 1).unwrap();
    }
}

#[test]
fn crash_safety_under_sigkill() {
    use std::io::BufRead as _;
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().unwrap();
    let mut moments = rand::rng();
    let mut last = 0;
    for round in 0..6 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "store::tests::crash_child",
                "--ignored",
                "--nocapture",
            ])
            .arg("--test-threads=1")
            .env(CRASH_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the child to have the store open, then kill it at a random moment.
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert_ne!(
                out.read_line(&mut line).unwrap(),
                0,
                "child exited before ready"
            );
        }
        let wait = rand::RngExt::random_range(&mut moments, 5..400);
        std::thread::sleep(Duration::from_millis(wait));
        assert!(
            child.try_wait().unwrap().is_none(),
            "round {round}: child finished early"
        );
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = Arc::new(Store::open(dir.path()).unwrap());
        let ps = store.pairing_store(&ServerKey::Bridge).unwrap();
        let pairings = ps.pairings();
        let n = u32::try_from(pairings.len()).unwrap();
        for (i, p) in (0..).zip(&pairings) {
            assert_eq!(p.id.0, format!("ctrl-{i:06}").into_bytes(), "round {round}");
            assert_eq!(p.public_key, crash_key(i));
        }
        let failed = ps.failed_attempts();
        assert!(
            failed == n || failed + 1 == n,
            "round {round}: {n} pairings, counter {failed}"
        );
        assert!(
            n >= last,
            "round {round}: committed pairings were lost ({last} -> {n})"
        );
        println!("round {round}: killed after {wait} ms, {n} pairings committed, counter {failed}");
        last = n;
    }
    assert!(last > 0, "the children never committed anything");
    let t = Instant::now();
    drop(Store::open(dir.path()).unwrap());
    assert!(t.elapsed() < Duration::from_secs(5));
}
