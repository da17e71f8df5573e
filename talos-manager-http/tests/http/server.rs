//! The whole service in the test process (`talos_manager_http::testing`), on a loopback port,
//! with a fresh database and an authenticated client; `api_test!` runs a test on both backends.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use talos_manager_core::Backend;
use talos_manager_core::node_config::TrustedProxies;
pub(crate) use talos_manager_http::testing::{PASSWORD, TEST_HOST};
use talos_manager_http::testing::{ServiceSettings, TestService};

pub(crate) use talos_manager_core::testing::config_documents::{
    node_hostname, node_install_disk, typed_document, v1alpha1_document,
};

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

pub(crate) use talos_manager_http::testing::test_bootstrap_settings;

/// The service of [`talos_manager_http::testing::TestService`] with an HTTP client that calls
/// its API with the test token; the service's fields and methods are reached through it.
pub(crate) struct TestServer {
    service: TestService,
    pub(crate) client: reqwest::Client,
}

impl std::ops::Deref for TestServer {
    type Target = TestService;

    fn deref(&self) -> &TestService {
        &self.service
    }
}

impl TestServer {
    pub(crate) async fn start(backend: Backend) -> TestServer {
        TestServer::start_with(ServiceSettings::new(backend)).await
    }

    /// A server that believes `X-Forwarded-For` from `trusted_proxies`.
    pub(crate) async fn start_trusting(
        backend: Backend,
        trusted_proxies: TrustedProxies,
    ) -> TestServer {
        TestServer::start_with(ServiceSettings::new(backend).trusting(trusted_proxies)).await
    }

    /// A server that believes `X-Forwarded-For` from `trusted_proxies` and serves `/config`
    /// with `serving` (IP-only path, miss limits).
    pub(crate) async fn start_serving(
        backend: Backend,
        trusted_proxies: TrustedProxies,
        serving: talos_manager_core::node_config::ConfigService,
    ) -> TestServer {
        TestServer::start_with(
            ServiceSettings::new(backend)
                .trusting(trusted_proxies)
                .serving(serving),
        )
        .await
    }

    /// A server using the Image Factory at `factory_url` (else its own fake one) and `HOST`.
    pub(crate) async fn start_with_factory(
        backend: Backend,
        factory_url: Option<&str>,
        host: Option<&str>,
    ) -> TestServer {
        TestServer::start_with(ServiceSettings::new(backend).factory(factory_url, host)).await
    }

    /// A server with these bootstrap settings (SSH key, rescue port, image sources).
    pub(crate) async fn start_with_bootstrap(
        backend: Backend,
        bootstrap: talos_manager_core::jobs::BootstrapSettings,
    ) -> TestServer {
        TestServer::start_with(ServiceSettings::new(backend).bootstrap(bootstrap)).await
    }

    /// A server whose cluster health checks reach nodes as `talos` says (a fake's port).
    pub(crate) async fn start_with_talos(
        backend: Backend,
        talos: talos_manager_core::jobs::TalosSettings,
    ) -> TestServer {
        TestServer::start_with(ServiceSettings::new(backend).talos(talos)).await
    }

    async fn start_with(settings: ServiceSettings) -> TestServer {
        TestServer {
            service: TestService::start(settings).await,
            client: crate::http::server::client(),
        }
    }

    /// The fake Image Factory the server uses (unless started with another URL).
    pub(crate) fn factory(&self) -> &talos_manager_fake_hetzner::FakeImageFactory {
        &self.service.factory
    }

    /// Provider clients for the server's fake Robot and Cloud APIs, as the service builds them.
    pub(crate) fn providers(&self) -> talos_manager_core::sync::ProviderFactory {
        self.service.providers().clone()
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
