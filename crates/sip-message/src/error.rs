//! Parse errors: what is wrong, at which byte offset, in which header.

use std::fmt;

use crate::header::HeaderName;

/// What went wrong while parsing a message or a header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input holds no message (empty, or only CRLFs).
    Empty,
    /// The message is larger than the configured limit (or 4 GiB).
    TooLarge,
    /// The header section does not end with an empty line.
    Incomplete,
    /// The start line is not `Method SP Request-URI SP SIP-Version` or
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    BadStartLine,
    /// The method is not a token.
    BadMethod,
    /// The SIP-Version is not `SIP/<digits>.<digits>`.
    BadVersion,
    /// The status code is not three digits in 100..=699.
    BadStatusCode,
    /// A header line has no `:` or its name is not a token.
    BadHeaderName,
    /// More header lines than [`ParseLimits::max_headers`](crate::ParseLimits).
    TooManyHeaders,
    /// Content-Length is not a non-negative decimal number.
    BadContentLength,
    /// Content-Length appears twice with different values.
    ConflictingContentLength,
    /// Content-Length announces more bytes than the datagram holds.
    BodyTruncated,
    /// A header that must be present is missing.
    MissingHeader,
    /// A single-valued header appears more than once.
    DuplicateHeader,
    /// The operation needs a request but the message is a response (or vice versa).
    WrongMessageType,
    /// A header value (or list element) is empty where a value is required.
    EmptyValue,
    /// A character that the grammar does not allow at this place.
    UnexpectedChar,
    /// A quoted string without its closing `"`.
    UnterminatedQuote,
    /// A `<` without its closing `>`.
    UnterminatedAngle,
    /// A number is not decimal digits.
    BadNumber,
    /// A number is larger than its field allows.
    NumberOutOfRange,
    /// The URI is malformed.
    BadUri,
    /// The host part is malformed.
    BadHost,
    /// The port is not a number in 0..=65535.
    BadPort,
    /// A parameter (`;name=value`) is malformed (e.g. empty name).
    BadParam,
    /// The display name is neither a quoted string nor a sequence of tokens.
    BadDisplayName,
    /// The `q` parameter is not a qvalue (0..1 with up to 3 decimals).
    BadQValue,
    /// The CSeq method differs from the request method.
    CSeqMismatch,
}

impl ErrorKind {
    /// A short English description.
    pub fn description(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty message",
            ErrorKind::TooLarge => "message too large",
            ErrorKind::Incomplete => "header section not terminated by an empty line",
            ErrorKind::BadStartLine => "malformed start line",
            ErrorKind::BadMethod => "malformed method",
            ErrorKind::BadVersion => "malformed SIP version",
            ErrorKind::BadStatusCode => "malformed status code",
            ErrorKind::BadHeaderName => "malformed header name",
            ErrorKind::TooManyHeaders => "too many headers",
            ErrorKind::BadContentLength => "malformed Content-Length",
            ErrorKind::ConflictingContentLength => "conflicting Content-Length values",
            ErrorKind::BodyTruncated => "body shorter than Content-Length",
            ErrorKind::MissingHeader => "missing header",
            ErrorKind::DuplicateHeader => "header must appear once",
            ErrorKind::WrongMessageType => "wrong message type (request/response)",
            ErrorKind::EmptyValue => "empty value",
            ErrorKind::UnexpectedChar => "unexpected character",
            ErrorKind::UnterminatedQuote => "unterminated quoted string",
            ErrorKind::UnterminatedAngle => "missing '>'",
            ErrorKind::BadNumber => "malformed number",
            ErrorKind::NumberOutOfRange => "number out of range",
            ErrorKind::BadUri => "malformed URI",
            ErrorKind::BadHost => "malformed host",
            ErrorKind::BadPort => "malformed port",
            ErrorKind::BadParam => "malformed parameter",
            ErrorKind::BadDisplayName => "malformed display name",
            ErrorKind::BadQValue => "malformed q value",
            ErrorKind::CSeqMismatch => "CSeq method does not match the request method",
        }
    }
}

/// A parse error: the [`ErrorKind`], the byte offset into the parsed input
/// where the problem was found, and the header it was found in, if any.
///
/// Offsets of errors from typed views on a [`Message`](crate::Message) are
/// offsets into the message's bytes; for standalone parsers (e.g.
/// [`Uri::parse`](crate::Uri::parse)) they are offsets into the given text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    kind: ErrorKind,
    offset: usize,
    header: Option<HeaderName>,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, offset: usize) -> Self {
        ParseError {
            kind,
            offset,
            header: None,
        }
    }

    pub(crate) fn in_header(mut self, header: HeaderName) -> Self {
        if self.header.is_none() {
            self.header = Some(header);
        }
        self
    }

    /// What is wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Byte offset of the problem.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The header in which the problem was found (None for the start line or
    /// framing).
    pub fn header(&self) -> Option<HeaderName> {
        self.header
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind.description(), self.offset)?;
        if let Some(header) = self.header {
            write!(f, " in header {}", header.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {}
