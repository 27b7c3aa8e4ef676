//! The sipd proxy (RFC 3261 §16): a transaction-stateful, forking, record-routing proxy core,
//! sans-IO.
//!
//! [`Proxy`] is the SIP element of one shard: a `sip_transaction::TransactionLayer` and the
//! proxy core (RFC 3261 §16) wired together. It is fed parsed messages from the network,
//! the answers to its own requests and the time, and drained of [`Output`]s; it never
//! awaits, reads a clock or touches a socket, so every race (forking, CANCEL crossing a
//! 200, Timer C, transport errors) is tested on a virtual clock.
//!
//! # Drive loop
//!
//! After every input, drain [`Proxy::poll_output`] until `None`; then wait for the next
//! input or [`Proxy::poll_timeout`] (then [`Proxy::handle_timeout`]).
//!
//! | input | when |
//! |---|---|
//! | [`Proxy::handle_message`] | a message arrived (parsed; the caller answers unparsable bytes itself) |
//! | [`Proxy::handle_register_response`] | the registrar answered an [`Output::Register`] |
//! | [`Proxy::handle_authenticated`] | the answer to [`Output::Authenticate`] (the Digest check of Proxy-Authorization) |
//! | [`Proxy::handle_located`] | the answer to [`Output::Locate`] (the location service) |
//! | [`Proxy::handle_hop`] | the answer to [`Output::OpenHop`] (the flow is open, or a connection to the hop, RFC 3263) |
//! | [`Proxy::handle_route`] | a routing decision from elsewhere (an application, later) |
//! | [`Proxy::handle_transport_error`] | an [`Output::Transmit`] of a transaction could not be sent |
//! | [`Proxy::handle_flow_closed`] | a connection closed (every shard hears of it) |
//!
//! [`Output::Transmit`], [`Output::SendStateless`] and [`Output::SendResponse`] put bytes on
//! the wire; [`Output::Event`] reports what happened to calls.
//!
//! # What it does (RFC 3261 §16)
//!
//! * Validation (§16.3): URI scheme (416), Max-Forwards (483), loops (482, by a hash in our
//!   Via branches, see `branch`), Proxy-Require (420). Requests for the server itself
//!   (no user part): OPTIONS 200, other known methods 405, unknown 501.
//! * Initial requests from endpoints are authenticated (407, answered statelessly), except
//!   from `trusted_peers`, which may only reach local users. Then the caller's permissions:
//!   `allow_voice` (INVITE, 403), `allow_video` (an SDP offer with video, 488 with a
//!   Warning), `allow_message` (MESSAGE), and by target: local users (`allow_same_domain`,
//!   another tenant's endpoint is 404), telephone numbers (`allow_phones`, to the PSTN
//!   gateway, 404 when none), other domains (`allow_other_domains`). A refusal names the
//!   permission in its reason phrase.
//! * Target set (§16.5): every live registration of the callee, grouped by q (equal q in
//!   parallel, groups one after another); none: 480.
//! * Forwarding (§16.6): Request-URI = the contact, the registration's Path as Route, our
//!   Via, Max-Forwards decremented, our own Proxy-Authorization consumed, Record-Route on
//!   dialog-creating requests (two values when the legs' transports differ, RFC 5658), with
//!   a MACed flow token (see `record_route`). Timer C (more than 3 min) per INVITE branch.
//! * Responses (§16.7): 1xx but 100 relayed at once, every 2xx relayed, the other branches
//!   cancelled on 2xx and 6xx, the best final response chosen once all branches answered
//!   (6xx first, else the lowest class, 401/407/415/420/484 preferred, 503 sent as 500,
//!   nothing as 408, challenges merged).
//! * CANCEL (§16.10): 200 at once, every pending branch cancelled, the callee's 487 goes
//!   back. ACK for a 2xx and every in-dialog request are routed by their Route set
//!   (loose routing, §16.12); one without our token is refused (no open relay).
//! * Call events ([`CallEvent`]): started, ringing, answered, ended with its cause.

mod branch;
mod config;
mod core;
mod events;
mod proxy;
mod record_route;
mod request;
mod route;
pub mod service;

pub use crate::branch::shard_of;
pub use crate::config::{Interface, IpNet, NoApplication, ProxyConfig};
pub use crate::core::{Arrival, AuthRefusal, BranchId, ContextId, HopFailure, DEFAULT_TIMER_C};
pub use crate::events::{CallEvent, EndCause, Party};
pub use crate::proxy::{Output, Proxy};
pub use crate::route::{targets_by_q, Callee, NextHop, Registration, RouteDecision, Target};
