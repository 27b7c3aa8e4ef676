//! URIs: `sip:`/`sips:` (RFC 3261 §19.1), `tel:` (RFC 3966), and any other
//! absolute URI kept opaque. All views borrow the parsed text.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{ErrorKind, ParseError};
use crate::scan::{ascii_str, hex_value, parse_u64, unescape};

/// A host: domain name, IPv4 address, or IPv6 reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A domain name, e.g. `example.com`.
    Domain(&'a str),
    /// A dotted-quad IPv4 address.
    Ipv4(&'a str),
    /// An IPv6 reference; the text between `[` and `]`.
    Ipv6(&'a str),
}

impl<'a> Host<'a> {
    /// The host as written, without brackets for IPv6.
    pub fn as_str(&self) -> &'a str {
        match *self {
            Host::Domain(s) | Host::Ipv4(s) | Host::Ipv6(s) => s,
        }
    }

    /// The IP address, if the host is an IP literal that std can parse.
    /// (RFC 5118 §4.10's `2001:db8:::192.0.2.1` is tolerated by the parser but
    /// gives `None` here.)
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Host::Domain(_) => None,
            Host::Ipv4(s) => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            Host::Ipv6(s) => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        }
    }

    /// RFC 3261 host comparison: case-insensitive for names; IP literals
    /// compare by address when both parse.
    pub fn matches(&self, other: &Host<'_>) -> bool {
        match (self.ip(), other.ip()) {
            (Some(a), Some(b)) => a == b,
            _ => {
                std::mem::discriminant(self) == std::mem::discriminant(other)
                    && self.as_str().eq_ignore_ascii_case(other.as_str())
            }
        }
    }
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ipv6(s) => write!(f, "[{s}]"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// Parses a host at the start of `text`; returns it and the bytes consumed.
/// `offset` is the position of `text` for error reporting.
pub(crate) fn parse_host(text: &[u8], offset: usize) -> Result<(Host<'_>, usize), ParseError> {
    if text.first() == Some(&b'[') {
        let close = memchr::memchr(b']', text)
            .ok_or_else(|| ParseError::new(ErrorKind::BadHost, offset))?;
        let inner = text.get(1..close).unwrap_or_default();
        // Lenient on purpose: hex digits, colons and dots (an embedded IPv4),
        // so RFC 5118's 3-colon form is tolerated.
        let valid = inner.len() >= 2
            && inner.contains(&b':')
            && inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !valid {
            return Err(ParseError::new(ErrorKind::BadHost, offset));
        }
        return Ok((Host::Ipv6(ascii_str(inner)), close + 1));
    }
    let len = text
        .iter()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        .count();
    let name = text.get(..len).unwrap_or_default();
    if name.is_empty() || name.first() == Some(&b'.') || name.first() == Some(&b'-') {
        return Err(ParseError::new(ErrorKind::BadHost, offset));
    }
    let name = ascii_str(name);
    let is_ipv4 =
        name.bytes().all(|b| b.is_ascii_digit() || b == b'.') && name.parse::<Ipv4Addr>().is_ok();
    let host = if is_ipv4 {
        Host::Ipv4(name)
    } else {
        Host::Domain(name)
    };
    Ok((host, len))
}

pub(crate) fn parse_port(digits: &[u8], offset: usize) -> Result<u16, ParseError> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::new(ErrorKind::BadPort, offset));
    }
    parse_u64(digits)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| ParseError::new(ErrorKind::BadPort, offset))
}

/// `;name[=value]` parameters of a URI (the text after the first `;`, up to
/// `?`), kept escaped as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UriParams<'a> {
    raw: &'a str,
}

/// One URI parameter, as written (still `%HH`-escaped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriParam<'a> {
    /// The name.
    pub name: &'a str,
    /// The value, if there is a `=`.
    pub value: Option<&'a str>,
}

impl<'a> UriParams<'a> {
    /// The raw parameter text, without the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Iterates over the parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = UriParam<'a>> + 'a {
        let raw = self.raw;
        raw.split(';')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((name, value)) => UriParam {
                    name,
                    value: Some(value),
                },
                None => UriParam {
                    name: p,
                    value: None,
                },
            })
    }

    /// The parameter with this name (case-insensitive; names are compared
    /// as written, unescaped names are not matched).
    pub fn get(&self, name: &str) -> Option<UriParam<'a>> {
        self.iter().find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The value of a parameter (None if absent or valueless).
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(|p| p.value)
    }

    /// Whether a parameter is present (with or without value).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipUri<'a> {
    raw: &'a str,
    secure: bool,
    user: Option<&'a str>,
    password: Option<&'a str>,
    host: Host<'a>,
    port: Option<u16>,
    params: UriParams<'a>,
    headers: Option<&'a str>,
}

impl<'a> SipUri<'a> {
    /// The whole URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// `true` for `sips:`.
    pub fn is_secure(&self) -> bool {
        self.secure
    }
    /// The user part as written (still escaped), e.g. `user;par=u%40example.net`.
    pub fn user(&self) -> Option<&'a str> {
        self.user
    }
    /// The user part with `%HH` escapes decoded once (may contain NUL or any
    /// byte, hence bytes).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(|u| unescape(u.as_bytes()))
    }
    /// The password as written.
    pub fn password(&self) -> Option<&'a str> {
        self.password
    }
    /// The host.
    pub fn host(&self) -> Host<'a> {
        self.host
    }
    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// The URI parameters.
    pub fn params(&self) -> UriParams<'a> {
        self.params
    }
    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.value("transport")
    }
    /// Whether the `lr` parameter is present (loose routing).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }
    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.value("maddr")
    }
    /// Whether the `ob` parameter is present (RFC 5626 outbound).
    pub fn ob(&self) -> bool {
        self.params.contains("ob")
    }
    /// The `user` parameter (e.g. `phone`).
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.value("user")
    }
    /// The headers part after `?` (escaped, as written), e.g. `Route=%3Csip:x%3E`.
    pub fn headers(&self) -> Option<&'a str> {
        self.headers
    }
    /// The headers as `(name, value)` pairs, still escaped.
    pub fn header_pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.headers
            .unwrap_or_default()
            .split('&')
            .filter(|h| !h.is_empty())
            .map(|h| h.split_once('=').unwrap_or((h, "")))
    }

    /// URI equivalence per RFC 3261 §19.1.4: same scheme; user and password
    /// equal after unescaping (case-sensitive); host equal (case-insensitive);
    /// same port presence and value; `user`, `ttl`, `method`, `maddr` and
    /// `transport` parameters equal when present in either; other parameters
    /// equal when present in both; same headers.
    pub fn equivalent(&self, other: &SipUri<'_>) -> bool {
        fn unescaped_eq(a: Option<&str>, b: Option<&str>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => unescape(a.as_bytes()) == unescape(b.as_bytes()),
                _ => false,
            }
        }
        fn value_eq(a: Option<&str>, b: Option<&str>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => {
                    unescape(a.as_bytes()).eq_ignore_ascii_case(&unescape(b.as_bytes()))
                }
                _ => false,
            }
        }
        if self.secure != other.secure
            || !unescaped_eq(self.user, other.user)
            || !unescaped_eq(self.password, other.password)
            || !self.host.matches(&other.host)
            || self.port != other.port
        {
            return false;
        }
        const MUST_MATCH: [&str; 5] = ["user", "ttl", "method", "maddr", "transport"];
        for name in MUST_MATCH {
            match (self.params.get(name), other.params.get(name)) {
                (None, None) => {}
                (Some(a), Some(b)) if value_eq(a.value, b.value) => {}
                _ => return false,
            }
        }
        for param in self.params.iter() {
            if let Some(theirs) = other.params.get(param.name) {
                if !value_eq(param.value, theirs.value) {
                    return false;
                }
            }
        }
        // Headers: every header in either must be in the other, equal.
        let contains_all = |a: &SipUri<'_>, b: &SipUri<'_>| {
            a.header_pairs().all(|(name, value)| {
                b.header_pairs().any(|(n, v)| {
                    n.eq_ignore_ascii_case(name)
                        && unescape(v.as_bytes()) == unescape(value.as_bytes())
                })
            })
        };
        contains_all(self, other) && contains_all(other, self)
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelUri<'a> {
    raw: &'a str,
    number: &'a str,
    params: UriParams<'a>,
}

impl<'a> TelUri<'a> {
    /// The whole URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// The number as written, e.g. `+1-201-555-0123`.
    pub fn number(&self) -> &'a str {
        self.number
    }
    /// Whether the number is global (starts with `+`).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }
    /// The parameters, e.g. `phone-context=example.com`.
    pub fn params(&self) -> UriParams<'a> {
        self.params
    }
}

/// Any other absolute URI (`scheme:rest`), kept opaque.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsoluteUri<'a> {
    raw: &'a str,
    scheme_len: usize,
}

impl<'a> AbsoluteUri<'a> {
    /// The whole URI as written.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }
    /// The scheme, e.g. `http`.
    pub fn scheme(&self) -> &'a str {
        self.raw.get(..self.scheme_len).unwrap_or_default()
    }
    /// Everything after `scheme:`.
    pub fn rest(&self) -> &'a str {
        self.raw.get(self.scheme_len + 1..).unwrap_or_default()
    }
}

/// A parsed URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:`.
    Tel(TelUri<'a>),
    /// Any other scheme.
    Other(AbsoluteUri<'a>),
}

impl<'a> Uri<'a> {
    /// Parses a URI from text. Errors carry offsets into `text`.
    pub fn parse(text: &'a str) -> Result<Uri<'a>, ParseError> {
        parse_uri(text.as_bytes(), 0)
    }

    /// The whole URI as written.
    pub fn as_str(&self) -> &'a str {
        match self {
            Uri::Sip(u) => u.as_str(),
            Uri::Tel(u) => u.as_str(),
            Uri::Other(u) => u.as_str(),
        }
    }

    /// The scheme as written (`sip`, `sips`, `tel`, ...).
    pub fn scheme(&self) -> &'a str {
        let raw = self.as_str();
        raw.split_once(':').map(|(s, _)| s).unwrap_or_default()
    }

    /// The SIP/SIPS URI, if it is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// RFC 3261 §19.1.4 comparison for SIP URIs; other schemes compare
    /// case-insensitively as text.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            (Uri::Sip(_), _) | (_, Uri::Sip(_)) => false,
            (a, b) => a.as_str().eq_ignore_ascii_case(b.as_str()),
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Validates `%HH` escapes in a URI component.
fn check_escapes(part: &[u8], offset: usize) -> Result<(), ParseError> {
    let mut i = 0;
    while let Some(rel) = part.get(i..).and_then(|rest| memchr::memchr(b'%', rest)) {
        let at = i + rel;
        let valid = part.get(at + 1).copied().and_then(hex_value).is_some()
            && part.get(at + 2).copied().and_then(hex_value).is_some();
        if !valid {
            return Err(ParseError::new(ErrorKind::BadUri, offset + at));
        }
        i = at + 3;
    }
    Ok(())
}

/// Parses a complete URI (`bytes` must be exactly the URI). `offset` is the
/// position of `bytes` for error reporting.
pub(crate) fn parse_uri(bytes: &[u8], offset: usize) -> Result<Uri<'_>, ParseError> {
    // URIs are printable ASCII without spaces; this also makes &str safe.
    if let Some(bad) = bytes.iter().position(|&b| !(0x21..=0x7e).contains(&b)) {
        return Err(ParseError::new(ErrorKind::BadUri, offset + bad));
    }
    let raw = ascii_str(bytes);
    let colon =
        memchr::memchr(b':', bytes).ok_or_else(|| ParseError::new(ErrorKind::BadUri, offset))?;
    let scheme = bytes.get(..colon).unwrap_or_default();
    let scheme_ok = scheme.first().is_some_and(u8::is_ascii_alphabetic)
        && scheme
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return Err(ParseError::new(ErrorKind::BadUri, offset));
    }
    let rest = bytes.get(colon + 1..).unwrap_or_default();
    let rest_offset = offset + colon + 1;
    if scheme.eq_ignore_ascii_case(b"sip") || scheme.eq_ignore_ascii_case(b"sips") {
        parse_sip_uri(raw, scheme.len() == 4, rest, rest_offset).map(Uri::Sip)
    } else if scheme.eq_ignore_ascii_case(b"tel") {
        let number_len = memchr::memchr(b';', rest).unwrap_or(rest.len());
        let number = rest.get(..number_len).unwrap_or_default();
        if number.is_empty() {
            return Err(ParseError::new(ErrorKind::BadUri, rest_offset));
        }
        let params = rest.get(number_len + 1..).unwrap_or_default();
        Ok(Uri::Tel(TelUri {
            raw,
            number: ascii_str(number),
            params: UriParams {
                raw: ascii_str(params),
            },
        }))
    } else {
        if rest.is_empty() {
            return Err(ParseError::new(ErrorKind::BadUri, rest_offset));
        }
        Ok(Uri::Other(AbsoluteUri {
            raw,
            scheme_len: colon,
        }))
    }
}

fn parse_sip_uri<'a>(
    raw: &'a str,
    secure: bool,
    rest: &'a [u8],
    offset: usize,
) -> Result<SipUri<'a>, ParseError> {
    // '@' cannot appear unescaped after the userinfo, so the first one ends it.
    let (user, password, hostport_start) = match memchr::memchr(b'@', rest) {
        Some(at) => {
            let userinfo = rest.get(..at).unwrap_or_default();
            let (user, password) = match memchr::memchr(b':', userinfo) {
                Some(c) => (
                    userinfo.get(..c).unwrap_or_default(),
                    Some(userinfo.get(c + 1..).unwrap_or_default()),
                ),
                None => (userinfo, None),
            };
            if user.is_empty() {
                return Err(ParseError::new(ErrorKind::BadUri, offset));
            }
            check_escapes(userinfo, offset)?;
            (Some(ascii_str(user)), password.map(ascii_str), at + 1)
        }
        None => (None, None, 0),
    };
    let hostport = rest.get(hostport_start..).unwrap_or_default();
    let host_offset = offset + hostport_start;
    let (host, host_len) = parse_host(hostport, host_offset)?;
    let mut pos = host_len;
    let mut port = None;
    if hostport.get(pos) == Some(&b':') {
        let digits_len = hostport
            .get(pos + 1..)
            .unwrap_or_default()
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let digits = hostport
            .get(pos + 1..pos + 1 + digits_len)
            .unwrap_or_default();
        port = Some(parse_port(digits, host_offset + pos + 1)?);
        pos += 1 + digits_len;
    }
    let tail = hostport.get(pos..).unwrap_or_default();
    let (params, headers) = match tail.first() {
        None => ("", None),
        Some(b';') | Some(b'?') => {
            let question = memchr::memchr(b'?', tail);
            let params_part = tail
                .get(..question.unwrap_or(tail.len()))
                .unwrap_or_default();
            let params = params_part.get(1..).unwrap_or_default();
            // Every parameter needs a name: no `;;`, trailing `;` or `;=v`.
            let nameless = |param: &[u8]| param.is_empty() || param.first() == Some(&b'=');
            if !params_part.is_empty() && params.split(|&b| b == b';').any(nameless) {
                return Err(ParseError::new(ErrorKind::BadParam, host_offset + pos));
            }
            let headers = question.map(|q| ascii_str(tail.get(q + 1..).unwrap_or_default()));
            (ascii_str(params), headers)
        }
        Some(_) => return Err(ParseError::new(ErrorKind::BadHost, host_offset + pos)),
    };
    Ok(SipUri {
        raw,
        secure,
        user,
        password,
        host,
        port,
        params: UriParams { raw: params },
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(text: &str) -> SipUri<'_> {
        match Uri::parse(text).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn sip_uri_parts() {
        let u = sip(
            "sips:alice:secret@Example.COM:5061;transport=tcp;lr;maddr=10.0.0.1;ob?subject=hi&x=y",
        );
        assert!(u.is_secure());
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.password(), Some("secret"));
        assert_eq!(u.host(), Host::Domain("Example.COM"));
        assert_eq!(u.port(), Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert!(u.ob());
        assert_eq!(u.maddr(), Some("10.0.0.1"));
        assert_eq!(u.headers(), Some("subject=hi&x=y"));
        assert_eq!(
            u.header_pairs().collect::<Vec<_>>(),
            [("subject", "hi"), ("x", "y")]
        );
    }

    #[test]
    fn hosts() {
        assert_eq!(sip("sip:10.1.2.3").host(), Host::Ipv4("10.1.2.3"));
        assert_eq!(
            sip("sip:[2001:db8::10]:5070").host(),
            Host::Ipv6("2001:db8::10")
        );
        assert_eq!(sip("sip:[2001:db8::10]:5070").port(), Some(5070));
        let ambiguous = sip("sip:[2001:db8::10:5070]");
        assert_eq!(ambiguous.host(), Host::Ipv6("2001:db8::10:5070"));
        assert_eq!(ambiguous.port(), None);
        assert!(Uri::parse("sip:2001:db8::10").is_err());
        assert_eq!(sip("sip:999.1.1.1").host(), Host::Domain("999.1.1.1"));
        assert_eq!(
            sip("sip:[::ffff:192.0.2.2]").host().ip(),
            Some("::ffff:192.0.2.2".parse().unwrap())
        );
    }

    #[test]
    fn user_escapes_are_decoded_once() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(
            u.user_unescaped().unwrap().as_ref(),
            b"user;par=u@example.net"
        );
        assert!(u.params().is_empty());
        let nul = sip("sip:null-%00-null@example.com");
        assert_eq!(nul.user_unescaped().unwrap().as_ref(), b"null-\0-null");
        let twice = sip("sip:a%2541@h");
        assert_eq!(twice.user_unescaped().unwrap().as_ref(), b"a%41");
        assert!(Uri::parse("sip:a%4@h").is_err());
    }

    #[test]
    fn tel_and_other() {
        match Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap() {
            Uri::Tel(t) => {
                assert_eq!(t.number(), "+1-201-555-0123");
                assert!(t.is_global());
                assert_eq!(t.params().value("phone-context"), Some("example.com"));
            }
            other => panic!("{other:?}"),
        }
        match Uri::parse("soap.beep://192.0.2.103:3002").unwrap() {
            Uri::Other(o) => {
                assert_eq!(o.scheme(), "soap.beep");
                assert_eq!(o.rest(), "//192.0.2.103:3002");
            }
            other => panic!("{other:?}"),
        }
        assert!(Uri::parse("<sip:a@b>").is_err());
        assert!(Uri::parse("sip:a@b c").is_err());
        assert!(Uri::parse("nocolon").is_err());
        assert!(Uri::parse("sip:a@b;;lr").is_err());
        assert!(Uri::parse("sip:a@b;=x").is_err());
        assert!(Uri::parse("sip:a@b;").is_err());
        assert!(Uri::parse("sip:a@b?x=y").is_ok());
        assert!(Uri::parse("sip:@b").is_err());
        assert!(Uri::parse("sip:a@").is_err());
        assert!(Uri::parse("sip:a@b:").is_err());
        assert!(Uri::parse("sip:a@b:65536").is_err());
        assert!(Uri::parse("sip:a@[::1").is_err());
        assert!(Uri::parse("sip:a@[zz::1]").is_err());
        assert!(Uri::parse("sip:a@b>").is_err());
        assert!(Uri::parse("tel:").is_err());
        assert!(Uri::parse("1abc:x").is_err());
    }

    #[test]
    fn comparison_rfc3261_19_1_4() {
        let eq = |a: &str, b: &str| sip(a).equivalent(&sip(b));
        assert!(eq(
            "sip:%61lice@atlanta.com;transport=TCP",
            "sip:alice@AtLanTa.CoM;Transport=tcp"
        ));
        assert!(eq(
            "sip:carol@chicago.com",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:carol@chicago.com;security=on",
            "sip:carol@chicago.com;newparam=5"
        ));
        assert!(eq(
            "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
            "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"
        ));
        assert!(!eq(
            "SIP:ALICE@AtLanTa.CoM;Transport=udp",
            "sip:alice@AtLanTa.CoM;Transport=UDP"
        ));
        assert!(!eq("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"));
        assert!(!eq(
            "sip:bob@biloxi.com",
            "sip:bob@biloxi.com;transport=udp"
        ));
        assert!(!eq(
            "sip:carol@chicago.com;newparam=5",
            "sip:carol@chicago.com;newparam=6"
        ));
        assert!(!eq(
            "sip:alice@atlanta.com?subject=a",
            "sip:alice@atlanta.com"
        ));
    }
}
