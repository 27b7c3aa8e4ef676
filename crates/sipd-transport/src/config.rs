//! What the binary tells the transports: where to listen, which certificate, whom to trust
//! when connecting out, which limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use sip_message::framer::FramerConfig;

/// Listener addresses, certificate and limits. `None` for an address means that transport is
/// off (not started). Port 0 binds an ephemeral port; [`crate::Transports::local_addrs`] tells
/// which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// SIP over UDP (default `0.0.0.0:5060`).
    pub udp: Option<SocketAddr>,
    /// SIP over TCP (default `0.0.0.0:5060`).
    pub tcp: Option<SocketAddr>,
    /// SIP over TLS (default `0.0.0.0:5061`).
    pub tls: Option<SocketAddr>,
    /// SIP over secure WebSocket, RFC 7118 (default `0.0.0.0:7443`).
    pub wss: Option<SocketAddr>,
    /// SIP over plain WebSocket, for deployments behind a TLS-terminating balancer (default off).
    pub ws: Option<SocketAddr>,
    /// Certificate chain and key for TLS and WSS; `None`: a self-signed certificate for
    /// `domain` is generated at start.
    pub certificate: Option<CertificateFiles>,
    /// The SIP domain, named by a generated self-signed certificate.
    pub domain: String,
    /// Certificate verification of the TLS connections sipd opens
    /// ([`crate::Transports::connect`]).
    pub tls_client: TlsClientConfig,
    /// How often the certificate files are checked for changes; zero: never (they are also
    /// re-read on SIGHUP).
    pub certificate_poll_interval: Duration,
    /// Receive buffer asked for the UDP socket, to ride out bursts while the core is busy.
    /// Best effort: Linux caps it at `net.core.rmem_max`.
    pub udp_receive_buffer: usize,
    /// Capacity of the channel carrying [`crate::TransportEvent`]s to the core. When it is
    /// full, stream connections stop reading (backpressure) and UDP datagrams are dropped.
    pub event_queue_capacity: usize,
    /// Sizes, counts and times.
    pub limits: Limits,
}

impl Default for TransportConfig {
    fn default() -> Self {
        let any = |port| Some(SocketAddr::from(([0, 0, 0, 0], port)));
        TransportConfig {
            udp: any(5060),
            tcp: any(5060),
            tls: any(5061),
            wss: any(7443),
            ws: None,
            certificate: None,
            domain: "localhost".to_owned(),
            tls_client: TlsClientConfig::default(),
            certificate_poll_interval: Duration::from_secs(5),
            udp_receive_buffer: 4 * 1024 * 1024,
            event_queue_capacity: 8192,
            limits: Limits::default(),
        }
    }
}

/// PEM files for the TLS and WSS listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The end-entity certificate first, then intermediates.
    pub chain: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How the servers sipd connects to over TLS are verified. Their certificate must chain to a
/// public root (Mozilla's list, built in) or to a certificate of `ca_file`, and name the
/// destination's server name (or its IP address when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsClientConfig {
    /// PEM file of extra trust anchors, for servers with certificates from a private CA
    /// (default none). Read once, at start.
    pub ca_file: Option<PathBuf>,
    /// Verify server certificates (default `true`). `false` accepts any certificate, which
    /// anyone on the path can impersonate: for labs only; a warning is logged at start.
    pub verify: bool,
}

impl Default for TlsClientConfig {
    fn default() -> Self {
        TlsClientConfig {
            ca_file: None,
            verify: true,
        }
    }
}

/// Every size, count and time limit of the transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest SIP message in bytes, on every transport (larger UDP datagrams are dropped,
    /// a larger message on a connection closes it).
    pub max_message_size: usize,
    /// Largest header section of a message on a stream, in bytes.
    pub max_header_section_size: usize,
    /// Largest number of header fields of a message on a stream.
    pub max_header_count: usize,
    /// Connections (TCP, TLS, WS, WSS together) from one IP address. Connections sipd opens
    /// itself do not count here, so that a peer holding its quota of connections to sipd
    /// cannot keep sipd from connecting to it.
    pub max_connections_per_ip: usize,
    /// Connections in total, accepted and opened by sipd.
    pub max_connections: usize,
    /// A connection carrying no registration is closed after this long without traffic.
    pub idle_timeout: Duration,
    /// A connection carrying a registration is closed after this long with nothing received
    /// (no message, no keep-alive) nor sent.
    pub registered_idle_timeout: Duration,
    /// Time allowed to establish a TCP connection sipd opens (before any TLS handshake).
    pub connect_timeout: Duration,
    /// Time allowed for the TLS handshake (TLS and WSS, accepted and opened).
    pub tls_handshake_timeout: Duration,
    /// Time allowed for the WebSocket upgrade (WS and WSS).
    pub websocket_handshake_timeout: Duration,
    /// Largest WebSocket frame in bytes.
    pub websocket_max_frame_size: usize,
    /// Messages waiting to be written to one connection; past that a send fails with
    /// [`crate::SendError::QueueFull`] rather than waiting for a slow peer.
    pub send_queue_capacity: usize,
    /// On shutdown, time given to each connection to write what is queued and close cleanly.
    pub close_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let framer = FramerConfig::default();
        Limits {
            max_message_size: 64 * 1024,
            max_header_section_size: framer.max_header_section_size,
            max_header_count: framer.max_header_count,
            max_connections_per_ip: 64,
            max_connections: 10_000,
            // Long enough for an unregistered trunk's INVITE to ring out (Timer C is 3 min).
            idle_timeout: Duration::from_secs(300),
            // Clients without RFC 5626 keep-alives may only re-REGISTER hourly.
            registered_idle_timeout: Duration::from_secs(3900),
            connect_timeout: Duration::from_secs(5),
            tls_handshake_timeout: Duration::from_secs(10),
            websocket_handshake_timeout: Duration::from_secs(10),
            websocket_max_frame_size: 64 * 1024,
            send_queue_capacity: 1024,
            close_timeout: Duration::from_secs(2),
        }
    }
}

impl Limits {
    pub(crate) fn framer(&self) -> FramerConfig {
        FramerConfig {
            max_message_size: self.max_message_size,
            max_header_count: self.max_header_count,
            max_header_section_size: self.max_header_section_size,
        }
    }
}
