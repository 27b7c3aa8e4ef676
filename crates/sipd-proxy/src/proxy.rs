//! The SIP element of one shard: the transaction layer and the proxy core wired together,
//! still sans-IO. REGISTERs are handed out for the registrar; everything else is proxied.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;
use sip_message::{safe_reason, FlowId, Message, Method, Transport};
use sip_transaction::{
    Config as LayerConfig, ConfigError, Output as LayerOutput, ReceiveError, TransactionId,
    TransactionLayer,
};

use crate::config::ProxyConfig;
use crate::core::{Action, Arrival, AuthRefusal, BranchId, ContextId, HopFailure, ProxyCore};
use crate::events::CallEvent;
use crate::route::{Callee, NextHop, RouteDecision};
use sipd_registrar::EndpointInfo;

/// What the caller must do next, from [`Proxy::poll_output`].
#[derive(Debug, Clone)]
pub enum Output {
    /// Put bytes on a flow. If a transaction's send fails, report it with
    /// [`Proxy::handle_transport_error`].
    Transmit {
        flow: FlowId,
        payload: Bytes,
        transaction: Option<TransactionId>,
    },
    /// A REGISTER for the registrar; answer with [`Proxy::handle_register_response`].
    Register {
        transaction: TransactionId,
        request: Message,
        arrival: Arrival,
    },
    /// Check the request's Proxy-Authorization; answer with [`Proxy::handle_authenticated`].
    Authenticate {
        context: ContextId,
        request: Message,
    },
    /// Find the endpoint and its live registrations; answer with [`Proxy::handle_located`].
    Locate {
        context: ContextId,
        username: String,
    },
    /// Get a flow to this next hop; answer with [`Proxy::handle_hop`].
    OpenHop {
        context: ContextId,
        branch: BranchId,
        hop: NextHop,
    },
    /// Send a request outside any transaction (an ACK for a 2xx) to this hop.
    SendStateless {
        hop: NextHop,
        message: Bytes,
    },
    /// Send a response outside any transaction to this address.
    SendResponse {
        transport: Transport,
        addr: std::net::SocketAddr,
        message: Bytes,
    },
    Event(CallEvent),
}

/// A shard's SIP element: see the crate docs.
pub struct Proxy {
    layer: TransactionLayer,
    core: ProxyCore,
    outputs: VecDeque<Output>,
}

impl Proxy {
    /// Fails on nonsensical transaction timers. See [`ProxyCore::new`] for `hasher` and
    /// `tag_prefix`.
    pub fn new(
        layer: LayerConfig,
        config: ProxyConfig,
        hasher: std::hash::RandomState,
        tag_prefix: String,
    ) -> Result<Proxy, ConfigError> {
        Ok(Proxy {
            layer: TransactionLayer::new(layer)?,
            core: ProxyCore::new(config, hasher, tag_prefix),
            outputs: VecDeque::new(),
        })
    }

    /// Transactions alive in the layer.
    pub fn transactions(&self) -> usize {
        self.layer.len()
    }

    /// Requests being routed.
    pub fn contexts(&self) -> usize {
        self.core.contexts()
    }

    /// Answered calls waiting for their BYE.
    pub fn calls_in_progress(&self) -> usize {
        self.core.calls_in_progress()
    }

    /// The next thing to do, if any. Call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        match (self.layer.poll_timeout(), self.core.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.core.handle_timeout(now);
        self.pump(None, now);
    }

    /// A parsed message from the network. A request that fails validation gets its 400
    /// (505 for another SIP version) at once, outside any transaction (never for ACK); a
    /// request past the transaction limit gets 503.
    pub fn handle_message(&mut self, message: Message, arrival: Arrival, now: Instant) {
        let message = if message.is_request() {
            if let Err(rejection) = message.validate() {
                if message.method() != Some(Method::Ack) {
                    let reason = format!(
                        "{} - {}",
                        sip_message::reason_phrase(rejection.status),
                        rejection.error
                    );
                    self.reply_statelessly(&message, rejection.status, &reason, arrival.flow);
                }
                return;
            }
            message.with_received(arrival.remote).unwrap_or(message)
        } else {
            message
        };
        match self.layer.handle_message(message, arrival.flow, now) {
            Ok(()) => {}
            Err(ReceiveError::Overloaded(request)) => {
                if request.method() != Some(Method::Ack) {
                    let tag = self.core.new_tag();
                    let response = request
                        .response(503)
                        .header("Retry-After", "5")
                        .to_tag(&tag)
                        .build_bytes();
                    self.outputs.push_back(Output::Transmit {
                        flow: arrival.flow,
                        payload: response,
                        transaction: None,
                    });
                }
            }
            // Without the headers matching needs, there is nothing to answer.
            Err(ReceiveError::Unmatchable(_)) => {}
        }
        self.pump(Some(arrival), now);
    }

    fn reply_statelessly(&mut self, request: &Message, status: u16, reason: &str, flow: FlowId) {
        let tag = self.core.new_tag();
        let response = request
            .response(status)
            .reason(&safe_reason(reason))
            .to_tag(&tag)
            .build_bytes();
        self.outputs.push_back(Output::Transmit {
            flow,
            payload: response,
            transaction: None,
        });
    }

    /// The registrar's response to an [`Output::Register`]. A 401 challenge is sent
    /// statelessly: the transaction is forgotten at once instead of holding its response for
    /// Timer J, so unauthenticated senders hold no transaction (a retransmission is simply
    /// challenged again).
    pub fn handle_register_response(
        &mut self,
        transaction: TransactionId,
        response: Message,
        now: Instant,
    ) {
        // Failures mean the transaction is gone (it timed out while the registrar worked).
        let _ = if response.status() == Some(401) {
            self.layer
                .send_response_statelessly(transaction, response, now)
        } else {
            self.layer.send_response(transaction, response, now)
        };
        self.pump(None, now);
    }

    /// The answer to [`Output::Authenticate`].
    pub fn handle_authenticated(
        &mut self,
        context: ContextId,
        result: Result<EndpointInfo, AuthRefusal>,
        now: Instant,
    ) {
        self.core.handle_authenticated(context, result, now);
        self.pump(None, now);
    }

    /// The answer to [`Output::Locate`] (`Err` when the location service is unavailable).
    pub fn handle_located(
        &mut self,
        context: ContextId,
        result: Result<Option<Callee>, ()>,
        now: Instant,
    ) {
        self.core.handle_located(context, result, now);
        self.pump(None, now);
    }

    /// A routing decision for a request waiting for one.
    pub fn handle_route(&mut self, context: ContextId, decision: RouteDecision, now: Instant) {
        self.core.handle_route(context, decision, now);
        self.pump(None, now);
    }

    /// The answer to [`Output::OpenHop`].
    pub fn handle_hop(
        &mut self,
        context: ContextId,
        branch: BranchId,
        result: Result<FlowId, HopFailure>,
        now: Instant,
    ) {
        self.core.handle_hop(context, branch, result, now);
        self.pump(None, now);
    }

    /// A connection closed: requests sent over it and still unanswered are sent again over a
    /// new connection when they can be, else they fail at once (503).
    pub fn handle_flow_closed(&mut self, flow: FlowId, now: Instant) {
        self.core.handle_flow_closed(flow, now);
        self.pump(None, now);
    }

    /// A [`Output::Transmit`] of `transaction` could not be sent.
    pub fn handle_transport_error(&mut self, transaction: TransactionId, now: Instant) {
        self.layer.handle_transport_error(transaction);
        self.pump(None, now);
    }

    /// Moves work between the layer and the core until both are quiet. `arrival` is the
    /// flow of the message just handed in: a new request can only come from it.
    fn pump(&mut self, arrival: Option<Arrival>, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(output) = self.layer.poll_output() {
                progressed = true;
                self.on_layer_output(output, arrival, now);
            }
            while let Some(action) = self.core.poll_output() {
                progressed = true;
                self.on_action(action, now);
            }
            if !progressed {
                return;
            }
        }
    }

    fn on_layer_output(&mut self, output: LayerOutput, arrival: Option<Arrival>, now: Instant) {
        match output {
            LayerOutput::Transmit(transmit) => self.outputs.push_back(Output::Transmit {
                flow: transmit.flow,
                payload: transmit.payload,
                transaction: Some(transmit.transaction),
            }),
            LayerOutput::Request {
                transaction,
                request,
                ..
            } => {
                let Some(arrival) = arrival else { return };
                if request.method() == Some(Method::Register) {
                    self.outputs.push_back(Output::Register {
                        transaction,
                        request,
                        arrival,
                    });
                } else {
                    self.core.handle_request(transaction, request, arrival, now);
                }
            }
            LayerOutput::Cancel {
                transaction,
                request,
                target,
                ..
            } => self.core.handle_cancel(transaction, request, target, now),
            LayerOutput::Ack { request, .. } => {
                if let Some(arrival) = arrival {
                    self.core.handle_ack(request, arrival);
                }
            }
            LayerOutput::Response {
                transaction,
                response,
            } => self.core.handle_response(transaction, response, now),
            LayerOutput::StrayResponse { response, .. } => {
                self.core.handle_stray_response(response)
            }
            LayerOutput::Terminated {
                transaction,
                reason,
            } => self.core.handle_terminated(transaction, reason, now),
            // An INVITE server's response could not be sent (RFC 6026): the caller's
            // retransmissions or the end of the transaction settle it.
            LayerOutput::TransportError { .. } => {}
        }
    }

    fn on_action(&mut self, action: Action, now: Instant) {
        match action {
            Action::Respond {
                transaction,
                response,
            } => {
                // Fails only for a transaction that is gone or already answered.
                let _ = self.layer.send_response(transaction, response, now);
            }
            Action::RespondStatelessly {
                transaction,
                response,
            } => {
                let _ = self
                    .layer
                    .send_response_statelessly(transaction, response, now);
            }
            Action::SendRequest {
                context,
                branch,
                request,
                flow,
            } => match self.layer.send_request(request, flow, now) {
                Ok(transaction) => self.core.client_started(context, branch, transaction, now),
                Err(_) => self.core.client_failed(context, branch, now),
            },
            Action::Cancel { transaction } => {
                let _ = self.layer.cancel(transaction, now);
            }
            Action::Authenticate { context, request } => self
                .outputs
                .push_back(Output::Authenticate { context, request }),
            Action::Locate { context, username } => {
                self.outputs.push_back(Output::Locate { context, username })
            }
            Action::OpenHop {
                context,
                branch,
                hop,
            } => self.outputs.push_back(Output::OpenHop {
                context,
                branch,
                hop,
            }),
            Action::SendStateless { hop, message } => self
                .outputs
                .push_back(Output::SendStateless { hop, message }),
            Action::SendResponse {
                transport,
                addr,
                message,
            } => self.outputs.push_back(Output::SendResponse {
                transport,
                addr,
                message,
            }),
            Action::Event(event) => self.outputs.push_back(Output::Event(event)),
        }
    }
}
