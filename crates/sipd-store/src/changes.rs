//! Endpoint change notifications, so every node's in-memory caches (credentials, bindings) learn
//! API changes at once.
//!
//! Every change is published to the local broadcast right after its transaction commits. On
//! PostgreSQL the same transaction also issues `pg_notify('sipd_endpoint_changes', …)`, and a
//! listener task on a dedicated connection forwards other nodes' notifications to the local
//! broadcast (its own are recognised by the store's origin id and skipped, so each event arrives
//! once). Whenever notifications may have been missed (the listener's connection was lost, or a
//! receiver fell behind) subscribers get [`EndpointEvent::Resync`] instead.

use crate::{Backend, Result};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgListener;
use sqlx::AnyConnection;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// PostgreSQL NOTIFY channel shared by all nodes on one database.
pub(crate) const NOTIFY_CHANNEL: &str = "sipd_endpoint_changes";

/// PostgreSQL rejects NOTIFY payloads of 8000 bytes or more; stay well below.
const MAX_PAYLOAD_BYTES: usize = 7000;

/// Events a slow receiver may fall behind by before it gets `Resync`.
const BROADCAST_CAPACITY: usize = 4096;

/// How often the listener checks its connection by notifying itself, and how long it waits for
/// that notification before it treats the connection as dead (a half-open TCP connection
/// otherwise loses notifications silently).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
const HEARTBEAT_DEADLINE: Duration = Duration::from_secs(30);

const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// What happened to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointChangeKind {
    /// The password (digest HA1) changed; the endpoint's bindings were removed and its devices
    /// must authenticate again.
    CredentialsChanged,
    /// The endpoint is gone, with its bindings.
    Deleted,
    /// Other fields changed: permissions, alias or application (also when its application was
    /// deleted), or the endpoint moved to another account when its sub-account was deleted.
    /// Cached rows (credentials with permissions and owner) are stale; bindings stay valid.
    Updated,
}

/// One endpoint change, as every node's caches see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointChange {
    /// Internal endpoint id (`Credentials::endpoint_pk`, `Binding::endpoint_pk`).
    pub endpoint_pk: i64,
    /// SIP username, the credential cache's key.
    pub username: String,
    pub kind: EndpointChangeKind,
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    Changed(EndpointChange),
    /// Changes may have been missed: drop (or revalidate) everything cached from the store.
    Resync,
}

/// A subscription to endpoint changes (see [`crate::Store::subscribe_endpoint_changes`]).
#[derive(Debug)]
pub struct EndpointChanges {
    receiver: broadcast::Receiver<EndpointEvent>,
}

impl EndpointChanges {
    /// The next event; a receiver that fell behind gets `Resync` for what it missed. `None` once
    /// the store (every clone of it) is gone.
    pub async fn recv(&mut self) -> Option<EndpointEvent> {
        match self.receiver.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(EndpointEvent::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// A NOTIFY payload: a batch of changes from one store, or that store's heartbeat.
#[derive(Serialize, Deserialize)]
struct Payload {
    origin: String,
    #[serde(default)]
    changes: Vec<EndpointChange>,
    /// Set on heartbeats (no changes): the listener waits for its own.
    #[serde(default)]
    heartbeat: bool,
    /// A change too large for one payload: receivers resync instead.
    #[serde(default)]
    resync: bool,
}

/// Per-store state of the notification machinery (shared by the store's clones).
pub(crate) struct ChangeHub {
    events: broadcast::Sender<EndpointEvent>,
    /// Random id of this store, to skip our own notifications coming back.
    origin: String,
    backend: Backend,
    /// Connection URL for the PostgreSQL listener.
    url: String,
    connect_timeout: Duration,
    /// Whether the listener is LISTENing now; set once the listener task is started.
    listening: OnceLock<watch::Receiver<bool>>,
    /// Dropping this (with the last store clone) or sending `true` stops the listener.
    stop: watch::Sender<bool>,
}

impl ChangeHub {
    pub(crate) fn new(backend: Backend, url: &str, connect_timeout: Duration) -> ChangeHub {
        ChangeHub {
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            origin: uuid::Uuid::new_v4().simple().to_string(),
            backend,
            url: url.to_owned(),
            connect_timeout,
            listening: OnceLock::new(),
            stop: watch::channel(false).0,
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// A new subscription. On PostgreSQL it starts the listener if needed and waits (bounded by
    /// the connect timeout) until it listens, so that nothing committed after this returns is
    /// missed; if it cannot listen yet, the subscriber gets `Resync` once it does.
    pub(crate) async fn subscribe(&self, pool: &sqlx::AnyPool) -> EndpointChanges {
        if self.backend == Backend::Postgres {
            let mut listening = self
                .listening
                .get_or_init(|| self.spawn_listener(pool.clone()))
                .clone();
            // A timeout or a stopped listener only means the subscriber may get `Resync` later.
            let _ = tokio::time::timeout(
                self.connect_timeout,
                listening.wait_for(|listening| *listening),
            )
            .await;
        }
        // Subscribed after the listener's own `Resync` for this connection: a fresh subscriber
        // loads its state from the database from now on anyway.
        EndpointChanges {
            receiver: self.events.subscribe(),
        }
    }

    fn spawn_listener(&self, pool: sqlx::AnyPool) -> watch::Receiver<bool> {
        let (listening_tx, listening_rx) = watch::channel(false);
        let listener = Listener {
            events: self.events.clone(),
            origin: self.origin.clone(),
            url: self.url.clone(),
            connect_timeout: self.connect_timeout,
            listening: listening_tx,
            pool,
        };
        tokio::spawn(listener.run(self.stop.subscribe()));
        listening_rx
    }

    /// Inside the transaction that makes `changes`: notify the other nodes (PostgreSQL; the
    /// notification is delivered only if the transaction commits).
    pub(crate) async fn notify_in_transaction(
        &self,
        conn: &mut AnyConnection,
        changes: &[EndpointChange],
    ) -> Result<()> {
        if self.backend != Backend::Postgres || changes.is_empty() {
            return Ok(());
        }
        for payload in self.payloads(changes)? {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(payload)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// After the transaction committed: tell this store's subscribers.
    pub(crate) fn publish(&self, changes: Vec<EndpointChange>) {
        for change in changes {
            // No subscriber is not an error.
            let _ = self.events.send(EndpointEvent::Changed(change));
        }
    }

    /// `changes` as JSON payloads under PostgreSQL's size limit.
    fn payloads(&self, changes: &[EndpointChange]) -> Result<Vec<String>> {
        let mut payloads = Vec::new();
        let mut batch: Vec<EndpointChange> = Vec::new();
        for change in changes {
            batch.push(change.clone());
            if self.encode(&batch, false)?.len() <= MAX_PAYLOAD_BYTES {
                continue;
            }
            let last = batch.pop();
            if !batch.is_empty() {
                payloads.push(self.encode(&batch, false)?);
            }
            batch = last.into_iter().collect();
            if self.encode(&batch, false)?.len() > MAX_PAYLOAD_BYTES {
                // One change alone is too large (a huge username): others resync.
                payloads.push(self.encode(&[], true)?);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            payloads.push(self.encode(&batch, false)?);
        }
        Ok(payloads)
    }

    fn encode(&self, changes: &[EndpointChange], resync: bool) -> Result<String> {
        serde_json::to_string(&Payload {
            origin: self.origin.clone(),
            changes: changes.to_vec(),
            heartbeat: false,
            resync,
        })
        .map_err(|err| crate::StoreError::Database(format!("cannot encode notification: {err}")))
    }
}

/// The PostgreSQL listener task of one store.
struct Listener {
    events: broadcast::Sender<EndpointEvent>,
    origin: String,
    url: String,
    connect_timeout: Duration,
    listening: watch::Sender<bool>,
    /// The store's pool, to send heartbeats.
    pool: sqlx::AnyPool,
}

impl Listener {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = RECONNECT_MIN;
        loop {
            let connected = tokio::select! {
                connected = self.connect() => connected,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            match connected {
                Ok(listener) => {
                    backoff = RECONNECT_MIN;
                    self.listening.send_replace(true);
                    // Anything may have changed while we were not listening.
                    let _ = self.events.send(EndpointEvent::Resync);
                    let stopped = self.forward(listener, &mut stop).await;
                    self.listening.send_replace(false);
                    if stopped {
                        return;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "endpoint change listener cannot connect");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|stop| *stop) => return,
                    }
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                }
            }
        }
    }

    async fn connect(&self) -> Result<PgListener, sqlx::Error> {
        let connecting = async {
            let mut listener = PgListener::connect(&self.url).await?;
            listener.listen(NOTIFY_CHANNEL).await?;
            Ok(listener)
        };
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// Forward notifications until the connection is lost (false) or the store stops (true).
    async fn forward(&self, mut listener: PgListener, stop: &mut watch::Receiver<bool>) -> bool {
        // Heartbeats are sent from their own task so that receiving is never interrupted.
        let heartbeats = AbortOnDrop(tokio::spawn(send_heartbeats(
            self.pool.clone(),
            self.origin.clone(),
            self.connect_timeout,
        )));
        let mut heartbeat_deadline = tokio::time::Instant::now() + HEARTBEAT_DEADLINE;
        let stopped = loop {
            // The receive is only ever cancelled when the connection is abandoned or stopping.
            let received = tokio::select! {
                received = listener.try_recv() => received,
                _ = tokio::time::sleep_until(heartbeat_deadline) => {
                    tracing::warn!("endpoint change listener heard no heartbeat; reconnecting");
                    break false;
                }
                _ = stop.wait_for(|stop| *stop) => break true,
            };
            let notification = match received {
                Ok(Some(notification)) => notification,
                Ok(None) => {
                    tracing::warn!("endpoint change listener lost its connection; reconnecting");
                    break false;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "endpoint change listener failed; reconnecting");
                    break false;
                }
            };
            let payload: Payload = match serde_json::from_str(notification.payload()) {
                Ok(payload) => payload,
                Err(err) => {
                    tracing::warn!(error = %err, "unreadable endpoint change notification");
                    let _ = self.events.send(EndpointEvent::Resync);
                    continue;
                }
            };
            if payload.origin == self.origin {
                if payload.heartbeat {
                    heartbeat_deadline = tokio::time::Instant::now() + HEARTBEAT_DEADLINE;
                }
                // Our own changes were published locally when they committed.
                continue;
            }
            if payload.resync {
                let _ = self.events.send(EndpointEvent::Resync);
            }
            for change in payload.changes {
                let _ = self.events.send(EndpointEvent::Changed(change));
            }
        };
        drop(heartbeats);
        stopped
    }
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every [`HEARTBEAT_INTERVAL`], notify our own listener through the store's pool.
async fn send_heartbeats(pool: sqlx::AnyPool, origin: String, timeout: Duration) {
    let payload = Payload {
        origin,
        changes: Vec::new(),
        heartbeat: true,
        resync: false,
    };
    let Ok(payload) = serde_json::to_string(&payload) else {
        return;
    };
    let mut interval = tokio::time::interval(HEARTBEAT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(payload.as_str())
            .execute(&pool);
        match tokio::time::timeout(timeout, sent).await {
            Ok(Ok(_)) => {}
            // A database that cannot be reached shows up as a missed heartbeat.
            Ok(Err(err)) => tracing::debug!(error = %err, "cannot send listener heartbeat"),
            Err(_) => tracing::debug!("listener heartbeat timed out"),
        }
    }
}
