//! `data.talosmanager_talos_versions`: the Talos versions the Image Factory builds
//! (`/talos-versions`), optionally only stable ones or only from a minimum version on.

use async_trait::async_trait;
use talos_manager_api_types::Issue;
use talos_manager_api_types::TalosRelease;
use talos_manager_api_types::TalosVersionsView;

use super::DataSource;
use crate::client::Client;
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The data source.
pub(super) struct TalosVersions;

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_talos_versions",
        kind: Kind::DataSource,
        version: 0,
        description: "The Talos versions the Image Factory builds images for, as talos-manager \
                      offers them: stable versions newest first, then pre-releases newest \
                      first. The service caches the list for an hour.",
        attributes: vec![
            Attribute::computed("id", Type::String, "Always `talos_versions`."),
            Attribute::optional(
                "stable_only",
                Type::Bool,
                "Leave out pre-releases (`-alpha.N`, `-beta.N`, `-rc.N`). Default: false.",
            ),
            Attribute::optional(
                "min_version",
                Type::String,
                "Only this version and newer ones, `vX.Y.Z` (e.g. `v1.10.0`).",
            ),
            Attribute::computed(
                "versions",
                Type::List(Box::new(Type::String)),
                "The matching versions, stable newest first, then pre-releases newest first.",
            ),
            Attribute::computed(
                "latest",
                Type::String,
                "The newest matching stable version; null when there is none.",
            ),
        ],
        import: None,
        example: r#"
data "talosmanager_talos_versions" "stable" {
  stable_only = true
  min_version = "v1.10.0"
}

resource "talosmanager_settings" "this" {
  talos_version = data.talosmanager_talos_versions.stable.latest
}"#,
    }
}

/// `min_version` parsed, when set.
fn min_version(config: &Object) -> Result<Option<TalosRelease>, Error> {
    config
        .string("min_version")
        .map(|text| {
            text.parse::<TalosRelease>()
                .map_err(|error| Error::Invalid {
                    what: "Talos versions filter",
                    issues: vec![Issue::new("min_version", error.to_string())],
                })
        })
        .transpose()
}

#[async_trait]
impl DataSource for TalosVersions {
    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        min_version(config).map(|_| ())
    }

    async fn read(&self, client: &Client, config: &Object) -> Result<Object, Error> {
        let min_version = min_version(config)?;
        let stable_only = config.bool("stable_only").unwrap_or(false);
        let view: TalosVersionsView = client.get_existing("/talos-versions").await?;
        // The service's order is kept; versions it lists that are not `vX.Y.Z` are left out of
        // a filtered list (they cannot be compared).
        let versions: Vec<String> = view
            .versions
            .into_iter()
            .filter(|text| {
                if !stable_only && min_version.is_none() {
                    return true;
                }
                let Ok(version) = text.parse::<TalosRelease>() else {
                    return false;
                };
                !(stable_only && version.is_prerelease())
                    && min_version.as_ref().is_none_or(|min| version >= *min)
            })
            .collect();
        let latest = versions
            .iter()
            .find(|text| {
                text.parse::<TalosRelease>()
                    .is_ok_and(|version| !version.is_prerelease())
            })
            .cloned();
        let mut state = config.clone();
        state.insert("id".into(), Value::String("talos_versions".into()));
        state.insert(
            "versions".into(),
            Value::List(versions.into_iter().map(Value::String).collect()),
        );
        state.insert("latest".into(), Value::opt_string(latest));
        Ok(state)
    }
}
