//! The Kubernetes API client: reqwest over rustls, authenticated with a client certificate,
//! trusting only the cluster's CA. The calls: `GET /version`; `GET`, `PATCH` (labels, taints,
//! cordon) and `DELETE` of a node; the pods on a node and their eviction.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;

use super::node::{KubernetesVersion, Node};
use super::pod::{Pod, PodList};
use crate::Secret;
use crate::random::RandomSource;
use crate::talos::{ClientConfigError, SecretsBundle, admin_client_certificate};

/// `GET /api/v1/nodes`'s answer, the part we read.
#[derive(serde::Deserialize)]
struct NodeList {
    #[serde(default)]
    items: Vec<Node>,
}

/// How long the client waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTimeouts {
    /// Timeout for establishing a connection (TLS included).
    pub connect: Duration,
    /// Timeout for one whole request, answer included.
    pub request: Duration,
}

impl Default for ClientTimeouts {
    /// 5 s to connect, 15 s per request: the API server answers these calls at once.
    fn default() -> Self {
        ClientTimeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(15),
        }
    }
}

/// What went wrong talking to a Kubernetes API server.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    /// The endpoint is not an `https://host:port` URL.
    #[error("invalid kubernetes endpoint {endpoint:?}")]
    InvalidEndpoint {
        /// The endpoint given.
        endpoint: String,
    },
    /// The admin client certificate could not be issued from the cluster's CA.
    #[error("failed to issue the kubernetes admin client certificate")]
    Credentials(#[source] ClientConfigError),
    /// The CA or the client certificate is unusable for TLS.
    #[error("failed to set up TLS for the kubernetes API at {endpoint}")]
    Tls {
        /// The API server.
        endpoint: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// No answer: connection refused, TLS handshake failed, timeout.
    #[error("the kubernetes API at {endpoint} is unreachable ({operation})")]
    Unreachable {
        /// The API server.
        endpoint: String,
        /// What was being done (`get node worker-1`).
        operation: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// 401: the API server did not accept our admin client certificate: none reached it, it
    /// is not signed by the cluster's CA (a secrets bundle of another cluster), or it is not
    /// valid by the server's clock.
    #[error(
        "the cluster at {endpoint} refused our admin certificate ({operation}, HTTP 401): {message}; check that the cluster's secrets bundle is this cluster's and that the nodes' clocks are right"
    )]
    CertificateRefused {
        /// The API server.
        endpoint: String,
        /// What was being done.
        operation: String,
        /// Kubernetes' `Status` message.
        message: String,
    },
    /// 403 to anything but an eviction: our certificate was accepted but lacks the rights (RBAC,
    /// an admission webhook).
    #[error("the kubernetes API at {endpoint} forbids {operation} (HTTP 403): {message}")]
    Forbidden {
        /// The API server.
        endpoint: String,
        /// What was being done.
        operation: String,
        /// Kubernetes' `Status` message.
        message: String,
    },
    /// 403 to an eviction: the API server forbids evicting the pod (a PodDisruptionBudget
    /// with negative `disruptionsAllowed`, or no right to evict). Not a credentials problem;
    /// waiting does not help a drain. (A namespace being deleted is
    /// [`Eviction::NamespaceTerminating`], not this.)
    #[error("the kubernetes API at {endpoint} forbids evicting pod {pod} (HTTP 403): {message}")]
    EvictionForbidden {
        /// The API server.
        endpoint: String,
        /// The pod, `namespace/name`.
        pod: String,
        /// Kubernetes' `Status` message.
        message: String,
    },
    /// 404: the object does not exist (yet).
    #[error("{kind} {name:?} not found in the kubernetes API at {endpoint}")]
    NotFound {
        /// The API server.
        endpoint: String,
        /// What was looked for (`node`).
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// 409: the object changed since it was read (a conditional write lost a race).
    #[error("the kubernetes API at {endpoint} reported a conflict ({operation}): {message}")]
    Conflict {
        /// The API server.
        endpoint: String,
        /// What was being done.
        operation: String,
        /// Kubernetes' `Status` message.
        message: String,
    },
    /// Any other error answer.
    #[error("the kubernetes API at {endpoint} answered HTTP {status} to {operation}: {message}")]
    Api {
        /// The API server.
        endpoint: String,
        /// What was being done.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// Kubernetes' `Status` reason (`Invalid`, `UnsupportedMediaType`), when given.
        reason: Option<String>,
        /// Kubernetes' `Status` message, or the start of the body.
        message: String,
        /// The answer's `Retry-After`, when it gave one in seconds.
        retry_after: Option<Duration>,
    },
    /// A 2xx answer whose body is not what the call returns.
    #[error("the kubernetes API at {endpoint} sent an unreadable answer ({operation})")]
    InvalidResponse {
        /// The API server.
        endpoint: String,
        /// What was being done.
        operation: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// How often a request the API server throttled (429) is asked again.
pub const THROTTLE_RETRIES: u32 = 5;
/// The longest wait before asking again after a 429, whatever `Retry-After` says.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

impl KubernetesError {
    /// Whether waiting may help: the API server is not reachable yet, or the object does not
    /// exist yet.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            KubernetesError::Unreachable { .. } | KubernetesError::NotFound { .. }
        ) || matches!(self, KubernetesError::Api { status, .. } if *status >= 500)
    }
}

/// Kubernetes' error body (`kind: Status`), the parts we show.
#[derive(Debug, serde::Deserialize)]
struct Status {
    #[serde(default)]
    message: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    details: Option<StatusDetails>,
}

/// `Status.details`: the causes say why in machine terms (`NamespaceTerminating`).
#[derive(Debug, Default, serde::Deserialize)]
struct StatusDetails {
    #[serde(default)]
    causes: Vec<StatusCause>,
}

#[derive(Debug, serde::Deserialize)]
struct StatusCause {
    #[serde(default)]
    reason: String,
}

/// The `Status` cause of a 403 to an eviction in a namespace being deleted.
const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";

/// What an eviction request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// The API server accepted it: the pod is being deleted.
    Evicted,
    /// A PodDisruptionBudget forbids it for now (HTTP 429); ask again later.
    Blocked {
        /// The API server's message.
        message: String,
    },
    /// The pod's namespace is being deleted (HTTP 403, cause `NamespaceTerminating`): no
    /// eviction can succeed, but the namespace controller is about to delete the pod. As
    /// `kubectl drain` does, ask again later and, once the pod is terminating, wait for it.
    NamespaceTerminating {
        /// The API server's message.
        message: String,
    },
    /// The pod no longer exists.
    Gone,
}

/// A request body.
#[derive(Clone, Copy)]
enum Body<'a> {
    None,
    MergePatch(&'a serde_json::Value),
    Json(&'a serde_json::Value),
}

/// A client for one cluster's Kubernetes API.
#[derive(Debug, Clone)]
pub struct KubernetesClient {
    http: reqwest::Client,
    base: Url,
    endpoint: String,
}

impl KubernetesClient {
    /// A client for the API at `endpoint` (`https://host:port`) that trusts only `ca_pem` and
    /// presents the client certificate `cert_pem` with its key `key_pem` (PEM text; the key
    /// may be PKCS#8, PKCS#1 or SEC1).
    pub fn new(
        endpoint: &str,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &Secret<String>,
        timeouts: ClientTimeouts,
    ) -> Result<KubernetesClient, KubernetesError> {
        let invalid = || KubernetesError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
        };
        let base = Url::parse(endpoint).map_err(|_| invalid())?;
        if base.scheme() != "https" || base.host().is_none() || base.cannot_be_a_base() {
            return Err(invalid());
        }
        let tls = |source| KubernetesError::Tls {
            endpoint: endpoint.to_owned(),
            source,
        };
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).map_err(tls)?;
        let mut identity_pem = cert_pem.trim_end().to_owned();
        identity_pem.push('\n');
        identity_pem.push_str(key_pem.expose());
        let identity = reqwest::Identity::from_pem(identity_pem.as_bytes()).map_err(tls)?;
        let http = crate::provider::client_builder(timeouts.connect, timeouts.request)
            .tls_certs_only([ca])
            .identity(identity)
            .https_only(true)
            .build()
            .map_err(tls)?;
        Ok(KubernetesClient {
            http,
            base,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        })
    }

    /// A client for a Talos cluster with admin rights (`system:masters`), from its secrets
    /// bundle: trusts the bundle's Kubernetes CA and presents a client certificate issued from
    /// it at `now`, as `talosctl kubeconfig` would hand out. Nothing is sent yet.
    pub fn for_cluster(
        secrets: &SecretsBundle,
        endpoint: &str,
        timeouts: ClientTimeouts,
        now: time::OffsetDateTime,
        rng: &mut dyn RandomSource,
    ) -> Result<KubernetesClient, KubernetesError> {
        let client =
            admin_client_certificate(secrets, now, rng).map_err(KubernetesError::Credentials)?;
        let pem = |b64: &str| {
            STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default()
        };
        KubernetesClient::new(
            endpoint,
            &pem(&secrets.k8s.crt),
            &pem(&client.crt),
            &Secret::new(pem(&client.key)),
            timeouts,
        )
    }

    /// The API server's endpoint.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `GET /version`: the Kubernetes version the API server runs.
    pub async fn version(&self) -> Result<KubernetesVersion, KubernetesError> {
        let url = self.url(&["version"]);
        self.send(Method::GET, url, Body::None, "get version", None)
            .await
    }

    /// `GET /api/v1/nodes`: every node of the cluster.
    pub async fn list_nodes(&self) -> Result<Vec<Node>, KubernetesError> {
        let url = self.url(&["api", "v1", "nodes"]);
        let list: NodeList = self
            .send(Method::GET, url, Body::None, "list nodes", None)
            .await?;
        Ok(list.items)
    }

    /// `GET /api/v1/nodes/{name}`; [`KubernetesError::NotFound`] when there is no such node.
    pub async fn get_node(&self, name: &str) -> Result<Node, KubernetesError> {
        let url = self.url(&["api", "v1", "nodes", name]);
        let operation = format!("get node {name}");
        self.send(
            Method::GET,
            url,
            Body::None,
            &operation,
            Some(("node", name)),
        )
        .await
    }

    /// Cordons (`true`) or uncordons (`false`) a node: a merge patch of `spec.unschedulable`.
    pub async fn set_unschedulable(
        &self,
        name: &str,
        unschedulable: bool,
    ) -> Result<Node, KubernetesError> {
        let url = self.url(&["api", "v1", "nodes", name]);
        let (operation, value) = if unschedulable {
            (format!("cordon node {name}"), serde_json::Value::Bool(true))
        } else {
            // As `kubectl uncordon`: the field removed, which reads as `false`.
            (format!("uncordon node {name}"), serde_json::Value::Null)
        };
        let patch = serde_json::json!({ "spec": { "unschedulable": value } });
        self.send(
            Method::PATCH,
            url,
            Body::MergePatch(&patch),
            &operation,
            Some(("node", name)),
        )
        .await
    }

    /// `DELETE /api/v1/nodes/{name}`: `true` when it was deleted, `false` when there was no
    /// such node.
    pub async fn delete_node(&self, name: &str) -> Result<bool, KubernetesError> {
        let url = self.url(&["api", "v1", "nodes", name]);
        let operation = format!("delete node {name}");
        let answer: Result<serde_json::Value, _> = self
            .send(
                Method::DELETE,
                url,
                Body::None,
                &operation,
                Some(("node", name)),
            )
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(KubernetesError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// `GET /api/v1/pods?fieldSelector=spec.nodeName=<name>`: the pods scheduled on a node, in
    /// every namespace.
    pub async fn pods_on_node(&self, name: &str) -> Result<Vec<Pod>, KubernetesError> {
        let mut url = self.url(&["api", "v1", "pods"]);
        url.query_pairs_mut()
            .append_pair("fieldSelector", &format!("spec.nodeName={name}"));
        let operation = format!("list pods on node {name}");
        let list: PodList = self
            .send(Method::GET, url, Body::None, &operation, None)
            .await?;
        Ok(list.items)
    }

    /// `POST /api/v1/namespaces/{namespace}/pods/{name}/eviction` with a `policy/v1`
    /// `Eviction`: the API server deletes the pod gracefully unless a PodDisruptionBudget
    /// forbids it now (HTTP 429, [`Eviction::Blocked`]).
    pub async fn evict_pod(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Eviction, KubernetesError> {
        let url = self.url(&[
            "api",
            "v1",
            "namespaces",
            namespace,
            "pods",
            name,
            "eviction",
        ]);
        let operation = format!("evict pod {namespace}/{name}");
        let body = serde_json::json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": { "name": name, "namespace": namespace },
        });
        // A 429 here is a PodDisruptionBudget's answer: the drain asks again, not the client.
        let answer: Result<serde_json::Value, _> = self
            .send_once(
                Method::POST,
                url,
                Body::Json(&body),
                &operation,
                Some(("pod", name)),
            )
            .await;
        match answer {
            Ok(_) => Ok(Eviction::Evicted),
            Err(KubernetesError::NotFound { .. }) => Ok(Eviction::Gone),
            Err(KubernetesError::Api {
                status: 429,
                message,
                ..
            }) => Ok(Eviction::Blocked { message }),
            Err(KubernetesError::Api {
                status: 403,
                reason: Some(reason),
                message,
                ..
            }) if reason == NAMESPACE_TERMINATING => Ok(Eviction::NamespaceTerminating { message }),
            Err(KubernetesError::Forbidden {
                endpoint, message, ..
            }) => Err(KubernetesError::EvictionForbidden {
                endpoint,
                pod: format!("{namespace}/{name}"),
                message,
            }),
            Err(error) => Err(error),
        }
    }

    /// `PATCH /api/v1/nodes/{name}` with a JSON merge patch (RFC 7386): maps merge per key
    /// (`null` deletes one), lists are replaced whole. Put `metadata.resourceVersion` in the
    /// patch to make it conditional: a node changed meanwhile answers
    /// [`KubernetesError::Conflict`].
    pub async fn patch_node(
        &self,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Node, KubernetesError> {
        let url = self.url(&["api", "v1", "nodes", name]);
        let operation = format!("patch node {name}");
        self.send(
            Method::PATCH,
            url,
            Body::MergePatch(patch),
            &operation,
            Some(("node", name)),
        )
        .await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// As [`KubernetesClient::send_once`], asking again after a 429 (API Priority and
    /// Fairness under load; any verb): after the answer's `Retry-After` (at most
    /// [`MAX_RETRY_AFTER`]), else after 1 s doubling, at most [`THROTTLE_RETRIES`] times.
    async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Body<'_>,
        operation: &str,
        object: Option<(&'static str, &str)>,
    ) -> Result<T, KubernetesError> {
        let mut backoff = Duration::from_secs(1);
        let mut attempt = 0;
        loop {
            match self
                .send_once(method.clone(), url.clone(), body, operation, object)
                .await
            {
                Err(KubernetesError::Api {
                    status: 429,
                    retry_after,
                    ..
                }) if attempt < THROTTLE_RETRIES => {
                    attempt += 1;
                    let wait = retry_after.unwrap_or(backoff).min(MAX_RETRY_AFTER);
                    tracing::debug!(endpoint = %self.endpoint, %operation, wait_ms = wait.as_millis() as u64, "kubernetes API throttled us; asking again");
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(MAX_RETRY_AFTER);
                }
                answer => return answer,
            }
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Body<'_>,
        operation: &str,
        object: Option<(&'static str, &str)>,
    ) -> Result<T, KubernetesError> {
        crate::dial_guard::enforce_url("Kubernetes API", url.as_str());
        let endpoint = || self.endpoint.clone();
        let mut request = self
            .http
            .request(method, url)
            .header(reqwest::header::ACCEPT, "application/json");
        match body {
            Body::None => {}
            Body::MergePatch(patch) => {
                request = request
                    .header(CONTENT_TYPE, "application/merge-patch+json")
                    .body(patch.to_string());
            }
            Body::Json(value) => {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(value.to_string());
            }
        }
        let unreachable = |source| KubernetesError::Unreachable {
            endpoint: endpoint(),
            operation: operation.to_owned(),
            source,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.map_err(unreachable)?;
        tracing::debug!(endpoint = %self.endpoint, %operation, status = status.as_u16(), "kubernetes request");
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|source| {
                KubernetesError::InvalidResponse {
                    endpoint: endpoint(),
                    operation: operation.to_owned(),
                    source,
                }
            });
        }
        let parsed: Option<Status> = serde_json::from_slice(&body).ok();
        let message = match &parsed {
            Some(parsed) if !parsed.message.is_empty() => parsed.message.clone(),
            _ => String::from_utf8_lossy(&body).chars().take(200).collect(),
        };
        let namespace_terminating = parsed
            .as_ref()
            .and_then(|parsed| parsed.details.as_ref())
            .is_some_and(|details| {
                details
                    .causes
                    .iter()
                    .any(|cause| cause.reason == NAMESPACE_TERMINATING)
            });
        let reason = parsed.and_then(|parsed| parsed.reason);
        Err(match status {
            StatusCode::UNAUTHORIZED => KubernetesError::CertificateRefused {
                endpoint: endpoint(),
                operation: operation.to_owned(),
                message,
            },
            StatusCode::FORBIDDEN if namespace_terminating => KubernetesError::Api {
                endpoint: endpoint(),
                operation: operation.to_owned(),
                status: 403,
                reason: Some(NAMESPACE_TERMINATING.to_owned()),
                message,
                retry_after,
            },
            StatusCode::FORBIDDEN => KubernetesError::Forbidden {
                endpoint: endpoint(),
                operation: operation.to_owned(),
                message,
            },
            StatusCode::NOT_FOUND if object.is_some() => {
                let (kind, name) = object.unwrap_or_default();
                KubernetesError::NotFound {
                    endpoint: endpoint(),
                    kind,
                    name: name.to_owned(),
                }
            }
            StatusCode::CONFLICT => KubernetesError::Conflict {
                endpoint: endpoint(),
                operation: operation.to_owned(),
                message,
            },
            _ => KubernetesError::Api {
                endpoint: endpoint(),
                operation: operation.to_owned(),
                status: status.as_u16(),
                reason,
                message,
                retry_after,
            },
        })
    }
}
