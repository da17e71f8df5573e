//! The whole service in the test process, on a loopback port, with a fresh database and an
//! authenticated client.

use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use talos_manager_core::node_config::TrustedProxies;
use talos_manager_core::testing::TestDatabase;
use talos_manager_core::{Backend, Secret, Store};
use talos_manager_http::{AppState, app};

/// The password the test service accepts for HTTP Basic.
pub(crate) const PASSWORD: &str = "test-basic-password";

/// The public host name the test service has (`HOST`).
pub(crate) const TEST_HOST: &str = "tm.example.com";

/// The first document of a served machine config (the v1alpha1 one; Talos 1.12 and newer
/// configs have more documents after it).
pub(crate) fn v1alpha1_document<T: serde::de::DeserializeOwned>(text: &str) -> T {
    let first = serde_norway::Deserializer::from_str(text)
        .next()
        .expect("a YAML document");
    T::deserialize(first).expect("the v1alpha1 document")
}

/// The document of `kind` in a served multi-document machine config (Talos 1.12 and newer).
pub(crate) fn typed_document(text: &str, kind: &str) -> Option<serde_json::Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| -> serde_json::Value {
            serde::Deserialize::deserialize(doc).expect("a YAML document")
        })
        .find(|doc| doc["kind"] == kind)
}

/// The disk a served machine config installs Talos to, whatever the Talos version: the
/// `UnattendedInstallConfig` document's disk selector (`disk.dev_path == "…"`, Talos 1.14 and
/// newer), else `machine.install.disk`.
pub(crate) fn node_install_disk(text: &str) -> Option<String> {
    if let Some(install) = typed_document(text, "UnattendedInstallConfig") {
        let selector = install["provisioning"]["diskSelector"]["match"].as_str()?;
        let path = selector
            .strip_prefix("disk.dev_path == \"")?
            .strip_suffix('"')?;
        return Some(path.to_owned());
    }
    let config: serde_json::Value = v1alpha1_document(text);
    config["machine"]["install"]["disk"]
        .as_str()
        .map(str::to_owned)
}

/// The hostname a served machine config gives its node, whatever the Talos version: the
/// `HostnameConfig` document's (Talos 1.12 and newer), else `machine.network.hostname`.
pub(crate) fn node_hostname(text: &str) -> Option<String> {
    let documents: Vec<serde_json::Value> = serde_norway::Deserializer::from_str(text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("a YAML document"))
        .collect();
    documents
        .iter()
        .find(|doc| doc["kind"] == "HostnameConfig")
        .map(|doc| &doc["hostname"])
        .or_else(|| {
            documents
                .first()
                .map(|doc| &doc["machine"]["network"]["hostname"])
        })
        .and_then(|hostname| hostname.as_str().map(str::to_owned))
}

/// An HTTP client for tests: bounded waits, so a hung service fails the test instead of
/// hanging it.
pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("build an HTTP client")
}

/// Declares `$name::sqlite` and `$name::postgres`, each running `$body` with `$server`, a
/// [`TestServer`] on a fresh database of that backend.
macro_rules! api_test {
    ($name:ident, |$server:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                run(talos_manager_core::Backend::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                run(talos_manager_core::Backend::Postgres).await
            }

            async fn run(backend: talos_manager_core::Backend) {
                let $server = crate::http::server::TestServer::start(backend).await;
                $body
            }
        }
    };
}
pub(crate) use api_test;

/// Bootstrap settings for tests: `private_key` (none: rescue and bootstrap refuse),
/// the rescue SSH port, short waits, and images from `image_factory_url`.
pub(crate) fn test_bootstrap_settings(
    private_key: Option<Secret<String>>,
    rescue_ssh_port: u16,
    image_factory_url: &str,
) -> talos_manager_http::jobs::BootstrapSettings {
    talos_manager_http::jobs::BootstrapSettings {
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

pub(crate) struct TestServer {
    pub(crate) base: String,
    pub(crate) database: TestDatabase,
    pub(crate) token: String,
    pub(crate) client: reqwest::Client,
    factory: talos_manager_fake_hetzner::FakeImageFactory,
    /// The fake Robot webservice the service's provider accounts talk to (empty at start).
    pub(crate) robot: talos_manager_fake_hetzner::FakeRobot,
    /// The fake Cloud API the service's provider accounts talk to (empty at start).
    pub(crate) cloud: talos_manager_fake_hetzner::FakeCloud,
    server: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub(crate) async fn start(backend: Backend) -> TestServer {
        TestServer::start_trusting(backend, TrustedProxies::default()).await
    }

    /// A server that believes `X-Forwarded-For` from `trusted_proxies`.
    pub(crate) async fn start_trusting(
        backend: Backend,
        trusted_proxies: TrustedProxies,
    ) -> TestServer {
        TestServer::start_full(backend, trusted_proxies, None, Some(TEST_HOST), None, None).await
    }

    /// A server that believes `X-Forwarded-For` from `trusted_proxies` and serves `/config`
    /// with `serving` (IP-only path, miss limits).
    pub(crate) async fn start_serving(
        backend: Backend,
        trusted_proxies: TrustedProxies,
        serving: talos_manager_http::node_config::ConfigServing,
    ) -> TestServer {
        TestServer::start_full(
            backend,
            trusted_proxies,
            None,
            Some(TEST_HOST),
            None,
            Some(serving),
        )
        .await
    }

    /// A server using the Image Factory at `factory_url` (else its own fake one) and `HOST`.
    pub(crate) async fn start_with_factory(
        backend: Backend,
        factory_url: Option<&str>,
        host: Option<&str>,
    ) -> TestServer {
        TestServer::start_full(
            backend,
            TrustedProxies::default(),
            factory_url,
            host,
            None,
            None,
        )
        .await
    }

    /// A server with these bootstrap settings (SSH key, rescue port, image sources).
    pub(crate) async fn start_with_bootstrap(
        backend: Backend,
        bootstrap: talos_manager_http::jobs::BootstrapSettings,
    ) -> TestServer {
        TestServer::start_full(
            backend,
            TrustedProxies::default(),
            None,
            Some(TEST_HOST),
            Some(bootstrap),
            None,
        )
        .await
    }

    async fn start_full(
        backend: Backend,
        trusted_proxies: TrustedProxies,
        factory_url: Option<&str>,
        host: Option<&str>,
        bootstrap: Option<talos_manager_http::jobs::BootstrapSettings>,
        config_serving: Option<talos_manager_http::node_config::ConfigServing>,
    ) -> TestServer {
        let factory = talos_manager_fake_hetzner::FakeImageFactory::start()
            .await
            .unwrap();
        let factory_client =
            talos_manager_core::ImageFactory::new(factory_url.unwrap_or(factory.url())).unwrap();
        let database = TestDatabase::new(backend).await;
        let token = talos_manager_http::tokens::create_token(database.store(), "test")
            .await
            .unwrap()
            .into_inner();
        let robot = talos_manager_fake_hetzner::FakeRobot::start_empty()
            .await
            .unwrap();
        let cloud = talos_manager_fake_hetzner::FakeCloud::start_empty()
            .await
            .unwrap();
        let state = AppState {
            store: database.store().clone(),
            jobs: talos_manager_http::jobs::JobQueue::new(database.store().clone()),
            basic_auth_password: Some(Secret::new(PASSWORD.into())),
            metrics: talos_manager_http::metrics::Metrics::new(),
            trusted_proxies,
            image_factory: std::sync::Arc::new(
                talos_manager_http::image_factory::FactoryService::new(
                    factory_client,
                    host.map(str::to_owned),
                ),
            ),
            providers: talos_manager_core::sync::ProviderFactory::new(robot.url(), cloud.url())
                .with_retry_policy(talos_manager_core::RetryPolicy::for_fakes()),
            config_serving: std::sync::Arc::new(config_serving.unwrap_or_default()),
            bootstrap: bootstrap.unwrap_or_else(|| {
                test_bootstrap_settings(None, 22, factory_url.unwrap_or(factory.url()))
            }),
        };
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let address = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let server = tokio::spawn(async move {
            poem::Server::new_with_acceptor(acceptor)
                .run(app(state))
                .await
                .unwrap();
        });
        TestServer {
            base: format!("http://{address}"),
            database,
            token,
            client: crate::http::server::client(),
            factory,
            robot,
            cloud,
            server,
        }
    }

    /// The fake Image Factory the server uses (unless started with another URL).
    pub(crate) fn factory(&self) -> &talos_manager_fake_hetzner::FakeImageFactory {
        &self.factory
    }

    pub(crate) fn store(&self) -> &Store {
        self.database.store()
    }

    /// Provider clients for the server's fake Robot and Cloud APIs, as the service builds them.
    pub(crate) fn providers(&self) -> talos_manager_core::sync::ProviderFactory {
        talos_manager_core::sync::ProviderFactory::new(self.robot.url(), self.cloud.url())
            .with_retry_policy(talos_manager_core::RetryPolicy::for_fakes())
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Calls the API with the test token; returns the status and the JSON body (or `Null`).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// The usual start of a test's fleet through the API: the cluster `prod` (endpoint
    /// `https://prod.example.com:6443`) and the config template `config` (a `POST /configs`
    /// body); returns both as the API answered.
    pub(crate) async fn cluster_and_config(&self, config: Value) -> (Value, Value) {
        let cluster = self
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(serde_json::json!({"name": "prod", "endpoint": "https://prod.example.com:6443"})),
                201,
            )
            .await;
        let config = self
            .expect(Method::POST, "/api/v1/configs", Some(config), 201)
            .await;
        (cluster, config)
    }

    /// Waits (polling every 100 ms, at most `timeout`) until the job has ended; returns it as
    /// the API shows it.
    pub(crate) async fn job_ended(&self, job_id: &str, timeout: std::time::Duration) -> Value {
        talos_manager_core::testing::wait_for(
            format!("job {job_id} to end"),
            timeout,
            std::time::Duration::from_millis(100),
            || async {
                let job = self
                    .expect(Method::GET, &format!("/api/v1/jobs/{job_id}"), None, 200)
                    .await;
                if matches!(job["status"].as_str(), Some("queued" | "running")) {
                    Err(job)
                } else {
                    Ok(job)
                }
            },
        )
        .await
    }

    /// A server as the API shows it.
    pub(crate) async fn server_json(&self, api_id: &str) -> Value {
        self.expect(Method::GET, &format!("/api/v1/servers/{api_id}"), None, 200)
            .await
    }

    /// Calls the API and checks the status first; returns the JSON body.
    #[track_caller]
    pub(crate) fn expect<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        body: Option<Value>,
        status: u16,
    ) -> impl std::future::Future<Output = Value> + 'a {
        let caller = std::panic::Location::caller();
        async move {
            let (actual, value) = self.call(method.clone(), path, body).await;
            assert_eq!(
                actual.as_u16(),
                status,
                "{method} {path} (called at {caller}) answered {actual}: {value:#}"
            );
            value
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
