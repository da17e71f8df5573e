//! Starts a fake Talos cluster and the gRPC clients for it.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use talos_manager_core::Secret;
use talos_manager_core::random::SystemRandom;
use talos_manager_core::talos::SecretsBundle;
use talos_manager_core::talos_api::{
    TalosApi, TalosConnector as _, TalosCredentials, TalosMaintenanceApi,
};
use talos_manager_fake_talos::{FakeTalosCluster, NodeSpec};
use talos_manager_talos_api::{GrpcTalosConnector, TalosClientOptions};

pub(crate) struct Harness {
    pub(crate) cluster: FakeTalosCluster,
    pub(crate) secrets: SecretsBundle,
    pub(crate) connector: GrpcTalosConnector,
    pub(crate) api: Arc<dyn TalosApi>,
    pub(crate) maintenance: Arc<dyn TalosMaintenanceApi>,
}

pub(crate) fn address(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Short timeouts: everything is on loopback.
pub(crate) fn options() -> TalosClientOptions {
    TalosClientOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        long_request_timeout: Duration::from_secs(10),
    }
}

pub(crate) fn new_secrets() -> SecretsBundle {
    SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom).unwrap()
}

/// Talos's base64-of-PEM as PEM text.
pub(crate) fn pem(b64: &str) -> String {
    String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap()
}

pub(crate) fn credentials(secrets: &SecretsBundle) -> TalosCredentials {
    TalosCredentials::for_cluster(secrets, time::OffsetDateTime::now_utc(), &mut SystemRandom)
        .unwrap()
}

/// A client certificate signed by the bundle's OS CA with this Organization and these usages.
pub(crate) fn custom_credentials(
    secrets: &SecretsBundle,
    organization: &str,
    usages: Vec<rcgen::ExtendedKeyUsagePurpose>,
) -> TalosCredentials {
    let ca_key = pem(&secrets.os.key).replace("ED25519 PRIVATE KEY", "PRIVATE KEY");
    let ca_key = rcgen::KeyPair::from_pem(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&pem(&secrets.os.crt), ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, organization);
    params.extended_key_usages = usages;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let certificate = params.signed_by(&key, &issuer).unwrap();
    TalosCredentials {
        ca_pem: pem(&secrets.os.crt),
        cert_pem: certificate.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    }
}

/// `os:admin` credentials from a CA of another cluster (made with rcgen: cheaper than a second
/// secrets bundle and its RSA-4096 key).
pub(crate) fn foreign_credentials() -> TalosCredentials {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "talos");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "os:admin");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let certificate = params.signed_by(&key, &issuer).unwrap();
    TalosCredentials {
        ca_pem: ca.pem(),
        cert_pem: certificate.pem(),
        key_pem: Secret::new(key.serialize_pem()),
    }
}

impl Harness {
    /// A fake cluster with these nodes (fast reboots), and clients with `os:admin` credentials.
    pub(crate) async fn start(nodes: Vec<NodeSpec>) -> (Harness, Vec<SocketAddr>) {
        let secrets = new_secrets();
        let cluster = FakeTalosCluster::start(&pem(&secrets.os.crt), &pem(&secrets.os.key), None)
            .await
            .unwrap();
        cluster.set_downtime(Duration::from_millis(300));
        cluster.set_boot_delay(Duration::from_millis(100));
        let addresses = nodes
            .into_iter()
            .map(|spec| cluster.add_node(spec).unwrap())
            .collect();
        let connector = GrpcTalosConnector::with_options(options());
        let api = connector.cluster(&credentials(&secrets)).unwrap();
        let maintenance = connector.maintenance();
        (
            Harness {
                cluster,
                secrets,
                connector,
                api,
                maintenance,
            },
            addresses,
        )
    }
}

/// Polls `check` until it returns `Some`, for at most 10 s.
pub(crate) async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    talos_manager_core::testing::wait_for(
        what,
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let check = check();
            async move { check.await.ok_or("not yet") }
        },
    )
    .await
}

/// Waits until the node answers `running` and ready with `version`.
pub(crate) async fn wait_running(api: &dyn TalosApi, node: SocketAddr, version: &str) {
    wait_for(&format!("{node} running {version}"), || async {
        let status = api.machine_status(node).await.ok()?;
        let running = api.version(node).await.ok()?;
        (status.ready
            && status.stage == talos_manager_core::talos_api::MachineStage::Running
            && running.tag == version)
            .then_some(())
    })
    .await
}
