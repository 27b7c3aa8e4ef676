//! One SIP event loop: it owns a transaction layer and its timers, and turns the messages of
//! the flows hashed to it into transactions and responses. Flows never move between shards,
//! so a request's retransmissions (same flow) always meet its transaction, without locks.

use super::answer::{self, Identity};
use bytes::Bytes;
use sip_message::FlowId;
use sip_message::Message;
use sip_transaction::{
    CancelTarget, Output, ReceiveError, TransactionId, TransactionLayer, Transmit,
};
use sipd_registrar::service::{RegisterOutcome, RegistrarService};
use sipd_registrar::Source;
use sipd_transport::{Inbound, Transports};
use std::future::pending;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// What every shard shares, read-only.
pub struct Context {
    pub transports: Transports,
    pub registrar: RegistrarService,
    pub domain: String,
    /// Every listener address: OPTIONS to one of them is for the server.
    pub addresses: Vec<IpAddr>,
    /// Prefix of the To tags this node generates (unique per node and shard).
    pub tag_prefix: String,
}

/// The flow a message arrived on.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    flow: FlowId,
    remote: SocketAddr,
    local: SocketAddr,
}

/// A REGISTER the registrar finished.
struct Completion {
    transaction: TransactionId,
    flow: FlowId,
    outcome: RegisterOutcome,
}

pub struct Shard {
    context: Arc<Context>,
    layer: TransactionLayer,
    completions: mpsc::UnboundedSender<Completion>,
    /// REGISTERs handed to the registrar and not answered yet.
    pending_registers: usize,
    next_tag: u64,
}

impl Shard {
    /// Runs until `stop` turns true (or the inbound channel closes), then until every
    /// REGISTER in flight is answered.
    pub async fn run(
        context: Arc<Context>,
        layer: TransactionLayer,
        mut inbound: mpsc::Receiver<Inbound>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (completions, mut completed) = mpsc::unbounded_channel();
        let mut shard = Shard {
            context,
            layer,
            completions,
            pending_registers: 0,
            next_tag: 0,
        };
        let mut accepting = true;
        loop {
            let deadline = shard.layer.poll_timeout();
            let timer = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                message = inbound.recv(), if accepting => match message {
                    Some(message) => shard.handle_inbound(message).await,
                    None => accepting = false,
                },
                Some(done) = completed.recv() => shard.complete(done).await,
                () = timer => {
                    shard.layer.handle_timeout(Instant::now());
                    shard.drain().await;
                }
                _ = stop.changed(), if accepting => accepting = false,
            }
            if !accepting && shard.pending_registers == 0 {
                break;
            }
        }
    }

    async fn handle_inbound(&mut self, inbound: Inbound) {
        let Inbound {
            flow,
            local,
            remote,
            message: raw,
        } = inbound;
        let transport = flow.transport();
        let message = match Message::parse(raw.clone()) {
            Ok(message) => message,
            Err(error) => {
                self.context.transports.record_unparsable(transport);
                debug!(%flow, %error, "unparsable SIP message");
                if let Some(response) = sip_message::malformed::bad_request(&raw, &error.to_string()) {
                    self.send(flow, response).await;
                }
                return;
            }
        };
        if message.is_response() {
            // No client transactions yet (the proxy comes later): nothing to match.
            debug!(%flow, "SIP response dropped: sipd sends no requests yet");
            return;
        }
        if let Err(rejection) = message.validate() {
            self.context.transports.record_unparsable(transport);
            debug!(%flow, %rejection, "invalid SIP request");
            if !is_ack(&message) {
                let reason = format!(
                    "{} - {}",
                    sip_message::reason_phrase(rejection.status),
                    rejection.error
                );
                let tag = self.new_tag();
                let response = message
                    .response(rejection.status)
                    .reason(&header_safe(&reason))
                    .to_tag(&tag)
                    .build_bytes();
                self.send(flow, response).await;
            }
            return;
        }
        let message = message.with_received(remote).unwrap_or(message);
        match self.layer.handle_message(message, flow, Instant::now()) {
            Ok(()) => {}
            Err(ReceiveError::Overloaded(request)) => {
                warn!(%flow, "transaction limit reached: 503");
                let tag = self.new_tag();
                let response = request
                    .response(503)
                    .header("Retry-After", "5")
                    .to_tag(&tag)
                    .build_bytes();
                self.send(flow, response).await;
            }
            Err(ReceiveError::Unmatchable(error)) => {
                debug!(%flow, %error, "SIP request dropped: no transaction can match it");
            }
        }
        let arrival = Arrival {
            flow,
            remote,
            local,
        };
        self.drain_for(Some(arrival)).await;
    }

    async fn drain(&mut self) {
        self.drain_for(None).await
    }

    /// Acts on every output of the layer. `arrival` is the flow of the message just handed
    /// in: a new transaction's request can only come from it.
    async fn drain_for(&mut self, arrival: Option<Arrival>) {
        while let Some(output) = self.layer.poll_output() {
            match output {
                Output::Transmit(transmit) => self.transmit(transmit).await,
                Output::Request {
                    transaction,
                    request,
                    ..
                } => {
                    let Some(arrival) = arrival else { continue };
                    if answer::is_register(request.method()) {
                        self.start_register(transaction, request, arrival);
                    } else {
                        let identity = Identity {
                            domain: &self.context.domain,
                            addresses: &self.context.addresses,
                            arrived_on: arrival.local.ip(),
                        };
                        let decision = answer::answer(&request, &identity);
                        let tag = self.new_tag();
                        let response = answer::build(&request, decision, &tag);
                        self.respond(transaction, response);
                    }
                }
                Output::Cancel {
                    transaction,
                    request,
                    target,
                    ..
                } => {
                    if arrival.is_none() {
                        continue;
                    }
                    // No INVITE is ever left pending (they get 405), so a matching CANCEL
                    // only needs its own 200.
                    let status = match target {
                        CancelTarget::NotFound => 481,
                        CancelTarget::Pending(_) | CancelTarget::Answered(_) => 200,
                    };
                    let tag = self.new_tag();
                    let response = request.response(status).to_tag(&tag).build_bytes();
                    self.respond(transaction, response);
                }
                // ACKs end our 405s and are never answered; responses cannot arrive yet.
                Output::Terminated { .. }
                | Output::Ack { .. }
                | Output::Response { .. }
                | Output::StrayResponse { .. }
                | Output::TransportError { .. } => {}
            }
        }
    }

    /// Hands the REGISTER to the registrar; its answer comes back through `completions`.
    fn start_register(&mut self, transaction: TransactionId, request: Message, arrival: Arrival) {
        let Arrival { flow, remote, local } = arrival;
        self.pending_registers += 1;
        let registrar = self.context.registrar.clone();
        let completions = self.completions.clone();
        tokio::spawn(async move {
            let source = Source { remote, local, flow };
            let outcome = registrar
                .handle_register(&request, source, SystemTime::now())
                .await;
            // The shard outlives every task it spawned (it waits for them), so this succeeds.
            let _ = completions.send(Completion {
                transaction,
                flow,
                outcome,
            });
        });
    }

    async fn complete(&mut self, done: Completion) {
        self.pending_registers = self.pending_registers.saturating_sub(1);
        if let Some(registered) = done.outcome.flow_registered {
            let pinned = self
                .context
                .transports
                .set_flow_registered(done.flow, registered);
            if registered && pinned.is_err() {
                // The connection closed while the registrar committed: its FlowClosed went
                // by before this binding existed, so drop the binding now.
                self.context.registrar.flow_closed(done.flow);
            }
        }
        self.respond(done.transaction, done.outcome.response);
        self.drain().await;
    }

    /// Answers a server transaction; the bytes go out with the next drain.
    ///
    /// A 401 challenge is sent statelessly: the transaction is forgotten at once instead
    /// of holding the request and response for Timer J (32 s over UDP). A challenge is
    /// cheap to recompute (a retransmitted REGISTER is simply challenged again, with a
    /// fresh nonce), and keeping it would let unauthenticated senders fill the
    /// transaction table (`sip.max_transactions`) and halve the REGISTER rate a flow
    /// can sustain.
    fn respond(&mut self, transaction: TransactionId, response: Bytes) {
        let response = match Message::parse(response) {
            Ok(response) => response,
            Err(error) => {
                warn!(%error, "built an unparsable response: not sent");
                return;
            }
        };
        let now = Instant::now();
        let sent = if response.status() == Some(401) {
            self.layer
                .send_response_statelessly(transaction, response, now)
        } else {
            self.layer.send_response(transaction, response, now)
        };
        if let Err(error) = sent {
            // The transaction timed out while the registrar worked, e.g. a slow database.
            debug!(%transaction, ?error, "response not sent");
        }
    }

    async fn transmit(&mut self, transmit: Transmit) {
        let flow = transmit.flow;
        if let Err(error) = self.context.transports.send(flow, transmit.payload).await {
            debug!(%flow, %error, "SIP send failed");
            self.layer.handle_transport_error(transmit.transaction);
        }
    }

    /// A response sent outside any transaction (400, 503, stateless answers).
    async fn send(&self, flow: FlowId, response: Bytes) {
        if let Err(error) = self.context.transports.send(flow, response).await {
            debug!(%flow, %error, "SIP send failed");
        }
    }

    fn new_tag(&mut self) -> String {
        self.next_tag += 1;
        format!("{}{:x}", self.context.tag_prefix, self.next_tag)
    }
}

fn is_ack(message: &Message) -> bool {
    message
        .method()
        .is_some_and(|method| method.as_str() == "ACK")
}

/// A reason phrase keeps to printable ASCII (no CR/LF can reach the wire).
fn header_safe(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                ' '
            }
        })
        .take(160)
        .collect()
}
