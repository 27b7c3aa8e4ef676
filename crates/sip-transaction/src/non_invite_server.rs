//! Non-INVITE server transaction: RFC 3261 §17.2.2.
//!
//! ```text
//! Trying --1xx from TU--> Proceeding --200-699 from TU--> Completed --J--> Terminated
//!    \--200-699 from TU---------------------------------------^
//! ```

use std::time::Instant;

use crate::config::Timers;
use crate::machine::{
    after, Action, ResponseRejected, StatusClass, TerminationReason, TransactionState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No timer: the TU must answer (the client gives up after 64×T1 anyway).
    Trying,
    Proceeding,
    /// Timer J: answer request retransmissions with the final response.
    Completed {
        terminate_at: Instant,
    },
    Terminated,
}

#[derive(Debug, Clone)]
pub(crate) struct NonInviteServer {
    state: State,
    reliable: bool,
}

impl NonInviteServer {
    /// Creates the transaction for a new request, which its first action passes to the TU.
    pub(crate) fn start(reliable: bool) -> (Self, Vec<Action>) {
        let machine = Self {
            state: State::Trying,
            reliable,
        };
        (machine, vec![Action::PassToTu])
    }

    pub(crate) fn state(&self) -> TransactionState {
        match self.state {
            State::Trying => TransactionState::Trying,
            State::Proceeding => TransactionState::Proceeding,
            State::Completed { .. } => TransactionState::Completed,
            State::Terminated => TransactionState::Terminated,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Completed { terminate_at } => Some(terminate_at),
            State::Trying | State::Proceeding | State::Terminated => None,
        }
    }

    /// The request arrived again.
    pub(crate) fn on_retransmission(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding | State::Completed { .. } => vec![Action::SendResponse],
            // Trying: nothing to resend yet; the TU already has the request.
            State::Trying | State::Terminated => Vec::new(),
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
        if !matches!(self.state, State::Trying | State::Proceeding) {
            return Err(ResponseRejected);
        }
        Ok(match class {
            StatusClass::Provisional => {
                self.state = State::Proceeding;
                vec![Action::SendResponse]
            }
            StatusClass::Success | StatusClass::Failure if self.reliable => {
                self.state = State::Terminated;
                vec![
                    Action::SendResponse,
                    Action::Terminate(TerminationReason::Normal),
                ]
            }
            StatusClass::Success | StatusClass::Failure => {
                self.state = State::Completed {
                    terminate_at: after(now, timers.transaction_timeout()),
                };
                vec![Action::SendResponse]
            }
        })
    }

    /// The transport could not send one of this transaction's responses.
    pub(crate) fn on_transport_error(&mut self) -> Vec<Action> {
        match self.state {
            State::Proceeding | State::Completed { .. } => {
                self.state = State::Terminated;
                vec![Action::Terminate(TerminationReason::TransportError)]
            }
            // Nothing has been sent from Trying.
            State::Trying | State::Terminated => Vec::new(),
        }
    }

    pub(crate) fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        match self.state {
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

    fn udp() -> NonInviteServer {
        let (machine, actions) = NonInviteServer::start(false);
        assert_eq!(actions, [Action::PassToTu]);
        machine
    }

    #[test]
    fn retransmission_in_trying_is_absorbed_silently() {
        let mut tx = udp();
        assert!(tx.on_retransmission().is_empty());
        assert_eq!(tx.state(), TransactionState::Trying);
        assert_eq!(tx.next_deadline(), None);
    }

    #[test]
    fn provisional_then_final_then_timer_j() {
        let t0 = Instant::now();
        let mut tx = udp();
        assert_eq!(
            tx.on_tu_response(&TIMERS, 100, t0),
            Ok(vec![Action::SendResponse])
        );
        assert_eq!(tx.state(), TransactionState::Proceeding);
        assert_eq!(tx.on_retransmission(), [Action::SendResponse]);
        assert_eq!(
            tx.on_tu_response(&TIMERS, 183, t0),
            Ok(vec![Action::SendResponse])
        );
        assert_eq!(
            tx.on_tu_response(&TIMERS, 200, t0 + MS),
            Ok(vec![Action::SendResponse])
        );
        assert_eq!(tx.state(), TransactionState::Completed);
        assert_eq!(tx.next_deadline(), Some(t0 + MS + Duration::from_secs(32)));
        assert_eq!(tx.on_retransmission(), [Action::SendResponse]);
        assert!(tx.on_timeout(t0 + Duration::from_secs(32)).is_empty());
        assert_eq!(
            tx.on_timeout(t0 + MS + Duration::from_secs(32)),
            [Action::Terminate(TerminationReason::Normal)]
        );
        assert_eq!(tx.state(), TransactionState::Terminated);
    }

    #[test]
    fn final_straight_from_trying() {
        let t0 = Instant::now();
        let mut tx = udp();
        assert_eq!(
            tx.on_tu_response(&TIMERS, 401, t0),
            Ok(vec![Action::SendResponse])
        );
        assert_eq!(tx.state(), TransactionState::Completed);
    }

    #[test]
    fn reliable_transport_terminates_on_final() {
        let t0 = Instant::now();
        let mut tx = NonInviteServer::start(true).0;
        assert_eq!(
            tx.on_tu_response(&TIMERS, 200, t0),
            Ok(vec![
                Action::SendResponse,
                Action::Terminate(TerminationReason::Normal)
            ])
        );
        assert_eq!(tx.next_deadline(), None);
    }

    #[test]
    fn second_final_is_rejected() {
        let t0 = Instant::now();
        let mut tx = udp();
        tx.on_tu_response(&TIMERS, 200, t0).unwrap();
        assert_eq!(tx.on_tu_response(&TIMERS, 200, t0), Err(ResponseRejected));
        assert_eq!(tx.on_tu_response(&TIMERS, 100, t0), Err(ResponseRejected));
        assert_eq!(udp().on_tu_response(&TIMERS, 42, t0), Err(ResponseRejected));
    }

    #[test]
    fn transport_errors() {
        let t0 = Instant::now();
        let mut trying = udp();
        assert!(trying.on_transport_error().is_empty());
        let mut proceeding = udp();
        proceeding.on_tu_response(&TIMERS, 100, t0).unwrap();
        assert_eq!(
            proceeding.on_transport_error(),
            [Action::Terminate(TerminationReason::TransportError)]
        );
        let mut completed = udp();
        completed.on_tu_response(&TIMERS, 200, t0).unwrap();
        assert_eq!(
            completed.on_transport_error(),
            [Action::Terminate(TerminationReason::TransportError)]
        );
    }
}
