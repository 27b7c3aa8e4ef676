//! WS and WSS (RFC 7118): the `sip` subprotocol is required, one SIP message per WebSocket
//! message, replies in the peer's frame type, pings answered, oversize messages refused.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use sipd_transport::{Limits, Transport, TransportConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

async fn next_ws<S>(socket: &mut WebSocketStream<S>) -> Message
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("WebSocket message in time")
        .expect("WebSocket open")
        .expect("WebSocket message")
}

async fn ws_connect(transports: &sipd_transport::Transports) -> WebSocketStream<TcpStream> {
    let addr = transports.local_addrs().ws.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    ws_handshake(&format!("ws://{addr}/"), tcp, true)
        .await
        .unwrap()
}

#[tokio::test]
async fn ws_text_and_binary_messages_round_trip_in_their_frame_type() {
    let (transports, mut events) = start(config()).await;
    let mut socket = ws_connect(&transports).await;

    socket
        .send(Message::text(
            String::from_utf8(request("w1").to_vec()).unwrap(),
        ))
        .await
        .unwrap();
    let inbound = next_message(&mut events).await;
    assert_eq!(inbound.message, request("w1"));
    assert_eq!(inbound.flow.transport(), Transport::Ws);
    assert!(inbound.flow.to_string().starts_with("ws-"));
    transports.send(inbound.flow, response("w1")).await.unwrap();
    assert_eq!(
        next_ws(&mut socket).await,
        Message::Text(String::from_utf8(response("w1").to_vec()).unwrap().into())
    );

    socket.send(Message::Binary(request("w2"))).await.unwrap();
    let inbound = next_message(&mut events).await;
    assert_eq!(inbound.message, request("w2"));
    transports.send(inbound.flow, response("w2")).await.unwrap();
    assert_eq!(next_ws(&mut socket).await, Message::Binary(response("w2")));

    // A WebSocket ping is answered even while nothing else is sent.
    socket
        .send(Message::Ping("are-you-there".into()))
        .await
        .unwrap();
    assert_eq!(
        next_ws(&mut socket).await,
        Message::Pong("are-you-there".into())
    );

    socket.close(None).await.unwrap();
    assert_eq!(next_close(&mut events).await, inbound.flow);
    let counters = transports.counters();
    assert_eq!(counters.ws.messages_in, 2);
    assert_eq!(counters.ws.messages_out, 2);
    assert_eq!(counters.ws.keepalives_in, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn a_client_not_offering_sip_is_refused() {
    let (transports, mut events) = start(config()).await;
    let addr = transports.local_addrs().ws.unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    match ws_handshake(&format!("ws://{addr}/"), tcp, false).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    eventually(|| transports.counters().ws.handshake_failures == 1).await;
    // No flow was opened: the next event is from a proper client.
    let mut socket = ws_connect(&transports).await;
    socket.send(Message::Binary(request("ok"))).await.unwrap();
    assert_eq!(next_message(&mut events).await.message, request("ok"));
    transports.shutdown().await;
}

#[tokio::test]
async fn oversize_websocket_message_closes_the_connection() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            max_message_size: 1000,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut socket = ws_connect(&transports).await;
    socket.send(Message::Binary(request("fits"))).await.unwrap();
    let flow = next_message(&mut events).await.flow;
    // Errors on the client side are expected: the server drops the connection.
    let _ = socket.send(Message::Binary(vec![b'x'; 5000].into())).await;
    assert_eq!(next_close(&mut events).await, flow);
    assert_eq!(transports.counters().ws.dropped_oversize, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn wss_end_to_end_with_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    let root = write_certificate(&files, "sip.example.test");
    let (transports, mut events) = start(TransportConfig {
        certificate: Some(files),
        ..config()
    })
    .await;
    let addr = transports.local_addrs().wss.unwrap();
    let tls = tls_connect(addr, &root, "sip.example.test").await.unwrap();
    let mut socket = ws_handshake("wss://sip.example.test/", tls, true)
        .await
        .unwrap();

    socket
        .send(Message::text(
            String::from_utf8(request("s1").to_vec()).unwrap(),
        ))
        .await
        .unwrap();
    let inbound = next_message(&mut events).await;
    assert_eq!(inbound.message, request("s1"));
    assert_eq!(inbound.flow.transport(), Transport::Wss);
    transports.send(inbound.flow, response("s1")).await.unwrap();
    assert!(
        matches!(next_ws(&mut socket).await, Message::Text(text) if text.as_bytes() == &response("s1")[..])
    );

    // Shutdown closes the WebSocket with a close frame.
    transports.shutdown().await;
    assert!(matches!(next_ws(&mut socket).await, Message::Close(_)));
    assert_eq!(next_close(&mut events).await, inbound.flow);
}
