//! Whole-message checks a server runs before processing a request
//! (RFC 3261 §8.2, §16.3): the start line and every header a SIP element
//! relies on must parse, and single-valued headers must be single.

use std::fmt;

use crate::error::{ErrorKind, ParseError};
use crate::header::HeaderName;
use crate::message::Message;
use crate::uri::Uri;

/// Why a message must not be processed, with the status code to answer a
/// request with (responses are dropped instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    /// The status code to answer with: 400, or 505 for an unsupported version.
    pub status: u16,
    /// What is wrong, and where.
    pub error: ParseError,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.error)
    }
}

impl std::error::Error for Rejection {}

fn bad_request(error: ParseError) -> Rejection {
    Rejection { status: 400, error }
}

impl Message {
    /// Checks the message beyond framing: SIP/2.0 (else 505); the
    /// Request-URI parses and carries no `?headers`; exactly one Call-ID,
    /// From, To, CSeq and at least one Via, all well formed, and at most one
    /// Max-Forwards (0..=255); the CSeq method matches the request method;
    /// every Via, Contact, Route, Record-Route, Path, Expires, Min-Expires
    /// and Content-Type parses.
    ///
    /// Lazy views stay usable on a message that fails here; this is the gate
    /// for answering 400/505 (or dropping a response) per RFC 3261.
    pub fn validate(&self) -> Result<(), Rejection> {
        if !self.is_sip_2_0() {
            return Err(Rejection {
                status: 505,
                error: ParseError::new(ErrorKind::BadVersion, 0),
            });
        }
        if self.is_request() {
            let uri = self.request_uri().map_err(bad_request)?;
            if let Uri::Sip(sip) = uri {
                if sip.headers().is_some() {
                    return Err(bad_request(ParseError::new(ErrorKind::BadUri, 0)));
                }
            }
        }
        // Call-ID, From, To and CSeq exactly once, Max-Forwards at most once: one pass.
        const SINGLE: [HeaderName; 5] = [
            HeaderName::CallId,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CSeq,
            HeaderName::MaxForwards,
        ];
        let mut seen = [false; SINGLE.len()];
        for header in self.headers() {
            if let Some(i) = SINGLE.iter().position(|name| *name == header.name) {
                if seen[i] {
                    return Err(bad_request(
                        ParseError::new(ErrorKind::DuplicateHeader, header.offset)
                            .in_header(header.name),
                    ));
                }
                seen[i] = true;
            }
        }
        if let Some(i) = seen[..4].iter().position(|seen| !seen) {
            return Err(bad_request(
                ParseError::new(ErrorKind::MissingHeader, 0).in_header(SINGLE[i]),
            ));
        }
        self.call_id().map_err(bad_request)?;
        self.from().map_err(bad_request)?;
        self.to().map_err(bad_request)?;
        let cseq = self.cseq().map_err(bad_request)?;
        if let Some(method) = self.method() {
            if method != cseq.method {
                let offset = self
                    .headers()
                    .find(|h| h.name == HeaderName::CSeq)
                    .map_or(0, |h| h.offset);
                return Err(bad_request(
                    ParseError::new(ErrorKind::CSeqMismatch, offset).in_header(HeaderName::CSeq),
                ));
            }
        }
        // Every Via parses, and there is one (`top_via` names the missing header).
        let mut vias = self.vias().peekable();
        if vias.peek().is_none() {
            self.top_via().map_err(bad_request)?;
        }
        for via in vias {
            via.map_err(bad_request)?;
        }
        self.max_forwards().map_err(bad_request)?;
        self.expires().map_err(bad_request)?;
        self.min_expires().map_err(bad_request)?;
        self.content_type().map_err(bad_request)?;
        for contact in self.contacts() {
            contact.map_err(bad_request)?;
        }
        for route in self
            .routes()
            .chain(self.record_routes())
            .chain(self.paths())
        {
            route.map_err(bad_request)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "OPTIONS sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:alice@example.com>;tag=1\r\n\
        To: <sip:bob@example.com>\r\n\
        Call-ID: c1\r\n\
        CSeq: 1 OPTIONS\r\n\
        \r\n";

    fn check(text: &str) -> Result<(), Rejection> {
        Message::parse_slice(text.as_bytes()).unwrap().validate()
    }

    fn kind(text: &str) -> (u16, ErrorKind, Option<HeaderName>) {
        let rejection = check(text).unwrap_err();
        (
            rejection.status,
            rejection.error.kind(),
            rejection.error.header(),
        )
    }

    #[test]
    fn accepts_a_minimal_request_and_response() {
        check(GOOD).unwrap();
        let response = GOOD.replace("OPTIONS sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK");
        check(&response).unwrap();
    }

    #[test]
    fn rejects_with_status_and_reason() {
        assert_eq!(
            kind(&GOOD.replace("Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n", "")),
            (400, ErrorKind::MissingHeader, Some(HeaderName::Via))
        );
        assert_eq!(
            kind(&GOOD.replace(
                "Max-Forwards: 70\r\n",
                "Max-Forwards: 70\r\nMax-Forwards: 69\r\n"
            )),
            (
                400,
                ErrorKind::DuplicateHeader,
                Some(HeaderName::MaxForwards)
            )
        );
        assert_eq!(
            kind(&GOOD.replace("Call-ID: c1", "i: c1\r\nCall-ID: c2")),
            (400, ErrorKind::DuplicateHeader, Some(HeaderName::CallId))
        );
        assert_eq!(
            kind(&GOOD.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")),
            (400, ErrorKind::CSeqMismatch, Some(HeaderName::CSeq))
        );
        assert_eq!(
            kind(&GOOD.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia")).0,
            505
        );
        assert_eq!(
            kind(&GOOD.replace("Call-ID: c1", "Call-ID: c1\r\nContact: <sip:a@b>;q=2")),
            (400, ErrorKind::BadQValue, Some(HeaderName::Contact))
        );
        assert_eq!(
            kind(&GOOD.replace("Call-ID: c1", "Call-ID: c1\r\nExpires: soon")),
            (400, ErrorKind::BadNumber, Some(HeaderName::Expires))
        );
        let rejection = check(&GOOD.replace("Call-ID: c1", "Call-ID: c 1")).unwrap_err();
        assert_eq!(
            rejection.to_string(),
            "400: unexpected character at byte 177 in header Call-ID"
        );
    }
}
