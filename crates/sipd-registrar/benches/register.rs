//! The registrar core's share of a REGISTER: a challenge, and an authenticated refresh
//! (parse + start + authenticate + register). Target: 8,000 authenticated REGISTERs/s on
//! 2 cores end to end, so the core should take a small fraction of 250 µs.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use sip_message::Message;
use sipd_registrar::{Algorithm, Registrar, Start};

const CONTACT: &str = "<sip:alice@192.168.1.10:5060;transport=tcp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";

fn bench(c: &mut Criterion) {
    let req = Req::new("alice")
        .contact(CONTACT)
        .header("User-Agent: Phone/1.0")
        .header("Expires: 600");
    let unauthenticated = req.text(None).into_bytes();
    let source = source("203.0.113.7:40000", "tcp-1");

    // The default configuration: one MD5 challenge.
    let mut registrar = Registrar::new(config()).unwrap();
    c.bench_function("challenge", |b| {
        b.iter(|| {
            let message = Message::parse_slice(&unauthenticated).unwrap();
            match registrar.start(&message, &source, T0) {
                Start::Respond(response) => response,
                Start::NeedCredentials(_) => unreachable!(),
            }
        })
    });

    let alice = credentials(1, "alice", "wonderland", T0 - 1000);
    let mut both = config();
    both.digest_algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
    for algorithm in ["SHA-256", "MD5"] {
        let mut registrar = Registrar::new(both.clone()).unwrap();
        let Start::Respond(challenge) = registrar.start(
            &Message::parse_slice(&unauthenticated).unwrap(),
            &source,
            T0,
        ) else {
            unreachable!()
        };
        let nonce = challenges(&challenge)[0].nonce.clone();
        let stored = {
            let text = req.text(Some(&answer(algorithm, &nonce, 1)));
            let message = Message::parse_slice(text.as_bytes()).unwrap();
            let Start::NeedCredentials(pending) = registrar.start(&message, &source, T0) else {
                unreachable!()
            };
            let authorized = registrar.authenticate(pending, Some(&alice), T0).unwrap();
            registrar
                .register(&message, &authorized, &[], &source, T0)
                .unwrap()
                .bindings
        };
        let mut nc = 1;
        let mut cseq = req.cseq;
        c.bench_function(&format!("authenticated refresh ({algorithm})"), |b| {
            b.iter_batched(
                || {
                    nc += 1;
                    cseq += 1;
                    let mut next = req.clone();
                    next.cseq = cseq;
                    next.text(Some(&answer(algorithm, &nonce, nc))).into_bytes()
                },
                |text| {
                    let message = Message::parse_slice(&text).unwrap();
                    let Start::NeedCredentials(pending) =
                        registrar.start(&message, &source, T0 + 1)
                    else {
                        unreachable!()
                    };
                    let authorized = registrar
                        .authenticate(pending, Some(&alice), T0 + 1)
                        .unwrap();
                    registrar
                        .register(&message, &authorized, &stored, &source, T0 + 1)
                        .unwrap()
                },
                BatchSize::SmallInput,
            )
        });
    }
}

fn answer(algorithm: &str, nonce: &str, nc: u32) -> String {
    Answer {
        username: "alice",
        password: "wonderland",
        realm: DOMAIN,
        algorithm,
        nonce,
        nc,
        cnonce: "0a4f113b",
        uri: "sip:example.com",
    }
    .header_value()
}

criterion_group!(benches, bench);
criterion_main!(benches);
