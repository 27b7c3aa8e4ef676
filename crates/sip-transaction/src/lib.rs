//! SIP transactions (RFC 3261 §17, with the RFC 6026 fixes), sans-IO.

mod config;
mod invite_client;
mod invite_server;
mod machine;
mod non_invite_client;
mod non_invite_server;

pub use config::{Config, ConfigError, Timers};
pub use machine::{TerminationReason, TransactionState};
