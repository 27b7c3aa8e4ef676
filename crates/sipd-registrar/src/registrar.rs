//! The registrar core: one REGISTER in three pure steps (see the crate docs for the drive
//! sequence).

use std::borrow::Cow;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use sip_message::{Message, Method};
use sipd_store::{Binding, BindingChange};

use crate::auth::{AuthRole, Authenticator, PendingAuth};
use crate::bindings::{self, Outcome, Refusal, Source, TOO_BRIEF};
use crate::config::{ConfigError, RegistrarConfig};
use crate::digest::DigestCredentials;
use crate::domain::LocalDomain;
use crate::response::{header_safe, http_date, Responder, Response};

/// Extensions this registrar implements (for `Require`, RFC 3261 §8.2.2.3).
const SUPPORTED: [&str; 2] = ["path", "outbound"];

/// Digest authentication and binding rules for one SIP domain. Holds the only mutable state of
/// the core: the [`Authenticator`] (nonce sequence and nonce-count replay tracker), which the
/// proxy's requests share with REGISTERs.
pub struct Registrar {
    config: RegistrarConfig,
    domain: LocalDomain,
    authenticator: Authenticator,
    responder: Responder,
}

/// What to do with a REGISTER after [`Registrar::start`].
#[derive(Debug)]
pub enum Start<'m> {
    /// Send this response (400, 401 challenge, 403, 405, 420...) and stop.
    Respond(Response),
    /// Look up the credentials of [`PendingAuth::username`], then call
    /// [`Registrar::authenticate`].
    NeedCredentials(PendingAuth<'m>),
}

/// Proof that a REGISTER was authenticated and its AOR belongs to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authorized {
    endpoint_pk: i64,
    credentials_changed_at_ms: i64,
}

impl Authorized {
    /// The endpoint (AOR owner) whose bindings [`Registrar::register`] needs.
    pub fn endpoint_pk(&self) -> i64 {
        self.endpoint_pk
    }

    /// When the credentials the REGISTER was checked against were set (Unix milliseconds).
    pub fn credentials_changed_at_ms(&self) -> i64 {
        self.credentials_changed_at_ms
    }
}

/// An accepted REGISTER: the binding changes to commit and the response to send once they are
/// committed.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The endpoint whose bindings change.
    pub endpoint_pk: i64,
    /// What to commit, in order and in one transaction (e.g. `BindingWriter::commit`):
    /// deletions first, then `UpsertAuthenticated`s (conditional on the credentials being
    /// unchanged). Empty for a fetch.
    pub changes: Vec<BindingChange>,
    /// All live bindings of the AOR once committed: the location service's new entry.
    pub bindings: Vec<Binding>,
    /// The 200 OK to send after the commit succeeded.
    pub response: Response,
}

impl Registrar {
    /// A registrar for `config`, refused if the configuration is unusable.
    pub fn new(config: RegistrarConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let domain = config.local_domain()?;
        let mac = Hmac::<Sha256>::new_from_slice(&config.nonce_secret)
            .map_err(|_| ConfigError::SecretTooShort)?;
        Ok(Registrar {
            authenticator: Authenticator::new(&config, mac.clone()),
            responder: Responder::new(mac),
            domain,
            config,
        })
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// The Digest authenticator REGISTERs go through, for other requests (the proxy's `407`
    /// challenges): one nonce sequence and one replay tracker for all methods.
    pub fn authenticator(&mut self) -> &mut Authenticator {
        &mut self.authenticator
    }

    /// Step 1: checks the REGISTER, which arrived as `source` says, up to the point where the
    /// user's credentials are needed.
    ///
    /// Answers by itself malformed requests (400/505), other methods (405), unsupported
    /// `Require` extensions (420), AORs of other domains (403), and requests without usable
    /// credentials for our realm or with a nonce we did not issue (401 challenge), so a
    /// credential lookup happens only for a nonce of ours.
    pub fn start<'m>(&mut self, request: &'m Message, source: &Source, now_ms: i64) -> Start<'m> {
        match self.screen(request, source, now_ms) {
            Ok(pending) => Start::NeedCredentials(pending),
            Err(response) => Start::Respond(response),
        }
    }

    fn screen<'m>(
        &mut self,
        request: &'m Message,
        source: &Source,
        now_ms: i64,
    ) -> Result<PendingAuth<'m>, Response> {
        if let Err(rejection) = request.validate() {
            return Err(self.respond(request, rejection.status, None, &[]));
        }
        if request.method() != Some(Method::Register) {
            return Err(self.respond(request, 405, None, &[("Allow", "REGISTER")]));
        }
        let mut unsupported = String::new();
        for tag in request.require() {
            let Ok(tag) = tag else {
                return Err(self.respond(request, 400, Some("Malformed Require"), &[]));
            };
            if !SUPPORTED
                .iter()
                .any(|known| known.eq_ignore_ascii_case(tag))
            {
                if !unsupported.is_empty() {
                    unsupported.push_str(", ");
                }
                unsupported.push_str(tag);
            }
        }
        if !unsupported.is_empty() {
            return Err(self.respond(request, 420, None, &[("Unsupported", &unsupported)]));
        }
        // RFC 3261 §10.3 step 3: the To of a REGISTER is a SIP or SIPS AOR (RFC 4475 unksm2).
        let Some(aor) = request.to().ok().and_then(|to| to.uri().as_sip().copied()) else {
            return Err(self.respond(request, 400, Some("To Is Not a SIP AOR"), &[]));
        };
        let ours =
            self.domain.is_ours(&aor.host(), source.local.ip()) && aor.user_unescaped().is_some();
        if !ours {
            return Err(self.respond(request, 403, Some("Not an AOR of This Domain"), &[]));
        }
        self.authenticator
            .screen(request, AuthRole::Registrar, now_ms)
    }

    /// Step 2: checks the digest response against `credentials` (the user's, `None` if the user
    /// does not exist), the nonce's age and count, and that the user owns the AOR in To.
    ///
    /// A wrong password and an unknown user get the same challenge; a correct response with an
    /// expired nonce, a nonce issued before the credentials last changed, or a repeated or
    /// lower nonce-count gets a `stale=true` challenge; someone else's AOR gets 403.
    pub fn authenticate(
        &mut self,
        pending: PendingAuth<'_>,
        credentials: Option<&DigestCredentials>,
        now_ms: i64,
    ) -> Result<Authorized, Response> {
        let request = pending.request();
        let credentials = self.authenticator.verify(pending, credentials, now_ms)?;
        // Step 1 checked the AOR's domain.
        let owns_aor = aor_user(request)
            .is_some_and(|user| *user == *credentials.endpoint.username.as_bytes());
        if !owns_aor {
            return Err(self.respond(request, 403, Some("Not Your Address of Record"), &[]));
        }
        Ok(Authorized {
            endpoint_pk: credentials.endpoint.endpoint_pk,
            credentials_changed_at_ms: credentials.changed_at_ms,
        })
    }

    /// Step 3: applies the REGISTER to the AOR's stored `bindings` (RFC 3261 §10.3, RFC 5626,
    /// RFC 3327). `Ok`: commit the changes, then send the 200. `Err`: send the response, commit
    /// nothing.
    pub fn register(
        &self,
        request: &Message,
        authorized: &Authorized,
        bindings: &[Binding],
        source: &Source,
        now_ms: i64,
    ) -> Result<Registration, Response> {
        let outcome = bindings::apply(&self.config, request, authorized, bindings, source, now_ms)
            .map_err(|refusal| self.refuse(request, refusal))?;
        let response = self.ok(request, &outcome, now_ms);
        Ok(Registration {
            endpoint_pk: authorized.endpoint_pk,
            changes: outcome.changes,
            bindings: outcome.bindings,
            response,
        })
    }

    /// The response when committing a [`Registration`] failed for another reason (RFC 3261
    /// §10.3: 500).
    pub fn commit_failed(&self, request: &Message) -> Response {
        self.respond(request, 500, None, &[])
    }

    /// A fresh 401 challenge: for a commit refused because the credentials changed after the
    /// REGISTER was authenticated (`StoreError::InvalidReference("credentials")`).
    pub fn challenge(&mut self, request: &Message, now_ms: i64) -> Response {
        self.authenticator
            .challenge(request, AuthRole::Registrar, now_ms)
    }

    fn refuse(&self, request: &Message, refusal: Refusal) -> Response {
        if refusal == TOO_BRIEF {
            let min = self.config.min_expires_secs.to_string();
            return self.respond(request, 423, None, &[("Min-Expires", &min)]);
        }
        self.respond(request, refusal.status, Some(refusal.reason), &[])
    }

    /// 200 OK: every live binding with its remaining interval (§10.3 step 8), Path echoed for
    /// clients supporting it (RFC 3327 §5.3), `Require: outbound` when flows were used (RFC
    /// 5626 §6), and the Date (phones set their clocks from it).
    fn ok(&self, request: &Message, outcome: &Outcome, now_ms: i64) -> Response {
        let contacts: Vec<String> = outcome
            .bindings
            .iter()
            .map(|b| contact_value(b, now_ms))
            .collect();
        let date = http_date(now_ms);
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(contacts.len() + 4);
        headers.extend(contacts.iter().map(|c| ("Contact", c.as_str())));
        let path = outcome.echo_path.as_deref().map(header_safe);
        if let Some(path) = &path {
            headers.push(("Path", path));
        }
        if outcome.outbound {
            headers.push(("Require", "outbound"));
        }
        headers.push(("Supported", "path, outbound"));
        headers.push(("Date", &date));
        self.respond(request, 200, None, &headers)
    }

    fn respond(
        &self,
        request: &Message,
        status: u16,
        reason: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        self.responder.respond(request, status, reason, headers)
    }
}

/// The unescaped user part of the AOR in To, if To is a SIP URI with one.
fn aor_user(request: &Message) -> Option<Cow<'_, [u8]>> {
    request.to().ok()?.uri().as_sip()?.user_unescaped()
}

/// A binding as listed in the 200: `<uri>;expires=N[;q=..][;+sip.instance=".."][;reg-id=N]`.
fn contact_value(binding: &Binding, now_ms: i64) -> String {
    // Rounded up: a binding with half a second left is still there, not `expires=0`.
    let remaining_ms = u64::try_from(binding.expires_at_ms.saturating_sub(now_ms)).unwrap_or(0);
    let remaining_secs = remaining_ms.div_ceil(1000);
    let mut out = String::with_capacity(binding.contact_uri.len() + 96);
    out.push('<');
    out.push_str(&header_safe(&binding.contact_uri));
    out.push('>');
    let _ = write!(out, ";expires={remaining_secs}");
    if let Some(q) = binding.q {
        match q {
            ..=0 => out.push_str(";q=0"),
            1000.. => out.push_str(";q=1"),
            q => {
                let digits = format!("{q:03}");
                let _ = write!(out, ";q=0.{}", digits.trim_end_matches('0'));
            }
        }
    }
    if let Some(instance) = &binding.instance_id {
        out.push_str(";+sip.instance=\"");
        for c in header_safe(instance).chars() {
            if matches!(c, '"' | '\\') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    if let Some(reg_id) = binding.reg_id {
        let _ = write!(out, ";reg-id={reg_id}");
    }
    out
}
