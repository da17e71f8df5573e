//! [`JobKind`]: the kinds of job talos-manager runs, and their stored names.

use std::fmt;
use std::str::FromStr;

/// A kind of job talos-manager runs. Its [`as_str`](JobKind::as_str) is what the `jobs.kind`
/// column stores and the admin API shows; the names never change (stored rows and API clients
/// depend on them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// `sync`: fleet sync of every provider account, then the SSH probe.
    Sync,
    /// `bootstrap`: a server from rescue to a disk that boots Talos.
    Bootstrap,
    /// `label_and_taint`: the rules' labels and taints on a server's Kubernetes node.
    LabelAndTaint,
    /// `reset`: one server's node reset.
    Reset,
    /// `upgrade`: a rolling Talos upgrade.
    Upgrade,
    /// `reboot`: a rolling reboot.
    Reboot,
    /// `push_config`: a newly assigned config applied to a node waiting in maintenance mode.
    PushConfig,
    /// `cluster_bootstrap`: etcd's Bootstrap on a cluster's first control plane, once.
    ClusterBootstrap,
    /// Roll the rendered config out to running nodes (`crate::node_config::apply`).
    ConfigApply,
}

impl JobKind {
    /// Every kind.
    pub const ALL: [JobKind; 9] = [
        JobKind::Sync,
        JobKind::Bootstrap,
        JobKind::LabelAndTaint,
        JobKind::Reset,
        JobKind::Upgrade,
        JobKind::Reboot,
        JobKind::PushConfig,
        JobKind::ClusterBootstrap,
        JobKind::ConfigApply,
    ];

    /// The stored and shown name: `sync`, `bootstrap`, `label_and_taint`, `reset`, `upgrade`,
    /// `reboot`, `push_config`, `cluster_bootstrap`.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobKind::Sync => "sync",
            JobKind::Bootstrap => "bootstrap",
            JobKind::LabelAndTaint => "label_and_taint",
            JobKind::Reset => "reset",
            JobKind::Upgrade => "upgrade",
            JobKind::Reboot => "reboot",
            JobKind::PushConfig => "push_config",
            JobKind::ClusterBootstrap => "cluster_bootstrap",
            JobKind::ConfigApply => "config_apply",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job kind name that is none of talos-manager's ([`JobKind`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job kind {0:?}")]
pub struct UnknownJobKind(pub String);

impl FromStr for JobKind {
    type Err = UnknownJobKind;

    fn from_str(name: &str) -> Result<JobKind, UnknownJobKind> {
        JobKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| UnknownJobKind(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_stored_ones_and_round_trip() {
        let names: Vec<&str> = JobKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(
            names,
            [
                "sync",
                "bootstrap",
                "label_and_taint",
                "reset",
                "upgrade",
                "reboot",
                "push_config",
                "cluster_bootstrap",
                "config_apply"
            ]
        );
        for kind in JobKind::ALL {
            assert_eq!(kind.to_string().parse::<JobKind>(), Ok(kind));
        }
        assert_eq!(
            "echo".parse::<JobKind>(),
            Err(UnknownJobKind("echo".to_owned()))
        );
    }
}
