//! `GET /clusters/{id}/config-drift` and `GET /servers/{id}/config-drift` over the gRPC client
//! against the fake Talos API: nodes that run the config talos-manager serves are in sync (even
//! as Talos re-encodes it); a patch edited in the config template shows as drift on every node
//! with a readable diff that holds no secret; a node that does not answer is unreachable.

use super::cluster_health::{Setup, setup};
use reqwest::Method;
use serde_json::{Value, json};
use talos_manager_core::Backend;
use talos_manager_core::node_config::render_node_config;

/// Makes every fake node run the config talos-manager renders for it now.
pub(crate) async fn run_rendered_configs(setup: &Setup) {
    for node in &setup.fleet.servers {
        let config = render_node_config(setup.server.store(), node.id)
            .await
            .unwrap();
        setup
            .talos
            .set_running_config(node.address, config.yaml.expose());
    }
}

pub(crate) async fn cluster_drift(setup: &Setup) -> Value {
    setup
        .server
        .expect(
            Method::GET,
            &format!("/api/v1/clusters/{}/config-drift", setup.fleet.cluster),
            None,
            200,
        )
        .await
}

/// Sets the config template's patch for every node.
pub(crate) async fn edit_patch(setup: &Setup, patch: &str) {
    let path = format!("/api/v1/configs/{}", setup.fleet.config);
    let config = setup.server.expect(Method::GET, &path, None, 200).await;
    // The view is the body's fields with its id, times and warnings; unset fields are null.
    let mut fields = config.clone();
    fields.as_object_mut().unwrap().retain(|key, value| {
        !value.is_null() && !["id", "created_at", "updated_at", "warnings"].contains(&key.as_str())
    });
    fields["patch"] = json!(patch);
    setup
        .server
        .expect(Method::PUT, &path, Some(fields), 200)
        .await;
}

pub(crate) const MAX_PODS_PATCH: &str =
    "machine:\n  kubelet:\n    extraArgs:\n      max-pods: \"250\"\n";

async fn a_patch_shows_as_drift_on_every_node(backend: Backend, first_octet: u8) {
    let setup = setup(backend, first_octet, true).await;

    // Nodes that never got a config from talos-manager cannot be compared.
    let body = cluster_drift(&setup).await;
    assert_eq!(body["in_sync"], false);
    assert_eq!(body["servers"][0]["status"], "unreachable", "{body:#}");
    assert!(
        body["servers"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{body:#}"
    );

    run_rendered_configs(&setup).await;
    let body = cluster_drift(&setup).await;
    assert_eq!(body["in_sync"], true, "{body:#}");
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 4);
    assert_eq!(servers[0]["server"], "control-plane-1");
    assert_eq!(servers[0]["machine_type"], "controlplane");
    assert_eq!(servers[3]["server"], "worker-1");
    for server in servers {
        assert_eq!(server["status"], "in_sync", "{body:#}");
        assert!(server["diff"].is_null());
    }

    // A patch edited in the config template: every node drifts.
    edit_patch(&setup, MAX_PODS_PATCH).await;
    let body = cluster_drift(&setup).await;
    assert_eq!(body["in_sync"], false);
    for server in body["servers"].as_array().unwrap() {
        assert_eq!(server["status"], "drifted", "{body:#}");
        let diff = server["diff"].as_str().unwrap();
        assert!(
            diff.starts_with("--- running on the node\n+++ rendered by talos-manager\n@@ "),
            "{diff}"
        );
        assert!(diff.contains("+      max-pods: '250'"), "{diff}");
        assert!(
            !diff.contains("PRIVATE KEY") && !diff.contains("LS0t"),
            "{diff}"
        );
    }
    assert!(!body.to_string().contains("BEGIN"), "{body:#}");

    // One server, by its id.
    let worker = setup.fleet.server("worker-1");
    let one = setup
        .server
        .expect(
            Method::GET,
            &format!("/api/v1/servers/{}/config-drift", worker.api_id()),
            None,
            200,
        )
        .await;
    assert_eq!(one["servers"].as_array().unwrap().len(), 1);
    assert_eq!(one["servers"][0]["server_id"], worker.api_id());
    assert_eq!(one["servers"][0]["status"], "drifted");

    // A node that does not answer.
    setup.talos.take_down(worker.address);
    let body = cluster_drift(&setup).await;
    assert_eq!(body["servers"][3]["status"], "unreachable", "{body:#}");
    assert!(body["servers"][3]["error"].is_string());
}

#[tokio::test]
async fn a_patch_shows_as_drift_on_every_node_sqlite() {
    a_patch_shows_as_drift_on_every_node(Backend::Sqlite, 151).await;
}

#[tokio::test]
async fn a_patch_shows_as_drift_on_every_node_postgres() {
    a_patch_shows_as_drift_on_every_node(Backend::Postgres, 156).await;
}

/// A patch edited in the config template: the dry run shows the diff on every node and changes
/// nothing; the apply (one job) makes every node run it, control planes first, one at a time;
/// a second apply while one is queued is refused.
async fn a_patch_rolls_out_control_planes_first(backend: Backend, first_octet: u8) {
    let setup = setup(backend, first_octet, true).await;
    run_rendered_configs(&setup).await;
    edit_patch(&setup, MAX_PODS_PATCH).await;
    let path = format!("/api/v1/clusters/{}/config-apply", setup.fleet.cluster);

    let plan = setup
        .server
        .expect(
            Method::POST,
            &path,
            Some(json!({"dry_run": true, "mode": "no_reboot"})),
            200,
        )
        .await;
    let nodes = plan["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4, "{plan:#}");
    assert_eq!(nodes[0]["machine_type"], "controlplane");
    assert_eq!(nodes[3]["server"], "worker-1");
    for node in nodes {
        assert_eq!(node["drifted"], true, "{plan:#}");
        assert!(
            node["diff"]
                .as_str()
                .unwrap()
                .contains("+      max-pods: '250'")
        );
        assert_eq!(
            node["talos_summary"],
            "Dry run summary:\nApplied configuration without a reboot (skipped in dry-run).",
            "{plan:#}"
        );
    }
    assert!(!plan.to_string().contains("BEGIN"), "{plan:#}");
    assert_eq!(cluster_drift(&setup).await["in_sync"], false);

    // Queued, no worker yet: a second one is refused.
    let job = setup
        .server
        .expect(Method::POST, &path, Some(json!({"mode": "no_reboot"})), 202)
        .await;
    assert_eq!(job["kind"], "config_apply");
    let refused = setup
        .server
        .expect(Method::POST, &path, Some(json!({})), 409)
        .await;
    assert_eq!(refused["code"], "cluster_busy", "{refused:#}");

    let settings = super::lifecycle::lifecycle_settings(&setup.server, setup.talos.port());
    let (_stop, _task) =
        super::lifecycle::Fleet::start_worker_with(&setup.server, "applier", settings);
    let done = super::lifecycle::finished(&setup.server, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");

    let body = cluster_drift(&setup).await;
    assert_eq!(body["in_sync"], true, "{body:#}");

    // One at a time, control planes first.
    let applied: Vec<std::net::Ipv4Addr> = setup
        .talos
        .calls()
        .into_iter()
        .filter(|call| {
            call.method == "MachineService/ApplyConfiguration"
                && call.summary.starts_with("mode NO_REBOOT")
        })
        .map(|call| call.node)
        .collect();
    let addresses: Vec<std::net::Ipv4Addr> = [
        "control-plane-1",
        "control-plane-2",
        "control-plane-3",
        "worker-1",
    ]
    .iter()
    .map(|name| setup.fleet.server(name).address)
    .collect();
    // The plan's dry runs, then per node the job's dry run and its apply.
    let job_order: Vec<std::net::Ipv4Addr> = addresses
        .iter()
        .flat_map(|address| [*address, *address])
        .collect();
    assert_eq!(applied[..4], addresses[..]);
    assert_eq!(applied[4..], job_order[..]);
    let log = setup
        .server
        .expect(
            Method::GET,
            &format!("/api/v1/jobs/{}", job["id"].as_str().unwrap()),
            None,
            200,
        )
        .await;
    let text = log.to_string();
    assert!(!text.contains("BEGIN"), "{text}");
}

#[tokio::test]
async fn a_patch_rolls_out_control_planes_first_sqlite() {
    a_patch_rolls_out_control_planes_first(Backend::Sqlite, 161).await;
}

#[tokio::test]
async fn a_patch_rolls_out_control_planes_first_postgres() {
    a_patch_rolls_out_control_planes_first(Backend::Postgres, 166).await;
}

/// A change the nodes refuse in `no_reboot` mode (a kernel module needs a reboot): the job fails
/// at the first control plane's dry run and touches no other node.
#[tokio::test]
async fn the_first_failure_stops_the_roll() {
    let setup = setup(Backend::Sqlite, 171, true).await;
    run_rendered_configs(&setup).await;
    edit_patch(
        &setup,
        "machine:\n  kernel:\n    modules:\n      - name: br_netfilter\n",
    )
    .await;
    let path = format!("/api/v1/clusters/{}/config-apply", setup.fleet.cluster);
    let job = setup
        .server
        .expect(Method::POST, &path, Some(json!({"mode": "no_reboot"})), 202)
        .await;
    let settings = super::lifecycle::lifecycle_settings(&setup.server, setup.talos.port());
    let (_stop, _task) =
        super::lifecycle::Fleet::start_worker_with(&setup.server, "applier", settings);
    let done = super::lifecycle::finished(&setup.server, job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert!(
        done.to_string()
            .contains("control-plane-1: the dry run was refused"),
        "{done:#}"
    );
    let first = setup.fleet.server("control-plane-1").address;
    let touched: Vec<std::net::Ipv4Addr> = setup
        .talos
        .calls()
        .into_iter()
        .filter(|call| call.method == "MachineService/ApplyConfiguration")
        .map(|call| call.node)
        .collect();
    // Only the refused dry run, on the first control plane.
    assert_eq!(touched, [first]);
    let body = cluster_drift(&setup).await;
    for server in body["servers"].as_array().unwrap() {
        assert_eq!(server["status"], "drifted", "{body:#}");
    }
}
