//! etcd through a control plane: members, leadership, removal, and the last member's reset.

use talos_manager_core::talos_api::{ResetRequest, TalosStatusCode, WipeMode};
use talos_manager_fake_talos::NodeSpec;

use super::harness::{Harness, address};

fn three_control_planes() -> Vec<NodeSpec> {
    vec![
        NodeSpec::control_plane(address(2), "cp-1"),
        NodeSpec::control_plane(address(3), "cp-2"),
        NodeSpec::control_plane(address(4), "cp-3"),
        NodeSpec::worker(address(5), "w-1"),
    ]
}

#[tokio::test]
async fn members_forfeit_and_remove() {
    let (h, nodes) = Harness::start(three_control_planes()).await;

    let members = h.api.etcd_members(nodes[1]).await.unwrap();
    let listed: Vec<(u64, &str)> = members
        .iter()
        .map(|member| (member.id, member.hostname.as_str()))
        .collect();
    let expected: Vec<(u64, String)> = h
        .cluster
        .etcd_members()
        .into_iter()
        .map(|member| (member.id, member.hostname))
        .collect();
    assert_eq!(
        listed,
        expected
            .iter()
            .map(|(id, hostname)| (*id, hostname.as_str()))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        members
            .iter()
            .map(|m| m.hostname.as_str())
            .collect::<Vec<_>>(),
        ["cp-1", "cp-2", "cp-3"]
    );
    assert!(members.iter().all(|member| !member.is_learner));
    // Asked of the node's own etcd (every member, as it lists them).
    assert!(
        h.cluster
            .calls()
            .iter()
            .any(|call| call.method == "MachineService/EtcdMemberList"
                && call.summary == "query local true")
    );

    // cp-1 leads; a node that does not lead forfeits nothing.
    let leader = h.cluster.etcd_leader().unwrap();
    assert_eq!(leader, members[0].id);
    assert_eq!(h.api.etcd_forfeit_leadership(nodes[1]).await.unwrap(), None);
    assert_eq!(h.cluster.etcd_leader(), Some(leader));
    let new_leader = h
        .api
        .etcd_forfeit_leadership(nodes[0])
        .await
        .unwrap()
        .unwrap();
    let now_leading = h.cluster.etcd_leader().unwrap();
    assert_ne!(now_leading, leader);
    assert_eq!(new_leader, format!("{now_leading:x}"));

    // Remove cp-3 through cp-2.
    h.api
        .etcd_remove_member(nodes[1], members[2].id)
        .await
        .unwrap();
    let left: Vec<String> = h
        .api
        .etcd_members(nodes[0])
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.hostname)
        .collect();
    assert_eq!(left, ["cp-1", "cp-2"]);
    let error = h
        .api
        .etcd_remove_member(nodes[1], members[2].id)
        .await
        .unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::NotFound),
        "{error}"
    );

    // A worker has no etcd.
    let error = h.api.etcd_members(nodes[3]).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::FailedPrecondition),
        "{error}"
    );
}

#[tokio::test]
async fn a_graceful_reset_of_the_last_member_is_refused() {
    let (h, nodes) = Harness::start(vec![NodeSpec::control_plane(address(2), "cp-1")]).await;
    let reset = ResetRequest {
        graceful: true,
        reboot: true,
        wipe_partitions: vec!["STATE".into(), "EPHEMERAL".into()],
        mode: WipeMode::All,
        user_disks: Vec::new(),
    };
    let error = h.api.reset(nodes[0], &reset).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::FailedPrecondition),
        "{error}"
    );
    assert!(error.to_string().contains("last member"), "{error}");
    // Nothing happened.
    assert_eq!(h.cluster.etcd_members().len(), 1);
    assert_eq!(
        h.api.machine_status(nodes[0]).await.unwrap().stage.as_str(),
        "running"
    );
    let reset_call = h
        .cluster
        .calls()
        .into_iter()
        .find(|call| call.method == "MachineService/Reset")
        .unwrap();
    assert_eq!(
        reset_call.summary,
        "graceful true, reboot true, wipe [STATE, EPHEMERAL], mode ALL, user disks []"
    );
}

#[tokio::test]
async fn bootstrap_starts_etcd_once_and_says_not_ready_and_already_exists_as_talos_does() {
    let (h, _) = Harness::start(Vec::new()).await;
    h.cluster.require_bootstrap();
    let cp1 = h
        .cluster
        .add_node(NodeSpec::control_plane(address(2), "cp-1"))
        .unwrap();
    let cp2 = h
        .cluster
        .add_node(NodeSpec::control_plane(address(3), "cp-2"))
        .unwrap();
    let worker = h
        .cluster
        .add_node(NodeSpec::worker(address(4), "w-1"))
        .unwrap();
    // No etcd before the bootstrap.
    let error = h.api.etcd_members(cp1).await.unwrap_err();
    assert_eq!(error.status_code(), Some(TalosStatusCode::Unavailable));

    h.cluster.set_bootstrap_not_ready(1);
    let error = h.api.bootstrap(cp1).await.unwrap_err();
    assert_eq!(error.status_code(), Some(TalosStatusCode::Unavailable));
    assert!(!h.cluster.bootstrapped());
    let error = h.api.bootstrap(worker).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::FailedPrecondition)
    );

    h.api.bootstrap(cp1).await.unwrap();
    assert!(h.cluster.bootstrapped());
    let members = h.api.etcd_members(cp1).await.unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m.hostname.as_str())
            .collect::<Vec<_>>(),
        ["cp-1", "cp-2"]
    );
    assert_eq!(h.cluster.etcd_leader(), Some(members[0].id));

    let error = h.api.bootstrap(cp1).await.unwrap_err();
    assert_eq!(error.status_code(), Some(TalosStatusCode::AlreadyExists));
    assert!(
        error
            .to_string()
            .contains("etcd data directory is not empty"),
        "{error}"
    );
    let _ = cp2;
    assert_eq!(
        h.cluster
            .calls()
            .iter()
            .filter(|call| call.method == "MachineService/Bootstrap")
            .map(|call| call.summary.as_str())
            .collect::<Vec<_>>(),
        ["recover etcd false"; 4]
    );
}

#[tokio::test]
async fn etcd_status_names_the_member_and_the_leader() {
    let (h, nodes) = Harness::start(three_control_planes()).await;
    let members = h.cluster.etcd_members();
    let leader = h.cluster.etcd_leader().unwrap();
    for (index, member) in members.iter().enumerate() {
        let status = h.api.etcd_status(nodes[index]).await.unwrap();
        assert_eq!(status.member_id, member.id, "{}", member.hostname);
        assert_eq!(status.leader, leader);
        assert!(!status.is_learner);
        assert!(status.errors.is_empty());
    }
    // A worker runs no etcd.
    let error = h.api.etcd_status(nodes[3]).await.unwrap_err();
    assert_eq!(
        error.status_code(),
        Some(TalosStatusCode::FailedPrecondition),
        "{error}"
    );
    assert!(
        h.cluster
            .calls()
            .iter()
            .any(|call| call.method == "MachineService/EtcdStatus")
    );
}
