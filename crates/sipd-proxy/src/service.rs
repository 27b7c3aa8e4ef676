//! The proxy's I/O shell: answers what the sans-IO [`Proxy`](crate::Proxy) asks for, with the
//! registrar (Digest credentials, the location service), the transports and the RFC 3263
//! resolver. Each answer is an async call the binary runs in a task of its own and feeds
//! back; [`ProxyService::hop_now`] answers without waiting when it can (a live flow: the
//! common case), so most branches leave without a task.

use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;
use sip_message::{FlowId, Message, Transport, Uri};
use sipd_registrar::service::RegistrarService;
use sipd_registrar::EndpointInfo;
use sipd_store::Binding;
use sipd_transport::{Destination, Resolver, Target, Transports};

use crate::core::{AuthRefusal, HopFailure};
use crate::events::{CallEvent, EndCause, Party};
use crate::route::{strip_angle, Callee, NextHop, Registration};

/// At most this many resolved destinations are tried for one hop (RFC 3263 §4.3 failover),
/// so an unreachable domain with many records costs bounded time.
const MAX_DESTINATIONS_TRIED: usize = 4;

/// The registrar, the transports and the resolver, as the proxy needs them. Cheap to clone.
#[derive(Clone)]
pub struct ProxyService {
    registrar: RegistrarService,
    transports: Transports,
    resolver: Resolver,
}

impl ProxyService {
    pub fn new(registrar: RegistrarService, transports: Transports, resolver: Resolver) -> Self {
        ProxyService {
            registrar,
            transports,
            resolver,
        }
    }

    /// The answer to `Output::Authenticate` when it needs no waiting: the user's credentials
    /// are in memory (the common case). `None`: call [`authenticate`](Self::authenticate).
    pub fn authenticate_now(&self, request: &Message) -> Option<Result<EndpointInfo, AuthRefusal>> {
        let result = self
            .registrar
            .authenticate_cached(request, SystemTime::now())?;
        Some(result.map_err(|response| refusal(request, response)))
    }

    /// The answer to `Output::Authenticate`.
    pub async fn authenticate(&self, request: &Message) -> Result<EndpointInfo, AuthRefusal> {
        self.registrar
            .authenticate(request, SystemTime::now())
            .await
            .map_err(|response| refusal(request, response))
    }

    /// The answer to `Output::Locate` when it needs no waiting: the endpoint is in memory.
    /// `None`: call [`locate`](Self::locate).
    pub fn locate_now(&self, username: &str) -> Option<Result<Option<Callee>, ()>> {
        let located = self.registrar.locate_cached(username, SystemTime::now())?;
        Some(Ok(located.map(callee)))
    }

    /// The answer to `Output::Locate`: `Err` when the location service cannot be read.
    pub async fn locate(&self, username: &str) -> Result<Option<Callee>, ()> {
        match self.registrar.locate(username, SystemTime::now()).await {
            Ok(located) => Ok(located.map(callee)),
            Err(error) => {
                tracing::warn!(%error, "location service unavailable");
                Err(())
            }
        }
    }

    /// The answer to `Output::OpenHop` when it needs no waiting: an open flow, or a closed
    /// one with nowhere to reconnect. `None`: call [`open`](Self::open).
    pub fn hop_now(&self, hop: &NextHop) -> Option<Result<FlowId, HopFailure>> {
        match hop {
            NextHop::Flow { flow, .. } if self.transports.is_open(*flow) => Some(Ok(*flow)),
            NextHop::Flow {
                reconnect: None,
                when_closed,
                ..
            } => Some(Err(closed(*when_closed))),
            _ => None,
        }
    }

    /// The answer to `Output::OpenHop`: the flow if it is open, else a connection to the
    /// reconnect address or URI, resolved per RFC 3263 and tried in order.
    pub async fn open(&self, hop: &NextHop) -> Result<FlowId, HopFailure> {
        if let Some(now) = self.hop_now(hop) {
            return now;
        }
        let uri = match hop {
            NextHop::Flow {
                reconnect: Some(uri),
                ..
            }
            | NextHop::Uri(uri) => uri,
            NextHop::Flow { when_closed, .. } => return Err(closed(*when_closed)),
        };
        self.connect_uri(uri).await
    }

    async fn connect_uri(&self, uri: &str) -> Result<FlowId, HopFailure> {
        let unreachable = |why: String| HopFailure {
            status: 503,
            reason: why,
        };
        let target = target_of(uri).ok_or_else(|| unreachable(format!("not a SIP URI: {uri}")))?;
        let destinations = self
            .resolver
            .resolve(&target)
            .await
            .map_err(|error| unreachable(error.to_string()))?;
        let mut last = None;
        for destination in destinations.iter().take(MAX_DESTINATIONS_TRIED) {
            match self.transports.connect(destination).await {
                Ok(flow) => return Ok(flow),
                Err(error) => last = Some(error.to_string()),
            }
        }
        Err(unreachable(
            last.unwrap_or_else(|| format!("no address for {uri}")),
        ))
    }

    /// Sends a request outside any transaction (an ACK for a 2xx) to `hop`; a failure is
    /// only logged (the UAC retransmits its ACK with the 2xx it receives again).
    pub async fn send_stateless(&self, hop: &NextHop, message: Bytes) {
        match self.open(hop).await {
            Ok(flow) => {
                if let Err(error) = self.transports.send(flow, message).await {
                    tracing::debug!(%flow, %error, "stateless request not sent");
                }
            }
            Err(failure) => tracing::debug!(reason = %failure.reason, "stateless request: no hop"),
        }
    }

    /// Sends a response outside any transaction to the address its Via names (RFC 3261
    /// §18.2.2): over UDP, or an open or new connection.
    pub async fn send_response(&self, transport: Transport, addr: SocketAddr, message: Bytes) {
        let destination = Destination {
            transport,
            addr,
            server_name: None,
        };
        let sent = match self.transports.connect(&destination).await {
            Ok(flow) => self
                .transports
                .send(flow, message)
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = sent {
            tracing::debug!(%addr, %error, "stateless response not sent");
        }
    }
}

fn refusal(request: &Message, response: sipd_registrar::Response) -> AuthRefusal {
    AuthRefusal {
        response: Message::parse(response.bytes).unwrap_or_else(|_| request.clone()),
    }
}

fn callee(located: sipd_registrar::service::Located) -> Callee {
    Callee {
        registrations: located.bindings.iter().map(registration).collect(),
        endpoint: located.endpoint,
    }
}

fn closed(status: u16) -> HopFailure {
    HopFailure {
        status,
        reason: if status == 430 {
            "Flow Failed".to_owned()
        } else {
            "Temporarily Unavailable (connection closed)".to_owned()
        },
    }
}

/// What to resolve for a SIP URI (RFC 3263 §4: `maddr` wins over the host).
fn target_of(uri: &str) -> Option<Target> {
    let Ok(Uri::Sip(sip)) = Uri::parse(uri) else {
        return None;
    };
    let host = sip.maddr().unwrap_or(sip.host().as_str()).to_owned();
    Some(Target {
        host: host.trim_matches(['[', ']']).to_owned(),
        port: sip.port(),
        transport: sip.transport().and_then(Transport::from_token),
        secure: sip.is_secure(),
    })
}

/// A stored binding as the core routes to it.
pub fn registration(binding: &Binding) -> Registration {
    Registration {
        contact: binding.contact_uri.clone(),
        q: binding.q.and_then(|q| u16::try_from(q.clamp(0, 1000)).ok()),
        flow: binding.flow_id.as_deref().and_then(|id| id.parse().ok()),
        reg_id: binding.reg_id.and_then(|id| u32::try_from(id).ok()),
        path: binding.path.as_deref().map(split_path).unwrap_or_default(),
    }
}

/// The values of a stored Path (name-addrs joined with commas).
fn split_path(path: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in path.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                values.push(path[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    values.push(path[start..].trim().to_owned());
    values.retain(|v| !strip_angle(v).is_empty());
    values
}

/// One log line per step of a call; the line at its end says everything about it.
pub fn log_event(event: &CallEvent) {
    match event {
        CallEvent::Started {
            call_id,
            caller,
            callee,
        } => tracing::debug!(target: "sipd::calls", %call_id, %caller, %callee, "call started"),
        CallEvent::Ringing { call_id } => {
            tracing::debug!(target: "sipd::calls", %call_id, "call ringing")
        }
        CallEvent::Answered { call_id } => {
            tracing::debug!(target: "sipd::calls", %call_id, "call answered")
        }
        CallEvent::Ended {
            call_id,
            caller,
            callee,
            cause,
            setup,
            talk,
        } => {
            let cause = match cause {
                EndCause::Unanswered(status) => format!("unanswered {status}"),
                EndCause::Cancelled => "cancelled".to_owned(),
                EndCause::HungUp(Party::Caller) => "caller hung up".to_owned(),
                EndCause::HungUp(Party::Callee) => "callee hung up".to_owned(),
                EndCause::Expired => "expired".to_owned(),
            };
            tracing::info!(
                target: "sipd::calls",
                %call_id,
                %caller,
                %callee,
                %cause,
                setup_ms = setup.as_millis() as u64,
                talk_secs = talk.map(|t| t.as_secs()),
                answered = talk.is_some(),
                "call ended"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_targets() {
        assert_eq!(
            split_path("<sip:a.example;lr>, <sip:b.example;lr;x=\"1,2\">"),
            ["<sip:a.example;lr>", "<sip:b.example;lr;x=\"1,2\">"]
        );
        assert!(split_path("").is_empty());
        let target = target_of("sips:bob@[2001:db8::1]:5071;transport=tcp").unwrap();
        assert_eq!(target.host, "2001:db8::1");
        assert_eq!(target.port, Some(5071));
        assert_eq!(target.transport, Some(Transport::Tcp));
        assert!(target.secure);
        assert_eq!(
            target_of("sip:gw.example.net;maddr=192.0.2.1")
                .unwrap()
                .host,
            "192.0.2.1"
        );
        assert!(target_of("tel:+123").is_none());
    }
}
