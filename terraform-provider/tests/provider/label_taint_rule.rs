//! `talosmanager_label_taint_rule` with the real Terraform CLI: plan, apply, no diff on a second
//! plan, update in place, import, drift, destroy.

use talos_manager_core::ids::LabelTaintRuleId;

use super::harness::{Service, Terraform};

const ADDRESS: &str = "talosmanager_label_taint_rule.workers";

fn rule(labels: &str) -> String {
    format!(
        "resource \"talosmanager_label_taint_rule\" \"workers\" {{\n  match  = \"worker\"\n  labels = \"{labels}\"\n}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle() {
    let service = Service::start().await;
    let terraform = Terraform::new(&service);
    terraform.write(&rule("tier=app"));

    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("+ create"), "{plan}");
    assert!(
        plan.lines()
            .any(|line| line.contains("+ id") && line.contains("(known after apply)")),
        "{plan}"
    );

    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["match"], "worker");
    assert_eq!(values["labels"], "tier=app");
    assert!(values["taints"].is_null());
    let id = values["id"].as_str().unwrap().to_owned();
    let rules = service.store().list_label_taint_rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].id.to_string(), id);
    terraform.assert_no_changes();

    // Update in place: same id, new labels.
    terraform.write(&rule("tier=web"));
    let plan = terraform.ok(&["plan"]);
    assert!(plan.contains("~ update in-place"), "{plan}");
    terraform.ok(&["apply", "-auto-approve"]);
    let values = terraform.resource(ADDRESS).unwrap();
    assert_eq!(values["id"], id.as_str());
    let rules = service.store().list_label_taint_rules().await.unwrap();
    assert_eq!(rules[0].fields.labels, "tier=web");
    terraform.assert_no_changes();

    // Import: forget it, import it by id, nothing to change.
    terraform.ok(&["state", "rm", ADDRESS]);
    assert!(terraform.resource(ADDRESS).is_none());
    terraform.ok(&["import", ADDRESS, &id]);
    assert_eq!(terraform.resource(ADDRESS).unwrap()["labels"], "tier=web");
    terraform.assert_no_changes();
    let missing = terraform.fails(&["import", "talosmanager_label_taint_rule.other", "999"]);
    assert!(
        missing.contains("talosmanager_label_taint_rule.other"),
        "{missing}"
    );

    // Drift: deleted outside Terraform, planned again.
    service
        .store()
        .delete_label_taint_rule(LabelTaintRuleId(id.parse().unwrap()))
        .await
        .unwrap();
    let run = terraform.run(&["plan", "-detailed-exitcode"]);
    assert_eq!(run.code, 2, "{}", run.output);
    assert!(run.output.contains("will be created"), "{}", run.output);
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

    terraform.ok(&["destroy", "-auto-approve"]);
    assert!(
        service
            .store()
            .list_label_taint_rules()
            .await
            .unwrap()
            .is_empty()
    );
    assert!(terraform.resource(ADDRESS).is_none());
}
