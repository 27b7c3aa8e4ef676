//! Opening the store from the config, and the `migrate` command.

use crate::config::Config;
use crate::secret::{self, SecretKey};
use anyhow::Context;
use sipd_store::{Store, StoreOptions};

/// Resolves the secret key (creating its file on first start) and opens the store with it.
/// Connects lazily: a database that is down now is not an error here.
pub async fn open(config: &Config) -> anyhow::Result<(Store, SecretKey)> {
    let secret_key = secret::resolve(config.security.secret_key.as_ref(), &config.data.dir)?;
    let options = StoreOptions {
        url: config.database.url.as_str().to_owned(),
        secret_key: secret_key.bytes(),
        realm: config.sip.domain.clone(),
        max_connections: config.database.max_connections,
        acquire_timeout: config.database.acquire_timeout,
    };
    let store = Store::connect(options)
        .await
        .with_context(|| format!("cannot open the database {}", config.database.url))?;
    Ok((store, secret_key))
}

/// Applies pending migrations; any failure, an unreachable database included, is an error.
pub async fn migrate(store: &Store, config: &Config) -> anyhow::Result<()> {
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate the database {}", config.database.url))?;
    tracing::info!("database schema is up to date");
    Ok(())
}

/// `sipd migrate`.
pub async fn migrate_command(config: &Config) -> anyhow::Result<()> {
    let (store, _) = open(config).await?;
    migrate(&store, config).await
}
