//! The sipd registrar core, sans-IO: Digest authentication (RFC 7616, RFC 3261 §22) of
//! REGISTERs and, for the proxy, of any other request, and registration binding rules (RFC
//! 3261 §10.3, RFC 5626 outbound, RFC 5627 instance ids, RFC 3327 Path). It takes a parsed
//! request, the facts the shell fetched, and `now` (Unix milliseconds), and returns decisions:
//! no sockets, database, clock or randomness inside.
//!
//! # Driving one REGISTER
//!
//! The shell owns one [`Registrar`] (its state: nonce sequence and replay tracker; share it
//! behind a mutex, each call is short and never awaits). For a REGISTER that the transaction
//! layer handed over (a new server transaction):
//!
//! 1. [`Registrar::start`]`(&request, &source, now_ms)`, with [`Source`] describing the flow
//!    and local address the REGISTER arrived on:
//!    * [`Start::Respond`]`(response)` → send it through the transaction; done.
//!    * [`Start::NeedCredentials`]`(pending)` → fetch the credentials of
//!      [`PendingAuth::username`] (cache, then store, as [`DigestCredentials::from_store`]);
//!      `None` if there is no such user.
//! 2. [`Registrar::authenticate`]`(pending, credentials.as_ref(), now_ms)`:
//!    * `Err(response)` → send it; done.
//!    * `Ok(authorized)` → load the AOR's bindings for [`Authorized::endpoint_pk`].
//! 3. [`Registrar::register`]`(&request, &authorized, &bindings, &source, now_ms)`:
//!    * `Err(response)` → send it; commit nothing; done.
//!    * `Ok(registration)` → commit [`Registration::changes`] (in order, in one transaction:
//!      `sipd_store::BindingWriter::commit`); if that succeeds, install
//!      [`Registration::bindings`] as the AOR's location-service entry and send
//!      [`Registration::response`] (the 200); if it fails, send [`Registrar::commit_failed`]
//!      (500) and leave the location service alone; except when the store refused it
//!      because the credentials changed meanwhile (`InvalidReference("credentials")`): then
//!      send [`Registrar::challenge`] (a fresh 401).
//!
//! Between steps 2 and 3 the shell awaits I/O: it must serialize REGISTERs of one AOR (e.g. a
//! per-endpoint lock held from loading the bindings to the commit), or two of them could each
//! decide against the same old binding set.
//!
//! Expired bindings: [`expired_bindings`] and [`next_expiry_ms`] drive the shell's expiry timer.
//!
//! # Authenticating other requests (the proxy)
//!
//! [`Registrar::authenticator`] is the [`Authenticator`] REGISTERs go through; the proxy's
//! requests (INVITE, MESSAGE, SUBSCRIBE, REFER, OPTIONS, …) use it with [`AuthRole::Proxy`]:
//! [`Authenticator::screen`] (`407` challenge with `Proxy-Authenticate`, or `400` for a
//! malformed `Proxy-Authorization`), the credentials of [`PendingAuth::username`], then
//! [`Authenticator::verify`]. Both kinds of request share the nonces and the replay tracker,
//! so a nonce from a REGISTER challenge answers an INVITE challenge too, and its counts must
//! keep rising across both. The digest's HA2 is computed over the request's own method. ACK
//! and CANCEL cannot be challenged (RFC 3261 §22.1): the caller does not authenticate them.
//! The authenticated user need not be the From user: as Kamailio's `proxy_authorize`, the
//! check is of the credentials only, since phones often put a display number or another
//! identity in From. Whoever routes the request decides what identity to assert.
//! [`service::RegistrarService::authenticate`] runs the sequence with the cached credentials.
//!
//! # Decisions
//!
//! * Challenges offer the configured algorithms in their order (default MD5 alone: stock
//!   clients such as sipp, sipsak, baresip and JsSIP fail on a SHA-256 challenge offered
//!   first; SHA-256 by configuration), all `qop="auth"`, realm = the SIP domain, no `opaque`
//!   (stateless nonces need none). An answer with an algorithm that was not offered is
//!   challenged again. Only `qop=auth` answers are accepted: RFC 2069 answers (no qop) have no
//!   nonce-count and so no replay protection, and the challenge never offers them.
//! * Credentials for another realm are ignored (they are for another server on the way); a
//!   request with none for ours is challenged.
//! * Nonce-count replays and lower counts get `401` (`407`) with `stale=true`, as do expired
//!   nonces and nonces issued before the password last changed: the answer was right, only
//!   its freshness was not, and a legitimate client (e.g. one whose REGISTERs crossed)
//!   retries with the new nonce without asking its user for a password.
//! * An unknown user gets the same challenge as a wrong password, after the same work (the
//!   response is checked against a secret dummy HA1).
//! * The digest `uri` must be present but need not equal the Request-URI: NAT helpers rewrite
//!   Request-URIs, and the method, nonce and nonce-count already bind the answer to a fresh
//!   REGISTER (or whichever request it is).
//! * The `nc` text is hashed as 8 lowercase hex digits (its RFC 7616 form) and, for a count
//!   with a hex letter in it, also as upper case: sip-message keeps only the parsed number,
//!   and some clients hash the upper-case text they send.
//! * The To AOR must be `sip:`/`sips:` with our domain as host and the authenticated user name
//!   as user part (exact, after unescaping). The host is ours when [`LocalDomain::is_ours`]
//!   says so: the domain or a configured alias (case-insensitive, IP literals by address, any
//!   port), or the local address the REGISTER arrived on (phones set up with the server's IP
//!   as their domain). Another domain gets `403` before authentication; another user's AOR
//!   `403` after it. The Request-URI is not checked (devices often address the registrar by
//!   IP). Bindings are stored under the endpoint whatever host the AOR named.
//! * Out-of-order CSeq for the same Call-ID fails the whole REGISTER with 500, as RFC 3261
//!   §10.3 step 7 and its last paragraph require.
//! * Expired bindings handed to [`Registrar::register`] are ignored, not deleted: the store's
//!   purge removes them without racing a refresh by another node. `Contact: *` becomes
//!   `DeleteAllForEndpoint`, so it also clears bindings this node's view missed.
//! * More than `max_contacts_per_aor` bindings: if the REGISTER itself brings more, `403 Too
//!   Many Contacts`; otherwise the least recently refreshed stored bindings are dropped.
//! * Outbound (RFC 5626 §6) applies when the client sends `Supported: outbound` and this is its
//!   first hop (one Via) or the first Path URI carries `ob`; then a Contact with
//!   `+sip.instance` and `reg-id` binds to the flow, keyed by (instance, reg-id), and the 200
//!   carries `Require: outbound`. A reg-id without `Supported: outbound` or without an
//!   instance is ignored; with `Supported: outbound` behind a first hop without outbound
//!   support, the answer is `439`.
//! * Path values are stored whenever present and echoed in the 200 only when the client
//!   sent `Supported: path` (RFC 3327 §5.3).
//! * A binding is stored under (endpoint, contact URI, reg-id) ([`Binding::key`]), so two flows
//!   of one device with the same Contact URI (RFC 5626 allows it) are two bindings; a Contact
//!   that matches a stored binding under another key (a plain URI match of a flow's binding)
//!   deletes the old row and writes the new one.

mod auth;
mod bindings;
mod config;
mod digest;
mod domain;
mod endpoint;
mod expiry;
mod nonce;
mod registrar;
mod replay;
mod response;
pub mod service;

pub use auth::{AuthRole, Authenticator, PendingAuth};
pub use bindings::Source;
pub use config::{ConfigError, RegistrarConfig};
pub use digest::{Algorithm, DigestCredentials};
pub use domain::LocalDomain;
pub use endpoint::{EndpointInfo, Permission, Permissions};
pub use expiry::{expired_bindings, next_expiry_ms};
pub use registrar::{Authorized, Registrar, Registration, Start};
pub use response::Response;
pub use sipd_store::{Binding, BindingChange, Credentials};
