//! Random sequences of inputs: nothing panics, the bounds hold, and once the TU has
//! answered every request the layer winds itself down to empty (transactions and
//! completed records) on timers alone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{FlowId, Message, Transport};
use sip_transaction::{Config, Output, TransactionId, TransactionLayer};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn flow(reliable: bool) -> FlowId {
    if reliable {
        FlowId::connection(Transport::Tcp, 1)
    } else {
        FlowId::udp("192.0.2.1:5060".parse::<SocketAddr>().unwrap())
    }
}

fn request(method: &str, branch: &str, cseq: u32, to_tag: &str) -> Message {
    let branch = if branch.is_empty() {
        String::new()
    } else {
        format!(";branch={branch}")
    };
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    Message::parse(Bytes::from(format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060{branch}\r\n\
         From: <sip:alice@example.com>;tag=a\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: c@192.0.2.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )))
    .unwrap()
}

fn response(status: u16, method: &str, branch: &str) -> Message {
    Message::parse(Bytes::from(format!(
        "SIP/2.0 {status} X\r\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch={branch}\r\n\
         From: <sip:alice@example.com>;tag=a\r\n\
         To: <sip:bob@example.com>;tag=b\r\n\
         Call-ID: c@192.0.2.1\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )))
    .unwrap()
}

const METHODS: [&str; 5] = ["INVITE", "ACK", "CANCEL", "REGISTER", "BYE"];
const BRANCHES: [&str; 5] = ["z9hG4bK1", "z9hG4bK2", "z9hG4bK3", "legacy", ""];
const TAGS: [&str; 2] = ["", "b"];
const STATUSES: [u16; 6] = [100, 180, 200, 404, 487, 503];

#[derive(Default)]
struct Seen {
    servers: Vec<TransactionId>,
    /// Client transactions with the branch and method their responses need.
    clients: HashMap<TransactionId, (String, String)>,
}

fn drain(layer: &mut TransactionLayer, seen: &mut Seen) {
    while let Some(output) = layer.poll_output() {
        match output {
            Output::Request { transaction, .. } | Output::Cancel { transaction, .. } => {
                seen.servers.push(transaction)
            }
            Output::Transmit(transmit) => assert!(!transmit.payload.is_empty()),
            _ => {}
        }
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let config = Config {
        max_transactions: 8,
        // From none at all to more than the branches in play: records are evicted early,
        // and requests they absorbed come back as new ones.
        max_completed: (seed % 5) as usize,
        ..Config::default()
    };
    let mut layer = TransactionLayer::new(config).unwrap();
    let mut seen = Seen::default();
    let mut now = Instant::now();
    let mut next_branch = 0;

    for _ in 0..200 {
        match rng.below(7) {
            0 | 1 => {
                let method = rng.pick(&METHODS);
                let branch = rng.pick(&BRANCHES);
                let message = request(method, branch, 1 + rng.below(2) as u32, rng.pick(&TAGS));
                let _ = layer.handle_message(message, flow(rng.below(2) == 0), now);
            }
            2 => {
                next_branch += 1;
                let branch = format!("z9hG4bKc{next_branch}");
                let method = rng.pick(&["INVITE", "OPTIONS"]);
                let message = request(method, &branch, 1, "");
                if let Ok(id) = layer.send_request(message, flow(rng.below(2) == 0), now) {
                    seen.clients.insert(id, (branch, method.to_owned()));
                }
            }
            3 => {
                if let Some((id, (branch, method))) = seen
                    .clients
                    .iter()
                    .nth(rng.below(seen.clients.len().max(1)))
                {
                    let status = rng.pick(&STATUSES);
                    let _ =
                        layer.handle_message(response(status, method, branch), flow(false), now);
                    if rng.below(4) == 0 {
                        if let Ok(cancel) = layer.cancel(*id, now) {
                            seen.clients
                                .insert(cancel, (branch.clone(), "CANCEL".into()));
                        }
                    }
                }
            }
            4 => {
                if let Some(&id) = seen.servers.get(rng.below(seen.servers.len().max(1))) {
                    let status = rng.pick(&STATUSES);
                    let _ = layer.send_response(id, response(status, "INVITE", "z9hG4bK1"), now);
                }
            }
            5 => {
                let ids: Vec<_> = seen.servers.iter().chain(seen.clients.keys()).collect();
                if let Some(&&id) = ids.get(rng.below(ids.len().max(1))) {
                    layer.handle_transport_error(id);
                }
            }
            _ => {
                now += Duration::from_millis(rng.below(5_000) as u64);
                layer.handle_timeout(now);
            }
        }
        drain(&mut layer, &mut seen);
        assert!(layer.len() <= config.max_transactions, "seed {seed}");
        assert!(layer.completed_len() <= config.max_completed, "seed {seed}");
    }

    // The TU answers everything still open; then the timers alone must clean up.
    for &id in &seen.servers {
        let _ = layer.send_response(id, response(500, "INVITE", "z9hG4bK1"), now);
    }
    for (branch, method) in seen.clients.values() {
        let _ = layer.handle_message(response(500, method, branch), flow(false), now);
    }
    drain(&mut layer, &mut seen);
    for _ in 0..1_000 {
        let Some(deadline) = layer.poll_timeout() else {
            break;
        };
        assert!(deadline >= now, "seed {seed}: deadline in the past");
        now = deadline;
        layer.handle_timeout(now);
        drain(&mut layer, &mut seen);
    }
    assert!(
        layer.is_empty(),
        "seed {seed}: {} transactions and {} records left",
        layer.len(),
        layer.completed_len()
    );
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn random_inputs_never_panic_and_always_wind_down() {
    for seed in 1..=300 {
        run(seed);
    }
}
