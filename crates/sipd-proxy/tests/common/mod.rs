//! A simulated network around a [`Proxy`]: the test plays the phones, answers the proxy's
//! lookups like the binary's shell would, and reads what the proxy put on each flow. The
//! clock is virtual: time moves only when a test says so.

#![allow(dead_code)] // Each test binary uses its own subset.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{FlowId, HeaderName, Message, Transport};
use sipd_proxy::{
    Arrival, AuthRefusal, CallEvent, Callee, HopFailure, Interface, NextHop, NoApplication, Output,
    Proxy, ProxyConfig, Registration, RouteDecision,
};
use sipd_registrar::{EndpointInfo, Permission, Permissions};

pub const DOMAIN: &str = "example.com";
pub const PROXY_IP: &str = "192.0.2.10";

pub fn udp(addr: &str) -> FlowId {
    FlowId::udp(addr.parse().unwrap())
}

/// Every permission but `denied`.
pub fn permissions_without(denied: &[Permission]) -> Permissions {
    Permission::ALL
        .into_iter()
        .filter(|p| !denied.contains(p))
        .collect()
}

pub fn endpoint(username: &str) -> EndpointInfo {
    EndpointInfo {
        endpoint_pk: username.len() as i64,
        username: username.into(),
        account_id: 1,
        family_id: 1,
        application_id: None,
        permissions: permissions_without(&[]),
    }
}

pub fn registration(contact: &str, flow: FlowId) -> Registration {
    Registration {
        contact: contact.to_owned(),
        q: None,
        flow: Some(flow),
        reg_id: None,
        path: Vec::new(),
    }
}

pub fn config() -> ProxyConfig {
    let bound = |port: u16| format!("{PROXY_IP}:{port}").parse::<SocketAddr>().unwrap();
    ProxyConfig {
        local: sipd_registrar::LocalDomain::new(DOMAIN, &[]).unwrap(),
        default_ip: PROXY_IP.parse().unwrap(),
        interfaces: vec![
            Interface {
                transport: Transport::Udp,
                bound: bound(5060),
                advertised: None,
            },
            Interface {
                transport: Transport::Tcp,
                bound: bound(5060),
                advertised: None,
            },
            Interface {
                transport: Transport::Tls,
                bound: bound(5061),
                advertised: None,
            },
            Interface {
                transport: Transport::Wss,
                bound: bound(7443),
                advertised: Some(("sip.example.com".to_owned(), 443)),
            },
        ],
        timer_c: Duration::from_secs(185),
        t1: Duration::from_millis(500),
        no_application: NoApplication::Direct,
        trusted_peers: Vec::new(),
        pstn_gateway: None,
        secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        shard: 1,
        max_call_duration: Duration::from_secs(14_400),
    }
}

/// What a test made the "shell" answer.
pub struct Shell {
    /// Authentication answer per username in the From header; absent: challenged (407).
    pub users: HashMap<String, EndpointInfo>,
    /// Location answers per username; absent: no such endpoint.
    pub callees: HashMap<String, Callee>,
    /// Hops that fail, by flow or URI, with the status they count as.
    pub failing_hops: HashMap<String, u16>,
    /// Flows that are closed (a hop to one of them fails with its `when_closed`).
    pub closed_flows: Vec<FlowId>,
    /// Flows whose sends fail (the transport reports an error for the transaction).
    pub broken_flows: Vec<FlowId>,
    /// Answer Authenticate/Locate at once (else they wait in `pending`).
    pub answer_at_once: bool,
}

/// The proxy, a virtual clock, and everything it sent.
pub struct Net {
    pub proxy: Proxy,
    pub now: Instant,
    pub shell: Shell,
    /// Messages put on flows, in order, not yet taken by the test.
    pub sent: VecDeque<(FlowId, Message)>,
    /// Stateless sends (ACK for 2xx) and responses, in order.
    pub stateless: VecDeque<(String, Message)>,
    pub events: Vec<CallEvent>,
    pub registers: Vec<Message>,
    /// Lookups waiting for the test (when `answer_at_once` is false).
    pub pending: Vec<Output>,
}

impl Net {
    pub fn new() -> Net {
        Net::with_config(config())
    }

    pub fn with_config(config: ProxyConfig) -> Net {
        Net {
            proxy: Proxy::new(
                sip_transaction::Config::default(),
                config,
                std::hash::RandomState::new(),
                "px-".to_owned(),
            )
            .unwrap(),
            now: Instant::now(),
            shell: Shell {
                users: HashMap::new(),
                callees: HashMap::new(),
                failing_hops: HashMap::new(),
                closed_flows: Vec::new(),
                broken_flows: Vec::new(),
                answer_at_once: true,
            },
            sent: VecDeque::new(),
            stateless: VecDeque::new(),
            events: Vec::new(),
            registers: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// A user whose requests authenticate.
    pub fn user(&mut self, username: &str) {
        self.shell
            .users
            .insert(username.to_owned(), endpoint(username));
    }

    /// A callee endpoint registered at these contacts.
    pub fn callee(&mut self, username: &str, registrations: Vec<Registration>) {
        self.shell.callees.insert(
            username.to_owned(),
            Callee {
                endpoint: endpoint(username),
                registrations,
            },
        );
    }

    /// A message from `flow`.
    pub fn receive(&mut self, flow: FlowId, text: &str) {
        let message = Message::parse(Bytes::from(text.to_owned())).expect("test message parses");
        self.receive_message(flow, message);
    }

    pub fn receive_message(&mut self, flow: FlowId, message: Message) {
        let remote = match flow {
            FlowId::Udp(addr) => addr,
            FlowId::Connection { id, .. } => {
                SocketAddr::from(([198, 51, 100, (id % 250) as u8 + 1], 40_000))
            }
        };
        let local_port = match flow.transport() {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
            Transport::Ws | Transport::Wss => 7443,
        };
        let arrival = Arrival {
            flow,
            remote,
            local: format!("{PROXY_IP}:{local_port}").parse().unwrap(),
        };
        self.proxy.handle_message(message, arrival, self.now);
        self.drain();
    }

    /// A connection closes.
    pub fn close(&mut self, flow: FlowId) {
        self.proxy.handle_flow_closed(flow, self.now);
        self.drain();
    }

    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.proxy.poll_timeout() {
            if at > until {
                break;
            }
            self.now = at.max(self.now);
            self.proxy.handle_timeout(self.now);
            self.drain();
        }
        self.now = until;
    }

    pub fn drain(&mut self) {
        while let Some(output) = self.proxy.poll_output() {
            match output {
                Output::Transmit {
                    flow,
                    payload,
                    transaction,
                } => {
                    if let (true, Some(transaction)) =
                        (self.shell.broken_flows.contains(&flow), transaction)
                    {
                        self.proxy.handle_transport_error(transaction, self.now);
                        continue;
                    }
                    let message =
                        Message::parse(payload).expect("the proxy sends parsable messages");
                    self.sent.push_back((flow, message));
                }
                Output::Register { request, .. } => self.registers.push(request),
                Output::Event(event) => self.events.push(event),
                Output::SendStateless { hop, message } => {
                    let to = match hop {
                        NextHop::Flow { flow, .. } => flow.to_string(),
                        NextHop::Uri(uri) => uri,
                    };
                    self.stateless
                        .push_back((to, Message::parse(message).unwrap()));
                }
                Output::SendResponse { addr, message, .. } => self
                    .stateless
                    .push_back((addr.to_string(), Message::parse(message).unwrap())),
                lookup @ (Output::Authenticate { .. }
                | Output::Locate { .. }
                | Output::OpenHop { .. }) => {
                    if self.shell.answer_at_once {
                        self.answer(lookup);
                    } else {
                        self.pending.push(lookup);
                    }
                }
            }
        }
    }

    /// Answers every lookup that waits.
    pub fn answer_pending(&mut self) {
        for lookup in std::mem::take(&mut self.pending) {
            self.answer(lookup);
        }
        self.drain();
    }

    fn answer(&mut self, lookup: Output) {
        let now = self.now;
        match lookup {
            Output::Authenticate { context, request } => {
                let user = request
                    .from()
                    .ok()
                    .and_then(|f| f.uri().as_sip().and_then(|s| s.user()).map(str::to_owned))
                    .unwrap_or_default();
                let has_credentials = request.header(HeaderName::ProxyAuthorization).is_some();
                let result = match self.shell.users.get(&user) {
                    Some(endpoint) if has_credentials => Ok(endpoint.clone()),
                    _ => {
                        let challenge = request
                            .response(407)
                            .to_tag("challenge")
                            .header(
                                "Proxy-Authenticate",
                                format!("Digest realm=\"{DOMAIN}\", nonce=\"n\", qop=\"auth\""),
                            )
                            .build_bytes();
                        Err(AuthRefusal {
                            response: Message::parse(challenge).unwrap(),
                        })
                    }
                };
                self.proxy.handle_authenticated(context, result, now);
            }
            Output::Locate { context, username } => {
                let callee = self.shell.callees.get(&username).cloned();
                self.proxy.handle_located(context, Ok(callee), now);
            }
            Output::OpenHop {
                context,
                branch,
                hop,
            } => {
                let result = match &hop {
                    NextHop::Flow {
                        flow, when_closed, ..
                    } => {
                        if let Some(status) = self.shell.failing_hops.get(&flow.to_string()) {
                            Err(HopFailure {
                                status: *status,
                                reason: "test".to_owned(),
                            })
                        } else if self.shell.closed_flows.contains(flow) {
                            Err(HopFailure {
                                status: *when_closed,
                                reason: "flow closed".to_owned(),
                            })
                        } else {
                            Ok(*flow)
                        }
                    }
                    NextHop::Uri(uri) => match self.shell.failing_hops.get(uri) {
                        Some(status) => Err(HopFailure {
                            status: *status,
                            reason: "test".to_owned(),
                        }),
                        None => Ok(FlowId::connection(Transport::Tcp, 999)),
                    },
                };
                self.proxy.handle_hop(context, branch, result, now);
            }
            _ => {}
        }
        self.drain();
    }

    /// The next message the proxy sent to `flow`; fails if there is none.
    pub fn take(&mut self, flow: FlowId) -> Message {
        let index = self
            .sent
            .iter()
            .position(|(f, _)| *f == flow)
            .unwrap_or_else(|| panic!("nothing sent to {flow}; sent: {:?}", self.summary()));
        self.sent.remove(index).unwrap().1
    }

    /// Whether nothing (more) was sent to `flow`.
    pub fn nothing_for(&self, flow: FlowId) -> bool {
        !self.sent.iter().any(|(f, _)| *f == flow)
    }

    /// What was sent, as "flow: first line" strings, for failure messages.
    pub fn summary(&self) -> Vec<String> {
        self.sent
            .iter()
            .map(|(flow, m)| {
                let text = String::from_utf8_lossy(m.as_bytes()).into_owned();
                format!("{flow}: {}", text.lines().next().unwrap_or_default())
            })
            .collect()
    }

    /// Statuses of the responses sent to `flow` (consumed).
    pub fn statuses(&mut self, flow: FlowId) -> Vec<u16> {
        let mut statuses = Vec::new();
        while let Some(index) = self.sent.iter().position(|(f, _)| *f == flow) {
            if let Some((_, message)) = self.sent.remove(index) {
                statuses.push(message.status().unwrap_or(0));
            }
        }
        statuses
    }

    pub fn route(&mut self, context: sipd_proxy::ContextId, decision: RouteDecision) {
        self.proxy.handle_route(context, decision, self.now);
        self.drain();
    }
}

/// An INVITE from `from` to `to` (user parts), with credentials when `auth` is true.
pub fn invite(from: &str, to: &str, call_id: &str, branch: &str, auth: bool) -> String {
    request("INVITE", from, to, call_id, branch, 1, auth, "")
}

/// A request with the usual headers. `body` non-empty: an SDP offer.
#[allow(clippy::too_many_arguments)]
pub fn request(
    method: &str,
    from: &str,
    to: &str,
    call_id: &str,
    branch: &str,
    cseq: u32,
    auth: bool,
    body: &str,
) -> String {
    let mut text = format!(
        "{method} sip:{to}@{DOMAIN} SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{from}@{DOMAIN}>;tag={from}-tag\r\n\
         To: <sip:{to}@{DOMAIN}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:{from}@10.0.0.1:5060>\r\n"
    );
    if auth {
        text.push_str(&format!(
            "Proxy-Authorization: Digest username=\"{from}\", realm=\"{DOMAIN}\", nonce=\"n\", uri=\"sip:{to}@{DOMAIN}\", response=\"00\", qop=auth, nc=00000001, cnonce=\"c\"\r\n"
        ));
    }
    if body.is_empty() {
        text.push_str("Content-Length: 0\r\n\r\n");
    } else {
        text.push_str(&format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    }
    text
}

/// A response to `request` (as the proxy forwarded it) with this status and To tag.
pub fn answer(request: &Message, status: u16, to_tag: &str) -> Message {
    let mut builder = request.response(status).to_tag(to_tag);
    if status / 100 == 2 && request.method() == Some(sip_message::Method::Invite) {
        builder = builder.header("Contact", "<sip:callee@10.0.0.9:5060>");
        for rr in request.headers_named(HeaderName::RecordRoute) {
            builder = builder.header("Record-Route", rr);
        }
    }
    Message::parse(builder.build_bytes()).unwrap()
}

/// The ACK a UAC sends for a non-2xx final response to its INVITE.
pub fn ack_for(invite_text: &str, response: &Message) -> Message {
    let invite = Message::parse(Bytes::from(invite_text.to_owned())).unwrap();
    Message::parse(Bytes::from(invite.ack_for(response).unwrap())).unwrap()
}

/// The Record-Route values of a message, in order.
pub fn record_routes(message: &Message) -> Vec<String> {
    message
        .record_routes()
        .map(|r| r.unwrap().uri().as_str().to_owned())
        .collect()
}

/// An in-dialog request from the side that received `ok` (the callee, `from_callee` true) or
/// sent the INVITE, following the route set of `ok`.
pub fn in_dialog(method: &str, ok: &Message, from_callee: bool, branch: &str, cseq: u32) -> String {
    let mut routes: Vec<String> = ok
        .headers_named(HeaderName::RecordRoute)
        .flat_map(|v| {
            String::from_utf8_lossy(v)
                .split(", ")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    if !from_callee {
        routes.reverse();
    }
    let from = ok.from().unwrap();
    let to = ok.to().unwrap();
    let (from_hdr, to_hdr, target) = if from_callee {
        (
            String::from_utf8_lossy(to.as_bytes()).into_owned(),
            String::from_utf8_lossy(from.as_bytes()).into_owned(),
            "sip:caller@10.0.0.1:5060".to_owned(),
        )
    } else {
        (
            String::from_utf8_lossy(from.as_bytes()).into_owned(),
            String::from_utf8_lossy(to.as_bytes()).into_owned(),
            "sip:callee@10.0.0.9:5060".to_owned(),
        )
    };
    let mut text = format!(
        "{method} {target} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.{}:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: {from_hdr}\r\nTo: {to_hdr}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
        if from_callee { 9 } else { 1 },
        ok.call_id().unwrap()
    );
    for route in routes {
        text.push_str(&format!("Route: {route}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    text
}
