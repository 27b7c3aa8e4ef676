//! The thin part that reads and builds SIP messages with `sip-message`; everything
//! else in the crate only sees keys, status codes and bytes.

use std::fmt;

use bytes::Bytes;
use sip_message::{HeaderName, Message, Method, ParseError};

use crate::key::{ClientKey, LegacyKey, SentBy, ServerKey};

pub(crate) const INVITE: &str = "INVITE";

/// Why a message cannot take part in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageError {
    /// A header that matching or building needs is missing or malformed.
    Header(ParseError),
    /// The request's top Via has no RFC 3261 branch (`z9hG4bK...`): the TU must put
    /// a unique one there before sending.
    NoRfc3261Branch,
    /// A request was expected, or a response.
    WrongMessageType,
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header(error) => write!(f, "{error}"),
            Self::NoRfc3261Branch => f.write_str("top Via has no RFC 3261 branch"),
            Self::WrongMessageType => f.write_str("wrong message type (request/response)"),
        }
    }
}

impl std::error::Error for MessageError {}

impl From<ParseError> for MessageError {
    fn from(error: ParseError) -> Self {
        Self::Header(error)
    }
}

/// The methods that the transaction layer treats specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestKind {
    Invite,
    Ack,
    Cancel,
    Other,
}

impl RequestKind {
    fn of(method: Method<'_>) -> Self {
        match method {
            Method::Invite => Self::Invite,
            Method::Ack => Self::Ack,
            Method::Cancel => Self::Cancel,
            _ => Self::Other,
        }
    }
}

/// What the layer needs from a received request.
#[derive(Debug)]
pub(crate) struct RequestFacts {
    pub(crate) kind: RequestKind,
    pub(crate) key: ServerKey,
    pub(crate) to_tag: Option<Box<str>>,
}

pub(crate) fn is_response(message: &Message) -> bool {
    message.is_response()
}

pub(crate) fn status(message: &Message) -> Option<u16> {
    message.status()
}

pub(crate) fn to_tag(message: &Message) -> Option<Box<str>> {
    message.to_tag().map(Box::from)
}

pub(crate) fn encode(message: &Message) -> Bytes {
    message.to_bytes()
}

/// Server transaction key of a received request (RFC 3261 §17.2.3).
pub(crate) fn request_facts(request: &Message) -> Result<RequestFacts, MessageError> {
    let method = request.method().ok_or(MessageError::WrongMessageType)?;
    let kind = RequestKind::of(method);
    // The ACK for a non-2xx belongs to its INVITE's transaction.
    let key_method: Box<str> = match kind {
        RequestKind::Ack => INVITE.into(),
        _ => method.as_str().into(),
    };
    let via = request.top_via()?;
    let to_tag = to_tag(request);
    let key = match via.branch() {
        Some(branch) if via.has_rfc3261_branch() => ServerKey::Branch {
            branch: branch.into(),
            sent_by: SentBy {
                host: via.host().as_str().to_ascii_lowercase().into(),
                port: via.port(),
            },
            method: key_method,
        },
        _ => ServerKey::Legacy(Box::new(LegacyKey {
            request_uri: String::from_utf8_lossy(request.request_uri_raw().unwrap_or_default())
                .into(),
            to_tag: to_tag.clone(),
            from_tag: request.from_tag().map(Box::from),
            call_id: request.call_id()?.into(),
            cseq: request.cseq()?.seq,
            method: key_method,
            top_via: String::from_utf8_lossy(via.as_bytes()).into(),
        })),
    };
    Ok(RequestFacts { kind, key, to_tag })
}

/// Client transaction key of a received response (RFC 3261 §17.1.3), or `None` when
/// its top Via has no branch and so cannot be one of ours.
pub(crate) fn response_facts(response: &Message) -> Result<Option<(ClientKey, u16)>, MessageError> {
    let status = response.status().ok_or(MessageError::WrongMessageType)?;
    let method = response.cseq()?.method;
    let Some(branch) = response.top_via()?.branch() else {
        return Ok(None);
    };
    let key = ClientKey {
        branch: branch.into(),
        method: method.as_str().into(),
    };
    Ok(Some((key, status)))
}

/// Client transaction key of a request the TU sends.
pub(crate) fn client_facts(request: &Message) -> Result<(ClientKey, RequestKind), MessageError> {
    let method = request.method().ok_or(MessageError::WrongMessageType)?;
    let via = request.top_via()?;
    let branch = via
        .branch()
        .filter(|_| via.has_rfc3261_branch())
        .ok_or(MessageError::NoRfc3261Branch)?;
    let key = ClientKey {
        branch: branch.into(),
        // Responses are matched on their CSeq method, copied from the request's.
        method: request.cseq()?.method.as_str().into(),
    };
    Ok((key, RequestKind::of(method)))
}

// Transactions keep the INVITE they may still build from as its bytes and parse it again
// when they do: the parsed form's header index would cost more than the bytes through the
// whole call setup, and these builds are the exception (a 100 after 200 ms of silence, an
// ACK per non-2xx, a CANCEL). What they keep is sized to its content: it stays for seconds.

/// What an INVITE client keeps of its INVITE once a provisional response ended its
/// retransmissions, while the call rings: the request line and the header lines its
/// CANCEL and ACK are built from (RFC 3261 §9.1, §17.1.1.3), without the body (an SDP
/// offer is most of an INVITE).
pub(crate) fn invite_skeleton(invite: &Bytes) -> Result<Bytes, MessageError> {
    let invite = Message::parse(invite.clone())?;
    let text = invite.as_bytes();
    let request_line = text
        .iter()
        .position(|&b| b == b'\n')
        .and_then(|end| text.get(..=end))
        .ok_or(MessageError::WrongMessageType)?;
    let mut skeleton = request_line.to_vec();
    let mut seen_via = false;
    for header in invite.headers() {
        let kept = match header.name {
            // The top Via line, which holds the top Via value.
            HeaderName::Via => !std::mem::replace(&mut seen_via, true),
            HeaderName::Route
            | HeaderName::From
            | HeaderName::To
            | HeaderName::CallId
            | HeaderName::CSeq => true,
            _ => false,
        };
        if kept {
            skeleton.extend_from_slice(header.line);
            skeleton.extend_from_slice(b"\r\n");
        }
    }
    skeleton.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    Ok(Bytes::from(skeleton))
}

/// The ACK for a non-2xx final response to `invite` (RFC 3261 §17.1.1.3).
pub(crate) fn ack_for(invite: &Bytes, response: &Message) -> Result<Bytes, MessageError> {
    Ok(exact(Message::parse(invite.clone())?.ack_for(response)?))
}

/// The 100 (Trying) an INVITE server transaction sends on its own (§17.2.1), with the
/// request's Timestamp copied as §8.2.6.1 requires.
pub(crate) fn trying_for(invite: &Bytes) -> Result<Bytes, MessageError> {
    let invite = Message::parse(invite.clone())?;
    let mut trying = invite.response(100);
    if let Some(timestamp) = invite.header(HeaderName::Timestamp) {
        trying = trying.header("Timestamp", timestamp);
    }
    Ok(trying.build_bytes())
}

/// The CANCEL for a client INVITE (RFC 3261 §9.1).
pub(crate) fn cancel_for(invite: &Bytes) -> Result<Message, MessageError> {
    let cancel = Message::parse(invite.clone())?.cancel()?;
    Ok(Message::parse(exact(cancel))?)
}

/// `built` without the spare capacity its builder reserved (room for the whole INVITE).
fn exact(mut built: Vec<u8>) -> Bytes {
    built.shrink_to_fit();
    Bytes::from(built)
}
