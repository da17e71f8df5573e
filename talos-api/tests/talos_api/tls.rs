//! What the client and the node refuse: another cluster's CA, a certificate without the admin
//! role or with the wrong key usage, and an address nothing listens on.

use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose as Eku;
use talos_manager_core::talos_api::{
    ResetRequest, TalosApiError, TalosConnector as _, TalosStatusCode, WipeMode,
};
use talos_manager_fake_talos::NodeSpec;

use super::harness::{Harness, address, custom_credentials, foreign_credentials};

#[tokio::test]
async fn credentials_of_another_cluster_are_refused() {
    let (h, nodes) = Harness::start(vec![NodeSpec::worker(address(2), "w-1")]).await;
    let other = h.connector.cluster(&foreign_credentials()).unwrap();
    let error = other.version(nodes[0]).await.unwrap_err();
    match &error {
        TalosApiError::Unreachable { message, .. } => {
            // We refuse the node's certificate: it is not signed by the CA we trust.
            assert!(message.contains("certificate"), "{message}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(h.cluster.calls().is_empty());
}

#[tokio::test]
async fn a_client_certificate_without_the_admin_role_is_denied() {
    let (h, nodes) = Harness::start(vec![NodeSpec::worker(address(2), "w-1")]).await;
    let reader = h
        .connector
        .cluster(&custom_credentials(
            &h.secrets,
            "os:reader",
            vec![Eku::ClientAuth],
        ))
        .unwrap();
    // Reading is allowed, resetting is not.
    assert_eq!(reader.version(nodes[0]).await.unwrap().tag, "v1.12.0");
    let reset = ResetRequest {
        graceful: false,
        reboot: true,
        wipe_partitions: vec!["STATE".into()],
        mode: WipeMode::All,
        user_disks: Vec::new(),
    };
    let error = reader.reset(nodes[0], &reset).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::PermissionDenied),
        "{error}"
    );

    let nobody = h
        .connector
        .cluster(&custom_credentials(
            &h.secrets,
            "developers",
            vec![Eku::ClientAuth],
        ))
        .unwrap();
    let error = nobody.version(nodes[0]).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::PermissionDenied),
        "{error}"
    );
    assert_eq!(
        h.api.machine_status(nodes[0]).await.unwrap().stage.as_str(),
        "running"
    );
}

#[tokio::test]
async fn a_client_certificate_also_for_servers_is_refused() {
    let (h, nodes) = Harness::start(vec![NodeSpec::worker(address(2), "w-1")]).await;
    let both = h
        .connector
        .cluster(&custom_credentials(
            &h.secrets,
            "os:admin",
            vec![Eku::ClientAuth, Eku::ServerAuth],
        ))
        .unwrap();
    let error = both.version(nodes[0]).await.unwrap_err();
    assert!(
        matches!(error, TalosApiError::Unreachable { .. })
            || error.status_code() == Some(TalosStatusCode::Unauthenticated),
        "{error:?}"
    );
    assert!(h.cluster.calls().is_empty());
}

#[tokio::test]
async fn an_address_without_a_listener_is_unreachable_at_once() {
    let (h, _) = Harness::start(vec![NodeSpec::worker(address(2), "w-1")]).await;
    // Same port, an address no node has.
    let nowhere = format!("{}:{}", address(99), h.cluster.port())
        .parse()
        .unwrap();
    let started = Instant::now();
    let error = h.api.version(nowhere).await.unwrap_err();
    assert!(
        matches!(error, TalosApiError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.is_transient());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let error = h.maintenance.machine_status(nowhere).await.unwrap_err();
    assert!(
        matches!(error, TalosApiError::Unreachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn bad_credentials_are_a_credentials_error_without_the_key() {
    let mut bad = foreign_credentials();
    bad.key_pem = talos_manager_core::Secret::new(
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n".to_owned(),
    );
    let connector = talos_manager_talos_api::GrpcTalosConnector::new();
    let error = connector.cluster(&bad).err().unwrap();
    assert!(matches!(error, TalosApiError::Credentials(_)), "{error:?}");
    assert!(!format!("{error:?}").contains("not base64"));
}
