//! The Image Factory client against the fake factory (tests/fake-hetzner, `FakeImageFactory`).

use talos_manager_core::Store;
use talos_manager_core::image_factory::{ImageFactory, ImageFactoryError, force_talos_config};
use talos_manager_fake_hetzner::FakeImageFactory;

#[tokio::test]
async fn create_schematic_returns_the_factory_id() {
    let fake = FakeImageFactory::start().await.unwrap();
    let factory = ImageFactory::new(fake.url()).unwrap();
    let body = force_talos_config(
        "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/amd-ucode]\n",
        "https://manager.example.com/config?uuid=${uuid}",
    )
    .unwrap();
    let id = factory.create_schematic(&body).await.unwrap();
    assert_eq!(Some(id.clone()), FakeImageFactory::schematic_id(&body));
    // Idempotent: the same content gives the same id.
    assert_eq!(factory.create_schematic(&body).await.unwrap(), id);
    assert!(fake.schematics().contains_key(&id));
    assert_eq!(fake.requests(), ["POST /schematics", "POST /schematics"]);
}

#[tokio::test]
async fn refused_schematic_is_a_status_error_with_the_message() {
    let fake = FakeImageFactory::start().await.unwrap();
    let factory = ImageFactory::new(fake.url()).unwrap();
    let error = factory.create_schematic("owner: me\n").await.unwrap_err();
    match error {
        ImageFactoryError::Status {
            status, message, ..
        } => {
            assert_eq!(status, 400);
            assert_eq!(
                message,
                "owner field is only supported in Enterprise edition"
            );
        }
        other => panic!("unexpected error: {other:?}"),
    }
}

#[tokio::test]
async fn versions_are_stable_newest_first() {
    let fake = FakeImageFactory::start().await.unwrap();
    let factory = ImageFactory::new(fake.url()).unwrap();
    let versions = factory.versions().await.unwrap();
    assert_eq!(versions[0].to_string(), "v1.10.5");
    assert!(versions.last().unwrap().is_prerelease());
    fake.set_versions(&["v1.9.0", "v1.10.0-rc.0", "v1.10.0"]);
    let versions: Vec<String> = factory
        .versions()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(versions, ["v1.10.0", "v1.9.0", "v1.10.0-rc.0"]);
}

#[tokio::test]
async fn unreachable_factory() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let factory = ImageFactory::new(&url).unwrap();
    let error = factory.versions().await.unwrap_err();
    assert!(
        matches!(error, ImageFactoryError::Unreachable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn unmodelled_calls_answer_501() {
    let fake = FakeImageFactory::start().await.unwrap();
    let factory = ImageFactory::new(&format!("{}/nothing-here", fake.url())).unwrap();
    let error = factory.versions().await.unwrap_err();
    assert!(
        matches!(error, ImageFactoryError::Status { status: 501, .. }),
        "{error:?}"
    );
}

store_test!(
    a_registered_schematic_has_the_config_url_and_the_factory_id,
    |store| {
        use talos_manager_core::image_factory::FactoryService;
        use talos_manager_core::schematics::{RegisterSchematicError, register_schematic};
        let fake = FakeImageFactory::start().await.unwrap();
        let client = || ImageFactory::new(fake.url()).unwrap();

        let without_host = FactoryService::new(client(), None);
        let error = register_schematic(store, &without_host, None, "amd".into(), "{}")
            .await
            .unwrap_err();
        assert!(matches!(error, RegisterSchematicError::NoHost), "{error:?}");
        assert!(store.list_schematics().await.unwrap().is_empty());
        assert!(fake.requests().is_empty());

        let factory = FactoryService::new(client(), Some("manager.example.com".into()));
        let body =
            "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/amd-ucode]\n";
        let created = register_schematic(store, &factory, None, "amd".into(), body)
            .await
            .unwrap();
        assert!(
            created
                .fields
                .body
                .contains("talos.config=https://manager.example.com/config?uuid=${uuid}"),
            "{}",
            created.fields.body
        );
        assert_eq!(
            created.fields.factory_id,
            FakeImageFactory::schematic_id(&created.fields.body)
        );
        assert_eq!(store.get_schematic(created.id).await.unwrap(), created);

        // A body the factory refuses replaces nothing.
        let error = register_schematic(
            store,
            &factory,
            Some(created.id),
            "amd".into(),
            "owner: me\n",
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                error,
                RegisterSchematicError::Factory(ImageFactoryError::Status { status: 400, .. })
            ),
            "{error:?}"
        );
        assert_eq!(store.get_schematic(created.id).await.unwrap(), created);
    }
);
