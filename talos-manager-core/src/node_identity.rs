//! A node's identity within its cluster: its machine type, hostname and private IP, with the naming
//! conventions of the original app (`worker-3` → `10.0.1.3`).

use crate::store::MachineConfigFields;
use crate::talos::yaml::Value;
use crate::talos::{MachineConfig, MachineType, TalosVersion};
use crate::{Issue, ValidationError};

/// A server whose name contains `control-plane` is a control plane; every other is a worker.
///
/// Only a *proposal*: a new machine config records it unless an admin gives a type, and from
/// then on the recorded type counts ([`crate::store::ServerMachineConfig::machine_type`]); renaming
/// the server never changes a configured node's type.
pub fn machine_type_for(server_name: &str) -> MachineType {
    if server_name.contains("control-plane") {
        MachineType::ControlPlane
    } else {
        MachineType::Worker
    }
}

/// The number a hostname ends with (`worker-12` → 12).
pub fn hostname_number(hostname: &str) -> Option<u32> {
    let (_, number) = hostname.rsplit_once('-')?;
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    number.parse().ok()
}

/// The private IP the naming convention gives a server: `10.0.0.N` for names containing
/// `control-plane`, `10.0.2.N` for `database`, `10.0.7.N` for `standby`, `10.0.1.N` for other
/// names, N being the number the name ends with. `None` when the name ends with no number or
/// one above 254.
pub fn default_private_ip(name: &str) -> Option<String> {
    let number = hostname_number(name).filter(|n| (1..=254).contains(n))?;
    let subnet = if name.contains("control-plane") {
        0
    } else if name.contains("database") {
        2
    } else if name.contains("standby") {
        7
    } else {
        1
    };
    Some(format!("10.0.{subnet}.{number}"))
}

fn is_valid_hostname(hostname: &str) -> bool {
    let Some((prefix, _)) = hostname.rsplit_once('-') else {
        return false;
    };
    hostname.len() <= 63
        && hostname_number(hostname).is_some()
        && !prefix.is_empty()
        && prefix.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

impl MachineConfigFields {
    /// Checks the hostname (`[a-z-]+-N`), the private IP (`10.0.x.N`, N matching the
    /// hostname), the install disk and the ephemeral disk identifier. Returns every issue.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let mut issues = Vec::new();
        if self.hostname.is_empty() {
            issues.push(Issue::new("hostname", "can't be blank"));
        } else if !is_valid_hostname(&self.hostname) {
            issues.push(Issue::new(
                "hostname",
                "must contain only lowercase ASCII and dash and must end with -<number>",
            ));
        }
        match self.private_ip.parse::<std::net::Ipv4Addr>() {
            _ if self.private_ip.is_empty() => {
                issues.push(Issue::new("private_ip", "can't be blank"))
            }
            Ok(ip) if ip.octets()[..2] == [10, 0] => {
                let ip_number = u32::from(ip.octets()[3]);
                if let Some(host_number) = hostname_number(&self.hostname)
                    && is_valid_hostname(&self.hostname)
                    && host_number != ip_number
                {
                    issues.push(Issue::new(
                        "private_ip",
                        format!(
                            "last octet must match the hostname number (expected '{host_number}', got '{ip_number}')"
                        ),
                    ));
                }
            }
            _ => issues.push(Issue::new(
                "private_ip",
                "must be a valid IPv4 address and begin with 10.0.",
            )),
        }
        if self.install_disk.is_empty() {
            issues.push(Issue::new("install_disk", "can't be blank"));
        } else if !self.install_disk.starts_with("/dev/") {
            issues.push(Issue::new(
                "install_disk",
                "must be a device path like /dev/nvme0n1",
            ));
        }
        if let Some(identifier) = &self.ephemeral_disk_identifier {
            let valid = identifier
                .split_once(':')
                .is_some_and(|(kind, value)| matches!(kind, "wwid" | "uuid") && !value.is_empty());
            if !valid {
                issues.push(Issue::new(
                    "ephemeral_disk_identifier",
                    "must be wwid:<disk wwid> or uuid:<md array uuid>",
                ));
            }
        }
        ValidationError::check("machine config", issues)
    }
}

/// The config patch that sets a node's hostname, for the Talos version contract `version`:
/// `machine.network.hostname` up to Talos 1.11; from 1.12 on, where generated configs carry a
/// `HostnameConfig` document with `auto: stable`, that document with the hostname and `auto:
/// off` (as Talos documents it: the two conflict).
///
/// Every generated config gets it (see [`crate::node_config::generate_input`]), so the node
/// runs under the name talos-manager expects, unless the config template's own patches set a
/// hostname ([`patches_set_hostname`]).
pub fn hostname_patch(hostname: &str, version: TalosVersion) -> String {
    if version.multi_document() {
        format!("apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: {hostname}\nauto: \"off\"\n")
    } else {
        format!("machine:\n  network:\n    hostname: {hostname}\n")
    }
}

/// How to write a node's hostname from Talos 1.12 on, for messages: leave it out (talos-manager
/// sets each node's own, [`hostname_patch`]) or write it as a `HostnameConfig` document.
pub const HOSTNAME_CONFIG_HINT: &str = "from Talos 1.12 on a node's hostname is a HostnameConfig \
     document: leave machine.network.hostname out (talos-manager sets each node's hostname) or \
     write it as its own document: apiVersion: v1alpha1, kind: HostnameConfig, auto: \"off\", \
     hostname: ${hostname} (docs/recipes/hostname-config.yaml)";

/// From Talos 1.12 on, a generated config carries a `HostnameConfig` document (`auto: stable`)
/// and Talos refuses a `machine.network.hostname` next to it ("static hostname is already set
/// in v1alpha1 config"). A config template written for older Talos sets that key; for a 1.12+
/// target this moves its value into the `HostnameConfig` (`hostname`, `auto: off`, as
/// [`hostname_patch`] writes it), so that a stored template never serves a config the node
/// refuses. Saving a template that needs it is refused with [`HOSTNAME_CONFIG_HINT`]
/// ([`crate::node_config::check_config_template`]); this covers templates stored before.
///
/// Returns the moved hostname; `None` (config unchanged) for older versions, when nothing
/// sets the key, or when the `HostnameConfig` is gone or names a hostname of its own.
pub fn move_legacy_hostname(config: &mut MachineConfig, version: TalosVersion) -> Option<String> {
    if !version.multi_document() {
        return None;
    }
    let (first, rest) = config.documents.split_first_mut()?;
    if first.get("kind").is_some() {
        return None;
    }
    let hostname_config = rest.iter_mut().find(|doc| {
        doc.get("kind").and_then(Value::as_str) == Some("HostnameConfig")
            && doc.get("hostname").is_none_or(Value::is_empty_value)
    })?;
    let network = first.get_mut("machine")?.get_mut("network")?;
    let hostname = network
        .get("hostname")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())?
        .to_owned();
    network.remove("hostname");
    // 1.13 on, generated configs carry no empty `machine.network`.
    if version.kubespan_document() && network.as_map().is_some_and(Vec::is_empty) {
        first.get_mut("machine")?.remove("network");
    }
    hostname_config.insert("auto", Value::str("off"));
    hostname_config.insert("hostname", Value::str(hostname.clone()));
    Some(hostname)
}

/// Whether a config template's patch sets a hostname itself (a `hostname:` field, with
/// `${hostname}` or a literal name): then [`hostname_patch`] is left out.
pub fn patches_set_hostname<'a>(patches: impl IntoIterator<Item = &'a str>) -> bool {
    patches.into_iter().any(|patch| {
        patch.lines().any(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            line.starts_with("hostname:")
                || line.contains("\"hostname\"")
                || line.contains("/hostname")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ConfigId;

    #[test]
    fn the_hostname_patch_follows_the_version() {
        assert_eq!(
            hostname_patch("worker-1", TalosVersion::V1_10),
            "machine:\n  network:\n    hostname: worker-1\n"
        );
        assert_eq!(
            hostname_patch("worker-1", TalosVersion::LATEST),
            "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: worker-1\nauto: \"off\"\n"
        );
        assert!(patches_set_hostname([
            "machine:\n  network:\n    hostname: ${hostname}\n"
        ]));
        assert!(patches_set_hostname([
            "- op: add\n  path: /machine/network/hostname\n  value: x-1\n"
        ]));
        assert!(!patches_set_hostname([
            "machine:\n  sysctls:\n    a: b\n",
            ""
        ]));
    }

    #[track_caller]
    fn check_machine_config(
        hostname: &str,
        private_ip: &str,
        disk: &str,
        ephemeral: Option<&str>,
        expect: &[&str],
    ) {
        let fields = MachineConfigFields {
            config_id: ConfigId(1),
            hostname: hostname.into(),
            private_ip: private_ip.into(),
            install_disk: disk.into(),
            ephemeral_disk_identifier: ephemeral.map(Into::into),
        };
        let issues: Vec<String> = fields
            .validate()
            .err()
            .map(|e| e.issues.iter().map(ToString::to_string).collect())
            .unwrap_or_default();
        assert_eq!(issues, expect);
    }

    #[test]
    fn valid_machine_configs() {
        check_machine_config("worker-1", "10.0.1.1", "/dev/nvme0n1", None, &[]);
        check_machine_config(
            "big-control-plane-12",
            "10.0.0.12",
            "/dev/sda",
            Some("uuid:1a46:2672"),
            &[],
        );
        check_machine_config(
            "db-3",
            "10.0.2.3",
            "/dev/sda",
            Some("wwid:eui.3634463052802972"),
            &[],
        );
    }

    #[test]
    fn every_problem_is_reported() {
        check_machine_config(
            "Worker_1",
            "192.168.0.1",
            "nvme0n1",
            Some("serial:123"),
            &[
                "hostname: must contain only lowercase ASCII and dash and must end with -<number>",
                "private_ip: must be a valid IPv4 address and begin with 10.0.",
                "install_disk: must be a device path like /dev/nvme0n1",
                "ephemeral_disk_identifier: must be wwid:<disk wwid> or uuid:<md array uuid>",
            ],
        );
        check_machine_config(
            "worker-2",
            "10.0.1.3",
            "/dev/sda",
            None,
            &["private_ip: last octet must match the hostname number (expected '2', got '3')"],
        );
        check_machine_config(
            "",
            "",
            "",
            None,
            &[
                "hostname: can't be blank",
                "private_ip: can't be blank",
                "install_disk: can't be blank",
            ],
        );
    }

    #[test]
    fn naming_conventions() {
        assert_eq!(
            default_private_ip("control-plane-1").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(default_private_ip("worker-7").as_deref(), Some("10.0.1.7"));
        assert_eq!(
            default_private_ip("database-2").as_deref(),
            Some("10.0.2.2")
        );
        assert_eq!(
            default_private_ip("standby-database-4").as_deref(),
            Some("10.0.2.4")
        );
        assert_eq!(default_private_ip("standby-9").as_deref(), Some("10.0.7.9"));
        assert_eq!(default_private_ip("worker"), None);
        assert_eq!(default_private_ip("worker-300"), None);
        assert_eq!(
            machine_type_for("eu-control-plane-1"),
            MachineType::ControlPlane
        );
        assert_eq!(machine_type_for("worker-1"), MachineType::Worker);
    }
}
