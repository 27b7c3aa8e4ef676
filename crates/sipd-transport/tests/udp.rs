//! UDP: one datagram is one message; keep-alives, empty and oversize datagrams are dropped
//! and counted; a full core queue drops rather than blocks; replies go to the source address.

mod common;

use common::*;
use sipd_transport::{FlowId, Limits, SendError, Transport, TransportConfig};
use tokio::net::UdpSocket;

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = vec![0; 70_000];
    let (len, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buffer))
        .await
        .expect("datagram in time")
        .unwrap();
    buffer.truncate(len);
    buffer
}

#[tokio::test]
async fn datagram_in_reply_out_to_the_source_address() {
    let (transports, mut events) = start(config()).await;
    let server = transports.local_addrs().udp.unwrap();
    let client = client().await;
    client.send_to(&request("u1"), server).await.unwrap();

    let inbound = next_message(&mut events).await;
    assert_eq!(inbound.message, request("u1"));
    let parsed = inbound.parsed.as_ref().expect("parsed on arrival");
    assert_eq!(parsed.call_id(), Ok("u1@192.0.2.1"));
    assert_eq!(inbound.flow.transport(), Transport::Udp);
    assert_eq!(inbound.remote, client.local_addr().unwrap());
    assert_eq!(inbound.local, server);
    assert_eq!(inbound.flow, FlowId::udp(client.local_addr().unwrap()));
    assert_eq!(
        inbound.flow.to_string().parse::<FlowId>().unwrap(),
        inbound.flow
    );

    transports.send(inbound.flow, response("u1")).await.unwrap();
    assert_eq!(receive(&client).await, response("u1"));
    // Any address can be reached from the listening socket.
    let other = self::client().await;
    transports
        .send_udp(other.local_addr().unwrap(), request("u2"))
        .await
        .unwrap();
    assert_eq!(receive(&other).await, request("u2"));
    // UDP flows hold no connection: pinning them is accepted and does nothing.
    transports.set_flow_registered(inbound.flow, true).unwrap();

    let counters = transports.counters();
    assert_eq!(counters.udp.messages_in, 1);
    assert_eq!(counters.udp.messages_out, 2);
    transports.shutdown().await;
}

#[tokio::test]
async fn keepalives_empty_and_oversize_datagrams_are_dropped_and_counted() {
    let (transports, mut events) = start(TransportConfig {
        limits: Limits {
            max_message_size: 1000,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let server = transports.local_addrs().udp.unwrap();
    let client = client().await;
    for datagram in [&b"\r\n\r\n"[..], b"\r\n", b"", &[b'x'; 1001]] {
        client.send_to(datagram, server).await.unwrap();
    }
    let exactly_the_limit = vec![b'y'; 1000];
    client.send_to(&exactly_the_limit, server).await.unwrap();
    client.send_to(&request("after"), server).await.unwrap();

    // Garbage is the core's to judge: the transport only frames.
    assert_eq!(next_message(&mut events).await.message, exactly_the_limit);
    assert_eq!(next_message(&mut events).await.message, request("after"));
    transports.record_unparsable(Transport::Udp);
    let counters = transports.counters();
    assert_eq!(counters.udp.keepalives_in, 2);
    assert_eq!(counters.udp.dropped_oversize, 1);
    assert_eq!(counters.udp.messages_in, 2);
    assert_eq!(counters.udp.unparsable, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn a_full_core_queue_drops_datagrams_instead_of_blocking() {
    let (transports, mut events) = start(TransportConfig {
        event_queue_capacity: 2,
        ..config()
    })
    .await;
    let server = transports.local_addrs().udp.unwrap();
    let client = client().await;
    for n in 0..10 {
        client
            .send_to(&request(&format!("q{n}")), server)
            .await
            .unwrap();
    }
    eventually(|| {
        let udp = transports.counters().udp;
        udp.messages_in + udp.dropped_overload == 10
    })
    .await;
    let udp = transports.counters().udp;
    assert_eq!((udp.messages_in, udp.dropped_overload), (2, 8));
    assert_eq!(next_message(&mut events).await.message, request("q0"));
    assert_eq!(next_message(&mut events).await.message, request("q1"));
    // With room again, datagrams flow.
    client.send_to(&request("later"), server).await.unwrap();
    assert_eq!(next_message(&mut events).await.message, request("later"));
    transports.shutdown().await;
}

#[tokio::test]
async fn udp_off_and_after_shutdown() {
    let (transports, _events) = start(TransportConfig {
        udp: None,
        ..config()
    })
    .await;
    assert_eq!(transports.local_addrs().udp, None);
    let somewhere = "127.0.0.1:9".parse().unwrap();
    assert!(matches!(
        transports.send_udp(somewhere, request("x")).await,
        Err(SendError::UdpOff)
    ));
    transports.shutdown().await;

    let (transports, _events) = start(config()).await;
    transports.shutdown().await;
    assert!(matches!(
        transports.send(FlowId::udp(somewhere), request("x")).await,
        Err(SendError::ShutDown)
    ));
}

#[tokio::test]
async fn stun_binding_request_keepalive_is_answered_with_the_source_address() {
    let (transports, mut events) = start(config()).await;
    let server = transports.local_addrs().udp.unwrap();
    let client = client().await;
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    binding.extend_from_slice(b"keepalive-01");
    client.send_to(&binding, server).await.unwrap();

    let response = receive(&client).await;
    assert_eq!(response[..2], [0x01, 0x01]);
    assert_eq!(response[8..20], *b"keepalive-01");
    // XOR-MAPPED-ADDRESS, IPv4: port and address XORed with the magic cookie.
    assert_eq!(response[20..22], [0x00, 0x20]);
    let port = u16::from_be_bytes([response[26], response[27]]) ^ 0x2112;
    let ip: Vec<u8> = response[28..32]
        .iter()
        .zip([0x21, 0x12, 0xa4, 0x42])
        .map(|(a, m)| a ^ m)
        .collect();
    let mapped = std::net::SocketAddr::from(([ip[0], ip[1], ip[2], ip[3]], port));
    assert_eq!(mapped, client.local_addr().unwrap());

    // Not handed to the core: the next event is the next real message.
    client
        .send_to(&request("after-stun"), server)
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut events).await.message,
        request("after-stun")
    );
    assert_eq!(transports.counters().udp.keepalives_in, 1);
    transports.shutdown().await;
}

#[tokio::test]
async fn datagrams_go_to_the_lane_picked_for_them_unparsable_ones_too() {
    let lane_of: sipd_transport::LaneOf =
        Box::new(|inbound| if inbound.parsed.is_ok() { 1 } else { 2 });
    let (transports, mut lanes) =
        sipd_transport::Transports::start_with_lanes(config(), 3, lane_of)
            .await
            .unwrap();
    let server = transports.local_addrs().udp.unwrap();
    let client = client().await;
    client
        .send_to(b"NOT SIP AT ALL\r\n\r\n", server)
        .await
        .unwrap();
    client.send_to(&request("u2"), server).await.unwrap();

    let bad = next_message(&mut lanes[2]).await;
    assert!(bad.parsed.is_err());
    assert_eq!(bad.message, &b"NOT SIP AT ALL\r\n\r\n"[..]);
    assert_eq!(next_message(&mut lanes[1]).await.message, request("u2"));
    assert!(lanes[0].try_recv().is_err(), "nothing picked lane 0");
    transports.shutdown().await;
}
