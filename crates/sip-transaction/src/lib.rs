//! SIP transactions (RFC 3261 §17, with the RFC 6026 fixes), sans-IO.
//!
//! [`TransactionLayer`] owns every transaction of a SIP element. The caller feeds it
//! parsed messages, TU requests and responses, transport failures and the time, and
//! drains [`Output`]s: bytes to send and messages for the TU. It never reads a clock,
//! opens a socket or spawns a task; see the [`layer`] module docs for the drive loop.
//!
//! Each of the four state machines is a pure function of (state, event, now) in its
//! own module, tested timer by timer on a virtual clock.

mod config;
mod invite_client;
mod invite_server;
mod key;
pub mod layer;
mod machine;
mod message;
mod non_invite_client;
mod non_invite_server;

pub use config::{Config, ConfigError, Timers};
pub use layer::{
    CancelError, CancelTarget, Flow, Output, ReceiveError, SendRequestError, SendResponseError,
    TransactionId, TransactionLayer, Transmit, Transport,
};
pub use machine::{TerminationReason, TransactionState};
pub use message::MessageError;
