//! sipd persistence: accounts and sub-accounts, applications, endpoints and registrations
//! (bindings), on PostgreSQL (production, shared by several nodes) or SQLite (embedded default).
//!
//! One behaviour, two backends: the same `Store` methods and the same tests run on both.
//! The store knows nothing of SIP wire formats; it stores what the API and the registrar decide.
//!
//! Secrets: account auth tokens are stored encrypted at rest (ChaCha20-Poly1305 with the server
//! key) and verified in constant time; endpoint passwords are never stored, only digest HA1 values.
//!
//! Implementation: one sqlx `Any` pool, each statement written once with `$N` parameters (both
//! backends accept them); times are BIGINT Unix milliseconds, booleans BOOLEAN (PostgreSQL) or
//! 0/1 INTEGER (SQLite). Schemas: `migrations/postgres` and `migrations/sqlite`.
//!
//! Registrar support: [`Store::binding_writer`] commits binding changes with group commit
//! (concurrent REGISTERs share one transaction; each is answered after its commit),
//! [`Store::live_bindings`] reloads them at start, [`Store::purge_expired_bindings`] cleans up,
//! and [`Store::subscribe_endpoint_changes`] tells every node's caches about password changes,
//! other endpoint changes and deleted endpoints (LISTEN/NOTIFY on PostgreSQL).
//!
//! ```no_run
//! # async fn registrar(store: sipd_store::Store, binding: sipd_store::Binding) -> sipd_store::Result<()> {
//! use sipd_store::{BindingChange, EndpointEvent};
//! // At start: subscribe first, then load, so no change slips in between.
//! let mut changes = store.subscribe_endpoint_changes().await;
//! let bindings = store.live_bindings(chrono::Utc::now().timestamp_millis()).await?;
//! tokio::spawn(async move {
//!     while let Some(event) = changes.recv().await {
//!         match event {
//!             // Drop the cached credentials of `change.username` and the bindings of
//!             // `change.endpoint_pk` (unless the kind is `Updated`).
//!             EndpointEvent::Changed(change) => {}
//!             // Drop everything cached.
//!             EndpointEvent::Resync => {}
//!         }
//!     }
//! });
//! // Per REGISTER, after the digest check with `credentials`: answer 200 once this returns.
//! let writer = store.binding_writer(); // once, shared by all REGISTERs
//! # let credentials = store.credentials_by_username("alice").await?.unwrap();
//! writer
//!     .commit(vec![BindingChange::UpsertAuthenticated {
//!         binding,
//!         credentials_changed_at_ms: credentials.credentials_changed_at.timestamp_millis(),
//!     }])
//!     .await?;
//! # drop(bindings);
//! # Ok(())
//! # }
//! ```
//!
//! Cargo feature `testing`: `testing::fresh_store()` gives tests of any crate an empty, migrated
//! store (SQLite, or PostgreSQL when `SIPD_TEST_DATABASE_URL` is set).

mod accounts;
mod applications;
mod bindings;
mod changes;
mod endpoints;
mod model;
mod secrets;
mod sql;
#[cfg(feature = "testing")]
pub mod testing;
mod writer;

pub use bindings::BindingChange;
pub use changes::{EndpointChange, EndpointChangeKind, EndpointChanges, EndpointEvent};
pub use model::*;
pub use writer::{BindingWriter, DEFAULT_MAX_BATCH_CHANGES};

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, Executor, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// What can go wrong, in the terms the API and registrar act on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (connect refused, pool timeout, I/O): the API answers 503
    /// and the pool recovers by itself when the database comes back.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique value is taken (e.g. an endpoint username, across the whole domain).
    #[error("{field} already exists")]
    Conflict { field: &'static str },
    /// A referenced row does not exist or is outside the caller's scope (e.g. an unknown app id).
    #[error("unknown {0}")]
    InvalidReference(&'static str),
    /// Anything else from the database; the API answers 500 and logs it.
    #[error("database error: {0}")]
    Database(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How to open the store.
#[derive(Clone)]
pub struct StoreOptions {
    /// `postgres://…` or `sqlite://path?mode=rwc` (`sqlite:` URLs create the file and its folder).
    pub url: String,
    /// 32-byte server key that encrypts auth tokens at rest.
    pub secret_key: [u8; 32],
    /// Digest realm (the SIP domain) that endpoint HA1 values are computed with.
    pub realm: String,
    pub max_connections: u32,
    /// How long a request waits for a connection before the store reports `Unavailable`.
    /// On SQLite it is also the busy timeout: how long a write waits for another writer's lock.
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for StoreOptions {
    // The URL may carry a database password and the key is the token secret: keep both out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("realm", &self.realm)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    tokens: Arc<secrets::TokenSealer>,
    realm: Arc<str>,
    changes: Arc<changes::ChangeHub>,
}

/// The SQL dialect behind the `Any` pool; queries are shared, only a few statements differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

impl Backend {
    fn from_url(url: &str) -> Result<Backend> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "sqlite" => Ok(Backend::Sqlite),
            // Not the URL itself: it may carry a password.
            _ => Err(StoreError::Database(format!(
                "unsupported database URL scheme `{scheme}` (expected postgres: or sqlite:)"
            ))),
        }
    }
}

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../../migrations/sqlite");

impl Store {
    /// Connect (lazily: a dead database at start is not fatal, requests get `Unavailable`).
    pub async fn connect(options: StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(&options.url)?;
        if backend == Backend::Sqlite {
            create_sqlite_folder(&options.url)?;
        }
        let busy_timeout_ms = options.acquire_timeout.as_millis().min(i32::MAX as u128);
        let sqlite_pragmas: Arc<[String]> = Arc::from(vec![
            "PRAGMA journal_mode = WAL".to_owned(),
            // FULL: a commit (a binding before its 200 OK) survives a power loss, not only a
            // crash of sipd; group commit makes the extra fsync per transaction affordable.
            "PRAGMA synchronous = FULL".to_owned(),
            "PRAGMA foreign_keys = ON".to_owned(),
            format!("PRAGMA busy_timeout = {busy_timeout_ms}"),
            // SQLite's LIKE ignores ASCII case by default; PostgreSQL's does not.
            "PRAGMA case_sensitive_like = ON".to_owned(),
        ]);
        // Every connection to an in-memory SQLite database opens a database of its own: keep
        // exactly one, for ever.
        let in_memory = backend == Backend::Sqlite
            && (options.url.contains(":memory:") || options.url.contains("mode=memory"));
        let pool_options = if in_memory {
            AnyPoolOptions::new()
                .max_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            AnyPoolOptions::new().max_connections(options.max_connections.max(1))
        };
        let pool = pool_options
            .acquire_timeout(options.acquire_timeout)
            .after_connect(move |conn, _meta| {
                let pragmas = Arc::clone(&sqlite_pragmas);
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        for pragma in pragmas.iter() {
                            conn.execute(pragma.as_str()).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_lazy(&sqlite_creating_url(backend, in_memory, &options.url))
            .map_err(|err| StoreError::Database(format!("invalid database URL: {err}")))?;
        Ok(Store {
            pool,
            backend,
            tokens: Arc::new(secrets::TokenSealer::new(&options.secret_key)),
            realm: Arc::from(options.realm.as_str()),
            changes: Arc::new(changes::ChangeHub::new(
                backend,
                &options.url,
                options.acquire_timeout,
            )),
        })
    }

    /// Apply pending migrations (`migrations/postgres` or `migrations/sqlite`).
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Postgres => &POSTGRES_MIGRATIONS,
            Backend::Sqlite => &SQLITE_MIGRATIONS,
        };
        migrator.run(&self.pool).await.map_err(|err| match err {
            MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => err.into(),
            other => StoreError::Database(other.to_string()),
        })
    }

    /// Round trip to the database (for `GET /health`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Close the pool: waits for checked-out connections to come back, then closes them all.
    /// Also stops the endpoint change listener.
    pub async fn close(&self) {
        self.changes.stop();
        self.pool.close().await;
    }

    /// Subscribe to endpoint changes made through any store on this database: password changes,
    /// other changes (permissions, application, owner) and deletions (by the API, or with a
    /// deleted sub-account or application), so caches drop credentials and bindings at once. Changes made through this store arrive right after they commit;
    /// on PostgreSQL, other nodes' arrive through LISTEN/NOTIFY.
    ///
    /// Subscribe first, then load the state to cache: on PostgreSQL this waits (up to the
    /// acquire timeout) until the listener listens, so nothing committed afterwards is missed.
    /// [`EndpointEvent::Resync`] says changes may have been missed (the listener reconnected,
    /// or this receiver fell behind): drop everything cached.
    pub async fn subscribe_endpoint_changes(&self) -> EndpointChanges {
        self.changes.subscribe(&self.pool).await
    }

    /// A transaction for read-modify-write work. On SQLite it takes the write lock up front, so
    /// it waits (busy timeout) instead of failing when another writer commits in between.
    async fn begin_write(&self) -> Result<Transaction<'static, sqlx::Any>> {
        let tx = match self.backend {
            Backend::Postgres => self.pool.begin().await?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
        };
        Ok(tx)
    }
}

/// A SQLite URL without `mode=` opens read-write but does not create the file; the store's
/// URLs always create it (as documented on [`StoreOptions::url`]).
fn sqlite_creating_url(backend: Backend, in_memory: bool, url: &str) -> String {
    if backend != Backend::Sqlite || in_memory || url.contains("mode=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

/// `sqlite://data/sipd.db?mode=rwc` creates the file but not its folder: create the folder.
fn create_sqlite_folder(url: &str) -> Result<()> {
    let rest = url
        .split_once(':')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with(":memory:") {
        return Ok(());
    }
    match std::path::Path::new(path).parent() {
        Some(folder) if !folder.as_os_str().is_empty() => {
            std::fs::create_dir_all(folder).map_err(|err| {
                StoreError::Unavailable(format!("cannot create {}: {err}", folder.display()))
            })
        }
        _ => Ok(()),
    }
}
