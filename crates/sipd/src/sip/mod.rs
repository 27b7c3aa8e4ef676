//! SIP in the binary: the transports, the registrar service, the proxy's service shell and N
//! shard event loops (N = available parallelism), each owning a sans-IO `Proxy` (a
//! transaction layer and the proxy core). Each shard reads its own lane of the transports'
//! events: the listener that received a message parses it and hands it to its shard's lane
//! directly: a response to the shard named in its top Via branch (the shard that holds its
//! client transaction), a request by its Call-ID (so a request, its retransmissions, its
//! CANCEL and ACK, and the rest of its dialog meet the same shard, while one UDP source
//! carrying many calls or registrations spreads over all of them). A closed connection is
//! told to every shard.

mod shard;

use crate::config::{Config, Listen};
use crate::secret::SecretKey;
use anyhow::Context as _;
use hmac::{Hmac, Mac};
use shard::{Context, Shard};
use sip_message::{Message, Transport};
use sip_transaction::Timers;
use sipd_proxy::service::ProxyService;
use sipd_proxy::{Interface, Proxy, ProxyConfig};
use sipd_registrar::service::{RegistrarService, ServiceConfig};
use sipd_registrar::RegistrarConfig;
use sipd_store::Store;
use sipd_transport::{
    CertificateFiles, Limits, LocalAddrs, Resolver, ResolverConfig, TlsClientConfig,
    TransportConfig, Transports,
};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

/// The running SIP side of the server.
pub struct SipServer {
    transports: Transports,
    registrar: RegistrarService,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl SipServer {
    /// Starts the registrar service, binds the listeners and starts the shards.
    pub async fn start(
        config: &Config,
        store: Store,
        secret_key: &SecretKey,
    ) -> anyhow::Result<SipServer> {
        let node_id = node_id(config);
        let own_ips = own_ips(config);
        let registrar_config = registrar_config(config, secret_key, node_id.clone(), &own_ips)?;
        let local_domain = registrar_config.local_domain().map_err(|error| {
            anyhow::anyhow!("invalid sip.domain or sip.domain_aliases: {error}")
        })?;
        let registrar = RegistrarService::start(store, ServiceConfig::new(registrar_config))
            .await
            .context("cannot start the registrar")?;

        if config.sip.certificate.is_none()
            && (config.sip.tls != Listen::Off || config.sip.wss != Listen::Off)
        {
            warn!(
                "no sip.tls_certificate: TLS and WSS use a self-signed certificate for {}; clients will not trust it",
                config.sip.domain
            );
        }
        let shard_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (transports, lanes) =
            Transports::start_with_lanes(transport_config(config), shard_count, lane_of())
                .await
                .context("cannot start the SIP listeners")?;
        let local = transports.local_addrs();
        log_listeners(&local);
        let resolver = Resolver::new(&ResolverConfig {
            nameservers: config.sip.dns_servers.clone(),
            timeout: config.sip.dns_timeout,
        })
        .context("cannot set up DNS resolution (sip.dns_servers)")?;
        let service = ProxyService::new(registrar.clone(), transports.clone(), resolver);

        let layer_config = sip_transaction::Config {
            timers: Timers {
                t1: config.sip.t1,
                t2: config.sip.t2,
                t4: config.sip.t4,
            },
            max_transactions: config.sip.max_transactions,
            max_completed: config.sip.max_completed,
            ..sip_transaction::Config::default()
        };
        let interfaces = interfaces(config, &local);
        let default_ip = own_ips
            .iter()
            .copied()
            .find(|ip| ip.is_ipv4() && !ip.is_loopback())
            .or_else(|| own_ips.first().copied())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let flow_secret = derive_key(secret_key, b"sipd record-route flow token v1")?;
        // One hasher for every shard: a request looping back is recognised by any of them.
        let loop_hasher = std::hash::RandomState::new();
        let (stop, stopped) = watch::channel(false);
        let context = Arc::new(Context {
            transports: transports.clone(),
            registrar: registrar.clone(),
            service,
        });
        let mut tasks = JoinSet::new();
        for (index, lane) in lanes.into_iter().enumerate() {
            let proxy_config = ProxyConfig {
                local: local_domain.clone(),
                default_ip,
                interfaces: interfaces.clone(),
                timer_c: config.proxy.timer_c,
                t1: config.sip.t1,
                no_application: config.proxy.no_application,
                trusted_peers: config.proxy.trusted_peers.clone(),
                pstn_gateway: config.proxy.pstn_gateway.clone(),
                secret: flow_secret.clone(),
                shard: u16::try_from(index).unwrap_or(u16::MAX),
                max_call_duration: config.proxy.max_call_duration,
            };
            let proxy = Proxy::new(
                layer_config,
                proxy_config,
                loop_hasher.clone(),
                format!("{}-{index}-", tag_safe(&node_id)),
            )
            .map_err(|error| anyhow::anyhow!("invalid SIP timers: {error}"))?;
            tasks.spawn(Shard::run(
                context.clone(),
                index,
                proxy,
                lane,
                stopped.clone(),
            ));
        }
        Ok(SipServer {
            transports,
            registrar,
            stop,
            tasks,
        })
    }

    /// Graceful stop: no new connections or requests, the work in flight answered (within
    /// `timeout`), the registrar flushed, then every connection closed.
    pub async fn shutdown(mut self, timeout: Duration) {
        self.transports.stop_accepting();
        let _ = self.stop.send(true);
        let drained = tokio::time::timeout(timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                timeout_secs = timeout.as_secs(),
                "SIP requests still in flight at the shutdown timeout: abandoned"
            );
            self.tasks.abort_all();
        }
        self.registrar.shutdown().await;
        self.transports.shutdown().await;
    }
}

/// The shard (lane) of each message (see the module docs); a message that does not parse
/// goes by its flow, for its 400.
fn lane_of() -> sipd_transport::LaneOf {
    let hasher = std::hash::RandomState::new();
    Box::new(move |inbound| match &inbound.parsed {
        Ok(message) => shard_of(message, &hasher),
        Err(_) => hasher.hash_one(inbound.flow) as usize,
    })
}

/// The shard of a message: for a response, the one its top Via branch names (ours, so below
/// the shard count); else by Call-ID. Taken modulo the shard count by the transports.
fn shard_of(message: &Message, hasher: &std::hash::RandomState) -> usize {
    if message.is_response() {
        if let Some(shard) = message.branch().and_then(sipd_proxy::shard_of) {
            return usize::from(shard);
        }
    }
    match message.call_id() {
        Ok(call_id) => hasher.hash_one(call_id) as usize,
        Err(_) => 0,
    }
}

fn transport_config(config: &Config) -> TransportConfig {
    let sip = &config.sip;
    let address = |listen: Listen| match listen {
        Listen::Off => None,
        Listen::Addr(address) => Some(address),
    };
    let defaults = TransportConfig::default();
    TransportConfig {
        udp: address(sip.udp),
        tcp: address(sip.tcp),
        tls: address(sip.tls),
        wss: address(sip.wss),
        ws: address(sip.ws),
        certificate: sip.certificate.as_ref().map(|paths| CertificateFiles {
            chain: paths.chain.clone(),
            key: paths.key.clone(),
        }),
        domain: sip.domain.clone(),
        tls_client: TlsClientConfig {
            ca_file: sip.tls_ca_file.clone(),
            verify: sip.tls_verify,
        },
        limits: Limits {
            max_message_size: sip.max_message_size,
            max_connections_per_ip: sip.max_connections_per_ip,
            max_connections: sip.max_connections,
            idle_timeout: sip.idle_timeout,
            connect_timeout: sip.connect_timeout,
            ..Limits::default()
        },
        ..defaults
    }
}

/// Every listener with what it advertises.
fn interfaces(config: &Config, local: &LocalAddrs) -> Vec<Interface> {
    [
        (Transport::Udp, local.udp),
        (Transport::Tcp, local.tcp),
        (Transport::Tls, local.tls),
        (Transport::Ws, local.ws),
        (Transport::Wss, local.wss),
    ]
    .into_iter()
    .filter_map(|(transport, bound)| {
        let bound = bound?;
        Some(Interface {
            transport,
            bound,
            advertised: config.sip.advertised.for_listener(transport, bound.port()),
        })
    })
    .collect()
}

/// The addresses requests for us may name: the listeners' own, or every address of the
/// host when one listens on all of them.
fn own_ips(config: &Config) -> Vec<IpAddr> {
    let listeners = [
        config.sip.udp,
        config.sip.tcp,
        config.sip.tls,
        config.sip.ws,
        config.sip.wss,
    ];
    let mut ips: Vec<IpAddr> = listeners
        .iter()
        .filter_map(|listen| match listen {
            Listen::Addr(address) if !address.ip().is_unspecified() => Some(address.ip()),
            _ => None,
        })
        .collect();
    let wildcard = listeners
        .iter()
        .any(|listen| matches!(listen, Listen::Addr(address) if address.ip().is_unspecified()));
    if wildcard {
        ips.extend(sipd_transport::local_ips());
    }
    ips.sort();
    ips.dedup();
    ips
}

fn registrar_config(
    config: &Config,
    secret_key: &SecretKey,
    node_id: String,
    own_ips: &[IpAddr],
) -> anyhow::Result<RegistrarConfig> {
    let settings = &config.registrar;
    let nonce_secret = match &settings.nonce_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => derive_key(secret_key, b"sipd registrar nonce secret v1")?,
    };
    let mut registrar = RegistrarConfig::new(config.sip.domain.clone(), nonce_secret, node_id);
    let advertised = config
        .sip
        .advertised
        .all
        .iter()
        .map(|(host, _)| host.clone())
        .chain(
            config
                .sip
                .advertised
                .per_transport
                .iter()
                .map(|(_, host, _)| host.clone()),
        );
    registrar.aliases = config
        .sip
        .domain_aliases
        .iter()
        .cloned()
        .chain(advertised)
        .chain(own_ips.iter().map(IpAddr::to_string))
        .collect();
    registrar.aliases.sort();
    registrar.aliases.dedup();
    registrar.min_expires_secs = settings.min_expires_secs;
    registrar.default_expires_secs = settings.default_expires_secs;
    registrar.max_expires_secs = settings.max_expires_secs;
    registrar.max_contacts_per_aor = settings.max_contacts_per_aor;
    registrar.nonce_lifetime = settings.nonce_lifetime;
    registrar.digest_algorithms = settings.digest_algorithms.clone();
    Ok(registrar)
}

/// A key of its own for each use (nonces, flow tokens), so no MAC uses the storage key
/// directly. Every node with the same server key derives the same keys.
fn derive_key(secret_key: &SecretKey, purpose: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret_key.bytes())
        .context("cannot key the key derivation")?;
    mac.update(purpose);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The configured node id, else the host name, else a random one.
fn node_id(config: &Config) -> String {
    if let Some(node_id) = &config.sip.node_id {
        return node_id.clone();
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty() && name.len() <= 64);
    hostname.unwrap_or_else(|| format!("sipd-{:08x}", rand::random::<u32>()))
}

/// The node id as To-tag characters (RFC 3261 token).
fn tag_safe(node_id: &str) -> String {
    node_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect()
}

fn log_listeners(local: &LocalAddrs) {
    let show = |address: Option<std::net::SocketAddr>| {
        address.map_or_else(|| "off".to_owned(), |address| address.to_string())
    };
    info!(
        udp = %show(local.udp),
        tcp = %show(local.tcp),
        tls = %show(local.tls),
        ws = %show(local.ws),
        wss = %show(local.wss),
        "SIP listening"
    );
}
