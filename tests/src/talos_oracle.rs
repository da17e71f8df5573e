//! The Talos differential oracle (`tests/talos-oracle/`, built by `scripts/test` or
//! `scripts/build-talos-oracle`): Talos's own `pkg/machinery` doing `gen config`,
//! `machineconfig patch` and `validate`, one binary per Talos minor version. Shared by the
//! core's differential test, the service's new-user and command-line tests; see that README for the request
//! and response shapes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The oracle binary for a Talos minor version (`v1.13`):
/// `$TALOS_MANAGER_TALOS_ORACLE_DIR/talos-oracle-v1.N`, else the workspace's
/// `.cache/talos-oracle/`.
///
/// # Panics
/// When it is missing: a test that needs it fails (never skips) and says how to build it.
pub fn oracle(version: impl std::fmt::Display) -> PathBuf {
    let dir = std::env::var_os("TALOS_MANAGER_TALOS_ORACLE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/talos-oracle"),
        PathBuf::from,
    );
    let path = dir.join(format!("talos-oracle-{version}"));
    assert!(
        path.is_file(),
        "the Talos {version} differential oracle is missing ({}): run scripts/test, or \
         scripts/build-talos-oracle (needs the Go toolchain) and set \
         TALOS_MANAGER_TALOS_ORACLE_DIR to the directory it prints",
        path.display()
    );
    path
}

/// Runs a batch of requests through the oracle of `version` (`v1.13`); one response per
/// request, in order.
///
/// # Panics
/// When the oracle is missing, fails or answers something else than one response per request.
pub fn ask(version: impl std::fmt::Display, requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new(oracle(version))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the oracle");
    let body = serde_json::to_vec(requests).expect("requests as JSON");
    let mut stdin = child.stdin.take().expect("the oracle's stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output().expect("running the oracle");
    writer
        .join()
        .expect("the writer thread")
        .expect("writing to the oracle");
    assert!(output.status.success(), "the oracle failed: {output:?}");
    let responses: Vec<Value> = serde_json::from_slice(&output.stdout).expect("oracle output");
    assert_eq!(responses.len(), requests.len());
    responses
}

/// `talosctl machineconfig patch` of `config` with `patches`, by Talos of `version` (`v1.13`):
/// its output, or its error.
///
/// # Panics
/// When the oracle is missing or answers neither an output nor an error.
pub fn machineconfig_patch(
    version: impl std::fmt::Display,
    config: &str,
    patches: &[String],
) -> Result<String, String> {
    let request = serde_json::json!({"op": "patch", "config": config, "patches": patches});
    let response = ask(version, &[request]).remove(0);
    match (response.get("output"), response.get("error")) {
        (Some(Value::String(out)), _) => Ok(out.clone()),
        (_, Some(Value::String(error))) => Err(error.clone()),
        _ => panic!("unexpected oracle response {response}"),
    }
}
