//! The COSI resources talos-manager reads, and their YAML specs (`yaml_spec`, camelCase keys as
//! `talosctl get -o yaml` prints them): reading YAML spares compiling Talos's per-resource
//! definition protos.

use serde::Deserialize;
use talos_manager_core::talos_api::{MachineStage, MachineStatus};

/// Where a resource lives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResourceRef {
    pub(crate) namespace: &'static str,
    pub(crate) r#type: &'static str,
    pub(crate) id: &'static str,
}

/// `talosctl get machinestatus`: readable by the reader role, so also in maintenance mode.
pub(crate) const MACHINE_STATUS: ResourceRef = ResourceRef {
    namespace: "runtime",
    r#type: "MachineStatuses.runtime.talos.dev",
    id: "machine",
};

/// `talosctl get nodename`: the Kubernetes node name.
pub(crate) const NODENAME: ResourceRef = ResourceRef {
    namespace: "k8s",
    r#type: "Nodenames.kubernetes.talos.dev",
    id: "nodename",
};

/// `talosctl get machineconfig v1alpha1`: the config the node runs (Talos's
/// `resources/config/machine_config.go`: `ActiveID`; its YAML spec is the config as one string).
pub(crate) const MACHINE_CONFIG: ResourceRef = ResourceRef {
    namespace: "config",
    r#type: "MachineConfigs.config.talos.dev",
    id: "v1alpha1",
};

/// The config text of a `MachineConfig` resource's YAML spec (a YAML string).
pub(crate) fn machine_config(yaml: &str) -> Result<String, String> {
    serde_norway::from_str::<String>(yaml)
        .map_err(|error| format!("the MachineConfig spec is not a YAML string: {error}"))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MachineStatusSpec {
    #[serde(default)]
    stage: String,
    #[serde(default)]
    status: Option<MachineStatusStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MachineStatusStatus {
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    unmet_conditions: Option<Vec<UnmetCondition>>,
}

#[derive(Debug, Deserialize)]
struct UnmetCondition {
    #[serde(default)]
    name: String,
    #[serde(default)]
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodenameSpec {
    #[serde(default)]
    nodename: String,
}

/// A `MachineStatuses` spec.
pub(crate) fn machine_status(yaml: &str) -> Result<MachineStatus, String> {
    let spec: MachineStatusSpec = serde_norway::from_str(yaml)
        .map_err(|error| format!("the machine status is not the expected YAML: {error}"))?;
    let status = spec.status;
    Ok(MachineStatus {
        stage: MachineStage::parse(&spec.stage),
        ready: status.as_ref().is_some_and(|status| status.ready),
        unmet_conditions: status
            .and_then(|status| status.unmet_conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|condition| format!("{}: {}", condition.name, condition.reason))
            .collect(),
    })
}

/// A `Nodenames` spec's node name.
pub(crate) fn node_name(yaml: &str) -> Result<String, String> {
    let spec: NodenameSpec = serde_norway::from_str(yaml)
        .map_err(|error| format!("the node name is not the expected YAML: {error}"))?;
    if spec.nodename.is_empty() {
        return Err("the node name is empty".to_owned());
    }
    Ok(spec.nodename)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_status_as_talosctl_prints_it() {
        let status = machine_status(
            "stage: booting\nstatus:\n    ready: false\n    unmetConditions:\n        - name: nodeReady\n          reason: node not ready\n",
        )
        .unwrap();
        assert_eq!(status.stage, MachineStage::Booting);
        assert!(!status.ready);
        assert_eq!(status.unmet_conditions, ["nodeReady: node not ready"]);

        let status = machine_status(
            "stage: shutting down\nstatus:\n    ready: true\n    unmetConditions: []\n",
        )
        .unwrap();
        assert_eq!(status.stage, MachineStage::ShuttingDown);
        assert!(status.ready);
        assert!(status.unmet_conditions.is_empty());
    }

    #[test]
    fn node_name_from_its_spec() {
        assert_eq!(
            node_name("nodename: cp-1\nhostnameVersion: \"3\"\nskipNodeRegistration: false\n")
                .unwrap(),
            "cp-1"
        );
        assert!(node_name("nodename: \"\"\n").is_err());
        assert!(node_name("- not a map\n").is_err());
    }
}
