//! The Via header (RFC 3261 §20.42, RFC 3581 `rport`).

use std::io::Write as _;
use std::net::SocketAddr;

use crate::error::{ErrorKind, ParseError};
use crate::message::Message;
use crate::params::{parse_params, Params};
use crate::scan::{parse_u32, Cursor};
use crate::uri::{parse_host, parse_port, Host};

/// One Via value (`SIP/2.0/UDP host:port;params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    raw: &'a [u8],
    protocol_name: &'a str,
    protocol_version: &'a str,
    transport: &'a str,
    host: Host<'a>,
    port: Option<u16>,
    params: Params<'a>,
    branch: Option<&'a str>,
    received: Option<&'a str>,
    rport: Option<RPort>,
    maddr: Option<&'a str>,
    ttl: Option<u8>,
}

/// The RFC 3581 `rport` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RPort {
    /// `;rport` without value: the client asks for it to be filled in.
    Requested,
    /// `;rport=1234`.
    Port(u16),
}

impl<'a> Via<'a> {
    /// Parses one Via value (a single comma-separated element). `offset` is
    /// the position of `text` for error reporting.
    pub fn parse(text: &'a [u8], offset: usize) -> Result<Via<'a>, ParseError> {
        let mut cursor = Cursor::new(text, offset);
        cursor.skip_lws();
        if cursor.at_end() {
            return Err(cursor.err(ErrorKind::EmptyValue));
        }
        let protocol_name = cursor.token(ErrorKind::UnexpectedChar)?;
        cursor.skip_lws();
        cursor.expect(b'/', ErrorKind::UnexpectedChar)?;
        cursor.skip_lws();
        let protocol_version = cursor.token(ErrorKind::UnexpectedChar)?;
        cursor.skip_lws();
        cursor.expect(b'/', ErrorKind::UnexpectedChar)?;
        cursor.skip_lws();
        let transport = cursor.token(ErrorKind::UnexpectedChar)?;
        if !cursor.skip_lws() {
            return Err(cursor.err(ErrorKind::UnexpectedChar));
        }
        let (host, host_len) = parse_host(cursor.rest(), cursor.base + cursor.pos)?;
        cursor.pos += host_len;
        let checkpoint = cursor.pos;
        cursor.skip_lws();
        let mut port = None;
        if cursor.eat(b':') {
            cursor.skip_lws();
            let port_offset = cursor.base + cursor.pos;
            let digits = cursor.take_while(|b| b.is_ascii_digit());
            port = Some(parse_port(digits, port_offset)?);
        } else {
            cursor.pos = checkpoint;
        }
        let (mut branch, mut received, mut rport, mut maddr, mut ttl) =
            (None, None, None, None, None);
        // First occurrence wins, as with `Params::get`.
        let params = parse_params(&mut cursor, |param, at| {
            let name = param.name;
            if name.eq_ignore_ascii_case("branch") {
                branch = branch.or(param.value_str());
            } else if name.eq_ignore_ascii_case("received") {
                received = received.or(param.value_str());
            } else if name.eq_ignore_ascii_case("rport") && rport.is_none() {
                rport = Some(match param.value {
                    None => RPort::Requested,
                    Some(v) => RPort::Port(parse_port(v, at)?),
                });
            } else if name.eq_ignore_ascii_case("maddr") {
                maddr = maddr.or(param.value_str());
            } else if name.eq_ignore_ascii_case("ttl") && ttl.is_none() {
                let value = parse_u32(param.value.unwrap_or_default())
                    .ok()
                    .and_then(|t| u8::try_from(t).ok())
                    .ok_or_else(|| ParseError::new(ErrorKind::NumberOutOfRange, at))?;
                ttl = Some(value);
            }
            Ok(())
        })?;
        Ok(Via {
            raw: text,
            protocol_name,
            protocol_version,
            transport,
            host,
            port,
            params,
            branch,
            received,
            rport,
            maddr,
            ttl,
        })
    }

    /// The value as written.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
    /// The protocol name, normally `SIP`.
    pub fn protocol_name(&self) -> &'a str {
        self.protocol_name
    }
    /// The protocol version, normally `2.0`.
    pub fn protocol_version(&self) -> &'a str {
        self.protocol_version
    }
    /// The transport as written (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, ...).
    pub fn transport(&self) -> &'a str {
        self.transport
    }
    /// The sent-by host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }
    /// The sent-by port, if given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// All parameters.
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.branch
    }
    /// Whether the branch carries the RFC 3261 magic cookie `z9hG4bK`.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch.is_some_and(|b| b.starts_with("z9hG4bK"))
    }
    /// The `received` parameter (IPv6 with or without brackets, as written).
    pub fn received(&self) -> Option<&'a str> {
        self.received
    }
    /// The `rport` parameter.
    pub fn rport(&self) -> Option<RPort> {
        self.rport
    }
    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.maddr
    }
    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.ttl
    }
}

impl Message {
    /// This request with its top Via stamped for the packet's `source` (RFC 3261 §18.2.1,
    /// RFC 3581 §4): `received` when the sent-by host differs from the source IP or `rport`
    /// is present, `rport=<port>` when asked for. Every response built from the stamped
    /// request (they copy the Via lines) then goes back where the request came from.
    /// `None` when nothing needs stamping or the top Via is unusable.
    pub fn with_received(&self, source: SocketAddr) -> Option<Message> {
        let bytes = self.to_bytes();
        let via = self.top_via().ok()?;
        let wants_rport = via.rport().is_some();
        if !wants_rport && via.host().ip() == Some(source.ip()) {
            return None;
        }
        let element = via.as_bytes();
        let start = offset_in(&bytes, element)?;
        let params = via.params().as_bytes();
        let params_start = start + element.len().checked_sub(params.len())?;
        let end = start + element.len();

        let mut params_out = Vec::with_capacity(params.len() + 48);
        for param in via.params().iter() {
            if param.name.eq_ignore_ascii_case("received")
                || param.name.eq_ignore_ascii_case("rport")
            {
                continue;
            }
            params_out.push(b';');
            params_out.extend_from_slice(param.name.as_bytes());
            if let Some(value) = param.value {
                params_out.push(b'=');
                params_out.extend_from_slice(value);
            }
        }
        let _ = write!(params_out, ";received={}", source.ip());
        if wants_rport {
            let _ = write!(params_out, ";rport={}", source.port());
        }
        // Only the top Via's parameters change: nothing else in the index moves but by the
        // length difference.
        self.spliced(params_start..end, &params_out)
    }
}

/// Where `part` (a view borrowed from `whole`) starts in `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (offset + part.len() <= whole.len()).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_parts() {
        let via = Via::parse(
            b"SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3;received=2001:db8::9:255;rport=5061;maddr=224.2.0.1;ttl=16;x",
            0,
        )
        .unwrap();
        assert_eq!(via.protocol_name(), "SIP");
        assert_eq!(via.protocol_version(), "2.0");
        assert_eq!(via.transport(), "UDP");
        assert_eq!(via.host(), Host::Ipv6("2001:db8::9:1"));
        assert_eq!(via.port(), Some(6050));
        assert_eq!(via.branch(), Some("z9hG4bKas3"));
        assert!(via.has_rfc3261_branch());
        assert_eq!(via.received(), Some("2001:db8::9:255"));
        assert_eq!(via.rport(), Some(RPort::Port(5061)));
        assert_eq!(via.maddr(), Some("224.2.0.1"));
        assert_eq!(via.ttl(), Some(16));
        assert!(via.params().contains("x"));
    }

    #[test]
    fn lws_and_folding() {
        let via = Via::parse(
            b"SIP  /   2.0\r\n /UDP\r\n    192.0.2.2 : 5060 ;branch=\r\n z9hG4bK1;rport",
            0,
        )
        .unwrap();
        assert_eq!(via.transport(), "UDP");
        assert_eq!(via.host(), Host::Ipv4("192.0.2.2"));
        assert_eq!(via.port(), Some(5060));
        assert_eq!(via.branch(), Some("z9hG4bK1"));
        assert_eq!(via.rport(), Some(RPort::Requested));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b""[..],
            b"SIP/2.0/UDP",
            b"SIP/2.0 UDP host",
            b"SIP/2.0/UDP host;;",
            b"SIP/2.0/UDP host;branch=",
            b"SIP/2.0/UDP host:99999",
            b"SIP/2.0/UDP host;rport=x",
            b"SIP/2.0/UDP host;ttl=256",
            b"SIP/2.0/UDP host junk",
        ] {
            assert!(
                Via::parse(bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

#[cfg(test)]
mod received_tests {
    use super::*;
    use bytes::Bytes;

    fn request(via: &str) -> Message {
        Message::parse(Bytes::from(format!(
            "OPTIONS sip:example.com SIP/2.0\r\nVia: {via}\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx\r\n\
             From: <sip:a@example.com>;tag=1\r\nTo: <sip:example.com>\r\nCall-ID: c\r\n\
             CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )))
        .unwrap()
    }

    fn top_via(message: &Message) -> String {
        String::from_utf8(message.top_via().unwrap().as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn rport_is_filled_and_received_added() {
        let source = "203.0.113.7:40000".parse().unwrap();
        let stamped = request("SIP/2.0/UDP 192.168.1.2:5060;rport;branch=z9hG4bK1")
            .with_received(source)
            .unwrap();
        assert_eq!(
            top_via(&stamped),
            "SIP/2.0/UDP 192.168.1.2:5060;branch=z9hG4bK1;received=203.0.113.7;rport=40000"
        );
        // The other Via and the rest are untouched.
        assert_eq!(stamped.vias().count(), 2);
        assert_eq!(stamped.call_id().unwrap(), "c");
        let response = stamped.response(200).build();
        assert!(String::from_utf8(response)
            .unwrap()
            .contains("received=203.0.113.7;rport=40000"));
    }

    #[test]
    fn received_only_when_the_host_differs() {
        let source = "192.0.2.1:5060".parse().unwrap();
        assert!(request("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1")
            .with_received(source)
            .is_none());
        let stamped = request("SIP/2.0/TCP host.example;branch=z9hG4bK1")
            .with_received(source)
            .unwrap();
        assert_eq!(
            top_via(&stamped),
            "SIP/2.0/TCP host.example;branch=z9hG4bK1;received=192.0.2.1"
        );
    }
}
