//! The fake Hetzner Cloud API: servers, SSH keys, rescue and power actions, action progress,
//! pagination, label selectors and the project rate limit.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use poem::{Request, Response};
use serde_json::{Value, json};

use crate::common::{
    Control, Fault, LoopbackServer, Shared, Target, drop_connection, html_status, json, lock,
    loopback_only, md5_fingerprint, parse_pairs, password, raw_json,
};

const SERVER_FIXTURE: &str = include_str!("../data/cloud/get-servers-42.spec-2026.json");
const IPV6_ONLY_FIXTURE: &str =
    include_str!("../data/cloud/server-object.ipv4-null.hcloud-go.json");
const SSH_KEYS_FIXTURE: &str = include_str!("../data/cloud/get-ssh_keys.json");
const ACTION_FIXTURE: &str = include_str!("../data/cloud/post-servers-42-actions-reset.json");
const RATE_LIMIT_FIXTURE: &str = include_str!("../data/cloud/errors/rate_limit_exceeded.429.json");
const LOCKED_FIXTURE: &str = include_str!("../data/cloud/errors/locked.423.reconstructed.json");
const UNAUTHORIZED_FIXTURE: &str = include_str!("../data/cloud/errors/unauthorized.401.json");

/// A Cloud server in the fake project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudServer {
    /// `id`.
    pub id: u64,
    /// `name`, unique in the project.
    pub name: String,
    /// `status`: `running`, `off`, …
    pub status: String,
    /// `public_net.ipv4.ip`; `None` gives `"ipv4": null` (IPv6-only server).
    pub ipv4: Option<String>,
    /// `public_net.ipv6.ip`, a `/64` network; `None` gives `"ipv6": null`.
    pub ipv6: Option<String>,
    /// `server_type.name`.
    pub server_type: String,
    /// `server_type.architecture`: `x86` or `arm`.
    pub architecture: String,
    /// `location.name`.
    pub location: String,
    /// `labels`.
    pub labels: BTreeMap<String, String>,
    /// `rescue_enabled`: set by `enable_rescue`, consumed by the next boot.
    pub rescue_enabled: bool,
    /// SSH key ids given to the last `enable_rescue`.
    pub rescue_keys: Vec<u64>,
    /// Whether the server has booted into the rescue system.
    pub booted_rescue: bool,
    /// Every action command run on the server, in order.
    pub actions: Vec<String>,
}

impl CloudServer {
    /// A running x86 `cpx22` in `fsn1` with both address families.
    pub fn new(id: u64, name: &str) -> Self {
        CloudServer {
            id,
            name: name.to_owned(),
            status: "running".to_owned(),
            ipv4: Some(format!("127.19.{}.{}", (id / 250) % 250, id % 250 + 1)),
            ipv6: Some(format!("2a01:4f9:{:x}:{:x}::/64", id >> 16, id & 0xffff)),
            server_type: "cpx22".to_owned(),
            architecture: "x86".to_owned(),
            location: "fsn1".to_owned(),
            labels: BTreeMap::new(),
            rescue_enabled: false,
            rescue_keys: Vec::new(),
            booted_rescue: false,
            actions: Vec::new(),
        }
    }
}

/// An SSH key of the project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudSshKey {
    /// `id`.
    pub id: u64,
    /// `name`, unique in the project.
    pub name: String,
    /// MD5 fingerprint, colon hex.
    pub fingerprint: String,
    /// The OpenSSH public key.
    pub public_key: String,
}

#[derive(Debug, Clone)]
struct ActionRecord {
    id: u64,
    command: String,
    server_id: u64,
    polls_left: u32,
    polls_total: u32,
    /// The action runs, and locks its server, until then (and until polled enough).
    runs_until: Instant,
    /// `Some(code)` for an action that ends in `error`.
    error_code: Option<String>,
}

#[derive(Debug)]
struct RateLimit {
    limit: u32,
    remaining: u32,
    refill_every: Duration,
    last_refill: Instant,
}

impl RateLimit {
    fn refill(&mut self) {
        let elapsed = self.last_refill.elapsed();
        let tokens = (elapsed.as_nanos() / self.refill_every.as_nanos().max(1)) as u32;
        if tokens > 0 {
            self.remaining = self.limit.min(self.remaining.saturating_add(tokens));
            self.last_refill = Instant::now();
        }
    }

    /// Seconds since the epoch at which the budget is full again.
    fn reset_at(&self) -> u64 {
        let missing = (self.limit - self.remaining) as u128;
        let until_full = Duration::from_nanos((missing * self.refill_every.as_nanos()) as u64);
        (SystemTime::now() + until_full)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs())
    }
}

#[derive(Debug)]
struct CloudState {
    token: String,
    base_url: String,
    servers: BTreeMap<u64, CloudServer>,
    ssh_keys: BTreeMap<u64, CloudSshKey>,
    actions: BTreeMap<u64, ActionRecord>,
    next_id: u64,
    control: Control,
    action_duration: Duration,
    action_polls: u32,
    /// `(URL action name, error code, times)`: actions to fail.
    action_failures: Vec<(String, String, u32)>,
    rate_limit: RateLimit,
    server_template: Value,
    action_template: Value,
}

/// The fake Cloud API on `127.0.0.1`, stopped when dropped. See the crate docs for its state
/// model.
#[derive(Debug)]
pub struct FakeCloud {
    server: LoopbackServer,
    state: Shared<CloudState>,
}

impl FakeCloud {
    /// The API token the fake accepts.
    pub const TOKEN: &str = "fake-cloud-token";

    /// Starts the fake seeded from the fixtures: server 42 (current shape, `location` and no
    /// `datacenter`), the IPv6-only server 1, and SSH key 42.
    pub async fn start() -> io::Result<Self> {
        let fake = Self::start_empty().await?;
        lock(&fake.state).seed_from_fixtures();
        Ok(fake)
    }

    /// Starts the fake with an empty project.
    pub async fn start_empty() -> io::Result<Self> {
        let server_template = parse_fixture(SERVER_FIXTURE)["server"].clone();
        let action_template = parse_fixture(ACTION_FIXTURE)["action"].clone();
        let state = Arc::new(Mutex::new(CloudState {
            token: Self::TOKEN.to_owned(),
            base_url: String::new(),
            servers: BTreeMap::new(),
            ssh_keys: BTreeMap::new(),
            actions: BTreeMap::new(),
            next_id: 1_000,
            control: Control::default(),
            action_duration: Duration::ZERO,
            action_polls: 1,
            action_failures: Vec::new(),
            rate_limit: RateLimit {
                limit: 3_600,
                remaining: 3_600,
                refill_every: Duration::from_secs(1),
                last_refill: Instant::now(),
            },
            server_template,
            action_template,
        }));
        let handler_state = state.clone();
        let endpoint = poem::endpoint::make(move |request: Request| {
            let state = handler_state.clone();
            async move { handle(state, request).await }
        });
        let server = LoopbackServer::start(endpoint, "/v1").await?;
        lock(&state).base_url = server.url.clone();
        Ok(FakeCloud { server, state })
    }

    /// Base URL including the version, e.g. `http://127.0.0.1:41235/v1`.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Adds `n_servers` generated servers with ids after the highest existing one and returns
    /// the ids. Every fourth is an arm `cax11`, every tenth has no IPv4; locations rotate.
    pub fn generate_servers(&self, n_servers: usize) -> Vec<u64> {
        let mut state = lock(&self.state);
        let first = state
            .servers
            .keys()
            .next_back()
            .map_or(200_000, |last| last + 1);
        (0..n_servers as u64)
            .map(|server_idx| {
                let id = first + server_idx;
                let mut server = CloudServer::new(id, &format!("cloud-{id}"));
                if server_idx % 4 == 3 {
                    server.server_type = "cax11".to_owned();
                    server.architecture = "arm".to_owned();
                }
                if server_idx % 10 == 9 {
                    server.ipv4 = None;
                }
                server.location =
                    ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"][(server_idx % 6) as usize].into();
                state.servers.insert(id, server);
                id
            })
            .collect()
    }

    /// Adds or replaces a server.
    pub fn add_server(&self, server: CloudServer) {
        lock(&self.state).servers.insert(server.id, server);
    }

    /// Deletes a server; `true` when it existed.
    pub fn remove_server(&self, id: u64) -> bool {
        lock(&self.state).servers.remove(&id).is_some()
    }

    /// A copy of one server.
    pub fn server(&self, id: u64) -> Option<CloudServer> {
        lock(&self.state).servers.get(&id).cloned()
    }

    /// Sets a server's `status` (`off` makes the client power it on instead of resetting it).
    pub fn set_status(&self, id: u64, status: &str) {
        if let Some(server) = lock(&self.state).servers.get_mut(&id) {
            server.status = status.to_owned();
        }
    }

    /// Adds an SSH key as if uploaded in the console; `None` for a malformed key.
    pub fn add_ssh_key(&self, name: &str, public_key: &str) -> Option<CloudSshKey> {
        let mut state = lock(&self.state);
        let (fingerprint, _) = md5_fingerprint(public_key)?;
        let id = state.next_id();
        let key = CloudSshKey {
            id,
            name: name.to_owned(),
            fingerprint,
            public_key: public_key.to_owned(),
        };
        state.ssh_keys.insert(id, key.clone());
        Some(key)
    }

    /// Copies of the project's SSH keys.
    pub fn ssh_keys(&self) -> Vec<CloudSshKey> {
        lock(&self.state).ssh_keys.values().cloned().collect()
    }

    /// How long every action started from now on runs (default none): meanwhile it reads
    /// `running` and its server is `locked`, so other actions and renames of that server are
    /// refused with 423 `locked`, as the real API refuses them while an action runs.
    pub fn set_action_duration(&self, duration: Duration) {
        lock(&self.state).action_duration = duration;
    }

    /// Starts an action on a server as someone else would (the Cloud console, a backup, Hetzner
    /// itself): it runs for `duration`, locking the server. `command` is the action's name
    /// (`create_image`); it is appended to the server's [`CloudServer::actions`]. `None` for an
    /// unknown server.
    pub fn start_foreign_action(
        &self,
        server_id: u64,
        command: &str,
        duration: Duration,
    ) -> Option<u64> {
        let mut state = lock(&self.state);
        state
            .servers
            .get_mut(&server_id)?
            .actions
            .push(command.to_owned());
        let action_id = state.next_id();
        state.actions.insert(
            action_id,
            ActionRecord {
                id: action_id,
                command: command.to_owned(),
                server_id,
                polls_left: 0,
                polls_total: 0,
                runs_until: Instant::now() + duration,
                error_code: None,
            },
        );
        Some(action_id)
    }

    /// Whether an action still runs on the server (what `locked` shows).
    pub fn is_locked(&self, server_id: u64) -> bool {
        lock(&self.state).is_locked(server_id)
    }

    /// Makes the next `times` actions named `action` (as in the URL: `enable_rescue`, `reset`)
    /// end in `error` with `code` (e.g. `unknown_error`, seen on `enable_rescue` in the wild).
    /// A failed action changes nothing on the server.
    pub fn fail_actions(&self, action: &str, code: &str, times: u32) {
        lock(&self.state)
            .action_failures
            .push((action.to_owned(), code.to_owned(), times));
    }

    /// How many `GET /actions/{id}` polls an action stays `running` (default 1; 0 finishes
    /// actions at once).
    pub fn set_action_polls(&self, polls: u32) {
        lock(&self.state).action_polls = polls;
    }

    /// Sets the project budget (`RateLimit-Limit`, full now) and how often one request is given
    /// back (the real API: 3600, one per second).
    pub fn set_rate_limit(&self, limit: u32, refill_every: Duration) {
        lock(&self.state).rate_limit = RateLimit {
            limit,
            remaining: limit,
            refill_every,
            last_refill: Instant::now(),
        };
    }

    /// Makes the next `times` requests matching `target` fail with `fault`.
    pub fn inject(&self, target: Target, fault: Fault, times: u32) {
        lock(&self.state).control.inject(target, fault, times);
    }

    /// Every request received, as `"METHOD /path"` (without `/v1`), in order.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).control.requests()
    }
}

fn parse_fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn error(status: u16, code: &str, message: &str) -> Response {
    json(
        status,
        &json!({"error": {"code": code, "message": message, "details": null}}),
    )
}

fn fixture_error(status: u16, fixture: &str) -> Response {
    json(status, &parse_fixture(fixture))
}

fn not_found() -> Response {
    error(404, "not_found", "server not found")
}

async fn handle(state: Shared<CloudState>, mut request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let full_path = request.uri().path().to_owned();
    let query = parse_pairs(request.uri().query().unwrap_or("").as_bytes());
    let authorization = request.header("authorization").map(str::to_owned);
    let body = request.take_body().into_bytes().await.unwrap_or_default();
    let Some(path) = full_path.strip_prefix("/v1") else {
        return error(404, "not_found", "unknown API version; the fake serves /v1");
    };
    let (fault, rate_limit_headers) = {
        let mut state = lock(&state);
        let mut fault = state.control.on_request(&method, path);
        let rate_limit = &mut state.rate_limit;
        rate_limit.refill();
        if rate_limit.remaining == 0 {
            fault = fault.or(Some(Fault::RateLimit));
        } else {
            rate_limit.remaining -= 1;
        }
        let headers = [
            ("RateLimit-Limit", rate_limit.limit.to_string()),
            ("RateLimit-Remaining", rate_limit.remaining.to_string()),
            ("RateLimit-Reset", rate_limit.reset_at().to_string()),
        ];
        if authorization.as_deref() != Some(&format!("Bearer {}", state.token)) {
            return with_headers(fixture_error(401, UNAUTHORIZED_FIXTURE), &headers);
        }
        (fault, headers)
    };
    let mut delay = None;
    let mut applied_then = None;
    let response = match fault {
        Some(Fault::Slow(slow)) => {
            delay = Some(slow);
            None
        }
        Some(Fault::AppliedThenStatus(status)) => {
            applied_then = Some(status);
            None
        }
        Some(Fault::RateLimit) => Some(fixture_error(429, RATE_LIMIT_FIXTURE)),
        Some(Fault::Status(502)) => Some(html_status(502)),
        Some(Fault::Status(status)) => Some(error(status, "server_error", "fake server error")),
        Some(Fault::Drop) => return drop_connection(),
        Some(Fault::Answer(status, body)) => Some(raw_json(status, &body)),
        None => None,
    };
    let response = response.unwrap_or_else(|| {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        lock(&state).route(&method, &segments, &query, &body)
    });
    // Slow answers are slow after the work is done: a client that gives up has still changed
    // the server.
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let response = match applied_then {
        Some(502) => html_status(502),
        Some(status) => error(status, "server_error", "fake server error"),
        None => response,
    };
    let mut response = with_headers(response, &rate_limit_headers);
    response.headers_mut().insert(
        "x-correlation-id",
        poem::http::HeaderValue::from_static("fake-correlation-id"),
    );
    response
}

fn with_headers(mut response: Response, headers: &[(&'static str, String); 3]) -> Response {
    for (name, value) in headers {
        if let Ok(value) = poem::http::HeaderValue::from_str(value) {
            response.headers_mut().insert(*name, value);
        }
    }
    response
}

/// Paging of a list: `(items of the page, meta, Link header)`.
fn paginate<T>(
    items: Vec<T>,
    query: &[(String, String)],
    base_url: &str,
    path: &str,
) -> (Vec<T>, Value, String) {
    let number = |key: &str| {
        query
            .iter()
            .find(|(name, _)| name == key)
            .and_then(|(_, value)| value.parse::<u64>().ok())
    };
    let page = number("page").unwrap_or(1).max(1);
    let per_page = number("per_page").unwrap_or(25).clamp(1, 50);
    let total = items.len() as u64;
    let last_page = total.div_ceil(per_page).max(1);
    let start = ((page - 1) * per_page) as usize;
    let page_items: Vec<T> = items
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .collect();
    let previous_page = (page > 1).then(|| page - 1);
    let next_page = (page < last_page).then(|| page + 1);
    let meta = json!({"pagination": {"page": page, "per_page": per_page,
        "previous_page": previous_page, "next_page": next_page, "last_page": last_page,
        "total_entries": total}});
    let link = |page: u64, rel: &str| {
        format!("<{base_url}{path}?page={page}&per_page={per_page}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if let Some(previous) = previous_page {
        links.push(link(previous, "prev"));
    }
    if let Some(next) = next_page {
        links.push(link(next, "next"));
    }
    links.push(link(last_page, "last"));
    (page_items, meta, links.join(", "))
}

/// `label_selector`: comma-separated terms `k=v`, `k==v`, `k!=v`, `k`, `!k`; `None` when a term
/// is of a form the fake does not model (`in (…)`, `notin (…)`).
fn label_filter(selector: &str) -> Option<Vec<(String, Option<String>, bool)>> {
    let mut terms = Vec::new();
    for term in selector
        .split(',')
        .map(str::trim)
        .filter(|term| !term.is_empty())
    {
        if term.contains('(') || term.contains(' ') {
            return None;
        }
        if let Some((key, value)) = term.split_once("!=") {
            terms.push((key.to_owned(), Some(value.to_owned()), false));
        } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
            terms.push((key.to_owned(), Some(value.to_owned()), true));
        } else if let Some(key) = term.strip_prefix('!') {
            terms.push((key.to_owned(), None, false));
        } else {
            terms.push((term.to_owned(), None, true));
        }
    }
    Some(terms)
}

fn labels_match(
    labels: &BTreeMap<String, String>,
    terms: &[(String, Option<String>, bool)],
) -> bool {
    terms.iter().all(|(key, value, wanted)| match value {
        Some(value) => (labels.get(key) == Some(value)) == *wanted,
        None => labels.contains_key(key) == *wanted,
    })
}

impl CloudState {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A server is locked while one of its actions runs.
    fn is_locked(&self, server_id: u64) -> bool {
        let now = Instant::now();
        self.actions
            .values()
            .any(|action| action.server_id == server_id && action.runs_until > now)
    }

    fn seed_from_fixtures(&mut self) {
        let server = &parse_fixture(SERVER_FIXTURE)["server"];
        let id = server["id"].as_u64().unwrap_or(42);
        let mut cloud_server = CloudServer::new(id, server["name"].as_str().unwrap_or("server"));
        cloud_server.status = server["status"].as_str().unwrap_or("running").to_owned();
        // The fixture's IPv4 address (1.2.3.4) is not loopback: the fake keeps its own.
        cloud_server.ipv6 = server["public_net"]["ipv6"]["ip"]
            .as_str()
            .map(str::to_owned);
        cloud_server.server_type = server["server_type"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        cloud_server.architecture = server["server_type"]["architecture"]
            .as_str()
            .unwrap_or("x86")
            .to_owned();
        cloud_server.location = server["location"]["name"].as_str().unwrap_or("").to_owned();
        cloud_server.labels = serde_json::from_value(server["labels"].clone()).unwrap_or_default();
        self.servers.insert(id, cloud_server);
        // The IPv6-only sample predates `location`; its type and location are the fake's choice.
        let ipv6_only = parse_fixture(IPV6_ONLY_FIXTURE);
        let id = ipv6_only["id"].as_u64().unwrap_or(1);
        let mut cloud_server = CloudServer::new(id, ipv6_only["name"].as_str().unwrap_or("v6"));
        cloud_server.ipv4 = None;
        cloud_server.ipv6 = ipv6_only["public_net"]["ipv6"]["ip"]
            .as_str()
            .map(str::to_owned);
        cloud_server.server_type = "cax11".to_owned();
        cloud_server.architecture = "arm".to_owned();
        cloud_server.location = ipv6_only["datacenter"]["location"]["name"]
            .as_str()
            .unwrap_or("fsn1")
            .to_owned();
        cloud_server.labels =
            serde_json::from_value(ipv6_only["labels"].clone()).unwrap_or_default();
        self.servers.insert(id, cloud_server);
        for key in parse_fixture(SSH_KEYS_FIXTURE)["ssh_keys"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = key["id"].as_u64().unwrap_or(42);
            self.ssh_keys.insert(
                id,
                CloudSshKey {
                    id,
                    name: key["name"].as_str().unwrap_or("").to_owned(),
                    fingerprint: key["fingerprint"].as_str().unwrap_or("").to_owned(),
                    public_key: key["public_key"].as_str().unwrap_or("").to_owned(),
                },
            );
        }
    }

    fn route(
        &mut self,
        method: &str,
        segments: &[&str],
        query: &[(String, String)],
        body: &[u8],
    ) -> Response {
        let body: Value = if body.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(value) => value,
                Err(_) => return error(400, "json_error", "request body is not valid JSON"),
            }
        };
        match (method, segments) {
            ("GET", ["servers"]) => self.list_servers(query),
            ("GET", ["servers", id]) => match self.server_mut(id) {
                Some(server) => {
                    let server = server.clone();
                    json(200, &json!({"server": self.server_json(&server)}))
                }
                None => not_found(),
            },
            ("PUT", ["servers", id]) => self.update_server(id, &body),
            ("POST", ["servers", id, "actions", command]) => self.server_action(id, command, &body),
            ("GET", ["actions", id]) => self.get_action(id),
            ("GET", ["ssh_keys"]) => {
                let wanted = |key: &str| {
                    query
                        .iter()
                        .find(|(name, _)| name == key)
                        .map(|(_, value)| value.clone())
                };
                let (name, fingerprint) = (wanted("name"), wanted("fingerprint"));
                let keys: Vec<Value> = self
                    .ssh_keys
                    .values()
                    .filter(|key| name.as_ref().is_none_or(|name| key.name == *name))
                    .filter(|key| {
                        fingerprint
                            .as_ref()
                            .is_none_or(|fingerprint| key.fingerprint == *fingerprint)
                    })
                    .map(ssh_key_json)
                    .collect();
                let (page, meta, link) = paginate(keys, query, &self.base_url, "/ssh_keys");
                let mut response = json(200, &json!({"ssh_keys": page, "meta": meta}));
                insert_link(&mut response, &link);
                response
            }
            ("POST", ["ssh_keys"]) => self.create_ssh_key(&body),
            _ => error(
                501,
                "not_implemented_in_fake",
                &format!(
                    "{method} /v1/{} is not implemented in fake Cloud",
                    segments.join("/")
                ),
            ),
        }
    }

    fn server_mut(&mut self, id: &str) -> Option<&mut CloudServer> {
        self.servers.get_mut(&id.parse::<u64>().ok()?)
    }

    fn server_json(&self, server: &CloudServer) -> Value {
        loopback_only(server.ipv4.as_deref());
        let mut value = self.server_template.clone();
        value["id"] = json!(server.id);
        value["name"] = json!(server.name);
        value["status"] = json!(server.status);
        value["public_net"]["ipv4"] = match &server.ipv4 {
            Some(ip) => {
                json!({"id": server.id, "ip": ip, "blocked": false, "dns_ptr": format!("static.{ip}.clients.your-server.de")})
            }
            None => Value::Null,
        };
        value["public_net"]["ipv6"] = match &server.ipv6 {
            Some(ip) => json!({"id": server.id, "ip": ip, "blocked": false, "dns_ptr": []}),
            None => Value::Null,
        };
        value["server_type"]["name"] = json!(server.server_type);
        value["server_type"]["description"] = json!(server.server_type.to_uppercase());
        value["server_type"]["architecture"] = json!(server.architecture);
        value["location"]["name"] = json!(server.location);
        value["rescue_enabled"] = json!(server.rescue_enabled);
        value["locked"] = json!(self.is_locked(server.id));
        value["labels"] = json!(server.labels);
        if let Some(object) = value.as_object_mut() {
            object.remove("datacenter");
        }
        value
    }

    fn list_servers(&self, query: &[(String, String)]) -> Response {
        let name = query
            .iter()
            .find(|(key, _)| key == "name")
            .map(|(_, value)| value.clone());
        let terms = match query.iter().find(|(key, _)| key == "label_selector") {
            Some((_, selector)) => match label_filter(selector) {
                Some(terms) => terms,
                None => {
                    return error(
                        501,
                        "not_implemented_in_fake",
                        "set-based label selectors are not implemented in fake Cloud",
                    );
                }
            },
            None => Vec::new(),
        };
        let servers: Vec<&CloudServer> = self
            .servers
            .values()
            .filter(|server| name.as_ref().is_none_or(|name| server.name == *name))
            .filter(|server| labels_match(&server.labels, &terms))
            .collect();
        let (page, meta, link) = paginate(servers, query, &self.base_url, "/servers");
        let page: Vec<Value> = page
            .into_iter()
            .map(|server| self.server_json(server))
            .collect();
        let mut response = json(200, &json!({"servers": page, "meta": meta}));
        insert_link(&mut response, &link);
        response
    }

    fn update_server(&mut self, id: &str, body: &Value) -> Response {
        let Some(server_id) = self.server_mut(id).map(|server| server.id) else {
            return not_found();
        };
        if body.get("name").is_some() && self.is_locked(server_id) {
            return fixture_error(423, LOCKED_FIXTURE);
        }
        if let Some(name) = body.get("name") {
            let Some(name) = name.as_str().filter(|name| {
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            }) else {
                return error(400, "invalid_input", "invalid input in field 'name'");
            };
            if self
                .servers
                .values()
                .any(|other| other.id != server_id && other.name == name)
            {
                return error(409, "uniqueness_error", "server name is already used");
            }
            if let Some(server) = self.servers.get_mut(&server_id) {
                server.name = name.to_owned();
            }
        }
        if let Some(labels) = body.get("labels") {
            let Ok(labels) = serde_json::from_value::<BTreeMap<String, String>>(labels.clone())
            else {
                return error(400, "invalid_input", "invalid input in field 'labels'");
            };
            if let Some(server) = self.servers.get_mut(&server_id) {
                server.labels = labels;
            }
        }
        let server = self.servers[&server_id].clone();
        json(200, &json!({"server": self.server_json(&server)}))
    }

    fn server_action(&mut self, id: &str, command: &str, body: &Value) -> Response {
        let action_command = match command {
            "enable_rescue" | "disable_rescue" => command.to_owned(),
            "poweron" => "start_server".to_owned(),
            "poweroff" => "stop_server".to_owned(),
            "reset" => "reset_server".to_owned(),
            "reboot" => "reboot_server".to_owned(),
            "shutdown" => "shutdown_server".to_owned(),
            _ => {
                return error(
                    501,
                    "not_implemented_in_fake",
                    &format!("action {command} is not implemented in fake Cloud"),
                );
            }
        };
        let ssh_keys: Vec<u64> = body
            .get("ssh_keys")
            .and_then(Value::as_array)
            .map(|keys| keys.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if ssh_keys
            .iter()
            .any(|key_id| !self.ssh_keys.contains_key(key_id))
        {
            return error(400, "invalid_input", "invalid input in field 'ssh_keys'");
        }
        let Some(server_id) = self.server_mut(id).map(|server| server.id) else {
            return not_found();
        };
        // Any action, `enable_rescue` included, waits for none: the API refuses it.
        if self.is_locked(server_id) {
            return fixture_error(423, LOCKED_FIXTURE);
        }
        let error_code = self
            .action_failures
            .iter_mut()
            .find(|(action, _, times)| action == command && *times > 0)
            .map(|(_, code, times)| {
                *times -= 1;
                code.clone()
            });
        let Some(server) = self.servers.get_mut(&server_id) else {
            return not_found();
        };
        let mut root_password = None;
        if let Some(code) = &error_code {
            server.actions.push(format!("{command} (failed: {code})"));
        } else {
            server.actions.push(command.to_owned());
        }
        match command {
            _ if error_code.is_some() => {
                if command == "enable_rescue" {
                    root_password = Some(password(server.id + server.actions.len() as u64));
                }
            }
            "enable_rescue" => {
                server.rescue_enabled = true;
                server.rescue_keys = ssh_keys;
                root_password = Some(password(server.id + server.actions.len() as u64));
            }
            "disable_rescue" => server.rescue_enabled = false,
            "poweroff" | "shutdown" => server.status = "off".to_owned(),
            _ => {
                server.status = "running".to_owned();
                if server.rescue_enabled {
                    server.rescue_enabled = false;
                    server.booted_rescue = true;
                }
            }
        }
        let server_id = server.id;
        let action_id = self.next_id();
        let record = ActionRecord {
            id: action_id,
            command: action_command,
            server_id,
            polls_left: self.action_polls,
            polls_total: self.action_polls,
            runs_until: Instant::now() + self.action_duration,
            error_code,
        };
        let action = self.action_json(&record);
        self.actions.insert(action_id, record);
        match root_password {
            Some(root_password) => json(
                201,
                &json!({"root_password": root_password, "action": action}),
            ),
            None => json(201, &json!({"action": action})),
        }
    }

    fn get_action(&mut self, id: &str) -> Response {
        let Some(record) = id
            .parse()
            .ok()
            .and_then(|id: u64| self.actions.get_mut(&id))
        else {
            return error(404, "not_found", "action not found");
        };
        record.polls_left = record.polls_left.saturating_sub(1);
        let record = record.clone();
        json(200, &json!({"action": self.action_json(&record)}))
    }

    fn action_json(&self, record: &ActionRecord) -> Value {
        let done = record.polls_left == 0 && record.runs_until <= Instant::now();
        let progress = if done {
            100
        } else {
            100 * (record.polls_total - record.polls_left) / record.polls_total.max(1)
        };
        let mut value = self.action_template.clone();
        value["id"] = json!(record.id);
        value["command"] = json!(record.command);
        let status = match (&record.error_code, done) {
            (_, false) => "running",
            (None, true) => "success",
            (Some(_), true) => "error",
        };
        value["status"] = json!(status);
        value["progress"] = json!(progress);
        value["resources"] = json!([{"id": record.server_id, "type": "server"}]);
        // Real successful actions carry `"error": null`; the doc examples do not.
        value["error"] = match (&record.error_code, done) {
            (Some(code), true) => json!({"code": code, "message": "fake action failure"}),
            _ => Value::Null,
        };
        if !done {
            value["finished"] = Value::Null;
        }
        value
    }

    fn create_ssh_key(&mut self, body: &Value) -> Response {
        let name = body.get("name").and_then(Value::as_str).unwrap_or("");
        let public_key = body.get("public_key").and_then(Value::as_str).unwrap_or("");
        let Some((fingerprint, _)) = md5_fingerprint(public_key).filter(|_| !name.is_empty())
        else {
            return error(
                400,
                "invalid_input",
                "invalid input in fields 'name', 'public_key'",
            );
        };
        if self
            .ssh_keys
            .values()
            .any(|key| key.name == name || key.fingerprint == fingerprint)
        {
            return error(
                409,
                "uniqueness_error",
                "SSH key with the same name or fingerprint already exists",
            );
        }
        let id = self.next_id();
        let key = CloudSshKey {
            id,
            name: name.to_owned(),
            fingerprint,
            public_key: public_key.to_owned(),
        };
        let value = ssh_key_json(&key);
        self.ssh_keys.insert(id, key);
        json(201, &json!({"ssh_key": value}))
    }
}

fn ssh_key_json(key: &CloudSshKey) -> Value {
    json!({"id": key.id, "name": key.name, "fingerprint": key.fingerprint,
        "public_key": key.public_key, "labels": {}, "created": "2026-11-25T06:00:00+00:00"})
}

fn insert_link(response: &mut Response, link: &str) {
    if let Ok(value) = poem::http::HeaderValue::from_str(link) {
        response.headers_mut().insert("link", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_of_the_simple_forms_filter() {
        let labels: BTreeMap<String, String> = [
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "a".to_owned()),
        ]
        .into();
        let matches = |selector: &str| labels_match(&labels, &label_filter(selector).unwrap());
        assert!(matches("env=prod"));
        assert!(matches("env==prod,team"));
        assert!(!matches("env!=prod"));
        assert!(matches("!legacy"));
        assert!(!matches("legacy"));
        assert!(label_filter("env in (a,b)").is_none());
    }

    #[test]
    fn pagination_reports_neighbours_and_links() {
        let items: Vec<Value> = (0..120).map(|item_idx| json!(item_idx)).collect();
        let query = [
            ("page".to_owned(), "2".to_owned()),
            ("per_page".to_owned(), "50".to_owned()),
        ];
        let (page, meta, link) = paginate(items, &query, "http://x/v1", "/servers");
        assert_eq!(page.first(), Some(&json!(50)));
        assert_eq!(page.len(), 50);
        assert_eq!(meta["pagination"]["next_page"], json!(3));
        assert_eq!(meta["pagination"]["previous_page"], json!(1));
        assert_eq!(meta["pagination"]["last_page"], json!(3));
        assert!(
            link.contains("<http://x/v1/servers?page=3&per_page=50>; rel=\"next\""),
            "{link}"
        );
    }
}
