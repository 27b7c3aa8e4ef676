//! The transaction layer end to end: raw SIP text in, outputs out, virtual clock.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{FlowId, Message, Transport};
use sip_transaction::{
    CancelError, CancelTarget, Config, MessageError, Output, ReceiveError, SendRequestError,
    SendResponseError, TerminationReason, TransactionId, TransactionLayer, TransactionState,
};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

fn udp() -> FlowId {
    FlowId::udp("192.0.2.1:5060".parse::<SocketAddr>().unwrap())
}

fn tcp() -> FlowId {
    FlowId::connection(Transport::Tcp, 1)
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(Config::default()).unwrap()
}

fn parse(text: &str) -> Message {
    Message::parse(Bytes::from(text.replace('\n', "\r\n"))).unwrap()
}

/// A request from 192.0.2.1. `branch` is the whole branch parameter (or `None` for
/// an RFC 2543 Via without one); `to_tag` is added to To when given.
fn request(method: &str, branch: Option<&str>, cseq: u32, to_tag: Option<&str>) -> Message {
    let branch = branch.map(|b| format!(";branch={b}")).unwrap_or_default();
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    parse(&format!(
        "{method} sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060{branch}
Max-Forwards: 70
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>{to_tag}
Call-ID: call-1@192.0.2.1
CSeq: {cseq} {method}
Contact: <sip:alice@192.0.2.1>
Content-Length: 0

"
    ))
}

fn invite(branch: &str) -> Message {
    request("INVITE", Some(branch), 1, None)
}

fn register(branch: &str) -> Message {
    request("REGISTER", Some(branch), 1, None)
}

/// A response to a request sent with `branch` (our Via at the top).
fn response(status: u16, method: &str, branch: &str, to_tag: Option<&str>) -> Message {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    parse(&format!(
        "SIP/2.0 {status} Whatever
Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>{to_tag}
Call-ID: call-1@192.0.2.1
CSeq: 1 {method}
Content-Length: 0

"
    ))
}

fn drain(layer: &mut TransactionLayer) -> Vec<Output> {
    std::iter::from_fn(|| layer.poll_output()).collect()
}

/// The payloads transmitted, as text, ignoring other outputs.
fn sent(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit(t) => Some(String::from_utf8_lossy(&t.payload).into_owned()),
            _ => None,
        })
        .collect()
}

fn start_line(text: &str) -> &str {
    text.split("\r\n").next().unwrap_or_default()
}

fn sent_lines(outputs: &[Output]) -> Vec<String> {
    sent(outputs)
        .iter()
        .map(|t| start_line(t).to_owned())
        .collect()
}

fn termination(output: &Output) -> Option<(TransactionId, TerminationReason)> {
    match output {
        Output::Terminated {
            transaction,
            reason,
        } => Some((*transaction, *reason)),
        _ => None,
    }
}

fn terminated(outputs: &[Output]) -> Option<(TransactionId, TerminationReason)> {
    outputs.iter().find_map(termination)
}

/// Feeds a request and returns the server transaction the TU was given.
fn receive_new(
    layer: &mut TransactionLayer,
    message: Message,
    flow: FlowId,
    now: Instant,
) -> TransactionId {
    layer.handle_message(message, flow, now).unwrap();
    let outputs = drain(layer);
    outputs
        .iter()
        .find_map(|o| match o {
            Output::Request { transaction, .. } => Some(*transaction),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no request for the TU in {outputs:?}"))
}

/// Runs the clock to `until`, stepping through every deadline, collecting outputs
/// with the time they happened (ms after `t0`).
fn run_until(layer: &mut TransactionLayer, t0: Instant, until: Instant) -> Vec<(u128, Output)> {
    let mut log = Vec::new();
    while let Some(deadline) = layer.poll_timeout() {
        if deadline > until {
            break;
        }
        layer.handle_timeout(deadline);
        for output in drain(layer) {
            log.push(((deadline - t0).as_millis(), output));
        }
    }
    log
}

fn transmit_times(log: &[(u128, Output)]) -> Vec<u128> {
    log.iter()
        .filter(|(_, o)| matches!(o, Output::Transmit(_)))
        .map(|(at, _)| *at)
        .collect()
}

// ---------------------------------------------------------------- non-INVITE server

#[test]
fn non_invite_server_absorbs_retransmissions_and_resends_final() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, register("z9hG4bKreg1"), udp(), t0);
    assert_eq!(layer.state(id), Some(TransactionState::Trying));

    // Retransmission before the TU answered: nothing at all.
    layer
        .handle_message(register("z9hG4bKreg1"), udp(), t0 + 500 * MS)
        .unwrap();
    assert!(drain(&mut layer).is_empty());

    layer
        .send_response(
            id,
            response(200, "REGISTER", "z9hG4bKreg1", Some("r1")),
            t0 + SEC,
        )
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(sent_lines(&outputs), ["SIP/2.0 200 Whatever"]);
    let final_response = match &outputs[0] {
        Output::Transmit(t) => {
            assert_eq!(t.flow, udp());
            assert_eq!(t.transaction, id);
            t.payload.clone()
        }
        other => panic!("{other:?}"),
    };
    // Over UDP the transaction is over for the TU at once: a compact record absorbs
    // retransmissions through Timer J and no longer counts as a transaction.
    assert_eq!(
        outputs.get(1).and_then(termination),
        Some((id, TerminationReason::Normal))
    );
    assert_eq!(outputs.len(), 2);
    assert_eq!(layer.state(id), None);
    assert_eq!((layer.len(), layer.completed_len()), (0, 1));
    assert!(!layer.is_empty());

    // Retransmission after the final: the same bytes again, the TU never sees it.
    for at in [2 * SEC, 20 * SEC, 33 * SEC - MS] {
        layer
            .handle_message(register("z9hG4bKreg1"), udp(), t0 + at)
            .unwrap();
        match drain(&mut layer).as_slice() {
            [Output::Transmit(t)] => {
                assert_eq!(t.payload, final_response);
                assert_eq!((t.flow, t.transaction), (udp(), id));
            }
            other => panic!("{other:?}"),
        }
    }

    // A second final finds no transaction.
    assert_eq!(
        layer.send_response(id, response(500, "REGISTER", "z9hG4bKreg1", None), t0),
        Err(SendResponseError::UnknownTransaction)
    );

    // Timer J: 64*T1 after the final; the record goes without a word.
    assert_eq!(layer.poll_timeout(), Some(t0 + SEC + 32 * SEC));
    layer.handle_timeout(t0 + 32 * SEC);
    assert_eq!(layer.completed_len(), 1);
    layer.handle_timeout(t0 + 33 * SEC);
    assert!(drain(&mut layer).is_empty());
    assert!(layer.is_empty());
    assert_eq!(layer.poll_timeout(), None);

    // Now the same request is new again.
    let again = receive_new(&mut layer, register("z9hG4bKreg1"), udp(), t0 + 34 * SEC);
    assert_ne!(again, id);
}

#[test]
fn non_invite_server_provisional_is_resent_on_retransmission() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, register("z9hG4bKreg2"), udp(), t0);
    layer
        .send_response(id, response(100, "REGISTER", "z9hG4bKreg2", None), t0)
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 100 Whatever"]);
    assert_eq!(layer.state(id), Some(TransactionState::Proceeding));
    layer
        .handle_message(register("z9hG4bKreg2"), udp(), t0 + MS)
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 100 Whatever"]);
}

#[test]
fn non_invite_server_over_tcp_terminates_on_final() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, register("z9hG4bKreg3"), tcp(), t0);
    layer
        .send_response(id, response(200, "REGISTER", "z9hG4bKreg3", Some("r")), t0)
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(sent_lines(&outputs), ["SIP/2.0 200 Whatever"]);
    assert_eq!(terminated(&outputs), Some((id, TerminationReason::Normal)));
    // A connection does not lose the request: no record either.
    assert!(layer.is_empty());
    assert_eq!(layer.completed_len(), 0);
}

#[test]
fn same_branch_from_another_sent_by_is_another_transaction() {
    let t0 = Instant::now();
    let mut layer = layer();
    let first = receive_new(&mut layer, register("z9hG4bKsame"), udp(), t0);
    let other_host = parse(
        "REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKsame
From: <sip:alice@example.com>;tag=a1
To: <sip:alice@example.com>
Call-ID: other@198.51.100.7
CSeq: 1 REGISTER
Content-Length: 0

",
    );
    let second = receive_new(&mut layer, other_host, udp(), t0);
    assert_ne!(first, second);
    // Same branch and sent-by but another method: another transaction too.
    let options = receive_new(
        &mut layer,
        request("OPTIONS", Some("z9hG4bKsame"), 2, None),
        udp(),
        t0,
    );
    assert_ne!(options, first);
    assert_eq!(layer.len(), 3);
}

#[test]
fn sent_by_host_compares_case_insensitively() {
    let t0 = Instant::now();
    let mut layer = layer();
    let text = |host: &str| {
        parse(&format!(
            "OPTIONS sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP {host}:5060;branch=z9hG4bKcase
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: case@example.com
CSeq: 1 OPTIONS
Content-Length: 0

"
        ))
    };
    receive_new(&mut layer, text("PC.Example.COM"), udp(), t0);
    layer
        .handle_message(text("pc.example.com"), udp(), t0)
        .unwrap();
    assert!(drain(&mut layer).is_empty());
}

// ---------------------------------------------------------------- INVITE server

#[test]
fn invite_server_sends_trying_after_200ms_and_resends_it() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, invite("z9hG4bKinv1"), udp(), t0);
    assert_eq!(layer.poll_timeout(), Some(t0 + 200 * MS));
    // Retransmission before anything was sent: absorbed silently.
    layer
        .handle_message(invite("z9hG4bKinv1"), udp(), t0 + 100 * MS)
        .unwrap();
    assert!(drain(&mut layer).is_empty());

    layer.handle_timeout(t0 + 200 * MS);
    let outputs = drain(&mut layer);
    let trying = sent(&outputs);
    assert_eq!(trying.len(), 1);
    assert_eq!(start_line(&trying[0]), "SIP/2.0 100 Trying");
    let trying = Message::parse(Bytes::from(trying[0].clone())).unwrap();
    assert_eq!(trying.branch(), Some("z9hG4bKinv1"));
    assert_eq!(trying.call_id().unwrap(), "call-1@192.0.2.1");
    assert_eq!(trying.to_tag(), None, "100 Trying carries no To tag");

    layer
        .handle_message(invite("z9hG4bKinv1"), udp(), t0 + 300 * MS)
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 100 Trying"]);
    assert_eq!(layer.state(id), Some(TransactionState::Proceeding));
}

#[test]
fn invite_server_quick_tu_answer_suppresses_trying() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, invite("z9hG4bKinv2"), udp(), t0);
    layer
        .send_response(
            id,
            response(180, "INVITE", "z9hG4bKinv2", Some("b1")),
            t0 + 50 * MS,
        )
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 180 Whatever"]);
    layer.handle_timeout(t0 + 300 * MS);
    assert!(drain(&mut layer).is_empty());
}

#[test]
fn invite_server_zero_trying_delay_sends_trying_at_once() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Config {
        invite_trying_delay: Duration::ZERO,
        ..Config::default()
    })
    .unwrap();
    layer
        .handle_message(invite("z9hG4bKinv3"), udp(), t0)
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(sent_lines(&outputs), ["SIP/2.0 100 Trying"]);
    assert!(matches!(outputs[1], Output::Request { .. }));
}

#[test]
fn invite_server_failure_retransmits_until_ack_then_absorbs_until_timer_i() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, invite("z9hG4bKinv4"), udp(), t0);
    layer
        .send_response(
            id,
            response(486, "INVITE", "z9hG4bKinv4", Some("b1")),
            t0 + 100 * MS,
        )
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 486 Whatever"]);
    assert_eq!(layer.state(id), Some(TransactionState::Completed));

    // Timer G: 500 ms, 1 s, 2 s, 4 s, capped at T2 = 4 s.
    let log = run_until(&mut layer, t0, t0 + 12 * SEC);
    assert_eq!(transmit_times(&log), [600, 1600, 3600, 7600, 11600]);

    // Retransmitted INVITE: the final again.
    layer
        .handle_message(invite("z9hG4bKinv4"), udp(), t0 + 12 * SEC)
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 486 Whatever"]);

    // ACK for the non-2xx: same branch, absorbed, never for the TU.
    let ack = request("ACK", Some("z9hG4bKinv4"), 1, Some("b1"));
    layer
        .handle_message(ack.clone(), udp(), t0 + 12 * SEC)
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.state(id), Some(TransactionState::Confirmed));
    // No more retransmissions; ACK retransmissions absorbed too.
    layer.handle_message(ack, udp(), t0 + 13 * SEC).unwrap();
    let log = run_until(&mut layer, t0, t0 + 17 * SEC - MS);
    assert!(log.is_empty(), "{log:?}");
    // Timer I = T4 = 5 s.
    let log = run_until(&mut layer, t0, t0 + 17 * SEC);
    assert_eq!(log.len(), 1);
    assert_eq!(
        termination(&log[0].1),
        Some((id, TerminationReason::Normal))
    );
}

#[test]
fn invite_server_without_ack_times_out_with_timer_h() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, invite("z9hG4bKinv5"), udp(), t0);
    layer
        .send_response(id, response(404, "INVITE", "z9hG4bKinv5", Some("b1")), t0)
        .unwrap();
    drain(&mut layer);
    let log = run_until(&mut layer, t0, t0 + 60 * SEC);
    let last = log.last().unwrap();
    assert_eq!(last.0, 32_000);
    assert_eq!(termination(&last.1), Some((id, TerminationReason::Timeout)));
    assert!(layer.is_empty());
}

#[test]
fn invite_server_over_tcp_never_retransmits_and_ack_ends_it() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, invite("z9hG4bKinv6"), tcp(), t0);
    layer
        .send_response(id, response(603, "INVITE", "z9hG4bKinv6", Some("b1")), t0)
        .unwrap();
    drain(&mut layer);
    // Only timer H is pending.
    assert_eq!(layer.poll_timeout(), Some(t0 + 32 * SEC));
    layer
        .handle_message(
            request("ACK", Some("z9hG4bKinv6"), 1, Some("b1")),
            tcp(),
            t0 + SEC,
        )
        .unwrap();
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::Normal))
    );
}

#[test]
fn invite_server_2xx_is_accepted_as_a_record_until_timer_l() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, invite("z9hG4bKinv7"), udp(), t0);
    layer
        .send_response(
            id,
            response(200, "INVITE", "z9hG4bKinv7", Some("b1")),
            t0 + 10 * MS,
        )
        .unwrap();
    // RFC 6026 Accepted, as a compact record: the transaction is reported over at once and
    // counts toward no limit.
    let outputs = drain(&mut layer);
    assert_eq!(sent_lines(&outputs), ["SIP/2.0 200 Whatever"]);
    assert_eq!(terminated(&outputs), Some((id, TerminationReason::Normal)));
    assert_eq!(layer.state(id), None);
    assert_eq!((layer.len(), layer.completed_len()), (0, 1));

    // INVITE retransmission: absorbed, not answered (the TU retransmits 2xx itself, outside
    // the transaction).
    layer
        .handle_message(invite("z9hG4bKinv7"), udp(), t0 + SEC)
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    assert_eq!(
        layer.send_response(
            id,
            response(200, "INVITE", "z9hG4bKinv7", Some("b1")),
            t0 + SEC
        ),
        Err(SendResponseError::UnknownTransaction)
    );

    // A 2xx ACK, with its own branch or (RFC 2543) the INVITE's: straight to the TU.
    for branch in ["z9hG4bKack7", "z9hG4bKinv7"] {
        layer
            .handle_message(
                request("ACK", Some(branch), 1, Some("b1")),
                udp(),
                t0 + 2 * SEC,
            )
            .unwrap();
        assert!(matches!(
            drain(&mut layer).as_slice(),
            [Output::Ack {
                transaction: None,
                ..
            }]
        ));
    }

    // Timer L = 64*T1 after the 2xx: then a retransmission is a new request.
    assert!(run_until(&mut layer, t0, t0 + 60 * SEC).is_empty());
    assert!(layer.is_empty());
    layer
        .handle_message(invite("z9hG4bKinv7"), udp(), t0 + 61 * SEC)
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Request { .. }]
    ));
}

#[test]
fn ack_matching_nothing_goes_to_tu() {
    let t0 = Instant::now();
    let mut layer = layer();
    layer
        .handle_message(request("ACK", Some("z9hG4bKlone"), 1, Some("x")), udp(), t0)
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Ack {
            transaction: None,
            ..
        }]
    ));
    assert!(layer.is_empty());
}

#[test]
fn invite_server_transport_errors() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, invite("z9hG4bKinv8"), tcp(), t0);
    layer
        .send_response(id, response(180, "INVITE", "z9hG4bKinv8", Some("b1")), t0)
        .unwrap();
    drain(&mut layer);
    // RFC 6026: in Proceeding the TU hears of it, the transaction stays.
    layer.handle_transport_error(id);
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::TransportError { transaction }] if *transaction == id
    ));
    assert_eq!(layer.state(id), Some(TransactionState::Proceeding));
    // In Completed it ends the transaction.
    layer
        .send_response(id, response(500, "INVITE", "z9hG4bKinv8", Some("b1")), t0)
        .unwrap();
    drain(&mut layer);
    layer.handle_transport_error(id);
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::TransportError))
    );
    // Later reports for a gone transaction are ignored.
    layer.handle_transport_error(id);
    assert!(drain(&mut layer).is_empty());
}

#[test]
fn non_invite_server_transport_error_terminates() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, register("z9hG4bKreg9"), udp(), t0);
    layer
        .send_response(id, response(100, "REGISTER", "z9hG4bKreg9", None), t0)
        .unwrap();
    drain(&mut layer);
    layer.handle_transport_error(id);
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::TransportError))
    );
    assert!(layer.is_empty());
}

#[test]
fn transport_error_after_the_final_over_udp_leaves_the_record() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, register("z9hG4bKreg10"), udp(), t0);
    layer
        .send_response(id, response(200, "REGISTER", "z9hG4bKreg10", Some("r")), t0)
        .unwrap();
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::Normal))
    );
    // The transaction already reported its end: the late report changes nothing, and
    // the record answers the retransmission that the lost response causes.
    layer.handle_transport_error(id);
    assert!(drain(&mut layer).is_empty());
    layer
        .handle_message(register("z9hG4bKreg10"), udp(), t0 + 500 * MS)
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 200 Whatever"]);
}

// ---------------------------------------------------------------- CANCEL (server)

fn receive_cancel(
    layer: &mut TransactionLayer,
    branch: &str,
    now: Instant,
) -> (TransactionId, CancelTarget) {
    layer
        .handle_message(request("CANCEL", Some(branch), 1, None), udp(), now)
        .unwrap();
    match drain(layer).as_slice() {
        [Output::Cancel {
            transaction,
            target,
            ..
        }] => (*transaction, *target),
        other => panic!("{other:?}"),
    }
}

#[test]
fn cancel_of_pending_invite_is_reported_and_answered_by_tu() {
    let t0 = Instant::now();
    let mut layer = layer();
    let invite_id = receive_new(&mut layer, invite("z9hG4bKc1"), udp(), t0);
    // CANCEL before any provisional went out.
    let (cancel_id, target) = receive_cancel(&mut layer, "z9hG4bKc1", t0 + 50 * MS);
    assert_eq!(target, CancelTarget::Pending(invite_id));
    assert_ne!(cancel_id, invite_id);
    // A retransmitted CANCEL is absorbed by its own transaction.
    layer
        .handle_message(
            request("CANCEL", Some("z9hG4bKc1"), 1, None),
            udp(),
            t0 + 60 * MS,
        )
        .unwrap();
    assert!(drain(&mut layer).is_empty());

    layer
        .send_response(
            cancel_id,
            response(200, "CANCEL", "z9hG4bKc1", Some("b1")),
            t0 + 70 * MS,
        )
        .unwrap();
    layer
        .send_response(
            invite_id,
            response(487, "INVITE", "z9hG4bKc1", Some("b1")),
            t0 + 70 * MS,
        )
        .unwrap();
    assert_eq!(
        sent_lines(&drain(&mut layer)),
        ["SIP/2.0 200 Whatever", "SIP/2.0 487 Whatever"]
    );
    // The ACK for the 487 completes the INVITE transaction.
    layer
        .handle_message(
            request("ACK", Some("z9hG4bKc1"), 1, Some("b1")),
            udp(),
            t0 + 80 * MS,
        )
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.state(invite_id), Some(TransactionState::Confirmed));
}

#[test]
fn cancel_after_final_and_for_unknown_invite() {
    let t0 = Instant::now();
    let mut layer = layer();
    let invite_id = receive_new(&mut layer, invite("z9hG4bKc2"), udp(), t0);
    layer
        .send_response(
            invite_id,
            response(200, "INVITE", "z9hG4bKc2", Some("b1")),
            t0,
        )
        .unwrap();
    drain(&mut layer);
    let (_, target) = receive_cancel(&mut layer, "z9hG4bKc2", t0 + MS);
    assert_eq!(target, CancelTarget::Answered(invite_id));

    // No INVITE with that branch: the TU answers 481.
    let (cancel_id, target) = receive_cancel(&mut layer, "z9hG4bKnothing", t0 + MS);
    assert_eq!(target, CancelTarget::NotFound);
    layer
        .send_response(
            cancel_id,
            response(481, "CANCEL", "z9hG4bKnothing", Some("x")),
            t0,
        )
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 481 Whatever"]);
}

// ---------------------------------------------------------------- RFC 2543 fallback

#[test]
fn rfc2543_requests_match_on_their_fields() {
    let t0 = Instant::now();
    let mut layer = layer();
    let legacy_invite = || request("INVITE", Some("old-style-1"), 1, None);
    let id = receive_new(&mut layer, legacy_invite(), udp(), t0);
    // Identical retransmission: absorbed.
    layer
        .handle_message(legacy_invite(), udp(), t0 + 100 * MS)
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    // Another CSeq is another transaction.
    let other = receive_new(
        &mut layer,
        request("INVITE", Some("old-style-1"), 2, None),
        udp(),
        t0,
    );
    assert_ne!(other, id);

    layer
        .send_response(
            id,
            response(486, "INVITE", "old-style-1", Some("b9")),
            t0 + 200 * MS,
        )
        .unwrap();
    drain(&mut layer);
    // An ACK with a To tag that is not our response's: not ours.
    layer
        .handle_message(
            request("ACK", Some("old-style-1"), 1, Some("zz")),
            udp(),
            t0 + SEC,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Ack {
            transaction: None,
            ..
        }]
    ));
    assert_eq!(layer.state(id), Some(TransactionState::Completed));
    // The ACK carrying our response's To tag matches.
    layer
        .handle_message(
            request("ACK", Some("old-style-1"), 1, Some("b9")),
            udp(),
            t0 + SEC,
        )
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.state(id), Some(TransactionState::Confirmed));
}

#[test]
fn rfc2543_request_without_branch_and_its_cancel() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, request("INVITE", None, 5, None), udp(), t0);
    layer
        .handle_message(request("INVITE", None, 5, None), udp(), t0)
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    layer
        .handle_message(request("CANCEL", None, 5, None), udp(), t0)
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Cancel { target: CancelTarget::Pending(t), .. }] if *t == id
    ));
}

// ---------------------------------------------------------------- completed records

/// Answers a new request with a 200 tagged `tag`; returns its transaction and the bytes
/// that went out, after checking that the transaction reported its end at once.
fn answer_200(
    layer: &mut TransactionLayer,
    request: Message,
    tag: &str,
    now: Instant,
) -> (TransactionId, Bytes) {
    let method = request.method().unwrap().as_str().to_owned();
    let branch = request.branch().unwrap_or_default().to_owned();
    let id = receive_new(layer, request, udp(), now);
    layer
        .send_response(id, response(200, &method, &branch, Some(tag)), now)
        .unwrap();
    match drain(layer).as_slice() {
        [Output::Transmit(t), Output::Terminated {
            transaction,
            reason: TerminationReason::Normal,
        }] if *transaction == id => (id, t.payload.clone()),
        other => panic!("{other:?}"),
    }
}

/// A retransmission absorbed by a record: the bytes it resends.
fn resent(layer: &mut TransactionLayer, request: Message, now: Instant) -> Bytes {
    layer.handle_message(request, udp(), now).unwrap();
    match drain(layer).as_slice() {
        [Output::Transmit(t)] => t.payload.clone(),
        other => panic!("not absorbed: {other:?}"),
    }
}

#[test]
fn completed_records_do_not_count_toward_max_transactions() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Config {
        max_transactions: 10,
        ..Config::default()
    })
    .unwrap();
    // Three times the limit, all answered well within Timer J of the first.
    let mut sent = Vec::new();
    for i in 0..30u32 {
        let (_, bytes) = answer_200(
            &mut layer,
            register(&format!("z9hG4bKmax{i}")),
            &format!("t{i}"),
            t0 + i * 100 * MS,
        );
        sent.push(bytes);
    }
    assert_eq!((layer.len(), layer.completed_len()), (0, 30));
    // Each record still answers its own retransmissions.
    for (i, bytes) in sent.iter().enumerate() {
        let again = resent(
            &mut layer,
            register(&format!("z9hG4bKmax{i}")),
            t0 + 4 * SEC,
        );
        assert_eq!(&again, bytes);
    }
    // Transactions in progress are still bounded.
    for i in 0..10 {
        receive_new(
            &mut layer,
            invite(&format!("z9hG4bKmaxi{i}")),
            udp(),
            t0 + 4 * SEC,
        );
    }
    assert!(matches!(
        layer.handle_message(register("z9hG4bKmax99"), udp(), t0 + 4 * SEC),
        Err(ReceiveError::Overloaded(_))
    ));
    // Records still answer while the table is full.
    let again = resent(&mut layer, register("z9hG4bKmax0"), t0 + 5 * SEC);
    assert_eq!(again, sent[0]);
}

#[test]
fn past_max_completed_the_oldest_record_goes_first() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Config {
        max_completed: 3,
        ..Config::default()
    })
    .unwrap();
    let mut answered = Vec::new();
    for i in 0..4u32 {
        answered.push(answer_200(
            &mut layer,
            register(&format!("z9hG4bKev{i}")),
            &format!("t{i}"),
            t0 + i * SEC,
        ));
    }
    assert_eq!(layer.completed_len(), 3);
    // The oldest record went early: its Timer J is no longer pending, the next one's is.
    assert_eq!(layer.poll_timeout(), Some(t0 + 33 * SEC));
    // Its request's retransmission is new for the TU.
    let again = receive_new(&mut layer, register("z9hG4bKev0"), udp(), t0 + 4 * SEC);
    assert_ne!(again, answered[0].0);
    // The others are still absorbed, each with its own response.
    for (i, (_, bytes)) in answered.iter().enumerate().skip(1) {
        let again = resent(&mut layer, register(&format!("z9hG4bKev{i}")), t0 + 4 * SEC);
        assert_eq!(&again, bytes);
    }
}

#[test]
fn rfc2543_requests_are_absorbed_by_their_record() {
    let t0 = Instant::now();
    let mut layer = layer();
    // No branch at all, and a branch without the magic cookie.
    let no_branch = || request("OPTIONS", None, 3, None);
    let old_branch = || request("OPTIONS", Some("old-style-9"), 4, None);
    let (_, first) = answer_200(&mut layer, no_branch(), "l1", t0);
    let (_, second) = answer_200(&mut layer, old_branch(), "l2", t0);
    assert_eq!(layer.completed_len(), 2);
    assert_eq!(resent(&mut layer, no_branch(), t0 + SEC), first);
    assert_eq!(resent(&mut layer, old_branch(), t0 + SEC), second);
    // Another CSeq is another request.
    receive_new(
        &mut layer,
        request("OPTIONS", None, 5, None),
        udp(),
        t0 + SEC,
    );
}

// ---------------------------------------------------------------- limits and errors

#[test]
fn transaction_limit_refuses_new_server_transactions_only() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Config {
        max_transactions: 2,
        ..Config::default()
    })
    .unwrap();
    let first = receive_new(&mut layer, register("z9hG4bKl1"), tcp(), t0);
    receive_new(&mut layer, register("z9hG4bKl2"), udp(), t0);
    match layer.handle_message(register("z9hG4bKl3"), udp(), t0) {
        Err(ReceiveError::Overloaded(request)) => {
            // Handed back so the caller can answer 503.
            assert_eq!(request.branch(), Some("z9hG4bKl3"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        layer.send_request(register("z9hG4bKl4"), udp(), t0),
        Err(SendRequestError::Overloaded)
    );
    // Existing transactions still absorb retransmissions.
    layer
        .handle_message(register("z9hG4bKl2"), udp(), t0)
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.len(), 2);
    // Once one ends (TCP final), there is room again.
    layer
        .send_response(first, response(200, "REGISTER", "z9hG4bKl1", Some("t")), t0)
        .unwrap();
    drain(&mut layer);
    receive_new(&mut layer, register("z9hG4bKl3"), udp(), t0);
}

#[test]
fn unmatchable_messages_are_refused() {
    let t0 = Instant::now();
    let mut layer = layer();
    let no_via = parse(
        "OPTIONS sip:bob@example.com SIP/2.0
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: novia@example.com
CSeq: 1 OPTIONS
Content-Length: 0

",
    );
    assert!(matches!(
        layer.handle_message(no_via.clone(), udp(), t0),
        Err(ReceiveError::Unmatchable(MessageError::Header(_)))
    ));
    assert!(matches!(
        layer.send_request(no_via, udp(), t0),
        Err(SendRequestError::Unmatchable(MessageError::Header(_)))
    ));
    assert!(layer.is_empty());
}

#[test]
fn send_response_errors() {
    let t0 = Instant::now();
    let mut layer = layer();
    let client = layer
        .send_request(register("z9hG4bKe1"), udp(), t0)
        .unwrap();
    assert_eq!(
        layer.send_response(client, response(200, "REGISTER", "z9hG4bKe1", None), t0),
        Err(SendResponseError::UnknownTransaction)
    );
    let server = receive_new(&mut layer, register("z9hG4bKe2"), udp(), t0);
    // A request is not a response.
    assert_eq!(
        layer.send_response(server, register("z9hG4bKe2"), t0),
        Err(SendResponseError::NotAllowed)
    );
}

// ---------------------------------------------------------------- stateless responses

#[test]
fn stateless_challenge_leaves_nothing_behind() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = receive_new(&mut layer, register("z9hG4bKsl1"), udp(), t0);
    layer
        .send_response_statelessly(
            id,
            response(401, "REGISTER", "z9hG4bKsl1", Some("s1")),
            t0 + MS,
        )
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    match &outputs[0] {
        Output::Transmit(t) => {
            assert_eq!(t.transaction, id);
            assert_eq!(t.flow, udp());
            assert_eq!(
                start_line(&String::from_utf8_lossy(&t.payload)),
                "SIP/2.0 401 Whatever"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        termination(&outputs[1]),
        Some((id, TerminationReason::Normal))
    );
    assert!(layer.is_empty());
    assert_eq!(layer.state(id), None);
    assert_eq!(layer.poll_timeout(), None);

    // Past Timer J nothing fires for it.
    assert!(run_until(&mut layer, t0, t0 + 40 * SEC).is_empty());
    layer.handle_timeout(t0 + 40 * SEC);
    assert!(drain(&mut layer).is_empty());

    // A retransmission of the request is a new transaction for the TU.
    let again = receive_new(&mut layer, register("z9hG4bKsl1"), udp(), t0 + 2 * SEC);
    assert_ne!(again, id);
    assert_eq!(layer.len(), 1);
    // And the TU may now answer it statefully as usual.
    layer
        .send_response(
            again,
            response(200, "REGISTER", "z9hG4bKsl1", Some("s1")),
            t0 + 2 * SEC,
        )
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 200 Whatever"]);
    assert_eq!(layer.completed_len(), 1);
    layer
        .handle_message(register("z9hG4bKsl1"), udp(), t0 + 3 * SEC)
        .unwrap();
    assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 200 Whatever"]);
}

#[test]
fn stateless_response_uses_the_request_flow() {
    let t0 = Instant::now();
    let mut layer = layer();
    let other = FlowId::connection(Transport::Tcp, 2);
    let id = receive_new(&mut layer, register("z9hG4bKsl2"), other, t0);
    layer
        .send_response_statelessly(id, response(401, "REGISTER", "z9hG4bKsl2", None), t0)
        .unwrap();
    let outputs = drain(&mut layer);
    match &outputs[0] {
        Output::Transmit(t) => assert_eq!(t.flow, other),
        output => panic!("{output:?}"),
    }
    assert!(layer.is_empty());
}

#[test]
fn stateless_response_errors() {
    let t0 = Instant::now();
    let mut layer = layer();
    let server = receive_new(&mut layer, register("z9hG4bKsl3"), udp(), t0);

    // Provisional: refused, nothing sent, the transaction stays.
    assert_eq!(
        layer.send_response_statelessly(server, response(100, "REGISTER", "z9hG4bKsl3", None), t0),
        Err(SendResponseError::NotAllowed)
    );
    // Not a response.
    assert_eq!(
        layer.send_response_statelessly(server, register("z9hG4bKsl3"), t0),
        Err(SendResponseError::NotAllowed)
    );
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.state(server), Some(TransactionState::Trying));

    // After a (stateful) final response: a second final is refused (over UDP the
    // transaction is already a completed record).
    let invite_server = receive_new(&mut layer, invite("z9hG4bKsl6"), udp(), t0);
    for server in [server, invite_server] {
        layer
            .send_response(
                server,
                response(486, "REGISTER", "z9hG4bKsl3", Some("t")),
                t0,
            )
            .unwrap();
    }
    drain(&mut layer);
    assert_eq!(
        layer.send_response_statelessly(server, response(401, "REGISTER", "z9hG4bKsl3", None), t0),
        Err(SendResponseError::UnknownTransaction)
    );
    assert_eq!(
        layer.send_response_statelessly(
            invite_server,
            response(401, "INVITE", "z9hG4bKsl6", None),
            t0
        ),
        Err(SendResponseError::NotAllowed)
    );
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.state(server), None);
    assert_eq!(
        layer.state(invite_server),
        Some(TransactionState::Completed)
    );

    // Client transactions and unknown ones.
    let client = layer
        .send_request(register("z9hG4bKsl4"), udp(), t0)
        .unwrap();
    drain(&mut layer);
    assert_eq!(
        layer.send_response_statelessly(client, response(401, "REGISTER", "z9hG4bKsl4", None), t0),
        Err(SendResponseError::UnknownTransaction)
    );
    let gone = receive_new(&mut layer, register("z9hG4bKsl5"), udp(), t0);
    layer
        .send_response_statelessly(gone, response(401, "REGISTER", "z9hG4bKsl5", None), t0)
        .unwrap();
    drain(&mut layer);
    assert_eq!(
        layer.send_response_statelessly(gone, response(401, "REGISTER", "z9hG4bKsl5", None), t0),
        Err(SendResponseError::UnknownTransaction)
    );
    assert_eq!(layer.len(), 2);
}

#[test]
fn stateless_challenges_do_not_fill_the_table() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(Config {
        max_transactions: 1,
        ..Config::default()
    })
    .unwrap();
    for i in 0..10 {
        let branch = format!("z9hG4bKfill{i}");
        let id = receive_new(&mut layer, register(&branch), udp(), t0);
        layer
            .send_response_statelessly(id, response(401, "REGISTER", &branch, None), t0)
            .unwrap();
        drain(&mut layer);
    }
    assert!(layer.is_empty());
}

#[test]
fn config_is_validated() {
    assert!(TransactionLayer::new(Config {
        timers: sip_transaction::Timers {
            t1: Duration::ZERO,
            ..Default::default()
        },
        ..Config::default()
    })
    .is_err());
}

// ---------------------------------------------------------------- non-INVITE client

#[test]
fn non_invite_client_retransmits_with_timer_e_until_timer_f() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer
        .send_request(register("z9hG4bKnc1"), udp(), t0)
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(
        sent_lines(&outputs),
        ["REGISTER sip:bob@example.com SIP/2.0"]
    );
    let log = run_until(&mut layer, t0, t0 + 40 * SEC);
    assert_eq!(
        transmit_times(&log),
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(
        termination(&log.last().unwrap().1),
        Some((id, TerminationReason::Timeout))
    );
    assert_eq!(log.last().unwrap().0, 32_000);
}

#[test]
fn non_invite_client_over_tcp_does_not_retransmit() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer
        .send_request(register("z9hG4bKnc2"), tcp(), t0)
        .unwrap();
    drain(&mut layer);
    let log = run_until(&mut layer, t0, t0 + 40 * SEC);
    assert_eq!(log.len(), 1);
    assert_eq!(
        termination(&log[0].1),
        Some((id, TerminationReason::Timeout))
    );
}

#[test]
fn non_invite_client_delivers_responses_then_absorbs_until_timer_k() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer
        .send_request(register("z9hG4bKnc3"), udp(), t0)
        .unwrap();
    drain(&mut layer);
    layer
        .handle_message(
            response(100, "REGISTER", "z9hG4bKnc3", None),
            udp(),
            t0 + 100 * MS,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Response { transaction, .. }] if *transaction == id
    ));
    assert_eq!(layer.state(id), Some(TransactionState::Proceeding));
    // In Proceeding, timer E fires as armed (T1), then at T2 intervals.
    let log = run_until(&mut layer, t0, t0 + 6 * SEC);
    assert_eq!(transmit_times(&log), [500, 4500]);

    layer
        .handle_message(
            response(200, "REGISTER", "z9hG4bKnc3", Some("r")),
            udp(),
            t0 + 6 * SEC,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Response { .. }]
    ));
    // Retransmitted final: absorbed.
    layer
        .handle_message(
            response(200, "REGISTER", "z9hG4bKnc3", Some("r")),
            udp(),
            t0 + 7 * SEC,
        )
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    // Timer K = T4.
    assert_eq!(layer.poll_timeout(), Some(t0 + 11 * SEC));
    layer.handle_timeout(t0 + 11 * SEC);
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::Normal))
    );
    // A late response now matches nothing.
    layer
        .handle_message(
            response(200, "REGISTER", "z9hG4bKnc3", Some("r")),
            udp(),
            t0 + 12 * SEC,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::StrayResponse { .. }]
    ));
}

#[test]
fn non_invite_client_transport_error_terminates() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer
        .send_request(register("z9hG4bKnc4"), tcp(), t0)
        .unwrap();
    drain(&mut layer);
    layer.handle_transport_error(id);
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::TransportError))
    );
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn client_request_errors() {
    let t0 = Instant::now();
    let mut layer = layer();
    assert_eq!(
        layer.send_request(request("ACK", Some("z9hG4bKa"), 1, Some("t")), udp(), t0),
        Err(SendRequestError::Ack)
    );
    assert_eq!(
        layer.send_request(request("OPTIONS", Some("noCookie"), 1, None), udp(), t0),
        Err(SendRequestError::Unmatchable(MessageError::NoRfc3261Branch))
    );
    layer
        .send_request(register("z9hG4bKdup"), udp(), t0)
        .unwrap();
    assert_eq!(
        layer.send_request(register("z9hG4bKdup"), udp(), t0),
        Err(SendRequestError::DuplicateBranch)
    );
}

#[test]
fn response_with_other_cseq_method_does_not_match() {
    let t0 = Instant::now();
    let mut layer = layer();
    layer
        .send_request(register("z9hG4bKm1"), udp(), t0)
        .unwrap();
    drain(&mut layer);
    layer
        .handle_message(response(200, "OPTIONS", "z9hG4bKm1", None), udp(), t0)
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::StrayResponse { .. }]
    ));
}

// ---------------------------------------------------------------- INVITE client

#[test]
fn invite_client_timer_a_doubles_until_timer_b() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer.send_request(invite("z9hG4bKic1"), udp(), t0).unwrap();
    assert_eq!(
        sent_lines(&drain(&mut layer)),
        ["INVITE sip:bob@example.com SIP/2.0"]
    );
    assert_eq!(layer.state(id), Some(TransactionState::Calling));
    let log = run_until(&mut layer, t0, t0 + 40 * SEC);
    assert_eq!(transmit_times(&log), [500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(
        termination(&log.last().unwrap().1),
        Some((id, TerminationReason::Timeout))
    );
}

#[test]
fn invite_client_over_tcp_does_not_retransmit() {
    let t0 = Instant::now();
    let mut layer = layer();
    layer.send_request(invite("z9hG4bKic2"), tcp(), t0).unwrap();
    drain(&mut layer);
    let log = run_until(&mut layer, t0, t0 + 40 * SEC);
    assert_eq!(transmit_times(&log), Vec::<u128>::new());
    assert_eq!(log.len(), 1);
}

#[test]
fn invite_client_failure_is_acked_and_retransmissions_re_acked() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer.send_request(invite("z9hG4bKic3"), udp(), t0).unwrap();
    drain(&mut layer);
    layer
        .handle_message(
            response(180, "INVITE", "z9hG4bKic3", Some("b1")),
            udp(),
            t0 + 100 * MS,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Response { .. }]
    ));
    // Proceeding: no more retransmissions, no timer B.
    assert_eq!(layer.poll_timeout(), None);

    layer
        .handle_message(
            response(486, "INVITE", "z9hG4bKic3", Some("b1")),
            udp(),
            t0 + SEC,
        )
        .unwrap();
    let outputs = drain(&mut layer);
    let acks = sent(&outputs);
    assert_eq!(acks.len(), 1);
    let ack = Message::parse(Bytes::from(acks[0].clone())).unwrap();
    assert_eq!(start_line(&acks[0]), "ACK sip:bob@example.com SIP/2.0");
    assert_eq!(
        ack.branch(),
        Some("z9hG4bKic3"),
        "same branch as the INVITE"
    );
    assert_eq!(ack.to_tag(), Some("b1"), "To from the response");
    assert_eq!(ack.cseq().unwrap().seq, 1);
    assert_eq!(ack.cseq().unwrap().method.as_str(), "ACK");
    assert!(matches!(outputs.last(), Some(Output::Response { .. })));
    assert_eq!(layer.state(id), Some(TransactionState::Completed));

    // Retransmitted 486: ACK again, the TU does not hear of it.
    layer
        .handle_message(
            response(486, "INVITE", "z9hG4bKic3", Some("b1")),
            udp(),
            t0 + 2 * SEC,
        )
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(sent(&outputs), acks);
    assert_eq!(outputs.len(), 1);

    // Timer D = 32 s.
    assert_eq!(layer.poll_timeout(), Some(t0 + 33 * SEC));
    layer.handle_timeout(t0 + 33 * SEC);
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::Normal))
    );
    layer
        .handle_message(
            response(486, "INVITE", "z9hG4bKic3", Some("b1")),
            udp(),
            t0 + 34 * SEC,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::StrayResponse { .. }]
    ));
}

#[test]
fn invite_client_failure_over_tcp_acks_and_terminates() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer.send_request(invite("z9hG4bKic4"), tcp(), t0).unwrap();
    drain(&mut layer);
    layer
        .handle_message(response(404, "INVITE", "z9hG4bKic4", Some("b1")), tcp(), t0)
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(sent_lines(&outputs), ["ACK sip:bob@example.com SIP/2.0"]);
    assert_eq!(terminated(&outputs), Some((id, TerminationReason::Normal)));
}

#[test]
fn invite_client_2xx_and_retransmissions_go_to_tu_until_timer_m() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer.send_request(invite("z9hG4bKic5"), udp(), t0).unwrap();
    drain(&mut layer);
    layer
        .handle_message(
            response(200, "INVITE", "z9hG4bKic5", Some("b1")),
            udp(),
            t0 + SEC,
        )
        .unwrap();
    // No ACK for a 2xx; RFC 6026 Accepted as a compact record, reported over at once.
    let outputs = drain(&mut layer);
    assert!(sent(&outputs).is_empty(), "no ACK for 2xx");
    assert!(matches!(
        outputs.as_slice(),
        [Output::Response { transaction, .. }, Output::Terminated { .. }] if *transaction == id
    ));
    assert_eq!(layer.state(id), None);
    // A retransmitted 2xx, and a 2xx from another fork: both for the TU, under the
    // transaction; anything else is absorbed.
    for tag in ["b1", "b2"] {
        layer
            .handle_message(
                response(200, "INVITE", "z9hG4bKic5", Some(tag)),
                udp(),
                t0 + 2 * SEC,
            )
            .unwrap();
        assert!(matches!(
            drain(&mut layer).as_slice(),
            [Output::Response { transaction, .. }] if *transaction == id
        ));
    }
    layer
        .handle_message(
            response(486, "INVITE", "z9hG4bKic5", Some("b3")),
            udp(),
            t0 + 2 * SEC,
        )
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    // No INVITE retransmissions; timer M ends the record quietly.
    assert!(run_until(&mut layer, t0, t0 + 60 * SEC).is_empty());
    assert!(layer.is_empty());
    // After timer M a late 2xx is stray (the core forwards or drops it).
    layer
        .handle_message(
            response(200, "INVITE", "z9hG4bKic5", Some("b1")),
            udp(),
            t0 + 61 * SEC,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::StrayResponse { .. }]
    ));
}

#[test]
fn invite_client_transport_error_terminates() {
    let t0 = Instant::now();
    let mut layer = layer();
    let id = layer.send_request(invite("z9hG4bKic6"), udp(), t0).unwrap();
    drain(&mut layer);
    layer.handle_transport_error(id);
    assert_eq!(
        terminated(&drain(&mut layer)),
        Some((id, TerminationReason::TransportError))
    );
    // Its timers are gone too.
    assert_eq!(layer.poll_timeout(), None);
    layer.handle_timeout(t0 + 60 * SEC);
    assert!(drain(&mut layer).is_empty());
}

// ---------------------------------------------------------------- CANCEL (client)

#[test]
fn cancel_waits_for_a_provisional_response() {
    let t0 = Instant::now();
    let mut layer = layer();
    let invite_id = layer.send_request(invite("z9hG4bKcc1"), udp(), t0).unwrap();
    drain(&mut layer);
    assert_eq!(
        layer.cancel(invite_id, t0),
        Err(CancelError::NoProvisionalResponse)
    );

    layer
        .handle_message(
            response(180, "INVITE", "z9hG4bKcc1", Some("b1")),
            udp(),
            t0 + 100 * MS,
        )
        .unwrap();
    drain(&mut layer);
    let cancel_id = layer.cancel(invite_id, t0 + 200 * MS).unwrap();
    assert_ne!(cancel_id, invite_id);
    let outputs = drain(&mut layer);
    let cancels = sent(&outputs);
    assert_eq!(cancels.len(), 1);
    assert_eq!(
        start_line(&cancels[0]),
        "CANCEL sip:bob@example.com SIP/2.0"
    );
    let cancel = Message::parse(Bytes::from(cancels[0].clone())).unwrap();
    assert_eq!(
        cancel.branch(),
        Some("z9hG4bKcc1"),
        "same branch as the INVITE"
    );
    assert_eq!(cancel.cseq().unwrap().seq, 1);
    assert_eq!(cancel.to_tag(), None);
    // Asking twice gives the same CANCEL transaction.
    assert_eq!(layer.cancel(invite_id, t0 + 300 * MS), Ok(cancel_id));
    assert!(drain(&mut layer).is_empty());

    // The CANCEL's 200 and the INVITE's 487 go to their own transactions.
    layer
        .handle_message(
            response(200, "CANCEL", "z9hG4bKcc1", Some("b1")),
            udp(),
            t0 + 400 * MS,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Response { transaction, .. }] if *transaction == cancel_id
    ));
    layer
        .handle_message(
            response(487, "INVITE", "z9hG4bKcc1", Some("b1")),
            udp(),
            t0 + 500 * MS,
        )
        .unwrap();
    let outputs = drain(&mut layer);
    assert_eq!(sent_lines(&outputs), ["ACK sip:bob@example.com SIP/2.0"]);
    assert!(matches!(
        outputs.last(),
        Some(Output::Response { transaction, .. }) if *transaction == invite_id
    ));
    // Too late to cancel now.
    assert_eq!(
        layer.cancel(invite_id, t0 + SEC),
        Err(CancelError::AlreadyAnswered)
    );
}

/// An INVITE as a proxy forwards it: Route set, several Via lines, a body.
fn routed_invite(branch: &str) -> Message {
    parse(&format!(
        "INVITE sip:bob@192.0.2.2:5060 SIP/2.0
Via: SIP/2.0/UDP 198.51.100.1:5060;branch={branch}
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKcaller;received=192.0.2.1
Route: <sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>
Route: <sip:edge3.example.com;lr>
Record-Route: <sip:198.51.100.1;lr>
Max-Forwards: 69
From: \"Alice\" <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: routed@192.0.2.1
CSeq: 7 INVITE
Contact: <sip:alice@192.0.2.1>
Content-Type: application/sdp
Content-Length: 23

v=0
o=- 1 1 IN IP4 x
"
    ))
}

#[test]
fn a_ringing_invite_client_builds_the_same_cancel_and_ack_from_what_it_keeps() {
    let t0 = Instant::now();
    let mut layer = layer();
    let invite = routed_invite("z9hG4bKsk1");
    let id = layer.send_request(invite.clone(), udp(), t0).unwrap();
    drain(&mut layer);
    // The 180 ends the retransmissions: the body and most headers are dropped.
    layer
        .handle_message(
            response(180, "INVITE", "z9hG4bKsk1", Some("b1")),
            udp(),
            t0 + MS,
        )
        .unwrap();
    drain(&mut layer);
    layer.cancel(id, t0 + 2 * MS).unwrap();
    let cancel = sent(&drain(&mut layer));
    assert_eq!(
        cancel,
        [String::from_utf8(invite.cancel().unwrap()).unwrap()]
    );

    let busy = response(486, "INVITE", "z9hG4bKsk1", Some("b1"));
    layer
        .handle_message(busy.clone(), udp(), t0 + 3 * MS)
        .unwrap();
    let ack = sent(&drain(&mut layer));
    assert_eq!(
        ack,
        [String::from_utf8(invite.ack_for(&busy).unwrap()).unwrap()]
    );
    assert!(ack[0].contains("Route: <sip:edge3.example.com;lr>"));
}

#[test]
fn cancel_errors() {
    let t0 = Instant::now();
    let mut layer = layer();
    let register_id = layer
        .send_request(register("z9hG4bKcc2"), udp(), t0)
        .unwrap();
    assert_eq!(
        layer.cancel(register_id, t0),
        Err(CancelError::UnknownTransaction)
    );
    let server = receive_new(&mut layer, invite("z9hG4bKcc3"), udp(), t0);
    assert_eq!(
        layer.cancel(server, t0),
        Err(CancelError::UnknownTransaction)
    );
}

// ---------------------------------------------------------------- timers at scale

#[test]
fn many_transactions_fire_in_deadline_order_and_all_go_away() {
    let t0 = Instant::now();
    let mut layer = layer();
    for i in 0..200u32 {
        let branch = format!("z9hG4bKmany{i}");
        let id = receive_new(&mut layer, invite(&branch), udp(), t0 + i * MS);
        layer
            .send_response(id, response(200, "INVITE", &branch, Some("t")), t0 + i * MS)
            .unwrap();
    }
    // Answered INVITEs live on as records (see invite_server_2xx_is_accepted_…).
    drain(&mut layer);
    assert_eq!((layer.len(), layer.completed_len()), (0, 200));
    let mut expired = Vec::new();
    while let Some(deadline) = layer.poll_timeout() {
        layer.handle_timeout(deadline);
        assert!(drain(&mut layer).is_empty());
        expired.push((deadline - t0, layer.completed_len()));
    }
    // One by one, in deadline order, Timer L after each 2xx.
    assert_eq!(expired.len(), 200);
    assert_eq!(expired[0], (32 * SEC, 199));
    assert!(expired.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(layer.is_empty());
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn completed_records_expire_one_by_one_at_their_timer_j() {
    let t0 = Instant::now();
    let mut layer = layer();
    for i in 0..200u32 {
        let branch = format!("z9hG4bKmany{i}");
        let id = receive_new(&mut layer, register(&branch), udp(), t0 + i * MS);
        layer
            .send_response(
                id,
                response(200, "REGISTER", &branch, Some("t")),
                t0 + i * MS,
            )
            .unwrap();
    }
    drain(&mut layer);
    assert_eq!((layer.len(), layer.completed_len()), (0, 200));
    for i in 0..200u32 {
        let deadline = layer.poll_timeout().unwrap();
        assert_eq!(deadline, t0 + i * MS + 32 * SEC);
        layer.handle_timeout(deadline);
        assert!(drain(&mut layer).is_empty(), "no output for a record");
        assert_eq!(layer.completed_len(), 199 - i as usize);
        // The expired request is new again; the next one is still absorbed.
        if i < 199 {
            layer
                .handle_message(register(&format!("z9hG4bKmany{}", i + 1)), udp(), deadline)
                .unwrap();
            assert_eq!(sent_lines(&drain(&mut layer)), ["SIP/2.0 200 Whatever"]);
        }
    }
    assert!(layer.is_empty());
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn late_handle_timeout_fires_everything_due() {
    let t0 = Instant::now();
    let mut layer = layer();
    layer
        .send_request(register("z9hG4bKlate"), udp(), t0)
        .unwrap();
    drain(&mut layer);
    // Woken only after timer F: one call ends it, without a burst of retransmissions.
    layer.handle_timeout(t0 + 100 * SEC);
    let outputs = drain(&mut layer);
    assert_eq!(sent(&outputs).len(), 0);
    assert!(terminated(&outputs).is_some());
}

#[test]
fn trying_copies_the_timestamp() {
    let t0 = Instant::now();
    let mut layer = layer();
    let stamped = parse(
        "INVITE sip:bob@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKts
From: <sip:alice@example.com>;tag=a1
To: <sip:bob@example.com>
Call-ID: ts@192.0.2.1
CSeq: 1 INVITE
Timestamp: 54.2
Content-Length: 0

",
    );
    receive_new(&mut layer, stamped, udp(), t0);
    layer.handle_timeout(t0 + 200 * MS);
    let trying = sent(&drain(&mut layer));
    let trying = Message::parse(Bytes::from(trying[0].clone())).unwrap();
    assert_eq!(
        trying.header(sip_message::HeaderName::Timestamp),
        Some(&b"54.2"[..])
    );
}

#[test]
fn cancel_crossing_a_2xx_leaves_the_invite_answered() {
    let t0 = Instant::now();
    let mut layer = layer();
    let invite_id = layer.send_request(invite("z9hG4bKx1"), udp(), t0).unwrap();
    layer
        .handle_message(response(180, "INVITE", "z9hG4bKx1", Some("b1")), udp(), t0)
        .unwrap();
    let cancel_id = layer.cancel(invite_id, t0 + MS).unwrap();
    drain(&mut layer);
    // The callee answered before the CANCEL reached it: 200 to the INVITE, and
    // the CANCEL's own 200 (or a 481) comes back separately.
    layer
        .handle_message(
            response(200, "INVITE", "z9hG4bKx1", Some("b1")),
            udp(),
            t0 + 2 * MS,
        )
        .unwrap();
    let outputs = drain(&mut layer);
    assert!(sent(&outputs).is_empty(), "no ACK for a 2xx");
    assert!(matches!(
        outputs.as_slice(),
        [Output::Response { transaction, .. }, Output::Terminated { .. }]
            if *transaction == invite_id
    ));
    // Accepted lives on as a record: the cancelled INVITE's 2xx ended it as a transaction.
    assert_eq!(layer.state(invite_id), None);
    layer
        .handle_message(
            response(481, "CANCEL", "z9hG4bKx1", Some("b1")),
            udp(),
            t0 + 3 * MS,
        )
        .unwrap();
    assert!(matches!(
        drain(&mut layer).as_slice(),
        [Output::Response { transaction, .. }] if *transaction == cancel_id
    ));
    assert_eq!(layer.state(cancel_id), Some(TransactionState::Completed));
}

#[test]
fn rfc2543_reinvite_ack_matches_with_its_to_tag() {
    let t0 = Instant::now();
    let mut layer = layer();
    // A re-INVITE inside a dialog already carries the To tag.
    let reinvite = || request("INVITE", None, 7, Some("b1"));
    let id = receive_new(&mut layer, reinvite(), udp(), t0);
    layer
        .send_response(id, response(488, "INVITE", "unused", Some("b1")), t0)
        .unwrap();
    drain(&mut layer);
    layer
        .handle_message(request("ACK", None, 7, Some("b1")), udp(), t0 + MS)
        .unwrap();
    assert!(drain(&mut layer).is_empty());
    assert_eq!(layer.state(id), Some(TransactionState::Confirmed));
}
