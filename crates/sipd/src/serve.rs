//! `sipd serve`: migrate, serve the REST API and SIP, stop gracefully on SIGINT/SIGTERM.
//!
//! A database that is down at start is not fatal: the API answers 503 while migrations are
//! retried in the background. A migration that fails for any other reason stops the server.

use crate::config::Config;
use crate::database;
use crate::sip::SipServer;
use anyhow::Context;
use sipd_api::ApiState;
use sipd_store::{Store, StoreError};
use std::future::{pending, IntoFuture};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// Longest wait between two migration attempts while the database is unreachable.
const MAX_MIGRATION_RETRY_DELAY: Duration = Duration::from_secs(30);

pub async fn run(config: Config) -> anyhow::Result<()> {
    info!(
        version = env!("CARGO_PKG_VERSION"),
        database = %config.database.url,
        sip_domain = %config.sip.domain,
        "sipd starting"
    );
    let mut signals = ShutdownSignals::install()?;

    let (store, secret_key) = database::open(&config).await?;
    let schema_ready = match store.migrate().await {
        Ok(()) => {
            info!("database schema is up to date");
            true
        }
        Err(StoreError::Unavailable(reason)) => {
            warn!(%reason, "database unavailable: the API answers 503 until it is back; retrying migrations");
            false
        }
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot migrate the database {}", config.database.url))
        }
    };

    let listener = TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {} (api.listen)", config.api.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the API listener address")?;
    info!("API listening on http://{address}");

    let app = sipd_api::router(ApiState {
        store: store.clone(),
        sip_domain: config.sip.domain.clone(),
    });
    // The registrar loads bindings at start, so SIP starts once the schema is there.
    let mut sip = if schema_ready {
        Some(SipServer::start(&config, store.clone(), &secret_key).await?)
    } else {
        None
    };

    let (stop, stopped) = oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // Either a send or the sender's drop means stop.
            let _ = stopped.await;
        })
        .into_future();
    tokio::pin!(server);
    let mut migrations = Box::pin(async {
        if schema_ready {
            pending().await
        } else {
            keep_migrating(&store).await
        }
    });

    loop {
        tokio::select! {
            result = &mut server => return result.context("the API server stopped unexpectedly"),
            migrated = &mut migrations, if sip.is_none() => {
                migrated?;
                sip = Some(SipServer::start(&config, store.clone(), &secret_key).await?);
            }
            signal = signals.recv() => {
                info!("{signal} received: shutting down");
                break;
            }
        }
    }
    // A migration attempt in progress holds a pool connection: closing would wait for it.
    drop(migrations);
    let _ = stop.send(());
    // SIP first: REGISTERs in flight commit and the registrar flushes while the pool is open.
    if let Some(sip) = sip {
        sip.shutdown(config.api.shutdown_timeout).await;
    }
    match tokio::time::timeout(config.api.shutdown_timeout, server).await {
        Ok(result) => {
            result.context("the API server failed while shutting down")?;
            // Every request is done: no connection is checked out, so this does not wait.
            store.close().await;
        }
        // Requests still hold connections: closing the pool would wait for them.
        Err(_) => warn!(
            timeout_secs = config.api.shutdown_timeout.as_secs(),
            "requests still running at the shutdown timeout: exiting anyway"
        ),
    }
    info!("sipd stopped");
    Ok(())
}

/// Retries migrations with backoff until they succeed; fails only for a migration that failed
/// for a reason other than an unreachable database.
async fn keep_migrating(store: &Store) -> anyhow::Result<()> {
    let mut delay = Duration::from_secs(1);
    loop {
        tokio::time::sleep(delay).await;
        match store.migrate().await {
            Ok(()) => {
                info!("database is reachable again; schema is up to date");
                return Ok(());
            }
            Err(StoreError::Unavailable(reason)) => {
                debug!(%reason, "database still unavailable");
                delay = (delay * 2).min(MAX_MIGRATION_RETRY_DELAY);
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context("cannot migrate the database"))
            }
        }
    }
}

/// SIGINT and SIGTERM handlers. Installed before the API is announced: a signal sent right
/// after the "API listening" line must stop sipd gracefully, not kill it by default action.
struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<ShutdownSignals> {
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// Resolves with the name of the first signal received.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
