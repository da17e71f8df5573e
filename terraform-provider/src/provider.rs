//! The `provider "talosmanager"` block: where the service is and how to authenticate, with
//! environment variables as fallbacks.

use std::time::Duration;

use talos_manager_api_types::{Issue, Secret, ValidationError};

use crate::client::{Client, ClientConfig, Credentials};
use crate::error::Error;
use crate::schema::{Attribute, Kind, ObjectExt as _, Schema};
use crate::value::{Object, Type, Value};

/// The provider block's schema.
pub fn schema() -> Schema {
    Schema {
        type_name: "talosmanager",
        kind: Kind::Provider,
        version: 0,
        description: "Manages talos-manager through its admin API: Hetzner provider \
                      accounts, Image Factory schematics, clusters, config templates, machine \
                      configs, servers and their bootstraps, label and taint rules, settings, \
                      and lookups of the servers it \
                      knows and the Talos versions it offers. \
                      Authenticate with an API token (`talos-manager token create NAME`) or the \
                      service's `BASIC_AUTH_PASSWORD`.",
        attributes: vec![
            Attribute::optional(
                "endpoint",
                Type::String,
                "The service's base URL, e.g. `https://talos-manager.example.com`. Default: \
                 the `TALOS_MANAGER_ENDPOINT` environment variable.",
            ),
            Attribute::optional(
                "token",
                Type::String,
                "An API token (`talos-manager token create NAME`). Default: the \
                 `TALOS_MANAGER_TOKEN` environment variable.",
            )
            .sensitive(),
            Attribute::optional(
                "password",
                Type::String,
                "Instead of a token: the service's `BASIC_AUTH_PASSWORD`. Default: the \
                 `TALOS_MANAGER_PASSWORD` environment variable.",
            )
            .sensitive(),
            Attribute::optional(
                "request_timeout",
                Type::Number,
                "Seconds to wait for each request to the service. Default: 30.",
            ),
        ],
        import: None,
        example: r#"
terraform {
  required_providers {
    talosmanager = {
      source = "talos-manager/talosmanager"
    }
  }
}

provider "talosmanager" {
  endpoint = "https://talos-manager.example.com"
  # token: from TALOS_MANAGER_TOKEN
}"#,
    }
}

/// Checks the known values of the provider block.
pub fn validate(config: &Object) -> Result<(), Error> {
    let mut issues = Vec::new();
    if let Some(endpoint) = config.string("endpoint")
        && !crate::client::is_http_url(endpoint)
    {
        issues.push(Issue::new(
            "endpoint",
            format!("{endpoint:?} is not an http:// or https:// URL"),
        ));
    }
    if let Some(seconds) = config.get_value("request_timeout").as_number()
        && !(seconds > 0.0 && seconds.is_finite())
    {
        issues.push(Issue::new(
            "request_timeout",
            "must be a positive number of seconds",
        ));
    }
    if config.string("token").is_some() && config.string("password").is_some() {
        issues.push(Issue::new("password", "set token or password, not both"));
    }
    ValidationError::check("provider configuration", issues).map_err(|error| Error::Invalid {
        what: error.what,
        issues: error.issues,
    })
}

/// Where a setting comes from: the provider block, else an environment variable.
fn setting(config: &Object, name: &'static str, variable: &str) -> Result<Option<String>, Error> {
    match config.get(name).unwrap_or(&Value::Null) {
        Value::Unknown => Err(Error::UnknownProviderArgument { argument: name }),
        Value::String(text) if !text.is_empty() => Ok(Some(text.clone())),
        _ => Ok(std::env::var(variable).ok().filter(|text| !text.is_empty())),
    }
}

/// The admin API client the provider block describes. Makes no request (Terraform starts the
/// provider several times per command, so configuring must be cheap).
pub fn configure(config: &Object) -> Result<Client, Error> {
    let endpoint =
        setting(config, "endpoint", "TALOS_MANAGER_ENDPOINT")?.ok_or(Error::MissingEndpoint)?;
    let token = setting(config, "token", "TALOS_MANAGER_TOKEN")?;
    let password = setting(config, "password", "TALOS_MANAGER_PASSWORD")?;
    let credentials = match (token, password) {
        (Some(token), _) => Credentials::Token(Secret::new(token)),
        (None, Some(password)) => Credentials::Password(Secret::new(password)),
        (None, None) => return Err(Error::MissingCredentials),
    };
    let timeout = match config.get("request_timeout") {
        Some(Value::Number(seconds)) if *seconds > 0.0 => Duration::from_secs_f64(*seconds),
        Some(Value::Unknown) => {
            return Err(Error::UnknownProviderArgument {
                argument: "request_timeout",
            });
        }
        _ => Duration::from_secs(30),
    };
    Client::new(ClientConfig {
        endpoint,
        credentials,
        timeout,
    })
}
