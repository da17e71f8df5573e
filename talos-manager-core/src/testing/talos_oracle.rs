//! The Talos differential oracle (`tests/talos-oracle/`, built by `scripts/build-talos-oracle`):
//! Talos's own `pkg/machinery` answering `gen config`, `machineconfig patch` and `validate`
//! requests as JSON. Shared by the core's differential test and the command-line tests.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value as Json;

use crate::talos::TalosVersion;

/// The oracle binary for `version`: `$TALOS_MANAGER_TALOS_ORACLE_DIR/talos-oracle-v1.N`, else
/// the workspace's `.cache/talos-oracle/`. Missing is a failure (a panic), never a skip.
pub fn oracle_path(version: TalosVersion) -> PathBuf {
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

/// Runs a batch of requests through the oracle of `version`; one response per request.
pub fn ask(version: TalosVersion, requests: &[Json]) -> Vec<Json> {
    let mut child = Command::new(oracle_path(version))
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
    let responses: Vec<Json> = serde_json::from_slice(&output.stdout).expect("oracle output");
    assert_eq!(responses.len(), requests.len());
    responses
}

/// `talosctl machineconfig patch` of `config` with `patches`, by Talos: its output, or its error.
pub fn machineconfig_patch(
    version: TalosVersion,
    config: &str,
    patches: &[String],
) -> Result<String, String> {
    let request = serde_json::json!({"op": "patch", "config": config, "patches": patches});
    let response = ask(version, &[request]).remove(0);
    match (response.get("output"), response.get("error")) {
        (Some(Json::String(out)), _) => Ok(out.clone()),
        (_, Some(Json::String(error))) => Err(error.clone()),
        _ => panic!("unexpected oracle response {response}"),
    }
}
