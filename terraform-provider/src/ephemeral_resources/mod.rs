//! Ephemeral resources (plugin protocol 6.7+: Terraform 1.10+, OpenTofu 1.11+): values a
//! configuration uses during one run that are never written to the state or the plan file.
//! One file per type, each implementing [`EphemeralResource`]; adding one: write
//! `ephemeral_resources/<name>.rs` and list it in [`all`].

mod client_config;

use async_trait::async_trait;

use crate::client::Client;
use crate::error::Error;
use crate::schema::Schema;
use crate::value::Object;

/// An ephemeral resource type: its schema and how to open one. Nothing is held between Open
/// and Close, so closing and renewing do nothing.
#[async_trait]
pub trait EphemeralResource: Send + Sync {
    /// The declaration of its attributes.
    fn schema(&self) -> Schema;

    /// Checks a configuration (values may be null or unknown).
    fn validate(&self, config: &Object) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// Opens it: the configuration echoed back with the computed attributes filled in.
    async fn open(&self, client: &Client, config: &Object) -> Result<Object, Error>;
}

/// Every ephemeral resource type of the provider.
pub fn all() -> Vec<Box<dyn EphemeralResource>> {
    vec![
        Box::new(client_config::ClientConfig::Talosconfig),
        Box::new(client_config::ClientConfig::Kubeconfig),
    ]
}
