//! Record-Route values and the flow tokens in them.
//!
//! Every dialog-creating request is record-routed with a URI naming the listener that faces
//! each side, carrying a token (`sdflow=`) with the two flows of the dialog: the caller's
//! (the flow the request came in on) and the callee's (the flow it left on). Later requests
//! of the dialog come back through us with that URI in their Route set; the token tells
//! where to send them without any dialog state and whatever NAT sits in front of either
//! device: a request from the caller goes to the callee's flow and the other way round
//! (RFC 5626 §5.3 does the same for edge proxies).
//!
//! The token is MACed over the flows, the Call-ID and the caller's tag, so it cannot be
//! forged to reach another flow, nor replayed in another dialog: a Route without a valid
//! token of ours is not a way through this proxy (no open relay). Which side sent a request
//! is which tag the MAC verifies with: the caller's is the From tag of its requests and the
//! To tag of the callee's.
//!
//! When the two legs use different transports (a UDP phone and a WSS browser), two values
//! are written (RFC 5658): the top one names the outgoing-side listener, the second the
//! incoming side, and both are removed from later requests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip_message::{FlowId, Message, Transport, Uri};

/// The URI parameter holding the token.
pub(crate) const PARAM: &str = "sdflow";

const MAC_LEN: usize = 10;

/// Seals and opens flow tokens with the deployment's key.
#[derive(Clone)]
pub(crate) struct FlowTokens {
    mac: Hmac<Sha256>,
}

/// The two sides of a record-routed dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DialogFlows {
    pub(crate) caller: FlowId,
    pub(crate) callee: FlowId,
}

/// Which side sent an in-dialog request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sender {
    Caller,
    Callee,
}

impl FlowTokens {
    pub(crate) fn new(secret: &[u8]) -> FlowTokens {
        // HMAC takes keys of any length.
        let mac = Hmac::<Sha256>::new_from_slice(secret)
            .unwrap_or_else(|_| Hmac::<Sha256>::new_from_slice(&[0]).expect("a one-byte key"));
        FlowTokens { mac }
    }

    pub(crate) fn seal(&self, flows: DialogFlows, call_id: &str, caller_tag: &str) -> String {
        let mut raw = Vec::with_capacity(2 * 19 + MAC_LEN);
        encode_flow(flows.caller, &mut raw);
        encode_flow(flows.callee, &mut raw);
        let tag = self.tag(&raw, call_id, caller_tag);
        raw.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The flows of a token of ours, and who sent the request carrying it (the side whose
    /// tag checks out); `None` if the token is not ours or not for this dialog.
    pub(crate) fn open(&self, token: &str, request: &Message) -> Option<(DialogFlows, Sender)> {
        if token.len() > 96 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (flows_raw, mac) = raw.split_at_checked(raw.len().checked_sub(MAC_LEN)?)?;
        let mut rest = flows_raw;
        let caller = decode_flow(&mut rest)?;
        let callee = decode_flow(&mut rest)?;
        if !rest.is_empty() {
            return None;
        }
        let call_id = request.call_id().ok()?;
        let verifies = |tag: Option<&str>| {
            tag.is_some_and(|tag| {
                let mut check = self.mac.clone();
                feed(&mut check, flows_raw, call_id, tag);
                check.verify_truncated_left(mac).is_ok()
            })
        };
        let sender = if verifies(request.from_tag()) {
            Sender::Caller
        } else if verifies(request.to_tag()) {
            Sender::Callee
        } else {
            return None;
        };
        Some((DialogFlows { caller, callee }, sender))
    }

    fn tag(&self, flows_raw: &[u8], call_id: &str, caller_tag: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        feed(&mut mac, flows_raw, call_id, caller_tag);
        mac.finalize().into_bytes().into()
    }
}

fn feed(mac: &mut Hmac<Sha256>, flows_raw: &[u8], call_id: &str, caller_tag: &str) {
    mac.update(b"sipd record-route\0");
    mac.update(flows_raw);
    mac.update(call_id.as_bytes());
    mac.update(b"\0");
    mac.update(caller_tag.as_bytes());
}

fn encode_flow(flow: FlowId, out: &mut Vec<u8>) {
    match flow {
        FlowId::Udp(std::net::SocketAddr::V4(addr)) => {
            out.push(0x10);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        FlowId::Udp(std::net::SocketAddr::V6(addr)) => {
            out.push(0x11);
            out.extend_from_slice(&addr.ip().octets());
            out.extend_from_slice(&addr.port().to_be_bytes());
        }
        FlowId::Connection { transport, id } => {
            out.push(0x20 | transport as u8);
            out.extend_from_slice(&id.to_be_bytes());
        }
    }
}

fn decode_flow(raw: &mut &[u8]) -> Option<FlowId> {
    let (&kind, rest) = raw.split_first()?;
    let (flow, rest) = match kind {
        0x10 => {
            let (bytes, rest) = rest.split_at_checked(6)?;
            let ip: [u8; 4] = bytes[..4].try_into().ok()?;
            let port = u16::from_be_bytes([bytes[4], bytes[5]]);
            (FlowId::udp((ip, port).into()), rest)
        }
        0x11 => {
            let (bytes, rest) = rest.split_at_checked(18)?;
            let ip: [u8; 16] = bytes[..16].try_into().ok()?;
            let port = u16::from_be_bytes([bytes[16], bytes[17]]);
            (FlowId::udp((ip, port).into()), rest)
        }
        kind if kind & 0xf0 == 0x20 => {
            let transport = *Transport::ALL.get(usize::from(kind & 0x0f))?;
            if !transport.is_reliable() {
                return None;
            }
            let (bytes, rest) = rest.split_at_checked(8)?;
            let id = u64::from_be_bytes(bytes.try_into().ok()?);
            (FlowId::connection(transport, id), rest)
        }
        _ => return None,
    };
    *raw = rest;
    Some(flow)
}

/// A Record-Route value naming the listener `host:port` of `transport`, with the token.
pub(crate) fn value(host: &str, port: u16, transport: Transport, token: &str) -> String {
    let transport_param = match transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
        Transport::Tls => ";transport=tls",
        // RFC 7118 §5: the WebSocket transport parameter is `ws` for WS and WSS alike.
        Transport::Ws | Transport::Wss => ";transport=ws",
    };
    format!("<sip:{host}:{port}{transport_param};lr;{PARAM}={token}>")
}

/// The token of a Route value, if it carries one.
pub(crate) fn token_of(uri: &Uri<'_>) -> Option<String> {
    uri.as_sip()?.params().value(PARAM).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from_tag: &str, to_tag: &str) -> Message {
        Message::parse_slice(
            format!(
                "BYE sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
                 From: <sip:a@example.com>;tag={from_tag}\r\nTo: <sip:b@example.com>;tag={to_tag}\r\n\
                 Call-ID: call-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn tokens_name_the_flows_and_the_sender() {
        let tokens = FlowTokens::new(b"0123456789abcdef0123456789abcdef");
        let flows = DialogFlows {
            caller: FlowId::udp("203.0.113.9:40000".parse().unwrap()),
            callee: FlowId::connection(Transport::Wss, 1 << 40),
        };
        let token = tokens.seal(flows, "call-1", "caller-tag");
        assert_eq!(
            tokens.open(&token, &request("caller-tag", "callee-tag")),
            Some((flows, Sender::Caller))
        );
        assert_eq!(
            tokens.open(&token, &request("callee-tag", "caller-tag")),
            Some((flows, Sender::Callee))
        );
        // Another dialog's tags, another key, a flipped character: not ours.
        assert_eq!(tokens.open(&token, &request("x", "y")), None);
        assert_eq!(
            FlowTokens::new(b"another key").open(&token, &request("caller-tag", "t")),
            None
        );
        let mut forged = token.clone().into_bytes();
        forged[2] = if forged[2] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            tokens.open(
                std::str::from_utf8(&forged).unwrap(),
                &request("caller-tag", "t")
            ),
            None
        );
        assert_eq!(tokens.open("", &request("caller-tag", "t")), None);
        assert_eq!(tokens.open("!!!", &request("caller-tag", "t")), None);
    }

    #[test]
    fn ipv6_flows_and_values() {
        let tokens = FlowTokens::new(b"k");
        let flows = DialogFlows {
            caller: FlowId::udp("[2001:db8::1]:5060".parse().unwrap()),
            callee: FlowId::connection(Transport::Tls, 9),
        };
        let token = tokens.seal(flows, "call-1", "t1");
        assert_eq!(
            tokens.open(&token, &request("t1", "t2")).map(|(f, _)| f),
            Some(flows)
        );
        let rr = value("[2001:db8::5]", 5061, Transport::Tls, &token);
        let uri = rr.trim_matches(['<', '>']);
        let parsed = Uri::parse(uri).unwrap();
        assert_eq!(token_of(&parsed).as_deref(), Some(token.as_str()));
        assert!(parsed.as_sip().unwrap().lr());
        assert_eq!(parsed.as_sip().unwrap().transport(), Some("tls"));
    }
}
