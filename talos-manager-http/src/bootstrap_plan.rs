//! `talos-manager bootstrap-plan SERVER`: the dry run of a bootstrap, from what is stored.

use talos_manager_core::bootstrap::{
    BootstrapChoices, BootstrapEnvironment, BootstrapPlanError, bootstrap_request,
};
use talos_manager_core::ids::{ServerId, ServerRef};
use talos_manager_core::installer::{BootstrapRequest, Plan, plan};
use talos_manager_core::{Store, StoreError};

use crate::config::ServiceConfig;

/// Why no plan could be printed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapPlanCommandError {
    /// No server has that id or name.
    #[error("no server is named or has the id {0:?} (ids look like robot-1234567 or cloud-42)")]
    NoSuchServer(String),
    /// Several servers have that name.
    #[error("{0} servers are named {1:?}: give the id instead (robot-… or cloud-…)")]
    Ambiguous(usize, String),
    /// Reading the database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The plan cannot be made.
    #[error(transparent)]
    Plan(#[from] BootstrapPlanError),
}

impl ServiceConfig {
    /// Where images and configs come from, for bootstraps.
    pub fn bootstrap_environment(&self) -> BootstrapEnvironment {
        BootstrapEnvironment {
            host: self.host.clone(),
            image_factory_url: self.image_factory_url.clone(),
            amd64_image_url: self.talos_amd64_image_url.clone(),
            arm64_image_url: self.talos_arm64_image_url.clone(),
        }
    }
}

/// The dry run for `server` (`robot-<n>`, `cloud-<id>` or a server name).
pub async fn bootstrap_plan_text(
    store: &Store,
    environment: &BootstrapEnvironment,
    server: &str,
    choices: &BootstrapChoices,
) -> Result<String, BootstrapPlanCommandError> {
    let servers = store.list_servers().await?;
    let by_id: Vec<_> = servers
        .iter()
        .filter(|candidate| {
            ServerRef::new(
                candidate.inventory.provider,
                &candidate.inventory.provider_id,
            )
            .to_string()
                == server
        })
        .collect();
    let matches = if by_id.is_empty() {
        servers
            .iter()
            .filter(|candidate| candidate.inventory.name == server)
            .collect()
    } else {
        by_id
    };
    let found = match matches.as_slice() {
        [] => return Err(BootstrapPlanCommandError::NoSuchServer(server.to_owned())),
        [one] => *one,
        many => {
            return Err(BootstrapPlanCommandError::Ambiguous(
                many.len(),
                server.to_owned(),
            ));
        }
    };
    let (_, plan) = bootstrap_plan(store, environment, found.id, choices).await?;
    Ok(plan.to_string())
}

/// The bootstrap request and plan of a stored server: the one code path of the dry run, for
/// the command line and the API.
pub async fn bootstrap_plan(
    store: &Store,
    environment: &BootstrapEnvironment,
    server_id: ServerId,
    choices: &BootstrapChoices,
) -> Result<(BootstrapRequest, Plan), BootstrapPlanError> {
    let request = bootstrap_request(store, server_id, choices, environment).await?;
    let plan = plan(&request);
    Ok((request, plan))
}
