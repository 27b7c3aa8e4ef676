//! Answering requests that do not parse: RFC 3261 §8.2 wants a 400 whenever the response can
//! still be routed and matched, i.e. when Via, From, To, Call-ID and CSeq can be copied.

use bytes::{BufMut, Bytes, BytesMut};

/// Header lines a response must copy, by long and compact name.
const COPIED: [(&[u8], &[u8]); 5] = [
    (b"via", b"v"),
    (b"from", b"f"),
    (b"to", b"t"),
    (b"call-id", b"i"),
    (b"cseq", b""),
];

/// A `400` for raw bytes that look like a request (not a response, not ACK) and carry every
/// header a response copies; `None` otherwise (drop them). `reason` is sanitized.
pub fn bad_request(raw: &[u8], reason: &str) -> Option<Bytes> {
    let head_end = memchr_crlfcrlf(raw).unwrap_or(raw.len());
    let head = raw.get(..head_end)?;
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let start_line = lines.find(|line| !line.is_empty())?;
    let method = start_line.split(|&b| b == b' ').next()?;
    if start_line.starts_with(b"SIP/") || method.eq_ignore_ascii_case(b"ACK") || method.is_empty() {
        return None;
    }
    let mut found = [false; COPIED.len()];
    let mut copied = Vec::with_capacity(COPIED.len());
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(line.get(..colon)?);
        let Some(index) = COPIED.iter().position(|(long, compact)| {
            name.eq_ignore_ascii_case(long)
                || (!compact.is_empty() && name.eq_ignore_ascii_case(compact))
        }) else {
            continue;
        };
        // Vias may repeat; the others must not, or the response cannot be matched.
        if found[index] && index != 0 {
            return None;
        }
        found[index] = true;
        copied.push((COPIED[index].0, trim(line.get(colon + 1..)?)));
    }
    if !found.iter().all(|&present| present) {
        return None;
    }
    let reason = crate::safe_reason(reason);
    let mut out = BytesMut::with_capacity(raw.len().min(2048) + 128);
    out.put_slice(b"SIP/2.0 400 Bad Request - ");
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
    for (name, value) in copied {
        out.put_slice(canonical(name));
        out.put_slice(b": ");
        out.put_slice(value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Content-Length: 0\r\n\r\n");
    Some(out.freeze())
}

fn canonical(name: &[u8]) -> &'static [u8] {
    match name {
        b"via" => b"Via",
        b"from" => b"From",
        b"to" => b"To",
        b"call-id" => b"Call-ID",
        _ => b"CSeq",
    }
}

fn memchr_crlfcrlf(raw: &[u8]) -> Option<usize> {
    raw.windows(4).position(|window| window == b"\r\n\r\n")
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_with_the_routing_headers_gets_400() {
        let raw = b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                    f: <sip:a@example.com>;tag=1\r\nTo: <sip:a@example.com>\r\nCall-ID: x\r\n\
                    CSeq: 1 REGISTER\r\nContact: <<<\r\nContent-Length: 0\r\n\r\n";
        let response = bad_request(raw, "bad Contact\r\nX: y").unwrap();
        let text = std::str::from_utf8(&response).unwrap();
        assert!(
            text.starts_with("SIP/2.0 400 Bad Request - bad Contact  X: y\r\n"),
            "{text}"
        );
        assert!(
            text.contains("From: <sip:a@example.com>;tag=1\r\n"),
            "{text}"
        );
        assert!(text.contains("CSeq: 1 REGISTER\r\n"), "{text}");
        assert!(crate::Message::parse(response.clone()).is_ok());
    }

    #[test]
    fn garbage_responses_and_acks_are_dropped() {
        assert!(bad_request(b"\x00\x01garbage", "x").is_none());
        assert!(bad_request(
            b"SIP/2.0 200 OK\r\nVia: a\r\nFrom: a\r\nTo: a\r\nCall-ID: a\r\nCSeq: 1 A\r\n\r\n",
            "x"
        )
        .is_none());
        assert!(bad_request(
            b"ACK sip:a SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: a\r\nCall-ID: a\r\nCSeq: 1 ACK\r\n\r\n",
            "x"
        )
        .is_none());
        assert!(bad_request(
            b"OPTIONS sip:a SIP/2.0\r\nVia: a\r\nFrom: a\r\nTo: a\r\nCSeq: 1 OPTIONS\r\n\r\n",
            "x"
        )
        .is_none());
    }
}
