//! Starting the listeners, the handle the core uses (send, connect, pinning, counters), and
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dashmap::DashMap;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::{Limits, TransportConfig};
use crate::connection::{
    Connection, ConnectionSlot, ConnectionSlots, FlowEntry, Origin, Outbound, ReuseKey,
};
use crate::counters::{bump, Counters, CountersSnapshot};
use crate::outbound::{self, ConnectError, Connector, Destination};
use crate::tls::{self, CertificateError, CertificateStore};
use crate::{stream, udp, websocket};
use sip_message::{FlowId, Message, ParseError, Transport};

/// One complete SIP message as received.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// Where to send responses (RFC 3261 §18.2.2, RFC 3581: the same connection, or the
    /// source address of a UDP request).
    pub flow: FlowId,
    /// The address the message arrived on (the listener's address for UDP).
    pub local: SocketAddr,
    /// The peer's address: the source of the datagram or the far end of the connection.
    pub remote: SocketAddr,
    /// Exactly one framed message, as received.
    pub message: Bytes,
    /// The message parsed (`sip_message::Message::parse`), once, here: the lane it goes to
    /// may depend on its headers.
    pub parsed: Result<Message, ParseError>,
}

impl Inbound {
    pub(crate) fn new(flow: FlowId, local: SocketAddr, remote: SocketAddr, message: Bytes) -> Self {
        Inbound {
            flow,
            local,
            remote,
            parsed: Message::parse(message.clone()),
            message,
        }
    }
}

/// Picks the lane of an inbound message (see [`Transports::start_with_lanes`]); any number is
/// taken modulo the lane count.
pub type LaneOf = Box<dyn Fn(&Inbound) -> usize + Send + Sync>;

/// What the transports tell the core, in order per flow.
// Nearly every event is a message: boxing it would only add an allocation to each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TransportEvent {
    Message(Inbound),
    /// A connection flow ended (closed by the peer, broken, idle, or shut down); sends to it
    /// now fail with [`SendError::FlowGone`]. UDP flows never close.
    FlowClosed(FlowId),
}

/// The addresses actually bound (a port 0 in the config is resolved here); `None` = off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalAddrs {
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    pub tls: Option<SocketAddr>,
    pub ws: Option<SocketAddr>,
    pub wss: Option<SocketAddr>,
}

/// Why the transports did not start. Nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen for SIP over {transport} on {addr}: {source}")]
    Bind {
        transport: Transport,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The trust anchors for outbound TLS ([`crate::TlsClientConfig::ca_file`]).
    #[error("outbound TLS trust anchors: {0}")]
    TrustAnchors(CertificateError),
    #[error("cannot listen for SIGHUP (certificate reload): {0}")]
    Signal(std::io::Error),
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("flow {0} is closed")]
    FlowGone(FlowId),
    /// The connection has [`Limits::send_queue_capacity`] messages waiting: the peer is not
    /// reading. The message is dropped; the connection stays.
    #[error("flow {0} is not keeping up: send queue full")]
    QueueFull(FlowId),
    #[error("the UDP listener is off")]
    UdpOff,
    #[error("the transports are shut down")]
    ShutDown,
    #[error("UDP send failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A connection flow that is closed (see [`Transports::set_flow_registered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("flow {0} is closed")]
pub struct FlowGone(pub FlowId);

/// Why [`Shared::try_deliver`] dropped a message.
pub(crate) enum Undelivered {
    Full,
    Closed,
}

/// State shared by the handle and every task.
pub(crate) struct Shared {
    pub(crate) limits: Limits,
    /// The core's event queues: a message goes to the lane `lane_of` picks, a closed flow
    /// to every lane.
    lanes: Box<[mpsc::Sender<TransportEvent>]>,
    lane_of: LaneOf,
    /// Open connection flows by connection id.
    pub(crate) flows: DashMap<u64, FlowEntry>,
    /// Open TCP and TLS connections by what `connect` may reuse them for.
    pub(crate) reuse: DashMap<ReuseKey, u64>,
    pub(crate) connector: Connector,
    pub(crate) next_connection_id: AtomicU64,
    pub(crate) slots: Arc<ConnectionSlots>,
    udp: Option<Arc<UdpSocket>>,
    pub(crate) counters: Counters,
    certificates: Option<Arc<CertificateStore>>,
    local: LocalAddrs,
    /// Listeners stop accepting.
    stop_accepting: CancellationToken,
    /// Every task winds down.
    pub(crate) closing: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

impl Shared {
    fn lane(&self, inbound: &Inbound) -> &mpsc::Sender<TransportEvent> {
        &self.lanes[(self.lane_of)(inbound) % self.lanes.len()]
    }

    /// Sends an event to the core, waiting for room (backpressure) unless the transports
    /// are closing; `false` if it was not delivered.
    pub(crate) async fn deliver(&self, event: TransportEvent) -> bool {
        match event {
            TransportEvent::Message(inbound) => {
                let lane = self.lane(&inbound);
                self.send_waiting(lane, TransportEvent::Message(inbound))
                    .await
            }
            TransportEvent::FlowClosed(flow) => {
                for lane in &self.lanes {
                    if !self
                        .send_waiting(lane, TransportEvent::FlowClosed(flow))
                        .await
                    {
                        return false;
                    }
                }
                true
            }
        }
    }

    async fn send_waiting(
        &self,
        lane: &mpsc::Sender<TransportEvent>,
        event: TransportEvent,
    ) -> bool {
        tokio::select! {
            biased;
            sent = lane.send(event) => sent.is_ok(),
            () = self.closing.cancelled() => false,
        }
    }

    /// Hands a message to its lane without waiting; when the lane is full (or its reader
    /// gone) the message is dropped.
    pub(crate) fn try_deliver(&self, inbound: Inbound) -> Result<(), Undelivered> {
        match self
            .lane(&inbound)
            .try_send(TransportEvent::Message(inbound))
        {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(Undelivered::Full),
            Err(TrySendError::Closed(_)) => Err(Undelivered::Closed),
        }
    }

    pub(crate) fn udp_on(&self) -> bool {
        self.udp.is_some()
    }
}

/// The running transports. Cheap to clone; every clone drives the same listeners. Dropping
/// every clone does not stop them: call [`Transports::shutdown`].
#[derive(Clone)]
pub struct Transports {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports")
            .field("local", &self.shared.local)
            .finish_non_exhaustive()
    }
}

/// What a TCP listener speaks once a connection is accepted.
#[derive(Clone)]
enum ListenerKind {
    Tcp,
    Tls(TlsAcceptor),
    Ws,
    Wss(TlsAcceptor),
}

impl ListenerKind {
    fn transport(&self) -> Transport {
        match self {
            ListenerKind::Tcp => Transport::Tcp,
            ListenerKind::Tls(_) => Transport::Tls,
            ListenerKind::Ws => Transport::Ws,
            ListenerKind::Wss(_) => Transport::Wss,
        }
    }
}

/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

impl Transports {
    /// Binds every configured listener, then starts serving. Events arrive on the returned
    /// receiver, which the core must keep reading. Must run inside a tokio runtime.
    pub async fn start(
        config: TransportConfig,
    ) -> Result<(Transports, mpsc::Receiver<TransportEvent>), StartError> {
        let (transports, mut lanes) = Self::start_with_lanes(config, 1, Box::new(|_| 0)).await?;
        let events = lanes.pop().expect("one lane");
        Ok((transports, events))
    }

    /// [`start`](Self::start) with the events spread over `lanes` receivers (at least one),
    /// each [`TransportConfig::event_queue_capacity`] deep: a message goes to the lane
    /// `lane_of` picks for it, a [`TransportEvent::FlowClosed`] to every lane. The listener
    /// that received a message hands it straight to its lane's reader, so a core with one
    /// event loop per lane sees each message after a single task switch.
    pub async fn start_with_lanes(
        config: TransportConfig,
        lanes: usize,
        lane_of: LaneOf,
    ) -> Result<(Transports, Vec<mpsc::Receiver<TransportEvent>>), StartError> {
        let udp = match config.udp {
            Some(addr) => Some(bind_udp(addr, config.udp_receive_buffer)?),
            None => None,
        };
        let tcp = bind(Transport::Tcp, config.tcp).await?;
        let tls = bind(Transport::Tls, config.tls).await?;
        let ws = bind(Transport::Ws, config.ws).await?;
        let wss = bind(Transport::Wss, config.wss).await?;
        let bound =
            |listener: &Option<(TcpListener, SocketAddr)>| listener.as_ref().map(|(_, addr)| *addr);
        let local = LocalAddrs {
            udp: udp.as_ref().map(|(_, addr)| *addr),
            tcp: bound(&tcp),
            tls: bound(&tls),
            ws: bound(&ws),
            wss: bound(&wss),
        };
        let udp = udp.map(|(socket, addr)| (Arc::new(socket), addr));

        let certificates = if tls.is_some() || wss.is_some() {
            Some(CertificateStore::new(
                config.certificate.as_ref(),
                &config.domain,
            )?)
        } else {
            None
        };
        let acceptor = certificates
            .as_ref()
            .map(CertificateStore::acceptor)
            .transpose()?;
        let connector =
            Connector::new(tls::connector(&config.tls_client).map_err(StartError::TrustAnchors)?);
        let hangups = match &certificates {
            Some(store) if store.files().is_some() => {
                Some(tls::hangups().map_err(StartError::Signal)?)
            }
            _ => None,
        };

        let (senders, receivers): (Vec<_>, Vec<_>) = (0..lanes.max(1))
            .map(|_| mpsc::channel(config.event_queue_capacity.max(1)))
            .unzip();
        let shared = Arc::new(Shared {
            limits: config.limits,
            lanes: senders.into_boxed_slice(),
            lane_of,
            flows: DashMap::new(),
            reuse: DashMap::new(),
            connector,
            next_connection_id: AtomicU64::new(first_connection_id()),
            slots: Arc::default(),
            udp: udp.as_ref().map(|(socket, _)| socket.clone()),
            counters: Counters::default(),
            certificates: certificates.clone(),
            local,
            stop_accepting: CancellationToken::new(),
            closing: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });

        if let Some((socket, addr)) = udp {
            shared
                .tasks
                .spawn(udp::receive(shared.clone(), socket, addr));
        }
        let listeners = [
            (tcp, Some(ListenerKind::Tcp)),
            (tls, acceptor.clone().map(ListenerKind::Tls)),
            (ws, Some(ListenerKind::Ws)),
            (wss, acceptor.map(ListenerKind::Wss)),
        ];
        for (listener, kind) in listeners {
            if let (Some((listener, _)), Some(kind)) = (listener, kind) {
                shared.tasks.spawn(accept(shared.clone(), listener, kind));
            }
        }
        if let (Some(store), Some(hangups)) = (certificates, hangups) {
            shared.tasks.spawn(tls::watch(
                shared.clone(),
                store,
                hangups,
                config.certificate_poll_interval,
            ));
        }
        info!(?local, "SIP transports started");
        Ok((Transports { shared }, receivers))
    }

    /// The addresses the listeners are bound to.
    pub fn local_addrs(&self) -> LocalAddrs {
        self.shared.local
    }

    /// Sends one message to a flow: queued for the connection's writer, or sent as a
    /// datagram to a UDP flow's address. Never waits for a slow connection.
    pub async fn send(&self, flow: FlowId, message: Bytes) -> Result<(), SendError> {
        match flow {
            FlowId::Udp(remote) => self.send_udp(remote, message).await,
            FlowId::Connection { id, .. } => {
                let result = self.enqueue(flow, id, message);
                if result.is_err() {
                    bump(&self.shared.counters.of(flow.transport()).send_failures);
                }
                result
            }
        }
    }

    fn enqueue(&self, flow: FlowId, id: u64, message: Bytes) -> Result<(), SendError> {
        let entry = self
            .shared
            .flows
            .get(&id)
            .filter(|entry| entry.transport == flow.transport())
            .ok_or(SendError::FlowGone(flow))?;
        entry
            .queue
            .try_send(Outbound::Message(message))
            .map_err(|error| match error {
                TrySendError::Full(_) => SendError::QueueFull(flow),
                TrySendError::Closed(_) => SendError::FlowGone(flow),
            })
    }

    /// Sends a datagram from the UDP listener's socket, e.g. a response to the source of a
    /// request (RFC 3581) or a request to a UDP contact.
    pub async fn send_udp(&self, remote: SocketAddr, message: Bytes) -> Result<(), SendError> {
        let counters = self.shared.counters.of(Transport::Udp);
        let result = match &self.shared.udp {
            None => Err(SendError::UdpOff),
            Some(_) if self.shared.closing.is_cancelled() => Err(SendError::ShutDown),
            Some(socket) => socket
                .send_to(&message, remote)
                .await
                .map(drop)
                .map_err(SendError::Io),
        };
        bump(match result {
            Ok(()) => &counters.messages_out,
            Err(_) => &counters.send_failures,
        });
        result
    }

    /// A flow to `destination`, opening a connection if needed:
    /// * UDP: the flow of the address, at once (the UDP listener sends).
    /// * TCP and TLS: an open connection sipd opened to the same destination (for TLS, the
    ///   same server name), or one accepted over the same transport from exactly that
    ///   address; else a new one: TCP within [`Limits::connect_timeout`], then for TLS a
    ///   handshake within [`Limits::tls_handshake_timeout`] verifying the server's certificate
    ///   (see [`crate::TlsClientConfig`]). Concurrent calls for one destination share one
    ///   attempt.
    /// * WS and WSS: an error; only browsers open WebSockets.
    ///
    /// A connection sipd opened is then served like an accepted one: its messages arrive as
    /// [`TransportEvent::Message`] with the returned flow, it idles out unless registered, it
    /// ends with [`TransportEvent::FlowClosed`], and it counts toward
    /// [`Limits::max_connections`] (not toward the per-IP limit).
    pub async fn connect(&self, destination: &Destination) -> Result<FlowId, ConnectError> {
        outbound::connect(&self.shared, destination).await
    }

    /// Whether a message sent to `flow` now can go out: a UDP flow while the UDP listener
    /// runs, a connection while it is open.
    pub fn is_open(&self, flow: FlowId) -> bool {
        if self.shared.closing.is_cancelled() {
            return false;
        }
        match flow {
            FlowId::Udp(_) => self.shared.udp.is_some(),
            FlowId::Connection { transport, id } => self
                .shared
                .flows
                .get(&id)
                .is_some_and(|entry| entry.transport == transport),
        }
    }

    /// Marks whether a connection flow carries a registration. A registered connection is
    /// kept open while anything arrives within [`Limits::registered_idle_timeout`]; an
    /// unregistered one closes after [`Limits::idle_timeout`] without traffic. UDP flows
    /// hold no connection, so for them this does nothing.
    pub fn set_flow_registered(&self, flow: FlowId, registered: bool) -> Result<(), FlowGone> {
        let FlowId::Connection { id, .. } = flow else {
            return Ok(());
        };
        let entry = self
            .shared
            .flows
            .get(&id)
            .filter(|entry| entry.transport == flow.transport())
            .ok_or(FlowGone(flow))?;
        entry
            .registered
            .send_if_modified(|current| std::mem::replace(current, registered) != registered);
        Ok(())
    }

    /// Counts a message from this transport that the core could not parse.
    pub fn record_unparsable(&self, transport: Transport) {
        bump(&self.shared.counters.of(transport).unparsable);
    }

    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    /// Re-reads the certificate files now, as SIGHUP does. On error the current certificate
    /// stays in use. Without TLS listeners or certificate files there is nothing to do.
    pub fn reload_certificates(&self) -> Result<(), CertificateError> {
        match &self.shared.certificates {
            Some(store) if store.files().is_some() => tls::reload_and_report(&self.shared, store),
            _ => Ok(()),
        }
    }

    /// Stops accepting connections. Open flows (and UDP) keep working, so the core can finish
    /// and send its last responses before [`Transports::shutdown`].
    pub fn stop_accepting(&self) {
        self.shared.stop_accepting.cancel();
    }

    /// Stops accepting, then closes every connection (accepted and opened) after writing what
    /// is queued to it (each within [`Limits::close_timeout`]), stops UDP, and returns once
    /// every task ended. Later connects fail with [`ConnectError::ShuttingDown`].
    pub async fn shutdown(&self) {
        self.stop_accepting();
        self.shared.closing.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        info!("SIP transports stopped");
    }
}

/// The UDP socket and the address it is bound to.
fn bind_udp(
    addr: SocketAddr,
    receive_buffer: usize,
) -> Result<(UdpSocket, SocketAddr), StartError> {
    let bind = || {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if let Err(error) = socket.set_recv_buffer_size(receive_buffer) {
            warn!(%error, receive_buffer, "cannot enlarge the UDP receive buffer");
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        let bound = socket.local_addr()?;
        Ok((socket, bound))
    };
    bind().map_err(|source| StartError::Bind {
        transport: Transport::Udp,
        addr,
        source,
    })
}

/// A TCP listener and the address it is bound to; `None` if off.
async fn bind(
    transport: Transport,
    addr: Option<SocketAddr>,
) -> Result<Option<(TcpListener, SocketAddr)>, StartError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let bind = async {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        Ok((listener, bound))
    };
    bind.await.map(Some).map_err(|source| StartError::Bind {
        transport,
        addr,
        source,
    })
}

/// Connection ids start at the start time (in seconds) times 2^20, so ids stored by an
/// earlier run are not reused unless it opened over a million connections per second of
/// the time between the two starts.
fn first_connection_id() -> u64 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    seconds << 20
}

async fn accept(shared: Arc<Shared>, listener: TcpListener, kind: ListenerKind) {
    let transport = kind.transport();
    let limits = shared.limits;
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.stop_accepting.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%transport, %error, "cannot accept a connection");
                tokio::select! {
                    () = shared.stop_accepting.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                }
            }
        };
        let Some(slot) = shared.slots.try_acquire(
            remote.ip(),
            limits.max_connections_per_ip,
            limits.max_connections,
        ) else {
            bump(&shared.counters.of(transport).connections_rejected);
            debug!(%transport, %remote, "connection refused: connection limit reached");
            continue;
        };
        // SIP messages are small and latency matters more than packet count.
        let _ = tcp.set_nodelay(true);
        shared.tasks.spawn(serve_accepted(
            shared.clone(),
            kind.clone(),
            tcp,
            remote,
            slot,
        ));
    }
}

async fn serve_accepted(
    shared: Arc<Shared>,
    kind: ListenerKind,
    tcp: TcpStream,
    remote: SocketAddr,
    slot: ConnectionSlot,
) {
    let transport = kind.transport();
    let Ok(local) = tcp.local_addr() else {
        return;
    };
    let limits = shared.limits;
    let ws_config = Some(websocket::config(&limits));
    let open = || {
        Connection::open(
            shared.clone(),
            transport,
            local,
            remote,
            slot,
            Origin::Accepted,
        )
    };
    match kind {
        ListenerKind::Tcp => {
            let (connection, queue) = open();
            stream::serve(connection, queue, tcp).await;
        }
        ListenerKind::Tls(acceptor) => {
            let tls_handshake = acceptor.accept(tcp);
            let Ok(tls) = handshake(
                &shared,
                transport,
                limits.tls_handshake_timeout,
                tls_handshake,
            )
            .await
            else {
                return;
            };
            let (connection, queue) = open();
            stream::serve(connection, queue, tls).await;
        }
        ListenerKind::Ws => {
            let upgrade = tokio_tungstenite::accept_hdr_async_with_config(
                tcp,
                websocket::negotiate_sip,
                ws_config,
            );
            let Ok(socket) = handshake(
                &shared,
                transport,
                limits.websocket_handshake_timeout,
                upgrade,
            )
            .await
            else {
                return;
            };
            let (connection, queue) = open();
            websocket::serve(connection, queue, socket).await;
        }
        ListenerKind::Wss(acceptor) => {
            let tls_handshake = acceptor.accept(tcp);
            let Ok(tls) = handshake(
                &shared,
                transport,
                limits.tls_handshake_timeout,
                tls_handshake,
            )
            .await
            else {
                return;
            };
            let upgrade = tokio_tungstenite::accept_hdr_async_with_config(
                tls,
                websocket::negotiate_sip,
                ws_config,
            );
            let Ok(socket) = handshake(
                &shared,
                transport,
                limits.websocket_handshake_timeout,
                upgrade,
            )
            .await
            else {
                return;
            };
            let (connection, queue) = open();
            websocket::serve(connection, queue, socket).await;
        }
    }
}

/// Why a handshake did not complete.
pub(crate) enum HandshakeFailure<E> {
    /// The transports are shutting down.
    Closing,
    TimedOut,
    Failed(E),
}

/// Runs one handshake within its time limit, abandoning it on shutdown; failures are counted.
pub(crate) async fn handshake<T, E>(
    shared: &Shared,
    transport: Transport,
    limit: Duration,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, HandshakeFailure<E>>
where
    E: std::fmt::Display,
{
    let outcome = tokio::select! {
        biased;
        () = shared.closing.cancelled() => return Err(HandshakeFailure::Closing),
        outcome = tokio::time::timeout(limit, step) => outcome,
    };
    match outcome {
        Ok(Ok(established)) => Ok(established),
        Ok(Err(error)) => {
            bump(&shared.counters.of(transport).handshake_failures);
            debug!(%transport, %error, "handshake failed");
            Err(HandshakeFailure::Failed(error))
        }
        Err(_) => {
            bump(&shared.counters.of(transport).handshake_failures);
            debug!(%transport, "handshake timed out");
            Err(HandshakeFailure::TimedOut)
        }
    }
}
