//! Transports and flow identities: the one vocabulary every sipd crate uses for "how and
//! where a message travels" (RFC 3261 §18, RFC 5626 flows, RFC 7118 WebSocket).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    /// Every transport, in declaration order.
    pub const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// Lower-case name, as used in flow ids, stored bindings, URI `transport=` values and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }

    /// The transport token of a Via header (RFC 3261 §20.42, RFC 7118 §5).
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The transport named by a Via token or a URI `transport=` value (case-insensitive).
    pub fn from_token(token: &str) -> Option<Transport> {
        Transport::ALL
            .into_iter()
            .find(|transport| transport.as_str().eq_ignore_ascii_case(token))
    }

    /// Connection-oriented: no retransmissions (RFC 3261 §17), and responses go back over the
    /// same connection.
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    /// Carried over TLS (TLS, WSS): what a `sips:` URI requires.
    pub fn is_secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// A WebSocket (RFC 7118): only the client can open one, so a device on it is reachable
    /// only while its connection lives.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Transport {
    type Err = ParseFlowIdError;

    /// The lower-case name ([`Transport::as_str`]).
    fn from_str(text: &str) -> Result<Transport, ParseFlowIdError> {
        Transport::ALL
            .into_iter()
            .find(|transport| transport.as_str() == text)
            .ok_or_else(|| ParseFlowIdError(text.to_owned()))
    }
}

/// Identifies a flow: one connection, or one remote address on the UDP listener.
///
/// A UDP flow *is* the remote address, so it needs no state and stays valid across restarts.
/// A connection flow is a number the transports never reuse within a process (they start
/// numbering from the start time, so that a flow id stored by an earlier run does not name a
/// new, unrelated connection). The string form (`Display` / `FromStr`) is how flows are stored:
/// `"udp-192.0.2.1:5060"`, `"udp-[2001:db8::1]:5060"`, `"tcp-17"`, `"tls-18"`, `"ws-19"`,
/// `"wss-20"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowId {
    /// A remote address on the UDP listener.
    Udp(SocketAddr),
    /// A TCP, TLS, WS or WSS connection.
    Connection { transport: Transport, id: u64 },
}

impl FlowId {
    /// The flow of a remote address on the UDP listener.
    pub fn udp(remote: SocketAddr) -> FlowId {
        FlowId::Udp(remote)
    }

    /// A connection flow; `transport` must be a connection transport.
    pub fn connection(transport: Transport, id: u64) -> FlowId {
        FlowId::Connection { transport, id }
    }

    pub fn transport(&self) -> Transport {
        match *self {
            FlowId::Udp(_) => Transport::Udp,
            FlowId::Connection { transport, .. } => transport,
        }
    }

    /// Whether messages on this flow are neither retransmitted nor timed by Timer E/A
    /// (a connection).
    pub fn is_reliable(&self) -> bool {
        self.transport().is_reliable()
    }

    /// The remote address of a UDP flow.
    pub fn udp_remote(&self) -> Option<SocketAddr> {
        match *self {
            FlowId::Udp(remote) => Some(remote),
            FlowId::Connection { .. } => None,
        }
    }

    /// The connection number of a connection flow.
    pub fn connection_id(&self) -> Option<u64> {
        match *self {
            FlowId::Udp(_) => None,
            FlowId::Connection { id, .. } => Some(id),
        }
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowId::Udp(remote) => write!(f, "udp-{remote}"),
            FlowId::Connection { transport, id } => write!(f, "{transport}-{id}"),
        }
    }
}

/// A string that is not a flow id (or transport name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFlowIdError(String);

impl fmt::Display for ParseFlowIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a flow id: {:?}", self.0)
    }
}

impl std::error::Error for ParseFlowIdError {}

impl FromStr for FlowId {
    type Err = ParseFlowIdError;

    fn from_str(text: &str) -> Result<FlowId, ParseFlowIdError> {
        let error = || ParseFlowIdError(text.to_owned());
        let (name, rest) = text.split_once('-').ok_or_else(error)?;
        let transport: Transport = name.parse().map_err(|_| error())?;
        if transport == Transport::Udp {
            return rest.parse().map(FlowId::udp).map_err(|_| error());
        }
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return Err(error());
        }
        let id = rest.parse().map_err(|_| error())?;
        Ok(FlowId::connection(transport, id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_form_round_trips() {
        for text in [
            "udp-192.0.2.1:5060",
            "udp-[2001:db8::1]:5062",
            "tcp-17",
            "tls-18",
            "ws-19",
            "wss-18446744073709551615",
        ] {
            let flow: FlowId = text.parse().unwrap();
            assert_eq!(flow.to_string(), text);
        }
        assert_eq!(
            "udp-192.0.2.1:5060".parse::<FlowId>().unwrap().udp_remote(),
            Some("192.0.2.1:5060".parse().unwrap())
        );
        let wss: FlowId = "wss-3".parse().unwrap();
        assert_eq!(wss.transport(), Transport::Wss);
        assert_eq!(wss.connection_id(), Some(3));
        assert!(wss.is_reliable());
    }

    #[test]
    fn malformed_strings_are_rejected() {
        for text in [
            "",
            "tcp",
            "tcp-",
            "tcp-+1",
            "tcp-x",
            "sctp-1",
            "udp-17",
            "TCP-1",
            "tcp-1-2",
            "udp-1.2.3.4",
        ] {
            assert!(text.parse::<FlowId>().is_err(), "{text:?}");
        }
    }

    #[test]
    fn transport_tokens() {
        assert_eq!(Transport::from_token("wss"), Some(Transport::Wss));
        assert_eq!(Transport::from_token("TcP"), Some(Transport::Tcp));
        assert_eq!(Transport::from_token("sctp"), None);
        assert_eq!("tls".parse::<Transport>(), Ok(Transport::Tls));
        assert!("TLS".parse::<Transport>().is_err());
        assert!(Transport::Tls.is_secure() && !Transport::Ws.is_secure());
        assert!(Transport::Ws.is_websocket() && !Transport::Tcp.is_websocket());
    }
}
