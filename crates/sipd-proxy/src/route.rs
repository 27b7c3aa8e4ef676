//! Routing decisions as values: who is calling, where a request may go, and how to reach
//! each target. The location service produces them today (direct routing); an application's
//! answer_url will produce the same [`RouteDecision`] tomorrow, and the core executes it.

use std::time::Duration;

use sip_message::FlowId;
use sipd_registrar::EndpointInfo;

/// One live registration of a callee, as the location service holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The Contact URI: the Request-URI of requests to this device.
    pub contact: String,
    /// q-value in thousandths; `None` counts as 1.0.
    pub q: Option<u16>,
    /// The flow it registered over.
    pub flow: Option<FlowId>,
    /// RFC 5626 reg-id: the flow is the only way to the device (430 when it is gone).
    pub reg_id: Option<u32>,
    /// The Path set (RFC 3327), each value a `<uri>` name-addr, in order.
    pub path: Vec<String>,
}

/// The callee endpoint and its live registrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callee {
    pub endpoint: EndpointInfo,
    pub registrations: Vec<Registration>,
}

/// How to reach a target's next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextHop {
    /// A flow the device registered over (or the flow of a dialog's peer).
    Flow {
        flow: FlowId,
        /// Where to open a new connection if this one has closed (RFC 3261 §18: a TCP or
        /// TLS device without RFC 5626 flows is reachable at its Contact address). `None`:
        /// the flow is the only way (UDP never closes; WebSockets and RFC 5626 flows end
        /// with their connection).
        reconnect: Option<String>,
        /// The answer when the flow has closed and there is no reconnect address: 430 (Flow
        /// Failed) for an RFC 5626 flow, 480 otherwise.
        when_closed: u16,
    },
    /// A SIP URI to resolve per RFC 3263 and connect to (a gateway, another domain).
    Uri(String),
}

/// One place a request is forked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The Request-URI of the forwarded request.
    pub request_uri: String,
    /// Route values to put on top (a registration's Path).
    pub route: Vec<String>,
    pub hop: NextHop,
}

/// What to do with a request: fork to groups of targets, tried one group after another,
/// the targets of a group in parallel; or answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    Fork {
        /// Groups in order of preference (e.g. by q-value), each rung in parallel.
        groups: Vec<Vec<Target>>,
        /// Header lines added to every forwarded request.
        headers: Vec<(String, String)>,
        /// Ring time for the whole request; `None`: only Timer C bounds each branch.
        ring_timeout: Option<Duration>,
    },
    /// Answer with this status (reason phrase when given, plus an optional Warning text).
    Reject {
        status: u16,
        reason: Option<String>,
        warning: Option<String>,
    },
}

impl RouteDecision {
    pub fn reject(status: u16, reason: &str) -> RouteDecision {
        RouteDecision::Reject {
            status,
            reason: Some(reason.to_owned()),
            warning: None,
        }
    }
}

/// Targets for `registrations`: grouped by q-value, highest first, equal q together
/// (RFC 3261 §16.6: parallel within a q, sequential across).
pub fn targets_by_q(registrations: &[Registration]) -> Vec<Vec<Target>> {
    let mut sorted: Vec<&Registration> = registrations.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse(r.q.unwrap_or(1000)));
    let mut groups: Vec<(u16, Vec<Target>)> = Vec::new();
    for registration in sorted {
        let q = registration.q.unwrap_or(1000);
        let target = target_of(registration);
        match groups.last_mut() {
            Some((last_q, group)) if *last_q == q => group.push(target),
            _ => groups.push((q, vec![target])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

fn target_of(registration: &Registration) -> Target {
    let first_hop_uri = registration
        .path
        .first()
        .map(|value| strip_angle(value).to_owned())
        .unwrap_or_else(|| registration.contact.clone());
    let hop = match registration.flow {
        Some(flow) => {
            let transport = flow.transport();
            // RFC 5626 flows and WebSockets cannot be re-opened by us.
            let reconnect = (registration.reg_id.is_none()
                && transport.is_reliable()
                && !transport.is_websocket())
            .then_some(first_hop_uri);
            NextHop::Flow {
                flow,
                reconnect,
                when_closed: if registration.reg_id.is_some() {
                    430
                } else {
                    480
                },
            }
        }
        None => NextHop::Uri(first_hop_uri),
    };
    Target {
        request_uri: registration.contact.clone(),
        route: registration.path.clone(),
        hop,
    }
}

/// The URI inside `<…>` (name-addr) or the value itself.
pub(crate) fn strip_angle(value: &str) -> &str {
    let value = value.trim();
    match (value.find('<'), value.rfind('>')) {
        (Some(start), Some(end)) if start < end => &value[start + 1..end],
        _ => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::Transport;

    fn registration(contact: &str, q: Option<u16>, flow: FlowId) -> Registration {
        Registration {
            contact: contact.to_owned(),
            q,
            flow: Some(flow),
            reg_id: None,
            path: Vec::new(),
        }
    }

    #[test]
    fn equal_q_rings_together_higher_q_first() {
        let udp = FlowId::udp("192.0.2.1:5060".parse().unwrap());
        let groups = targets_by_q(&[
            registration("sip:a@192.0.2.1", Some(500), udp),
            registration("sip:b@192.0.2.1", None, udp),
            registration("sip:c@192.0.2.1", Some(1000), udp),
            registration("sip:d@192.0.2.1", Some(500), udp),
        ]);
        let uris: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|t| t.request_uri.as_str()).collect())
            .collect();
        assert_eq!(
            uris,
            [
                vec!["sip:b@192.0.2.1", "sip:c@192.0.2.1"],
                vec!["sip:a@192.0.2.1", "sip:d@192.0.2.1"]
            ]
        );
    }

    #[test]
    fn how_each_kind_of_flow_is_reached() {
        let tcp = FlowId::connection(Transport::Tcp, 7);
        let plain = target_of(&registration(
            "sip:a@10.0.0.2:5070;transport=tcp",
            None,
            tcp,
        ));
        assert_eq!(
            plain.hop,
            NextHop::Flow {
                flow: tcp,
                reconnect: Some("sip:a@10.0.0.2:5070;transport=tcp".to_owned()),
                when_closed: 480
            }
        );
        let mut outbound = registration("sip:a@10.0.0.2;ob", None, tcp);
        outbound.reg_id = Some(1);
        assert_eq!(
            target_of(&outbound).hop,
            NextHop::Flow {
                flow: tcp,
                reconnect: None,
                when_closed: 430
            }
        );
        let wss = FlowId::connection(Transport::Wss, 8);
        let browser = target_of(&registration(
            "sip:x@df7jal23ls0d.invalid;transport=ws",
            None,
            wss,
        ));
        assert!(matches!(
            browser.hop,
            NextHop::Flow {
                reconnect: None,
                when_closed: 480,
                ..
            }
        ));
        let mut behind_edge = registration("sip:a@10.0.0.2", None, tcp);
        behind_edge.path = vec!["<sip:edge.example.com;lr>".to_owned()];
        let target = target_of(&behind_edge);
        assert_eq!(target.route, ["<sip:edge.example.com;lr>"]);
        assert!(
            matches!(target.hop, NextHop::Flow { reconnect: Some(ref uri), .. } if uri == "sip:edge.example.com;lr")
        );
    }
}
