//! RFC 3261 §16 on a virtual clock: the proxy (transaction layer and core) between test
//! phones, every rule and race played out message by message.

mod common;

use std::time::Duration;

use common::*;
use sip_message::{FlowId, HeaderName, Message, Method, Transport};
use sipd_proxy::{CallEvent, EndCause, Party};
use sipd_registrar::{Permission, Permissions};

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";

fn caller() -> FlowId {
    udp("10.0.0.1:5060")
}

fn phone_a() -> FlowId {
    udp("10.0.0.9:5060")
}

fn phone_b() -> FlowId {
    udp("10.0.0.8:5060")
}

/// Alice may call; bob is registered on the given flows.
fn setup(bob_flows: &[FlowId]) -> Net {
    let mut net = Net::new();
    net.user("alice");
    let registrations = bob_flows
        .iter()
        .enumerate()
        .map(|(i, flow)| registration(&format!("sip:bob@10.0.0.{}:5060", 9 - i), *flow))
        .collect();
    net.callee("bob", registrations);
    net
}

/// Alice's INVITE with credentials, taken up to the 100 Trying; returns the forwarded
/// INVITEs per flow.
fn call(net: &mut Net, bob_flows: &[FlowId], call_id: &str) -> Vec<Message> {
    net.receive(
        caller(),
        &invite("alice", "bob", call_id, "z9hG4bKa1", true),
    );
    assert_eq!(net.take(caller()).status(), Some(100), "100 Trying at once");
    bob_flows.iter().map(|flow| net.take(*flow)).collect()
}

#[test]
fn a_call_from_invite_to_bye() {
    let mut net = setup(&[phone_a()]);
    // Without credentials: 407, statelessly.
    let unauthenticated = invite("alice", "bob", "call-1", "z9hG4bKa0", false);
    net.receive(caller(), &unauthenticated);
    let challenge = net.take(caller());
    assert_eq!(challenge.status(), Some(407));
    assert!(challenge.header(HeaderName::ProxyAuthenticate).is_some());
    net.receive_message(caller(), ack_for(&unauthenticated, &challenge));
    assert!(net.nothing_for(phone_a()), "the ACK of the 407 ends here");
    assert_eq!(
        net.proxy.transactions(),
        0,
        "the challenge left no transaction"
    );

    let forwarded = call(&mut net, &[phone_a()], "call-1").remove(0);
    assert_eq!(forwarded.method(), Some(Method::Invite));
    assert_eq!(
        forwarded.request_uri().unwrap().as_str(),
        "sip:bob@10.0.0.9:5060"
    );
    let vias: Vec<_> = forwarded.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].host().as_str(), PROXY_IP);
    assert_eq!(vias[1].received(), Some("10.0.0.1"), "rport asked: stamped");
    assert_eq!(vias[1].rport(), Some(sip_message::RPort::Port(5060)));
    assert_eq!(forwarded.max_forwards(), Ok(Some(69)));
    assert!(
        forwarded.header(HeaderName::ProxyAuthorization).is_none(),
        "our own credentials are consumed"
    );
    let rr = record_routes(&forwarded);
    assert_eq!(rr.len(), 1, "one Record-Route: both legs are UDP");
    assert!(
        rr[0].starts_with(&format!("sip:{PROXY_IP}:5060;lr;sdflow=")),
        "{rr:?}"
    );

    let ringing = answer(&forwarded, 180, "bob-tag");
    net.receive_message(phone_a(), ringing);
    let relayed = net.take(caller());
    assert_eq!(relayed.status(), Some(180));
    assert_eq!(relayed.vias().count(), 1, "our Via is gone");
    assert_eq!(relayed.to_tag(), Some("bob-tag"));

    let ok = answer(&forwarded, 200, "bob-tag");
    net.receive_message(phone_a(), ok);
    let ok = net.take(caller());
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        record_routes(&ok),
        rr,
        "the callee's Record-Route reaches the caller"
    );

    // ACK for the 2xx: routed statelessly by its Route to bob's flow.
    net.receive(caller(), &in_dialog("ACK", &ok, false, "z9hG4bKack", 1));
    let (to, ack) = net.stateless.pop_front().expect("ACK forwarded");
    assert_eq!(to, phone_a().to_string());
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.routes().count(), 0, "our Route is removed");
    assert_eq!(ack.vias().count(), 2);
    // Its retransmission gets the same branch.
    net.receive(caller(), &in_dialog("ACK", &ok, false, "z9hG4bKack", 1));
    let (_, again) = net.stateless.pop_front().unwrap();
    assert_eq!(again.branch(), ack.branch());

    // BYE from bob goes to alice's flow, whatever bob's Request-URI says.
    net.receive(phone_a(), &in_dialog("BYE", &ok, true, "z9hG4bKbye", 2));
    let bye = net.take(caller());
    assert_eq!(bye.method(), Some(Method::Bye));
    assert_eq!(bye.routes().count(), 0);
    net.receive_message(caller(), answer(&bye, 200, "alice-tag"));
    assert_eq!(net.take(phone_a()).status(), Some(200));

    let ended = net.events.last().unwrap().clone();
    assert!(
        matches!(
            ended,
            CallEvent::Ended {
                cause: EndCause::HungUp(Party::Callee),
                talk: Some(_),
                ..
            }
        ),
        "{ended:?}"
    );
    assert!(matches!(net.events[0], CallEvent::Started { .. }));
    assert!(matches!(net.events[1], CallEvent::Ringing { .. }));
    assert!(matches!(net.events[2], CallEvent::Answered { .. }));
    assert_eq!(net.proxy.calls_in_progress(), 0);
    assert_eq!(net.proxy.contexts(), 0);
}

#[test]
fn forking_rings_every_device_and_the_first_answer_wins() {
    let mut net = setup(&[phone_a(), phone_b()]);
    let invites = call(&mut net, &[phone_a(), phone_b()], "call-2");
    assert_ne!(invites[0].branch(), invites[1].branch());
    for (flow, invite) in [(phone_a(), &invites[0]), (phone_b(), &invites[1])] {
        net.receive_message(flow, answer(invite, 180, &format!("{flow}-tag")));
    }
    assert_eq!(
        net.statuses(caller()),
        [180, 180],
        "each fork's ringing is relayed"
    );

    net.receive_message(phone_b(), answer(&invites[1], 200, "b-tag"));
    assert_eq!(net.statuses(caller()), [200]);
    let cancel = net.take(phone_a());
    assert_eq!(cancel.method(), Some(Method::Cancel));
    assert_eq!(cancel.branch(), invites[0].branch());
    net.receive_message(phone_a(), answer(&cancel, 200, "a-tag"));
    net.receive_message(phone_a(), answer(&invites[0], 487, "a-tag"));
    let ack = net.take(phone_a());
    assert_eq!(
        ack.method(),
        Some(Method::Ack),
        "the 487 is ACKed hop by hop"
    );
    assert!(net.nothing_for(caller()), "the loser's 487 is not relayed");
}

#[test]
fn two_answers_are_both_relayed() {
    let mut net = setup(&[phone_a(), phone_b()]);
    let invites = call(&mut net, &[phone_a(), phone_b()], "call-3");
    net.receive_message(phone_a(), answer(&invites[0], 200, "a-tag"));
    // b answered before our CANCEL reached it (no provisional yet: the CANCEL waits).
    net.receive_message(phone_b(), answer(&invites[1], 200, "b-tag"));
    // RFC 3261 §16.7 step 5: every 2xx goes up; the first through the INVITE's server
    // transaction, the second (that transaction is an RFC 6026 record by then) by its Via.
    assert_eq!(net.statuses(caller()), [200]);
    let (to, second) = net.stateless.pop_front().expect("the second 2xx relayed");
    assert_eq!(to, "10.0.0.1:5060");
    assert_eq!(
        (second.status(), second.to_tag()),
        (Some(200), Some("b-tag"))
    );
    assert!(
        net.nothing_for(phone_b()),
        "no CANCEL for an answered branch"
    );
}

#[test]
fn a_decline_during_ringing_cancels_the_others() {
    let mut net = setup(&[phone_a(), phone_b()]);
    let invites = call(&mut net, &[phone_a(), phone_b()], "call-4");
    net.receive_message(phone_a(), answer(&invites[0], 180, "a-tag"));
    net.receive_message(phone_b(), answer(&invites[1], 603, "b-tag"));
    assert_eq!(net.take(phone_b()).method(), Some(Method::Ack));
    let cancel = net.take(phone_a());
    assert_eq!(cancel.method(), Some(Method::Cancel), "6xx ends the search");
    assert_eq!(
        net.statuses(caller()),
        [180],
        "nothing final until a answers too"
    );
    net.receive_message(phone_a(), answer(&cancel, 200, "a-tag"));
    net.receive_message(phone_a(), answer(&invites[0], 487, "a-tag"));
    assert_eq!(
        net.statuses(caller()),
        [603],
        "the 6xx is the best response"
    );
    assert!(matches!(
        net.events.last(),
        Some(CallEvent::Ended {
            cause: EndCause::Unanswered(603),
            ..
        })
    ));
}

#[test]
fn cancel_reaches_every_branch_and_the_callee_487_goes_back() {
    let mut net = setup(&[phone_a(), phone_b()]);
    let text = invite("alice", "bob", "call-5", "z9hG4bKa1", true);
    let invites = call(&mut net, &[phone_a(), phone_b()], "call-5");
    net.receive_message(phone_a(), answer(&invites[0], 180, "a-tag"));
    assert_eq!(net.statuses(caller()), [180]);

    let original = Message::parse(bytes::Bytes::from(text)).unwrap();
    let cancel = Message::parse(bytes::Bytes::from(original.cancel().unwrap())).unwrap();
    net.receive_message(caller(), cancel);
    assert_eq!(net.statuses(caller()), [200], "CANCEL answered at once");
    let cancel_a = net.take(phone_a());
    assert_eq!(cancel_a.method(), Some(Method::Cancel));
    assert!(
        net.nothing_for(phone_b()),
        "b sent nothing yet: its CANCEL waits for a provisional (§9.1)"
    );
    net.receive_message(phone_b(), answer(&invites[1], 180, "b-tag"));
    assert_eq!(net.take(phone_b()).method(), Some(Method::Cancel));
    assert!(net.nothing_for(caller()), "no provisional after a CANCEL");

    net.receive_message(phone_a(), answer(&cancel_a, 200, "a-tag"));
    net.receive_message(phone_a(), answer(&invites[0], 487, "a-tag"));
    net.receive_message(phone_b(), answer(&invites[1], 487, "b-tag"));
    let final_response = net.take(caller());
    assert_eq!(final_response.status(), Some(487));
    assert_eq!(
        final_response.to_tag(),
        Some("a-tag"),
        "the callee's own 487"
    );
    assert!(matches!(
        net.events.last(),
        Some(CallEvent::Ended {
            cause: EndCause::Cancelled,
            ..
        })
    ));
    assert_eq!(net.proxy.contexts(), 0);
}

#[test]
fn a_cancel_crossing_a_200_leaves_an_answered_call() {
    let mut net = setup(&[phone_a()]);
    let text = invite("alice", "bob", "call-6", "z9hG4bKa1", true);
    let forwarded = call(&mut net, &[phone_a()], "call-6").remove(0);
    net.receive_message(phone_a(), answer(&forwarded, 180, "a-tag"));
    assert_eq!(net.statuses(caller()), [180]);
    let original = Message::parse(bytes::Bytes::from(text)).unwrap();
    net.receive_message(
        caller(),
        Message::parse(bytes::Bytes::from(original.cancel().unwrap())).unwrap(),
    );
    assert_eq!(net.statuses(caller()), [200]);
    let cancel = net.take(phone_a());
    // bob answered before the CANCEL reached him.
    net.receive_message(phone_a(), answer(&forwarded, 200, "a-tag"));
    assert_eq!(
        net.statuses(caller()),
        [200],
        "the 2xx is relayed all the same"
    );
    net.receive_message(phone_a(), answer(&cancel, 481, "a-tag"));
    assert!(net.nothing_for(caller()));
    assert!(net
        .events
        .iter()
        .any(|e| matches!(e, CallEvent::Answered { .. })));
}

#[test]
fn timer_c_cancels_a_branch_that_rings_for_ever() {
    let mut net = setup(&[phone_a()]);
    let forwarded = call(&mut net, &[phone_a()], "call-7").remove(0);
    net.receive_message(phone_a(), answer(&forwarded, 180, "a-tag"));
    assert_eq!(net.statuses(caller()), [180]);
    net.advance(Duration::from_secs(120));
    // A provisional restarts Timer C.
    net.receive_message(phone_a(), answer(&forwarded, 183, "a-tag"));
    assert_eq!(net.statuses(caller()), [183]);
    net.advance(Duration::from_secs(184));
    assert!(
        net.nothing_for(phone_a()),
        "Timer C is more than three minutes"
    );
    net.advance(Duration::from_secs(2));
    let cancel = net.take(phone_a());
    assert_eq!(cancel.method(), Some(Method::Cancel));
    net.receive_message(phone_a(), answer(&cancel, 200, "a-tag"));
    net.receive_message(phone_a(), answer(&forwarded, 487, "a-tag"));
    assert_eq!(
        net.statuses(caller()),
        [408],
        "the caller did not cancel: a timeout"
    );
}

#[test]
fn a_branch_that_cannot_be_reached_counts_as_503_and_loses_to_a_4xx() {
    let mut net = setup(&[phone_a(), phone_b()]);
    net.shell.failing_hops.insert(phone_b().to_string(), 503);
    let forwarded = call(&mut net, &[phone_a()], "call-8").remove(0);
    assert!(net.nothing_for(phone_b()));
    net.receive_message(phone_a(), answer(&forwarded, 486, "a-tag"));
    assert_eq!(net.statuses(caller()), [486]);

    // Alone, an unreachable callee's 503 becomes 500 (RFC 3261 §16.7 step 6).
    let mut net = setup(&[phone_b()]);
    net.shell.failing_hops.insert(phone_b().to_string(), 503);
    net.receive(
        caller(),
        &invite("alice", "bob", "call-9", "z9hG4bKa1", true),
    );
    assert_eq!(net.statuses(caller()), [100, 500]);
}

#[test]
fn a_transport_error_on_a_branch_is_a_503() {
    let tcp = FlowId::connection(Transport::Tcp, 5);
    let mut net = setup(&[phone_a(), tcp]);
    net.shell.broken_flows.push(tcp);
    let forwarded = call(&mut net, &[phone_a()], "call-10").remove(0);
    assert!(net.nothing_for(tcp));
    net.receive_message(phone_a(), answer(&forwarded, 480, "a"));
    assert_eq!(net.take(phone_a()).method(), Some(Method::Ack));
    assert_eq!(
        net.statuses(caller()),
        [480],
        "a 4xx beats the failed branch's 503"
    );

    // Alone, the failed branch's 503 is sent as 500 (RFC 3261 §16.7 step 6).
    let mut net = setup(&[tcp]);
    net.shell.broken_flows.push(tcp);
    net.receive(
        caller(),
        &invite("alice", "bob", "call-11", "z9hG4bKa1", true),
    );
    assert_eq!(net.statuses(caller()), [100, 500]);
}

#[test]
fn unknown_unregistered_and_refused_callees() {
    let mut net = setup(&[]);
    net.receive(caller(), &invite("alice", "bob", "c1", "z9hG4bK1", true));
    assert_eq!(net.statuses(caller()), [480], "bob has no registration");
    net.receive(caller(), &invite("alice", "nobody", "c2", "z9hG4bK2", true));
    assert_eq!(net.statuses(caller()), [404]);

    // Another tenant's endpoint does not exist for alice.
    let mut carol = endpoint("carol");
    carol.family_id = 2;
    net.shell.callees.insert(
        "carol".to_owned(),
        sipd_proxy::Callee {
            endpoint: carol,
            registrations: vec![registration("sip:carol@10.0.0.7", phone_b())],
        },
    );
    net.receive(caller(), &invite("alice", "carol", "c3", "z9hG4bK3", true));
    assert_eq!(net.statuses(caller()), [404]);
}

fn refused(net: &mut Net, text: &str) -> Message {
    net.receive(caller(), text);
    net.take(caller())
}

#[test]
fn permissions_are_checked_and_named() {
    let mut net = setup(&[phone_a()]);
    let set = |net: &mut Net, permissions: Permissions| {
        net.shell.users.get_mut("alice").unwrap().permissions = permissions;
    };
    set(&mut net, permissions_without(&[Permission::Voice]));
    let response = refused(&mut net, &invite("alice", "bob", "p1", "z9hG4bK1", true));
    assert_eq!(response.status(), Some(403));
    assert!(String::from_utf8_lossy(response.reason().unwrap()).contains("allow_voice"));

    set(&mut net, permissions_without(&[Permission::Video]));
    let video = format!("{SDP}m=video 4002 RTP/AVP 96\r\n");
    let response = refused(
        &mut net,
        &request("INVITE", "alice", "bob", "p2", "z9hG4bK2", 1, true, &video),
    );
    assert_eq!(response.status(), Some(488));
    let warning =
        String::from_utf8_lossy(response.header(HeaderName::Warning).unwrap()).into_owned();
    assert!(
        warning.starts_with("399 example.com \"") && warning.contains("allow_video"),
        "{warning}"
    );
    // Audio only passes.
    net.receive(
        caller(),
        &request("INVITE", "alice", "bob", "p3", "z9hG4bK3", 1, true, SDP),
    );
    assert_eq!(net.take(caller()).status(), Some(100));
    assert_eq!(net.take(phone_a()).method(), Some(Method::Invite));

    set(&mut net, permissions_without(&[Permission::Message]));
    let response = refused(
        &mut net,
        &request("MESSAGE", "alice", "bob", "p4", "z9hG4bK4", 1, true, ""),
    );
    assert_eq!(response.status(), Some(403));
    assert!(String::from_utf8_lossy(response.reason().unwrap()).contains("allow_message"));

    set(&mut net, permissions_without(&[Permission::SameDomain]));
    let response = refused(&mut net, &invite("alice", "bob", "p5", "z9hG4bK5", true));
    assert_eq!(response.status(), Some(403));
    assert!(String::from_utf8_lossy(response.reason().unwrap()).contains("allow_same_domain"));
}

#[test]
fn numbers_need_a_gateway_and_other_domains_a_permission() {
    let mut net = setup(&[]);
    let response = refused(
        &mut net,
        &invite("alice", "+12025550100", "n1", "z9hG4bK1", true),
    );
    assert_eq!(response.status(), Some(404));
    assert_eq!(response.reason(), Some(&b"No PSTN Gateway Configured"[..]));

    let mut config = config();
    config.pstn_gateway = Some("sip:gw.example.net:5080".to_owned());
    let mut net = Net::with_config(config);
    net.user("alice");
    net.receive(
        caller(),
        &invite("alice", "+12025550100", "n2", "z9hG4bK2", true),
    );
    assert_eq!(net.statuses(caller()), [100]);
    let gateway = FlowId::connection(Transport::Tcp, 999);
    let sent = net.take(gateway);
    assert_eq!(
        sent.request_uri().unwrap().as_str(),
        "sip:+12025550100@gw.example.net:5080"
    );
    net.shell.users.get_mut("alice").unwrap().permissions =
        permissions_without(&[Permission::Phones]);
    let response = refused(
        &mut net,
        &invite("alice", "12025550100", "n3", "z9hG4bK3", true),
    );
    assert_eq!(response.status(), Some(403));
    assert!(String::from_utf8_lossy(response.reason().unwrap()).contains("allow_phones"));

    net.shell.users.get_mut("alice").unwrap().permissions =
        permissions_without(&[Permission::OtherDomains]);
    let text = invite("alice", "bob", "n4", "z9hG4bK4", true).replace(
        "INVITE sip:bob@example.com",
        "INVITE sip:bob@elsewhere.example.org",
    );
    let response = refused(&mut net, &text);
    assert_eq!(response.status(), Some(403));
    assert!(String::from_utf8_lossy(response.reason().unwrap()).contains("allow_other_domains"));
}

#[test]
fn request_validation_483_482_420_416() {
    let mut net = setup(&[phone_a()]);
    let zero = invite("alice", "bob", "v1", "z9hG4bK1", true)
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(refused(&mut net, &zero).status(), Some(483));

    let extension = invite("alice", "bob", "v2", "z9hG4bK2", true).replace(
        "Max-Forwards: 70",
        "Max-Forwards: 70\r\nProxy-Require: foo, bar",
    );
    let response = refused(&mut net, &extension);
    assert_eq!(response.status(), Some(420));
    assert_eq!(
        response.header(HeaderName::Unsupported),
        Some(&b"foo, bar"[..])
    );

    let scheme = invite("alice", "bob", "v3", "z9hG4bK3", true).replace(
        "INVITE sip:bob@example.com",
        "INVITE nobodyKnowsThisScheme:x",
    );
    assert_eq!(refused(&mut net, &scheme).status(), Some(416));

    // A loop: what we forwarded comes back to us unchanged.
    net.receive(caller(), &invite("alice", "bob", "v4", "z9hG4bK4", true));
    assert_eq!(net.take(caller()).status(), Some(100));
    let forwarded = net.take(phone_a());
    let mut looped = String::from_utf8_lossy(forwarded.as_bytes()).into_owned();
    looped = looped.replacen(
        "INVITE sip:bob@10.0.0.9:5060",
        "INVITE sip:bob@example.com",
        1,
    );
    net.receive(phone_a(), &looped);
    assert_eq!(net.take(phone_a()).status(), Some(482));
}

#[test]
fn in_dialog_requests_need_our_route() {
    let mut net = setup(&[phone_a()]);
    let bye = "BYE sip:bob@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n\
               Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>;tag=2\r\n\
               Call-ID: stray\r\nCSeq: 2 BYE\r\nRoute: <sip:192.0.2.10;lr;sdflow=AAAA>\r\nContent-Length: 0\r\n\r\n";
    let response = refused(&mut net, bye);
    assert_eq!(
        response.status(),
        Some(403),
        "a forged token is no way through"
    );
    let no_route = bye.replace("Route: <sip:192.0.2.10;lr;sdflow=AAAA>\r\n", "");
    assert_eq!(refused(&mut net, &no_route).status(), Some(403));
}

#[test]
fn a_wss_browser_and_a_udp_phone_get_two_record_routes() {
    let browser = FlowId::connection(Transport::Wss, 42);
    let mut net = setup(&[browser]);
    let forwarded = call(&mut net, &[browser], "wss-1").remove(0);
    let rr = record_routes(&forwarded);
    assert_eq!(rr.len(), 2, "RFC 5658: one per side");
    assert!(
        rr[0].starts_with("sip:sip.example.com:443;transport=ws;lr;"),
        "the top value faces the browser (advertised): {rr:?}"
    );
    assert!(
        rr[1].starts_with(&format!("sip:{PROXY_IP}:5060;lr;")),
        "{rr:?}"
    );
    assert_eq!(forwarded.vias().next().unwrap().unwrap().transport(), "WSS");

    net.receive_message(browser, answer(&forwarded, 200, "br-tag"));
    let ok = net.take(caller());
    // The browser hangs up: its BYE carries both values, both are removed, and it goes to
    // the phone's UDP flow.
    net.receive(browser, &in_dialog("BYE", &ok, true, "z9hG4bKb1", 2));
    let bye = net.take(caller());
    assert_eq!(bye.routes().count(), 0, "both of our values are removed");
    assert_eq!(bye.vias().next().unwrap().unwrap().transport(), "UDP");
    // And the phone's BYE reaches the browser's connection.
    net.receive_message(caller(), answer(&bye, 200, "x"));
    net.take(browser);
    net.receive(caller(), &in_dialog("BYE", &ok, false, "z9hG4bKb2", 3));
    assert_eq!(net.take(browser).method(), Some(Method::Bye));
}

#[test]
fn message_forks_and_only_the_first_2xx_goes_back() {
    let mut net = setup(&[phone_a(), phone_b()]);
    net.receive(
        caller(),
        &request("MESSAGE", "alice", "bob", "m1", "z9hG4bKm1", 1, true, ""),
    );
    let a = net.take(phone_a());
    let b = net.take(phone_b());
    assert_eq!(a.method(), Some(Method::Message));
    assert!(record_routes(&a).is_empty(), "MESSAGE creates no dialog");
    assert!(net.nothing_for(caller()), "no 100 for a non-INVITE");
    net.receive_message(phone_b(), answer(&b, 200, "b"));
    net.receive_message(phone_a(), answer(&a, 202, "a"));
    assert_eq!(net.statuses(caller()), [200]);
    assert_eq!(net.proxy.contexts(), 0);
}

#[test]
fn options_to_the_server_and_to_a_user() {
    let mut net = setup(&[phone_a()]);
    let ping = request("OPTIONS", "alice", "x", "o1", "z9hG4bKo1", 1, false, "")
        .replace("OPTIONS sip:x@example.com", "OPTIONS sip:example.com");
    let response = refused(&mut net, &ping);
    assert_eq!(response.status(), Some(200));
    assert!(response.header(HeaderName::Allow).is_some());
    net.receive(
        caller(),
        &request("OPTIONS", "alice", "bob", "o2", "z9hG4bKo2", 1, true, ""),
    );
    assert_eq!(net.take(phone_a()).method(), Some(Method::Options));
}

#[test]
fn trusted_peers_reach_local_users_only() {
    let mut config = config();
    config.trusted_peers = vec![sipd_proxy::IpNet::parse("10.0.0.0/24").unwrap()];
    let mut net = Net::with_config(config);
    net.callee(
        "bob",
        vec![registration("sip:bob@10.0.0.9:5060", phone_a())],
    );
    net.receive(caller(), &invite("carrier", "bob", "t1", "z9hG4bK1", false));
    assert_eq!(net.statuses(caller()), [100], "no challenge");
    assert_eq!(net.take(phone_a()).method(), Some(Method::Invite));
    net.receive(
        caller(),
        &invite("carrier", "+4930123456", "t2", "z9hG4bK2", false),
    );
    assert_eq!(net.statuses(caller()), [403]);
}

#[test]
fn lower_q_devices_ring_after_the_first_group_failed() {
    let mut net = Net::new();
    net.user("alice");
    let mut low = registration("sip:bob@10.0.0.8:5060", phone_b());
    low.q = Some(500);
    net.callee(
        "bob",
        vec![low, registration("sip:bob@10.0.0.9:5060", phone_a())],
    );
    let forwarded = call(&mut net, &[phone_a()], "q1").remove(0);
    assert!(net.nothing_for(phone_b()), "q=0.5 waits for the q=1 group");
    net.receive_message(phone_a(), answer(&forwarded, 486, "a"));
    assert_eq!(net.take(phone_a()).method(), Some(Method::Ack));
    let second = net.take(phone_b());
    assert_eq!(second.method(), Some(Method::Invite));
    net.receive_message(phone_b(), answer(&second, 480, "b"));
    assert_eq!(net.statuses(caller()), [480]);
}

#[test]
fn a_dead_outbound_flow_is_430_and_other_dead_flows_480() {
    let mut net = Net::new();
    net.user("alice");
    let tcp = FlowId::connection(Transport::Wss, 3);
    let mut outbound = registration("sip:bob@df7jal23ls0d.invalid;transport=ws;ob", tcp);
    outbound.reg_id = Some(1);
    net.callee("bob", vec![outbound]);
    net.shell.closed_flows.push(tcp);
    net.receive(caller(), &invite("alice", "bob", "d1", "z9hG4bK1", true));
    assert_eq!(net.statuses(caller()), [100, 430]);

    let mut net = Net::new();
    net.user("alice");
    net.callee(
        "bob",
        vec![registration("sip:bob@x.invalid;transport=ws", tcp)],
    );
    net.shell.closed_flows.push(tcp);
    net.receive(caller(), &invite("alice", "bob", "d2", "z9hG4bK1", true));
    assert_eq!(net.statuses(caller()), [100, 480]);
}

#[test]
fn a_late_2xx_retransmission_is_forwarded_statelessly() {
    let mut net = setup(&[phone_a()]);
    let forwarded = call(&mut net, &[phone_a()], "late-1").remove(0);
    let ok = answer(&forwarded, 200, "a-tag");
    net.receive_message(phone_a(), ok.clone());
    assert_eq!(net.statuses(caller()), [200]);
    // After every transaction is gone (Timer L, M: 32 s), bob retransmits his 200.
    net.advance(Duration::from_secs(40));
    assert_eq!(net.proxy.transactions(), 0);
    net.receive_message(phone_a(), ok);
    let (to, relayed) = net.stateless.pop_front().expect("relayed statelessly");
    assert_eq!(to, "10.0.0.1:5060");
    assert_eq!(relayed.status(), Some(200));
    assert_eq!(relayed.vias().count(), 1);
}

#[test]
fn a_ring_timeout_cancels_and_answers_408() {
    let mut net = setup(&[phone_a()]);
    net.shell.answer_at_once = false;
    net.receive(caller(), &invite("alice", "bob", "r1", "z9hG4bK1", true));
    // Authentication answered; the route comes from "an application" with a ring time.
    let authenticate = net.pending.remove(0);
    net.pending.push(authenticate);
    net.answer_pending();
    let locate = net.pending.remove(0);
    let sipd_proxy::Output::Locate { context, .. } = locate else {
        panic!("expected a location lookup, got {locate:?}");
    };
    net.shell.answer_at_once = true;
    net.route(
        context,
        sipd_proxy::RouteDecision::Fork {
            groups: vec![vec![sipd_proxy::Target {
                request_uri: "sip:bob@10.0.0.9:5060".to_owned(),
                route: Vec::new(),
                hop: sipd_proxy::NextHop::Flow {
                    flow: phone_a(),
                    reconnect: None,
                    when_closed: 480,
                },
            }]],
            headers: vec![("X-VH-Test".to_owned(), "1".to_owned())],
            ring_timeout: Some(Duration::from_secs(20)),
        },
    );
    assert_eq!(net.statuses(caller()), [100]);
    let forwarded = net.take(phone_a());
    assert_eq!(
        forwarded.headers_by_name("X-VH-Test").next(),
        Some(&b"1"[..])
    );
    net.receive_message(phone_a(), answer(&forwarded, 180, "a"));
    net.advance(Duration::from_secs(21));
    let cancel = net.take(phone_a());
    assert_eq!(cancel.method(), Some(Method::Cancel));
    net.receive_message(phone_a(), answer(&cancel, 200, "a"));
    net.receive_message(phone_a(), answer(&forwarded, 487, "a"));
    assert_eq!(net.statuses(caller()), [180, 408]);
}

#[test]
fn a_cancel_during_authentication_ends_the_call_at_once() {
    let mut net = setup(&[phone_a()]);
    net.shell.answer_at_once = false;
    let text = invite("alice", "bob", "ca1", "z9hG4bK1", true);
    net.receive(caller(), &text);
    let original = Message::parse(bytes::Bytes::from(text)).unwrap();
    net.receive_message(
        caller(),
        Message::parse(bytes::Bytes::from(original.cancel().unwrap())).unwrap(),
    );
    assert_eq!(net.statuses(caller()), [200, 487]);
    net.answer_pending();
    assert!(
        net.nothing_for(phone_a()),
        "the late authentication does nothing"
    );
    assert_eq!(net.proxy.contexts(), 0);
}

#[test]
fn malformed_requests_get_400_and_register_goes_to_the_registrar() {
    let mut net = setup(&[phone_a()]);
    let text =
        invite("alice", "bob", "x1", "z9hG4bK1", true).replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS");
    net.receive(caller(), &text);
    let response = net.take(caller());
    assert_eq!(response.status(), Some(400));
    assert!(String::from_utf8_lossy(response.reason().unwrap()).contains("CSeq"));
    let register = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKr\r\n\
                    From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\nCall-ID: r\r\n\
                    CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
    net.receive(caller(), register);
    assert_eq!(net.registers.len(), 1);
    assert!(net.nothing_for(caller()));
}

#[test]
fn a_connection_closing_under_a_branch_reopens_it_or_fails_it_at_once() {
    // A TCP phone without RFC 5626: sent again over a new connection to its Contact.
    let tcp = FlowId::connection(Transport::Tcp, 5);
    let mut net = setup(&[]);
    net.callee(
        "bob",
        vec![registration("sip:bob@10.0.0.9:5070;transport=tcp", tcp)],
    );
    let first = call(&mut net, &[tcp], "closed-1").remove(0);
    net.close(tcp);
    let reopened = FlowId::connection(Transport::Tcp, 999);
    let again = net.take(reopened);
    assert_eq!(again.method(), Some(Method::Invite));
    assert_ne!(again.branch(), first.branch(), "a new client transaction");
    net.receive_message(reopened, answer(&again, 200, "b"));
    assert_eq!(net.statuses(caller()), [200]);

    // A browser's WebSocket: it cannot be reopened, so 480 at once, not after Timer B.
    let wss = FlowId::connection(Transport::Wss, 6);
    let mut net = setup(&[wss]);
    call(&mut net, &[wss], "closed-2");
    net.close(wss);
    assert_eq!(net.statuses(caller()), [480]);
}
