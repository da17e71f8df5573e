//! The pages in `docs/terraform/` are generated from the schema declarations; this fails when
//! they are stale. Bless with `UPDATE_EXPECT=1 cargo test -p terraform-provider-talosmanager`.

use std::path::Path;

use terraform_provider_talosmanager::schema::docs;
use terraform_provider_talosmanager::server::ProviderService;

#[test]
fn docs_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/terraform");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut stale = Vec::new();
    let mut expected_files = Vec::new();
    let schemas = ProviderService::new().schemas();
    let pages = schemas
        .iter()
        .map(|schema| (docs::file_name(schema), docs::markdown(schema)))
        .chain([("README.md".to_owned(), docs::index(&schemas))]);
    for (file, page) in pages {
        let file = root.join(file);
        expected_files.push(file.clone());
        if std::fs::read_to_string(&file).ok().as_deref() == Some(page.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, page).unwrap();
        } else {
            stale.push(file.display().to_string());
        }
    }
    for folder in ["resources", "data-sources", "ephemeral-resources"] {
        for entry in std::fs::read_dir(root.join(folder))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !expected_files.contains(&entry.path()) {
                if update {
                    std::fs::remove_file(entry.path()).unwrap();
                } else {
                    stale.push(format!("{} (no such type)", entry.path().display()));
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "docs/terraform is out of date: {stale:#?}\nRegenerate with \
         `UPDATE_EXPECT=1 cargo test -p terraform-provider-talosmanager docs` and review the diff"
    );
}
