//! Which hosts name the SIP domain: phones are often set up with the server's IP address as
//! their domain, and a request addressed so is meant for us as much as one naming the domain.

use std::net::IpAddr;

use sip_message::Host;

use crate::config::ConfigError;

/// The SIP domain served and the other names that mean it: configured aliases (host names or
/// IP literals) and whatever address a request arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalDomain {
    domain: Box<str>,
    names: Box<[Box<str>]>,
    addresses: Box<[IpAddr]>,
}

impl LocalDomain {
    /// `domain` (a host name) and its `aliases`: host names, IPv4 literals or IPv6 literals
    /// with or without brackets. Refused if an alias is neither.
    pub fn new(domain: &str, aliases: &[String]) -> Result<LocalDomain, ConfigError> {
        if !is_host_name(domain) {
            return Err(ConfigError::InvalidDomain);
        }
        let mut names = Vec::new();
        let mut addresses = Vec::new();
        for alias in aliases {
            let unbracketed = alias
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'));
            match unbracketed.unwrap_or(alias).parse::<IpAddr>() {
                Ok(address) => addresses.push(address.to_canonical()),
                Err(_) if unbracketed.is_none() && is_host_name(alias) => {
                    names.push(alias.to_ascii_lowercase().into_boxed_str())
                }
                Err(_) => return Err(ConfigError::InvalidDomainAlias),
            }
        }
        Ok(LocalDomain {
            domain: domain.into(),
            names: names.into(),
            addresses: addresses.into(),
        })
    }

    /// The SIP domain (also the Digest realm).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `host` names this domain: the domain itself or an alias (case-insensitive; IP
    /// literals by address), or `arrived_on`, the local address the request came in on (an
    /// unspecified address, a listener on all interfaces, matches nothing).
    pub fn is_ours(&self, host: &Host<'_>, arrived_on: IpAddr) -> bool {
        let text = host.as_str();
        if text.eq_ignore_ascii_case(&self.domain) {
            return true;
        }
        match host.ip().map(|ip| ip.to_canonical()) {
            Some(ip) => {
                self.addresses.contains(&ip)
                    || (ip == arrived_on.to_canonical() && !ip.is_unspecified())
            }
            None => self
                .names
                .iter()
                .any(|name| name.eq_ignore_ascii_case(text)),
        }
    }
}

/// Letters, digits, `.`, `-` and `_`: a host name (or a dotted IPv4 address), nothing that
/// needs quoting in a header.
pub(crate) fn is_host_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_message::Uri;

    fn host_of(uri: &str) -> Host<'_> {
        match Uri::parse(uri).unwrap() {
            Uri::Sip(sip) => sip.host(),
            _ => panic!("not a SIP URI"),
        }
    }

    fn ours(domain: &LocalDomain, uri: &str, arrived_on: &str) -> bool {
        domain.is_ours(&host_of(uri), arrived_on.parse().unwrap())
    }

    #[test]
    fn the_domain_its_aliases_and_the_arrival_address_are_ours() {
        let aliases = [
            "SIP.Example.NET",
            "192.0.2.10",
            "2001:db8::10",
            "[2001:DB8::11]",
        ]
        .map(String::from);
        let domain = LocalDomain::new("example.com", &aliases).unwrap();
        let arrived = "198.51.100.1";
        for uri in [
            "sip:alice@example.com",
            "sip:alice@EXAMPLE.com:5070",
            "sips:alice@sip.example.net",
            "sip:alice@192.0.2.10",
            "sip:alice@[2001:db8::10]",
            "sip:alice@[2001:db8:0::11]:5060",
            "sip:alice@198.51.100.1",
        ] {
            assert!(ours(&domain, uri, arrived), "{uri}");
        }
        for uri in [
            "sip:alice@example.org",
            "sip:alice@sub.example.com",
            "sip:alice@192.0.2.11",
            "sip:alice@[2001:db8::12]",
            "sip:alice@198.51.100.2",
            "sip:alice@0.0.0.0",
        ] {
            assert!(!ours(&domain, uri, arrived), "{uri}");
        }
        // The arrival address over IPv6, also as an IPv4-mapped address of a dual-stack socket.
        assert!(ours(&domain, "sip:alice@[2001:db8::99]", "2001:db8::99"));
        assert!(ours(
            &domain,
            "sip:alice@198.51.100.1",
            "::ffff:198.51.100.1"
        ));
        // A listener on all interfaces says nothing about the address.
        assert!(!ours(&domain, "sip:alice@0.0.0.0", "0.0.0.0"));
        assert!(!ours(&domain, "sip:alice@[::]", "::"));
    }

    #[test]
    fn aliases_must_be_host_names_or_addresses() {
        for bad in ["", "a b", "exa\"mple", "[example.com]", "[192.0.2.1", "a;b"] {
            assert_eq!(
                LocalDomain::new("example.com", &[bad.to_owned()]),
                Err(ConfigError::InvalidDomainAlias),
                "{bad:?}"
            );
        }
        assert_eq!(
            LocalDomain::new("exa mple", &[]),
            Err(ConfigError::InvalidDomain)
        );
    }
}
