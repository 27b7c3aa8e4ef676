//! The SIP transports of sipd: the I/O edge. UDP, TCP, TLS, WS and WSS listeners turn bytes
//! into framed messages tagged with the flow they came on, and send messages back on flows;
//! sipd opens TCP and TLS connections itself to reach servers and devices, and finds them in
//! DNS (RFC 3263). Protocol logic lives elsewhere; here are sockets, framing, limits and
//! flows.
//!
//! * Start: [`Transports::start`]`(`[`TransportConfig`]`)` binds every configured listener
//!   and returns the handle and a bounded receiver of [`TransportEvent`]s:
//!   [`TransportEvent::Message`] ([`Inbound`]: flow, transport, addresses, one message, parsed) and
//!   [`TransportEvent::FlowClosed`]. [`Transports::start_with_lanes`] spreads them over
//!   several receivers, by a function of each message.
//! * Send: [`Transports::send`] to a [`FlowId`] (the connection, or the UDP source address),
//!   [`Transports::send_udp`] to any address from the UDP listener.
//! * Connect: [`Transports::connect`]`(`[`Destination`]`)` gives a flow to a destination:
//!   the UDP flow of its address, or a TCP or TLS connection, reused if one is open (opened by
//!   sipd, or accepted from exactly that address), else opened (within
//!   [`Limits::connect_timeout`], then a TLS handshake verifying the certificate against
//!   public roots and [`TlsClientConfig::ca_file`], with SNI). Concurrent connects to one
//!   destination share one attempt. An opened connection then lives like an accepted one:
//!   its messages arrive as events, it idles out unless registered, it ends with
//!   [`TransportEvent::FlowClosed`]. Failures are a [`ConnectError`] (a 503 for the proxy's
//!   branch).
//! * Resolve: [`Resolver::resolve`]`(`[`Target`]`)` turns a SIP URI's host, port, transport
//!   and scheme into the [`Destination`]s to try in order (RFC 3263: NAPTR, SRV, A and
//!   AAAA; answers cached for their TTL, each resolution bounded by
//!   [`ResolverConfig::timeout`]).
//! * Pinning: [`Transports::set_flow_registered`] keeps a registration's connection open
//!   past the idle timeout while it is alive.
//! * Keep-alives: RFC 5626 CRLFCRLF pings get a CRLF pong on streams, STUN binding requests
//!   an answer on UDP; WebSocket pings a pong.
//! * TLS: certificate files re-read on SIGHUP, on change, or by
//!   [`Transports::reload_certificates`]; self-signed when none is configured.
//! * Observability: [`Transports::counters`]. Stop: [`Transports::stop_accepting`], then
//!   [`Transports::shutdown`].
//!
//! ```no_run
//! use sipd_transport::{TransportConfig, TransportEvent, Transports};
//! # fn answer(_request: &[u8]) -> Option<bytes::Bytes> { None }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (transports, mut events) = Transports::start(TransportConfig::default()).await?;
//! while let Some(event) = events.recv().await {
//!     match event {
//!         TransportEvent::Message(inbound) => {
//!             // Parse, run transactions, decide; then answer on the flow it came from.
//!             if let Some(response) = answer(&inbound.message) {
//!                 transports.send(inbound.flow, response).await?;
//!             }
//!         }
//!         TransportEvent::FlowClosed(flow) => {
//!             // Bindings reachable only through `flow` are now unreachable.
//!             let _ = flow;
//!         }
//!     }
//! }
//! transports.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod counters;
mod interfaces;
mod outbound;
mod resolver;
mod stream;
mod tls;
mod transports;
mod udp;
mod websocket;

pub use config::{CertificateFiles, Limits, TlsClientConfig, TransportConfig};
pub use counters::{CountersSnapshot, TransportStats};
pub use interfaces::local_ips;
pub use outbound::{ConnectError, Destination};
pub use resolver::{ResolveError, Resolver, ResolverConfig, ResolverSetupError, Target};
pub use sip_message::{FlowId, Transport};
pub use tls::CertificateError;
pub use transports::{
    FlowGone, Inbound, LaneOf, LocalAddrs, SendError, StartError, TransportEvent, Transports,
};
