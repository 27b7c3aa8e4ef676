//! No input panics the core, and everything it answers is a well-formed SIP response.
//! Mutated REGISTERs (carrying a valid answer, so mutations reach the binding rules) and
//! random bytes run through the whole drive sequence against awkward stored bindings.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::sample::Index;
use sip_message::Message;
use sipd_registrar::{Algorithm, AuthRole, Binding, BindingChange, Registrar, Response, Start};

const FRAGMENTS: &[&str] = &[
    "\r\n",
    "\r\n ",
    ";",
    ",",
    "=",
    "\"",
    "\\",
    "<",
    ">",
    "*",
    "0",
    "%",
    "@",
    ":",
    " ",
    "\u{e4}",
    "\0",
    ";expires=0",
    ";expires=4294967295",
    ";q=0.5",
    ";reg-id=1",
    ";ob",
    ";+sip.instance=\"<urn:uuid:1>\"",
    "Contact: *\r\n",
    "Expires: 0\r\n",
    "Expires: 1\r\n",
    "Contact: <sip:alice@10.0.0.1>\r\n",
    "Supported: outbound, path\r\n",
    "Require: outbound\r\n",
    "Path: <sip:edge;lr;ob>\r\n",
    "Via: SIP/2.0/UDP edge;branch=z9hG4bK9\r\n",
    "Authorization: Digest\r\n",
    "algorithm=MD5",
    "qop=auth-int",
    "nc=ffffffff",
    "username*=UTF-8''%C3",
    "sips:",
    "tel:+1",
    "REGISTER",
    "4294967296",
];

/// A registrar offering both algorithms, so templates answer with either.
fn registrar() -> Registrar {
    let mut config = config();
    config.digest_algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
    Registrar::new(config).unwrap()
}

fn arrival() -> sipd_registrar::Source {
    source("[::1]:5060", "tcp-9")
}

fn template(registrar: &mut Registrar, variant: usize) -> String {
    let contacts = [
        "Contact: <sip:alice@192.168.1.10:5060;transport=tcp>;q=0.7;expires=600",
        "Contact: <sip:alice@192.168.1.10;ob>;+sip.instance=\"<urn:uuid:a>\";reg-id=1\r\nSupported: outbound, path",
        "Contact: *\r\nExpires: 0",
        "Path: <sip:edge.example.com;lr;ob>\r\nSupported: path\r\nContact: <sip:alice@10.0.0.1>, <sip:alice@10.0.0.2>;expires=0",
    ];
    let req = Req::new("alice").header(contacts[variant % contacts.len()]);
    let Start::Respond(challenge) = registrar.start(&req.message(None), &arrival(), T0) else {
        panic!("challenge expected")
    };
    let nonce = challenges(&challenge)[0].nonce.clone();
    let value = Answer {
        username: "alice",
        password: "wonderland",
        realm: DOMAIN,
        algorithm: ["SHA-256", "MD5"][variant & 1],
        nonce: &nonce,
        nc: 1,
        cnonce: "c",
        uri: "sip:example.com",
    }
    .header_value();
    req.text(Some(&value))
}

fn stored() -> Vec<Binding> {
    let base = Binding {
        endpoint_pk: 1,
        contact_uri: "sip:alice@192.168.1.10:5060;transport=tcp".into(),
        expires_at_ms: T0 + 1000,
        q: Some(-5),
        call_id: "other-call".into(),
        cseq: 1,
        user_agent: None,
        received: "203.0.113.7:1".into(),
        transport: "udp".into(),
        flow_id: None,
        instance_id: Some("<urn:uuid:a>".into()),
        reg_id: Some(1),
        path: Some("<sip:x\r\n;lr>".into()),
        node_id: "n".into(),
        updated_at_ms: T0,
    };
    vec![
        base.clone(),
        Binding {
            contact_uri: "not a uri \"\r\n".into(),
            q: Some(5000),
            instance_id: Some("\"\\\r".into()),
            ..base.clone()
        },
        Binding {
            contact_uri: String::new(),
            expires_at_ms: i64::MIN,
            ..base.clone()
        },
        Binding {
            contact_uri: "sip:alice@10.0.0.1".into(),
            expires_at_ms: i64::MAX,
            cseq: i64::MAX,
            ..base.clone()
        },
        Binding {
            endpoint_pk: 2,
            ..base
        },
    ]
}

fn drive(registrar: &mut Registrar, bytes: &[u8], now: i64, known: bool) {
    let Ok(message) = Message::parse_slice(bytes) else {
        return;
    };
    let alice = credentials(1, "alice", "wonderland", T0 - 1000);
    let check = |response: &Response| {
        let parsed = Message::parse(response.bytes.clone()).expect("our response parses");
        assert_eq!(parsed.status(), Some(response.status));
    };
    let credentials = known.then_some(&alice);
    // The same bytes as a request the proxy authenticates.
    let authenticator = registrar.authenticator();
    match authenticator.screen(&message, AuthRole::Proxy, now) {
        Ok(pending) => {
            if let Err(response) = authenticator.verify(pending, credentials, now) {
                check(&response);
            }
        }
        Err(response) => check(&response),
    }
    let pending = match registrar.start(&message, &arrival(), now) {
        Start::Respond(response) => return check(&response),
        Start::NeedCredentials(pending) => pending,
    };
    let authorized = match registrar.authenticate(pending, credentials, now) {
        Ok(authorized) => authorized,
        Err(response) => return check(&response),
    };
    match registrar.register(&message, &authorized, &stored(), &arrival(), now) {
        Ok(registration) => {
            check(&registration.response);
            assert!(registration.bindings.len() <= config().max_contacts_per_aor);
            // One binding per store key, or the store would hold fewer than memory.
            let keys: std::collections::HashSet<_> =
                registration.bindings.iter().map(Binding::key).collect();
            assert_eq!(keys.len(), registration.bindings.len());
            // Deletions come first, and never delete what is upserted.
            let first_upsert = registration
                .changes
                .iter()
                .position(|c| matches!(c, BindingChange::UpsertAuthenticated { .. }))
                .unwrap_or(registration.changes.len());
            for (index, change) in registration.changes.iter().enumerate() {
                match change {
                    BindingChange::UpsertAuthenticated {
                        binding,
                        credentials_changed_at_ms,
                    } => {
                        assert!(registration.bindings.contains(binding));
                        assert_eq!(*credentials_changed_at_ms, T0 - 1000);
                    }
                    BindingChange::Upsert(_) => panic!("unconditional upsert"),
                    BindingChange::Delete {
                        endpoint_pk,
                        contact_uri,
                        reg_id,
                    } => {
                        assert!(index < first_upsert);
                        let key = (*endpoint_pk, contact_uri.as_str(), *reg_id);
                        assert!(registration.bindings.iter().all(|b| b.key() != key));
                    }
                    BindingChange::DeleteAllForEndpoint { .. } => {
                        assert!(index < first_upsert);
                    }
                }
            }
        }
        Err(response) => check(&response),
    }
    check(&registrar.commit_failed(&message));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mutated_registers_do_not_panic(
        variant in 0usize..8,
        edits in proptest::collection::vec((any::<Index>(), 0..FRAGMENTS.len(), 0usize..4), 0..6),
        now_offset in prop_oneof![Just(0i64), -400_000i64..400_000, Just(i64::MIN / 2)],
        known in any::<bool>(),
    ) {
        let mut registrar = registrar();
        let mut text = template(&mut registrar, variant).into_bytes();
        for (at, fragment, cut) in edits {
            let at = at.index(text.len() + 1);
            let end = (at + cut).min(text.len());
            text.splice(at..end, FRAGMENTS[fragment].bytes());
        }
        drive(&mut registrar, &text, T0.saturating_add(now_offset), known);
    }

    #[test]
    fn random_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut registrar = registrar();
        drive(&mut registrar, &bytes, T0, true);
    }
}

#[test]
fn unmutated_templates_register() {
    for variant in 0..4 {
        let mut registrar = registrar();
        let text = template(&mut registrar, variant);
        let message = Message::parse_slice(text.as_bytes()).unwrap();
        let Start::NeedCredentials(pending) = registrar.start(&message, &arrival(), T0) else {
            panic!("variant {variant}: credentials expected");
        };
        let alice = credentials(1, "alice", "wonderland", T0 - 1000);
        let authorized = registrar.authenticate(pending, Some(&alice), T0).unwrap();
        let registration = registrar
            .register(&message, &authorized, &stored(), &arrival(), T0)
            .unwrap_or_else(|r| panic!("variant {variant}: {}", String::from_utf8_lossy(&r.bytes)));
        assert_eq!(registration.response.status, 200);
    }
}
