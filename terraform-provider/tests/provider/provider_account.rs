//! `talosmanager_provider_account` with the real Terraform CLI against the fake Hetzner APIs:
//! credentials verified on create and update (a refusal points at `secret`), the secret kept in
//! the state but never printed, rename in place, replacement on a new `provider_kind`, import
//! (which cannot recover the secret), deletion outside Terraform, destroy.

use talos_manager_fake_hetzner::{FakeCloud, FakeRobot};

use super::harness::{Service, Terraform};

const ADDRESS: &str = "talosmanager_provider_account.a";

/// An account whose secret comes from `var.secret` (`TF_VAR_secret`), as users pass secrets.
fn account(provider_kind: &str, name: &str) -> String {
    format!(
        "variable \"secret\" {{\n  type      = string\n  sensitive = true\n}}\n\nresource \"talosmanager_provider_account\" \"a\" {{\n  provider_kind = \"{provider_kind}\"\n  name          = \"{name}\"\n  secret        = var.secret\n}}"
    )
}

/// The line of `secret = var.secret` in [`account`]'s `main.tf`.
const SECRET_LINE: &str = "on main.tf line 17";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_verified_on_create_and_update() {
    let service = Service::start().await;
    service.cloud.generate_servers(1);
    service.robot.generate_servers(1);
    let mut terraform = Terraform::new(&service);

    // Refused credentials: a diagnostic on `secret`, nothing stored, the secret not printed.
    terraform.write(&account("hetzner_cloud", "production"));
    terraform.env("TF_VAR_secret", "not-the-token");
    let output = terraform.fails(&["apply", "-auto-approve"]);
    assert!(
        output.contains("Error: Invalid provider account"),
        "{output}"
    );
    assert!(
        output.contains("did not accept these credentials"),
        "{output}"
    );
    assert!(output.contains(SECRET_LINE), "{output}");
    assert!(!output.contains("not-the-token"), "{output}");
    assert!(terraform.resource(ADDRESS).is_none());
    assert!(
        service
            .store()
            .list_provider_accounts()
            .await
            .unwrap()
            .is_empty()
    );

    terraform.env("TF_VAR_secret", FakeCloud::TOKEN);
    let output = terraform.ok(&["apply", "-auto-approve"]);
    assert!(!output.contains(FakeCloud::TOKEN), "{output}");
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["provider_kind"], "hetzner_cloud");
    assert_eq!(values["name"], "production");
    assert_eq!(values["secret"], FakeCloud::TOKEN);
    let first_id = values["id"].as_str().unwrap().to_owned();
    terraform.assert_no_changes();

    // A new name: changed in place, the credentials verified again.
    terraform.write(&account("hetzner_cloud", "renamed"));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(
        terraform.resource(ADDRESS).unwrap()["id"],
        first_id.as_str()
    );
    let accounts = service.store().list_provider_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].name, "renamed");
    terraform.assert_no_changes();

    // A secret the provider refuses on update: the account and the state keep the old one.
    terraform.env("TF_VAR_secret", "revoked-token");
    let output = terraform.fails(&["apply", "-auto-approve"]);
    assert!(
        output.contains("did not accept these credentials"),
        "{output}"
    );
    assert!(output.contains(SECRET_LINE), "{output}");
    assert_eq!(
        terraform.resource(ADDRESS).unwrap()["secret"],
        FakeCloud::TOKEN
    );

    // Another provider replaces it.
    terraform.write(&account("hetzner_robot", FakeRobot::USER));
    terraform.env("TF_VAR_secret", FakeRobot::PASSWORD);
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("forces replacement"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_ne!(values["id"], first_id.as_str());
    let accounts = service.store().list_provider_accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].name, FakeRobot::USER);
    terraform.assert_no_changes();

    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(
        service
            .store()
            .list_provider_accounts()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_and_deletion_outside_terraform() {
    let service = Service::start().await;
    let mut terraform = Terraform::new(&service);
    terraform.write(&account("hetzner_robot", FakeRobot::USER));
    terraform.env("TF_VAR_secret", FakeRobot::PASSWORD);
    terraform.ok(&["apply", "-auto-approve"]);
    let id = terraform.resource(ADDRESS).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Import cannot recover the secret: the plan sends it again, then nothing is left to do.
    terraform.ok(&["state", "rm", ADDRESS]);
    terraform.ok(&["import", ADDRESS, &id]);
    let imported = terraform.resource(ADDRESS).unwrap();
    assert_eq!(imported["name"], FakeRobot::USER);
    assert!(imported["secret"].is_null(), "{imported}");
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    assert!(
        plan.lines()
            .any(|line| line.contains("+ secret") && line.contains("(sensitive value)")),
        "{plan}"
    );
    assert!(!plan.contains("forces replacement"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(terraform.resource(ADDRESS).unwrap()["id"], id.as_str());
    terraform.assert_no_changes();

    // Deleted outside Terraform: a refresh forgets it, the next apply creates it again.
    let accounts = service.store().list_provider_accounts().await.unwrap();
    service
        .store()
        .delete_provider_account(accounts[0].id)
        .await
        .unwrap();
    terraform.ok(&["apply", "-refresh-only", "-auto-approve"]);
    assert!(terraform.resource(ADDRESS).is_none());
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("will be created"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(
        service
            .store()
            .list_provider_accounts()
            .await
            .unwrap()
            .len(),
        1
    );

    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(
        service
            .store()
            .list_provider_accounts()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_provider_kind_points_at_the_argument() {
    let service = Service::start().await;
    let mut terraform = Terraform::new(&service);
    terraform.write(&account("aws", "x"));
    terraform.env("TF_VAR_secret", "y");
    let output = terraform.fails(&["plan"]);
    assert!(
        output.contains("Error: Invalid provider account"),
        "{output}"
    );
    assert!(
        output.contains("\"aws\" is neither \"hetzner_robot\" nor \"hetzner_cloud\""),
        "{output}"
    );
    assert!(output.contains("on main.tf line 15"), "{output}");
}
