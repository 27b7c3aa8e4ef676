//! Digest authentication of the proxy's requests (RFC 3261 §22.3): `407` with
//! `Proxy-Authenticate`, answers in `Proxy-Authorization`, the registrar's nonces and replay
//! tracker.

mod common;

use common::*;
use sip_message::Message;
use sipd_registrar::{Algorithm, AuthRole, EndpointInfo, Response};

/// A request from alice's phone to bob, with `proxy_authorization` if given.
fn request(method: &str, proxy_authorization: Option<&str>) -> Message {
    let mut text = format!(
        "{method} sip:bob@{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK-{method}\r\n\
         Max-Forwards: 70\r\n\
         From: \"Front desk\" <sip:+15551234@{DOMAIN}>;tag=from-1\r\n\
         To: <sip:bob@{DOMAIN}>\r\n\
         Call-ID: call-{method}\r\n\
         CSeq: 2 {method}\r\n\
         Contact: <sip:alice@192.168.1.10:5060>\r\n"
    );
    if let Some(value) = proxy_authorization {
        text.push_str(&format!("Proxy-Authorization: {value}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    Message::parse_slice(text.as_bytes()).expect("test request parses")
}

const INVITE_URI: &str = "sip:bob@example.com";

/// Runs the two steps as the service does, with the fixture's users.
fn authenticate(fx: &mut Fixture, message: &Message) -> Result<EndpointInfo, Response> {
    let now = fx.now;
    let pending = fx
        .registrar
        .authenticator()
        .screen(message, AuthRole::Proxy, now)?;
    fx.lookups.push(pending.username().to_owned());
    let credentials = fx
        .users
        .iter()
        .find(|c| *c.endpoint.username == *pending.username())
        .cloned();
    fx.registrar
        .authenticator()
        .verify(pending, credentials.as_ref(), now)
        .map(|credentials| credentials.endpoint.clone())
}

/// Alice's answer to the fixture's nonce at count `nc`, hashed over `hashed_method`.
fn answer(fx: &Fixture, password: &str, nc: u32, hashed_method: &str) -> String {
    let nonce = fx.nonce.clone().expect("a nonce was fetched");
    Answer {
        username: "alice",
        password,
        realm: DOMAIN,
        algorithm: fx.algorithm,
        nonce: &nonce,
        nc,
        cnonce: "9a8b7c",
        uri: INVITE_URI,
    }
    .header_value_for(hashed_method)
}

/// Sends `method` without credentials and keeps the nonce of the 407.
fn fetch_proxy_nonce(fx: &mut Fixture, method: &str) -> Response {
    let challenge = authenticate(fx, &request(method, None)).expect_err("challenged");
    assert_eq!(challenge.status, 407);
    fx.take_nonce(&challenge);
    challenge
}

fn is_stale(response: &Response) -> bool {
    let offers = challenges(response);
    assert!(!offers.is_empty(), "a challenge");
    offers.iter().all(|offer| offer.stale)
}

#[test]
fn a_request_without_credentials_gets_a_407_with_proxy_authenticate() {
    let mut fx = Fixture::new();
    let challenge = fetch_proxy_nonce(&mut fx, "INVITE");
    let offers = challenges(&challenge);
    assert_eq!(offers.len(), 1);
    assert_eq!(offers[0].realm, DOMAIN);
    assert_eq!(offers[0].algorithm, "MD5");
    assert_eq!(offers[0].qop, ["auth"]);
    assert!(!offers[0].stale);
    assert_eq!(header_values(&challenge, "Proxy-Authenticate").len(), 1);
    assert!(header_values(&challenge, "WWW-Authenticate").is_empty());
    assert!(parse(&challenge).to_tag().is_some());
    assert!(
        fx.lookups.is_empty(),
        "no credential lookup without credentials"
    );
}

#[test]
fn proxy_authorization_is_accepted_for_any_method() {
    let mut fx = Fixture::new();
    for (nc, method) in (1..).zip([
        "INVITE",
        "MESSAGE",
        "SUBSCRIBE",
        "REFER",
        "OPTIONS",
        "PUBLISH",
    ]) {
        if nc == 1 {
            fetch_proxy_nonce(&mut fx, method);
        }
        let value = answer(&fx, "wonderland", nc, method);
        let caller = authenticate(&mut fx, &request(method, Some(&value)))
            .unwrap_or_else(|r| panic!("{method}: {}", String::from_utf8_lossy(&r.bytes)));
        assert_eq!(caller.endpoint_pk, 1);
        assert_eq!(&*caller.username, "alice", "not the From user");
    }
}

#[test]
fn the_answer_is_hashed_over_the_requests_own_method() {
    let mut fx = Fixture::new();
    fetch_proxy_nonce(&mut fx, "INVITE");
    // A REGISTER's answer replayed on an INVITE.
    let value = answer(&fx, "wonderland", 1, "REGISTER");
    let response = authenticate(&mut fx, &request("INVITE", Some(&value))).unwrap_err();
    assert_eq!(response.status, 407);
    assert!(!is_stale(&response));
}

#[test]
fn each_role_reads_its_own_header() {
    let mut fx = Fixture::new();
    fetch_proxy_nonce(&mut fx, "INVITE");
    // A correct INVITE answer in Authorization is not for the proxy.
    let value = answer(&fx, "wonderland", 1, "INVITE");
    let text = String::from_utf8(request("INVITE", Some(&value)).as_bytes().to_vec())
        .unwrap()
        .replace("Proxy-Authorization:", "Authorization:");
    let message = Message::parse_slice(text.as_bytes()).unwrap();
    let response = authenticate(&mut fx, &message).unwrap_err();
    assert_eq!(response.status, 407);
    assert!(fx.lookups.is_empty());
    // A correct REGISTER answer in Proxy-Authorization is not for the registrar.
    let req = Req::new("alice").contact("<sip:alice@192.168.1.10>");
    let register = fx.answer_value(&req, "wonderland");
    let req = req.header(&format!("Proxy-Authorization: {register}"));
    let response = fx.send(&req, None).unwrap_err();
    assert_eq!(response.status, 401);
    assert!(fx.lookups.is_empty());
}

#[test]
fn a_register_nonce_answers_an_invite_and_counts_rise_across_both() {
    let mut fx = Fixture::new();
    let mut req = Req::new("alice").contact("<sip:alice@192.168.1.10>");
    fx.fetch_nonce(&req); // a 401's nonce
    assert_eq!(fx.register(&mut req).response.status, 200); // nc 1
    let invite = answer(&fx, "wonderland", 2, "INVITE");
    assert!(authenticate(&mut fx, &request("INVITE", Some(&invite))).is_ok());
    // The REGISTER's next count, 2, was spent by the INVITE: stale.
    let response = fx.refused(&mut req);
    assert_eq!(response.status, 401);
    assert!(is_stale(&response));
    // And the other way round: the INVITE cannot go back to a count a REGISTER used.
    fx.take_nonce(&response);
    assert_eq!(fx.register(&mut req).response.status, 200); // new nonce, nc 1
    fx.nc = 5;
    assert_eq!(fx.register(&mut req).response.status, 200); // nc 6
    let spent = answer(&fx, "wonderland", 6, "INVITE");
    let response = authenticate(&mut fx, &request("INVITE", Some(&spent))).unwrap_err();
    assert_eq!(response.status, 407);
    assert!(is_stale(&response));
    let invite = answer(&fx, "wonderland", 7, "INVITE");
    assert!(authenticate(&mut fx, &request("INVITE", Some(&invite))).is_ok());
}

#[test]
fn replayed_or_lower_nonce_counts_are_refused_stale() {
    let mut fx = Fixture::new();
    fetch_proxy_nonce(&mut fx, "MESSAGE");
    let first = request("MESSAGE", Some(&answer(&fx, "wonderland", 3, "MESSAGE")));
    assert!(authenticate(&mut fx, &first).is_ok());
    let replayed = authenticate(&mut fx, &first).unwrap_err();
    assert_eq!(replayed.status, 407);
    assert!(is_stale(&replayed), "right answer, spent count: stale");
    let lower = request("MESSAGE", Some(&answer(&fx, "wonderland", 2, "MESSAGE")));
    assert!(is_stale(&authenticate(&mut fx, &lower).unwrap_err()));
    let higher = request("MESSAGE", Some(&answer(&fx, "wonderland", 4, "MESSAGE")));
    assert!(authenticate(&mut fx, &higher).is_ok());
}

#[test]
fn expired_nonces_and_changed_passwords_are_stale() {
    let mut fx = Fixture::new();
    fetch_proxy_nonce(&mut fx, "INVITE");
    fx.advance_secs(301);
    let late = request("INVITE", Some(&answer(&fx, "wonderland", 1, "INVITE")));
    assert!(is_stale(&authenticate(&mut fx, &late).unwrap_err()));

    let fresh = fetch_proxy_nonce(&mut fx, "INVITE");
    assert!(!is_stale(&fresh));
    fx.advance_secs(5);
    // The password was set again (to the same value) after the nonce was issued.
    fx.users[0] = credentials(1, "alice", "wonderland", fx.now - 1000);
    let before_change = request("INVITE", Some(&answer(&fx, "wonderland", 1, "INVITE")));
    assert!(is_stale(
        &authenticate(&mut fx, &before_change).unwrap_err()
    ));
}

#[test]
fn an_unknown_user_gets_the_same_407_as_a_wrong_password() {
    let mut fx = Fixture::new();
    fetch_proxy_nonce(&mut fx, "INVITE");
    let nonce = fx.nonce.clone().unwrap();
    let value = |username: &str| {
        Answer {
            username,
            password: "guess",
            realm: DOMAIN,
            algorithm: "MD5",
            nonce: &nonce,
            nc: 1,
            cnonce: "9a8b7c",
            uri: INVITE_URI,
        }
        .header_value_for("INVITE")
    };
    let wrong = authenticate(&mut fx, &request("INVITE", Some(&value("alice")))).unwrap_err();
    let unknown = authenticate(&mut fx, &request("INVITE", Some(&value("mallory")))).unwrap_err();
    assert_eq!(fx.lookups, ["alice", "mallory"], "both looked up");
    let without_nonces = |response: &Response| {
        let mut text = String::from_utf8_lossy(&response.bytes).into_owned();
        for offer in challenges(response) {
            text = text.replace(&offer.nonce, "NONCE");
        }
        text
    };
    assert_eq!(wrong.status, 407);
    assert!(!is_stale(&wrong));
    assert_eq!(without_nonces(&unknown), without_nonces(&wrong));
}

#[test]
fn credentials_for_other_realms_are_ignored() {
    let mut fx = Fixture::new();
    fetch_proxy_nonce(&mut fx, "INVITE");
    let ours = answer(&fx, "wonderland", 1, "INVITE");
    let theirs = ours.replace(
        &format!("realm=\"{DOMAIN}\""),
        "realm=\"carrier.example.net\"",
    );
    let response = authenticate(&mut fx, &request("INVITE", Some(&theirs))).unwrap_err();
    assert_eq!(response.status, 407);
    assert!(fx.lookups.is_empty());
    // Theirs first, then ours: ours is used.
    let text = String::from_utf8(request("INVITE", Some(&ours)).as_bytes().to_vec())
        .unwrap()
        .replace(
            "Proxy-Authorization:",
            &format!("Proxy-Authorization: {theirs}\r\nProxy-Authorization:"),
        );
    let both = Message::parse_slice(text.as_bytes()).unwrap();
    assert_eq!(authenticate(&mut fx, &both).unwrap().endpoint_pk, 1);
}

#[test]
fn only_offered_algorithms_and_qop_auth_are_accepted() {
    // The default offers MD5 alone: a SHA-256 answer is challenged again, before any lookup.
    let mut fx = Fixture::new();
    fetch_proxy_nonce(&mut fx, "INVITE");
    fx.algorithm = "SHA-256";
    let sha256 = answer(&fx, "wonderland", 1, "INVITE");
    let response = authenticate(&mut fx, &request("INVITE", Some(&sha256))).unwrap_err();
    assert_eq!(response.status, 407);
    assert_eq!(
        challenges(&response)
            .iter()
            .map(|o| o.algorithm.as_str())
            .collect::<Vec<_>>(),
        ["MD5"]
    );
    assert!(fx.lookups.is_empty());

    // Configured: SHA-256 first, then MD5, each in its own Proxy-Authenticate.
    let mut config = config();
    config.digest_algorithms = vec![Algorithm::Sha256, Algorithm::Md5];
    let mut fx = Fixture::with_config(config);
    let challenge = fetch_proxy_nonce(&mut fx, "INVITE");
    let offered: Vec<_> = challenges(&challenge)
        .into_iter()
        .map(|o| o.algorithm)
        .collect();
    assert_eq!(offered, ["SHA-256", "MD5"]);
    assert_eq!(header_values(&challenge, "Proxy-Authenticate").len(), 2);
    fx.algorithm = "SHA-256";
    let good = answer(&fx, "wonderland", 1, "INVITE");
    assert!(authenticate(&mut fx, &request("INVITE", Some(&good))).is_ok());
    let variants = [
        good.replace(", qop=auth, cnonce=\"9a8b7c\", nc=00000001", ""),
        good.replace("qop=auth", "qop=auth-int"),
        good.replace("algorithm=SHA-256", "algorithm=SHA-512-256"),
        good.replace("algorithm=SHA-256", "algorithm=MD5-sess"),
        format!("{good}, userhash=true"),
    ];
    fx.lookups.clear();
    for value in variants {
        let response = authenticate(&mut fx, &request("INVITE", Some(&value))).unwrap_err();
        assert_eq!(response.status, 407, "{value}");
        assert!(!is_stale(&response), "{value}");
    }
    assert!(fx.lookups.is_empty());
}

#[test]
fn a_malformed_proxy_authorization_is_a_bad_request() {
    let mut fx = Fixture::new();
    for value in [
        "Digest username=\"alice\"",
        "Digest username=\"alice\", realm=\"example.com\", nonce=\"n\", uri=\"x\", response=\"1\", qop=auth",
    ] {
        let response = authenticate(&mut fx, &request("INVITE", Some(value))).unwrap_err();
        assert_eq!(response.status, 400, "{value}");
        let text = String::from_utf8_lossy(&response.bytes).into_owned();
        assert!(
            text.starts_with("SIP/2.0 400 Malformed Proxy-Authorization\r\n"),
            "{text}"
        );
    }
}
