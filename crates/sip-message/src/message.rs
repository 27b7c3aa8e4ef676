//! The parsed message: the received bytes plus a compact index over them.

use bytes::Bytes;

use crate::addr::{Contact, NameAddr};
use crate::error::{ErrorKind, ParseError};
use crate::header::HeaderName;
use crate::scan::{
    ascii_str, is_lws, is_token, parse_u32, parse_u64, trim_lws, CommaSplit, Cursor,
};
use crate::uri::{parse_uri, Uri};
use crate::values::{CSeq, MediaType, Method};
use crate::via::Via;

/// Limits applied while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Maximum number of header lines (default 128).
    pub max_headers: usize,
    /// Maximum message size in bytes, body included (default 64 KiB).
    pub max_message_len: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_headers: 128,
            max_message_len: 65_536,
        }
    }
}

/// A byte range in the message buffer. u32 keeps the index compact; parse
/// rejects inputs that do not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn new(start: usize, end: usize) -> Span {
        // Callers only pass offsets below the checked buffer length (< u32::MAX).
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct HeaderEntry {
    name: HeaderName,
    raw_name: Span,
    value: Span,
}

#[derive(Debug, Clone, Copy)]
enum StartLine {
    Request {
        method: Span,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        code: u16,
        reason: Span,
    },
}

/// One header line: its resolved name, the name as written, and the value
/// (leading/trailing white space trimmed; folded line breaks kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// The resolved name (`Other` for unknown headers).
    pub name: HeaderName,
    /// The name as written (e.g. `v`, `MaX-fOrWaRdS`).
    pub raw_name: &'a [u8],
    /// The value bytes.
    pub value: &'a [u8],
    /// The byte offset of `value` in the message.
    pub offset: usize,
    /// The whole line as written, from the name to the end of the value
    /// (folds included, trailing white space and CRLF excluded).
    pub line: &'a [u8],
}

impl<'a> Header<'a> {
    /// The value as `&str` if it is valid UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }
}

/// A parsed SIP message: the received bytes plus an index of its start line,
/// headers and body. Cheap to clone (the bytes are reference-counted).
///
/// Parsing only frames the message and indexes it; typed views (`top_via`,
/// `cseq`, `contacts`...) parse their header on each call and borrow from
/// the message.
#[derive(Debug, Clone)]
pub struct Message {
    bytes: Bytes,
    extent: Span,
    start_line: StartLine,
    headers: Vec<HeaderEntry>,
    body: Span,
    content_length: Option<u32>,
}

/// Finds the end of the line starting at `pos`: returns (end of content, start
/// of next line). Accepts CRLF and bare LF.
#[inline]
fn find_line(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let lf = pos + memchr::memchr(b'\n', buf.get(pos..)?)?;
    let end = if lf > pos && buf.get(lf - 1) == Some(&b'\r') {
        lf - 1
    } else {
        lf
    };
    Some((end, lf + 1))
}

fn is_sip_version(version: &[u8]) -> bool {
    let Some((prefix, rest)) = version.split_at_checked(4) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case(b"SIP/") {
        return false;
    }
    let Some(dot) = memchr::memchr(b'.', rest) else {
        return false;
    };
    let (major, minor) = (&rest[..dot], &rest[dot + 1..]);
    !major.is_empty()
        && !minor.is_empty()
        && major.iter().all(u8::is_ascii_digit)
        && minor.iter().all(u8::is_ascii_digit)
}

fn parse_start_line(buf: &[u8], start: usize, end: usize) -> Result<StartLine, ParseError> {
    let line = buf.get(start..end).unwrap_or_default();
    let bad = |kind, at: usize| ParseError::new(kind, start + at);
    if line.starts_with(b"SIP/") {
        let sp =
            memchr::memchr(b' ', line).ok_or_else(|| bad(ErrorKind::BadStartLine, line.len()))?;
        let version = line.get(..sp).unwrap_or_default();
        if !is_sip_version(version) {
            return Err(bad(ErrorKind::BadVersion, 0));
        }
        let code_digits = line
            .get(sp + 1..sp + 4)
            .ok_or_else(|| bad(ErrorKind::BadStatusCode, sp + 1))?;
        let code = parse_u32(code_digits)
            .ok()
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| (100..=699).contains(c))
            .ok_or_else(|| bad(ErrorKind::BadStatusCode, sp + 1))?;
        let reason_start = match line.get(sp + 4) {
            None => line.len(),
            Some(b' ') => sp + 5,
            Some(_) => return Err(bad(ErrorKind::BadStatusCode, sp + 4)),
        };
        return Ok(StartLine::Response {
            version: Span::new(start, start + sp),
            code,
            reason: Span::new(start + reason_start, end),
        });
    }
    let sp1 = memchr::memchr(b' ', line).ok_or_else(|| bad(ErrorKind::BadStartLine, 0))?;
    let sp2 = memchr::memrchr(b' ', line).unwrap_or(sp1);
    let method = line.get(..sp1).unwrap_or_default();
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(bad(ErrorKind::BadMethod, 0));
    }
    if sp2 <= sp1 + 1 {
        return Err(bad(ErrorKind::BadStartLine, sp1));
    }
    let uri = line.get(sp1 + 1..sp2).unwrap_or_default();
    // Exactly one SP between the elements (RFC 4475 lwsstart, lwsruri).
    if let Some(ws) = uri.iter().position(|&b| b == b' ' || b == b'\t') {
        return Err(bad(ErrorKind::BadStartLine, sp1 + 1 + ws));
    }
    let version = line.get(sp2 + 1..).unwrap_or_default();
    if !is_sip_version(version) {
        return Err(bad(ErrorKind::BadVersion, sp2 + 1));
    }
    Ok(StartLine::Request {
        method: Span::new(start, start + sp1),
        uri: Span::new(start + sp1 + 1, start + sp2),
        version: Span::new(start + sp2 + 1, end),
    })
}

impl Message {
    /// Parses one message (a UDP datagram or a message cut out by the
    /// framer) with the default [`ParseLimits`].
    ///
    /// With Content-Length the body is exactly that many bytes and any
    /// further octets are ignored (RFC 4475 dblreq); without it the body is
    /// the rest of the input.
    pub fn parse(bytes: Bytes) -> Result<Message, ParseError> {
        Self::parse_with(bytes, &ParseLimits::default())
    }

    /// Convenience: copies `bytes` and parses them.
    pub fn parse_slice(bytes: &[u8]) -> Result<Message, ParseError> {
        Self::parse(Bytes::copy_from_slice(bytes))
    }

    /// Parses with explicit limits.
    pub fn parse_with(bytes: Bytes, limits: &ParseLimits) -> Result<Message, ParseError> {
        let buf: &[u8] = &bytes;
        if buf.len() > limits.max_message_len || buf.len() >= u32::MAX as usize {
            return Err(ParseError::new(ErrorKind::TooLarge, 0));
        }
        // Leading CRLFs (keep-alives, RFC 3261 §7.5) are not part of the message.
        let msg_start = buf
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or_else(|| ParseError::new(ErrorKind::Empty, 0))?;
        let (line_end, mut pos) = find_line(buf, msg_start)
            .ok_or_else(|| ParseError::new(ErrorKind::Incomplete, buf.len()))?;
        let start_line = parse_start_line(buf, msg_start, line_end)?;

        let mut headers = Vec::with_capacity(16);
        let mut content_length: Option<u32> = None;
        let body_start = loop {
            let (line_end, mut next) = find_line(buf, pos)
                .ok_or_else(|| ParseError::new(ErrorKind::Incomplete, buf.len()))?;
            if line_end == pos {
                break next;
            }
            let name_end = pos
                + buf[pos..line_end]
                    .iter()
                    .take_while(|&&b| is_token(b))
                    .count();
            if name_end == pos {
                return Err(ParseError::new(ErrorKind::BadHeaderName, pos));
            }
            let mut colon = name_end;
            while matches!(buf.get(colon), Some(b' ' | b'\t')) {
                colon += 1;
            }
            if colon >= line_end || buf[colon] != b':' {
                return Err(ParseError::new(ErrorKind::BadHeaderName, colon));
            }
            // Folded continuation lines belong to this header.
            let mut value_end = line_end;
            while matches!(buf.get(next), Some(b' ' | b'\t')) {
                let (cont_end, cont_next) = find_line(buf, next)
                    .ok_or_else(|| ParseError::new(ErrorKind::Incomplete, buf.len()))?;
                value_end = cont_end;
                next = cont_next;
            }
            let mut value_start = colon + 1;
            while value_start < value_end && is_lws(buf[value_start]) {
                value_start += 1;
            }
            while value_end > value_start && is_lws(buf[value_end - 1]) {
                value_end -= 1;
            }
            let name = HeaderName::from_bytes(&buf[pos..name_end]);
            if name == HeaderName::ContentLength {
                let value = &buf[value_start..value_end];
                let length = parse_u64(value)
                    .and_then(|v| u32::try_from(v).ok())
                    .ok_or_else(|| {
                        ParseError::new(ErrorKind::BadContentLength, value_start).in_header(name)
                    })?;
                if content_length.is_some_and(|previous| previous != length) {
                    return Err(
                        ParseError::new(ErrorKind::ConflictingContentLength, pos).in_header(name)
                    );
                }
                content_length = Some(length);
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::new(ErrorKind::TooManyHeaders, pos));
            }
            headers.push(HeaderEntry {
                name,
                raw_name: Span::new(pos, name_end),
                value: Span::new(value_start, value_end),
            });
            pos = next;
        };
        let body_end = match content_length {
            Some(length) => {
                let end = body_start
                    .checked_add(length as usize)
                    .filter(|&end| end <= buf.len());
                let Some(end) = end else {
                    return Err(ParseError::new(ErrorKind::BodyTruncated, buf.len())
                        .in_header(HeaderName::ContentLength));
                };
                end
            }
            None => buf.len(),
        };
        Ok(Message {
            extent: Span::new(msg_start, body_end),
            start_line,
            headers,
            body: Span::new(body_start, body_end),
            content_length,
            bytes,
        })
    }

    /// This message with `replacement` in place of `range` of [`as_bytes`](Self::as_bytes),
    /// indexed by moving the existing index instead of parsing again. `None` when a boundary
    /// of the start line, a header or the body falls strictly inside `range` (the caller
    /// then has to parse), or the result would be too long to index.
    pub(crate) fn spliced(
        &self,
        range: std::ops::Range<usize>,
        replacement: &[u8],
    ) -> Option<Message> {
        let base = self.extent.start as usize;
        let (a, b) = (base.checked_add(range.start)?, base.checked_add(range.end)?);
        if a > b || b > self.extent.end as usize {
            return None;
        }
        let old = self.bytes.get(base..self.extent.end as usize)?;
        let new_len = old.len() - (b - a) + replacement.len();
        if new_len >= u32::MAX as usize {
            return None;
        }
        // A start at the splice point stays before it; an end there moves past the new bytes.
        let start = |p: u32| -> Option<u32> {
            let p = p as usize;
            if p <= a {
                Some((p - base) as u32)
            } else if p >= b {
                Some((p - b + (a - base) + replacement.len()) as u32)
            } else {
                None
            }
        };
        let end = |p: u32| -> Option<u32> {
            let p = p as usize;
            if p >= b {
                Some((p - b + (a - base) + replacement.len()) as u32)
            } else if p <= a {
                Some((p - base) as u32)
            } else {
                None
            }
        };
        let span = |s: Span| -> Option<Span> {
            Some(Span {
                start: start(s.start)?,
                end: end(s.end)?,
            })
        };
        let start_line = match self.start_line {
            StartLine::Request {
                method,
                uri,
                version,
            } => StartLine::Request {
                method: span(method)?,
                uri: span(uri)?,
                version: span(version)?,
            },
            StartLine::Response {
                version,
                code,
                reason,
            } => StartLine::Response {
                version: span(version)?,
                code,
                reason: span(reason)?,
            },
        };
        let headers = self
            .headers
            .iter()
            .map(|h| {
                Some(HeaderEntry {
                    name: h.name,
                    raw_name: span(h.raw_name)?,
                    value: span(h.value)?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let body = span(self.body)?;
        let mut bytes = Vec::with_capacity(new_len);
        bytes.extend_from_slice(&old[..a - base]);
        bytes.extend_from_slice(replacement);
        bytes.extend_from_slice(&old[b - base..]);
        Some(Message {
            bytes: Bytes::from(bytes),
            extent: Span::new(0, new_len),
            start_line,
            headers,
            body,
            content_length: self.content_length,
        })
    }

    fn slice(&self, span: Span) -> &[u8] {
        self.bytes.get(span.range()).unwrap_or_default()
    }

    /// The message bytes exactly as received (without leading CRLFs and
    /// without octets after the Content-Length body).
    pub fn as_bytes(&self) -> &[u8] {
        self.slice(self.extent)
    }

    /// The message bytes as a zero-copy [`Bytes`].
    pub fn to_bytes(&self) -> Bytes {
        self.bytes.slice(self.extent.range())
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start_line, StartLine::Request { .. })
    }

    /// Whether this is a response.
    pub fn is_response(&self) -> bool {
        !self.is_request()
    }

    /// The request method (None for responses).
    pub fn method(&self) -> Option<Method<'_>> {
        match self.start_line {
            StartLine::Request { method, .. } => {
                Some(Method::from_token(ascii_str(self.slice(method))))
            }
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI as written (None for responses).
    pub fn request_uri_raw(&self) -> Option<&[u8]> {
        match self.start_line {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    /// The parsed Request-URI. Errors for responses and malformed URIs.
    pub fn request_uri(&self) -> Result<Uri<'_>, ParseError> {
        match self.start_line {
            StartLine::Request { uri, .. } => parse_uri(self.slice(uri), uri.start as usize),
            StartLine::Response { .. } => Err(ParseError::new(ErrorKind::WrongMessageType, 0)),
        }
    }

    /// The SIP-Version as written (`SIP/2.0`); its syntax was checked.
    pub fn version(&self) -> &[u8] {
        match self.start_line {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => {
                self.slice(version)
            }
        }
    }

    /// Whether the version is `SIP/2.0` (case-insensitive `SIP`).
    pub fn is_sip_2_0(&self) -> bool {
        self.version().eq_ignore_ascii_case(b"SIP/2.0")
    }

    /// The status code (100..=699) of a response.
    pub fn status(&self) -> Option<u16> {
        match self.start_line {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (may be empty or non-UTF-8).
    pub fn reason(&self) -> Option<&[u8]> {
        match self.start_line {
            StartLine::Response { reason, .. } => Some(self.slice(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// The body (exact bytes; binary safe).
    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// The body as a zero-copy [`Bytes`].
    pub fn body_bytes(&self) -> Bytes {
        self.bytes.slice(self.body.range())
    }

    /// The Content-Length value, if the header is present.
    pub fn content_length(&self) -> Option<usize> {
        self.content_length.map(|l| l as usize)
    }

    /// All header lines in order.
    pub fn headers(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        self.headers.iter().map(|h| Header {
            name: h.name,
            raw_name: self.slice(h.raw_name),
            value: self.slice(h.value),
            offset: h.value.start as usize,
            line: self.slice(Span {
                start: h.raw_name.start,
                end: h.value.end,
            }),
        })
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    /// The values of every header line with this name, in order (compact
    /// and long forms alike). `HeaderName::Other` yields all unknown headers;
    /// use [`headers_by_name`](Self::headers_by_name) for a specific one.
    /// Comma-separated lists are not split.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| self.slice(h.value))
    }

    /// The value of the first header line with this name.
    pub fn header(&self, name: HeaderName) -> Option<&[u8]> {
        self.headers_named(name).next()
    }

    /// The values of every header line whose name matches `name`
    /// (case-insensitive; a known name also matches its compact form).
    pub fn headers_by_name<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        let resolved = HeaderName::from_bytes(name.as_bytes());
        self.headers
            .iter()
            .filter(move |h| {
                h.name == resolved
                    && (resolved != HeaderName::Other
                        || self.slice(h.raw_name).eq_ignore_ascii_case(name.as_bytes()))
            })
            .map(|h| self.slice(h.value))
    }

    fn values_with_offset(&self, name: HeaderName) -> impl Iterator<Item = (&[u8], usize)> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(|h| (self.slice(h.value), h.value.start as usize))
    }

    /// Comma-separated list elements across all lines of a header.
    fn elements(&self, name: HeaderName) -> impl Iterator<Item = (&[u8], usize)> + '_ {
        self.values_with_offset(name)
            .flat_map(|(value, offset)| CommaSplit::new(value, offset))
    }

    fn first_value(&self, name: HeaderName) -> Result<(&[u8], usize), ParseError> {
        self.values_with_offset(name).next().ok_or_else(|| {
            ParseError::new(ErrorKind::MissingHeader, self.body.start as usize).in_header(name)
        })
    }

    /// Every Via value, in order, across repeated headers and comma lists.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, ParseError>> + '_ {
        self.elements(HeaderName::Via)
            .map(|(v, o)| Via::parse(v, o).map_err(|e| e.in_header(HeaderName::Via)))
    }

    /// The top (first) Via value.
    pub fn top_via(&self) -> Result<Via<'_>, ParseError> {
        self.vias().next().unwrap_or_else(|| {
            Err(
                ParseError::new(ErrorKind::MissingHeader, self.body.start as usize)
                    .in_header(HeaderName::Via),
            )
        })
    }

    /// The branch of the top Via, if present and parseable.
    pub fn branch(&self) -> Option<&str> {
        self.top_via().ok()?.branch()
    }

    /// The Call-ID (first one).
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let (value, offset) = self.first_value(HeaderName::CallId)?;
        if value.is_empty() {
            return Err(
                ParseError::new(ErrorKind::EmptyValue, offset).in_header(HeaderName::CallId)
            );
        }
        // callid = word ["@" word]: printable ASCII without white space.
        if let Some(bad) = value.iter().position(|&b| !(0x21..=0x7e).contains(&b)) {
            return Err(ParseError::new(ErrorKind::UnexpectedChar, offset + bad)
                .in_header(HeaderName::CallId));
        }
        Ok(ascii_str(value))
    }

    /// The CSeq (first one).
    pub fn cseq(&self) -> Result<CSeq<'_>, ParseError> {
        let (value, offset) = self.first_value(HeaderName::CSeq)?;
        CSeq::parse(value, offset).map_err(|e| e.in_header(HeaderName::CSeq))
    }

    /// The From header (first one).
    pub fn from(&self) -> Result<NameAddr<'_>, ParseError> {
        let (value, offset) = self.first_value(HeaderName::From)?;
        NameAddr::parse(value, offset).map_err(|e| e.in_header(HeaderName::From))
    }

    /// The To header (first one).
    pub fn to(&self) -> Result<NameAddr<'_>, ParseError> {
        let (value, offset) = self.first_value(HeaderName::To)?;
        NameAddr::parse(value, offset).map_err(|e| e.in_header(HeaderName::To))
    }

    /// The From tag, if From parses and has one.
    pub fn from_tag(&self) -> Option<&str> {
        self.from().ok()?.tag()
    }

    /// The To tag, if To parses and has one.
    pub fn to_tag(&self) -> Option<&str> {
        self.to().ok()?.tag()
    }

    fn optional_number(&self, name: HeaderName) -> Result<Option<u32>, ParseError> {
        match self.values_with_offset(name).next() {
            None => Ok(None),
            Some((value, offset)) => parse_u32(value)
                .map(Some)
                .map_err(|kind| ParseError::new(kind, offset).in_header(name)),
        }
    }

    /// Max-Forwards (0..=255), if present.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        match self.optional_number(HeaderName::MaxForwards)? {
            None => Ok(None),
            Some(value) => u8::try_from(value).map(Some).map_err(|_| {
                let offset = self
                    .first_value(HeaderName::MaxForwards)
                    .map_or(0, |(_, o)| o);
                ParseError::new(ErrorKind::NumberOutOfRange, offset)
                    .in_header(HeaderName::MaxForwards)
            }),
        }
    }

    /// The Expires header in seconds, if present.
    pub fn expires(&self) -> Result<Option<u32>, ParseError> {
        self.optional_number(HeaderName::Expires)
    }

    /// The Min-Expires header in seconds, if present.
    pub fn min_expires(&self) -> Result<Option<u32>, ParseError> {
        self.optional_number(HeaderName::MinExpires)
    }

    /// Every Contact value, in order, across lines and comma lists.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, ParseError>> + '_ {
        self.elements(HeaderName::Contact)
            .map(|(v, o)| Contact::parse(v, o).map_err(|e| e.in_header(HeaderName::Contact)))
    }

    fn name_addrs(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.elements(name)
            .map(move |(v, o)| NameAddr::parse(v, o).map_err(|e| e.in_header(name)))
    }

    /// Every Route value, in order.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.name_addrs(HeaderName::Route)
    }

    /// Every Record-Route value, in order.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.name_addrs(HeaderName::RecordRoute)
    }

    /// Every Path value, in order.
    pub fn paths(&self) -> impl Iterator<Item = Result<NameAddr<'_>, ParseError>> + '_ {
        self.name_addrs(HeaderName::Path)
    }

    /// Option tags of a Supported/Require/Proxy-Require/Unsupported-style
    /// header, across lines and comma lists.
    pub fn option_tags(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<&str, ParseError>> + '_ {
        self.elements(name).map(move |(v, o)| {
            let mut cursor = Cursor::new(v, o);
            let tag = cursor
                .token(ErrorKind::EmptyValue)
                .map_err(|e| e.in_header(name))?;
            if !cursor.at_end() {
                return Err(cursor.err(ErrorKind::UnexpectedChar).in_header(name));
            }
            Ok(tag)
        })
    }

    /// Option tags in Supported.
    pub fn supported(&self) -> impl Iterator<Item = Result<&str, ParseError>> + '_ {
        self.option_tags(HeaderName::Supported)
    }

    /// Option tags in Require.
    pub fn require(&self) -> impl Iterator<Item = Result<&str, ParseError>> + '_ {
        self.option_tags(HeaderName::Require)
    }

    /// Option tags in Proxy-Require.
    pub fn proxy_require(&self) -> impl Iterator<Item = Result<&str, ParseError>> + '_ {
        self.option_tags(HeaderName::ProxyRequire)
    }

    /// The Content-Type, if present.
    pub fn content_type(&self) -> Result<Option<MediaType<'_>>, ParseError> {
        match self.values_with_offset(HeaderName::ContentType).next() {
            None => Ok(None),
            Some((value, offset)) => MediaType::parse(value, offset)
                .map(Some)
                .map_err(|e| e.in_header(HeaderName::ContentType)),
        }
    }

    /// The User-Agent value (raw bytes), if present.
    pub fn user_agent(&self) -> Option<&[u8]> {
        self.header(HeaderName::UserAgent).map(trim_lws)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Contact;
    use crate::uri::Host;

    fn parse(text: &str) -> Message {
        Message::parse_slice(text.as_bytes()).unwrap()
    }

    fn parse_err(text: &[u8]) -> ParseError {
        Message::parse_slice(text).unwrap_err()
    }

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        v: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK2\r\n\
        Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK3;received=192.0.2.99;rport=5062\r\n\
        MAX-FORWARDS: 70\r\n\
        t: Bob <sip:bob@example.com>\r\n\
        f: \"Alice\" <sip:alice@example.com>;tag=1928301774\r\n\
        i: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        m: <sip:alice@pc33.example.com>, \"Second, with comma\" <sip:a2@[2001:db8::2]>;q=0.5\r\n\
        k: path, outbound\r\n\
        Require: 100rel\r\n\
        Proxy-Require: foo\r\n\
        c: application/sdp\r\n\
        X-Custom: one\r\n\
        x-custom: two\r\n\
        l: 4\r\n\
        \r\n\
        \x00\x01\x7f\n";

    #[test]
    fn request_with_compact_forms() {
        let m = parse(INVITE);
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri().unwrap().as_str(), "sip:bob@example.com");
        assert_eq!(m.status(), None);
        let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0].branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(vias[1].host(), Host::Ipv6("2001:db8::1"));
        assert_eq!(vias[1].port(), Some(5070));
        assert_eq!(vias[1].transport(), "TCP");
        assert_eq!(vias[2].received(), Some("192.0.2.99"));
        assert_eq!(
            m.top_via().unwrap().host(),
            Host::Domain("pc33.example.com")
        );
        assert_eq!(m.branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.max_forwards(), Ok(Some(70)));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.from_tag(), Some("1928301774"));
        assert_eq!(m.call_id(), Ok("a84b4c76e66710@pc33.example.com"));
        let cseq = m.cseq().unwrap();
        assert_eq!((cseq.seq, cseq.method), (314159, Method::Invite));
        let contacts: Vec<_> = m.contacts().map(Result::unwrap).collect();
        assert_eq!(contacts.len(), 2);
        let second = contacts[1].address().unwrap();
        assert_eq!(
            second.display_name().unwrap().text().as_ref(),
            b"Second, with comma"
        );
        assert_eq!(second.q(), Some(500));
        assert_eq!(
            m.supported().map(Result::unwrap).collect::<Vec<_>>(),
            ["path", "outbound"]
        );
        assert_eq!(
            m.require().map(Result::unwrap).collect::<Vec<_>>(),
            ["100rel"]
        );
        assert_eq!(
            m.proxy_require().map(Result::unwrap).collect::<Vec<_>>(),
            ["foo"]
        );
        assert!(m.content_type().unwrap().unwrap().is("application", "sdp"));
        assert_eq!(
            m.headers_by_name("x-CUSTOM").collect::<Vec<_>>(),
            [&b"one"[..], b"two"]
        );
        assert_eq!(
            m.headers_by_name("Call-ID").collect::<Vec<_>>(),
            [&b"a84b4c76e66710@pc33.example.com"[..]]
        );
        assert_eq!(m.headers_named(HeaderName::Via).count(), 2);
        assert_eq!(m.content_length(), Some(4));
        assert_eq!(m.body(), b"\x00\x01\x7f\n");
        assert_eq!(m.as_bytes(), INVITE.as_bytes());
        let names: Vec<_> = m.headers().map(|h| h.name).collect();
        assert_eq!(names[0], HeaderName::Via);
        assert_eq!(names[3], HeaderName::To);
        assert_eq!(*names.last().unwrap(), HeaderName::ContentLength);
    }

    #[test]
    fn all_compact_forms_resolve() {
        let pairs = [
            ("v", HeaderName::Via),
            ("i", HeaderName::CallId),
            ("M", HeaderName::Contact),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("l", HeaderName::ContentLength),
            ("c", HeaderName::ContentType),
            ("k", HeaderName::Supported),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("u", HeaderName::AllowEvents),
            ("r", HeaderName::ReferTo),
            ("a", HeaderName::AcceptContact),
            ("b", HeaderName::ReferredBy),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("www-authenticate", HeaderName::WwwAuthenticate),
            ("PROXY-AUTHORIZATION", HeaderName::ProxyAuthorization),
            ("Record-Route", HeaderName::RecordRoute),
            ("z", HeaderName::Other),
            ("Via-X", HeaderName::Other),
        ];
        for (name, expected) in pairs {
            assert_eq!(HeaderName::from_bytes(name.as_bytes()), expected, "{name}");
        }
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert_eq!(HeaderName::Via.compact(), Some("v"));
    }

    #[test]
    fn response_status_line() {
        let m = parse("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n");
        assert!(m.is_response());
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.reason(), Some(&b"Ringing"[..]));
        assert_eq!(m.method(), None);
        assert_eq!(
            m.request_uri().unwrap_err().kind(),
            ErrorKind::WrongMessageType
        );
        let empty_reason = parse("SIP/2.0 200\r\n\r\n");
        assert_eq!(empty_reason.reason(), Some(&b""[..]));
        for bad in [
            &b"SIP/2.0 099 Low\r\n\r\n"[..],
            b"SIP/2.0 700 High\r\n\r\n",
            b"SIP/2.0 20 Short\r\n\r\n",
            b"SIP/2.0 2000 Long\r\n\r\n",
            b"SIP/2.0\r\n\r\n",
            b"SIP/2.x 200 OK\r\n\r\n",
        ] {
            assert!(
                Message::parse_slice(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn folded_headers_belong_to_previous() {
        let m = parse("OPTIONS sip:a@b SIP/2.0\r\nSubject: first\r\n\tsecond\r\n  third\r\nTo:\r\n <sip:a@b>\r\n ;tag=x\r\n\r\n");
        assert_eq!(m.header_count(), 2);
        assert_eq!(
            m.header(HeaderName::Subject),
            Some(&b"first\r\n\tsecond\r\n  third"[..])
        );
        assert_eq!(m.to_tag(), Some("x"));
        // A continuation line right after the start line has no header to join.
        assert_eq!(
            parse_err(b"OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n").kind(),
            ErrorKind::BadHeaderName
        );
    }

    #[test]
    fn line_endings_and_leading_crlf() {
        let m = parse("\r\n\r\nOPTIONS sip:a@b SIP/2.0\nTo: <sip:a@b>\n\nbody");
        assert_eq!(m.to().unwrap().uri().as_str(), "sip:a@b");
        assert_eq!(m.body(), b"body");
        assert_eq!(
            m.as_bytes(),
            b"OPTIONS sip:a@b SIP/2.0\nTo: <sip:a@b>\n\nbody"
        );
        assert_eq!(parse_err(b"\r\n\r\n").kind(), ErrorKind::Empty);
        assert_eq!(parse_err(b"").kind(), ErrorKind::Empty);
    }

    #[test]
    fn content_length_rules() {
        let base = "OPTIONS sip:a@b SIP/2.0\r\n";
        let with = |headers: &str, body: &str| format!("{base}{headers}\r\n{body}").into_bytes();
        let m = Message::parse_slice(&with("Content-Length: 3\r\n", "abcdef")).unwrap();
        assert_eq!(m.body(), b"abc");
        assert!(m.as_bytes().ends_with(b"\r\n\r\nabc"));
        let m = Message::parse_slice(&with("", "rest of datagram")).unwrap();
        assert_eq!(m.body(), b"rest of datagram");
        assert_eq!(m.content_length(), None);
        let m = Message::parse_slice(&with("l: 2\r\nContent-Length: 2\r\n", "xy")).unwrap();
        assert_eq!(m.body(), b"xy");
        let cases = [
            ("Content-Length: 10\r\n", ErrorKind::BodyTruncated),
            ("Content-Length: -1\r\n", ErrorKind::BadContentLength),
            ("Content-Length: abc\r\n", ErrorKind::BadContentLength),
            (
                "Content-Length: 99999999999999999999\r\n",
                ErrorKind::BadContentLength,
            ),
            ("Content-Length:\r\n", ErrorKind::BadContentLength),
            (
                "Content-Length: 1\r\nl: 2\r\n",
                ErrorKind::ConflictingContentLength,
            ),
        ];
        for (headers, kind) in cases {
            let err = Message::parse_slice(&with(headers, "ab")).unwrap_err();
            assert_eq!(err.kind(), kind, "{headers}");
            assert_eq!(err.header(), Some(HeaderName::ContentLength));
        }
    }

    #[test]
    fn framing_errors_point_at_the_problem() {
        let err = parse_err(b"OPTIONS sip:a@b SIP/2.0\r\nTo <sip:a@b>\r\n\r\n");
        assert_eq!(err.kind(), ErrorKind::BadHeaderName);
        assert_eq!(err.offset(), 28);
        assert_eq!(err.to_string(), "malformed header name at byte 28");
        assert_eq!(
            parse_err(b"OPTIONS sip:a@b SIP/2.0\r\nTo: x\r\n").kind(),
            ErrorKind::Incomplete
        );
        assert_eq!(
            parse_err(b"OPTIONS sip:a@b SIP/2.0").kind(),
            ErrorKind::Incomplete
        );
        assert_eq!(
            parse_err(b"OPTIONS sip:a@b\r\n\r\n").kind(),
            ErrorKind::BadStartLine
        );
        assert_eq!(
            parse_err(b"OPTIONS sip:a@b SIP/2\r\n\r\n").kind(),
            ErrorKind::BadVersion
        );
        assert_eq!(
            parse_err(b"OPT;ONS sip:a@b SIP/2.0\r\n\r\n").kind(),
            ErrorKind::BadMethod
        );
        assert_eq!(
            parse_err(b"OPTIONS  SIP/2.0\r\n\r\n").kind(),
            ErrorKind::BadStartLine
        );
        assert_eq!(parse_err(b": x\r\n\r\n").kind(), ErrorKind::BadMethod);
        assert_eq!(
            parse_err(b"garbage\r\n\r\n").kind(),
            ErrorKind::BadStartLine
        );
        let m = parse("OPTIONS sip:a@b SIP/2.0\r\nCSeq: x OPTIONS\r\n\r\n");
        let err = m.cseq().unwrap_err();
        assert_eq!(err.header(), Some(HeaderName::CSeq));
        assert_eq!(err.offset(), 31);
        assert_eq!(
            err.to_string(),
            "malformed number at byte 31 in header CSeq"
        );
    }

    #[test]
    fn limits() {
        let mut text = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        for i in 0..5 {
            text.push_str(&format!("X-H{i}: v\r\n"));
        }
        text.push_str("\r\n");
        let tight = ParseLimits {
            max_headers: 4,
            ..ParseLimits::default()
        };
        let err = Message::parse_with(Bytes::from(text.clone()), &tight).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooManyHeaders);
        assert!(Message::parse_with(Bytes::from(text.clone()), &ParseLimits::default()).is_ok());
        let small = ParseLimits {
            max_message_len: 10,
            ..ParseLimits::default()
        };
        assert_eq!(
            Message::parse_with(Bytes::from(text), &small)
                .unwrap_err()
                .kind(),
            ErrorKind::TooLarge
        );
    }

    #[test]
    fn contact_star_and_expires() {
        let m = parse(
            "REGISTER sip:example.com SIP/2.0\r\nContact: *\r\nExpires: 0\r\nMin-Expires: 60\r\n\r\n",
        );
        assert_eq!(
            m.contacts().map(Result::unwrap).collect::<Vec<_>>(),
            [Contact::Star]
        );
        assert_eq!(m.expires(), Ok(Some(0)));
        assert_eq!(m.min_expires(), Ok(Some(60)));
    }

    #[test]
    fn quoted_sip_instance_in_contact_list() {
        let m = parse(
            "REGISTER sip:example.com SIP/2.0\r\n\
             Contact: <sip:a@192.0.2.1;ob>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";reg-id=1, \
             <sip:b@192.0.2.2>;expires=60\r\n\r\n",
        );
        let contacts: Vec<_> = m.contacts().map(Result::unwrap).collect();
        assert_eq!(contacts.len(), 2);
        let first = contacts[0].address().unwrap();
        assert_eq!(
            first.sip_instance().unwrap().as_ref(),
            b"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>"
        );
        assert_eq!(first.reg_id(), Some(1));
        assert!(first.uri().as_sip().unwrap().ob());
        assert_eq!(contacts[1].address().unwrap().expires(), Some(60));
    }

    #[test]
    fn routes_and_paths() {
        let m = parse(
            "INVITE sip:a@b SIP/2.0\r\nRoute: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\nRoute: <sip:p3.example.com>\r\n\
             Record-Route: <sip:rr.example.com;lr>\r\nPath: <sip:edge.example.com;lr;ob>\r\n\r\n",
        );
        let routes: Vec<_> = m.routes().map(|r| r.unwrap().uri().as_str()).collect();
        assert_eq!(
            routes,
            [
                "sip:p1.example.com;lr",
                "sip:p2.example.com;lr",
                "sip:p3.example.com"
            ]
        );
        assert_eq!(m.record_routes().count(), 1);
        assert!(m
            .paths()
            .next()
            .unwrap()
            .unwrap()
            .uri()
            .as_sip()
            .unwrap()
            .ob());
    }

    #[test]
    fn non_utf8_header_values_are_bytes() {
        let m = Message::parse_slice(
            b"OPTIONS sip:a@b SIP/2.0\r\nSubject: \xff\xfe\r\nUser-Agent: ua \xc3\r\n\r\n",
        )
        .unwrap();
        let subject = m.headers().find(|h| h.name == HeaderName::Subject).unwrap();
        assert_eq!(subject.value, b"\xff\xfe");
        assert_eq!(subject.value_str(), None);
        assert_eq!(m.user_agent(), Some(&b"ua \xc3"[..]));
    }

    #[test]
    fn views_report_missing_headers() {
        let m = parse("OPTIONS sip:a@b SIP/2.0\r\n\r\n");
        assert_eq!(m.top_via().unwrap_err().kind(), ErrorKind::MissingHeader);
        assert_eq!(m.cseq().unwrap_err().header(), Some(HeaderName::CSeq));
        assert_eq!(m.branch(), None);
        assert_eq!(m.max_forwards(), Ok(None));
        assert_eq!(m.content_type(), Ok(None));
        assert_eq!(m.contacts().count(), 0);
    }
}
