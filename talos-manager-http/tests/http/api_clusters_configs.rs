//! Clusters and configs through the admin API: secrets made or imported and never shown
//! unasked, client configs, and configs checked by generating them.

use reqwest::Method;
use serde_json::{Value, json};

use super::server::api_test;

const BUNDLE: &str =
    include_str!("../../../talos-manager-core/tests/data/talos/secrets/secrets-bundle.yaml");

api_test!(
    clusters_make_or_import_secrets_and_hand_out_client_configs,
    |server| {
        let made = server
            .expect(
                Method::POST,
                "/api/v1/clusters",
                Some(json!({"name": "made", "endpoint": "https://made.example.com:6443"})),
                201,
            )
            .await;
        let id = made["id"].as_str().unwrap();
        let with_secrets = server
            .expect(
                Method::GET,
                &format!("/api/v1/clusters/{id}?include_secrets=true"),
                None,
                200,
            )
            .await;
        let secrets = with_secrets["secrets"].as_str().unwrap();
        assert!(secrets.contains("bootstraptoken:"), "{secrets}");
        let listed = server
            .expect(Method::GET, "/api/v1/clusters", None, 200)
            .await;
        assert!(
            !listed.to_string().contains("bootstraptoken"),
            "a listing shows secrets"
        );

        let imported = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "imported", "endpoint": "https://imported.example.com:6443", "secrets": BUNDLE})),
            201,
        )
        .await;
        let imported_id = imported["id"].as_str().unwrap();
        let kept = server
            .expect(
                Method::GET,
                &format!("/api/v1/clusters/{imported_id}?include_secrets=true"),
                None,
                200,
            )
            .await;
        let original: Value = serde_norway::from_str(BUNDLE).unwrap();
        let stored: Value = serde_norway::from_str(kept["secrets"].as_str().unwrap()).unwrap();
        assert_eq!(
            stored["cluster"], original["cluster"],
            "the imported identity is kept"
        );

        for (path, needle) in [
            ("talosconfig", "os:admin"),
            ("kubeconfig", "admin@imported"),
        ] {
            let response = server
                .client
                .get(server.url(&format!("/api/v1/clusters/{imported_id}/{path}")))
                .bearer_auth(&server.token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["content-type"], "application/yaml");
            let text = response.text().await.unwrap();
            let document: Value = serde_norway::from_str(&text).unwrap();
            assert!(document.is_object(), "{path} is YAML");
            if path == "kubeconfig" {
                assert!(text.contains(needle), "{text}");
                assert_eq!(
                    document["clusters"][0]["cluster"]["server"],
                    "https://imported.example.com:6443"
                );
            } else {
                assert_eq!(document["context"], "imported");
                assert_eq!(
                    document["contexts"]["imported"]["endpoints"][0],
                    "imported.example.com"
                );
            }
        }
    }
);

api_test!(bad_clusters_are_refused_with_every_issue, |server| {
    let invalid = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "Prod", "endpoint": "https://prod.example.com", "secrets": "cluster: {}\n"})),
            422,
        )
        .await;
    let paths: Vec<&str> = invalid["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["name", "endpoint"]);
    let bad_bundle = server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "prod", "endpoint": "https://prod.example.com:6443", "secrets": "cluster: {}\n"})),
            422,
        )
        .await;
    assert!(
        bad_bundle["issues"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["path"].as_str().unwrap().starts_with("secrets")),
        "{bad_bundle}"
    );
    server
        .expect(
            Method::POST,
            "/api/v1/clusters",
            Some(json!({"name": "prod", "endpoint": "https://prod.example.com:6443", "vswitch_id": "4000"})),
            404,
        )
        .await;
});

api_test!(configs_are_checked_by_generating_them, |server| {
    let created = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "default"})),
            201,
        )
        .await;
    // The defaults of a new config: the newest Talos contract's installer and Kubernetes.
    // The defaults of a new config, from one place (talos_manager_core::store).
    assert_eq!(
        created["install_image"],
        talos_manager_core::store::default_install_image()
    );
    assert!(
        created["install_image"]
            .as_str()
            .unwrap()
            .ends_with(&format!(
                ":{}",
                talos_manager_core::store::DEFAULT_TALOS_VERSION
            )),
        "{created}"
    );
    assert_eq!(
        created["kubernetes_version"],
        talos_manager_core::store::DEFAULT_KUBERNETES_VERSION
    );
    assert_eq!(created["kubespan"], true);
    assert_eq!(created["warnings"], json!([]), "{created}");

    // A Talos minor newer than every contract is saved, with the message that says which
    // contract its configs are generated for.
    let next = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "next", "install_image": "ghcr.io/siderolabs/installer:v1.15.0"})),
            201,
        )
        .await;
    assert_eq!(
        next["warnings"],
        json!([{
            "path": "install_image",
            "message": format!(
                "Talos v1.15 is newer than the newest config format talos-manager knows ({0}); \
                 its configs are generated for {0}",
                talos_manager_core::talos::TalosVersion::LATEST
            ),
        }]),
        "{next}"
    );
    server
        .expect(
            Method::DELETE,
            &format!("/api/v1/configs/{}", next["id"].as_str().unwrap()),
            None,
            204,
        )
        .await;

    let invalid_patch = include_str!(
        "../../../talos-manager-core/tests/data/talos/original-app/invalid-nameservers-patch.yaml"
    );
    let refused = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "broken", "patch": invalid_patch})),
            422,
        )
        .await;
    assert_eq!(refused["issues"][0]["path"], "patch");
    let message = refused["issues"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("error parsing config JSON patch"),
        "{message}"
    );

    let semantic = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "semantic", "kubernetes_version": "latest", "patch_worker": "machine:\n  install:\n    disk: /dev/sdb\n"})),
            422,
        )
        .await;
    assert_eq!(semantic["issues"][0]["path"], "kubernetes_version");

    let id = created["id"].as_str().unwrap();
    let updated = server
        .expect(
            Method::PUT,
            &format!("/api/v1/configs/{id}"),
            Some(json!({"name": "default", "kubespan": false, "patch": "machine:\n  sysctls:\n    vm.max_map_count: \"262144\"\n"})),
            200,
        )
        .await;
    assert_eq!(updated["kubespan"], false);
    assert_eq!(updated["warnings"], json!([]), "{updated}");

    // Talos's warnings (a deprecated field) do not refuse a config: they come back apart from
    // errors, with their path; an error next to them answers 422 with the errors only.
    let extensions =
        "machine:\n  install:\n    extensions:\n      - image: ghcr.io/siderolabs/gvisor:1\n";
    let warned = server
        .expect(
            Method::PUT,
            &format!("/api/v1/configs/{id}"),
            Some(json!({"name": "default", "install_image": "ghcr.io/siderolabs/installer:v1.13.9", "patch": extensions})),
            200,
        )
        .await;
    assert_eq!(
        warned["warnings"],
        json!([{
            "path": "machine.install.extensions",
            "message": ".machine.install.extensions is deprecated, please see https://docs.siderolabs.com/talos/latest/platform-specific-installations/boot-assets",
        }])
    );
    let fetched = server
        .expect(Method::GET, &format!("/api/v1/configs/{id}"), None, 200)
        .await;
    assert_eq!(fetched["patch"], extensions);
    let both = server
        .expect(
            Method::POST,
            "/api/v1/configs",
            Some(json!({"name": "both", "install_image": "ghcr.io/siderolabs/installer:v1.13.9", "patch": format!("{extensions}  nodeLabels:\n    bad label: x\n")})),
            422,
        )
        .await;
    let issues = both["issues"].as_array().unwrap();
    assert!(!issues.is_empty());
    assert!(
        issues
            .iter()
            .all(|issue| issue["path"] == "machine.nodeLabels.bad label"),
        "{both}"
    );
    assert!(
        both.get("warnings").is_none(),
        "a refused config has issues only: {both}"
    );

    server
        .expect(Method::DELETE, &format!("/api/v1/configs/{id}"), None, 204)
        .await;
});
