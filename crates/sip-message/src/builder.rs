//! Building messages: responses (RFC 3261 §8.2.6), forwarded requests
//! (§16.6, RFC 3581), ACK for non-2xx (§17.1.1.3), CANCEL (§9.1), and new
//! requests.
//!
//! Header names and values given to builders are written as is: the caller
//! must not pass CR or LF in them.

use std::fmt::Write as _;
use std::net::IpAddr;

use bytes::Bytes;

use crate::error::{ErrorKind, ParseError};
use crate::header::HeaderName;
use crate::message::{Header, Message};
use crate::scan::CommaSplit;
use crate::values::{reason_phrase, Method};
use crate::via::Via;

fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn finish(out: &mut Vec<u8>, body: &[u8]) {
    let _ = write!(ByteWriter(out), "Content-Length: {}\r\n", body.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Whether header `name` (as written) matches the caller-supplied `wanted`
/// name, so compact and long forms are treated alike.
fn same_header(entry: HeaderName, raw_name: &[u8], wanted: &str) -> bool {
    let resolved = HeaderName::from_bytes(wanted.as_bytes());
    entry == resolved
        && (resolved != HeaderName::Other || raw_name.eq_ignore_ascii_case(wanted.as_bytes()))
}

/// Builds a response to a request (from [`Message::response`]).
#[derive(Debug, Clone)]
pub struct ResponseBuilder<'a> {
    request: &'a Message,
    status: u16,
    reason: String,
    to_tag: Option<String>,
    extra_headers: Vec<u8>,
    body: Vec<u8>,
}

impl<'a> ResponseBuilder<'a> {
    /// Overrides the default reason phrase.
    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = reason.to_owned();
        self
    }

    /// Adds `;tag=<tag>` to To, unless the request's To already has a tag.
    pub fn to_tag(mut self, tag: &str) -> Self {
        self.to_tag = Some(tag.to_owned());
        self
    }

    /// Adds a header line after the copied ones.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        write_header(&mut self.extra_headers, name.as_bytes(), value.as_ref());
        self
    }

    /// Sets the body (add a Content-Type with [`header`](Self::header)).
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    /// The response bytes: status line, all Via lines in order, From, To
    /// (tagged if asked), Call-ID, CSeq, extra headers, Content-Length, body.
    pub fn build(&self) -> Vec<u8> {
        let request = self.request;
        let mut out = Vec::with_capacity(256 + self.extra_headers.len() + self.body.len());
        let _ = write!(
            ByteWriter(&mut out),
            "SIP/2.0 {} {}\r\n",
            self.status,
            self.reason
        );
        for value in request.headers_named(HeaderName::Via) {
            write_header(&mut out, b"Via", value);
        }
        if let Some(from) = request.header(HeaderName::From) {
            write_header(&mut out, b"From", from);
        }
        if let Some(to) = request.header(HeaderName::To) {
            out.extend_from_slice(b"To: ");
            out.extend_from_slice(to);
            if let Some(tag) = &self.to_tag {
                if request.to_tag().is_none() {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag.as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        if let Some(call_id) = request.header(HeaderName::CallId) {
            write_header(&mut out, b"Call-ID", call_id);
        }
        if let Some(cseq) = request.header(HeaderName::CSeq) {
            write_header(&mut out, b"CSeq", cseq);
        }
        out.extend_from_slice(&self.extra_headers);
        finish(&mut out, &self.body);
        out
    }

    /// [`build`](Self::build) as [`Bytes`].
    pub fn build_bytes(&self) -> Bytes {
        Bytes::from(self.build())
    }
}

/// `fmt::Write` into a byte vector (for numbers and status lines).
struct ByteWriter<'v>(&'v mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Builds the request a proxy forwards (from [`Message::forward`]).
///
/// Untouched header lines are copied byte for byte, in order.
#[derive(Debug, Clone)]
pub struct ForwardBuilder<'a> {
    request: &'a Message,
    request_uri: Option<String>,
    new_via: Option<String>,
    received_from: Option<(IpAddr, u16)>,
    record_routes: Vec<String>,
    paths: Vec<String>,
    pushed_routes: Vec<String>,
    routes_removed: usize,
    removed: Vec<String>,
    removed_lines: Vec<usize>,
    added: Vec<(String, Vec<u8>)>,
    body: Option<Vec<u8>>,
}

impl<'a> ForwardBuilder<'a> {
    /// Rewrites the Request-URI.
    pub fn request_uri(mut self, uri: &str) -> Self {
        self.request_uri = Some(uri.to_owned());
        self
    }

    /// Pushes a new top Via value, e.g. `SIP/2.0/UDP proxy.example.com;branch=z9hG4bK1`.
    pub fn push_via(mut self, value: &str) -> Self {
        self.new_via = Some(value.to_owned());
        self
    }

    /// Stamps the received request's top Via with the packet's source
    /// (RFC 3261 §18.2.1, RFC 3581): `received=<ip>` when the sent-by host
    /// differs or `rport` is present, and `rport=<port>` when `rport` is present.
    pub fn received_from(mut self, ip: IpAddr, port: u16) -> Self {
        self.received_from = Some((ip, port));
        self
    }

    /// Adds a Record-Route value (e.g. `<sip:proxy.example.com;lr>`) on top.
    /// Called several times, the values appear in call order.
    pub fn record_route(mut self, value: &str) -> Self {
        self.record_routes.push(value.to_owned());
        self
    }

    /// Adds a Path value (RFC 3327) on top.
    pub fn path(mut self, value: &str) -> Self {
        self.paths.push(value.to_owned());
        self
    }

    /// Removes the first Route value (the proxy's own, RFC 3261 §16.4).
    pub fn remove_top_route(self) -> Self {
        self.remove_top_routes(1)
    }

    /// Removes the first `count` Route values, across Route lines (a proxy that
    /// record-routed twice, RFC 5658, removes both of its own).
    pub fn remove_top_routes(mut self, count: usize) -> Self {
        self.routes_removed = count;
        self
    }

    /// Adds a Route value (e.g. `<sip:edge.example.com;lr>`) above the
    /// request's own Route values, after the removed ones are gone. Called
    /// several times, the values appear in call order (RFC 3327: a Path set
    /// becomes the Route set of requests to the registered contact).
    pub fn push_route(mut self, value: &str) -> Self {
        self.pushed_routes.push(value.to_owned());
        self
    }

    /// Removes one header line of the request, e.g. the Proxy-Authorization
    /// answering this proxy's own challenge (RFC 3261 §22.3).
    pub fn remove_line(mut self, header: &Header<'_>) -> Self {
        self.removed_lines.push(header.offset);
        self
    }

    /// Removes every header line with this name (compact forms included).
    pub fn remove_header(mut self, name: &str) -> Self {
        self.removed.push(name.to_owned());
        self
    }

    /// Replaces every header line with this name by one line with `value`.
    pub fn set_header(self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.remove_header(name).add_header(name, value)
    }

    /// Appends a header line. Content-Length is always computed from the
    /// body, so a Content-Length given here is ignored.
    pub fn add_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.added.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = Some(body.as_ref().to_vec());
        self
    }

    /// The first Via line's value with its first element rewritten to carry
    /// `received`/`rport` (RFC 3261 §18.2.1, RFC 3581 §4). Other elements
    /// and lines are untouched.
    fn stamped_top_via(
        value: &[u8],
        value_offset: usize,
        ip: IpAddr,
        port: u16,
    ) -> Result<Vec<u8>, ParseError> {
        let (element, element_offset) = CommaSplit::new(value, value_offset)
            .next()
            .ok_or_else(|| ParseError::new(ErrorKind::EmptyValue, value_offset))?;
        let via = Via::parse(element, element_offset).map_err(|e| e.in_header(HeaderName::Via))?;
        // The parameter view always extends to the end of the element.
        let params_start = element.len().saturating_sub(via.params().as_bytes().len());
        let prefix_len = element_offset.saturating_sub(value_offset);
        let mut out = Vec::with_capacity(value.len() + 48);
        out.extend_from_slice(value.get(..prefix_len).unwrap_or_default());
        out.extend_from_slice(element.get(..params_start).unwrap_or_default());
        for param in via.params().iter() {
            if param.name.eq_ignore_ascii_case("received")
                || param.name.eq_ignore_ascii_case("rport")
            {
                continue;
            }
            out.push(b';');
            out.extend_from_slice(param.name.as_bytes());
            if let Some(v) = param.value {
                out.push(b'=');
                out.extend_from_slice(v);
            }
        }
        let wants_rport = via.rport().is_some();
        if wants_rport || via.host().ip() != Some(ip) {
            let _ = write!(ByteWriter(&mut out), ";received={ip}");
        }
        if wants_rport {
            let _ = write!(ByteWriter(&mut out), ";rport={port}");
        }
        out.extend_from_slice(value.get(prefix_len + element.len()..).unwrap_or_default());
        Ok(out)
    }

    /// The forwarded request. Fails if Max-Forwards is malformed or 0
    /// (answer 483 instead), or if the top Via to stamp does not parse.
    pub fn build(&self) -> Result<Vec<u8>, ParseError> {
        let request = self.request;
        let (Some(method), Some(original_uri)) = (request.method(), request.request_uri_raw())
        else {
            return Err(ParseError::new(ErrorKind::WrongMessageType, 0));
        };
        let max_forwards = request.max_forwards()?;
        if max_forwards == Some(0) {
            let offset = request
                .headers()
                .find(|h| h.name == HeaderName::MaxForwards)
                .map_or(0, |h| h.offset);
            return Err(ParseError::new(ErrorKind::NumberOutOfRange, offset)
                .in_header(HeaderName::MaxForwards));
        }
        let body = self.body.as_deref().unwrap_or(request.body());
        let mut out = Vec::with_capacity(request.as_bytes().len() + 256);
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        match &self.request_uri {
            Some(uri) => out.extend_from_slice(uri.as_bytes()),
            None => out.extend_from_slice(original_uri),
        }
        out.extend_from_slice(b" SIP/2.0\r\n");
        if let Some(via) = &self.new_via {
            write_header(&mut out, b"Via", via.as_bytes());
        }
        let (mut seen_via, mut seen_max_forwards) = (false, false);
        let (mut record_routes_written, mut paths_written) = (false, false);
        let mut routes_written = self.pushed_routes.is_empty();
        let mut routes_to_remove = self.routes_removed;
        for header in request.headers() {
            if self.removed_lines.contains(&header.offset)
                || self
                    .removed
                    .iter()
                    .any(|name| same_header(header.name, header.raw_name, name))
            {
                continue;
            }
            match header.name {
                HeaderName::Via if !seen_via => {
                    seen_via = true;
                    match self.received_from {
                        Some((ip, port)) => {
                            let stamped =
                                Self::stamped_top_via(header.value, header.offset, ip, port)?;
                            write_header(&mut out, header.raw_name, &stamped);
                        }
                        None => write_header(&mut out, header.raw_name, header.value),
                    }
                    continue;
                }
                HeaderName::MaxForwards if !seen_max_forwards => {
                    seen_max_forwards = true;
                    let decremented = max_forwards.unwrap_or(70).saturating_sub(1);
                    write_header(
                        &mut out,
                        header.raw_name,
                        decremented.to_string().as_bytes(),
                    );
                    continue;
                }
                HeaderName::Route => {
                    if !routes_written {
                        routes_written = true;
                        for value in &self.pushed_routes {
                            write_header(&mut out, b"Route", value.as_bytes());
                        }
                    }
                    if routes_to_remove > 0 {
                        let values: Vec<&[u8]> = CommaSplit::new(header.value, header.offset)
                            .map(|(v, _)| v)
                            .collect();
                        let dropped = routes_to_remove.min(values.len());
                        routes_to_remove -= dropped;
                        if let Some(rest) = values.get(dropped..).filter(|rest| !rest.is_empty()) {
                            write_header(&mut out, header.raw_name, &rest.join(&b", "[..]));
                        }
                        continue;
                    }
                }
                HeaderName::RecordRoute if !record_routes_written => {
                    record_routes_written = true;
                    for value in &self.record_routes {
                        write_header(&mut out, b"Record-Route", value.as_bytes());
                    }
                }
                HeaderName::Path if !paths_written => {
                    paths_written = true;
                    for value in &self.paths {
                        write_header(&mut out, b"Path", value.as_bytes());
                    }
                }
                HeaderName::ContentLength => continue,
                _ => {}
            }
            out.extend_from_slice(header.line);
            out.extend_from_slice(b"\r\n");
        }
        let caller_handles_max_forwards = self
            .removed
            .iter()
            .any(|name| HeaderName::from_bytes(name.as_bytes()) == HeaderName::MaxForwards);
        if !seen_max_forwards && !caller_handles_max_forwards {
            write_header(&mut out, b"Max-Forwards", b"70");
        }
        if !routes_written {
            for value in &self.pushed_routes {
                write_header(&mut out, b"Route", value.as_bytes());
            }
        }
        if !record_routes_written {
            for value in &self.record_routes {
                write_header(&mut out, b"Record-Route", value.as_bytes());
            }
        }
        if !paths_written {
            for value in &self.paths {
                write_header(&mut out, b"Path", value.as_bytes());
            }
        }
        for (name, value) in &self.added {
            if HeaderName::from_bytes(name.as_bytes()) == HeaderName::ContentLength {
                continue;
            }
            write_header(&mut out, name.as_bytes(), value);
        }
        finish(&mut out, body);
        Ok(out)
    }
}

/// Builds the response a proxy forwards upstream (from
/// [`Message::forward_response`]): the received response without its top Via
/// value, the proxy's own (RFC 3261 §16.7 step 3). Every other line is copied
/// byte for byte, in order.
#[derive(Debug, Clone)]
pub struct ResponseForwardBuilder<'a> {
    response: &'a Message,
    added: Vec<(String, Vec<u8>)>,
}

impl ResponseForwardBuilder<'_> {
    /// Appends a header line, e.g. challenges merged from other branches
    /// (§16.7 step 7). A Content-Length given here is ignored.
    pub fn add_header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.added.push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    /// The forwarded response. Fails for a request, or a response whose top Via
    /// does not parse.
    pub fn build(&self) -> Result<Vec<u8>, ParseError> {
        let response = self.response;
        let (Some(status), Some(reason)) = (response.status(), response.reason()) else {
            return Err(ParseError::new(ErrorKind::WrongMessageType, 0));
        };
        let body = response.body();
        let mut out = Vec::with_capacity(response.as_bytes().len());
        let _ = write!(ByteWriter(&mut out), "SIP/2.0 {status} ");
        out.extend_from_slice(reason);
        out.extend_from_slice(b"\r\n");
        let mut via_removed = false;
        for header in response.headers() {
            match header.name {
                HeaderName::Via if !via_removed => {
                    via_removed = true;
                    let rest: Vec<&[u8]> = CommaSplit::new(header.value, header.offset)
                        .skip(1)
                        .map(|(v, _)| v)
                        .collect();
                    if !rest.is_empty() {
                        write_header(&mut out, header.raw_name, &rest.join(&b", "[..]));
                    }
                    continue;
                }
                HeaderName::ContentLength => continue,
                _ => {}
            }
            out.extend_from_slice(header.line);
            out.extend_from_slice(b"\r\n");
        }
        if !via_removed {
            return Err(ParseError::new(ErrorKind::MissingHeader, 0).in_header(HeaderName::Via));
        }
        for (name, value) in &self.added {
            if HeaderName::from_bytes(name.as_bytes()) != HeaderName::ContentLength {
                write_header(&mut out, name.as_bytes(), value);
            }
        }
        finish(&mut out, body);
        Ok(out)
    }
}

/// Builds a new request from scratch.
///
/// ```
/// use sip_message::{Message, RequestBuilder};
/// let bytes = RequestBuilder::new("OPTIONS", "sip:bob@example.com")
///     .header("Via", "SIP/2.0/UDP host.example.com;branch=z9hG4bK1")
///     .header("CSeq", "1 OPTIONS")
///     .build();
/// let message = Message::parse_slice(&bytes).unwrap();
/// assert_eq!(message.content_length(), Some(0));
/// ```
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    head: Vec<u8>,
    body: Vec<u8>,
}

impl RequestBuilder {
    /// Starts `METHOD uri SIP/2.0`.
    pub fn new(method: &str, uri: &str) -> Self {
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(method.as_bytes());
        head.push(b' ');
        head.extend_from_slice(uri.as_bytes());
        head.extend_from_slice(b" SIP/2.0\r\n");
        RequestBuilder {
            head,
            body: Vec::new(),
        }
    }

    /// Appends a header line.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        write_header(&mut self.head, name.as_bytes(), value.as_ref());
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = body.as_ref().to_vec();
        self
    }

    /// The request bytes, with Content-Length.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.body.len() + 24);
        out.extend_from_slice(&self.head);
        finish(&mut out, &self.body);
        out
    }

    /// [`build`](Self::build) as [`Bytes`].
    pub fn build_bytes(&self) -> Bytes {
        Bytes::from(self.build())
    }
}

impl Message {
    /// Starts a response to this request with the default reason phrase.
    pub fn response(&self, status: u16) -> ResponseBuilder<'_> {
        ResponseBuilder {
            request: self,
            status,
            reason: reason_phrase(status).to_owned(),
            to_tag: None,
            extra_headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Starts the request a proxy forwards from this one.
    pub fn forward(&self) -> ForwardBuilder<'_> {
        ForwardBuilder {
            request: self,
            request_uri: None,
            new_via: None,
            received_from: None,
            record_routes: Vec::new(),
            paths: Vec::new(),
            pushed_routes: Vec::new(),
            routes_removed: 0,
            removed: Vec::new(),
            removed_lines: Vec::new(),
            added: Vec::new(),
            body: None,
        }
    }

    /// Starts the response a proxy forwards upstream from this received response.
    pub fn forward_response(&self) -> ResponseForwardBuilder<'_> {
        ResponseForwardBuilder {
            response: self,
            added: Vec::new(),
        }
    }

    /// Shared part of ACK and CANCEL: same Request-URI, only the top Via,
    /// the Route set, From, Call-ID, CSeq number (RFC 3261 §9.1, §17.1.1.3).
    fn in_transaction_request(&self, method: Method<'_>, to: &[u8]) -> Result<Vec<u8>, ParseError> {
        let uri = self
            .request_uri_raw()
            .ok_or_else(|| ParseError::new(ErrorKind::WrongMessageType, 0))?;
        let top_via = self.top_via()?;
        let cseq = self.cseq()?;
        let call_id = self.call_id()?;
        let from = self.header(HeaderName::From).ok_or_else(|| {
            ParseError::new(ErrorKind::MissingHeader, 0).in_header(HeaderName::From)
        })?;
        let mut out = Vec::with_capacity(self.as_bytes().len());
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(uri);
        out.extend_from_slice(b" SIP/2.0\r\n");
        write_header(&mut out, b"Via", top_via.as_bytes());
        for route in self.headers_named(HeaderName::Route) {
            write_header(&mut out, b"Route", route);
        }
        write_header(&mut out, b"Max-Forwards", b"70");
        write_header(&mut out, b"From", from);
        write_header(&mut out, b"To", to);
        write_header(&mut out, b"Call-ID", call_id.as_bytes());
        let _ = write!(
            ByteWriter(&mut out),
            "CSeq: {} {}\r\n",
            cseq.seq,
            method.as_str()
        );
        finish(&mut out, b"");
        Ok(out)
    }

    /// The ACK a client transaction sends for a non-2xx final `response` to
    /// this INVITE (RFC 3261 §17.1.1.3): To comes from the response.
    pub fn ack_for(&self, response: &Message) -> Result<Vec<u8>, ParseError> {
        if self.method() != Some(Method::Invite) || !response.is_response() {
            return Err(ParseError::new(ErrorKind::WrongMessageType, 0));
        }
        let to = response.header(HeaderName::To).ok_or_else(|| {
            ParseError::new(ErrorKind::MissingHeader, 0).in_header(HeaderName::To)
        })?;
        self.in_transaction_request(Method::Ack, to)
    }

    /// The CANCEL for this request (RFC 3261 §9.1).
    pub fn cancel(&self) -> Result<Vec<u8>, ParseError> {
        let to = self.header(HeaderName::To).ok_or_else(|| {
            ParseError::new(ErrorKind::MissingHeader, 0).in_header(HeaderName::To)
        })?;
        self.in_transaction_request(Method::Cancel, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Host;
    use crate::via::RPort;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport, SIP/2.0/TCP p0.example.com;branch=z9hG4bK0\r\n\
        v: SIP/2.0/UDP origin.example.com;branch=z9hG4bKorigin\r\n\
        Max-Forwards: 70\r\n\
        Route: <sip:proxy.example.com;lr>, <sip:next.example.com;lr>\r\n\
        Route: <sip:last.example.com;lr>\r\n\
        From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
        To: Bob <sip:bob@biloxi.example.com>\r\n\
        Call-ID: 3848276298220188511@atlanta.example.com\r\n\
        CSeq: 2 INVITE\r\n\
        X-Odd :  ;;,,  odd\r\n\
        Record-Route: <sip:rr1.example.com;lr>\r\n\
        Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n\
        Content-Type: text/plain\r\n\
        Content-Length: 5\r\n\
        \r\n\
        hello";

    fn invite() -> Message {
        Message::parse_slice(INVITE.as_bytes()).unwrap()
    }

    #[test]
    fn response_copies_dialog_headers() {
        let request = invite();
        let bytes = request
            .response(486)
            .to_tag("a6c85cf")
            .header("Retry-After", "60")
            .body("busy")
            .build();
        let response = Message::parse_slice(&bytes).unwrap();
        assert_eq!(response.status(), Some(486));
        assert_eq!(response.reason(), Some(&b"Busy Here"[..]));
        let request_vias: Vec<_> = request.vias().map(|v| v.unwrap().as_bytes()).collect();
        let response_vias: Vec<_> = response.vias().map(|v| v.unwrap().as_bytes()).collect();
        assert_eq!(request_vias, response_vias);
        assert_eq!(response.headers_named(HeaderName::Via).count(), 2);
        assert_eq!(
            response.from().unwrap().as_bytes(),
            request.from().unwrap().as_bytes()
        );
        assert_eq!(response.to_tag(), Some("a6c85cf"));
        assert_eq!(response.call_id(), request.call_id());
        assert_eq!(response.cseq(), request.cseq());
        assert_eq!(response.header(HeaderName::RetryAfter), Some(&b"60"[..]));
        assert_eq!(response.body(), b"busy");
        assert_eq!(response.content_length(), Some(4));
        assert!(response.contacts().next().is_none());
        response.validate().unwrap();
    }

    #[test]
    fn response_keeps_an_existing_to_tag() {
        let request = Message::parse_slice(
            INVITE
                .replace(
                    "To: Bob <sip:bob@biloxi.example.com>",
                    "To: <sip:bob@biloxi.example.com>;tag=old",
                )
                .as_bytes(),
        )
        .unwrap();
        let response =
            Message::parse_slice(&request.response(200).to_tag("new").reason("Fine").build())
                .unwrap();
        assert_eq!(response.to_tag(), Some("old"));
        assert_eq!(response.reason(), Some(&b"Fine"[..]));
        assert_eq!(response.content_length(), Some(0));
    }

    #[test]
    fn forward_rewrites_only_what_is_asked() {
        let request = invite();
        let bytes = request
            .forward()
            .request_uri("sip:bob@192.0.2.4:5062")
            .push_via("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnew")
            .received_from("192.0.2.101".parse().unwrap(), 49152)
            .remove_top_route()
            .record_route("<sip:proxy.example.com;lr>")
            .path("<sip:edge.example.com;lr>")
            .set_header("Content-Type", "text/html")
            .add_header("X-Added", "1")
            .build()
            .unwrap();
        let forwarded = Message::parse_slice(&bytes).unwrap();
        assert_eq!(
            forwarded.request_uri().unwrap().as_str(),
            "sip:bob@192.0.2.4:5062"
        );
        let vias: Vec<_> = forwarded.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 4);
        assert_eq!(vias[0].branch(), Some("z9hG4bKnew"));
        assert_eq!(vias[1].host(), Host::Domain("client.atlanta.example.com"));
        assert_eq!(vias[1].received(), Some("192.0.2.101"));
        assert_eq!(vias[1].rport(), Some(RPort::Port(49152)));
        assert_eq!(vias[1].branch(), Some("z9hG4bK74bf9"));
        assert_eq!(vias[2].branch(), Some("z9hG4bK0"));
        assert_eq!(vias[3].branch(), Some("z9hG4bKorigin"));
        assert_eq!(forwarded.max_forwards(), Ok(Some(69)));
        let routes: Vec<_> = forwarded
            .routes()
            .map(|r| r.unwrap().uri().as_str())
            .collect();
        assert_eq!(
            routes,
            ["sip:next.example.com;lr", "sip:last.example.com;lr"]
        );
        let record_routes: Vec<_> = forwarded
            .record_routes()
            .map(|r| r.unwrap().uri().as_str())
            .collect();
        assert_eq!(
            record_routes,
            ["sip:proxy.example.com;lr", "sip:rr1.example.com;lr"]
        );
        assert_eq!(forwarded.paths().count(), 1);
        assert_eq!(
            forwarded
                .headers_named(HeaderName::ContentType)
                .collect::<Vec<_>>(),
            [&b"text/html"[..]]
        );
        assert_eq!(forwarded.headers_by_name("X-Added").next(), Some(&b"1"[..]));
        assert_eq!(forwarded.body(), b"hello");
        assert_eq!(forwarded.content_length(), Some(5));
        // Untouched lines are copied byte for byte.
        for line in [
            &b"X-Odd :  ;;,,  odd\r\n"[..],
            b"v: SIP/2.0/UDP origin.example.com;branch=z9hG4bKorigin\r\n",
            b"From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n",
            b"Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n",
        ] {
            assert!(
                bytes.windows(line.len()).any(|w| w == line),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        forwarded.validate().unwrap();
    }

    #[test]
    fn forward_without_changes_and_without_max_forwards() {
        let text = INVITE.replace("Max-Forwards: 70\r\n", "");
        let request = Message::parse_slice(text.as_bytes()).unwrap();
        let forwarded = Message::parse_slice(&request.forward().build().unwrap()).unwrap();
        assert_eq!(forwarded.max_forwards(), Ok(Some(70)));
        let replaced = request
            .forward()
            .set_header("Max-Forwards", "10")
            .add_header("l", "999")
            .build()
            .unwrap();
        let replaced = Message::parse_slice(&replaced).unwrap();
        assert_eq!(replaced.headers_named(HeaderName::MaxForwards).count(), 1);
        assert_eq!(replaced.max_forwards(), Ok(Some(10)));
        assert_eq!(replaced.content_length(), Some(5));
        assert_eq!(forwarded.vias().count(), 3);
        assert_eq!(forwarded.routes().count(), 3);
        assert_eq!(forwarded.header_count(), request.header_count() + 1);
    }

    #[test]
    fn received_only_when_the_source_differs() {
        let text = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060 ; branch=z9hG4bK1\r\nMax-Forwards: 2\r\n\r\n";
        let request = Message::parse_slice(text.as_bytes()).unwrap();
        let same = request
            .forward()
            .received_from("192.0.2.1".parse().unwrap(), 5060)
            .build()
            .unwrap();
        let via = Message::parse_slice(&same)
            .unwrap()
            .top_via()
            .unwrap()
            .as_bytes()
            .to_vec();
        assert_eq!(via, b"SIP/2.0/UDP 192.0.2.1:5060 ;branch=z9hG4bK1");
        let other = request
            .forward()
            .received_from("2001:db8::5".parse().unwrap(), 5060)
            .build()
            .unwrap();
        let forwarded = Message::parse_slice(&other).unwrap();
        assert_eq!(forwarded.top_via().unwrap().received(), Some("2001:db8::5"));
        assert_eq!(forwarded.top_via().unwrap().rport(), None);
        assert_eq!(forwarded.max_forwards(), Ok(Some(1)));
    }

    #[test]
    fn ack_for_non_2xx() {
        let request = invite();
        let response =
            Message::parse_slice(&request.response(486).to_tag("totag").build()).unwrap();
        let ack = Message::parse_slice(&request.ack_for(&response).unwrap()).unwrap();
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.request_uri_raw(), request.request_uri_raw());
        let vias: Vec<_> = ack.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 1);
        assert_eq!(vias[0].as_bytes(), request.top_via().unwrap().as_bytes());
        assert_eq!(ack.to_tag(), Some("totag"));
        assert_eq!(ack.from_tag(), Some("9fxced76sl"));
        assert_eq!(ack.call_id(), request.call_id());
        let cseq = ack.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (2, Method::Ack));
        assert_eq!(ack.routes().count(), 3);
        assert!(ack.body().is_empty());
        ack.validate().unwrap();
        assert_eq!(
            response.ack_for(&response).unwrap_err().kind(),
            ErrorKind::WrongMessageType
        );
    }

    #[test]
    fn cancel() {
        let request = invite();
        let cancel = Message::parse_slice(&request.cancel().unwrap()).unwrap();
        assert_eq!(cancel.method(), Some(Method::Cancel));
        assert_eq!(cancel.request_uri_raw(), request.request_uri_raw());
        assert_eq!(cancel.vias().count(), 1);
        assert_eq!(cancel.branch(), Some("z9hG4bK74bf9"));
        assert_eq!(
            cancel.to().unwrap().as_bytes(),
            request.to().unwrap().as_bytes()
        );
        assert_eq!(cancel.cseq().unwrap().seq, 2);
        assert_eq!(cancel.cseq().unwrap().method, Method::Cancel);
        cancel.validate().unwrap();
    }

    #[test]
    fn forward_removes_and_pushes_routes() {
        let request = invite();
        let bytes = request
            .forward()
            .remove_top_routes(2)
            .push_route("<sip:edge1.example.com;lr>")
            .push_route("<sip:edge2.example.com;lr>")
            .build()
            .unwrap();
        let forwarded = Message::parse_slice(&bytes).unwrap();
        let routes: Vec<_> = forwarded
            .routes()
            .map(|r| r.unwrap().uri().as_str())
            .collect();
        assert_eq!(
            routes,
            [
                "sip:edge1.example.com;lr",
                "sip:edge2.example.com;lr",
                "sip:last.example.com;lr"
            ]
        );
        // More removed than present: all gone; pushed ones still written.
        let bytes = request
            .forward()
            .remove_top_routes(9)
            .push_route("<sip:only.example.com;lr>")
            .build()
            .unwrap();
        let forwarded = Message::parse_slice(&bytes).unwrap();
        let routes: Vec<_> = forwarded
            .routes()
            .map(|r| r.unwrap().uri().as_str())
            .collect();
        assert_eq!(routes, ["sip:only.example.com;lr"]);
    }

    #[test]
    fn forward_removes_single_lines() {
        let text = INVITE.replace(
            "X-Odd :  ;;,,  odd\r\n",
            "Proxy-Authorization: Digest realm=\"a\"\r\nProxy-Authorization: Digest realm=\"b\"\r\n",
        );
        let request = Message::parse_slice(text.as_bytes()).unwrap();
        let ours = request
            .headers()
            .find(|h| h.value.ends_with(b"\"a\""))
            .unwrap();
        let bytes = request.forward().remove_line(&ours).build().unwrap();
        let forwarded = Message::parse_slice(&bytes).unwrap();
        assert_eq!(
            forwarded
                .headers_named(HeaderName::ProxyAuthorization)
                .collect::<Vec<_>>(),
            [&b"Digest realm=\"b\""[..]]
        );
    }

    #[test]
    fn forwarded_response_loses_only_the_top_via() {
        let request = invite();
        let response = Message::parse_slice(
            &request
                .response(180)
                .to_tag("t")
                .header("Record-Route", "<sip:p.example.com;lr>")
                .build(),
        )
        .unwrap();
        let bytes = response
            .forward_response()
            .add_header("Proxy-Authenticate", "Digest realm=\"x\", nonce=\"n\"")
            .build()
            .unwrap();
        let forwarded = Message::parse_slice(&bytes).unwrap();
        assert_eq!(forwarded.status(), Some(180));
        assert_eq!(forwarded.reason(), Some(&b"Ringing"[..]));
        let vias: Vec<_> = forwarded.vias().map(|v| v.unwrap().branch()).collect();
        assert_eq!(vias, [Some("z9hG4bK0"), Some("z9hG4bKorigin")]);
        assert_eq!(forwarded.to_tag(), Some("t"));
        assert_eq!(forwarded.record_routes().count(), 1);
        assert!(forwarded.header(HeaderName::ProxyAuthenticate).is_some());
        forwarded.validate().unwrap();
        assert!(request.forward_response().build().is_err());
    }

    #[test]
    fn request_from_scratch() {
        let bytes = RequestBuilder::new("MESSAGE", "sip:bob@example.com")
            .header("Via", "SIP/2.0/TCP h.example.com;branch=z9hG4bKx")
            .header("From", "<sip:a@example.com>;tag=1")
            .header("To", "<sip:bob@example.com>")
            .header("Call-ID", "c1")
            .header("CSeq", "1 MESSAGE")
            .header("Max-Forwards", "70")
            .body(b"\x00binary\xff")
            .build_bytes();
        let message = Message::parse(bytes).unwrap();
        assert_eq!(message.method(), Some(Method::Message));
        assert_eq!(message.body(), b"\x00binary\xff");
        assert_eq!(message.content_length(), Some(8));
        message.validate().unwrap();
    }
}
