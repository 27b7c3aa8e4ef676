//! Digest authentication of REGISTER (RFC 7616, RFC 3261 §22).

mod common;

use common::*;
use sipd_registrar::{Algorithm, ConfigError, Registrar, RegistrarConfig, Start};

const CONTACT: &str = "<sip:alice@192.168.1.10:5060;transport=tcp>";

fn alice() -> Req {
    Req::new("alice").contact(CONTACT)
}

#[test]
fn challenge_offers_the_configured_algorithms_in_order_for_our_realm() {
    let mut fx = with_algorithms(&[Algorithm::Sha256, Algorithm::Md5]);
    let response = fx.fetch_nonce(&alice());
    let offers = challenges(&response);
    assert_eq!(offers.len(), 2);
    assert_eq!(offers[0].algorithm, "SHA-256");
    assert_eq!(offers[1].algorithm, "MD5");
    for offer in &offers {
        assert_eq!(offer.realm, DOMAIN);
        assert_eq!(offer.qop, ["auth"]);
        assert!(!offer.stale);
        assert_eq!(offer.nonce, offers[0].nonce);
    }
    let text = String::from_utf8_lossy(&response.bytes);
    assert!(text.contains("algorithm=SHA-256"), "{text}");
    assert!(text.contains("algorithm=MD5"), "{text}");
    assert!(parse(&response).to_tag().is_some(), "401 carries a To tag");
    assert!(
        fx.lookups.is_empty(),
        "no credential lookup without credentials"
    );
}

fn with_algorithms(algorithms: &[Algorithm]) -> Fixture {
    let mut config = config();
    config.digest_algorithms = algorithms.to_vec();
    Fixture::with_config(config)
}

fn offered(response: &sipd_registrar::Response) -> Vec<String> {
    challenges(response)
        .into_iter()
        .map(|offer| offer.algorithm)
        .collect()
}

#[test]
fn the_default_algorithm_is_md5_alone() {
    // Stock clients (sipp, sipsak, baresip, JsSIP) fail on a SHA-256 challenge offered first.
    assert_eq!(config().digest_algorithms, [Algorithm::Md5]);
    let mut fx = Fixture::new();
    assert_eq!(offered(&fx.fetch_nonce(&alice())), ["MD5"]);
}

#[test]
fn md5_only_offers_one_md5_challenge_and_rechallenges_sha256_answers() {
    let mut fx = with_algorithms(&[Algorithm::Md5]);
    let mut req = alice();
    let challenge = fx.fetch_nonce(&req);
    assert_eq!(offered(&challenge), ["MD5"]);

    // SHA-256 was not offered: a fresh plain challenge, before any credential lookup.
    fx.algorithm = "SHA-256";
    req.cseq += 1;
    let sha256 = fx.answer_value(&req, "wonderland");
    let response = fx.send(&req, Some(&sha256)).unwrap_err();
    assert_eq!(response.status, 401);
    assert_eq!(offered(&response), ["MD5"]);
    assert!(challenges(&response).iter().all(|o| !o.stale));
    assert!(fx.lookups.is_empty());

    fx.algorithm = "MD5";
    assert_eq!(fx.register(&mut req).response.status, 200);
}

#[test]
fn sha256_only_offers_one_sha256_challenge_and_rechallenges_md5_answers() {
    let mut fx = with_algorithms(&[Algorithm::Sha256]);
    let mut req = alice();
    assert_eq!(offered(&fx.fetch_nonce(&req)), ["SHA-256"]);

    fx.algorithm = "MD5";
    req.cseq += 1;
    let md5 = fx.answer_value(&req, "wonderland");
    let response = fx.send(&req, Some(&md5)).unwrap_err();
    assert_eq!(response.status, 401);
    assert_eq!(offered(&response), ["SHA-256"]);
    assert!(fx.lookups.is_empty());

    fx.algorithm = "SHA-256";
    assert_eq!(fx.register(&mut req).response.status, 200);
}

#[test]
fn md5_then_sha256_offers_them_in_that_order() {
    let mut fx = with_algorithms(&[Algorithm::Md5, Algorithm::Sha256]);
    let challenge = fx.fetch_nonce(&alice());
    assert_eq!(offered(&challenge), ["MD5", "SHA-256"]);
    let offers = challenges(&challenge);
    assert_eq!(offers[0].nonce, offers[1].nonce);
    for algorithm in ["MD5", "SHA-256"] {
        fx.algorithm = algorithm;
        assert_eq!(
            fx.register(&mut alice()).response.status,
            200,
            "{algorithm}"
        );
    }
}

#[test]
fn nonces_are_fresh_per_challenge() {
    let mut fx = Fixture::new();
    let first = challenges(&fx.fetch_nonce(&alice()))[0].nonce.clone();
    let second = challenges(&fx.fetch_nonce(&alice()))[0].nonce.clone();
    assert_ne!(first, second);
}

#[test]
fn sha256_answer_registers() {
    let mut fx = with_algorithms(&[Algorithm::Sha256, Algorithm::Md5]);
    fx.algorithm = "SHA-256";
    let registration = fx.register(&mut alice());
    assert_eq!(registration.response.status, 200);
    assert_eq!(registration.endpoint_pk, 1);
    assert_eq!(fx.lookups, ["alice"]);
}

#[test]
fn md5_answer_registers() {
    let mut fx = Fixture::new();
    fx.algorithm = "MD5";
    assert_eq!(fx.register(&mut alice()).response.status, 200);
}

#[test]
fn a_nonce_serves_many_requests_with_increasing_counts() {
    let mut fx = Fixture::new();
    let mut req = alice();
    for _ in 0..5 {
        fx.register(&mut req);
        fx.advance_secs(10);
    }
    assert_eq!(fx.nc, 5);
}

#[test]
fn wrong_password_is_challenged_again_not_stale() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.fetch_nonce(&req);
    req.cseq += 1;
    let value = fx.answer_value(&req, "not-the-password");
    let response = fx.send(&req, Some(&value)).unwrap_err();
    assert_eq!(response.status, 401);
    assert!(challenges(&response).iter().all(|o| !o.stale));
    assert!(fx.store.is_empty());
}

#[test]
fn unknown_user_gets_the_same_challenge_as_a_wrong_password() {
    let mut fx = Fixture::new();
    // Same request text apart from the answer, so To tags match too.
    let req = Req::new("mallory")
        .contact(CONTACT)
        .to(&format!("<sip:alice@{DOMAIN}>"));
    fx.fetch_nonce(&req);
    let unknown = fx.answer_value(&req, "guess");
    let unknown = fx.send(&req, Some(&unknown)).unwrap_err();

    let known = Req {
        user: "alice".into(),
        ..req.clone()
    };
    let mut known_fx = Fixture::new();
    known_fx.fetch_nonce(&known);
    let wrong = known_fx.answer_value(&known, "guess");
    let wrong = known_fx
        .send(
            &Req {
                user: "alice".into(),
                ..req.clone()
            },
            Some(&wrong),
        )
        .unwrap_err();

    assert_eq!(
        fx.lookups,
        ["mallory"],
        "the shell was asked, as for any user"
    );
    let without_nonces = |response: &sipd_registrar::Response| {
        let mut text = String::from_utf8_lossy(&response.bytes).into_owned();
        for offer in challenges(response) {
            text = text.replace(&offer.nonce, "NONCE");
        }
        // The From line names the (different) user; everything else must match.
        text.lines()
            .filter(|line| !line.starts_with("From:"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_nonces(&unknown), without_nonces(&wrong));
}

#[test]
fn replayed_nonce_count_is_challenged() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.register(&mut req);
    // The same nc again (a captured REGISTER replayed, with a fresh CSeq it cannot change).
    fx.nc -= 1;
    let response = fx.refused(&mut req);
    assert_eq!(response.status, 401);
    assert!(
        challenges(&response)[0].stale,
        "right answer, spent count: stale"
    );
}

#[test]
fn lower_nonce_count_is_challenged() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.fetch_nonce(&req);
    fx.nc = 9;
    fx.register(&mut req);
    fx.nc = 3;
    assert_eq!(fx.refused(&mut req).status, 401);
    // Higher than ever seen works again.
    fx.nc = 20;
    assert_eq!(fx.register(&mut req).response.status, 200);
}

#[test]
fn expired_nonce_with_right_answer_is_stale() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.fetch_nonce(&req);
    fx.advance_secs(301);
    let response = fx.refused(&mut req);
    assert_eq!(response.status, 401);
    let offers = challenges(&response);
    assert!(offers.iter().all(|o| o.stale));
    // The client retries with the new nonce and succeeds.
    fx.take_nonce(&response);
    assert_eq!(fx.register(&mut req).response.status, 200);
}

#[test]
fn expired_nonce_with_wrong_answer_is_not_stale() {
    let mut fx = Fixture::new();
    let req = alice();
    fx.fetch_nonce(&req);
    fx.advance_secs(301);
    let value = fx.answer_value(&req, "wrong");
    let response = fx.send(&req, Some(&value)).unwrap_err();
    assert!(challenges(&response).iter().all(|o| !o.stale));
}

#[test]
fn nonce_within_lifetime_is_accepted() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.fetch_nonce(&req);
    fx.advance_secs(299);
    assert_eq!(fx.register(&mut req).response.status, 200);
}

#[test]
fn forged_nonce_gets_a_plain_challenge_without_lookup() {
    let mut fx = Fixture::new();
    let req = alice();
    for forged in [
        "abc",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ] {
        fx.nonce = Some(forged.to_owned());
        let value = fx.answer_value(&req, "wonderland");
        let response = fx.send(&req, Some(&value)).unwrap_err();
        assert_eq!(response.status, 401);
        assert!(challenges(&response).iter().all(|o| !o.stale));
    }
    // A nonce of another registrar (another secret).
    let mut other = Fixture::with_config(RegistrarConfig::new(DOMAIN, [7u8; 32], "node-x"));
    other.fetch_nonce(&req);
    fx.nonce = other.nonce.clone();
    let value = fx.answer_value(&req, "wonderland");
    assert_eq!(fx.send(&req, Some(&value)).unwrap_err().status, 401);
    assert!(fx.lookups.is_empty());
}

#[test]
fn nonce_of_another_node_with_the_same_secret_is_accepted() {
    let mut node_a = Fixture::new();
    let mut node_b = Fixture::with_config(RegistrarConfig::new(DOMAIN, [42u8; 32], "node-2"));
    let mut req = alice();
    node_a.fetch_nonce(&req);
    node_b.nonce = node_a.nonce.clone();
    assert_eq!(node_b.register(&mut req).response.status, 200);
}

#[test]
fn credentials_changed_after_the_nonce_was_issued_is_stale() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.fetch_nonce(&req);
    fx.advance_secs(5);
    // The password was set again (to the same value) after the nonce was issued.
    fx.users[0] = credentials(1, "alice", "wonderland", fx.now - 1000);
    let response = fx.refused(&mut req);
    assert_eq!(response.status, 401);
    assert!(challenges(&response)[0].stale);
    fx.take_nonce(&response);
    assert_eq!(fx.register(&mut req).response.status, 200);
}

#[test]
fn old_password_after_a_change_is_refused() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.register(&mut req);
    fx.users[0] = credentials(1, "alice", "new-password", fx.now + 1);
    fx.advance_secs(60);
    let response = fx.refused(&mut req);
    assert_eq!(response.status, 401);
    assert!(!challenges(&response)[0].stale);
}

#[test]
fn registering_another_users_aor_is_forbidden() {
    let mut fx = Fixture::new();
    // bob authenticates correctly but asks for alice's AOR.
    let mut req = Req::new("bob")
        .contact(CONTACT)
        .to(&format!("<sip:alice@{DOMAIN}>"));
    let response = fx.refused(&mut req);
    assert_eq!(response.status, 403);
    assert!(fx.store.is_empty());
}

#[test]
fn aor_host_is_case_insensitive_user_is_exact() {
    let mut fx = Fixture::new();
    let mut req = alice().to("<sip:alice@EXAMPLE.Com>");
    assert_eq!(fx.register(&mut req).response.status, 200);
    let mut req = alice().to(&format!("<sip:Alice@{DOMAIN}>"));
    assert_eq!(fx.refused(&mut req).status, 403);
    // Escaped user parts compare unescaped.
    let mut req = alice().to(&format!("<sip:%61lice@{DOMAIN}>"));
    assert_eq!(fx.register(&mut req).response.status, 200);
}

#[test]
fn another_domain_is_forbidden_before_authentication() {
    let mut fx = Fixture::new();
    for to in ["<sip:alice@example.org>", "<sip:example.com>"] {
        let response = fx.send(&alice().to(to), None).unwrap_err();
        assert_eq!(response.status, 403, "{to}");
    }
    // Not a SIP AOR at all: a bad request (RFC 4475 unksm2).
    for to in ["<tel:+15551234>", "<isbn:2983792873>"] {
        let response = fx.send(&alice().to(to), None).unwrap_err();
        assert_eq!(response.status, 400, "{to}");
    }
    assert!(fx.lookups.is_empty());
}

#[test]
fn aliases_and_the_arrival_address_are_our_domain() {
    let mut config = config();
    config.aliases = vec!["SIP.example.net".to_owned(), "198.51.100.1".to_owned()];
    let mut fx = Fixture::with_config(config);
    let arrival = LOCAL.split(':').next().unwrap();
    for host in ["sip.example.net", "198.51.100.1:5070", arrival] {
        let mut req = alice().to(&format!("<sip:alice@{host}>"));
        let registration = fx.register(&mut req);
        assert_eq!(registration.response.status, 200, "{host}");
        // Stored under the endpoint whatever host named it.
        assert_eq!(registration.endpoint_pk, 1);
    }
    assert_eq!(fx.store.len(), 1, "one contact, one binding");
    for host in ["198.51.100.2", "[2001:db8::1]", "example.org"] {
        let response = fx.send(&alice().to(&format!("<sip:alice@{host}>")), None);
        assert_eq!(response.unwrap_err().status, 403, "{host}");
    }
    // The same address is another domain when the request arrived elsewhere.
    fx.source.local = "192.0.2.99:5060".parse().unwrap();
    let response = fx.send(&alice().to(&format!("<sip:alice@{arrival}>")), None);
    assert_eq!(response.unwrap_err().status, 403);
    // The challenge's realm stays the domain.
    let challenge = fx.send(&alice().to("<sip:alice@sip.example.net>"), None);
    assert_eq!(challenges(&challenge.unwrap_err())[0].realm, DOMAIN);
}

#[test]
fn unsupported_answers_are_challenged() {
    let mut fx = with_algorithms(&[Algorithm::Sha256, Algorithm::Md5]);
    let req = alice();
    fx.fetch_nonce(&req);
    let nonce = fx.nonce.clone().unwrap();
    let good = Answer {
        username: "alice",
        password: "wonderland",
        realm: DOMAIN,
        algorithm: "SHA-256",
        nonce: &nonce,
        nc: 1,
        cnonce: "c",
        uri: "sip:example.com",
    }
    .header_value();
    let variants = [
        // RFC 2069 (no qop).
        good.replace(", qop=auth, cnonce=\"c\", nc=00000001", ""),
        good.replace("qop=auth", "qop=auth-int"),
        good.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
        good.replace("algorithm=SHA-256", "algorithm=SHA-256-sess"),
        format!("{good}, userhash=true"),
    ];
    for value in variants {
        let response = fx.send(&req, Some(&value)).unwrap_err();
        assert_eq!(response.status, 401, "{value}");
    }
    assert!(fx.lookups.is_empty());
}

#[test]
fn credentials_for_other_realms_are_ignored() {
    let mut fx = Fixture::new();
    let mut req = alice();
    fx.fetch_nonce(&req);
    req.cseq += 1;
    let ours = fx.answer_value(&req, "wonderland");
    let theirs = ours.replace(
        &format!("realm=\"{DOMAIN}\""),
        "realm=\"proxy.example.net\"",
    );
    // Theirs alone: challenged. Theirs then ours: ours is used.
    assert_eq!(fx.send(&req, Some(&theirs)).unwrap_err().status, 401);
    let req = req.header(&format!("Authorization: {theirs}"));
    assert_eq!(fx.send(&req, Some(&ours)).unwrap().response.status, 200);
}

#[test]
fn malformed_authorization_is_a_bad_request() {
    let mut fx = Fixture::new();
    let req = alice();
    for value in [
        "Digest username=\"alice\"",
        "Digest realm=\"example.com\", nonce=\"n\", uri=\"sip:example.com\", response=\"0\", username=\"a\", username=\"b\"",
        "Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"x\", response=\"1\", qop=auth",
    ] {
        let response = fx.send(&req, Some(value)).unwrap_err();
        assert_eq!(response.status, 400, "{value}");
    }
}

#[test]
fn the_pending_step_names_the_user() {
    let mut registrar = Registrar::new(config()).unwrap();
    let req = alice();
    let source = source("203.0.113.7:40000", "tcp-1");
    let Start::Respond(challenge) = registrar.start(&req.message(None), &source, T0) else {
        panic!("challenge expected")
    };
    let nonce = challenges(&challenge)[0].nonce.clone();
    let value = Answer {
        username: "alice",
        password: "x",
        realm: DOMAIN,
        algorithm: "MD5",
        nonce: &nonce,
        nc: 1,
        cnonce: "c",
        uri: "sip:example.com",
    }
    .header_value();
    let message = req.message(Some(&value));
    match registrar.start(&message, &source, T0) {
        Start::NeedCredentials(pending) => assert_eq!(pending.username(), "alice"),
        Start::Respond(response) => panic!("{}", String::from_utf8_lossy(&response.bytes)),
    }
}

#[test]
fn extended_usernames_are_decoded() {
    let mut fx = with_algorithms(&[Algorithm::Sha256, Algorithm::Md5]);
    fx.users.push(credentials(3, "jäsøn", "pw", T0 - 1000));
    let req = Req::new("j%C3%A4s%C3%B8n").contact(CONTACT);
    fx.fetch_nonce(&req);
    let nonce = fx.nonce.clone().unwrap();
    let value = Answer {
        username: "jäsøn",
        password: "pw",
        realm: DOMAIN,
        algorithm: "SHA-256",
        nonce: &nonce,
        nc: 1,
        cnonce: "c",
        uri: "sip:example.com",
    }
    .header_value()
    .replace("username=\"jäsøn\"", "username*=UTF-8''j%C3%A4s%C3%B8n");
    let mut req = req;
    req.cseq += 1;
    let registration = fx.send(&req, Some(&value)).unwrap();
    assert_eq!(registration.endpoint_pk, 3);
}

#[test]
fn configuration_is_checked() {
    let check = |change: fn(&mut RegistrarConfig)| {
        let mut config = config();
        change(&mut config);
        Registrar::new(config).err()
    };
    assert_eq!(check(|_| {}), None);
    assert_eq!(
        check(|c| c.domain.clear()),
        Some(ConfigError::InvalidDomain)
    );
    assert_eq!(
        check(|c| c.domain = "a\"b".into()),
        Some(ConfigError::InvalidDomain)
    );
    assert_eq!(
        check(|c| c.aliases = vec!["192.0.2.1".into(), "a b".into()]),
        Some(ConfigError::InvalidDomainAlias)
    );
    assert_eq!(
        check(|c| c.nonce_secret = vec![1; 31]),
        Some(ConfigError::SecretTooShort)
    );
    assert_eq!(
        check(|c| c.nonce_lifetime = std::time::Duration::ZERO),
        Some(ConfigError::ZeroNonceLifetime)
    );
    assert_eq!(
        check(|c| c.min_expires_secs = 0),
        Some(ConfigError::ExpiresOutOfOrder)
    );
    assert_eq!(
        check(|c| c.default_expires_secs = 10_000),
        Some(ConfigError::ExpiresOutOfOrder)
    );
    assert_eq!(
        check(|c| c.max_contacts_per_aor = 0),
        Some(ConfigError::ZeroMaxContacts)
    );
    assert_eq!(
        check(|c| c.replay_tracker_capacity = 0),
        Some(ConfigError::ZeroReplayCapacity)
    );
    assert_eq!(
        check(|c| c.digest_algorithms.clear()),
        Some(ConfigError::InvalidDigestAlgorithms)
    );
    assert_eq!(
        check(|c| c.digest_algorithms = vec![Algorithm::Md5, Algorithm::Md5]),
        Some(ConfigError::InvalidDigestAlgorithms)
    );
    assert_eq!(
        check(|c| {
            c.digest_algorithms = vec![Algorithm::Sha256, Algorithm::Md5, Algorithm::Sha256]
        }),
        Some(ConfigError::InvalidDigestAlgorithms)
    );
    assert!(
        !format!("{:?}", config()).contains("42"),
        "the secret stays out of Debug"
    );
}

#[test]
fn the_core_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Registrar>();
    shareable::<sipd_registrar::PendingAuth<'static>>();
    shareable::<sipd_registrar::Registration>();
}
