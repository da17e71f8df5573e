//! Maintenance runbooks: the commands an operator runs to reboot or upgrade one node safely
//! (control planes hand over etcd leadership first; workloads are drained and let back in).
//!
//! [`reboot_command`] and [`upgrade_command`] are pure; [`server_reboot_command`] and
//! [`server_upgrade_command`] write them for a stored server, with its defaults.

use crate::bootstrap::effective_schematic;
use crate::image_factory::ImageFactory;
use crate::store::{Server, Store, StoreError};
use crate::talos::MachineType;

/// Why no runbook can be written for a server.
#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    /// The server has no machine config, so it is no node of a cluster yet.
    #[error("server {server} has no machine config")]
    NotConfigured {
        /// The server's name.
        server: String,
    },
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A configured server as the runbooks see it: its machine config's type and hostname, and its
/// public IPv4 as the address (else its private IP).
pub async fn runbook_node(store: &Store, server: &Server) -> Result<RunbookNode, RunbookError> {
    let machine_config = store
        .machine_config_for_server(server.id)
        .await?
        .ok_or_else(|| RunbookError::NotConfigured {
            server: server.inventory.name.clone(),
        })?;
    let address = server
        .inventory
        .ipv4
        .clone()
        .unwrap_or_else(|| machine_config.fields.private_ip.clone());
    Ok(RunbookNode {
        machine_type: machine_config.machine_type,
        hostname: machine_config.fields.hostname,
        address,
    })
}

/// [`reboot_command`] for a stored server.
pub async fn server_reboot_command(store: &Store, server: &Server) -> Result<String, RunbookError> {
    Ok(reboot_command(&runbook_node(store, server).await?))
}

/// [`upgrade_command`] for a stored server: to `talos_version` (default: the settings'), with
/// the installer of its schematic ([`effective_schematic`]) on `factory`, as a rolling
/// upgrade uses; without a schematic, Talos's stock installer of that version.
pub async fn server_upgrade_command(
    store: &Store,
    factory: &ImageFactory,
    server: &Server,
    talos_version: Option<String>,
) -> Result<String, RunbookError> {
    let node = runbook_node(store, server).await?;
    let settings = store.settings().await?;
    let schematic = match effective_schematic(None, server, &settings) {
        Some(id) => store.get_schematic(id).await?.fields.factory_id,
        None => None,
    };
    let version = talos_version.unwrap_or(settings.talos_version);
    let image = factory.installer_image(schematic.as_deref(), &version);
    Ok(upgrade_command(&node, &image, &version))
}

/// What the runbooks need to know about a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookNode {
    /// The Kubernetes node name (the machine config's hostname).
    pub hostname: String,
    /// The address talosctl reaches the node at.
    pub address: String,
    /// Control plane or worker.
    pub machine_type: MachineType,
}

/// Whether `talosctl upgrade` of this version still needs `--preserve` to keep the node's
/// data (Talos before 1.8 wiped EPHEMERAL on upgrade by default).
fn needs_preserve(talos_version: &str) -> bool {
    let mut parts = talos_version.trim_start_matches('v').split('.');
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(1);
    let minor: u32 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(u32::MAX);
    (major, minor) < (1, 8)
}

fn preamble(node: &RunbookNode, action: &str) -> String {
    let mut text = format!(
        "# {action} {hostname} ({address}).\n\
         # Fail over databases and other single-replica workloads on this node first.\n",
        hostname = node.hostname,
        address = node.address,
    );
    if node.machine_type == MachineType::ControlPlane {
        text.push_str(&format!(
            "talosctl -n {address} etcd forfeit-leadership\n",
            address = node.address
        ));
    }
    text.push_str(&format!(
        "kubectl drain {hostname} --ignore-daemonsets --delete-emptydir-data\n",
        hostname = node.hostname
    ));
    text
}

/// The commands to reboot a node.
pub fn reboot_command(node: &RunbookNode) -> String {
    format!(
        "{}talosctl -n {address} reboot --wait\nkubectl uncordon {hostname}\n",
        preamble(node, "Reboot"),
        address = node.address,
        hostname = node.hostname,
    )
}

/// The commands to upgrade a node to `talos_version` with `installer_image` (the server's, from
/// [`crate::image_factory::installer_image`], as rolling upgrades use).
pub fn upgrade_command(node: &RunbookNode, installer_image: &str, talos_version: &str) -> String {
    let preserve = if needs_preserve(talos_version) {
        " --preserve"
    } else {
        ""
    };
    format!(
        "{}talosctl -n {address} upgrade --image {installer_image}{preserve} --wait\nkubectl uncordon {hostname}\n",
        preamble(node, &format!("Upgrade to Talos {talos_version}:")),
        address = node.address,
        hostname = node.hostname,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_factory::installer_image;

    fn node(machine_type: MachineType) -> RunbookNode {
        RunbookNode {
            hostname: "control-plane-1".into(),
            address: "192.0.2.10".into(),
            machine_type,
        }
    }

    #[test]
    fn control_planes_forfeit_etcd_leadership_before_draining() {
        let text = reboot_command(&node(MachineType::ControlPlane));
        assert_eq!(
            text,
            "# Reboot control-plane-1 (192.0.2.10).\n\
             # Fail over databases and other single-replica workloads on this node first.\n\
             talosctl -n 192.0.2.10 etcd forfeit-leadership\n\
             kubectl drain control-plane-1 --ignore-daemonsets --delete-emptydir-data\n\
             talosctl -n 192.0.2.10 reboot --wait\n\
             kubectl uncordon control-plane-1\n"
        );
        assert!(!reboot_command(&node(MachineType::Worker)).contains("forfeit"));
    }

    #[test]
    fn upgrades_use_the_schematics_installer_and_preserve_only_before_1_8() {
        let image = installer_image(
            "https://factory.talos.dev",
            Some("376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"),
            "v1.10.4",
        );
        assert_eq!(
            image,
            "factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.10.4"
        );
        let worker = node(MachineType::Worker);
        let text = upgrade_command(&worker, &image, "v1.10.4");
        assert!(
            text.contains(&format!("upgrade --image {image} --wait\n")),
            "{text}"
        );
        let stock = installer_image("https://factory.talos.dev", None, "v1.7.6");
        let old = upgrade_command(&worker, &stock, "v1.7.6");
        assert!(
            old.contains("upgrade --image ghcr.io/siderolabs/installer:v1.7.6 --preserve --wait"),
            "{old}"
        );
    }
}
