//! `talosmanager_provider_account`: Hetzner Robot or Cloud credentials (`/provider-accounts`).
//! The service verifies them on every create and update, and never returns the secret, so the
//! state keeps the secret Terraform sent.

use async_trait::async_trait;
use talos_manager_api_types::Issue;
use talos_manager_api_types::{CreateProviderAccount, ProviderAccountView, UpdateProviderAccount};

use super::Resource;
use crate::client::{Client, segment};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The resource.
pub(super) struct ProviderAccount;

/// The values `provider_kind` takes.
const KINDS: [&str; 2] = ["hetzner_robot", "hetzner_cloud"];

fn schema() -> Schema {
    Schema {
        type_name: "talosmanager_provider_account",
        kind: Kind::Resource,
        version: 0,
        description: "Credentials of a Hetzner Robot account (webservice user and password) or \
                      a Hetzner Cloud project (API token). talos-manager verifies them by \
                      listing the account's servers on every create and update; its servers \
                      appear in talos-manager at the next sync (every `SYNC_INTERVAL`, or \
                      `POST /api/v1/servers/sync`). The service never returns the secret: the state keeps \
                      the one Terraform sent, so a secret changed outside Terraform (in the \
                      dashboard or the API) is not detected as drift. Deleting an account \
                      deletes its servers and vSwitches from talos-manager (nothing at \
                      Hetzner).",
        attributes: vec![
            Attribute::computed("id", Type::String, "The provider account's id."),
            Attribute::required(
                "provider_kind",
                Type::String,
                "`hetzner_robot` or `hetzner_cloud` (`provider` in the API; the name is \
                 reserved in Terraform).",
            )
            .force_new(),
            Attribute::required(
                "name",
                Type::String,
                "Robot: the webservice user. Cloud: a label for the project.",
            ),
            Attribute::required(
                "secret",
                Type::String,
                "Robot: the webservice password. Cloud: the API token (read and write). Sent to \
                 the service, never read back from it; stored in the state: keep the state \
                 secret.",
            )
            .sensitive(),
        ],
        import: Some(
            "By id: `terraform import talosmanager_provider_account.NAME 1`. The service does \
             not return the secret, so an import cannot recover it: the next plan shows an \
             in-place update of `secret`, and applying it sends the configured secret (verified \
             again) and records it in the state.",
        ),
        example: r##"
variable "robot_password" {
  type      = string
  sensitive = true
}

resource "talosmanager_provider_account" "robot" {
  provider_kind = "hetzner_robot"
  name          = "#ws+abcdefgh"
  secret        = var.robot_password
}"##,
    }
}

/// The account as the service has it; the secret is the one Terraform knows (`known`).
fn object(view: ProviderAccountView, known: &Object) -> Object {
    schema().object([
        ("id", Value::String(view.id)),
        ("provider_kind", Value::String(view.provider)),
        ("name", Value::String(view.name)),
        ("secret", known.get_value("secret").clone()),
    ])
}

#[async_trait]
impl Resource for ProviderAccount {
    fn schema(&self) -> Schema {
        schema()
    }

    fn validate(&self, config: &Object) -> Result<(), Error> {
        match config.string("provider_kind") {
            Some(kind) if !KINDS.contains(&kind) => Err(Error::Invalid {
                what: "provider account",
                issues: vec![Issue::new(
                    "provider_kind",
                    format!("{kind:?} is neither \"hetzner_robot\" nor \"hetzner_cloud\""),
                )],
            }),
            _ => Ok(()),
        }
    }

    async fn create(&self, client: &Client, planned: &Object) -> Result<Object, Error> {
        let body = CreateProviderAccount {
            provider: planned.owned_string("provider_kind").unwrap_or_default(),
            name: planned.owned_string("name").unwrap_or_default(),
            secret: planned.owned_string("secret").unwrap_or_default(),
        };
        let view: ProviderAccountView = client.post("/provider-accounts", &body).await?;
        Ok(object(view, planned))
    }

    async fn read(
        &self,
        client: &Client,
        id: &str,
        prior: &Object,
    ) -> Result<Option<Object>, Error> {
        let view: Option<ProviderAccountView> = client
            .get(&format!("/provider-accounts/{}", segment(id)))
            .await?;
        Ok(view.map(|view| object(view, prior)))
    }

    /// Sends the secret only when it differs from the state's (after an import the state has
    /// none), so a rename keeps the stored one; the service verifies the credentials either way.
    async fn update(
        &self,
        client: &Client,
        id: &str,
        planned: &Object,
        prior: &Object,
    ) -> Result<Object, Error> {
        let secret = planned
            .owned_string("secret")
            .filter(|secret| prior.string("secret") != Some(secret.as_str()));
        let body = UpdateProviderAccount {
            name: planned.owned_string("name").unwrap_or_default(),
            secret,
        };
        let view: ProviderAccountView = client
            .put(&format!("/provider-accounts/{}", segment(id)), &body)
            .await?;
        Ok(object(view, planned))
    }

    async fn delete(
        &self,
        client: &Client,
        id: &str,
        _prior: &Object,
    ) -> Result<Option<String>, Error> {
        client
            .delete(&format!("/provider-accounts/{}", segment(id)))
            .await?;
        Ok(None)
    }
}
