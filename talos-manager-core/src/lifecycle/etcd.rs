//! The quorum rule, pure: may the node `hostname` leave etcd (for good, a reset) or go down for
//! a while (an upgrade or reboot), given the members a control plane lists and which of them
//! are healthy?
//!
//! etcd needs a majority of its voting members healthy. One rule serves every operation that
//! takes a control plane down ([`check_departure`]):
//! - every other voting member must be healthy (reachable through the Talos API, its etcd
//!   answering and listing it as a voter); and
//! - the others keep a healthy majority without the node: of the `n - 1` voters left after a
//!   removal, or of all `n` voters while it restarts.
//!
//! Learners do not vote; a node that is no member at all (a worker) never matters. A restart
//! of etcd's only member, or of one of two members whose other member is healthy, is allowed:
//! no order of operations keeps quorum there, the data stays on the node, and etcd answers again
//! when it is back. Removing the only member is refused ([`QuorumRefusal::LastMember`]).

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
    /// While the node is down (an upgrade or reboot), fewer than a majority of etcd's members
    /// would be healthy.
    #[error(
        "taking {node} down would leave {healthy} of etcd's {members} members healthy (not healthy: {}): etcd would lose quorum",
        .unhealthy.join(", ")
    )]
    QuorumLostWhileDown {
        /// The node.
        node: String,
        /// Voting members, the node included.
        members: usize,
        /// How many of the others are healthy.
        healthy: usize,
        /// The others that are not.
        unhealthy: Vec<String>,
    },
    /// A majority would remain, but not every other member is healthy: one more failure while
    /// the node is away would lose quorum.
    #[error(
        "etcd members not healthy: {}: every member must be healthy before {node} leaves etcd or goes down",
        .unhealthy.join(", ")
    )]
    MembersUnhealthy {
        /// The node.
        node: String,
        /// The other members that are not healthy.
        unhealthy: Vec<String>,
    },
}

impl QuorumRefusal {
    /// The members named as not healthy (none for [`QuorumRefusal::LastMember`]).
    pub fn unhealthy(&self) -> &[String] {
        match self {
            QuorumRefusal::LastMember { .. } => &[],
            QuorumRefusal::QuorumLost { unhealthy, .. }
            | QuorumRefusal::QuorumLostWhileDown { unhealthy, .. }
            | QuorumRefusal::MembersUnhealthy { unhealthy, .. } => unhealthy,
        }
    }
}

fn unhealthy_phrase(unhealthy: &[String]) -> String {
    format!("not answering: {}", unhealthy.join(", "))
}

/// How a control plane leaves etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// For good (a reset): its member is removed.
    Removal,
    /// For a while (an upgrade or reboot): it stays a member and must rejoin when back.
    Restart,
}

/// Whether `hostname` may leave etcd for good: [`check_departure`] with
/// [`Departure::Removal`] (the rule resets use).
pub fn check_member_removal(
    members: &[EtcdMember],
    hostname: &str,
    healthy: &BTreeSet<String>,
) -> Result<MemberRemoval, QuorumRefusal> {
    check_departure(members, hostname, healthy, Departure::Removal)
}

/// Whether `hostname` may leave etcd as `departure` says: `members` as a control plane lists
/// them, `healthy` the member names that are healthy. See the module documentation.
pub fn check_departure(
    members: &[EtcdMember],
    hostname: &str,
    healthy: &BTreeSet<String>,
    departure: Departure,
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
        return match departure {
            Departure::Removal => Err(QuorumRefusal::LastMember {
                node: hostname.to_owned(),
            }),
            Departure::Restart => Ok(MemberRemoval {
                member: Some(member.clone()),
            }),
        };
    }
    let healthy_count = remaining
        .iter()
        .filter(|other| healthy.contains(&other.hostname))
        .count();
    let unhealthy: Vec<String> = remaining
        .iter()
        .filter(|other| !healthy.contains(&other.hostname))
        .map(|other| other.hostname.clone())
        .collect();
    match departure {
        Departure::Removal if healthy_count * 2 <= remaining.len() => {
            return Err(QuorumRefusal::QuorumLost {
                node: hostname.to_owned(),
                remaining: remaining.len(),
                healthy: healthy_count,
                unhealthy,
            });
        }
        // While it is down all `remaining + 1` members still count; with every other member
        // healthy and fewer than three members nothing better is possible (see above).
        Departure::Restart if healthy_count * 2 <= remaining.len() + 1 && !unhealthy.is_empty() => {
            return Err(QuorumRefusal::QuorumLostWhileDown {
                node: hostname.to_owned(),
                members: remaining.len() + 1,
                healthy: healthy_count,
                unhealthy,
            });
        }
        _ => {}
    }
    if !unhealthy.is_empty() {
        return Err(QuorumRefusal::MembersUnhealthy {
            node: hostname.to_owned(),
            unhealthy,
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
    fn every_other_member_must_be_healthy_even_with_a_majority_left() {
        let all = members(&["cp-1", "cp-2", "cp-3", "cp-4", "cp-5"]);
        let everyone = healthy(&["cp-2", "cp-3", "cp-4", "cp-5"]);
        for departure in [Departure::Removal, Departure::Restart] {
            assert!(check_departure(&all, "cp-1", &everyone, departure).is_ok());
            let refusal =
                check_departure(&all, "cp-1", &healthy(&["cp-2", "cp-3", "cp-4"]), departure)
                    .unwrap_err();
            assert_eq!(
                refusal,
                QuorumRefusal::MembersUnhealthy {
                    node: "cp-1".into(),
                    unhealthy: vec!["cp-5".into()],
                }
            );
            assert_eq!(
                refusal.to_string(),
                "etcd members not healthy: cp-5: every member must be healthy before cp-1 leaves etcd or goes down"
            );
        }
        assert!(matches!(
            check_member_removal(&all, "cp-1", &healthy(&["cp-2", "cp-3"])),
            Err(QuorumRefusal::QuorumLost { .. })
        ));
    }

    #[test]
    fn a_restart_with_one_of_three_down_is_refused_naming_it() {
        let all = members(&["cp-1", "cp-2", "cp-3"]);
        let refusal =
            check_departure(&all, "cp-1", &healthy(&["cp-2"]), Departure::Restart).unwrap_err();
        assert_eq!(
            refusal,
            QuorumRefusal::QuorumLostWhileDown {
                node: "cp-1".into(),
                members: 3,
                healthy: 1,
                unhealthy: vec!["cp-3".into()],
            }
        );
        assert_eq!(
            refusal.to_string(),
            "taking cp-1 down would leave 1 of etcd's 3 members healthy (not healthy: cp-3): etcd would lose quorum"
        );
        assert_eq!(refusal.unhealthy(), ["cp-3"]);
        assert!(
            check_departure(
                &all,
                "cp-1",
                &healthy(&["cp-2", "cp-3"]),
                Departure::Restart
            )
            .is_ok()
        );
    }

    #[test]
    fn small_clusters_restart_when_every_other_member_is_healthy() {
        let one = members(&["cp-1"]);
        assert!(check_departure(&one, "cp-1", &healthy(&[]), Departure::Restart).is_ok());
        let two = members(&["cp-1", "cp-2"]);
        assert!(check_departure(&two, "cp-1", &healthy(&["cp-2"]), Departure::Restart).is_ok());
        assert!(matches!(
            check_departure(&two, "cp-1", &healthy(&[]), Departure::Restart),
            Err(QuorumRefusal::QuorumLostWhileDown { .. })
        ));
        assert!(matches!(
            check_departure(&two, "cp-1", &healthy(&["cp-2"]), Departure::Removal),
            Ok(MemberRemoval { member: Some(_) })
        ));
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
