//! RFC 3263 (Locating SIP Servers): from a SIP URI's host, port, `transport` parameter and
//! scheme to the destinations to try, in order. DNS through hickory-resolver, which caches
//! answers for their TTL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig as DnsConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::rdata::{NAPTR, SRV};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use rand::Rng;

use crate::Destination;
use sip_message::Transport;

/// Where the DNS questions go and how long an answer may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// DNS servers to ask (default none: those of `/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Bound on resolving one target, every query included (default 5 s).
    pub timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// What to resolve: the parts of a SIP or SIPS URI that RFC 3263 looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A domain name, or an IP address (IPv6 without brackets).
    pub host: String,
    /// The URI's port, if it has one.
    pub port: Option<u16>,
    /// The URI's `transport` parameter.
    pub transport: Option<Transport>,
    /// A `sips:` URI: TLS only.
    pub secure: bool,
}

/// Why a target resolved to no destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The domain does not exist (NXDOMAIN).
    #[error("{host}: no such domain")]
    NoSuchDomain { host: String },
    /// The domain names no reachable server: no usable NAPTR, SRV, A or AAAA records.
    #[error("{host}: no SIP server (no usable SRV, A or AAAA records)")]
    NoRecords { host: String },
    /// No answer within [`ResolverConfig::timeout`].
    #[error("resolving {host} timed out")]
    Timeout { host: String },
    /// A DNS server failed (SERVFAIL, refused, unreachable).
    #[error("{host}: DNS failure: {reason}")]
    Dns { host: String, reason: String },
    /// The host is neither an IP address nor a domain name.
    #[error("not a host name: {host:?}")]
    InvalidHost { host: String },
    /// A transport sipd does not reach servers over: WebSockets (only browsers open them), or
    /// UDP for a `sips:` URI.
    #[error("a {} URI cannot be reached over {transport}", if *secure { "sips:" } else { "sip:" })]
    Unsupported { transport: Transport, secure: bool },
}

/// The system's DNS configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up DNS resolution (system configuration in /etc/resolv.conf): {0}")]
pub struct ResolverSetupError(#[source] NetError);

/// Most destinations one target resolves to; DNS answers come from whoever runs the domain.
const MAX_DESTINATIONS: usize = 16;

/// RFC 3263 resolution. Cheap to clone; clones share the cache.
#[derive(Debug, Clone)]
pub struct Resolver {
    dns: TokioResolver,
    timeout: Duration,
}

impl Resolver {
    /// Reads the system's configuration (`/etc/resolv.conf`) when no name server is given.
    /// Must run inside a tokio runtime.
    pub fn new(config: &ResolverConfig) -> Result<Resolver, ResolverSetupError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if config.nameservers.is_empty() {
            TokioResolver::builder(provider).map_err(ResolverSetupError)?
        } else {
            let servers = config.nameservers.iter().map(|server| {
                // UDP; TCP for truncated answers.
                let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
                    .map(|mut connection| {
                        connection.port = server.port();
                        connection
                    })
                    .to_vec();
                NameServerConfig::new(server.ip(), true, connections)
            });
            TokioResolver::builder_with_config(
                DnsConfig::from_name_servers(servers.collect()),
                provider,
            )
        };
        let options = builder.options_mut();
        // Each query may take the whole bound; `resolve` bounds them all together.
        options.timeout = config.timeout;
        // The default listeners are IPv4, so IPv4 addresses are tried first.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        let dns = builder.build().map_err(ResolverSetupError)?;
        Ok(Resolver {
            dns,
            timeout: config.timeout,
        })
    }

    /// The destinations to try for `target`, in order (RFC 3263 §4.3: on a transport error or
    /// a 503, the next one). Only UDP, TCP and TLS destinations result; a domain's
    /// destinations carry it as their server name (RFC 5922), an IP address none.
    ///
    /// * Transport (§4.1): the `transport` parameter (`tcp` in a `sips:` URI is TLS); else
    ///   for an IP address or an explicit port UDP (TLS for `sips:`); else the NAPTR records'
    ///   choice; else every transport with SRV records, TLS (`_sips._tcp`), then TCP
    ///   (`_sip._tcp`), then UDP (`_sip._udp`): secure and unbounded in size first; only
    ///   `_sips._tcp` for `sips:`. Else UDP (TLS for `sips:`).
    /// * Address (§4.2): an IP address as is; an explicit port with the host's A and AAAA
    ///   records; else the SRV records (by priority, then weighted at random, each target's
    ///   A then AAAA records); without SRV records the host's A and AAAA records on 5060
    ///   (5061 for TLS).
    ///
    /// An IP address needs no DNS query. At most 16 destinations result.
    pub async fn resolve(&self, target: &Target) -> Result<Vec<Destination>, ResolveError> {
        let host = target.host.trim_start_matches('[').trim_end_matches(']');
        let explicit = match (target.transport, target.secure) {
            (None, _) => None,
            (Some(Transport::Tcp | Transport::Tls), true) => Some(Transport::Tls),
            (Some(transport @ (Transport::Udp | Transport::Tcp | Transport::Tls)), false) => {
                Some(transport)
            }
            (Some(transport), secure) => {
                return Err(ResolveError::Unsupported { transport, secure })
            }
        };
        let fallback = if target.secure {
            Transport::Tls
        } else {
            Transport::Udp
        };
        if let Ok(ip) = host.parse::<IpAddr>() {
            let transport = explicit.unwrap_or(fallback);
            return Ok(vec![Destination {
                transport,
                addr: SocketAddr::new(ip, target.port.unwrap_or(default_port(transport))),
                server_name: None,
            }]);
        }
        let domain = host.strip_suffix('.').unwrap_or(host);
        let query = Query::new(domain)?;
        let lookup = async {
            if let Some(port) = target.port {
                let transport = explicit.unwrap_or(fallback);
                return query.host_addresses(self, transport, port).await;
            }
            let services = match explicit {
                Some(transport) => vec![Service::srv(transport, domain)],
                None => match query.naptr_services(self, target.secure).await? {
                    services if !services.is_empty() => services,
                    _ if target.secure => vec![Service::srv(Transport::Tls, domain)],
                    _ => [Transport::Tls, Transport::Tcp, Transport::Udp]
                        .map(|transport| Service::srv(transport, domain))
                        .to_vec(),
                },
            };
            match query.srv_destinations(self, &services).await? {
                Some(destinations) => Ok(destinations),
                None => {
                    let transport = explicit.unwrap_or(fallback);
                    query
                        .host_addresses(self, transport, default_port(transport))
                        .await
                }
            }
        };
        let mut destinations = tokio::time::timeout(self.timeout, lookup)
            .await
            .map_err(|_| query.timeout())??;
        dedup(&mut destinations);
        destinations.truncate(MAX_DESTINATIONS);
        if destinations.is_empty() {
            return Err(query.no_records());
        }
        Ok(destinations)
    }
}

/// 5060, or 5061 for TLS (RFC 3261 §19.1.2).
fn default_port(transport: Transport) -> u16 {
    if transport == Transport::Tls {
        5061
    } else {
        5060
    }
}

/// Keeps the first of each (transport, address).
fn dedup(destinations: &mut Vec<Destination>) {
    let mut seen = std::collections::HashSet::new();
    destinations.retain(|destination| seen.insert((destination.transport, destination.addr)));
}

/// A transport and the SRV name that lists its servers.
#[derive(Debug, Clone)]
struct Service {
    transport: Transport,
    srv_name: String,
}

impl Service {
    /// The RFC 3263 §4.1 SRV name of a transport of `domain`.
    fn srv(transport: Transport, domain: &str) -> Service {
        let prefix = match transport {
            Transport::Tls => "_sips._tcp",
            Transport::Tcp => "_sip._tcp",
            _ => "_sip._udp",
        };
        Service {
            transport,
            srv_name: format!("{prefix}.{domain}"),
        }
    }
}

/// The resolution of one domain.
struct Query<'a> {
    domain: &'a str,
    name: Name,
}

impl<'a> Query<'a> {
    fn new(domain: &'a str) -> Result<Query<'a>, ResolveError> {
        let invalid = || ResolveError::InvalidHost {
            host: domain.to_owned(),
        };
        // An empty name would ask about the root.
        let name = fqdn(domain)
            .filter(|_| !domain.is_empty())
            .ok_or_else(invalid)?;
        Ok(Query { domain, name })
    }

    fn timeout(&self) -> ResolveError {
        ResolveError::Timeout {
            host: self.domain.to_owned(),
        }
    }

    fn no_records(&self) -> ResolveError {
        ResolveError::NoRecords {
            host: self.domain.to_owned(),
        }
    }

    fn failure(&self, error: NetError) -> ResolveError {
        match error {
            NetError::Timeout => self.timeout(),
            error => ResolveError::Dns {
                host: self.domain.to_owned(),
                reason: error.to_string(),
            },
        }
    }

    /// Records of a query about the domain itself: none if it has none of that type, an
    /// error if it does not exist.
    fn own<T: Default>(&self, result: Result<T, NetError>) -> Result<T, ResolveError> {
        match result {
            Err(error) if error.is_nx_domain() => Err(ResolveError::NoSuchDomain {
                host: self.domain.to_owned(),
            }),
            result => self.other(result),
        }
    }

    /// Records of a query about another name (an SRV name, an SRV target): none if it has
    /// none or does not exist.
    fn other<T: Default>(&self, result: Result<T, NetError>) -> Result<T, ResolveError> {
        match result {
            Ok(found) => Ok(found),
            Err(error) if error.is_nx_domain() || error.is_no_records_found() => Ok(T::default()),
            Err(error) => Err(self.failure(error)),
        }
    }

    /// The services the NAPTR records name (RFC 3263 §4.1, RFC 3404): the SIP ones with the
    /// lowest order, by preference.
    async fn naptr_services(
        &self,
        resolver: &Resolver,
        secure: bool,
    ) -> Result<Vec<Service>, ResolveError> {
        let lookup = resolver
            .dns
            .lookup(self.name.clone(), RecordType::NAPTR)
            .await;
        let records: Vec<NAPTR> = self.own(lookup.map(|lookup| {
            lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::NAPTR(naptr) => Some(naptr.clone()),
                    _ => None,
                })
                .collect()
        }))?;
        let mut usable: Vec<(&NAPTR, Transport)> = records
            .iter()
            .filter(|naptr| naptr.flags.eq_ignore_ascii_case(b"s"))
            .filter_map(|naptr| Some((naptr, naptr_transport(&naptr.services)?)))
            .filter(|(_, transport)| !secure || *transport == Transport::Tls)
            .collect();
        usable.sort_by_key(|(naptr, _)| (naptr.order, naptr.preference));
        let Some(lowest) = usable.first().map(|(naptr, _)| naptr.order) else {
            return Ok(Vec::new());
        };
        Ok(usable
            .into_iter()
            .take_while(|(naptr, _)| naptr.order == lowest)
            // One SRV query per transport is enough.
            .take(3)
            .map(|(naptr, transport)| Service {
                transport,
                srv_name: naptr.replacement.to_ascii(),
            })
            .collect())
    }

    /// The servers of the services' SRV records, services in the given order; `None` if no
    /// service has SRV records. A failed query matters only when nothing else is found: then
    /// it is the answer, rather than a guess at the host's own address.
    async fn srv_destinations(
        &self,
        resolver: &Resolver,
        services: &[Service],
    ) -> Result<Option<Vec<Destination>>, ResolveError> {
        let lookups = services.iter().map(|service| async move {
            let Some(name) = fqdn(&service.srv_name) else {
                return Ok(Vec::new());
            };
            let lookup = resolver.dns.srv_lookup(name).await;
            self.other(lookup.map(|lookup| {
                lookup
                    .answers()
                    .iter()
                    .filter_map(|record| match &record.data {
                        RData::SRV(srv) => Some(srv.clone()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
            }))
        });
        let mut failure = None;
        let mut found = false;
        let mut servers = Vec::new();
        for (service, records) in services.iter().zip(join_all(lookups).await) {
            let records = match records {
                Ok(records) => records,
                Err(error) => {
                    failure.get_or_insert(error);
                    continue;
                }
            };
            found |= !records.is_empty();
            let mut rng = rand::thread_rng();
            let ordered = srv_order(records, |total| rng.gen_range(0..=total));
            // A target "." means the service is not offered (RFC 2782).
            servers.extend(
                ordered
                    .into_iter()
                    .filter(|srv| !srv.target.is_root())
                    .take(MAX_DESTINATIONS)
                    .map(|srv| (service.transport, srv)),
            );
        }
        if !found {
            return failure.map_or(Ok(None), Err);
        }
        servers.truncate(MAX_DESTINATIONS);
        let addresses = servers.iter().map(|(_, srv)| async move {
            let lookup = resolver.dns.lookup_ip(srv.target.clone()).await;
            self.other(lookup.map(|ips| ips.iter().collect::<Vec<_>>()))
        });
        let mut destinations = Vec::new();
        for ((transport, srv), ips) in servers.iter().zip(join_all(addresses).await) {
            match ips {
                Ok(ips) => destinations.extend(
                    ips.into_iter()
                        .map(|ip| self.destination(*transport, SocketAddr::new(ip, srv.port))),
                ),
                Err(error) => {
                    failure.get_or_insert(error);
                }
            }
        }
        match failure {
            Some(failure) if destinations.is_empty() => Err(failure),
            _ => Ok(Some(destinations)),
        }
    }

    /// The domain's own A and AAAA records, on `port`.
    async fn host_addresses(
        &self,
        resolver: &Resolver,
        transport: Transport,
        port: u16,
    ) -> Result<Vec<Destination>, ResolveError> {
        let lookup = resolver.dns.lookup_ip(self.name.clone()).await;
        let ips: Vec<IpAddr> = self.own(lookup.map(|ips| ips.iter().collect()))?;
        Ok(ips
            .into_iter()
            .map(|ip| self.destination(transport, SocketAddr::new(ip, port)))
            .collect())
    }

    fn destination(&self, transport: Transport, addr: SocketAddr) -> Destination {
        Destination {
            transport,
            addr,
            server_name: Some(self.domain.to_owned()),
        }
    }
}

/// An absolute name: a SIP host is never relative to a search domain.
fn fqdn(name: &str) -> Option<Name> {
    let mut name = Name::from_ascii(name).ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The transport of a NAPTR service field (RFC 3263 §4.1).
fn naptr_transport(service: &[u8]) -> Option<Transport> {
    [
        (&b"SIPS+D2T"[..], Transport::Tls),
        (b"SIP+D2T", Transport::Tcp),
        (b"SIP+D2U", Transport::Udp),
    ]
    .into_iter()
    .find(|(name, _)| service.eq_ignore_ascii_case(name))
    .map(|(_, transport)| transport)
}

/// RFC 2782 order: by priority; within a priority, repeatedly a weighted random choice among
/// the rest, those of weight 0 placed first so that they are chosen only by a draw of 0.
/// `draw(total)` returns a uniform random number in `0..=total`.
fn srv_order(mut records: Vec<SRV>, mut draw: impl FnMut(u32) -> u32) -> Vec<SRV> {
    records.sort_by_key(|srv| (srv.priority, srv.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    while let Some(first) = records.first() {
        let priority = first.priority;
        let same = records
            .iter()
            .take_while(|srv| srv.priority == priority)
            .count();
        let mut group: Vec<SRV> = records.drain(..same).collect();
        while !group.is_empty() {
            let total = group.iter().map(|srv| u32::from(srv.weight)).sum();
            let chosen = draw(total);
            let mut running = 0;
            let index = group
                .iter()
                .position(|srv| {
                    running += u32::from(srv.weight);
                    running >= chosen
                })
                .unwrap_or(group.len() - 1);
            ordered.push(group.remove(index));
        }
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> SRV {
        SRV::new(priority, weight, 5060, Name::from_ascii(target).unwrap())
    }

    fn targets(records: &[SRV]) -> Vec<String> {
        records.iter().map(|srv| srv.target.to_ascii()).collect()
    }

    #[test]
    fn srv_records_go_by_priority_then_by_weighted_draw() {
        let records = vec![
            srv(20, 0, "c.test."),
            srv(10, 0, "b.test."),
            srv(20, 100, "d.test."),
            srv(10, 0, "a.test."),
        ];
        // A draw of 0 takes the first in line: weight 0 comes first.
        assert_eq!(
            targets(&srv_order(records.clone(), |_| 0)),
            ["b.test.", "a.test.", "c.test.", "d.test."]
        );
        // The highest draw takes the one whose running sum reaches the total.
        assert_eq!(
            targets(&srv_order(records, |total| total)),
            ["b.test.", "a.test.", "d.test.", "c.test."]
        );
    }

    #[test]
    fn a_heavier_weight_is_chosen_for_more_of_the_draws() {
        let records = vec![srv(1, 10, "light.test."), srv(1, 90, "heavy.test.")];
        let first = |draw: u32| srv_order(records.clone(), |_| draw)[0].target.to_ascii();
        // Draws 0..=10 land on the light one, 11..=100 on the heavy one.
        assert_eq!(first(10), "light.test.");
        assert_eq!(first(11), "heavy.test.");
        assert_eq!(first(100), "heavy.test.");
    }

    #[test]
    fn naptr_services_map_to_transports() {
        assert_eq!(naptr_transport(b"SIPS+D2T"), Some(Transport::Tls));
        assert_eq!(naptr_transport(b"sip+d2t"), Some(Transport::Tcp));
        assert_eq!(naptr_transport(b"SIP+D2U"), Some(Transport::Udp));
        assert_eq!(naptr_transport(b"SIP+D2S"), None);
        assert_eq!(naptr_transport(b"E2U+sip"), None);
    }
}
