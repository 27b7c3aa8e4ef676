//! `sipd serve`: migrate, serve the REST API, stop gracefully on SIGINT/SIGTERM.
//!
//! A database that is down at start is not fatal: the API answers 503 while migrations are
//! retried in the background. A migration that fails for any other reason stops the server.

use crate::config::{Config, SipConfig};
use crate::database;
use anyhow::Context;
use sipd_api::ApiState;
use sipd_store::{Store, StoreError};
use std::future::{pending, IntoFuture};
use std::time::Duration;
use tokio::net::TcpListener;
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
    log_sip_listeners(&config.sip);

    let store = database::open(&config).await?;
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
    let (stop, stopped) = oneshot::channel::<()>();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            // Either a send or the sender's drop means stop.
            let _ = stopped.await;
        })
        .into_future();
    tokio::pin!(server);
    let migrations = async {
        if schema_ready {
            pending().await
        } else {
            keep_migrating(&store).await
        }
    };

    tokio::select! {
        result = &mut server => return result.context("the API server stopped unexpectedly"),
        error = migrations => return Err(error),
        signal = shutdown_signal() => info!("{signal} received: shutting down"),
    }
    let _ = stop.send(());
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

fn log_sip_listeners(sip: &SipConfig) {
    info!(
        udp = %sip.udp,
        tcp = %sip.tcp,
        tls = %sip.tls,
        wss = %sip.wss,
        "SIP listeners are configured but not served yet (SIP transports arrive in a later release)"
    );
}

/// Retries migrations with backoff until they succeed, then waits forever; returns only the
/// error of a migration that failed for a reason other than an unreachable database.
async fn keep_migrating(store: &Store) -> anyhow::Error {
    let mut delay = Duration::from_secs(1);
    loop {
        tokio::time::sleep(delay).await;
        match store.migrate().await {
            Ok(()) => {
                info!("database is reachable again; schema is up to date");
                return pending().await;
            }
            Err(StoreError::Unavailable(reason)) => {
                debug!(%reason, "database still unavailable");
                delay = (delay * 2).min(MAX_MIGRATION_RETRY_DELAY);
            }
            Err(error) => return anyhow::Error::new(error).context("cannot migrate the database"),
        }
    }
}

/// Resolves with the name of the first SIGINT or SIGTERM.
async fn shutdown_signal() -> &'static str {
    let interrupt = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(error) => {
                warn!(%error, "cannot listen for SIGINT");
                pending().await
            }
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signals) => {
                signals.recv().await;
                "SIGTERM"
            }
            Err(error) => {
                warn!(%error, "cannot listen for SIGTERM");
                pending().await
            }
        }
    };
    tokio::select! {
        name = interrupt => name,
        name = terminate => name,
    }
}
