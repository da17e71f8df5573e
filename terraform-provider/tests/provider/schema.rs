//! Rules every schema declaration follows, so a new resource cannot break them unnoticed.

use terraform_provider_talosmanager::schema::{Kind, Presence};
use terraform_provider_talosmanager::server::ProviderService;

/// Names Terraform reserves for meta-arguments in resource and data blocks.
const RESERVED: &[&str] = &[
    "count",
    "depends_on",
    "for_each",
    "lifecycle",
    "provider",
    "provisioner",
    "connection",
];

#[test]
fn every_schema_follows_the_rules() {
    for schema in ProviderService::new().schemas() {
        let name = schema.type_name;
        assert!(!schema.description.is_empty(), "{name} has no description");
        assert!(!schema.example.trim().is_empty(), "{name} has no example");
        if schema.kind != Kind::Provider {
            assert!(
                name.starts_with("talosmanager_"),
                "{name} must start with the provider's name"
            );
        }
        // Ephemeral resources are never stored, so they have no id.
        if matches!(schema.kind, Kind::Resource | Kind::DataSource) {
            let id = schema
                .attribute("id")
                .unwrap_or_else(|| panic!("{name} has no id"));
            assert_ne!(id.presence, Presence::Required, "{name}.id");
        }
        if schema.kind == Kind::Resource {
            assert!(
                schema.import.is_some(),
                "{name} does not say how to import it"
            );
        }
        for attribute in &schema.attributes {
            let what = format!("{name}.{}", attribute.name);
            assert!(
                !attribute.description.is_empty(),
                "{what} has no description"
            );
            assert!(
                schema.kind == Kind::Provider || !RESERVED.contains(&attribute.name),
                "{what} is a name Terraform reserves"
            );
            assert!(
                !(attribute.force_new && attribute.presence == Presence::Computed),
                "{what}: only arguments can force a new resource"
            );
            assert!(
                attribute
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{what}: attribute names are snake_case"
            );
        }
    }
}
