//! Command line: `sipd [--config PATH] [serve | migrate | account create …]`.

use clap::builder::NonEmptyStringValueParser;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "sipd",
    version,
    about = "SIP registrar and proxy with a Vobiz-compatible REST API"
)]
pub struct Cli {
    /// Configuration file [default: config/sipd.toml if it exists, else built-in defaults].
    /// Any key can also be set with SIPD_<SECTION>_<KEY>, e.g. SIPD_API_LISTEN.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply database migrations, then serve the API (the default command).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create a main account and print {"auth_id": …, "auth_token": …} as one JSON line.
    Create {
        /// Account name.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        name: String,
        /// Auth ID to use instead of a generated MA_XXXXXXXX.
        #[arg(long, value_name = "ID", value_parser = NonEmptyStringValueParser::new())]
        auth_id: Option<String>,
        /// Auth token to use instead of a generated one.
        #[arg(long, value_name = "TOKEN", value_parser = NonEmptyStringValueParser::new())]
        auth_token: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_is_the_default_and_config_goes_anywhere() {
        let cli = Cli::try_parse_from(["sipd"]).unwrap();
        assert!(cli.command.is_none());
        let cli = Cli::try_parse_from(["sipd", "migrate", "--config", "x.toml"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.config, Some(PathBuf::from("x.toml")));
    }

    #[test]
    fn account_create_takes_optional_credentials() {
        let cli = Cli::try_parse_from([
            "sipd",
            "account",
            "create",
            "--name",
            "Acme",
            "--auth-id",
            "MA_ACME0001",
        ])
        .unwrap();
        let Some(Command::Account {
            command:
                AccountCommand::Create {
                    name,
                    auth_id,
                    auth_token,
                },
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(
            (name.as_str(), auth_id.as_deref(), auth_token),
            ("Acme", Some("MA_ACME0001"), None)
        );
        assert!(Cli::try_parse_from(["sipd", "account", "create"]).is_err());
        assert!(Cli::try_parse_from(["sipd", "account", "create", "--name", ""]).is_err());
    }
}
