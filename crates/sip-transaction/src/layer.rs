//! The transaction layer: owns every transaction, routes messages to them, runs
//! their timers on the caller's clock and queues what must happen next.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::time::Instant;

use bytes::Bytes;
use sip_message::{FlowId, Message};

use crate::config::{Config, ConfigError};
use crate::invite_client::InviteClient;
use crate::invite_server::InviteServer;
use crate::key::{ClientKey, ServerKey};
use crate::machine::{Action, TerminationReason, TransactionState};
use crate::message::{self, MessageError, RequestKind};
use crate::non_invite_client::NonInviteClient;
use crate::non_invite_server::NonInviteServer;

/// Names one transaction for as long as it lives; never reused by a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Bytes to put on the wire. If sending fails, report it with
/// [`TransactionLayer::handle_transport_error`] and this `transaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transaction: TransactionId,
    pub flow: FlowId,
    pub payload: Bytes,
}

/// Which INVITE server transaction a received CANCEL targets (RFC 3261 §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelTarget {
    /// No INVITE transaction matches: a UAS answers the CANCEL 481, a proxy
    /// forwards it statelessly (§16.10).
    NotFound,
    /// The INVITE awaits its final response: answer the CANCEL 200, then the INVITE 487.
    Pending(TransactionId),
    /// The INVITE already has its final response: answer the CANCEL 200, nothing more.
    Answered(TransactionId),
}

/// What the caller must do next, from [`TransactionLayer::poll_output`].
#[derive(Debug, Clone)]
pub enum Output {
    /// Send bytes.
    Transmit(Transmit),
    /// A new request (not ACK, not CANCEL) for the TU, which answers it with
    /// [`TransactionLayer::send_response`].
    Request {
        transaction: TransactionId,
        request: Message,
        flow: FlowId,
    },
    /// A new CANCEL for the TU, which answers it like any request.
    Cancel {
        transaction: TransactionId,
        request: Message,
        flow: FlowId,
        target: CancelTarget,
    },
    /// An ACK for the TU: for a 2xx (RFC 6026 Accepted INVITE transaction:
    /// `transaction` is set), or matching no transaction at all.
    Ack {
        transaction: Option<TransactionId>,
        request: Message,
        flow: FlowId,
    },
    /// A response to one of the TU's requests.
    Response {
        transaction: TransactionId,
        response: Message,
    },
    /// A response matching no client transaction (§18.1.2: it goes to the core).
    StrayResponse { response: Message, flow: FlowId },
    /// A send failed but the transaction goes on (INVITE server, RFC 6026).
    TransportError { transaction: TransactionId },
    /// The transaction is gone; later messages for it go to the TU as new or stray.
    Terminated {
        transaction: TransactionId,
        reason: TerminationReason,
    },
}

/// Why a received message was not taken in.
#[derive(Debug, Clone)]
pub enum ReceiveError {
    /// The transaction limit is reached: answer this request 503 statelessly.
    Overloaded(Message),
    /// The message lacks what matching needs (top Via, CSeq, ...): drop it.
    Unmatchable(MessageError),
}

/// Why a TU request could not start a client transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRequestError {
    /// The transaction limit is reached.
    Overloaded,
    /// ACK is not a transaction (a 2xx ACK goes straight to the transport; the
    /// non-2xx ACK is generated here).
    Ack,
    /// A transaction with this branch and method already exists.
    DuplicateBranch,
    /// The request has no top Via with an RFC 3261 branch, or no CSeq.
    Unmatchable(MessageError),
}

/// Why a TU response was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResponseError {
    /// No such server transaction (it terminated, or never was one).
    UnknownTransaction,
    /// Not a response, or its status is not allowed in the transaction's state
    /// (e.g. a second final response).
    NotAllowed,
}

/// Why no CANCEL was sent for a client INVITE transaction (RFC 3261 §9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelError {
    /// No such client INVITE transaction.
    UnknownTransaction,
    /// No provisional response yet: a CANCEL could overtake the INVITE. Retry once a
    /// 1xx [`Output::Response`] arrives for it.
    NoProvisionalResponse,
    /// A final response already arrived; there is nothing left to cancel.
    AlreadyAnswered,
    /// The transaction limit is reached.
    Overloaded,
    /// The CANCEL could not be built from the INVITE.
    Unbuildable(MessageError),
}

impl fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overloaded(_) => f.write_str("too many transactions"),
            Self::Unmatchable(error) => write!(f, "unmatchable message: {error}"),
        }
    }
}

impl fmt::Display for SendRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overloaded => f.write_str("too many transactions"),
            Self::Ack => f.write_str("ACK is not sent through a transaction"),
            Self::DuplicateBranch => f.write_str("a transaction with this branch exists"),
            Self::Unmatchable(error) => write!(f, "unmatchable request: {error}"),
        }
    }
}

impl fmt::Display for SendResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownTransaction => "no such server transaction",
            Self::NotAllowed => "response not allowed in the transaction's state",
        })
    }
}

impl fmt::Display for CancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownTransaction => f.write_str("no such client INVITE transaction"),
            Self::NoProvisionalResponse => f.write_str("no provisional response yet"),
            Self::AlreadyAnswered => f.write_str("the INVITE already has a final response"),
            Self::Overloaded => f.write_str("too many transactions"),
            Self::Unbuildable(error) => write!(f, "cannot build the CANCEL: {error}"),
        }
    }
}

impl std::error::Error for ReceiveError {}
impl std::error::Error for SendRequestError {}
impl std::error::Error for SendResponseError {}
impl std::error::Error for CancelError {}

#[derive(Debug, Clone)]
enum Machine {
    InviteClient(InviteClient),
    NonInviteClient(NonInviteClient),
    InviteServer(InviteServer),
    NonInviteServer(NonInviteServer),
}

impl Machine {
    /// A server machine's verdict on the TU's response; client machines take none.
    fn on_tu_response(
        &mut self,
        response: &Message,
        now: Instant,
    ) -> Result<Vec<Action>, SendResponseError> {
        let accepted = match self {
            Self::InviteServer(m) => m.on_tu_response(response_status(response)?, now),
            Self::NonInviteServer(m) => m.on_tu_response(response_status(response)?, now),
            Self::InviteClient(_) | Self::NonInviteClient(_) => {
                return Err(SendResponseError::UnknownTransaction)
            }
        };
        accepted.map_err(|_| SendResponseError::NotAllowed)
    }

    /// Whether a server machine has sent (or been handed) its final response.
    fn has_final_response(&self) -> bool {
        !matches!(
            self.state(),
            TransactionState::Trying | TransactionState::Proceeding
        )
    }

    fn state(&self) -> TransactionState {
        match self {
            Self::InviteClient(m) => m.state(),
            Self::NonInviteClient(m) => m.state(),
            Self::InviteServer(m) => m.state(),
            Self::NonInviteServer(m) => m.state(),
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self {
            Self::InviteClient(m) => m.next_deadline(),
            Self::NonInviteClient(m) => m.next_deadline(),
            Self::InviteServer(m) => m.next_deadline(),
            Self::NonInviteServer(m) => m.next_deadline(),
        }
    }

    fn on_timeout(&mut self, now: Instant) -> Vec<Action> {
        match self {
            Self::InviteClient(m) => m.on_timeout(now),
            Self::NonInviteClient(m) => m.on_timeout(now),
            Self::InviteServer(m) => m.on_timeout(now),
            Self::NonInviteServer(m) => m.on_timeout(now),
        }
    }

    fn on_transport_error(&mut self) -> Vec<Action> {
        match self {
            Self::InviteClient(m) => m.on_transport_error(),
            Self::NonInviteClient(m) => m.on_transport_error(),
            Self::InviteServer(m) => m.on_transport_error(),
            Self::NonInviteServer(m) => m.on_transport_error(),
        }
    }
}

#[derive(Debug, Clone)]
enum Key {
    Server(ServerKey),
    Client(ClientKey),
}

#[derive(Debug)]
struct Transaction {
    machine: Machine,
    key: Key,
    flow: FlowId,
    /// The request that created the transaction, where it is still needed: always for a
    /// client, for an INVITE server until its final response, never for a non-INVITE
    /// server (which only resends its response, thousands of them through Timer J).
    /// Boxed: most transactions in the table are completed non-INVITE servers without one.
    request: Option<Box<Message>>,
    /// INVITE client: the ACK for the non-2xx final response.
    ack: Option<Bytes>,
    /// Server: the most recent response, for retransmission.
    last_response: Option<Bytes>,
    /// Server: the To tag of the most recent response (RFC 2543 ACK matching).
    response_to_tag: Option<Box<str>>,
    /// The deadline this transaction has in the timer heap; other heap entries
    /// for it are stale.
    scheduled: Option<Instant>,
}

/// Output queue slots kept between bursts.
const OUTPUTS_KEPT: usize = 64;

/// All transactions of one SIP element. See the [crate docs](crate) for the drive loop.
#[derive(Debug)]
pub struct TransactionLayer {
    config: Config,
    next_id: u64,
    transactions: HashMap<TransactionId, Transaction>,
    servers: HashMap<ServerKey, TransactionId>,
    clients: HashMap<ClientKey, TransactionId>,
    /// Min-heap of (deadline, transaction), with stale entries skipped lazily.
    timers: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    outputs: VecDeque<Output>,
}

impl TransactionLayer {
    /// An empty layer; fails on nonsensical timers.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            next_id: 0,
            transactions: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            timers: BinaryHeap::new(),
            outputs: VecDeque::new(),
        })
    }

    /// Number of live transactions.
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty()
    }

    /// The state of a live transaction; `None` once it terminated.
    pub fn state(&self, transaction: TransactionId) -> Option<TransactionState> {
        self.transactions
            .get(&transaction)
            .map(|tx| tx.machine.state())
    }

    /// The next thing to do, if any. Call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        let output = self.outputs.pop_front();
        if output.is_none() && self.outputs.capacity() > OUTPUTS_KEPT {
            // A timer burst (Timer J of a storm) queues one output per transaction.
            self.outputs.shrink_to(OUTPUTS_KEPT);
        }
        output
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self.is_scheduled(id, at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Collect first so a timer re-armed at or before `now` waits for the next
        // call instead of spinning here.
        let mut due = Vec::new();
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            due.push((at, id));
        }
        for (at, id) in due {
            if !self.is_scheduled(id, at) {
                continue;
            }
            let Some(tx) = self.transactions.get_mut(&id) else {
                continue;
            };
            tx.scheduled = None;
            let actions = tx.machine.on_timeout(now);
            self.apply(id, actions, None);
        }
    }

    /// A message arrived over `flow`.
    ///
    /// Requests that start a transaction and responses pass to the TU through
    /// [`poll_output`](Self::poll_output); retransmissions are absorbed.
    pub fn handle_message(
        &mut self,
        message: Message,
        flow: FlowId,
        now: Instant,
    ) -> Result<(), ReceiveError> {
        if message::is_response(&message) {
            self.handle_response(message, flow, now)
        } else {
            self.handle_request(message, flow, now)
        }
    }

    fn handle_response(
        &mut self,
        response: Message,
        flow: FlowId,
        now: Instant,
    ) -> Result<(), ReceiveError> {
        let facts = message::response_facts(&response).map_err(ReceiveError::Unmatchable)?;
        let Some((id, status)) =
            facts.and_then(|(key, status)| Some((*self.clients.get(&key)?, status)))
        else {
            self.outputs
                .push_back(Output::StrayResponse { response, flow });
            return Ok(());
        };
        let Some(tx) = self.transactions.get_mut(&id) else {
            return Ok(());
        };
        let actions = match &mut tx.machine {
            Machine::InviteClient(machine) => machine.on_response(status, now),
            Machine::NonInviteClient(machine) => machine.on_response(status, now),
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => Vec::new(),
        };
        if tx.ack.is_none() && actions.contains(&Action::SendAck) {
            // Built from the first final response, reused for its retransmissions. If
            // it cannot be built (no To), the server's timer H ends its retransmissions.
            tx.ack = tx
                .request
                .as_ref()
                .and_then(|invite| message::ack_for(invite, &response).ok());
        }
        let deliver = Output::Response {
            transaction: id,
            response,
        };
        self.apply(id, actions, Some(deliver));
        Ok(())
    }

    fn handle_request(
        &mut self,
        request: Message,
        flow: FlowId,
        now: Instant,
    ) -> Result<(), ReceiveError> {
        let facts = message::request_facts(&request).map_err(ReceiveError::Unmatchable)?;
        if facts.kind == RequestKind::Ack {
            self.handle_ack(request, flow, facts.key, facts.to_tag.as_deref(), now);
            return Ok(());
        }
        if let Some(&id) = self.servers.get(&facts.key) {
            let actions = match self.transactions.get_mut(&id).map(|tx| &mut tx.machine) {
                Some(Machine::InviteServer(machine)) => machine.on_retransmission(),
                Some(Machine::NonInviteServer(machine)) => machine.on_retransmission(),
                _ => Vec::new(),
            };
            self.apply(id, actions, None);
            return Ok(());
        }
        if self.transactions.len() >= self.config.max_transactions {
            return Err(ReceiveError::Overloaded(request));
        }
        let reliable = flow.is_reliable();
        let timers = self.config.timers;
        let (machine, actions) = if facts.kind == RequestKind::Invite {
            let trying_delay = self.config.invite_trying_delay;
            let (machine, actions) = InviteServer::start(timers, reliable, trying_delay, now);
            (Machine::InviteServer(machine), actions)
        } else {
            let (machine, actions) = NonInviteServer::start(timers, reliable);
            (Machine::NonInviteServer(machine), actions)
        };
        let id = self.allocate_id();
        // Only an INVITE server builds from its request (the 100 Trying).
        let kept = (facts.kind == RequestKind::Invite).then(|| Box::new(request.clone()));
        let deliver = if facts.kind == RequestKind::Cancel {
            Output::Cancel {
                transaction: id,
                request,
                flow,
                target: self.cancel_target(&facts.key),
            }
        } else {
            Output::Request {
                transaction: id,
                request,
                flow,
            }
        };
        self.servers.insert(facts.key.clone(), id);
        self.transactions.insert(
            id,
            Transaction {
                machine,
                key: Key::Server(facts.key),
                flow,
                request: kept,
                ack: None,
                last_response: None,
                response_to_tag: None,
                scheduled: None,
            },
        );
        self.apply(id, actions, Some(deliver));
        Ok(())
    }

    /// The INVITE server transaction a CANCEL with this key cancels (§9.2).
    fn cancel_target(&self, cancel_key: &ServerKey) -> CancelTarget {
        let Some(&invite) = self.servers.get(&cancel_key.with_method(message::INVITE)) else {
            return CancelTarget::NotFound;
        };
        match self.state(invite) {
            Some(TransactionState::Proceeding) => CancelTarget::Pending(invite),
            _ => CancelTarget::Answered(invite),
        }
    }

    fn handle_ack(
        &mut self,
        ack: Message,
        flow: FlowId,
        key: ServerKey,
        to_tag: Option<&str>,
        now: Instant,
    ) {
        let invite = self.servers.get(&key).copied().or_else(|| {
            // RFC 2543: the INVITE had no To tag; the ACK carries our response's.
            let id = *self.servers.get(&key.without_to_tag()?)?;
            let tx = self.transactions.get(&id)?;
            (tx.response_to_tag.as_deref() == to_tag).then_some(id)
        });
        let Some(id) = invite else {
            self.outputs.push_back(Output::Ack {
                transaction: None,
                request: ack,
                flow,
            });
            return;
        };
        // ACK keys carry the INVITE method, so only INVITE server transactions match.
        let actions = match self.transactions.get_mut(&id).map(|tx| &mut tx.machine) {
            Some(Machine::InviteServer(machine)) => machine.on_ack(now),
            _ => Vec::new(),
        };
        let deliver = Output::Ack {
            transaction: Some(id),
            request: ack,
            flow,
        };
        self.apply(id, actions, Some(deliver));
    }

    /// Starts a client transaction sending `request` over `flow`. The request's top Via
    /// must carry a unique RFC 3261 branch (the TU adds the Via).
    pub fn send_request(
        &mut self,
        request: Message,
        flow: FlowId,
        now: Instant,
    ) -> Result<TransactionId, SendRequestError> {
        let (key, kind) = message::client_facts(&request).map_err(SendRequestError::Unmatchable)?;
        if kind == RequestKind::Ack {
            return Err(SendRequestError::Ack);
        }
        if self.clients.contains_key(&key) {
            return Err(SendRequestError::DuplicateBranch);
        }
        if self.transactions.len() >= self.config.max_transactions {
            return Err(SendRequestError::Overloaded);
        }
        Ok(self.start_client(request, key, kind, flow, now))
    }

    fn start_client(
        &mut self,
        request: Message,
        key: ClientKey,
        kind: RequestKind,
        flow: FlowId,
        now: Instant,
    ) -> TransactionId {
        let reliable = flow.is_reliable();
        let timers = self.config.timers;
        let (machine, actions) = if kind == RequestKind::Invite {
            let (machine, actions) = InviteClient::start(timers, reliable, now);
            (Machine::InviteClient(machine), actions)
        } else {
            let (machine, actions) = NonInviteClient::start(timers, reliable, now);
            (Machine::NonInviteClient(machine), actions)
        };
        let id = self.allocate_id();
        self.clients.insert(key.clone(), id);
        self.transactions.insert(
            id,
            Transaction {
                machine,
                key: Key::Client(key),
                flow,
                request: Some(Box::new(request)),
                ack: None,
                last_response: None,
                response_to_tag: None,
                scheduled: None,
            },
        );
        self.apply(id, actions, None);
        id
    }

    /// Sends a CANCEL for a client INVITE transaction (RFC 3261 §9.1), as a new
    /// client transaction over the INVITE's flow.
    pub fn cancel(
        &mut self,
        invite: TransactionId,
        now: Instant,
    ) -> Result<TransactionId, CancelError> {
        let Some(tx) = self.transactions.get(&invite) else {
            return Err(CancelError::UnknownTransaction);
        };
        let Machine::InviteClient(machine) = &tx.machine else {
            return Err(CancelError::UnknownTransaction);
        };
        match machine.state() {
            TransactionState::Proceeding => {}
            TransactionState::Calling => return Err(CancelError::NoProvisionalResponse),
            _ => return Err(CancelError::AlreadyAnswered),
        }
        let Some(invite) = &tx.request else {
            return Err(CancelError::UnknownTransaction);
        };
        let cancel = message::cancel_for(invite).map_err(CancelError::Unbuildable)?;
        let (key, kind) = message::client_facts(&cancel).map_err(CancelError::Unbuildable)?;
        let flow = tx.flow;
        // A CANCEL for this INVITE already runs: the TU asked twice.
        if let Some(&existing) = self.clients.get(&key) {
            return Ok(existing);
        }
        if self.transactions.len() >= self.config.max_transactions {
            return Err(CancelError::Overloaded);
        }
        Ok(self.start_client(cancel, key, kind, flow, now))
    }

    /// The TU answers the request of a server transaction.
    pub fn send_response(
        &mut self,
        transaction: TransactionId,
        response: Message,
        now: Instant,
    ) -> Result<(), SendResponseError> {
        let Some(tx) = self.transactions.get_mut(&transaction) else {
            return Err(SendResponseError::UnknownTransaction);
        };
        let actions = tx.machine.on_tu_response(&response, now)?;
        if tx.machine.has_final_response() {
            tx.request = None;
        }
        tx.last_response = Some(message::encode(&response));
        tx.response_to_tag = message::to_tag(&response);
        self.apply(transaction, actions, None);
        Ok(())
    }

    /// The TU answers the request of a server transaction with a final response and
    /// the layer forgets the transaction at once, as a stateless UAS would (RFC 3261
    /// §8.2.7, §16.11): the response goes out once as an [`Output::Transmit`] over the
    /// request's flow, then [`Output::Terminated`] (`Normal`) follows. A retransmission
    /// of the request is then a new transaction for the TU, and no timer runs for it.
    ///
    /// Meant for Digest challenges (401/407): a challenge is cheap to recompute and
    /// holds no state, while keeping its transaction would let unauthenticated senders
    /// hold transaction memory (request and response) for Timer J (64×T1, 32 s) each
    /// and fill the table up to `max_transactions`. Over an unreliable transport the
    /// response is not retransmitted for an INVITE; its ACK then arrives as an
    /// [`Output::Ack`] with no transaction.
    ///
    /// Errors: `UnknownTransaction` for no such (or a client) transaction; `NotAllowed`
    /// for a provisional response, a non-response, or a transaction that already sent
    /// its final response. On error nothing is sent and the transaction stays.
    pub fn send_response_statelessly(
        &mut self,
        transaction: TransactionId,
        response: Message,
        now: Instant,
    ) -> Result<(), SendResponseError> {
        let Some(tx) = self.transactions.get(&transaction) else {
            return Err(SendResponseError::UnknownTransaction);
        };
        // Let the machine judge whether a final response is still allowed (not after
        // one was sent), on a copy: the transaction is dropped either way.
        let mut judged = tx.machine.clone();
        judged.on_tu_response(&response, now)?;
        if !judged.has_final_response() {
            return Err(SendResponseError::NotAllowed);
        }
        let flow = tx.flow;
        self.remove(transaction);
        self.outputs.push_back(Output::Transmit(Transmit {
            transaction,
            flow,
            payload: message::encode(&response),
        }));
        self.outputs.push_back(Output::Terminated {
            transaction,
            reason: TerminationReason::Normal,
        });
        Ok(())
    }

    /// The transport failed to send a [`Transmit`] of `transaction`.
    pub fn handle_transport_error(&mut self, transaction: TransactionId) {
        if let Some(tx) = self.transactions.get_mut(&transaction) {
            let actions = tx.machine.on_transport_error();
            self.apply(transaction, actions, None);
        }
    }

    fn allocate_id(&mut self) -> TransactionId {
        self.next_id += 1;
        TransactionId(self.next_id)
    }

    fn is_scheduled(&self, id: TransactionId, at: Instant) -> bool {
        self.transactions
            .get(&id)
            .is_some_and(|tx| tx.scheduled == Some(at))
    }

    /// Carries out a machine's actions; `deliver` is what `PassToTu` hands over.
    fn apply(&mut self, id: TransactionId, actions: Vec<Action>, mut deliver: Option<Output>) {
        let Some(tx) = self.transactions.get_mut(&id) else {
            return;
        };
        let mut terminated = None;
        for action in actions {
            let payload = match action {
                Action::SendRequest => tx.request.as_deref().map(message::encode),
                Action::SendAck => tx.ack.clone(),
                Action::SendResponse => tx.last_response.clone(),
                Action::SendTrying => tx.request.as_ref().map(|invite| {
                    let trying = message::trying_for(invite);
                    tx.last_response = Some(trying.clone());
                    trying
                }),
                Action::PassToTu => {
                    self.outputs.extend(deliver.take());
                    None
                }
                Action::ReportTransportError => {
                    self.outputs
                        .push_back(Output::TransportError { transaction: id });
                    None
                }
                Action::Terminate(reason) => {
                    terminated = Some(reason);
                    None
                }
            };
            if let Some(payload) = payload {
                self.outputs.push_back(Output::Transmit(Transmit {
                    transaction: id,
                    flow: tx.flow,
                    payload,
                }));
            }
        }
        if let Some(reason) = terminated {
            self.remove(id);
            self.outputs.push_back(Output::Terminated {
                transaction: id,
                reason,
            });
            return;
        }
        let next = tx.machine.next_deadline();
        if next != tx.scheduled {
            tx.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    fn remove(&mut self, id: TransactionId) {
        if let Some(tx) = self.transactions.remove(&id) {
            match tx.key {
                Key::Server(key) => self.servers.remove(&key),
                Key::Client(key) => self.clients.remove(&key),
            };
        }
        self.shrink_after_peak();
    }

    /// Gives back the tables' memory once a peak is over: a registration storm grows them
    /// to hundreds of thousands of slots (a transaction is ~460 bytes inline), which a
    /// `HashMap` would otherwise keep for the life of the process. Shrinking to twice the
    /// live count when below a quarter keeps the cost amortized O(1) per removal.
    fn shrink_after_peak(&mut self) {
        const FLOOR: usize = 1024;
        let live = self.transactions.len().max(FLOOR);
        // After `shrink_to(2 × live)` the capacity is at most 4 × live: no shrink at once again.
        if self.transactions.capacity() > live * 4 {
            let target = live * 2;
            self.transactions.shrink_to(target);
            self.servers.shrink_to(target);
            self.clients.shrink_to(target);
            // Stale timer entries (already fired or re-armed) go with the shrink.
            let transactions = &self.transactions;
            self.timers.retain(|Reverse((at, id))| {
                transactions
                    .get(id)
                    .is_some_and(|tx| tx.scheduled == Some(*at))
            });
            self.timers.shrink_to(target);
        }
    }
}

/// The status code of a response the TU hands over; a request is not one.
fn response_status(response: &Message) -> Result<u16, SendResponseError> {
    message::status(response).ok_or(SendResponseError::NotAllowed)
}
