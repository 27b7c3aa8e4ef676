//! Test support for this crate's and other crates' tests (cargo feature `testing`).
//!
//! ```toml
//! [dev-dependencies]
//! sipd-store = { workspace = true, features = ["testing"] }
//! ```
//!
//! ```no_run
//! # async fn example() {
//! let store = sipd_store::testing::fresh_store().await; // derefs to `Store`, migrated, empty
//! store.ping().await.unwrap();
//! let second = sipd_store::Store::connect(store.options()).await.unwrap(); // same database
//! # }
//! ```
//!
//! Each [`fresh_store`] gets its own empty database:
//! - by default a SQLite file in a new temporary folder, removed when the [`TestStore`] drops;
//! - when `SIPD_TEST_DATABASE_URL` is set (e.g. `postgres://postgres@127.0.0.1:5432/test`), a
//!   scratch PostgreSQL database `sipd_t_<unix seconds>_<random>` created on that server and
//!   dropped (`WITH (FORCE)`) when the `TestStore` drops. Scratch databases older than an hour,
//!   left by killed test processes, are swept at the next start. If the server cannot be reached
//!   the test panics: a configured PostgreSQL run must fail, not silently test nothing.
//!
//! Tests may run in parallel threads and processes; every store is independent.

use crate::{Store, StoreOptions};
use rand::distributions::{Alphanumeric, DistString};
use sqlx::{Connection, Executor};
use std::time::Duration;

/// Environment variable naming the PostgreSQL server to create scratch databases on.
pub const DATABASE_URL_ENV: &str = "SIPD_TEST_DATABASE_URL";

/// The digest realm test stores use.
pub const TEST_REALM: &str = "sip.test.invalid";

const SCRATCH_PREFIX: &str = "sipd_t_";
const SCRATCH_MAX_AGE_SECS: u64 = 3600;

/// A migrated, empty store on its own database; derefs to [`Store`]. Dropping it deletes the
/// database.
pub struct TestStore {
    store: Store,
    options: StoreOptions,
    // Declared last: dropped after the store's pool.
    _database: ScratchDatabase,
}

enum ScratchDatabase {
    /// The folder holding the SQLite file; removed on drop.
    Sqlite {
        _folder: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestStore {
    /// URL of this test's database, e.g. to open raw connections to it.
    pub fn url(&self) -> &str {
        &self.options.url
    }

    /// The options this store was opened with (same URL, key and realm): pass them to
    /// [`Store::connect`] for a second store on the same database.
    pub fn options(&self) -> StoreOptions {
        self.options.clone()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self._database, ScratchDatabase::Postgres { .. })
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let ScratchDatabase::Postgres { admin_url, name } = self else {
            return; // TempDir removes the SQLite folder itself.
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let database = name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: use a thread with its
        // own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|err| err.to_string())?;
            runtime.block_on(async {
                let mut admin = sqlx::AnyConnection::connect(&admin_url)
                    .await
                    .map_err(|err| err.to_string())?;
                drop_database(&mut admin, &database).await
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                eprintln!("sipd-store testing: cannot drop scratch database {name}: {err}")
            }
            Err(_) => eprintln!("sipd-store testing: dropping scratch database {name} panicked"),
        }
    }
}

/// Options for a test store on `url`: a random key, [`TEST_REALM`], a small pool.
pub fn test_options(url: String) -> StoreOptions {
    let mut secret_key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret_key);
    StoreOptions {
        url,
        secret_key,
        realm: TEST_REALM.to_owned(),
        max_connections: 4,
        acquire_timeout: Duration::from_secs(10),
    }
}

/// A new, migrated, empty store: SQLite by default, PostgreSQL when `SIPD_TEST_DATABASE_URL` is
/// set. Panics if the database cannot be set up.
pub async fn fresh_store() -> TestStore {
    let store = fresh_unmigrated_store().await;
    store.migrate().await.expect("migrate the test database");
    store
}

/// [`fresh_store`] before any migration ran: an empty database, for tests that bring it to an
/// older schema first (a database a previous release created) and then upgrade it.
pub async fn fresh_unmigrated_store() -> TestStore {
    sqlx::any::install_default_drivers();
    let (url, database) = match std::env::var(DATABASE_URL_ENV) {
        Ok(admin_url) if !admin_url.is_empty() => create_postgres_database(admin_url).await,
        _ => {
            let folder =
                tempfile::tempdir().expect("create a temporary folder for the test database");
            let url = format!("sqlite://{}/sipd.db?mode=rwc", folder.path().display());
            (url, ScratchDatabase::Sqlite { _folder: folder })
        }
    };
    let options = test_options(url);
    let store = Store::connect(options.clone())
        .await
        .expect("open the test store");
    TestStore {
        store,
        options,
        _database: database,
    }
}

async fn create_postgres_database(admin_url: String) -> (String, ScratchDatabase) {
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|err| {
            panic!("{DATABASE_URL_ENV} is set but PostgreSQL is unreachable: {err}")
        });
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    sweep_stale_databases(&mut admin, now_secs).await;
    let name = format!(
        "{SCRATCH_PREFIX}{now_secs}_{}",
        Alphanumeric
            .sample_string(&mut rand::thread_rng(), 10)
            .to_ascii_lowercase()
    );
    // Identifiers cannot be bound; the name is ours (digits, lower-case letters, `_`).
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap_or_else(|err| panic!("cannot create scratch database {name}: {err}"));
    let url = with_database(&admin_url, &name);
    (url, ScratchDatabase::Postgres { admin_url, name })
}

/// Drop scratch databases that test processes killed before their cleanup left behind. Only old
/// ones: younger ones may belong to tests running right now in other processes.
async fn sweep_stale_databases(admin: &mut sqlx::AnyConnection, now_secs: u64) {
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'sipd\\_t\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    {
        Ok(names) => names,
        Err(err) => {
            eprintln!("sipd-store testing: cannot list scratch databases: {err}");
            return;
        }
    };
    for name in names {
        let created_secs = name
            .strip_prefix(SCRATCH_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        let stale = created_secs.is_some_and(|secs| secs + SCRATCH_MAX_AGE_SECS < now_secs);
        let safe_name = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if stale && safe_name {
            if let Err(err) = drop_database(admin, &name).await {
                eprintln!("sipd-store testing: cannot sweep {name}: {err}");
            }
        }
    }
}

async fn drop_database(admin: &mut sqlx::AnyConnection, name: &str) -> Result<(), String> {
    admin
        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
        .await
        .map(|_| ())
        .map_err(|err| err.to_string())
}

/// `postgres://user@host:port/db?params` with the database part replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (location, params) = match rest.split_once('?') {
        Some((location, params)) => (location, Some(params)),
        None => (rest, None),
    };
    let authority = location.split('/').next().unwrap_or_default();
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(params) = params {
        out.push('?');
        out.push_str(params);
    }
    out
}
