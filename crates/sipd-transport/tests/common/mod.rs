//! Helpers shared by the transport tests: configs on 127.0.0.1 port 0, awaiting events with
//! a timeout, SIP messages, and TLS and WebSocket clients.
#![allow(dead_code)] // Each test file uses a different part.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sipd_transport::{
    CertificateFiles, FlowId, Inbound, TransportConfig, TransportEvent, Transports,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::WebSocketStream;

/// Generous: the machine may be busy compiling; a passing test never waits this long.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn loopback() -> Option<SocketAddr> {
    Some("127.0.0.1:0".parse().unwrap())
}

/// Every listener on 127.0.0.1 with an ephemeral port; a self-signed certificate.
pub fn config() -> TransportConfig {
    TransportConfig {
        udp: loopback(),
        tcp: loopback(),
        tls: loopback(),
        wss: loopback(),
        ws: loopback(),
        domain: "sip.example.test".to_owned(),
        ..TransportConfig::default()
    }
}

pub async fn start(config: TransportConfig) -> (Transports, mpsc::Receiver<TransportEvent>) {
    Transports::start(config).await.expect("transports start")
}

pub async fn next_event(events: &mut mpsc::Receiver<TransportEvent>) -> TransportEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("no transport event in time")
        .expect("event channel closed")
}

pub async fn next_message(events: &mut mpsc::Receiver<TransportEvent>) -> Inbound {
    match next_event(events).await {
        TransportEvent::Message(inbound) => inbound,
        other => panic!("expected a message, got {other:?}"),
    }
}

pub async fn next_close(events: &mut mpsc::Receiver<TransportEvent>) -> FlowId {
    match next_event(events).await {
        TransportEvent::FlowClosed(flow) => flow,
        other => panic!("expected a flow close, got {other:?}"),
    }
}

/// Waits (yielding, not sleeping) until `condition` holds, e.g. a counter that a task on
/// the runtime is about to bump.
pub async fn eventually(mut condition: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("condition not reached in time");
}

/// A complete request with a body, distinguishable by `tag`.
pub fn request(tag: &str) -> Bytes {
    let body = format!("body of {tag}");
    Bytes::from(format!(
        "MESSAGE sip:bob@example.test SIP/2.0\r\n\
         Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{tag}\r\n\
         From: <sip:alice@example.test>;tag={tag}\r\n\
         To: <sip:bob@example.test>\r\n\
         Call-ID: {tag}@192.0.2.1\r\n\
         CSeq: 1 MESSAGE\r\n\
         Max-Forwards: 70\r\n\
         Content-Type: text/plain\r\n\
         Content-Length: {}\r\n\
         \r\n\
         {body}",
        body.len()
    ))
}

pub fn response(tag: &str) -> Bytes {
    Bytes::from(format!(
        "SIP/2.0 200 OK\r\n\
         Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK{tag}\r\n\
         From: <sip:alice@example.test>;tag={tag}\r\n\
         To: <sip:bob@example.test>;tag=server\r\n\
         Call-ID: {tag}@192.0.2.1\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\
         \r\n"
    ))
}

/// Reads exactly `len` bytes.
pub async fn read_exact(stream: &mut (impl AsyncRead + Unpin), len: usize) -> Vec<u8> {
    let mut buffer = vec![0; len];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buffer))
        .await
        .expect("no data in time")
        .expect("read failed");
    buffer
}

/// Waits for the server to close the connection (EOF or reset).
pub async fn expect_closed(stream: &mut (impl AsyncRead + Unpin)) {
    let mut buffer = [0; 1024];
    loop {
        match tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("connection not closed in time")
        {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

/// A certificate for `name`, as PEM (chain, key) and DER.
pub fn certificate(name: &str) -> (String, String, CertificateDer<'static>) {
    let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    (
        generated.cert.pem(),
        generated.signing_key.serialize_pem(),
        generated.cert.der().clone(),
    )
}

/// Writes a new certificate for `name` to the files; returns its DER form.
pub fn write_certificate(files: &CertificateFiles, name: &str) -> CertificateDer<'static> {
    let (chain, key, der) = certificate(name);
    std::fs::write(&files.chain, chain).unwrap();
    std::fs::write(&files.key, key).unwrap();
    der
}

pub fn certificate_files(dir: &Path) -> CertificateFiles {
    CertificateFiles {
        chain: dir.join("chain.pem"),
        key: dir.join("key.pem"),
    }
}

fn client_config(
) -> tokio_rustls::rustls::ConfigBuilder<ClientConfig, tokio_rustls::rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
}

/// A TLS connection that trusts only `root` and checks the server name `name`.
pub async fn tls_connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    name: &str,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = client_config()
        .with_root_certificates(roots)
        .with_no_client_auth();
    connect_with(addr, config, name).await
}

/// Like [`tls_connect`], offering TLS 1.2 only.
pub async fn tls12_connect(
    addr: SocketAddr,
    root: &CertificateDer<'static>,
    name: &str,
) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_protocol_versions(&[&tokio_rustls::rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = connect_with(addr, config, name).await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2)
    );
    stream
}

async fn connect_with(
    addr: SocketAddr,
    config: ClientConfig,
    name: &str,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("TLS handshake in time")
}

/// Accepts any certificate and remembers the one the server presented.
#[derive(Debug)]
struct CaptureCertificate {
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for CaptureCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = ring::default_provider().signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = ring::default_provider().signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate the server presents, whatever it is.
pub async fn presented_certificate(addr: SocketAddr) -> CertificateDer<'static> {
    let verifier = Arc::new(CaptureCertificate {
        seen: Mutex::new(None),
    });
    let config = client_config()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    connect_with(addr, config, "ignored.test").await.unwrap();
    let seen = verifier.seen.lock().unwrap().take();
    seen.expect("a certificate")
}

/// A WebSocket client handshake over `stream`, offering the `sip` subprotocol if asked.
pub async fn ws_handshake<S>(
    url: &str,
    stream: S,
    offer_sip: bool,
) -> Result<WebSocketStream<S>, tokio_tungstenite::tungstenite::Error>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = url.into_client_request().unwrap();
    if offer_sip {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("sip"),
        );
    }
    let (socket, response) =
        tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, stream))
            .await
            .expect("WebSocket handshake in time")?;
    assert_eq!(
        response.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
        Some(&HeaderValue::from_static("sip"))
    );
    Ok(socket)
}
