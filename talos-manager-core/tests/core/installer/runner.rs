//! The plan runner and the probe without SSH: a fake [`RemoteShell`] answering from a script.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use talos_manager_core::installer::{
    BootstrapRequest, Exit, ImageSource, InstallError, InstallEvent, ProbeError, RemoteShell,
    ShellError, Stream, install, parse_lsblk, plan, probe,
};

use super::harness::DATA;

/// Answers each command by the first rule whose needle it contains, and records the commands.
struct FakeShell {
    rules: Vec<(&'static str, Answer)>,
    calls: Mutex<Vec<String>>,
}

#[derive(Clone)]
enum Answer {
    Exit(u32, &'static str, &'static str),
    Disconnect,
}

impl FakeShell {
    fn new(rules: Vec<(&'static str, Answer)>) -> FakeShell {
        FakeShell {
            rules,
            calls: Mutex::default(),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl RemoteShell for FakeShell {
    async fn exec(
        &self,
        command: &str,
        _timeout: Duration,
        on_output: &mut (dyn for<'chunk> FnMut(Stream, &'chunk [u8]) + Send),
    ) -> Result<Exit, ShellError> {
        self.calls.lock().unwrap().push(command.to_owned());
        let answer = self
            .rules
            .iter()
            .find(|(needle, _)| command.contains(needle));
        match answer.map(|(_, a)| a.clone()) {
            Some(Answer::Exit(status, stdout, stderr)) => {
                on_output(Stream::Stdout, stdout.as_bytes());
                on_output(Stream::Stderr, stderr.as_bytes());
                Ok(Exit::Status(status))
            }
            Some(Answer::Disconnect) => Err(ShellError::Transport {
                source: "connection reset by peer".into(),
            }),
            None => Ok(Exit::Status(0)),
        }
    }
}

fn request() -> BootstrapRequest {
    let lsblk = std::fs::read_to_string(format!("{DATA}/lsblk.json")).unwrap();
    let disk = parse_lsblk(&lsblk).unwrap().remove(3); // nvme0n1, a member of md0
    BootstrapRequest {
        server: "worker-1".into(),
        disk,
        image: ImageSource::Custom {
            url: "http://images.example/metal-amd64.raw.zst".into(),
        },
        talos_config_url: "https://tm.example/config?uuid=${uuid}".into(),
        image_size: Some(4 << 20),
    }
}

#[tokio::test]
async fn a_failing_step_stops_the_plan_and_names_itself() {
    let shell = FakeShell::new(vec![
        (
            "sfdisk --delete",
            Answer::Exit(1, "", "sfdisk: no partitions"),
        ),
        (
            "dd of=",
            Answer::Exit(
                1,
                "",
                "1048576 bytes (1.0 MB, 1.0 MiB) copied, 1 s, 1.0 MB/s\n\
                 dd: error writing '/dev/nvme0n1': No space left on device\n",
            ),
        ),
    ]);
    let plan = plan(&request());
    let mut progress = Vec::new();
    let result = install(&shell, &plan, &mut |event: InstallEvent<'_>| {
        if let InstallEvent::Progress(p) = event {
            progress.push(p);
        }
    })
    .await;
    let error = result.unwrap_err();
    // The tolerated sfdisk failure did not stop the plan; the write did.
    let InstallError::StepFailed {
        step,
        exit,
        stderr_tail,
        ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(step, "write the Talos image");
    assert_eq!(*exit, Exit::Status(1));
    assert_eq!(
        stderr_tail,
        &["dd: error writing '/dev/nvme0n1': No space left on device"]
    );
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].percent, Some(25.0));
    let calls = shell.calls();
    assert_eq!(calls[0], "mdadm --stop /dev/md0");
    assert!(
        !calls.iter().any(|c| c == "sync" || c == "reboot"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_connection_lost_to_reboot_is_success() {
    let shell = FakeShell::new(vec![
        (
            "sfdisk -J",
            Answer::Exit(
                0,
                r#"{"partitiontable":{"sectorsize":512,"partitions":[{"start":2048,"size":2048,"name":"BOOT"}]}}"#,
                "",
            ),
        ),
        ("losetup -f", Answer::Exit(0, "/dev/loop9\n", "")),
        ("mktemp", Answer::Exit(0, "/tmp/talos-boot.abc\n", "")),
        ("test -f", Answer::Exit(0, "present\n", "")),
        (
            "cat /tmp/talos-boot.abc/grub/grub.cfg",
            Answer::Exit(0, "menuentry A {\n  linux /A/vmlinuz\n}\n", ""),
        ),
        ("reboot", Answer::Disconnect),
    ]);
    install(&shell, &plan(&request()), &mut |_: InstallEvent<'_>| {})
        .await
        .unwrap();
    let calls = shell.calls();
    assert!(
        calls
            .iter()
            .any(|c| c == "losetup -f --show -o 1048576 --sizelimit 1048576 /dev/nvme0n1"),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c == "losetup -d /dev/loop9"),
        "{calls:?}"
    );
    assert_eq!(calls.last().unwrap(), "reboot");
}

#[tokio::test]
async fn grub_cleanup_runs_even_when_grub_cfg_is_missing() {
    let shell = FakeShell::new(vec![
        (
            "sfdisk -J",
            Answer::Exit(
                0,
                r#"{"partitiontable":{"partitions":[{"start":2048,"size":2048,"name":"BOOT"}]}}"#,
                "",
            ),
        ),
        ("losetup -f", Answer::Exit(0, "/dev/loop9\n", "")),
        ("mktemp", Answer::Exit(0, "/tmp/talos-boot.abc\n", "")),
        ("test -f", Answer::Exit(0, "missing\n", "")),
    ]);
    let error = install(&shell, &plan(&request()), &mut |_: InstallEvent<'_>| {})
        .await
        .unwrap_err();
    assert!(
        matches!(error, InstallError::GrubConfigMissing),
        "{error:?}"
    );
    let calls = shell.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with("umount /tmp/talos-boot.abc")),
        "{calls:?}"
    );
    assert!(
        calls.iter().any(|c| c == "losetup -d /dev/loop9"),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| c == "reboot"), "{calls:?}");
}

#[tokio::test]
async fn the_probe_touches_nothing_outside_rescue() {
    let shell = FakeShell::new(vec![("hostname", Answer::Exit(0, "node-1\n", ""))]);
    let error = probe(&shell).await.unwrap_err();
    assert!(matches!(error, ProbeError::NotInRescue { .. }), "{error:?}");
    // One script; that it runs nothing after a hostname other than `rescue` is tested with a
    // real shell in the probe's unit tests.
    let calls = shell.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(
        calls[0].starts_with("h=$(hostname) || exit 1\n"),
        "{calls:?}"
    );
}
