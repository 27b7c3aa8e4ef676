//! Address headers: From, To, Contact, Route, Record-Route, Path
//! (`name-addr` or `addr-spec`, followed by header parameters).

use std::borrow::Cow;

use crate::error::{ErrorKind, ParseError};
use crate::params::{parse_params, Param, Params};
use crate::scan::{is_lws, is_token, parse_u32, unquote, Cursor};
use crate::uri::{parse_uri, Uri};

/// A display name, quoted (`"Alice \"A\""`) or a sequence of tokens (`Alice A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayName<'a> {
    raw: &'a [u8],
    quoted: bool,
}

impl<'a> DisplayName<'a> {
    /// As written, quotes included if quoted.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
    /// Whether it was a quoted string.
    pub fn is_quoted(&self) -> bool {
        self.quoted
    }
    /// The text: quotes and quoted-pair backslashes removed. Bytes, since a
    /// quoted string may hold any octet (even NUL).
    pub fn text(&self) -> Cow<'a, [u8]> {
        if self.quoted {
            unquote(self.raw)
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

/// An address: optional display name, URI, header parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    raw: &'a [u8],
    display_name: Option<DisplayName<'a>>,
    uri: Uri<'a>,
    bracketed: bool,
    params: Params<'a>,
    tag: Option<&'a str>,
}

impl<'a> NameAddr<'a> {
    /// Parses one address value. `offset` is the position of `text` for
    /// error reporting.
    pub fn parse(text: &'a [u8], offset: usize) -> Result<NameAddr<'a>, ParseError> {
        Self::parse_with(text, offset, |_, _| Ok(()))
    }

    /// Parses, showing every header parameter to `on_param` (with its offset).
    fn parse_with(
        text: &'a [u8],
        offset: usize,
        mut on_param: impl FnMut(&Param<'a>, usize) -> Result<(), ParseError>,
    ) -> Result<NameAddr<'a>, ParseError> {
        let mut cursor = Cursor::new(text, offset);
        cursor.skip_lws();
        if cursor.at_end() {
            return Err(cursor.err(ErrorKind::EmptyValue));
        }
        let mut display_name = None;
        let bracketed = if cursor.peek() == Some(b'"') {
            let quoted = cursor.quoted_string()?;
            display_name = Some(DisplayName {
                raw: quoted,
                quoted: true,
            });
            cursor.skip_lws();
            if cursor.peek() != Some(b'<') {
                return Err(cursor.err(ErrorKind::BadDisplayName));
            }
            true
        } else if cursor.peek() == Some(b'<') {
            true
        } else {
            // Tokens followed by '<' are a display name (LWS before '<' is
            // optional, RFC 4475 lwsdisp); otherwise this is an addr-spec.
            let start = cursor.pos;
            let mut end = start;
            loop {
                let token = cursor.take_while(is_token);
                if token.is_empty() {
                    break;
                }
                end = cursor.pos;
                cursor.skip_lws();
            }
            if cursor.peek() == Some(b'<') && end > start {
                display_name = Some(DisplayName {
                    raw: cursor.slice(start, end),
                    quoted: false,
                });
                true
            } else {
                cursor.pos = start;
                false
            }
        };
        let uri = if bracketed {
            cursor.expect(b'<', ErrorKind::UnexpectedChar)?;
            let uri_start = cursor.pos;
            let close = memchr::memchr(b'>', cursor.rest())
                .ok_or_else(|| cursor.err(ErrorKind::UnterminatedAngle))?;
            let uri_bytes = cursor.slice(uri_start, uri_start + close);
            let uri = parse_uri(uri_bytes, cursor.base + uri_start)?;
            cursor.pos = uri_start + close + 1;
            uri
        } else {
            // addr-spec: the URI ends at the first ';' (header params), white
            // space or comma; it may not contain headers ('?').
            let uri_start = cursor.pos;
            let uri_bytes =
                cursor.take_while(|b| !is_lws(b) && !matches!(b, b';' | b',' | b'<' | b'>'));
            if let Some(q) = memchr::memchr(b'?', uri_bytes) {
                return Err(ParseError::new(
                    ErrorKind::BadUri,
                    cursor.base + uri_start + q,
                ));
            }
            parse_uri(uri_bytes, cursor.base + uri_start)?
        };
        let mut tag = None;
        let params = parse_params(&mut cursor, |param, at| {
            if tag.is_none() && param.name.eq_ignore_ascii_case("tag") {
                tag = param.value_str();
            }
            on_param(param, at)
        })?;
        Ok(NameAddr {
            raw: text,
            display_name,
            uri,
            bracketed,
            params,
            tag,
        })
    }

    /// The value as written.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
    /// The display name, if any.
    pub fn display_name(&self) -> Option<DisplayName<'a>> {
        self.display_name
    }
    /// The URI.
    pub fn uri(&self) -> Uri<'a> {
        self.uri
    }
    /// Whether the URI was in `<...>` (name-addr form).
    pub fn is_name_addr(&self) -> bool {
        self.bracketed
    }
    /// The header parameters (after the URI / `>`).
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }
}

/// A Contact value: `*` or an address with registration parameters.
// A borrowed view made per read on the registrar's hot path: boxing the large
// variant would cost an allocation per Contact for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    /// `Contact: *` (remove all bindings, REGISTER only).
    Star,
    /// An address.
    Address(ContactAddr<'a>),
}

impl<'a> Contact<'a> {
    /// Parses one Contact element.
    pub fn parse(text: &'a [u8], offset: usize) -> Result<Contact<'a>, ParseError> {
        if crate::scan::trim_lws(text) == b"*" {
            return Ok(Contact::Star);
        }
        let (mut expires, mut q, mut reg_id, mut instance) = (None, None, None, None);
        // First occurrence wins, as with `Params::get`.
        let addr = NameAddr::parse_with(text, offset, |param, at| {
            let name = param.name;
            let value = param.value.unwrap_or_default();
            if name.eq_ignore_ascii_case("expires") && expires.is_none() {
                expires = Some(parse_u32(value).map_err(|kind| ParseError::new(kind, at))?);
            } else if name.eq_ignore_ascii_case("q") && q.is_none() {
                q = Some(
                    parse_qvalue(value).ok_or_else(|| ParseError::new(ErrorKind::BadQValue, at))?,
                );
            } else if name.eq_ignore_ascii_case("reg-id") && reg_id.is_none() {
                reg_id = Some(parse_u32(value).map_err(|kind| ParseError::new(kind, at))?);
            } else if name.eq_ignore_ascii_case("+sip.instance") && instance.is_none() {
                instance = param.value;
            }
            Ok(())
        })?;
        Ok(Contact::Address(ContactAddr {
            addr,
            expires,
            q,
            reg_id,
            instance,
        }))
    }

    /// The address, unless this is `*`.
    pub fn address(&self) -> Option<&ContactAddr<'a>> {
        match self {
            Contact::Star => None,
            Contact::Address(a) => Some(a),
        }
    }
}

/// A Contact address with typed access to its registration parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContactAddr<'a> {
    addr: NameAddr<'a>,
    expires: Option<u32>,
    q: Option<u16>,
    reg_id: Option<u32>,
    instance: Option<&'a [u8]>,
}

impl<'a> std::ops::Deref for ContactAddr<'a> {
    type Target = NameAddr<'a>;
    fn deref(&self) -> &NameAddr<'a> {
        &self.addr
    }
}

impl<'a> ContactAddr<'a> {
    /// The underlying address.
    pub fn name_addr(&self) -> &NameAddr<'a> {
        &self.addr
    }
    /// The `expires` parameter in seconds.
    pub fn expires(&self) -> Option<u32> {
        self.expires
    }
    /// The `q` parameter as thousandths (0..=1000): `q=0.33` is 330.
    pub fn q(&self) -> Option<u16> {
        self.q
    }
    /// The `+sip.instance` value without its quotes, e.g.
    /// `<urn:uuid:00000000-0000-1000-8000-000A95A0E128>`.
    pub fn sip_instance(&self) -> Option<Cow<'a, [u8]>> {
        self.instance.map(unquote)
    }
    /// The `reg-id` parameter (RFC 5626).
    pub fn reg_id(&self) -> Option<u32> {
        self.reg_id
    }
    /// Whether the `ob` header parameter is present (RFC 5626). Note: `ob`
    /// inside the URI is [`SipUri::ob`](crate::SipUri::ob).
    pub fn ob(&self) -> bool {
        self.addr.params.contains("ob")
    }
}

/// Parses an RFC 3261 qvalue (`0`, `0.5`, `1.000`) into thousandths.
pub(crate) fn parse_qvalue(text: &[u8]) -> Option<u16> {
    let (int, frac) = match memchr::memchr(b'.', text) {
        Some(dot) => (text.get(..dot)?, text.get(dot + 1..)?),
        None => (text, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Host;

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(
            b"\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
            0,
        )
        .unwrap();
        assert_eq!(
            a.display_name().unwrap().text().as_ref(),
            b"J Rosenberg \\\""
        );
        assert_eq!(a.tag(), Some("98asjd8"));
        let b = NameAddr::parse(b"Caller<sip:caller@example.com>;tag=1", 0).unwrap();
        assert_eq!(b.display_name().unwrap().as_bytes(), b"Caller");
        let c = NameAddr::parse(b"sip:a@example.com;tag=x;other", 0).unwrap();
        assert!(!c.is_name_addr());
        assert_eq!(c.uri().as_str(), "sip:a@example.com");
        assert_eq!(c.tag(), Some("x"));
        let d = NameAddr::parse(b"token1~` token2'+_ <sip:m@example.com>", 0).unwrap();
        assert_eq!(d.display_name().unwrap().as_bytes(), b"token1~` token2'+_");
    }

    #[test]
    fn name_addr_errors() {
        for bad in [
            &b"\"open <sip:a@b>"[..],
            b"Bell, Alexander <sip:a@b>",
            b"< sip:a@b >",
            b"<sip:a@b",
            b"sip:a@b?Route=x",
            b"<sip:a@b>;;",
            b"",
        ] {
            assert!(
                NameAddr::parse(bad, 0).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn contact_params() {
        let c = Contact::parse(
            b"<sip:a@[2001:db8::1]:5070;ob>;expires=3600;q=0.7;+sip.instance=\"<urn:uuid:abc>\";reg-id=2;ob",
            0,
        )
        .unwrap();
        let addr = c.address().unwrap();
        assert_eq!(addr.expires(), Some(3600));
        assert_eq!(addr.q(), Some(700));
        assert_eq!(addr.sip_instance().unwrap().as_ref(), b"<urn:uuid:abc>");
        assert_eq!(addr.reg_id(), Some(2));
        assert!(addr.ob());
        let uri = addr.uri();
        let sip = uri.as_sip().unwrap();
        assert_eq!(sip.host(), Host::Ipv6("2001:db8::1"));
        assert!(sip.ob());
        assert_eq!(Contact::parse(b" * ", 0).unwrap(), Contact::Star);
        assert!(Contact::parse(b"<sip:a@b>;expires=280297596632815", 0).is_err());
        assert!(Contact::parse(b"<sip:a@b>;q=1.5", 0).is_err());
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"0.33"), Some(330));
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1.000"), Some(1000));
        assert_eq!(parse_qvalue(b"0"), Some(0));
        assert_eq!(parse_qvalue(b"0.001"), Some(1));
        assert_eq!(parse_qvalue(b"1.1"), None);
        assert_eq!(parse_qvalue(b"0.1234"), None);
        assert_eq!(parse_qvalue(b""), None);
    }
}
