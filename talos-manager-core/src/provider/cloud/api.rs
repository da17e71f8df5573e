//! Hetzner Cloud requests and answers as plain values: built and parsed without I/O, tested on
//! the recorded fixtures.
//!
//! Cloud takes and returns JSON, paginates lists (`page`, `per_page` ≤ 50, `meta.pagination`),
//! and runs power changes as actions to poll. Shapes follow the research note §2: servers have
//! no `datacenter` since 2026-07-01 (read `location.name`), and `public_net.ipv4` may be null.

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::provider::http::{ApiRequest, unparsed_error};
use crate::provider::{Architecture, HetznerApiError, ProviderServer};

/// The most Cloud returns per page.
pub(crate) const PER_PAGE: u32 = 50;

pub(crate) fn list_servers(page: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        "/servers",
        format!("list servers (page {page})"),
    )
    .query("page", page)
    .query("per_page", PER_PAGE)
}

pub(crate) fn get_server(server_id: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        format!("/servers/{server_id}"),
        format!("get server {server_id}"),
    )
}

pub(crate) fn rename_server(server_id: u64, name: &str) -> ApiRequest {
    ApiRequest::new(
        Method::PUT,
        format!("/servers/{server_id}"),
        format!("rename server {server_id}"),
    )
    .json(json!({ "name": name }))
}

pub(crate) fn list_ssh_keys(page: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        "/ssh_keys",
        format!("list SSH keys (page {page})"),
    )
    .query("page", page)
    .query("per_page", PER_PAGE)
}

pub(crate) fn create_ssh_key(name: &str, public_key: &str) -> ApiRequest {
    ApiRequest::new(Method::POST, "/ssh_keys", "upload the SSH key")
        .json(json!({ "name": name, "public_key": public_key }))
}

/// Rescue with only our key (the Rails app passed every key of the project).
pub(crate) fn enable_rescue(server_id: u64, ssh_key_id: u64) -> ApiRequest {
    ApiRequest::new(
        Method::POST,
        format!("/servers/{server_id}/actions/enable_rescue"),
        format!("enable rescue on server {server_id}"),
    )
    .json(json!({ "type": "linux64", "ssh_keys": [ssh_key_id] }))
}

/// Power on. A `locked` answer is retried by the transport first, then waited out by
/// [`super::HetznerCloud`] like every other action's.
pub(crate) fn power_on(server_id: u64) -> ApiRequest {
    ApiRequest::new(
        Method::POST,
        format!("/servers/{server_id}/actions/poweron"),
        format!("power on server {server_id}"),
    )
    .retry_locked()
}

/// Hard reset; `locked` handled as for [`power_on`].
pub(crate) fn reset(server_id: u64) -> ApiRequest {
    ApiRequest::new(
        Method::POST,
        format!("/servers/{server_id}/actions/reset"),
        format!("reset server {server_id}"),
    )
    .retry_locked()
}

pub(crate) fn get_action(action_id: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        format!("/actions/{action_id}"),
        format!("read action {action_id}"),
    )
}

/// `meta.pagination`; every field but `page` may be null.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Pagination {
    #[serde(default)]
    pub(crate) next_page: Option<u64>,
    #[serde(default)]
    pub(crate) total_entries: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Meta {
    #[serde(default)]
    pub(crate) pagination: Pagination,
}

/// One page of `GET /servers`. `meta` is required: the API always sends it with a list, and a
/// page without it cannot say whether more pages follow, so it is a broken answer (an error),
/// never read as "that was every server".
#[derive(Debug, Deserialize)]
pub(crate) struct ServersPage {
    pub(crate) servers: Vec<Server>,
    pub(crate) meta: Meta,
}

/// `{"server":{…}}`
#[derive(Debug, Deserialize)]
pub(crate) struct ServerEnvelope {
    pub(crate) server: Server,
}

/// A Cloud server; only the fields we use, each tolerant of absence.
#[derive(Debug, Deserialize)]
pub(crate) struct Server {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) status: String,
    /// `true` while an action runs on the server: other actions and renames are refused
    /// with 423 `locked` meanwhile.
    #[serde(default)]
    pub(crate) locked: bool,
    #[serde(default)]
    pub(crate) public_net: PublicNet,
    #[serde(default)]
    pub(crate) server_type: ServerType,
    #[serde(default)]
    pub(crate) location: Option<Location>,
    /// Removed from the API on 2026-07-01; read only when `location` is missing (old answers).
    #[serde(default)]
    pub(crate) datacenter: Option<Datacenter>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PublicNet {
    #[serde(default)]
    pub(crate) ipv4: Option<PublicIp>,
    #[serde(default)]
    pub(crate) ipv6: Option<PublicIp>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PublicIp {
    pub(crate) ip: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ServerType {
    #[serde(default)]
    pub(crate) name: String,
    /// `x86` or `arm`.
    #[serde(default)]
    pub(crate) architecture: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Location {
    pub(crate) name: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Datacenter {
    #[serde(default)]
    pub(crate) location: Option<Location>,
}

impl Server {
    pub(crate) fn into_provider_server(self) -> ProviderServer {
        let data_center = self
            .location
            .or_else(|| self.datacenter.and_then(|datacenter| datacenter.location))
            .map(|location| location.name)
            .unwrap_or_default();
        ProviderServer {
            provider_id: self.id.to_string(),
            name: self.name,
            ipv4: self.public_net.ipv4.and_then(|ipv4| ipv4.ip.parse().ok()),
            ipv6: self
                .public_net
                .ipv6
                .and_then(|ipv6| ipv6.ip.split('/').next().and_then(|ip| ip.parse().ok())),
            architecture: architecture_of_type(self.server_type.architecture.as_deref()),
            product: self.server_type.name,
            data_center,
            status: self.status,
            cancelled: false,
        }
    }
}

/// `server_type.architecture == "arm"` is arm64; everything else x86-64.
pub(crate) fn architecture_of_type(architecture: Option<&str>) -> Architecture {
    match architecture {
        Some("arm") => Architecture::Arm64,
        _ => Architecture::Amd64,
    }
}

/// One page of `GET /ssh_keys`.
#[derive(Debug, Deserialize)]
pub(crate) struct SshKeysPage {
    pub(crate) ssh_keys: Vec<SshKey>,
    #[serde(default)]
    pub(crate) meta: Meta,
}

/// `{"ssh_key":{…}}`
#[derive(Debug, Deserialize)]
pub(crate) struct SshKeyEnvelope {
    pub(crate) ssh_key: SshKey,
}

/// An SSH key of the project.
#[derive(Debug, Deserialize)]
pub(crate) struct SshKey {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) fingerprint: String,
}

/// `{"action":{…}}`
#[derive(Debug, Deserialize)]
pub(crate) struct ActionEnvelope {
    pub(crate) action: Action,
}

/// The answer to `enable_rescue`.
#[derive(Debug, Deserialize)]
pub(crate) struct EnableRescueResponse {
    #[serde(default)]
    pub(crate) root_password: Option<String>,
    pub(crate) action: Action,
}

/// An asynchronous operation: `running`, then `success` or `error`.
#[derive(Debug, Deserialize)]
pub(crate) struct Action {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) command: String,
    pub(crate) status: String,
    /// Real successful actions have `null`; the doc examples show an error on every action, so
    /// only `status == "error"` counts.
    #[serde(default)]
    pub(crate) error: Option<ActionError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ActionError {
    pub(crate) code: String,
    #[serde(default)]
    pub(crate) message: String,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ActionError,
}

/// Parses Cloud's `{"error":{"code","message","details"}}`.
pub(crate) fn parse_error(
    status: u16,
    body: &[u8],
    correlation_id: Option<String>,
) -> HetznerApiError {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => HetznerApiError {
            status,
            code: envelope.error.code,
            message: envelope.error.message,
            correlation_id,
        },
        Err(_) => unparsed_error(status, body, correlation_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::http::Body;

    macro_rules! fixture {
        ($path:literal) => {
            include_str!(concat!("../../../../tests/fake-hetzner/data/cloud/", $path))
        };
    }

    #[test]
    fn current_server_shape_reads_location_not_datacenter() {
        let envelope: ServerEnvelope =
            serde_json::from_str(fixture!("get-servers-42.spec-2026.json")).unwrap();
        let server = envelope.server.into_provider_server();
        assert_eq!(server.provider_id, "42");
        assert_eq!(server.name, "my-resource");
        assert_eq!(server.data_center, "fsn1");
        assert_eq!(server.product, "cpx22");
        assert_eq!(server.status, "running");
        assert_eq!(server.ipv4, Some("1.2.3.4".parse().unwrap()));
        assert_eq!(server.ipv6, Some("2001:db8::".parse().unwrap()));
        assert_eq!(server.architecture, Architecture::Amd64);
        assert!(!server.cancelled);
    }

    #[test]
    fn ipv6_only_server_has_no_ipv4() {
        let server: Server =
            serde_json::from_str(fixture!("server-object.ipv4-null.hcloud-go.json")).unwrap();
        let server = server.into_provider_server();
        assert_eq!(server.ipv4, None);
        assert_eq!(server.ipv6, Some("2a01:4f8:1c11:3400::".parse().unwrap()));
        // This old-shape answer has no `location`, only `datacenter.location`.
        assert_eq!(server.data_center, "fsn1");
    }

    #[test]
    fn server_list_and_rename_fixtures_parse() {
        let page: ServersPage = serde_json::from_str(fixture!("get-servers.json")).unwrap();
        assert_eq!(page.servers.len(), 1);
        assert_eq!(page.meta.pagination.next_page, Some(4));
        assert_eq!(page.meta.pagination.total_entries, Some(100));
        let renamed: ServerEnvelope =
            serde_json::from_str(fixture!("put-servers-42.json")).unwrap();
        assert_eq!(renamed.server.id, 42);
    }

    #[test]
    fn arm_server_types_are_arm64() {
        assert_eq!(architecture_of_type(Some("arm")), Architecture::Arm64);
        assert_eq!(architecture_of_type(Some("x86")), Architecture::Amd64);
        assert_eq!(architecture_of_type(None), Architecture::Amd64);
    }

    #[test]
    fn actions_and_keys_parse() {
        let rescue: EnableRescueResponse =
            serde_json::from_str(fixture!("post-servers-42-actions-enable_rescue.json")).unwrap();
        assert_eq!(
            rescue.root_password.as_deref(),
            Some("zCWbFhnu950dUTko5f40")
        );
        assert_eq!(
            (rescue.action.id, rescue.action.command.as_str()),
            (13, "enable_rescue")
        );
        let action: ActionEnvelope = serde_json::from_str(fixture!("get-actions-42.json")).unwrap();
        assert!(!action.action.status.is_empty());
        let keys: SshKeysPage = serde_json::from_str(fixture!("get-ssh_keys.json")).unwrap();
        assert_eq!(
            keys.ssh_keys[0].fingerprint,
            "b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:2f"
        );
    }

    #[test]
    fn errors_keep_code_and_message() {
        let error = parse_error(
            423,
            fixture!("errors/locked.423.reconstructed.json").as_bytes(),
            None,
        );
        assert_eq!(error.code, "locked");
        assert_eq!(
            error.message,
            "cannot perform operation because server is locked"
        );
        let error = parse_error(
            429,
            fixture!("errors/rate_limit_exceeded.429.json").as_bytes(),
            Some("abc".into()),
        );
        assert_eq!(error.code, "rate_limit_exceeded");
        assert_eq!(error.correlation_id.as_deref(), Some("abc"));
    }

    #[test]
    fn rescue_request_names_only_our_key_and_power_actions_retry_locked() {
        let request = enable_rescue(42, 7);
        assert_eq!(request.path, "/servers/42/actions/enable_rescue");
        assert_eq!(
            request.body,
            Body::Json(json!({"type": "linux64", "ssh_keys": [7]}))
        );
        assert!(!request.retry_locked);
        assert!(reset(42).retry_locked && power_on(42).retry_locked);
        let request = list_servers(3);
        assert_eq!(
            request.query,
            [
                ("page".into(), "3".into()),
                ("per_page".into(), "50".into())
            ]
        );
    }
}
