//! A wire-level fake of a Kubernetes API server, for tests: HTTPS on `127.0.0.1:0` with a
//! serving certificate signed by the cluster's CA. Like a Talos cluster's kube-apiserver it
//! requests a client certificate at the handshake without requiring one, and answers 401
//! `Unauthorized` to a request without one (anonymous auth is off), or with one that is not the
//! CA's or not valid by its clock ([`FakeKubernetes::set_clock_behind`] makes that clock run
//! behind, as a node's can).
//! It does not depend on `talos-manager-core`, so it cannot share a bug with the client it
//! checks.
//!
//! ```no_run
//! # async fn demo(ca_crt_pem: &str, ca_key_pem: &str) -> std::io::Result<()> {
//! use std::time::Duration;
//! use talos_manager_fake_kubernetes::FakeKubernetes;
//!
//! let api = FakeKubernetes::start(ca_crt_pem, ca_key_pem).await?;
//! api.add_node_after("worker-1", Duration::from_secs(2), serde_json::json!({"team": "a"}), serde_json::json!([]));
//! println!("{}", api.url()); // https://127.0.0.1:…
//! # Ok(())
//! # }
//! ```
//!
//! # What it models
//!
//! - `GET /version`: `{major, minor, gitVersion, …}` of [`FakeKubernetes::set_version`]
//!   (`v1.33.1` at start).
//! - `GET /api/v1/nodes`: a `NodeList` of the nodes that have appeared; each node's
//!   `status.nodeInfo.kubeletVersion` is the API server's version when it was added.
//! - `GET /api/v1/nodes/{name}`: the node once it has appeared (nodes can be made to appear
//!   after a delay), else 404 with a `Status` body (`reason: NotFound`), as the real API.
//! - `PATCH /api/v1/nodes/{name}` with `application/merge-patch+json` (RFC 7386: maps merge,
//!   `null` deletes, lists are replaced). A `metadata.resourceVersion` in the patch must match
//!   the node's (else 409 `Conflict`); every successful write bumps it. Taint effects, and
//!   label and taint keys and values (`IsQualifiedName`, `IsValidLabelValue`), are checked as
//!   the API server checks them (422 `Invalid`). Other patch types: 415. Every patch is recorded.
//! - Nodes carry a `Ready` condition, `True` unless set otherwise with
//!   [`FakeKubernetes::set_ready`].
//! - `DELETE /api/v1/nodes/{name}`: removes the node (its pods stay, as until the garbage
//!   collector runs), 404 when there is none.
//! - `GET /api/v1/pods?fieldSelector=spec.nodeName=<node>`: a `PodList` of the pods added with
//!   [`FakeKubernetes::add_pod`] on that node (the only selector modelled; 400 for others).
//! - `POST /api/v1/namespaces/{ns}/pods/{name}/eviction` with a `policy/v1` `Eviction` body:
//!   deletes the pod (201): it is `Terminating` (`deletionTimestamp` set, still listed) for
//!   [`FakeKubernetes::set_termination_grace`] (default: gone at once), then gone. 429
//!   `TooManyRequests` while a PodDisruptionBudget blocks it ([`NewPod::blocked_evictions`]);
//!   403 `Forbidden` for a budget with negative `disruptionsAllowed`
//!   ([`NewPod::eviction_forbidden`]) and, with the cause `NamespaceTerminating`, in a
//!   namespace being deleted ([`FakeKubernetes::terminate_namespace`], whose pods the namespace
//!   controller deletes a while later); 404 for an unknown pod. Every eviction is recorded.
//! - Anything else: 501 with a `Status` body saying the fake does not model it, never a
//!   silent 200.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod tls;

use poem::http::StatusCode;
use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use poem::{Request, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// A patch the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedPatch {
    /// The node patched.
    pub node: String,
    /// The `Content-Type` sent.
    pub content_type: String,
    /// The body, as JSON.
    pub body: Value,
    /// The answer's status.
    pub status: u16,
}

/// An eviction the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEviction {
    /// The pod, `namespace/name`.
    pub pod: String,
    /// The answer's status (201 evicted, 429 blocked, 404 unknown, 400 bad body).
    pub status: u16,
}

/// A pod to add with [`FakeKubernetes::add_pod`].
#[derive(Debug, Clone, Default)]
pub struct NewPod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The node it runs on.
    pub node: String,
    /// The kind of its controller (`ReplicaSet`, `DaemonSet`), if any (`None`: a bare pod no
    /// controller manages).
    pub owner_kind: Option<String>,
    /// Its annotations (`kubernetes.io/config.mirror` makes it a mirror pod).
    pub annotations: BTreeMap<String, String>,
    /// How many eviction requests a PodDisruptionBudget refuses (429) before one succeeds;
    /// `u32::MAX` for a budget that never allows it.
    pub blocked_evictions: u32,
    /// Its phase (`Running` when `None`; `Succeeded` or `Failed` for a finished pod).
    pub phase: Option<String>,
    /// Names of its `emptyDir` volumes.
    pub empty_dirs: Vec<String>,
    /// An eviction marks it terminating (`deletionTimestamp`) but it is never removed, as on
    /// a node whose kubelet is down.
    pub stuck_terminating: bool,
    /// Its evictions are answered 403 `Forbidden`, as for a PodDisruptionBudget whose
    /// `disruptionsAllowed` is negative.
    pub eviction_forbidden: bool,
}

impl NewPod {
    /// A pod of a ReplicaSet, evictable at once.
    pub fn new(namespace: &str, name: &str, node: &str) -> NewPod {
        NewPod {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            node: node.to_owned(),
            owner_kind: Some("ReplicaSet".to_owned()),
            ..NewPod::default()
        }
    }
}

#[derive(Debug)]
struct FakePod {
    object: Value,
    node: String,
    blocked_evictions: u32,
    stuck_terminating: bool,
    eviction_forbidden: bool,
    /// When it was deleted (evicted, or by its namespace's deletion): it goes after the grace.
    deleted_at: Option<Instant>,
}

#[derive(Debug)]
struct FakeNode {
    object: Value,
    appears_at: Instant,
}

#[derive(Debug)]
struct State {
    git_version: String,
    nodes: BTreeMap<String, FakeNode>,
    patches: Vec<RecordedPatch>,
    requests: Vec<String>,
    next_resource_version: u64,
    /// By `namespace/name`.
    pods: BTreeMap<String, FakePod>,
    evictions: Vec<RecordedEviction>,
    /// Requests other than evictions still to answer 429 (API Priority and Fairness).
    throttled: u32,
    /// By node: merges another actor makes just before the next patch of the node lands.
    changes_before_patch: BTreeMap<String, Vec<Value>>,
    /// How long a deleted pod stays `Terminating` before it is gone.
    termination_grace: Duration,
    /// Namespaces being deleted, with when the namespace controller deletes their pods.
    terminating_namespaces: BTreeMap<String, Instant>,
}

/// The fake API server; stops when dropped.
#[derive(Debug)]
pub struct FakeKubernetes {
    url: String,
    state: Arc<Mutex<State>>,
    clock_behind: Arc<Mutex<Duration>>,
    task: JoinHandle<()>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeKubernetes {
    /// Starts the fake with a serving certificate for `127.0.0.1` signed by the CA
    /// (`ca_crt_pem`, `ca_key_pem`: PEM text; the key may be PKCS#8 or SEC1), accepting client
    /// certificates signed by the same CA.
    pub async fn start(ca_crt_pem: &str, ca_key_pem: &str) -> io::Result<FakeKubernetes> {
        let (serving_crt, serving_key) =
            serving_certificate(ca_crt_pem, ca_key_pem).map_err(io::Error::other)?;
        let clock_behind = Arc::new(Mutex::new(Duration::ZERO));
        let acceptor = tls::ClientCertAcceptor::new(
            TcpListener::bind("127.0.0.1:0").into_acceptor().await?,
            &serving_crt,
            &serving_key,
            ca_crt_pem,
            clock_behind.clone(),
        )?;
        let address = acceptor
            .local_addr()
            .into_iter()
            .find_map(|address| address.as_socket_addr().copied())
            .ok_or_else(|| io::Error::other("the listener has no socket address"))?;
        let state = Arc::new(Mutex::new(State {
            git_version: "v1.33.1".into(),
            nodes: BTreeMap::new(),
            patches: Vec::new(),
            requests: Vec::new(),
            next_resource_version: 1000,
            pods: BTreeMap::new(),
            evictions: Vec::new(),
            throttled: 0,
            changes_before_patch: BTreeMap::new(),
            termination_grace: Duration::ZERO,
            terminating_namespaces: BTreeMap::new(),
        }));
        let handler_state = state.clone();
        let endpoint = poem::endpoint::make(move |request: Request| {
            let state = handler_state.clone();
            async move { handle(&state, request).await }
        });
        let task = tokio::spawn(async move {
            if let Err(error) = poem::Server::new_with_acceptor(acceptor)
                .run(endpoint)
                .await
            {
                eprintln!("fake kubernetes server stopped: {error}");
            }
        });
        Ok(FakeKubernetes {
            url: format!("https://{address}"),
            state,
            clock_behind,
            task,
        })
    }

    /// The endpoint, `https://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Makes the API server's clock run `behind` the real one (a node whose clock is late): a
    /// client certificate that is not yet valid by that clock gets 401, as on a real cluster.
    pub fn set_clock_behind(&self, behind: Duration) {
        *self
            .clock_behind
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = behind;
    }

    /// How long a deleted pod stays `Terminating` (listed, with `deletionTimestamp`) before it
    /// is gone, as its grace period lets it shut down (default: gone at once).
    pub fn set_termination_grace(&self, grace: Duration) {
        lock(&self.state).termination_grace = grace;
    }

    /// Starts deleting a namespace: from now on every eviction of one of its pods is refused
    /// with 403 `Forbidden` (cause `NamespaceTerminating`), and `after` from now the namespace
    /// controller deletes its pods (they terminate, then go).
    pub fn terminate_namespace(&self, namespace: &str, after: Duration) {
        lock(&self.state)
            .terminating_namespaces
            .insert(namespace.to_owned(), Instant::now() + after);
    }

    /// The `gitVersion` `/version` answers (`v1.33.1`).
    pub fn set_version(&self, git_version: &str) {
        lock(&self.state).git_version = git_version.to_owned();
    }

    /// Adds a node, there at once, with `labels` (a JSON object) and `taints` (a JSON list).
    pub fn add_node(&self, name: &str, labels: Value, taints: Value) {
        self.add_node_after(name, Duration::ZERO, labels, taints);
    }

    /// Adds a node that the API knows only `delay` from now (a node still booting).
    pub fn add_node_after(&self, name: &str, delay: Duration, labels: Value, taints: Value) {
        let mut state = lock(&self.state);
        let resource_version = state.bump();
        let mut labels = match labels {
            Value::Object(labels) => labels,
            _ => serde_json::Map::new(),
        };
        labels.insert("kubernetes.io/hostname".into(), json!(name));
        let object = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "resourceVersion": resource_version,
                "labels": labels,
            },
            "spec": { "taints": taints },
            "status": {
                "conditions": [ready_condition(true)],
                "nodeInfo": {
                    "kubeletVersion": state.git_version,
                    "osImage": "Talos",
                },
            },
        });
        state.nodes.insert(
            name.to_owned(),
            FakeNode {
                object,
                appears_at: Instant::now() + delay,
            },
        );
    }

    /// Changes a node as another actor would (the patch is merged like a merge patch and is
    /// not recorded as one of ours).
    pub fn change_node(&self, name: &str, merge: Value) {
        let mut state = lock(&self.state);
        let resource_version = state.bump();
        if let Some(node) = state.nodes.get_mut(name) {
            merge_patch(&mut node.object, &merge);
            node.object["metadata"]["resourceVersion"] = json!(resource_version);
        }
    }

    /// Changes a node as [`FakeKubernetes::change_node`] does, but only when the next patch of
    /// the node arrives, just before it is applied: a write that lands between a client's read
    /// and its patch.
    pub fn change_node_before_next_patch(&self, name: &str, merge: Value) {
        lock(&self.state)
            .changes_before_patch
            .entry(name.to_owned())
            .or_default()
            .push(merge);
    }

    /// The node as stored (also before it appeared).
    pub fn node(&self, name: &str) -> Option<Value> {
        lock(&self.state)
            .nodes
            .get(name)
            .map(|node| node.object.clone())
    }

    /// Every patch received, in order.
    pub fn patches(&self) -> Vec<RecordedPatch> {
        lock(&self.state).patches.clone()
    }

    /// Every request received, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }

    /// Sets a node's `Ready` condition.
    pub fn set_ready(&self, name: &str, ready: bool) {
        let mut state = lock(&self.state);
        let resource_version = state.bump();
        if let Some(node) = state.nodes.get_mut(name) {
            node.object["status"]["conditions"] = json!([ready_condition(ready)]);
            node.object["metadata"]["resourceVersion"] = json!(resource_version);
        }
    }

    /// Adds a pod.
    pub fn add_pod(&self, pod: NewPod) {
        let mut state = lock(&self.state);
        let resource_version = state.bump();
        let owners: Vec<Value> = pod
            .owner_kind
            .iter()
            .map(|kind| json!({"apiVersion": "apps/v1", "kind": kind, "name": format!("{}-owner", pod.name), "uid": "00000000-0000-0000-0000-000000000000", "controller": true, "blockOwnerDeletion": true}))
            .collect();
        let volumes: Vec<Value> = pod
            .empty_dirs
            .iter()
            .map(|name| json!({"name": name, "emptyDir": {}}))
            .collect();
        let object = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod.name,
                "namespace": pod.namespace,
                "resourceVersion": resource_version,
                "annotations": pod.annotations,
                "ownerReferences": owners,
            },
            "spec": { "nodeName": pod.node, "volumes": volumes },
            "status": { "phase": pod.phase.as_deref().unwrap_or("Running") },
        });
        state.pods.insert(
            format!("{}/{}", pod.namespace, pod.name),
            FakePod {
                object,
                node: pod.node,
                blocked_evictions: pod.blocked_evictions,
                stuck_terminating: pod.stuck_terminating,
                eviction_forbidden: pod.eviction_forbidden,
                deleted_at: None,
            },
        );
    }

    /// The pods on a node, `namespace/name`, in order.
    pub fn pods(&self, node: &str) -> Vec<String> {
        lock(&self.state)
            .pods
            .iter()
            .filter(|(_, pod)| pod.node == node)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Lets a PodDisruptionBudget allow the pod's next eviction.
    pub fn unblock_pod(&self, namespace: &str, name: &str) {
        if let Some(pod) = lock(&self.state)
            .pods
            .get_mut(&format!("{namespace}/{name}"))
        {
            pod.blocked_evictions = 0;
        }
    }

    /// Answers the next `count` requests other than evictions with 429 `TooManyRequests` and
    /// `Retry-After: 1`, as API Priority and Fairness does under load.
    pub fn throttle(&self, count: u32) {
        lock(&self.state).throttled = count;
    }

    /// Every eviction received, in order.
    pub fn evictions(&self) -> Vec<RecordedEviction> {
        lock(&self.state).evictions.clone()
    }
}

fn ready_condition(ready: bool) -> Value {
    json!({
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
    })
}

impl Drop for FakeKubernetes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl State {
    fn bump(&mut self) -> String {
        self.next_resource_version += 1;
        self.next_resource_version.to_string()
    }

    /// Time passes: the namespace controller deletes the pods of namespaces being deleted, and
    /// deleted pods whose grace is over are gone (except those stuck on a dead kubelet).
    fn advance(&mut self) {
        let now = Instant::now();
        let grace = self.termination_grace;
        let namespaces = &self.terminating_namespaces;
        for pod in self.pods.values_mut() {
            let namespace = pod.object["metadata"]["namespace"].as_str().unwrap_or("");
            if pod.deleted_at.is_none() && namespaces.get(namespace).is_some_and(|at| *at <= now) {
                mark_deleted(pod, now);
            }
        }
        self.pods.retain(|_, pod| {
            pod.stuck_terminating || pod.deleted_at.is_none_or(|at| now < at + grace)
        });
    }

    fn visible_node(&mut self, name: &str) -> Option<&mut FakeNode> {
        self.nodes
            .get_mut(name)
            .filter(|node| node.appears_at <= Instant::now())
    }
}

fn serving_certificate(
    ca_crt_pem: &str,
    ca_key_pem: &str,
) -> Result<(String, String), rcgen::Error> {
    let ca_key = rcgen::KeyPair::from_pem(ca_key_pem)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_crt_pem, ca_key)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.signed_by(&key, &issuer)?;
    Ok((certificate.pem(), key.serialize_pem()))
}

/// Kubernetes' error body.
fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    json_response(code, &body)
}

fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json")
        .body(body.to_string())
}

fn not_found(name: &str) -> Response {
    status(404, "NotFound", &format!("nodes \"{name}\" not found"))
}

/// A pod being deleted: `deletionTimestamp` set, still listed until its grace is over.
fn mark_deleted(pod: &mut FakePod, now: Instant) {
    if pod.object["metadata"]["deletionTimestamp"].is_null() {
        pod.object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    pod.deleted_at.get_or_insert(now);
}

async fn handle(state: &Mutex<State>, mut request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let content_type = request
        .header("content-type")
        .unwrap_or_default()
        .to_owned();
    let body = request.take_body().into_bytes().await.unwrap_or_default();
    let query = request.uri().query().unwrap_or_default().to_owned();
    {
        let mut state = lock(state);
        state.requests.push(format!("{method} {path}"));
        state.advance();
    }
    // As the API server's authenticators: no usable client certificate, no access.
    if tls::ClientCert::from_remote(request.remote_addr()) != tls::ClientCert::Valid {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let node_name = path
        .strip_prefix("/api/v1/nodes/")
        .filter(|name| !name.contains('/'));
    if let Some(pod) = path
        .strip_prefix("/api/v1/namespaces/")
        .and_then(|rest| rest.strip_suffix("/eviction"))
        .and_then(|rest| rest.split_once("/pods/"))
        .filter(|(namespace, name)| !namespace.contains('/') && !name.contains('/'))
        && method == "POST"
    {
        let mut state = lock(state);
        let parsed: Option<Value> = serde_json::from_slice(&body).ok();
        let answer = evict(&mut state, pod.0, pod.1, parsed.as_ref());
        state.evictions.push(RecordedEviction {
            pod: format!("{}/{}", pod.0, pod.1),
            status: answer.status().as_u16(),
        });
        return answer;
    }
    {
        let mut state = lock(state);
        if state.throttled > 0 {
            state.throttled -= 1;
            let mut answer = status(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            );
            answer
                .headers_mut()
                .insert("retry-after", poem::http::HeaderValue::from_static("1"));
            return answer;
        }
    }
    match (method.as_str(), path.as_str(), node_name) {
        ("GET", "/api/v1/pods", _) => {
            let selector = query
                .split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(key, _)| *key == "fieldSelector")
                .map(|(_, value)| percent_decode(value));
            let Some(node) = selector
                .as_deref()
                .and_then(|selector| selector.strip_prefix("spec.nodeName="))
            else {
                return status(
                    400,
                    "BadRequest",
                    "the fake lists pods by fieldSelector=spec.nodeName=<node> only",
                );
            };
            let state = lock(state);
            let items: Vec<Value> = state
                .pods
                .values()
                .filter(|pod| pod.node == node)
                .map(|pod| pod.object.clone())
                .collect();
            json_response(
                200,
                &json!({
                    "apiVersion": "v1",
                    "kind": "PodList",
                    "metadata": {"resourceVersion": state.next_resource_version.to_string()},
                    "items": items,
                }),
            )
        }
        ("DELETE", _, Some(name)) => {
            let mut state = lock(state);
            match state.visible_node(name).is_some() {
                true => {
                    state.nodes.remove(name);
                    json_response(
                        200,
                        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": {"name": name, "kind": "nodes"}}),
                    )
                }
                false => not_found(name),
            }
        }
        ("GET", "/api/v1/nodes", _) => {
            let state = lock(state);
            let now = Instant::now();
            let items: Vec<Value> = state
                .nodes
                .values()
                .filter(|node| node.appears_at <= now)
                .map(|node| node.object.clone())
                .collect();
            json_response(
                200,
                &json!({
                    "apiVersion": "v1",
                    "kind": "NodeList",
                    "metadata": {"resourceVersion": state.next_resource_version.to_string()},
                    "items": items,
                }),
            )
        }
        ("GET", "/version", _) => {
            let git_version = lock(state).git_version.clone();
            let numbers: Vec<&str> = git_version.trim_start_matches('v').split('.').collect();
            json_response(
                200,
                &json!({
                    "major": numbers.first().copied().unwrap_or_default(),
                    "minor": numbers.get(1).copied().unwrap_or_default(),
                    "gitVersion": git_version,
                    "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean",
                    "buildDate": "2026-01-01T00:00:00Z",
                    "goVersion": "go1.24.0",
                    "compiler": "gc",
                    "platform": "linux/amd64",
                }),
            )
        }
        ("GET", _, Some(name)) => match lock(state).visible_node(name) {
            Some(node) => json_response(200, &node.object),
            None => not_found(name),
        },
        ("PATCH", _, Some(name)) => {
            let mut state = lock(state);
            let parsed: Option<Value> = serde_json::from_slice(&body).ok();
            let answer = patch_node(&mut state, name, &content_type, parsed.as_ref());
            state.patches.push(RecordedPatch {
                node: name.to_owned(),
                content_type,
                body: parsed.unwrap_or(Value::Null),
                status: answer.status().as_u16(),
            });
            answer
        }
        _ => status(
            501,
            "NotImplemented",
            &format!("{method} {path} is not implemented in the fake kubernetes API"),
        ),
    }
}

fn patch_node(
    state: &mut State,
    name: &str,
    content_type: &str,
    patch: Option<&Value>,
) -> Response {
    if content_type.split(';').next().map(str::trim) != Some("application/merge-patch+json") {
        return status(
            415,
            "UnsupportedMediaType",
            &format!("the fake models merge patches only, not {content_type:?}"),
        );
    }
    let Some(patch) = patch.filter(|patch| patch.is_object()) else {
        return status(400, "BadRequest", "the patch is not a JSON object");
    };
    for merge in state.changes_before_patch.remove(name).unwrap_or_default() {
        let resource_version = state.bump();
        if let Some(node) = state.nodes.get_mut(name) {
            merge_patch(&mut node.object, &merge);
            node.object["metadata"]["resourceVersion"] = json!(resource_version);
        }
    }
    let resource_version = state.bump();
    let Some(node) = state.visible_node(name) else {
        return not_found(name);
    };
    let mut patch = patch.clone();
    if let Some(wanted) = patch
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|metadata| metadata.remove("resourceVersion"))
        && wanted != node.object["metadata"]["resourceVersion"]
    {
        return status(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    let mut updated = node.object.clone();
    merge_patch(&mut updated, &patch);
    let bad_effect = updated["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|taint| {
            !matches!(
                taint["effect"].as_str(),
                Some("NoSchedule" | "PreferNoSchedule" | "NoExecute")
            )
        })
        .cloned();
    if let Some(taint) = bad_effect {
        return status(
            422,
            "Invalid",
            &format!("Node \"{name}\" is invalid: spec.taints: unsupported taint {taint}"),
        );
    }
    let mut invalid: Vec<String> = Vec::new();
    if let Some(labels) = updated["metadata"]["labels"].as_object() {
        for (key, value) in labels {
            invalid.extend(
                qualified_name_problem(key)
                    .map(|p| format!("metadata.labels: Invalid value: {key:?}: {p}")),
            );
            invalid.extend(
                label_value_problem(value.as_str().unwrap_or(""))
                    .map(|p| format!("metadata.labels: Invalid value: {value}: {p}")),
            );
        }
    }
    for taint in updated["spec"]["taints"].as_array().into_iter().flatten() {
        let key = taint["key"].as_str().unwrap_or("");
        invalid.extend(
            qualified_name_problem(key)
                .map(|p| format!("spec.taints[].key: Invalid value: {key:?}: {p}")),
        );
        let value = taint["value"].as_str().unwrap_or("");
        invalid.extend(
            label_value_problem(value)
                .map(|p| format!("spec.taints[].value: Invalid value: {value:?}: {p}")),
        );
    }
    if !invalid.is_empty() {
        return status(
            422,
            "Invalid",
            &format!("Node \"{name}\" is invalid: {}", invalid.join(", ")),
        );
    }
    updated["metadata"]["resourceVersion"] = json!(resource_version);
    node.object = updated.clone();
    json_response(200, &updated)
}

/// Kubernetes's `IsQualifiedName`, as the API server checks label and taint keys.
fn qualified_name_problem(key: &str) -> Option<&'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let subdomain = prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !subdomain {
            return Some(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            );
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Some("name part must be non-empty and no more than 63 characters");
    }
    (!is_name(name)).then_some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")
}

/// Kubernetes's `IsValidLabelValue`.
fn label_value_problem(value: &str) -> Option<&'static str> {
    if value.len() > 63 {
        return Some("must be no more than 63 characters");
    }
    (!value.is_empty() && !is_name(value)).then_some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")
}

fn is_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn evict(state: &mut State, namespace: &str, name: &str, body: Option<&Value>) -> Response {
    let valid = body.is_some_and(|body| {
        body["apiVersion"] == "policy/v1"
            && body["kind"] == "Eviction"
            && body["metadata"]["name"] == name
            && body["metadata"]["namespace"] == namespace
    });
    if !valid {
        return status(
            400,
            "BadRequest",
            "the body is not a policy/v1 Eviction naming the pod",
        );
    }
    let key = format!("{namespace}/{name}");
    if !state.pods.contains_key(&key) {
        return status(404, "NotFound", &format!("pods \"{name}\" not found"));
    }
    if state.terminating_namespaces.contains_key(namespace) {
        // The NamespaceLifecycle admission plugin refuses to create anything, evictions
        // included, in a namespace being deleted.
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("pods \"{name}\" is forbidden: unable to create new content in namespace {namespace} because it is being terminated"),
            "reason": "Forbidden",
            "details": {"name": name, "kind": "pods", "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {namespace} is being terminated"), "field": "metadata.namespace"}]},
            "code": 403,
        });
        return json_response(403, &body);
    }
    let Some(pod) = state.pods.get_mut(&key) else {
        return status(404, "NotFound", &format!("pods \"{name}\" not found"));
    };
    if pod.eviction_forbidden {
        return status(
            403,
            "Forbidden",
            &format!(
                "poddisruptionbudgets.policy \"{name}-pdb\" is forbidden: pdb disruptions allowed is negative"
            ),
        );
    }
    if pod.stuck_terminating {
        mark_deleted(pod, Instant::now());
        return json_response(
            201,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}),
        );
    }
    if pod.blocked_evictions > 0 {
        pod.blocked_evictions = pod.blocked_evictions.saturating_sub(1);
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "reason": "TooManyRequests",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": format!("The disruption budget {name}-pdb needs 1 healthy pods and has 1 currently")}]},
            "code": 429,
        });
        return json_response(429, &body);
    }
    if state.termination_grace.is_zero() {
        state.pods.remove(&key);
    } else {
        mark_deleted(pod, Instant::now());
    }
    json_response(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

/// `%XX` escapes and `+` decoded (a query string's value).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}
