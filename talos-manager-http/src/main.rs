//! The `talos-manager` binary: the service and its command line.
//!
//! Exit codes: 0 success, 1 a failure while working, 2 unusable configuration or arguments.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use talos_manager_http::config::{ConfigError, Overrides, ProcessEnvironment, ServiceConfig};
use talos_manager_http::logging::{self, LogFormat};
use talos_manager_http::{ServeError, backup_commands, open_store, serve, talos_commands};

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
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
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
    /// Generate Talos secrets or machine configs, as `talosctl gen` does (offline).
    Gen {
        #[command(subcommand)]
        command: GenCommand,
    },
    /// Work on machine config files, as `talosctl machineconfig` does (offline).
    Machineconfig {
        #[command(subcommand)]
        command: MachineconfigCommand,
    },
    /// Check a machine config, as `talosctl validate` does.
    Validate {
        /// The mode the config is for: metal, cloud or container.
        #[arg(short = 'm', long)]
        mode: String,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
        /// The config file.
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: PathBuf,
    },
    /// Print what a bootstrap of a server would do (dry run): the disk, the image and every
    /// command, from what sync and the rescue probe recorded.
    BootstrapPlan {
        /// The server: robot-<number>, cloud-<id>, or its name.
        server: String,
        /// The target disk: a WWID or /dev/NAME [default: the first disk outside a RAID].
        #[arg(long)]
        disk: Option<String>,
        /// The Talos version, vX.Y.Z [default: the settings' version].
        #[arg(long)]
        talos_version: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Write a consistent, encrypted backup of the whole database, while the service runs.
    ///
    /// The backup is encrypted with the service's encryption key
    /// (TALOS_MANAGER_ENCRYPTION_KEY or the key file): keep the key apart from the backups. The
    /// file is written atomically with mode 0600. See docs/deployment.md.
    Backup {
        /// The backup file to write (replaced atomically when it exists).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Restore a backup into an empty database (migrated first), all or nothing.
    ///
    /// Needs the encryption key the backup was made with. Refuses a database that holds rows, a
    /// backup of another schema version, and a damaged or edited file.
    Restore {
        /// The backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
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
#[allow(clippy::large_enum_variant, reason = "parsed once at start")]
enum GenCommand {
    /// Generate a secrets bundle (CAs, keys and tokens of a new cluster).
    Secrets {
        /// Where to write it.
        #[arg(short = 'o', long = "output-file", default_value = "secrets.yaml")]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Generate machine configs and a talosconfig for a cluster.
    Config {
        /// The cluster's name.
        cluster_name: String,
        /// The Kubernetes API endpoint, https://host:port.
        endpoint: String,
        /// A secrets bundle (from `gen secrets`); a new one is made when absent.
        #[arg(long, value_name = "FILE")]
        with_secrets: Option<PathBuf>,
        /// What to generate: controlplane, worker, talosconfig (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "controlplane,worker,talosconfig"
        )]
        output_types: Vec<String>,
        /// The disk Talos installs to.
        #[arg(long, default_value = "/dev/sda")]
        install_disk: String,
        /// The installer image [default: Talos's installer for --talos-version].
        #[arg(long)]
        install_image: Option<String>,
        /// The Kubernetes version [default: the Talos version's default].
        #[arg(long)]
        kubernetes_version: Option<String>,
        /// The Talos version whose config format to write, vX.Y [default: the newest].
        #[arg(long)]
        talos_version: Option<String>,
        /// Enable KubeSpan.
        #[arg(long)]
        with_kubespan: bool,
        /// A patch for every machine: @file or inline YAML/JSON (repeatable).
        #[arg(long)]
        config_patch: Vec<String>,
        /// A patch for control-plane machines (repeatable).
        #[arg(long)]
        config_patch_control_plane: Vec<String>,
        /// A patch for worker machines (repeatable).
        #[arg(long)]
        config_patch_worker: Vec<String>,
        /// Only false is supported: configs are written without documentation comments.
        #[arg(long, default_value = "false", value_parser = only_false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        with_docs: bool,
        /// Only false is supported: configs are written without commented examples.
        #[arg(long, default_value = "false", value_parser = only_false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
        with_examples: bool,
        /// Output directory, or - for standard output (with one output type).
        #[arg(short = 'o', long, default_value = ".")]
        output: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum MachineconfigCommand {
    /// Patch a machine config file with strategic merge or JSON6902 patches, as `talosctl
    /// machineconfig patch` does.
    Patch {
        /// The machine config file.
        file: PathBuf,
        /// A patch: @file, a file name, or inline YAML/JSON (repeatable, applied in order).
        #[arg(short = 'p', long = "patch", value_name = "PATCH")]
        patches: Vec<String>,
        /// Where to write the patched config (mode 0600), or - for standard output
        /// [default: standard output].
        #[arg(short = 'o', long, value_name = "FILE")]
        output: Option<String>,
    },
}

fn only_false(value: &str) -> Result<bool, String> {
    match value {
        "false" => Ok(false),
        _ => Err("only false is supported (configs are written without comments)".into()),
    }
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a token and print it on standard output (the only time it is shown).
    Create {
        /// Who or what will use it, e.g. terraform-ci (unique).
        name: String,
        /// Make it stop working after this long: a number with a unit, `s`, `m`, `h` or `d`
        /// (e.g. `90d`, `12h`). Default: it works until revoked.
        #[arg(long, value_parser = parse_expires_in)]
        expires_in: Option<std::time::Duration>,
    },
    /// List the tokens (names, last use and expiry; values are never stored).
    List,
    /// Revoke a token.
    Revoke {
        /// The token's name.
        name: String,
    },
}

fn parse_expires_in(value: &str) -> Result<std::time::Duration, String> {
    talos_manager_http::tokens::parse_lifetime(value)
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
    match cli.command {
        Command::Gen { command } => return gen_command(command),
        Command::Machineconfig {
            command:
                MachineconfigCommand::Patch {
                    file,
                    patches,
                    output,
                },
        } => return machineconfig_patch_command(&file, &patches, output.as_deref()),
        Command::Validate {
            mode,
            strict,
            config,
        } => {
            let warnings = talos_commands::validate_file(&config, &mode, strict)
                .map_err(anyhow::Error::new)?;
            for warning in warnings {
                eprintln!("warning: {}: {}", warning.path, warning.message);
            }
            eprintln!("{} is valid for {mode} mode", config.display());
            return Ok(());
        }
        _ => {}
    }
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
            Command::Gen { .. } | Command::Machineconfig { .. } | Command::Validate { .. } => {
                Ok(())
            }
            Command::BootstrapPlan {
                server,
                disk,
                talos_version,
                database,
            } => {
                let config = ServiceConfig::load(&ProcessEnvironment, database.overrides(None))?;
                let store = open_store(&config).await.map_err(into_failure)?;
                let choices = talos_manager_core::bootstrap::BootstrapChoices {
                    disk,
                    talos_version,
                    schematic_id: None,
                };
                let text = talos_manager_core::bootstrap::dry_run(
                    &store,
                    &config.bootstrap_environment(),
                    &server,
                    &choices,
                )
                .await;
                store.close().await;
                print_plan(&text.map_err(anyhow::Error::new)?);
                Ok(())
            }
            Command::Backup { output, database } => {
                let config = ServiceConfig::load(&ProcessEnvironment, database.overrides(None))?;
                let store = open_store(&config).await.map_err(into_failure)?;
                let started = std::time::Instant::now();
                let result = backup_commands::backup_to_file(&store, &output, &mut |table| {
                    eprintln!("backed up {}: {} rows", table.table, table.rows);
                    backup_commands::flush_progress();
                })
                .await;
                store.close().await;
                let summary = result.map_err(anyhow::Error::new)?;
                eprintln!(
                    "wrote {}: {} tables, {} rows, schema version {}, in {:.1} s",
                    output.display(),
                    summary.tables.len(),
                    summary.rows(),
                    summary.schema_version,
                    started.elapsed().as_secs_f64()
                );
                Ok(())
            }
            Command::Restore { file, database } => {
                let config = ServiceConfig::load(&ProcessEnvironment, database.overrides(None))?;
                let store = open_store(&config).await.map_err(into_failure)?;
                let started = std::time::Instant::now();
                let result = backup_commands::restore_from_file(&store, &file, &mut |table| {
                    eprintln!("restored {}: {} rows", table.table, table.rows);
                    backup_commands::flush_progress();
                })
                .await;
                store.close().await;
                let summary = result.map_err(anyhow::Error::new)?;
                eprintln!(
                    "restored {} (made {}) into {}: {} tables, {} rows, in {:.1} s",
                    file.display(),
                    summary.created_at,
                    config.database.display,
                    summary.tables.len(),
                    summary.rows(),
                    started.elapsed().as_secs_f64()
                );
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
    reason = "-o - prints the config: that is its result"
)]
fn machineconfig_patch_command(
    file: &std::path::Path,
    patches: &[String],
    output: Option<&str>,
) -> Result<(), Failure> {
    if let Some(text) =
        talos_commands::machineconfig_patch(file, patches, output).map_err(anyhow::Error::new)?
    {
        print!("{text}");
    }
    Ok(())
}

#[allow(
    clippy::print_stdout,
    reason = "-o - prints the config: that is its result"
)]
fn gen_command(command: GenCommand) -> Result<(), Failure> {
    match command {
        GenCommand::Secrets { output, force } => {
            talos_commands::gen_secrets(&output, force).map_err(anyhow::Error::new)?;
            eprintln!("wrote {}", output.display());
        }
        GenCommand::Config {
            cluster_name,
            endpoint,
            with_secrets,
            output_types,
            install_disk,
            install_image,
            kubernetes_version,
            talos_version,
            with_kubespan,
            config_patch,
            config_patch_control_plane,
            config_patch_worker,
            with_docs: _,
            with_examples: _,
            output,
            force,
        } => {
            let request = talos_commands::GenConfigRequest {
                cluster_name,
                endpoint,
                with_secrets,
                output_types,
                install_disk,
                install_image,
                kubernetes_version,
                talos_version,
                kubespan: with_kubespan,
                patches: (
                    config_patch,
                    config_patch_control_plane,
                    config_patch_worker,
                ),
                output: output.clone(),
                force,
            };
            let files = talos_commands::gen_config(&request).map_err(anyhow::Error::new)?;
            if output == "-" {
                for (_, contents) in files {
                    print!("{contents}");
                }
            } else {
                for (file, _) in files {
                    eprintln!(
                        "wrote {}",
                        std::path::Path::new(&output).join(file).display()
                    );
                }
            }
        }
    }
    Ok(())
}

#[allow(
    clippy::print_stdout,
    reason = "the token command's output is its result"
)]
async fn token_command(
    store: &talos_manager_core::Store,
    command: TokenCommand,
) -> Result<(), Failure> {
    use talos_manager_http::tokens::{create_expiring_token, revoke_token};
    match command {
        TokenCommand::Create { name, expires_in } => {
            let (token, expires_at) = create_expiring_token(store, &name, expires_in)
                .await
                .map_err(anyhow::Error::new)?;
            println!("{}", token.expose());
            match expires_at {
                Some(at) => {
                    eprintln!("created API token {name:?}, expiring {at}; it is shown only now")
                }
                None => eprintln!("created API token {name:?}; it is shown only now"),
            }
        }
        TokenCommand::List => {
            for token in store.list_api_tokens().await.map_err(anyhow::Error::new)? {
                let last_used = token
                    .last_used_at
                    .map_or_else(|| "never used".to_owned(), |at| format!("last used {at}"));
                let expires = token
                    .expires_at
                    .map_or_else(|| "no expiry".to_owned(), |at| format!("expires {at}"));
                println!(
                    "{}\tcreated {}\t{last_used}\t{expires}",
                    token.name, token.created_at
                );
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

#[allow(clippy::print_stdout, reason = "the plan is the command's output")]
fn print_plan(text: &str) {
    print!("{text}");
}

fn into_failure(error: ServeError) -> Failure {
    match error {
        ServeError::Config(error) => Failure::Config(error),
        other => Failure::Other(anyhow::Error::new(other)),
    }
}
