//! What a received request is, before any routing: the RFC 3261 §16.3 checks, and what its
//! Request-URI names.

use sip_message::{HeaderName, Message, Method, Uri};

use crate::config::ProxyConfig;

/// A request refused before routing: the status, its reason phrase, extra header lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) reason: Option<&'static str>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl Refusal {
    pub(crate) fn new(status: u16) -> Refusal {
        Refusal {
            status,
            reason: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn because(status: u16, reason: &'static str) -> Refusal {
        Refusal {
            status,
            reason: Some(reason),
            headers: Vec::new(),
        }
    }
}

/// RFC 3261 §16.3 step 2: a Request-URI scheme the proxy can route (sip, sips, tel), else 416.
pub(crate) fn check_scheme(request: &Message) -> Result<(), Refusal> {
    match request.request_uri() {
        Ok(Uri::Sip(_) | Uri::Tel(_)) => Ok(()),
        _ => Err(Refusal::new(416)),
    }
}

/// RFC 3261 §16.3 step 3: a request that may not travel further (483).
pub(crate) fn check_max_forwards(request: &Message) -> Result<(), Refusal> {
    if request.max_forwards() == Ok(Some(0)) {
        return Err(Refusal::new(483));
    }
    Ok(())
}

/// RFC 3261 §16.3 step 5: this proxy supports no extension a `Proxy-Require` could name
/// (420 listing them in Unsupported).
pub(crate) fn check_proxy_require(request: &Message) -> Result<(), Refusal> {
    let mut unsupported = Vec::new();
    for tag in request.proxy_require() {
        match tag {
            Ok(tag) => unsupported.push(tag),
            Err(_) => return Err(Refusal::because(400, "Malformed Proxy-Require")),
        }
    }
    if !unsupported.is_empty() {
        let mut refusal = Refusal::new(420);
        refusal
            .headers
            .push(("Unsupported", unsupported.join(", ")));
        return Err(refusal);
    }
    Ok(())
}

/// What the Request-URI of an out-of-dialog request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Destination {
    /// This server itself (no user part, our host).
    Server,
    /// A user at our domain: an endpoint's username, or perhaps a number.
    LocalUser(String),
    /// A telephone number (a `tel:` URI, or `user=phone`), digits with an optional `+`.
    Number(String),
    /// A SIP URI of another domain.
    OtherDomain,
}

/// Classifies the Request-URI (already screened to be sip, sips or tel).
pub(crate) fn destination(
    request: &Message,
    config: &ProxyConfig,
    arrived_on: std::net::IpAddr,
) -> Destination {
    match request.request_uri() {
        Ok(Uri::Tel(tel)) => Destination::Number(phone_digits(tel.number())),
        Ok(Uri::Sip(sip)) => {
            if !config.is_local(&sip.host(), sip.port(), arrived_on) {
                return Destination::OtherDomain;
            }
            let Some(user) = sip.user_unescaped() else {
                return Destination::Server;
            };
            let user = String::from_utf8_lossy(&user).into_owned();
            if sip.user_param() == Some("phone") {
                Destination::Number(phone_digits(&user))
            } else {
                Destination::LocalUser(user)
            }
        }
        _ => Destination::OtherDomain,
    }
}

/// A user part as a telephone number, if it reads as one: an optional `+` and at least three
/// digits, visual separators (`-.()` and spaces, RFC 3966) ignored.
pub(crate) fn as_number(user: &str) -> Option<String> {
    let digits = phone_digits(user);
    let count = digits.trim_start_matches('+').len();
    let well_formed = count >= 3
        && digits
            .char_indices()
            .all(|(i, c)| c.is_ascii_digit() || (c == '+' && i == 0))
        && user
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.() ".contains(c));
    well_formed.then_some(digits)
}

fn phone_digits(text: &str) -> String {
    let number = text.split(';').next().unwrap_or_default();
    number
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

/// Whether an INVITE's SDP offer has a video stream (an `m=video` line with a port other
/// than 0, in an application/sdp body or part of a multipart one).
pub(crate) fn offers_video(request: &Message) -> bool {
    let body = request.body();
    if body.is_empty() {
        return false;
    }
    let is_sdp_or_multipart =
        request.content_type().ok().flatten().is_some_and(|t| {
            t.is("application", "sdp") || t.mtype.eq_ignore_ascii_case("multipart")
        });
    is_sdp_or_multipart
        && body.split(|&b| b == b'\n').any(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.strip_prefix(b"m=video ")
                .and_then(|rest| rest.split(|&b| b == b' ').next())
                .is_some_and(|port| port != b"0")
        })
}

/// Whether the request creates a dialog, so the proxy stays in its path (Record-Route).
pub(crate) fn creates_dialog(method: Method<'_>) -> bool {
    matches!(method, Method::Invite | Method::Subscribe | Method::Refer)
}

/// The Proxy-Authorization lines answering our own realm's challenge: consumed here, not
/// forwarded (RFC 3261 §22.3 leaves other realms' alone).
pub(crate) fn own_credentials<'m>(
    request: &'m Message,
    realm: &'m str,
) -> impl Iterator<Item = sip_message::Header<'m>> + 'm {
    request
        .headers()
        .filter(|h| h.name == HeaderName::ProxyAuthorization)
        .filter(
            move |h| match sip_message::auth::Credentials::parse(h.value) {
                Ok(sip_message::auth::Credentials::Digest(digest)) => digest.realm == realm,
                _ => false,
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite(body: &str, content_type: &str) -> Message {
        Message::parse_slice(
            format!(
                "INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
                 From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: c\r\n\
                 CSeq: 1 INVITE\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn video_offers() {
        let audio = "v=0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let video = "v=0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 4002 RTP/AVP 96\r\n";
        let rejected_video = "v=0\r\nm=audio 4000 RTP/AVP 0\r\nm=video 0 RTP/AVP 96\r\n";
        assert!(!offers_video(&invite(audio, "application/sdp")));
        assert!(offers_video(&invite(video, "application/sdp")));
        assert!(offers_video(&invite(video, "Application/SDP")));
        assert!(!offers_video(&invite(rejected_video, "application/sdp")));
        assert!(!offers_video(&invite(video, "text/plain")));
    }

    #[test]
    fn numbers() {
        assert_eq!(
            as_number("+1 (202) 555-0100").as_deref(),
            Some("+12025550100")
        );
        assert_eq!(as_number("919812345678").as_deref(), Some("919812345678"));
        assert_eq!(as_number("12"), None);
        assert_eq!(as_number("alice"), None);
        assert_eq!(as_number("1+2345"), None);
        assert_eq!(as_number("bob123"), None);
    }
}
