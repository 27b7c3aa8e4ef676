//! The registrar's I/O shell: the location service and the REGISTER pipeline around the
//! sans-IO core (tokio, the store; the core stays pure).
//!
//! # API (the SIP dispatch loop codes against this)
//!
//! ```text
//! RegistrarService::start(store: Store, config: ServiceConfig)
//!     -> Result<RegistrarService, StartError>                       // Clone (Arc inside), Send + Sync
//! service.handle_register(&request: &Message, source: Source, now: SystemTime)
//!     .await -> RegisterOutcome                                     // never fails: the answer is a SIP response
//! service.flow_closed(flow: FlowId)                                 // a connection died
//! service.activity() -> watch::Receiver<u64>                        // changes after background work
//! service.authenticate(&request: &Message, now: SystemTime)
//!     .await -> Result<EndpointInfo, Response>                      // the proxy's caller, or its 407/400/503
//! service.locate(username: &str, now: SystemTime)
//!     .await -> Result<Option<Located>, StoreError>                 // the proxy's callee: endpoint and live bindings
//! service.shutdown().await                                          // stop tasks, finish background commits
//!
//! Source          { remote: SocketAddr, flow: FlowId, local: SocketAddr }
//! RegisterOutcome { response: Bytes, status: u16, flow_registered: Option<bool> }
//! Located         { endpoint: EndpointInfo, bindings: Vec<Binding> }
//! ```
//!
//! `handle_register` takes a REGISTER already matched to a new non-INVITE server transaction and
//! resolves to the final response to send through it, once any binding change is durable.
//! `flow_registered` is `Some(whether the REGISTER's flow carries a binding now, of this AOR
//! or, for a connection, of any)` after an accepted REGISTER (pin or unpin the connection for
//! keep-alive) and `None` for a refusal.
//!
//! `authenticate` is for the proxy: a request other than REGISTER (and never ACK or CANCEL,
//! which cannot be challenged) from a device claiming to be one of our endpoints, checked by
//! its `Proxy-Authorization` with the same nonces, replay tracker (a nonce's counts rise
//! across REGISTERs and other requests) and cached credentials as REGISTERs. The `407` is
//! meant to be sent statelessly, as the `401` is. The authenticated user need not be the
//! From user (phones put display numbers there; Kamailio's `proxy_authorize` does not compare
//! them either): the proxy routes as the authenticated endpoint.
//!
//! # What it owns
//!
//! * Credentials cache (`credentials.rs`): each known user's HA1 values with its
//!   [`EndpointInfo`] (owner, family, application, permissions as bit flags), until an
//!   endpoint change (password, permissions, application, owner, deletion: any
//!   [`EndpointChangeKind`]) drops it; unknown users for [`ServiceConfig::unknown_user_ttl`],
//!   at most [`ServiceConfig::max_unknown_users`]. A database failure answers `503` with
//!   `Retry-After`; the pool recovers by itself.
//! * Bindings in memory (`location.rs`), the authority for lookups: about 430 bytes per binding
//!   with one binding per AOR, 310 per further binding (`tests/service_memory.rs`). REGISTERs
//!   of one AOR hold its async lock (one of 4096 stripes) from reading its bindings to
//!   installing the new ones, across the commit, so CSeq order and contact limits hold; other
//!   AORs proceed in parallel. Run `handle_register` to completion (e.g. in its own task):
//!   dropped once its commit is queued, memory would miss what the database then has.
//! * Durability: changes go through the store's group-commit `BindingWriter`; memory changes
//!   and the 200 is sent only after the commit succeeded (`503` if the database is unavailable,
//!   else `500`).
//! * Expiry: lookups filter by `now`; a timer task sleeps until the earliest binding deadline
//!   and drops what expired, then a purge task deletes expired rows in batches (at most once a
//!   second, and every [`ServiceConfig::purge_interval`] for rows other nodes left).
//! * Endpoint changes (this node's API or, on PostgreSQL, another node's): a password change or
//!   deletion drops the endpoint's cached credentials and bindings at once; any other change
//!   (permissions, application, owner) drops only its cached credentials, so the next request
//!   reads the new facts. A REGISTER that was authenticated with the old password and commits
//!   around the change is undone: it rechecks its credentials under the AOR lock, and the
//!   change handler durably deletes this node's bindings it drops. (A REGISTER caught by any
//!   change of its endpoint starts over, and answers with a `stale=true` challenge.)
//! * Flows: `flow_closed` drops at once the bindings this node holds on that connection that
//!   end with it, and deletes them durably in the background: WebSocket bindings (only the
//!   device can open a WebSocket, RFC 7118) and RFC 5626 flows (`reg-id`: the device
//!   registers anew over another flow). TCP and TLS bindings without `reg-id` stay until they
//!   expire or are refreshed: the proxy reaches them over a new connection to their address
//!   (RFC 3261 §18), as a phone that dropped an idle connection expects. UDP flows never
//!   close. Keep-alive pinning is unchanged: a connection stays pinned while it carries any
//!   binding.
//! * Restart: `start` reloads every live binding of every node, except this node's bindings
//!   that end with their connection (as above): those connections died with the previous
//!   process, so they are deleted. This node's TCP and TLS bindings without `reg-id` are kept,
//!   with flow ids that name no connection of the new process (connection ids are never
//!   reused, not even across restarts). Other nodes' bindings are a snapshot taken at start
//!   (nodes do not tell each other about REGISTERs); this node's own are always current.

mod credentials;
mod location;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip_message::{FlowId, Message};
use sipd_store::{
    Binding, BindingChange, BindingWriter, EndpointChange, EndpointChangeKind, EndpointChanges,
    EndpointEvent, Store, StoreError,
};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::response::Responder;
use crate::{
    AuthRole, ConfigError, EndpointInfo, Registrar, RegistrarConfig, Response, Source, Start,
};
use credentials::CredentialCache;
use location::{ends_with_connection, Location};

/// The core's configuration plus the shell's knobs.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Domain, nonce secret, expiry limits and `node_id` (this process, recorded in bindings).
    pub registrar: RegistrarConfig,
    /// How long "no such user" is believed before the database is asked again; also how long
    /// an endpoint created through the API may be refused after a failed attempt.
    pub unknown_user_ttl: Duration,
    /// Most unknown user names remembered; beyond it, lookups of new ones go to the database.
    pub max_unknown_users: usize,
    /// `Retry-After` of the `503` answered while the database is unavailable.
    pub retry_after_secs: u32,
    /// How often expired rows are purged even when no binding held here expired (other
    /// nodes' rows).
    pub purge_interval: Duration,
}

impl ServiceConfig {
    /// Defaults: unknown users for 5 s, at most 100 000 of them, `Retry-After: 5`, a purge
    /// every 60 s.
    pub fn new(registrar: RegistrarConfig) -> ServiceConfig {
        ServiceConfig {
            registrar,
            unknown_user_ttl: Duration::from_secs(5),
            max_unknown_users: 100_000,
            retry_after_secs: 5,
            purge_interval: Duration::from_secs(60),
        }
    }
}

/// Why the service did not start.
#[derive(Debug, Clone)]
pub enum StartError {
    Config(ConfigError),
    /// Loading the bindings failed.
    Store(StoreError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(err) => write!(f, "registrar configuration: {err}"),
            StartError::Store(err) => write!(f, "registrar cannot load bindings: {err}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(err: ConfigError) -> Self {
        StartError::Config(err)
    }
}

impl From<StoreError> for StartError {
    fn from(err: StoreError) -> Self {
        StartError::Store(err)
    }
}

/// The final response to a REGISTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// The complete response, to send through the REGISTER's server transaction.
    pub response: Bytes,
    pub status: u16,
    /// After an accepted REGISTER: whether its flow now carries one of the AOR's bindings (a
    /// connection: of any AOR's).
    /// `None` when refused (nothing changed).
    pub flow_registered: Option<bool>,
}

/// An endpoint and where it is: [`RegistrarService::locate`]'s answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    pub endpoint: EndpointInfo,
    /// Its live bindings; empty when it is not registered.
    pub bindings: Vec<Binding>,
}

impl RegisterOutcome {
    fn refused(response: Response) -> RegisterOutcome {
        RegisterOutcome {
            response: response.bytes,
            status: response.status,
            flow_registered: None,
        }
    }
}

/// The location service and REGISTER pipeline; cheap to clone.
#[derive(Clone)]
pub struct RegistrarService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    writer: BindingWriter,
    /// Each core call is short and never awaits.
    registrar: Mutex<Registrar>,
    /// Builds the `503` the core has no reason to know about.
    responder: Responder,
    retry_after: String,
    node_id: Arc<str>,
    credentials: CredentialCache,
    location: Location,
    /// The earliest binding deadline moved forward: the expiry timer re-arms.
    deadline_moved: Notify,
    /// Bindings expired: the purge task runs.
    purge_due: Notify,
    purge_interval: Duration,
    /// Counts the work done in the background (an endpoint change or resync handled,
    /// bindings expired, a purge pass, a closed flow's bindings deleted).
    activity: watch::Sender<u64>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// At most one purge per this interval, however often bindings expire.
const PURGE_GAP: Duration = Duration::from_secs(1);

/// The expiry timer re-reads the clock at least this often (wall-clock jumps).
const MAX_TIMER_SLEEP: Duration = Duration::from_secs(60);

/// A REGISTER whose credentials went stale while it waited for its AOR is started over once.
const REGISTER_ATTEMPTS: usize = 2;

fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    })
}

impl RegistrarService {
    /// Subscribes to endpoint changes, loads the live bindings (see the module docs for a
    /// previous process's), and starts the group-commit writer, the expiry timer, the purge
    /// task and the endpoint change listener. Needs a tokio runtime.
    pub async fn start(
        store: Store,
        config: ServiceConfig,
    ) -> Result<RegistrarService, StartError> {
        let registrar = Registrar::new(config.registrar.clone())?;
        let mac = Hmac::<Sha256>::new_from_slice(&config.registrar.nonce_secret)
            .map_err(|_| ConfigError::SecretTooShort)?;
        let node_id: Arc<str> = Arc::from(config.registrar.node_id.as_str());
        // Subscribed first, so no change committed after the load is missed.
        let changes = store.subscribe_endpoint_changes().await;
        let location = Location::new(&node_id);
        let mut orphaned = Vec::new();
        // One endpoint's bindings at a time (rows come grouped by endpoint).
        let mut group: Vec<Binding> = Vec::new();
        store
            .for_each_live_binding(unix_ms(SystemTime::now()), |binding| {
                if group
                    .first()
                    .is_some_and(|first| first.endpoint_pk != binding.endpoint_pk)
                {
                    location.install(group[0].endpoint_pk, &group);
                    group.clear();
                }
                if *binding.node_id == *node_id && ends_with_connection(&binding) {
                    orphaned.push(BindingChange::delete(binding));
                } else {
                    group.push(binding);
                }
            })
            .await?;
        if let Some(first) = group.first() {
            location.install(first.endpoint_pk, &group);
        }
        let writer = store.binding_writer();
        if !orphaned.is_empty() {
            let count = orphaned.len();
            match writer.commit(orphaned).await {
                Ok(()) => {
                    tracing::info!(count, "deleted the previous process's connection bindings")
                }
                Err(err) => {
                    tracing::warn!(error = %err, count, "cannot delete the previous process's connection bindings")
                }
            }
        }
        let inner = Arc::new(Inner {
            writer,
            registrar: Mutex::new(registrar),
            responder: Responder::new(mac),
            retry_after: config.retry_after_secs.to_string(),
            node_id,
            credentials: CredentialCache::new(
                i64::try_from(config.unknown_user_ttl.as_millis()).unwrap_or(i64::MAX),
                config.max_unknown_users,
            ),
            location,
            deadline_moved: Notify::new(),
            purge_due: Notify::new(),
            purge_interval: config.purge_interval,
            activity: watch::Sender::new(0),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
            store,
        });
        inner
            .tasks
            .spawn(Arc::clone(&inner).follow_changes(changes));
        inner.tasks.spawn(Arc::clone(&inner).expire_bindings());
        inner.tasks.spawn(Arc::clone(&inner).purge_expired());
        Ok(RegistrarService { inner })
    }

    /// Answers one REGISTER (see the module docs).
    pub async fn handle_register(
        &self,
        request: &Message,
        source: Source,
        now: SystemTime,
    ) -> RegisterOutcome {
        let now_ms = unix_ms(now);
        let mut attempt = 1;
        loop {
            match self.inner.register(request, &source, now_ms).await {
                Some(outcome) => return outcome,
                // Credentials changed meanwhile: starting over answers with a fresh challenge.
                None if attempt < REGISTER_ATTEMPTS => attempt += 1,
                None => return RegisterOutcome::refused(self.inner.unavailable(request)),
            }
        }
    }

    /// A connection flow closed: the bindings this node holds on it that end with it (WebSocket
    /// and RFC 5626 flow bindings, see the module docs) stop being used at once and are deleted
    /// from the database in the background.
    pub fn flow_closed(&self, flow: FlowId) {
        let flow_id = flow.to_string();
        let flow_id = flow_id.as_str();
        let inner = &self.inner;
        let endpoints = inner.location.endpoints_on_flow(flow_id);
        if endpoints.is_empty() {
            return;
        }
        let mut dropped = Vec::new();
        for &endpoint_pk in &endpoints {
            dropped.extend(inner.location.drop_flow(endpoint_pk, flow_id));
        }
        let inner = Arc::clone(inner);
        let flow_id = flow_id.to_owned();
        self.inner
            .tasks
            .spawn(async move { inner.delete_flow(flow_id, endpoints, dropped).await });
    }

    /// Changes after each piece of background work (an endpoint change or resync handled,
    /// bindings expired, a purge pass, a closed flow's bindings deleted): wait on it for their
    /// effects instead of polling.
    pub fn activity(&self) -> watch::Receiver<u64> {
        self.inner.activity.subscribe()
    }

    /// Authenticates a request other than REGISTER, ACK or CANCEL by its
    /// `Proxy-Authorization` (see the module docs). `Ok`: the endpoint whose credentials it
    /// answered with. `Err`: the response to send: `407` (with `stale=true` for an expired,
    /// replayed or pre-password-change nonce), `400` for a malformed `Proxy-Authorization`,
    /// `503` with `Retry-After` when the database is unavailable. Reads the database only when
    /// the user's credentials are not cached.
    pub async fn authenticate(
        &self,
        request: &Message,
        now: SystemTime,
    ) -> Result<EndpointInfo, Response> {
        let now_ms = unix_ms(now);
        let inner = &self.inner;
        let pending = inner
            .registrar()
            .authenticator()
            .screen(request, AuthRole::Proxy, now_ms)?;
        let credentials = match inner
            .credentials
            .get(&inner.store, pending.username(), now_ms)
            .await
        {
            Ok(credentials) => credentials,
            Err(err) => {
                tracing::warn!(error = %err, "authentication: cannot read credentials");
                return Err(inner.unavailable(request));
            }
        };
        let verified = inner
            .registrar()
            .authenticator()
            .verify(pending, credentials.as_deref(), now_ms)
            .map(|credentials| credentials.endpoint.clone());
        verified
    }

    /// [`authenticate`](Self::authenticate) without waiting, when its answer needs no
    /// database read; `None` when the user's credentials are not in memory (then call
    /// `authenticate`).
    pub fn authenticate_cached(
        &self,
        request: &Message,
        now: SystemTime,
    ) -> Option<Result<EndpointInfo, Response>> {
        let now_ms = unix_ms(now);
        let inner = &self.inner;
        let mut registrar = inner.registrar();
        let pending = match registrar
            .authenticator()
            .screen(request, AuthRole::Proxy, now_ms)
        {
            Ok(pending) => pending,
            Err(response) => return Some(Err(response)),
        };
        let credentials = inner.credentials.cached(pending.username(), now_ms)?;
        Some(
            registrar
                .authenticator()
                .verify(pending, credentials.as_deref(), now_ms)
                .map(|credentials| credentials.endpoint.clone()),
        )
    }

    /// [`locate`](Self::locate) without waiting, when the endpoint is in memory (or known
    /// not to exist); `None` otherwise.
    pub fn locate_cached(&self, username: &str, now: SystemTime) -> Option<Option<Located>> {
        let now_ms = unix_ms(now);
        let credentials = self.inner.credentials.cached(username, now_ms)?;
        Some(credentials.map(|credentials| self.inner.located(&credentials, now_ms)))
    }

    /// The endpoint named `username` and its live bindings at `now`; `None` if there is no such
    /// endpoint. Reads the database only when the endpoint is not cached.
    pub async fn locate(
        &self,
        username: &str,
        now: SystemTime,
    ) -> Result<Option<Located>, StoreError> {
        let now_ms = unix_ms(now);
        let inner = &self.inner;
        let credentials = inner
            .credentials
            .get(&inner.store, username, now_ms)
            .await?;
        Ok(credentials.map(|credentials| inner.located(&credentials, now_ms)))
    }

    /// Stops the tasks and waits for background commits (closed flows) to finish. REGISTERs in
    /// progress finish with their own commits.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }
}

impl Inner {
    fn located(&self, credentials: &crate::DigestCredentials, now_ms: i64) -> Located {
        Located {
            bindings: self.location.live(credentials.endpoint.endpoint_pk, now_ms),
            endpoint: credentials.endpoint.clone(),
        }
    }

    fn registrar(&self) -> MutexGuard<'_, Registrar> {
        // The core's state stays consistent between calls; a panic elsewhere does not spoil it.
        self.registrar
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `503` with `Retry-After`: the database cannot be used now.
    fn unavailable(&self, request: &Message) -> Response {
        self.responder.respond(
            request,
            503,
            None,
            &[("Retry-After", self.retry_after.as_str())],
        )
    }

    /// One pass of the pipeline; `None` if the credentials it authenticated with went stale
    /// before it held the AOR lock.
    async fn register(
        &self,
        request: &Message,
        source: &Source,
        now_ms: i64,
    ) -> Option<RegisterOutcome> {
        let start = self.registrar().start(request, source, now_ms);
        let pending = match start {
            Start::Respond(response) => return Some(RegisterOutcome::refused(response)),
            Start::NeedCredentials(pending) => pending,
        };
        let credentials = match self
            .credentials
            .get(&self.store, pending.username(), now_ms)
            .await
        {
            Ok(credentials) => credentials,
            Err(err) => {
                tracing::warn!(error = %err, "REGISTER: cannot read credentials");
                return Some(RegisterOutcome::refused(self.unavailable(request)));
            }
        };
        let authenticated = self
            .registrar()
            .authenticate(pending, credentials.as_deref(), now_ms);
        let authorized = match authenticated {
            Ok(authorized) => authorized,
            Err(response) => return Some(RegisterOutcome::refused(response)),
        };
        let endpoint_pk = authorized.endpoint_pk();
        let _serial = self.location.serial(endpoint_pk).lock().await;
        // A password change or deletion since authenticating: its handler may already have
        // cleaned up this AOR, so nothing may be written with the old credentials.
        if !credentials.is_some_and(|c| self.credentials.is_current(&c)) {
            return None;
        }
        let current = self.location.bindings(endpoint_pk);
        let decided = self
            .registrar()
            .register(request, &authorized, &current, source, now_ms);
        let registration = match decided {
            Ok(registration) => registration,
            Err(response) => return Some(RegisterOutcome::refused(response)),
        };
        if let Err(err) = self.writer.commit(registration.changes).await {
            tracing::warn!(error = %err, "REGISTER: cannot commit bindings");
            return Some(match err {
                StoreError::Unavailable(_) => RegisterOutcome::refused(self.unavailable(request)),
                _ => RegisterOutcome::refused(self.registrar().commit_failed(request)),
            });
        }
        if self.location.install(endpoint_pk, &registration.bindings) {
            self.deadline_moved.notify_one();
        }
        let flow_id = source.flow.to_string();
        Some(RegisterOutcome {
            response: registration.response.bytes,
            status: registration.response.status,
            flow_registered: Some(
                self.location.on_flow(endpoint_pk, &flow_id) || self.location.flow_in_use(&flow_id),
            ),
        })
    }

    /// Deletes durably what `flow_closed` dropped, plus whatever a REGISTER in flight installed
    /// on the flow meanwhile; each AOR is locked so a new REGISTER commits after the delete.
    async fn delete_flow(
        &self,
        flow_id: String,
        mut endpoints: Vec<i64>,
        mut dropped: Vec<Binding>,
    ) {
        endpoints.sort_unstable();
        endpoints.dedup();
        let mut held = Vec::new();
        for serial in self.location.serials(&endpoints) {
            held.push(serial.lock().await);
        }
        for &endpoint_pk in &endpoints {
            dropped.extend(self.location.drop_flow(endpoint_pk, &flow_id));
        }
        let deletes: Vec<BindingChange> = dropped.into_iter().map(BindingChange::delete).collect();
        let count = deletes.len();
        if let Err(err) = self.writer.commit(deletes).await {
            tracing::warn!(error = %err, flow_id, count, "cannot delete a closed flow's bindings; they expire");
        }
        self.record_activity();
    }

    fn record_activity(&self) {
        self.activity
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    async fn follow_changes(self: Arc<Self>, mut changes: EndpointChanges) {
        loop {
            let event = tokio::select! {
                _ = self.stop.cancelled() => return,
                event = changes.recv() => event,
            };
            match event {
                Some(EndpointEvent::Changed(change)) => self.endpoint_changed(change).await,
                Some(EndpointEvent::Resync) => self.resync().await,
                None => return,
            }
            self.record_activity();
        }
    }

    async fn endpoint_changed(&self, change: EndpointChange) {
        self.credentials.forget(&change.username);
        if change.kind == EndpointChangeKind::Updated {
            return;
        }
        let endpoint_pk = change.endpoint_pk;
        // Unused at once; then again once a REGISTER in flight has installed its bindings.
        let mut dropped = self.location.retain(endpoint_pk, |_| false);
        let _serial = self.location.serial(endpoint_pk).lock().await;
        dropped.extend(self.location.retain(endpoint_pk, |_| false));
        if change.kind != EndpointChangeKind::CredentialsChanged {
            return; // Deleted: the database cascade removed the rows.
        }
        // The API deleted the rows it saw; a REGISTER authenticated with the old password may
        // have committed after that (another node's change reaches us late).
        let ours: Vec<BindingChange> = dropped
            .into_iter()
            .filter(|b| *b.node_id == *self.node_id)
            .map(BindingChange::delete)
            .collect();
        if let Err(err) = self.writer.commit(ours).await {
            tracing::warn!(error = %err, endpoint_pk = change.endpoint_pk, "cannot delete bindings after a password change");
        }
    }

    /// Changes may have been missed: forget all credentials, and drop bindings the database no
    /// longer has (a missed password change or deletion removed them there).
    async fn resync(&self) {
        self.credentials.clear();
        let (installs, endpoints) = self.location.endpoints();
        let live = match self.store.live_bindings(unix_ms(SystemTime::now())).await {
            Ok(live) => live,
            Err(err) => {
                tracing::warn!(error = %err, "resync: cannot read bindings; keeping memory as is");
                return;
            }
        };
        let stored: HashSet<(i64, &str, Option<i64>)> = live.iter().map(Binding::key).collect();
        for endpoint_pk in endpoints {
            self.location
                .retain_unless_installed_after(endpoint_pk, installs, |b| {
                    stored.contains(&b.key())
                });
        }
    }

    /// Drops bindings from memory as they expire, sleeping until the next deadline.
    async fn expire_bindings(self: Arc<Self>) {
        loop {
            let now_ms = unix_ms(SystemTime::now());
            if self.location.expire(now_ms) > 0 {
                self.purge_due.notify_one();
                self.record_activity();
            }
            let sleep = self.location.next_deadline().map_or(MAX_TIMER_SLEEP, |at| {
                let wait = u64::try_from(at.saturating_sub(now_ms)).unwrap_or(0);
                Duration::from_millis(wait).min(MAX_TIMER_SLEEP)
            });
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.deadline_moved.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Deletes expired rows when bindings expired here, and every `purge_interval` anyway.
    async fn purge_expired(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.purge_due.notified() => {}
                _ = tokio::time::sleep(self.purge_interval) => {}
            }
            match self
                .store
                .purge_expired_bindings(unix_ms(SystemTime::now()))
                .await
            {
                Ok(purged) => tracing::debug!(purged, "purged expired bindings"),
                Err(err) => tracing::warn!(error = %err, "cannot purge expired bindings"),
            }
            self.record_activity();
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(PURGE_GAP) => {}
            }
        }
    }
}
