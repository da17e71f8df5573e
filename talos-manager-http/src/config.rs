//! The service's configuration: flags first, then the environment names of the original
//! deployment, then defaults. Every bad value is one clear error naming the variable.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use talos_manager_core::bootstrap::BootstrapEnvironment;
use talos_manager_core::jobs::{BootstrapSettings, LifecycleSettings, TalosSettings};
use talos_manager_core::kubernetes::DrainOptions;
use talos_manager_core::lifecycle::LifecycleTiming;
use talos_manager_core::store::{Backend, EncryptionKey, KeySource};
use talos_manager_core::sync::ProviderFactory;
use talos_manager_core::{Secret, StoreError};

use talos_manager_core::node_config::TrustedProxies;

/// A configuration value that cannot be used. The binary prints it on one line and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable or flag has a value that cannot be used.
    #[error("{name}: {problem}")]
    Invalid {
        /// The environment variable or flag.
        name: &'static str,
        /// What is wrong with its value, and what is expected.
        problem: String,
    },
    /// Two settings that only work together.
    #[error("{0}")]
    Inconsistent(String),
}

/// A TCP port from `name` (1-65535), or `default` when unset.
fn port(env: &impl Environment, name: &'static str, default: u16) -> Result<u16, ConfigError> {
    let Some(text) = env.get(name) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u16>()
        .ok()
        .filter(|port| *port != 0)
        .ok_or_else(|| invalid(name, format!("{text:?} is not a TCP port (1-65535)")))
}

/// A positive number of seconds from `name`, or `default` when unset.
fn seconds(env: &impl Environment, name: &'static str, default: u64) -> Result<u64, ConfigError> {
    let Some(text) = env.get(name) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|seconds| *seconds > 0)
        .ok_or_else(|| invalid(name, "expected a whole number of seconds above 0"))
}

/// A whole number from `name` in `min..=max`, or `default` when unset.
fn bounded(
    env: &impl Environment,
    name: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(text) = env.get(name) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|value| (min..=max).contains(value))
        .ok_or_else(|| invalid(name, format!("expected a whole number from {min} to {max}")))
}

/// The shortest `BASIC_AUTH_PASSWORD` accepted: with wrong attempts slowed to four a second,
/// a random password of this length cannot be guessed online.
pub const MIN_BASIC_AUTH_PASSWORD_LENGTH: usize = 12;

/// `BASIC_AUTH_PASSWORD`, at least [`MIN_BASIC_AUTH_PASSWORD_LENGTH`] characters long.
fn basic_auth_password(env: &impl Environment) -> Result<Option<Secret<String>>, ConfigError> {
    let Some(password) = env.get("BASIC_AUTH_PASSWORD") else {
        return Ok(None);
    };
    let length = password.chars().count();
    if length < MIN_BASIC_AUTH_PASSWORD_LENGTH {
        return Err(invalid(
            "BASIC_AUTH_PASSWORD",
            format!(
                "too short ({length} characters): use at least {MIN_BASIC_AUTH_PASSWORD_LENGTH}"
            ),
        ));
    }
    Ok(Some(Secret::new(password)))
}

/// `true` or `false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case); `default` when unset.
fn flag(env: &impl Environment, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match env.get(name) {
        None => Ok(default),
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(name, format!("{text:?} is not true or false"))),
        },
    }
}

fn invalid(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        problem: problem.into(),
    }
}

/// Where the environment comes from: the process, or a map in tests.
pub trait Environment {
    /// The value of `name`; unset and empty are the same.
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

impl Environment for std::collections::HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|value| !value.is_empty())
            .map(|value| (*value).to_owned())
    }
}

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The URL the store connects to (may hold a password: never log it).
    pub url: Secret<String>,
    /// Which backend the URL names.
    pub backend: Backend,
    /// A URL fit for logs: the SQLite path, or the PostgreSQL host and database.
    pub display: String,
}

/// Flags that override the environment (from the command line).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
}

/// Everything the service reads at start.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The address `serve` listens on.
    pub listen: SocketAddr,
    /// The data directory (SQLite file, generated key file).
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseConfig,
    /// `TALOS_MANAGER_ENCRYPTION_KEY`, when set.
    pub encryption_key: Option<EncryptionKey>,
    /// `HOST`: the public host name nodes reach the service at (for `talos.config=`).
    pub host: Option<String>,
    /// `BASIC_AUTH_PASSWORD`: protects the dashboard when set.
    pub basic_auth_password: Option<Secret<String>>,
    /// `SSH_PRIVATE_KEY`: the key the service reaches rescue systems with.
    pub ssh_private_key: Option<Secret<String>>,
    /// `HETZNER_CLOUD_API_TOKEN`: seeds a Cloud provider account.
    pub hetzner_cloud_api_token: Option<Secret<String>>,
    /// `HETZNER_WEBSERVICE_USER` and `HETZNER_WEBSERVICE_PASSWORD`: seed a Robot account.
    pub hetzner_robot_credentials: Option<(String, Secret<String>)>,
    /// `HETZNER_ROBOT_API_URL`: the Robot webservice (default: the real one).
    pub hetzner_robot_api_url: String,
    /// `HETZNER_CLOUD_API_URL`: the Cloud API, with its version (default: the real one).
    pub hetzner_cloud_api_url: String,
    /// `SYNC_INTERVAL`: seconds between periodic syncs (default 60; 0 turns them off).
    pub sync_interval_seconds: u64,
    /// `SYNC_MISSING_SYNCS` (default 3), `SYNC_MISSING_GRACE` (seconds, default 86400) and
    /// `SYNC_MAX_MISSING_PERCENT` (default 50): when sync gives up on servers and vSwitches an
    /// account no longer lists.
    pub sync_policy: talos_manager_core::sync::SyncPolicy,
    /// `JOB_RETENTION_DAYS`: days finished jobs and their logs are kept (default 30; 0 keeps
    /// them forever).
    pub job_retention_days: u64,
    /// `RESCUE_SSH_PORT`: the TCP port rescue systems answer SSH on (default 22). Tests and
    /// labs that forward rescue hosts through other ports set it.
    pub rescue_ssh_port: u16,
    /// `RESCUE_TIMEOUT`: seconds a bootstrap waits for a server to come up in rescue
    /// (default 600).
    pub rescue_timeout_seconds: u64,
    /// `TALOS_API_PORT`: the TCP port nodes answer the Talos API on (default 50000).
    pub talos_api_port: u16,
    /// `DRAIN_TIMEOUT`: seconds a rolling upgrade or reboot waits for a node's pods to be
    /// evicted (default 600).
    pub drain_timeout_seconds: u64,
    /// `NODE_READY_TIMEOUT`: seconds a rolling upgrade or reboot, or a reset, waits for a node
    /// to come back (default 1800).
    pub node_ready_timeout_seconds: u64,
    /// `ETCD_REJOIN_TIMEOUT`: seconds a rolling upgrade or reboot waits for a control plane
    /// that is back to rejoin etcd as a healthy member (default 300).
    pub etcd_rejoin_timeout_seconds: u64,
    /// `TALOS_AMD64_IMAGE_URL`: a custom Talos image for amd64 servers.
    pub talos_amd64_image_url: Option<String>,
    /// `TALOS_ARM64_IMAGE_URL`: a custom Talos image for arm64 servers.
    pub talos_arm64_image_url: Option<String>,
    /// `TRUSTED_PROXIES`: reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// `TALOS_IMAGE_FACTORY_URL`: the Image Factory schematics are registered with.
    pub image_factory_url: String,
    /// `CONFIG_ALLOW_IP_ONLY`: whether `/config` without `?uuid=` serves a server that has no
    /// recorded SMBIOS UUID by its IPv4 address alone (default `true`; `false` turns it off).
    pub config_allow_ip_only: bool,
}

/// The default listen address, as the original deployment's.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:3000";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data";
/// How long a bootstrap waits for a server to come up in rescue, by default: a Robot server
/// takes a few minutes to reset and boot the rescue system.
pub const DEFAULT_RESCUE_TIMEOUT_SECONDS: u64 = 600;
/// How long a rolling upgrade or reboot waits for a node's pods to be evicted, by default.
pub const DEFAULT_DRAIN_TIMEOUT_SECONDS: u64 = 600;
/// How long a rolling upgrade, reboot or reset waits for a node to come back, by default: an
/// upgrade pulls the installer image, writes it and reboots a bare-metal machine.
pub const DEFAULT_NODE_READY_TIMEOUT_SECONDS: u64 = 1800;
/// The default of `ETCD_REJOIN_TIMEOUT`.
pub const DEFAULT_ETCD_REJOIN_TIMEOUT_SECONDS: u64 = 300;
/// The SQLite file's name inside the data directory.
pub const SQLITE_FILE: &str = "talos-manager.db";
/// The generated key file's name inside the data directory.
pub const KEY_FILE: &str = "encryption.key";

impl ServiceConfig {
    /// Where images and configs come from, for bootstraps.
    pub fn bootstrap_environment(&self) -> BootstrapEnvironment {
        BootstrapEnvironment {
            host: self.host.clone(),
            image_factory_url: self.image_factory_url.clone(),
            amd64_image_url: self.talos_amd64_image_url.clone(),
            arm64_image_url: self.talos_arm64_image_url.clone(),
        }
    }

    /// Reads the configuration from `env`, with `overrides` from the command line.
    pub fn load(
        env: &impl Environment,
        overrides: Overrides,
    ) -> Result<ServiceConfig, ConfigError> {
        let listen = match overrides.listen {
            Some(listen) => listen,
            None => match env.get("PORT") {
                Some(port) => {
                    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(|| {
                        invalid("PORT", format!("{port:?} is not a port number (1-65535)"))
                    })?;
                    SocketAddr::from(([0, 0, 0, 0], port))
                }
                None => DEFAULT_LISTEN
                    .parse()
                    .expect("the default listen address parses"),
            },
        };
        let data_dir = overrides
            .data_dir
            .or_else(|| env.get("TALOS_MANAGER_DATA_DIR").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database = database_config(env, overrides.database_url, &data_dir)?;
        let encryption_key = env
            .get("TALOS_MANAGER_ENCRYPTION_KEY")
            .map(|text| {
                EncryptionKey::from_base64(&text)
                    .map_err(|error| invalid("TALOS_MANAGER_ENCRYPTION_KEY", error.to_string()))
            })
            .transpose()?;
        let host = env
            .get("HOST")
            .map(|host| validate_host(&host))
            .transpose()?;
        let hetzner_robot_credentials = match (
            env.get("HETZNER_WEBSERVICE_USER"),
            env.get("HETZNER_WEBSERVICE_PASSWORD"),
        ) {
            (Some(user), Some(password)) => Some((user, Secret::new(password))),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Inconsistent(
                    "HETZNER_WEBSERVICE_USER and HETZNER_WEBSERVICE_PASSWORD must be set together"
                        .into(),
                ));
            }
        };
        Ok(ServiceConfig {
            listen,
            data_dir,
            database,
            encryption_key,
            host,
            basic_auth_password: basic_auth_password(env)?,
            ssh_private_key: env.get("SSH_PRIVATE_KEY").map(Secret::new),
            hetzner_cloud_api_token: env.get("HETZNER_CLOUD_API_TOKEN").map(Secret::new),
            hetzner_robot_credentials,
            hetzner_robot_api_url: env
                .get("HETZNER_ROBOT_API_URL")
                .unwrap_or_else(|| talos_manager_core::HetznerRobot::DEFAULT_URL.to_owned()),
            hetzner_cloud_api_url: env
                .get("HETZNER_CLOUD_API_URL")
                .unwrap_or_else(|| talos_manager_core::HetznerCloud::DEFAULT_URL.to_owned()),
            sync_interval_seconds: env
                .get("SYNC_INTERVAL")
                .map(|text| text.trim().parse::<u64>())
                .transpose()
                .map_err(|_| invalid("SYNC_INTERVAL", "expected a whole number of seconds"))?
                .unwrap_or(60),
            sync_policy: talos_manager_core::sync::SyncPolicy {
                missing_syncs: bounded(env, "SYNC_MISSING_SYNCS", 3, 1, 1000)? as u32,
                missing_grace: std::time::Duration::from_secs(bounded(
                    env,
                    "SYNC_MISSING_GRACE",
                    24 * 60 * 60,
                    0,
                    365 * 24 * 60 * 60,
                )?),
                max_missing_percent: bounded(env, "SYNC_MAX_MISSING_PERCENT", 50, 0, 100)? as u8,
            },
            job_retention_days: bounded(env, "JOB_RETENTION_DAYS", 30, 0, 36500)?,
            rescue_ssh_port: port(
                env,
                "RESCUE_SSH_PORT",
                talos_manager_core::installer::DEFAULT_SSH_PORT,
            )?,
            rescue_timeout_seconds: seconds(env, "RESCUE_TIMEOUT", DEFAULT_RESCUE_TIMEOUT_SECONDS)?,
            talos_api_port: port(
                env,
                "TALOS_API_PORT",
                talos_manager_core::talos_api::DEFAULT_PORT,
            )?,
            drain_timeout_seconds: seconds(env, "DRAIN_TIMEOUT", DEFAULT_DRAIN_TIMEOUT_SECONDS)?,
            node_ready_timeout_seconds: seconds(
                env,
                "NODE_READY_TIMEOUT",
                DEFAULT_NODE_READY_TIMEOUT_SECONDS,
            )?,
            etcd_rejoin_timeout_seconds: seconds(
                env,
                "ETCD_REJOIN_TIMEOUT",
                DEFAULT_ETCD_REJOIN_TIMEOUT_SECONDS,
            )?,
            talos_amd64_image_url: image_url(env, "TALOS_AMD64_IMAGE_URL")?,
            talos_arm64_image_url: image_url(env, "TALOS_ARM64_IMAGE_URL")?,
            trusted_proxies: env
                .get("TRUSTED_PROXIES")
                .map(|text| TrustedProxies::parse(&text))
                .transpose()
                .map_err(|problem| invalid("TRUSTED_PROXIES", problem))?
                .unwrap_or_default(),
            image_factory_url: image_url(env, "TALOS_IMAGE_FACTORY_URL")?.unwrap_or_else(|| {
                talos_manager_core::image_factory::DEFAULT_FACTORY_URL.to_owned()
            }),
            config_allow_ip_only: flag(env, "CONFIG_ALLOW_IP_ONLY", true)?,
        })
    }

    /// The prober sync reaches rescue systems with: `SSH_PRIVATE_KEY` on `RESCUE_SSH_PORT`.
    /// `None` without a key (sync then skips probing); an unreadable key is an error, found once
    /// at start rather than once per server.
    pub fn ssh_prober(&self) -> Result<Option<talos_manager_core::sync::SshProber>, ConfigError> {
        self.ssh_private_key
            .clone()
            .map(|key| {
                talos_manager_core::sync::SshProber::new(key, self.rescue_ssh_port).map_err(|_| {
                    invalid(
                        "SSH_PRIVATE_KEY",
                        "not a private key in OpenSSH or PEM format (RSA, ECDSA or Ed25519, \
                         without a passphrase)",
                    )
                })
            })
            .transpose()
    }

    /// What bootstraps need: `SSH_PRIVATE_KEY`, `RESCUE_SSH_PORT`, `RESCUE_TIMEOUT` and where
    /// images and configs come from.
    pub fn bootstrap_settings(&self) -> BootstrapSettings {
        BootstrapSettings {
            ssh_private_key: self.ssh_private_key.clone(),
            rescue_ssh_port: self.rescue_ssh_port,
            rescue_timeout: Duration::from_secs(self.rescue_timeout_seconds),
            rescue_poll: Duration::from_secs(2),
            environment: self.bootstrap_environment(),
        }
    }

    /// How Talos jobs reach nodes: the gRPC client, nodes on `TALOS_API_PORT`.
    pub fn talos_settings(&self) -> TalosSettings {
        TalosSettings {
            connector: Arc::new(talos_manager_talos_api::GrpcTalosConnector::new()),
            port: self.talos_api_port,
        }
    }

    /// What lifecycle jobs run with: [`ServiceConfig::talos_settings`], `DRAIN_TIMEOUT`,
    /// `NODE_READY_TIMEOUT`, `ETCD_REJOIN_TIMEOUT` and [`ServiceConfig::bootstrap_settings`]
    /// (`SSH_PRIVATE_KEY`, `TALOS_IMAGE_FACTORY_URL`), with `providers`.
    pub fn lifecycle_settings(&self, providers: ProviderFactory) -> LifecycleSettings {
        let defaults = LifecycleTiming::default();
        LifecycleSettings {
            talos: self.talos_settings(),
            providers,
            timing: LifecycleTiming {
                node_back: Duration::from_secs(self.node_ready_timeout_seconds),
                etcd_rejoin: Duration::from_secs(self.etcd_rejoin_timeout_seconds),
                drain: DrainOptions {
                    timeout: Duration::from_secs(self.drain_timeout_seconds),
                    ..defaults.drain
                },
                ..defaults
            },
            bootstrap: self.bootstrap_settings(),
        }
    }

    /// The key for secrets at rest: `TALOS_MANAGER_ENCRYPTION_KEY`, else (SQLite only) a key
    /// file in the data directory, created on first use. PostgreSQL requires the variable: a
    /// key file on one replica's disk would lock the others out.
    pub fn resolve_encryption_key(
        &self,
    ) -> Result<(EncryptionKey, Option<KeySource>), ConfigError> {
        if let Some(key) = &self.encryption_key {
            return Ok((key.clone(), None));
        }
        match self.database.backend {
            Backend::Postgres => Err(invalid(
                "TALOS_MANAGER_ENCRYPTION_KEY",
                "must be set when the database is PostgreSQL (make one with `openssl rand -base64 32`)",
            )),
            Backend::Sqlite => {
                ensure_dir(&self.data_dir)?;
                let (key, source) = EncryptionKey::load_or_create_file(
                    &self.data_dir.join(KEY_FILE),
                )
                .map_err(|error| invalid("TALOS_MANAGER_ENCRYPTION_KEY", error.to_string()))?;
                Ok((key, Some(source)))
            }
        }
    }
}

fn database_config(
    env: &impl Environment,
    flag: Option<String>,
    data_dir: &Path,
) -> Result<DatabaseConfig, ConfigError> {
    let sqlite_in_data_dir = || {
        let path = data_dir.join(SQLITE_FILE);
        DatabaseConfig {
            url: Secret::new(format!("sqlite://{}", path.display())),
            backend: Backend::Sqlite,
            display: path.display().to_string(),
        }
    };
    if let Some(url) = flag {
        return database_from_url("--database-url", url);
    }
    match env.get("DB_ADAPTER").as_deref() {
        // The original's switch: SQLite in the data directory, whatever DATABASE_URL says.
        Some("sqlite" | "sqlite3") => return Ok(sqlite_in_data_dir()),
        Some("postgresql" | "postgres") | None => {}
        Some(other) => {
            return Err(invalid(
                "DB_ADAPTER",
                format!("{other:?} is not a database adapter (use sqlite, or leave it unset)"),
            ));
        }
    }
    match env.get("DATABASE_URL") {
        Some(url) => database_from_url("DATABASE_URL", url),
        None => Ok(sqlite_in_data_dir()),
    }
}

fn database_from_url(name: &'static str, url: String) -> Result<DatabaseConfig, ConfigError> {
    let backend = Backend::from_url(&url).map_err(|error| match error {
        StoreError::UnsupportedUrl { scheme } => invalid(
            name,
            format!("unsupported scheme {scheme:?} (use postgres://USER@HOST/DB or sqlite://PATH)"),
        ),
        other => invalid(name, other.to_string()),
    })?;
    let display = match backend {
        Backend::Sqlite => url
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .to_owned(),
        // Drop the user info (it may hold a password).
        Backend::Postgres => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("postgres://{}", rest.split('?').next().unwrap_or(rest))
        }
    };
    Ok(DatabaseConfig {
        url: Secret::new(url),
        backend,
        display,
    })
}

fn validate_host(host: &str) -> Result<String, ConfigError> {
    let valid = !host.contains("://")
        && !host.contains('/')
        && !host.contains(char::is_whitespace)
        && !host.starts_with(':');
    if valid {
        Ok(host.to_owned())
    } else {
        Err(invalid(
            "HOST",
            format!(
                "{host:?} is not a host name (give e.g. talos-manager.example.com, without scheme or path)"
            ),
        ))
    }
}

fn image_url(env: &impl Environment, name: &'static str) -> Result<Option<String>, ConfigError> {
    let Some(url) = env.get(name) else {
        return Ok(None);
    };
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(Some(url))
    } else {
        Err(invalid(name, format!("{url:?} is not an http(s) URL")))
    }
}

/// Creates the data directory when missing.
pub fn ensure_dir(dir: &Path) -> Result<(), ConfigError> {
    std::fs::create_dir_all(dir).map_err(|error| {
        invalid(
            "TALOS_MANAGER_DATA_DIR",
            format!("cannot create {}: {error}", dir.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[track_caller]
    fn check_error(env: &[(&'static str, &'static str)], expect: &str) {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let error = ServiceConfig::load(&env, Overrides::default()).unwrap_err();
        assert_eq!(error.to_string(), expect);
    }

    #[track_caller]
    fn load(env: &[(&'static str, &'static str)]) -> ServiceConfig {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        ServiceConfig::load(&env, Overrides::default()).unwrap()
    }

    #[test]
    fn defaults_run_on_sqlite_in_the_data_dir_on_port_3000() {
        let config = load(&[]);
        assert_eq!(config.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(config.database.backend, Backend::Sqlite);
        assert_eq!(config.database.display, "data/talos-manager.db");
        assert_eq!(config.image_factory_url, "https://factory.talos.dev");
        assert_eq!(config.talos_api_port, 50000);
        assert_eq!(
            (
                config.drain_timeout_seconds,
                config.node_ready_timeout_seconds,
                config.etcd_rejoin_timeout_seconds
            ),
            (600, 1800, 300)
        );
    }

    #[test]
    fn image_factory_url_is_configurable() {
        let config = load(&[("TALOS_IMAGE_FACTORY_URL", "http://factory.internal:8080")]);
        assert_eq!(config.image_factory_url, "http://factory.internal:8080");
        check_error(
            &[("TALOS_IMAGE_FACTORY_URL", "factory.talos.dev")],
            "TALOS_IMAGE_FACTORY_URL: \"factory.talos.dev\" is not an http(s) URL",
        );
    }

    #[test]
    fn database_selection_follows_the_original_deployment() {
        let postgres = load(&[(
            "DATABASE_URL",
            "postgres://app:pw@db.internal:5432/tm?sslmode=require",
        )]);
        assert_eq!(postgres.database.backend, Backend::Postgres);
        assert_eq!(postgres.database.display, "postgres://db.internal:5432/tm");
        let sqlite = load(&[
            ("DATABASE_URL", "postgres://db/tm"),
            ("DB_ADAPTER", "sqlite"),
        ]);
        assert_eq!(sqlite.database.backend, Backend::Sqlite);
        assert_eq!(load(&[("PORT", "8080")]).listen.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn bad_values_name_the_variable() {
        check_error(
            &[("PORT", "http")],
            "PORT: \"http\" is not a port number (1-65535)",
        );
        check_error(
            &[("PORT", "70000")],
            "PORT: \"70000\" is not a port number (1-65535)",
        );
        check_error(
            &[("DB_ADAPTER", "mysql")],
            "DB_ADAPTER: \"mysql\" is not a database adapter (use sqlite, or leave it unset)",
        );
        check_error(
            &[("DATABASE_URL", "mysql://db/tm")],
            "DATABASE_URL: unsupported scheme \"mysql\" (use postgres://USER@HOST/DB or sqlite://PATH)",
        );
        check_error(
            &[("TALOS_MANAGER_ENCRYPTION_KEY", "short")],
            "TALOS_MANAGER_ENCRYPTION_KEY: the encryption key must be 32 bytes encoded as base64 \
             (make one with `openssl rand -base64 32`)",
        );
        check_error(
            &[("HOST", "https://tm.example.com/")],
            "HOST: \"https://tm.example.com/\" is not a host name (give e.g. \
             talos-manager.example.com, without scheme or path)",
        );
        check_error(
            &[("HETZNER_WEBSERVICE_USER", "robot")],
            "HETZNER_WEBSERVICE_USER and HETZNER_WEBSERVICE_PASSWORD must be set together",
        );
        check_error(
            &[("TRUSTED_PROXIES", "10.0.0.0/8,cloudflare")],
            "TRUSTED_PROXIES: \"cloudflare\" is not a CIDR network or an IP address",
        );
        check_error(
            &[("BASIC_AUTH_PASSWORD", "short")],
            "BASIC_AUTH_PASSWORD: too short (5 characters): use at least 12",
        );
        check_error(
            &[("CONFIG_ALLOW_IP_ONLY", "maybe")],
            "CONFIG_ALLOW_IP_ONLY: \"maybe\" is not true or false",
        );
        check_error(
            &[("RESCUE_SSH_PORT", "0")],
            "RESCUE_SSH_PORT: \"0\" is not a TCP port (1-65535)",
        );
        check_error(
            &[("RESCUE_TIMEOUT", "ten minutes")],
            "RESCUE_TIMEOUT: expected a whole number of seconds above 0",
        );
        check_error(
            &[("TALOS_API_PORT", "65536")],
            "TALOS_API_PORT: \"65536\" is not a TCP port (1-65535)",
        );
        check_error(
            &[("DRAIN_TIMEOUT", "0")],
            "DRAIN_TIMEOUT: expected a whole number of seconds above 0",
        );
        check_error(
            &[("TALOS_ARM64_IMAGE_URL", "ftp://mirror/talos.raw.xz")],
            "TALOS_ARM64_IMAGE_URL: \"ftp://mirror/talos.raw.xz\" is not an http(s) URL",
        );
    }

    #[test]
    fn an_unreadable_ssh_key_is_refused_and_no_key_skips_probing() {
        let config = load(&[("SSH_PRIVATE_KEY", "-----BEGIN OPENSSH PRIVATE KEY-----")]);
        let error = config.ssh_prober().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("SSH_PRIVATE_KEY: not a private key"),
            "{error}"
        );
        assert!(load(&[]).ssh_prober().unwrap().is_none());
    }

    #[test]
    fn postgres_requires_an_encryption_key() {
        let config = load(&[("DATABASE_URL", "postgres://db/tm")]);
        let error = config.resolve_encryption_key().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("TALOS_MANAGER_ENCRYPTION_KEY: must be set"),
            "{error}"
        );
    }

    #[test]
    fn secrets_do_not_show_in_debug_output() {
        let config = load(&[
            ("DATABASE_URL", "postgres://app:db-password-1@db/tm"),
            ("BASIC_AUTH_PASSWORD", "basic-password-2"),
            ("HETZNER_CLOUD_API_TOKEN", "cloud-token-3"),
            ("HETZNER_WEBSERVICE_USER", "robot"),
            ("HETZNER_WEBSERVICE_PASSWORD", "robot-password-4"),
            ("SSH_PRIVATE_KEY", "-----BEGIN OPENSSH PRIVATE KEY-----5"),
        ]);
        let printed = format!("{config:?}");
        for secret in [
            "db-password-1",
            "basic-password-2",
            "cloud-token-3",
            "robot-password-4",
            "PRIVATE KEY",
        ] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
    }
}
