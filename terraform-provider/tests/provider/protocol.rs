//! The RPCs newer CLIs call beyond protocol 6.0 (GetMetadata 6.4+, GetFunctions 6.5+,
//! ephemeral resources 6.7+) and the schema's server capabilities, answered in-process: the
//! answers the newer CLIs read, whichever CLI this suite runs on.

use terraform_provider_talosmanager::server::ProviderService;
use terraform_provider_talosmanager::tfplugin6::provider_server::Provider as _;
use terraform_provider_talosmanager::tfplugin6::{self as tf, DynamicValue};
use tonic::Request;

#[tokio::test]
async fn get_metadata_lists_every_type_and_the_capabilities() {
    let metadata = ProviderService::new()
        .get_metadata(Request::new(tf::get_metadata::Request {}))
        .await
        .unwrap()
        .into_inner();
    assert!(metadata.diagnostics.is_empty());
    let capabilities = metadata.server_capabilities.unwrap();
    assert!(capabilities.get_provider_schema_optional);
    assert!(!capabilities.plan_destroy);
    assert!(!capabilities.move_resource_state);
    let resources: Vec<&str> = metadata
        .resources
        .iter()
        .map(|resource| resource.type_name.as_str())
        .collect();
    assert!(resources.contains(&"talosmanager_cluster"), "{resources:?}");
    assert!(resources.contains(&"talosmanager_server_bootstrap"));
    let data_sources: Vec<&str> = metadata
        .data_sources
        .iter()
        .map(|data_source| data_source.type_name.as_str())
        .collect();
    assert!(
        data_sources.contains(&"talosmanager_servers"),
        "{data_sources:?}"
    );
    let ephemeral: Vec<&str> = metadata
        .ephemeral_resources
        .iter()
        .map(|ephemeral| ephemeral.type_name.as_str())
        .collect();
    assert_eq!(
        ephemeral,
        ["talosmanager_kubeconfig", "talosmanager_talosconfig"]
    );
    assert!(metadata.functions.is_empty());
}

#[tokio::test]
async fn the_schema_carries_capabilities_and_the_ephemeral_resources() {
    let schema = ProviderService::new()
        .get_provider_schema(Request::new(tf::get_provider_schema::Request {}))
        .await
        .unwrap()
        .into_inner();
    assert!(
        schema
            .server_capabilities
            .unwrap()
            .get_provider_schema_optional
    );
    assert!(schema.functions.is_empty());
    let talosconfig = schema.ephemeral_resource_schemas["talosmanager_talosconfig"]
        .block
        .as_ref()
        .unwrap();
    let config = talosconfig
        .attributes
        .iter()
        .find(|attribute| attribute.name == "talosconfig")
        .unwrap();
    assert!(config.sensitive && config.computed);
    assert!(
        schema
            .ephemeral_resource_schemas
            .contains_key("talosmanager_kubeconfig")
    );
}

#[tokio::test]
async fn the_provider_defines_no_functions() {
    let functions = ProviderService::new()
        .get_functions(Request::new(tf::get_functions::Request {}))
        .await
        .unwrap()
        .into_inner();
    assert!(functions.functions.is_empty());
    assert!(functions.diagnostics.is_empty());
}

#[tokio::test]
async fn an_unknown_ephemeral_type_is_an_error_diagnostic() {
    let provider = ProviderService::new();
    let validated = provider
        .validate_ephemeral_resource_config(Request::new(
            tf::validate_ephemeral_resource_config::Request {
                type_name: "talosmanager_nothing".into(),
                config: Some(DynamicValue {
                    msgpack: Vec::new(),
                    json: b"{}".to_vec(),
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let [diagnostic] = validated.diagnostics.as_slice() else {
        panic!("{:?}", validated.diagnostics)
    };
    assert_eq!(diagnostic.severity, tf::diagnostic::Severity::Error as i32);
    assert!(
        diagnostic.summary.contains("talosmanager_nothing")
            || diagnostic.detail.contains("talosmanager_nothing"),
        "{diagnostic:?}"
    );
    let closed = provider
        .close_ephemeral_resource(Request::new(tf::close_ephemeral_resource::Request {
            type_name: "talosmanager_talosconfig".into(),
            private: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(closed.diagnostics.is_empty());
}
