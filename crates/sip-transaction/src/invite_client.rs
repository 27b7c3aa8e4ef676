//! INVITE client transaction: RFC 3261 §17.1.1 with the RFC 6026 `Accepted` state.
//!
//! ```text
//! Calling --1xx--> Proceeding --2xx--> Accepted --M--> Terminated
//!    |  \--2xx--------------------------^
//!    \--300-699 (from Calling or Proceeding, ACK sent)--> Completed --D--> Terminated
//! ```

use std::time::Instant;

use crate::config::Timers;
use crate::machine::{
    after, earliest, Action, Retransmit, StatusClass, TerminationReason, TransactionState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Timer A (retransmit, unreliable only) and timer B (give up).
    Calling {
        retransmit: Option<Retransmit>,
        timeout_at: Instant,
    },
    /// No timer: the TU bounds this state (a proxy's timer C, §16.6 step 11).
    Proceeding,
    /// Timer D: absorb retransmitted final responses, re-ACKing each.
    Completed {
        terminate_at: Instant,
    },
    /// Timer M: pass further 2xx (retransmissions, forks) up without ACKing.
    Accepted {
        terminate_at: Instant,
    },
    Terminated,
}

#[derive(Debug, Clone)]
pub(crate) struct InviteClient {
    state: State,
    reliable: bool,
}

impl InviteClient {
    /// Creates the transaction; its first action sends the INVITE.
    pub(crate) fn start(timers: &Timers, reliable: bool, now: Instant) -> (Self, Vec<Action>) {
        let state = State::Calling {
            retransmit: Retransmit::start(timers, reliable, now),
            timeout_at: after(now, timers.transaction_timeout()),
        };
        let machine = Self { state, reliable };
        (machine, vec![Action::SendRequest])
    }

    pub(crate) fn state(&self) -> TransactionState {
        match self.state {
            State::Calling { .. } => TransactionState::Calling,
            State::Proceeding => TransactionState::Proceeding,
            State::Completed { .. } => TransactionState::Completed,
            State::Accepted { .. } => TransactionState::Accepted,
            State::Terminated => TransactionState::Terminated,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Calling {
                retransmit,
                timeout_at,
            } => earliest(&[retransmit.map(|r| r.at), Some(timeout_at)]),
            State::Completed { terminate_at } | State::Accepted { terminate_at } => {
                Some(terminate_at)
            }
            State::Proceeding | State::Terminated => None,
        }
    }

    /// A response matching this transaction arrived.
    pub(crate) fn on_response(
        &mut self,
        timers: &Timers,
        status: u16,
        now: Instant,
    ) -> Vec<Action> {
        let Some(class) = StatusClass::of(status) else {
            return Vec::new();
        };
        match (self.state, class) {
            (State::Calling { .. } | State::Proceeding, StatusClass::Provisional) => {
                self.state = State::Proceeding;
                vec![Action::PassToTu]
            }
            (State::Calling { .. } | State::Proceeding, StatusClass::Success) => {
                self.state = State::Accepted {
                    terminate_at: after(now, timers.transaction_timeout()),
                };
                vec![Action::PassToTu]
            }
            (State::Calling { .. } | State::Proceeding, StatusClass::Failure) => {
                if self.reliable {
                    self.state = State::Terminated;
                    vec![
                        Action::SendAck,
                        Action::PassToTu,
                        Action::Terminate(TerminationReason::Normal),
                    ]
                } else {
                    self.state = State::Completed {
                        terminate_at: after(now, timers.timer_d()),
                    };
                    vec![Action::SendAck, Action::PassToTu]
                }
            }
            // The server retransmits its final response until our ACK gets through.
            (State::Completed { .. }, StatusClass::Failure) => vec![Action::SendAck],
            // RFC 6026 §7.2: every 2xx goes up so the TU can ACK each dialog.
            (State::Accepted { .. }, StatusClass::Success) => vec![Action::PassToTu],
            _ => Vec::new(),
        }
    }

    /// The transport could not send the INVITE or the ACK.
    pub(crate) fn on_transport_error(&mut self) -> Vec<Action> {
        match self.state {
            State::Calling { .. } | State::Completed { .. } => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::TransportError)]
            }
            // Nothing is sent in Proceeding or Accepted: a late report of an
            // earlier send changes nothing now.
            State::Proceeding | State::Accepted { .. } | State::Terminated => Vec::new(),
        }
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
            State::Calling { timeout_at, .. } if timeout_at <= now => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::Timeout)]
            }
            State::Calling {
                retransmit: Some(retransmit),
                timeout_at,
            } if retransmit.due(now) => {
                // Timer A doubles without the T2 cap (§17.1.1.2); timer B bounds it.
                self.state = State::Calling {
                    retransmit: Some(retransmit.backoff(None, now)),
                    timeout_at,
                };
                vec![Action::SendRequest]
            }
            State::Completed { terminate_at } | State::Accepted { terminate_at }
                if terminate_at <= now =>
            {
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

    fn udp(now: Instant) -> InviteClient {
        let (machine, actions) = InviteClient::start(&TIMERS, false, now);
        assert_eq!(actions, [Action::SendRequest]);
        machine
    }

    fn tcp(now: Instant) -> InviteClient {
        InviteClient::start(&TIMERS, true, now).0
    }

    #[test]
    fn timer_a_doubles_without_cap_until_timer_b() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        let mut sent_at = Vec::new();
        while let Some(deadline) = tx.next_deadline() {
            let actions = tx.on_timeout(deadline);
            if actions == [Action::SendRequest] {
                sent_at.push((deadline - t0).as_millis());
            } else {
                assert_eq!(actions, [Action::Terminate(TerminationReason::Timeout)]);
                assert_eq!(deadline - t0, 64 * 500 * MS);
                break;
            }
        }
        // 500 ms, then 1, 2, 4, 8, 16 s apart: past T2, because INVITE is not capped.
        assert_eq!(sent_at, [500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(tx.state(), TransactionState::Terminated);
    }

    #[test]
    fn timeout_before_deadline_does_nothing() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert!(tx.on_timeout(t0 + 499 * MS).is_empty());
        assert_eq!(tx.next_deadline(), Some(t0 + 500 * MS));
    }

    #[test]
    fn late_wakeup_past_timer_b_times_out_without_retransmitting() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(
            tx.on_timeout(t0 + Duration::from_secs(40)),
            [Action::Terminate(TerminationReason::Timeout)]
        );
    }

    #[test]
    fn reliable_transport_never_retransmits_but_times_out() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
        assert!(tx.on_timeout(t0 + Duration::from_secs(31)).is_empty());
        assert_eq!(
            tx.on_timeout(t0 + Duration::from_secs(32)),
            [Action::Terminate(TerminationReason::Timeout)]
        );
    }

    #[test]
    fn provisional_stops_retransmissions_and_timer_b() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(
            tx.on_response(&TIMERS, 180, t0 + 100 * MS),
            [Action::PassToTu]
        );
        assert_eq!(tx.state(), TransactionState::Proceeding);
        assert_eq!(tx.next_deadline(), None);
        assert!(tx.on_timeout(t0 + Duration::from_secs(60)).is_empty());
        // Further provisionals keep going up.
        assert_eq!(tx.on_response(&TIMERS, 183, t0), [Action::PassToTu]);
        assert_eq!(tx.state(), TransactionState::Proceeding);
    }

    #[test]
    fn non_2xx_final_acks_and_absorbs_retransmissions_until_timer_d() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_response(&TIMERS, 100, t0);
        assert_eq!(
            tx.on_response(&TIMERS, 486, t0 + MS),
            [Action::SendAck, Action::PassToTu]
        );
        assert_eq!(tx.state(), TransactionState::Completed);
        assert_eq!(tx.next_deadline(), Some(t0 + MS + Duration::from_secs(32)));
        // Retransmitted final: ACK again, TU not bothered.
        assert_eq!(tx.on_response(&TIMERS, 486, t0 + 2 * MS), [Action::SendAck]);
        // Stray provisional or 2xx in Completed: absorbed.
        assert!(tx.on_response(&TIMERS, 180, t0 + 3 * MS).is_empty());
        assert!(tx.on_response(&TIMERS, 200, t0 + 3 * MS).is_empty());
        assert!(tx.on_timeout(t0 + Duration::from_secs(32)).is_empty());
        assert_eq!(
            tx.on_timeout(t0 + MS + Duration::from_secs(32)),
            [Action::Terminate(TerminationReason::Normal)]
        );
    }

    #[test]
    fn non_2xx_final_straight_from_calling() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(
            tx.on_response(&TIMERS, 503, t0),
            [Action::SendAck, Action::PassToTu]
        );
        assert_eq!(tx.state(), TransactionState::Completed);
    }

    #[test]
    fn non_2xx_final_over_reliable_transport_terminates_at_once() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(
            tx.on_response(&TIMERS, 404, t0),
            [
                Action::SendAck,
                Action::PassToTu,
                Action::Terminate(TerminationReason::Normal)
            ]
        );
        assert_eq!(tx.state(), TransactionState::Terminated);
        assert_eq!(tx.next_deadline(), None);
    }

    #[test]
    fn success_enters_accepted_and_passes_every_2xx_until_timer_m() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_response(&TIMERS, 180, t0);
        assert_eq!(tx.on_response(&TIMERS, 200, t0 + MS), [Action::PassToTu]);
        assert_eq!(tx.state(), TransactionState::Accepted);
        // Retransmitted or forked 2xx: up to the TU, never ACKed here.
        assert_eq!(
            tx.on_response(&TIMERS, 200, t0 + 2 * MS),
            [Action::PassToTu]
        );
        assert!(tx.on_response(&TIMERS, 180, t0 + 2 * MS).is_empty());
        assert!(tx.on_response(&TIMERS, 500, t0 + 2 * MS).is_empty());
        assert_eq!(tx.next_deadline(), Some(t0 + MS + Duration::from_secs(32)));
        assert_eq!(
            tx.on_timeout(t0 + MS + Duration::from_secs(32)),
            [Action::Terminate(TerminationReason::Normal)]
        );
    }

    #[test]
    fn success_over_reliable_transport_still_waits_for_timer_m() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        assert_eq!(tx.on_response(&TIMERS, 200, t0), [Action::PassToTu]);
        assert_eq!(tx.state(), TransactionState::Accepted);
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
    }

    #[test]
    fn transport_errors() {
        let t0 = Instant::now();
        let mut calling = udp(t0);
        assert_eq!(
            calling.on_transport_error(),
            [Action::Terminate(TerminationReason::TransportError)]
        );

        let mut completed = udp(t0);
        completed.on_response(&TIMERS, 600, t0);
        assert_eq!(
            completed.on_transport_error(),
            [Action::Terminate(TerminationReason::TransportError)]
        );

        let mut proceeding = udp(t0);
        proceeding.on_response(&TIMERS, 180, t0);
        assert!(proceeding.on_transport_error().is_empty());
        assert_eq!(proceeding.state(), TransactionState::Proceeding);

        let mut accepted = udp(t0);
        accepted.on_response(&TIMERS, 200, t0);
        assert!(accepted.on_transport_error().is_empty());
        assert_eq!(accepted.state(), TransactionState::Accepted);
    }

    #[test]
    fn terminated_ignores_everything() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        tx.on_response(&TIMERS, 404, t0);
        assert!(tx.on_response(&TIMERS, 404, t0).is_empty());
        assert!(tx.on_response(&TIMERS, 200, t0).is_empty());
        assert!(tx.on_transport_error().is_empty());
        assert!(tx.on_timeout(t0 + Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn nonsense_status_codes_are_ignored() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert!(tx.on_response(&TIMERS, 99, t0).is_empty());
        assert!(tx.on_response(&TIMERS, 700, t0).is_empty());
        assert_eq!(tx.state(), TransactionState::Calling);
    }
}
