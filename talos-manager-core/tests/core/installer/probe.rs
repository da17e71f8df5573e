//! The probe through real SSH, with stub `hostname`, `dmidecode` and `lsblk`.

use talos_manager_core::installer::{ProbeError, SshSession, UuidProblem, probe};

use super::harness::{KeyPair, Sshd};

#[tokio::test]
async fn probes_a_server_in_rescue() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    let session = SshSession::connect(&sshd.target(&key)).await.unwrap();
    let found = probe(&session).await.unwrap();
    assert_eq!(found.smbios_uuid, "4c4c4544-0042-3510-8057-b4c04f4e3432");
    assert!(found.dmidecode_system.contains("System Information"));
    let names: Vec<_> = found
        .block_devices
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    assert_eq!(names, ["loop0", "nvme2n1", "nvme1n1", "nvme0n1"]);
    let nvme0 = found
        .find_device("eui.36344830544106740025384500000002")
        .unwrap();
    assert_eq!(
        (nvme0.path().as_str(), nvme0.size),
        ("/dev/nvme0n1", 3840755982336)
    );
    assert_eq!(nvme0.raid_arrays, ["md0"]);
    assert_eq!(
        found.find_device("/dev/nvme1n1").unwrap().raid_arrays,
        Vec::<String>::new()
    );
    found
        .check_uuid([("other", "a1b2c3d4-0000-1111-2222-333344445555")])
        .unwrap();
    let record = found.store_record();
    assert!(record.accessible);
    assert_eq!(record.lsblk.as_deref(), Some(found.lsblk_json.as_str()));
}

#[tokio::test]
async fn touches_nothing_outside_rescue() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    sshd.stubs.set_hostname("talos-worker-1");
    let session = SshSession::connect(&sshd.target(&key)).await.unwrap();
    let error = probe(&session).await.unwrap_err();
    assert!(matches!(error, ProbeError::NotInRescue { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the server is not in the rescue system (its hostname is \"talos-worker-1\")"
    );
    assert!(
        !sshd.stubs.state.join("calls").exists(),
        "probe ran commands after `hostname`"
    );
}

#[tokio::test]
async fn refuses_an_invalid_smbios_uuid_with_a_support_request() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate(dir.path(), "key", "-t ed25519");
    let sshd = Sshd::start(&[&key]);
    sshd.stubs.set_uuid("4C4C4544-0042-3510-8057-000000000000");
    let session = SshSession::connect(&sshd.target(&key)).await.unwrap();
    let found = probe(&session).await.unwrap();
    let error = found.check_uuid([]).unwrap_err();
    assert_eq!(error.problem, UuidProblem::ZeroSuffix);
    let text = error.to_string();
    assert!(
        text.contains("4c4c4544-0042-3510-8057-000000000000"),
        "{text}"
    );
    assert!(
        text.contains("Subject: Invalid SMBIOS system UUID"),
        "{text}"
    );
    assert!(
        text.contains("\tProduct Name: AX102"),
        "the dmidecode -t system output: {text}"
    );
}
