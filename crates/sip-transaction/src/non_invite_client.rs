//! Non-INVITE client transaction: RFC 3261 §17.1.2.
//!
//! ```text
//! Trying --1xx--> Proceeding --200-699--> Completed --K--> Terminated
//!    \--200-699------------------------------^
//! ```

use std::time::Instant;

use crate::config::Timers;
use crate::machine::{
    after, earliest, Action, Retransmit, StatusClass, TerminationReason, TransactionState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Timer E (retransmit, unreliable only) and timer F (give up), in Trying
    /// (`proceeding == false`) or Proceeding.
    Waiting {
        proceeding: bool,
        retransmit: Option<Retransmit>,
        timeout_at: Instant,
    },
    /// Timer K: absorb retransmitted responses.
    Completed {
        terminate_at: Instant,
    },
    Terminated,
}

#[derive(Debug, Clone)]
pub(crate) struct NonInviteClient {
    state: State,
    reliable: bool,
}

impl NonInviteClient {
    /// Creates the transaction; its first action sends the request.
    pub(crate) fn start(timers: &Timers, reliable: bool, now: Instant) -> (Self, Vec<Action>) {
        let state = State::Waiting {
            proceeding: false,
            retransmit: Retransmit::start(timers, reliable, now),
            timeout_at: after(now, timers.transaction_timeout()),
        };
        let machine = Self { state, reliable };
        (machine, vec![Action::SendRequest])
    }

    pub(crate) fn state(&self) -> TransactionState {
        match self.state {
            State::Waiting {
                proceeding: false, ..
            } => TransactionState::Trying,
            State::Waiting {
                proceeding: true, ..
            } => TransactionState::Proceeding,
            State::Completed { .. } => TransactionState::Completed,
            State::Terminated => TransactionState::Terminated,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Waiting {
                retransmit,
                timeout_at,
                ..
            } => earliest(&[retransmit.map(|r| r.at), Some(timeout_at)]),
            State::Completed { terminate_at } => Some(terminate_at),
            State::Terminated => None,
        }
    }

    /// A response matching this transaction arrived.
    pub(crate) fn on_response(
        &mut self,
        timers: &Timers,
        status: u16,
        now: Instant,
    ) -> Vec<Action> {
        let State::Waiting {
            retransmit,
            timeout_at,
            ..
        } = self.state
        else {
            // Completed or Terminated: retransmissions are absorbed.
            return Vec::new();
        };
        match StatusClass::of(status) {
            Some(StatusClass::Provisional) => {
                self.state = State::Waiting {
                    proceeding: true,
                    retransmit,
                    timeout_at,
                };
                vec![Action::PassToTu]
            }
            Some(StatusClass::Success | StatusClass::Failure) if self.reliable => {
                self.state = State::Terminated;
                vec![
                    Action::PassToTu,
                    Action::Terminate(TerminationReason::Normal),
                ]
            }
            Some(StatusClass::Success | StatusClass::Failure) => {
                self.state = State::Completed {
                    terminate_at: after(now, timers.t4),
                };
                vec![Action::PassToTu]
            }
            None => Vec::new(),
        }
    }

    /// The transport could not send the request.
    pub(crate) fn on_transport_error(&mut self) -> Vec<Action> {
        match self.state {
            State::Waiting { .. } => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::TransportError)]
            }
            // The request is no longer being sent: a late report changes nothing.
            State::Completed { .. } | State::Terminated => Vec::new(),
        }
    }

    pub(crate) fn on_timeout(&mut self, timers: &Timers, now: Instant) -> Vec<Action> {
        match self.state {
            State::Waiting { timeout_at, .. } if timeout_at <= now => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::Timeout)]
            }
            State::Waiting {
                proceeding,
                retransmit: Some(retransmit),
                timeout_at,
            } if retransmit.due(now) => {
                // §17.1.2.2: doubling capped at T2 in Trying, straight T2 in Proceeding.
                let retransmit = if proceeding {
                    Retransmit {
                        at: after(now, timers.t2),
                        interval: timers.t2,
                    }
                } else {
                    retransmit.backoff(Some(timers.t2), now)
                };
                self.state = State::Waiting {
                    proceeding,
                    retransmit: Some(retransmit),
                    timeout_at,
                };
                vec![Action::SendRequest]
            }
            State::Completed { terminate_at } if terminate_at <= now => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::Normal)]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TIMERS: Timers = Timers::RFC_3261;

    fn udp(now: Instant) -> NonInviteClient {
        let (machine, actions) = NonInviteClient::start(&TIMERS, false, now);
        assert_eq!(actions, [Action::SendRequest]);
        machine
    }

    fn tcp(now: Instant) -> NonInviteClient {
        NonInviteClient::start(&TIMERS, true, now).0
    }

    /// Runs the timers to the end, returning retransmission times (ms after `t0`).
    fn retransmissions(tx: &mut NonInviteClient, t0: Instant) -> Vec<u128> {
        let mut sent_at = Vec::new();
        while let Some(deadline) = tx.next_deadline() {
            let actions = tx.on_timeout(&TIMERS, deadline);
            if actions == [Action::SendRequest] {
                sent_at.push((deadline - t0).as_millis());
            } else {
                assert_eq!(actions, [Action::Terminate(TerminationReason::Timeout)]);
                assert_eq!(deadline - t0, 64 * 500 * MS, "timer F");
                break;
            }
        }
        sent_at
    }

    #[test]
    fn timer_e_doubles_capped_at_t2_until_timer_f() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        // Intervals 0.5, 1, 2, 4, 4, 4 ... s.
        assert_eq!(
            retransmissions(&mut tx, t0),
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
        assert_eq!(tx.state(), TransactionState::Terminated);
    }

    #[test]
    fn timer_e_is_t2_once_proceeding() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_timeout(&TIMERS, t0 + 500 * MS), [Action::SendRequest]);
        assert_eq!(
            tx.on_response(&TIMERS, 100, t0 + 600 * MS),
            [Action::PassToTu]
        );
        assert_eq!(tx.state(), TransactionState::Proceeding);
        // The pending timer E (1 s interval) still fires as armed, then T2 apart.
        assert_eq!(
            retransmissions(&mut tx, t0),
            [1500, 5500, 9500, 13500, 17500, 21500, 25500, 29500]
        );
    }

    #[test]
    fn reliable_transport_never_retransmits_but_timer_f_fires() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(retransmissions(&mut tx, t0), Vec::<u128>::new());
    }

    #[test]
    fn final_response_completes_and_absorbs_until_timer_k() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(tx.on_response(&TIMERS, 200, t0 + MS), [Action::PassToTu]);
        assert_eq!(tx.state(), TransactionState::Completed);
        assert_eq!(tx.next_deadline(), Some(t0 + MS + Duration::from_secs(5)));
        assert!(tx.on_response(&TIMERS, 200, t0 + 2 * MS).is_empty());
        assert!(tx.on_response(&TIMERS, 100, t0 + 2 * MS).is_empty());
        assert!(tx
            .on_timeout(&TIMERS, t0 + Duration::from_secs(5))
            .is_empty());
        assert_eq!(
            tx.on_timeout(&TIMERS, t0 + MS + Duration::from_secs(5)),
            [Action::Terminate(TerminationReason::Normal)]
        );
    }

    #[test]
    fn final_response_from_proceeding() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_response(&TIMERS, 100, t0);
        assert_eq!(tx.on_response(&TIMERS, 100, t0), [Action::PassToTu]);
        assert_eq!(tx.on_response(&TIMERS, 403, t0), [Action::PassToTu]);
        assert_eq!(tx.state(), TransactionState::Completed);
    }

    #[test]
    fn final_response_over_reliable_transport_terminates_at_once() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(
            tx.on_response(&TIMERS, 404, t0),
            [
                Action::PassToTu,
                Action::Terminate(TerminationReason::Normal)
            ]
        );
        assert_eq!(tx.next_deadline(), None);
        assert!(tx.on_response(&TIMERS, 404, t0).is_empty());
    }

    #[test]
    fn transport_error_in_trying_or_proceeding_terminates() {
        let t0 = Instant::now();
        let mut trying = udp(t0);
        assert_eq!(
            trying.on_transport_error(),
            [Action::Terminate(TerminationReason::TransportError)]
        );
        let mut proceeding = udp(t0);
        proceeding.on_response(&TIMERS, 180, t0);
        assert_eq!(
            proceeding.on_transport_error(),
            [Action::Terminate(TerminationReason::TransportError)]
        );
        let mut completed = udp(t0);
        completed.on_response(&TIMERS, 200, t0);
        assert!(completed.on_transport_error().is_empty());
        assert_eq!(completed.state(), TransactionState::Completed);
    }

    #[test]
    fn nonsense_status_codes_are_ignored() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert!(tx.on_response(&TIMERS, 42, t0).is_empty());
        assert_eq!(tx.state(), TransactionState::Trying);
    }
}
