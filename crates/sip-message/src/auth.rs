//! Digest (RFC 7616) and Bearer (RFC 8898) credentials and challenges.
//!
//! Parsing works on one header field value (the part after `Authorization:`,
//! `Proxy-Authorization:`, `WWW-Authenticate:` or `Proxy-Authenticate:`).
//! In SIP each of these header fields carries exactly one credential or
//! challenge (RFC 3261 §7.3.1), so a value is never a comma-separated list of
//! challenges.
//!
//! Values borrow from the input where they can: a quoted string without
//! backslash escapes or line folding is returned as [`Cow::Borrowed`].
//!
//! Hashing is not done here; the registrar computes and compares digests.
//!
//! ```
//! use sip_message::auth::{Credentials, DigestAlgorithm, DigestChallenge, Qop};
//!
//! let value = br#"Digest username="alice", realm="example.com", nonce="n1",
//!  uri="sip:example.com", response="0123abcd", algorithm=SHA-256,
//!  qop=auth, cnonce="c1", nc=0000012c"#;
//! let Credentials::Digest(digest) = Credentials::parse(value)? else { panic!() };
//! assert_eq!(digest.realm, "example.com");
//! assert_eq!(digest.algorithm, DigestAlgorithm::Sha256);
//! assert_eq!(digest.nc, Some(300));
//!
//! // The registrar's 401 carries two challenges, SHA-256 first.
//! let sha256 = DigestChallenge::new("example.com", "n2")
//!     .with_algorithm(DigestAlgorithm::Sha256)
//!     .with_qop(Qop::Auth)
//!     .to_header_value()?;
//! assert_eq!(sha256, r#"Digest realm="example.com", nonce="n2", algorithm=SHA-256, qop="auth""#);
//! # Ok::<(), sip_message::auth::AuthError>(())
//! ```

use std::borrow::Cow;
use std::fmt;

/// Why a credential or challenge could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    offset: usize,
}

/// What is wrong with an auth header value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The value is not valid UTF-8.
    InvalidUtf8,
    /// No authentication scheme token at the start of the value.
    MissingScheme,
    /// A parameter name (token) was expected.
    ExpectedParameterName,
    /// `=` was expected after a parameter name.
    ExpectedEquals,
    /// A token or quoted string was expected after `=`.
    ExpectedParameterValue,
    /// A `,` or the end of the value was expected after a parameter.
    ExpectedComma,
    /// A quoted string has no closing `"`.
    UnterminatedQuotedString,
    /// A byte that may not appear here (control character, bad escape).
    InvalidCharacter,
    /// The same parameter appears twice.
    DuplicateParameter(String),
    /// A required parameter is absent.
    MissingParameter(&'static str),
    /// Both parameters are present but only one is allowed.
    ConflictingParameters(&'static str, &'static str),
    /// A parameter's value does not have the required form.
    InvalidParameterValue {
        /// Parameter name.
        parameter: &'static str,
        /// The form the value must have.
        expected: &'static str,
    },
    /// The Bearer token is not a token68.
    InvalidToken68,
    /// Unexpected bytes after the Bearer token.
    TrailingData,
    /// An RFC 8187 extended value names a charset other than UTF-8 or ISO-8859-1.
    UnsupportedCharset,
    /// A value given to a builder cannot be written into a header.
    UnencodableValue {
        /// Parameter name (or `extension` for an extension parameter name).
        parameter: String,
    },
}

impl AuthError {
    fn new(kind: AuthErrorKind, offset: usize) -> Self {
        AuthError { kind, offset }
    }

    /// What is wrong.
    pub fn kind(&self) -> &AuthErrorKind {
        &self.kind
    }

    /// Byte offset into the parsed value where the problem was found (for
    /// [`AuthErrorKind::UnencodableValue`], into the offending builder value).
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthErrorKind::InvalidUtf8 => f.write_str("invalid UTF-8"),
            AuthErrorKind::MissingScheme => f.write_str("missing authentication scheme"),
            AuthErrorKind::ExpectedParameterName => f.write_str("expected a parameter name"),
            AuthErrorKind::ExpectedEquals => f.write_str("expected `=` after parameter name"),
            AuthErrorKind::ExpectedParameterValue => {
                f.write_str("expected a token or quoted string as parameter value")
            }
            AuthErrorKind::ExpectedComma => f.write_str("expected `,` or end after parameter"),
            AuthErrorKind::UnterminatedQuotedString => f.write_str("unterminated quoted string"),
            AuthErrorKind::InvalidCharacter => f.write_str("invalid character"),
            AuthErrorKind::DuplicateParameter(name) => write!(f, "duplicate parameter `{name}`"),
            AuthErrorKind::MissingParameter(name) => write!(f, "missing parameter `{name}`"),
            AuthErrorKind::ConflictingParameters(a, b) => {
                write!(f, "parameters `{a}` and `{b}` must not both be present")
            }
            AuthErrorKind::InvalidParameterValue {
                parameter,
                expected,
            } => write!(f, "invalid `{parameter}` value, expected {expected}"),
            AuthErrorKind::InvalidToken68 => f.write_str("invalid Bearer token (token68)"),
            AuthErrorKind::TrailingData => f.write_str("unexpected data after Bearer token"),
            AuthErrorKind::UnsupportedCharset => {
                f.write_str("unsupported charset in extended value (UTF-8 or ISO-8859-1 only)")
            }
            AuthErrorKind::UnencodableValue { parameter } => {
                write!(f, "value of `{parameter}` cannot be written in a header")
            }
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for AuthError {}

/// Digest algorithm (`algorithm=` parameter), compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DigestAlgorithm<'a> {
    /// `MD5`, also the meaning of an absent `algorithm` parameter.
    Md5,
    /// `MD5-sess`
    Md5Sess,
    /// `SHA-256`
    Sha256,
    /// `SHA-256-sess`
    Sha256Sess,
    /// `SHA-512-256`
    Sha512_256,
    /// `SHA-512-256-sess`
    Sha512_256Sess,
    /// Any other algorithm name, as received.
    Other(Cow<'a, str>),
}

impl<'a> DigestAlgorithm<'a> {
    const KNOWN: [(&'static str, DigestAlgorithm<'static>); 6] = [
        ("MD5", DigestAlgorithm::Md5),
        ("MD5-sess", DigestAlgorithm::Md5Sess),
        ("SHA-256", DigestAlgorithm::Sha256),
        ("SHA-256-sess", DigestAlgorithm::Sha256Sess),
        ("SHA-512-256", DigestAlgorithm::Sha512_256),
        ("SHA-512-256-sess", DigestAlgorithm::Sha512_256Sess),
    ];

    /// Maps a name to an algorithm, case-insensitively; unknown names are kept.
    pub fn from_name(name: Cow<'a, str>) -> Self {
        Self::KNOWN
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(&name))
            .map(|(_, algorithm)| algorithm.clone())
            .unwrap_or(DigestAlgorithm::Other(name))
    }

    /// The canonical name (RFC 7616 §6.1 spelling for known algorithms).
    pub fn as_str(&self) -> &str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Md5Sess => "MD5-sess",
            DigestAlgorithm::Sha256 => "SHA-256",
            DigestAlgorithm::Sha256Sess => "SHA-256-sess",
            DigestAlgorithm::Sha512_256 => "SHA-512-256",
            DigestAlgorithm::Sha512_256Sess => "SHA-512-256-sess",
            DigestAlgorithm::Other(name) => name,
        }
    }

    /// True for the `-sess` variants, whose HA1 includes nonce and cnonce.
    pub fn is_session(&self) -> bool {
        matches!(
            self,
            DigestAlgorithm::Md5Sess
                | DigestAlgorithm::Sha256Sess
                | DigestAlgorithm::Sha512_256Sess
        )
    }
}

impl fmt::Display for DigestAlgorithm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection (`qop`), compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Qop<'a> {
    /// `auth`
    Auth,
    /// `auth-int`
    AuthInt,
    /// Any other value, as received.
    Other(Cow<'a, str>),
}

impl<'a> Qop<'a> {
    /// Maps a name to a qop value, case-insensitively; unknown names are kept.
    pub fn from_name(name: Cow<'a, str>) -> Self {
        if name.eq_ignore_ascii_case("auth") {
            Qop::Auth
        } else if name.eq_ignore_ascii_case("auth-int") {
            Qop::AuthInt
        } else {
            Qop::Other(name)
        }
    }

    /// The value as written in a header.
    pub fn as_str(&self) -> &str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
            Qop::Other(name) => name,
        }
    }
}

impl fmt::Display for Qop<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parameter that this module does not interpret, kept as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam<'a> {
    /// Parameter name as received (compare case-insensitively).
    pub name: &'a str,
    /// Value with quotes removed and escapes resolved.
    pub value: Cow<'a, str>,
}

/// The user name in Digest credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Username<'a> {
    /// `username="..."`; when `userhash=true` this is the hashed user name.
    Plain(Cow<'a, str>),
    /// `username*=` in RFC 8187 extended notation, undecoded
    /// (e.g. `UTF-8''J%C3%A4s%C3%B8n`); see [`Username::decode`].
    Extended(Cow<'a, str>),
}

impl Username<'_> {
    /// The user name as text: `Plain` as is, `Extended` percent-decoded from
    /// UTF-8 or ISO-8859-1 (the charsets RFC 8187 requires).
    pub fn decode(&self) -> Result<Cow<'_, str>, AuthError> {
        match self {
            Username::Plain(name) => Ok(Cow::Borrowed(name)),
            Username::Extended(raw) => decode_ext_value(raw).map(Cow::Owned),
        }
    }
}

/// Decodes an RFC 8187 `ext-value` (`charset'[language]'pct-encoded`).
fn decode_ext_value(raw: &str) -> Result<String, AuthError> {
    let invalid = |offset| {
        AuthError::new(
            AuthErrorKind::InvalidParameterValue {
                parameter: "username*",
                expected: "charset'language'percent-encoded value (RFC 8187)",
            },
            offset,
        )
    };
    let mut parts = raw.splitn(3, '\'');
    let (Some(charset), Some(_language), Some(encoded)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(0));
    };
    let encoded_start = raw.len() - encoded.len();
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut input = encoded.bytes().enumerate();
    while let Some((index, byte)) = input.next() {
        match byte {
            b'%' => {
                let high = input.next().and_then(|(_, b)| hex_value(b));
                let low = input.next().and_then(|(_, b)| hex_value(b));
                match (high, low) {
                    (Some(high), Some(low)) => bytes.push(high << 4 | low),
                    _ => return Err(invalid(encoded_start + index)),
                }
            }
            b if is_attr_char(b) => bytes.push(b),
            _ => return Err(invalid(encoded_start + index)),
        }
    }
    if charset.eq_ignore_ascii_case("UTF-8") {
        String::from_utf8(bytes).map_err(|e| {
            AuthError::new(
                AuthErrorKind::InvalidUtf8,
                encoded_start + e.utf8_error().valid_up_to(),
            )
        })
    } else if charset.eq_ignore_ascii_case("ISO-8859-1") {
        Ok(bytes.into_iter().map(char::from).collect())
    } else {
        Err(AuthError::new(AuthErrorKind::UnsupportedCharset, 0))
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

/// RFC 8187 attr-char.
fn is_attr_char(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
        )
}

/// Contents of an `Authorization` or `Proxy-Authorization` header value.
// Parsed once per request and used at once: boxing the large Digest variant
// would cost an allocation on the registrar's hot path for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials<'a> {
    /// `Digest ...` (RFC 7616, RFC 3261 §22.4).
    Digest(DigestCredentials<'a>),
    /// `Bearer <token68>` (RFC 8898).
    Bearer(BearerCredentials<'a>),
    /// Any other scheme, kept unparsed.
    Other(OtherAuth<'a>),
}

/// Digest credentials. Required parameters are checked at parse time: a user
/// name (`username` or `username*`), `realm`, `nonce`, `uri`, `response`, and
/// `cnonce` plus `nc` when `qop` is present.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DigestCredentials<'a> {
    /// `username` or `username*`.
    pub username: Username<'a>,
    /// `realm`
    pub realm: Cow<'a, str>,
    /// `nonce`
    pub nonce: Cow<'a, str>,
    /// `uri` (the digest-uri, to be compared with the Request-URI).
    pub uri: Cow<'a, str>,
    /// `response` (the request digest, hex).
    pub response: Cow<'a, str>,
    /// `algorithm`; [`DigestAlgorithm::Md5`] when absent (RFC 7616 §3.4).
    pub algorithm: DigestAlgorithm<'a>,
    /// `cnonce`
    pub cnonce: Option<Cow<'a, str>>,
    /// `opaque`
    pub opaque: Option<Cow<'a, str>>,
    /// `qop`
    pub qop: Option<Qop<'a>>,
    /// `nc` (nonce count), parsed from its 8 hex digits.
    pub nc: Option<u32>,
    /// `userhash=true`: `username` is a hash of user name and realm.
    pub userhash: bool,
    /// Parameters not listed above, in order of appearance.
    pub extensions: Vec<AuthParam<'a>>,
}

/// `Bearer` credentials (RFC 8898).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerCredentials<'a> {
    /// The access token (token68).
    pub token: &'a str,
}

/// Credentials or challenge with a scheme this module does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherAuth<'a> {
    /// The scheme token as received.
    pub scheme: &'a str,
    /// Everything after the scheme and its whitespace, unparsed.
    pub rest: &'a str,
}

impl<'a> Credentials<'a> {
    /// Parses an `Authorization` / `Proxy-Authorization` header value.
    pub fn parse(value: &'a [u8]) -> Result<Self, AuthError> {
        Self::parse_str(to_str(value)?)
    }

    /// Same as [`Credentials::parse`], from text.
    pub fn parse_str(value: &'a str) -> Result<Self, AuthError> {
        let (scheme, rest_offset) = split_scheme(value)?;
        if scheme.eq_ignore_ascii_case("Digest") {
            DigestCredentials::parse_params(value, rest_offset).map(Credentials::Digest)
        } else if scheme.eq_ignore_ascii_case("Bearer") {
            parse_token68(value, rest_offset)
                .map(|token| Credentials::Bearer(BearerCredentials { token }))
        } else {
            Ok(Credentials::Other(OtherAuth {
                scheme,
                rest: &value[rest_offset..],
            }))
        }
    }
}

impl<'a> DigestCredentials<'a> {
    fn parse_params(value: &'a str, start: usize) -> Result<Self, AuthError> {
        let mut username = None;
        let mut username_ext = None;
        let mut realm = None;
        let mut nonce = None;
        let mut uri = None;
        let mut response = None;
        let mut algorithm = None;
        let mut cnonce = None;
        let mut opaque = None;
        let mut qop = None;
        let mut nc = None;
        let mut userhash = None;
        let mut extensions: Vec<AuthParam<'a>> = Vec::new();

        let mut params = ParamList::new(value, start);
        while let Some(param) = params.next_param()? {
            let RawParam {
                name,
                name_offset,
                value: param_value,
                value_offset,
            } = param;
            let duplicate = || duplicate_error(name, name_offset);
            match DigestParam::classify(name) {
                Some(DigestParam::Username) => set_once(&mut username, param_value, duplicate)?,
                Some(DigestParam::UsernameExt) => {
                    set_once(&mut username_ext, param_value, duplicate)?
                }
                Some(DigestParam::Realm) => set_once(&mut realm, param_value, duplicate)?,
                Some(DigestParam::Nonce) => set_once(&mut nonce, param_value, duplicate)?,
                Some(DigestParam::Uri) => set_once(&mut uri, param_value, duplicate)?,
                Some(DigestParam::Response) => set_once(&mut response, param_value, duplicate)?,
                Some(DigestParam::Algorithm) => {
                    let parsed = DigestAlgorithm::from_name(param_value);
                    set_once(&mut algorithm, parsed, duplicate)?;
                }
                Some(DigestParam::Cnonce) => set_once(&mut cnonce, param_value, duplicate)?,
                Some(DigestParam::Opaque) => set_once(&mut opaque, param_value, duplicate)?,
                Some(DigestParam::Qop) => {
                    let parsed = Qop::from_name(param_value);
                    set_once(&mut qop, parsed, duplicate)?;
                }
                Some(DigestParam::Nc) => {
                    let count = parse_nonce_count(&param_value).ok_or_else(|| {
                        AuthError::new(
                            AuthErrorKind::InvalidParameterValue {
                                parameter: "nc",
                                expected: "8 hexadecimal digits",
                            },
                            value_offset,
                        )
                    })?;
                    set_once(&mut nc, count, duplicate)?;
                }
                Some(DigestParam::Userhash) => {
                    let flag = parse_bool(&param_value, "userhash", value_offset)?;
                    set_once(&mut userhash, flag, duplicate)?;
                }
                _ => add_extension(&mut extensions, name, name_offset, param_value)?,
            }
        }

        let end = value.len();
        let missing = |name| AuthError::new(AuthErrorKind::MissingParameter(name), end);
        let username = match (username, username_ext) {
            (Some(plain), None) => Username::Plain(plain),
            (None, Some(extended)) => Username::Extended(extended),
            (Some(_), Some(_)) => {
                return Err(AuthError::new(
                    AuthErrorKind::ConflictingParameters("username", "username*"),
                    start,
                ))
            }
            (None, None) => return Err(missing("username")),
        };
        // RFC 7616 §3.4: with qop, the client MUST send cnonce and nc.
        if qop.is_some() {
            if cnonce.is_none() {
                return Err(missing("cnonce"));
            }
            if nc.is_none() {
                return Err(missing("nc"));
            }
        }
        Ok(DigestCredentials {
            username,
            realm: realm.ok_or_else(|| missing("realm"))?,
            nonce: nonce.ok_or_else(|| missing("nonce"))?,
            uri: uri.ok_or_else(|| missing("uri"))?,
            response: response.ok_or_else(|| missing("response"))?,
            algorithm: algorithm.unwrap_or(DigestAlgorithm::Md5),
            cnonce,
            opaque,
            qop,
            nc,
            userhash: userhash.unwrap_or(false),
            extensions,
        })
    }
}

/// The Digest parameters this module interprets (RFC 7616 §3.3, §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DigestParam {
    Username,
    UsernameExt,
    Realm,
    Nonce,
    Uri,
    Response,
    Algorithm,
    Cnonce,
    Opaque,
    Qop,
    Nc,
    Userhash,
    Domain,
    Stale,
}

impl DigestParam {
    /// Case-insensitive lookup, by length first: this runs for every
    /// parameter of every Authorization header.
    fn classify(name: &str) -> Option<Self> {
        use DigestParam::*;
        let candidates: &[(&str, DigestParam)] = match name.len() {
            2 => &[("nc", Nc)],
            3 => &[("uri", Uri), ("qop", Qop)],
            5 => &[("realm", Realm), ("nonce", Nonce), ("stale", Stale)],
            6 => &[("cnonce", Cnonce), ("opaque", Opaque), ("domain", Domain)],
            8 => &[
                ("username", Username),
                ("response", Response),
                ("userhash", Userhash),
            ],
            9 => &[("algorithm", Algorithm), ("username*", UsernameExt)],
            _ => &[],
        };
        // Clients send lower case; an exact comparison is cheaper to try first.
        candidates
            .iter()
            .find(|(known, _)| *known == name)
            .or_else(|| {
                candidates
                    .iter()
                    .find(|(known, _)| known.eq_ignore_ascii_case(name))
            })
            .map(|(_, param)| *param)
    }
}

/// Contents of a `WWW-Authenticate` or `Proxy-Authenticate` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge<'a> {
    /// `Digest ...`
    Digest(DigestChallenge<'a>),
    /// Any other scheme (including `Bearer`), kept unparsed.
    Other(OtherAuth<'a>),
}

impl<'a> Challenge<'a> {
    /// Parses a `WWW-Authenticate` / `Proxy-Authenticate` header value.
    pub fn parse(value: &'a [u8]) -> Result<Self, AuthError> {
        Self::parse_str(to_str(value)?)
    }

    /// Same as [`Challenge::parse`], from text.
    pub fn parse_str(value: &'a str) -> Result<Self, AuthError> {
        let (scheme, rest_offset) = split_scheme(value)?;
        if scheme.eq_ignore_ascii_case("Digest") {
            DigestChallenge::parse_params(value, rest_offset).map(Challenge::Digest)
        } else {
            Ok(Challenge::Other(OtherAuth {
                scheme,
                rest: &value[rest_offset..],
            }))
        }
    }
}

/// A Digest challenge, parsed or to be sent.
///
/// Build one with [`DigestChallenge::new`] and the `with_*` methods, then
/// write it with [`DigestChallenge::to_header_value`]. Parsing requires
/// `realm` and `nonce`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DigestChallenge<'a> {
    /// `realm`
    pub realm: Cow<'a, str>,
    /// `domain`: the space-separated URIs of the protection space.
    pub domain: Vec<Cow<'a, str>>,
    /// `nonce`
    pub nonce: Cow<'a, str>,
    /// `opaque`
    pub opaque: Option<Cow<'a, str>>,
    /// `stale=true`: the nonce expired but the credentials were right.
    pub stale: bool,
    /// `algorithm`; [`DigestAlgorithm::Md5`] when absent.
    pub algorithm: DigestAlgorithm<'a>,
    /// `qop` options offered, in order; empty when absent.
    pub qop: Vec<Qop<'a>>,
    /// `userhash=true`: the server supports hashed user names.
    pub userhash: bool,
    /// Parameters not listed above (e.g. `charset`), in order.
    pub extensions: Vec<AuthParam<'a>>,
}

impl<'a> DigestChallenge<'a> {
    /// A challenge for `realm` with `nonce`, algorithm MD5, no qop.
    pub fn new(realm: impl Into<Cow<'a, str>>, nonce: impl Into<Cow<'a, str>>) -> Self {
        DigestChallenge {
            realm: realm.into(),
            domain: Vec::new(),
            nonce: nonce.into(),
            opaque: None,
            stale: false,
            algorithm: DigestAlgorithm::Md5,
            qop: Vec::new(),
            userhash: false,
            extensions: Vec::new(),
        }
    }

    /// Sets `algorithm`.
    pub fn with_algorithm(mut self, algorithm: DigestAlgorithm<'a>) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Adds a qop option (`qop="auth"`, `qop="auth,auth-int"`).
    pub fn with_qop(mut self, qop: Qop<'a>) -> Self {
        self.qop.push(qop);
        self
    }

    /// Sets `opaque`.
    pub fn with_opaque(mut self, opaque: impl Into<Cow<'a, str>>) -> Self {
        self.opaque = Some(opaque.into());
        self
    }

    /// Sets `stale`.
    pub fn with_stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Adds a URI to `domain`.
    pub fn with_domain(mut self, uri: impl Into<Cow<'a, str>>) -> Self {
        self.domain.push(uri.into());
        self
    }

    /// Sets `userhash`.
    pub fn with_userhash(mut self, userhash: bool) -> Self {
        self.userhash = userhash;
        self
    }

    /// Adds an extension parameter, written as `name="value"`.
    pub fn with_extension(mut self, name: &'a str, value: impl Into<Cow<'a, str>>) -> Self {
        self.extensions.push(AuthParam {
            name,
            value: value.into(),
        });
        self
    }

    /// The header value (without the header name), e.g.
    /// `Digest realm="example.com", nonce="abc", algorithm=SHA-256, qop="auth"`.
    ///
    /// Fails if a value cannot be represented: a control character other
    /// than HTAB in a quoted value, or a name/token that is not a token.
    pub fn to_header_value(&self) -> Result<String, AuthError> {
        let mut out = String::with_capacity(96 + self.realm.len() + self.nonce.len());
        out.push_str("Digest realm=");
        push_quoted(&mut out, "realm", &self.realm)?;
        if !self.domain.is_empty() {
            out.push_str(", domain=\"");
            for (index, uri) in self.domain.iter().enumerate() {
                if index > 0 {
                    out.push(' ');
                }
                // Items are separated by spaces, so each must be non-empty and space-free.
                check_list_item(uri, "domain", |c| c.is_ascii_whitespace())?;
                push_quoted_contents(&mut out, "domain", uri)?;
            }
            out.push('"');
        }
        out.push_str(", nonce=");
        push_quoted(&mut out, "nonce", &self.nonce)?;
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            push_quoted(&mut out, "opaque", opaque)?;
        }
        if self.stale {
            out.push_str(", stale=true");
        }
        out.push_str(", algorithm=");
        push_token(&mut out, "algorithm", self.algorithm.as_str())?;
        if !self.qop.is_empty() {
            out.push_str(", qop=\"");
            for (index, qop) in self.qop.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                push_token(&mut out, "qop", qop.as_str())?;
            }
            out.push('"');
        }
        if self.userhash {
            out.push_str(", userhash=true");
        }
        for extension in &self.extensions {
            out.push_str(", ");
            push_token(&mut out, "extension", extension.name)?;
            out.push('=');
            push_quoted(&mut out, extension.name, &extension.value)?;
        }
        Ok(out)
    }

    fn parse_params(value: &'a str, start: usize) -> Result<Self, AuthError> {
        let mut realm = None;
        let mut domain = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut stale = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut userhash = None;
        let mut extensions: Vec<AuthParam<'a>> = Vec::new();

        let mut params = ParamList::new(value, start);
        while let Some(param) = params.next_param()? {
            let RawParam {
                name,
                name_offset,
                value: param_value,
                value_offset,
            } = param;
            let duplicate = || duplicate_error(name, name_offset);
            match DigestParam::classify(name) {
                Some(DigestParam::Realm) => set_once(&mut realm, param_value, duplicate)?,
                Some(DigestParam::Domain) => {
                    let uris = split_cow(param_value, |c: char| c == ' ' || c == '\t');
                    set_once(&mut domain, uris, duplicate)?;
                }
                Some(DigestParam::Nonce) => set_once(&mut nonce, param_value, duplicate)?,
                Some(DigestParam::Opaque) => set_once(&mut opaque, param_value, duplicate)?,
                Some(DigestParam::Stale) => {
                    let flag = parse_bool(&param_value, "stale", value_offset)?;
                    set_once(&mut stale, flag, duplicate)?;
                }
                Some(DigestParam::Algorithm) => {
                    let parsed = DigestAlgorithm::from_name(param_value);
                    set_once(&mut algorithm, parsed, duplicate)?;
                }
                Some(DigestParam::Qop) => {
                    let options = split_cow(param_value, |c: char| c == ',')
                        .into_iter()
                        .map(Qop::from_name)
                        .collect();
                    set_once(&mut qop, options, duplicate)?;
                }
                Some(DigestParam::Userhash) => {
                    let flag = parse_bool(&param_value, "userhash", value_offset)?;
                    set_once(&mut userhash, flag, duplicate)?;
                }
                _ => add_extension(&mut extensions, name, name_offset, param_value)?,
            }
        }

        let missing = |name| AuthError::new(AuthErrorKind::MissingParameter(name), value.len());
        Ok(DigestChallenge {
            realm: realm.ok_or_else(|| missing("realm"))?,
            domain: domain.unwrap_or_default(),
            nonce: nonce.ok_or_else(|| missing("nonce"))?,
            opaque,
            stale: stale.unwrap_or(false),
            algorithm: algorithm.unwrap_or(DigestAlgorithm::Md5),
            qop: qop.unwrap_or_default(),
            userhash: userhash.unwrap_or(false),
            extensions,
        })
    }
}

fn to_str(value: &[u8]) -> Result<&str, AuthError> {
    std::str::from_utf8(value)
        .map_err(|e| AuthError::new(AuthErrorKind::InvalidUtf8, e.valid_up_to()))
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    duplicate: impl FnOnce() -> AuthError,
) -> Result<(), AuthError> {
    if slot.is_some() {
        return Err(duplicate());
    }
    *slot = Some(value);
    Ok(())
}

fn duplicate_error(name: &str, name_offset: usize) -> AuthError {
    AuthError::new(
        AuthErrorKind::DuplicateParameter(name.to_owned()),
        name_offset,
    )
}

fn add_extension<'a>(
    extensions: &mut Vec<AuthParam<'a>>,
    name: &'a str,
    name_offset: usize,
    value: Cow<'a, str>,
) -> Result<(), AuthError> {
    if extensions
        .iter()
        .any(|known| known.name.eq_ignore_ascii_case(name))
    {
        return Err(duplicate_error(name, name_offset));
    }
    extensions.push(AuthParam { name, value });
    Ok(())
}

/// `nc-value = 8LHEX` (upper case accepted too).
fn parse_nonce_count(value: &str) -> Option<u32> {
    if value.len() != 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(value, 16).ok()
}

fn parse_bool(value: &str, parameter: &'static str, offset: usize) -> Result<bool, AuthError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(AuthError::new(
            AuthErrorKind::InvalidParameterValue {
                parameter,
                expected: "`true` or `false`",
            },
            offset,
        ))
    }
}

/// Splits a list value, dropping empty items and surrounding whitespace.
/// Items of a borrowed value stay borrowed.
fn split_cow<'a>(value: Cow<'a, str>, separator: fn(char) -> bool) -> Vec<Cow<'a, str>> {
    fn items(text: &str, separator: fn(char) -> bool) -> impl Iterator<Item = &str> {
        text.split(separator)
            .map(|item| item.trim_matches([' ', '\t']))
            .filter(|item| !item.is_empty())
    }
    match value {
        Cow::Borrowed(text) => items(text, separator).map(Cow::Borrowed).collect(),
        Cow::Owned(text) => items(&text, separator)
            .map(|item| Cow::Owned(item.to_owned()))
            .collect(),
    }
}

/// Splits `scheme SP rest`; returns the scheme and the offset of `rest`.
fn split_scheme(value: &str) -> Result<(&str, usize), AuthError> {
    let bytes = value.as_bytes();
    let start = skip_lws(bytes, 0);
    let end = scan_token(bytes, start);
    if end == start {
        return Err(AuthError::new(AuthErrorKind::MissingScheme, start));
    }
    let rest = skip_lws(bytes, end);
    // The scheme must be followed by whitespace or end the value.
    if rest == end && end < bytes.len() {
        return Err(AuthError::new(AuthErrorKind::InvalidCharacter, end));
    }
    Ok((&value[start..end], rest))
}

/// `Bearer` credentials: token68 with optional surrounding whitespace.
fn parse_token68(value: &str, start: usize) -> Result<&str, AuthError> {
    let bytes = value.as_bytes();
    let mut end = start;
    while end < bytes.len()
        && (bytes[end].is_ascii_alphanumeric()
            || matches!(bytes[end], b'-' | b'.' | b'_' | b'~' | b'+' | b'/'))
    {
        end += 1;
    }
    if end == start {
        return Err(AuthError::new(AuthErrorKind::InvalidToken68, start));
    }
    while end < bytes.len() && bytes[end] == b'=' {
        end += 1;
    }
    let after = skip_lws(bytes, end);
    if after != bytes.len() {
        let kind = if after == end {
            AuthErrorKind::InvalidToken68
        } else {
            AuthErrorKind::TrailingData
        };
        return Err(AuthError::new(kind, after));
    }
    Ok(&value[start..end])
}

fn is_wsp(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

/// Skips SP/HTAB and line folds (CRLF or LF followed by SP/HTAB).
#[inline(always)]
fn skip_lws(bytes: &[u8], pos: usize) -> usize {
    // Most calls find no white space at all: decide that without a call.
    match bytes.get(pos) {
        Some(b' ' | b'\t' | b'\r' | b'\n') => skip_lws_from(bytes, pos),
        _ => pos,
    }
}

#[inline(never)]
fn skip_lws_from(bytes: &[u8], mut pos: usize) -> usize {
    loop {
        match bytes.get(pos) {
            Some(b' ' | b'\t') => pos += 1,
            Some(b'\r')
                if bytes.get(pos + 1) == Some(&b'\n')
                    && bytes.get(pos + 2).is_some_and(|b| is_wsp(*b)) =>
            {
                pos += 3
            }
            Some(b'\n') if bytes.get(pos + 1).is_some_and(|b| is_wsp(*b)) => pos += 2,
            _ => return pos,
        }
    }
}

/// RFC 7230 tchar, a superset of the RFC 3261 token characters. A table,
/// because token scanning is most of the work in a Digest header.
const TOKEN_CHARS: [bool; 256] = {
    let mut table = [false; 256];
    let mut index = 0;
    while index < table.len() {
        let byte = index as u8;
        table[index] = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        index += 1;
    }
    table
};

fn is_token_char(byte: u8) -> bool {
    TOKEN_CHARS[usize::from(byte)]
}

fn scan_token(bytes: &[u8], pos: usize) -> usize {
    let rest = bytes.get(pos..).unwrap_or_default();
    pos + rest
        .iter()
        .position(|&byte| !is_token_char(byte))
        .unwrap_or(rest.len())
}

/// One `name=value` parameter, with offsets for error messages.
struct RawParam<'a> {
    name: &'a str,
    name_offset: usize,
    value: Cow<'a, str>,
    value_offset: usize,
}

/// Iterates over `auth-param *(COMMA auth-param)`, tolerating empty list
/// elements as RFC 7230 §7 asks of recipients.
struct ParamList<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> ParamList<'a> {
    fn new(text: &'a str, pos: usize) -> Self {
        ParamList { text, pos }
    }

    fn next_param(&mut self) -> Result<Option<RawParam<'a>>, AuthError> {
        let bytes = self.text.as_bytes();
        let mut pos = skip_lws(bytes, self.pos);
        while bytes.get(pos) == Some(&b',') {
            pos = skip_lws(bytes, pos + 1);
        }
        if pos == bytes.len() {
            self.pos = pos;
            return Ok(None);
        }
        let name_offset = pos;
        // `*` is a token character, so `username*` needs no special case.
        let name_end = scan_token(bytes, pos);
        if name_end == name_offset {
            return Err(AuthError::new(AuthErrorKind::ExpectedParameterName, pos));
        }
        pos = skip_lws(bytes, name_end);
        if bytes.get(pos) != Some(&b'=') {
            return Err(AuthError::new(AuthErrorKind::ExpectedEquals, pos));
        }
        pos = skip_lws(bytes, pos + 1);
        let value_offset = pos;
        let value = if bytes.get(pos) == Some(&b'"') {
            let (value, end) = parse_quoted_string(self.text, pos)?;
            pos = end;
            value
        } else {
            let end = scan_token(bytes, pos);
            if end == pos {
                return Err(AuthError::new(AuthErrorKind::ExpectedParameterValue, pos));
            }
            let value = Cow::Borrowed(&self.text[pos..end]);
            pos = end;
            value
        };
        pos = skip_lws(bytes, pos);
        match bytes.get(pos) {
            None => {}
            Some(b',') => pos += 1,
            Some(_) => return Err(AuthError::new(AuthErrorKind::ExpectedComma, pos)),
        }
        self.pos = pos;
        Ok(Some(RawParam {
            name: &self.text[name_offset..name_end],
            name_offset,
            value,
            value_offset,
        }))
    }
}

/// Parses a quoted string starting at the opening `"` at `start`; returns the
/// unescaped contents and the offset after the closing quote. Borrows unless
/// there is an escape or a line fold to resolve.
fn parse_quoted_string(text: &str, start: usize) -> Result<(Cow<'_, str>, usize), AuthError> {
    let bytes = text.as_bytes();
    let contents = start + 1;
    // Fast path for the usual value: nothing to unescape or unfold, no
    // control character before the closing quote.
    let end =
        memchr::memchr2(b'"', b'\\', &bytes[contents..]).map_or(bytes.len(), |len| contents + len);
    // Not short-circuiting, so that the check vectorises.
    let has_control = bytes[contents..end].iter().fold(false, |found, &byte| {
        found | (byte < 0x20 && byte != b'\t') | (byte == 0x7f)
    });
    if bytes.get(end) == Some(&b'"') && !has_control {
        return Ok((Cow::Borrowed(&text[contents..end]), end + 1));
    }
    let mut owned: Option<String> = None;
    // Start of the not yet copied run of plain characters.
    let mut run_start = contents;
    let mut pos = contents;
    loop {
        let Some(&byte) = bytes.get(pos) else {
            return Err(AuthError::new(
                AuthErrorKind::UnterminatedQuotedString,
                start,
            ));
        };
        match byte {
            b'"' => {
                let value = match owned {
                    Some(mut value) => {
                        value.push_str(&text[run_start..pos]);
                        Cow::Owned(value)
                    }
                    None => Cow::Borrowed(&text[run_start..pos]),
                };
                return Ok((value, pos + 1));
            }
            b'\\' => {
                // quoted-pair may escape any character except CR and LF.
                let Some(escaped) = text[pos + 1..].chars().next() else {
                    return Err(AuthError::new(
                        AuthErrorKind::UnterminatedQuotedString,
                        start,
                    ));
                };
                if escaped == '\r' || escaped == '\n' {
                    return Err(AuthError::new(AuthErrorKind::InvalidCharacter, pos + 1));
                }
                let value = owned.get_or_insert_with(String::new);
                value.push_str(&text[run_start..pos]);
                value.push(escaped);
                pos += 1 + escaped.len_utf8();
                run_start = pos;
            }
            b'\r' | b'\n' => {
                // A line fold inside quotes stands for its whitespace.
                let fold_len = if byte == b'\r' && bytes.get(pos + 1) == Some(&b'\n') {
                    2
                } else if byte == b'\n' {
                    1
                } else {
                    0
                };
                if fold_len == 0 || !bytes.get(pos + fold_len).is_some_and(|b| is_wsp(*b)) {
                    return Err(AuthError::new(AuthErrorKind::InvalidCharacter, pos));
                }
                owned
                    .get_or_insert_with(String::new)
                    .push_str(&text[run_start..pos]);
                pos += fold_len;
                run_start = pos;
            }
            b'\t' => pos += 1,
            0x00..=0x1f | 0x7f => {
                return Err(AuthError::new(AuthErrorKind::InvalidCharacter, pos));
            }
            _ => pos += 1,
        }
    }
}

fn unencodable(parameter: &str, offset: usize) -> AuthError {
    AuthError::new(
        AuthErrorKind::UnencodableValue {
            parameter: parameter.to_owned(),
        },
        offset,
    )
}

fn push_token(out: &mut String, parameter: &str, token: &str) -> Result<(), AuthError> {
    if token.is_empty() {
        return Err(unencodable(parameter, 0));
    }
    if let Some(bad) = token.bytes().position(|b| !is_token_char(b)) {
        return Err(unencodable(parameter, bad));
    }
    out.push_str(token);
    Ok(())
}

fn check_list_item(
    item: &str,
    parameter: &str,
    is_separator: fn(char) -> bool,
) -> Result<(), AuthError> {
    if item.is_empty() {
        return Err(unencodable(parameter, 0));
    }
    match item.char_indices().find(|(_, c)| is_separator(*c)) {
        Some((offset, _)) => Err(unencodable(parameter, offset)),
        None => Ok(()),
    }
}

fn push_quoted(out: &mut String, parameter: &str, value: &str) -> Result<(), AuthError> {
    out.push('"');
    push_quoted_contents(out, parameter, value)?;
    out.push('"');
    Ok(())
}

/// Writes `value` as quoted-string contents, escaping `"` and `\`.
fn push_quoted_contents(out: &mut String, parameter: &str, value: &str) -> Result<(), AuthError> {
    for (offset, c) in value.char_indices() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(c),
            // CR/LF cannot be escaped (header injection); other controls are not qdtext.
            '\0'..='\x1f' | '\x7f' => return Err(unencodable(parameter, offset)),
            _ => out.push(c),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(value: &str) -> DigestCredentials<'_> {
        match Credentials::parse_str(value) {
            Ok(Credentials::Digest(digest)) => digest,
            other => panic!("expected Digest credentials, got {other:?}"),
        }
    }

    fn error_kind(value: &str) -> AuthErrorKind {
        Credentials::parse_str(value).unwrap_err().kind().clone()
    }

    const REGISTER_AUTH: &str = "Digest username=\"alice\", realm=\"example.com\", \
        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"sip:example.com\", \
        response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, \
        cnonce=\"0a4f113b\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001";

    #[test]
    fn parses_rfc_style_digest_credentials_borrowing_values() {
        let d = digest(REGISTER_AUTH);
        assert_eq!(d.username, Username::Plain(Cow::Borrowed("alice")));
        assert_eq!(d.realm, "example.com");
        assert_eq!(d.nonce, "dcd98b7102dd2f0e8b11d0f600bfb0c093");
        assert_eq!(d.uri, "sip:example.com");
        assert_eq!(d.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(d.algorithm, DigestAlgorithm::Md5);
        assert_eq!(d.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(
            d.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(d.qop, Some(Qop::Auth));
        assert_eq!(d.nc, Some(1));
        assert!(!d.userhash);
        assert!(d.extensions.is_empty());
        assert!(matches!(d.realm, Cow::Borrowed(_)));
        assert!(matches!(d.response, Cow::Borrowed(_)));
    }

    #[test]
    fn scheme_and_parameter_names_are_case_insensitive() {
        let d = digest(
            "dIgEsT USERNAME=\"bob\",Realm=\"r\",NONCE=\"n\",Uri=\"sip:r\",RESPONSE=\"x\",ALGORITHM=sha-256-SESS",
        );
        assert_eq!(d.username, Username::Plain(Cow::Borrowed("bob")));
        assert_eq!(d.algorithm, DigestAlgorithm::Sha256Sess);
        assert!(d.algorithm.is_session());
    }

    #[test]
    fn all_known_algorithms_and_unknown_kept() {
        for (name, expected) in [
            ("MD5", DigestAlgorithm::Md5),
            ("md5-sess", DigestAlgorithm::Md5Sess),
            ("SHA-256", DigestAlgorithm::Sha256),
            ("SHA-256-sess", DigestAlgorithm::Sha256Sess),
            ("SHA-512-256", DigestAlgorithm::Sha512_256),
            ("sha-512-256-sess", DigestAlgorithm::Sha512_256Sess),
            (
                "AKAv1-MD5",
                DigestAlgorithm::Other(Cow::Borrowed("AKAv1-MD5")),
            ),
        ] {
            let value = format!(
                "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"x\", algorithm={name}"
            );
            assert_eq!(digest(&value).algorithm, expected, "{name}");
        }
        assert_eq!(
            DigestAlgorithm::Sha512_256Sess.to_string(),
            "SHA-512-256-sess"
        );
    }

    #[test]
    fn lws_and_folding_around_equals_and_commas() {
        let d = digest(
            "Digest \r\n username = \"u\" ,\r\n\trealm\t=\t\"r\"  ,  nonce=\"n\",\n uri=\"sip:r\", response = \"x\"  ",
        );
        assert_eq!(d.realm, "r");
        assert_eq!(d.response, "x");
    }

    #[test]
    fn quoted_strings_with_commas_and_escapes() {
        let d = digest(
            r#"Digest username="a\"b\\c", realm="x, y=z", nonce="n", uri="sip:r", response="x", opaque="plain""#,
        );
        assert_eq!(d.username, Username::Plain(Cow::Owned("a\"b\\c".into())));
        assert!(matches!(&d.username, Username::Plain(Cow::Owned(_))));
        assert_eq!(d.realm, "x, y=z");
        assert!(matches!(d.opaque, Some(Cow::Borrowed("plain"))));
    }

    #[test]
    fn utf8_in_quoted_string_and_folding_inside_quotes() {
        let d = digest("Digest username=\"J\u{e4}s\u{f8}n\", realm=\"a\r\n b\", nonce=\"n\", uri=\"u\", response=\"r\"");
        assert_eq!(
            d.username,
            Username::Plain(Cow::Borrowed("J\u{e4}s\u{f8}n"))
        );
        assert_eq!(d.realm, "a b");
    }

    #[test]
    fn nonce_count_is_eight_hex_digits_and_not_limited_to_a_byte() {
        let base = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", qop=auth, cnonce=\"c\"";
        assert_eq!(digest(&format!("{base}, nc=00000100")).nc, Some(256));
        assert_eq!(digest(&format!("{base}, nc=0000FFFF")).nc, Some(65535));
        assert_eq!(digest(&format!("{base}, nc=ffffffff")).nc, Some(u32::MAX));
        for bad in [
            "nc=1",
            "nc=000000001",
            "nc=+0000001",
            "nc=0000000g",
            "nc=\"\"",
        ] {
            assert!(
                matches!(
                    error_kind(&format!("{base}, {bad}")),
                    AuthErrorKind::InvalidParameterValue {
                        parameter: "nc",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn qop_requires_cnonce_and_nc() {
        let base = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", qop=auth-int";
        assert_eq!(error_kind(base), AuthErrorKind::MissingParameter("cnonce"));
        assert_eq!(
            error_kind(&format!("{base}, cnonce=\"c\"")),
            AuthErrorKind::MissingParameter("nc")
        );
        let complete = format!("{base}, cnonce=\"c\", nc=00000002");
        let d = digest(&complete);
        assert_eq!(d.qop, Some(Qop::AuthInt));
    }

    #[test]
    fn lenient_quoted_qop_and_algorithm() {
        let d = digest(
            "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", qop=\"auth\", algorithm=\"MD5\", cnonce=\"c\", nc=00000001",
        );
        assert_eq!(d.qop, Some(Qop::Auth));
        assert_eq!(d.algorithm, DigestAlgorithm::Md5);
    }

    #[test]
    fn duplicate_parameters_are_rejected_with_position() {
        let value = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", REALM=\"s\"";
        let err = Credentials::parse_str(value).unwrap_err();
        assert_eq!(
            err.kind(),
            &AuthErrorKind::DuplicateParameter("REALM".into())
        );
        assert_eq!(err.offset(), value.find("REALM").unwrap());
        assert!(
            err.to_string().contains("duplicate parameter `REALM`"),
            "{err}"
        );

        let ext = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", foo=1, Foo=2";
        assert_eq!(
            error_kind(ext),
            AuthErrorKind::DuplicateParameter("Foo".into())
        );
    }

    #[test]
    fn missing_required_parameters() {
        assert_eq!(
            error_kind("Digest realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\""),
            AuthErrorKind::MissingParameter("username")
        );
        assert_eq!(
            error_kind("Digest username=\"u\", nonce=\"n\", uri=\"u\", response=\"r\""),
            AuthErrorKind::MissingParameter("realm")
        );
        assert_eq!(
            error_kind("Digest"),
            AuthErrorKind::MissingParameter("username")
        );
    }

    #[test]
    fn username_star_and_userhash() {
        let d = digest(
            "Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", userhash=FALSE",
        );
        assert_eq!(
            d.username,
            Username::Extended(Cow::Borrowed("UTF-8''J%C3%A4s%C3%B8n%20Doe"))
        );
        assert_eq!(d.username.decode().unwrap(), "J\u{e4}s\u{f8}n Doe");
        assert!(!d.userhash);

        let latin1 = Username::Extended(Cow::Borrowed("iso-8859-1'en'%E4"));
        assert_eq!(latin1.decode().unwrap(), "\u{e4}");
        assert_eq!(
            Username::Extended(Cow::Borrowed("KOI8-R''x"))
                .decode()
                .unwrap_err()
                .kind(),
            &AuthErrorKind::UnsupportedCharset
        );
        assert!(Username::Extended(Cow::Borrowed("UTF-8''%C3"))
            .decode()
            .is_err());
        assert!(Username::Extended(Cow::Borrowed("UTF-8''%G1"))
            .decode()
            .is_err());
        assert!(Username::Extended(Cow::Borrowed("no-quotes"))
            .decode()
            .is_err());

        assert_eq!(
            error_kind("Digest username=\"u\", username*=UTF-8''u, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\""),
            AuthErrorKind::ConflictingParameters("username", "username*")
        );
        let hashed = digest("Digest username=\"488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", userhash=true");
        assert!(hashed.userhash);
        assert!(matches!(
            error_kind("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", userhash=yes"),
            AuthErrorKind::InvalidParameterValue { parameter: "userhash", .. }
        ));
    }

    #[test]
    fn syntax_errors_say_where() {
        let cases: [(&str, AuthErrorKind, usize); 9] = [
            ("", AuthErrorKind::MissingScheme, 0),
            ("  =x", AuthErrorKind::MissingScheme, 2),
            ("Digest\"x\"", AuthErrorKind::InvalidCharacter, 6),
            ("Digest username", AuthErrorKind::ExpectedEquals, 15),
            (
                "Digest username=",
                AuthErrorKind::ExpectedParameterValue,
                16,
            ),
            (
                "Digest username=\"abc",
                AuthErrorKind::UnterminatedQuotedString,
                16,
            ),
            (
                "Digest username=\"a\" realm=\"r\"",
                AuthErrorKind::ExpectedComma,
                20,
            ),
            ("Digest =\"a\"", AuthErrorKind::ExpectedParameterName, 7),
            (
                "Digest username=\"a\x01\"",
                AuthErrorKind::InvalidCharacter,
                18,
            ),
        ];
        for (value, kind, offset) in cases {
            let err = Credentials::parse_str(value).unwrap_err();
            assert_eq!(
                (err.kind().clone(), err.offset()),
                (kind, offset),
                "{value:?}"
            );
        }
        let err = Credentials::parse(b"Digest username=\"\xff\"").unwrap_err();
        assert_eq!(
            (err.kind(), err.offset()),
            (&AuthErrorKind::InvalidUtf8, 17)
        );
        assert_eq!(err.to_string(), "invalid UTF-8 at byte 17");
    }

    #[test]
    fn empty_list_elements_are_tolerated() {
        let d =
            digest("Digest ,username=\"u\",, realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\",");
        assert_eq!(d.realm, "r");
    }

    #[test]
    fn bearer_and_other_schemes() {
        assert_eq!(
            Credentials::parse(b"Bearer mF_9.B5f-4.1JqM/+~a==  ").unwrap(),
            Credentials::Bearer(BearerCredentials {
                token: "mF_9.B5f-4.1JqM/+~a=="
            })
        );
        assert_eq!(
            Credentials::parse_str("bearer abc def").unwrap_err().kind(),
            &AuthErrorKind::TrailingData
        );
        assert_eq!(
            Credentials::parse_str("Bearer ab=c").unwrap_err().kind(),
            &AuthErrorKind::InvalidToken68
        );
        assert_eq!(
            Credentials::parse_str("Bearer").unwrap_err().kind(),
            &AuthErrorKind::InvalidToken68
        );
        assert_eq!(
            Credentials::parse_str("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap(),
            Credentials::Other(OtherAuth {
                scheme: "Basic",
                rest: "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
            })
        );
    }

    #[test]
    fn parses_digest_challenge() {
        let value = "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
            nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\", \
            stale=TRUE, domain=\"sip:a.example.com  sip:b.example.com\", userhash=true, charset=UTF-8";
        let Challenge::Digest(c) = Challenge::parse(value.as_bytes()).unwrap() else {
            panic!("not digest")
        };
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(c.algorithm, DigestAlgorithm::Sha256);
        assert_eq!(c.nonce, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v");
        assert_eq!(
            c.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert!(c.stale);
        assert!(c.userhash);
        assert_eq!(c.domain, vec!["sip:a.example.com", "sip:b.example.com"]);
        assert_eq!(
            c.extensions,
            vec![AuthParam {
                name: "charset",
                value: Cow::Borrowed("UTF-8")
            }]
        );
    }

    #[test]
    fn challenge_requires_realm_and_nonce_and_keeps_other_schemes() {
        assert_eq!(
            Challenge::parse_str("Digest nonce=\"n\"")
                .unwrap_err()
                .kind(),
            &AuthErrorKind::MissingParameter("realm")
        );
        assert_eq!(
            Challenge::parse_str("Digest realm=\"r\"")
                .unwrap_err()
                .kind(),
            &AuthErrorKind::MissingParameter("nonce")
        );
        assert!(matches!(
            Challenge::parse_str("Digest realm=\"r\", nonce=\"n\", stale=maybe")
                .unwrap_err()
                .kind(),
            AuthErrorKind::InvalidParameterValue {
                parameter: "stale",
                ..
            }
        ));
        assert_eq!(
            Challenge::parse_str("Bearer realm=\"example.com\", scope=\"sip\"").unwrap(),
            Challenge::Other(OtherAuth {
                scheme: "Bearer",
                rest: "realm=\"example.com\", scope=\"sip\""
            })
        );
    }

    #[test]
    fn builds_the_registrar_challenge_pair() {
        let sha256 = DigestChallenge::new("example.com", "bm9uY2U=")
            .with_algorithm(DigestAlgorithm::Sha256)
            .with_qop(Qop::Auth)
            .with_opaque("op")
            .to_header_value()
            .unwrap();
        let md5 = DigestChallenge::new("example.com", "bm9uY2U=")
            .with_qop(Qop::Auth)
            .with_opaque("op")
            .to_header_value()
            .unwrap();
        assert_eq!(
            sha256,
            "Digest realm=\"example.com\", nonce=\"bm9uY2U=\", opaque=\"op\", algorithm=SHA-256, qop=\"auth\""
        );
        assert_eq!(
            md5,
            "Digest realm=\"example.com\", nonce=\"bm9uY2U=\", opaque=\"op\", algorithm=MD5, qop=\"auth\""
        );
        for value in [&sha256, &md5] {
            let Challenge::Digest(parsed) = Challenge::parse_str(value).unwrap() else {
                panic!("not digest")
            };
            assert_eq!(parsed.qop, vec![Qop::Auth]);
            assert_eq!(parsed.opaque.as_deref(), Some("op"));
        }
    }

    #[test]
    fn built_challenge_round_trips_with_escapes_and_every_field() {
        let built = DigestChallenge::new("a \"quoted\" \\ realm", "n")
            .with_domain("sip:a.example.com")
            .with_domain("sip:b.example.com")
            .with_stale(true)
            .with_algorithm(DigestAlgorithm::Sha512_256Sess)
            .with_qop(Qop::Auth)
            .with_qop(Qop::AuthInt)
            .with_userhash(true)
            .with_extension("charset", "UTF-8");
        let value = built.to_header_value().unwrap();
        assert_eq!(
            value,
            "Digest realm=\"a \\\"quoted\\\" \\\\ realm\", domain=\"sip:a.example.com sip:b.example.com\", \
             nonce=\"n\", stale=true, algorithm=SHA-512-256-sess, qop=\"auth,auth-int\", userhash=true, charset=\"UTF-8\""
        );
        assert_eq!(
            Challenge::parse_str(&value).unwrap(),
            Challenge::Digest(built)
        );
    }

    #[test]
    fn builder_refuses_values_that_would_break_the_header() {
        let err = DigestChallenge::new("evil\r\nVia: x", "n")
            .to_header_value()
            .unwrap_err();
        assert_eq!(
            (err.kind().clone(), err.offset()),
            (
                AuthErrorKind::UnencodableValue {
                    parameter: "realm".into()
                },
                4
            )
        );
        assert!(DigestChallenge::new("r", "n")
            .with_algorithm(DigestAlgorithm::Other("bad alg".into()))
            .to_header_value()
            .is_err());
        assert!(DigestChallenge::new("r", "n")
            .with_qop(Qop::Other("a,b".into()))
            .to_header_value()
            .is_err());
        assert!(DigestChallenge::new("r", "n")
            .with_domain("sip:a sip:b")
            .to_header_value()
            .is_err());
        assert!(DigestChallenge::new("r", "n")
            .with_extension("bad name", "v")
            .to_header_value()
            .is_err());
    }
}
