//! The registrar core: one REGISTER in three pure steps (see the crate docs for the drive
//! sequence).

use std::borrow::Cow;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use sip_message::auth::{self, DigestAlgorithm, DigestChallenge, Qop, Username};
use sip_message::{HeaderName, Message, Method};
use sipd_store::{Binding, BindingChange};

use crate::bindings::{self, Outcome, Refusal, Source, TOO_BRIEF};
use crate::config::{ConfigError, RegistrarConfig};
use crate::digest::{self, Algorithm, DigestCredentials, ResponseInputs};
use crate::nonce::{NonceId, NonceMinter};
use crate::replay::NonceCounts;
use crate::response::{header_safe, http_date, Responder, Response};

/// Extensions this registrar implements (for `Require`, RFC 3261 §8.2.2.3).
const SUPPORTED: [&str; 2] = ["path", "outbound"];

/// Digest authentication and binding rules for one SIP domain. Holds the only mutable state of
/// the core: the nonce sequence and the nonce-count replay tracker.
pub struct Registrar {
    config: RegistrarConfig,
    nonces: NonceMinter,
    counts: NonceCounts,
    responder: Responder,
    /// Checked against when the user is unknown, so unknown users cost what known ones do.
    /// Derived from the secret: nobody can compute a response that matches them.
    dummy_ha1_md5: [u8; 16],
    dummy_ha1_sha256: [u8; 32],
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

/// A REGISTER whose Digest credentials are well formed and whose nonce is ours, waiting for the
/// user's credentials.
#[derive(Debug)]
pub struct PendingAuth<'m> {
    request: &'m Message,
    username: Cow<'m, str>,
    algorithm: Algorithm,
    nonce_id: NonceId,
    nonce: Cow<'m, str>,
    nc: u32,
    cnonce: Cow<'m, str>,
    digest_uri: Cow<'m, str>,
    response: Cow<'m, str>,
}

impl PendingAuth<'_> {
    /// The user name to fetch credentials for.
    pub fn username(&self) -> &str {
        &self.username
    }
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
        let mac = Hmac::<Sha256>::new_from_slice(&config.nonce_secret)
            .map_err(|_| ConfigError::SecretTooShort)?;
        let mut dummy_mac = mac.clone();
        dummy_mac.update(b"dummy-ha1\0");
        let dummy_seed = dummy_mac.finalize().into_bytes();
        Ok(Registrar {
            nonces: NonceMinter::new(mac.clone(), &config.domain),
            counts: NonceCounts::new(config.replay_tracker_capacity),
            responder: Responder::new(mac),
            dummy_ha1_md5: Md5::digest(dummy_seed).into(),
            dummy_ha1_sha256: Sha256::digest(dummy_seed).into(),
            config,
        })
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Step 1: checks the REGISTER up to the point where the user's credentials are needed.
    ///
    /// Answers by itself malformed requests (400/505), other methods (405), unsupported
    /// `Require` extensions (420), AORs of other domains (403), and requests without usable
    /// credentials for our realm or with a nonce we did not issue (401 challenge), so a
    /// credential lookup happens only for a nonce of ours.
    pub fn start<'m>(&mut self, request: &'m Message, now_ms: i64) -> Start<'m> {
        match self.screen(request, now_ms) {
            Ok(pending) => Start::NeedCredentials(pending),
            Err(response) => Start::Respond(response),
        }
    }

    fn screen<'m>(
        &mut self,
        request: &'m Message,
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
        if self.aor_user(request).is_none() {
            return Err(self.respond(request, 403, Some("Not an AOR of This Domain"), &[]));
        }

        // Credentials for other realms (other servers on the way) are not ours to judge.
        let mut ours = None;
        for value in request.headers_named(HeaderName::Authorization) {
            match auth::Credentials::parse(value) {
                Ok(auth::Credentials::Digest(digest)) if digest.realm == self.config.domain => {
                    ours = Some(digest);
                    break;
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(self.respond(request, 400, Some("Malformed Authorization"), &[]))
                }
            }
        }
        let Some(digest) = ours else {
            return Err(self.challenge_with(request, false, now_ms));
        };
        let username = match &digest.username {
            Username::Plain(name) => name.clone(),
            Username::Extended(_) => match digest.username.decode() {
                Ok(name) => Cow::Owned(name.into_owned()),
                Err(_) => {
                    return Err(self.respond(request, 400, Some("Malformed Authorization"), &[]))
                }
            },
        };
        let algorithm = match digest.algorithm {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
            _ => return Err(self.challenge_with(request, false, now_ms)),
        };
        // Only an algorithm the challenge offered: an operator who left one out wants it unused.
        if !self.config.digest_algorithms.contains(&algorithm) {
            return Err(self.challenge_with(request, false, now_ms));
        }
        // Only what the challenge offered: qop=auth (no RFC 2069 digest, which has no replay
        // protection), no userhash.
        let (Some(Qop::Auth), Some(cnonce), Some(nc), false) =
            (&digest.qop, digest.cnonce, digest.nc, digest.userhash)
        else {
            return Err(self.challenge_with(request, false, now_ms));
        };
        let Some(nonce_id) = self.nonces.open(&digest.nonce) else {
            return Err(self.challenge_with(request, false, now_ms));
        };
        Ok(PendingAuth {
            request,
            username,
            algorithm,
            nonce_id,
            nonce: digest.nonce,
            nc,
            cnonce,
            digest_uri: digest.uri,
            response: digest.response,
        })
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
        let request = pending.request;
        let known = credentials.filter(|c| *c.username == *pending.username);
        let ha1 = match (known, pending.algorithm) {
            (Some(c), algorithm) => c.ha1(algorithm),
            (None, Algorithm::Md5) => &self.dummy_ha1_md5[..],
            (None, Algorithm::Sha256) => &self.dummy_ha1_sha256[..],
        };
        let inputs = ResponseInputs {
            nonce: &pending.nonce,
            nc: pending.nc,
            cnonce: &pending.cnonce,
            method: Method::Register.as_str(),
            digest_uri: &pending.digest_uri,
        };
        let correct = digest::response_matches(pending.algorithm, ha1, &inputs, &pending.response);
        let Some(credentials) = known.filter(|_| correct) else {
            return Err(self.challenge_with(request, false, now_ms));
        };

        let now = u64::try_from(now_ms).unwrap_or(0);
        let lifetime = self.config.nonce_lifetime_ms();
        let issued = pending.nonce_id.issued_ms;
        // A nonce from the future comes from a node whose clock is ahead; beyond a lifetime
        // it is treated as expired too.
        let expired =
            now.saturating_sub(issued) > lifetime || issued.saturating_sub(now) > lifetime;
        let changed_at_ms = credentials.changed_at_ms;
        let changed_ms = u64::try_from(changed_at_ms).unwrap_or(0);
        if expired
            || issued < changed_ms
            || !self
                .counts
                .accept(pending.nonce_id, pending.nc, now.saturating_sub(lifetime))
        {
            return Err(self.challenge_with(request, true, now_ms));
        }

        let owns_aor = self
            .aor_user(request)
            .is_some_and(|user| *user == *credentials.username.as_bytes());
        if !owns_aor {
            return Err(self.respond(request, 403, Some("Not Your Address of Record"), &[]));
        }
        Ok(Authorized {
            endpoint_pk: credentials.endpoint_pk,
            credentials_changed_at_ms: changed_at_ms,
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

    /// The user part of the AOR in To, if To is a SIP URI of our domain with a user part.
    /// The host is compared case-insensitively; a port is not part of the comparison.
    fn aor_user<'m>(&self, request: &'m Message) -> Option<Cow<'m, [u8]>> {
        let to = request.to().ok()?;
        let uri = to.uri();
        let sip = uri.as_sip()?;
        if !sip
            .host()
            .as_str()
            .eq_ignore_ascii_case(&self.config.domain)
        {
            return None;
        }
        sip.user_unescaped()
    }

    /// A fresh 401 challenge: for a commit refused because the credentials changed after the
    /// REGISTER was authenticated (`StoreError::InvalidReference("credentials")`).
    pub fn challenge(&mut self, request: &Message, now_ms: i64) -> Response {
        self.challenge_with(request, false, now_ms)
    }

    fn challenge_with(&mut self, request: &Message, stale: bool, now_ms: i64) -> Response {
        let nonce = self.nonces.mint(now_ms);
        // In the configured order: clients take the first algorithm they support (RFC 7616
        // §3.7), and some only ever read the first challenge.
        let offers: Result<Vec<String>, _> = self
            .config
            .digest_algorithms
            .iter()
            .map(|algorithm| {
                let algorithm = match algorithm {
                    Algorithm::Md5 => DigestAlgorithm::Md5,
                    Algorithm::Sha256 => DigestAlgorithm::Sha256,
                };
                DigestChallenge::new(self.config.domain.as_str(), nonce.as_str())
                    .with_algorithm(algorithm)
                    .with_qop(Qop::Auth)
                    .with_stale(stale)
                    .to_header_value()
            })
            .collect();
        match offers {
            Ok(offers) => {
                let headers: Vec<(&str, &str)> = offers
                    .iter()
                    .map(|offer| ("WWW-Authenticate", offer.as_str()))
                    .collect();
                self.respond(request, 401, None, &headers)
            }
            // Unreachable with a validated domain and base64url nonces; no panic either way.
            Err(_) => self.respond(request, 500, None, &[]),
        }
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
