//! What both fakes share: faults, the request log, rate-limit budgets, the loopback server,
//! and small HTTP helpers.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use md5::{Digest, Md5};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::{Endpoint, Response};
use serde_json::Value;
use tokio::task::JoinHandle;

/// A failure to inject into the next matching requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// "Rate limit exceeded": 403 `RATE_LIMIT_EXCEEDED` on Robot, 429 `rate_limit_exceeded`
    /// on Cloud.
    RateLimit,
    /// An error answer with this 5xx status (`INTERNAL_ERROR` / `server_error` body; a 502 body
    /// is HTML, as a proxy in front of the API would send it).
    Status(u16),
    /// Carry the request out, then wait this long before answering (pair with a short client
    /// timeout).
    Slow(Duration),
    /// Close the connection without an answer.
    Drop,
    /// Carry the request out, then answer with this 5xx status anyway (502 as HTML): the
    /// backend did the work and the gateway in front of it failed, the ambiguous case a client
    /// must not answer by sending the request again.
    AppliedThenStatus(u16),
    /// Answer with this status and this JSON body instead of carrying the request out: an odd
    /// answer of the real API (Robot's 404 `SERVER_NOT_FOUND` or `[]` on `GET /server`, a Cloud
    /// page without `meta`).
    Answer(u16, String),
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// HTTP method, or any.
    pub method: Option<String>,
    /// Path prefix, or any (`/servers`, `/boot/321/rescue`).
    pub path_prefix: Option<String>,
}

impl Target {
    /// Every request.
    pub fn any() -> Self {
        Target::default()
    }

    /// Requests with this method whose path starts with `path_prefix`.
    pub fn on(method: &str, path_prefix: &str) -> Self {
        Target {
            method: Some(method.to_owned()),
            path_prefix: Some(path_prefix.to_owned()),
        }
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }
}

#[derive(Debug, Clone)]
struct FaultRule {
    target: Target,
    fault: Fault,
    remaining: u32,
}

/// A per-endpoint budget: at most `limit` requests, then rate-limit answers until refilled.
#[derive(Debug, Clone)]
struct Budget {
    target: Target,
    limit: u32,
    used: u32,
}

/// Faults, budgets and the request log of one fake.
#[derive(Debug, Default)]
pub(crate) struct Control {
    faults: Vec<FaultRule>,
    budgets: Vec<Budget>,
    log: Vec<String>,
}

impl Control {
    pub(crate) fn inject(&mut self, target: Target, fault: Fault, times: u32) {
        self.faults.push(FaultRule {
            target,
            fault,
            remaining: times,
        });
    }

    pub(crate) fn set_budget(&mut self, target: Target, limit: u32) {
        self.budgets.retain(|budget| budget.target != target);
        self.budgets.push(Budget {
            target,
            limit,
            used: 0,
        });
    }

    pub(crate) fn refill_budgets(&mut self) {
        for budget in &mut self.budgets {
            budget.used = 0;
        }
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.log.clone()
    }

    /// Logs the request and returns the fault to apply, if any: injected faults first, then
    /// spent budgets.
    pub(crate) fn on_request(&mut self, method: &str, path: &str) -> Option<Fault> {
        self.log.push(format!("{method} {path}"));
        if let Some(rule) = self
            .faults
            .iter_mut()
            .find(|rule| rule.remaining > 0 && rule.target.matches(method, path))
        {
            rule.remaining -= 1;
            return Some(rule.fault.clone());
        }
        for budget in &mut self.budgets {
            if budget.target.matches(method, path) {
                if budget.used >= budget.limit {
                    return Some(Fault::RateLimit);
                }
                budget.used += 1;
            }
        }
        None
    }
}

/// Locks a mutex, recovering the data if a handler panicked while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A poem server on `127.0.0.1:0`; aborted when dropped.
#[derive(Debug)]
pub(crate) struct LoopbackServer {
    pub(crate) url: String,
    task: JoinHandle<()>,
}

impl LoopbackServer {
    pub(crate) async fn start(endpoint: impl Endpoint + 'static, suffix: &str) -> io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let acceptor = TcpAcceptor::from_tokio(listener)?;
        let task = tokio::spawn(async move {
            if let Err(error) = poem::Server::new_with_acceptor(acceptor)
                .run(endpoint)
                .await
            {
                eprintln!("fake hetzner server stopped: {error}");
            }
        });
        Ok(LoopbackServer {
            url: format!("http://{address}{suffix}"),
            task,
        })
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A JSON answer.
pub(crate) fn json(status: u16, body: &Value) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

/// The answer of a [`Fault::Answer`]: `body` as JSON with `status`.
pub(crate) fn raw_json(status: u16, body: &str) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type("application/json; charset=utf-8")
        .body(body.to_owned())
}

/// Refuses to hand out a server address outside loopback: the service under test may contact
/// every address it is given (SSH probes after a sync, the installer, the Talos API), and tests
/// contact nothing outside `127.0.0.0/8`. The panic closes the connection, so the client sees a
/// failed request and the test fails; the message says why.
pub(crate) fn loopback_only(ip: Option<&str>) {
    if let Some(ip) = ip {
        let loopback = ip
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            let message = format!(
                "fake hetzner refuses to hand out the server address {ip}: fake servers live in \
                 127.0.0.0/8, because the service may contact them"
            );
            eprintln!("{message}");
            std::panic::panic_any(message);
        }
    }
}

/// A 200 with an empty body (Robot's "no output" endpoints).
pub(crate) fn empty_ok() -> Response {
    Response::builder().status(StatusCode::OK).body("")
}

/// An HTML 502 as a proxy in front of the API would send it: no JSON error object.
pub(crate) fn html_status(status: u16) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY))
        .content_type("text/html")
        .body(format!(
            "<html><body><h1>{status}</h1>fake upstream error</body></html>"
        ))
}

/// Key/value pairs of a form body or query string, in order, repeated keys kept.
pub(crate) fn parse_pairs(text: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(text).unwrap_or_default()
}

/// Every value of `key` and of `key[]`.
pub(crate) fn values<'a>(pairs: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    let bracketed = format!("{key}[]");
    pairs
        .iter()
        .filter(|(name, _)| name == key || *name == bracketed)
        .map(|(_, value)| value.as_str())
        .collect()
}

/// MD5 fingerprint (colon hex) of an OpenSSH public key line, as Hetzner computes it, plus the
/// key type; `None` when the line is not `type base64 [comment]`.
pub(crate) fn md5_fingerprint(openssh: &str) -> Option<(String, String)> {
    let mut fields = openssh.split_whitespace();
    let key_type = fields.next()?.to_owned();
    let blob = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    let fingerprint = Md5::digest(&blob)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    Some((fingerprint, key_type))
}

/// Decodes `Authorization: Basic …` into user and password.
pub(crate) fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// A rescue root password that changes with every activation.
pub(crate) fn password(seed: u64) -> String {
    format!(
        "fake-rescue-{:012x}",
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
    )
}

pub(crate) type Shared<T> = Arc<Mutex<T>>;

/// Ends the connection without an answer, as when a proxy drops it.
///
/// The handler panics: poem then closes the connection with nothing written, and the panic
/// stays inside the fake's connection task (its message names the fault).
pub(crate) fn drop_connection() -> Response {
    std::panic::panic_any("fake hetzner: injected Fault::Drop closes this connection")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        let key =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9uR4m5+mneWPpJTHO9a+r1GCrFW/Q10j4Q4myNRRJ1 x";
        let (fingerprint, key_type) = md5_fingerprint(key).unwrap();
        assert_eq!(
            fingerprint,
            "3c:41:03:c3:b4:6a:f4:30:9d:cd:30:03:49:28:17:4c"
        );
        assert_eq!(key_type, "ssh-ed25519");
        assert_eq!(md5_fingerprint("ssh-ed25519 !!!"), None);
    }

    #[test]
    fn faults_apply_to_matching_requests_only_as_often_as_asked() {
        let mut control = Control::default();
        control.inject(Target::on("GET", "/server"), Fault::RateLimit, 2);
        assert_eq!(control.on_request("GET", "/key"), None);
        assert_eq!(control.on_request("GET", "/server"), Some(Fault::RateLimit));
        assert_eq!(
            control.on_request("GET", "/server/1"),
            Some(Fault::RateLimit)
        );
        assert_eq!(control.on_request("GET", "/server"), None);
        control.set_budget(Target::on("POST", "/reset"), 1);
        assert_eq!(control.on_request("POST", "/reset/1"), None);
        assert_eq!(
            control.on_request("POST", "/reset/1"),
            Some(Fault::RateLimit)
        );
        control.refill_budgets();
        assert_eq!(control.on_request("POST", "/reset/1"), None);
        assert_eq!(control.requests().len(), 7);
    }

    #[test]
    fn form_arrays_are_read_with_and_without_brackets() {
        let pairs = parse_pairs(b"server%5B%5D=1&server%5B%5D=2&server=3&os=linux");
        assert_eq!(values(&pairs, "server"), ["1", "2", "3"]);
        assert_eq!(values(&pairs, "os"), ["linux"]);
    }
}
