//! Runs the real `talos-manager` binary in a temporary directory with a controlled environment.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `talos-manager` command with an empty environment (but `PATH`) and its own working
/// directory.
pub(crate) fn talos_manager(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_talos-manager"));
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Connections outside 127.0.0.0/8 abort the service (core's `dial_guard`).
        .env("TALOS_MANAGER_LOOPBACK_ONLY", "1")
        .stdin(Stdio::null());
    command
}

/// Runs a command to its end and returns its output.
pub(crate) fn run(command: &mut Command) -> Output {
    command.output().expect("run talos-manager")
}

/// Standard error as text.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running `talos-manager serve`, killed when dropped.
pub(crate) struct Service {
    child: Child,
    /// The address it listens on.
    pub(crate) address: SocketAddr,
    lines: mpsc::Receiver<String>,
    /// Every log line read so far.
    pub(crate) log: Vec<String>,
}

impl Service {
    /// Starts `serve --listen 127.0.0.1:0` with JSON logs and waits until it listens.
    pub(crate) fn start(mut command: Command) -> Service {
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
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
        Service {
            child,
            address,
            lines,
            log,
        }
    }

    /// `http://ADDRESS{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the process to exit.
    pub(crate) fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let status = talos_manager_core::testing::wait_for_blocking(
            "talos-manager to stop after SIGTERM",
            timeout,
            Duration::from_millis(50),
            || self.child.try_wait().unwrap().ok_or("still running"),
        );
        self.log.extend(self.lines.try_iter());
        status
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
