//! The proxy core's configuration, read once by the binary and handed down as plain values.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sip_message::{Host, Transport};
use sipd_registrar::LocalDomain;

/// How the proxy routes a call from an endpoint with no application attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoApplication {
    /// Straight to the target the Request-URI names, as the endpoint's permissions allow.
    Direct,
    /// Refused with 403.
    Reject,
}

/// One listener as peers must address it: what goes into Via and Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub transport: Transport,
    /// The address the listener is bound to (its port is the real one).
    pub bound: SocketAddr,
    /// Host (IP or name) and port to write instead of the bound address: behind NAT, in
    /// Docker, on a cloud VM the bound address is not the one phones can reach.
    pub advertised: Option<(String, u16)>,
}

impl Interface {
    /// Host and port to write in Via and Record-Route. A listener bound to a wildcard
    /// address with nothing advertised writes `fallback_ip` (see
    /// [`ProxyConfig::local_ip`]): right on a single-homed host, and why
    /// `sip.advertised_address` exists.
    pub fn address(&self, fallback_ip: IpAddr) -> (String, u16) {
        if let Some((host, port)) = &self.advertised {
            return (host.clone(), *port);
        }
        let ip = if self.bound.ip().is_unspecified() {
            fallback_ip
        } else {
            self.bound.ip()
        };
        let host = match ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        (host, self.bound.port())
    }
}

/// A CIDR block, e.g. `192.0.2.0/24` or `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub network: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    /// Parses `ip` or `ip/prefix`.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (ip, prefix) = match text.trim().split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (text.trim(), None),
        };
        let network: IpAddr = ip.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Everything the proxy core needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The SIP domain (also the Digest realm) and every name and address that means it.
    pub local: LocalDomain,
    /// The address to write for a wildcard listener with nothing advertised, when neither
    /// the request nor the peer tells which one to use (the host's main address).
    pub default_ip: IpAddr,
    /// Every listener, at most one per transport.
    pub interfaces: Vec<Interface>,
    /// Per-branch INVITE timer (RFC 3261 §16.6 step 11: more than three minutes).
    pub timer_c: Duration,
    /// RFC 3261 T1: a branch that does not answer its CANCEL within 64×T1 is given up.
    pub t1: Duration,
    pub no_application: NoApplication,
    /// Sources routed to local users without authentication (carrier gateways).
    pub trusted_peers: Vec<IpNet>,
    /// Where calls to telephone numbers go (a SIP URI), if anywhere.
    pub pstn_gateway: Option<String>,
    /// Key of the flow tokens in our Record-Route values; the same on every node.
    pub secret: Vec<u8>,
    /// This core's shard, written into the Via branches it creates so responses find it.
    pub shard: u16,
    /// Dialogs with no BYE are forgotten after this long (their call ends as expired).
    pub max_call_duration: Duration,
}

impl ProxyConfig {
    /// The listener of `transport`, if it is on.
    pub fn interface(&self, transport: Transport) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.transport == transport)
    }

    /// Whether `host` (with `port`, when given) names this server: the domain or an alias
    /// (any port), or one of our addresses (at one of our ports).
    pub fn is_local(&self, host: &Host<'_>, port: Option<u16>, arrived_on: IpAddr) -> bool {
        self.local.is_ours(host, arrived_on)
            && (host.ip().is_none()
                || port.is_none_or(|port| {
                    self.interfaces.iter().any(|i| {
                        i.bound.port() == port
                            || i.advertised.as_ref().is_some_and(|(_, p)| *p == port)
                    })
                }))
    }

    /// The local IP to write for a wildcard listener: the one the request at hand arrived
    /// on if the transport told it (connections), else loopback for a peer on loopback, else
    /// [`default_ip`](Self::default_ip).
    pub fn local_ip(&self, arrived_on: IpAddr, peer: Option<IpAddr>) -> IpAddr {
        if !arrived_on.is_unspecified() {
            return arrived_on;
        }
        match peer {
            Some(IpAddr::V4(ip)) if ip.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            Some(IpAddr::V6(ip)) if ip.is_loopback() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            _ => self.default_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_blocks() {
        let net = IpNet::parse("192.0.2.0/24").unwrap();
        assert!(net.contains("192.0.2.77".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.9".parse().unwrap()));
        let host = IpNet::parse("2001:db8::1").unwrap();
        assert_eq!(host.prefix, 128);
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("203.0.113.1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_none());
        assert!(IpNet::parse("nonsense").is_none());
    }
}
