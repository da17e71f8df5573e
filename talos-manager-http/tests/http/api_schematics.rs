//! Image Factory schematics and Talos versions, against the fake factory.

use reqwest::Method;
use serde_json::{Value, json};
use talos_manager_fake_hetzner::FakeImageFactory;

use super::server::{TEST_HOST, TestServer, api_test};
use talos_manager_core::talos::TalosVersion;

fn kernel_args(body: &str) -> Vec<String> {
    let value: Value = serde_norway::from_str(body).unwrap();
    value["customization"]["extraKernelArgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap().to_owned())
        .collect()
}

const CONFIG_ARG: &str = "talos.config=https://tm.example.com/config?uuid=${uuid}";

api_test!(schematics_crud_forces_the_config_argument, |server| {
    assert_eq!(TEST_HOST, "tm.example.com");
    let created = server
        .expect(
            Method::POST,
            "/api/v1/schematics",
            Some(json!({"name": "amd", "body": "customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/amd-ucode\n"})),
            201,
        )
        .await;
    let body = created["body"].as_str().unwrap();
    assert_eq!(kernel_args(body), [CONFIG_ARG]);
    let factory_id = created["factory_id"].as_str().unwrap();
    assert_eq!(
        Some(factory_id.to_owned()),
        FakeImageFactory::schematic_id(body)
    );
    assert!(server.factory().schematics().contains_key(factory_id));

    // An existing talos.config= is replaced, other arguments kept in order.
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/schematics/{id}");
    let updated = server
        .expect(
            Method::PUT,
            &path,
            Some(json!({"name": "amd", "body": "customization:\n  extraKernelArgs: [noapic, talos.config=https://old.example.com/config, nolapic]\n"})),
            200,
        )
        .await;
    assert_eq!(
        kernel_args(updated["body"].as_str().unwrap()),
        ["noapic", CONFIG_ARG, "nolapic"]
    );
    assert_ne!(updated["factory_id"], created["factory_id"]);
    let list = server
        .expect(Method::GET, "/api/v1/schematics", None, 200)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        server.expect(Method::GET, &path, None, 200).await["body"],
        updated["body"]
    );

    server.expect(Method::DELETE, &path, None, 204).await;
    server.expect(Method::GET, &path, None, 404).await;
});

api_test!(
    schematic_with_a_bad_body_is_refused_with_its_path,
    |server| {
        let answer = server
        .expect(
            Method::POST,
            "/api/v1/schematics",
            Some(json!({"name": "bad", "body": "customization:\n  extraKernelArgs: not-a-list\n"})),
            422,
        )
        .await;
        assert_eq!(answer["code"], "invalid");
        assert_eq!(answer["issues"][0]["path"], "customization.extraKernelArgs");
        // Refused by the factory (unknown key): 422 with its message, nothing stored.
        let answer = server
            .expect(
                Method::POST,
                "/api/v1/schematics",
                Some(json!({"name": "bad", "body": "owner: me\n"})),
                422,
            )
            .await;
        assert!(
            answer["issues"][0]["message"]
                .as_str()
                .unwrap()
                .contains("Enterprise"),
            "{answer}"
        );
        assert!(server.store().list_schematics().await.unwrap().is_empty());
        assert!(server.factory().schematics().is_empty());
    }
);

api_test!(schematic_needs_host_and_a_reachable_factory, |server| {
    let backend = server.store().backend();
    drop(server);
    // No HOST: 422 naming it.
    let no_host = TestServer::start_with_factory(backend, None, None).await;
    let answer = no_host
        .expect(
            Method::POST,
            "/api/v1/schematics",
            Some(json!({"name": "x", "body": ""})),
            422,
        )
        .await;
    assert!(
        answer["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HOST"),
        "{answer}"
    );
    drop(no_host);

    // The factory down: 502, nothing stored.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let down = TestServer::start_with_factory(backend, Some(&dead), Some(TEST_HOST)).await;
    let answer = down
        .expect(
            Method::POST,
            "/api/v1/schematics",
            Some(json!({"name": "x", "body": ""})),
            502,
        )
        .await;
    assert_eq!(answer["code"], "bad_gateway");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{answer}"
    );
    assert!(down.store().list_schematics().await.unwrap().is_empty());
    down.expect(Method::GET, "/api/v1/talos-versions", None, 502)
        .await;
    // The versions talos-manager generates configs for need no factory: the engine's
    // contracts, newest first, the first one the default of new configs.
    let supported = down
        .expect(Method::GET, "/api/v1/talos-versions/supported", None, 200)
        .await;
    let releases: Vec<&str> = supported["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["release"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = TalosVersion::ALL
        .iter()
        .rev()
        .map(|v| v.release())
        .collect();
    assert_eq!(releases, expected);
    assert_eq!(
        supported["versions"][0],
        json!({
            "release": TalosVersion::LATEST.release(),
            "kubernetes_version": TalosVersion::LATEST.default_kubernetes_version(),
            "install_image": talos_manager_core::store::default_install_image(),
        })
    );
    assert_eq!(
        supported["default_install_image"],
        talos_manager_core::store::default_install_image()
    );
    assert_eq!(
        supported["default_kubernetes_version"],
        talos_manager_core::store::DEFAULT_KUBERNETES_VERSION
    );
});

api_test!(talos_versions_are_ordered_and_cached, |server| {
    let answer = server
        .expect(Method::GET, "/api/v1/talos-versions", None, 200)
        .await;
    let versions: Vec<&str> = answer["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(&versions[..3], ["v1.10.5", "v1.10.4", "v1.10.3"]);
    assert_eq!(versions.last(), Some(&"v1.11.0-alpha.0"));
    server.factory().set_versions(&["v9.0.0"]);
    let again = server
        .expect(Method::GET, "/api/v1/talos-versions", None, 200)
        .await;
    assert_eq!(again, answer);
    let calls = server.factory().requests();
    assert_eq!(calls, ["GET /versions"]);
});
