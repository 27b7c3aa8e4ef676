//! SIP transactions (RFC 3261 §17, with the RFC 6026 fixes), sans-IO.
//!
//! [`TransactionLayer`] owns every transaction of a SIP element. The caller feeds it
//! parsed messages, TU requests and responses, transport failures and the time, and
//! drains [`Output`]s: bytes to send and messages for the TU. It never reads a clock,
//! opens a socket or spawns a task.
//!
//! Drive loop (like quinn-proto): after every input — [`handle_message`],
//! [`send_request`], [`send_response`], [`cancel`], [`handle_transport_error`],
//! [`handle_timeout`] — drain [`poll_output`] until `None`, then wait for the next
//! input or until [`poll_timeout`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use bytes::Bytes;
//! use sip_message::Message;
//! use sip_message::FlowId;
//! use sip_transaction::{Config, Output, TransactionLayer};
//!
//! let mut layer = TransactionLayer::new(Config::default()).unwrap();
//! let flow = FlowId::udp("192.0.2.1:5060".parse().unwrap());
//! let options = Message::parse(Bytes::from_static(
//!     b"OPTIONS sip:proxy.example.com SIP/2.0\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
//!       From: <sip:alice@example.com>;tag=1\r\n\
//!       To: <sip:proxy.example.com>\r\n\
//!       Call-ID: 1@192.0.2.1\r\n\
//!       CSeq: 1 OPTIONS\r\n\
//!       Content-Length: 0\r\n\r\n",
//! ))
//! .unwrap();
//! let now = Instant::now();
//! layer.handle_message(options.clone(), flow, now).unwrap();
//! let (mut sent, mut terminated) = (0, 0);
//! while let Some(output) = layer.poll_output() {
//!     match output {
//!         Output::Request { transaction, request, .. } => {
//!             let ok = request.response(200).to_tag("x").build_bytes();
//!             let ok = Message::parse(ok).unwrap();
//!             layer.send_response(transaction, ok, now).unwrap();
//!         }
//!         // socket.send_to(&transmit.payload, transmit.flow.udp_remote().unwrap())
//!         Output::Transmit(_transmit) => sent += 1,
//!         Output::Terminated { .. } => terminated += 1,
//!         _ => {}
//!     }
//! }
//! // The 200 went out, and the transaction is over for the TU...
//! assert_eq!((sent, terminated), (1, 1));
//! assert_eq!((layer.len(), layer.completed_len()), (0, 1));
//! // ...while a compact record resends the 200 to retransmissions of the OPTIONS, which
//! // the TU never sees, until Timer J, 64×T1 later, then goes without a word.
//! layer.handle_message(options, flow, now + Duration::from_secs(1)).unwrap();
//! assert!(matches!(layer.poll_output(), Some(Output::Transmit(_))));
//! assert!(layer.poll_output().is_none());
//! assert_eq!(layer.poll_timeout(), Some(now + Duration::from_secs(32)));
//! layer.handle_timeout(now + Duration::from_secs(32));
//! assert!(layer.poll_output().is_none());
//! assert!(layer.is_empty());
//! ```
//!
//! Each of the four state machines is a pure function of (state, event, now, timer
//! values) in its own module, tested timer by timer on a virtual clock.
//!
//! # What stays in memory
//!
//! A transaction keeps only what its state still needs, as bytes: a client its request
//! until the final response (an INVITE client, once a provisional response stopped its
//! retransmissions, only the request line and the headers its CANCEL and ACK are built
//! from), then an INVITE client the ACK for a non-2xx and nothing in RFC 6026 Accepted
//! but the key that 2xx retransmissions match; an INVITE server its request until it sent
//! a response, then the latest response while it may resend it, and nothing in Accepted
//! or Confirmed; a non-INVITE client nothing in Completed (Timer K). Each key is held
//! once, by its transaction, and found through a keyed hash.
//!
//! A non-INVITE server transaction whose final response went out over an unreliable
//! transport (a REGISTER over UDP) has nothing left to do for 64×T1 but resend that
//! response to retransmissions of its request; an INVITE server or client in RFC 6026
//! Accepted (after a 2xx) nothing but absorb INVITE retransmissions (server) or hand 2xx
//! retransmissions and other forks' 2xx to the TU (client) for 64×T1. Each reports
//! [`Output::Terminated`] at once and becomes a compact record (a keyed hash of its key,
//! its flow, the response to resend if any, and the deadline) in a FIFO: these records are
//! what lets one UDP source carry thousands of requests per second, and a proxy thousands
//! of calls. They are bounded by [`Config::max_completed`], not by
//! [`Config::max_transactions`], which bounds the transactions in progress
//! ([`TransactionLayer::len`] against [`TransactionLayer::completed_len`]). A TU that
//! wants to send another 2xx after the first (a proxy relaying a second fork's) sends it
//! outside the transaction.
//!
//! [`handle_message`]: TransactionLayer::handle_message
//! [`send_request`]: TransactionLayer::send_request
//! [`send_response`]: TransactionLayer::send_response
//! [`cancel`]: TransactionLayer::cancel
//! [`handle_transport_error`]: TransactionLayer::handle_transport_error
//! [`handle_timeout`]: TransactionLayer::handle_timeout
//! [`poll_output`]: TransactionLayer::poll_output
//! [`poll_timeout`]: TransactionLayer::poll_timeout

mod completed;
mod config;
mod invite_client;
mod invite_server;
mod key;
mod layer;
mod machine;
mod message;
mod non_invite_client;
mod non_invite_server;

pub use config::{Config, ConfigError, Timers};
pub use layer::{
    CancelError, CancelTarget, Output, ReceiveError, SendRequestError, SendResponseError,
    TransactionId, TransactionLayer, Transmit,
};
pub use machine::{TerminationReason, TransactionState};
pub use message::MessageError;
