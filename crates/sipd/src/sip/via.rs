//! RFC 3261 §18.2.1 / RFC 3581 §4: the server records where a request really came from in its
//! top Via, so every response built from the request (they copy the Via lines) carries
//! `received`/`rport`. sip-message only offers this inside `ForwardBuilder` (which also
//! decrements Max-Forwards), hence this helper.

use bytes::{BufMut, BytesMut};
use sip_message::Message;
use std::io::Write as _;
use std::net::SocketAddr;

/// The request with its top Via stamped for `source`, or `None` when nothing needs stamping
/// (no `rport` asked for and the sent-by host is already the source IP) or the Via is unusable.
pub fn stamp_received(request: &Message, source: SocketAddr) -> Option<Message> {
    let bytes = request.to_bytes();
    let via = request.top_via().ok()?;
    let wants_rport = via.rport().is_some();
    if !wants_rport && via.host().ip() == Some(source.ip()) {
        return None;
    }
    let element = via.as_bytes();
    let start = offset_in(&bytes, element)?;
    let params = via.params().as_bytes();
    let params_start = start + element.len().checked_sub(params.len())?;
    let end = start + element.len();

    let mut out = BytesMut::with_capacity(bytes.len() + 48);
    out.put_slice(bytes.get(..params_start)?);
    for param in via.params().iter() {
        if param.name.eq_ignore_ascii_case("received") || param.name.eq_ignore_ascii_case("rport") {
            continue;
        }
        out.put_u8(b';');
        out.put_slice(param.name.as_bytes());
        if let Some(value) = param.value {
            out.put_u8(b'=');
            out.put_slice(value);
        }
    }
    let mut writer = (&mut out).writer();
    let _ = write!(writer, ";received={}", source.ip());
    if wants_rport {
        let _ = write!(writer, ";rport={}", source.port());
    }
    out.put_slice(bytes.get(end..)?);
    Message::parse(out.freeze()).ok()
}

/// Where `part` (a view borrowed from `whole`) starts in `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (offset + part.len() <= whole.len()).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn request(via: &str) -> Message {
        Message::parse(Bytes::from(format!(
            "OPTIONS sip:example.com SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    fn top_via(message: &Message) -> String {
        String::from_utf8(message.top_via().unwrap().as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn rport_is_filled_and_received_added() {
        let source = "203.0.113.7:40000".parse().unwrap();
        let stamped = stamp_received(
            &request("SIP/2.0/UDP 192.168.1.2:5060;rport;branch=z9hG4bK1"),
            source,
        )
        .unwrap();
        assert_eq!(
            top_via(&stamped),
            "SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bK1;received=203.0.113.7;rport=40000"
        );
        // The other Via and the rest are untouched.
        assert_eq!(stamped.vias().count(), 2);
        assert_eq!(stamped.call_id().unwrap(), "c");
        let response = stamped.response(200).build();
        assert!(String::from_utf8(response)
            .unwrap()
            .contains("received=203.0.113.7;rport=40000"));
    }

    #[test]
    fn received_only_when_the_host_differs() {
        let source = "192.0.2.1:5060".parse().unwrap();
        assert!(
            stamp_received(&request("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1"), source).is_none()
        );
        let stamped =
            stamp_received(&request("SIP/2.0/TCP host.example;branch=z9hG4bK1"), source).unwrap();
        assert_eq!(
            top_via(&stamped),
            "SIP/2.0/TCP host.example;branch=z9hG4bK1;received=192.0.2.1"
        );
    }
}
