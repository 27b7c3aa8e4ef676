//! The transaction layer: owns every transaction, routes messages to them, runs
//! their timers on the caller's clock and queues what must happen next.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use bytes::Bytes;
use sip_message::{FlowId, Message};

use crate::completed::CompletedRecords;
use crate::config::{Config, ConfigError, Timers};
use crate::invite_client::InviteClient;
use crate::invite_server::InviteServer;
use crate::key::{ClientKey, KeyIndex, ServerKey};
use crate::machine::{earliest, Action, TerminationReason, TransactionState};
use crate::message::{self, MessageError, RequestKind};
use crate::non_invite_client::NonInviteClient;
use crate::non_invite_server::NonInviteServer;

/// Names one transaction for as long as it lives; never reused by a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(pub(crate) u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx{}", self.0)
    }
}

/// Bytes to put on the wire. If sending fails, report it with
/// [`TransactionLayer::handle_transport_error`] and this `transaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The transaction sending. A response resent from a completed record (see
    /// [`Config::max_completed`]) names the transaction the record replaced, which already
    /// reported [`Output::Terminated`]: a transport error for it is ignored.
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
    /// The transaction is over for the TU, reported once per transaction: its id is
    /// unknown from now on ([`TransactionLayer::state`] is `None`), and later messages for
    /// it go to the TU as new or stray, with one exception.
    ///
    /// A non-INVITE server transaction over an unreliable transport reports it (`Normal`)
    /// right after its final response's [`Output::Transmit`], not when Timer J fires: the
    /// layer then keeps only a compact record of it that resends the response to each
    /// retransmission of the request until Timer J (64×T1), and reports nothing more (see
    /// [`Config::max_completed`]): neither the expiry of the record nor a failure to send
    /// the response (the record stays and answers the next retransmission). Likewise an
    /// INVITE transaction reports it right after its 2xx (RFC 6026 Accepted): a server's
    /// record then absorbs INVITE retransmissions until Timer L, a client's hands 2xx
    /// retransmissions and other forks' 2xx to the TU as [`Output::Response`]s under the
    /// same transaction id until Timer M.
    Terminated {
        transaction: TransactionId,
        reason: TerminationReason,
    },
}

/// Why a received message was not taken in.
#[derive(Debug, Clone)]
pub enum ReceiveError {
    /// The transaction limit is reached (or, a 2^-64 chance, a live transaction's key has
    /// the same keyed hash): answer this request 503 statelessly.
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
    /// A transaction with this branch and method already exists (or, a 2^-64 chance, one
    /// whose key has the same keyed hash): another branch avoids it.
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
        timers: &Timers,
        response: &Message,
        now: Instant,
    ) -> Result<Vec<Action>, SendResponseError> {
        let status = response_status(response)?;
        let accepted = match self {
            Self::InviteServer(m) => m.on_tu_response(timers, status, now),
            Self::NonInviteServer(m) => m.on_tu_response(timers, status, now),
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

    /// When a transaction that can live on as a compact record (see `completed`) ends:
    /// * a non-INVITE server in Completed over UDP (Timer J): it only resends its final
    ///   response to retransmissions;
    /// * an INVITE server or client in RFC 6026 Accepted (Timers L and M): the server only
    ///   absorbs INVITE retransmissions (a 2xx is the TU's to resend), the client only
    ///   hands 2xx retransmissions and other forks' 2xx to the TU.
    ///
    /// At thousands of calls per second these are most of the layer's transactions.
    fn completed_until(&self) -> Option<Instant> {
        match self {
            Self::NonInviteServer(m) if m.state() == TransactionState::Completed => {
                m.next_deadline()
            }
            Self::InviteServer(m) if m.state() == TransactionState::Accepted => m.next_deadline(),
            Self::InviteClient(m) if m.state() == TransactionState::Accepted => m.next_deadline(),
            _ => None,
        }
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

    fn on_timeout(&mut self, timers: &Timers, now: Instant) -> Vec<Action> {
        match self {
            Self::InviteClient(m) => m.on_timeout(now),
            Self::NonInviteClient(m) => m.on_timeout(timers, now),
            Self::InviteServer(m) => m.on_timeout(timers, now),
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

#[derive(Debug)]
enum Key {
    Server(ServerKey),
    Client(ClientKey),
}

#[derive(Debug)]
struct Transaction {
    machine: Machine,
    key: Key,
    flow: FlowId,
    kept: Kept,
    /// The deadline this transaction has in the timer heap; other heap entries
    /// for it are stale.
    scheduled: Option<Instant>,
}

/// The one message a transaction may still have to send again or build from. Each state
/// needs at most one, and once a final response is through most need none: calls in
/// progress hold their INVITE transactions in Accepted for 64×T1 after the 2xx.
#[derive(Debug)]
enum Kept {
    Nothing,
    /// Client until its final response (timers A and E resend it; an INVITE client builds
    /// its CANCEL and ACK from it, and in Proceeding keeps only the lines they need, see
    /// [`message::invite_skeleton`]); INVITE server until it sent a response (the 100
    /// Trying is built from it).
    Request(Bytes),
    /// Server in Proceeding, or INVITE server in Completed: the latest response, resent
    /// to retransmitted requests and by timer G. An INVITE server in Accepted keeps none:
    /// the TU retransmits its 2xx itself.
    Response(Bytes),
    /// INVITE client in Completed: the ACK for the non-2xx final, resent to each
    /// retransmission of it.
    Ack(Bytes),
}

impl Transaction {
    /// Forgets what the state no longer needs (see [`Kept`]).
    fn shed(&mut self) {
        let needed = matches!(
            (&self.machine, self.machine.state()),
            (
                _,
                TransactionState::Calling | TransactionState::Trying | TransactionState::Proceeding
            ) | (
                Machine::InviteClient(_) | Machine::InviteServer(_),
                TransactionState::Completed
            )
        );
        if !needed {
            self.kept = Kept::Nothing;
        }
    }
}

/// Output queue slots kept between bursts.
const OUTPUTS_KEPT: usize = 64;

/// All transactions of one SIP element. See the [crate docs](crate) for the drive loop.
#[derive(Debug)]
pub struct TransactionLayer {
    config: Config,
    next_id: u64,
    /// Boxed: a table keeps up to twice its entries' room in free slots, which would
    /// double the cost of a transaction inline.
    transactions: HashMap<TransactionId, Box<Transaction>>,
    /// Keys the hashes of transaction keys in `servers`, `clients` and `completed`:
    /// SipHash with keys drawn at random for this layer, so nobody outside can craft
    /// keys that collide.
    key_hasher: RandomState,
    servers: KeyIndex,
    clients: KeyIndex,
    /// RFC 2543 INVITE servers: the To tag of their latest response, which their ACK
    /// carries (§17.2.3). Rare, so not a field of every transaction.
    legacy_response_tags: HashMap<TransactionId, Box<str>>,
    /// Min-heap of (deadline, transaction), with stale entries skipped lazily.
    timers: BinaryHeap<Reverse<(Instant, TransactionId)>>,
    completed: CompletedRecords,
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
            key_hasher: RandomState::new(),
            servers: KeyIndex::default(),
            clients: KeyIndex::default(),
            legacy_response_tags: HashMap::new(),
            timers: BinaryHeap::new(),
            completed: CompletedRecords::new(config.max_completed),
            outputs: VecDeque::new(),
        })
    }

    /// Number of live transactions: those not yet reported [`Output::Terminated`], which
    /// [`Config::max_transactions`] bounds. Completed records are not among them (see
    /// [`completed_len`](Self::completed_len)).
    pub fn len(&self) -> usize {
        self.transactions.len()
    }

    /// Number of completed non-INVITE server transactions kept as compact records until
    /// their Timer J, which [`Config::max_completed`] bounds.
    pub fn completed_len(&self) -> usize {
        self.completed.len()
    }

    /// Whether the layer holds nothing at all: no live transaction and no completed
    /// record, so no timer is pending ([`poll_timeout`](Self::poll_timeout) is `None`).
    pub fn is_empty(&self) -> bool {
        self.transactions.is_empty() && self.completed.len() == 0
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
        let mut transaction_timer = None;
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if self.is_scheduled(id, at) {
                transaction_timer = Some(at);
                break;
            }
            self.timers.pop();
        }
        earliest(&[transaction_timer, self.completed.next_deadline()])
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.completed.expire(now);
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
            let actions = tx.machine.on_timeout(&self.config.timers, now);
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
        let Some((key, status)) = facts else {
            self.outputs
                .push_back(Output::StrayResponse { response, flow });
            return Ok(());
        };
        let Some(id) = self.find_client(&key) else {
            match self.completed.find(self.key_hash(&key)) {
                // An accepted INVITE client's record: a 2xx (retransmitted, or another
                // fork's) still goes to the TU under its transaction; anything else is
                // absorbed, as in Accepted.
                Some(record) if (200..300).contains(&status) => {
                    self.outputs.push_back(Output::Response {
                        transaction: record.transaction,
                        response,
                    })
                }
                Some(_) => {}
                None => self
                    .outputs
                    .push_back(Output::StrayResponse { response, flow }),
            }
            return Ok(());
        };
        let Some(tx) = self.transactions.get_mut(&id) else {
            return Ok(());
        };
        let calling = tx.machine.state() == TransactionState::Calling;
        let actions = match &mut tx.machine {
            Machine::InviteClient(machine) => machine.on_response(&self.config.timers, status, now),
            Machine::NonInviteClient(machine) => {
                machine.on_response(&self.config.timers, status, now)
            }
            Machine::InviteServer(_) | Machine::NonInviteServer(_) => Vec::new(),
        };
        if let (Kept::Request(invite), true) = (
            &tx.kept,
            calling && tx.machine.state() == TransactionState::Proceeding,
        ) {
            // No more retransmissions: the call rings, for seconds, with what the CANCEL
            // and the ACK need.
            if let Ok(skeleton) = message::invite_skeleton(invite) {
                tx.kept = Kept::Request(skeleton);
            }
        }
        if let (Kept::Request(invite), true) = (&tx.kept, actions.contains(&Action::SendAck)) {
            // Built from the first final response, reused for its retransmissions, and
            // the INVITE goes. If it cannot be built (no To), the server's timer H ends
            // its retransmissions.
            tx.kept = message::ack_for(invite, &response).map_or(Kept::Nothing, Kept::Ack);
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
        let key_hash = self.key_hash(&facts.key);
        if let Some(id) = self.find_server(&facts.key, key_hash) {
            let actions = match self.transactions.get_mut(&id).map(|tx| &mut tx.machine) {
                Some(Machine::InviteServer(machine)) => machine.on_retransmission(),
                Some(Machine::NonInviteServer(machine)) => machine.on_retransmission(),
                _ => Vec::new(),
            };
            self.apply(id, actions, None);
            return Ok(());
        }
        if let Some(record) = self.completed.find(key_hash) {
            // An accepted INVITE's record only absorbs; a completed request's resends.
            if !record.response.is_empty() {
                self.outputs.push_back(Output::Transmit(Transmit {
                    transaction: record.transaction,
                    flow: record.flow,
                    payload: record.response.clone(),
                }));
            }
            return Ok(());
        }
        // A full table, or (a 2^-64 chance) another live key with this hash.
        if self.transactions.len() >= self.config.max_transactions
            || !self.servers.is_vacant(key_hash)
        {
            return Err(ReceiveError::Overloaded(request));
        }
        let reliable = flow.is_reliable();
        let (machine, actions) = if facts.kind == RequestKind::Invite {
            let trying_delay = self.config.invite_trying_delay;
            let (machine, actions) = InviteServer::start(reliable, trying_delay, now);
            (Machine::InviteServer(machine), actions)
        } else {
            let (machine, actions) = NonInviteServer::start(reliable);
            (Machine::NonInviteServer(machine), actions)
        };
        let id = self.allocate_id();
        // Only an INVITE server builds from its request (the 100 Trying).
        let kept = if facts.kind == RequestKind::Invite {
            Kept::Request(message::encode(&request))
        } else {
            Kept::Nothing
        };
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
        self.servers.insert(key_hash, id);
        self.transactions.insert(
            id,
            Box::new(Transaction {
                machine,
                key: Key::Server(facts.key),
                flow,
                kept,
                scheduled: None,
            }),
        );
        self.apply(id, actions, Some(deliver));
        Ok(())
    }

    /// The INVITE server transaction a CANCEL with this key cancels (§9.2).
    fn cancel_target(&self, cancel_key: &ServerKey) -> CancelTarget {
        let invite_key = cancel_key.with_method(message::INVITE);
        let invite_hash = self.key_hash(&invite_key);
        let Some(invite) = self.find_server(&invite_key, invite_hash) else {
            // An INVITE answered with a 2xx lives on as a record.
            return match self.completed.find(invite_hash) {
                Some(record) => CancelTarget::Answered(record.transaction),
                None => CancelTarget::NotFound,
            };
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
        let invite = self.find_server(&key, self.key_hash(&key)).or_else(|| {
            // RFC 2543: the INVITE had no To tag; the ACK carries our response's.
            let invite_key = key.without_to_tag()?;
            let id = self.find_server(&invite_key, self.key_hash(&invite_key))?;
            (self.legacy_response_tags.get(&id).map(|tag| &**tag) == to_tag).then_some(id)
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
            Some(Machine::InviteServer(machine)) => machine.on_ack(&self.config.timers, now),
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
        let key_hash = self.key_hash(&key);
        // Another live key with this hash is a 2^-64 chance; another branch avoids it.
        if !self.clients.is_vacant(key_hash) {
            return Err(SendRequestError::DuplicateBranch);
        }
        if self.transactions.len() >= self.config.max_transactions {
            return Err(SendRequestError::Overloaded);
        }
        Ok(self.start_client(request, key, key_hash, kind, flow, now))
    }

    fn start_client(
        &mut self,
        request: Message,
        key: ClientKey,
        key_hash: u64,
        kind: RequestKind,
        flow: FlowId,
        now: Instant,
    ) -> TransactionId {
        let reliable = flow.is_reliable();
        let timers = &self.config.timers;
        let (machine, actions) = if kind == RequestKind::Invite {
            let (machine, actions) = InviteClient::start(timers, reliable, now);
            (Machine::InviteClient(machine), actions)
        } else {
            let (machine, actions) = NonInviteClient::start(timers, reliable, now);
            (Machine::NonInviteClient(machine), actions)
        };
        let id = self.allocate_id();
        self.clients.insert(key_hash, id);
        self.transactions.insert(
            id,
            Box::new(Transaction {
                machine,
                key: Key::Client(key),
                flow,
                kept: Kept::Request(message::encode(&request)),
                scheduled: None,
            }),
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
        let Kept::Request(invite) = &tx.kept else {
            return Err(CancelError::UnknownTransaction);
        };
        let cancel = message::cancel_for(invite).map_err(CancelError::Unbuildable)?;
        let (key, kind) = message::client_facts(&cancel).map_err(CancelError::Unbuildable)?;
        let flow = tx.flow;
        // A CANCEL for this INVITE already runs: the TU asked twice.
        let key_hash = self.key_hash(&key);
        if let Some(existing) = self.find_client(&key) {
            return Ok(existing);
        }
        // A full table, or (a 2^-64 chance) another live key with this hash.
        if self.transactions.len() >= self.config.max_transactions
            || !self.clients.is_vacant(key_hash)
        {
            return Err(CancelError::Overloaded);
        }
        Ok(self.start_client(cancel, key, key_hash, kind, flow, now))
    }

    /// The TU answers the request of a server transaction.
    ///
    /// A final response to a non-INVITE request over an unreliable transport ends the
    /// transaction for the TU (see [`Output::Terminated`]); a connection ends it too.
    pub fn send_response(
        &mut self,
        transaction: TransactionId,
        response: Message,
        now: Instant,
    ) -> Result<(), SendResponseError> {
        let Some(tx) = self.transactions.get_mut(&transaction) else {
            return Err(SendResponseError::UnknownTransaction);
        };
        let actions = tx
            .machine
            .on_tu_response(&self.config.timers, &response, now)?;
        tx.kept = Kept::Response(message::encode(&response));
        if let (Machine::InviteServer(_), Key::Server(ServerKey::Legacy(_))) =
            (&tx.machine, &tx.key)
        {
            match message::to_tag(&response) {
                Some(tag) => self.legacy_response_tags.insert(transaction, tag),
                None => self.legacy_response_tags.remove(&transaction),
            };
        }
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
    /// holds no state, while answering statefully would let unauthenticated senders hold
    /// memory for Timer J (64×T1, 32 s) each: a completed record for a non-INVITE, which
    /// pushes other senders' records out early past [`Config::max_completed`], and a
    /// transaction counted in `max_transactions` for an INVITE. Over an unreliable
    /// transport the response is not retransmitted for an INVITE; its ACK then arrives as
    /// an [`Output::Ack`] with no transaction.
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
        judged.on_tu_response(&self.config.timers, &response, now)?;
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

    /// The transport failed to send a [`Transmit`] of `transaction`. Ignored once the
    /// transaction reported [`Output::Terminated`].
    pub fn handle_transport_error(&mut self, transaction: TransactionId) {
        if let Some(tx) = self.transactions.get_mut(&transaction) {
            let actions = tx.machine.on_transport_error();
            self.apply(transaction, actions, None);
        }
    }

    fn key_hash(&self, key: &impl Hash) -> u64 {
        self.key_hasher.hash_one(key)
    }

    fn find_server(&self, key: &ServerKey, key_hash: u64) -> Option<TransactionId> {
        self.servers.find(key_hash, |id| {
            self.transactions
                .get(&id)
                .is_some_and(|tx| matches!(&tx.key, Key::Server(own) if own == key))
        })
    }

    fn find_client(&self, key: &ClientKey) -> Option<TransactionId> {
        self.clients.find(self.key_hash(key), |id| {
            self.transactions
                .get(&id)
                .is_some_and(|tx| matches!(&tx.key, Key::Client(own) if own == key))
        })
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
                Action::SendRequest => match &tx.kept {
                    Kept::Request(request) => Some(request.clone()),
                    _ => None,
                },
                Action::SendAck => match &tx.kept {
                    Kept::Ack(ack) => Some(ack.clone()),
                    _ => None,
                },
                Action::SendResponse => match &tx.kept {
                    Kept::Response(response) => Some(response.clone()),
                    _ => None,
                },
                Action::SendTrying => match &tx.kept {
                    Kept::Request(invite) => message::trying_for(invite).ok().inspect(|trying| {
                        tx.kept = Kept::Response(trying.clone());
                    }),
                    _ => None,
                },
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
        if let Some(expires_at) = tx.machine.completed_until() {
            self.compact(id, expires_at);
            return;
        }
        tx.shed();
        let next = tx.machine.next_deadline();
        if next != tx.scheduled {
            tx.scheduled = next;
            if let Some(at) = next {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// Replaces a transaction that only matches retransmissions now by its record (see
    /// [`Machine::completed_until`]), reporting it terminated (see [`Output::Terminated`]).
    fn compact(&mut self, id: TransactionId, expires_at: Instant) {
        let Some(tx) = self.remove(id) else {
            return;
        };
        let (key_hash, response) = match (&tx.key, &tx.machine, &tx.kept) {
            (Key::Server(key), Machine::NonInviteServer(_), Kept::Response(response)) => {
                (self.key_hash(key), &response[..])
            }
            (Key::Server(key), Machine::InviteServer(_), _) => (self.key_hash(key), &[][..]),
            (Key::Client(key), _, _) => (self.key_hash(key), &[][..]),
            _ => (0, &[][..]),
        };
        if key_hash != 0 || !response.is_empty() {
            self.completed
                .insert(key_hash, id, tx.flow, response, expires_at);
        }
        self.outputs.push_back(Output::Terminated {
            transaction: id,
            reason: TerminationReason::Normal,
        });
    }

    fn remove(&mut self, id: TransactionId) -> Option<Box<Transaction>> {
        let tx = self.transactions.remove(&id)?;
        match &tx.key {
            Key::Server(key) => self.servers.remove(self.key_hash(key), id),
            Key::Client(key) => self.clients.remove(self.key_hash(key), id),
        }
        if !self.legacy_response_tags.is_empty() {
            self.legacy_response_tags.remove(&id);
        }
        self.shrink_after_peak();
        Some(tx)
    }

    /// Gives back the tables' memory once a peak is over (see [`shrunk_capacity`]).
    fn shrink_after_peak(&mut self) {
        if let Some(target) = shrunk_capacity(self.transactions.capacity(), self.transactions.len())
        {
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

/// The capacity to shrink a table to once a peak is over, if it should: a storm grows the
/// tables to hundreds of thousands of slots, which a `HashMap` or `VecDeque` would
/// otherwise keep for the life of the process. Shrinking to twice the live count when
/// below a quarter (above a floor) keeps the cost amortized O(1) per removal: after it the
/// capacity is at most 4 × live, so no shrink follows at once.
pub(crate) fn shrunk_capacity(capacity: usize, live: usize) -> Option<usize> {
    const FLOOR: usize = 1024;
    let live = live.max(FLOOR);
    (capacity > live * 4).then_some(live * 2)
}

/// The status code of a response the TU hands over; a request is not one.
fn response_status(response: &Message) -> Result<u16, SendResponseError> {
    message::status(response).ok_or(SendResponseError::NotAllowed)
}
