//! SIP end to end against the real `sipd` binary: Digest REGISTER over UDP, TCP, TLS and WSS,
//! the registration as the REST API shows it, and what the server answers to bad, replayed,
//! foreign and unserved requests. SQLite by default; PostgreSQL with SIPD_TEST_DATABASE_URL.

mod common;

use common::sip::{authorization, challenges, Registration, SipClient};
use common::{Api, Sandbox, Server};
use sip_message::auth::DigestChallenge;
use sip_message::{HeaderName, Message};

const PASSWORD: &str = "s3cret-pass";

/// A server with one account and its API client, offering SHA-256 then MD5 (the default is
/// MD5 alone: `the_default_offers_one_md5_challenge`).
async fn start() -> (Sandbox, Server, Api) {
    let sandbox = Sandbox::new().await;
    let (auth_id, auth_token) = sandbox.create_account().await;
    let mut command = sandbox.command(&["serve"]);
    command.env("SIPD_REGISTRAR_DIGEST_ALGORITHMS", "SHA-256,MD5");
    let mut server = sandbox.start(command).await;
    server.wait_for_sip().await;
    let api = Api::new(&server, &auth_id, &auth_token);
    (sandbox, server, api)
}

fn header(message: &Message, name: HeaderName) -> String {
    String::from_utf8_lossy(message.header(name).unwrap_or_default()).into_owned()
}

/// The challenge pair of a 401: SHA-256 first, then MD5, both qop=auth, our realm.
fn check_challenges(response: &Message) -> Vec<DigestChallenge<'static>> {
    assert_eq!(response.status(), Some(401), "{response:?}");
    let offered = challenges(response);
    let algorithms: Vec<&str> = offered
        .iter()
        .map(|challenge| challenge.algorithm.as_str())
        .collect();
    assert_eq!(algorithms, ["SHA-256", "MD5"]);
    for challenge in &offered {
        assert_eq!(challenge.realm, common::DOMAIN);
        assert!(challenge.qop.iter().any(|qop| qop.as_str() == "auth"));
    }
    offered
}

/// REGISTER, 401, REGISTER with the answer to the challenge of `algorithm`; returns the final
/// response.
async fn register(
    client: &mut SipClient,
    device: &mut Registration,
    password: &str,
    algorithm: &str,
    expires: u32,
) -> Message {
    client.send(&device.register(client, expires, None)).await;
    let offered = check_challenges(&client.recv().await);
    let challenge = offered
        .iter()
        .find(|challenge| challenge.algorithm.as_str() == algorithm)
        .expect("the algorithm is offered");
    let answer = authorization(challenge, &device.user, password, 1);
    client
        .send(&device.register(client, expires, Some(&answer)))
        .await;
    client.recv().await
}

async fn registers_and_unregisters_over(transport: &str, algorithm: &str) {
    let (_sandbox, server, api) = start().await;
    let (endpoint_id, user) = api
        .create_endpoint(&format!("dev{transport}"), PASSWORD)
        .await;
    let mut client = SipClient::connect(transport, server.sip_addr(transport)).await;
    let mut device = Registration::new(&user);

    let ok = register(&mut client, &mut device, PASSWORD, algorithm, 600).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    let contact = device.contact(&client);
    let bound = header(&ok, HeaderName::Contact);
    assert!(bound.contains(&contact), "{bound}");
    assert!(bound.contains("expires="), "{bound}");
    // RFC 3581: the response names the address the request came from.
    let via = header(&ok, HeaderName::Via);
    assert!(
        via.contains(&format!("received={}", client.local.ip())),
        "{via}"
    );
    assert!(
        via.contains(&format!("rport={}", client.local.port())),
        "{via}"
    );

    let endpoint = api.endpoint(&endpoint_id).await;
    assert_eq!(endpoint["sip_registered"], "true", "{endpoint}");
    assert!(
        endpoint["sip_contact"]
            .as_str()
            .unwrap_or_default()
            .contains(&contact),
        "{endpoint}"
    );
    assert_eq!(
        endpoint["sip_user_agent"],
        device.user_agent.as_str(),
        "{endpoint}"
    );

    let gone = register(&mut client, &mut device, PASSWORD, algorithm, 0).await;
    assert_eq!(gone.status(), Some(200), "{gone:?}");
    let endpoint = api.endpoint(&endpoint_id).await;
    assert_eq!(endpoint["sip_registered"], "false", "{endpoint}");

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    let log = log.join("\n");
    assert!(!log.contains(PASSWORD), "the password is logged:\n{log}");
}

#[tokio::test]
async fn registers_over_udp_with_sha256() {
    registers_and_unregisters_over("udp", "SHA-256").await;
}

#[tokio::test]
async fn registers_over_tcp_with_md5() {
    registers_and_unregisters_over("tcp", "MD5").await;
}

#[tokio::test]
async fn registers_over_tls_with_sha256() {
    registers_and_unregisters_over("tls", "SHA-256").await;
}

#[tokio::test]
async fn registers_over_wss_with_md5() {
    registers_and_unregisters_over("wss", "MD5").await;
}

/// By default, for the many clients that read only the first challenge and cannot do
/// SHA-256: `MD5` alone is offered, and works.
#[tokio::test]
async fn the_default_offers_one_md5_challenge() {
    let sandbox = Sandbox::new().await;
    let (auth_id, auth_token) = sandbox.create_account().await;
    let server = sandbox.serve().await;
    let api = Api::new(&server, &auth_id, &auth_token);
    let (_, user) = api.create_endpoint("legacy", PASSWORD).await;
    let mut client = SipClient::connect("udp", server.sip_addr("udp")).await;
    let mut device = Registration::new(&user);

    client.send(&device.register(&client, 600, None)).await;
    let challenge = client.recv().await;
    assert_eq!(challenge.status(), Some(401), "{challenge:?}");
    let offered = challenges(&challenge);
    assert_eq!(offered.len(), 1, "{challenge:?}");
    assert_eq!(offered[0].algorithm.as_str(), "MD5");
    assert_eq!(offered[0].realm, common::DOMAIN);
    assert!(offered[0].qop.iter().any(|qop| qop.as_str() == "auth"));

    let answer = authorization(&offered[0], &user, PASSWORD, 1);
    client
        .send(&device.register(&client, 600, Some(&answer)))
        .await;
    let ok = client.recv().await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
}

#[tokio::test]
async fn refusals_end_to_end() {
    let (_sandbox, server, api) = start().await;
    let (_, alice) = api.create_endpoint("alice", PASSWORD).await;
    let (_, bob) = api.create_endpoint("bob", PASSWORD).await;
    let mut client = SipClient::connect("udp", server.sip_addr("udp")).await;

    // Wrong password: challenged again.
    let mut device = Registration::new(&alice);
    let refused = register(&mut client, &mut device, "wrong-pass-1", "SHA-256", 600).await;
    check_challenges(&refused);

    // A replayed nonce-count: the first use registers, the replay is challenged (stale).
    let mut device = Registration::new(&alice);
    client.send(&device.register(&client, 600, None)).await;
    let offered = check_challenges(&client.recv().await);
    let answer = authorization(&offered[0], &alice, PASSWORD, 1);
    client
        .send(&device.register(&client, 600, Some(&answer)))
        .await;
    assert_eq!(client.recv().await.status(), Some(200));
    client
        .send(&device.register(&client, 600, Some(&answer)))
        .await;
    let replayed = client.recv().await;
    check_challenges(&replayed);
    assert!(challenges(&replayed)
        .iter()
        .all(|challenge| challenge.stale));

    // A CSeq lower than the last one accepted in this Call-ID.
    let fresh = authorization(&challenges(&replayed)[0], &alice, PASSWORD, 1);
    let stale_cseq = device.register_with_cseq(&client, 600, Some(&fresh), 1);
    client.send(&stale_cseq).await;
    let out_of_order = client.recv().await;
    assert_eq!(out_of_order.status(), Some(500), "{out_of_order:?}");

    // Bob's credentials for Alice's AOR.
    let mut posing = Registration::new(&alice);
    client.send(&posing.register(&client, 600, None)).await;
    let offered = check_challenges(&client.recv().await);
    let answer = authorization(&offered[0], &bob, PASSWORD, 1);
    client
        .send(&posing.register(&client, 600, Some(&answer)))
        .await;
    assert_eq!(client.recv().await.status(), Some(403));

    // An unknown user gets the same challenges as a known one.
    let mut ghost = Registration::new("nobody-here");
    client.send(&ghost.register(&client, 600, None)).await;
    let offered = check_challenges(&client.recv().await);
    let answer = authorization(&offered[0], "nobody-here", PASSWORD, 1);
    client
        .send(&ghost.register(&client, 600, Some(&answer)))
        .await;
    check_challenges(&client.recv().await);

    // Too brief: 423 with Min-Expires.
    let mut brief = Registration::new(&alice);
    let too_brief = register(&mut client, &mut brief, PASSWORD, "MD5", 5).await;
    assert_eq!(too_brief.status(), Some(423), "{too_brief:?}");
    assert_eq!(header(&too_brief, HeaderName::MinExpires), "60");
}

#[tokio::test]
async fn garbage_options_unserved_methods_and_retransmissions() {
    let (_sandbox, mut server, api) = start().await;
    let (endpoint_id, user) = api.create_endpoint("carol", PASSWORD).await;
    let mut client = SipClient::connect("udp", server.sip_addr("udp")).await;

    client.send(b"\x00\xffnot SIP at all\r\n\r\n").await;
    // A request whose routing headers are readable but whose Contact is broken: 400.
    let mut device = Registration::new(&user);
    let broken = String::from_utf8(device.register(&client, 600, None))
        .unwrap()
        .replace("Contact: <", "Contact: <<");
    client.send(broken.as_bytes()).await;
    let bad = client.recv().await;
    assert_eq!(bad.status(), Some(400), "{bad:?}");
    assert!(server.is_running());

    let options = |method: &str, uri: &str, client: &SipClient| {
        sip_message::RequestBuilder::new(method, uri)
            .header(
                "Via",
                format!(
                    "SIP/2.0/UDP {};rport;branch=z9hG4bK{:x}",
                    client.local,
                    rand::random::<u64>()
                ),
            )
            .header("Max-Forwards", "70")
            .header("From", "<sip:carol@sip.example.test>;tag=1")
            .header("To", format!("<{uri}>"))
            .header("Call-ID", format!("{:x}", rand::random::<u64>()))
            .header("CSeq", format!("1 {method}"))
            .build()
    };
    client
        .send(&options(
            "OPTIONS",
            &format!("sip:{}", common::DOMAIN),
            &client,
        ))
        .await;
    let ok = client.recv().await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    assert_eq!(header(&ok, HeaderName::Allow), "REGISTER, OPTIONS");
    assert!(ok.to_tag().is_some());

    // A call to a user is the proxy's: an unauthenticated caller is challenged (407).
    client
        .send(&options("INVITE", "sip:dave@sip.example.test", &client))
        .await;
    let challenge = client.recv().await;
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    assert!(challenge.header(HeaderName::ProxyAuthenticate).is_some());
    // Requests for the server itself: 405 for what only a user could take, 501 for the rest.
    let server_uri = format!("sip:{}", common::DOMAIN);
    client.send(&options("INVITE", &server_uri, &client)).await;
    let not_allowed = client.recv().await;
    assert_eq!(not_allowed.status(), Some(405));
    assert_eq!(header(&not_allowed, HeaderName::Allow), "REGISTER, OPTIONS");
    client.send(&options("FROB", &server_uri, &client)).await;
    assert_eq!(client.recv().await.status(), Some(501));

    // The 401 is sent statelessly (no transaction held for Timer J), so a retransmitted
    // unauthenticated REGISTER is not absorbed: it is challenged again.
    let unauthenticated = device.register(&client, 600, None);
    client.send(&unauthenticated).await;
    let challenge = client.recv().await;
    let offered = check_challenges(&challenge);
    client.send(&unauthenticated).await;
    let rechallenge = client.recv().await;
    check_challenges(&rechallenge);
    // Fresh nonces: a new answer, not the stored 401 retransmitted.
    assert_ne!(rechallenge.as_bytes(), challenge.as_bytes());
    // A retransmitted REGISTER (same branch) is answered with the same bytes.
    let answer = authorization(&offered[0], &user, PASSWORD, 1);
    let request = device.register(&client, 600, Some(&answer));
    client.send(&request).await;
    let first = client.recv().await;
    assert_eq!(first.status(), Some(200), "{first:?}");
    client.send(&request).await;
    let again = client.recv().await;
    assert_eq!(again.as_bytes(), first.as_bytes());
    let endpoint = api.endpoint(&endpoint_id).await;
    assert_eq!(endpoint["sip_registered"], "true", "{endpoint}");

    // A new password drops the registration at once; the old one no longer works.
    api.change_password(&endpoint_id, "n3w-password").await;
    let endpoint = api.endpoint(&endpoint_id).await;
    assert_eq!(endpoint["sip_registered"], "false", "{endpoint}");
    let mut device = Registration::new(&user);
    let refused = register(&mut client, &mut device, PASSWORD, "SHA-256", 600).await;
    check_challenges(&refused);
    let mut device = Registration::new(&user);
    let ok = register(&mut client, &mut device, "n3w-password", "SHA-256", 600).await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
}
