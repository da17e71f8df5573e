//! etcd as the control planes report it through the Talos API: the members, which of them are
//! healthy, whether a node may go ([`check_departure`], the pure rule of [`super::etcd`]), and
//! the wait until a control plane that is back has rejoined.
//!
//! A member is healthy when a configured control plane carries its name (the node's own name,
//! [`NodeRef::node_name`], or its expected hostname), that node's Talos API answers, and the
//! etcd on that node answers `EtcdMemberList` listing the member as a voter. The gRPC client
//! asks the node's local etcd (`query_local`), so a node whose etcd did not start is not
//! healthy even though its Talos API answers.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::etcd::{Departure, MemberRemoval, QuorumRefusal, check_departure};
use super::wait::WaitError;
use super::{LifecycleContext, NodeRef};
use crate::error_chain;
use crate::talos_api::{EtcdMember, TalosApi, TalosApiError};

/// etcd as the control planes reported it.
pub(crate) struct EtcdView {
    /// The members, as a control plane other than the node lists them (the node's own list
    /// when no other answered).
    pub(crate) members: Vec<EtcdMember>,
    /// The names of the healthy members.
    pub(crate) healthy: BTreeSet<String>,
    /// Another control plane whose etcd answered: member removal goes through it.
    pub(crate) peer: Option<NodeRef>,
}

impl EtcdView {
    /// The rule for `node` leaving as `departure` says.
    pub(crate) fn check(
        &self,
        node: &NodeRef,
        departure: Departure,
    ) -> Result<MemberRemoval, QuorumRefusal> {
        check_departure(&self.members, &node.node_name, &self.healthy, departure)
    }
}

fn carries(node: &NodeRef, member: &str) -> bool {
    node.node_name == member || node.hostname == member
}

fn is_voter(list: &[EtcdMember], name: &str) -> bool {
    list.iter()
        .any(|member| member.hostname == name && !member.is_learner)
}

/// Asks every control plane of `control_planes` (the other ones first, their names read from
/// them) for etcd's members through its own etcd, and logs what it saw: the members, and each
/// one that is not healthy with why. `None` when no control plane's etcd answered.
pub(crate) async fn read_etcd(
    ctx: &LifecycleContext<'_>,
    api: &dyn TalosApi,
    control_planes: &[NodeRef],
    node: &NodeRef,
) -> Option<EtcdView> {
    let mut answers: Vec<(NodeRef, Result<Vec<EtcdMember>, TalosApiError>)> = Vec::new();
    let others = control_planes
        .iter()
        .filter(|other| other.server_id != node.server_id);
    for other in others {
        let mut other = other.clone();
        // Its own name, recorded quietly (its own turn logs a mismatch). Unreachable: its
        // recorded (or expected) name stays; its etcd will not answer either.
        if let Ok(name) = api.node_name(other.address).await {
            // Only a record; failing to write it changes nothing here.
            let _ = ctx.store.record_node_name(other.server_id, &name).await;
            other.node_name = name;
        }
        let answer = api.etcd_members(other.address).await;
        answers.push((other, answer));
    }
    let own = api.etcd_members(node.address).await;
    answers.push((node.clone(), own));

    let (lister, members) = answers
        .iter()
        .find_map(|(by, answer)| answer.as_ref().ok().map(|list| (by, list.clone())))?;
    let peer = answers
        .iter()
        .find(|(by, answer)| by.server_id != node.server_id && answer.is_ok())
        .map(|(by, _)| by.clone());
    ctx.line(format!(
        "etcd members (as {} lists them): {}",
        lister.node_name,
        members
            .iter()
            .map(|member| if member.is_learner {
                format!("{} (learner)", member.hostname)
            } else {
                member.hostname.clone()
            })
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .await;
    let mut healthy = BTreeSet::new();
    for member in members.iter().filter(|member| !member.is_learner) {
        let name = &member.hostname;
        let seen = answers.iter().find(|(by, _)| carries(by, name));
        let problem = match seen {
            None => Some("no configured server of the cluster carries this name".to_owned()),
            Some((_, Err(error))) => Some(format!(
                "its node's etcd does not answer ({})",
                short(&error_chain(error).to_string())
            )),
            Some((_, Ok(list))) if !is_voter(list, name) => {
                Some("its own etcd does not list it as a voting member".to_owned())
            }
            Some((_, Ok(_))) => None,
        };
        match problem {
            None => {
                healthy.insert(name.clone());
            }
            // The node about to go is checked by the caller's rule, not reported here.
            Some(_) if carries(node, name) => {}
            Some(problem) => {
                ctx.line(format!("etcd member {name} is not healthy: {problem}"))
                    .await;
            }
        }
    }
    Some(EtcdView {
        members,
        healthy,
        peer,
    })
}

/// Asks the node's own etcd until it lists the node as a voting member, for at most
/// `ctx.timing.etcd_rejoin`.
pub(crate) async fn until_rejoined(
    ctx: &LifecycleContext<'_>,
    api: &dyn TalosApi,
    node: &NodeRef,
) -> Result<(), WaitError> {
    let started = Instant::now();
    let mut last_seen = String::new();
    loop {
        let seen = match api.etcd_members(node.address).await {
            Ok(list) if is_voter(&list, &node.node_name) => return Ok(()),
            Ok(list) if list.iter().any(|member| member.hostname == node.node_name) => {
                "it is a learner, not yet a voting member".to_owned()
            }
            Ok(_) => "its etcd does not list it as a member".to_owned(),
            Err(error) => format!(
                "its etcd does not answer ({})",
                short(&error_chain(&error).to_string())
            ),
        };
        if seen != last_seen {
            ctx.line(format!(
                "{}: waiting to rejoin etcd: {seen}",
                node.node_name
            ))
            .await;
            last_seen = seen;
        }
        if started.elapsed() + ctx.timing.poll_interval > ctx.timing.etcd_rejoin {
            return Err(WaitError::NotRejoined {
                node: node.node_name.clone(),
                waited_seconds: started.elapsed().as_secs(),
                last_seen,
            });
        }
        if (ctx.is_cancelled)() {
            return Err(WaitError::Cancelled {
                node: node.node_name.clone(),
            });
        }
        tokio::time::sleep(ctx.timing.poll_interval).await;
    }
}

/// The first 200 characters of an error chain.
fn short(text: &str) -> String {
    text.chars().take(200).collect()
}
