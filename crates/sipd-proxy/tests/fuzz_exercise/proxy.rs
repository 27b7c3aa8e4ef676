//! Exercise for the `proxy` fuzz target: arbitrary bytes, cut into SIP messages, played into
//! a `Proxy` from several flows, with a deterministic shell (callers authenticate when they
//! carry credentials, `bob` is registered on two phones, every hop opens) and phones that
//! answer what the proxy sends them. Checks: no panic; everything the proxy puts on the
//! wire parses; and once time has run long enough, every request it was routing is done.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sip_message::framer::{Frame, FramerConfig, StreamFramer};
use sip_message::{FlowId, Message, Method, Transport};
use sipd_proxy::{
    Arrival, AuthRefusal, Callee, HopFailure, Interface, NextHop, NoApplication, Output, Proxy,
    ProxyConfig, Registration,
};
use sipd_registrar::{EndpointInfo, LocalDomain, Permission};

const FLOWS: [&str; 4] = [
    "192.0.2.1:5060",
    "192.0.2.2:5060",
    "192.0.2.3:5060",
    "[2001:db8::4]:5060",
];

fn flow(index: u8) -> FlowId {
    match index % 6 {
        4 => FlowId::connection(Transport::Tcp, 7),
        5 => FlowId::connection(Transport::Wss, 8),
        n => FlowId::udp(FLOWS[usize::from(n)].parse().unwrap()),
    }
}

fn config() -> ProxyConfig {
    let bound = |port: u16| SocketAddr::from(([192, 0, 2, 10], port));
    let interface = |transport, port| Interface {
        transport,
        bound: bound(port),
        advertised: None,
    };
    ProxyConfig {
        local: LocalDomain::new("example.com", &["192.0.2.10".to_owned()]).unwrap(),
        default_ip: "192.0.2.10".parse().unwrap(),
        interfaces: vec![
            interface(Transport::Udp, 5060),
            interface(Transport::Tcp, 5060),
            interface(Transport::Tls, 5061),
            interface(Transport::Wss, 7443),
        ],
        timer_c: Duration::from_secs(185),
        t1: Duration::from_millis(500),
        no_application: NoApplication::Direct,
        trusted_peers: Vec::new(),
        pstn_gateway: Some("sip:gw.example.net".to_owned()),
        secret: b"fuzz".to_vec(),
        shard: 0,
        max_call_duration: Duration::from_secs(600),
    }
}

fn endpoint(username: &str) -> EndpointInfo {
    EndpointInfo {
        endpoint_pk: 1,
        username: username.into(),
        account_id: 1,
        family_id: 1,
        application_id: None,
        permissions: Permission::ALL.into_iter().collect(),
    }
}

/// Plays `data` into a proxy: the first byte steers how phones answer and how time moves.
pub fn proxy(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let mut proxy = Proxy::new(
        sip_transaction::Config::default(),
        config(),
        std::hash::RandomState::new(),
        "fz-".to_owned(),
    )
    .unwrap();
    let mut now = Instant::now();
    let mut framer = StreamFramer::new(FramerConfig::default());
    let mut buffer = BytesMut::from(stream);
    let mut wire: Vec<(FlowId, Message)> = Vec::new();
    let mut index = 0u8;
    loop {
        let message = match framer.next_frame(&mut buffer) {
            Ok(Some(Frame::Message(bytes))) => bytes,
            Ok(Some(Frame::KeepAlivePing)) => continue,
            // The rest as one last datagram.
            Ok(None) | Err(_) => {
                if buffer.is_empty() {
                    break;
                }
                buffer.split().freeze()
            }
        };
        if let Ok(message) = Message::parse(message) {
            let from = flow(control.wrapping_add(index));
            deliver(&mut proxy, from, message, now);
            index = index.wrapping_add(1);
        }
        pump(&mut proxy, &mut wire, control, now);
        // Phones answer some of what they received.
        for (to, request) in std::mem::take(&mut wire) {
            if let Some(answer) = phone_answer(&request, control) {
                deliver(&mut proxy, to, answer, now);
                pump(&mut proxy, &mut wire, control, now);
            }
        }
        wire.clear();
        now += Duration::from_millis(u64::from(control) * 40);
        proxy.handle_timeout(now);
        pump(&mut proxy, &mut wire, control, now);
    }
    // Every timer runs out: nothing may stay.
    for _ in 0..12 {
        now += Duration::from_secs(60);
        proxy.handle_timeout(now);
        pump(&mut proxy, &mut wire, control, now);
        wire.clear();
    }
    assert_eq!(proxy.contexts(), 0, "a request is still being routed");
}

fn deliver(proxy: &mut Proxy, flow: FlowId, message: Message, now: Instant) {
    let remote = flow
        .udp_remote()
        .unwrap_or_else(|| "198.51.100.1:40000".parse().unwrap());
    let arrival = Arrival {
        flow,
        remote,
        local: "192.0.2.10:5060".parse().unwrap(),
    };
    proxy.handle_message(message, arrival, now);
}

/// Does what the shell would, at once.
fn pump(proxy: &mut Proxy, wire: &mut Vec<(FlowId, Message)>, control: u8, now: Instant) {
    while let Some(output) = proxy.poll_output() {
        match output {
            Output::Transmit { flow, payload, .. } => {
                let message = Message::parse(payload).expect("the proxy sends valid SIP");
                wire.push((flow, message));
            }
            Output::Register {
                transaction,
                request,
                ..
            } => {
                let response = Message::parse(request.response(403).to_tag("r").build_bytes())
                    .expect("a response parses");
                proxy.handle_register_response(transaction, response, now);
            }
            Output::Authenticate { context, request } => {
                let result = if request
                    .header(sip_message::HeaderName::ProxyAuthorization)
                    .is_some()
                {
                    Ok(endpoint("alice"))
                } else {
                    let challenge = request.response(407).to_tag("c").build_bytes();
                    Err(AuthRefusal {
                        response: Message::parse(challenge).expect("a response parses"),
                    })
                };
                proxy.handle_authenticated(context, result, now);
            }
            Output::Locate { context, username } => {
                let callee = (username == "bob").then(|| Callee {
                    endpoint: endpoint("bob"),
                    registrations: vec![
                        Registration {
                            contact: "sip:bob@192.0.2.2".to_owned(),
                            q: None,
                            flow: Some(flow(1)),
                            reg_id: None,
                            path: Vec::new(),
                        },
                        Registration {
                            contact: "sip:bob@df7jal23ls0d.invalid;transport=ws".to_owned(),
                            q: Some(500),
                            flow: Some(flow(5)),
                            reg_id: Some(1),
                            path: vec!["<sip:edge.example.com;lr>".to_owned()],
                        },
                    ],
                });
                let result = if control.is_multiple_of(7) {
                    Err(())
                } else {
                    Ok(callee)
                };
                proxy.handle_located(context, result, now);
            }
            Output::OpenHop {
                context,
                branch,
                hop,
            } => {
                let result = match hop {
                    NextHop::Flow { flow, .. } if !control.is_multiple_of(5) => Ok(flow),
                    NextHop::Flow { when_closed, .. } => Err(HopFailure {
                        status: when_closed,
                        reason: "closed".to_owned(),
                    }),
                    NextHop::Uri(_) => Ok(flow(4)),
                };
                proxy.handle_hop(context, branch, result, now);
            }
            Output::SendStateless { message, .. } | Output::SendResponse { message, .. } => {
                Message::parse(message).expect("the proxy sends valid SIP");
            }
            Output::Event(_) => {}
        }
    }
}

/// How a phone answers a request the proxy sent it.
fn phone_answer(request: &Message, control: u8) -> Option<Message> {
    let method = request.method()?;
    if method == Method::Ack {
        return None;
    }
    let status = match (method, control % 4) {
        (Method::Cancel, _) => 200,
        (Method::Invite, 0) => 180,
        (Method::Invite, 1) => 486,
        (_, 2) => 603,
        _ => 200,
    };
    let mut builder = request.response(status).to_tag("phone");
    if status == 200 && method == Method::Invite {
        for value in request.headers_named(sip_message::HeaderName::RecordRoute) {
            builder = builder.header("Record-Route", value);
        }
    }
    Message::parse(Bytes::from(builder.build())).ok()
}
