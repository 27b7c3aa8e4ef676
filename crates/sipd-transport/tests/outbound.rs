//! Connections sipd opens: TCP and TLS to test peers on loopback, reuse and single flight,
//! failures (refused, TLS timeout, untrusted or misnamed certificates, limits), and their
//! life like accepted connections (messages both ways, idleness, peer close, shutdown).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sipd_transport::{
    ConnectError, Destination, FlowId, Limits, StartError, TlsClientConfig, Transport,
    TransportConfig, Transports,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::Acceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

fn tcp(addr: SocketAddr) -> Destination {
    Destination {
        transport: Transport::Tcp,
        addr,
        server_name: None,
    }
}

fn tls(addr: SocketAddr, server_name: Option<&str>) -> Destination {
    Destination {
        transport: Transport::Tls,
        addr,
        server_name: server_name.map(str::to_owned),
    }
}

async fn peer() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

async fn accept(listener: &TcpListener) -> TcpStream {
    tokio::time::timeout(WAIT, listener.accept())
        .await
        .expect("no connection in time")
        .unwrap()
        .0
}

#[tokio::test]
async fn tcp_connection_carries_messages_both_ways_and_is_reused() {
    let (transports, mut events) = start(config()).await;
    let (listener, addr) = peer().await;
    let flow = transports.connect(&tcp(addr)).await.unwrap();
    assert_eq!(flow.transport(), Transport::Tcp);
    let mut far_end = accept(&listener).await;

    transports.send(flow, request("out")).await.unwrap();
    assert_eq!(
        read_exact(&mut far_end, request("out").len()).await,
        request("out")
    );
    far_end.write_all(&response("out")).await.unwrap();
    let inbound = next_message(&mut events).await;
    assert_eq!(inbound.flow, flow);
    assert_eq!(inbound.remote, addr);
    assert_eq!(inbound.local, far_end.peer_addr().unwrap());
    assert_eq!(inbound.message, response("out"));

    // The same destination, also when named: a TCP connection serves any name.
    assert_eq!(transports.connect(&tcp(addr)).await.unwrap(), flow);
    let named = Destination {
        server_name: Some("peer.test".to_owned()),
        ..tcp(addr)
    };
    assert_eq!(transports.connect(&named).await.unwrap(), flow);
    // Keep-alives are answered on it as on an accepted connection.
    far_end.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exact(&mut far_end, 2).await, b"\r\n");

    let counters = transports.counters().tcp;
    assert_eq!(counters.connections_opened, 1);
    assert_eq!(counters.connections_accepted, 0);
    assert_eq!(counters.connections_open, 1);
    assert_eq!((counters.messages_in, counters.messages_out), (1, 1));
    transports.shutdown().await;
}

#[tokio::test]
async fn concurrent_connects_to_one_destination_open_one_connection() {
    let (transports, _events) = start(config()).await;
    let (listener, addr) = peer().await;
    let destination = tcp(addr);
    let (first, second, third) = tokio::join!(
        transports.connect(&destination),
        transports.connect(&destination),
        transports.connect(&destination),
    );
    let flow = first.unwrap();
    assert_eq!(second.unwrap(), flow);
    assert_eq!(third.unwrap(), flow);
    let _far_end = accept(&listener).await;
    // From other tasks too (the future is Send).
    let spawned = tokio::spawn({
        let transports = transports.clone();
        async move { transports.connect(&destination).await }
    });
    assert_eq!(spawned.await.unwrap().unwrap(), flow);
    assert_eq!(transports.counters().tcp.connections_opened, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn an_accepted_connection_is_reused_for_its_exact_address() {
    let (transports, mut events) = start(config()).await;
    let mut client = TcpStream::connect(transports.local_addrs().tcp.unwrap())
        .await
        .unwrap();
    client.write_all(&request("in")).await.unwrap();
    let inbound = next_message(&mut events).await;
    assert_eq!(
        transports.connect(&tcp(inbound.remote)).await.unwrap(),
        inbound.flow
    );
    let counters = transports.counters().tcp;
    assert_eq!(counters.connections_opened, 0);
    assert_eq!(counters.connections_open, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn connection_refused_is_an_immediate_error_and_is_tried_again_next_time() {
    let (transports, _events) = start(TransportConfig {
        limits: Limits {
            // The refusal must not wait for this.
            connect_timeout: Duration::from_secs(3600),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let (listener, addr) = peer().await;
    drop(listener);
    for attempt in 1..=2 {
        let error = transports.connect(&tcp(addr)).await.unwrap_err();
        match &error {
            ConnectError::Io {
                addr: failed,
                source,
            } => {
                assert_eq!(*failed, addr);
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(error.to_string().contains(&addr.to_string()), "{error}");
        assert_eq!(transports.counters().tcp.connect_failures, attempt);
    }
    assert_eq!(transports.counters().connections_open(), 0);
    transports.shutdown().await;
}

#[tokio::test]
async fn a_peer_silent_in_the_tls_handshake_times_out() {
    let limit = Duration::from_millis(300);
    let (transports, _events) = start(TransportConfig {
        limits: Limits {
            tls_handshake_timeout: limit,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let (listener, addr) = peer().await;
    let started = Instant::now();
    // The peer accepts the TCP connection and holds it, saying nothing.
    let destination = tls(addr, None);
    let (outcome, _silent) = tokio::join!(transports.connect(&destination), accept(&listener));
    assert!(
        matches!(outcome, Err(ConnectError::TlsTimeout { addr: a }) if a == addr),
        "{outcome:?}"
    );
    assert!(started.elapsed() >= limit);
    let counters = transports.counters().tls;
    assert_eq!(counters.connect_failures, 1);
    assert_eq!(counters.handshake_failures, 1);
    assert_eq!(counters.connections_open, 0);
    transports.shutdown().await;
}

#[tokio::test]
async fn udp_and_websocket_destinations() {
    let (transports, _events) = start(config()).await;
    let addr: SocketAddr = "127.0.0.1:5099".parse().unwrap();
    let udp = Destination {
        transport: Transport::Udp,
        addr,
        server_name: None,
    };
    assert_eq!(transports.connect(&udp).await.unwrap(), FlowId::udp(addr));
    for transport in [Transport::Ws, Transport::Wss] {
        let websocket = Destination {
            transport,
            ..udp.clone()
        };
        assert!(matches!(
            transports.connect(&websocket).await,
            Err(ConnectError::Unsupported(t)) if t == transport
        ));
    }
    transports.shutdown().await;

    let (without_udp, _events) = start(TransportConfig {
        udp: None,
        ..config()
    })
    .await;
    assert!(matches!(
        without_udp.connect(&udp).await,
        Err(ConnectError::UdpOff)
    ));
    without_udp.shutdown().await;
}

#[tokio::test]
async fn opened_connections_count_toward_the_total_but_not_the_per_ip_limit() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            max_connections_per_ip: 1,
            max_connections: 2,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    // 127.0.0.1 uses its one place with a connection to sipd...
    let mut client = TcpStream::connect(transports.local_addrs().tcp.unwrap())
        .await
        .unwrap();
    client.write_all(&request("in")).await.unwrap();
    next_message(&mut events).await;
    // ...which does not keep sipd from connecting to a peer there.
    let (first_listener, first) = peer().await;
    transports.connect(&tcp(first)).await.unwrap();
    let _first = accept(&first_listener).await;
    // The total is reached.
    let (_second_listener, second) = peer().await;
    assert!(matches!(
        transports.connect(&tcp(second)).await,
        Err(ConnectError::LimitReached)
    ));
    assert_eq!(transports.counters().tcp.connect_failures, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn a_connection_the_peer_closes_is_reported_and_the_next_connect_opens_anew() {
    let (transports, mut events) = start(config()).await;
    let (listener, addr) = peer().await;
    let flow = transports.connect(&tcp(addr)).await.unwrap();
    assert!(transports.is_open(flow));
    drop(accept(&listener).await);
    assert_eq!(next_close(&mut events).await, flow);
    assert!(!transports.is_open(flow));
    assert_eq!(transports.counters().tcp.connections_open, 0);

    let renewed = transports.connect(&tcp(addr)).await.unwrap();
    assert_ne!(renewed, flow);
    let mut far_end = accept(&listener).await;
    transports.send(renewed, request("again")).await.unwrap();
    assert_eq!(
        read_exact(&mut far_end, request("again").len()).await,
        request("again")
    );
    assert_eq!(transports.counters().tcp.connections_opened, 2);
    transports.shutdown().await;
}

#[tokio::test]
async fn opened_connections_idle_out_unless_registered() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            // Long enough to register the first connection before it idles out.
            idle_timeout: Duration::from_millis(500),
            registered_idle_timeout: Duration::from_secs(3600),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let (listener, addr) = peer().await;
    let pinned = transports.connect(&tcp(addr)).await.unwrap();
    transports.set_flow_registered(pinned, true).unwrap();
    let _pinned_far_end = accept(&listener).await;
    let (other_listener, other) = peer().await;
    let loose = transports.connect(&tcp(other)).await.unwrap();
    let mut loose_far_end = accept(&other_listener).await;

    assert_eq!(next_close(&mut events).await, loose);
    expect_closed(&mut loose_far_end).await;
    assert_eq!(transports.counters().tcp.idle_closes, 1);
    // The registered one is still open.
    assert_eq!(transports.connect(&tcp(addr)).await.unwrap(), pinned);
    transports.shutdown().await;
}

#[tokio::test]
async fn shutdown_writes_what_is_queued_and_closes_opened_connections() {
    let (transports, mut events) = start(config()).await;
    let (listener, addr) = peer().await;
    let flow = transports.connect(&tcp(addr)).await.unwrap();
    let mut far_end = accept(&listener).await;
    transports.send(flow, request("last")).await.unwrap();
    transports.shutdown().await;

    assert_eq!(
        read_exact(&mut far_end, request("last").len()).await,
        request("last")
    );
    expect_closed(&mut far_end).await;
    assert_eq!(next_close(&mut events).await, flow);
    assert!(matches!(
        transports.connect(&tcp(addr)).await,
        Err(ConnectError::ShuttingDown)
    ));
    assert_eq!(transports.counters().connections_open(), 0);
}

/// A private CA and a certificate it issued for `names`.
struct PrivatePki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

fn private_pki(names: &[&str]) -> PrivatePki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let certificate = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    PrivatePki {
        ca_pem: ca.pem(),
        chain: vec![certificate.der().clone()],
        key_der: key.serialize_der(),
    }
}

fn write_ca(dir: &Path, pki: &PrivatePki) -> std::path::PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    path
}

fn trusting(ca_file: std::path::PathBuf) -> TransportConfig {
    TransportConfig {
        tls_client: TlsClientConfig {
            ca_file: Some(ca_file),
            verify: true,
        },
        ..config()
    }
}

/// A TLS server on loopback presenting `pki`'s certificate.
struct TlsPeer {
    listener: TcpListener,
    addr: SocketAddr,
    config: Arc<ServerConfig>,
}

impl TlsPeer {
    async fn new(pki: &PrivatePki) -> TlsPeer {
        let (listener, addr) = peer().await;
        let key = PrivateKeyDer::Pkcs8(pki.key_der.clone().into());
        let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(pki.chain.clone(), key)
            .unwrap();
        TlsPeer {
            listener,
            addr,
            config: Arc::new(config),
        }
    }

    /// Accepts one connection: the SNI the client sent, and the stream if the handshake
    /// succeeded.
    async fn accept(&self) -> (Option<String>, Option<TlsStream<TcpStream>>) {
        let tcp = accept(&self.listener).await;
        let start = tokio::time::timeout(WAIT, LazyConfigAcceptor::new(Acceptor::default(), tcp))
            .await
            .expect("no ClientHello in time")
            .unwrap();
        let sni = start.client_hello().server_name().map(str::to_owned);
        let stream = tokio::time::timeout(WAIT, start.into_stream(self.config.clone()))
            .await
            .expect("TLS handshake in time")
            .ok();
        (sni, stream)
    }
}

#[tokio::test]
async fn tls_to_a_private_ca_verifies_the_name_and_sends_sni() {
    let dir = tempfile::tempdir().unwrap();
    let pki = private_pki(&["sip.peer.test", "127.0.0.1"]);
    let (transports, mut events) = start(trusting(write_ca(dir.path(), &pki))).await;
    let peer = TlsPeer::new(&pki).await;

    let named = tls(peer.addr, Some("sip.peer.test"));
    let (flow, (sni, far_end)) = tokio::join!(transports.connect(&named), peer.accept());
    let flow = flow.unwrap();
    assert_eq!(flow.transport(), Transport::Tls);
    assert_eq!(sni.as_deref(), Some("sip.peer.test"));
    let mut far_end = far_end.expect("handshake");
    transports.send(flow, request("tls-out")).await.unwrap();
    assert_eq!(
        read_exact(&mut far_end, request("tls-out").len()).await,
        request("tls-out")
    );
    far_end.write_all(&response("tls-out")).await.unwrap();
    far_end.flush().await.unwrap();
    let inbound = next_message(&mut events).await;
    assert_eq!((inbound.flow, inbound.message), (flow, response("tls-out")));
    assert_eq!(transports.connect(&named).await.unwrap(), flow);

    // Without a server name the certificate must carry the IP address, and no SNI is sent;
    // a connection verified for a name does not serve this.
    let by_address = tls(peer.addr, None);
    let (unnamed, (sni, _far_end)) = tokio::join!(transports.connect(&by_address), peer.accept());
    assert_ne!(unnamed.unwrap(), flow);
    assert_eq!(sni, None);
    let counters = transports.counters().tls;
    assert_eq!(counters.connections_opened, 2);
    assert_eq!(counters.connect_failures, 0);
    transports.shutdown().await;
}

#[tokio::test]
async fn tls_without_the_private_ca_fails_naming_the_certificate_problem() {
    let pki = private_pki(&["sip.peer.test"]);
    let (transports, _events) = start(config()).await;
    let peer = TlsPeer::new(&pki).await;
    let destination = tls(peer.addr, Some("sip.peer.test"));
    let (outcome, _) = tokio::join!(transports.connect(&destination), peer.accept());
    match outcome {
        Err(ConnectError::Tls { addr, reason }) => {
            assert_eq!(addr, peer.addr);
            assert!(reason.contains("UnknownIssuer"), "{reason}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    let counters = transports.counters().tls;
    assert_eq!(counters.connect_failures, 1);
    assert_eq!(counters.connections_open, 0);
    transports.shutdown().await;
}

#[tokio::test]
async fn a_certificate_for_another_name_fails() {
    let dir = tempfile::tempdir().unwrap();
    let pki = private_pki(&["sip.peer.test"]);
    let (transports, _events) = start(trusting(write_ca(dir.path(), &pki))).await;
    let peer = TlsPeer::new(&pki).await;
    let misnamed = tls(peer.addr, Some("other.peer.test"));
    let (outcome, (sni, _)) = tokio::join!(transports.connect(&misnamed), peer.accept());
    assert_eq!(sni.as_deref(), Some("other.peer.test"));
    match outcome {
        Err(ConnectError::Tls { reason, .. }) => {
            assert!(reason.contains("not valid for name"), "{reason}");
            assert!(reason.contains("other.peer.test"), "{reason}");
        }
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // Neither is an IP address the certificate does not carry.
    let by_address = tls(peer.addr, None);
    let (outcome, _) = tokio::join!(transports.connect(&by_address), peer.accept());
    assert!(
        matches!(&outcome, Err(ConnectError::Tls { reason, .. }) if reason.contains("127.0.0.1")),
        "{outcome:?}"
    );
    transports.shutdown().await;
}

#[tokio::test]
async fn verification_off_accepts_any_certificate() {
    let pki = private_pki(&["sip.peer.test"]);
    let (transports, _events) = start(TransportConfig {
        tls_client: TlsClientConfig {
            ca_file: None,
            verify: false,
        },
        ..config()
    })
    .await;
    let peer = TlsPeer::new(&pki).await;
    let destination = tls(peer.addr, Some("anything.test"));
    let (outcome, (_, far_end)) = tokio::join!(transports.connect(&destination), peer.accept());
    outcome.unwrap();
    assert!(far_end.is_some());
    transports.shutdown().await;
}

#[tokio::test]
async fn an_unusable_ca_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not PEM at all").unwrap();
    for path in [missing, garbage] {
        let error = Transports::start(trusting(path.clone()))
            .await
            .expect_err("a CA file that cannot be used");
        assert!(matches!(error, StartError::TrustAnchors(_)), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()));
    }
}
