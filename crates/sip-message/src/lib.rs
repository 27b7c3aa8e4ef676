//! SIP messages: zero-copy parsing, typed header views, building, and stream framing.
//!
//! # API overview
//!
//! * Parsing: [`Message::parse`]`(Bytes)` / [`Message::parse_slice`]`(&[u8])` /
//!   [`Message::parse_with`] (with [`ParseLimits`]) index a datagram or a
//!   framed message without copying. [`Message::as_bytes`] gives back the
//!   exact bytes.
//! * Start line: [`Message::is_request`], [`Message::method`] ([`Method`]),
//!   [`Message::request_uri`] ([`Uri`]), [`Message::status`],
//!   [`Message::reason`], [`Message::version`].
//! * Typed views (parsed on each call, borrowing the message):
//!   [`Message::top_via`] / [`Message::vias`] ([`Via`]: `branch()`,
//!   `host()`, `port()`, `transport()`, `received()`, `rport()`),
//!   [`Message::branch`], [`Message::cseq`] ([`CSeq`]), [`Message::call_id`],
//!   [`Message::from`] / [`Message::to`] ([`NameAddr`]: `tag()`, `uri()`),
//!   [`Message::from_tag`], [`Message::to_tag`], [`Message::contacts`]
//!   ([`Contact`]), [`Message::max_forwards`], [`Message::expires`],
//!   [`Message::min_expires`], [`Message::routes`],
//!   [`Message::record_routes`], [`Message::paths`], [`Message::supported`],
//!   [`Message::require`], [`Message::proxy_require`],
//!   [`Message::content_type`], [`Message::content_length`],
//!   [`Message::user_agent`], [`Message::body`].
//! * Raw header access: [`Message::headers`], [`Message::headers_named`]
//!   (e.g. `HeaderName::Authorization` for the `auth` module),
//!   [`Message::header`], [`Message::headers_by_name`].
//! * Checking a request before processing it: [`Message::validate`] gives the
//!   status code to answer with ([`Rejection`]).
//! * Building: [`Message::response`] ([`ResponseBuilder`], RFC 3261 §8.2.6),
//!   [`Message::forward`] ([`ForwardBuilder`], proxying),
//!   [`Message::forward_response`] ([`ResponseForwardBuilder`], relaying a
//!   response upstream),
//!   [`Message::ack_for`] (ACK for a non-2xx final response),
//!   [`Message::cancel`] (CANCEL), [`RequestBuilder`] (new requests).
//! * URIs: [`Uri::parse`], [`SipUri`] (with [`SipUri::equivalent`]),
//!   [`TelUri`], [`AbsoluteUri`], [`Host`], [`unescape`].
//! * Errors: [`ParseError`] (kind, byte offset, header).
//! * Flows: [`Transport`] and [`FlowId`], the transport and flow identity every sipd crate
//!   shares (the transaction layer, the transports, the registrar, the proxy).

mod addr;
mod builder;
mod error;
mod flow;
mod header;
mod message;
mod params;
mod scan;
mod uri;
mod validate;
mod values;
mod via;

pub mod auth;
pub mod framer;
pub mod malformed;

pub use addr::{Contact, ContactAddr, DisplayName, NameAddr};
pub use builder::{ForwardBuilder, RequestBuilder, ResponseBuilder, ResponseForwardBuilder};
pub use error::{ErrorKind, ParseError};
pub use flow::{FlowId, ParseFlowIdError, Transport};
pub use header::HeaderName;
pub use message::{Header, Message, ParseLimits};
pub use params::{Param, ParamIter, Params};
pub use scan::unescape;
pub use uri::{AbsoluteUri, Host, SipUri, TelUri, Uri, UriParam, UriParams};
pub use validate::Rejection;
pub use values::{reason_phrase, safe_reason, CSeq, MediaType, Method};
pub use via::{RPort, Via};
