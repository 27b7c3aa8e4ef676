//! One SIP event loop: it owns a sans-IO `Proxy` (transaction layer and proxy core) and its
//! timers, and does the I/O the proxy asks for: bytes onto flows, REGISTERs to the
//! registrar, and the proxy's lookups (authentication, location, next hops) through the
//! proxy's service shell. Lookups that memory answers (cached credentials, the location
//! service, an open flow) are answered at once; the others run as tasks whose answers come
//! back through `completions`, so the loop never waits on the database or the network.

use sip_message::{FlowId, Message};
use sip_transaction::TransactionId;
use sipd_proxy::service::{log_event, ProxyService};
use sipd_proxy::{Arrival, AuthRefusal, BranchId, Callee, ContextId, HopFailure, Output, Proxy};
use sipd_registrar::service::{RegisterOutcome, RegistrarService};
use sipd_registrar::{EndpointInfo, Source};
use sipd_transport::{Inbound, TransportEvent, Transports};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, watch};
use tracing::debug;

/// At most this many queued messages are handled in one pass of the loop.
const BATCH: usize = 32;

/// What every shard shares.
pub struct Context {
    pub transports: Transports,
    pub registrar: RegistrarService,
    pub service: ProxyService,
}

/// The answer to something the shard started in a task.
enum Completion {
    Register {
        transaction: TransactionId,
        flow: FlowId,
        outcome: RegisterOutcome,
    },
    Authenticated {
        context: ContextId,
        result: Result<EndpointInfo, AuthRefusal>,
    },
    Located {
        context: ContextId,
        result: Result<Option<Callee>, ()>,
    },
    Hop {
        context: ContextId,
        branch: BranchId,
        result: Result<FlowId, HopFailure>,
    },
    /// A send outside any transaction finished.
    Sent,
}

pub struct Shard {
    context: Arc<Context>,
    /// Shard 0 also tells the registrar of closed connections.
    index: usize,
    proxy: Proxy,
    completions: mpsc::UnboundedSender<Completion>,
    /// Tasks started and not completed yet.
    in_flight: usize,
}

impl Shard {
    /// Runs until `stop` turns true (or the inbound channel closes), then until every task
    /// it started has completed.
    pub async fn run(
        context: Arc<Context>,
        index: usize,
        proxy: Proxy,
        mut inbound: mpsc::Receiver<TransportEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        let (completions, mut completed) = mpsc::unbounded_channel();
        let mut shard = Shard {
            context,
            index,
            proxy,
            completions,
            in_flight: 0,
        };
        let mut accepting = true;
        // One timer, moved only when the proxy's next deadline moves: re-creating it on every
        // pass would register it with the runtime's timer wheel for every message.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed = None;
        loop {
            let deadline = shard.proxy.poll_timeout();
            if deadline != armed {
                if let Some(at) = deadline {
                    timer.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            tokio::select! {
                input = inbound.recv(), if accepting => match input {
                    Some(event) => {
                        shard.handle_event(event).await;
                        // What queued up meanwhile, before looking at timers again.
                        for _ in 1..BATCH {
                            match inbound.try_recv() {
                                Ok(event) => shard.handle_event(event).await,
                                Err(_) => break,
                            }
                        }
                    }
                    None => accepting = false,
                },
                Some(done) = completed.recv() => shard.complete(done).await,
                () = &mut timer, if armed.is_some() => {
                    armed = None;
                    shard.proxy.handle_timeout(Instant::now());
                    shard.drain().await;
                }
                _ = stop.changed(), if accepting => accepting = false,
            }
            if !accepting && shard.in_flight == 0 {
                break;
            }
        }
    }

    async fn handle_event(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Message(inbound) => self.handle_received(inbound).await,
            TransportEvent::FlowClosed(flow) => {
                if self.index == 0 {
                    self.context.registrar.flow_closed(flow);
                }
                self.proxy.handle_flow_closed(flow, Instant::now());
                self.drain().await;
            }
        }
    }

    async fn handle_received(&mut self, inbound: Inbound) {
        let Inbound {
            flow,
            local,
            remote,
            message: raw,
            parsed,
        } = inbound;
        let message = match parsed {
            Ok(message) => message,
            Err(error) => {
                self.context.transports.record_unparsable(flow.transport());
                debug!(%flow, %error, "unparsable SIP message");
                if let Some(response) =
                    sip_message::malformed::bad_request(&raw, &error.to_string())
                {
                    self.send(flow, response).await;
                }
                return;
            }
        };
        let arrival = Arrival {
            flow,
            remote,
            local,
        };
        self.proxy.handle_message(message, arrival, Instant::now());
        self.drain().await;
    }

    /// Does everything the proxy asks for, until it asks for nothing more.
    async fn drain(&mut self) {
        while let Some(output) = self.proxy.poll_output() {
            match output {
                Output::Transmit {
                    flow,
                    payload,
                    transaction,
                } => {
                    if let Err(error) = self.context.transports.send(flow, payload).await {
                        debug!(%flow, %error, "SIP send failed");
                        if let Some(transaction) = transaction {
                            self.proxy
                                .handle_transport_error(transaction, Instant::now());
                        }
                    }
                }
                Output::Register {
                    transaction,
                    request,
                    arrival,
                } => self.start_register(transaction, request, arrival),
                Output::Authenticate { context, request } => {
                    match self.context.service.authenticate_now(&request) {
                        Some(result) => {
                            self.proxy
                                .handle_authenticated(context, result, Instant::now())
                        }
                        None => {
                            let service = self.context.service.clone();
                            self.spawn(async move {
                                let result = service.authenticate(&request).await;
                                Completion::Authenticated { context, result }
                            });
                        }
                    }
                }
                Output::Locate { context, username } => {
                    match self.context.service.locate_now(&username) {
                        Some(result) => self.proxy.handle_located(context, result, Instant::now()),
                        None => {
                            let service = self.context.service.clone();
                            self.spawn(async move {
                                let result = service.locate(&username).await;
                                Completion::Located { context, result }
                            });
                        }
                    }
                }
                Output::OpenHop {
                    context,
                    branch,
                    hop,
                } => match self.context.service.hop_now(&hop) {
                    Some(result) => self
                        .proxy
                        .handle_hop(context, branch, result, Instant::now()),
                    None => {
                        let service = self.context.service.clone();
                        self.spawn(async move {
                            let result = service.open(&hop).await;
                            Completion::Hop {
                                context,
                                branch,
                                result,
                            }
                        });
                    }
                },
                Output::SendStateless { hop, message } => {
                    match self.context.service.hop_now(&hop) {
                        Some(Ok(flow)) => self.send(flow, message).await,
                        Some(Err(_)) => {}
                        None => {
                            let service = self.context.service.clone();
                            self.spawn(async move {
                                service.send_stateless(&hop, message).await;
                                Completion::Sent
                            });
                        }
                    }
                }
                Output::SendResponse {
                    transport,
                    addr,
                    message,
                } => {
                    let service = self.context.service.clone();
                    self.spawn(async move {
                        service.send_response(transport, addr, message).await;
                        Completion::Sent
                    });
                }
                Output::Event(event) => log_event(&event),
            }
        }
    }

    fn spawn(&mut self, work: impl std::future::Future<Output = Completion> + Send + 'static) {
        self.in_flight += 1;
        let completions = self.completions.clone();
        tokio::spawn(async move {
            // The shard outlives every task it started (it waits for them), so this succeeds.
            let _ = completions.send(work.await);
        });
    }

    /// Hands the REGISTER to the registrar; its answer comes back through `completions`.
    fn start_register(&mut self, transaction: TransactionId, request: Message, arrival: Arrival) {
        let registrar = self.context.registrar.clone();
        let source = Source {
            remote: arrival.remote,
            local: arrival.local,
            flow: arrival.flow,
        };
        self.spawn(async move {
            let outcome = registrar
                .handle_register(&request, source, SystemTime::now())
                .await;
            Completion::Register {
                transaction,
                flow: source.flow,
                outcome,
            }
        });
    }

    async fn complete(&mut self, done: Completion) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let now = Instant::now();
        match done {
            Completion::Register {
                transaction,
                flow,
                outcome,
            } => {
                if let Some(registered) = outcome.flow_registered {
                    let pinned = self
                        .context
                        .transports
                        .set_flow_registered(flow, registered);
                    if registered && pinned.is_err() {
                        // The connection closed while the registrar committed: its FlowClosed
                        // went by before this binding existed, so drop the binding now.
                        self.context.registrar.flow_closed(flow);
                    }
                }
                match Message::parse(outcome.response) {
                    Ok(response) => self
                        .proxy
                        .handle_register_response(transaction, response, now),
                    Err(error) => debug!(%error, "the registrar built an unparsable response"),
                }
            }
            Completion::Authenticated { context, result } => {
                self.proxy.handle_authenticated(context, result, now)
            }
            Completion::Located { context, result } => {
                self.proxy.handle_located(context, result, now)
            }
            Completion::Hop {
                context,
                branch,
                result,
            } => self.proxy.handle_hop(context, branch, result, now),
            Completion::Sent => {}
        }
        self.drain().await;
    }

    /// Bytes sent outside any transaction.
    async fn send(&self, flow: FlowId, message: bytes::Bytes) {
        if let Err(error) = self.context.transports.send(flow, message).await {
            debug!(%flow, %error, "SIP send failed");
        }
    }
}
