//! Tried as a new user would (issue #17's first "Done when"): with the default settings, a new
//! cluster and a config that names no versions target the newest Talos contract and its default
//! Kubernetes; a server is bootstrapped (fake Robot, a real sshd as the rescue system, a loop
//! device as its disk) and fetches `/config`, and that config is what Talos's own machinery (the
//! oracle of `tests/talos-oracle/`, run through the `tests` crate) validates as
//! `validate -m metal --strict` and generates byte for byte from the same inputs with
//! `gen config` and the same patches.

use reqwest::Method;
use serde_json::{Value, json};
use talos_manager_core::store::{
    DEFAULT_KUBERNETES_VERSION, DEFAULT_TALOS_VERSION, default_install_image,
};
use talos_manager_core::talos::TalosVersion;

use super::api_bootstrap::Bench;

/// The getting-started guide's patch: no hostname (the service sets it), one sysctl.
const PATCH: &str = "machine:\n  sysctls:\n    vm.max_map_count: \"262144\"\n";
/// Nothing listens there; the label job that follows a served config may fail quietly.
const ENDPOINT: &str = "https://127.10.0.1:6443";

#[tokio::test]
async fn a_new_user_gets_a_config_of_the_newest_talos_that_talos_accepts_and_would_generate() {
    let bench = Bench::start(talos_manager_core::Backend::Sqlite, true).await;
    let server = &bench.server;
    let newest = TalosVersion::LATEST;

    // The defaults are the newest contract's, in one place.
    assert_eq!(DEFAULT_TALOS_VERSION, newest.release());
    assert_eq!(
        DEFAULT_KUBERNETES_VERSION,
        newest.default_kubernetes_version()
    );
    let settings = server
        .expect(Method::GET, "/api/v1/settings", None, 200)
        .await;
    assert_eq!(settings["talos_version"], newest.release(), "{settings:#}");

    let cluster = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "first", "endpoint": ENDPOINT})),
            201,
        )
        .await;
    let config = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default", "patch": PATCH})),
            201,
        )
        .await;
    assert_eq!(config["install_image"], default_install_image());
    assert!(
        config["install_image"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", newest.release())),
        "{config:#}"
    );
    assert_eq!(
        config["kubernetes_version"],
        newest.default_kubernetes_version()
    );
    assert_eq!(config["kubespan"], true, "{config:#}");
    server
        .expect(
            Method::PATCH,
            "/api/v1/servers/robot-321",
            Some(json!({"cluster_id": cluster["id"]})),
            200,
        )
        .await;

    // Bootstrapped with the settings' version and schematic.
    let job = bench.bootstrap(json!({})).await;
    let job_id = job["id"].as_str().unwrap();
    let finished = bench.finished(job_id).await;
    let log = bench.log(job_id).await.join("\n");
    assert_eq!(finished["status"], "succeeded", "{finished:#}\n{log}");
    assert!(log.contains(newest.release()), "{log}");

    server
        .expect(
            Method::POST,
            "/api/v1/machine-configs",
            Some(json!({"server_id": "robot-321", "config_id": config["id"], "hostname": "worker-1"})),
            201,
        )
        .await;
    let stored = server.store().list_servers().await.unwrap().remove(0);
    let uuid = stored
        .uuid
        .clone()
        .expect("the bootstrap recorded the UUID");
    let answer = crate::http::server::client()
        .get(server.url("/config"))
        .query(&[("uuid", uuid)])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let served = answer.text().await.unwrap();
    assert_eq!(
        crate::http::server::node_hostname(&served).as_deref(),
        Some("worker-1")
    );

    // What talosctl would make of the same inputs: `gen config` of a worker with the cluster's
    // secrets, the config's installer, Kubernetes and KubeSpan, the bootstrapped disk, the
    // config's patch for every node, and the node's hostname as Talos 1.12+ documents it.
    let secrets = server
        .store()
        .cluster_secrets(stored.cluster_id.expect("in the cluster"))
        .await
        .unwrap();
    let generate = json!({
        "op": "gen",
        "gen": {
            "cluster_name": "first",
            "endpoint": ENDPOINT,
            "kubernetes_version": newest.default_kubernetes_version(),
            "talos_version": newest.to_string(),
            "secrets": secrets.expose(),
            "machine_type": "worker",
            "install_disk": bench.disk.path(),
            "install_image": default_install_image(),
            "kubespan": true,
            "cluster_discovery": true,
            "patches": [PATCH],
            "patches_worker": [
                "apiVersion: v1alpha1\nkind: HostnameConfig\nauto: \"off\"\nhostname: worker-1\n"
            ],
        }
    });
    let validate = json!({"op": "validate", "config": served, "mode": "metal", "strict": true});
    let answers = talos_manager_e2e::talos_oracle::ask(newest, &[generate, validate]);
    let verdict: &Value = &answers[1];
    assert_eq!(
        verdict["valid"], true,
        "Talos {newest} refuses the served config: {verdict:#}\n{served}"
    );
    assert!(
        verdict["errors"].as_array().is_none_or(Vec::is_empty)
            && verdict["warnings"].as_array().is_none_or(Vec::is_empty),
        "{verdict:#}"
    );
    let talosctl = answers[0]["output"]
        .as_str()
        .unwrap_or_else(|| panic!("the oracle's gen config failed: {:#}", answers[0]));
    assert!(
        talosctl == served,
        "the served config differs from Talos's gen config:\n--- talos\n{talosctl}\n--- served\n{served}"
    );
}
