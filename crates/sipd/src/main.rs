//! sipd: SIP registrar and proxy with a Vobiz-compatible REST API. This file only wires the
//! command line to the commands; each lives in its own module.

mod account;
mod cli;
mod config;
mod database;
mod logging;
mod secret;
mod serve;
mod sip;

use anyhow::Context;
use clap::Parser;
use cli::{AccountCommand, Cli, Command};
use config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc, with its background purge thread, gives freed pages back to the system within
/// seconds where glibc's malloc keeps them: once a registration storm's transactions end
/// (Timer J), the process shrinks back to what its bindings need. Measured in
/// docs/PERFORMANCE.md (memory per binding): glibc kept all of it, mimalloc most of it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sipd: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let file = cli.config.or_else(|| {
        let default = PathBuf::from(config::DEFAULT_FILE);
        default.is_file().then_some(default)
    });
    let config = Config::load(file.as_deref(), |name| std::env::var_os(name))?;
    logging::init(&config.log)?;
    match &file {
        Some(path) => tracing::info!(path = %path.display(), "configuration file read"),
        None => tracing::info!("no configuration file: built-in defaults"),
    }

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve::run(config).await,
            Command::Migrate => database::migrate_command(&config).await,
            Command::Account {
                command:
                    AccountCommand::Create {
                        name,
                        auth_id,
                        auth_token,
                    },
            } => {
                let request = account::CreateAccount {
                    name,
                    auth_id,
                    auth_token,
                };
                account::create(&config, request).await
            }
        }
    })
}
