//! Hetzner Robot requests and answers as plain values: built and parsed without I/O, tested on
//! the recorded fixtures.
//!
//! Robot takes form bodies and wraps most objects (`{"server":{…}}`, `[{"key":{…}}]`), except
//! vSwitches. Names and shapes follow the research note `hetzner-apis.md` §1.

use reqwest::Method;
use serde::Deserialize;

use crate::provider::budget::HourlyLimit;
use crate::provider::http::{ApiRequest, unparsed_error};
use crate::provider::{Architecture, HetznerApiError, ProviderServer, ProviderVswitch};

/// `GET /vswitch/{id}`'s hourly limit, which sync spaces its vSwitch reads by.
pub(crate) const GET_VSWITCH: HourlyLimit = HourlyLimit {
    endpoint: "GET /vswitch/{id}",
    per_hour: 500,
};

// Every request carries its endpoint's hourly limit from Robot's documentation
// (`hetzner-apis.md` §1.2).

pub(crate) fn list_servers() -> ApiRequest {
    ApiRequest::new(Method::GET, "/server", "list servers").limit("GET /server", 200)
}

pub(crate) fn get_server(server_number: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        format!("/server/{server_number}"),
        format!("get server {server_number}"),
    )
    .limit("GET /server/{id}", 200)
}

pub(crate) fn rename_server(server_number: u64, name: &str) -> ApiRequest {
    ApiRequest::new(
        Method::POST,
        format!("/server/{server_number}"),
        format!("rename server {server_number}"),
    )
    .limit("POST /server/{id}", 200)
    .form(vec![("server_name".into(), name.into())])
}

pub(crate) fn list_keys() -> ApiRequest {
    ApiRequest::new(Method::GET, "/key", "list SSH keys").limit("GET /key", 500)
}

pub(crate) fn create_key(name: &str, openssh: &str) -> ApiRequest {
    ApiRequest::new(Method::POST, "/key", "upload the SSH key")
        .limit("POST /key", 200)
        .form(vec![
            ("name".into(), name.into()),
            ("data".into(), openssh.into()),
        ])
}

pub(crate) fn get_rescue(server_number: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        format!("/boot/{server_number}/rescue"),
        format!("read the rescue state of server {server_number}"),
    )
    .limit("GET /boot/{id}/rescue", 500)
}

pub(crate) fn enable_rescue(server_number: u64, fingerprint: &str) -> ApiRequest {
    ApiRequest::new(
        Method::POST,
        format!("/boot/{server_number}/rescue"),
        format!("activate rescue on server {server_number}"),
    )
    .limit("POST /boot/{id}/rescue", 500)
    .form(vec![
        ("os".into(), "linux".into()),
        ("authorized_key[]".into(), fingerprint.into()),
    ])
}

pub(crate) fn disable_rescue(server_number: u64) -> ApiRequest {
    ApiRequest::new(
        Method::DELETE,
        format!("/boot/{server_number}/rescue"),
        format!("deactivate rescue on server {server_number}"),
    )
    .limit("DELETE /boot/{id}/rescue", 500)
}

pub(crate) fn get_reset(server_number: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        format!("/reset/{server_number}"),
        format!("read the reset options of server {server_number}"),
    )
    .limit("GET /reset/{id}", 500)
}

pub(crate) fn reset(server_number: u64, reset_type: &str) -> ApiRequest {
    ApiRequest::new(
        Method::POST,
        format!("/reset/{server_number}"),
        format!("reset server {server_number} ({reset_type})"),
    )
    .limit("POST /reset/{id}", 50)
    .form(vec![("type".into(), reset_type.into())])
}

pub(crate) fn list_vswitches() -> ApiRequest {
    ApiRequest::new(Method::GET, "/vswitch", "list vswitches").limit("GET /vswitch", 500)
}

pub(crate) fn get_vswitch(vswitch_id: u64) -> ApiRequest {
    ApiRequest::new(
        Method::GET,
        format!("/vswitch/{vswitch_id}"),
        format!("get vswitch {vswitch_id}"),
    )
    .limit(GET_VSWITCH.endpoint, GET_VSWITCH.per_hour)
}

pub(crate) fn add_vswitch_server(vswitch_id: u64, server_number: u64) -> ApiRequest {
    ApiRequest::new(
        Method::POST,
        format!("/vswitch/{vswitch_id}/server"),
        format!("add server {server_number} to vswitch {vswitch_id}"),
    )
    .limit("POST /vswitch/{id}/server", 100)
    .form(vec![("server[]".into(), server_number.to_string())])
}

pub(crate) fn remove_vswitch_server(vswitch_id: u64, server_number: u64) -> ApiRequest {
    ApiRequest::new(
        Method::DELETE,
        format!("/vswitch/{vswitch_id}/server"),
        format!("remove server {server_number} from vswitch {vswitch_id}"),
    )
    .limit("DELETE /vswitch/{id}/server", 100)
    .form(vec![("server[]".into(), server_number.to_string())])
}

/// `{"server":{…}}`
#[derive(Debug, Deserialize)]
pub(crate) struct ServerEnvelope {
    pub(crate) server: Server,
}

/// A server in `GET /server` and `GET /server/{id}`; only the fields we use.
#[derive(Debug, Deserialize)]
pub(crate) struct Server {
    pub(crate) server_number: u64,
    #[serde(default)]
    pub(crate) server_ip: Option<String>,
    #[serde(default)]
    pub(crate) server_ipv6_net: Option<String>,
    #[serde(default)]
    pub(crate) server_name: Option<String>,
    #[serde(default)]
    pub(crate) product: String,
    #[serde(default)]
    pub(crate) dc: String,
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) cancelled: bool,
}

impl Server {
    pub(crate) fn into_provider_server(self) -> ProviderServer {
        ProviderServer {
            provider_id: self.server_number.to_string(),
            name: self.server_name.unwrap_or_default(),
            ipv4: self.server_ip.as_deref().and_then(|ip| ip.parse().ok()),
            ipv6: self
                .server_ipv6_net
                .as_deref()
                .and_then(|net| net.split('/').next())
                .and_then(|ip| ip.parse().ok()),
            architecture: architecture_of_product(&self.product),
            product: self.product,
            data_center: self.dc,
            status: self.status,
            cancelled: self.cancelled,
        }
    }
}

/// Robot's `RX…` products are Ampere Altra (arm64); everything else is x86-64.
pub(crate) fn architecture_of_product(product: &str) -> Architecture {
    if product.trim().to_ascii_uppercase().starts_with("RX") {
        Architecture::Arm64
    } else {
        Architecture::Amd64
    }
}

/// `{"key":{…}}`
#[derive(Debug, Deserialize)]
pub(crate) struct KeyEnvelope {
    pub(crate) key: Key,
}

/// An SSH key stored in Robot.
#[derive(Debug, Deserialize)]
pub(crate) struct Key {
    pub(crate) name: String,
    pub(crate) fingerprint: String,
}

/// `{"rescue":{…}}`
#[derive(Debug, Deserialize)]
pub(crate) struct RescueEnvelope {
    pub(crate) rescue: Rescue,
}

/// The rescue state. `os` is a list when inactive and a string when active, so it is skipped.
#[derive(Debug, Deserialize)]
pub(crate) struct Rescue {
    pub(crate) active: bool,
    #[serde(default)]
    pub(crate) password: Option<String>,
    /// Objects `{"key":{"fingerprint",…}}` in answers (strings only in requests).
    #[serde(default)]
    pub(crate) authorized_key: Vec<serde_json::Value>,
    #[serde(default)]
    pub(crate) host_key: Vec<serde_json::Value>,
}

impl Rescue {
    /// MD5 fingerprints of the authorized keys.
    pub(crate) fn authorized_fingerprints(&self) -> Vec<String> {
        self.authorized_key
            .iter()
            .filter_map(fingerprint_of)
            .collect()
    }

    /// Host key fingerprints, in whatever shape Robot sends them (never seen populated).
    pub(crate) fn host_key_fingerprints(&self) -> Vec<String> {
        self.host_key.iter().filter_map(fingerprint_of).collect()
    }
}

fn fingerprint_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Object(object) => object
            .get("key")
            .and_then(|key| key.get("fingerprint"))
            .or_else(|| object.get("fingerprint"))
            .and_then(|fingerprint| fingerprint.as_str())
            .map(str::to_owned),
        _ => None,
    }
}

/// `{"reset":{…}}`
#[derive(Debug, Deserialize)]
pub(crate) struct ResetEnvelope {
    pub(crate) reset: Reset,
}

/// Reset options of one server.
#[derive(Debug, Deserialize)]
pub(crate) struct Reset {
    #[serde(rename = "type", default)]
    pub(crate) types: Vec<String>,
    #[serde(default)]
    pub(crate) operating_status: Option<String>,
}

impl Reset {
    /// The reset to send to boot the server: the power button when the server is off and has
    /// one, else a hardware reset (what the Rails app does), else the power button, else a
    /// software reset. `None` when the server offers none of these: `man` orders a technician
    /// and is never chosen by an automated flow.
    pub(crate) fn boot_type(&self) -> Option<&'static str> {
        let offers = |wanted: &str| self.types.iter().any(|offered| offered == wanted);
        if self.operating_status.as_deref() == Some("shut off") && offers("power") {
            Some("power")
        } else {
            ["hw", "power", "sw"]
                .into_iter()
                .find(|wanted| offers(wanted))
        }
    }
}

/// A vSwitch, unwrapped. List entries have no `server`.
#[derive(Debug, Deserialize)]
pub(crate) struct VswitchBody {
    pub(crate) id: u64,
    #[serde(default)]
    pub(crate) name: String,
    pub(crate) vlan: u16,
    #[serde(default)]
    pub(crate) cancelled: bool,
    #[serde(default)]
    pub(crate) server: Vec<VswitchServer>,
}

/// A member of a vSwitch; `status` is `ready`, `processing`, `in process` or `failed`.
#[derive(Debug, Deserialize)]
pub(crate) struct VswitchServer {
    pub(crate) server_number: u64,
}

impl VswitchBody {
    pub(crate) fn into_vswitch(self) -> ProviderVswitch {
        ProviderVswitch {
            id: self.id,
            name: self.name,
            vlan: self.vlan,
            cancelled: self.cancelled,
            members_known: true,
            server_ids: self
                .server
                .iter()
                .map(|member| member.server_number.to_string())
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// Parses Robot's `{"error":{"status","code","message"}}`.
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
            include_str!(concat!("../../../../tests/fake-hetzner/data/robot/", $path))
        };
    }

    #[test]
    fn server_list_fixture_becomes_provider_servers() {
        let envelopes: Vec<ServerEnvelope> =
            serde_json::from_str(fixture!("get-server.json")).unwrap();
        let servers: Vec<ProviderServer> = envelopes
            .into_iter()
            .map(|envelope| envelope.server.into_provider_server())
            .collect();
        assert_eq!(servers.len(), 2);
        let server = &servers[0];
        assert_eq!(server.provider_id, "321");
        assert_eq!(server.name, "server1");
        assert_eq!(server.ipv4, Some("123.123.123.123".parse().unwrap()));
        assert_eq!(server.ipv6, Some("2a01:4f8:111:4221::".parse().unwrap()));
        assert_eq!(server.product, "DS 3000");
        assert_eq!(server.data_center, "NBG1-DC1");
        assert_eq!(server.status, "ready");
        assert!(!server.cancelled);
        assert_eq!(server.architecture, Architecture::Amd64);
    }

    #[test]
    fn rx_products_are_arm64() {
        assert_eq!(architecture_of_product("RX170"), Architecture::Arm64);
        assert_eq!(architecture_of_product("rx220"), Architecture::Arm64);
        assert_eq!(architecture_of_product("AX52"), Architecture::Amd64);
        assert_eq!(architecture_of_product("EX44"), Architecture::Amd64);
    }

    #[test]
    fn server_detail_and_rename_fixtures_parse() {
        for body in [
            fixture!("get-server-321.json"),
            fixture!("post-server-321.json"),
        ] {
            let envelope: ServerEnvelope = serde_json::from_str(body).unwrap();
            assert_eq!(envelope.server.server_number, 321);
        }
    }

    #[test]
    fn rescue_fixtures_parse_in_both_states() {
        let inactive: RescueEnvelope =
            serde_json::from_str(fixture!("get-boot-321-rescue.inactive.json")).unwrap();
        assert!(!inactive.rescue.active);
        assert_eq!(inactive.rescue.password, None);
        let active: RescueEnvelope =
            serde_json::from_str(fixture!("post-boot-321-rescue.with-key.json")).unwrap();
        assert!(active.rescue.active);
        assert_eq!(active.rescue.password.as_deref(), Some("jEt0dtUvomlyOwRr"));
        assert_eq!(
            active.rescue.authorized_fingerprints(),
            ["fi:ng:er:pr:in:t0:00:00:00:00:00:00:00:00:00:00"]
        );
        assert!(active.rescue.host_key_fingerprints().is_empty());
        let deleted: RescueEnvelope =
            serde_json::from_str(fixture!("delete-boot-321-rescue.json")).unwrap();
        assert!(!deleted.rescue.active);
    }

    #[test]
    fn reset_type_follows_operating_status() {
        let not_supported: ResetEnvelope =
            serde_json::from_str(fixture!("get-reset-321.json")).unwrap();
        assert_eq!(not_supported.reset.boot_type(), Some("hw"));
        let running: ResetEnvelope =
            serde_json::from_str(fixture!("get-reset-111.power-capable.json")).unwrap();
        assert_eq!(running.reset.operating_status.as_deref(), Some("running"));
        assert_eq!(running.reset.boot_type(), Some("hw"));
        let shut_off = Reset {
            types: vec!["power".into(), "hw".into()],
            operating_status: Some("shut off".into()),
        };
        assert_eq!(shut_off.boot_type(), Some("power"));
    }

    #[test]
    fn a_technician_reset_is_never_chosen() {
        let offers = |types: &[&str]| Reset {
            types: types.iter().map(|offered| (*offered).to_owned()).collect(),
            operating_status: Some("not supported".into()),
        };
        assert_eq!(offers(&["man", "sw"]).boot_type(), Some("sw"));
        assert_eq!(offers(&["man", "power_long"]).boot_type(), None);
        assert_eq!(offers(&["man"]).boot_type(), None);
        assert_eq!(offers(&[]).boot_type(), None);
    }

    #[test]
    fn vswitch_fixtures_parse_with_and_without_members() {
        let list: Vec<VswitchBody> = serde_json::from_str(fixture!("get-vswitch.json")).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].server.is_empty());
        let one: VswitchBody = serde_json::from_str(fixture!("get-vswitch-4321.json")).unwrap();
        let vswitch = one.into_vswitch();
        assert_eq!((vswitch.id, vswitch.vlan), (4321, 4000));
        assert_eq!(vswitch.server_ids, ["321", "421"]);
        let processing: VswitchBody =
            serde_json::from_str(fixture!("get-vswitch-50301.live-processing.json")).unwrap();
        assert_eq!(processing.into_vswitch().server_ids.len(), 1);
    }

    #[test]
    fn keys_fixture_parses() {
        let keys: Vec<KeyEnvelope> = serde_json::from_str(fixture!("get-key.json")).unwrap();
        assert_eq!(
            keys[1].key.fingerprint,
            "15:28:b0:03:95:f0:77:b3:10:56:15:6b:77:22:a5:bb"
        );
    }

    #[test]
    fn errors_keep_code_and_message() {
        let error = parse_error(
            403,
            fixture!("errors/rate-limit-exceeded.403.json").as_bytes(),
            None,
        );
        assert_eq!(
            (error.status, error.code.as_str()),
            (403, "RATE_LIMIT_EXCEEDED")
        );
        assert_eq!(error.message, "rate limit exceeded");
        let error = parse_error(502, b"<html>bad gateway</html>", None);
        assert_eq!(error.code, "http_502");
    }

    #[test]
    fn requests_use_form_bodies_with_bracketed_arrays() {
        let request = enable_rescue(321, "aa:bb");
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/boot/321/rescue")
        );
        assert_eq!(
            request.body,
            Body::Form(vec![
                ("os".into(), "linux".into()),
                ("authorized_key[]".into(), "aa:bb".into())
            ])
        );
        let request = remove_vswitch_server(4321, 321);
        assert_eq!(request.method, Method::DELETE);
        assert_eq!(
            request.body,
            Body::Form(vec![("server[]".into(), "321".into())])
        );
    }
}
