//! SIP messages: zero-copy parsing, typed header views, building, and stream framing.

pub mod auth;
pub mod framer;
