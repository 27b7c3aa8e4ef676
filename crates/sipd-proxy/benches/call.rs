//! The proxy's work for one call, as the call-load benchmark places them (see
//! docs/PERFORMANCE.md): INVITE → 407 → ACK → INVITE with credentials → 100, forwarded →
//! 180 → 200 → ACK (stateless, by Route) → BYE → 200, each message parsed as the server
//! parses it, the lookups answered at once as a warm cache does, and the virtual clock moved
//! 250 µs per call (4,000 calls/s) so timers fire and records expire as under that load.
//! Only the proxy's part is timed: parsing what arrives, handling it, and the lookups'
//! answers; the phones' messages are made outside the timed sections.
//!
//! `cargo bench -p sipd-proxy --bench call`

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{answer, config, endpoint, in_dialog, invite, registration, udp, PROXY_IP};
use criterion::{criterion_group, criterion_main, Criterion};
use sip_message::{FlowId, HeaderName, Message};
use sipd_proxy::{AuthRefusal, Callee, NextHop, Output, Proxy};

const CALL_INTERVAL: Duration = Duration::from_micros(250);

struct Bench {
    proxy: Proxy,
    now: Instant,
    callee: Callee,
    /// What the proxy put on flows during the last delivery.
    sent: Vec<(FlowId, Bytes)>,
    /// Time spent in the proxy's part.
    busy: Duration,
    calls: u64,
}

impl Bench {
    fn new() -> Bench {
        Bench {
            proxy: Proxy::new(
                sip_transaction::Config::default(),
                config(),
                std::hash::RandomState::new(),
                "px-".to_owned(),
            )
            .unwrap(),
            now: Instant::now(),
            callee: Callee {
                endpoint: endpoint("bob"),
                registrations: vec![registration("sip:bob@10.0.0.9:5060", callee_flow())],
            },
            sent: Vec::new(),
            busy: Duration::ZERO,
            calls: 0,
        }
    }

    /// Parses `bytes` as arriving on `flow` and does everything the proxy asks for: the
    /// timed part.
    fn deliver(&mut self, flow: FlowId, bytes: Bytes) {
        self.sent.clear();
        let started = Instant::now();
        let remote = match flow {
            FlowId::Udp(addr) => addr,
            FlowId::Connection { .. } => unreachable!("UDP only"),
        };
        let arrival = sipd_proxy::Arrival {
            flow,
            remote,
            local: SocketAddr::new(PROXY_IP.parse().unwrap(), 5060),
        };
        let message = Message::parse(bytes).expect("the bench's messages parse");
        self.proxy.handle_message(message, arrival, self.now);
        self.drain();
        self.busy += started.elapsed();
    }

    fn drain(&mut self) {
        while let Some(output) = self.proxy.poll_output() {
            match output {
                Output::Transmit { flow, payload, .. } => self.sent.push((flow, payload)),
                Output::SendStateless { hop, message } => {
                    let NextHop::Flow { flow, .. } = hop else {
                        panic!("the ACK goes to the callee's flow");
                    };
                    self.sent.push((flow, message));
                }
                Output::Authenticate { context, request } => {
                    let result = if request.header(HeaderName::ProxyAuthorization).is_some() {
                        Ok(endpoint("alice"))
                    } else {
                        // As the registrar does: build the challenge, the shell parses it.
                        let challenge = request
                            .response(407)
                            .to_tag("challenge")
                            .header(
                                "Proxy-Authenticate",
                                "Digest realm=\"example.com\", nonce=\"bm9uY2Vub25jZW5vbmNl\", qop=\"auth\", algorithm=MD5",
                            )
                            .build_bytes();
                        Err(AuthRefusal {
                            response: Message::parse(challenge).unwrap(),
                        })
                    };
                    self.proxy.handle_authenticated(context, result, self.now);
                }
                Output::Locate { context, .. } => {
                    let callee = self.callee.clone();
                    self.proxy
                        .handle_located(context, Ok(Some(callee)), self.now);
                }
                Output::OpenHop {
                    context,
                    branch,
                    hop: NextHop::Flow { flow, .. },
                } => self.proxy.handle_hop(context, branch, Ok(flow), self.now),
                Output::Event(event) => {
                    black_box(event);
                }
                other => panic!("not expected in this call: {other:?}"),
            }
        }
    }

    /// The one message the last delivery put on `flow`, parsed (as the phone would).
    fn sent_to(&self, flow: FlowId) -> Message {
        let mut to_flow = self.sent.iter().filter(|(f, _)| *f == flow);
        let (_, payload) = to_flow.next_back().expect("something sent to the flow");
        Message::parse(payload.clone()).unwrap()
    }

    fn call(&mut self) {
        self.calls += 1;
        let n = self.calls;
        let call_id = format!("{n}-bench@10.0.0.1");
        let first = invite("alice", "bob", &call_id, &format!("z9hG4bKa{n}"), false);
        self.deliver(caller_flow(), Bytes::from(first.clone()));
        let challenge = self.sent_to(caller_flow());
        assert_eq!(challenge.status(), Some(407));
        let ack = Message::parse_slice(first.as_bytes())
            .unwrap()
            .ack_for(&challenge)
            .unwrap();
        self.deliver(caller_flow(), Bytes::from(ack));

        let second = invite("alice", "bob", &call_id, &format!("z9hG4bKb{n}"), true);
        self.deliver(caller_flow(), Bytes::from(second));
        let forwarded = self.sent_to(callee_flow());
        self.deliver(callee_flow(), answer(&forwarded, 180, "bob-tag").to_bytes());
        self.deliver(callee_flow(), answer(&forwarded, 200, "bob-tag").to_bytes());
        let ok = self.sent_to(caller_flow());
        assert_eq!(ok.status(), Some(200));
        let ack = in_dialog("ACK", &ok, false, &format!("z9hG4bKc{n}"), 2);
        self.deliver(caller_flow(), Bytes::from(ack));
        let bye = in_dialog("BYE", &ok, false, &format!("z9hG4bKd{n}"), 3);
        self.deliver(caller_flow(), Bytes::from(bye));
        let bye = self.sent_to(callee_flow());
        self.deliver(callee_flow(), answer(&bye, 200, "bob-tag").to_bytes());
        assert_eq!(self.sent_to(caller_flow()).status(), Some(200));

        self.now += CALL_INTERVAL;
        let started = Instant::now();
        while self.proxy.poll_timeout().is_some_and(|at| at <= self.now) {
            self.proxy.handle_timeout(self.now);
            self.drain();
        }
        self.busy += started.elapsed();
    }
}

fn caller_flow() -> FlowId {
    udp("10.0.0.1:5060")
}

fn callee_flow() -> FlowId {
    udp("10.0.0.9:5060")
}

fn call(c: &mut Criterion) {
    let mut group = c.benchmark_group("call");
    group.measurement_time(Duration::from_secs(10));
    let mut bench = Bench::new();
    // A steady state first: 32 s of records (Timer J/K) at 4,000 calls/s.
    for _ in 0..128_000 {
        bench.call();
    }
    group.bench_function("invite_407_ack_invite_180_200_ack_bye_200", |b| {
        b.iter_custom(|iterations| {
            bench.busy = Duration::ZERO;
            for _ in 0..iterations {
                bench.call();
            }
            bench.busy
        });
    });
    group.finish();
}

criterion_group!(benches, call);
criterion_main!(benches);
