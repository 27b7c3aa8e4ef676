//! SIP in the binary: the transports, the registrar service and N shard event loops
//! (N = available parallelism) wired together. A distributor task reads the transports'
//! single event channel and hands each message to the shard of its flow.

mod answer;
mod shard;

use crate::config::{Config, Listen};
use crate::secret::SecretKey;
use anyhow::Context as _;
use hmac::{Hmac, Mac};
use shard::{Context, Shard};
use sip_transaction::{Timers, TransactionLayer};
use sipd_registrar::service::{RegistrarService, ServiceConfig};
use sipd_registrar::RegistrarConfig;
use sipd_store::Store;
use sipd_transport::{
    CertificateFiles, Inbound, Limits, LocalAddrs, TransportConfig, TransportEvent, Transports,
};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

/// Messages waiting for one shard; past it the distributor waits (backpressure on streams,
/// drops on UDP in the transports).
const SHARD_QUEUE_CAPACITY: usize = 4096;

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
        let registrar_config = registrar_config(config, secret_key, node_id.clone())?;
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
        let (transports, events) = Transports::start(transport_config(config))
            .await
            .context("cannot start the SIP listeners")?;
        let local = transports.local_addrs();
        log_listeners(&local);

        let layer_config = sip_transaction::Config {
            timers: Timers {
                t1: config.sip.t1,
                t2: config.sip.t2,
                t4: config.sip.t4,
            },
            max_transactions: config.sip.max_transactions,
            ..sip_transaction::Config::default()
        };
        let (stop, stopped) = watch::channel(false);
        let shard_count = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut tasks = JoinSet::new();
        let mut shard_queues = Vec::with_capacity(shard_count);
        for index in 0..shard_count {
            let layer = TransactionLayer::new(layer_config)
                .map_err(|error| anyhow::anyhow!("invalid SIP timers: {error}"))?;
            let context = Arc::new(Context {
                transports: transports.clone(),
                registrar: registrar.clone(),
                domain: config.sip.domain.clone(),
                addresses: listener_ips(&local),
                tag_prefix: format!("{}-{index}-", tag_safe(&node_id)),
            });
            let (queue, inbound) = mpsc::channel(SHARD_QUEUE_CAPACITY);
            shard_queues.push(queue);
            tasks.spawn(Shard::run(context, layer, inbound, stopped.clone()));
        }
        tasks.spawn(distribute(events, shard_queues, registrar.clone(), stopped));
        Ok(SipServer {
            transports,
            registrar,
            stop,
            tasks,
        })
    }

    /// Graceful stop: no new connections or requests, REGISTERs in flight answered (within
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

/// Routes each message to the shard of its flow; connection ends go to the registrar.
async fn distribute(
    mut events: mpsc::Receiver<TransportEvent>,
    shards: Vec<mpsc::Sender<Inbound>>,
    registrar: RegistrarService,
    mut stop: watch::Receiver<bool>,
) {
    let hasher = std::collections::hash_map::RandomState::new();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.changed() => None,
        };
        match event {
            Some(TransportEvent::Message(inbound)) => {
                let index = (hasher.hash_one(inbound.flow) % shards.len() as u64) as usize;
                if let Some(shard) = shards.get(index) {
                    // Fails only once the shard stopped: shutting down, the message is dropped.
                    let _ = shard.send(inbound).await;
                }
            }
            Some(TransportEvent::FlowClosed(flow)) => registrar.flow_closed(flow),
            None => break,
        }
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
        limits: Limits {
            max_message_size: sip.max_message_size,
            max_connections_per_ip: sip.max_connections_per_ip,
            max_connections: sip.max_connections,
            idle_timeout: sip.idle_timeout,
            ..Limits::default()
        },
        ..defaults
    }
}

fn registrar_config(
    config: &Config,
    secret_key: &SecretKey,
    node_id: String,
) -> anyhow::Result<RegistrarConfig> {
    let settings = &config.registrar;
    let nonce_secret = match &settings.nonce_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => derive_nonce_secret(secret_key)?,
    };
    let mut registrar = RegistrarConfig::new(config.sip.domain.clone(), nonce_secret, node_id);
    registrar.min_expires_secs = settings.min_expires_secs;
    registrar.default_expires_secs = settings.default_expires_secs;
    registrar.max_expires_secs = settings.max_expires_secs;
    registrar.max_contacts_per_aor = settings.max_contacts_per_aor;
    registrar.nonce_lifetime = settings.nonce_lifetime;
    registrar.digest_algorithms = settings.digest_algorithms.clone();
    Ok(registrar)
}

/// A key of its own for nonces, so the nonce MAC never uses the storage key directly. Every
/// node with the same server key derives the same nonce secret.
fn derive_nonce_secret(secret_key: &SecretKey) -> anyhow::Result<Vec<u8>> {
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&secret_key.bytes())
        .context("cannot key the nonce secret derivation")?;
    mac.update(b"sipd registrar nonce secret v1");
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

fn listener_ips(local: &LocalAddrs) -> Vec<std::net::IpAddr> {
    let mut ips: Vec<_> = [local.udp, local.tcp, local.tls, local.ws, local.wss]
        .into_iter()
        .flatten()
        .map(|address| address.ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    ips
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
