//! Exercise for the `parse_message` fuzz target: parses the input as a SIP
//! message and reads every typed view, the auth headers and the builders.

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;
use sip_message::auth::{Challenge, Credentials};
use sip_message::{Contact, HeaderName, Message, NameAddr, Uri, Via};

pub fn parse_message(data: &[u8]) {
    if let Ok(message) = Message::parse(Bytes::copy_from_slice(data)) {
        read_everything(&message);
    }
}

/// Calls every accessor of `message`; only panics matter, results are dropped.
pub fn read_everything(message: &Message) {
    touch((
        message.as_bytes(),
        message.is_request(),
        message.is_response(),
        message.method().map(|method| method.as_str()),
        message.request_uri_raw(),
        message.version(),
        message.is_sip_2_0(),
        message.status(),
        message.reason(),
        message.body(),
        message.body_bytes(),
        message.content_length(),
        message.header_count(),
    ));
    if let Ok(uri) = message.request_uri() {
        read_uri(&uri);
    }
    for header in message.headers() {
        touch((
            header.name.as_str(),
            header.name.compact(),
            header.raw_name,
            header.value_str(),
            header.offset,
            message.header(header.name),
        ));
        if let Ok(name) = std::str::from_utf8(header.raw_name) {
            touch(message.headers_by_name(name).count());
        }
    }
    for via in message.vias().flatten() {
        read_via(&via);
    }
    touch((message.top_via().map(|via| via.branch()), message.branch()));
    touch((message.call_id(), message.from_tag(), message.to_tag()));
    touch(message.cseq().map(|cseq| (cseq.seq, cseq.method.as_str())));
    for addr in [message.from(), message.to()].iter().flatten() {
        read_name_addr(addr);
    }
    touch((
        message.max_forwards(),
        message.expires(),
        message.min_expires(),
        message.user_agent(),
    ));
    for contact in message.contacts().flatten() {
        if let Contact::Address(address) = contact {
            touch((
                address.expires(),
                address.q(),
                address.sip_instance(),
                address.reg_id(),
                address.ob(),
            ));
            read_name_addr(address.name_addr());
        }
    }
    for addr in message
        .routes()
        .chain(message.record_routes())
        .chain(message.paths())
        .flatten()
    {
        read_name_addr(&addr);
    }
    for tags in [
        message.supported().collect::<Vec<_>>(),
        message.require().collect(),
        message.proxy_require().collect(),
        message.option_tags(HeaderName::Unsupported).collect(),
    ] {
        touch(tags);
    }
    if let Ok(Some(media_type)) = message.content_type() {
        touch((
            media_type.is("application", "sdp"),
            media_type.params.iter().count(),
        ));
    }
    touch(
        message
            .validate()
            .map_err(|rejection| rejection.to_string()),
    );
    read_auth_headers(message);
    run_builders(message);
}

/// Keeps the optimiser from dropping a read; taking a `Result` by value also
/// counts as using it.
fn touch<T>(value: T) {
    std::hint::black_box(value);
}

fn read_auth_headers(message: &Message) {
    for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
        for value in message.headers_named(name) {
            touch(format!("{:?}", Credentials::parse(value)));
        }
    }
    for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
        for value in message.headers_named(name) {
            touch(format!("{:?}", Challenge::parse(value)));
        }
    }
}

fn run_builders(message: &Message) {
    if !message.is_request() {
        return;
    }
    let response = message
        .response(401)
        .to_tag("fuzz")
        .header("WWW-Authenticate", "Digest realm=\"r\", nonce=\"n\"")
        .build();
    // A request that passed validation must get a response that parses back.
    if message.validate().is_ok() {
        let parsed = Message::parse(Bytes::from(response.clone())).unwrap_or_else(|e| {
            panic!(
                "response to a valid request does not parse: {e}\n{}",
                String::from_utf8_lossy(&response)
            )
        });
        assert_eq!(parsed.status(), Some(401));
        assert_eq!(parsed.call_id().ok(), message.call_id().ok());
        assert_eq!(parsed.cseq().ok(), message.cseq().ok());
    }
    let forwarded = message
        .forward()
        .push_via("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKfuzz")
        .received_from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 5060)
        .record_route("<sip:192.0.2.1;lr>")
        .remove_top_route()
        .build();
    if let (Ok(()), Ok(forwarded)) = (message.validate(), forwarded) {
        let parsed = Message::parse(Bytes::from(forwarded.clone())).unwrap_or_else(|e| {
            panic!(
                "forward of a valid request does not parse: {e}\n{}",
                String::from_utf8_lossy(&forwarded)
            )
        });
        assert_eq!(parsed.branch(), Some("z9hG4bKfuzz"));
        assert_eq!(parsed.body(), message.body());
    }
    touch((message.cancel(), message.ack_for(message)));
    // A stamped request is re-indexed without parsing: the index must be what a parse gives.
    if let Some(stamped) = message.with_received("192.0.2.3:5062".parse().unwrap()) {
        let parsed = Message::parse(stamped.to_bytes()).unwrap_or_else(|e| {
            panic!(
                "stamped request does not parse: {e}\n{}",
                String::from_utf8_lossy(stamped.as_bytes())
            )
        });
        assert_eq!(stamped.as_bytes(), parsed.as_bytes());
        assert_eq!(
            (
                stamped.method(),
                stamped.request_uri_raw(),
                stamped.version()
            ),
            (parsed.method(), parsed.request_uri_raw(), parsed.version())
        );
        assert!(stamped.headers().eq(parsed.headers()), "same headers");
        assert_eq!(stamped.body(), parsed.body());
        assert_eq!(stamped.content_length(), parsed.content_length());
        assert_eq!(
            stamped.top_via().ok().and_then(|via| via.received()),
            Some("192.0.2.3")
        );
    }
}

fn read_via(via: &Via<'_>) {
    touch((
        via.as_bytes(),
        via.protocol_name(),
        via.protocol_version(),
        via.transport(),
        via.host().as_str(),
        via.host().ip(),
        via.port(),
        via.params().iter().count(),
        via.branch(),
        via.has_rfc3261_branch(),
        via.received(),
        via.rport(),
        via.maddr(),
        via.ttl(),
    ));
}

fn read_name_addr(addr: &NameAddr<'_>) {
    touch((
        addr.as_bytes(),
        addr.display_name().map(|name| name.text()),
        addr.is_name_addr(),
        addr.tag(),
    ));
    for param in addr.params().iter() {
        touch((param.value_str(), param.value_unquoted()));
    }
    read_uri(&addr.uri());
}

fn read_uri(uri: &Uri<'_>) {
    touch((
        uri.as_str(),
        uri.scheme(),
        uri.to_string(),
        uri.equivalent(uri),
    ));
    match uri {
        Uri::Sip(sip) => {
            touch((
                sip.is_secure(),
                sip.user(),
                sip.user_unescaped(),
                sip.password(),
                sip.host().ip(),
                sip.port(),
                sip.params().iter().count(),
                sip.transport(),
                sip.lr(),
                sip.maddr(),
                sip.ob(),
                sip.user_param(),
                sip.headers(),
                sip.header_pairs().count(),
            ));
        }
        Uri::Tel(tel) => {
            touch((tel.number(), tel.is_global(), tel.params().iter().count()));
        }
        Uri::Other(other) => {
            touch((other.scheme(), other.rest()));
        }
    }
}
