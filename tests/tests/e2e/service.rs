//! The real `talos-manager serve` as a child process: started with a given environment, its
//! JSON log read for the address it listens on, killed on drop.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `talos-manager` binary next to this test binary (`target/<profile>/`). Cargo builds it
/// with the workspace's tests (`cargo nextest run --workspace`); fails, saying so, when missing.
pub(crate) fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let binary = profile_dir.join("talos-manager");
    assert!(
        binary.exists(),
        "{} is missing: build it first with `cargo build -p talos-manager-http --bin talos-manager` \
         (`cargo nextest run --workspace` does)",
        binary.display()
    );
    binary
}

/// A running `talos-manager serve`, killed when dropped.
pub(crate) struct Service {
    child: Child,
    /// The address it listens on.
    pub(crate) address: SocketAddr,
}

impl Service {
    /// Starts `serve --listen 127.0.0.1:0` with only `env` (and `PATH`) and JSON logs, and
    /// waits until it listens.
    pub(crate) fn start(env: &[(&str, String)]) -> Service {
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_FORMAT", "json")
            // Connections outside 127.0.0.0/8 abort the service (core's `dial_guard`).
            .env("TALOS_MANAGER_LOOPBACK_ONLY", "1")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start talos-manager serve");
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut log = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let address = loop {
            let timeout = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = lines.recv_timeout(timeout) else {
                let _ = child.kill();
                panic!(
                    "talos-manager did not start listening; its log:\n{}",
                    log.join("\n")
                );
            };
            log.push(line.clone());
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["message"] == "listening" {
                break event["address"].as_str().unwrap().parse().unwrap();
            }
        };
        // Keep draining the log so the service never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Service { child, address }
    }

    /// `http://ADDRESS{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Kills the process with SIGKILL, as the OOM killer or a power loss would stop it, and
    /// waits for it.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL talos-manager");
        self.child.wait().expect("reap talos-manager");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
