//! Connections sipd opens, to a destination the core chose (a binding's address, a server
//! found per RFC 3263). TCP and TLS only: only browsers open WebSockets. An open connection to
//! the destination is reused, and concurrent connects to one destination share one attempt, so
//! a forking proxy opening two branches to one host opens one connection. Once established, a
//! connection is served exactly like an accepted one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::{BoxFuture, FutureExt, Shared as Joint};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tracing::debug;

use crate::connection::{Connection, ConnectionSlot, Origin, ReuseKey};
use crate::counters::bump;
use crate::stream;
use crate::transports::{handshake, HandshakeFailure, Shared};
use sip_message::{FlowId, Transport};

/// Where to send: a transport, an address, and for TLS the name to verify.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// UDP, TCP or TLS ([`crate::Transports::connect`] refuses WebSockets).
    pub transport: Transport,
    /// The server's IP address and port.
    pub addr: SocketAddr,
    /// For TLS: the name the server's certificate must carry, also sent as SNI when it is a
    /// DNS name (RFC 5922: the domain of the URI, not an SRV target). `None`: the certificate
    /// must carry `addr`'s IP address. Not used by other transports.
    pub server_name: Option<String>,
}

/// Why no flow to a destination could be had. Nothing was sent; for the proxy this is a
/// transport error of the branch, answered as a 503 (RFC 3261 §16.9).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// A UDP destination, and no UDP listener to send from.
    #[error("the UDP listener is off")]
    UdpOff,
    /// A WS or WSS destination.
    #[error("sipd does not open {0} connections (only browsers open WebSockets)")]
    Unsupported(Transport),
    /// [`crate::Limits::max_connections`] connections are open.
    #[error("the connection limit is reached")]
    LimitReached,
    /// [`crate::Transports::shutdown`] was called.
    #[error("the transports are shut down")]
    ShuttingDown,
    /// No TCP connection within [`crate::Limits::connect_timeout`].
    #[error("connecting to {addr} timed out")]
    Timeout { addr: SocketAddr },
    /// Refused, unreachable, or another socket error.
    #[error("cannot connect to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: Arc<std::io::Error>,
    },
    /// No TLS handshake within [`crate::Limits::tls_handshake_timeout`].
    #[error("TLS handshake with {addr} timed out")]
    TlsTimeout { addr: SocketAddr },
    /// The handshake failed: the certificate was not trusted or not for the server name, the
    /// server broke off, or the server name is not one a certificate can carry.
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: SocketAddr, reason: String },
}

/// One connection attempt, awaited by every connect to its destination.
type Attempt = Joint<BoxFuture<'static, Result<FlowId, ConnectError>>>;

/// The outbound half of the shared state.
pub(crate) struct Connector {
    tls: TlsConnector,
    /// Attempts under way, by destination.
    attempts: Mutex<HashMap<Destination, Attempt>>,
}

impl Connector {
    pub(crate) fn new(tls: TlsConnector) -> Connector {
        Connector {
            tls,
            attempts: Mutex::default(),
        }
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<Destination, Attempt>> {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// See [`crate::Transports::connect`].
pub(crate) async fn connect(
    shared: &Arc<Shared>,
    destination: &Destination,
) -> Result<FlowId, ConnectError> {
    if shared.closing.is_cancelled() {
        return Err(ConnectError::ShuttingDown);
    }
    let destination = match destination.transport {
        Transport::Udp if shared.udp_on() => return Ok(FlowId::udp(destination.addr)),
        Transport::Udp => return Err(ConnectError::UdpOff),
        Transport::Ws | Transport::Wss => {
            return Err(ConnectError::Unsupported(destination.transport))
        }
        // A TCP connection serves any name.
        Transport::Tcp => Destination {
            server_name: None,
            ..destination.clone()
        },
        Transport::Tls => destination.clone(),
    };
    let attempt = {
        let mut attempts = shared.connector.attempts();
        // Looked up under the lock a finished attempt is removed under, and its connection is
        // indexed before that: so either the attempt or its connection is found.
        if let Some(flow) = reusable(shared, &destination) {
            return Ok(flow);
        }
        match attempts.get(&destination) {
            Some(attempt) => attempt.clone(),
            None => {
                let Some(slot) = shared
                    .slots
                    .try_acquire_outbound(shared.limits.max_connections)
                else {
                    bump(&shared.counters.of(destination.transport).connect_failures);
                    return Err(ConnectError::LimitReached);
                };
                let (reply, outcome) = oneshot::channel();
                shared
                    .tasks
                    .spawn(open(shared.clone(), destination.clone(), slot, reply));
                let attempt = outcome
                    .map(|outcome| outcome.unwrap_or(Err(ConnectError::ShuttingDown)))
                    .boxed()
                    .shared();
                attempts.insert(destination, attempt.clone());
                attempt
            }
        }
    };
    attempt.await
}

/// An open connection to the destination: one sipd opened to it, or one accepted from its
/// exact address over the same transport.
fn reusable(shared: &Shared, destination: &Destination) -> Option<FlowId> {
    let keys = [
        ReuseKey::Opened(destination.clone()),
        ReuseKey::Accepted(destination.transport, destination.addr),
    ];
    keys.iter().find_map(|key| {
        let id = *shared.reuse.get(key)?;
        shared
            .flows
            .contains_key(&id)
            .then(|| FlowId::connection(destination.transport, id))
    })
}

/// Connects, answers the attempt's waiters, then serves the connection until it ends.
async fn open(
    shared: Arc<Shared>,
    destination: Destination,
    slot: ConnectionSlot,
    reply: oneshot::Sender<Result<FlowId, ConnectError>>,
) {
    let transport = destination.transport;
    let established = tokio::select! {
        biased;
        () = shared.closing.cancelled() => Err(ConnectError::ShuttingDown),
        established = establish(&shared, &destination) => established,
    };
    let (stream, local) = match established {
        Ok(established) => established,
        Err(error) => {
            if !matches!(error, ConnectError::ShuttingDown) {
                bump(&shared.counters.of(transport).connect_failures);
            }
            debug!(%transport, addr = %destination.addr, %error, "connection not opened");
            shared.connector.attempts().remove(&destination);
            let _ = reply.send(Err(error));
            return;
        }
    };
    let (connection, queue) = Connection::open(
        shared.clone(),
        transport,
        local,
        destination.addr,
        slot,
        Origin::Opened(destination.clone()),
    );
    shared.connector.attempts().remove(&destination);
    // Nobody waiting any more is fine: the connection stays for the next connect.
    let _ = reply.send(Ok(connection.flow));
    match stream {
        Established::Tcp(tcp) => stream::serve(connection, queue, tcp).await,
        Established::Tls(tls) => stream::serve(connection, queue, *tls).await,
    }
}

enum Established {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The TCP connection (bounded by the connect timeout), then the TLS handshake for TLS;
/// returns the stream and its local address.
async fn establish(
    shared: &Shared,
    destination: &Destination,
) -> Result<(Established, SocketAddr), ConnectError> {
    let addr = destination.addr;
    let io_error = |error| ConnectError::Io {
        addr,
        source: Arc::new(error),
    };
    let tcp = tokio::time::timeout(shared.limits.connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout { addr })?
        .map_err(io_error)?;
    let local = tcp.local_addr().map_err(io_error)?;
    // SIP messages are small and latency matters more than packet count.
    let _ = tcp.set_nodelay(true);
    if destination.transport == Transport::Tcp {
        return Ok((Established::Tcp(tcp), local));
    }
    let name = match &destination.server_name {
        None => ServerName::IpAddress(addr.ip().into()),
        Some(name) => ServerName::try_from(name.clone()).map_err(|_| ConnectError::Tls {
            addr,
            reason: format!("{name:?} is not a valid server name"),
        })?,
    };
    let tls_handshake = shared.connector.tls.connect(name, tcp);
    match handshake(
        shared,
        Transport::Tls,
        shared.limits.tls_handshake_timeout,
        tls_handshake,
    )
    .await
    {
        Ok(tls) => Ok((Established::Tls(Box::new(tls)), local)),
        Err(HandshakeFailure::Closing) => Err(ConnectError::ShuttingDown),
        Err(HandshakeFailure::TimedOut) => Err(ConnectError::TlsTimeout { addr }),
        // The I/O error carries rustls' reason, e.g. "invalid peer certificate: UnknownIssuer".
        Err(HandshakeFailure::Failed(error)) => Err(ConnectError::Tls {
            addr,
            reason: error.to_string(),
        }),
    }
}
