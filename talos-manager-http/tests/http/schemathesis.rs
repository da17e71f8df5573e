//! schemathesis (PyPI) against the served OpenAPI document, with an admin token, for a bounded
//! time: no answer may be a 5xx, and every answer must match the document. `scripts/test`
//! installs it into `.cache/schemathesis/`; a missing tool is a failure, never a skip.
//!
//! The two live streams (server-sent events that never end) are left out.

use std::path::{Path, PathBuf};
use std::process::Command;

use talos_manager_core::Backend;

use super::server::TestServer;

/// `TALOS_MANAGER_SCHEMATHESIS`, else `.cache/schemathesis/bin/st` at the workspace root.
fn schemathesis_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TALOS_MANAGER_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/schemathesis/bin/st");
    assert!(
        path.is_file(),
        "schemathesis is missing: neither TALOS_MANAGER_SCHEMATHESIS is set nor {} exists. Run \
         scripts/test once (it installs schemathesis there), or set TALOS_MANAGER_SCHEMATHESIS \
         to its `st` command",
        path.display()
    );
    path
}

/// How long schemathesis may run: `TALOS_MANAGER_SCHEMATHESIS_SECONDS`, default 60.
fn budget_seconds() -> u64 {
    std::env::var("TALOS_MANAGER_SCHEMATHESIS_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_has_no_5xx_and_keeps_to_its_document() {
    let st = schemathesis_binary();
    let server = TestServer::start(Backend::Sqlite).await;
    let report = tempfile::tempdir().unwrap();
    let schema = server.url("/api/v1/openapi.json");
    let authorization = format!("Authorization: Bearer {}", server.token);
    let budget = budget_seconds().to_string();
    let report_dir = report.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&st)
            .args(["run", &schema, "--header", &authorization])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-time",
                &budget,
                "--workers",
                "2",
                "--seed",
                "18",
                "--exclude-path",
                "/jobs/{id}/log",
                "--exclude-path",
                "/servers/events",
                "--report-dir",
            ])
            .arg(&report_dir)
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", "")
            .current_dir(&report_dir)
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{text}"
    );
    // Its summary (test cases generated, phases) in the test's output.
    let summary: Vec<&str> = text.lines().rev().take(25).collect();
    eprintln!(
        "{}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
}
