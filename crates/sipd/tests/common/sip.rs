//! A small SIP user agent for the tests: UDP, TCP, TLS (any certificate) and WSS (subprotocol
//! `sip`) connections, REGISTER building and Digest answers (SHA-256 and MD5).

use super::{DOMAIN, TIMEOUT};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use md5::Md5;
use sha2::{Digest, Sha256};
use sip_message::auth::{Challenge, DigestChallenge};
use sip_message::{HeaderName, Message, RequestBuilder};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, Error as TlsError, SignatureScheme,
};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

enum Connection {
    Udp(UdpSocket),
    Stream(Box<dyn Stream>, BytesMut),
    WebSocket(Box<WebSocketStream<Box<dyn Stream>>>),
}

/// One client flow to the server.
pub struct SipClient {
    connection: Connection,
    /// Via transport token: UDP, TCP, TLS, WSS.
    pub transport: &'static str,
    pub local: SocketAddr,
}

impl SipClient {
    pub async fn connect(transport: &str, server: SocketAddr) -> SipClient {
        match transport {
            "udp" => {
                let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                socket.connect(server).await.unwrap();
                let local = socket.local_addr().unwrap();
                SipClient {
                    connection: Connection::Udp(socket),
                    transport: "UDP",
                    local,
                }
            }
            "tcp" => {
                let tcp = TcpStream::connect(server).await.unwrap();
                let local = tcp.local_addr().unwrap();
                SipClient {
                    connection: Connection::Stream(Box::new(tcp), BytesMut::new()),
                    transport: "TCP",
                    local,
                }
            }
            "tls" => {
                let (tls, local) = tls(server).await;
                SipClient {
                    connection: Connection::Stream(tls, BytesMut::new()),
                    transport: "TLS",
                    local,
                }
            }
            "wss" => {
                let (tls, local) = tls(server).await;
                let mut request = format!("wss://{server}/").into_client_request().unwrap();
                request.headers_mut().insert(
                    header::SEC_WEBSOCKET_PROTOCOL,
                    HeaderValue::from_static("sip"),
                );
                let (socket, response) =
                    tokio::time::timeout(TIMEOUT, tokio_tungstenite::client_async(request, tls))
                        .await
                        .expect("WebSocket handshake in time")
                        .expect("WebSocket handshake");
                assert_eq!(
                    response.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
                    Some(&HeaderValue::from_static("sip"))
                );
                SipClient {
                    connection: Connection::WebSocket(Box::new(socket)),
                    transport: "WSS",
                    local,
                }
            }
            other => panic!("unknown transport {other}"),
        }
    }

    pub async fn send(&mut self, message: &[u8]) {
        match &mut self.connection {
            Connection::Udp(socket) => {
                socket.send(message).await.unwrap();
            }
            Connection::Stream(stream, _) => stream.write_all(message).await.unwrap(),
            Connection::WebSocket(socket) => socket
                .send(WsMessage::Text(
                    String::from_utf8(message.to_vec()).unwrap().into(),
                ))
                .await
                .unwrap(),
        }
    }

    /// The next message from the server; fails the test after [`TIMEOUT`].
    pub async fn recv(&mut self) -> Message {
        tokio::time::timeout(TIMEOUT, self.next_message())
            .await
            .expect("a SIP message from sipd in time")
    }

    async fn next_message(&mut self) -> Message {
        match &mut self.connection {
            Connection::Udp(socket) => {
                let mut buffer = vec![0; 65_536];
                let length = socket.recv(&mut buffer).await.unwrap();
                buffer.truncate(length);
                Message::parse(Bytes::from(buffer)).expect("sipd sends valid SIP")
            }
            Connection::Stream(stream, buffer) => loop {
                if let Some(length) = framed_length(buffer) {
                    let bytes = buffer.split_to(length).freeze();
                    return Message::parse(bytes).expect("sipd sends valid SIP");
                }
                // Keep-alive pongs between messages.
                while buffer.starts_with(b"\r\n") {
                    buffer.advance(2);
                }
                let read = stream.read_buf(buffer).await.unwrap();
                assert!(read > 0, "sipd closed the connection");
            },
            Connection::WebSocket(socket) => loop {
                match socket.next().await.expect("open").expect("WebSocket frame") {
                    WsMessage::Text(text) => {
                        return Message::parse(Bytes::copy_from_slice(text.as_bytes()))
                            .expect("sipd sends valid SIP")
                    }
                    WsMessage::Binary(bytes) => {
                        return Message::parse(bytes).expect("sipd sends valid SIP")
                    }
                    _ => continue,
                }
            },
        }
    }
}

/// Length of the first complete message in `buffer` (headers, then Content-Length bytes).
fn framed_length(buffer: &[u8]) -> Option<usize> {
    let start = buffer.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let head_end = buffer[start..]
        .windows(4)
        .position(|window| window == b"\r\n\r\n")?
        + start
        + 4;
    let head = std::str::from_utf8(&buffer[start..head_end]).ok()?;
    let body: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length") || name.trim() == "l")
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    (buffer.len() >= head_end + body).then_some(head_end + body)
}

async fn tls(server: SocketAddr) -> (Box<dyn Stream>, SocketAddr) {
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    let tcp = TcpStream::connect(server).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let name = ServerName::try_from(DOMAIN.to_owned()).unwrap();
    let stream = tokio::time::timeout(
        TIMEOUT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("TLS handshake in time")
    .expect("TLS handshake");
    (Box::new(stream), local)
}

/// Accepts sipd's self-signed certificate (the signatures are still checked).
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
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

/// One device's registration dialog: AOR, Call-ID and CSeq.
pub struct Registration {
    pub user: String,
    pub call_id: String,
    pub cseq: u32,
    pub user_agent: String,
}

impl Registration {
    pub fn new(user: &str) -> Registration {
        Registration {
            user: user.to_owned(),
            call_id: format!("{:016x}@test", rand::random::<u64>()),
            cseq: 0,
            user_agent: format!("sipd-e2e/{user}"),
        }
    }

    /// The Contact URI this device registers from `client`.
    pub fn contact(&self, client: &SipClient) -> String {
        format!(
            "sip:{}@{};transport={}",
            self.user,
            client.local,
            client.transport.to_ascii_lowercase()
        )
    }

    /// A REGISTER with the next CSeq; `authorization` is a full header value.
    pub fn register(
        &mut self,
        client: &SipClient,
        expires: u32,
        authorization: Option<&str>,
    ) -> Vec<u8> {
        self.cseq += 1;
        self.register_with_cseq(client, expires, authorization, self.cseq)
    }

    pub fn register_with_cseq(
        &self,
        client: &SipClient,
        expires: u32,
        authorization: Option<&str>,
        cseq: u32,
    ) -> Vec<u8> {
        let aor = format!("<sip:{}@{DOMAIN}>", self.user);
        let mut builder = RequestBuilder::new("REGISTER", &format!("sip:{DOMAIN}"))
            .header(
                "Via",
                format!(
                    "SIP/2.0/{} {};rport;branch=z9hG4bK{:016x}",
                    client.transport,
                    client.local,
                    rand::random::<u64>()
                ),
            )
            .header("Max-Forwards", "70")
            .header("From", format!("{aor};tag={:08x}", rand::random::<u32>()))
            .header("To", &aor)
            .header("Call-ID", &self.call_id)
            .header("CSeq", format!("{cseq} REGISTER"))
            .header("Contact", format!("<{}>", self.contact(client)))
            .header("Expires", expires.to_string())
            .header("User-Agent", &self.user_agent);
        if let Some(authorization) = authorization {
            builder = builder.header("Authorization", authorization);
        }
        builder.build()
    }
}

/// The Digest challenges of a 401, in order.
pub fn challenges(response: &Message) -> Vec<DigestChallenge<'static>> {
    challenges_in(response, HeaderName::WwwAuthenticate)
}

/// The Digest challenges of a 407, in order.
pub fn proxy_challenges(response: &Message) -> Vec<DigestChallenge<'static>> {
    challenges_in(response, HeaderName::ProxyAuthenticate)
}

fn challenges_in(response: &Message, name: HeaderName) -> Vec<DigestChallenge<'static>> {
    response
        .headers_named(name)
        .map(
            |value| match Challenge::parse(value).expect("a valid challenge") {
                Challenge::Digest(digest) => into_owned(digest),
                other => panic!("not a Digest challenge: {other:?}"),
            },
        )
        .collect()
}

fn into_owned(challenge: DigestChallenge<'_>) -> DigestChallenge<'static> {
    let mut owned =
        DigestChallenge::new(challenge.realm.into_owned(), challenge.nonce.into_owned())
            .with_algorithm(sip_message::auth::DigestAlgorithm::from_name(
                challenge.algorithm.as_str().to_owned().into(),
            ))
            .with_stale(challenge.stale);
    for qop in &challenge.qop {
        owned = owned.with_qop(sip_message::auth::Qop::from_name(
            qop.as_str().to_owned().into(),
        ));
    }
    owned
}

/// An `Authorization` value answering `challenge` for REGISTER sip:DOMAIN, qop=auth.
pub fn authorization(
    challenge: &DigestChallenge<'_>,
    user: &str,
    password: &str,
    nc: u32,
) -> String {
    digest_answer(
        challenge,
        user,
        password,
        nc,
        "REGISTER",
        &format!("sip:{DOMAIN}"),
    )
}

/// A Digest answer (the value of Authorization or Proxy-Authorization) to `challenge` for a
/// request with this method and Request-URI, qop=auth.
pub fn digest_answer(
    challenge: &DigestChallenge<'_>,
    user: &str,
    password: &str,
    nc: u32,
    method: &str,
    uri: &str,
) -> String {
    let algorithm = challenge.algorithm.as_str();
    let hash = |text: String| -> String {
        if algorithm.eq_ignore_ascii_case("SHA-256") {
            hex::encode(Sha256::digest(text.as_bytes()))
        } else {
            hex::encode(Md5::digest(text.as_bytes()))
        }
    };
    let cnonce = format!("{:08x}", rand::random::<u32>());
    let nc = format!("{nc:08x}");
    let ha1 = hash(format!("{user}:{}:{password}", challenge.realm));
    let ha2 = hash(format!("{method}:{uri}"));
    let response = hash(format!(
        "{ha1}:{}:{nc}:{cnonce}:auth:{ha2}",
        challenge.nonce
    ));
    format!(
        "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={algorithm}, qop=auth, nc={nc}, cnonce=\"{cnonce}\"",
        challenge.realm, challenge.nonce
    )
}
