//! What every connection flow (TCP, TLS, WS, WSS), accepted or opened, shares: limits on how
//! many may be open, the flow table that `send` and pinning look up, the index that
//! `connect` reuses connections from, idleness, and the orderly end.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use tokio::sync::{mpsc, watch};
use tracing::debug;

use crate::counters::{bump, drop_one};
use crate::outbound::Destination;
use crate::transports::{Shared, TransportEvent};
use sip_message::{FlowId, Transport};

/// What a connection's writer is asked to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    Message(Bytes),
    /// Answer a keep-alive: a CRLF pong on a stream; on a WebSocket, flush the pong
    /// tungstenite queued by itself.
    KeepAliveResponse,
}

/// The table entry of an open connection.
pub(crate) struct FlowEntry {
    pub(crate) transport: Transport,
    pub(crate) queue: mpsc::Sender<Outbound>,
    pub(crate) registered: Arc<watch::Sender<bool>>,
}

/// Counts open connections per source IP (accepted ones) and in total.
#[derive(Debug, Default)]
pub(crate) struct ConnectionSlots {
    per_ip: DashMap<IpAddr, usize>,
    total: AtomicUsize,
}

/// One counted connection; frees its place when dropped.
pub(crate) struct ConnectionSlot {
    slots: Arc<ConnectionSlots>,
    /// The peer's address for an accepted connection, counted per IP.
    ip: Option<IpAddr>,
}

impl ConnectionSlots {
    /// A place for a connection accepted from `ip`, or `None` if a limit is reached.
    pub(crate) fn try_acquire(
        self: &Arc<Self>,
        ip: IpAddr,
        max_per_ip: usize,
        max_total: usize,
    ) -> Option<ConnectionSlot> {
        let mut slot = self.try_acquire_outbound(max_total)?;
        let mut count = self.per_ip.entry(ip).or_insert(0);
        if *count >= max_per_ip {
            // Dropping the slot gives its place in the total back.
            return None;
        }
        *count += 1;
        slot.ip = Some(ip);
        Some(slot)
    }

    /// A place for a connection sipd opens, counted in the total only (see
    /// [`crate::Limits::max_connections_per_ip`]), or `None` if the total is reached.
    pub(crate) fn try_acquire_outbound(
        self: &Arc<Self>,
        max_total: usize,
    ) -> Option<ConnectionSlot> {
        if self.total.fetch_add(1, Ordering::AcqRel) >= max_total {
            self.total.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ConnectionSlot {
            slots: self.clone(),
            ip: None,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.slots.total.fetch_sub(1, Ordering::AcqRel);
        let Some(ip) = self.ip else {
            return;
        };
        if let Entry::Occupied(mut entry) = self.slots.per_ip.entry(ip) {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
    }
}

/// Who opened a connection.
#[derive(Debug)]
pub(crate) enum Origin {
    /// The peer, on one of the listeners.
    Accepted,
    /// sipd, to this destination.
    Opened(Destination),
}

/// What [`crate::Transports::connect`] finds an open connection by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ReuseKey {
    /// A connection sipd opened to this destination (as normalized by `connect`).
    Opened(Destination),
    /// A TCP or TLS connection accepted from this address.
    Accepted(Transport, SocketAddr),
}

impl ReuseKey {
    /// The key of a connection; `None` for WebSockets, which sipd never connects to.
    fn of(origin: Origin, transport: Transport, remote: SocketAddr) -> Option<ReuseKey> {
        match origin {
            Origin::Opened(destination) => Some(ReuseKey::Opened(destination)),
            Origin::Accepted if transport.is_websocket() => None,
            Origin::Accepted => Some(ReuseKey::Accepted(transport, remote)),
        }
    }
}

/// When the connection last carried traffic either way.
pub(crate) struct Activity {
    epoch: Instant,
    millis: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            millis: AtomicU64::new(0),
        }
    }

    pub(crate) fn touch(&self) {
        let millis = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.epoch + Duration::from_millis(self.millis.load(Ordering::Relaxed))
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub(crate) enum CloseReason {
    PeerClosed,
    /// The peer closed in the middle of a message.
    Truncated,
    Idle,
    Shutdown,
    /// The stream broke the framing or size rules (counted where detected).
    Misbehaved(String),
    Io(std::io::Error),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::PeerClosed => f.write_str("closed by the peer"),
            CloseReason::Truncated => f.write_str("closed by the peer inside a message"),
            CloseReason::Idle => f.write_str("idle"),
            CloseReason::Shutdown => f.write_str("shutdown"),
            CloseReason::Misbehaved(why) => write!(f, "misbehaving peer: {why}"),
            CloseReason::Io(error) => write!(f, "I/O error: {error}"),
        }
    }
}

impl CloseReason {
    /// Whether what is queued should still be written before closing (a peer that closed
    /// may still read: TCP half-close, WebSocket close handshake).
    fn is_orderly(&self) -> bool {
        matches!(
            self,
            CloseReason::Idle | CloseReason::Shutdown | CloseReason::PeerClosed
        )
    }
}

/// An open connection flow, from the end of its handshakes until its task ends.
pub(crate) struct Connection {
    pub(crate) shared: Arc<Shared>,
    /// The key of the flow table.
    id: u64,
    pub(crate) flow: FlowId,
    pub(crate) transport: Transport,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) activity: Activity,
    /// For the reader to queue keep-alive answers.
    pub(crate) queue: mpsc::Sender<Outbound>,
    registered: watch::Receiver<bool>,
    /// Its entry in the reuse index, removed on close.
    reuse: Option<ReuseKey>,
    /// Held as long as the connection runs (the table entry goes first on close), so the
    /// receiver above never sees the channel end.
    _registered_sender: Arc<watch::Sender<bool>>,
    slot: ConnectionSlot,
}

impl Connection {
    /// Enters the flow in the table and the reuse index; returns it with the receiving end of
    /// its send queue.
    pub(crate) fn open(
        shared: Arc<Shared>,
        transport: Transport,
        local: SocketAddr,
        remote: SocketAddr,
        slot: ConnectionSlot,
        origin: Origin,
    ) -> (Connection, mpsc::Receiver<Outbound>) {
        let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
        let flow = FlowId::connection(transport, id);
        let (queue, queue_rx) = mpsc::channel(shared.limits.send_queue_capacity.max(1));
        let (registered_sender, registered) = watch::channel(false);
        let registered_sender = Arc::new(registered_sender);
        shared.flows.insert(
            id,
            FlowEntry {
                transport,
                queue: queue.clone(),
                registered: registered_sender.clone(),
            },
        );
        let counters = shared.counters.of(transport);
        bump(&counters.connections_open);
        bump(match origin {
            Origin::Accepted => &counters.connections_accepted,
            Origin::Opened(_) => &counters.connections_opened,
        });
        debug!(%flow, %remote, ?origin, "connection open");
        let reuse = ReuseKey::of(origin, transport, remote);
        if let Some(key) = &reuse {
            shared.reuse.insert(key.clone(), id);
        }
        let activity = Activity::new();
        activity.touch();
        let connection = Connection {
            shared,
            id,
            flow,
            transport,
            local,
            remote,
            activity,
            queue,
            registered,
            reuse,
            _registered_sender: registered_sender,
            slot,
        };
        (connection, queue_rx)
    }

    /// Hands one framed message to the core; `false` if the transports are closing or the
    /// core is gone.
    pub(crate) async fn deliver(&self, message: Bytes) -> bool {
        let delivered = self
            .shared
            .deliver(TransportEvent::Message(crate::Inbound::new(
                self.flow,
                self.local,
                self.remote,
                message,
            )))
            .await;
        if delivered {
            bump(&self.shared.counters.of(self.transport).messages_in);
        }
        delivered
    }

    /// Completes once the connection has been idle for its limit, which depends on whether
    /// it carries a registration. Create once and poll repeatedly (it is cancel-safe).
    pub(crate) fn idle_expired(&self) -> impl Future<Output = ()> + '_ {
        let mut registered = self.registered.clone();
        let limits = self.shared.limits;
        async move {
            loop {
                let limit = if *registered.borrow_and_update() {
                    limits.registered_idle_timeout
                } else {
                    limits.idle_timeout
                };
                // A limit too large to add means never.
                let deadline = self.activity.last().checked_add(limit);
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return;
                }
                tokio::select! {
                    () = sleep_until(deadline) => {}
                    _ = registered.changed() => {}
                }
            }
        }
    }

    /// Takes the flow out of the table, writes what is still queued if the end is orderly
    /// (bounded by the close timeout), and tells the core the flow is closed.
    pub(crate) async fn close<F>(
        self,
        reason: CloseReason,
        mut queue: mpsc::Receiver<Outbound>,
        finish: impl FnOnce(Vec<Outbound>) -> F,
    ) where
        F: Future<Output = ()>,
    {
        self.shared.flows.remove(&self.id);
        if let Some(key) = &self.reuse {
            // A newer connection may have taken the key meanwhile.
            self.shared.reuse.remove_if(key, |_, id| *id == self.id);
        }
        queue.close();
        if reason.is_orderly() {
            let mut pending = Vec::new();
            while let Ok(item) = queue.try_recv() {
                pending.push(item);
            }
            // A peer that does not read must not hold up the shutdown.
            let _ = tokio::time::timeout(self.shared.limits.close_timeout, finish(pending)).await;
        }
        // Free the connection's place before the core hears of the close, so a client that
        // reconnects at once is not refused.
        drop(self.slot);
        let counters = self.shared.counters.of(self.transport);
        drop_one(&counters.connections_open);
        if matches!(reason, CloseReason::Idle) {
            bump(&counters.idle_closes);
        }
        debug!(flow = %self.flow, remote = %self.remote, %reason, "connection closed");
        self.shared
            .deliver(TransportEvent::FlowClosed(self.flow))
            .await;
    }
}
