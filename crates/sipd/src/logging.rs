//! Logs go to stderr (stdout is reserved for command output such as `account create`'s JSON),
//! as text or JSON lines.

use crate::config::{LogConfig, LogFormat};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    // The filter was checked when the config was read; an error here would be a bug.
    let filter = EnvFilter::builder().parse(&config.level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match config.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|error| anyhow::anyhow!("cannot install the logger: {error}"))
}
