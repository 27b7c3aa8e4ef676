//! Runs the fuzz targets' exercise functions (shared with `fuzz/`) on
//! mutated torture messages and random bytes, so that `cargo test` catches
//! panics without cargo-fuzz. The case count is bounded to keep this at a few
//! seconds; set `PROPTEST_CASES` to run more.

mod fuzz_exercise {
    pub mod auth;
    pub mod framer;
    pub mod message;
}

use std::path::Path;
use std::sync::OnceLock;

use fuzz_exercise::auth::digest;
use fuzz_exercise::framer::framer;
use fuzz_exercise::message::parse_message;
use proptest::prelude::*;
use proptest::sample::Index;

/// Fragments that steer mutations towards interesting parser states.
const SIP_FRAGMENTS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"\n",
    b":",
    b";",
    b",",
    b"=",
    b"\"",
    b"\\",
    b"<",
    b">",
    b"[",
    b"]",
    b"%",
    b"@",
    b" ",
    b"\t",
    b"\0",
    b"\xff",
    b"\xc3\xa4",
    b"Content-Length: 10\r\n",
    b"l: 99999999999999999999\r\n",
    b"Content-Length: -1\r\n",
    b"Via: SIP/2.0/TCP [::1]:5060;branch=z9hG4bK1;rport\r\n",
    b"Contact: *\r\n",
    b"Contact: <sip:a@[2001:db8::1]>;expires=4294967296;q=1.0001\r\n",
    b"Authorization: Digest username=\"a\", nc=000000ff, qop=auth\r\n",
    b"WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth,auth-int\"\r\n",
    b"username*=UTF-8''%C3%A4",
    b"sip:",
    b"sips:",
    b"tel:+1",
    b"SIP/2.0",
    b"4294967296",
];

struct Corpus {
    messages: Vec<Vec<u8>>,
    auth_values: Vec<Vec<u8>>,
}

fn corpus() -> &'static Corpus {
    static CORPUS: OnceLock<Corpus> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let messages = read_dir_files(&root.join("tests/torture"), Some("sip"));
        let mut auth_values = read_dir_files(&root.join("../../fuzz/seeds/digest"), None);
        // Auth header values inside the torture messages, too.
        for message in &messages {
            for line in message.split(|&b| b == b'\n') {
                let Some(colon) = line.iter().position(|&b| b == b':') else {
                    continue;
                };
                let name = line[..colon].to_ascii_lowercase();
                if name.ends_with(b"authorization") || name.ends_with(b"authenticate") {
                    auth_values.push(line[colon + 1..].trim_ascii().to_vec());
                }
            }
        }
        assert!(messages.len() > 40, "torture corpus not found");
        assert!(!auth_values.is_empty(), "digest seeds not found");
        Corpus {
            messages,
            auth_values,
        }
    })
}

fn read_dir_files(dir: &Path, extension: Option<&str>) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| extension.is_none_or(|ext| path.extension().is_some_and(|e| e == ext)))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).expect("corpus file"))
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: Index,
        bit: u8,
    },
    SetByte {
        at: Index,
        byte: u8,
    },
    Truncate {
        at: Index,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    InsertFragment {
        at: Index,
        fragment: Index,
    },
    Remove {
        at: Index,
        len: usize,
    },
    /// Copies a piece of another seed into this one.
    Splice {
        at: Index,
        donor: Index,
        from: Index,
        len: usize,
    },
    /// Repeats a piece of this input (e.g. a header line) in place.
    Repeat {
        at: Index,
        len: usize,
        times: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        3 => (any::<Index>(), any::<Index>())
            .prop_map(|(at, fragment)| Mutation::InsertFragment { at, fragment }),
        1 => (any::<Index>(), 1..64usize).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => (any::<Index>(), any::<Index>(), any::<Index>(), 1..256usize)
            .prop_map(|(at, donor, from, len)| Mutation::Splice { at, donor, from, len }),
        1 => (any::<Index>(), 1..128usize, 1..40usize)
            .prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
    ]
}

fn apply(data: &mut Vec<u8>, mutation: &Mutation, donors: &[Vec<u8>]) {
    let insert_at = |at: &Index, data: &Vec<u8>| at.index(data.len() + 1);
    match mutation {
        Mutation::FlipBit { at, bit } if !data.is_empty() => {
            let i = at.index(data.len());
            data[i] ^= 1 << bit;
        }
        Mutation::SetByte { at, byte } if !data.is_empty() => {
            let i = at.index(data.len());
            data[i] = *byte;
        }
        Mutation::Truncate { at } => data.truncate(insert_at(at, data)),
        Mutation::Insert { at, bytes } => {
            let i = insert_at(at, data);
            data.splice(i..i, bytes.iter().copied());
        }
        Mutation::InsertFragment { at, fragment } => {
            let i = insert_at(at, data);
            let fragment = SIP_FRAGMENTS[fragment.index(SIP_FRAGMENTS.len())];
            data.splice(i..i, fragment.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let i = insert_at(at, data);
            let end = (i + len).min(data.len());
            data.drain(i..end);
        }
        Mutation::Splice {
            at,
            donor,
            from,
            len,
        } => {
            let donor = &donors[donor.index(donors.len())];
            let start = from.index(donor.len() + 1);
            let end = (start + len).min(donor.len());
            let i = insert_at(at, data);
            data.splice(i..i, donor[start..end].iter().copied());
        }
        Mutation::Repeat { at, len, times } => {
            let start = insert_at(at, data);
            let end = (start + len).min(data.len());
            let piece = data[start..end].to_vec();
            for _ in 0..*times {
                data.splice(end..end, piece.iter().copied());
            }
        }
        Mutation::FlipBit { .. } | Mutation::SetByte { .. } => {}
    }
}

fn mutated(seeds: &[Vec<u8>], seed: &Index, mutations: &[Mutation]) -> Vec<u8> {
    let mut data = seeds[seed.index(seeds.len())].clone();
    for mutation in mutations {
        apply(&mut data, mutation, seeds);
    }
    data
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    proptest::collection::vec(mutation(), 0..6)
}

/// Concatenated SIP fragments: random, but with much more structure than
/// random bytes.
fn fragment_soup() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<Index>(), 0..60).prop_map(|picks| {
        picks
            .iter()
            .flat_map(|pick| {
                SIP_FRAGMENTS[pick.index(SIP_FRAGMENTS.len())]
                    .iter()
                    .copied()
            })
            .collect()
    })
}

fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default_cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

#[test]
fn unmutated_seeds_pass_every_exercise() {
    let corpus = corpus();
    for message in &corpus.messages {
        parse_message(message);
        for control in [0u8, 1, 7, 42, 255] {
            let mut input = vec![control];
            input.extend_from_slice(message);
            framer(&input);
        }
    }
    for value in &corpus.auth_values {
        digest(value);
    }
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn parse_message_survives_mutated_torture_messages(
        seed in any::<Index>(),
        mutations in mutations(),
    ) {
        parse_message(&mutated(&corpus().messages, &seed, &mutations));
    }

    #[test]
    fn framer_survives_mutated_pipelined_streams(
        control in any::<u8>(),
        seeds in proptest::collection::vec(any::<Index>(), 1..4),
        keepalives in proptest::collection::vec(0..3usize, 4),
        mutations in mutations(),
    ) {
        let messages = &corpus().messages;
        let mut stream = vec![control];
        for (seed, keepalive) in seeds.iter().zip(&keepalives) {
            stream.extend_from_slice(&b"\r\n\r\n"[..*keepalive * 2]);
            stream.extend_from_slice(&messages[seed.index(messages.len())]);
        }
        for mutation in &mutations {
            apply(&mut stream, mutation, messages);
        }
        framer(&stream);
    }

    #[test]
    fn digest_survives_mutated_auth_values(
        seed in any::<Index>(),
        mutations in mutations(),
    ) {
        digest(&mutated(&corpus().auth_values, &seed, &mutations));
    }

    #[test]
    fn every_target_survives_random_bytes_and_fragment_soup(
        bytes in proptest::collection::vec(any::<u8>(), 0..1024),
        soup in fragment_soup(),
    ) {
        for input in [&bytes, &soup] {
            parse_message(input);
            framer(input);
            digest(input);
        }
    }
}
