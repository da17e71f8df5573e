//! Markdown documentation generated from the schema declarations, checked in under
//! `docs/terraform/` (a test fails when the checked-in files are stale).

use std::fmt::Write as _;

use super::{Attribute, Kind, Presence, Schema};

/// The first line of every generated page.
const GENERATED: &str = "<!-- Generated from terraform-provider/src by `UPDATE_EXPECT=1 cargo test -p \
                         terraform-provider-talosmanager docs`; do not edit. -->\n";

/// The path of a schema's page, relative to `docs/terraform/`.
pub fn file_name(schema: &Schema) -> String {
    match schema.kind {
        Kind::Provider => "provider.md".into(),
        Kind::Resource => format!("resources/{}.md", schema.type_name),
        Kind::DataSource => format!("data-sources/{}.md", schema.type_name),
        Kind::EphemeralResource => format!("ephemeral-resources/{}.md", schema.type_name),
    }
}

/// The Markdown page of a schema.
pub fn markdown(schema: &Schema) -> String {
    let mut page = String::new();
    let title = match schema.kind {
        Kind::Provider => "Provider `talosmanager`".to_owned(),
        Kind::Resource => format!("Resource `{}`", schema.type_name),
        Kind::DataSource => format!("Data source `{}`", schema.type_name),
        Kind::EphemeralResource => format!("Ephemeral resource `{}`", schema.type_name),
    };
    let _ = writeln!(page, "{GENERATED}");
    let _ = writeln!(page, "# {title}\n");
    let _ = writeln!(page, "{}\n", schema.description);
    let _ = writeln!(
        page,
        "## Example\n\n```hcl\n{}\n```\n",
        schema.example.trim()
    );
    let arguments: Vec<&Attribute> = schema
        .attributes
        .iter()
        .filter(|attribute| attribute.is_settable())
        .collect();
    if !arguments.is_empty() {
        let _ = writeln!(page, "## Arguments\n");
        for attribute in arguments {
            write_attribute(&mut page, attribute);
        }
        page.push('\n');
    }
    let computed: Vec<&Attribute> = schema
        .attributes
        .iter()
        .filter(|attribute| attribute.presence == Presence::Computed)
        .collect();
    if !computed.is_empty() {
        let _ = writeln!(page, "## Attributes\n");
        for attribute in computed {
            write_attribute(&mut page, attribute);
        }
        page.push('\n');
    }
    if let Some(import) = schema.import {
        let _ = writeln!(page, "## Import\n\n{import}\n");
    }
    while page.ends_with("\n\n") {
        page.pop();
    }
    page
}

fn write_attribute(page: &mut String, attribute: &Attribute) {
    let mut notes = vec![attribute.ty.to_hcl()];
    notes.push(
        match attribute.presence {
            Presence::Required => "required",
            Presence::Optional => "optional",
            Presence::OptionalComputed => "optional, else set by the service",
            Presence::Computed => "read-only",
        }
        .to_owned(),
    );
    if attribute.sensitive {
        notes.push("sensitive".into());
    }
    if attribute.force_new {
        notes.push("changing it replaces the resource".into());
    }
    let _ = writeln!(
        page,
        "- `{}` ({}): {}",
        attribute.name,
        notes.join(", "),
        attribute.description
    );
    for field in &attribute.fields {
        let _ = writeln!(
            page,
            "  - `{}` ({}): {}",
            field.name,
            field.ty.to_hcl(),
            field.description
        );
    }
}

/// The index page, `docs/terraform/README.md`: a line per schema, linking its page.
pub fn index(schemas: &[Schema]) -> String {
    let mut page = String::new();
    let _ = writeln!(page, "{GENERATED}");
    let _ = writeln!(page, "# Terraform provider `talosmanager`\n");
    let _ = writeln!(
        page,
        "`terraform-provider-talosmanager` manages talos-manager through its admin API.\n\
         Working configurations: [examples/terraform/basic](../../examples/terraform/basic/main.tf), \
         and a small Robot + Cloud cluster from scratch in \
         [examples/terraform/cluster](../../examples/terraform/cluster/main.tf).\n"
    );
    for (kind, heading) in [
        (Kind::Provider, "Provider"),
        (Kind::Resource, "Resources"),
        (Kind::DataSource, "Data sources"),
        (Kind::EphemeralResource, "Ephemeral resources"),
    ] {
        let _ = writeln!(page, "## {heading}\n");
        for schema in schemas.iter().filter(|schema| schema.kind == kind) {
            let summary = schema.description.split(". ").next().unwrap_or_default();
            let summary = summary.trim_end_matches('.');
            let _ = writeln!(
                page,
                "- [`{}`]({}): {summary}.",
                schema.type_name,
                file_name(schema)
            );
        }
        page.push('\n');
    }
    page.pop();
    page
}
