//! Client configs kept out of the state: on CLIs with ephemeral resources (protocol 6.7+),
//! `talosmanager_talosconfig` and `talosmanager_kubeconfig` hand a run its configs and
//! `client_configs_in_state = false` keeps the cluster's own out, `secrets_in_state = false`
//! its secrets bundle; the state file and the plan files hold none of their keys. On
//! Terraform 1.0.3 the documented fallback: the cluster's
//! configs in the state, and an `ephemeral` block refused by the CLI.

use talos_manager_core::ids::ClusterId;

use super::harness::{Service, Terraform, cli_is_legacy, cli_version, flat};

const CLUSTER: &str = r#"resource "talosmanager_cluster" "c" {
  name                    = "ephemeral"
  endpoint                = "https://10.0.0.1:6443"
  secrets_in_state        = false
  client_configs_in_state = false
}"#;

/// The configs used where ephemeral values go: a provisioner's environment, written to files
/// in the working directory (the test reads them back).
const USE_CONFIGS: &str = r#"
ephemeral "talosmanager_talosconfig" "c" {
  cluster_id = talosmanager_cluster.c.id
}

ephemeral "talosmanager_kubeconfig" "c" {
  cluster_id = talosmanager_cluster.c.id
}

resource "terraform_data" "use" {
  provisioner "local-exec" {
    command = "printf '%s' \"$TALOSCONFIG_YAML\" > talosconfig.out && printf '%s' \"$KUBECONFIG_YAML\" > kubeconfig.out"
    environment = {
      TALOSCONFIG_YAML = ephemeral.talosmanager_talosconfig.c.talosconfig
      KUBECONFIG_YAML  = ephemeral.talosmanager_kubeconfig.c.kubeconfig
    }
  }
}"#;

/// The value of the first `key:` line of a YAML document (`crt`, `key`, `client-key-data`…).
fn yaml_value(yaml: &str, key: &str) -> String {
    yaml.lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
        .map(|value| value.trim().trim_matches('"').to_owned())
        .filter(|value| value.len() > 40)
        .unwrap_or_else(|| panic!("no {key} in:\n{yaml}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_configs_never_reach_the_state_or_the_plan() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    if cli_is_legacy() {
        // Terraform 1.0.3 has no ephemeral resources: the block is refused, and the cluster's
        // configs are what a configuration uses; the secrets bundle stays out all the same.
        terraform.write(&format!("{CLUSTER}\n{USE_CONFIGS}"));
        let output = terraform.fails(&["plan"]);
        assert!(output.contains("ephemeral"), "{output}");
        terraform.write(&CLUSTER.replace(
            "client_configs_in_state = false",
            "client_configs_in_state = true",
        ));
        terraform.ok(&["apply", "-auto-approve"]);
        terraform.assert_no_changes();
        let values = terraform.resource("talosmanager_cluster.c").unwrap();
        assert!(values["secrets"].is_null(), "{values}");
        assert!(
            values["talosconfig"]
                .as_str()
                .unwrap()
                .contains("context: ephemeral")
        );
        return;
    }

    terraform.write(&format!("{CLUSTER}\n{USE_CONFIGS}"));
    terraform.ok(&["plan", "-out=tfplan"]);
    // The plan says the cluster's configs stay null (not "known after apply").
    let shown = terraform.ok(&["show", "-json", "tfplan"]);
    let json = shown.lines().find(|line| line.starts_with('{')).unwrap();
    let planned: serde_json::Value = serde_json::from_str(json).unwrap();
    let change = planned["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|change| change["address"] == "talosmanager_cluster.c")
        .unwrap()["change"]
        .clone();
    for config in ["secrets", "talosconfig", "kubeconfig"] {
        assert!(change["after"][config].is_null(), "{change}");
        assert_ne!(change["after_unknown"][config], true, "{change}");
    }
    terraform.ok(&["apply", "tfplan"]);
    let talosconfig = terraform.read_file("talosconfig.out");
    let kubeconfig = terraform.read_file("kubeconfig.out");
    assert!(talosconfig.contains("context: ephemeral"), "{talosconfig}");
    assert!(kubeconfig.contains("https://10.0.0.1:6443"), "{kubeconfig}");
    let values = terraform.resource("talosmanager_cluster.c").unwrap();
    let cluster_id = ClusterId(values["id"].as_str().unwrap().parse().unwrap());
    let bundle = service.store().cluster_secrets(cluster_id).await.unwrap();
    let bundle = bundle.expose();
    let secrets = [
        (
            "the secrets bundle's cluster secret",
            yaml_value(bundle, "secret"),
        ),
        (
            "the secrets bundle's first CA key",
            yaml_value(bundle, "key"),
        ),
        (
            "the talosconfig's client key",
            yaml_value(&talosconfig, "key"),
        ),
        (
            "the talosconfig's client certificate",
            yaml_value(&talosconfig, "crt"),
        ),
        (
            "the kubeconfig's client key",
            yaml_value(&kubeconfig, "client-key-data"),
        ),
        (
            "the kubeconfig's client certificate",
            yaml_value(&kubeconfig, "client-certificate-data"),
        ),
    ];

    // The cluster's own secrets and configs are null, and a second plan, with the plan file it writes, is
    // empty and holds none of them either.
    assert!(values["secrets"].is_null(), "{values}");
    assert!(values["talosconfig"].is_null(), "{values}");
    assert!(values["kubeconfig"].is_null(), "{values}");
    let run = terraform.run(&["plan", "-detailed-exitcode", "-out=second.tfplan"]);
    assert_eq!(
        run.code,
        0,
        "{}: the plan is not empty:\n{}",
        cli_version(),
        run.output
    );
    let state = terraform.read_file("terraform.tfstate");
    let plan = terraform.ok(&["show", "-json", "tfplan"]);
    let second_plan = terraform.ok(&["show", "-json", "second.tfplan"]);
    for (what, secret) in &secrets {
        for (file, text) in [
            ("terraform.tfstate", &state),
            ("the first plan file", &plan),
            ("the second plan file", &second_plan),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "{}: {what} is in {file}",
                cli_version()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_set_in_the_configuration_cannot_stay_out_of_the_state() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write(&CLUSTER.replace(
        "secrets_in_state        = false",
        "secrets_in_state        = false\n  secrets                 = \"cluster: {}\"",
    ));
    let output = flat(&terraform.fails(&["plan"]));
    assert!(
        output.contains("With secrets_in_state = false the service makes the secrets bundle"),
        "{output}"
    );
    assert!(output.contains("Error: Invalid cluster"), "{output}");
}
