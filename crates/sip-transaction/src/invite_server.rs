//! INVITE server transaction: RFC 3261 §17.2.1 with the RFC 6026 `Accepted` state.
//!
//! ```text
//! Proceeding --300-699 from TU--> Completed --ACK--> Confirmed --I--> Terminated
//!     |                              \--H (no ACK)--> Terminated
//!     \--2xx from TU--> Accepted --L--> Terminated
//! ```
//!
//! 100 (Trying) goes out when the TU has sent nothing within the configured delay
//! (200 ms by default, §17.2.1), so a TU that answers quickly saves a message.

use std::time::{Duration, Instant};

use crate::config::Timers;
use crate::machine::{
    after, earliest, Action, ResponseRejected, Retransmit, StatusClass, TerminationReason,
    TransactionState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `trying_at`: when to send 100 (Trying) if the TU is still silent.
    /// `responded`: a provisional went out, so retransmitted INVITEs get it again.
    Proceeding {
        trying_at: Option<Instant>,
        responded: bool,
    },
    /// Timer G (retransmit the final response, unreliable only) and timer H (give up on ACK).
    Completed {
        retransmit: Option<Retransmit>,
        timeout_at: Instant,
    },
    /// Timer I: absorb ACK retransmissions.
    Confirmed {
        terminate_at: Instant,
    },
    /// Timer L: absorb INVITE retransmissions, pass ACKs and further 2xx through.
    Accepted {
        terminate_at: Instant,
    },
    Terminated,
}

#[derive(Debug, Clone)]
pub(crate) struct InviteServer {
    state: State,
    reliable: bool,
}

impl InviteServer {
    /// Creates the transaction for a new INVITE, which its first action passes to the TU.
    pub(crate) fn start(
        reliable: bool,
        trying_delay: Duration,
        now: Instant,
    ) -> (Self, Vec<Action>) {
        let (trying_at, actions) = if trying_delay.is_zero() {
            (None, vec![Action::SendTrying, Action::PassToTu])
        } else {
            (Some(after(now, trying_delay)), vec![Action::PassToTu])
        };
        let state = State::Proceeding {
            trying_at,
            responded: trying_at.is_none(),
        };
        let machine = Self { state, reliable };
        (machine, actions)
    }

    pub(crate) fn state(&self) -> TransactionState {
        match self.state {
            State::Proceeding { .. } => TransactionState::Proceeding,
            State::Completed { .. } => TransactionState::Completed,
            State::Confirmed { .. } => TransactionState::Confirmed,
            State::Accepted { .. } => TransactionState::Accepted,
            State::Terminated => TransactionState::Terminated,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Proceeding { trying_at, .. } => trying_at,
            State::Completed {
                retransmit,
                timeout_at,
            } => earliest(&[retransmit.map(|r| r.at), Some(timeout_at)]),
            State::Confirmed { terminate_at } | State::Accepted { terminate_at } => {
                Some(terminate_at)
            }
            State::Terminated => None,
        }
    }

    /// The INVITE arrived again.
    pub(crate) fn on_retransmission(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding {
                responded: true, ..
            }
            | State::Completed { .. } => vec![Action::SendResponse],
            // Accepted: RFC 6026 §7.1, absorbed; 2xx retransmission is the TU's job.
            _ => Vec::new(),
        }
    }

    /// An ACK matching this transaction arrived.
    pub(crate) fn on_ack(&mut self, timers: &Timers, now: Instant) -> Vec<Action> {
        match self.state {
            State::Completed { .. } if self.reliable => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::Normal)]
            }
            State::Completed { .. } => {
                self.state = State::Confirmed {
                    terminate_at: after(now, timers.t4),
                };
                Vec::new()
            }
            // RFC 6026 §7.1: the ACK for a 2xx belongs to the TU.
            State::Accepted { .. } => vec![Action::PassToTu],
            // Confirmed: retransmitted ACK. Proceeding: an ACK before any final
            // response answers nothing.
            _ => Vec::new(),
        }
    }

    /// The TU hands over a response to send.
    pub(crate) fn on_tu_response(
        &mut self,
        timers: &Timers,
        status: u16,
        now: Instant,
    ) -> Result<Vec<Action>, ResponseRejected> {
        let class = StatusClass::of(status).ok_or(ResponseRejected)?;
        match (self.state, class) {
            (State::Proceeding { .. }, StatusClass::Provisional) => {
                self.state = State::Proceeding {
                    trying_at: None,
                    responded: true,
                };
            }
            (State::Proceeding { .. } | State::Accepted { .. }, StatusClass::Success) => {
                // A 2xx in Accepted is the TU retransmitting it or forwarding
                // another fork's; timer L keeps running from the first.
                if let State::Proceeding { .. } = self.state {
                    self.state = State::Accepted {
                        terminate_at: after(now, timers.transaction_timeout()),
                    };
                }
            }
            (State::Proceeding { .. }, StatusClass::Failure) => {
                self.state = State::Completed {
                    retransmit: Retransmit::start(timers, self.reliable, now),
                    timeout_at: after(now, timers.transaction_timeout()),
                };
            }
            _ => return Err(ResponseRejected),
        }
        Ok(vec![Action::SendResponse])
    }

    /// The transport could not send one of this transaction's responses.
    pub(crate) fn on_transport_error(&mut self) -> Vec<Action> {
        match self.state {
            // RFC 6026 figure 7: the TU hears of it, and may still answer (over a new
            // connection, §18.2.2) before the client gives up.
            State::Proceeding { .. } | State::Accepted { .. } => {
                vec![Action::ReportTransportError]
            }
            State::Completed { .. } => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::TransportError)]
            }
            // The final response got through far enough to be ACKed.
            State::Confirmed { .. } | State::Terminated => Vec::new(),
        }
    }

    pub(crate) fn on_timeout(&mut self, timers: &Timers, now: Instant) -> Vec<Action> {
        match self.state {
            State::Proceeding {
                trying_at: Some(at),
                ..
            } if at <= now => {
                self.state = State::Proceeding {
                    trying_at: None,
                    responded: true,
                };
                vec![Action::SendTrying]
            }
            State::Completed { timeout_at, .. } if timeout_at <= now => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::Timeout)]
            }
            State::Completed {
                retransmit: Some(retransmit),
                timeout_at,
            } if retransmit.due(now) => {
                self.state = State::Completed {
                    retransmit: Some(retransmit.backoff(Some(timers.t2), now)),
                    timeout_at,
                };
                vec![Action::SendResponse]
            }
            State::Confirmed { terminate_at } | State::Accepted { terminate_at }
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
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const TIMERS: Timers = Timers::RFC_3261;
    const TRYING_DELAY: Duration = Duration::from_millis(200);

    fn udp(now: Instant) -> InviteServer {
        let (machine, actions) = InviteServer::start(false, TRYING_DELAY, now);
        assert_eq!(actions, [Action::PassToTu]);
        machine
    }

    fn tcp(now: Instant) -> InviteServer {
        InviteServer::start(true, TRYING_DELAY, now).0
    }

    #[test]
    fn trying_sent_when_tu_is_silent_for_200ms() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        // Retransmitted INVITE before anything was sent: absorbed, nothing to resend.
        assert!(tx.on_retransmission().is_empty());
        assert_eq!(tx.next_deadline(), Some(t0 + 200 * MS));
        assert!(tx.on_timeout(&TIMERS, t0 + 199 * MS).is_empty());
        assert_eq!(tx.on_timeout(&TIMERS, t0 + 200 * MS), [Action::SendTrying]);
        assert_eq!(tx.next_deadline(), None);
        assert_eq!(tx.on_retransmission(), [Action::SendResponse]);
        assert_eq!(tx.state(), TransactionState::Proceeding);
    }

    #[test]
    fn tu_provisional_within_200ms_suppresses_trying() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(
            tx.on_tu_response(&TIMERS, 180, t0 + 50 * MS),
            Ok(vec![Action::SendResponse])
        );
        assert_eq!(tx.next_deadline(), None);
        assert!(tx.on_timeout(&TIMERS, t0 + 200 * MS).is_empty());
        assert_eq!(tx.on_retransmission(), [Action::SendResponse]);
    }

    #[test]
    fn zero_trying_delay_sends_trying_at_once() {
        let t0 = Instant::now();
        let (mut tx, actions) = InviteServer::start(false, Duration::ZERO, t0);
        assert_eq!(actions, [Action::SendTrying, Action::PassToTu]);
        assert_eq!(tx.next_deadline(), None);
        assert_eq!(tx.on_retransmission(), [Action::SendResponse]);
    }

    #[test]
    fn failure_response_retransmits_with_timer_g_capped_at_t2_until_timer_h() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert_eq!(
            tx.on_tu_response(&TIMERS, 486, t0),
            Ok(vec![Action::SendResponse])
        );
        assert_eq!(tx.state(), TransactionState::Completed);
        let mut sent_at = Vec::new();
        while let Some(deadline) = tx.next_deadline() {
            let actions = tx.on_timeout(&TIMERS, deadline);
            if actions == [Action::SendResponse] {
                sent_at.push((deadline - t0).as_millis());
            } else {
                assert_eq!(actions, [Action::Terminate(TerminationReason::Timeout)]);
                assert_eq!(deadline - t0, 64 * 500 * MS, "timer H");
                break;
            }
        }
        assert_eq!(
            sent_at,
            [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
        );
    }

    #[test]
    fn retransmitted_invite_in_completed_resends_final() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_tu_response(&TIMERS, 404, t0).unwrap();
        assert_eq!(tx.on_retransmission(), [Action::SendResponse]);
    }

    #[test]
    fn ack_confirms_and_timer_i_terminates() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_tu_response(&TIMERS, 404, t0).unwrap();
        assert!(tx.on_ack(&TIMERS, t0 + MS).is_empty());
        assert_eq!(tx.state(), TransactionState::Confirmed);
        assert_eq!(tx.next_deadline(), Some(t0 + MS + Duration::from_secs(5)));
        // Retransmitted ACK and INVITE: absorbed, no more response retransmission.
        assert!(tx.on_ack(&TIMERS, t0 + 2 * MS).is_empty());
        assert!(tx.on_retransmission().is_empty());
        assert!(tx
            .on_timeout(&TIMERS, t0 + Duration::from_secs(5))
            .is_empty());
        assert_eq!(
            tx.on_timeout(&TIMERS, t0 + MS + Duration::from_secs(5)),
            [Action::Terminate(TerminationReason::Normal)]
        );
    }

    #[test]
    fn reliable_transport_no_timer_g_and_ack_terminates_at_once() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        tx.on_tu_response(&TIMERS, 500, t0).unwrap();
        // Only timer H remains.
        assert_eq!(tx.next_deadline(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.on_ack(&TIMERS, t0 + MS),
            [Action::Terminate(TerminationReason::Normal)]
        );
        assert_eq!(tx.state(), TransactionState::Terminated);
    }

    #[test]
    fn reliable_transport_timer_h_still_fires() {
        let t0 = Instant::now();
        let mut tx = tcp(t0);
        tx.on_tu_response(&TIMERS, 500, t0).unwrap();
        assert_eq!(
            tx.on_timeout(&TIMERS, t0 + Duration::from_secs(32)),
            [Action::Terminate(TerminationReason::Timeout)]
        );
    }

    #[test]
    fn success_enters_accepted_until_timer_l() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_tu_response(&TIMERS, 180, t0).unwrap();
        assert_eq!(
            tx.on_tu_response(&TIMERS, 200, t0 + MS),
            Ok(vec![Action::SendResponse])
        );
        assert_eq!(tx.state(), TransactionState::Accepted);
        // INVITE retransmissions are absorbed, not even answered.
        assert!(tx.on_retransmission().is_empty());
        // ACKs (for 2xx) go to the TU, every time.
        assert_eq!(tx.on_ack(&TIMERS, t0 + 2 * MS), [Action::PassToTu]);
        assert_eq!(tx.on_ack(&TIMERS, t0 + 3 * MS), [Action::PassToTu]);
        // The TU may send 2xx again (its own retransmission, or another fork's).
        assert_eq!(
            tx.on_tu_response(&TIMERS, 200, t0 + 4 * MS),
            Ok(vec![Action::SendResponse])
        );
        // But not a provisional or a failure any more.
        assert_eq!(tx.on_tu_response(&TIMERS, 180, t0), Err(ResponseRejected));
        assert_eq!(tx.on_tu_response(&TIMERS, 486, t0), Err(ResponseRejected));
        // Timer L runs from the first 2xx.
        assert_eq!(tx.next_deadline(), Some(t0 + MS + Duration::from_secs(32)));
        assert_eq!(
            tx.on_timeout(&TIMERS, t0 + MS + Duration::from_secs(32)),
            [Action::Terminate(TerminationReason::Normal)]
        );
    }

    #[test]
    fn success_stops_pending_trying() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_tu_response(&TIMERS, 200, t0 + 10 * MS).unwrap();
        assert!(tx.on_timeout(&TIMERS, t0 + 200 * MS).is_empty());
        assert_eq!(tx.state(), TransactionState::Accepted);
    }

    #[test]
    fn responses_after_final_are_rejected() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        tx.on_tu_response(&TIMERS, 486, t0).unwrap();
        assert_eq!(tx.on_tu_response(&TIMERS, 200, t0), Err(ResponseRejected));
        assert_eq!(tx.on_tu_response(&TIMERS, 180, t0), Err(ResponseRejected));
        tx.on_ack(&TIMERS, t0);
        assert_eq!(tx.on_tu_response(&TIMERS, 487, t0), Err(ResponseRejected));
        assert_eq!(tx.on_tu_response(&TIMERS, 1000, t0), Err(ResponseRejected));
    }

    #[test]
    fn ack_in_proceeding_is_ignored() {
        let t0 = Instant::now();
        let mut tx = udp(t0);
        assert!(tx.on_ack(&TIMERS, t0).is_empty());
        assert_eq!(tx.state(), TransactionState::Proceeding);
    }

    #[test]
    fn transport_errors() {
        let t0 = Instant::now();
        let mut proceeding = udp(t0);
        proceeding.on_tu_response(&TIMERS, 180, t0).unwrap();
        assert_eq!(
            proceeding.on_transport_error(),
            [Action::ReportTransportError]
        );
        assert_eq!(proceeding.state(), TransactionState::Proceeding);

        let mut accepted = udp(t0);
        accepted.on_tu_response(&TIMERS, 200, t0).unwrap();
        assert_eq!(
            accepted.on_transport_error(),
            [Action::ReportTransportError]
        );
        assert_eq!(accepted.state(), TransactionState::Accepted);

        let mut completed = udp(t0);
        completed.on_tu_response(&TIMERS, 603, t0).unwrap();
        assert_eq!(
            completed.on_transport_error(),
            [Action::Terminate(TerminationReason::TransportError)]
        );

        let mut confirmed = udp(t0);
        confirmed.on_tu_response(&TIMERS, 603, t0).unwrap();
        confirmed.on_ack(&TIMERS, t0);
        assert!(confirmed.on_transport_error().is_empty());
        assert_eq!(confirmed.state(), TransactionState::Confirmed);
    }
}
