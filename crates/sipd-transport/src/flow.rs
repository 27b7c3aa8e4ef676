//! Transports and flow identities.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// A SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Ws,
    Wss,
}

impl Transport {
    pub(crate) const ALL: [Transport; 5] = [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ];

    /// Lower-case name, as used in flow ids and logs.
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

    /// True for connection-oriented transports: responses go back over the same connection.
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identifies a flow: one connection, or one remote address on the UDP listener.
///
/// A UDP flow *is* the remote address, so it needs no state and stays valid across restarts.
/// A connection flow is a number never reused by the process; numbering starts from the
/// start time so that a flow id stored by an earlier run of the server does not name a new,
/// unrelated connection. The string form (`Display` / `FromStr`) is for the database:
/// `"udp-192.0.2.1:5060"`, `"udp-[2001:db8::1]:5060"`, `"tcp-17"`, `"tls-18"`, `"ws-19"`,
/// `"wss-20"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowId(FlowKey);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FlowKey {
    Udp(SocketAddr),
    Connection { transport: Transport, id: u64 },
}

impl FlowId {
    /// The flow of a remote address on the UDP listener.
    pub fn udp(remote: SocketAddr) -> FlowId {
        FlowId(FlowKey::Udp(remote))
    }

    pub(crate) fn connection(transport: Transport, id: u64) -> FlowId {
        FlowId(FlowKey::Connection { transport, id })
    }

    pub fn transport(&self) -> Transport {
        match self.0 {
            FlowKey::Udp(_) => Transport::Udp,
            FlowKey::Connection { transport, .. } => transport,
        }
    }

    /// The remote address of a UDP flow.
    pub fn udp_remote(&self) -> Option<SocketAddr> {
        match self.0 {
            FlowKey::Udp(remote) => Some(remote),
            FlowKey::Connection { .. } => None,
        }
    }

    pub(crate) fn key(&self) -> FlowKey {
        self.0
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            FlowKey::Udp(remote) => write!(f, "udp-{remote}"),
            FlowKey::Connection { transport, id } => write!(f, "{transport}-{id}"),
        }
    }
}

/// A string that is not a flow id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a flow id: {0:?}")]
pub struct ParseFlowIdError(String);

impl FromStr for FlowId {
    type Err = ParseFlowIdError;

    fn from_str(text: &str) -> Result<FlowId, ParseFlowIdError> {
        let error = || ParseFlowIdError(text.to_owned());
        let (name, rest) = text.split_once('-').ok_or_else(error)?;
        let transport = Transport::ALL
            .into_iter()
            .find(|transport| transport.as_str() == name)
            .ok_or_else(error)?;
        if transport == Transport::Udp {
            return rest.parse().map(FlowId::udp).map_err(|_| error());
        }
        if !rest.bytes().all(|b| b.is_ascii_digit()) {
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
        assert_eq!(
            "wss-3".parse::<FlowId>().unwrap().transport(),
            Transport::Wss
        );
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
}
