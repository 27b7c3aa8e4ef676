//! The proxy core: RFC 3261 §16 as a state machine over server and client transactions.
//! See the crate docs for the drive loop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip_message::{FlowId, HeaderName, Message, Method, Transport, Uri};
use sip_transaction::{CancelTarget, TerminationReason, TransactionId};

use crate::branch::Branches;
use crate::config::{NoApplication, ProxyConfig};
use crate::events::{Call, CallEvent, Dialogs, EndCause, Party};
use crate::record_route::{self, DialogFlows, FlowTokens, Sender};
use crate::request::{self, Destination, Refusal};
use crate::route::{strip_angle, targets_by_q, Callee, NextHop, RouteDecision, Target};
use sipd_registrar::{EndpointInfo, Permission};

/// Where a request arrived: its flow, the peer's address and the local address it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub flow: FlowId,
    pub remote: SocketAddr,
    pub local: SocketAddr,
}

/// Names one request the core is routing, for the answers to its [`Action`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextId(u64);

/// One branch of a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BranchId(u32);

/// Why a next hop could not be reached: the response the branch counts as (503 for a
/// connection or resolution failure, RFC 3261 §16.9; 430 or 480 for a device's closed flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopFailure {
    pub status: u16,
    pub reason: String,
}

/// Why authentication did not let a request through: the response to send. Challenges
/// (401/407) go out statelessly, like the registrar's.
#[derive(Debug, Clone)]
pub struct AuthRefusal {
    pub response: Message,
}

/// What the caller of the core must do next, from [`ProxyCore::poll_output`].
#[derive(Debug, Clone)]
pub enum Action {
    /// Send a response through this server transaction (`TransactionLayer::send_response`).
    Respond {
        transaction: TransactionId,
        response: Message,
    },
    /// Send this final response and forget the server transaction
    /// (`TransactionLayer::send_response_statelessly`): Digest challenges.
    RespondStatelessly {
        transaction: TransactionId,
        response: Message,
    },
    /// Check the request's Proxy-Authorization; answer with
    /// [`ProxyCore::handle_authenticated`].
    Authenticate {
        context: ContextId,
        request: Message,
    },
    /// Find the endpoint `username` and its live registrations; answer with
    /// [`ProxyCore::handle_located`].
    Locate {
        context: ContextId,
        username: String,
    },
    /// Get a flow to this next hop (check the flow is open; else connect, resolving a URI per
    /// RFC 3263); answer with [`ProxyCore::handle_hop`].
    OpenHop {
        context: ContextId,
        branch: BranchId,
        hop: NextHop,
    },
    /// Start a client transaction with `request` over `flow`
    /// (`TransactionLayer::send_request`); answer with [`ProxyCore::client_started`] or
    /// [`ProxyCore::client_failed`].
    SendRequest {
        context: ContextId,
        branch: BranchId,
        request: Message,
        flow: FlowId,
    },
    /// CANCEL this client INVITE transaction (`TransactionLayer::cancel`).
    Cancel { transaction: TransactionId },
    /// Send a request outside any transaction (an ACK for a 2xx, RFC 3261 §16.11) to this
    /// hop, opening it like [`Action::OpenHop`]; a failure is only logged.
    SendStateless { hop: NextHop, message: Bytes },
    /// Send a response outside any transaction (a 2xx retransmission whose transactions are
    /// gone) to the address its Via names.
    SendResponse {
        transport: Transport,
        addr: SocketAddr,
        message: Bytes,
    },
    /// Something happened to a call.
    Event(CallEvent),
}

/// Methods the server itself answers (requests addressed to it rather than to a user).
const SERVER_ALLOW: &str = "REGISTER, OPTIONS";

/// Methods of RFC 3261 and its common extensions: known, so a request for the server itself
/// gets 405 rather than 501.
const KNOWN_METHODS: [&str; 14] = [
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "PUBLISH",
    "INFO",
    "REFER",
    "MESSAGE",
    "UPDATE",
];

/// The branch number of a context-wide timer (the ring timeout).
const RING_TIMER: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Authenticating,
    Locating,
    Forwarding,
}

/// Where an out-of-dialog request is going, once its Route set is read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Goal {
    Destination(Destination),
    /// The sender chose the next hop with a Route value beyond ours.
    Routed(String),
    /// An in-dialog request of a dialog we record-routed.
    Dialog {
        flows: DialogFlows,
        sender: Sender,
    },
}

#[derive(Debug)]
enum BranchState {
    /// Waiting for [`ProxyCore::handle_hop`].
    Opening,
    /// Waiting for [`ProxyCore::client_started`].
    Starting,
    /// Its client transaction runs.
    Pending(TransactionId),
    Done,
}

#[derive(Debug)]
struct Branch {
    target: Target,
    state: BranchState,
    provisional: bool,
    /// A CANCEL is wanted (sent when the first provisional response arrives).
    cancel_wanted: bool,
    cancel_sent: bool,
    /// Timer C fired: its 487 counts as a timeout (408), not as the caller's cancel.
    expired: bool,
    /// Timer C, or how long a cancelled branch may take to answer.
    deadline: Option<Instant>,
    /// The flow its request left on.
    flow: Option<FlowId>,
    /// Its flow closed before any answer and it was sent again over a new connection.
    reopened: bool,
}

/// A final response candidate (RFC 3261 §16.7 step 6).
#[derive(Debug)]
enum Final {
    Received(Message),
    Generated { status: u16, reason: String },
}

impl Final {
    fn status(&self) -> u16 {
        match self {
            Final::Received(response) => response.status().unwrap_or(500),
            Final::Generated { status, .. } => *status,
        }
    }
}

/// The response context of one proxied request (RFC 3261 §16.2).
#[derive(Debug)]
struct Context {
    server: Option<TransactionId>,
    request: Message,
    arrival: Arrival,
    invite: bool,
    stage: Stage,
    goal: Goal,
    loop_hash: u64,
    /// Our own Route values at the top of the request, removed when forwarding.
    own_routes: usize,
    caller: Option<EndpointInfo>,
    branches: Vec<Branch>,
    groups: VecDeque<Vec<Target>>,
    headers: Vec<(String, String)>,
    ring_deadline: Option<Instant>,
    finals: Vec<Final>,
    final_sent: bool,
    cancelled: bool,
    timed_out: bool,
    /// The call this INVITE is (initial INVITEs that get forwarded).
    call: Option<Call>,
}

/// The RFC 3261 §16 proxy core of one shard. Sans-IO: fed transaction-layer outputs, the
/// answers to its own requests and the time; drained of [`Action`]s.
pub struct ProxyCore {
    config: ProxyConfig,
    tokens: FlowTokens,
    branches: Branches,
    contexts: HashMap<ContextId, Context>,
    by_server: HashMap<TransactionId, ContextId>,
    by_client: HashMap<TransactionId, (ContextId, u32)>,
    /// The branches of live contexts sent over each connection, to act when it closes.
    on_connections: HashMap<FlowId, Vec<(ContextId, u32)>>,
    timers: BinaryHeap<Reverse<(Instant, ContextId, u32)>>,
    dialogs: Dialogs,
    outputs: VecDeque<Action>,
    next_context: u64,
    next_tag: u64,
    tag_prefix: String,
}

impl ProxyCore {
    /// A core for `config`. `hasher` must be shared (cloned) by every shard of the process,
    /// so a looping request is recognised whichever shard it comes back to; `tag_prefix`
    /// starts the To tags this core generates (unique per node and shard).
    pub fn new(config: ProxyConfig, hasher: std::hash::RandomState, tag_prefix: String) -> Self {
        ProxyCore {
            tokens: FlowTokens::new(&config.secret),
            branches: Branches::new(config.shard, hasher),
            config,
            contexts: HashMap::new(),
            by_server: HashMap::new(),
            by_client: HashMap::new(),
            on_connections: HashMap::new(),
            timers: BinaryHeap::new(),
            dialogs: Dialogs::default(),
            outputs: VecDeque::new(),
            next_context: 0,
            next_tag: 0,
            tag_prefix,
        }
    }

    /// Requests being routed.
    pub fn contexts(&self) -> usize {
        self.contexts.len()
    }

    /// Answered calls waiting for their BYE.
    pub fn calls_in_progress(&self) -> usize {
        self.dialogs.len()
    }

    /// The next thing to do, if any. Call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Action> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, context, branch))) = self.timers.peek() {
            if self.timer_is_live(at, context, branch) {
                return Some(match self.dialogs.next_deadline() {
                    Some(dialog) => dialog.min(at),
                    None => at,
                });
            }
            self.timers.pop();
        }
        self.dialogs.next_deadline()
    }

    fn timer_is_live(&self, at: Instant, context: ContextId, branch: u32) -> bool {
        let Some(ctx) = self.contexts.get(&context) else {
            return false;
        };
        if branch == RING_TIMER {
            return ctx.ring_deadline == Some(at);
        }
        ctx.branches
            .get(branch as usize)
            .is_some_and(|b| b.deadline == Some(at))
    }

    fn schedule(&mut self, at: Instant, context: ContextId, branch: u32) {
        self.timers.push(Reverse((at, context, branch)));
    }

    /// A new request (not ACK, CANCEL or REGISTER) on server transaction `transaction`.
    pub fn handle_request(
        &mut self,
        transaction: TransactionId,
        request: Message,
        arrival: Arrival,
        now: Instant,
    ) {
        if let Err(refusal) = request::check_scheme(&request) {
            return self.refuse_new(transaction, &request, refusal);
        }
        let in_dialog = request.to_tag().is_some();
        let own_routes = if in_dialog {
            0
        } else {
            self.own_plain_routes(&request, arrival)
        };
        if !in_dialog && own_routes == request.routes().count() {
            let destination = request::destination(&request, &self.config, arrival.local.ip());
            if destination == Destination::Server {
                return self.answer_for_server(transaction, &request);
            }
        }
        if let Err(refusal) = request::check_max_forwards(&request) {
            return self.refuse_new(transaction, &request, refusal);
        }
        let loop_hash = self.branches.loop_hash(&request);
        if self.branches.has_looped(&request, loop_hash) {
            return self.refuse_new(transaction, &request, Refusal::new(482));
        }
        if let Err(refusal) = request::check_proxy_require(&request) {
            return self.refuse_new(transaction, &request, refusal);
        }
        let (goal, own_routes) = if in_dialog {
            match self.dialog_route(&request, arrival) {
                Some((flows, sender, count)) => (Goal::Dialog { flows, sender }, count),
                None => {
                    return self.refuse_new(
                        transaction,
                        &request,
                        Refusal::because(403, "Not Routed Through This Proxy"),
                    )
                }
            }
        } else {
            let next_route = request.routes().nth(own_routes).and_then(|r| {
                r.ok()
                    .map(|route| strip_angle(route.uri().as_str()).to_owned())
            });
            let goal = match next_route {
                Some(route) => Goal::Routed(route),
                None => Goal::Destination(request::destination(
                    &request,
                    &self.config,
                    arrival.local.ip(),
                )),
            };
            (goal, own_routes)
        };
        let invite = request.method() == Some(Method::Invite);
        let id = ContextId(self.next_context);
        self.next_context += 1;
        let context = Context {
            server: Some(transaction),
            request,
            arrival,
            invite,
            stage: Stage::Authenticating,
            goal,
            loop_hash,
            own_routes,
            caller: None,
            branches: Vec::new(),
            groups: VecDeque::new(),
            headers: Vec::new(),
            ring_deadline: None,
            finals: Vec::new(),
            final_sent: false,
            cancelled: false,
            timed_out: false,
            call: None,
        };
        self.by_server.insert(transaction, id);
        let trusted = self
            .config
            .trusted_peers
            .iter()
            .any(|net| net.contains(arrival.remote.ip()));
        match &context.goal {
            Goal::Dialog { .. } => {
                self.contexts.insert(id, context);
                self.forward_in_dialog(id, now);
            }
            _ if trusted => {
                self.contexts.insert(id, context);
                self.route_caller(id, None, now);
            }
            _ => {
                self.outputs.push_back(Action::Authenticate {
                    context: id,
                    request: context.request.clone(),
                });
                self.contexts.insert(id, context);
            }
        }
    }

    /// The answer to [`Action::Authenticate`]: the authenticated caller, or the response.
    pub fn handle_authenticated(
        &mut self,
        context: ContextId,
        result: Result<EndpointInfo, AuthRefusal>,
        now: Instant,
    ) {
        let Some(ctx) = self.contexts.get(&context) else {
            return;
        };
        if ctx.stage != Stage::Authenticating {
            return;
        }
        match result {
            Ok(caller) => self.route_caller(context, Some(caller), now),
            Err(AuthRefusal { response }) => {
                let challenge = matches!(response.status(), Some(401 | 407));
                if let Some(ctx) = self.remove_context(context) {
                    if let Some(transaction) = ctx.server {
                        self.outputs.push_back(if challenge {
                            Action::RespondStatelessly {
                                transaction,
                                response,
                            }
                        } else {
                            Action::Respond {
                                transaction,
                                response,
                            }
                        });
                    }
                }
            }
        }
    }

    /// The answer to [`Action::Locate`]: the endpoint and its registrations, `None` for no
    /// such endpoint, `Err` when the location service could not be read.
    pub fn handle_located(
        &mut self,
        context: ContextId,
        result: Result<Option<Callee>, ()>,
        now: Instant,
    ) {
        let Some(ctx) = self.contexts.get(&context) else {
            return;
        };
        if ctx.stage != Stage::Locating {
            return;
        }
        let Goal::Destination(Destination::LocalUser(user)) = &ctx.goal else {
            return;
        };
        let decision = match result {
            Err(()) => RouteDecision::Reject {
                status: 503,
                reason: Some("Location Service Unavailable".to_owned()),
                warning: None,
            },
            Ok(None) => match request::as_number(user) {
                Some(number) => return self.route_number(context, number, now),
                None => RouteDecision::reject(404, "Not Found"),
            },
            Ok(Some(callee)) => self.decide_local(ctx.caller.as_ref(), callee),
        };
        self.handle_route(context, decision, now);
    }

    fn decide_local(&self, caller: Option<&EndpointInfo>, callee: Callee) -> RouteDecision {
        if let Some(caller) = caller {
            // Another tenant's endpoint is not visible: the same answer as no endpoint.
            if callee.endpoint.family_id != caller.family_id {
                return RouteDecision::reject(404, "Not Found");
            }
            if !caller.permissions.allows(Permission::SameDomain) {
                return forbidden(Permission::SameDomain);
            }
        }
        if callee.registrations.is_empty() {
            return RouteDecision::reject(480, "Temporarily Unavailable");
        }
        RouteDecision::Fork {
            groups: targets_by_q(&callee.registrations),
            headers: Vec::new(),
            ring_timeout: None,
        }
    }

    /// Executes a routing decision for a request waiting for one (after authentication and
    /// location; an application's answer will come here too).
    pub fn handle_route(&mut self, context: ContextId, decision: RouteDecision, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        if ctx.stage == Stage::Forwarding || ctx.final_sent {
            return;
        }
        match decision {
            RouteDecision::Reject {
                status,
                reason,
                warning,
            } => {
                let mut headers = Vec::new();
                if let Some(warning) = warning {
                    headers.push(("Warning", self.warning(&warning)));
                }
                self.finish_generated(context, status, reason.as_deref(), headers, now);
            }
            RouteDecision::Fork {
                groups,
                headers,
                ring_timeout,
            } => {
                ctx.stage = Stage::Forwarding;
                ctx.groups = groups.into();
                ctx.headers = headers;
                ctx.ring_deadline = ring_timeout.map(|after| now + after);
                let ring = ctx.ring_deadline;
                let in_dialog = matches!(ctx.goal, Goal::Dialog { .. });
                if ctx.invite && !in_dialog {
                    if let Some(transaction) = ctx.server {
                        let trying = ctx.request.response(100).build_bytes();
                        if let Ok(response) = Message::parse(trying) {
                            self.outputs.push_back(Action::Respond {
                                transaction,
                                response,
                            });
                        }
                    }
                    let caller = ctx.caller.as_ref().map_or_else(
                        || {
                            ctx.request
                                .from()
                                .map(|f| f.uri().as_str().to_owned())
                                .unwrap_or_default()
                        },
                        |c| c.username.to_string(),
                    );
                    let call = Call {
                        call_id: ctx.request.call_id().unwrap_or_default().to_owned(),
                        caller,
                        callee: String::from_utf8_lossy(
                            ctx.request.request_uri_raw().unwrap_or_default(),
                        )
                        .into_owned(),
                        started: now,
                        ringing: false,
                        answered: None,
                    };
                    self.outputs.push_back(Action::Event(CallEvent::Started {
                        call_id: call.call_id.clone(),
                        caller: call.caller.clone(),
                        callee: call.callee.clone(),
                    }));
                    ctx.call = Some(call);
                }
                if let Some(at) = ring {
                    self.schedule(at, context, RING_TIMER);
                }
                self.start_next_group(context, now);
            }
        }
    }

    /// The answer to [`Action::OpenHop`]: the flow to send the branch on, or why there is
    /// none.
    pub fn handle_hop(
        &mut self,
        context: ContextId,
        branch: BranchId,
        result: Result<FlowId, HopFailure>,
        now: Instant,
    ) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        let Some(b) = ctx.branches.get_mut(branch.0 as usize) else {
            return;
        };
        if !matches!(b.state, BranchState::Opening) {
            return;
        }
        if ctx.cancelled || ctx.timed_out || (ctx.final_sent && !ctx.invite) {
            b.state = BranchState::Done;
            ctx.finals.push(Final::Generated {
                status: 487,
                reason: "Request Terminated".to_owned(),
            });
            return self.check_completion(context, now);
        }
        match result {
            Err(failure) => {
                b.state = BranchState::Done;
                ctx.finals.push(Final::Generated {
                    status: failure.status,
                    reason: failure.reason,
                });
                self.check_completion(context, now)
            }
            Ok(flow) => match self.build_branch_request(context, branch.0, flow) {
                Some(request) => {
                    if let Some(b) = self
                        .contexts
                        .get_mut(&context)
                        .and_then(|c| c.branches.get_mut(branch.0 as usize))
                    {
                        b.state = BranchState::Starting;
                        b.flow = Some(flow);
                    }
                    if flow.is_reliable() {
                        self.on_connections
                            .entry(flow)
                            .or_default()
                            .push((context, branch.0));
                    }
                    self.outputs.push_back(Action::SendRequest {
                        context,
                        branch,
                        request,
                        flow,
                    });
                }
                None => self.fail_branch(context, branch.0, 500, "Cannot Build Request", now),
            },
        }
    }

    /// The client transaction of [`Action::SendRequest`] started.
    pub fn client_started(
        &mut self,
        context: ContextId,
        branch: BranchId,
        transaction: TransactionId,
        now: Instant,
    ) {
        let timer_c = self.config.timer_c;
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        let invite = ctx.invite;
        let Some(b) = ctx.branches.get_mut(branch.0 as usize) else {
            return;
        };
        if !matches!(b.state, BranchState::Starting) {
            return;
        }
        b.state = BranchState::Pending(transaction);
        self.by_client.insert(transaction, (context, branch.0));
        let deadline = if ctx.cancelled || ctx.timed_out {
            // Cancelled while it was starting: CANCEL it once it answers provisionally.
            b.cancel_wanted = true;
            Some(now + self.config.t1 * 64)
        } else {
            invite.then(|| now + timer_c)
        };
        if let Some(at) = deadline {
            b.deadline = Some(at);
            self.schedule(at, context, branch.0);
        }
    }

    /// The client transaction of [`Action::SendRequest`] could not start (the transaction
    /// layer is full): the branch counts as 503.
    pub fn client_failed(&mut self, context: ContextId, branch: BranchId, now: Instant) {
        self.fail_branch(context, branch.0, 503, "Service Unavailable", now);
    }

    /// A response on one of our client transactions.
    pub fn handle_response(&mut self, transaction: TransactionId, response: Message, now: Instant) {
        let Some(&(context, branch)) = self.by_client.get(&transaction) else {
            return self.handle_stray_response(response);
        };
        let Some(status) = response.status() else {
            return;
        };
        let timer_c = self.config.timer_c;
        let cancel_grace = self.config.t1 * 64;
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return self.handle_stray_response(response);
        };
        let invite = ctx.invite;
        let Some(b) = ctx.branches.get_mut(branch as usize) else {
            return;
        };
        match status {
            100 => {}
            101..=199 => {
                b.provisional = true;
                let mut schedule = None;
                if b.cancel_wanted && !b.cancel_sent {
                    b.cancel_sent = true;
                    self.outputs.push_back(Action::Cancel { transaction });
                    b.deadline = Some(now + cancel_grace);
                    schedule = b.deadline;
                } else if invite && !b.cancel_sent {
                    // §16.7 step 2: every provisional response but 100 restarts Timer C.
                    b.deadline = Some(now + timer_c);
                    schedule = b.deadline;
                }
                let relay = !ctx.final_sent && !ctx.cancelled;
                let first_ring = matches!(status, 180 | 183)
                    && ctx.call.as_ref().is_some_and(|call| !call.ringing);
                if relay {
                    self.relay(context, &response, &[]);
                    if first_ring {
                        if let Some(call) = self
                            .contexts
                            .get_mut(&context)
                            .and_then(|c| c.call.as_mut())
                        {
                            call.ringing = true;
                            let call_id = call.call_id.clone();
                            self.outputs
                                .push_back(Action::Event(CallEvent::Ringing { call_id }));
                        }
                    }
                }
                if let Some(at) = schedule {
                    self.schedule(at, context, branch);
                }
            }
            200..=299 => {
                b.state = BranchState::Done;
                b.deadline = None;
                let first = !ctx.final_sent;
                if invite {
                    // §16.7 step 5: every 2xx goes upstream, even after another one.
                    self.relay(context, &response, &[]);
                    if first {
                        self.answered(context, &response, now);
                    }
                } else if first {
                    self.relay(context, &response, &[]);
                    if let Some(ctx) = self.contexts.get_mut(&context) {
                        ctx.final_sent = true;
                    }
                }
                self.check_completion(context, now);
            }
            _ => {
                b.state = BranchState::Done;
                b.deadline = None;
                ctx.finals.push(if b.expired && status == 487 {
                    Final::Generated {
                        status: 408,
                        reason: "Request Timeout".to_owned(),
                    }
                } else {
                    Final::Received(response)
                });
                if status >= 600 && invite {
                    // §16.7 step 5: a global failure ends the search.
                    ctx.groups.clear();
                    self.cancel_branches(context, now);
                }
                self.check_completion(context, now);
            }
        }
    }

    /// A response that matches no client transaction (RFC 3261 §18.1.2). Only a 2xx to an
    /// INVITE through one of our branches is forwarded, statelessly, by its next Via: the
    /// retransmission of an answer whose transactions are gone.
    pub fn handle_stray_response(&mut self, response: Message) {
        let is_invite_2xx = matches!(response.status(), Some(200..=299))
            && response.cseq().is_ok_and(|c| c.method == Method::Invite);
        let ours = response
            .branch()
            .is_some_and(|b| crate::branch::shard_of(b).is_some());
        if !is_invite_2xx || !ours {
            return;
        }
        let Some((transport, addr)) = next_via_address(&response) else {
            return;
        };
        if let Ok(bytes) = response.forward_response().build() {
            self.outputs.push_back(Action::SendResponse {
                transport,
                addr,
                message: Bytes::from(bytes),
            });
        }
    }

    /// A client transaction ended. A branch that got no final response counts as 408 (timed
    /// out) or 503 (transport error, RFC 3261 §16.9).
    pub fn handle_terminated(
        &mut self,
        transaction: TransactionId,
        reason: TerminationReason,
        now: Instant,
    ) {
        if let Some(context) = self.by_server.remove(&transaction) {
            if let Some(ctx) = self.contexts.get_mut(&context) {
                ctx.server = None;
            }
            return self.check_completion(context, now);
        }
        let Some((context, branch)) = self.by_client.remove(&transaction) else {
            return;
        };
        let (status, text) = match reason {
            TerminationReason::TransportError => (503, "Service Unavailable"),
            TerminationReason::Timeout | TerminationReason::Normal => (408, "Request Timeout"),
        };
        self.fail_branch(context, branch, status, text, now);
    }

    /// A connection closed. A branch sent over it that had no answer yet is sent again over
    /// a new connection when its target has an address to reconnect to (a TCP or TLS
    /// device without RFC 5626 flows: its connection may close right as the request is
    /// written); otherwise it fails at once rather than waiting for its timers: as the
    /// device's closed flow (480, or 430 for an RFC 5626 flow), or as a transport error
    /// toward a server (503, RFC 3261 §16.9).
    pub fn handle_flow_closed(&mut self, flow: FlowId, now: Instant) {
        for (context, branch) in self.on_connections.remove(&flow).unwrap_or_default() {
            let Some(b) = self
                .contexts
                .get_mut(&context)
                .and_then(|c| c.branches.get_mut(branch as usize))
            else {
                continue;
            };
            let BranchState::Pending(transaction) = b.state else {
                continue;
            };
            if b.flow != Some(flow) {
                continue;
            }
            match &b.target.hop {
                NextHop::Flow {
                    reconnect: Some(uri),
                    ..
                } if !b.provisional && !b.reopened && !b.cancel_wanted => {
                    let hop = NextHop::Uri(uri.clone());
                    b.reopened = true;
                    b.state = BranchState::Opening;
                    b.flow = None;
                    b.deadline = None;
                    self.by_client.remove(&transaction);
                    self.outputs.push_back(Action::OpenHop {
                        context,
                        branch: BranchId(branch),
                        hop,
                    });
                }
                NextHop::Flow { when_closed, .. } => {
                    let status = *when_closed;
                    self.fail_branch(context, branch, status, "Connection Closed", now)
                }
                NextHop::Uri(_) => self.fail_branch(context, branch, 503, "Connection Closed", now),
            }
        }
    }

    /// A CANCEL on its own server transaction (RFC 3261 §16.10): 200 at once, then every
    /// pending branch is cancelled and the callee's 487 goes back.
    pub fn handle_cancel(
        &mut self,
        transaction: TransactionId,
        cancel: Message,
        target: CancelTarget,
        now: Instant,
    ) {
        let status = match target {
            CancelTarget::NotFound => 481,
            CancelTarget::Pending(_) | CancelTarget::Answered(_) => 200,
        };
        let tag = self.new_tag();
        if let Ok(response) = Message::parse(cancel.response(status).to_tag(&tag).build_bytes()) {
            self.outputs.push_back(Action::Respond {
                transaction,
                response,
            });
        }
        let CancelTarget::Pending(invite) = target else {
            return;
        };
        match self.by_server.get(&invite).copied() {
            Some(context) => self.cancel_context(context, now),
            // Nothing is routing it (its answer is on the way): it ends here.
            None => {
                let response = cancel.response(487).to_tag(&tag).build_bytes();
                if let Ok(response) = Message::parse(response) {
                    self.outputs.push_back(Action::Respond {
                        transaction: invite,
                        response,
                    });
                }
            }
        }
    }

    fn cancel_context(&mut self, context: ContextId, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        if ctx.final_sent {
            return;
        }
        ctx.cancelled = true;
        ctx.groups.clear();
        if ctx.stage != Stage::Forwarding {
            return self.finish_generated(context, 487, None, Vec::new(), now);
        }
        self.cancel_branches(context, now);
        self.check_completion(context, now);
    }

    /// CANCELs every branch still pending: at once if it sent a provisional response, else
    /// when it does (RFC 3261 §9.1); branches not started yet count as 487.
    fn cancel_branches(&mut self, context: ContextId, now: Instant) {
        let grace = self.config.t1 * 64;
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        let mut scheduled = Vec::new();
        for (index, b) in ctx.branches.iter_mut().enumerate() {
            match b.state {
                BranchState::Opening => {
                    b.state = BranchState::Done;
                    ctx.finals.push(Final::Generated {
                        status: 487,
                        reason: "Request Terminated".to_owned(),
                    });
                }
                BranchState::Starting => b.cancel_wanted = true,
                BranchState::Pending(transaction) => {
                    if b.cancel_sent {
                        continue;
                    }
                    b.cancel_wanted = true;
                    if b.provisional {
                        b.cancel_sent = true;
                        self.outputs.push_back(Action::Cancel { transaction });
                    }
                    let at = now + grace;
                    b.deadline = Some(at);
                    scheduled.push((at, index as u32));
                }
                BranchState::Done => {}
            }
        }
        for (at, index) in scheduled {
            self.schedule(at, context, index);
        }
    }

    /// An ACK that is not part of a transaction: the ACK for a 2xx, forwarded statelessly
    /// along its dialog's route (RFC 3261 §16.11). Anything else (the ACK for a challenge
    /// sent statelessly) ends here.
    pub fn handle_ack(&mut self, ack: Message, arrival: Arrival) {
        if ack.max_forwards() == Ok(Some(0)) {
            return;
        }
        let Some((flows, sender, own_routes)) = self.dialog_route(&ack, arrival) else {
            return;
        };
        let Some(branch) = ack.branch().map(|b| self.branches.stateless(b)) else {
            return;
        };
        let flow = match sender {
            Sender::Caller => flows.callee,
            Sender::Callee => flows.caller,
        };
        let local_ip = self
            .config
            .local_ip(arrival.local.ip(), flow.udp_remote().map(|a| a.ip()));
        let Some(via) = self.via_for(flow.transport(), local_ip, &branch) else {
            return;
        };
        let forwarded = ack
            .forward()
            .push_via(&via)
            .remove_top_routes(own_routes)
            .build();
        if let Ok(bytes) = forwarded {
            let hop = dialog_hop(&ack, own_routes, flow);
            self.outputs.push_back(Action::SendStateless {
                hop,
                message: Bytes::from(bytes),
            });
        }
    }

    /// Fires the timers due at `now`: Timer C, cancelled branches that never answered, ring
    /// timeouts, calls that outlived the longest call allowed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let grace = self.config.t1 * 64;
        while let Some(&Reverse((at, context, branch))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.timer_is_live(at, context, branch) {
                continue;
            }
            if branch == RING_TIMER {
                if let Some(ctx) = self.contexts.get_mut(&context) {
                    ctx.ring_deadline = None;
                    if !ctx.final_sent {
                        ctx.timed_out = true;
                        ctx.groups.clear();
                        self.cancel_branches(context, now);
                        self.check_completion(context, now);
                    }
                }
                continue;
            }
            let Some(ctx) = self.contexts.get_mut(&context) else {
                continue;
            };
            let Some(b) = ctx.branches.get_mut(branch as usize) else {
                continue;
            };
            b.deadline = None;
            let BranchState::Pending(transaction) = b.state else {
                continue;
            };
            if b.cancel_wanted {
                // No final response to our CANCEL within 64×T1: given up (§9.1).
                let cancelled = ctx.cancelled && !b.expired;
                self.by_client.remove(&transaction);
                let status = if cancelled { 487 } else { 408 };
                self.fail_branch(context, branch, status, "Request Terminated", now);
            } else if b.provisional {
                // Timer C with a provisional response: CANCEL the branch (§16.8).
                b.expired = true;
                b.cancel_wanted = true;
                b.cancel_sent = true;
                let at = now + grace;
                b.deadline = Some(at);
                self.outputs.push_back(Action::Cancel { transaction });
                self.schedule(at, context, branch);
            } else {
                // Timer C without any response: as if 408 (§16.8).
                self.by_client.remove(&transaction);
                self.fail_branch(context, branch, 408, "Request Timeout", now);
            }
        }
        for call in self.dialogs.expire(now) {
            self.outputs
                .push_back(Action::Event(call.ended(EndCause::Expired, now)));
        }
    }

    // ---- routing ----------------------------------------------------------------------

    /// After authentication (or for a trusted peer, `None`): permissions, then where to.
    fn route_caller(&mut self, context: ContextId, caller: Option<EndpointInfo>, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        let method = ctx.request.method();
        if let Some(caller) = &caller {
            let refusal = if self.config.no_application == NoApplication::Reject
                && caller.application_id.is_none()
            {
                Some(RouteDecision::reject(403, "Forbidden (no application)"))
            } else if method == Some(Method::Invite)
                && !caller.permissions.allows(Permission::Voice)
            {
                Some(forbidden(Permission::Voice))
            } else if method == Some(Method::Invite)
                && !caller.permissions.allows(Permission::Video)
                && request::offers_video(&ctx.request)
            {
                Some(RouteDecision::Reject {
                    status: 488,
                    reason: Some(format!("Not Acceptable Here ({})", Permission::Video)),
                    warning: Some(format!(
                        "video calls are not allowed for this endpoint ({})",
                        Permission::Video
                    )),
                })
            } else if method == Some(Method::Message)
                && !caller.permissions.allows(Permission::Message)
            {
                Some(forbidden(Permission::Message))
            } else {
                None
            };
            if let Some(refusal) = refusal {
                return self.handle_route(context, refusal, now);
            }
        }
        let trusted = caller.is_none();
        let goal = ctx.goal.clone();
        let other_domains = caller
            .as_ref()
            .is_some_and(|c| c.permissions.allows(Permission::OtherDomains));
        ctx.caller = caller;
        match goal {
            Goal::Destination(Destination::LocalUser(username)) => {
                ctx.stage = Stage::Locating;
                self.outputs.push_back(Action::Locate { context, username });
            }
            Goal::Destination(Destination::Number(number)) => {
                self.route_number(context, number, now)
            }
            Goal::Destination(Destination::OtherDomain) | Goal::Routed(_) if trusted => self
                .handle_route(
                    context,
                    RouteDecision::reject(403, "Forbidden (not a local user)"),
                    now,
                ),
            Goal::Destination(Destination::OtherDomain) | Goal::Routed(_) if !other_domains => {
                self.handle_route(context, forbidden(Permission::OtherDomains), now)
            }
            Goal::Destination(Destination::OtherDomain) => {
                let uri =
                    String::from_utf8_lossy(ctx.request.request_uri_raw().unwrap_or_default())
                        .into_owned();
                let decision = RouteDecision::Fork {
                    groups: vec![vec![Target {
                        request_uri: uri.clone(),
                        route: Vec::new(),
                        hop: NextHop::Uri(uri),
                    }]],
                    headers: Vec::new(),
                    ring_timeout: None,
                };
                self.handle_route(context, decision, now)
            }
            Goal::Routed(route) => {
                let uri =
                    String::from_utf8_lossy(ctx.request.request_uri_raw().unwrap_or_default())
                        .into_owned();
                let decision = RouteDecision::Fork {
                    groups: vec![vec![Target {
                        request_uri: uri,
                        route: Vec::new(),
                        hop: NextHop::Uri(route),
                    }]],
                    headers: Vec::new(),
                    ring_timeout: None,
                };
                self.handle_route(context, decision, now)
            }
            Goal::Destination(Destination::Server) | Goal::Dialog { .. } => {}
        }
    }

    fn route_number(&mut self, context: ContextId, number: String, now: Instant) {
        let Some(ctx) = self.contexts.get(&context) else {
            return;
        };
        let decision = match (&ctx.caller, &self.config.pstn_gateway) {
            (None, _) => RouteDecision::reject(403, "Forbidden (not a local user)"),
            (Some(caller), _) if !caller.permissions.allows(Permission::Phones) => {
                forbidden(Permission::Phones)
            }
            (Some(_), None) => RouteDecision::reject(404, "No PSTN Gateway Configured"),
            (Some(_), Some(gateway)) => {
                let request_uri = number_at(gateway, &number);
                RouteDecision::Fork {
                    groups: vec![vec![Target {
                        request_uri,
                        route: Vec::new(),
                        hop: NextHop::Uri(gateway.clone()),
                    }]],
                    headers: Vec::new(),
                    ring_timeout: None,
                }
            }
        };
        self.handle_route(context, decision, now);
    }

    fn forward_in_dialog(&mut self, context: ContextId, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        let Goal::Dialog { flows, sender } = ctx.goal.clone() else {
            return;
        };
        let flow = match sender {
            Sender::Caller => flows.callee,
            Sender::Callee => flows.caller,
        };
        if ctx.request.method() == Some(Method::Bye) {
            if let Ok(call_id) = ctx.request.call_id() {
                if let Some(call) = self.dialogs.remove(call_id) {
                    let party = match sender {
                        Sender::Caller => Party::Caller,
                        Sender::Callee => Party::Callee,
                    };
                    self.outputs
                        .push_back(Action::Event(call.ended(EndCause::HungUp(party), now)));
                }
            }
        }
        let hop = dialog_hop(&ctx.request, ctx.own_routes, flow);
        let uri =
            String::from_utf8_lossy(ctx.request.request_uri_raw().unwrap_or_default()).into_owned();
        let decision = RouteDecision::Fork {
            groups: vec![vec![Target {
                request_uri: uri,
                route: Vec::new(),
                hop,
            }]],
            headers: Vec::new(),
            ring_timeout: None,
        };
        self.handle_route(context, decision, now);
    }

    fn start_next_group(&mut self, context: ContextId, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        let Some(group) = ctx.groups.pop_front() else {
            return self.check_completion(context, now);
        };
        for target in group {
            let index = ctx.branches.len() as u32;
            self.outputs.push_back(Action::OpenHop {
                context,
                branch: BranchId(index),
                hop: target.hop.clone(),
            });
            ctx.branches.push(Branch {
                target,
                state: BranchState::Opening,
                provisional: false,
                cancel_wanted: false,
                cancel_sent: false,
                expired: false,
                deadline: None,
                flow: None,
                reopened: false,
            });
        }
    }

    /// The request for one branch, leaving on `flow` (RFC 3261 §16.6).
    fn build_branch_request(
        &mut self,
        context: ContextId,
        branch: u32,
        flow: FlowId,
    ) -> Option<Message> {
        let ctx = self.contexts.get(&context)?;
        let b = ctx.branches.get(branch as usize)?;
        let request = &ctx.request;
        let method = request.method()?;
        let arrived_on = ctx.arrival.local.ip();
        let outward_ip = self
            .config
            .local_ip(arrived_on, flow.udp_remote().map(|a| a.ip()));
        let inward_ip = self
            .config
            .local_ip(arrived_on, Some(ctx.arrival.remote.ip()));
        let id = self.branches.next(ctx.loop_hash);
        let via = self.via_for(flow.transport(), outward_ip, &id)?;
        let in_dialog = matches!(ctx.goal, Goal::Dialog { .. });
        let mut forward = request
            .forward()
            .push_via(&via)
            .remove_top_routes(ctx.own_routes);
        if !in_dialog {
            forward = forward.request_uri(&b.target.request_uri);
        }
        for route in &b.target.route {
            forward = forward.push_route(route);
        }
        for credentials in request::own_credentials(request, self.config.local.domain()) {
            forward = forward.remove_line(&credentials);
        }
        if !in_dialog && request::creates_dialog(method) {
            if let (Ok(call_id), Some(caller_tag)) = (request.call_id(), request.from_tag()) {
                let flows = DialogFlows {
                    caller: ctx.arrival.flow,
                    callee: flow,
                };
                let token = self.tokens.seal(flows, call_id, caller_tag);
                let inbound = ctx.arrival.flow.transport();
                let outbound = flow.transport();
                // RFC 5658: one value per side when the two sides differ.
                if outbound != inbound {
                    let (host, port) = self.config.interface(outbound)?.address(outward_ip);
                    forward =
                        forward.record_route(&record_route::value(&host, port, outbound, &token));
                }
                let (host, port) = self.config.interface(inbound)?.address(inward_ip);
                forward = forward.record_route(&record_route::value(&host, port, inbound, &token));
            }
        }
        for (name, value) in &ctx.headers {
            forward = forward.add_header(name, value);
        }
        let bytes = forward.build().ok()?;
        Message::parse(Bytes::from(bytes)).ok()
    }

    fn via_for(&self, transport: Transport, local_ip: IpAddr, branch: &str) -> Option<String> {
        let (host, port) = self.config.interface(transport)?.address(local_ip);
        Some(format!(
            "SIP/2.0/{} {host}:{port};branch={branch}",
            transport.via_token()
        ))
    }

    /// How many Route values at the top of an initial request name us (a preloaded route to
    /// this proxy, e.g. a phone with sipd as its outbound proxy).
    fn own_plain_routes(&self, request: &Message, arrival: Arrival) -> usize {
        request
            .routes()
            .take_while(|route| {
                route.as_ref().is_ok_and(|route| match route.uri() {
                    Uri::Sip(sip) => {
                        self.config
                            .is_local(&sip.host(), sip.port(), arrival.local.ip())
                    }
                    _ => false,
                })
            })
            .count()
    }

    /// The dialog an in-dialog request (or 2xx ACK) belongs to, from the token in its
    /// Route values: its flows, who sent it, and how many Route values to remove: a plain
    /// route to us the device put in front (its outbound proxy setting), then our
    /// Record-Route value, or both of a double Record-Route.
    fn dialog_route(
        &self,
        request: &Message,
        arrival: Arrival,
    ) -> Option<(DialogFlows, Sender, usize)> {
        let routes: Vec<_> = request.routes().take(8).map_while(Result::ok).collect();
        let mut index = 0;
        let mut token = None;
        while let Some(route) = routes.get(index) {
            let uri = route.uri();
            if let Some(found) = record_route::token_of(&uri) {
                token = Some(found);
                break;
            }
            let Uri::Sip(sip) = uri else { return None };
            if !self
                .config
                .is_local(&sip.host(), sip.port(), arrival.local.ip())
            {
                return None;
            }
            index += 1;
        }
        let token = token?;
        let (flows, sender) = self.tokens.open(&token, request)?;
        let second_is_ours = routes
            .get(index + 1)
            .and_then(|r| record_route::token_of(&r.uri()))
            .is_some_and(|second| second == token);
        Some((flows, sender, index + if second_is_ours { 2 } else { 1 }))
    }

    // ---- responses --------------------------------------------------------------------

    /// Relays a response from a branch upstream through the server transaction, without our
    /// Via; when the server transaction is gone (a late 2xx), statelessly by its Via.
    fn relay(&mut self, context: ContextId, response: &Message, extra: &[(String, String)]) {
        let server = self.contexts.get(&context).and_then(|ctx| ctx.server);
        let mut builder = response.forward_response();
        for (name, value) in extra {
            builder = builder.add_header(name, value);
        }
        let Ok(bytes) = builder.build() else {
            return;
        };
        match server {
            Some(transaction) => {
                if let Ok(response) = Message::parse(Bytes::from(bytes)) {
                    self.outputs.push_back(Action::Respond {
                        transaction,
                        response,
                    });
                }
            }
            None => self.handle_stray_response(response.clone()),
        }
    }

    fn answered(&mut self, context: ContextId, response: &Message, now: Instant) {
        let max_call = self.config.max_call_duration;
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        ctx.final_sent = true;
        ctx.groups.clear();
        if let Some(mut call) = ctx.call.take() {
            call.answered = Some(now);
            self.outputs.push_back(Action::Event(CallEvent::Answered {
                call_id: call.call_id.clone(),
            }));
            if response.to_tag().is_some() {
                self.dialogs.insert(call, now + max_call);
            }
        }
        self.cancel_branches(context, now);
    }

    /// Counts a branch as having failed with `status`.
    fn fail_branch(
        &mut self,
        context: ContextId,
        branch: u32,
        status: u16,
        reason: &str,
        now: Instant,
    ) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        let Some(b) = ctx.branches.get_mut(branch as usize) else {
            return;
        };
        if matches!(b.state, BranchState::Done) {
            return;
        }
        if let BranchState::Pending(transaction) = b.state {
            self.by_client.remove(&transaction);
        }
        b.state = BranchState::Done;
        b.deadline = None;
        ctx.finals.push(Final::Generated {
            status,
            reason: reason.to_owned(),
        });
        self.check_completion(context, now);
    }

    /// Once every branch has its answer: the next group, or the best response upstream; and
    /// once nothing more can happen, the context goes.
    fn check_completion(&mut self, context: ContextId, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        if ctx.stage != Stage::Forwarding {
            return;
        }
        let all_done = ctx
            .branches
            .iter()
            .all(|b| matches!(b.state, BranchState::Done));
        if !all_done {
            return;
        }
        if !ctx.final_sent {
            let global_failure = ctx.finals.iter().any(|f| f.status() >= 600);
            if !ctx.groups.is_empty() && !ctx.cancelled && !ctx.timed_out && !global_failure {
                return self.start_next_group(context, now);
            }
            self.send_best(context, now);
        }
        self.remove_context(context);
    }

    /// RFC 3261 §16.7 step 6: the best final response goes upstream.
    fn send_best(&mut self, context: ContextId, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        ctx.final_sent = true;
        let finals = std::mem::take(&mut ctx.finals);
        let timed_out = ctx.timed_out;
        let best = best_response(&finals);
        let status = best.map_or(408, |index| finals[index].status());
        match best.map(|index| &finals[index]) {
            // A ring timeout's own CANCELs come back 487: the caller did not cancel.
            Some(_) if timed_out && status == 487 => {
                self.finish_generated(context, 408, None, Vec::new(), now)
            }
            None => self.finish_generated(context, 408, None, Vec::new(), now),
            Some(Final::Received(_)) if status == 503 => {
                // §16.7 step 6: a 503 becomes a 500, or the caller would not try elsewhere.
                self.finish_generated(context, 500, None, Vec::new(), now)
            }
            Some(Final::Generated { status, reason }) => {
                let (status, reason) = if *status == 503 {
                    (500, None)
                } else {
                    (*status, Some(reason.as_str()))
                };
                self.finish_generated(context, status, reason, Vec::new(), now)
            }
            Some(Final::Received(response)) => {
                let mut extra = Vec::new();
                if matches!(status, 401 | 407) {
                    // §16.7 step 7: every branch's challenges, so the caller can answer all.
                    for (i, other) in finals.iter().enumerate() {
                        if let (true, Final::Received(other)) =
                            (i != best.unwrap_or(usize::MAX), other)
                        {
                            for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate]
                            {
                                for value in other.headers_named(name) {
                                    extra.push((
                                        name.as_str().to_owned(),
                                        String::from_utf8_lossy(value).into_owned(),
                                    ));
                                }
                            }
                        }
                    }
                }
                self.relay(context, response, &extra);
                self.call_ended(context, status, now);
            }
        }
    }

    /// Answers the request with a response of our own and ends the context's call.
    fn finish_generated(
        &mut self,
        context: ContextId,
        status: u16,
        reason: Option<&str>,
        headers: Vec<(&str, String)>,
        now: Instant,
    ) {
        let tag = self.new_tag();
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        ctx.final_sent = true;
        if let Some(transaction) = ctx.server {
            let mut builder = ctx.request.response(status).to_tag(&tag);
            if let Some(reason) = reason {
                builder = builder.reason(&sip_message::safe_reason(reason));
            }
            if status == 503 {
                builder = builder.header("Retry-After", "5");
            }
            for (name, value) in &headers {
                builder = builder.header(name, value);
            }
            if let Ok(response) = Message::parse(builder.build_bytes()) {
                self.outputs.push_back(Action::Respond {
                    transaction,
                    response,
                });
            }
        }
        self.call_ended(context, status, now);
        if self
            .contexts
            .get(&context)
            .is_some_and(|c| c.stage != Stage::Forwarding)
        {
            self.remove_context(context);
        }
    }

    fn call_ended(&mut self, context: ContextId, status: u16, now: Instant) {
        let Some(ctx) = self.contexts.get_mut(&context) else {
            return;
        };
        if let Some(call) = ctx.call.take() {
            let cause = if ctx.cancelled && status == 487 {
                EndCause::Cancelled
            } else {
                EndCause::Unanswered(status)
            };
            self.outputs
                .push_back(Action::Event(call.ended(cause, now)));
        }
    }

    fn remove_context(&mut self, context: ContextId) -> Option<Context> {
        let ctx = self.contexts.remove(&context)?;
        if let Some(transaction) = ctx.server {
            self.by_server.remove(&transaction);
        }
        for (index, b) in ctx.branches.iter().enumerate() {
            if let BranchState::Pending(transaction) = b.state {
                self.by_client.remove(&transaction);
            }
            if let Some(flow) = b.flow.filter(FlowId::is_reliable) {
                if let Some(branches) = self.on_connections.get_mut(&flow) {
                    branches.retain(|entry| *entry != (context, index as u32));
                    if branches.is_empty() {
                        self.on_connections.remove(&flow);
                    }
                }
            }
        }
        Some(ctx)
    }

    /// A request answered before any context exists.
    fn refuse_new(&mut self, transaction: TransactionId, request: &Message, refusal: Refusal) {
        let tag = self.new_tag();
        let mut builder = request.response(refusal.status).to_tag(&tag);
        if let Some(reason) = refusal.reason {
            builder = builder.reason(reason);
        }
        for (name, value) in &refusal.headers {
            builder = builder.header(name, value);
        }
        if let Ok(response) = Message::parse(builder.build_bytes()) {
            self.outputs.push_back(Action::Respond {
                transaction,
                response,
            });
        }
    }

    /// A request for the server itself: OPTIONS gets its capabilities, other methods it
    /// knows 405, the rest 501.
    fn answer_for_server(&mut self, transaction: TransactionId, request: &Message) {
        let method = request.method().map(|m| m.as_str()).unwrap_or_default();
        let tag = self.new_tag();
        let builder = if method == "OPTIONS" {
            request
                .response(200)
                .header("Allow", SERVER_ALLOW)
                .header("Accept", "application/sdp")
                .header("Supported", "path, outbound")
        } else if KNOWN_METHODS.contains(&method) {
            request.response(405).header("Allow", SERVER_ALLOW)
        } else {
            request.response(501).header("Allow", SERVER_ALLOW)
        };
        if let Ok(response) = Message::parse(builder.to_tag(&tag).build_bytes()) {
            self.outputs.push_back(Action::Respond {
                transaction,
                response,
            });
        }
    }

    fn warning(&self, text: &str) -> String {
        let escaped: String = sip_message::safe_reason(text).replace(['"', '\\'], "'");
        format!("399 {} \"{escaped}\"", self.config.local.domain())
    }

    pub(crate) fn new_tag(&mut self) -> String {
        self.next_tag += 1;
        format!("{}{:x}", self.tag_prefix, self.next_tag)
    }
}

/// RFC 3261 §16.7 step 6: a 6xx if there is one, else the lowest class; within 4xx, the
/// ones the caller can act on (401, 407, 415, 420, 484) first; then the lowest code (as
/// Kamailio does), the first received among equals.
fn best_response(finals: &[Final]) -> Option<usize> {
    if let Some(index) = finals.iter().position(|f| f.status() >= 600) {
        return Some(index);
    }
    let class = finals.iter().map(|f| f.status() / 100).min()?;
    let in_class = |f: &&Final| f.status() / 100 == class;
    if class == 4 {
        let actionable = [401, 407, 415, 420, 484];
        if let Some(index) = finals
            .iter()
            .position(|f| in_class(&f) && actionable.contains(&f.status()))
        {
            return Some(index);
        }
    }
    let lowest = finals.iter().filter(in_class).map(Final::status).min()?;
    finals.iter().position(|f| f.status() == lowest)
}

/// The hop toward `flow` for an in-dialog request: a closed TCP/TLS flow is re-opened to
/// the next Route value after ours, or the remote target (RFC 3261 §18).
fn dialog_hop(request: &Message, own_routes: usize, flow: FlowId) -> NextHop {
    let transport = flow.transport();
    let reconnect = (transport.is_reliable() && !transport.is_websocket()).then(|| {
        request
            .routes()
            .nth(own_routes)
            .and_then(|r| r.ok().map(|r| strip_angle(r.uri().as_str()).to_owned()))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(request.request_uri_raw().unwrap_or_default()).into_owned()
            })
    });
    NextHop::Flow {
        flow,
        reconnect,
        when_closed: 480,
    }
}

/// The address the second Via of a response names (RFC 3261 §18.2.2 with RFC 3581:
/// `received` and `rport` when present).
fn next_via_address(response: &Message) -> Option<(Transport, SocketAddr)> {
    let via = response.vias().nth(1)?.ok()?;
    let transport = Transport::from_token(via.transport())?;
    let ip: IpAddr = match via.received() {
        Some(received) => received.trim_matches(['[', ']']).parse().ok()?,
        None => via.host().ip()?,
    };
    let port = match via.rport() {
        Some(sip_message::RPort::Port(port)) => port,
        _ => via
            .port()
            .unwrap_or(if transport.is_secure() { 5061 } else { 5060 }),
    };
    Some((transport, SocketAddr::new(ip, port)))
}

/// The 403 for a permission the caller lacks, naming it.
fn forbidden(permission: Permission) -> RouteDecision {
    RouteDecision::Reject {
        status: 403,
        reason: Some(format!("Forbidden ({permission})")),
        warning: None,
    }
}

/// The gateway URI with `number` as its user part.
fn number_at(gateway: &str, number: &str) -> String {
    let (scheme, rest) = gateway.split_once(':').unwrap_or(("sip", gateway));
    let host_part = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}:{number}@{host_part}")
}

/// RFC 3261 §16.6 step 11 asks for more than three minutes.
pub const DEFAULT_TIMER_C: Duration = Duration::from_secs(185);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_request_uris() {
        assert_eq!(
            number_at("sip:gw.example.com", "+123"),
            "sip:+123@gw.example.com"
        );
        assert_eq!(
            number_at("sip:trunk@gw.example.com:5080;transport=tcp", "911"),
            "sip:911@gw.example.com:5080;transport=tcp"
        );
    }
}
