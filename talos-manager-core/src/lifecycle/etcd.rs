//! The quorum rule, pure: may the node `hostname` leave etcd, given the members a control plane
//! lists and which of their nodes answer?
//!
//! etcd needs a majority of its voting members healthy. Removing a voting member leaves `n - 1`
//! voters, of which more than half must be healthy. Learners do not vote; a node that is no
//! member at all (a worker) never matters.

use std::collections::BTreeSet;

use crate::talos_api::EtcdMember;

/// What a removal allowed by [`check_member_removal`] involves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRemoval {
    /// The node's member, when it is one.
    pub member: Option<EtcdMember>,
}

/// Why a removal is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumRefusal {
    /// The node is etcd's only voting member: removing it destroys the cluster's state.
    #[error(
        "{node} is the last etcd member of the cluster: resetting it destroys the cluster (force to do it anyway)"
    )]
    LastMember {
        /// The node.
        node: String,
    },
    /// Without the node, fewer than a majority of the remaining members would be healthy.
    #[error(
        "removing {node} from etcd would leave {remaining} members of which only {healthy} answer ({}): etcd would lose quorum (force to do it anyway)",
        unhealthy_phrase(.unhealthy)
    )]
    QuorumLost {
        /// The node.
        node: String,
        /// Voting members left after the removal.
        remaining: usize,
        /// How many of them answer.
        healthy: usize,
        /// The ones that do not.
        unhealthy: Vec<String>,
    },
}

fn unhealthy_phrase(unhealthy: &[String]) -> String {
    format!("not answering: {}", unhealthy.join(", "))
}

/// Whether `hostname` may leave etcd: `members` as a control plane lists them, `healthy` the
/// hostnames whose node answers.
pub fn check_member_removal(
    members: &[EtcdMember],
    hostname: &str,
    healthy: &BTreeSet<String>,
) -> Result<MemberRemoval, QuorumRefusal> {
    let Some(member) = members.iter().find(|member| member.hostname == hostname) else {
        return Ok(MemberRemoval { member: None });
    };
    if member.is_learner {
        return Ok(MemberRemoval {
            member: Some(member.clone()),
        });
    }
    let remaining: Vec<&EtcdMember> = members
        .iter()
        .filter(|other| !other.is_learner && other.id != member.id)
        .collect();
    if remaining.is_empty() {
        return Err(QuorumRefusal::LastMember {
            node: hostname.to_owned(),
        });
    }
    let healthy_count = remaining
        .iter()
        .filter(|other| healthy.contains(&other.hostname))
        .count();
    if healthy_count * 2 <= remaining.len() {
        return Err(QuorumRefusal::QuorumLost {
            node: hostname.to_owned(),
            remaining: remaining.len(),
            healthy: healthy_count,
            unhealthy: remaining
                .iter()
                .filter(|other| !healthy.contains(&other.hostname))
                .map(|other| other.hostname.clone())
                .collect(),
        });
    }
    Ok(MemberRemoval {
        member: Some(member.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> Vec<EtcdMember> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| EtcdMember {
                id: 100 + i as u64,
                hostname: (*name).to_owned(),
                is_learner: false,
            })
            .collect()
    }

    fn healthy(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_last_member_may_not_leave() {
        let refusal = check_member_removal(&members(&["cp-1"]), "cp-1", &healthy(&["cp-1"]));
        assert_eq!(
            refusal.unwrap_err().to_string(),
            "cp-1 is the last etcd member of the cluster: resetting it destroys the cluster (force to do it anyway)"
        );
    }

    #[test]
    fn three_members_one_leaving_needs_both_others_healthy() {
        let all = members(&["cp-1", "cp-2", "cp-3"]);
        let allowed = check_member_removal(&all, "cp-1", &healthy(&["cp-2", "cp-3"])).unwrap();
        assert_eq!(allowed.member.unwrap().id, 100);
        let refusal = check_member_removal(&all, "cp-1", &healthy(&["cp-2"])).unwrap_err();
        assert_eq!(
            refusal,
            QuorumRefusal::QuorumLost {
                node: "cp-1".into(),
                remaining: 2,
                healthy: 1,
                unhealthy: vec!["cp-3".into()],
            }
        );
        assert!(refusal.to_string().contains("not answering: cp-3"));
    }

    #[test]
    fn five_members_tolerate_one_unhealthy_after_the_removal() {
        let all = members(&["cp-1", "cp-2", "cp-3", "cp-4", "cp-5"]);
        assert!(check_member_removal(&all, "cp-1", &healthy(&["cp-2", "cp-3", "cp-4"])).is_ok());
        assert!(check_member_removal(&all, "cp-1", &healthy(&["cp-2", "cp-3"])).is_err());
    }

    #[test]
    fn workers_and_learners_never_matter() {
        let mut all = members(&["cp-1"]);
        assert_eq!(
            check_member_removal(&all, "worker-1", &healthy(&[])).unwrap(),
            MemberRemoval { member: None }
        );
        all.push(EtcdMember {
            id: 7,
            hostname: "cp-2".into(),
            is_learner: true,
        });
        assert!(check_member_removal(&all, "cp-2", &healthy(&[])).is_ok());
        // A learner does not count as a remaining voter either.
        assert!(matches!(
            check_member_removal(&all, "cp-1", &healthy(&["cp-2"])),
            Err(QuorumRefusal::LastMember { .. })
        ));
    }
}
