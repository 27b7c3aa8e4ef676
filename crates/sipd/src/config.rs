//! Typed configuration, read once at start. Layers, later wins: the built-in defaults (the
//! shipped `config/sipd.toml`, compiled in), the config file, then `SIPD_<SECTION>_<KEY>`
//! environment variables. The defaults file is also the schema: a key it lacks is unknown, and
//! its values fix each key's type.

use crate::secret::SecretKey;
use sip_message::Transport;
use sipd_proxy::{IpNet, NoApplication};
use sipd_registrar::Algorithm;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The one source of defaults, so that the documented file and the binary cannot drift.
const DEFAULTS: &str = include_str!("../../../config/sipd.toml");

/// Config file read when `--config` is not given and it exists (relative to the working dir).
pub const DEFAULT_FILE: &str = "config/sipd.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub api: ApiConfig,
    pub sip: SipConfig,
    pub registrar: RegistrarSettings,
    pub proxy: ProxySettings,
    pub database: DatabaseConfig,
    pub data: DataConfig,
    pub security: SecurityConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SipConfig {
    /// Lower-case host name; also the digest realm.
    pub domain: String,
    pub udp: Listen,
    pub tcp: Listen,
    pub tls: Listen,
    pub wss: Listen,
    pub ws: Listen,
    /// PEM chain and key for TLS and WSS; `None`: a self-signed certificate.
    pub certificate: Option<CertificatePaths>,
    pub max_message_size: usize,
    pub max_connections_per_ip: usize,
    pub max_connections: usize,
    pub idle_timeout: Duration,
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
    /// SIP transactions in progress per shard (one shard per core); past it new requests
    /// get 503.
    pub max_transactions: usize,
    /// Answered UDP non-INVITE requests remembered per shard for Timer J.
    pub max_completed: usize,
    /// `None`: the host name, else a random name (decided at start).
    pub node_id: Option<String>,
    /// What to write into Via and Record-Route instead of the bound addresses.
    pub advertised: Advertised,
    /// Other host names and IPs meaning `domain`, lower case.
    pub domain_aliases: Vec<String>,
    /// Verify the certificates of outbound TLS peers.
    pub tls_verify: bool,
    /// Further trusted CA certificates (PEM) for outbound TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// DNS servers for RFC 3263 lookups; empty: /etc/resolv.conf.
    pub dns_servers: Vec<SocketAddr>,
    /// Bound on one RFC 3263 resolution.
    pub dns_timeout: Duration,
    /// Time allowed to open an outbound connection.
    pub connect_timeout: Duration,
}

/// `sip.advertised_address`: one host for every listener, or one per listener. A port left
/// out is the listener's own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advertised {
    pub all: Option<(String, Option<u16>)>,
    pub per_transport: Vec<(Transport, String, Option<u16>)>,
}

impl Advertised {
    /// The host and port to advertise for the listener of `transport` bound to `port`.
    pub fn for_listener(&self, transport: Transport, port: u16) -> Option<(String, u16)> {
        let (host, explicit) = self
            .per_transport
            .iter()
            .find(|(t, _, _)| *t == transport)
            .map(|(_, host, port)| (host, *port))
            .or_else(|| self.all.as_ref().map(|(host, port)| (host, *port)))?;
        Some((host.clone(), explicit.unwrap_or(port)))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    pub no_application: NoApplication,
    pub trusted_peers: Vec<IpNet>,
    /// A `sip:`/`sips:` URI.
    pub pstn_gateway: Option<String>,
    pub timer_c: Duration,
    pub max_call_duration: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePaths {
    pub chain: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegistrarSettings {
    pub min_expires_secs: u32,
    pub default_expires_secs: u32,
    pub max_expires_secs: u32,
    pub max_contacts_per_aor: usize,
    pub nonce_lifetime: Duration,
    /// `None`: derived from the server secret key.
    pub nonce_secret: Option<NonceSecret>,
    /// Challenged in this order; non-empty, no repeats.
    pub digest_algorithms: Vec<Algorithm>,
}

/// The digest nonce key. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct NonceSecret(String);

impl NonceSecret {
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for NonceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceSecret(***)")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DatabaseConfig {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataConfig {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SecurityConfig {
    /// `None`: use (or create) the key file in the data dir.
    pub secret_key: Option<SecretKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A filter in RUST_LOG syntax, already checked to parse.
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A listener address, or `off` for a transport that is not started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    Addr(SocketAddr),
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::Addr(addr) => addr.fmt(f),
        }
    }
}

/// A database URL. It may carry a password, so `Display` and `Debug` mask it; `as_str` is
/// for the store only.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let text = text.trim();
        if ["postgres://", "postgresql://", "sqlite:"]
            .iter()
            .any(|scheme| text.starts_with(scheme))
        {
            Ok(DatabaseUrl(text.to_owned()))
        } else {
            // The value is not echoed: it may hold a password.
            Err("expected a URL starting with postgres://, postgresql:// or sqlite:".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DatabaseUrl {
    /// The URL with the password of `user:password@` and of `password=` parameters masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (base, query) = match self.0.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.0.as_str(), None),
        };
        match base.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                let (authority, path) = rest.split_at(authority_end);
                match authority.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                        let masked = if userinfo.contains(':') { ":***" } else { "" };
                        write!(f, "{scheme}://{user}{masked}@{host}{path}")?
                    }
                    None => f.write_str(base)?,
                }
            }
            None => f.write_str(base)?,
        }
        if let Some(query) = query {
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                        format!("{name}=***")
                    }
                    _ => parameter.to_owned(),
                })
                .collect();
            write!(f, "?{}", parameters.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Where a setting's value came from, for error messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("built-in defaults"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{origin} is not valid TOML: {message}")]
    Syntax { origin: Origin, message: String },
    #[error("unknown key `{key}` in {origin} (config/sipd.toml lists every key)")]
    UnknownKey { key: String, origin: Origin },
    #[error("invalid value for `{key}` (from {origin}): {reason}")]
    Invalid {
        key: String,
        origin: Origin,
        reason: String,
    },
}

impl Config {
    /// Built-in defaults, overlaid with `file` if given, then with the `SIPD_*` variables that
    /// `env` returns (a lookup by name, so tests need not touch the process environment).
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Config, ConfigError> {
        let mut settings = Settings::parse(DEFAULTS, Origin::Default)?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
                path: path.to_owned(),
                error,
            })?;
            settings.overlay(Settings::parse(&text, Origin::File(path.to_owned()))?)?;
        }
        settings.overlay_env(env)?;
        Config::from_settings(&settings)
    }

    fn from_settings(settings: &Settings) -> Result<Config, ConfigError> {
        let config = Config {
            api: ApiConfig {
                listen: settings.string("api.listen", parse_socket_addr)?,
                shutdown_timeout: settings
                    .integer("api.shutdown_timeout_secs", |n| seconds(n, 0, 3600))?,
            },
            sip: SipConfig {
                domain: settings.string("sip.domain", parse_domain)?,
                udp: settings.string("sip.udp", parse_listen)?,
                tcp: settings.string("sip.tcp", parse_listen)?,
                tls: settings.string("sip.tls", parse_listen)?,
                wss: settings.string("sip.wss", parse_listen)?,
                ws: settings.string("sip.ws", parse_listen)?,
                certificate: certificate_paths(settings)?,
                max_message_size: settings.integer("sip.max_message_size", |n| {
                    in_range(n, 1024, 1 << 20).map(|n| n as usize)
                })?,
                max_connections_per_ip: settings.integer("sip.max_connections_per_ip", |n| {
                    in_range(n, 1, 1_000_000).map(|n| n as usize)
                })?,
                max_connections: settings.integer("sip.max_connections", |n| {
                    in_range(n, 1, 10_000_000).map(|n| n as usize)
                })?,
                idle_timeout: settings
                    .integer("sip.idle_timeout_secs", |n| seconds(n, 1, 86_400))?,
                t1: settings.integer("sip.t1_ms", |n| milliseconds(n, 1, 60_000))?,
                t2: settings.integer("sip.t2_ms", |n| milliseconds(n, 1, 600_000))?,
                t4: settings.integer("sip.t4_ms", |n| milliseconds(n, 1, 600_000))?,
                max_transactions: settings.integer("sip.max_transactions", |n| {
                    in_range(n, 1, 100_000_000).map(|n| n as usize)
                })?,
                max_completed: settings.integer("sip.max_completed", |n| {
                    in_range(n, 0, 100_000_000).map(|n| n as usize)
                })?,
                node_id: settings.string("sip.node_id", parse_node_id)?,
                advertised: settings.string("sip.advertised_address", parse_advertised)?,
                domain_aliases: settings.string("sip.domain_aliases", parse_aliases)?,
                tls_verify: settings.boolean("sip.tls_verify")?,
                tls_ca_file: settings.string("sip.tls_ca_file", |text| {
                    Ok::<_, String>((!text.trim().is_empty()).then(|| PathBuf::from(text.trim())))
                })?,
                dns_servers: settings.string("sip.dns_servers", parse_dns_servers)?,
                dns_timeout: settings.integer("sip.dns_timeout_secs", |n| seconds(n, 1, 60))?,
                connect_timeout: settings
                    .integer("sip.connect_timeout_secs", |n| seconds(n, 1, 300))?,
            },
            registrar: RegistrarSettings {
                min_expires_secs: settings.integer("registrar.min_expires_secs", expires)?,
                default_expires_secs: settings
                    .integer("registrar.default_expires_secs", expires)?,
                max_expires_secs: settings.integer("registrar.max_expires_secs", expires)?,
                max_contacts_per_aor: settings.integer("registrar.max_contacts_per_aor", |n| {
                    in_range(n, 1, 1000).map(|n| n as usize)
                })?,
                nonce_lifetime: settings
                    .integer("registrar.nonce_lifetime_secs", |n| seconds(n, 1, 86_400))?,
                nonce_secret: settings.string("registrar.nonce_secret", parse_nonce_secret)?,
                digest_algorithms: settings
                    .string("registrar.digest_algorithms", parse_digest_algorithms)?,
            },
            proxy: ProxySettings {
                no_application: settings.string("proxy.no_application", parse_no_application)?,
                trusted_peers: settings.string("proxy.trusted_peers", parse_trusted_peers)?,
                pstn_gateway: settings.string("proxy.pstn_gateway", parse_gateway)?,
                // RFC 3261 §16.6 step 11: Timer C is more than three minutes.
                timer_c: settings.integer("proxy.timer_c_secs", |n| seconds(n, 181, 86_400))?,
                max_call_duration: settings
                    .integer("proxy.max_call_secs", |n| seconds(n, 60, 7 * 86_400))?,
            },
            database: DatabaseConfig {
                url: settings.string("database.url", DatabaseUrl::parse)?,
                max_connections: settings.integer("database.max_connections", |n| {
                    in_range(n, 1, 1000).map(|n| n as u32)
                })?,
                acquire_timeout: settings
                    .integer("database.acquire_timeout_secs", |n| seconds(n, 1, 3600))?,
            },
            data: DataConfig {
                dir: settings.string("data.dir", parse_dir)?,
            },
            security: SecurityConfig {
                secret_key: settings.string("security.secret_key", |text| {
                    if text.trim().is_empty() {
                        Ok(None)
                    } else {
                        SecretKey::from_hex(text).map(Some)
                    }
                })?,
            },
            log: LogConfig {
                format: settings.string("log.format", parse_log_format)?,
                level: settings.string("log.level", parse_log_filter)?,
            },
        };
        config.check_relations(settings)?;
        Ok(config)
    }

    /// Checks between keys that each parsed on their own.
    fn check_relations(&self, settings: &Settings) -> Result<(), ConfigError> {
        let registrar = &self.registrar;
        if registrar.min_expires_secs > registrar.default_expires_secs
            || registrar.default_expires_secs > registrar.max_expires_secs
        {
            return Err(settings.invalid(
                "registrar.default_expires_secs",
                "expected min_expires_secs <= default_expires_secs <= max_expires_secs".to_owned(),
            ));
        }
        if self.sip.t2 < self.sip.t1 {
            return Err(settings.invalid("sip.t2_ms", "expected t2_ms >= t1_ms".to_owned()));
        }
        Ok(())
    }
}

/// Both certificate paths, or neither.
fn certificate_paths(settings: &Settings) -> Result<Option<CertificatePaths>, ConfigError> {
    let path = |text: &str| Ok::<_, String>(text.trim().to_owned());
    let chain = settings.string("sip.tls_certificate", path)?;
    let key = settings.string("sip.tls_private_key", path)?;
    match (chain.is_empty(), key.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => Ok(Some(CertificatePaths {
            chain: PathBuf::from(chain),
            key: PathBuf::from(key),
        })),
        (false, true) => Err(settings.invalid(
            "sip.tls_private_key",
            "expected a key file with sip.tls_certificate".to_owned(),
        )),
        (true, false) => Err(settings.invalid(
            "sip.tls_certificate",
            "expected a certificate file with sip.tls_private_key".to_owned(),
        )),
    }
}

/// The environment variable that overrides `section.key`.
pub fn env_var_name(key: &str) -> String {
    format!("SIPD_{}", key.replace('.', "_").to_ascii_uppercase())
}

struct Setting {
    value: toml::Value,
    origin: Origin,
}

/// Flat `section.key` → value map.
struct Settings(BTreeMap<String, Setting>);

impl Settings {
    /// Parses a file of `[section]` tables holding strings, integers or booleans.
    fn parse(text: &str, origin: Origin) -> Result<Settings, ConfigError> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| ConfigError::Syntax {
                    origin: origin.clone(),
                    message: error.to_string(),
                })?;
        let mut settings = BTreeMap::new();
        for (section, keys) in table {
            let toml::Value::Table(keys) = keys else {
                return Err(ConfigError::UnknownKey {
                    key: section,
                    origin,
                });
            };
            for (key, value) in keys {
                let key = format!("{section}.{key}");
                if value.is_table() || value.is_array() || value.is_datetime() {
                    return Err(ConfigError::Invalid {
                        key,
                        origin,
                        reason: format!(
                            "expected a string, integer or boolean, got {}",
                            value.type_str()
                        ),
                    });
                }
                settings.insert(
                    key,
                    Setting {
                        value,
                        origin: origin.clone(),
                    },
                );
            }
        }
        Ok(Settings(settings))
    }

    /// Replaces known keys with the other layer's values, which must have the same type.
    fn overlay(&mut self, other: Settings) -> Result<(), ConfigError> {
        for (key, setting) in other.0 {
            let Some(current) = self.0.get_mut(&key) else {
                return Err(ConfigError::UnknownKey {
                    key,
                    origin: setting.origin,
                });
            };
            if current.value.type_str() != setting.value.type_str() {
                return Err(ConfigError::Invalid {
                    reason: format!(
                        "expected {}, got {}",
                        current.value.type_str(),
                        setting.value.type_str()
                    ),
                    key,
                    origin: setting.origin,
                });
            }
            *current = setting;
        }
        Ok(())
    }

    /// Looks up the variable of every known key; the value is read as that key's type.
    fn overlay_env(&mut self, env: impl Fn(&str) -> Option<OsString>) -> Result<(), ConfigError> {
        for (key, current) in self.0.iter_mut() {
            let name = env_var_name(key);
            let Some(raw) = env(&name) else { continue };
            let origin = Origin::Env(name);
            let invalid = |reason: String| ConfigError::Invalid {
                key: key.clone(),
                origin: origin.clone(),
                reason,
            };
            let text = raw
                .into_string()
                .map_err(|_| invalid("not valid UTF-8".to_owned()))?;
            let value = match &current.value {
                toml::Value::Integer(_) => text
                    .trim()
                    .parse()
                    .map(toml::Value::Integer)
                    .map_err(|_| invalid(format!("expected an integer, got {text:?}")))?,
                toml::Value::Boolean(_) => match text.trim() {
                    "true" => toml::Value::Boolean(true),
                    "false" => toml::Value::Boolean(false),
                    _ => return Err(invalid(format!("expected true or false, got {text:?}"))),
                },
                _ => toml::Value::String(text),
            };
            *current = Setting { value, origin };
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<&Setting, ConfigError> {
        self.0.get(key).ok_or_else(|| ConfigError::Invalid {
            key: key.to_owned(),
            origin: Origin::Default,
            reason: "missing from the built-in defaults".to_owned(),
        })
    }

    fn string<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let setting = self.get(key)?;
        let parsed = match &setting.value {
            toml::Value::String(text) => parse(text),
            other => Err(format!("expected a string, got {}", other.type_str())),
        };
        parsed.map_err(|reason| invalid(key, setting, reason))
    }

    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        let setting = self.get(key)?;
        match &setting.value {
            toml::Value::Boolean(value) => Ok(*value),
            other => Err(invalid(
                key,
                setting,
                format!("expected true or false, got {}", other.type_str()),
            )),
        }
    }

    fn integer<T>(
        &self,
        key: &str,
        parse: impl FnOnce(i64) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let setting = self.get(key)?;
        let parsed = match &setting.value {
            toml::Value::Integer(number) => parse(*number),
            other => Err(format!("expected an integer, got {}", other.type_str())),
        };
        parsed.map_err(|reason| invalid(key, setting, reason))
    }

    /// An error for `key` that names where its value came from.
    fn invalid(&self, key: &str, reason: String) -> ConfigError {
        match self.get(key) {
            Ok(setting) => invalid(key, setting, reason),
            Err(error) => error,
        }
    }
}

fn invalid(key: &str, setting: &Setting, reason: String) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        origin: setting.origin.clone(),
        reason,
    }
}

fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("expected IP:port such as 127.0.0.1:8080, got {text:?}"))
}

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text.trim() == "off" {
        return Ok(Listen::Off);
    }
    text.trim()
        .parse()
        .map(Listen::Addr)
        .map_err(|_| format!("expected IP:port such as 0.0.0.0:5060, or \"off\"; got {text:?}"))
}

fn parse_domain(text: &str) -> Result<String, String> {
    let domain = text.trim();
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() <= 253 && domain.split('.').all(valid_label) {
        Ok(domain.to_ascii_lowercase())
    } else {
        Err(format!(
            "expected a host name such as sip.example.com, got {text:?}"
        ))
    }
}

fn parse_node_id(text: &str) -> Result<Option<String>, String> {
    let node_id = text.trim();
    if node_id.is_empty() {
        Ok(None)
    } else if node_id.len() <= 64
        && node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        Ok(Some(node_id.to_owned()))
    } else {
        Err(format!(
            "expected up to 64 letters, digits, '.', '-' or '_', got {text:?}"
        ))
    }
}

/// A host name or IP literal (IPv6 with or without brackets), as written in SIP URIs.
fn parse_host(text: &str) -> Result<String, String> {
    let host = text.trim();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
        return Ok(match ip {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        });
    }
    parse_domain(host)
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn parse_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in {text:?}"))?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else if text.matches(':').count() > 1 {
        (text.to_owned(), None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (text.to_owned(), None),
        }
    };
    let port = port
        .map(|port| {
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("bad port in {text:?}"))
        })
        .transpose()?;
    Ok((parse_host(&host)?, port))
}

fn parse_advertised(text: &str) -> Result<Advertised, String> {
    let mut advertised = Advertised::default();
    if text.trim().is_empty() {
        return Ok(advertised);
    }
    let expected = "expected a host[:port] for every listener, or entries such as \
                    \"udp=203.0.113.5:5060, tls=sip.example.com:5061\"";
    for entry in text.split(',').map(str::trim) {
        match entry.split_once('=') {
            Some((name, value)) => {
                let transport = Transport::from_token(name.trim())
                    .ok_or_else(|| format!("{expected}; unknown listener {name:?}"))?;
                if advertised
                    .per_transport
                    .iter()
                    .any(|(t, _, _)| *t == transport)
                {
                    return Err(format!("{expected}; {name} given twice"));
                }
                let (host, port) =
                    parse_host_port(value).map_err(|e| format!("{expected}; {e}"))?;
                advertised.per_transport.push((transport, host, port));
            }
            None if advertised.all.is_none() => {
                advertised.all =
                    Some(parse_host_port(entry).map_err(|e| format!("{expected}; {e}"))?);
            }
            None => return Err(format!("{expected}; got {text:?}")),
        }
    }
    Ok(advertised)
}

fn parse_aliases(text: &str) -> Result<Vec<String>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|alias| !alias.is_empty())
        .map(|alias| parse_host(alias).map(|host| host.to_ascii_lowercase()))
        .collect()
}

fn parse_dns_servers(text: &str) -> Result<Vec<SocketAddr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .map(|server| {
            server
                .parse::<SocketAddr>()
                .or_else(|_| {
                    server
                        .trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| format!("expected IP or IP:port entries, got {server:?}"))
        })
        .collect()
}

fn parse_no_application(text: &str) -> Result<NoApplication, String> {
    match text.trim() {
        "direct" => Ok(NoApplication::Direct),
        "reject" => Ok(NoApplication::Reject),
        _ => Err(format!("expected \"direct\" or \"reject\", got {text:?}")),
    }
}

fn parse_trusted_peers(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|peer| !peer.is_empty())
        .map(|peer| {
            IpNet::parse(peer).ok_or_else(|| {
                format!("expected IP addresses or CIDR blocks such as 192.0.2.0/24, got {peer:?}")
            })
        })
        .collect()
}

fn parse_gateway(text: &str) -> Result<Option<String>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match sip_message::Uri::parse(text) {
        Ok(sip_message::Uri::Sip(uri)) if uri.headers().is_none() => Ok(Some(text.to_owned())),
        _ => Err(format!(
            "expected a SIP URI such as sip:gw.example.net:5060, got {text:?}"
        )),
    }
}

fn parse_nonce_secret(text: &str) -> Result<Option<NonceSecret>, String> {
    match text.len() {
        0 => Ok(None),
        // The value is not echoed: it is a secret.
        1..32 => Err("expected at least 32 characters, or empty".to_owned()),
        _ => Ok(Some(NonceSecret(text.to_owned()))),
    }
}

/// A comma-separated list such as "SHA-256,MD5": names case-insensitive, spaces allowed.
fn parse_digest_algorithms(text: &str) -> Result<Vec<Algorithm>, String> {
    let expected =
        "expected a comma-separated list of SHA-256 and MD5, each once, such as \"SHA-256,MD5\"";
    let mut algorithms = Vec::new();
    for name in text.split(',').map(str::trim) {
        let algorithm = if name.eq_ignore_ascii_case("SHA-256") {
            Algorithm::Sha256
        } else if name.eq_ignore_ascii_case("MD5") {
            Algorithm::Md5
        } else {
            return Err(format!("{expected}; got {text:?}"));
        };
        if algorithms.contains(&algorithm) {
            return Err(format!("{expected}; got {text:?}"));
        }
        algorithms.push(algorithm);
    }
    Ok(algorithms)
}

fn expires(number: i64) -> Result<u32, String> {
    in_range(number, 1, 86_400 * 365).map(|n| n as u32)
}

fn milliseconds(number: i64, min: i64, max: i64) -> Result<Duration, String> {
    in_range(number, min, max).map(|n| Duration::from_millis(n as u64))
}

fn parse_dir(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        Err("expected a folder path, got an empty string".to_owned())
    } else {
        Ok(PathBuf::from(text))
    }
}

fn parse_log_format(text: &str) -> Result<LogFormat, String> {
    match text.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected \"text\" or \"json\", got {text:?}")),
    }
}

fn parse_log_filter(text: &str) -> Result<String, String> {
    let filter = text.trim();
    if filter.is_empty() {
        return Err("expected a filter such as \"info\" or \"info,sipd_api=debug\"".to_owned());
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter)
        .map(|_| filter.to_owned())
        .map_err(|error| format!("{error} in {text:?}"))
}

fn in_range(number: i64, min: i64, max: i64) -> Result<i64, String> {
    if (min..=max).contains(&number) {
        Ok(number)
    } else {
        Err(format!("expected {min} to {max}, got {number}"))
    }
}

fn seconds(number: i64, min: i64, max: i64) -> Result<Duration, String> {
    in_range(number, min, max).map(|n| Duration::from_secs(n as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), OsString::from(value)))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn defaults() -> Config {
        Config::load(None, env(&[])).unwrap()
    }

    fn load_error(pairs: &[(&str, &str)]) -> String {
        Config::load(None, env(pairs)).unwrap_err().to_string()
    }

    fn write_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn built_in_defaults_are_the_documented_ones() {
        let config = defaults();
        assert_eq!(config.api.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.api.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(config.sip.domain, "sip.vobiz.ai");
        assert_eq!(
            config.sip.udp,
            Listen::Addr("0.0.0.0:5060".parse().unwrap())
        );
        assert_eq!(
            config.sip.tcp,
            Listen::Addr("0.0.0.0:5060".parse().unwrap())
        );
        assert_eq!(
            config.sip.tls,
            Listen::Addr("0.0.0.0:5061".parse().unwrap())
        );
        assert_eq!(
            config.sip.wss,
            Listen::Addr("0.0.0.0:7443".parse().unwrap())
        );
        assert_eq!(config.database.url.as_str(), "sqlite://data/sipd.db");
        assert_eq!(config.database.max_connections, 10);
        assert_eq!(config.database.acquire_timeout, Duration::from_secs(5));
        assert_eq!(config.data.dir, PathBuf::from("data"));
        assert_eq!(config.security.secret_key, None);
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.log.level, "info");
        assert_eq!(config.sip.ws, Listen::Off);
        assert_eq!(config.sip.certificate, None);
        assert_eq!(config.sip.t1, Duration::from_millis(500));
        assert_eq!(config.sip.max_transactions, 100_000);
        assert_eq!(config.sip.max_completed, 262_144);
        assert_eq!(config.sip.node_id, None);
        assert_eq!(config.registrar.min_expires_secs, 60);
        assert_eq!(config.registrar.default_expires_secs, 3600);
        assert_eq!(config.registrar.max_expires_secs, 7200);
        assert_eq!(config.registrar.nonce_secret, None);
        assert_eq!(config.registrar.digest_algorithms, [Algorithm::Md5]);
        assert_eq!(config.sip.advertised, Advertised::default());
        assert!(config.sip.domain_aliases.is_empty());
        assert!(config.sip.tls_verify);
        assert_eq!(config.sip.tls_ca_file, None);
        assert!(config.sip.dns_servers.is_empty());
        assert_eq!(config.sip.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.proxy.no_application, NoApplication::Direct);
        assert!(config.proxy.trusted_peers.is_empty());
        assert_eq!(config.proxy.pstn_gateway, None);
        assert_eq!(config.proxy.timer_c, Duration::from_secs(185));
        assert_eq!(config.proxy.max_call_duration, Duration::from_secs(14_400));
    }

    #[test]
    fn proxy_and_address_settings() {
        let config = Config::load(
            None,
            env(&[
                (
                    "SIPD_SIP_ADVERTISED_ADDRESS",
                    "udp=203.0.113.5, wss=sip.example.com:443, tls=[2001:db8::1]:5062",
                ),
                (
                    "SIPD_SIP_DOMAIN_ALIASES",
                    "PBX.example.com, 203.0.113.5, [2001:DB8::1]",
                ),
                ("SIPD_SIP_DNS_SERVERS", "127.0.0.1:5353, ::1"),
                ("SIPD_PROXY_TRUSTED_PEERS", "192.0.2.10, 198.51.100.0/24"),
                (
                    "SIPD_PROXY_PSTN_GATEWAY",
                    "sip:gw.example.net:5080;transport=tcp",
                ),
                ("SIPD_PROXY_NO_APPLICATION", "reject"),
            ]),
        )
        .unwrap();
        let advertised = &config.sip.advertised;
        assert_eq!(
            advertised.for_listener(Transport::Udp, 5060),
            Some(("203.0.113.5".to_owned(), 5060))
        );
        assert_eq!(
            advertised.for_listener(Transport::Wss, 7443),
            Some(("sip.example.com".to_owned(), 443))
        );
        assert_eq!(
            advertised.for_listener(Transport::Tls, 5061),
            Some(("[2001:db8::1]".to_owned(), 5062))
        );
        assert_eq!(advertised.for_listener(Transport::Tcp, 5060), None);
        assert_eq!(
            config.sip.domain_aliases,
            ["pbx.example.com", "203.0.113.5", "[2001:db8::1]"]
        );
        assert_eq!(
            config.sip.dns_servers,
            [
                "127.0.0.1:5353".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
        assert_eq!(config.proxy.trusted_peers.len(), 2);
        assert!(config.proxy.trusted_peers[1].contains("198.51.100.77".parse().unwrap()));
        assert_eq!(config.proxy.no_application, NoApplication::Reject);

        let one = Config::load(
            None,
            env(&[("SIPD_SIP_ADVERTISED_ADDRESS", "sip.example.com")]),
        )
        .unwrap()
        .sip
        .advertised;
        assert_eq!(
            one.for_listener(Transport::Tcp, 5060),
            Some(("sip.example.com".to_owned(), 5060))
        );
        assert_eq!(
            one.for_listener(Transport::Tls, 5061),
            Some(("sip.example.com".to_owned(), 5061))
        );

        for (name, value, key) in [
            (
                "SIPD_SIP_ADVERTISED_ADDRESS",
                "sctp=1.2.3.4",
                "sip.advertised_address",
            ),
            (
                "SIPD_SIP_ADVERTISED_ADDRESS",
                "a.example, b.example",
                "sip.advertised_address",
            ),
            (
                "SIPD_SIP_ADVERTISED_ADDRESS",
                "udp=1.2.3.4:0",
                "sip.advertised_address",
            ),
            (
                "SIPD_SIP_ADVERTISED_ADDRESS",
                "bad host",
                "sip.advertised_address",
            ),
            (
                "SIPD_SIP_DOMAIN_ALIASES",
                "ok.example, -bad",
                "sip.domain_aliases",
            ),
            ("SIPD_SIP_DNS_SERVERS", "dns.example", "sip.dns_servers"),
            (
                "SIPD_PROXY_TRUSTED_PEERS",
                "10.0.0.0/40",
                "proxy.trusted_peers",
            ),
            ("SIPD_PROXY_PSTN_GATEWAY", "http://gw", "proxy.pstn_gateway"),
            ("SIPD_PROXY_NO_APPLICATION", "maybe", "proxy.no_application"),
            ("SIPD_PROXY_TIMER_C_SECS", "180", "proxy.timer_c_secs"),
            ("SIPD_SIP_TLS_VERIFY", "yes", "sip.tls_verify"),
        ] {
            let error = load_error(&[(name, value)]);
            assert!(
                error.contains(&format!("`{key}`")),
                "{name}={value}: {error}"
            );
        }
    }

    #[test]
    fn every_key_can_be_overridden_from_the_environment() {
        let overrides = [
            ("SIPD_API_LISTEN", "0.0.0.0:9000"),
            ("SIPD_API_SHUTDOWN_TIMEOUT_SECS", "3"),
            ("SIPD_SIP_DOMAIN", "Registrar.Example.COM"),
            ("SIPD_SIP_UDP", "off"),
            ("SIPD_SIP_TCP", "127.0.0.1:5070"),
            ("SIPD_SIP_TLS", "off"),
            ("SIPD_SIP_WSS", "[::1]:8443"),
            ("SIPD_SIP_WS", "127.0.0.1:8080"),
            ("SIPD_SIP_TLS_CERTIFICATE", "/etc/sipd/cert.pem"),
            ("SIPD_SIP_TLS_PRIVATE_KEY", "/etc/sipd/key.pem"),
            ("SIPD_SIP_MAX_MESSAGE_SIZE", "4096"),
            ("SIPD_SIP_MAX_CONNECTIONS_PER_IP", "5"),
            ("SIPD_SIP_MAX_CONNECTIONS", "50"),
            ("SIPD_SIP_IDLE_TIMEOUT_SECS", "30"),
            ("SIPD_SIP_T1_MS", "250"),
            ("SIPD_SIP_T2_MS", "2000"),
            ("SIPD_SIP_T4_MS", "2500"),
            ("SIPD_SIP_MAX_TRANSACTIONS", "5000"),
            ("SIPD_SIP_MAX_COMPLETED", "1000"),
            ("SIPD_SIP_NODE_ID", "node-1"),
            ("SIPD_SIP_ADVERTISED_ADDRESS", "203.0.113.5"),
            ("SIPD_SIP_DOMAIN_ALIASES", "203.0.113.5"),
            ("SIPD_SIP_TLS_VERIFY", "false"),
            ("SIPD_SIP_TLS_CA_FILE", "/etc/sipd/ca.pem"),
            ("SIPD_SIP_DNS_SERVERS", "127.0.0.1"),
            ("SIPD_SIP_DNS_TIMEOUT_SECS", "2"),
            ("SIPD_SIP_CONNECT_TIMEOUT_SECS", "2"),
            ("SIPD_PROXY_NO_APPLICATION", "reject"),
            ("SIPD_PROXY_TRUSTED_PEERS", "192.0.2.1"),
            ("SIPD_PROXY_PSTN_GATEWAY", "sip:gw.example.net"),
            ("SIPD_PROXY_TIMER_C_SECS", "200"),
            ("SIPD_PROXY_MAX_CALL_SECS", "3600"),
            ("SIPD_REGISTRAR_MIN_EXPIRES_SECS", "30"),
            ("SIPD_REGISTRAR_DEFAULT_EXPIRES_SECS", "600"),
            ("SIPD_REGISTRAR_MAX_EXPIRES_SECS", "3600"),
            ("SIPD_REGISTRAR_MAX_CONTACTS_PER_AOR", "3"),
            ("SIPD_REGISTRAR_NONCE_LIFETIME_SECS", "60"),
            ("SIPD_REGISTRAR_NONCE_SECRET", &"s".repeat(32)),
            ("SIPD_REGISTRAR_DIGEST_ALGORITHMS", " md5 , Sha-256 "),
            ("SIPD_DATABASE_URL", "postgres://sipd:pw@db:5432/sipd"),
            ("SIPD_DATABASE_MAX_CONNECTIONS", " 20 "),
            ("SIPD_DATABASE_ACQUIRE_TIMEOUT_SECS", "30"),
            ("SIPD_DATA_DIR", "/var/lib/sipd"),
            ("SIPD_SECURITY_SECRET_KEY", &"0f".repeat(32)),
            ("SIPD_LOG_FORMAT", "json"),
            ("SIPD_LOG_LEVEL", "debug,sipd_api=trace"),
        ];
        // The list covers every key of the defaults file.
        let mut named: Vec<String> = overrides.iter().map(|(name, _)| name.to_string()).collect();
        let mut known: Vec<String> = Settings::parse(DEFAULTS, Origin::Default)
            .unwrap()
            .0
            .keys()
            .map(|key| env_var_name(key))
            .collect();
        named.sort();
        known.sort();
        assert_eq!(named, known);

        let base = defaults();
        let certificate_pair = &overrides[8..10];
        for (name, value) in overrides {
            // The certificate and its key are only valid together.
            let config = if certificate_pair
                .iter()
                .any(|(pair_name, _)| *pair_name == name)
            {
                Config::load(None, env(certificate_pair)).unwrap()
            } else {
                Config::load(None, env(&[(name, value)])).unwrap()
            };
            assert_ne!(config, base, "{name} changed nothing");
        }

        let config = Config::load(None, env(&overrides)).unwrap();
        assert_eq!(config.api.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.api.shutdown_timeout, Duration::from_secs(3));
        assert_eq!(config.sip.domain, "registrar.example.com");
        assert_eq!(config.sip.udp, Listen::Off);
        assert_eq!(
            config.sip.tcp,
            Listen::Addr("127.0.0.1:5070".parse().unwrap())
        );
        assert_eq!(config.sip.wss, Listen::Addr("[::1]:8443".parse().unwrap()));
        assert_eq!(
            config.database.url.as_str(),
            "postgres://sipd:pw@db:5432/sipd"
        );
        assert_eq!(config.database.max_connections, 20);
        assert_eq!(config.database.acquire_timeout, Duration::from_secs(30));
        assert_eq!(config.data.dir, PathBuf::from("/var/lib/sipd"));
        assert_eq!(config.security.secret_key.unwrap().bytes(), [0x0f; 32]);
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.level, "debug,sipd_api=trace");
        assert_eq!(config.sip.t1, Duration::from_millis(250));
        assert_eq!(config.sip.max_transactions, 5000);
        assert_eq!(config.sip.node_id.as_deref(), Some("node-1"));
        assert_eq!(
            config.sip.certificate.unwrap().key,
            PathBuf::from("/etc/sipd/key.pem")
        );
        assert_eq!(config.registrar.min_expires_secs, 30);
        assert_eq!(config.registrar.nonce_lifetime, Duration::from_secs(60));
        assert_eq!(
            config.registrar.digest_algorithms,
            [Algorithm::Md5, Algorithm::Sha256]
        );
    }

    #[test]
    fn digest_algorithms_are_a_comma_separated_list() {
        let algorithms = |value: &str| {
            Config::load(None, env(&[("SIPD_REGISTRAR_DIGEST_ALGORITHMS", value)]))
                .unwrap()
                .registrar
                .digest_algorithms
        };
        assert_eq!(algorithms("MD5"), [Algorithm::Md5]);
        assert_eq!(algorithms("sha-256"), [Algorithm::Sha256]);
        assert_eq!(
            algorithms("MD5,SHA-256"),
            [Algorithm::Md5, Algorithm::Sha256]
        );
        assert_eq!(
            algorithms("\tSHA-256 ,md5\n"),
            [Algorithm::Sha256, Algorithm::Md5]
        );

        let (_dir, path) = write_file("[registrar]\ndigest_algorithms = \"MD5\"\n");
        let config = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(config.registrar.digest_algorithms, [Algorithm::Md5]);
    }

    #[test]
    fn related_sip_and_registrar_keys_must_agree() {
        for (pairs, key) in [
            (
                &[("SIPD_REGISTRAR_MIN_EXPIRES_SECS", "7200")][..],
                "registrar.default_expires_secs",
            ),
            (&[("SIPD_SIP_T2_MS", "100")][..], "sip.t2_ms"),
            (
                &[("SIPD_SIP_TLS_CERTIFICATE", "/etc/cert.pem")][..],
                "sip.tls_private_key",
            ),
            (&[("SIPD_SIP_NODE_ID", "a b")][..], "sip.node_id"),
        ] {
            let error = load_error(pairs);
            assert!(error.contains(&format!("`{key}`")), "{error}");
        }
        let error = load_error(&[("SIPD_REGISTRAR_NONCE_SECRET", "hunter2")]);
        assert!(error.contains("registrar.nonce_secret"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn max_transactions_must_be_positive() {
        let (_dir, path) = write_file("[sip]\nmax_transactions = 250000\n");
        let config = Config::load(Some(&path), env(&[])).unwrap();
        assert_eq!(config.sip.max_transactions, 250_000);

        for value in ["0", "-1", "many"] {
            let error = load_error(&[("SIPD_SIP_MAX_TRANSACTIONS", value)]);
            assert!(
                error.contains("`sip.max_transactions`")
                    && error.contains("SIPD_SIP_MAX_TRANSACTIONS"),
                "{value}: {error}"
            );
        }
        let (_dir, path) = write_file("[sip]\nmax_transactions = 0\n");
        let error = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(error.contains("`sip.max_transactions`"), "{error}");
        assert!(error.contains("expected 1 to"), "{error}");
    }

    #[test]
    fn variables_that_match_no_key_are_ignored() {
        let config = Config::load(
            None,
            env(&[
                ("SIPD_TEST_DATABASE_URL", "postgres://elsewhere/test"),
                ("SIPD_API", "nonsense"),
                ("SIPD_SIP_UDP_EXTRA", "nonsense"),
            ]),
        )
        .unwrap();
        assert_eq!(config, defaults());
    }

    #[test]
    fn the_file_overrides_defaults_and_the_environment_overrides_the_file() {
        let (_dir, path) = write_file(
            "[api]\nlisten = \"127.0.0.1:9999\"\n[sip]\ndomain = \"pbx.example.org\"\ntls = \"off\"\n\
             [database]\nmax_connections = 3\n",
        );
        let config =
            Config::load(Some(&path), env(&[("SIPD_SIP_DOMAIN", "env.example.org")])).unwrap();
        assert_eq!(config.api.listen, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(config.sip.domain, "env.example.org");
        assert_eq!(config.sip.tls, Listen::Off);
        assert_eq!(config.database.max_connections, 3);
        // Keys the file leaves out keep their defaults.
        assert_eq!(config.sip.udp, defaults().sip.udp);
    }

    #[test]
    fn a_bad_environment_value_names_the_key_and_the_variable() {
        for (name, value, key) in [
            ("SIPD_SIP_UDP", "nonsense", "sip.udp"),
            ("SIPD_SIP_WSS", "7443", "sip.wss"),
            ("SIPD_API_LISTEN", "off", "api.listen"),
            ("SIPD_API_LISTEN", "localhost:8080", "api.listen"),
            (
                "SIPD_DATABASE_MAX_CONNECTIONS",
                "many",
                "database.max_connections",
            ),
            (
                "SIPD_DATABASE_MAX_CONNECTIONS",
                "0",
                "database.max_connections",
            ),
            (
                "SIPD_DATABASE_ACQUIRE_TIMEOUT_SECS",
                "-1",
                "database.acquire_timeout_secs",
            ),
            ("SIPD_SIP_DOMAIN", "bad domain", "sip.domain"),
            ("SIPD_SIP_DOMAIN", "", "sip.domain"),
            ("SIPD_LOG_FORMAT", "xml", "log.format"),
            ("SIPD_LOG_LEVEL", "info,sipd=loud", "log.level"),
            ("SIPD_DATA_DIR", "", "data.dir"),
            (
                "SIPD_REGISTRAR_DIGEST_ALGORITHMS",
                "",
                "registrar.digest_algorithms",
            ),
            (
                "SIPD_REGISTRAR_DIGEST_ALGORITHMS",
                "SHA-512",
                "registrar.digest_algorithms",
            ),
            (
                "SIPD_REGISTRAR_DIGEST_ALGORITHMS",
                "MD5,",
                "registrar.digest_algorithms",
            ),
            (
                "SIPD_REGISTRAR_DIGEST_ALGORITHMS",
                "MD5 SHA-256",
                "registrar.digest_algorithms",
            ),
            (
                "SIPD_REGISTRAR_DIGEST_ALGORITHMS",
                "MD5,md5",
                "registrar.digest_algorithms",
            ),
            (
                "SIPD_REGISTRAR_DIGEST_ALGORITHMS",
                "MD5-sess",
                "registrar.digest_algorithms",
            ),
        ] {
            let error = load_error(&[(name, value)]);
            assert!(
                error.contains(&format!("`{key}`")) && error.contains(name),
                "{name}={value}: {error}"
            );
        }
    }

    #[test]
    fn errors_never_echo_secrets() {
        let error = load_error(&[("SIPD_SECURITY_SECRET_KEY", "hunter2hunter2")]);
        assert!(error.contains("security.secret_key"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");

        let error = load_error(&[("SIPD_DATABASE_URL", "mysql://root:hunter2@db/sipd")]);
        assert!(error.contains("database.url"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_non_utf8_variable_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let value = OsString::from_vec(vec![0xff, 0xfe]);
        let error = Config::load(None, move |name| {
            (name == "SIPD_DATA_DIR").then(|| value.clone())
        })
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("data.dir") && error.contains("UTF-8"),
            "{error}"
        );
    }

    #[test]
    fn file_errors_name_the_file_and_the_key() {
        let (_dir, path) = write_file("[api]\nlisen = \"127.0.0.1:1\"\n");
        let error = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(
            error.contains("api.lisen") && error.contains("other.toml"),
            "{error}"
        );

        let (_dir, path) = write_file("[database]\nmax_connections = \"ten\"\n");
        let error = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(
            error.contains("database.max_connections") && error.contains("expected integer"),
            "{error}"
        );

        let (_dir, path) = write_file("[sip]\nudp = \"nowhere\"\n");
        let error = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(
            error.contains("sip.udp") && error.contains("other.toml"),
            "{error}"
        );

        let (_dir, path) = write_file("[api\n");
        let error = Config::load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(
            error.contains("other.toml") && error.contains("TOML"),
            "{error}"
        );

        let error = Config::load(Some(Path::new("/nonexistent/sipd.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("/nonexistent/sipd.toml"), "{error}");
    }

    #[test]
    fn database_urls_are_shown_without_passwords() {
        let show = |url: &str| DatabaseUrl::parse(url).unwrap().to_string();
        assert_eq!(
            show("postgres://sipd:s3cret@db:5432/sipd"),
            "postgres://sipd:***@db:5432/sipd"
        );
        assert_eq!(show("postgres://sipd@db/sipd"), "postgres://sipd@db/sipd");
        assert_eq!(
            show("postgresql://db/sipd?user=sipd&password=s3cret&sslmode=require"),
            "postgresql://db/sipd?user=sipd&password=***&sslmode=require"
        );
        assert_eq!(
            show("sqlite://data/sipd.db?mode=rwc"),
            "sqlite://data/sipd.db?mode=rwc"
        );
        let debug = format!(
            "{:?}",
            DatabaseUrl::parse("postgres://u:s3cret@h/d").unwrap()
        );
        assert!(!debug.contains("s3cret"), "{debug}");
    }
}
