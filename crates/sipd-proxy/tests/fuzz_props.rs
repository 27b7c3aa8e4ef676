//! Runs the `proxy` fuzz target's exercise (shared with `fuzz/`) on call flows and torture
//! messages, mutated, so `cargo test` catches panics, unparsable output and requests left
//! behind without cargo-fuzz. Bounded to a few seconds; set `PROPTEST_CASES` to run more.

mod fuzz_exercise {
    pub mod proxy;
}

use std::path::Path;
use std::sync::OnceLock;

use fuzz_exercise::proxy::proxy;
use proptest::prelude::*;
use proptest::sample::Index;

/// Call flows that reach deep into the proxy: an authenticated INVITE to a registered user,
/// its CANCEL, a MESSAGE, an in-dialog BYE with a forged route, a number.
fn call_flows() -> Vec<Vec<u8>> {
    let invite = |call: &str, user: &str, auth: bool| {
        let credentials = if auth {
            "Proxy-Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", \
             uri=\"sip:bob@example.com\", response=\"0\", qop=auth, nc=00000001, cnonce=\"c\"\r\n"
        } else {
            ""
        };
        format!(
            "INVITE sip:{user}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{call};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a{call}\r\nTo: <sip:{user}@example.com>\r\n\
             Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@192.0.2.1>\r\n{credentials}\
             Content-Type: application/sdp\r\nContent-Length: 26\r\n\r\nv=0\r\nm=video 5000 RTP/AVP 0"
        )
    };
    let cancel = |call: &str| {
        format!(
            "CANCEL sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{call};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a{call}\r\nTo: <sip:bob@example.com>\r\n\
             Call-ID: {call}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let bye = "BYE sip:alice@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKbye\r\n\
               Max-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=phone\r\nTo: <sip:alice@example.com>;tag=ac1\r\n\
               Call-ID: c1\r\nCSeq: 2 BYE\r\nRoute: <sip:192.0.2.10;lr;sdflow=AAAAAAAAAAAAAAAAAAAAAAAAAA>\r\n\
               Content-Length: 0\r\n\r\n";
    vec![
        [&[0u8][..], invite("c1", "bob", true).as_bytes()].concat(),
        [
            &[1u8][..],
            invite("c2", "bob", true).as_bytes(),
            cancel("c2").as_bytes(),
        ]
        .concat(),
        [&[2u8][..], invite("c3", "bob", false).as_bytes()].concat(),
        [&[3u8][..], invite("c4", "+12025550100", true).as_bytes()].concat(),
        [
            &[4u8][..],
            invite("c5", "nobody", true).as_bytes(),
            bye.as_bytes(),
        ]
        .concat(),
        [
            &[5u8][..],
            invite("c6", "bob", true)
                .replace("INVITE sip:bob", "MESSAGE sip:bob")
                .replace("1 INVITE", "1 MESSAGE")
                .as_bytes(),
        ]
        .concat(),
    ]
}

fn corpus() -> &'static Vec<Vec<u8>> {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut inputs = call_flows();
        let torture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sip-message/tests/torture");
        let mut files: Vec<_> = std::fs::read_dir(&torture)
            .expect("the torture corpus")
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "sip"))
            .collect();
        files.sort();
        for (i, path) in files.iter().enumerate() {
            let message = std::fs::read(path).expect("a torture message");
            inputs.push([&[i as u8][..], &message].concat());
        }
        inputs
    })
}

#[test]
fn every_seed_runs_clean() {
    for input in corpus() {
        proxy(input);
    }
    // Each call flow under every steering byte.
    for flow in call_flows() {
        for control in 0..=u8::MAX {
            let mut input = flow.clone();
            input[0] = control;
            proxy(&input);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_inputs_run_clean(
        seed in any::<Index>(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0usize..3), 0..8),
    ) {
        let mut input = seed.get(corpus()).clone();
        for (at, byte, kind) in edits {
            let position = at.index(input.len().max(1));
            match kind {
                0 if position < input.len() => input[position] = byte,
                1 => input.insert(position.min(input.len()), byte),
                _ if position < input.len() => {
                    input.remove(position);
                }
                _ => {}
            }
        }
        proxy(&input);
    }
}
