//! Digest authentication of any request (RFC 7616, RFC 3261 §22), in two pure steps: the
//! registrar's REGISTERs (`401`, `WWW-Authenticate` / `Authorization`) and the proxy's other
//! requests (`407`, `Proxy-Authenticate` / `Proxy-Authorization`) go through the same code,
//! the same stateless nonces and one nonce-count replay tracker. A client may answer an INVITE
//! challenge with the nonce of its REGISTER challenge (or the other way round): its counts
//! must keep rising across both.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use sip_message::auth::{self, DigestAlgorithm, DigestChallenge, Qop, Username};
use sip_message::{HeaderName, Message};

use crate::config::RegistrarConfig;
use crate::digest::{self, Algorithm, DigestCredentials, ResponseInputs};
use crate::nonce::{NonceId, NonceMinter};
use crate::replay::NonceCounts;
use crate::response::{Responder, Response};

/// Who challenges: the status and headers of the exchange (RFC 3261 §22.2, §22.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRole {
    /// A registrar (or user agent server): `401`, `WWW-Authenticate`, `Authorization`.
    Registrar,
    /// A proxy: `407`, `Proxy-Authenticate`, `Proxy-Authorization`.
    Proxy,
}

impl AuthRole {
    /// The status of a challenge: 401 or 407.
    pub fn status(self) -> u16 {
        match self {
            AuthRole::Registrar => 401,
            AuthRole::Proxy => 407,
        }
    }

    fn challenge_header(self) -> &'static str {
        match self {
            AuthRole::Registrar => "WWW-Authenticate",
            AuthRole::Proxy => "Proxy-Authenticate",
        }
    }

    fn credentials_header(self) -> HeaderName {
        match self {
            AuthRole::Registrar => HeaderName::Authorization,
            AuthRole::Proxy => HeaderName::ProxyAuthorization,
        }
    }

    fn malformed(self) -> &'static str {
        match self {
            AuthRole::Registrar => "Malformed Authorization",
            AuthRole::Proxy => "Malformed Proxy-Authorization",
        }
    }
}

/// Checks Digest answers against stateless nonces it issued, for one realm (the SIP domain).
/// Holds the nonce sequence and the nonce-count replay tracker: one per process, shared by
/// every method (the [`Registrar`](crate::Registrar) owns it: [`Registrar::authenticator`](crate::Registrar::authenticator)).
pub struct Authenticator {
    realm: Box<str>,
    /// Offered in this order, one challenge header each.
    algorithms: Box<[Algorithm]>,
    nonce_lifetime_ms: u64,
    nonces: NonceMinter,
    counts: NonceCounts,
    responder: Responder,
    /// Checked against when the user is unknown, so unknown users cost what known ones do.
    /// Derived from the secret: nobody can compute a response that matches them.
    dummy_ha1_md5: [u8; 16],
    dummy_ha1_sha256: [u8; 32],
}

/// A request whose Digest credentials are well formed and whose nonce is ours, waiting for the
/// user's credentials.
#[derive(Debug)]
pub struct PendingAuth<'m> {
    request: &'m Message,
    role: AuthRole,
    /// The request's method: HA2 is computed over it.
    method: &'m str,
    username: Cow<'m, str>,
    algorithm: Algorithm,
    nonce_id: NonceId,
    nonce: Cow<'m, str>,
    nc: u32,
    cnonce: Cow<'m, str>,
    digest_uri: Cow<'m, str>,
    response: Cow<'m, str>,
}

impl<'m> PendingAuth<'m> {
    /// The user name to fetch credentials for.
    pub fn username(&self) -> &str {
        &self.username
    }

    pub(crate) fn request(&self) -> &'m Message {
        self.request
    }
}

impl Authenticator {
    /// `config`'s realm (the domain), algorithms, nonce lifetime and replay capacity; `mac` is
    /// keyed with the nonce secret. The configuration is already validated.
    pub(crate) fn new(config: &RegistrarConfig, mac: Hmac<Sha256>) -> Authenticator {
        let mut dummy_mac = mac.clone();
        dummy_mac.update(b"dummy-ha1\0");
        let dummy_seed = dummy_mac.finalize().into_bytes();
        Authenticator {
            realm: config.domain.as_str().into(),
            algorithms: config.digest_algorithms.as_slice().into(),
            nonce_lifetime_ms: config.nonce_lifetime_ms(),
            nonces: NonceMinter::new(mac.clone(), &config.domain),
            counts: NonceCounts::new(config.replay_tracker_capacity),
            responder: Responder::new(mac),
            dummy_ha1_md5: Md5::digest(dummy_seed).into(),
            dummy_ha1_sha256: Sha256::digest(dummy_seed).into(),
        }
    }

    /// Step 1: finds the request's Digest credentials for our realm in the `role`'s header.
    ///
    /// `Err`: `400` for a malformed credentials header; a challenge when there are no
    /// credentials for our realm, or they answer with an algorithm or qop the challenge did
    /// not offer, or with a nonce we did not issue. So credentials are looked up only for a
    /// nonce of ours. `Ok`: fetch the credentials of [`PendingAuth::username`] and call
    /// [`Authenticator::verify`].
    pub fn screen<'m>(
        &mut self,
        request: &'m Message,
        role: AuthRole,
        now_ms: i64,
    ) -> Result<PendingAuth<'m>, Response> {
        // Credentials for other realms (other servers on the way) are not ours to judge.
        let mut ours = None;
        for value in request.headers_named(role.credentials_header()) {
            match auth::Credentials::parse(value) {
                Ok(auth::Credentials::Digest(digest)) if *digest.realm == *self.realm => {
                    ours = Some(digest);
                    break;
                }
                Ok(_) => {}
                Err(_) => return Err(self.malformed(request, role)),
            }
        }
        let Some(digest) = ours else {
            return Err(self.challenge(request, role, now_ms));
        };
        let username = match &digest.username {
            Username::Plain(name) => name.clone(),
            Username::Extended(_) => match digest.username.decode() {
                Ok(name) => Cow::Owned(name.into_owned()),
                Err(_) => return Err(self.malformed(request, role)),
            },
        };
        let algorithm = match digest.algorithm {
            DigestAlgorithm::Md5 => Algorithm::Md5,
            DigestAlgorithm::Sha256 => Algorithm::Sha256,
            _ => return Err(self.challenge(request, role, now_ms)),
        };
        // Only an algorithm the challenge offered: an operator who left one out wants it unused.
        if !self.algorithms.contains(&algorithm) {
            return Err(self.challenge(request, role, now_ms));
        }
        // Only what the challenge offered: qop=auth (no RFC 2069 digest, which has no replay
        // protection), no userhash.
        let (Some(Qop::Auth), Some(cnonce), Some(nc), false) =
            (&digest.qop, digest.cnonce, digest.nc, digest.userhash)
        else {
            return Err(self.challenge(request, role, now_ms));
        };
        let (Some(method), Some(nonce_id)) = (request.method(), self.nonces.open(&digest.nonce))
        else {
            return Err(self.challenge(request, role, now_ms));
        };
        Ok(PendingAuth {
            request,
            role,
            method: method.as_str(),
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

    /// Step 2: checks the digest response against `credentials` (the user's, `None` if there
    /// is no such user), then the nonce's age and count. `Ok`: the credentials the request
    /// proved knowledge of.
    ///
    /// A wrong password and an unknown user get the same challenge after the same work; a
    /// correct response with an expired nonce, a nonce issued before the credentials last
    /// changed, or a repeated or lower nonce-count gets a `stale=true` challenge (the client
    /// retries with the new nonce without asking its user).
    pub fn verify<'c>(
        &mut self,
        pending: PendingAuth<'_>,
        credentials: Option<&'c DigestCredentials>,
        now_ms: i64,
    ) -> Result<&'c DigestCredentials, Response> {
        let (request, role) = (pending.request, pending.role);
        let known = credentials.filter(|c| *c.endpoint.username == *pending.username);
        let ha1 = match (known, pending.algorithm) {
            (Some(c), algorithm) => c.ha1(algorithm),
            (None, Algorithm::Md5) => &self.dummy_ha1_md5[..],
            (None, Algorithm::Sha256) => &self.dummy_ha1_sha256[..],
        };
        let inputs = ResponseInputs {
            nonce: &pending.nonce,
            nc: pending.nc,
            cnonce: &pending.cnonce,
            method: pending.method,
            digest_uri: &pending.digest_uri,
        };
        let correct = digest::response_matches(pending.algorithm, ha1, &inputs, &pending.response);
        let Some(credentials) = known.filter(|_| correct) else {
            return Err(self.challenge(request, role, now_ms));
        };

        let now = u64::try_from(now_ms).unwrap_or(0);
        let lifetime = self.nonce_lifetime_ms;
        let issued = pending.nonce_id.issued_ms;
        // A nonce from the future comes from a node whose clock is ahead; beyond a lifetime
        // it is treated as expired too.
        let expired =
            now.saturating_sub(issued) > lifetime || issued.saturating_sub(now) > lifetime;
        let changed_ms = u64::try_from(credentials.changed_at_ms).unwrap_or(0);
        if expired
            || issued < changed_ms
            || !self
                .counts
                .accept(pending.nonce_id, pending.nc, now.saturating_sub(lifetime))
        {
            return Err(self.challenge_with(request, role, true, now_ms));
        }
        Ok(credentials)
    }

    /// A fresh challenge (not stale) for `request`: `401` or `407` with one challenge header
    /// per configured algorithm, in the configured order.
    pub fn challenge(&mut self, request: &Message, role: AuthRole, now_ms: i64) -> Response {
        self.challenge_with(request, role, false, now_ms)
    }

    fn challenge_with(
        &mut self,
        request: &Message,
        role: AuthRole,
        stale: bool,
        now_ms: i64,
    ) -> Response {
        let nonce = self.nonces.mint(now_ms);
        // In the configured order: clients take the first algorithm they support (RFC 7616
        // §3.7), and some only ever read the first challenge.
        let offers: Result<Vec<String>, _> = self
            .algorithms
            .iter()
            .map(|algorithm| {
                let algorithm = match algorithm {
                    Algorithm::Md5 => DigestAlgorithm::Md5,
                    Algorithm::Sha256 => DigestAlgorithm::Sha256,
                };
                DigestChallenge::new(&*self.realm, nonce.as_str())
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
                    .map(|offer| (role.challenge_header(), offer.as_str()))
                    .collect();
                self.responder
                    .respond(request, role.status(), None, &headers)
            }
            // Unreachable with a validated realm and base64url nonces; no panic either way.
            Err(_) => self.responder.respond(request, 500, None, &[]),
        }
    }

    fn malformed(&self, request: &Message, role: AuthRole) -> Response {
        self.responder
            .respond(request, 400, Some(role.malformed()), &[])
    }
}
