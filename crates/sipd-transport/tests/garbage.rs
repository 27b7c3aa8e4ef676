//! Garbage on every listener never takes the server down, and peers that stall a handshake
//! are dropped after its timeout.

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use sipd_transport::{Limits, TransportConfig, TransportEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

/// Deterministic noise (xorshift), some of it dressed as the start of a SIP message.
fn noise(count: usize) -> Vec<Vec<u8>> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|n| {
            let len = usize::try_from(next() % 3000).unwrap();
            let mut blob: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            if n % 3 == 0 {
                blob.splice(
                    0..0,
                    b"INVITE sip:x SIP/2.0\r\nContent-Length: ".iter().copied(),
                );
            }
            blob
        })
        .collect()
}

#[tokio::test]
async fn garbage_on_every_listener_leaves_the_server_serving() {
    let (transports, mut events) = start(config()).await;
    let addrs = transports.local_addrs();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for blob in noise(60) {
        udp.send_to(&blob, addrs.udp.unwrap()).await.unwrap();
        for addr in [addrs.tcp, addrs.tls, addrs.ws, addrs.wss] {
            let mut stream = TcpStream::connect(addr.unwrap()).await.unwrap();
            // The server may close first; that is its right.
            let _ = stream.write_all(&blob).await;
        }
    }

    // Each transport still serves a well-behaved client.
    let mut tcp = TcpStream::connect(addrs.tcp.unwrap()).await.unwrap();
    tcp.write_all(&request("tcp-ok")).await.unwrap();
    let mut ws = ws_handshake(
        &format!("ws://{}/", addrs.ws.unwrap()),
        TcpStream::connect(addrs.ws.unwrap()).await.unwrap(),
        true,
    )
    .await
    .unwrap();
    ws.send(Message::Binary(request("ws-ok"))).await.unwrap();
    udp.send_to(&request("udp-ok"), addrs.udp.unwrap())
        .await
        .unwrap();
    let mut good = Vec::new();
    while good.len() < 3 {
        // UDP garbage reaches the core (parsing is its job); connection garbage does not.
        if let TransportEvent::Message(inbound) = next_event(&mut events).await {
            if inbound.message.ends_with(b"-ok") {
                good.push(inbound.message);
            }
        }
    }
    good.sort();
    assert_eq!(
        good,
        [request("tcp-ok"), request("udp-ok"), request("ws-ok")]
    );
    let counters = transports.counters();
    assert!(counters.tls.handshake_failures > 0);
    assert!(counters.ws.handshake_failures > 0);
    assert!(counters.tcp.dropped_framing + counters.tcp.dropped_oversize > 0);
    transports.shutdown().await;
}

#[tokio::test]
async fn stalled_handshakes_are_dropped_after_their_timeout() {
    let (transports, _events) = start(TransportConfig {
        limits: Limits {
            tls_handshake_timeout: Duration::from_millis(200),
            websocket_handshake_timeout: Duration::from_millis(200),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let addrs = transports.local_addrs();
    let mut silent_tls = TcpStream::connect(addrs.tls.unwrap()).await.unwrap();
    let mut silent_ws = TcpStream::connect(addrs.ws.unwrap()).await.unwrap();
    // Half a request line, never finished.
    silent_ws.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    expect_closed(&mut silent_tls).await;
    expect_closed(&mut silent_ws).await;
    eventually(|| {
        let counters = transports.counters();
        counters.tls.handshake_failures == 1 && counters.ws.handshake_failures == 1
    })
    .await;
    transports.shutdown().await;
}
