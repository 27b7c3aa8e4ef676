//! What the server answers to requests other than REGISTER, until the proxy arrives.

use sip_message::{Message, Method, Uri};
use std::net::IpAddr;

/// Methods the server handles itself.
pub const ALLOW: &str = "REGISTER, OPTIONS";

/// Methods of RFC 3261 and its common extensions: known, so not served yet is 405, not 501.
const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

/// How the TU answers a request that is not a REGISTER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// OPTIONS to the server itself: 200 with its capabilities.
    Capabilities,
    /// 405 with `Allow`.
    NotAllowed,
    /// 501: a method the server does not know.
    NotImplemented,
}

/// The server's own identities, for "is this OPTIONS for me?".
pub struct Identity<'a> {
    pub domain: &'a str,
    /// Every listener address bound to a specific IP.
    pub addresses: &'a [IpAddr],
    /// The address the request arrived on (listeners on 0.0.0.0 know it only here).
    pub arrived_on: IpAddr,
}

pub fn answer(request: &Message, identity: &Identity<'_>) -> Answer {
    let Some(method) = request.method() else {
        return Answer::NotImplemented;
    };
    let name = method.as_str();
    if name == "OPTIONS" && addressed_to_server(request, identity) {
        Answer::Capabilities
    } else if KNOWN_METHODS.contains(&name) {
        Answer::NotAllowed
    } else {
        Answer::NotImplemented
    }
}

/// A Request-URI without user part, or whose host is our domain or one of our addresses.
fn addressed_to_server(request: &Message, identity: &Identity<'_>) -> bool {
    let Ok(Uri::Sip(uri)) = request.request_uri() else {
        return false;
    };
    let host = uri.host();
    uri.user().is_none()
        || host.as_str().eq_ignore_ascii_case(identity.domain)
        || host
            .ip()
            .is_some_and(|ip| ip == identity.arrived_on || identity.addresses.contains(&ip))
}

/// The response bytes for `answer`, tagged with `to_tag`.
pub fn build(request: &Message, answer: Answer, to_tag: &str) -> bytes::Bytes {
    let builder = match answer {
        Answer::Capabilities => request
            .response(200)
            .header("Allow", ALLOW)
            .header("Accept", "application/sdp")
            .header("Supported", "path, outbound"),
        Answer::NotAllowed => request.response(405).header("Allow", ALLOW),
        Answer::NotImplemented => request.response(501).header("Allow", ALLOW),
    };
    builder.to_tag(to_tag).build_bytes()
}

/// Whether `method` is REGISTER.
pub fn is_register(method: Option<Method<'_>>) -> bool {
    method.is_some_and(|method| method.as_str() == "REGISTER")
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn request(start: &str) -> Message {
        let method = start.split(' ').next().unwrap();
        Message::parse(Bytes::from(format!(
            "{start} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\n\
             To: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    #[test]
    fn methods_get_the_documented_answers() {
        let addresses = ["192.0.2.10".parse().unwrap()];
        let identity = Identity {
            domain: "example.com",
            addresses: &addresses,
            arrived_on: "10.0.0.1".parse().unwrap(),
        };
        for (start, expected) in [
            ("OPTIONS sip:example.com", Answer::Capabilities),
            ("OPTIONS sip:EXAMPLE.com:5060", Answer::Capabilities),
            ("OPTIONS sip:ping@example.com", Answer::Capabilities),
            ("OPTIONS sip:192.0.2.10", Answer::Capabilities),
            ("OPTIONS sip:bob@192.0.2.10", Answer::Capabilities),
            ("OPTIONS sip:bob@10.0.0.1:5060", Answer::Capabilities),
            ("OPTIONS sip:bob@elsewhere.org", Answer::NotAllowed),
            ("INVITE sip:bob@example.com", Answer::NotAllowed),
            ("MESSAGE sip:bob@example.com", Answer::NotAllowed),
            ("SUBSCRIBE sip:bob@example.com", Answer::NotAllowed),
            ("FOO sip:bob@example.com", Answer::NotImplemented),
        ] {
            assert_eq!(answer(&request(start), &identity), expected, "{start}");
        }
        let text = build(
            &request("INVITE sip:bob@example.com"),
            Answer::NotAllowed,
            "t1",
        );
        let response = Message::parse(text).unwrap();
        assert_eq!(response.status(), Some(405));
        assert_eq!(
            response.header(sip_message::HeaderName::Allow),
            Some(&b"REGISTER, OPTIONS"[..])
        );
        assert_eq!(response.to_tag(), Some("t1"));
    }
}
