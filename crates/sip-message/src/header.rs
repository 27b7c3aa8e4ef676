//! Header names: the well-known ones as an enum, resolved once at parse time.

/// A header name, resolved case-insensitively from its long or compact form.
///
/// Unrecognised names are [`HeaderName::Other`]; use
/// [`Message::headers_by_name`](crate::Message::headers_by_name) to reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// `Accept`.
    Accept,
    /// `Accept-Contact` (compact form `a`).
    AcceptContact,
    /// `Accept-Encoding`.
    AcceptEncoding,
    /// `Accept-Language`.
    AcceptLanguage,
    /// `Alert-Info`.
    AlertInfo,
    /// `Allow`.
    Allow,
    /// `Allow-Events` (compact form `u`).
    AllowEvents,
    /// `Authentication-Info`.
    AuthenticationInfo,
    /// `Authorization`.
    Authorization,
    /// `Call-ID` (compact form `i`).
    CallId,
    /// `Call-Info`.
    CallInfo,
    /// `Contact` (compact form `m`).
    Contact,
    /// `Content-Disposition`.
    ContentDisposition,
    /// `Content-Encoding` (compact form `e`).
    ContentEncoding,
    /// `Content-Language`.
    ContentLanguage,
    /// `Content-Length` (compact form `l`).
    ContentLength,
    /// `Content-Type` (compact form `c`).
    ContentType,
    /// `CSeq`.
    CSeq,
    /// `Date`.
    Date,
    /// `Error-Info`.
    ErrorInfo,
    /// `Event` (compact form `o`).
    Event,
    /// `Expires`.
    Expires,
    /// `From` (compact form `f`).
    From,
    /// `Identity` (compact form `y`).
    Identity,
    /// `In-Reply-To`.
    InReplyTo,
    /// `Max-Forwards`.
    MaxForwards,
    /// `MIME-Version`.
    MimeVersion,
    /// `Min-Expires`.
    MinExpires,
    /// `Organization`.
    Organization,
    /// `Path`.
    Path,
    /// `Priority`.
    Priority,
    /// `Proxy-Authenticate`.
    ProxyAuthenticate,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// `Proxy-Require`.
    ProxyRequire,
    /// `RAck`.
    RAck,
    /// `Record-Route`.
    RecordRoute,
    /// `Refer-To` (compact form `r`).
    ReferTo,
    /// `Referred-By` (compact form `b`).
    ReferredBy,
    /// `Reply-To`.
    ReplyTo,
    /// `Require`.
    Require,
    /// `Retry-After`.
    RetryAfter,
    /// `Route`.
    Route,
    /// `RSeq`.
    RSeq,
    /// `Server`.
    Server,
    /// `Service-Route`.
    ServiceRoute,
    /// `Session-Expires` (compact form `x`).
    SessionExpires,
    /// `Subject` (compact form `s`).
    Subject,
    /// `Subscription-State`.
    SubscriptionState,
    /// `Supported` (compact form `k`).
    Supported,
    /// `Timestamp`.
    Timestamp,
    /// `To` (compact form `t`).
    To,
    /// `Unsupported`.
    Unsupported,
    /// `User-Agent`.
    UserAgent,
    /// `Via` (compact form `v`).
    Via,
    /// `Warning`.
    Warning,
    /// `WWW-Authenticate`.
    WwwAuthenticate,
    /// Any header not listed above.
    Other,
}

/// Longest well-known header name; longer names are always `Other`.
const MAX_KNOWN_LEN: usize = 19;

impl HeaderName {
    /// The canonical (long) spelling, e.g. `"Call-ID"`. `Other` gives `""`.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderName::Accept => "Accept",
            HeaderName::AcceptContact => "Accept-Contact",
            HeaderName::AcceptEncoding => "Accept-Encoding",
            HeaderName::AcceptLanguage => "Accept-Language",
            HeaderName::AlertInfo => "Alert-Info",
            HeaderName::Allow => "Allow",
            HeaderName::AllowEvents => "Allow-Events",
            HeaderName::AuthenticationInfo => "Authentication-Info",
            HeaderName::Authorization => "Authorization",
            HeaderName::CallId => "Call-ID",
            HeaderName::CallInfo => "Call-Info",
            HeaderName::Contact => "Contact",
            HeaderName::ContentDisposition => "Content-Disposition",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::ContentLanguage => "Content-Language",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::ContentType => "Content-Type",
            HeaderName::CSeq => "CSeq",
            HeaderName::Date => "Date",
            HeaderName::ErrorInfo => "Error-Info",
            HeaderName::Event => "Event",
            HeaderName::Expires => "Expires",
            HeaderName::From => "From",
            HeaderName::Identity => "Identity",
            HeaderName::InReplyTo => "In-Reply-To",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::MimeVersion => "MIME-Version",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::Organization => "Organization",
            HeaderName::Path => "Path",
            HeaderName::Priority => "Priority",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::ProxyRequire => "Proxy-Require",
            HeaderName::RAck => "RAck",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::ReferredBy => "Referred-By",
            HeaderName::ReplyTo => "Reply-To",
            HeaderName::Require => "Require",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::Route => "Route",
            HeaderName::RSeq => "RSeq",
            HeaderName::Server => "Server",
            HeaderName::ServiceRoute => "Service-Route",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::Subject => "Subject",
            HeaderName::SubscriptionState => "Subscription-State",
            HeaderName::Supported => "Supported",
            HeaderName::Timestamp => "Timestamp",
            HeaderName::To => "To",
            HeaderName::Unsupported => "Unsupported",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::Via => "Via",
            HeaderName::Warning => "Warning",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::Other => "",
        }
    }

    /// The compact form, if the header has one (e.g. `Some("v")` for Via).
    pub fn compact(self) -> Option<&'static str> {
        match self {
            HeaderName::AcceptContact => Some("a"),
            HeaderName::AllowEvents => Some("u"),
            HeaderName::CallId => Some("i"),
            HeaderName::Contact => Some("m"),
            HeaderName::ContentEncoding => Some("e"),
            HeaderName::ContentLength => Some("l"),
            HeaderName::ContentType => Some("c"),
            HeaderName::Event => Some("o"),
            HeaderName::From => Some("f"),
            HeaderName::Identity => Some("y"),
            HeaderName::ReferTo => Some("r"),
            HeaderName::ReferredBy => Some("b"),
            HeaderName::SessionExpires => Some("x"),
            HeaderName::Subject => Some("s"),
            HeaderName::Supported => Some("k"),
            HeaderName::To => Some("t"),
            HeaderName::Via => Some("v"),
            _ => None,
        }
    }

    /// Resolves a header name (long or compact form, any case).
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        if name.len() > MAX_KNOWN_LEN {
            return HeaderName::Other;
        }
        let mut lower = [0u8; MAX_KNOWN_LEN];
        let lower = match lower.get_mut(..name.len()) {
            Some(lower) => lower,
            None => return HeaderName::Other,
        };
        for (dst, src) in lower.iter_mut().zip(name) {
            *dst = src.to_ascii_lowercase();
        }
        match &*lower {
            b"accept" => HeaderName::Accept,
            b"accept-contact" | b"a" => HeaderName::AcceptContact,
            b"accept-encoding" => HeaderName::AcceptEncoding,
            b"accept-language" => HeaderName::AcceptLanguage,
            b"alert-info" => HeaderName::AlertInfo,
            b"allow" => HeaderName::Allow,
            b"allow-events" | b"u" => HeaderName::AllowEvents,
            b"authentication-info" => HeaderName::AuthenticationInfo,
            b"authorization" => HeaderName::Authorization,
            b"call-id" | b"i" => HeaderName::CallId,
            b"call-info" => HeaderName::CallInfo,
            b"contact" | b"m" => HeaderName::Contact,
            b"content-disposition" => HeaderName::ContentDisposition,
            b"content-encoding" | b"e" => HeaderName::ContentEncoding,
            b"content-language" => HeaderName::ContentLanguage,
            b"content-length" | b"l" => HeaderName::ContentLength,
            b"content-type" | b"c" => HeaderName::ContentType,
            b"cseq" => HeaderName::CSeq,
            b"date" => HeaderName::Date,
            b"error-info" => HeaderName::ErrorInfo,
            b"event" | b"o" => HeaderName::Event,
            b"expires" => HeaderName::Expires,
            b"from" | b"f" => HeaderName::From,
            b"identity" | b"y" => HeaderName::Identity,
            b"in-reply-to" => HeaderName::InReplyTo,
            b"max-forwards" => HeaderName::MaxForwards,
            b"mime-version" => HeaderName::MimeVersion,
            b"min-expires" => HeaderName::MinExpires,
            b"organization" => HeaderName::Organization,
            b"path" => HeaderName::Path,
            b"priority" => HeaderName::Priority,
            b"proxy-authenticate" => HeaderName::ProxyAuthenticate,
            b"proxy-authorization" => HeaderName::ProxyAuthorization,
            b"proxy-require" => HeaderName::ProxyRequire,
            b"rack" => HeaderName::RAck,
            b"record-route" => HeaderName::RecordRoute,
            b"refer-to" | b"r" => HeaderName::ReferTo,
            b"referred-by" | b"b" => HeaderName::ReferredBy,
            b"reply-to" => HeaderName::ReplyTo,
            b"require" => HeaderName::Require,
            b"retry-after" => HeaderName::RetryAfter,
            b"route" => HeaderName::Route,
            b"rseq" => HeaderName::RSeq,
            b"server" => HeaderName::Server,
            b"service-route" => HeaderName::ServiceRoute,
            b"session-expires" | b"x" => HeaderName::SessionExpires,
            b"subject" | b"s" => HeaderName::Subject,
            b"subscription-state" => HeaderName::SubscriptionState,
            b"supported" | b"k" => HeaderName::Supported,
            b"timestamp" => HeaderName::Timestamp,
            b"to" | b"t" => HeaderName::To,
            b"unsupported" => HeaderName::Unsupported,
            b"user-agent" => HeaderName::UserAgent,
            b"via" | b"v" => HeaderName::Via,
            b"warning" => HeaderName::Warning,
            b"www-authenticate" => HeaderName::WwwAuthenticate,
            _ => HeaderName::Other,
        }
    }
}

impl std::fmt::Display for HeaderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
