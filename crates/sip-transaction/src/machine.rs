//! Vocabulary shared by the four RFC 3261 §17 state machines.
//!
//! The machines are pure: each step takes the current state, one event, the caller's
//! `now` and (where a timer starts) the layer's [`Timers`], updates the state and returns
//! the [`Action`]s the layer must carry out. They never see message bytes, and hold no
//! copy of the timer values: thousands of transactions share the layer's.

use std::time::{Duration, Instant};

use crate::config::Timers;

/// What a state machine asks the layer to do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// (Re)transmit the request that created this client transaction.
    SendRequest,
    /// (Re)transmit the ACK for the non-2xx final response (INVITE client).
    SendAck,
    /// Transmit the most recent response: the one the TU just handed over, or a
    /// retransmission of it (server).
    SendResponse,
    /// Build a 100 (Trying) for the INVITE and transmit it; it becomes the most
    /// recent response.
    SendTrying,
    /// Hand the message that caused this step to the TU.
    PassToTu,
    /// Tell the TU a send failed while the transaction lives on (RFC 6026 INVITE server).
    ReportTransportError,
    /// The transaction is over; the layer reports it and forgets it.
    Terminate(TerminationReason),
}

/// Why a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// The transaction ran its course (timers D, I, J, K, L, M or a reliable transport).
    Normal,
    /// No final response (timers B, F) or no ACK (timer H) arrived in time.
    Timeout,
    /// The transport failed to send one of this transaction's messages.
    TransportError,
}

/// The RFC 3261 §17 state of a transaction (plus RFC 6026 `Accepted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// INVITE client: request sent, nothing heard yet.
    Calling,
    /// Non-INVITE client or server: request sent / received, nothing heard or sent yet.
    Trying,
    /// A provisional response was received (client) or sent (server).
    Proceeding,
    /// A final response (non-2xx for INVITE) was received or sent; absorbing retransmissions.
    Completed,
    /// INVITE server: the ACK for the non-2xx final response arrived.
    Confirmed,
    /// INVITE client or server after a 2xx (RFC 6026): 2xx retransmissions and ACKs flow
    /// end to end while the transaction keeps matching them.
    Accepted,
    /// The transaction is over.
    Terminated,
}

/// Broad class of a response status code, which is all the machines look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusClass {
    Provisional,
    Success,
    Failure,
}

impl StatusClass {
    /// `None` for codes outside 100..=699, which no machine may act on.
    pub(crate) fn of(status: u16) -> Option<Self> {
        match status {
            100..=199 => Some(Self::Provisional),
            200..=299 => Some(Self::Success),
            300..=699 => Some(Self::Failure),
            _ => None,
        }
    }
}

/// The TU handed over a response the transaction cannot send in its state
/// (e.g. a second final response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponseRejected;

/// A doubling retransmission timer (A, E, G).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retransmit {
    pub(crate) at: Instant,
    pub(crate) interval: Duration,
}

impl Retransmit {
    /// First retransmission after T1, or none at all over a reliable transport.
    pub(crate) fn start(timers: &Timers, reliable: bool, now: Instant) -> Option<Self> {
        (!reliable).then(|| Self {
            at: after(now, timers.t1),
            interval: timers.t1,
        })
    }

    /// Re-arms after firing with the interval doubled, capped at `cap` when given.
    pub(crate) fn backoff(self, cap: Option<Duration>, now: Instant) -> Self {
        let doubled = self.interval.saturating_mul(2);
        let interval = cap.map_or(doubled, |cap| doubled.min(cap));
        Self {
            at: after(now, interval),
            interval,
        }
    }

    pub(crate) fn due(&self, now: Instant) -> bool {
        self.at <= now
    }
}

/// `now + delay`. Configured delays are bounded (see [`Timers`]), so overflow
/// would need a clock near the end of time; it fires at `now` rather than panic.
pub(crate) fn after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay).unwrap_or(now)
}

/// Earliest of a set of optional deadlines.
pub(crate) fn earliest(deadlines: &[Option<Instant>]) -> Option<Instant> {
    deadlines.iter().flatten().min().copied()
}
