//! Call events: what happened to each call the proxy routed, as typed values. The binary
//! logs one line per call from them today; call records and webhooks will be fed from the
//! same stream.
//!
//! A call is an initial INVITE the proxy decided to forward. It starts when forwarding
//! starts, may ring, is answered by the first 2xx, and ends with the final non-2xx response
//! or, once answered, with the BYE of either side (the dialog is tracked from the 2xx to the
//! BYE), or when it outlives the longest call allowed.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Which party of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Caller,
    Callee,
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndCause {
    /// Never answered: the final status sent to the caller (480, 486, 603, 408...).
    Unanswered(u16),
    /// The caller cancelled it before it was answered.
    Cancelled,
    /// A BYE from this party.
    HungUp(Party),
    /// Answered, and no BYE came within the longest call allowed.
    Expired,
}

/// One step in the life of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    Started {
        call_id: String,
        /// The authenticated endpoint, or the From URI of a trusted peer.
        caller: String,
        /// The Request-URI as received.
        callee: String,
    },
    /// The first 180/183 was relayed.
    Ringing { call_id: String },
    /// The first 2xx was relayed.
    Answered { call_id: String },
    Ended {
        call_id: String,
        caller: String,
        callee: String,
        cause: EndCause,
        /// From start to answer (answered calls) or to the end (others).
        setup: Duration,
        /// From answer to end, for answered calls.
        talk: Option<Duration>,
    },
}

/// A call the proxy is following.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) call_id: String,
    pub(crate) caller: String,
    pub(crate) callee: String,
    pub(crate) started: Instant,
    pub(crate) ringing: bool,
    pub(crate) answered: Option<Instant>,
}

impl Call {
    pub(crate) fn ended(self, cause: EndCause, now: Instant) -> CallEvent {
        let setup = self
            .answered
            .unwrap_or(now)
            .saturating_duration_since(self.started);
        let talk = self.answered.map(|at| now.saturating_duration_since(at));
        CallEvent::Ended {
            call_id: self.call_id,
            caller: self.caller,
            callee: self.callee,
            cause,
            setup,
            talk,
        }
    }
}

/// Answered calls waiting for their BYE, by Call-ID (with forking several 2xx may arrive:
/// the first dialog is the call).
#[derive(Debug, Default)]
pub(crate) struct Dialogs {
    calls: HashMap<String, (Call, Instant)>,
    deadlines: BTreeSet<(Instant, String)>,
}

impl Dialogs {
    pub(crate) fn insert(&mut self, call: Call, expires: Instant) {
        if self.calls.contains_key(&call.call_id) {
            return;
        }
        self.deadlines.insert((expires, call.call_id.clone()));
        self.calls.insert(call.call_id.clone(), (call, expires));
    }

    /// The call of this Call-ID, which a BYE ends.
    pub(crate) fn remove(&mut self, call_id: &str) -> Option<Call> {
        let (call, expires) = self.calls.remove(call_id)?;
        self.deadlines.remove(&(expires, call.call_id.clone()));
        Some(call)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Calls that outlived the longest call allowed at `now`.
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Call> {
        let mut expired = Vec::new();
        while let Some((at, _)) = self.deadlines.first() {
            if *at > now {
                break;
            }
            if let Some((_, call_id)) = self.deadlines.pop_first() {
                if let Some((call, _)) = self.calls.remove(&call_id) {
                    expired.push(call);
                }
            }
        }
        expired
    }

    pub(crate) fn len(&self) -> usize {
        self.calls.len()
    }
}
