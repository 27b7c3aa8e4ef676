//! Small typed values: methods, CSeq, media types.

use std::fmt;

use crate::error::{ErrorKind, ParseError};
use crate::params::{parse_params, Params};
use crate::scan::{parse_u32, Cursor};

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1); anything not
/// listed is an extension method in `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// INFO (RFC 6086)
    Info,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// UPDATE (RFC 3311)
    Update,
    /// MESSAGE (RFC 3428)
    Message,
    /// REFER (RFC 3515)
    Refer,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other (extension) method, as written.
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Classifies a method token (case-sensitive).
    pub fn from_token(token: &'a str) -> Method<'a> {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "UPDATE" => Method::Update,
            "MESSAGE" => Method::Message,
            "REFER" => Method::Refer,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other),
        }
    }

    /// The method as text.
    pub fn as_str(&self) -> &'a str {
        match *self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Update => "UPDATE",
            Method::Message => "MESSAGE",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CSeq header: sequence number and method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number (must fit in 32 bits).
    pub seq: u32,
    /// The method.
    pub method: Method<'a>,
}

impl<'a> CSeq<'a> {
    /// Parses a CSeq value (`1*DIGIT LWS Method`).
    pub fn parse(text: &'a [u8], offset: usize) -> Result<CSeq<'a>, ParseError> {
        let mut cursor = Cursor::new(text, offset);
        cursor.skip_lws();
        let digits_at = cursor.base + cursor.pos;
        let digits = cursor.take_while(|b| b.is_ascii_digit());
        let seq = parse_u32(digits).map_err(|kind| ParseError::new(kind, digits_at))?;
        if !cursor.skip_lws() {
            return Err(cursor.err(ErrorKind::UnexpectedChar));
        }
        let method = Method::from_token(cursor.token(ErrorKind::BadMethod)?);
        cursor.skip_lws();
        if !cursor.at_end() {
            return Err(cursor.err(ErrorKind::UnexpectedChar));
        }
        Ok(CSeq { seq, method })
    }
}

/// A media type (Content-Type), e.g. `application/sdp;charset=utf-8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaType<'a> {
    /// The type, e.g. `application`.
    pub mtype: &'a str,
    /// The subtype, e.g. `sdp`.
    pub subtype: &'a str,
    /// The parameters.
    pub params: Params<'a>,
}

impl<'a> MediaType<'a> {
    /// Parses `type/subtype *(;param)`.
    pub fn parse(text: &'a [u8], offset: usize) -> Result<MediaType<'a>, ParseError> {
        let mut cursor = Cursor::new(text, offset);
        cursor.skip_lws();
        let mtype = cursor.token(ErrorKind::EmptyValue)?;
        cursor.skip_lws();
        cursor.expect(b'/', ErrorKind::UnexpectedChar)?;
        cursor.skip_lws();
        let subtype = cursor.token(ErrorKind::UnexpectedChar)?;
        let params = parse_params(&mut cursor, |_, _| Ok(()))?;
        Ok(MediaType {
            mtype,
            subtype,
            params,
        })
    }

    /// Case-insensitive check against `type/subtype`.
    pub fn is(&self, mtype: &str, subtype: &str) -> bool {
        self.mtype.eq_ignore_ascii_case(mtype) && self.subtype.eq_ignore_ascii_case(subtype)
    }
}

/// `text` made fit for a reason phrase or a quoted header text: printable ASCII only (control
/// characters, line breaks and non-ASCII become spaces, so nothing can break the message),
/// at most 160 characters.
pub fn safe_reason(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .take(160)
        .collect()
}

/// The default reason phrase for a status code (RFC 3261 §21 and common
/// extensions); `""` if unknown.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        423 => "Interval Too Brief",
        429 => "Provide Referrer Identity",
        439 => "First Hop Lacks Outbound Support",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq() {
        let c = CSeq::parse(b"0009\r\n  INVITE", 0).unwrap();
        assert_eq!(c.seq, 9);
        assert_eq!(c.method, Method::Invite);
        let ext = CSeq::parse(b"1 RE%47IST%45R", 0).unwrap();
        assert_eq!(ext.method, Method::Other("RE%47IST%45R"));
        assert_eq!(
            CSeq::parse(b"36893488147419103232 REGISTER", 0)
                .unwrap_err()
                .kind(),
            ErrorKind::NumberOutOfRange
        );
        assert!(CSeq::parse(b"1", 0).is_err());
        assert!(CSeq::parse(b"INVITE", 0).is_err());
        assert!(CSeq::parse(b"1 INVITE x", 0).is_err());
    }

    #[test]
    fn media_type() {
        let m = MediaType::parse(b"multipart/mixed;boundary=7a9cbec02ceef655", 0).unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.params.value("boundary"), Some("7a9cbec02ceef655"));
        assert!(MediaType::parse(b"text", 0).is_err());
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::from_token("INVITE"), Method::Invite);
        assert_eq!(Method::from_token("invite"), Method::Other("invite"));
        assert_eq!(Method::Register.as_str(), "REGISTER");
    }
}
