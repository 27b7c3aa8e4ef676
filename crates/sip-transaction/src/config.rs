//! Timer values and layer limits.

use std::time::Duration;

/// RFC 3261 timer base values; every §17 timer derives from these (table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (default 500 ms): first retransmission interval, and 64×T1 is the
    /// transaction timeout.
    pub t1: Duration,
    /// Cap on non-INVITE request and INVITE response retransmission intervals (default 4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (default 5 s): timers I and K.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self::RFC_3261
    }
}

/// Upper bound on T1, T2, T4 and the Trying delay: larger values are surely a unit
/// mistake, and bounding them keeps deadline arithmetic far from overflow.
const MAX_TIMER: Duration = Duration::from_secs(3600);

/// RFC 3261 §17.1.1.2: timer D is "at least 32 seconds" over unreliable transports.
const MIN_TIMER_D: Duration = Duration::from_secs(32);

impl Timers {
    /// The values RFC 3261 recommends (table 4), the default.
    pub(crate) const RFC_3261: Self = Self {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
    };

    /// 64×T1: timers B, F, H, J, L, M.
    pub(crate) fn transaction_timeout(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer D, stretched past 32 s when T1 is raised so the client still outlives the
    /// server's retransmissions of its final response.
    pub(crate) fn timer_d(&self) -> Duration {
        MIN_TIMER_D.max(self.transaction_timeout())
    }
}

/// Configuration of a [`TransactionLayer`](crate::TransactionLayer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// T1, T2, T4.
    pub timers: Timers,
    /// How long an INVITE server transaction waits for the TU's first response before
    /// sending 100 (Trying) itself (RFC 3261 §17.2.1: 200 ms). Zero sends it at once.
    pub invite_trying_delay: Duration,
    /// Most transactions in progress at once, client and server: past it a new request
    /// is refused ([`ReceiveError::Overloaded`](crate::ReceiveError::Overloaded)) and so
    /// are [`send_request`](crate::TransactionLayer::send_request) and
    /// [`cancel`](crate::TransactionLayer::cancel). It counts every transaction until it
    /// reports [`Output::Terminated`](crate::Output::Terminated)
    /// ([`len`](crate::TransactionLayer::len)): a server until its final response, and
    /// beyond it an INVITE server through Completed, Confirmed and Accepted; a client
    /// until it ends (Completed and Accepted included). A non-INVITE server transaction
    /// whose final response went out over an unreliable transport no longer counts: it
    /// becomes a completed record, bounded by [`max_completed`](Self::max_completed).
    pub max_transactions: usize,
    /// Most compact records kept for 64×T1 (32 s): completed non-INVITE server
    /// transactions over unreliable transports, which resend their final response to
    /// retransmissions of their request (Timer J), and INVITE transactions in RFC 6026
    /// Accepted (Timers L and M). A record costs about 150 bytes plus the response it
    /// resends (sipd's 200 to a REGISTER is ~360 bytes: ~510 bytes in all, measured in
    /// `tests/memory.rs`; an accepted INVITE's holds none). Past the bound the oldest
    /// record is dropped early, and a later retransmission of its request reaches the TU
    /// as a new request (a REGISTER is processed again); zero keeps none.
    ///
    /// The default, 2^18 = 262,144 records, is at most ~134 MB per layer of REGISTER
    /// records. It holds every record for all of Timer J up to 8,192 REGISTERs per second
    /// per layer, or about 2,700 calls per second per layer (three records each: INVITE
    /// server and client, BYE); at twice that a record still lives 16 s, past the sixth
    /// retransmission of its request (T1 doubling to T2: 0.5, 1.5, 3.5, 7.5, 11.5 and
    /// 15.5 s): its request reaches the TU again only if seven responses in a row were
    /// lost.
    pub max_completed: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            timers: Timers::default(),
            invite_trying_delay: Duration::from_millis(200),
            max_transactions: 100_000,
            max_completed: 1 << 18,
        }
    }
}

/// Why a [`Config`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// T1 must be positive: it paces every retransmission.
    ZeroT1,
    /// T2 caps intervals that start at T1, so it cannot be below T1.
    T2BelowT1,
    /// A timer or the Trying delay exceeds one hour.
    TimerTooLong,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ZeroT1 => "T1 must be positive",
            Self::T2BelowT1 => "T2 must not be below T1",
            Self::TimerTooLong => "timers must not exceed one hour",
        })
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let Timers { t1, t2, t4 } = self.timers;
        if t1.is_zero() {
            return Err(ConfigError::ZeroT1);
        }
        if t2 < t1 {
            return Err(ConfigError::T2BelowT1);
        }
        if [t1, t2, t4, self.invite_trying_delay]
            .iter()
            .any(|d| *d > MAX_TIMER)
        {
            return Err(ConfigError::TimerTooLong);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_rfc_3261() {
        let timers = Timers::default();
        assert_eq!(timers.transaction_timeout(), Duration::from_secs(32));
        assert_eq!(timers.timer_d(), Duration::from_secs(32));
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn timer_d_grows_with_t1() {
        let timers = Timers {
            t1: Duration::from_secs(1),
            ..Timers::default()
        };
        assert_eq!(timers.timer_d(), Duration::from_secs(64));
    }

    #[test]
    fn rejects_nonsense_timers() {
        let with = |timers| Config {
            timers,
            ..Config::default()
        };
        let base = Timers::default();
        assert_eq!(
            with(Timers {
                t1: Duration::ZERO,
                ..base
            })
            .validate(),
            Err(ConfigError::ZeroT1)
        );
        assert_eq!(
            with(Timers {
                t2: Duration::from_millis(100),
                ..base
            })
            .validate(),
            Err(ConfigError::T2BelowT1)
        );
        assert_eq!(
            with(Timers {
                t4: Duration::from_secs(7200),
                ..base
            })
            .validate(),
            Err(ConfigError::TimerTooLong)
        );
    }
}
