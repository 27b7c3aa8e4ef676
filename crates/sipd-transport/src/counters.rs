//! Atomic counters, read as a plain snapshot for logs and metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use sip_message::Transport;

macro_rules! transport_counters {
    ($($(#[$doc:meta])* $field:ident,)*) => {
        #[derive(Debug, Default)]
        pub(crate) struct TransportCounters {
            $(pub(crate) $field: AtomicU64,)*
        }

        /// Counters of one transport.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct TransportStats {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl TransportCounters {
            fn snapshot(&self) -> TransportStats {
                TransportStats {
                    $($field: self.$field.load(Ordering::Relaxed),)*
                }
            }
        }
    };
}

transport_counters! {
    /// SIP messages received and handed to the core.
    messages_in,
    /// SIP messages written to the network.
    messages_out,
    /// Keep-alives received (CRLF / CRLFCRLF, WebSocket pings).
    keepalives_in,
    /// Messages over the size limits (the connection was closed, or the datagram dropped).
    dropped_oversize,
    /// Streams that could not be framed (the connection was closed).
    dropped_framing,
    /// UDP datagrams dropped because the core's queue was full.
    dropped_overload,
    /// Messages the core could not parse (counted by the core through
    /// [`crate::Transports::record_unparsable`]).
    unparsable,
    /// Sends that failed (flow gone, queue full, socket error).
    send_failures,
    /// Connections open now.
    connections_open,
    /// Connections accepted (handshakes completed) since start.
    connections_accepted,
    /// Connections sipd opened ([`crate::Transports::connect`]; handshakes completed) since
    /// start.
    connections_opened,
    /// Connections refused by the connection limits.
    connections_rejected,
    /// Connections sipd failed to open: refused, unreachable, timed out, TLS handshake failed,
    /// or the connection limit reached.
    connect_failures,
    /// TLS or WebSocket handshakes that failed or timed out, accepted and opened.
    handshake_failures,
    /// Connections closed for idleness.
    idle_closes,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    transports: [TransportCounters; 5],
    pub(crate) certificate_reloads: AtomicU64,
    pub(crate) certificate_reload_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn of(&self, transport: Transport) -> &TransportCounters {
        &self.transports[transport as usize]
    }

    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let of = |transport| self.of(transport).snapshot();
        CountersSnapshot {
            udp: of(Transport::Udp),
            tcp: of(Transport::Tcp),
            tls: of(Transport::Tls),
            ws: of(Transport::Ws),
            wss: of(Transport::Wss),
            certificate_reloads: self.certificate_reloads.load(Ordering::Relaxed),
            certificate_reload_failures: self.certificate_reload_failures.load(Ordering::Relaxed),
        }
    }
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn drop_one(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}

/// All counters at one moment (each read separately, so not one atomic picture).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub udp: TransportStats,
    pub tcp: TransportStats,
    pub tls: TransportStats,
    pub ws: TransportStats,
    pub wss: TransportStats,
    /// Certificate reloads that took effect.
    pub certificate_reloads: u64,
    /// Certificate reloads that failed (the previous certificate stayed in use).
    pub certificate_reload_failures: u64,
}

impl CountersSnapshot {
    /// The counters of one transport.
    pub fn of(&self, transport: Transport) -> &TransportStats {
        match transport {
            Transport::Udp => &self.udp,
            Transport::Tcp => &self.tcp,
            Transport::Tls => &self.tls,
            Transport::Ws => &self.ws,
            Transport::Wss => &self.wss,
        }
    }

    /// Connections open now, all transports together.
    pub fn connections_open(&self) -> u64 {
        Transport::ALL
            .iter()
            .map(|transport| self.of(*transport).connections_open)
            .sum()
    }
}
