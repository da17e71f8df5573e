//! `talos-manager serve`: open and migrate the store, listen, and stop gracefully on SIGTERM or
//! Ctrl-C (requests in flight get up to 30 seconds).

use std::time::Duration;

use poem::EndpointExt as _;
use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use talos_manager_core::cluster_health::{HealthMonitor, REFRESH_INTERVAL};
use talos_manager_core::store::KeySource;
use talos_manager_core::{Store, StoreError, error_chain};

use crate::config::{ConfigError, ServiceConfig, ensure_dir};
use crate::{AppState, app};
use talos_manager_core::jobs::{
    BootstrapJob, ClusterBootstrapJob, JobKind, JobQueue, LabelAndTaintJob, PushConfigJob,
    ResetJob, RollingJob, SyncJob, Worker,
};

/// How long requests in flight may take once a shutdown signal arrived.
const GRACE_PERIOD: Duration = Duration::from_secs(30);

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("failed to open the database {database}")]
    Store {
        /// The database, without credentials.
        database: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The listen address could not be bound.
    #[error("failed to listen on {address}")]
    Listen {
        /// The address.
        address: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The first start's admin token could not be made.
    #[error("failed to create the first API token")]
    FirstToken(#[source] crate::tokens::TokenError),
    /// The Image Factory client could not be made.
    #[error("failed to set up the image factory client")]
    ImageFactory(#[source] talos_manager_core::ImageFactoryError),
    /// The worker's id could not be made.
    #[error("failed to make the job worker's id")]
    WorkerId(#[source] talos_manager_core::random::RandomError),
    /// The server failed while running.
    #[error("the HTTP server failed")]
    Server(#[source] std::io::Error),
}

/// Opens the configured database with its encryption key and applies pending migrations.
pub async fn open_store(config: &ServiceConfig) -> Result<Store, ServeError> {
    let (key, key_source) = config.resolve_encryption_key()?;
    if let Some(KeySource::NewFile(path)) = &key_source {
        tracing::warn!(
            path = %path.display(),
            "TALOS_MANAGER_ENCRYPTION_KEY is not set: generated a key file for secrets at rest; \
             back it up with the database, or set the variable"
        );
    }
    if config.database.backend == talos_manager_core::Backend::Sqlite {
        ensure_dir(&config.data_dir)?;
    }
    let store_error = |source| ServeError::Store {
        database: config.database.display.clone(),
        source,
    };
    let store = Store::connect(config.database.url.expose(), &key)
        .await
        .map_err(store_error)?;
    store.migrate().await.map_err(store_error)?;
    tracing::info!(database = %config.database.display, backend = store.backend().as_str(), "database ready");
    Ok(store)
}

/// Maps a store error of the configured database to [`ServeError::Store`].
fn store_error(config: &ServiceConfig) -> impl FnOnce(StoreError) -> ServeError + '_ {
    move |source| ServeError::Store {
        database: config.database.display.clone(),
        source,
    }
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn serve(config: ServiceConfig) -> Result<(), ServeError> {
    let prober = config.ssh_prober()?;
    let store = open_store(&config).await?;
    if store.backend() == talos_manager_core::Backend::Sqlite {
        let first_token = crate::tokens::first_start_token(
            &store,
            config.basic_auth_password.as_ref(),
            &config.data_dir,
        )
        .await
        .map_err(ServeError::FirstToken)?;
        if let Some(path) = first_token {
            // Only the path is logged: the token is in a file only the service's user can read.
            tracing::warn!(
                path = %path.display(),
                "no BASIC_AUTH_PASSWORD and no API token existed, so an API token named \"admin\" \
                 was created and written to this file (mode 0600): use it as `Authorization: \
                 Bearer <token>`, then delete the file (revoke it with `talos-manager token \
                 revoke admin`)"
            );
        }
    } else if config.basic_auth_password.is_none()
        && store
            .count_api_tokens()
            .await
            .map_err(store_error(&config))?
            == 0
    {
        // PostgreSQL replicas keep nothing on disk: the first token is made explicitly.
        tracing::warn!(
            "no BASIC_AUTH_PASSWORD and no API token exist: nobody can use the API until one is \
             made with `talos-manager token create admin --database-url …`"
        );
    }
    seed_provider_accounts(&store, &config)
        .await
        .map_err(|source| ServeError::Store {
            database: config.database.display.clone(),
            source,
        })?;
    let acceptor = TcpListener::bind(config.listen)
        .into_acceptor()
        .await
        .map_err(|source| ServeError::Listen {
            address: config.listen,
            source,
        })?;
    for address in acceptor.local_addr() {
        if let Some(address) = address.as_socket_addr() {
            tracing::info!(%address, "listening");
        }
    }
    let providers = talos_manager_core::sync::ProviderFactory::new(
        config.hetzner_robot_api_url.clone(),
        config.hetzner_cloud_api_url.clone(),
    );
    let queue = JobQueue::new(store.clone());
    let metrics = crate::metrics::Metrics::new();
    let cluster_health = std::sync::Arc::new(HealthMonitor::new(
        config.talos_settings(),
        HEALTH_CALL_TIMEOUT,
    ));
    let state = AppState {
        store: store.clone(),
        jobs: queue.clone(),
        basic_auth_password: config.basic_auth_password.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        metrics: metrics.clone(),
        image_factory: std::sync::Arc::new(talos_manager_core::image_factory::FactoryService::new(
            talos_manager_core::ImageFactory::new(&config.image_factory_url)
                .map_err(ServeError::ImageFactory)?,
            config.host.clone(),
        )),
        providers: providers.clone(),
        bootstrap: config.bootstrap_settings(),
        config_serving: std::sync::Arc::new(talos_manager_core::node_config::ConfigService::new(
            config.config_allow_ip_only,
        )),
        cluster_health: cluster_health.clone(),
    };
    let config_serving = state.config_serving.clone();
    // One signal stops both the HTTP server and the job worker.
    let (stop_sender, stop) = tokio::sync::watch::channel(false);
    let signal = tokio::spawn(async move {
        shutdown_signal().await;
        stop_sender.send_replace(true);
    });
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let mut sync_job = SyncJob::new(providers.clone()).with_policy(config.sync_policy.clone());
    if let Some(prober) = prober {
        sync_job = sync_job.with_prober(std::sync::Arc::new(prober));
    }
    let lifecycle = config.lifecycle_settings(providers.clone());
    let worker_id = Worker::unique_id().map_err(ServeError::WorkerId)?;
    let worker = Worker::new(queue.clone(), worker_id)
        .observer(std::sync::Arc::new(metrics))
        .register(sync_job)
        .register(
            BootstrapJob::new(providers, config.bootstrap_settings())
                .with_lifecycle(lifecycle.clone()),
        )
        .register(LabelAndTaintJob::default().with_talos(config.talos_settings()))
        .register(PushConfigJob::new(config.talos_settings()))
        .register(ResetJob::new(lifecycle.clone()))
        .register(RollingJob::upgrade(lifecycle.clone()))
        .register(ClusterBootstrapJob::new(lifecycle.clone()))
        .register(talos_manager_core::jobs::ConfigApplyJob::new(
            lifecycle.clone(),
        ))
        .register(RollingJob::reboot(lifecycle));
    let worker = tokio::spawn(worker.run(stopped(stop.clone())));
    let periodic_sync = (config.sync_interval_seconds > 0).then(|| {
        tokio::spawn(periodic_sync(
            store.clone(),
            queue.clone(),
            Duration::from_secs(config.sync_interval_seconds),
        ))
    });
    let retention = (config.job_retention_days > 0).then(|| {
        tokio::spawn(job_retention(
            store.clone(),
            Duration::from_secs(config.job_retention_days * 24 * 60 * 60),
        ))
    });
    let health_refresh = tokio::spawn(health_refresh(store.clone(), cluster_health));
    let result = poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            app(state).data(crate::api::ShutdownSignal(stop.clone())),
            stopped(stop),
            Some(GRACE_PERIOD),
        )
        .await;
    signal.abort();
    health_refresh.abort();
    if let Some(periodic_sync) = periodic_sync {
        periodic_sync.abort();
    }
    if let Some(retention) = retention {
        retention.abort();
    }
    let _ = tokio::time::timeout(GRACE_PERIOD, worker).await;
    // The last second of buffered `/config` request times, before the pool closes.
    config_serving.flush_request_times(&store).await;
    store.close().await;
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            Ok(())
        }
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "server failed");
            Err(ServeError::Server(error))
        }
    }
}

/// Seeds provider accounts from the legacy variables (`HETZNER_WEBSERVICE_USER`/`_PASSWORD`,
/// `HETZNER_CLOUD_API_TOKEN`) when no account of that provider has that name yet. The secret is
/// never logged.
async fn seed_provider_accounts(store: &Store, config: &ServiceConfig) -> Result<(), StoreError> {
    use talos_manager_core::ProviderKind;
    /// The name of the Cloud account seeded from `HETZNER_CLOUD_API_TOKEN`.
    const LEGACY_CLOUD_NAME: &str = "HETZNER_CLOUD_API_TOKEN";
    let mut seeds = Vec::new();
    if let Some((user, password)) = &config.hetzner_robot_credentials {
        seeds.push((ProviderKind::HetznerRobot, user.as_str(), password));
    }
    if let Some(token) = &config.hetzner_cloud_api_token {
        seeds.push((ProviderKind::HetznerCloud, LEGACY_CLOUD_NAME, token));
    }
    if seeds.is_empty() {
        return Ok(());
    }
    let existing = store.list_provider_accounts().await?;
    for (provider, name, secret) in seeds {
        let exists = existing
            .iter()
            .any(|account| account.provider == provider && account.name.eq_ignore_ascii_case(name));
        if !exists {
            let account = store
                .create_provider_account(provider, name, secret)
                .await?;
            tracing::info!(%provider, %name, "provider account {} seeded from the environment", account.id);
        }
    }
    Ok(())
}

/// How many old jobs one retention statement deletes at most: each batch is one short
/// transaction, so `/config` and the workers never wait long behind it.
const RETENTION_BATCH: u32 = 1000;

/// Deletes finished jobs, with their log lines, older than `retention`, now and then every hour,
/// in batches of [`RETENTION_BATCH`].
async fn job_retention(store: Store, retention: Duration) {
    let mut ticks = tokio::time::interval(Duration::from_secs(60 * 60));
    loop {
        ticks.tick().await;
        let before = time::OffsetDateTime::now_utc() - retention;
        let mut deleted = 0;
        loop {
            match store
                .delete_jobs_finished_before(before, RETENTION_BATCH)
                .await
            {
                Ok(batch) => {
                    deleted += batch;
                    if batch < u64::from(RETENTION_BATCH) {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "job retention: could not delete old jobs");
                    break;
                }
            }
        }
        if deleted > 0 {
            tracing::info!("job retention: deleted {deleted} job(s) finished before {before}");
        }
    }
}

/// How long one question of a health check (to a node, or the Kubernetes API) may take.
const HEALTH_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks every cluster's health every [`REFRESH_INTERVAL`], for `/metrics`.
async fn health_refresh(store: Store, monitor: std::sync::Arc<HealthMonitor>) {
    let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = monitor.refresh_all(&store).await {
            tracing::warn!(error = %error_chain(&error), "cluster health: could not list clusters");
        }
    }
}

/// Queues a sync job every `interval`, unless one is already queued or running (one indexed
/// lookup, whatever the size of the job history).
async fn periodic_sync(store: Store, queue: JobQueue, interval: Duration) {
    use talos_manager_core::store::NewJob;
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let pending = match store.has_active_job(JobKind::Sync.as_str()).await {
            Ok(pending) => pending,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "periodic sync: could not list jobs");
                continue;
            }
        };
        if pending {
            continue;
        }
        let job = NewJob {
            kind: JobKind::Sync.to_string(),
            server_id: None,
            args: serde_json::json!({}),
        };
        if let Err(error) = queue.enqueue(&job).await {
            tracing::warn!(error = %error_chain(&error), "periodic sync: could not queue the job");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
