//! Calls through the real `sipd` binary: endpoints registered over real sockets call each
//! other through the proxy (407, forking, Record-Route, CANCEL, BYE, MESSAGE), including a
//! device that registered over TCP and whose connection has closed. SQLite by default;
//! PostgreSQL with SIPD_TEST_DATABASE_URL.

mod common;

use common::sip::{
    authorization, challenges, digest_answer, proxy_challenges, Registration, SipClient,
};
use common::{Api, Sandbox, Server, DOMAIN};
use sip_message::{HeaderName, Message, Method, RequestBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PASSWORD: &str = "s3cret-pass";

async fn start() -> (Sandbox, Server, Api) {
    let sandbox = Sandbox::new().await;
    let (auth_id, auth_token) = sandbox.create_account().await;
    let server = sandbox.serve().await;
    let api = Api::new(&server, &auth_id, &auth_token);
    (sandbox, server, api)
}

/// Registers `user` from `client` with the default (MD5) challenge.
async fn register(client: &mut SipClient, user: &str) -> Registration {
    let mut device = Registration::new(user);
    client.send(&device.register(client, 600, None)).await;
    let challenge = client.recv().await;
    assert_eq!(challenge.status(), Some(401));
    let answer = authorization(&challenges(&challenge)[0], user, PASSWORD, 1);
    client
        .send(&device.register(client, 600, Some(&answer)))
        .await;
    let ok = client.recv().await;
    assert_eq!(ok.status(), Some(200), "{ok:?}");
    device
}

fn via(client: &SipClient) -> String {
    format!(
        "SIP/2.0/{} {};rport;branch=z9hG4bK{:016x}",
        client.transport,
        client.local,
        rand::random::<u64>()
    )
}

/// Who calls whom, in which Call-ID.
struct Parties<'a> {
    from: &'a str,
    to: &'a str,
    call_id: &'a str,
}

/// An out-of-dialog request from `parties.from` (on `client`), with optional credentials.
fn request(
    method: &str,
    client: &SipClient,
    parties: &Parties<'_>,
    cseq: u32,
    proxy_authorization: Option<&str>,
    body: &str,
) -> Vec<u8> {
    let Parties { from, to, call_id } = *parties;
    let uri = format!("sip:{to}@{DOMAIN}");
    let mut builder = RequestBuilder::new(method, &uri)
        .header("Via", via(client))
        .header("Max-Forwards", "70")
        .header(
            "From",
            format!("<sip:{from}@{DOMAIN}>;tag={from}-{call_id}"),
        )
        .header("To", format!("<{uri}>"))
        .header("Call-ID", call_id)
        .header("CSeq", format!("{cseq} {method}"))
        .header(
            "Contact",
            format!(
                "<sip:{from}@{};transport={}>",
                client.local,
                client.transport.to_ascii_lowercase()
            ),
        );
    if let Some(credentials) = proxy_authorization {
        builder = builder.header("Proxy-Authorization", credentials);
    }
    if !body.is_empty() {
        builder = builder.header("Content-Type", "application/sdp").body(body);
    }
    builder.build()
}

/// Sends `method` from `from`, answers the 407, and returns the request as sent with its
/// credentials.
async fn send_authenticated(
    client: &mut SipClient,
    method: &str,
    from: &str,
    to: &str,
    call_id: &str,
) -> Message {
    let body = if method == "INVITE" { SDP } else { "" };
    let parties = Parties { from, to, call_id };
    let first = request(method, client, &parties, 1, None, body);
    client.send(&first).await;
    let challenge = client.recv().await;
    assert_eq!(challenge.status(), Some(407), "{challenge:?}");
    if method == "INVITE" {
        let first = Message::parse_slice(&first).unwrap();
        client.send(&first.ack_for(&challenge).unwrap()).await;
    }
    let offered = proxy_challenges(&challenge);
    let answer = digest_answer(
        &offered[0],
        from,
        PASSWORD,
        1,
        method,
        &format!("sip:{to}@{DOMAIN}"),
    );
    let second = request(method, client, &parties, 2, Some(&answer), body);
    client.send(&second).await;
    Message::parse_slice(&second).unwrap()
}

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n";

/// A UAS response to a request it received, echoing Record-Route on a 2xx to INVITE.
fn respond(request: &Message, status: u16, client: &SipClient) -> Vec<u8> {
    let mut builder = request.response(status).to_tag("callee-tag");
    if status / 100 == 2 && request.method() == Some(Method::Invite) {
        builder = builder.header(
            "Contact",
            format!(
                "<sip:callee@{};transport={}>",
                client.local,
                client.transport.to_ascii_lowercase()
            ),
        );
        for value in request.headers_named(HeaderName::RecordRoute) {
            builder = builder.header("Record-Route", value);
        }
    }
    builder.build()
}

/// The Record-Route values of `message`, each a full name-addr.
fn route_set(message: &Message) -> Vec<String> {
    message
        .record_routes()
        .map(|r| String::from_utf8_lossy(r.unwrap().as_bytes()).into_owned())
        .collect()
}

/// One side's view of a dialog: its remote target, its From and To, and its route set.
struct Dialog<'a> {
    target: String,
    from: &'a [u8],
    to: &'a [u8],
    call_id: &'a str,
    routes: Vec<String>,
}

/// An in-dialog request following the dialog's route set.
fn in_dialog(method: &str, client: &SipClient, dialog: &Dialog<'_>, cseq: u32) -> Vec<u8> {
    let mut builder = RequestBuilder::new(method, &dialog.target)
        .header("Via", via(client))
        .header("Max-Forwards", "70")
        .header("From", dialog.from)
        .header("To", dialog.to)
        .header("Call-ID", dialog.call_id)
        .header("CSeq", format!("{cseq} {method}"));
    for route in &dialog.routes {
        builder = builder.header("Route", route);
    }
    builder.build()
}

fn contact_uri(message: &Message) -> String {
    message
        .contacts()
        .next()
        .unwrap()
        .unwrap()
        .address()
        .unwrap()
        .uri()
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn a_udp_caller_calls_a_tcp_callee_and_they_hang_up() {
    let (_sandbox, server, api) = start().await;
    api.create_endpoint("alice", PASSWORD).await;
    api.create_endpoint("bob", PASSWORD).await;
    let mut alice = SipClient::connect("udp", server.sip_addr("udp")).await;
    let mut bob = SipClient::connect("tcp", server.sip_addr("tcp")).await;
    register(&mut alice, "alice").await;
    register(&mut bob, "bob").await;

    let invite = send_authenticated(&mut alice, "INVITE", "alice", "bob", "call-1").await;
    assert_eq!(alice.recv().await.status(), Some(100));
    let incoming = bob.recv().await;
    assert_eq!(incoming.method(), Some(Method::Invite));
    assert!(incoming.header(HeaderName::ProxyAuthorization).is_none());
    let routes = route_set(&incoming);
    assert_eq!(
        routes.len(),
        2,
        "UDP to TCP: a Record-Route per side: {routes:?}"
    );
    assert!(routes[0].contains("transport=tcp"), "{routes:?}");
    assert_eq!(incoming.body(), SDP.as_bytes());

    bob.send(&respond(&incoming, 180, &bob)).await;
    assert_eq!(alice.recv().await.status(), Some(180));
    bob.send(&respond(&incoming, 200, &bob)).await;
    let ok = alice.recv().await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(route_set(&ok), routes);

    // The ACK and BYE follow the route set, each side its own way round.
    let mut alice_routes = route_set(&ok);
    alice_routes.reverse();
    let from = invite.header(HeaderName::From).unwrap().to_vec();
    let to = ok.header(HeaderName::To).unwrap().to_vec();
    let caller_side = Dialog {
        target: contact_uri(&ok),
        from: &from,
        to: &to,
        call_id: "call-1",
        routes: alice_routes,
    };
    alice.send(&in_dialog("ACK", &alice, &caller_side, 2)).await;
    let ack = bob.recv().await;
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.routes().count(), 0);

    let callee_side = Dialog {
        target: contact_uri(&invite),
        from: &to,
        to: &from,
        call_id: "call-1",
        routes: routes.clone(),
    };
    bob.send(&in_dialog("BYE", &bob, &callee_side, 1)).await;
    let bye = alice.recv().await;
    assert_eq!(bye.method(), Some(Method::Bye));
    alice.send(&bye.response(200).build()).await;
    assert_eq!(bob.recv().await.status(), Some(200));

    // MESSAGE: challenged too, then delivered; no Record-Route.
    send_authenticated(&mut alice, "MESSAGE", "alice", "bob", "msg-1").await;
    let message = bob.recv().await;
    assert_eq!(message.method(), Some(Method::Message));
    assert_eq!(message.record_routes().count(), 0);
    bob.send(&respond(&message, 200, &bob)).await;
    assert_eq!(alice.recv().await.status(), Some(200));

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
    let log = log.join("\n");
    assert!(log.contains("call ended"), "one log line per call:\n{log}");
}

#[tokio::test]
async fn forking_cancel_and_unregistered_callees() {
    let (_sandbox, server, api) = start().await;
    api.create_endpoint("alice", PASSWORD).await;
    api.create_endpoint("bob", PASSWORD).await;
    api.create_endpoint("carol", PASSWORD).await;
    let mut alice = SipClient::connect("udp", server.sip_addr("udp")).await;
    let mut desk = SipClient::connect("udp", server.sip_addr("udp")).await;
    let mut browser = SipClient::connect("wss", server.sip_addr("wss")).await;
    register(&mut alice, "alice").await;
    register(&mut desk, "bob").await;
    register(&mut browser, "bob").await;

    // carol is not registered: 480.
    send_authenticated(&mut alice, "INVITE", "alice", "carol", "call-480").await;
    let response = alice.recv().await;
    assert_eq!(response.status(), Some(480), "{response:?}");

    // Both of bob's devices ring; the browser answers; the desk phone is cancelled.
    send_authenticated(&mut alice, "INVITE", "alice", "bob", "call-fork").await;
    assert_eq!(alice.recv().await.status(), Some(100));
    let at_desk = desk.recv().await;
    let at_browser = browser.recv().await;
    assert_eq!(at_desk.method(), Some(Method::Invite));
    assert_eq!(at_browser.method(), Some(Method::Invite));
    assert_eq!(route_set(&at_browser).len(), 2, "UDP caller, WSS callee");
    desk.send(&respond(&at_desk, 180, &desk)).await;
    assert_eq!(alice.recv().await.status(), Some(180));
    browser.send(&respond(&at_browser, 200, &browser)).await;
    assert_eq!(alice.recv().await.status(), Some(200));
    let cancel = desk.recv().await;
    assert_eq!(cancel.method(), Some(Method::Cancel));
    desk.send(&cancel.response(200).build()).await;
    desk.send(&respond(&at_desk, 487, &desk)).await;
    let ack = desk.recv().await;
    assert_eq!(ack.method(), Some(Method::Ack));

    // The caller cancels a ringing call: 200 to its CANCEL, then the callee's 487.
    let invite = send_authenticated(&mut alice, "INVITE", "alice", "bob", "call-cancel").await;
    assert_eq!(alice.recv().await.status(), Some(100));
    let at_desk = desk.recv().await;
    let at_browser = browser.recv().await;
    desk.send(&respond(&at_desk, 180, &desk)).await;
    browser.send(&respond(&at_browser, 180, &browser)).await;
    assert_eq!(alice.recv().await.status(), Some(180));
    assert_eq!(alice.recv().await.status(), Some(180));
    alice.send(&invite.cancel().unwrap()).await;
    assert_eq!(alice.recv().await.status(), Some(200));
    for (device, invite) in [(&mut desk, &at_desk), (&mut browser, &at_browser)] {
        let cancel = device.recv().await;
        assert_eq!(cancel.method(), Some(Method::Cancel));
        let ok = cancel.response(200).build();
        device.send(&ok).await;
        let terminated = respond(invite, 487, device);
        device.send(&terminated).await;
    }
    let terminated = alice.recv().await;
    assert_eq!(terminated.status(), Some(487));
    assert_eq!(terminated.to_tag(), Some("callee-tag"));

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
}

/// A device registered over TCP without RFC 5626 keeps its binding when its connection
/// closes; sipd then opens a new connection to its Contact address (RFC 3261 §18).
#[tokio::test]
async fn a_tcp_device_whose_connection_closed_is_reached_at_its_contact() {
    let (_sandbox, server, api) = start().await;
    api.create_endpoint("alice", PASSWORD).await;
    let (bob_id, _) = api.create_endpoint("bob", PASSWORD).await;
    let mut alice = SipClient::connect("udp", server.sip_addr("udp")).await;
    register(&mut alice, "alice").await;

    // bob's phone listens on its own port and registers that as its Contact.
    let phone = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listening = phone.local_addr().unwrap();
    {
        let mut bob = SipClient::connect("tcp", server.sip_addr("tcp")).await;
        let mut device = Registration::new("bob");
        let contact = format!("<sip:bob@{listening};transport=tcp>");
        let first = String::from_utf8(device.register(&bob, 600, None))
            .unwrap()
            .replace(&format!("<{}>", device.contact(&bob)), &contact);
        bob.send(first.as_bytes()).await;
        let challenge = bob.recv().await;
        let answer = authorization(&challenges(&challenge)[0], "bob", PASSWORD, 1);
        let second = String::from_utf8(device.register(&bob, 600, Some(&answer)))
            .unwrap()
            .replace(&format!("<{}>", device.contact(&bob)), &contact);
        bob.send(second.as_bytes()).await;
        assert_eq!(bob.recv().await.status(), Some(200));
    } // The registration connection closes here.
    let endpoint = api.endpoint(&bob_id).await;
    assert_eq!(endpoint["sip_registered"], "true", "{endpoint}");

    send_authenticated(&mut alice, "INVITE", "alice", "bob", "call-tcp").await;
    assert_eq!(alice.recv().await.status(), Some(100));
    let (mut connection, _) = tokio::time::timeout(common::TIMEOUT, phone.accept())
        .await
        .expect("sipd connects to the Contact in time")
        .unwrap();
    let mut received = Vec::new();
    let invite = loop {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(common::TIMEOUT, connection.read(&mut chunk))
            .await
            .expect("the INVITE in time")
            .unwrap();
        assert!(n > 0, "sipd closed the connection");
        received.extend_from_slice(&chunk[..n]);
        if let Ok(message) = Message::parse_slice(&received) {
            if message.content_length().is_some() {
                break message;
            }
        }
    };
    assert_eq!(invite.method(), Some(Method::Invite));
    connection
        .write_all(&invite.response(486).to_tag("busy").build())
        .await
        .unwrap();
    assert_eq!(alice.recv().await.status(), Some(486));

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit {status}:\n{}", log.join("\n"));
}
