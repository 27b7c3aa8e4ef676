//! Framing SIP messages out of a byte stream (TCP, TLS).
//!
//! [`StreamFramer`] is sans-IO: the transport appends whatever it read to a
//! [`BytesMut`] and calls [`StreamFramer::next_frame`] until it returns
//! `Ok(None)`. Each complete message is split off the front of the buffer as
//! [`Bytes`] without copying, ready for the message parser.
//!
//! A message on a stream is delimited by its `Content-Length` (RFC 3261
//! §18.3), which must be well-formed. One without any is taken to have no body
//! (as Kamailio's `tcp_accept_no_cl` does), so it can still be answered (RFC
//! 4475 `bext01` gets its 420 over TCP too); a body it did carry then breaks
//! the framing of what follows. CRLFs before a
//! message are skipped (§7.5); a double CRLF is an RFC 5626 keep-alive ping,
//! reported as [`Frame::KeepAlivePing`] so the transport can answer with a
//! single CRLF pong.
//!
//! Limits are checked as soon as they can be: an over-long header section is
//! rejected before its end arrives, and an oversize `Content-Length` before
//! the body arrives.
//!
//! **Errors are final.** Once framing fails the framer cannot know where the
//! next message starts, so it stays failed: every later call returns the same
//! error, and the transport must close the connection (after sending a
//! response, if it wants to).
//!
//! ```
//! use bytes::BytesMut;
//! use sip_message::framer::{Frame, FramerConfig, StreamFramer};
//!
//! let mut framer = StreamFramer::new(FramerConfig::default());
//! let mut buf = BytesMut::from(&b"\r\n\r\nOPTIONS sip:a SIP/2.0\r\nl: 2\r\n\r\nhi"[..]);
//! assert_eq!(framer.next_frame(&mut buf)?, Some(Frame::KeepAlivePing));
//! let Some(Frame::Message(message)) = framer.next_frame(&mut buf)? else { panic!() };
//! assert!(message.ends_with(b"\r\n\r\nhi"));
//! assert_eq!(framer.next_frame(&mut buf)?, None);
//! # Ok::<(), sip_message::framer::FramingError>(())
//! ```

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

/// Limits applied while framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerConfig {
    /// Largest whole message (header section plus body), in bytes.
    pub max_message_size: usize,
    /// Largest number of header fields (not counting the start line).
    pub max_header_count: usize,
    /// Largest header section (start line, headers and the empty line), in bytes.
    pub max_header_section_size: usize,
}

impl Default for FramerConfig {
    /// 64 KiB messages, 128 header fields, 16 KiB header section.
    fn default() -> Self {
        FramerConfig {
            max_message_size: 64 * 1024,
            max_header_count: 128,
            max_header_section_size: 16 * 1024,
        }
    }
}

/// What [`StreamFramer::next_frame`] found at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One complete message: start line, headers, empty line and body.
    Message(Bytes),
    /// An RFC 5626 CRLFCRLF ping; answer it with a single CRLF (pong).
    KeepAlivePing,
}

/// Why a stream can no longer be framed. See the module docs: it is final.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FramingError {
    /// A `Content-Length` value is not a decimal number.
    InvalidContentLength {
        /// Offset of the header field in the message.
        offset: usize,
    },
    /// Two `Content-Length` headers disagree.
    ConflictingContentLength {
        /// The value seen first.
        first: usize,
        /// The value seen later.
        second: usize,
    },
    /// The header section is larger than the configured limit.
    HeaderSectionTooLarge {
        /// [`FramerConfig::max_header_section_size`]
        limit: usize,
    },
    /// More header fields than the configured limit.
    TooManyHeaders {
        /// [`FramerConfig::max_header_count`]
        limit: usize,
    },
    /// Header section plus `Content-Length` exceed the configured limit.
    MessageTooLarge {
        /// [`FramerConfig::max_message_size`]
        limit: usize,
    },
    /// The first line is neither a request line nor a status line: these are
    /// not SIP bytes.
    NotSip,
    /// The caller removed bytes the framer had already looked at (the buffer
    /// must only be appended to between calls).
    BufferShrunk,
}

impl fmt::Display for FramingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FramingError::InvalidContentLength { offset } => {
                write!(f, "invalid Content-Length value in header at byte {offset}")
            }
            FramingError::ConflictingContentLength { first, second } => {
                write!(
                    f,
                    "conflicting Content-Length headers: {first} and {second}"
                )
            }
            FramingError::HeaderSectionTooLarge { limit } => {
                write!(f, "header section larger than {limit} bytes")
            }
            FramingError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header fields")
            }
            FramingError::MessageTooLarge { limit } => {
                write!(f, "message larger than {limit} bytes")
            }
            FramingError::NotSip => f.write_str("not a SIP request or status line"),
            FramingError::BufferShrunk => {
                f.write_str("stream buffer shrank between calls to the framer")
            }
        }
    }
}

impl std::error::Error for FramingError {}

/// Splits a byte stream into SIP messages. One per connection.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    config: FramerConfig,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    /// At a message boundary: skipping CRLFs.
    Idle,
    /// Inside the header section. Offsets are from the buffer start, which is
    /// the message start.
    Headers(HeaderScan),
    /// Header section done, waiting until `total` bytes are buffered.
    Body { total: usize },
    /// Framing failed; the stream is unusable.
    Failed(FramingError),
}

#[derive(Debug, Clone, Default)]
struct HeaderScan {
    /// Start of the next line not yet classified.
    line_start: usize,
    /// The line at `line_start` has been classified and its end is awaited.
    in_line: bool,
    /// Where the search for the end of the current line resumes, so each
    /// byte is looked at once however the input is chunked.
    search_from: usize,
    /// Start of the field (or the start line) whose end is not yet known
    /// because a continuation line may still follow.
    open_field: Option<usize>,
    /// True until the start line has been closed.
    in_start_line: bool,
    header_count: usize,
    content_length: Option<usize>,
}

impl StreamFramer {
    /// A framer for a new connection.
    pub fn new(config: FramerConfig) -> Self {
        StreamFramer {
            config,
            state: State::Idle,
        }
    }

    /// The limits in use.
    pub fn config(&self) -> &FramerConfig {
        &self.config
    }

    /// True once a [`FramingError`] was returned; the connection must be closed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// True if part of a message (beyond skipped CRLFs) is buffered, e.g. to
    /// tell a clean close from one in the middle of a message.
    pub fn is_mid_message(&self) -> bool {
        matches!(self.state, State::Headers(_) | State::Body { .. })
    }

    /// Returns the next frame at the front of `buf`, removing it from `buf`;
    /// `Ok(None)` when more bytes are needed.
    ///
    /// Between calls the caller may only append to `buf`. After an error
    /// every call returns that error again.
    pub fn next_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        let result = self.advance(buf);
        if let Err(error) = &result {
            self.state = State::Failed(error.clone());
        }
        result
    }

    fn advance(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FramingError> {
        loop {
            match &mut self.state {
                State::Failed(error) => return Err(error.clone()),
                State::Idle => {
                    match keepalive_prefix(buf) {
                        Prefix::Ping => {
                            buf.advance(4);
                            return Ok(Some(Frame::KeepAlivePing));
                        }
                        Prefix::LoneCrlf => {
                            buf.advance(2);
                            continue;
                        }
                        Prefix::NeedMore => return Ok(None),
                        Prefix::Message => {}
                    }
                    self.state = State::Headers(HeaderScan {
                        in_start_line: true,
                        ..HeaderScan::default()
                    });
                }
                State::Headers(scan) => {
                    if buf.len() < scan.search_from {
                        return Err(FramingError::BufferShrunk);
                    }
                    let section_too_large = FramingError::HeaderSectionTooLarge {
                        limit: self.config.max_header_section_size,
                    };
                    let Some(header_len) = scan.scan(buf, &self.config)? else {
                        // No end yet, so the section is at least as long as the buffer.
                        if buf.len() > self.config.max_header_section_size {
                            return Err(section_too_large);
                        }
                        return Ok(None);
                    };
                    if header_len > self.config.max_header_section_size {
                        return Err(section_too_large);
                    }
                    if !looks_like_sip(buf) {
                        return Err(FramingError::NotSip);
                    }
                    let body_len = scan.content_length.unwrap_or(0);
                    let total = header_len
                        .checked_add(body_len)
                        .filter(|total| *total <= self.config.max_message_size)
                        .ok_or(FramingError::MessageTooLarge {
                            limit: self.config.max_message_size,
                        })?;
                    self.state = State::Body { total };
                }
                State::Body { total } => {
                    if buf.len() < *total {
                        return Ok(None);
                    }
                    let message = buf.split_to(*total).freeze();
                    self.state = State::Idle;
                    return Ok(Some(Frame::Message(message)));
                }
            }
        }
    }
}

enum Prefix {
    Ping,
    LoneCrlf,
    NeedMore,
    Message,
}

/// Classifies the bytes at a message boundary. A CRLF is only known to be a
/// lone CRLF once the byte after it is seen not to start another CRLF.
fn keepalive_prefix(buf: &[u8]) -> Prefix {
    const PING: &[u8] = b"\r\n\r\n";
    match buf.first() {
        None => return Prefix::NeedMore,
        Some(b'\r') => {}
        Some(_) => return Prefix::Message,
    }
    let known = buf.len().min(PING.len());
    if buf[..known] == PING[..known] {
        return if known == PING.len() {
            Prefix::Ping
        } else {
            Prefix::NeedMore
        };
    }
    // `buf` starts with '\r' but diverges from CRLFCRLF somewhere.
    if buf.len() >= 2 && buf[1] == b'\n' {
        Prefix::LoneCrlf
    } else {
        Prefix::Message
    }
}

fn is_wsp(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

impl HeaderScan {
    /// Consumes the lines available in `buf`; returns the header section
    /// length (including the empty line) once it is complete.
    fn scan(&mut self, buf: &[u8], config: &FramerConfig) -> Result<Option<usize>, FramingError> {
        loop {
            if self.in_line {
                let Some(next) = self.find_line_end(buf) else {
                    return Ok(None);
                };
                self.line_start = next;
                self.in_line = false;
            }
            let Some(&first) = buf.get(self.line_start) else {
                return Ok(None);
            };
            if is_wsp(first) && self.open_field.is_some() {
                // Continuation line: the open field goes on.
                self.in_line = true;
                continue;
            }
            // Any other line closes the open field.
            if let Some(field_start) = self.open_field.take() {
                self.close_field(&buf[field_start..self.line_start], field_start, config)?;
            }
            let empty_line_len = match first {
                b'\n' => Some(1),
                b'\r' => match buf.get(self.line_start + 1) {
                    None => return Ok(None),
                    Some(b'\n') => Some(2),
                    Some(_) => None,
                },
                _ => None,
            };
            if let Some(len) = empty_line_len {
                return Ok(Some(self.line_start + len));
            }
            self.open_field = Some(self.line_start);
            self.in_line = true;
        }
    }

    /// Finds the LF ending the line at `line_start`; returns the start of the
    /// next line. Remembers how far it looked when the line is incomplete.
    fn find_line_end(&mut self, buf: &[u8]) -> Option<usize> {
        let from = self.search_from.max(self.line_start);
        match memchr::memchr(b'\n', &buf[from..]) {
            Some(index) => {
                let next = from + index + 1;
                self.search_from = next;
                Some(next)
            }
            None => {
                self.search_from = buf.len();
                None
            }
        }
    }

    fn close_field(
        &mut self,
        field: &[u8],
        offset: usize,
        config: &FramerConfig,
    ) -> Result<(), FramingError> {
        if self.in_start_line {
            self.in_start_line = false;
            return Ok(());
        }
        self.header_count += 1;
        if self.header_count > config.max_header_count {
            return Err(FramingError::TooManyHeaders {
                limit: config.max_header_count,
            });
        }
        let Some(value) = content_length_value(field) else {
            return Ok(());
        };
        let length = parse_content_length(value, config.max_message_size)
            .ok_or(FramingError::InvalidContentLength { offset })??;
        match self.content_length {
            Some(first) if first != length => Err(FramingError::ConflictingContentLength {
                first,
                second: length,
            }),
            _ => {
                self.content_length = Some(length);
                Ok(())
            }
        }
    }
}

/// Whether the first line of `message` reads as SIP: a status line (`SIP/…`) or a
/// request line ending in the SIP version (`… SIP/2.0`).
fn looks_like_sip(message: &[u8]) -> bool {
    let line_end = message
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(message.len());
    let line = &message[..line_end];
    let is_version = |token: &[u8]| token.len() > 4 && token[..4].eq_ignore_ascii_case(b"SIP/");
    is_version(line.split(|&b| b == b' ').next().unwrap_or_default())
        || is_version(line.rsplit(|&b| b == b' ').next().unwrap_or_default())
}

/// The value part of `field` if it is a `Content-Length` (or compact `l`)
/// header, matched case-insensitively.
fn content_length_value(field: &[u8]) -> Option<&[u8]> {
    let colon = field.iter().position(|&b| b == b':')?;
    let name = trim_end_wsp(&field[..colon]);
    (name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l"))
        .then(|| &field[colon + 1..])
}

fn trim_end_wsp(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., last] = bytes {
        if !is_wsp(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}

/// Parses `LWS 1*DIGIT LWS` (line folds included, as CR/LF only occur in a
/// field as part of a fold). `None` if malformed; `Some(Err)` if larger than
/// `max` (no need to finish counting digits of an absurd value).
fn parse_content_length(value: &[u8], max: usize) -> Option<Result<usize, FramingError>> {
    let is_lws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = value.iter().position(|b| !is_lws(b))?;
    let digits_len = value[start..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len() - start);
    let digits = &value[start..start + digits_len];
    if digits.is_empty() || !value[start + digits_len..].iter().all(is_lws) {
        return None;
    }
    let mut length: usize = 0;
    for digit in digits {
        length = match length
            .checked_mul(10)
            .and_then(|l| l.checked_add(usize::from(digit - b'0')))
        {
            Some(l) if l <= max => l,
            _ => return Some(Err(FramingError::MessageTooLarge { limit: max })),
        };
    }
    Some(Ok(length))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &[u8] = b"REGISTER sip:example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n\
        From: <sip:alice@example.com>;tag=1928301774\r\n\
        To: <sip:alice@example.com>\r\n\
        Call-ID: a84b4c76e66710\r\n\
        CSeq: 1 REGISTER\r\n\
        Content-Length: 0\r\n\
        \r\n";

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKnashds8\r\n\
        l  :\r\n  5 \r\n\
        Call-ID: x\r\n\
        \r\n\
        v=0\r\n";

    fn framer() -> StreamFramer {
        StreamFramer::new(FramerConfig::default())
    }

    /// Feeds `input` in chunks of `chunk` bytes and collects every frame.
    fn frame_all(
        framer: &mut StreamFramer,
        input: &[u8],
        chunk: usize,
    ) -> Result<Vec<Frame>, FramingError> {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(frame) = framer.next_frame(&mut buf)? {
                frames.push(frame);
            }
        }
        assert!(buf.is_empty() || framer.is_mid_message() || buf.as_ref() == b"\r\n");
        Ok(frames)
    }

    fn message(bytes: &[u8]) -> Frame {
        Frame::Message(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn frames_pipelined_messages_and_keepalives_at_every_chunk_size() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(REGISTER);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(INVITE);
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(REGISTER);
        let expected = vec![
            Frame::KeepAlivePing,
            message(REGISTER),
            message(INVITE),
            Frame::KeepAlivePing,
            message(REGISTER),
        ];
        for chunk in 1..=stream.len() {
            assert_eq!(
                frame_all(&mut framer(), &stream, chunk),
                Ok(expected.clone()),
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn frame_is_split_off_without_copying() {
        let mut buf = BytesMut::from(REGISTER);
        let start = buf.as_ptr();
        let Some(Frame::Message(frame)) = framer().next_frame(&mut buf).unwrap() else {
            panic!("no frame")
        };
        assert_eq!(frame.as_ptr(), start);
        assert!(buf.is_empty());
    }

    #[test]
    fn bare_lf_line_endings_are_accepted() {
        let input = b"MESSAGE sip:a SIP/2.0\nContent-Length: 3\n\nabcNEXT";
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(
            framer().next_frame(&mut buf),
            Ok(Some(message(&input[..input.len() - 4])))
        );
        assert_eq!(buf.as_ref(), b"NEXT");
    }

    #[test]
    fn lone_crlf_waits_for_the_next_byte_then_is_skipped() {
        let mut f = framer();
        let mut buf = BytesMut::from(&b"\r\n"[..]);
        assert_eq!(f.next_frame(&mut buf), Ok(None));
        assert!(!f.is_mid_message());
        buf.extend_from_slice(b"\r\n");
        assert_eq!(f.next_frame(&mut buf), Ok(Some(Frame::KeepAlivePing)));
        buf.extend_from_slice(b"\r\nOPTIONS");
        assert_eq!(f.next_frame(&mut buf), Ok(None));
        assert_eq!(buf.as_ref(), b"OPTIONS");
        assert!(f.is_mid_message());
    }

    #[test]
    fn content_length_forms() {
        for (header, body_len) in [
            ("Content-Length: 4", 4),
            ("CONTENT-LENGTH:4", 4),
            ("content-length \t: 0004 ", 4),
            ("L: 4", 4),
            ("Content-Length:\r\n 4", 4),
            ("Content-Length: 4\r\nContent-Length-Not: 9", 4),
        ] {
            let text = format!("MESSAGE sip:a SIP/2.0\r\n{header}\r\n\r\nbody!");
            let mut buf = BytesMut::from(text.as_bytes());
            let Ok(Some(Frame::Message(frame))) = framer().next_frame(&mut buf) else {
                panic!("{header:?}")
            };
            assert!(
                frame.ends_with(&b"\r\n\r\nbody"[..4 + body_len]),
                "{header:?}"
            );
            assert_eq!(buf.len(), text.len() - frame.len(), "{header:?}");
        }
    }

    #[test]
    fn a_message_without_content_length_has_no_body() {
        let mut framer = StreamFramer::new(FramerConfig::default());
        let mut buf = BytesMut::from(&b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\nOPTIONS"[..]);
        let Ok(Some(Frame::Message(message))) = framer.next_frame(&mut buf) else {
            panic!("framed")
        };
        assert!(message.ends_with(b"Via: x\r\n\r\n"));
        assert_eq!(&buf[..], b"OPTIONS");
    }

    #[test]
    fn bytes_that_are_not_sip_fail() {
        for text in [
            &b"\x00\xffNOT SIP AT ALL\r\nX: y\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"SIP\r\n\r\n",
        ] {
            let mut framer = StreamFramer::new(FramerConfig::default());
            let mut buf = BytesMut::from(text);
            assert_eq!(framer.next_frame(&mut buf), Err(FramingError::NotSip));
        }
        let mut framer = StreamFramer::new(FramerConfig::default());
        let mut buf = BytesMut::from(&b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n"[..]);
        assert!(matches!(
            framer.next_frame(&mut buf),
            Ok(Some(Frame::Message(_)))
        ));
    }

    #[test]
    fn content_length_errors() {
        let cases: [(&str, FramingError); 7] = [
            (
                "Content-Length: -1",
                FramingError::InvalidContentLength { offset: 23 },
            ),
            (
                "Content-Length: 1a",
                FramingError::InvalidContentLength { offset: 23 },
            ),
            (
                "Content-Length:",
                FramingError::InvalidContentLength { offset: 23 },
            ),
            (
                "Content-Length: 1 2",
                FramingError::InvalidContentLength { offset: 23 },
            ),
            (
                "Content-Length: 1\r\nl: 2",
                FramingError::ConflictingContentLength {
                    first: 1,
                    second: 2,
                },
            ),
            (
                "Content-Length: 65537",
                FramingError::MessageTooLarge { limit: 65536 },
            ),
            (
                "Content-Length: 99999999999999999999999999",
                FramingError::MessageTooLarge { limit: 65536 },
            ),
        ];
        for (headers, expected) in cases {
            let text = format!("MESSAGE sip:a SIP/2.0\r\n{headers}\r\n\r\n");
            let mut f = framer();
            let mut buf = BytesMut::from(text.as_bytes());
            assert_eq!(f.next_frame(&mut buf), Err(expected.clone()), "{headers:?}");
            assert!(f.is_failed());
            // Errors are final.
            buf.extend_from_slice(REGISTER);
            assert_eq!(f.next_frame(&mut buf), Err(expected), "{headers:?}");
        }
        // Identical duplicates are harmless.
        let mut buf =
            BytesMut::from(&b"MESSAGE sip:a SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nx"[..]);
        assert!(matches!(
            framer().next_frame(&mut buf),
            Ok(Some(Frame::Message(_)))
        ));
    }

    #[test]
    fn oversize_message_rejected_before_the_body_arrives() {
        let config = FramerConfig {
            max_message_size: 100,
            ..FramerConfig::default()
        };
        let header = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 70\r\n\r\n";
        let mut buf = BytesMut::from(&header[..]);
        assert_eq!(
            StreamFramer::new(config).next_frame(&mut buf),
            Err(FramingError::MessageTooLarge { limit: 100 })
        );
        let exact = b"MESSAGE sip:a SIP/2.0\r\nContent-Length: 55\r\n\r\n";
        let mut buf = BytesMut::from(&exact[..]);
        buf.extend_from_slice(&[b'x'; 55]);
        assert!(
            matches!(StreamFramer::new(config).next_frame(&mut buf), Ok(Some(Frame::Message(m))) if m.len() == 100)
        );
    }

    #[test]
    fn oversize_header_section_rejected_before_its_end_arrives() {
        let config = FramerConfig {
            max_header_section_size: 64,
            ..FramerConfig::default()
        };
        let mut f = StreamFramer::new(config);
        let mut buf = BytesMut::from(&b"MESSAGE sip:a SIP/2.0\r\nSubject: "[..]);
        assert_eq!(f.next_frame(&mut buf), Ok(None));
        buf.extend_from_slice(&[b'a'; 40]);
        assert_eq!(
            f.next_frame(&mut buf),
            Err(FramingError::HeaderSectionTooLarge { limit: 64 })
        );
        // Also when the whole oversize section arrives in one read.
        let mut buf = BytesMut::from(&b"MESSAGE sip:a SIP/2.0\r\nl: 0\r\n"[..]);
        buf.extend_from_slice(&[b'a'; 40]);
        buf.extend_from_slice(b"\r\n\r\n");
        assert_eq!(
            StreamFramer::new(config).next_frame(&mut buf),
            Err(FramingError::HeaderSectionTooLarge { limit: 64 })
        );
        // A header section ending within the limit is fine even if more is buffered.
        let mut buf = BytesMut::from(&b"M sip:a SIP/2.0\r\nl:0\r\n\r\n"[..]);
        buf.extend_from_slice(&[b'b'; 100]);
        assert!(matches!(
            StreamFramer::new(config).next_frame(&mut buf),
            Ok(Some(Frame::Message(_)))
        ));
    }

    #[test]
    fn too_many_headers_rejected_as_soon_as_counted() {
        let config = FramerConfig {
            max_header_count: 3,
            ..FramerConfig::default()
        };
        let mut f = StreamFramer::new(config);
        let mut buf = BytesMut::from(
            &b"OPTIONS sip:a SIP/2.0\r\nA: 1\r\nB: 2\r\n  folded\r\nC: 3\r\nD: 4\r\n"[..],
        );
        // The fourth field is only known to be complete once the next line starts.
        assert_eq!(f.next_frame(&mut buf), Ok(None));
        buf.extend_from_slice(b"E");
        assert_eq!(
            f.next_frame(&mut buf),
            Err(FramingError::TooManyHeaders { limit: 3 })
        );
    }

    #[test]
    fn shrinking_the_buffer_is_reported_not_a_panic() {
        let mut f = framer();
        let mut buf = BytesMut::from(&b"OPTIONS sip:a SIP/2.0\r\nVia: x"[..]);
        assert_eq!(f.next_frame(&mut buf), Ok(None));
        buf.clear();
        assert_eq!(f.next_frame(&mut buf), Err(FramingError::BufferShrunk));
    }

    #[test]
    fn byte_by_byte_scan_is_linear() {
        // A long header section fed one byte at a time must not be rescanned
        // from the start on each call: count LF searches indirectly through
        // `search_from` never moving backwards.
        let mut f = framer();
        let mut buf = BytesMut::new();
        let mut last = 0;
        for &byte in REGISTER {
            buf.extend_from_slice(&[byte]);
            if let Some(frame) = f.next_frame(&mut buf).unwrap() {
                assert_eq!(frame, message(REGISTER));
                return;
            }
            if let State::Headers(scan) = &f.state {
                assert!(scan.search_from >= last);
                last = scan.search_from;
            }
        }
        panic!("no frame");
    }
}
