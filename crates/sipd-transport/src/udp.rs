//! The UDP listener: each datagram is one message; nothing is kept per remote address.
//! Keep-alives are CRLFs (ignored) or, per RFC 5626 §4.4.2, STUN binding requests, answered
//! with the address they came from (RFC 5389).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tracing::{debug, warn};

use crate::counters::bump;
use crate::transports::{Inbound, Shared, Undelivered};
use sip_message::{FlowId, Transport};

/// Largest UDP payload (65,535 minus the IPv4 and UDP headers is 65,507; IPv6 allows a few
/// bytes more), so a buffer of this size never truncates a datagram.
const MAX_DATAGRAM: usize = 65_535;

/// Receives until shutdown. Datagrams never wait for the core: when its queue is full they
/// are dropped and counted, as a UDP sender retransmits anyway.
pub(crate) async fn receive(shared: Arc<Shared>, socket: Arc<UdpSocket>, local: SocketAddr) {
    let counters = shared.counters.of(Transport::Udp);
    // One byte more than allowed, to tell an oversize datagram from one of exactly the limit.
    let mut buffer = vec![
        0;
        shared
            .limits
            .max_message_size
            .saturating_add(1)
            .min(MAX_DATAGRAM)
    ];
    loop {
        let received = tokio::select! {
            biased;
            () = shared.closing.cancelled() => return,
            received = socket.recv_from(&mut buffer) => received,
        };
        let (len, remote) = match received {
            Ok(received) => received,
            // E.g. an ICMP error reported for an earlier send: not fatal to the listener.
            Err(error) => {
                debug!(%error, "UDP receive error");
                continue;
            }
        };
        let datagram = &buffer[..len];
        if len > shared.limits.max_message_size {
            bump(&counters.dropped_oversize);
            continue;
        }
        // Empty datagrams and CRLF keep-alives carry nothing for the core.
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            if len > 0 {
                bump(&counters.keepalives_in);
            }
            continue;
        }
        if is_stun(datagram) {
            if let Some(answer) = stun_binding_response(datagram, remote) {
                bump(&counters.keepalives_in);
                // Never blocks the receive loop; a lost answer is retried by the client.
                let _ = socket.try_send_to(&answer, remote);
            }
            continue;
        }
        let inbound = Inbound::new(
            FlowId::udp(remote),
            local,
            remote,
            Bytes::copy_from_slice(datagram),
        );
        match shared.try_deliver(inbound) {
            Ok(()) => bump(&counters.messages_in),
            Err(Undelivered::Full) => bump(&counters.dropped_overload),
            Err(Undelivered::Closed) => {
                warn!("the core stopped receiving: UDP listener stops");
                return;
            }
        }
    }
}

const STUN_MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const STUN_HEADER: usize = 20;
const STUN_BINDING_REQUEST: [u8; 2] = [0x00, 0x01];
const STUN_BINDING_SUCCESS: [u8; 2] = [0x01, 0x01];
const STUN_XOR_MAPPED_ADDRESS: [u8; 2] = [0x00, 0x20];

/// A STUN message (RFC 5389 §6): two zero bits, the magic cookie, and a length that matches.
/// A SIP message starts with a letter, so it is never mistaken for one.
fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= STUN_HEADER
        && datagram[0] & 0xc0 == 0
        && datagram[4..8] == STUN_MAGIC_COOKIE
        && usize::from(u16::from_be_bytes([datagram[2], datagram[3]]))
            == datagram.len() - STUN_HEADER
}

/// The success response to a binding request: its transaction id and an
/// XOR-MAPPED-ADDRESS of `source`. `None` for any other STUN message.
fn stun_binding_response(request: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    if request.get(..2)? != STUN_BINDING_REQUEST {
        return None;
    }
    let transaction_id = request.get(8..STUN_HEADER)?;
    let port = source.port() ^ u16::from_be_bytes([STUN_MAGIC_COOKIE[0], STUN_MAGIC_COOKIE[1]]);
    // The address is XORed with the cookie, followed for IPv6 by the transaction id.
    let mask = STUN_MAGIC_COOKIE.iter().chain(transaction_id);
    let (family, address): (u8, Vec<u8>) = match source.ip() {
        IpAddr::V4(ip) => (
            1,
            ip.octets().iter().zip(mask).map(|(a, m)| a ^ m).collect(),
        ),
        IpAddr::V6(ip) => (
            2,
            ip.octets().iter().zip(mask).map(|(a, m)| a ^ m).collect(),
        ),
    };
    let attribute_len = 4 + address.len();
    let mut response = Vec::with_capacity(STUN_HEADER + 4 + attribute_len);
    response.extend_from_slice(&STUN_BINDING_SUCCESS);
    response.extend_from_slice(&u16::try_from(4 + attribute_len).ok()?.to_be_bytes());
    response.extend_from_slice(&STUN_MAGIC_COOKIE);
    response.extend_from_slice(transaction_id);
    response.extend_from_slice(&STUN_XOR_MAPPED_ADDRESS);
    response.extend_from_slice(&u16::try_from(attribute_len).ok()?.to_be_bytes());
    response.extend_from_slice(&[0, family]);
    response.extend_from_slice(&port.to_be_bytes());
    response.extend_from_slice(&address);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding_request() -> Vec<u8> {
        let mut request = vec![0x00, 0x01, 0x00, 0x00];
        request.extend_from_slice(&STUN_MAGIC_COOKIE);
        request.extend_from_slice(b"transaction1");
        request
    }

    #[test]
    fn binding_request_gets_the_xor_mapped_ipv4_address() {
        let request = binding_request();
        assert!(is_stun(&request));
        let source: SocketAddr = "192.0.2.1:32853".parse().unwrap();
        let response = stun_binding_response(&request, source).unwrap();
        assert!(is_stun(&response));
        assert_eq!(response[..4], [0x01, 0x01, 0x00, 0x0c]);
        assert_eq!(response[8..20], *b"transaction1");
        assert_eq!(response[20..24], [0x00, 0x20, 0x00, 0x08]);
        // RFC 5769 §2.2 maps 192.0.2.1:32853 to these bytes.
        assert_eq!(
            response[24..],
            [0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43]
        );
    }

    #[test]
    fn binding_request_gets_the_xor_mapped_ipv6_address() {
        let mut request = binding_request();
        request[8..20].copy_from_slice(&[
            0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
        ]);
        let source: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
            .parse()
            .unwrap();
        let response = stun_binding_response(&request, source).unwrap();
        // RFC 5769 §2.3.
        assert_eq!(
            response[24..],
            [
                0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
                0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9
            ]
        );
    }

    #[test]
    fn only_binding_requests_are_stun_keepalives() {
        let source: SocketAddr = "192.0.2.1:5060".parse().unwrap();
        assert!(!is_stun(
            b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n"
        ));
        let mut wrong_length = binding_request();
        wrong_length.push(0);
        assert!(!is_stun(&wrong_length));
        let mut indication = binding_request();
        indication[1] = 0x11;
        assert!(is_stun(&indication));
        assert_eq!(stun_binding_response(&indication, source), None);
    }
}
