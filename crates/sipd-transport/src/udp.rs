//! The UDP listener: each datagram is one message; nothing is kept per remote address.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tracing::{debug, warn};

use crate::counters::bump;
use crate::flow::{FlowId, Transport};
use crate::transports::{Inbound, Shared, TransportEvent};

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
        let event = TransportEvent::Message(Inbound {
            flow: FlowId::udp(remote),
            transport: Transport::Udp,
            local,
            remote,
            message: Bytes::copy_from_slice(datagram),
        });
        match shared.events.try_send(event) {
            Ok(()) => bump(&counters.messages_in),
            Err(TrySendError::Full(_)) => bump(&counters.dropped_overload),
            Err(TrySendError::Closed(_)) => {
                warn!("the core stopped receiving: UDP listener stops");
                return;
            }
        }
    }
}
