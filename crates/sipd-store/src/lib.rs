//! sipd persistence: accounts and sub-accounts, applications, endpoints and registrations
//! (bindings), on PostgreSQL (production, shared by several nodes) or SQLite (embedded default).
//!
//! One behaviour, two backends: the same `Store` methods and the same tests run on both.
//! The store knows nothing of SIP wire formats; it stores what the API and the registrar decide.
//!
//! Secrets: account auth tokens are stored encrypted at rest (ChaCha20-Poly1305 with the server
//! key) and verified in constant time; endpoint passwords are never stored, only digest HA1 values.

mod model;

pub use model::*;

use std::time::Duration;

/// What can go wrong, in the terms the API and registrar act on.
#[derive(Debug, thiserror::Error)]
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
    pub acquire_timeout: Duration,
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    // backend pool, cipher, realm: owned by the store implementation
}

impl Store {
    /// Connect (lazily: a dead database at start is not fatal, requests get `Unavailable`).
    pub async fn connect(options: StoreOptions) -> Result<Store> {
        unimplemented!("{}", options.url)
    }
    /// Apply pending migrations (`migrations/postgres` or `migrations/sqlite`).
    pub async fn migrate(&self) -> Result<()> {
        unimplemented!()
    }
    /// Round trip to the database (for `GET /health`).
    pub async fn ping(&self) -> Result<()> {
        unimplemented!()
    }

    // ---- accounts -------------------------------------------------------------------------

    /// Create a main account (`parent_id: None`, auth_id `MA_` + 8) or a sub-account (`SA_` + 8).
    /// Generates auth_id / auth_token when not given; returns the clear token (shown once).
    pub async fn create_account(&self, new: NewAccount) -> Result<(Account, String)> {
        unimplemented!("{new:?}")
    }
    /// The account whose auth_id and token match (token compared in constant time), if enabled
    /// or not. `None` for an unknown id or a wrong token (indistinguishable to the caller).
    pub async fn authenticate(&self, auth_id: &str, auth_token: &str) -> Result<Option<Account>> {
        unimplemented!("{auth_id}{auth_token}")
    }
    pub async fn account_by_auth_id(&self, auth_id: &str) -> Result<Option<Account>> {
        unimplemented!("{auth_id}")
    }
    pub async fn account_by_id(&self, id: i64) -> Result<Option<Account>> {
        unimplemented!("{id}")
    }
    /// Decrypted auth token (for signing webhooks, verifying SDK-minted tokens). Never log it.
    pub async fn account_auth_token(&self, id: i64) -> Result<Option<String>> {
        unimplemented!("{id}")
    }
    /// Sub-accounts of `parent_id`, newest first, and the total count.
    pub async fn list_sub_accounts(
        &self,
        parent_id: i64,
        active_only: bool,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Account>, i64)> {
        unimplemented!("{parent_id}{active_only}{limit}{offset}")
    }
    pub async fn update_account(&self, id: i64, patch: AccountPatch) -> Result<Option<Account>> {
        unimplemented!("{id}{patch:?}")
    }
    /// Delete a sub-account. `cascade`: delete its endpoints and applications too; otherwise
    /// they move to the parent account. Returns false if there was no such account.
    pub async fn delete_sub_account(&self, id: i64, cascade: bool) -> Result<bool> {
        unimplemented!("{id}{cascade}")
    }

    // ---- applications ---------------------------------------------------------------------

    /// Create an app owned by `new.account_id`. Setting `default_endpoint_app` (or
    /// `default_number_app`) moves that flag off the owner's other apps.
    pub async fn create_application(&self, new: NewApplication) -> Result<Application> {
        unimplemented!("{new:?}")
    }
    pub async fn get_application(&self, scope: Scope, app_id: &str) -> Result<Option<Application>> {
        unimplemented!("{scope:?}{app_id}")
    }
    /// Newest first, and the total count.
    pub async fn list_applications(
        &self,
        scope: Scope,
        filter: &ApplicationFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Application>, i64)> {
        unimplemented!("{scope:?}{filter:?}{limit}{offset}")
    }
    pub async fn update_application(
        &self,
        scope: Scope,
        app_id: &str,
        patch: ApplicationPatch,
    ) -> Result<Option<Application>> {
        unimplemented!("{scope:?}{app_id}{patch:?}")
    }
    /// Endpoints bound to the app are left with no application. False if not found.
    pub async fn delete_application(&self, scope: Scope, app_id: &str) -> Result<bool> {
        unimplemented!("{scope:?}{app_id}")
    }
    /// The app of `account_id` flagged `default_endpoint_app`, if any.
    pub async fn default_endpoint_application(&self, account_id: i64) -> Result<Option<Application>> {
        unimplemented!("{account_id}")
    }

    // ---- endpoints ------------------------------------------------------------------------

    /// Fails with `Conflict { field: "username" }` when the username is taken by any account,
    /// and `InvalidReference("application")` when the app does not exist.
    pub async fn create_endpoint(&self, new: NewEndpoint) -> Result<Endpoint> {
        unimplemented!("{new:?}")
    }
    pub async fn get_endpoint(&self, scope: Scope, endpoint_id: &str) -> Result<Option<Endpoint>> {
        unimplemented!("{scope:?}{endpoint_id}")
    }
    /// Newest first (`created_at DESC, id DESC`), and the total count.
    pub async fn list_endpoints(
        &self,
        scope: Scope,
        filter: &EndpointFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Endpoint>, i64)> {
        unimplemented!("{scope:?}{filter:?}{limit}{offset}")
    }
    /// Partial update. A password change recomputes the HA1 values, stamps
    /// `credentials_changed_at` and deletes the endpoint's registrations in the same transaction.
    pub async fn update_endpoint(
        &self,
        scope: Scope,
        endpoint_id: &str,
        patch: EndpointPatch,
    ) -> Result<Option<Endpoint>> {
        unimplemented!("{scope:?}{endpoint_id}{patch:?}")
    }
    /// Deletes the endpoint and its registrations. False if not found.
    pub async fn delete_endpoint(&self, scope: Scope, endpoint_id: &str) -> Result<bool> {
        unimplemented!("{scope:?}{endpoint_id}")
    }
    /// Digest credentials by SIP username, for the registrar.
    pub async fn credentials_by_username(&self, username: &str) -> Result<Option<Credentials>> {
        unimplemented!("{username}")
    }

    // ---- registrations (bindings); the registrar issue builds on these --------------------

    /// Insert or replace the binding (unique per endpoint + contact URI).
    pub async fn upsert_binding(&self, binding: &Binding) -> Result<()> {
        unimplemented!("{binding:?}")
    }
    pub async fn delete_binding(&self, endpoint_pk: i64, contact_uri: &str) -> Result<()> {
        unimplemented!("{endpoint_pk}{contact_uri}")
    }
    /// All bindings that have not expired at `now_ms`, e.g. to reload at start.
    pub async fn live_bindings(&self, now_ms: i64) -> Result<Vec<Binding>> {
        unimplemented!("{now_ms}")
    }
}
