//! The plugin process: refuses to run outside Terraform, serves plaintext when Terraform turns
//! plugin TLS off, and `--debug` lets Terraform attach to a running provider.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use super::harness::{Service, Terraform, registry_host};

const PROVIDER: &str = env!("CARGO_BIN_EXE_terraform-provider-talosmanager");

const RULE: &str = "resource \"talosmanager_label_taint_rule\" \"r\" {\n  match  = \"worker\"\n  labels = \"tier=app\"\n}";

#[test]
fn refuses_to_run_outside_terraform() {
    let output = Command::new(PROVIDER)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("this is a Terraform plugin"), "{stderr}");
    assert!(output.stdout.is_empty(), "nothing may reach stdout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_plaintext_when_plugin_tls_is_disabled() {
    let service = Service::start().await;
    let mut terraform = Terraform::new(&service);
    terraform.env("TF_DISABLE_PLUGIN_TLS", "1");
    terraform.write(RULE);
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(
        service
            .store()
            .list_label_taint_rules()
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Kills the debug provider when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_mode_prints_a_reattach_configuration_terraform_uses() {
    let service = Service::start().await;
    let mut child = Command::new(PROVIDER)
        .arg("--debug")
        .env(
            "TALOS_MANAGER_PROVIDER_ADDRESS",
            format!("{}/talos-manager/talosmanager", registry_host()),
        )
        .env("TALOS_MANAGER_ENDPOINT", &service.base)
        .env("TALOS_MANAGER_TOKEN", &service.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let mut lines = std::io::BufReader::new(stdout).lines();
    let reattach = lines
        .by_ref()
        .take(10)
        .map(Result::unwrap)
        .find_map(|line| {
            let value = line.trim().strip_prefix("export TF_REATTACH_PROVIDERS='")?;
            value.strip_suffix('\'').map(str::to_owned)
        })
        .expect("--debug printed no TF_REATTACH_PROVIDERS");

    let mut terraform = Terraform::without_credentials(&service);
    terraform.env("TF_REATTACH_PROVIDERS", &reattach);
    terraform.write(RULE);
    terraform.ok(&["apply", "-auto-approve"]);
    assert_eq!(
        service
            .store()
            .list_label_taint_rules()
            .await
            .unwrap()
            .len(),
        1
    );
    drop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installs_from_a_filesystem_mirror_with_init() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.use_filesystem_mirror();
    terraform.write(RULE);
    let output = terraform.ok(&["init"]);
    assert!(
        output.contains("Installed talos-manager/talosmanager v0.1.0"),
        "{output}"
    );
    terraform.ok(&["apply", "-auto-approve"]);
    terraform.assert_no_changes();
    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(
        service
            .store()
            .list_label_taint_rules()
            .await
            .unwrap()
            .is_empty()
    );
}
