//! `HetznerRobot` against `FakeRobot`.

use std::collections::BTreeSet;
use std::time::Duration;

use time::OffsetDateTime;

use talos_manager_core::provider::Clock;
use talos_manager_core::{
    Architecture, HetznerRobot, MissingKey, Provider, ProviderError, Secret, VswitchProvider,
};
use talos_manager_fake_hetzner::{FakeRobot, Fault, Target};

use super::{OTHER_KEY, OUR_FINGERPRINT, our_key, policy};

fn client(fake: &FakeRobot) -> HetznerRobot {
    HetznerRobot::with_policy(
        fake.url(),
        FakeRobot::USER,
        Secret::new(FakeRobot::PASSWORD.to_owned()),
        policy(),
    )
    .unwrap()
}

#[tokio::test]
async fn lists_the_fixture_servers() {
    let fake = FakeRobot::start().await.unwrap();
    let servers = client(&fake).list_servers().await.unwrap();
    let ids: Vec<&str> = servers
        .iter()
        .map(|server| server.provider_id.as_str())
        .collect();
    assert_eq!(ids, ["321", "421"]);
    assert_eq!(servers[0].name, "server1");
    assert_eq!(servers[0].ipv4, Some("127.18.1.72".parse().unwrap()));
    assert_eq!(servers[0].data_center, "NBG1-DC1");
    assert_eq!(servers[0].architecture, Architecture::Amd64);
}

#[tokio::test]
async fn an_account_without_servers_lists_none_although_robot_answers_404() {
    let fake = FakeRobot::start_empty().await.unwrap();
    assert_eq!(client(&fake).list_servers().await.unwrap(), []);
    assert_eq!(fake.requests(), ["GET /server"]);
}

#[tokio::test]
async fn rx_products_are_listed_as_arm64() {
    let fake = FakeRobot::start_empty().await.unwrap();
    let numbers = fake.generate_servers(8);
    let servers = client(&fake).list_servers().await.unwrap();
    let arm: Vec<&str> = servers
        .iter()
        .filter(|server| server.architecture == Architecture::Arm64)
        .map(|server| server.product.as_str())
        .collect();
    assert_eq!(arm, ["RX170", "RX170"]);
    assert_eq!(servers.len(), numbers.len());
}

#[tokio::test]
async fn a_thousand_servers_come_back_in_one_list_none_lost_or_duplicated() {
    let fake = FakeRobot::start().await.unwrap();
    let mut expected: BTreeSet<String> = fake
        .generate_servers(1_000)
        .into_iter()
        .map(|number| number.to_string())
        .collect();
    expected.extend(["321".to_owned(), "421".to_owned()]);
    let servers = client(&fake).list_servers().await.unwrap();
    assert_eq!(servers.len(), 1_002);
    let listed: BTreeSet<String> = servers
        .into_iter()
        .map(|server| server.provider_id)
        .collect();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn gets_and_renames_a_server() {
    let fake = FakeRobot::start().await.unwrap();
    let robot = client(&fake);
    assert_eq!(robot.get_server("421").await.unwrap().name, "server2");
    let renamed = robot.rename_server("321", "control-plane-1").await.unwrap();
    assert_eq!(renamed.name, "control-plane-1");
    assert_eq!(fake.server(321).unwrap().name, "control-plane-1");
}

#[tokio::test]
async fn an_unknown_server_is_not_found() {
    let fake = FakeRobot::start().await.unwrap();
    let error = client(&fake).get_server("999").await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::ServerNotFound { server_id, .. } if server_id == "999"),
        "{error:?}"
    );
    assert_eq!(error.code(), Some("SERVER_NOT_FOUND"));
    let error = client(&fake).get_server("not-a-number").await.unwrap_err();
    assert!(
        matches!(error, ProviderError::InvalidServerId { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_at_once_without_retrying() {
    let fake = FakeRobot::start().await.unwrap();
    let robot =
        HetznerRobot::with_policy(fake.url(), "someone", Secret::new("wrong".into()), policy())
            .unwrap();
    let error = robot.list_servers().await.unwrap_err();
    assert!(
        matches!(error, ProviderError::Unauthorized { .. }),
        "{error:?}"
    );
    // Robot blocks the address after three failed logins: one request only.
    assert_eq!(fake.requests().len(), 1);
}

/// A client counting its budgets on `clock`.
fn client_at(fake: &FakeRobot, clock: &Clock) -> HetznerRobot {
    client(fake).with_clock(clock.clone())
}

#[tokio::test]
async fn a_rate_limit_403_is_not_retried_and_holds_the_endpoint_for_its_interval() {
    let fake = FakeRobot::start().await.unwrap();
    let clock = Clock::manual(OffsetDateTime::now_utc());
    fake.inject(Target::on("GET", "/server"), Fault::RateLimit, 1);
    let error = client_at(&fake, &clock).list_servers().await.unwrap_err();
    match &error {
        ProviderError::BudgetSpent {
            endpoint, until, ..
        } => {
            assert_eq!(*endpoint, "GET /server");
            assert_eq!(*until, clock.now() + Duration::from_secs(3600));
        }
        other => panic!("expected BudgetSpent, got {other:?}"),
    }
    assert_eq!(error.code(), Some("RATE_LIMIT_EXCEEDED"));
    assert!(!error.is_permanent());
    assert!(error.to_string().contains("GET /server"), "{error}");
    assert_eq!(fake.requests().len(), 1);
    // Nothing is sent to that endpoint until the interval has passed, by any client of the
    // account; other endpoints are still used.
    clock.advance(Duration::from_secs(3599));
    let error = client_at(&fake, &clock).list_servers().await.unwrap_err();
    assert!(
        matches!(error, ProviderError::BudgetSpent { source: None, .. }),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 1);
    client_at(&fake, &clock).get_server("321").await.unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        client_at(&fake, &clock).list_servers().await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn fifty_resets_an_hour_and_the_next_is_not_sent() {
    let fake = FakeRobot::start().await.unwrap();
    let clock = Clock::manual(OffsetDateTime::now_utc());
    let robot = client_at(&fake, &clock);
    for _ in 0..50 {
        robot.power_cycle("421").await.unwrap();
    }
    let error = robot.power_cycle("421").await.unwrap_err();
    match &error {
        ProviderError::BudgetSpent {
            endpoint,
            source: None,
            ..
        } => assert_eq!(*endpoint, "POST /reset/{id}"),
        other => panic!("expected BudgetSpent, got {other:?}"),
    }
    // The client held the 51st back: Robot never had to refuse it.
    assert_eq!(fake.server(421).unwrap().resets.len(), 50);
    assert_eq!(fake.rate_limit_answers(), 0);
    clock.advance(Duration::from_secs(3600));
    fake.advance_clock(Duration::from_secs(3600));
    robot.power_cycle("421").await.unwrap();
    assert_eq!(fake.server(421).unwrap().resets.len(), 51);
}

#[tokio::test]
async fn a_server_offering_only_a_technician_reset_is_not_reset() {
    let fake = FakeRobot::start().await.unwrap();
    let mut server = fake.server(421).unwrap();
    server.reset_types = vec!["man".into(), "power_long".into()];
    fake.add_server(server);
    let error = client(&fake).power_cycle("421").await.unwrap_err();
    assert!(
        matches!(error, ProviderError::NoAutomaticReset { .. }),
        "{error:?}"
    );
    assert!(error.is_permanent());
    assert!(
        error.to_string().contains("only [man, power_long]"),
        "{error}"
    );
    assert!(fake.server(421).unwrap().resets.is_empty());
    // A software reset is the last choice before giving up.
    let mut server = fake.server(421).unwrap();
    server.reset_types = vec!["man".into(), "sw".into()];
    fake.add_server(server);
    client(&fake).power_cycle("421").await.unwrap();
    assert_eq!(fake.server(421).unwrap().resets, ["sw"]);
}

#[tokio::test]
async fn server_errors_slow_answers_and_dropped_connections_are_retried() {
    let fake = FakeRobot::start().await.unwrap();
    fake.inject(Target::any(), Fault::Status(503), 1);
    fake.inject(Target::any(), Fault::Status(502), 1);
    fake.inject(Target::any(), Fault::Slow(Duration::from_secs(2)), 1);
    fake.inject(Target::any(), Fault::Drop, 1);
    let servers = client(&fake).list_servers().await.unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn a_reset_that_timed_out_is_not_sent_again() {
    let fake = FakeRobot::start().await.unwrap();
    fake.set_operating_status(421, "shut off");
    fake.inject(
        Target::on("POST", "/reset"),
        Fault::Slow(Duration::from_secs(2)),
        1,
    );
    let error = client(&fake).power_cycle("421").await.unwrap_err();
    assert!(
        matches!(&error, ProviderError::OutcomeUnknown { source, .. }
            if matches!(**source, ProviderError::Unreachable { attempts: 1, .. })),
        "{error:?}"
    );
    // The fake carried out the press; a second one would have switched the server off again.
    assert_eq!(fake.server(421).unwrap().resets, ["power"]);
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|request| *request == "POST /reset/421")
            .count(),
        1
    );
}

#[tokio::test]
async fn persistent_server_errors_end_in_an_error_that_keeps_hetzners_code() {
    let fake = FakeRobot::start().await.unwrap();
    fake.inject(Target::any(), Fault::Status(500), 100);
    let error = client(&fake).list_servers().await.unwrap_err();
    assert!(matches!(error, ProviderError::Api { .. }), "{error:?}");
    assert_eq!(error.code(), Some("INTERNAL_ERROR"));
    assert_eq!(fake.requests().len() as u32, policy().max_attempts);
}

#[tokio::test]
async fn our_key_is_found_by_fingerprint() {
    let fake = FakeRobot::start().await.unwrap();
    fake.add_key("ops laptop", super::OUR_KEY).unwrap();
    let key = client(&fake)
        .ensure_ssh_key(&our_key(), MissingKey::Fail)
        .await
        .unwrap();
    assert_eq!(
        (key.id.as_str(), key.name.as_str()),
        (OUR_FINGERPRINT, "ops laptop")
    );
    assert!(!key.uploaded);
}

#[tokio::test]
async fn a_missing_key_is_uploaded_even_when_robot_lists_no_keys_as_404() {
    let fake = FakeRobot::start_empty().await.unwrap();
    let key = client(&fake)
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    assert!(key.uploaded);
    assert_eq!(key.fingerprint, OUR_FINGERPRINT);
    assert_eq!(fake.keys()[0].name, "talos-manager");
    assert_eq!(fake.keys()[0].fingerprint, OUR_FINGERPRINT);
}

#[tokio::test]
async fn a_missing_key_fails_before_touching_anything_when_upload_is_not_allowed() {
    let fake = FakeRobot::start().await.unwrap();
    fake.add_key("talos-manager", OTHER_KEY).unwrap();
    let error = client(&fake)
        .reboot_into_rescue("321", &our_key(), MissingKey::Fail)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, ProviderError::SshKeyMissing { .. }),
        "{error:?}"
    );
    assert!(
        text.contains(OUR_FINGERPRINT) && text.contains("\"talos-manager\""),
        "{text}"
    );
    assert_eq!(fake.requests(), ["GET /key"]);
    assert_eq!(fake.server(321).unwrap().rescue, None);
}

#[tokio::test]
async fn an_upload_beside_a_stale_key_of_the_same_name_gets_its_own_name() {
    let fake = FakeRobot::start().await.unwrap();
    fake.add_key("talos-manager", OTHER_KEY).unwrap();
    let key = client(&fake)
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    assert_eq!(key.name, "talos-manager-3c4103c3");
}

#[tokio::test]
async fn rescue_is_activated_with_only_our_key_and_returns_the_password() {
    let fake = FakeRobot::start().await.unwrap();
    let robot = client(&fake);
    let key = robot
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    let activation = robot.enable_rescue("321", &key).await.unwrap();
    let rescue = fake.server(321).unwrap().rescue.unwrap();
    assert_eq!(rescue.authorized_keys, [OUR_FINGERPRINT]);
    assert_eq!(rescue.os, "linux");
    assert_eq!(
        activation
            .password
            .as_ref()
            .map(|password| password.expose()),
        Some(&rescue.password)
    );
    assert!(activation.host_key_fingerprints.is_empty());
    assert!(
        !format!("{activation:?}").contains(&rescue.password),
        "password redacted"
    );
}

#[tokio::test]
async fn boot_already_enabled_with_our_key_is_tolerated() {
    let fake = FakeRobot::start().await.unwrap();
    let robot = client(&fake);
    let key = robot
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    let first = robot.enable_rescue("321", &key).await.unwrap();
    let second = robot.enable_rescue("321", &key).await.unwrap();
    assert_eq!(
        first.password.unwrap().expose(),
        second.password.unwrap().expose(),
        "the first activation is kept"
    );
    assert!(
        !fake
            .requests()
            .iter()
            .any(|request| request.starts_with("DELETE"))
    );
}

#[tokio::test]
async fn boot_already_enabled_with_another_key_is_replaced_so_our_key_takes_effect() {
    let fake = FakeRobot::start().await.unwrap();
    let other = fake.add_key("someone else", OTHER_KEY).unwrap();
    let robot = client(&fake);
    let other_key = robot
        .ensure_ssh_key(
            &talos_manager_core::SshPublicKey::parse(OTHER_KEY).unwrap(),
            MissingKey::Fail,
        )
        .await
        .unwrap();
    assert_eq!(other_key.fingerprint, other.fingerprint);
    robot.enable_rescue("321", &other_key).await.unwrap();
    let key = robot
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    robot.enable_rescue("321", &key).await.unwrap();
    assert_eq!(
        fake.server(321).unwrap().rescue.unwrap().authorized_keys,
        [OUR_FINGERPRINT]
    );
    let tail: Vec<String> = fake.requests().into_iter().rev().take(4).rev().collect();
    assert_eq!(
        tail,
        [
            "POST /boot/321/rescue",
            "GET /boot/321/rescue",
            "DELETE /boot/321/rescue",
            "POST /boot/321/rescue"
        ]
    );
}

#[tokio::test]
async fn power_cycle_presses_the_power_button_only_when_the_server_is_off() {
    let fake = FakeRobot::start().await.unwrap();
    let robot = client(&fake);
    // 421 offers `power` and is running: a power press would switch it off, so `hw`.
    robot.power_cycle("421").await.unwrap();
    fake.set_operating_status(421, "shut off");
    robot.power_cycle("421").await.unwrap();
    assert_eq!(fake.server(421).unwrap().resets, ["hw", "power"]);
    assert_eq!(fake.server(421).unwrap().operating_status, "running");
    // 321 (fixture: "not supported", no power button) gets `hw`.
    robot.power_cycle("321").await.unwrap();
    assert_eq!(fake.server(321).unwrap().resets, ["hw"]);
}

#[tokio::test]
async fn reboot_into_rescue_runs_key_then_rescue_then_reset_in_that_order() {
    let fake = FakeRobot::start().await.unwrap();
    fake.set_operating_status(421, "shut off");
    let activation = tokio::time::timeout(
        Duration::from_secs(10),
        client(&fake).reboot_into_rescue("421", &our_key(), MissingKey::Upload),
    )
    .await
    .expect("no call hangs")
    .unwrap();
    assert_eq!(
        fake.requests(),
        [
            "GET /key",
            "POST /key",
            "POST /boot/421/rescue",
            "GET /reset/421",
            "POST /reset/421"
        ]
    );
    let server = fake.server(421).unwrap();
    assert_eq!(server.resets, ["power"]);
    let booted = server.booted_rescue.expect("the server booted into rescue");
    assert_eq!(booted.authorized_keys, [OUR_FINGERPRINT]);
    assert_eq!(activation.password.unwrap().expose(), &booted.password);
}

#[tokio::test]
async fn vswitches_are_listed_with_their_members() {
    let fake = FakeRobot::start().await.unwrap();
    let vswitches = client(&fake).list_vswitches().await.unwrap();
    assert_eq!(vswitches.len(), 2);
    assert_eq!((vswitches[0].id, vswitches[0].server_ids.len()), (1234, 0));
    assert_eq!((vswitches[1].id, vswitches[1].vlan), (4321, 4000));
    assert_eq!(vswitches[1].server_ids, ["321", "421"]);
}

#[tokio::test]
async fn an_empty_vswitch_list_is_empty_and_an_unknown_vswitch_is_not_found() {
    let fake = FakeRobot::start_empty().await.unwrap();
    assert_eq!(client(&fake).list_vswitches().await.unwrap(), []);
    let error = client(&fake).get_vswitch(77).await.unwrap_err();
    assert!(
        matches!(error, ProviderError::VswitchNotFound { vswitch_id: 77, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn servers_join_and_leave_a_vswitch() {
    let fake = FakeRobot::start().await.unwrap();
    let robot = client(&fake);
    robot.add_server_to_vswitch(1234, "321").await.unwrap();
    // The first read shows the member as "processing"; it is a member all the same.
    assert_eq!(robot.get_vswitch(1234).await.unwrap().server_ids, ["321"]);
    // Back-to-back changes meet Robot's lock on the whole vSwitch; the client waits it out.
    fake.set_vswitch_processing_reads(5);
    robot.add_server_to_vswitch(1234, "421").await.unwrap();
    robot.remove_server_from_vswitch(1234, "421").await.unwrap();
    robot.add_server_to_vswitch(1234, "421").await.unwrap();
    robot.remove_server_from_vswitch(1234, "321").await.unwrap();
    assert!(
        fake.requests()
            .iter()
            .filter(|request| request.starts_with("POST /vswitch")
                || request.starts_with("DELETE /vswitch"))
            .count()
            > 4,
        "the lock was met and waited out: {:?}",
        fake.requests()
    );
    let members: BTreeSet<u64> = fake
        .vswitch(1234)
        .unwrap()
        .members
        .iter()
        .map(|member| member.server_number)
        .collect();
    assert_eq!(members, BTreeSet::from([421]));
}

#[tokio::test]
async fn calls_the_fake_does_not_model_fail_loudly() {
    let fake = FakeRobot::start().await.unwrap();
    let response = reqwest_get(&format!("{}/failover", fake.url())).await;
    assert_eq!(response.0, 501);
    assert!(
        response.1.contains("not implemented in fake"),
        "{}",
        response.1
    );
}

/// A raw authenticated GET, for what the client does not expose.
async fn reqwest_get(url: &str) -> (u16, String) {
    let client = talos_manager_core::http_client(&policy()).unwrap();
    let response = client
        .get(url)
        .basic_auth(FakeRobot::USER, Some(FakeRobot::PASSWORD))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn three_servers_added_to_one_vswitch_at_once_all_land() {
    // As `terraform apply` does with three servers naming the same vSwitch: three concurrent
    // adds. Robot locks the whole vSwitch while each change runs (409 VSWITCH_IN_PROCESS).
    let fake = FakeRobot::start().await.unwrap();
    fake.set_vswitch_lock(Duration::from_millis(300));
    let third = fake.generate_servers(1)[0].to_string();
    let (a, b, c) = (client(&fake), client(&fake), client(&fake));
    let (first, second, last) = tokio::join!(
        a.add_server_to_vswitch(1234, "321"),
        b.add_server_to_vswitch(1234, "421"),
        c.add_server_to_vswitch(1234, &third),
    );
    first.unwrap();
    second.unwrap();
    last.unwrap();
    let members: BTreeSet<String> = fake
        .vswitch(1234)
        .unwrap()
        .members
        .iter()
        .map(|member| member.server_number.to_string())
        .collect();
    assert_eq!(
        members,
        BTreeSet::from(["321".to_owned(), "421".to_owned(), third])
    );
}

#[tokio::test]
async fn a_vswitch_lock_that_outlasts_the_wait_is_reported_as_busy_not_as_refused() {
    let fake = FakeRobot::start().await.unwrap();
    fake.set_vswitch_lock(Duration::from_secs(60));
    let policy = talos_manager_core::RetryPolicy {
        vswitch_lock_wait: Duration::from_millis(200),
        ..policy()
    };
    let robot = HetznerRobot::with_policy(
        fake.url(),
        FakeRobot::USER,
        Secret::new(FakeRobot::PASSWORD.to_owned()),
        policy,
    )
    .unwrap();
    robot.add_server_to_vswitch(1234, "321").await.unwrap();
    let error = robot.add_server_to_vswitch(1234, "421").await.unwrap_err();
    assert_eq!(error.code(), Some("VSWITCH_IN_PROCESS"));
    assert!(!error.is_permanent(), "{error:?}");
}

#[tokio::test]
async fn a_reset_answered_with_502_after_it_went_through_is_not_sent_again() {
    let fake = FakeRobot::start().await.unwrap();
    fake.inject(
        Target::on("POST", "/reset"),
        Fault::AppliedThenStatus(502),
        1,
    );
    let error = client(&fake).power_cycle("421").await.unwrap_err();
    assert!(
        matches!(error, ProviderError::OutcomeUnknown { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("it was not sent again"),
        "{error}"
    );
    assert_eq!(fake.server(421).unwrap().resets, ["hw"], "one reset only");
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|request| *request == "POST /reset/421")
            .count(),
        1
    );
}

#[tokio::test]
async fn a_rescue_activation_answered_with_502_after_it_went_through_is_read_back_not_repeated() {
    let fake = FakeRobot::start().await.unwrap();
    let robot = client(&fake);
    let key = robot
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    fake.inject(
        Target::on("POST", "/boot/321/rescue"),
        Fault::AppliedThenStatus(502),
        1,
    );
    let activation = robot.enable_rescue("321", &key).await.unwrap();
    let rescue = fake.server(321).unwrap().rescue.expect("rescue active");
    assert_eq!(
        activation.password.unwrap().expose(),
        &rescue.password,
        "the one activation's password"
    );
    let tail: Vec<String> = fake.requests().into_iter().rev().take(2).rev().collect();
    assert_eq!(tail, ["POST /boot/321/rescue", "GET /boot/321/rescue"]);
}

#[tokio::test]
async fn a_vswitch_add_answered_with_502_after_it_went_through_is_done() {
    let fake = FakeRobot::start().await.unwrap();
    fake.inject(
        Target::on("POST", "/vswitch/1234/server"),
        Fault::AppliedThenStatus(502),
        1,
    );
    client(&fake)
        .add_server_to_vswitch(1234, "321")
        .await
        .unwrap();
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|request| *request == "POST /vswitch/1234/server")
            .count(),
        1
    );
    assert_eq!(fake.vswitch(1234).unwrap().members.len(), 1);
}

#[tokio::test]
async fn concurrent_first_time_key_uploads_all_get_the_key() {
    let fake = FakeRobot::start_empty().await.unwrap();
    let (a, b, c, d) = (client(&fake), client(&fake), client(&fake), client(&fake));
    let key = our_key();
    let results = tokio::join!(
        a.ensure_ssh_key(&key, MissingKey::Upload),
        b.ensure_ssh_key(&key, MissingKey::Upload),
        c.ensure_ssh_key(&key, MissingKey::Upload),
        d.ensure_ssh_key(&key, MissingKey::Upload),
    );
    for result in [results.0, results.1, results.2, results.3] {
        assert_eq!(result.unwrap().fingerprint, OUR_FINGERPRINT);
    }
    assert_eq!(fake.keys().len(), 1);
}

#[tokio::test]
async fn a_key_upload_refused_as_already_existing_uses_the_existing_key() {
    let fake = FakeRobot::start_empty().await.unwrap();
    // Another process uploads the key between our list and our upload.
    fake.inject(
        Target::on("POST", "/key"),
        Fault::Answer(
            409,
            r#"{"error":{"status":409,"code":"KEY_ALREADY_EXISTS","message":"key already exists"}}"#
                .to_owned(),
        ),
        1,
    );
    fake.add_key("talos-manager", super::OUR_KEY).unwrap();
    fake.inject(
        Target::on("GET", "/key"),
        Fault::Answer(
            404,
            r#"{"error":{"status":404,"code":"NOT_FOUND","message":"no keys"}}"#.to_owned(),
        ),
        1,
    );
    let key = client(&fake)
        .ensure_ssh_key(&our_key(), MissingKey::Upload)
        .await
        .unwrap();
    assert_eq!(key.fingerprint, OUR_FINGERPRINT);
    assert_eq!(fake.requests(), ["GET /key", "POST /key", "GET /key"]);
}

#[tokio::test]
async fn five_hundreds_on_state_changing_calls_are_not_retried_but_reads_are() {
    let fake = FakeRobot::start().await.unwrap();
    fake.inject(Target::on("POST", "/server/321"), Fault::Status(500), 1);
    let error = client(&fake)
        .rename_server("321", "renamed")
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProviderError::OutcomeUnknown { .. }),
        "{error:?}"
    );
    assert_eq!(fake.requests(), ["POST /server/321"]);
}

#[tokio::test]
async fn three_failed_logins_get_the_address_blocked_as_robot_does() {
    let fake = FakeRobot::start().await.unwrap();
    let wrong =
        HetznerRobot::with_policy(fake.url(), "someone", Secret::new("wrong".into()), policy())
            .unwrap();
    for _ in 0..3 {
        let error = wrong.list_servers().await.unwrap_err();
        assert!(error.is_permanent(), "{error:?}");
    }
    assert!(fake.is_blocked());
    let error = client(&fake).list_servers().await.unwrap_err();
    assert_eq!(error.code(), Some("BLOCKED"), "{error:?}");
    assert!(!error.is_permanent(), "a block ends: {error:?}");
    fake.unblock();
    assert_eq!(client(&fake).list_servers().await.unwrap().len(), 2);
}
