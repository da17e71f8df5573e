//! `docs/getting-started.md`, run as written: its ```` ```sh test ```` blocks, in order, in one
//! bash script, against the real `talos-manager` and `fake-hetzner` binaries, in a fresh
//! directory. The walkthrough ends with the machine config a node fetched from `/config`, which
//! is checked here; so the page fails this test as soon as it stops working.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use talos_manager_core::testing::config_documents::{typed_document, v1alpha1_document};

/// How long the whole walkthrough may take (a debug build makes a cluster's RSA key slowly).
const TIMEOUT: Duration = Duration::from_secs(180);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the e2e crate is inside the workspace")
        .to_owned()
}

/// The shell blocks of a Markdown page whose info string is `sh test`, in order.
fn test_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in markdown.lines() {
        match &mut current {
            None => {
                let info = line.trim_start().strip_prefix("```").map(str::trim);
                if info == Some("sh test") {
                    current = Some(Vec::new());
                }
            }
            Some(lines) => {
                if line.trim_start().starts_with("```") {
                    blocks.push(lines.join("\n"));
                    current = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    assert!(current.is_none(), "a ```sh test block is not closed");
    blocks
}

/// Builds the binaries the page runs, as its first step does, and returns the folder they are in.
fn build_binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_owned());
    let output = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "-p",
            "talos-manager-http",
            "--bin",
            "talos-manager",
            "-p",
            "talos-manager-fake-hetzner",
            "--bin",
            "fake-hetzner",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo build failed");
    let mut folders: Vec<PathBuf> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Json>(line).ok())
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .filter_map(|executable| executable.parent().map(Path::to_owned))
        .collect();
    folders.dedup();
    assert_eq!(folders.len(), 1, "both binaries in one folder: {folders:?}");
    folders.remove(0)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// The script's process group, stopped whatever happens (the page starts background processes).
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_getting_started_walkthrough_works_as_written() {
    let page = std::fs::read_to_string(workspace_root().join("docs/getting-started.md")).unwrap();
    let blocks = test_blocks(&page);
    assert!(
        blocks.len() >= 10,
        "only {} ```sh test blocks",
        blocks.len()
    );
    for tool in ["bash", "curl", "jq"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            found,
            "{tool} is needed by getting-started.md: run scripts/test to install it"
        );
    }
    let bin = build_binaries();

    let dir = tempfile::tempdir().unwrap();
    let script = format!("set -euo pipefail\n\n{}\n", blocks.join("\n\n"));
    std::fs::write(dir.path().join("walkthrough.sh"), &script).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("bash")
        .arg("walkthrough.sh")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("PORT", free_port().to_string())
        // Connections outside 127.0.0.0/8 abort the service (core's `dial_guard`).
        .env("TALOS_MANAGER_LOOPBACK_ONLY", "1")
        .stdin(Stdio::null())
        // Files, not pipes: the background processes the page starts inherit them.
        .stdout(std::fs::File::create(dir.path().join("stdout.txt")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr.txt")).unwrap())
        .process_group(0)
        .spawn()
        .expect("bash runs");
    let mut group = Group(child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = group.0.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(group);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
    let (stdout, stderr, service_log) = (
        read("stdout.txt"),
        read("stderr.txt"),
        read("talos-manager.log"),
    );
    let report = format!(
        "--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- talos-manager.log ---\n{service_log}"
    );
    match status {
        None => panic!("the walkthrough did not finish in {TIMEOUT:?}\n{report}"),
        Some(status) => assert!(
            status.success(),
            "the walkthrough failed: {status}\n{report}"
        ),
    }

    // What the reader is told to expect along the way.
    assert!(stdout.contains("sync succeeded"), "{report}");
    assert!(
        stdout.contains("robot-321\tserver1\t127.18.1.72"),
        "{report}"
    );
    assert!(stdout.lines().any(|line| line == "420"), "{report}");
    assert!(
        stdout.contains("No server matches this request (SMBIOS UUID and address 127.0.0.1) (404)"),
        "{report}"
    );

    // The config the node fetched.
    let yaml = std::fs::read_to_string(dir.path().join("worker-1.yaml")).unwrap();
    // Its first document, the v1alpha1 one (Talos 1.12+ configs have more after it).
    let config: Json = v1alpha1_document(&yaml);
    assert_eq!(config["machine"]["type"].as_str(), Some("worker"), "{yaml}");
    // Its typed documents (Talos 1.12+; the default Talos, 1.14, writes most settings as
    // documents of their own), by kind.
    let document = |kind: &str| {
        typed_document(&yaml, kind)
            .unwrap_or_else(|| panic!("no {kind} document in the config:\n{yaml}"))
    };
    // The node's hostname, which the service writes in the form of the config's Talos version.
    assert_eq!(
        document("HostnameConfig")["hostname"].as_str(),
        Some("worker-1"),
        "{yaml}"
    );
    assert_eq!(
        config["machine"]["sysctls"]["vm.max_map_count"].as_str(),
        Some("262144")
    );
    assert_eq!(
        document("UnattendedInstallConfig")["provisioning"]["diskSelector"]["match"].as_str(),
        Some("disk.dev_path == \"/dev/nvme0n1\""),
        "{yaml}"
    );
    // The config's default Kubernetes version.
    assert_eq!(
        document("KubeletConfig")["image"].as_str(),
        Some(
            format!(
                "ghcr.io/siderolabs/kubelet:v{}",
                talos_manager_core::store::DEFAULT_KUBERNETES_VERSION
            )
            .as_str()
        )
    );
    let cluster = document("KubeClusterConfig");
    assert_eq!(cluster["clusterName"].as_str(), Some("demo"));
    assert_eq!(
        cluster["endpoint"].as_str(),
        Some("https://127.10.0.1:6443")
    );
    // The page shows these lines of it; they must be what the node got.
    for shown in [
        "    type: worker",
        "hostname: worker-1",
        "        vm.max_map_count: \"262144\"",
        "clusterName: demo",
    ] {
        assert!(
            yaml.lines().any(|line| line == shown),
            "the page shows {shown:?}, the config has not:\n{yaml}"
        );
        assert!(page.contains(shown), "the page no longer shows {shown:?}");
    }
}
