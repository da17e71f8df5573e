//! `talos-manager` as a user runs it: help texts (snapshots in tests/output/, bless with
//! `UPDATE_EXPECT=1`), bad configuration, migrate, and serve on both databases.

use std::time::Duration;

use expect_test::expect_file;
use talos_manager_core::Backend;
use talos_manager_core::store::EncryptionKey;
use talos_manager_core::testing::{TestDatabase, wait_for_blocking};

use super::process::{Service, run, stderr, talos_manager};

#[test]
fn help_texts() {
    let dir = tempfile::tempdir().unwrap();
    for (args, snapshot) in [
        (&["--help"][..], expect_file!["../output/cmd-help.txt"]),
        (
            &["serve", "--help"],
            expect_file!["../output/cmd-serve-help.txt"],
        ),
        (
            &["migrate", "--help"],
            expect_file!["../output/cmd-migrate-help.txt"],
        ),
        (
            &["backup", "--help"],
            expect_file!["../output/cmd-backup-help.txt"],
        ),
        (
            &["restore", "--help"],
            expect_file!["../output/cmd-restore-help.txt"],
        ),
        (
            &["gen", "config", "--help"],
            expect_file!["../output/cmd-gen-config-help.txt"],
        ),
        (
            &["validate", "--help"],
            expect_file!["../output/cmd-validate-help.txt"],
        ),
        (
            &["machineconfig", "patch", "--help"],
            expect_file!["../output/cmd-machineconfig-patch-help.txt"],
        ),
        (
            &["token", "--help"],
            expect_file!["../output/cmd-token-help.txt"],
        ),
    ] {
        let output = run(talos_manager(dir.path()).args(args));
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        snapshot.assert_eq(&String::from_utf8(output.stdout).unwrap());
    }
}

#[test]
fn bad_configuration_exits_2_with_one_line_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "PORT",
            "eighty",
            "error: PORT: \"eighty\" is not a port number (1-65535)",
        ),
        (
            "DB_ADAPTER",
            "oracle",
            "error: DB_ADAPTER: \"oracle\" is not a database adapter (use sqlite, or leave it unset)",
        ),
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
            "error: TALOS_MANAGER_ENCRYPTION_KEY: must be set when the database is PostgreSQL \
             (make one with `openssl rand -base64 32`)",
        ),
        (
            "LOG_FORMAT",
            "xml",
            "error: LOG_FORMAT: \"xml\" is not a log format (use text or json)",
        ),
        (
            "BASIC_AUTH_PASSWORD",
            "change-me",
            "error: BASIC_AUTH_PASSWORD: too short (9 characters): use at least 12",
        ),
    ];
    for (name, value, expect) in cases {
        let output = run(talos_manager(dir.path()).arg("serve").env(name, value));
        assert_eq!(
            output.status.code(),
            Some(2),
            "{name}={value}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), format!("{expect}\n"), "{name}={value}");
    }
    // Nothing was created on the way to the error.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn migrate_creates_the_sqlite_database_and_a_key_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(talos_manager(dir.path()).arg("migrate"));
    assert!(first.status.success(), "{}", stderr(&first));
    let log = stderr(&first);
    assert!(
        log.contains("generated a key file for secrets at rest"),
        "{log}"
    );
    assert!(
        log.contains("database data/talos-manager.db is up to date"),
        "{log}"
    );
    assert!(dir.path().join("data/talos-manager.db").exists());
    let key = std::fs::read_to_string(dir.path().join("data/encryption.key")).unwrap();

    let second = run(talos_manager(dir.path()).arg("migrate"));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(!stderr(&second).contains("generated a key file"));
    let key_again = std::fs::read_to_string(dir.path().join("data/encryption.key")).unwrap();
    assert_eq!(key, key_again);
}

#[tokio::test]
async fn serve_on_sqlite_with_no_configuration_answers_healthz_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut service = Service::start(talos_manager(dir.path()));
    let response = reqwest::get(service.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "database": "sqlite"})
    );

    // The first start made an admin token and wrote it to a file only the service's user can
    // read; the log names the file, never the token (review #8).
    let token_file = dir.path().join("data/admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap_or_else(|error| panic!("no admin token file ({error}): {:#?}", service.log))
        .trim()
        .to_owned();
    assert!(token.starts_with("tm_"), "{token}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !service.log.iter().any(|line| line.contains(&token)),
        "the token is not in the log: {:#?}",
        service.log
    );
    assert!(
        service.log.iter().any(|line| line.contains("admin-token")),
        "the log names the file: {:#?}",
        service.log
    );
    let client = crate::http::server::client();
    let settings = client
        .get(service.url("/api/v1/settings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(settings.status(), 200);
    let unauthenticated = reqwest::get(service.url("/api/v1/settings")).await.unwrap();
    assert_eq!(unauthenticated.status(), 401);

    // An open live stream (a dashboard tab) ends at once on SIGTERM: it does not hold the
    // shutdown for the 30 s grace period.
    let events = client
        .get(service.url("/api/v1/servers/events"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let status = service.terminate(Duration::from_secs(20));
    drop(events);
    assert!(status.success(), "exit status {status}");
    assert!(
        service
            .log
            .iter()
            .any(|line| line.contains("SIGTERM received")),
        "{:#?}",
        service.log
    );
    assert!(dir.path().join("data/talos-manager.db").exists());
}

#[tokio::test]
async fn serve_on_postgres_with_an_encryption_key() {
    let database = TestDatabase::new(Backend::Postgres).await;
    let dir = tempfile::tempdir().unwrap();
    let key = EncryptionKey::generate();
    let mut command = talos_manager(dir.path());
    command
        .env("DATABASE_URL", database.url())
        .env("TALOS_MANAGER_ENCRYPTION_KEY", key.to_base64().expose());
    let mut service = Service::start(command);
    let body: serde_json::Value = reqwest::get(service.url("/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["database"], "postgres");
    assert!(service.terminate(Duration::from_secs(20)).success());
    // Nothing was written to a data directory: PostgreSQL holds it all.
    assert!(!dir.path().join("data").exists());
    // The log names the database without credentials.
    let log = service.log.join("\n");
    assert!(
        log.contains("\"database\":\"postgres://127.0.0.1:5432/tm_test_"),
        "{log}"
    );
}

#[test]
fn token_commands_create_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let created = run(talos_manager(dir.path()).args(["token", "create", "terraform-ci"]));
    assert!(created.status.success(), "{}", stderr(&created));
    let token = String::from_utf8(created.stdout).unwrap();
    assert!(token.trim().starts_with("tm_"), "{token}");
    assert_eq!(token.trim().len(), 46);

    let listed = run(talos_manager(dir.path()).args(["token", "list"]));
    let listing = String::from_utf8(listed.stdout).unwrap();
    assert!(listing.starts_with("terraform-ci\tcreated "), "{listing}");
    assert!(listing.contains("never used"), "{listing}");
    assert!(!listing.contains(token.trim()));

    let duplicate = run(talos_manager(dir.path()).args(["token", "create", "terraform-ci"]));
    assert_eq!(duplicate.status.code(), Some(1));
    assert!(
        stderr(&duplicate).contains("conflicts with an existing one"),
        "{}",
        stderr(&duplicate)
    );

    // Tokens can carry an expiry.
    let expiring = run(talos_manager(dir.path()).args([
        "token",
        "create",
        "short-lived",
        "--expires-in",
        "30d",
    ]));
    assert!(expiring.status.success(), "{}", stderr(&expiring));
    assert!(
        stderr(&expiring).contains("expiring "),
        "{}",
        stderr(&expiring)
    );
    let listing =
        String::from_utf8(run(talos_manager(dir.path()).args(["token", "list"])).stdout).unwrap();
    assert!(listing.contains("short-lived\tcreated "), "{listing}");
    assert!(listing.contains("\texpires "), "{listing}");
    assert!(listing.contains("\tno expiry"), "{listing}");
    let bad =
        run(talos_manager(dir.path()).args(["token", "create", "never", "--expires-in", "soon"]));
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));

    let revoked = run(talos_manager(dir.path()).args(["token", "revoke", "terraform-ci"]));
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let again = run(talos_manager(dir.path()).args(["token", "revoke", "terraform-ci"]));
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).ends_with(
        "error: no API token is named \"terraform-ci\" (see `talos-manager token list`)\n"
    ));
}

#[test]
fn gen_and_validate_work_like_talosctl() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = run(talos_manager(dir.path()).args(["gen", "secrets", "-o", "secrets.yaml"]));
    assert!(secrets.status.success(), "{}", stderr(&secrets));
    let again = run(talos_manager(dir.path()).args(["gen", "secrets", "-o", "secrets.yaml"]));
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        "error: secrets.yaml already exists (use --force to overwrite it)\n"
    );

    let config = run(talos_manager(dir.path()).args([
        "gen",
        "config",
        "demo",
        "https://demo.example.com:6443",
        "--with-secrets",
        "secrets.yaml",
        "--install-disk",
        "/dev/nvme0n1",
        "--with-kubespan",
        // Talos 1.12+ (the default contract): the hostname is a HostnameConfig document;
        // `machine.network.hostname` next to the generated one is refused by validate.
        "--config-patch",
        "apiVersion: v1alpha1\nkind: HostnameConfig\nauto: off\nhostname: demo-1\n",
        "-o",
        "out",
    ]));
    assert!(config.status.success(), "{}", stderr(&config));
    // CA keys and admin credentials: readable by their owner only (review #21).
    use std::os::unix::fs::PermissionsExt as _;
    for file in [
        "secrets.yaml",
        "out/controlplane.yaml",
        "out/worker.yaml",
        "out/talosconfig",
    ] {
        let metadata = std::fs::metadata(dir.path().join(file))
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600, "{file}");
    }
    for file in ["out/controlplane.yaml", "out/worker.yaml"] {
        let valid = run(
            talos_manager(dir.path()).args(["validate", "-m", "metal", "--strict", "-c", file])
        );
        assert!(valid.status.success(), "{file}: {}", stderr(&valid));
        assert_eq!(stderr(&valid), format!("{file} is valid for metal mode\n"));
    }
    let worker = std::fs::read_to_string(dir.path().join("out/worker.yaml")).unwrap();
    // Talos 1.14 (the default contract): the install disk selects the disk of an
    // UnattendedInstallConfig, whose installer is the Image Factory's.
    assert!(
        worker.contains("        match: disk.dev_path == \"/dev/nvme0n1\"\n"),
        "{worker}"
    );
    assert!(
        worker.contains("    image: factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.1\n"),
        "{worker}"
    );
    assert!(worker.contains("hostname: demo-1"), "{worker}");

    let stdout = run(talos_manager(dir.path()).args([
        "gen",
        "config",
        "demo",
        "https://demo.example.com:6443",
        "--with-secrets",
        "secrets.yaml",
        "--output-types",
        "worker",
        "--talos-version",
        "v1.10",
        "-o",
        "-",
    ]));
    assert!(stdout.status.success(), "{}", stderr(&stdout));
    let text = String::from_utf8(stdout.stdout).unwrap();
    assert!(text.starts_with("version: v1alpha1\n"), "{text}");
    assert!(text.contains("    type: worker\n"));

    // Talos 1.13: KubeSpan as its own document, no empty machine.network; a newer minor
    // (1.15) is generated for the newest contract, with a warning.
    let gen_for = |version: &str| {
        run(talos_manager(dir.path()).args([
            "gen",
            "config",
            "demo",
            "https://demo.example.com:6443",
            "--with-secrets",
            "secrets.yaml",
            "--output-types",
            "worker",
            "--with-kubespan",
            "--talos-version",
            version,
            "-o",
            "-",
        ]))
    };
    let v1_13 = gen_for("v1.13");
    assert!(v1_13.status.success(), "{}", stderr(&v1_13));
    let text = String::from_utf8(v1_13.stdout).unwrap();
    assert!(
        text.contains("\nkind: KubeSpanConfig\nenabled: true\n"),
        "{text}"
    );
    assert!(!text.contains("network: {}"), "{text}");
    // Talos 1.14: the Kubernetes settings are typed documents.
    let v1_14 = gen_for("v1.14");
    assert!(v1_14.status.success(), "{}", stderr(&v1_14));
    let text = String::from_utf8(v1_14.stdout).unwrap();
    assert!(
        text.contains("\nkind: KubeletConfig\nimage: ghcr.io/siderolabs/kubelet:v1.37.0\n"),
        "{text}"
    );
    assert!(
        text.contains("\nkind: KubeSpanConfig\nenabled: true\n"),
        "{text}"
    );
    let v1_15 = gen_for("v1.15.0");
    assert!(v1_15.status.success(), "{}", stderr(&v1_15));
    assert_eq!(String::from_utf8_lossy(&v1_15.stdout), text);
    assert!(
        stderr(&v1_15).contains("warning: Talos v1.15 is newer than the newest config format"),
        "{}",
        stderr(&v1_15)
    );

    std::fs::write(
        dir.path().join("bad-patch.yaml"),
        include_str!("../../../talos-manager-core/tests/data/talos/original-app/invalid-nameservers-patch.yaml"),
    )
    .unwrap();
    let refused = run(talos_manager(dir.path()).args([
        "gen",
        "config",
        "demo",
        "https://demo.example.com:6443",
        "--with-secrets",
        "secrets.yaml",
        "--output-types",
        "worker",
        "--config-patch",
        "@bad-patch.yaml",
        "-o",
        "-",
    ]));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).starts_with("error: error parsing config JSON patch: "),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("machine.network.nameservers"),
        "{}",
        stderr(&refused)
    );

    std::fs::write(
        dir.path().join("bad.yaml"),
        "version: v1alpha1\nmachine:\n  type: worker\n",
    )
    .unwrap();
    let invalid =
        run(talos_manager(dir.path()).args(["validate", "-m", "metal", "-c", "bad.yaml"]));
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        stderr(&invalid).starts_with("error: "),
        "{}",
        stderr(&invalid)
    );
    assert!(
        stderr(&invalid).contains("errors occurred:\n\t* "),
        "{}",
        stderr(&invalid)
    );

    // Talos's warnings: printed apart, the config is valid; errors with --strict. A v1alpha1
    // document's deprecated field (`machine.install` is a 1.13 worker's; 1.14 installs from
    // an UnattendedInstallConfig document).
    let older = run(talos_manager(dir.path()).args([
        "gen",
        "config",
        "demo",
        "https://demo.example.com:6443",
        "--with-secrets",
        "secrets.yaml",
        "--install-disk",
        "/dev/nvme0n1",
        "--talos-version",
        "v1.13",
        "--output-types",
        "worker",
        "-o",
        "-",
    ]));
    assert!(older.status.success(), "{}", stderr(&older));
    let worker = String::from_utf8(older.stdout).unwrap();
    assert!(worker.contains("    install:\n"), "{worker}");
    std::fs::write(
        dir.path().join("warned.yaml"),
        worker.replace(
            "    install:\n",
            "    install:\n        extensions:\n            - image: ghcr.io/siderolabs/gvisor:1\n",
        ),
    )
    .unwrap();
    let warned =
        run(talos_manager(dir.path()).args(["validate", "-m", "metal", "-c", "warned.yaml"]));
    assert!(warned.status.success(), "{}", stderr(&warned));
    assert_eq!(
        stderr(&warned),
        "warning: machine.install.extensions: .machine.install.extensions is deprecated, please \
         see https://docs.siderolabs.com/talos/latest/platform-specific-installations/boot-assets\n\
         warned.yaml is valid for metal mode\n"
    );
    let strict = run(talos_manager(dir.path()).args([
        "validate",
        "-m",
        "metal",
        "--strict",
        "-c",
        "warned.yaml",
    ]));
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stderr(&strict).contains("\t* warning: .machine.install.extensions is deprecated"),
        "{}",
        stderr(&strict)
    );

    let docs = run(talos_manager(dir.path()).args([
        "gen",
        "config",
        "demo",
        "https://demo.example.com:6443",
        "--with-docs=true",
    ]));
    assert_eq!(docs.status.code(), Some(2));
    assert!(
        stderr(&docs).contains("only false is supported"),
        "{}",
        stderr(&docs)
    );
}

/// `machineconfig patch` prints (or writes, 0600) exactly what Talos's own machinery (the
/// differential oracle, `talosctl machineconfig patch`) answers, for patches given as `@file`,
/// a bare file name and inline text, across documents; and fails clearly on missing files and
/// bad patches.
#[test]
fn machineconfig_patch_works_like_talosctl() {
    use talos_manager_core::talos::TalosVersion;
    use talos_manager_e2e::talos_oracle;

    let dir = tempfile::tempdir().unwrap();
    let config = include_str!(
        "../../../talos-manager-core/tests/data/talos/stability/v1.13/base-worker.yaml"
    );
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let p = "machine:\n  nodeLabels:\n    tier: db\n---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: data\nprovisioning:\n  diskSelector:\n    match: disk.transport == \"nvme\"\n  maxSize: 50GB\n";
    let q = "apiVersion: v1alpha1\nkind: HostnameConfig\n$patch: delete\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: db-1\n";
    let inline = "machine:\n  nodeLabels:\n    tier:\n      $patch: delete\n    inline: \"yes\"\n";
    std::fs::write(dir.path().join("p.yaml"), p).unwrap();
    std::fs::write(dir.path().join("q.yaml"), q).unwrap();
    let talos = talos_oracle::machineconfig_patch(
        TalosVersion::V1_13,
        config,
        &[p.to_owned(), q.to_owned(), inline.to_owned()],
    )
    .expect("Talos patches it");

    let patch = |extra: &[&str]| {
        let mut args = vec![
            "machineconfig",
            "patch",
            "config.yaml",
            "--patch",
            "@p.yaml",
            "-p",
            "q.yaml",
            "--patch",
            inline,
        ];
        args.extend_from_slice(extra);
        run(talos_manager(dir.path()).args(args))
    };
    for extra in [&[][..], &["-o", "-"]] {
        let printed = patch(extra);
        assert!(printed.status.success(), "{}", stderr(&printed));
        assert_eq!(
            String::from_utf8(printed.stdout).unwrap(),
            talos,
            "{extra:?}"
        );
    }
    let written = patch(&["-o", "patched.yaml"]);
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(written.stdout.is_empty());
    let path = dir.path().join("patched.yaml");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), talos);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let fails = |args: &[&str]| {
        let output = run(talos_manager(dir.path()).args(args));
        assert_eq!(
            output.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(output.stdout.is_empty());
        stderr(&output)
    };
    assert_eq!(
        fails(&["machineconfig", "patch", "missing.yaml", "-p", "@p.yaml"]),
        "error: failed to read missing.yaml: No such file or directory (os error 2)\n"
    );
    assert_eq!(
        fails(&["machineconfig", "patch", "config.yaml", "-p", "@nope.yaml"]),
        "error: failed to read nope.yaml: No such file or directory (os error 2)\n"
    );
    let typo = "machine:\n  tokn: typo\n";
    assert!(
        talos_oracle::machineconfig_patch(TalosVersion::V1_13, config, &[typo.into()]).is_err()
    );
    assert_eq!(
        fails(&["machineconfig", "patch", "config.yaml", "-p", typo]),
        "error: failed to patch config.yaml: patch 1 does not load: invalid strategic merge patch: \
         unknown keys found during decoding:\nmachine:\n    tokn: typo\n\n"
    );
    // A JSON patch on a multi-document config: Talos's own error.
    let json = r#"[{"op": "add", "path": "/machine/nodeLabels/a", "value": "b"}]"#;
    let refused =
        talos_oracle::machineconfig_patch(TalosVersion::V1_13, config, &[json.into()]).unwrap_err();
    assert_eq!(
        fails(&["machineconfig", "patch", "config.yaml", "-p", json]),
        format!("error: failed to patch config.yaml: patch 1 does not apply: {refused}\n")
    );

    let usage = run(talos_manager(dir.path()).args(["machineconfig", "patch"]));
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
}

#[tokio::test]
async fn bootstrap_plan_prints_the_dry_run_of_a_stored_server() {
    use talos_manager_core::Architecture;
    use talos_manager_core::ProviderKind;
    use talos_manager_core::store::{ProbeResult, SchematicFields, ServerInventory};
    let dir = tempfile::tempdir().unwrap();
    let migrated = run(talos_manager(dir.path()).arg("migrate"));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    // Record what sync and the rescue probe would have, through the library.
    let (key, _) =
        EncryptionKey::load_or_create_file(&dir.path().join("data/encryption.key")).unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("data/talos-manager.db").display()
    );
    let store = talos_manager_core::Store::connect(&url, &key)
        .await
        .unwrap();
    let account = store
        .create_provider_account(
            ProviderKind::HetznerRobot,
            "robot",
            &talos_manager_core::Secret::new("pw".into()),
        )
        .await
        .unwrap();
    let inventory = ServerInventory {
        provider: ProviderKind::HetznerRobot,
        provider_id: "2345678".into(),
        name: "worker-1".into(),
        ipv4: Some("127.0.113.7".into()),
        ipv6: None,
        product: "AX41-NVMe".into(),
        data_center: "FSN1-DC14".into(),
        status: "ready".into(),
        cancelled: false,
        architecture: Architecture::Amd64,
        vswitch_id: None,
    };
    let (server, _) = store.upsert_server(account.id, &inventory).await.unwrap();
    let lsblk = include_str!("../../../talos-manager-core/tests/data/installer/lsblk.json");
    let probe = ProbeResult {
        accessible: true,
        uuid: Some("4c4c4544-0042-3510-8051-b4c04f564433".into()),
        lsblk: Some(lsblk.into()),
    };
    store.record_probe(server.id, &probe).await.unwrap();
    let factory_id = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";
    let schematic = store
        .create_schematic(&SchematicFields {
            name: "default".into(),
            body: "customization: {}\n".into(),
            factory_id: Some(factory_id.into()),
        })
        .await
        .unwrap();
    store
        .update_settings("v1.10.4", Some(schematic.id))
        .await
        .unwrap();
    store.close().await;

    let without_host = run(talos_manager(dir.path()).args(["bootstrap-plan", "robot-2345678"]));
    assert_eq!(without_host.status.code(), Some(1));
    assert_eq!(
        stderr(&without_host).lines().last().unwrap(),
        "error: HOST is not set: the node needs https://HOST/config to fetch its config"
    );
    let planned = run(talos_manager(dir.path())
        .args(["bootstrap-plan", "worker-1"])
        .env("HOST", "tm.example.com"));
    assert!(planned.status.success(), "{}", stderr(&planned));
    let text = String::from_utf8(planned.stdout).unwrap();
    assert!(text.contains("/dev/nvme1n1"), "{text}");
    assert!(text.contains("wipefs"), "{text}");
    assert!(
        text.contains(&format!(
            "https://factory.talos.dev/image/{factory_id}/v1.10.4/metal-amd64.raw.zst"
        )),
        "{text}"
    );
    let raid = run(talos_manager(dir.path())
        .args(["bootstrap-plan", "robot-2345678", "--disk", "/dev/nvme0n1"])
        .env("HOST", "tm.example.com"));
    assert_eq!(raid.status.code(), Some(1));
    assert!(
        stderr(&raid).contains("is a member of RAID"),
        "{}",
        stderr(&raid)
    );
    let unknown = run(talos_manager(dir.path()).args(["bootstrap-plan", "robot-1"]));
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stderr(&unknown).contains("no server is named or has the id \"robot-1\""));
}

/// The loopback guard stops a service under test that tries to reach anything outside
/// 127.0.0.0/8: here the periodic sync, at start, dialling a Robot API at 192.0.2.1.
#[test]
fn the_service_under_test_refuses_to_reach_outside_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = talos_manager(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("HETZNER_WEBSERVICE_USER", "robot-user")
        .env("HETZNER_WEBSERVICE_PASSWORD", "robot-password")
        .env("HETZNER_ROBOT_API_URL", "http://192.0.2.1:9")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for_blocking(
            "the service that reached for 192.0.2.1 to be stopped",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || child.try_wait().unwrap().ok_or("still running"),
        )
    }))
    .unwrap_or_else(|panic| {
        let _ = child.kill();
        std::panic::resume_unwind(panic)
    });
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(!status.success(), "{log}");
    assert!(log.contains("==== talos-manager test guard ===="), "{log}");
    assert!(
        log.contains("Hetzner API tried to connect to http://192.0.2.1:9/"),
        "{log}"
    );
}

/// What `/config` answers each server of `fleet`, asked from its own address.
async fn served_configs(
    service: &mut Service,
    fleet: &talos_manager_core::testing::fleet::StoredFleet,
) -> Vec<(String, u16, String)> {
    let mut answers = Vec::new();
    for server in &fleet.servers {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::V4(server.address))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let response = client
            .get(service.url("/config"))
            .send()
            .await
            .unwrap_or_else(|error| {
                std::thread::sleep(Duration::from_secs(1));
                let status = service.terminate(Duration::from_secs(5));
                panic!("{error}: {status:?} {:#?}", service.log)
            });
        let status = response.status().as_u16();
        answers.push((server.name.clone(), status, response.text().await.unwrap()));
    }
    answers
}

#[tokio::test]
async fn backup_then_restore_into_a_fresh_database_serves_the_same_configs() {
    use std::os::unix::fs::PermissionsExt as _;
    use talos_manager_core::testing::fleet::{FleetBuilder, secrets_bundle};

    // A service on PostgreSQL with a fleet.
    let source = TestDatabase::new(Backend::Postgres).await;
    let fleet = FleetBuilder::new(
        &["control-plane-1", "worker-1", "worker-2"],
        "https://127.0.0.1:6443",
        &secrets_bundle().await,
    )
    .build(source.store())
    .await
    .unwrap();
    let key = source.key().to_base64();
    let source_dir = tempfile::tempdir().unwrap();
    let mut command = talos_manager(source_dir.path());
    command
        .env("DATABASE_URL", source.url())
        .env("TALOS_MANAGER_ENCRYPTION_KEY", key.expose())
        // No provider to sync under test.
        .env("SYNC_INTERVAL", "0");
    let mut service = Service::start(command);
    let before = served_configs(&mut service, &fleet).await;
    assert!(
        before.iter().all(|(_, status, _)| *status == 200),
        "{before:?}"
    );

    // `backup` while the service runs: progress per table, the file private and in place.
    std::fs::create_dir(source_dir.path().join("backups")).unwrap();
    let backup = run(talos_manager(source_dir.path())
        .args(["backup", "-o", "backups/talos-manager.backup"])
        .env("DATABASE_URL", source.url())
        .env("TALOS_MANAGER_ENCRYPTION_KEY", key.expose()));
    let log = stderr(&backup);
    assert!(backup.status.success(), "{log}");
    assert!(log.contains("backed up servers: 3 rows\n"), "{log}");
    assert!(log.contains("backed up machine_configs: 3 rows\n"), "{log}");
    assert!(
        log.contains("wrote backups/talos-manager.backup: ") && log.contains(" tables, "),
        "{log}"
    );
    assert!(!log.contains(key.expose()), "{log}");
    let file = source_dir.path().join("backups/talos-manager.backup");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let files: Vec<_> = std::fs::read_dir(source_dir.path().join("backups"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(files, ["talos-manager.backup"], "no temporary file is left");
    drop(service);

    // `restore` into a fresh SQLite database in another data directory, with the same key.
    let target_dir = tempfile::tempdir().unwrap();
    let restore = || {
        run(talos_manager(target_dir.path())
            .arg("restore")
            .arg(&file)
            .env("TALOS_MANAGER_ENCRYPTION_KEY", key.expose()))
    };
    let restored = restore();
    let log = stderr(&restored);
    assert!(restored.status.success(), "{log}");
    assert!(log.contains("restored servers: 3 rows\n"), "{log}");
    assert!(log.contains(" into data/talos-manager.db: "), "{log}");

    // The restored service serves every server the same config, byte for byte.
    let mut command = talos_manager(target_dir.path());
    command
        .env("TALOS_MANAGER_ENCRYPTION_KEY", key.expose())
        .env("SYNC_INTERVAL", "0");
    let mut service = Service::start(command);
    assert_eq!(served_configs(&mut service, &fleet).await, before);
    drop(service);

    // A second restore is refused: the database is not empty.
    let again = restore();
    assert_eq!(again.status.code(), Some(1));
    let log = stderr(&again);
    assert!(
        log.contains("error: refusing to restore into a database that is not empty (")
            && log.contains("servers has 3 rows"),
        "{log}"
    );

    // Another key is refused, and nothing is restored.
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = EncryptionKey::generate().to_base64();
    let refused = run(talos_manager(other_dir.path())
        .arg("restore")
        .arg(&file)
        .env("TALOS_MANAGER_ENCRYPTION_KEY", other_key.expose()));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains(
            "error: the backup does not decrypt: it was made with another encryption key"
        ),
        "{}",
        stderr(&refused)
    );
}
