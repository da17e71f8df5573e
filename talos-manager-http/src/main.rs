//! The `talos-manager` binary: the service and its command line.
//!
//! Exit codes: 0 success, 1 a failure while working, 2 unusable configuration or arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use talos_manager_http::config::{ConfigError, Overrides, ProcessEnvironment, ServiceConfig};
use talos_manager_http::logging::{self, LogFormat};
use talos_manager_http::{ServeError, open_store, serve};

/// Takes rented Hetzner servers to running Talos Linux nodes, and serves every node its machine
/// config.
///
/// Configuration comes from flags, then the environment: DATABASE_URL (postgres://…; SQLite in
/// the data directory when unset), DB_ADAPTER=sqlite, TALOS_MANAGER_ENCRYPTION_KEY, PORT, HOST,
/// BASIC_AUTH_PASSWORD, SSH_PRIVATE_KEY, HETZNER_CLOUD_API_TOKEN, HETZNER_WEBSERVICE_USER,
/// HETZNER_WEBSERVICE_PASSWORD, TALOS_AMD64_IMAGE_URL, TALOS_ARM64_IMAGE_URL, LOG_FORMAT and
/// RUST_LOG. See docs/configuration.md.
#[derive(Debug, Parser)]
#[command(name = "talos-manager", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: /config for Talos nodes, the admin API and the dashboard.
    ///
    /// Applies pending database migrations first. Stops gracefully on SIGTERM or Ctrl-C.
    Serve {
        /// Address to listen on [default: 0.0.0.0:$PORT, or 0.0.0.0:3000].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage the bearer tokens of the admin API.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token and print it on standard output (the only time it is shown).
    Create {
        /// Who or what will use it, e.g. terraform-ci (unique).
        name: String,
    },
    /// List the tokens (names and last use; values are never stored).
    List,
    /// Revoke a token.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct DatabaseArgs {
    /// Directory for the SQLite database and the generated encryption key file
    /// [env: TALOS_MANAGER_DATA_DIR] [default: ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Database URL, overriding DATABASE_URL and DB_ADAPTER: postgres://USER@HOST/DB or
    /// sqlite://PATH.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

impl DatabaseArgs {
    fn overrides(self, listen: Option<SocketAddr>) -> Overrides {
        Overrides {
            data_dir: self.data_dir,
            database_url: self.database_url,
            listen,
        }
    }
}

/// A failure, and the exit code it deserves.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
        Err(Failure::Other(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    logging::init(LogFormat::from_env()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| anyhow::Error::new(error).context("failed to start the async runtime"))?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve { listen, database } => {
                let config = ServiceConfig::load(&ProcessEnvironment, database.overrides(listen))?;
                serve(config).await.map_err(into_failure)
            }
            Command::Migrate { database } => {
                let config = ServiceConfig::load(&ProcessEnvironment, database.overrides(None))?;
                let store = open_store(&config).await.map_err(into_failure)?;
                store.close().await;
                eprintln!("database {} is up to date", config.database.display);
                Ok(())
            }
            Command::Token { command, database } => {
                let config = ServiceConfig::load(&ProcessEnvironment, database.overrides(None))?;
                let store = open_store(&config).await.map_err(into_failure)?;
                let result = token_command(&store, command).await;
                store.close().await;
                result
            }
        }
    })
}

#[allow(
    clippy::print_stdout,
    reason = "the token command's output is its result"
)]
async fn token_command(
    store: &talos_manager_core::Store,
    command: TokenCommand,
) -> Result<(), Failure> {
    use talos_manager_http::tokens::{create_token, revoke_token};
    match command {
        TokenCommand::Create { name } => {
            let token = create_token(store, &name)
                .await
                .map_err(anyhow::Error::new)?;
            println!("{}", token.expose());
            eprintln!("created API token {name:?}; it is shown only now");
        }
        TokenCommand::List => {
            for token in store.list_api_tokens().await.map_err(anyhow::Error::new)? {
                let last_used = token
                    .last_used_at
                    .map_or_else(|| "never used".to_owned(), |at| format!("last used {at}"));
                println!("{}\tcreated {}\t{last_used}", token.name, token.created_at);
            }
        }
        TokenCommand::Revoke { name } => {
            revoke_token(store, &name)
                .await
                .map_err(anyhow::Error::new)?;
            eprintln!("revoked API token {name:?}");
        }
    }
    Ok(())
}

fn into_failure(error: ServeError) -> Failure {
    match error {
        ServeError::Config(error) => Failure::Config(error),
        other => Failure::Other(anyhow::Error::new(other)),
    }
}
