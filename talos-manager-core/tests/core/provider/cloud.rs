//! `HetznerCloud` against `FakeCloud`.

use std::collections::BTreeSet;
use std::time::Duration;

use talos_manager_core::{Architecture, HetznerCloud, MissingKey, Provider, ProviderError, Secret};
use talos_manager_fake_hetzner::{CloudServer, FakeCloud, Fault, Target};

use super::{OUR_FINGERPRINT, our_key, policy};

fn client(fake: &FakeCloud) -> HetznerCloud {
    HetznerCloud::with_policy(
        fake.url(),
        Secret::new(FakeCloud::TOKEN.to_owned()),
        policy(),
    )
    .unwrap()
}

fn list_requests(fake: &FakeCloud) -> usize {
    fake.requests()
        .iter()
        .filter(|request| *request == "GET /servers")
        .count()
}

#[tokio::test]
async fn lists_servers_in_the_current_shape() {
    let fake = FakeCloud::start().await.unwrap();
    let servers = client(&fake).list_servers().await.unwrap();
    let ids: Vec<&str> = servers
        .iter()
        .map(|server| server.provider_id.as_str())
        .collect();
    assert_eq!(ids, ["1", "42"]);
    let ipv6_only = &servers[0];
    assert_eq!(ipv6_only.ipv4, None);
    assert_eq!(
        ipv6_only.ipv6,
        Some("2a01:4f8:1c11:3400::".parse().unwrap())
    );
    assert_eq!(ipv6_only.architecture, Architecture::Arm64);
    let server = &servers[1];
    assert_eq!(server.name, "my-resource");
    assert_eq!(
        server.data_center, "fsn1",
        "read from location.name; datacenter is gone"
    );
    assert_eq!(server.product, "cpx22");
    assert_eq!(server.ipv4, Some("127.19.0.43".parse().unwrap()));
    assert!(!server.cancelled);
}

#[tokio::test]
async fn an_empty_project_lists_no_servers() {
    let fake = FakeCloud::start_empty().await.unwrap();
    assert_eq!(client(&fake).list_servers().await.unwrap(), []);
}

#[tokio::test]
async fn a_thousand_servers_come_back_over_every_page_none_lost_or_duplicated() {
    let fake = FakeCloud::start_empty().await.unwrap();
    let generated: BTreeSet<String> = fake
        .generate_servers(1_000)
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    let servers = client(&fake).list_servers().await.unwrap();
    assert_eq!(servers.len(), 1_000);
    let listed: BTreeSet<String> = servers
        .iter()
        .map(|server| server.provider_id.clone())
        .collect();
    assert_eq!(listed, generated);
    assert_eq!(list_requests(&fake), 20, "50 per page");
    let n_arm = servers
        .iter()
        .filter(|server| server.architecture == Architecture::Arm64)
        .count();
    let n_ipv6_only = servers
        .iter()
        .filter(|server| server.ipv4.is_none())
        .count();
    assert_eq!((n_arm, n_ipv6_only), (250, 100));
}

#[tokio::test]
async fn pagination_survives_rate_limits_and_server_errors_on_later_pages() {
    let fake = FakeCloud::start_empty().await.unwrap();
    fake.generate_servers(1_000);
    // A project budget of 5 requests that refills one request every 2 ms, and a flaky page.
    fake.set_rate_limit(5, Duration::from_millis(2));
    fake.inject(Target::on("GET", "/servers"), Fault::Status(502), 1);
    let policy = talos_manager_core::RetryPolicy {
        max_attempts: 20,
        ..policy()
    };
    let cloud = HetznerCloud::with_policy(fake.url(), Secret::new(FakeCloud::TOKEN.into()), policy)
        .unwrap();
    let servers = cloud.list_servers().await.unwrap();
    let unique: BTreeSet<&str> = servers
        .iter()
        .map(|server| server.provider_id.as_str())
        .collect();
    assert_eq!((servers.len(), unique.len()), (1_000, 1_000));
    assert!(list_requests(&fake) > 20, "some pages were retried");
}

#[tokio::test]
async fn gets_and_renames_a_server() {
    let fake = FakeCloud::start().await.unwrap();
    let cloud = client(&fake);
    assert_eq!(cloud.get_server("42").await.unwrap().name, "my-resource");
    let renamed = cloud.rename_server("42", "worker-1").await.unwrap();
    assert_eq!(renamed.name, "worker-1");
    assert_eq!(fake.server(42).unwrap().name, "worker-1");
}

#[tokio::test]
async fn renaming_to_a_name_in_use_keeps_hetzners_code() {
    let fake = FakeCloud::start().await.unwrap();
    let error = client(&fake)
        .rename_server("42", "server.example.com")
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Api { .. }), "{error:?}");
    assert_eq!(error.code(), Some("uniqueness_error"));
    let source = std::error::Error::source(&error).unwrap().to_string();
    assert!(source.contains("fake-correlation-id"), "{source}");
}

#[tokio::test]
async fn an_unknown_server_is_not_found() {
    let fake = FakeCloud::start().await.unwrap();
    let error = client(&fake).get_server("7").await.unwrap_err();
    assert!(
        matches!(error, ProviderError::ServerNotFound { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), Some("not_found"));
}

#[tokio::test]
async fn a_wrong_token_is_unauthorized() {
    let fake = FakeCloud::start().await.unwrap();
    let cloud =
        HetznerCloud::with_policy(fake.url(), Secret::new("nope".into()), policy()).unwrap();
    let error = cloud.list_servers().await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error:?}"
    );
    assert_eq!(error.code(), Some("unauthorized"));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn rate_limit_429_is_retried_with_a_bound() {
    let fake = FakeCloud::start().await.unwrap();
    fake.inject(Target::any(), Fault::RateLimit, 2);
    assert_eq!(client(&fake).list_servers().await.unwrap().len(), 2);
    fake.inject(Target::any(), Fault::RateLimit, 100);
    let error = client(&fake).list_servers().await.unwrap_err();
    match &error {
        ProviderError::RateLimited { attempts, .. } => assert_eq!(*attempts, policy().max_attempts),
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(error.code(), Some("rate_limit_exceeded"));
}

#[tokio::test]
async fn server_errors_slow_answers_and_dropped_connections_are_retried() {
    let fake = FakeCloud::start().await.unwrap();
    fake.inject(Target::any(), Fault::Status(504), 1);
    fake.inject(Target::any(), Fault::Slow(Duration::from_secs(2)), 1);
    fake.inject(Target::any(), Fault::Drop, 1);
    assert_eq!(
        client(&fake).get_server("42").await.unwrap().provider_id,
        "42"
    );
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn a_server_that_stays_unreachable_ends_in_an_unreachable_error() {
    let fake = FakeCloud::start().await.unwrap();
    fake.inject(Target::any(), Fault::Drop, 100);
    let error = client(&fake).get_server("42").await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unreachable { attempts, .. } if attempts == policy().max_attempts),
        "{error:?}"
    );
}

#[tokio::test]
async fn our_key_is_found_uploaded_or_reported_missing() {
    let fake = FakeCloud::start().await.unwrap();
    let cloud = client(&fake);
    let error = cloud
        .ensure_ssh_key(&our_key(), MissingKey::Fail)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::SshKeyMissing { .. }),
        "{error:?}"
    );
    assert!(
        !fake
            .requests()
            .iter()
            .any(|request| request.starts_with("POST"))
    );
    let uploaded = cloud
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    assert!(uploaded.uploaded);
    assert_eq!(uploaded.name, "talos-manager");
    let found = cloud
        .ensure_ssh_key(&our_key(), MissingKey::Fail)
        .await
        .unwrap();
    assert_eq!(
        (found.id.as_str(), found.uploaded),
        (uploaded.id.as_str(), false)
    );
    assert_eq!(found.fingerprint, OUR_FINGERPRINT);
    assert_eq!(fake.ssh_keys().len(), 2);
}

#[tokio::test]
async fn rescue_uses_only_our_key_and_waits_for_the_action() {
    let fake = FakeCloud::start().await.unwrap();
    fake.set_action_polls(3);
    let cloud = client(&fake);
    let key = cloud
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    let activation = cloud.enable_rescue("42", &key).await.unwrap();
    let server = fake.server(42).unwrap();
    assert!(server.rescue_enabled);
    assert_eq!(server.rescue_keys, [key.id.parse::<u64>().unwrap()]);
    assert!(activation.password.is_some());
    let polls = fake
        .requests()
        .iter()
        .filter(|request| request.starts_with("GET /actions/"))
        .count();
    assert_eq!(polls, 3, "polled until success");
}

#[tokio::test]
async fn an_enable_rescue_action_that_fails_with_unknown_error_is_tried_again() {
    let fake = FakeCloud::start().await.unwrap();
    fake.fail_actions("enable_rescue", "unknown_error", 2);
    let cloud = client(&fake);
    let key = cloud
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    cloud.enable_rescue("42", &key).await.unwrap();
    let server = fake.server(42).unwrap();
    assert!(server.rescue_enabled);
    assert_eq!(
        server.actions,
        [
            "enable_rescue (failed: unknown_error)",
            "enable_rescue (failed: unknown_error)",
            "enable_rescue"
        ]
    );
}

#[tokio::test]
async fn a_failed_action_reports_its_code_and_is_not_retried_blindly() {
    let fake = FakeCloud::start().await.unwrap();
    fake.fail_actions("reset", "action_failed", 1);
    let error = client(&fake).power_cycle("42").await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::ActionFailed { command, .. } if command == "reset_server"),
        "{error:?}"
    );
    assert_eq!(error.code(), Some("action_failed"));
    assert_eq!(
        fake.server(42).unwrap().actions,
        ["reset (failed: action_failed)"]
    );
}

#[tokio::test]
async fn reset_after_enable_rescue_waits_for_the_rescue_action_that_locks_the_server() {
    let fake = FakeCloud::start().await.unwrap();
    fake.set_action_duration(Duration::from_millis(150));
    let activation = client(&fake)
        .reboot_into_rescue("42", &our_key(), MissingKey::Upload)
        .await
        .unwrap();
    assert!(activation.password.is_some());
    let server = fake.server(42).unwrap();
    assert!(server.booted_rescue, "the reset booted the rescue system");
    assert!(!server.rescue_enabled);
    assert_eq!(server.actions, ["enable_rescue", "reset"]);
    let resets = fake
        .requests()
        .iter()
        .filter(|request| request.ends_with("/actions/reset"))
        .count();
    assert_eq!(
        resets, 1,
        "sent once the rescue action finished, never refused"
    );
}

fn locked_answers(fake: &FakeCloud, path_end: &str) -> usize {
    // The fake logs every request; a refused one is followed by a read of the server.
    let requests = fake.requests();
    requests
        .windows(2)
        .filter(|pair| pair[0].ends_with(path_end) && pair[1] == "GET /servers/42")
        .count()
}

#[tokio::test]
async fn enable_rescue_waits_out_a_lock_held_by_someone_elses_action() {
    let fake = FakeCloud::start().await.unwrap();
    fake.start_foreign_action(42, "create_image", Duration::from_millis(300))
        .unwrap();
    assert!(fake.is_locked(42));
    let started = std::time::Instant::now();
    let activation = client(&fake)
        .reboot_into_rescue("42", &our_key(), MissingKey::Upload)
        .await
        .unwrap();
    assert!(activation.password.is_some());
    assert!(started.elapsed() >= Duration::from_millis(300));
    let server = fake.server(42).unwrap();
    assert_eq!(server.actions, ["create_image", "enable_rescue", "reset"]);
    assert!(server.booted_rescue);
    assert!(
        locked_answers(&fake, "/actions/enable_rescue") >= 1,
        "refused with 423 locked, then waited: {:?}",
        fake.requests()
    );
}

#[tokio::test]
async fn a_reset_and_a_rename_wait_out_a_lock_too() {
    let fake = FakeCloud::start().await.unwrap();
    let cloud = client(&fake);
    fake.start_foreign_action(42, "create_image", Duration::from_millis(200))
        .unwrap();
    cloud.power_cycle("42").await.unwrap();
    fake.start_foreign_action(42, "create_image", Duration::from_millis(200))
        .unwrap();
    let renamed = cloud.rename_server("42", "worker-7").await.unwrap();
    assert_eq!(renamed.name, "worker-7");
    assert_eq!(
        fake.server(42).unwrap().actions,
        ["create_image", "reset", "create_image"]
    );
}

#[tokio::test]
async fn a_lock_that_outlasts_the_wait_keeps_the_locked_code() {
    let fake = FakeCloud::start().await.unwrap();
    fake.start_foreign_action(42, "create_image", Duration::from_secs(60))
        .unwrap();
    let cloud = HetznerCloud::with_policy(
        fake.url(),
        Secret::new(FakeCloud::TOKEN.to_owned()),
        talos_manager_core::RetryPolicy {
            action_timeout: Duration::from_millis(300),
            ..policy()
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let error = cloud
        .reboot_into_rescue("42", &our_key(), MissingKey::Upload)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("locked"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the policy"
    );
    let server = fake.server(42).unwrap();
    assert!(!server.rescue_enabled && !server.booted_rescue);
    assert_eq!(server.actions, ["create_image"]);
}

#[tokio::test]
async fn a_server_that_is_off_is_powered_on_not_reset() {
    let fake = FakeCloud::start().await.unwrap();
    let mut server = CloudServer::new(500, "off-server");
    server.status = "off".into();
    fake.add_server(server);
    client(&fake)
        .reboot_into_rescue("500", &our_key(), MissingKey::Upload)
        .await
        .unwrap();
    let server = fake.server(500).unwrap();
    assert_eq!(server.actions, ["enable_rescue", "poweron"]);
    assert_eq!(server.status, "running");
    assert!(server.booted_rescue);
}

#[tokio::test]
async fn calls_the_fake_does_not_model_fail_loudly() {
    let fake = FakeCloud::start().await.unwrap();
    let client = talos_manager_core::http_client(&policy()).unwrap();
    let response = client
        .get(format!("{}/datacenters", fake.url()))
        .bearer_auth(FakeCloud::TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 501);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("not implemented in fake")
    );
}

#[tokio::test]
async fn a_project_budget_the_headers_say_is_empty_is_not_asked_until_it_refills() {
    let fake = FakeCloud::start().await.unwrap();
    // One request, given back after an hour: the answer says `RateLimit-Remaining: 0` and a
    // `RateLimit-Reset` an hour away.
    fake.set_rate_limit(1, Duration::from_secs(3600));
    assert_eq!(client(&fake).list_servers().await.unwrap().len(), 2);
    let sent = fake.requests().len();
    let error = client(&fake).list_servers().await.unwrap_err();
    match &error {
        ProviderError::BudgetSpent {
            endpoint, until, ..
        } => {
            assert_eq!(*endpoint, "*");
            assert!(*until > time::OffsetDateTime::now_utc() + Duration::from_secs(3000));
        }
        other => panic!("expected BudgetSpent, got {other:?}"),
    }
    assert!(!error.is_permanent());
    // Nothing was sent: the client knew before asking.
    assert_eq!(fake.requests().len(), sent);
}
