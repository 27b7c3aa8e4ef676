//! The registrar's knobs, read once by the shell and checked by [`Registrar::new`](crate::Registrar::new).

use std::fmt;
use std::time::Duration;

use crate::digest::Algorithm;
use crate::domain::LocalDomain;

/// Registrar configuration. [`RegistrarConfig::new`] fills safe defaults for everything but the
/// domain, the nonce secret and the node id.
#[derive(Clone)]
pub struct RegistrarConfig {
    /// The SIP domain served (host part of every AOR); also the digest realm.
    pub domain: String,
    /// Other host names and IP literals (IPv6 with or without brackets) that mean the domain
    /// in a request's AOR, e.g. the server's public address that phones were set up with.
    /// The address a request arrived on means the domain too, without being listed. Bindings
    /// and the realm still use `domain`.
    pub aliases: Vec<String>,
    /// Key for the nonce MAC and To tags. Every node of a cluster needs the same secret so any
    /// node verifies any node's nonces. At least 32 bytes.
    pub nonce_secret: Vec<u8>,
    /// How long a nonce is accepted after it was issued; older ones get a `stale=true` challenge.
    pub nonce_lifetime: Duration,
    /// Shortest registration accepted; a shorter non-zero one gets `423 Interval Too Brief`.
    pub min_expires_secs: u32,
    /// Longest registration granted; longer requests are shortened to this.
    pub max_expires_secs: u32,
    /// Registration interval when the REGISTER names none.
    pub default_expires_secs: u32,
    /// Most bindings one AOR may have; beyond it the least recently refreshed are dropped.
    pub max_contacts_per_aor: usize,
    /// Most nonces whose nonce-count is remembered for replay detection. Memory is roughly
    /// 40 bytes per entry; when full, the oldest nonces are forgotten and their next use is
    /// answered with a `stale=true` challenge.
    pub replay_tracker_capacity: usize,
    /// This sipd process, recorded in bindings: the node that holds the REGISTER's flow.
    pub node_id: String,
    /// The algorithms challenged with, one `WWW-Authenticate` (or `Proxy-Authenticate`) each,
    /// in this order; answers with any other algorithm are challenged again. Non-empty, no
    /// repeats. Many clients only read the first challenge, so the order decides what they
    /// use, and many stock clients (sipp, sipsak, baresip, JsSIP) fail on a SHA-256 challenge
    /// offered first: SHA-256 is for deployments whose clients all support it.
    pub digest_algorithms: Vec<Algorithm>,
}

impl RegistrarConfig {
    /// Defaults: no aliases, nonce lifetime 300 s, expires 60 ≤ 3600 ≤ 7200 s, 10 contacts per
    /// AOR, 262 144 tracked nonces, digest algorithm MD5 alone.
    pub fn new(
        domain: impl Into<String>,
        nonce_secret: impl Into<Vec<u8>>,
        node_id: impl Into<String>,
    ) -> Self {
        RegistrarConfig {
            domain: domain.into(),
            aliases: Vec::new(),
            nonce_secret: nonce_secret.into(),
            nonce_lifetime: Duration::from_secs(300),
            min_expires_secs: 60,
            max_expires_secs: 7200,
            default_expires_secs: 3600,
            max_contacts_per_aor: 10,
            replay_tracker_capacity: 262_144,
            node_id: node_id.into(),
            digest_algorithms: vec![Algorithm::Md5],
        }
    }

    /// The domain and its aliases, refused if either is not a host name or address.
    pub fn local_domain(&self) -> Result<LocalDomain, ConfigError> {
        LocalDomain::new(&self.domain, &self.aliases)
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        self.local_domain()?;
        if self.nonce_secret.len() < MIN_SECRET_LEN {
            return Err(ConfigError::SecretTooShort);
        }
        if self.nonce_lifetime.is_zero() {
            return Err(ConfigError::ZeroNonceLifetime);
        }
        if self.min_expires_secs == 0
            || self.min_expires_secs > self.default_expires_secs
            || self.default_expires_secs > self.max_expires_secs
        {
            return Err(ConfigError::ExpiresOutOfOrder);
        }
        if self.max_contacts_per_aor == 0 {
            return Err(ConfigError::ZeroMaxContacts);
        }
        if self.replay_tracker_capacity == 0 {
            return Err(ConfigError::ZeroReplayCapacity);
        }
        let algorithms = &self.digest_algorithms;
        let repeated = (1..algorithms.len()).any(|i| algorithms[..i].contains(&algorithms[i]));
        if algorithms.is_empty() || repeated {
            return Err(ConfigError::InvalidDigestAlgorithms);
        }
        Ok(())
    }

    pub(crate) fn nonce_lifetime_ms(&self) -> u64 {
        u64::try_from(self.nonce_lifetime.as_millis()).unwrap_or(u64::MAX)
    }
}

impl fmt::Debug for RegistrarConfig {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrarConfig")
            .field("domain", &self.domain)
            .field("aliases", &self.aliases)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("min_expires_secs", &self.min_expires_secs)
            .field("max_expires_secs", &self.max_expires_secs)
            .field("default_expires_secs", &self.default_expires_secs)
            .field("max_contacts_per_aor", &self.max_contacts_per_aor)
            .field("replay_tracker_capacity", &self.replay_tracker_capacity)
            .field("node_id", &self.node_id)
            .field("digest_algorithms", &self.digest_algorithms)
            .finish_non_exhaustive()
    }
}

const MIN_SECRET_LEN: usize = 32;

/// A configuration the registrar refuses to run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// The domain is empty or not a plain host name (letters, digits, `.`, `-`, `_`).
    InvalidDomain,
    /// An alias is neither a host name nor an IP address.
    InvalidDomainAlias,
    /// The nonce secret is shorter than 32 bytes.
    SecretTooShort,
    /// The nonce lifetime is zero.
    ZeroNonceLifetime,
    /// Not `0 < min_expires_secs <= default_expires_secs <= max_expires_secs`.
    ExpiresOutOfOrder,
    /// `max_contacts_per_aor` is zero.
    ZeroMaxContacts,
    /// `replay_tracker_capacity` is zero.
    ZeroReplayCapacity,
    /// `digest_algorithms` is empty or names an algorithm twice.
    InvalidDigestAlgorithms,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::InvalidDomain => {
                "registrar domain must be a host name (letters, digits, '.', '-', '_')"
            }
            ConfigError::InvalidDomainAlias => {
                "registrar domain aliases must be host names or IP addresses"
            }
            ConfigError::SecretTooShort => "registrar nonce secret must be at least 32 bytes",
            ConfigError::ZeroNonceLifetime => "registrar nonce lifetime must not be zero",
            ConfigError::ExpiresOutOfOrder => {
                "registrar expires must satisfy 0 < min <= default <= max"
            }
            ConfigError::ZeroMaxContacts => "registrar max contacts per AOR must not be zero",
            ConfigError::ZeroReplayCapacity => "registrar replay tracker capacity must not be zero",
            ConfigError::InvalidDigestAlgorithms => {
                "registrar digest algorithms must be non-empty, each named once"
            }
        })
    }
}

impl std::error::Error for ConfigError {}
