//! TCP: framing (pipelined, split), keep-alive pong, misbehaving peers, flow lifetime,
//! idleness and pinning, connection limits, shutdown.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sipd_transport::{FlowGone, Limits, SendError, Transport, TransportConfig, TransportEvent};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn connect(transports: &sipd_transport::Transports) -> TcpStream {
    let stream = TcpStream::connect(transports.local_addrs().tcp.unwrap())
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

#[tokio::test]
async fn message_in_reply_out_on_the_same_connection() {
    let (transports, mut events) = start(config()).await;
    let mut client = connect(&transports).await;
    client.write_all(&request("t1")).await.unwrap();

    let inbound = next_message(&mut events).await;
    assert_eq!(inbound.message, request("t1"));
    assert_eq!(inbound.flow.transport(), Transport::Tcp);
    assert_eq!(inbound.flow.transport(), Transport::Tcp);
    assert_eq!(inbound.remote, client.local_addr().unwrap());
    assert_eq!(inbound.local, client.peer_addr().unwrap());
    assert!(inbound.flow.to_string().starts_with("tcp-"));

    transports.send(inbound.flow, response("t1")).await.unwrap();
    assert_eq!(
        read_exact(&mut client, response("t1").len()).await,
        response("t1")
    );
    let counters = transports.counters();
    assert_eq!(counters.tcp.messages_in, 1);
    assert_eq!(counters.tcp.messages_out, 1);
    assert_eq!(counters.tcp.connections_open, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn pipelined_and_byte_by_byte_messages_are_framed() {
    let (transports, mut events) = start(config()).await;
    let mut client = connect(&transports).await;
    let mut pipelined = Vec::new();
    for tag in ["p1", "p2", "p3"] {
        pipelined.extend_from_slice(&request(tag));
    }
    client.write_all(&pipelined).await.unwrap();
    for tag in ["p1", "p2", "p3"] {
        assert_eq!(next_message(&mut events).await.message, request(tag));
    }

    let split = [request("s1"), request("s2")].concat();
    for byte in split {
        client.write_all(&[byte]).await.unwrap();
        client.flush().await.unwrap();
    }
    assert_eq!(next_message(&mut events).await.message, request("s1"));
    assert_eq!(next_message(&mut events).await.message, request("s2"));
    transports.shutdown().await;
}

#[tokio::test]
async fn crlfcrlf_ping_gets_a_crlf_pong() {
    let (transports, mut events) = start(config()).await;
    let mut client = connect(&transports).await;
    client.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exact(&mut client, 2).await, b"\r\n");
    client.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exact(&mut client, 2).await, b"\r\n");
    client.write_all(&request("after-ping")).await.unwrap();
    assert_eq!(
        next_message(&mut events).await.message,
        request("after-ping")
    );
    assert_eq!(transports.counters().tcp.keepalives_in, 2);
    transports.shutdown().await;
}

#[tokio::test]
async fn garbage_and_oversize_close_only_the_offending_connection() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            max_message_size: 1000,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut good = connect(&transports).await;
    good.write_all(&request("good")).await.unwrap();
    let good_flow = next_message(&mut events).await.flow;

    // Not SIP: the stream cannot be framed.
    let mut garbage = connect(&transports).await;
    garbage
        .write_all(b"\x00\xffNOT SIP AT ALL\r\nX: y\r\n\r\nmore")
        .await
        .unwrap();
    let closed = next_close(&mut events).await;
    assert_ne!(closed, good_flow);
    expect_closed(&mut garbage).await;
    assert_eq!(transports.counters().tcp.dropped_framing, 1);

    // Announced body over the limit: refused before it arrives.
    let mut oversize = connect(&transports).await;
    oversize
        .write_all(b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 5000\r\n\r\n")
        .await
        .unwrap();
    next_close(&mut events).await;
    expect_closed(&mut oversize).await;
    assert_eq!(transports.counters().tcp.dropped_oversize, 1);

    // The well-behaved client is still served.
    good.write_all(&request("still-good")).await.unwrap();
    let inbound = next_message(&mut events).await;
    assert_eq!(
        (inbound.flow, inbound.message),
        (good_flow, request("still-good"))
    );
    transports.send(good_flow, response("ok")).await.unwrap();
    assert_eq!(
        read_exact(&mut good, response("ok").len()).await,
        response("ok")
    );
    transports.shutdown().await;
}

#[tokio::test]
async fn client_disconnect_is_reported_and_the_flow_is_gone() {
    let (transports, mut events) = start(config()).await;
    let mut client = connect(&transports).await;
    client.write_all(&request("bye")).await.unwrap();
    let flow = next_message(&mut events).await.flow;
    drop(client);
    assert_eq!(next_close(&mut events).await, flow);
    assert!(matches!(
        transports.send(flow, response("late")).await,
        Err(SendError::FlowGone(gone)) if gone == flow
    ));
    assert_eq!(
        transports.set_flow_registered(flow, true),
        Err(FlowGone(flow))
    );
    // A stored flow id from the database names nothing after the connection is gone.
    let parsed = flow.to_string().parse().unwrap();
    assert!(matches!(
        transports.send(parsed, response("late")).await,
        Err(SendError::FlowGone(_))
    ));
    let counters = transports.counters();
    assert_eq!(counters.tcp.connections_open, 0);
    assert_eq!(counters.tcp.send_failures, 2);
    transports.shutdown().await;
}

#[tokio::test]
async fn sending_faster_than_a_peer_reads_fails_with_queue_full() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            send_queue_capacity: 4,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut client = connect(&transports).await;
    client.write_all(&request("slow")).await.unwrap();
    let flow = next_message(&mut events).await.flow;
    // The client reads nothing; sooner or later the kernel buffers and the queue fill up.
    let big = bytes::Bytes::from(vec![b'x'; 256 * 1024]);
    let mut sent = 0;
    let full = loop {
        match transports.send(flow, big.clone()).await {
            Ok(()) => sent += 1,
            Err(error) => break error,
        }
        assert!(sent < 10_000, "the queue never filled");
        tokio::task::yield_now().await;
    };
    assert!(
        matches!(full, SendError::QueueFull(f) if f == flow),
        "{full}"
    );
    assert_eq!(transports.counters().tcp.send_failures, 1);
    // The connection stays: once the client reads, what was queued arrives.
    let expected = sent * big.len();
    assert_eq!(read_exact(&mut client, expected).await.len(), expected);
    transports.shutdown().await;
}

#[tokio::test]
async fn idle_unregistered_connections_close_registered_ones_stay() {
    let idle = Duration::from_millis(200);
    let registered_idle = Duration::from_millis(800);
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            idle_timeout: idle,
            registered_idle_timeout: registered_idle,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut pinned = connect(&transports).await;
    pinned.write_all(&request("pinned")).await.unwrap();
    let pinned_flow = next_message(&mut events).await.flow;
    transports.set_flow_registered(pinned_flow, true).unwrap();
    let mut loose = connect(&transports).await;
    loose.write_all(&request("loose")).await.unwrap();
    let loose_flow = next_message(&mut events).await.flow;

    // The unregistered connection goes first, although it was opened later.
    assert_eq!(next_close(&mut events).await, loose_flow);
    expect_closed(&mut loose).await;
    // The registered one is still there and answers a keep-alive.
    let kept_alive = Instant::now();
    pinned.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_exact(&mut pinned, 2).await, b"\r\n");
    // With nothing more arriving, it too closes, after the longer limit.
    assert_eq!(next_close(&mut events).await, pinned_flow);
    assert!(kept_alive.elapsed() >= registered_idle - Duration::from_millis(50));
    expect_closed(&mut pinned).await;
    assert_eq!(transports.counters().tcp.idle_closes, 2);
    transports.shutdown().await;
}

#[tokio::test]
async fn unpinning_a_connection_applies_the_short_idle_limit() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            idle_timeout: Duration::from_millis(200),
            registered_idle_timeout: Duration::from_secs(3600),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut client = connect(&transports).await;
    client.write_all(&request("r")).await.unwrap();
    let flow = next_message(&mut events).await.flow;
    transports.set_flow_registered(flow, true).unwrap();
    transports.set_flow_registered(flow, false).unwrap();
    assert_eq!(next_close(&mut events).await, flow);
    transports.shutdown().await;
}

#[tokio::test]
async fn connections_per_ip_are_limited() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            max_connections_per_ip: 2,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut first = connect(&transports).await;
    let mut second = connect(&transports).await;
    first.write_all(&request("c1")).await.unwrap();
    second.write_all(&request("c2")).await.unwrap();
    let first_flow = next_message(&mut events).await.flow;
    next_message(&mut events).await;

    let mut third = connect(&transports).await;
    expect_closed(&mut third).await;
    assert_eq!(transports.counters().tcp.connections_rejected, 1);

    // A place frees up when a connection ends.
    drop(first);
    assert_eq!(next_close(&mut events).await, first_flow);
    let mut fourth = connect(&transports).await;
    fourth.write_all(&request("c4")).await.unwrap();
    assert_eq!(next_message(&mut events).await.message, request("c4"));
    transports.shutdown().await;
}

#[tokio::test]
async fn total_connections_are_limited() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            max_connections: 2,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let server = transports.local_addrs().tcp.unwrap();
    // Different source addresses (all of 127/8 is loopback on Linux), so only the total counts.
    let from = |ip: [u8; 4]| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((ip, 0).into()).unwrap();
        socket.connect(server).await.unwrap()
    };
    let mut first = from([127, 0, 0, 1]).await;
    let mut second = from([127, 0, 0, 2]).await;
    first.write_all(&request("a")).await.unwrap();
    second.write_all(&request("b")).await.unwrap();
    next_message(&mut events).await;
    next_message(&mut events).await;
    let mut third = from([127, 0, 0, 3]).await;
    expect_closed(&mut third).await;
    assert_eq!(transports.counters().tcp.connections_rejected, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn shutdown_writes_what_is_queued_then_closes_everything() {
    let (transports, mut events) = start(config()).await;
    let mut client = connect(&transports).await;
    client.write_all(&request("s")).await.unwrap();
    let flow = next_message(&mut events).await.flow;

    // Stop accepting first; the open flow still works, so the core can flush.
    transports.stop_accepting();
    transports.send(flow, response("last-1")).await.unwrap();
    transports.send(flow, response("last-2")).await.unwrap();
    transports.shutdown().await;

    let expected = [response("last-1"), response("last-2")].concat();
    assert_eq!(read_exact(&mut client, expected.len()).await, expected);
    expect_closed(&mut client).await;
    assert!(matches!(next_event(&mut events).await, TransportEvent::FlowClosed(f) if f == flow));
    assert!(matches!(
        transports.send(flow, response("too-late")).await,
        Err(SendError::FlowGone(_))
    ));
    assert!(TcpStream::connect(transports.local_addrs().tcp.unwrap())
        .await
        .is_err());
    assert_eq!(transports.counters().connections_open(), 0);
}

#[tokio::test]
async fn bind_errors_name_the_listener_and_address() {
    let (transports, _events) = start(config()).await;
    let taken = transports.local_addrs().tcp.unwrap();
    let error = sipd_transport::Transports::start(TransportConfig {
        tcp: Some(taken),
        ..config()
    })
    .await
    .expect_err("the address is taken");
    let text = error.to_string();
    assert!(
        text.contains("tcp") && text.contains(&taken.to_string()),
        "{text}"
    );
    transports.shutdown().await;
}

#[tokio::test]
async fn extreme_limits_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let files = certificate_files(dir.path());
    write_certificate(&files, "sip.example.test");
    let (transports, mut events) = start(TransportConfig {
        certificate: Some(files),
        certificate_poll_interval: Duration::ZERO,
        event_queue_capacity: 0,
        udp_receive_buffer: usize::MAX,
        limits: Limits {
            max_message_size: usize::MAX,
            idle_timeout: Duration::MAX,
            registered_idle_timeout: Duration::MAX,
            tls_handshake_timeout: Duration::MAX,
            websocket_handshake_timeout: Duration::MAX,
            send_queue_capacity: 0,
            close_timeout: Duration::MAX,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut client = connect(&transports).await;
    client.write_all(&request("x")).await.unwrap();
    let flow = next_message(&mut events).await.flow;
    transports.set_flow_registered(flow, true).unwrap();
    transports.send(flow, response("x")).await.unwrap();
    assert_eq!(
        read_exact(&mut client, response("x").len()).await,
        response("x")
    );
    transports.shutdown().await;
}

#[tokio::test]
async fn lanes_get_the_messages_their_function_picks_and_every_close() {
    // Lane by the message's Call-ID: "one…" to lane 1, anything else to lane 0.
    let lane_of: sipd_transport::LaneOf = Box::new(|inbound| {
        let message = inbound.parsed.as_ref().expect("parsed by the transports");
        usize::from(message.call_id().unwrap().starts_with("one"))
    });
    let (transports, mut lanes) =
        sipd_transport::Transports::start_with_lanes(config(), 2, lane_of)
            .await
            .unwrap();
    let mut client = connect(&transports).await;
    client.write_all(&request("zero")).await.unwrap();
    client.write_all(&request("one")).await.unwrap();
    client.write_all(&request("zero-again")).await.unwrap();

    let first = next_message(&mut lanes[0]).await;
    assert_eq!(first.message, request("zero"));
    assert_eq!(next_message(&mut lanes[1]).await.message, request("one"));
    assert_eq!(
        next_message(&mut lanes[0]).await.message,
        request("zero-again")
    );

    drop(client);
    for lane in &mut lanes {
        assert_eq!(
            next_close(lane).await,
            first.flow,
            "every lane hears of the close"
        );
    }
    transports.shutdown().await;
}
