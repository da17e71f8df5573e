//! The service in the test process (feature `testing`): [`TestService`] starts [`app`] on a
//! loopback port, on a fresh database of either backend (`talos_manager_core::testing`), with
//! one API token and the fake Hetzner Robot and Cloud APIs and Image Factory
//! (`talos-manager-fake-hetzner`). The service's own tests, the Terraform provider's and any
//! other crate's start it the same way; [`ServiceSettings`] says how it differs from the
//! defaults.
//!
//! It runs no job worker: a test that needs jobs to run starts one with the service's
//! [`TestService::providers`] and the job handlers it needs.

use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use talos_manager_core::node_config::TrustedProxies;
use talos_manager_core::sync::ProviderFactory;
use talos_manager_core::testing::TestDatabase;
use talos_manager_core::{Backend, RetryPolicy, Secret, Store};
use talos_manager_fake_hetzner::{FakeCloud, FakeImageFactory, FakeRobot};

use crate::{AppState, app};
use talos_manager_core::cluster_health::HealthMonitor;
use talos_manager_core::jobs::{BootstrapSettings, TalosSettings};
use talos_manager_core::node_config::ConfigService;

/// The password the test service accepts for HTTP Basic, unless set otherwise.
pub const PASSWORD: &str = "test-basic-password";

/// The public host name the test service has (`HOST`), unless set otherwise.
pub const TEST_HOST: &str = "tm.example.com";

/// Bootstrap settings for tests: `private_key` (none: rescue and bootstrap refuse), the rescue
/// SSH port, short waits, `HOST` [`TEST_HOST`], and images from `image_factory_url`.
pub fn test_bootstrap_settings(
    private_key: Option<Secret<String>>,
    rescue_ssh_port: u16,
    image_factory_url: &str,
) -> BootstrapSettings {
    BootstrapSettings {
        ssh_private_key: private_key,
        rescue_ssh_port,
        rescue_timeout: std::time::Duration::from_secs(20),
        rescue_poll: std::time::Duration::from_millis(100),
        environment: talos_manager_core::bootstrap::BootstrapEnvironment {
            host: Some(TEST_HOST.to_owned()),
            image_factory_url: image_factory_url.to_owned(),
            amd64_image_url: None,
            arm64_image_url: None,
        },
    }
}

/// How a [`TestService`] is configured; [`ServiceSettings::new`] is the usual test service.
#[derive(Debug)]
pub struct ServiceSettings {
    /// The database backend.
    pub backend: Backend,
    /// The name of the API token made at start.
    pub token_name: String,
    /// `BASIC_AUTH_PASSWORD`.
    pub basic_auth_password: String,
    /// `TRUSTED_PROXIES`.
    pub trusted_proxies: TrustedProxies,
    /// `TALOS_IMAGE_FACTORY_URL`: `None` is the service's own fake Image Factory.
    pub factory_url: Option<String>,
    /// `HOST`.
    pub host: Option<String>,
    /// The bootstrap settings: `None` is [`test_bootstrap_settings`] without a key, on port 22,
    /// with the service's Image Factory.
    pub bootstrap: Option<BootstrapSettings>,
    /// What `/config` serves with: `None` is the default.
    pub config_serving: Option<ConfigService>,
    /// How cluster health checks reach nodes: `None` is the gRPC client on Talos's port.
    pub talos: Option<TalosSettings>,
}

impl ServiceSettings {
    /// The usual test service on `backend`: token `test`, password [`PASSWORD`], no trusted
    /// proxy, the fake Image Factory, `HOST` [`TEST_HOST`], default bootstrap and `/config`
    /// settings.
    pub fn new(backend: Backend) -> ServiceSettings {
        ServiceSettings {
            backend,
            token_name: "test".into(),
            basic_auth_password: PASSWORD.into(),
            trusted_proxies: TrustedProxies::default(),
            factory_url: None,
            host: Some(TEST_HOST.into()),
            bootstrap: None,
            config_serving: None,
            talos: None,
        }
    }

    /// Believes `X-Forwarded-For` from `trusted_proxies`.
    pub fn trusting(mut self, trusted_proxies: TrustedProxies) -> ServiceSettings {
        self.trusted_proxies = trusted_proxies;
        self
    }

    /// Serves `/config` with `serving` (IP-only path, miss limits).
    pub fn serving(mut self, serving: ConfigService) -> ServiceSettings {
        self.config_serving = Some(serving);
        self
    }

    /// Uses the Image Factory at `factory_url` (else its own fake one) and `host` as `HOST`.
    pub fn factory(mut self, factory_url: Option<&str>, host: Option<&str>) -> ServiceSettings {
        self.factory_url = factory_url.map(str::to_owned);
        self.host = host.map(str::to_owned);
        self
    }

    /// Checks clusters' health reaching nodes as `talos` says (the fake Talos API's port).
    pub fn talos(mut self, talos: TalosSettings) -> ServiceSettings {
        self.talos = Some(talos);
        self
    }

    /// Bootstraps with these settings (SSH key, rescue port, image sources).
    pub fn bootstrap(mut self, bootstrap: BootstrapSettings) -> ServiceSettings {
        self.bootstrap = Some(bootstrap);
        self
    }
}

/// The whole service on a loopback port, until dropped.
pub struct TestService {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The service's database.
    pub database: TestDatabase,
    /// The API token made at start (a bearer token).
    pub token: String,
    /// The fake Image Factory (the service's, unless started with another URL).
    pub factory: FakeImageFactory,
    /// The fake Robot webservice the service's provider accounts talk to (empty at start).
    pub robot: FakeRobot,
    /// The fake Cloud API the service's provider accounts talk to (empty at start).
    pub cloud: FakeCloud,
    providers: ProviderFactory,
    server: tokio::task::JoinHandle<()>,
}

impl TestService {
    /// Starts the service as `settings` say.
    ///
    /// # Panics
    /// When a fake, the database or the listener cannot be started.
    pub async fn start(settings: ServiceSettings) -> TestService {
        let factory = FakeImageFactory::start()
            .await
            .expect("start the fake Image Factory");
        let database = TestDatabase::new(settings.backend).await;
        let token = crate::tokens::create_token(database.store(), &settings.token_name)
            .await
            .expect("create the test API token")
            .into_inner();
        let robot = FakeRobot::start_empty()
            .await
            .expect("start the fake Robot API");
        let cloud = FakeCloud::start_empty()
            .await
            .expect("start the fake Cloud API");
        let providers = ProviderFactory::new(robot.url(), cloud.url())
            .with_retry_policy(RetryPolicy::for_fakes());
        let state = app_state(database.store(), &factory, providers.clone(), settings);
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("listen on a loopback port");
        let address = acceptor.local_addr()[0]
            .as_socket_addr()
            .copied()
            .expect("a TCP address");
        let server = tokio::spawn(async move {
            poem::Server::new_with_acceptor(acceptor)
                .run(app(state))
                .await
                .expect("the test service runs");
        });
        TestService {
            base: format!("http://{address}"),
            database,
            token,
            factory,
            robot,
            cloud,
            providers,
            server,
        }
    }

    /// The service's store.
    pub fn store(&self) -> &Store {
        self.database.store()
    }

    /// The clients of the fake Hetzner APIs, as the service builds them.
    pub fn providers(&self) -> &ProviderFactory {
        &self.providers
    }

    /// The URL of `path` on the service.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The service's state as the test service has it: the one place tests build an
/// [`AppState`].
fn app_state(
    store: &Store,
    factory: &FakeImageFactory,
    providers: ProviderFactory,
    settings: ServiceSettings,
) -> AppState {
    let factory_url = settings.factory_url.as_deref().unwrap_or(factory.url());
    let factory_client =
        talos_manager_core::ImageFactory::new(factory_url).expect("a valid Image Factory URL");
    AppState {
        store: store.clone(),
        jobs: talos_manager_core::jobs::JobQueue::new(store.clone()),
        basic_auth_password: Some(Secret::new(settings.basic_auth_password)),
        metrics: crate::metrics::Metrics::new(),
        trusted_proxies: settings.trusted_proxies,
        image_factory: std::sync::Arc::new(talos_manager_core::image_factory::FactoryService::new(
            factory_client,
            settings.host,
        )),
        providers,
        config_serving: std::sync::Arc::new(settings.config_serving.unwrap_or_default()),
        cluster_health: std::sync::Arc::new(HealthMonitor::new(
            settings.talos.unwrap_or_else(|| TalosSettings {
                connector: std::sync::Arc::new(talos_manager_talos_api::GrpcTalosConnector::new()),
                port: talos_manager_core::talos_api::DEFAULT_PORT,
            }),
            std::time::Duration::from_secs(2),
        )),
        bootstrap: settings
            .bootstrap
            .unwrap_or_else(|| test_bootstrap_settings(None, 22, factory_url)),
    }
}
