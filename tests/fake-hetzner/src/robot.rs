//! The fake Hetzner Robot webservice: dedicated servers, SSH keys, rescue, resets, vSwitches.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::{Request, Response};
use serde_json::{Value, json};

use crate::common::{
    Control, Fault, LoopbackServer, Shared, Target, basic_credentials, drop_connection, empty_ok,
    html_status, json, lock, loopback_only, md5_fingerprint, parse_pairs, password, raw_json,
    values,
};

const SERVERS_FIXTURE: &str = include_str!("../data/robot/get-server.json");
const SERVER_DETAIL_FIXTURE: &str = include_str!("../data/robot/get-server-321.json");
const KEYS_FIXTURE: &str = include_str!("../data/robot/get-key.json");
const VSWITCHES_FIXTURE: &str = include_str!("../data/robot/get-vswitch.json");
const VSWITCH_FIXTURE: &str = include_str!("../data/robot/get-vswitch-4321.json");
const RESET_FIXTURE: &str = include_str!("../data/robot/get-reset-321.json");

/// A dedicated server in the fake Robot account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotServer {
    /// `server_number`, the id.
    pub number: u64,
    /// `server_name`.
    pub name: String,
    /// `server_ip`, may be absent.
    pub ip: Option<String>,
    /// `server_ipv6_net`.
    pub ipv6_net: Option<String>,
    /// `product`; `RX…` is arm64.
    pub product: String,
    /// `dc`.
    pub dc: String,
    /// `status`: `ready` or `in process`.
    pub status: String,
    /// `cancelled`.
    pub cancelled: bool,
    /// `operating_status` of `GET /reset/{id}`: `running`, `shut off` or `not supported`.
    pub operating_status: String,
    /// Reset types the server offers (`sw`, `hw`, `man`, `power`, `power_long`).
    pub reset_types: Vec<String>,
    /// The rescue activation waiting for the next boot, if any.
    pub rescue: Option<RobotRescue>,
    /// The rescue system the server last booted into (a reset consumed the activation).
    pub booted_rescue: Option<RobotRescue>,
    /// Every reset type sent to the server, in order.
    pub resets: Vec<String>,
}

impl RobotServer {
    /// A ready, running x86 server with power-button support.
    pub fn new(number: u64, name: &str) -> Self {
        RobotServer {
            number,
            name: name.to_owned(),
            ip: Some(format!(
                "127.18.{}.{}",
                (number / 250) % 250,
                number % 250 + 1
            )),
            ipv6_net: Some(format!(
                "2a01:4f8:{:x}:{:x}::",
                number >> 16,
                number & 0xffff
            )),
            product: "AX52".to_owned(),
            dc: "FSN1-DC16".to_owned(),
            status: "ready".to_owned(),
            cancelled: false,
            operating_status: "running".to_owned(),
            reset_types: ["sw", "hw", "man", "power", "power_long"]
                .map(String::from)
                .to_vec(),
            rescue: None,
            booted_rescue: None,
            resets: Vec::new(),
        }
    }
}

/// A rescue activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotRescue {
    /// `os`, e.g. `linux`.
    pub os: String,
    /// The root password the activation returned.
    pub password: String,
    /// MD5 fingerprints of the authorized keys.
    pub authorized_keys: Vec<String>,
    /// The rescue system's host key fingerprints Robot announces (`host_key`; the real one has
    /// never been seen to fill it, so empty unless a test sets [`FakeRobot::set_rescue_host_keys`]).
    pub host_keys: Vec<String>,
}

/// An SSH key stored in the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotKey {
    /// `name`.
    pub name: String,
    /// MD5 fingerprint, colon hex.
    pub fingerprint: String,
    /// `type`: `ED25519`, `RSA`, `ECDSA`.
    pub key_type: String,
    /// `size` in bits.
    pub size: u32,
    /// The OpenSSH public key.
    pub data: String,
}

/// A vSwitch and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RobotVswitch {
    /// `id`.
    pub id: u64,
    /// `name`.
    pub name: String,
    /// `vlan`.
    pub vlan: u16,
    /// `cancelled`.
    pub cancelled: bool,
    /// Members in join order.
    pub members: Vec<VswitchMember>,
}

/// A vSwitch member: `processing` for its first `pending_reads` reads, then `ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VswitchMember {
    /// The server number.
    pub server_number: u64,
    /// Reads of `GET /vswitch/{id}` left that show it as `processing`.
    pub pending_reads: u32,
}

#[derive(Debug)]
struct RobotState {
    user: String,
    password: String,
    servers: BTreeMap<u64, RobotServer>,
    keys: Vec<RobotKey>,
    vswitches: BTreeMap<u64, RobotVswitch>,
    control: Control,
    activations: u64,
    rescue_host_keys: Vec<String>,
    processing_reads: u32,
    /// How long a vSwitch stays locked after a membership change.
    vswitch_lock: Duration,
    /// vSwitch id → when its running change ends (Robot answers 409 `VSWITCH_IN_PROCESS` to
    /// any change before then).
    vswitch_locked_until: BTreeMap<u64, Instant>,
    /// Failed logins in a row, and when the block they caused ends.
    failed_logins: u32,
    blocked_until: Option<Instant>,
    block_after: u32,
    block_for: Duration,
    server_template: Value,
    detail_template: Value,
    /// How far the fake's clock is ahead of the real one ([`FakeRobot::advance_clock`]).
    clock_offset: Duration,
    /// Whether the documented hourly limits per endpoint are enforced.
    hourly_limits: bool,
    /// When each endpoint was called in the last hour, oldest first.
    hourly: BTreeMap<&'static str, VecDeque<Instant>>,
    /// How many 403 `RATE_LIMIT_EXCEEDED` answers the hourly limits gave.
    rate_limit_answers: u32,
}

/// Robot's documented hourly limit of the endpoint a request goes to (`hetzner-apis.md` §1.2;
/// Robot counts per endpoint per account), `None` for endpoints the fake does not serve.
fn hourly_limit(method: &str, segments: &[&str]) -> Option<(&'static str, usize)> {
    Some(match (method, segments) {
        ("GET", ["server"]) => ("GET /server", 200),
        ("GET", ["server", _]) => ("GET /server/{id}", 200),
        ("POST", ["server", _]) => ("POST /server/{id}", 200),
        ("GET", ["key"]) => ("GET /key", 500),
        ("POST", ["key"]) => ("POST /key", 200),
        ("GET", ["boot", _, "rescue"]) => ("GET /boot/{id}/rescue", 500),
        ("POST", ["boot", _, "rescue"]) => ("POST /boot/{id}/rescue", 500),
        ("DELETE", ["boot", _, "rescue"]) => ("DELETE /boot/{id}/rescue", 500),
        ("GET", ["reset", _]) => ("GET /reset/{id}", 500),
        ("POST", ["reset", _]) => ("POST /reset/{id}", 50),
        ("GET", ["vswitch"]) => ("GET /vswitch", 500),
        ("GET", ["vswitch", _]) => ("GET /vswitch/{id}", 500),
        ("POST", ["vswitch", _, "server"]) => ("POST /vswitch/{id}/server", 100),
        ("DELETE", ["vswitch", _, "server"]) => ("DELETE /vswitch/{id}/server", 100),
        _ => return None,
    })
}

/// The fake Robot webservice on `127.0.0.1`, stopped when dropped. See the crate docs for its
/// state model.
#[derive(Debug)]
pub struct FakeRobot {
    server: LoopbackServer,
    state: Shared<RobotState>,
}

impl FakeRobot {
    /// The web-service user the fake accepts.
    pub const USER: &str = "fake-robot-user";
    /// Its password.
    pub const PASSWORD: &str = "fake-robot-password";
    /// How long a vSwitch stays locked after each membership change unless a test says
    /// otherwise ([`set_vswitch_lock`](Self::set_vswitch_lock)): short, so that tests run fast,
    /// but long enough that back-to-back changes meet the lock, as they do at the real Robot
    /// (where it lasts from seconds to minutes).
    pub const DEFAULT_VSWITCH_LOCK: Duration = Duration::from_millis(150);

    /// Starts the fake seeded from the fixtures: servers 321 and 421, keys `key1` and `key2`,
    /// vSwitches 1234 (empty) and 4321 (members 321 and 421).
    pub async fn start() -> io::Result<Self> {
        let fake = Self::start_empty().await?;
        {
            let mut state = lock(&fake.state);
            state.seed_from_fixtures();
        }
        Ok(fake)
    }

    /// Starts the fake with an empty account: no servers, keys or vSwitches.
    pub async fn start_empty() -> io::Result<Self> {
        let server_template = parse_fixture(SERVERS_FIXTURE)[0]["server"].clone();
        let detail_template = parse_fixture(SERVER_DETAIL_FIXTURE)["server"].clone();
        let state = Arc::new(Mutex::new(RobotState {
            user: Self::USER.to_owned(),
            password: Self::PASSWORD.to_owned(),
            servers: BTreeMap::new(),
            keys: Vec::new(),
            vswitches: BTreeMap::new(),
            control: Control::default(),
            activations: 0,
            rescue_host_keys: Vec::new(),
            processing_reads: 1,
            vswitch_lock: Self::DEFAULT_VSWITCH_LOCK,
            vswitch_locked_until: BTreeMap::new(),
            failed_logins: 0,
            blocked_until: None,
            block_after: 3,
            block_for: Duration::from_secs(600),
            server_template,
            detail_template,
            clock_offset: Duration::ZERO,
            hourly_limits: true,
            hourly: BTreeMap::new(),
            rate_limit_answers: 0,
        }));
        let handler_state = state.clone();
        let endpoint = poem::endpoint::make(move |request: Request| {
            let state = handler_state.clone();
            async move { handle(state, request).await }
        });
        let server = LoopbackServer::start(endpoint, "").await?;
        Ok(FakeRobot { server, state })
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (Robot has no version prefix).
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Adds `n_servers` generated servers numbered after the highest existing one and returns
    /// their numbers. Every fourth is an `RX170` (arm64); data centres rotate.
    pub fn generate_servers(&self, n_servers: usize) -> Vec<u64> {
        let mut state = lock(&self.state);
        let first = state
            .servers
            .keys()
            .next_back()
            .map_or(100_000, |last| last + 1);
        (0..n_servers as u64)
            .map(|server_idx| {
                let number = first + server_idx;
                let mut server = RobotServer::new(number, &format!("robot-{number}"));
                if server_idx % 4 == 3 {
                    server.product = "RX170".to_owned();
                }
                server.dc = ["FSN1-DC16", "NBG1-DC3", "HEL1-DC2"][(server_idx % 3) as usize].into();
                state.servers.insert(number, server);
                number
            })
            .collect()
    }

    /// Adds or replaces a server.
    pub fn add_server(&self, server: RobotServer) {
        lock(&self.state).servers.insert(server.number, server);
    }

    /// Removes a server (cancelled and gone); `true` when it existed.
    pub fn remove_server(&self, number: u64) -> bool {
        lock(&self.state).servers.remove(&number).is_some()
    }

    /// A copy of one server.
    pub fn server(&self, number: u64) -> Option<RobotServer> {
        lock(&self.state).servers.get(&number).cloned()
    }

    /// Copies of every server.
    pub fn servers(&self) -> Vec<RobotServer> {
        lock(&self.state).servers.values().cloned().collect()
    }

    /// Sets what `GET /reset/{id}` reports as `operating_status`.
    pub fn set_operating_status(&self, number: u64, operating_status: &str) {
        if let Some(server) = lock(&self.state).servers.get_mut(&number) {
            server.operating_status = operating_status.to_owned();
        }
    }

    /// The host key fingerprints the next rescue activations announce in `host_key`.
    pub fn set_rescue_host_keys(&self, fingerprints: &[&str]) {
        lock(&self.state).rescue_host_keys =
            fingerprints.iter().map(|fp| (*fp).to_owned()).collect();
    }

    /// Stores an SSH key as if uploaded through Robot's web interface.
    pub fn add_key(&self, name: &str, openssh: &str) -> Option<RobotKey> {
        let key = new_key(name, openssh)?;
        lock(&self.state).keys.push(key.clone());
        Some(key)
    }

    /// Copies of the stored SSH keys.
    pub fn keys(&self) -> Vec<RobotKey> {
        lock(&self.state).keys.clone()
    }

    /// Removes every stored SSH key.
    pub fn clear_keys(&self) {
        lock(&self.state).keys.clear();
    }

    /// A copy of one vSwitch.
    pub fn vswitch(&self, id: u64) -> Option<RobotVswitch> {
        lock(&self.state).vswitches.get(&id).cloned()
    }

    /// Adds or replaces a vSwitch.
    pub fn add_vswitch(&self, vswitch: RobotVswitch) {
        lock(&self.state).vswitches.insert(vswitch.id, vswitch);
    }

    /// Removes a vSwitch (cancelled and gone); `true` when it existed.
    pub fn remove_vswitch(&self, id: u64) -> bool {
        lock(&self.state).vswitches.remove(&id).is_some()
    }

    /// How many reads a newly added vSwitch member shows as `processing` (default 1).
    pub fn set_vswitch_processing_reads(&self, reads: u32) {
        lock(&self.state).processing_reads = reads;
    }

    /// How long a vSwitch is locked (409 `VSWITCH_IN_PROCESS` to every change) after each
    /// add or removal of a server; [`DEFAULT_VSWITCH_LOCK`](Self::DEFAULT_VSWITCH_LOCK) unless set.
    pub fn set_vswitch_lock(&self, duration: Duration) {
        lock(&self.state).vswitch_lock = duration;
    }

    /// Changes the password the fake accepts, as an operator rotating the web-service password
    /// in Robot does.
    pub fn set_password(&self, password: &str) {
        lock(&self.state).password = password.to_owned();
    }

    /// Ends an address block (the real one lasts 10 minutes) and forgets failed logins.
    pub fn unblock(&self) {
        let mut state = lock(&self.state);
        state.blocked_until = None;
        state.failed_logins = 0;
    }

    /// Never blocks the client address, however many logins fail (a client that sends
    /// thousands of wrong passwords on purpose, such as an API fuzzer).
    pub fn never_block(&self) {
        lock(&self.state).block_after = u32::MAX;
    }

    /// Whether failed logins have the client blocked now.
    pub fn is_blocked(&self) -> bool {
        let state = lock(&self.state);
        state.blocked_until.is_some_and(|until| state.now() < until)
    }

    /// Moves the fake's clock forward: hourly limits, address blocks and vSwitch locks end as
    /// if `by` had passed (a simulated week of syncs runs in seconds).
    pub fn advance_clock(&self, by: Duration) {
        lock(&self.state).clock_offset += by;
    }

    /// Stops enforcing Robot's hourly limits per endpoint (`GET /server` 200, `GET /vswitch/{id}`
    /// 500, `POST /reset/{id}` 50, …), which the fake enforces like the real one unless told
    /// otherwise: for a client that sends thousands of requests on purpose, such as an API
    /// fuzzer.
    pub fn without_hourly_limits(&self) {
        lock(&self.state).hourly_limits = false;
    }

    /// How many requests the hourly limits refused with 403 `RATE_LIMIT_EXCEEDED` so far.
    pub fn rate_limit_answers(&self) -> u32 {
        lock(&self.state).rate_limit_answers
    }

    /// Makes the next `times` requests matching `target` fail with `fault`.
    pub fn inject(&self, target: Target, fault: Fault, times: u32) {
        lock(&self.state).control.inject(target, fault, times);
    }

    /// Gives the requests matching `target` a budget of `limit`; past it they get 403
    /// `RATE_LIMIT_EXCEEDED` until [`refill_rate_limits`](Self::refill_rate_limits) (the real
    /// budgets are per hour).
    pub fn set_rate_limit(&self, target: Target, limit: u32) {
        lock(&self.state).control.set_budget(target, limit);
    }

    /// Resets every budget, as the passing of an hour would.
    pub fn refill_rate_limits(&self) {
        lock(&self.state).control.refill_budgets();
    }

    /// Every request received, as `"METHOD /path"`, in order (unauthenticated ones included).
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).control.requests()
    }
}

fn parse_fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

fn new_key(name: &str, openssh: &str) -> Option<RobotKey> {
    let (fingerprint, key_type) = md5_fingerprint(openssh)?;
    let (key_type, size) = match key_type.as_str() {
        "ssh-ed25519" => ("ED25519", 256),
        "ssh-rsa" => ("RSA", 2048),
        other if other.starts_with("ecdsa") => ("ECDSA", 256),
        _ => ("UNKNOWN", 0),
    };
    Some(RobotKey {
        name: name.to_owned(),
        fingerprint,
        key_type: key_type.to_owned(),
        size,
        data: openssh.trim().to_owned(),
    })
}

fn error(status: u16, code: &str, message: &str) -> Response {
    json(
        status,
        &json!({"error": {"status": status, "code": code, "message": message}}),
    )
}

fn rate_limited(max_requests: usize) -> Response {
    json(
        403,
        &json!({"error": {"status": 403, "code": "RATE_LIMIT_EXCEEDED",
            "max_requests": max_requests, "interval": 3600, "message": "rate limit exceeded"}}),
    )
}

fn invalid_input(invalid: &[&str]) -> Response {
    json(
        400,
        &json!({"error": {"status": 400, "code": "INVALID_INPUT", "message": "invalid input",
            "missing": null, "invalid": invalid}}),
    )
}

fn server_not_found() -> Response {
    error(404, "SERVER_NOT_FOUND", "server not found")
}

async fn handle(state: Shared<RobotState>, mut request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let credentials = basic_credentials(request.header("authorization"));
    let body = request.take_body().into_bytes().await.unwrap_or_default();
    let fault = {
        let mut state = lock(&state);
        let fault = state.control.on_request(&method, &path);
        // Robot blocks the client address for 10 minutes after three failed logins in a row
        // (the webservice documentation); while blocked, even good credentials are refused.
        let now = state.now();
        if state.blocked_until.is_some_and(|until| now < until) {
            return error(
                403,
                "BLOCKED",
                "client address blocked after repeated failed login attempts",
            );
        }
        if credentials != Some((state.user.clone(), state.password.clone())) {
            state.failed_logins += 1;
            if state.failed_logins >= state.block_after {
                state.blocked_until = Some(now + state.block_for);
            }
            return error(401, "UNAUTHORIZED", "Unauthorized");
        }
        state.failed_logins = 0;
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        if let Some(max_requests) = state.count_hourly(&method, &segments, now) {
            return rate_limited(max_requests);
        }
        fault
    };
    let mut delay = None;
    let mut applied_then = None;
    match fault {
        Some(Fault::Slow(slow)) => delay = Some(slow),
        Some(Fault::AppliedThenStatus(status)) => applied_then = Some(status),
        Some(Fault::RateLimit) => return rate_limited(200),
        Some(Fault::Status(502)) => return html_status(502),
        Some(Fault::Status(status)) => return error(status, "INTERNAL_ERROR", "internal error"),
        Some(Fault::Drop) => return drop_connection(),
        Some(Fault::Answer(status, body)) => return raw_json(status, &body),
        None => {}
    }
    let form = parse_pairs(&body);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = lock(&state).route(&method, &segments, &form);
    // Slow answers are slow after the work is done, as when the real API is: a client that
    // gives up has still changed the server.
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    match applied_then {
        Some(502) => html_status(502),
        Some(status) => error(status, "INTERNAL_ERROR", "internal error"),
        None => response,
    }
}

impl RobotState {
    /// The fake's clock: the real one plus what tests advanced it by.
    fn now(&self) -> Instant {
        Instant::now() + self.clock_offset
    }

    /// Counts the request against its endpoint's hourly limit; `Some(limit)` when the limit is
    /// spent and the request is refused.
    fn count_hourly(&mut self, method: &str, segments: &[&str], now: Instant) -> Option<usize> {
        if !self.hourly_limits {
            return None;
        }
        let (endpoint, limit) = hourly_limit(method, segments)?;
        let sent = self.hourly.entry(endpoint).or_default();
        while sent
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(3600))
        {
            sent.pop_front();
        }
        if sent.len() >= limit {
            self.rate_limit_answers += 1;
            return Some(limit);
        }
        sent.push_back(now);
        None
    }

    fn seed_from_fixtures(&mut self) {
        let reset = parse_fixture(RESET_FIXTURE);
        for entry in parse_fixture(SERVERS_FIXTURE)
            .as_array()
            .into_iter()
            .flatten()
        {
            let server = &entry["server"];
            let Some(number) = server["server_number"].as_u64() else {
                continue;
            };
            let mut robot_server =
                RobotServer::new(number, server["server_name"].as_str().unwrap_or(""));
            // The fixture's address (123.123.123.123) is not loopback: the fake keeps its own.
            robot_server.ipv6_net = server["server_ipv6_net"].as_str().map(str::to_owned);
            robot_server.product = server["product"].as_str().unwrap_or("").to_owned();
            robot_server.dc = server["dc"].as_str().unwrap_or("").to_owned();
            robot_server.status = server["status"].as_str().unwrap_or("ready").to_owned();
            robot_server.cancelled = server["cancelled"].as_bool().unwrap_or(false);
            if reset["reset"]["server_number"].as_u64() == Some(number) {
                robot_server.operating_status = reset["reset"]["operating_status"]
                    .as_str()
                    .unwrap_or("running")
                    .to_owned();
                robot_server.reset_types = reset["reset"]["type"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|reset_type| reset_type.as_str().map(str::to_owned))
                    .collect();
            }
            self.servers.insert(number, robot_server);
        }
        for entry in parse_fixture(KEYS_FIXTURE).as_array().into_iter().flatten() {
            let key = &entry["key"];
            self.keys.push(RobotKey {
                name: key["name"].as_str().unwrap_or("").to_owned(),
                fingerprint: key["fingerprint"].as_str().unwrap_or("").to_owned(),
                key_type: key["type"].as_str().unwrap_or("").to_owned(),
                size: key["size"].as_u64().unwrap_or(0) as u32,
                data: key["data"].as_str().unwrap_or("").to_owned(),
            });
        }
        let detail = parse_fixture(VSWITCH_FIXTURE);
        for entry in parse_fixture(VSWITCHES_FIXTURE)
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = entry["id"].as_u64().unwrap_or(0);
            let source = if detail["id"].as_u64() == Some(id) {
                &detail
            } else {
                entry
            };
            let members = source["server"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|member| member["server_number"].as_u64())
                .map(|server_number| VswitchMember {
                    server_number,
                    pending_reads: 0,
                })
                .collect();
            self.vswitches.insert(
                id,
                RobotVswitch {
                    id,
                    name: source["name"].as_str().unwrap_or("").to_owned(),
                    vlan: source["vlan"].as_u64().unwrap_or(4000) as u16,
                    cancelled: source["cancelled"].as_bool().unwrap_or(false),
                    members,
                },
            );
        }
    }

    fn route(&mut self, method: &str, segments: &[&str], form: &[(String, String)]) -> Response {
        match (method, segments) {
            ("GET", ["server"]) => {
                if self.servers.is_empty() {
                    return server_not_found();
                }
                let list: Vec<Value> = self
                    .servers
                    .values()
                    .map(|server| json!({"server": self.server_json(server, false)}))
                    .collect();
                json(200, &Value::Array(list))
            }
            ("GET", ["server", number]) => match self.server_mut(number) {
                Some(server) => {
                    let server = server.clone();
                    json(200, &json!({"server": self.server_json(&server, true)}))
                }
                None => server_not_found(),
            },
            ("POST", ["server", number]) => {
                let Some(name) = values(form, "server_name")
                    .first()
                    .map(|name| name.to_string())
                else {
                    return invalid_input(&["server_name"]);
                };
                match self.server_mut(number) {
                    Some(server) => {
                        server.name = name;
                        let server = server.clone();
                        json(200, &json!({"server": self.server_json(&server, true)}))
                    }
                    None => server_not_found(),
                }
            }
            ("GET", ["key"]) => {
                if self.keys.is_empty() {
                    return error(404, "NOT_FOUND", "no keys found");
                }
                let list: Vec<Value> = self
                    .keys
                    .iter()
                    .map(|key| json!({"key": key_json(key)}))
                    .collect();
                json(200, &Value::Array(list))
            }
            ("GET", ["key", fingerprint]) => {
                match self.keys.iter().find(|key| key.fingerprint == *fingerprint) {
                    Some(key) => json(200, &json!({"key": key_json(key)})),
                    None => error(404, "NOT_FOUND", "key not found"),
                }
            }
            ("POST", ["key"]) => {
                let name = values(form, "name").first().map(|name| name.to_string());
                let data = values(form, "data").first().map(|data| data.to_string());
                let (Some(name), Some(data)) = (name, data) else {
                    return invalid_input(&["name", "data"]);
                };
                let Some(key) = new_key(&name, &data) else {
                    return invalid_input(&["data"]);
                };
                if self
                    .keys
                    .iter()
                    .any(|existing| existing.fingerprint == key.fingerprint)
                {
                    return error(409, "KEY_ALREADY_EXISTS", "key already exists");
                }
                self.keys.push(key.clone());
                json(201, &json!({"key": key_json(&key)}))
            }
            ("DELETE", ["key", fingerprint]) => {
                let before = self.keys.len();
                self.keys.retain(|key| key.fingerprint != *fingerprint);
                if self.keys.len() == before {
                    return error(404, "NOT_FOUND", "key not found");
                }
                empty_ok()
            }
            ("GET", ["boot", number, "rescue"]) => match self.server_mut(number) {
                Some(server) => {
                    let server = server.clone();
                    json(200, &json!({"rescue": self.rescue_json(&server)}))
                }
                None => server_not_found(),
            },
            ("POST", ["boot", number, "rescue"]) => self.enable_rescue(number, form),
            ("DELETE", ["boot", number, "rescue"]) => match self.server_mut(number) {
                Some(server) => {
                    server.rescue = None;
                    let server = server.clone();
                    json(200, &json!({"rescue": self.rescue_json(&server)}))
                }
                None => server_not_found(),
            },
            ("GET", ["reset", number]) => match self.server_mut(number) {
                Some(server) => json(
                    200,
                    &json!({"reset": {"server_ip": server.ip, "server_ipv6_net": server.ipv6_net,
                        "server_number": server.number, "type": server.reset_types,
                        "operating_status": server.operating_status}}),
                ),
                None => server_not_found(),
            },
            ("POST", ["reset", number]) => self.reset(number, form),
            ("GET", ["vswitch"]) => {
                let list: Vec<Value> = self
                    .vswitches
                    .values()
                    .map(|vswitch| {
                        json!({"id": vswitch.id, "name": vswitch.name, "vlan": vswitch.vlan,
                            "cancelled": vswitch.cancelled})
                    })
                    .collect();
                json(200, &Value::Array(list))
            }
            ("GET", ["vswitch", id]) => self.get_vswitch(id),
            ("POST", ["vswitch", id, "server"]) => self.change_vswitch(id, form, true),
            ("DELETE", ["vswitch", id, "server"]) => self.change_vswitch(id, form, false),
            _ => error(
                501,
                "NOT_IMPLEMENTED_IN_FAKE",
                &format!(
                    "{method} /{} is not implemented in fake Robot",
                    segments.join("/")
                ),
            ),
        }
    }

    fn server_mut(&mut self, number: &str) -> Option<&mut RobotServer> {
        self.servers.get_mut(&number.parse::<u64>().ok()?)
    }

    fn server_json(&self, server: &RobotServer, detail: bool) -> Value {
        let mut value = if detail {
            self.detail_template.clone()
        } else {
            self.server_template.clone()
        };
        loopback_only(server.ip.as_deref());
        value["server_ip"] = json!(server.ip);
        value["server_ipv6_net"] = json!(server.ipv6_net);
        value["server_number"] = json!(server.number);
        value["server_name"] = json!(server.name);
        value["product"] = json!(server.product);
        value["dc"] = json!(server.dc);
        value["status"] = json!(server.status);
        value["cancelled"] = json!(server.cancelled);
        value["ip"] = json!(server.ip.iter().collect::<Vec<_>>());
        value
    }

    fn rescue_json(&self, server: &RobotServer) -> Value {
        match &server.rescue {
            Some(rescue) => {
                let authorized: Vec<Value> = rescue
                    .authorized_keys
                    .iter()
                    .map(|fingerprint| {
                        let key = self.keys.iter().find(|key| key.fingerprint == *fingerprint);
                        json!({"key": {
                            "name": key.map(|key| key.name.as_str()),
                            "fingerprint": fingerprint,
                            "type": key.map(|key| key.key_type.as_str()),
                            "size": key.map(|key| key.size),
                        }})
                    })
                    .collect();
                let host_keys: Vec<Value> = rescue
                    .host_keys
                    .iter()
                    .map(|fingerprint| json!({"key": {"fingerprint": fingerprint}}))
                    .collect();
                json!({"server_ip": server.ip, "server_ipv6_net": server.ipv6_net,
                    "server_number": server.number, "os": rescue.os, "arch": 64, "active": true,
                    "password": rescue.password, "authorized_key": authorized, "host_key": host_keys,
                    "boot_time": null})
            }
            None => json!({"server_ip": server.ip, "server_ipv6_net": server.ipv6_net,
                "server_number": server.number, "os": ["linux", "vkvm"], "arch": [64, 32],
                "active": false, "password": null, "authorized_key": [], "host_key": [],
                "boot_time": null}),
        }
    }

    fn enable_rescue(&mut self, number: &str, form: &[(String, String)]) -> Response {
        let Some(os) = values(form, "os").first().map(|os| os.to_string()) else {
            return invalid_input(&["os"]);
        };
        let fingerprints: Vec<String> = values(form, "authorized_key")
            .into_iter()
            .map(str::to_owned)
            .collect();
        if fingerprints
            .iter()
            .any(|fingerprint| !self.keys.iter().any(|key| key.fingerprint == *fingerprint))
        {
            return invalid_input(&["authorized_key"]);
        }
        self.activations += 1;
        let rescue_password = password(self.activations);
        let host_keys = self.rescue_host_keys.clone();
        let Some(server) = self.server_mut(number) else {
            return server_not_found();
        };
        if server.rescue.is_some() {
            return error(409, "BOOT_ALREADY_ENABLED", "Boot already enabled");
        }
        server.rescue = Some(RobotRescue {
            os,
            password: rescue_password,
            authorized_keys: fingerprints,
            host_keys,
        });
        let server = server.clone();
        json(200, &json!({"rescue": self.rescue_json(&server)}))
    }

    fn reset(&mut self, number: &str, form: &[(String, String)]) -> Response {
        let Some(server) = self.server_mut(number) else {
            return server_not_found();
        };
        let Some(reset_type) = values(form, "type").first().map(|value| value.to_string()) else {
            return invalid_input(&["type"]);
        };
        if !server.reset_types.contains(&reset_type) {
            return invalid_input(&["type"]);
        }
        server.resets.push(reset_type.clone());
        // The power button switches a running server off (ACPI) and a shut-off one on.
        let boots = match (reset_type.as_str(), server.operating_status.as_str()) {
            ("power" | "power_long", "running") => {
                server.operating_status = "shut off".to_owned();
                false
            }
            ("power" | "power_long", _) => {
                server.operating_status = "running".to_owned();
                true
            }
            _ => true,
        };
        if boots && let Some(rescue) = server.rescue.take() {
            server.booted_rescue = Some(rescue);
        }
        json(
            200,
            &json!({"reset": {"server_ip": server.ip, "server_ipv6_net": server.ipv6_net,
                "server_number": server.number, "type": reset_type}}),
        )
    }

    fn get_vswitch(&mut self, id: &str) -> Response {
        let servers = &self.servers;
        let Some(vswitch) = id
            .parse()
            .ok()
            .and_then(|id: u64| self.vswitches.get_mut(&id))
        else {
            return error(404, "NOT_FOUND", "vswitch not found");
        };
        let members: Vec<Value> = vswitch
            .members
            .iter_mut()
            .map(|member| {
                let status = if member.pending_reads > 0 {
                    member.pending_reads -= 1;
                    "processing"
                } else {
                    "ready"
                };
                let server = servers.get(&member.server_number);
                json!({"server_ip": server.and_then(|server| server.ip.clone()),
                    "server_ipv6_net": server.and_then(|server| server.ipv6_net.clone()),
                    "server_number": member.server_number, "status": status})
            })
            .collect();
        json(
            200,
            &json!({"id": vswitch.id, "name": vswitch.name, "vlan": vswitch.vlan,
                "cancelled": vswitch.cancelled, "server": members, "subnet": [],
                "cloud_network": []}),
        )
    }

    fn change_vswitch(&mut self, id: &str, form: &[(String, String)], add: bool) -> Response {
        let numbers: Vec<u64> = values(form, "server")
            .iter()
            .filter_map(|number| number.parse().ok())
            .collect();
        if numbers.is_empty() {
            return invalid_input(&["server"]);
        }
        if numbers
            .iter()
            .any(|number| !self.servers.contains_key(number))
        {
            return server_not_found();
        }
        let processing_reads = self.processing_reads;
        let now = self.now();
        let locked_until = now + self.vswitch_lock;
        let Some(vswitch) = id
            .parse()
            .ok()
            .and_then(|id: u64| self.vswitches.get_mut(&id))
        else {
            return error(404, "NOT_FOUND", "vswitch not found");
        };
        // The lock covers the whole vSwitch, whichever server the running change was about.
        if self
            .vswitch_locked_until
            .get(&vswitch.id)
            .is_some_and(|until| now < *until)
        {
            return error(
                409,
                "VSWITCH_IN_PROCESS",
                "The vSwitch cannot be updated because a update is currently running",
            );
        }
        self.vswitch_locked_until.insert(vswitch.id, locked_until);
        for number in numbers {
            let present = vswitch
                .members
                .iter()
                .any(|member| member.server_number == number);
            if add && !present {
                vswitch.members.push(VswitchMember {
                    server_number: number,
                    pending_reads: processing_reads,
                });
            } else if !add {
                vswitch
                    .members
                    .retain(|member| member.server_number != number);
            }
        }
        empty_ok()
    }
}

fn key_json(key: &RobotKey) -> Value {
    json!({"name": key.name, "fingerprint": key.fingerprint, "type": key.key_type,
        "size": key.size, "data": key.data, "created_at": "2026-11-25 06:00:00"})
}
