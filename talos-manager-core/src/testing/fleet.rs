//! A fleet of stored servers for lifecycle tests: a cluster, the config template, schematic and
//! settings its nodes are built from, and one configured server per name, as the lifecycle
//! tests of core, the service, the Terraform provider and the `rolling_upgrade` example need
//! it. The Talos and Kubernetes fakes the nodes run in are the caller's: the in-memory
//! [`FakeTalos`](super::fake_talos::FakeTalos), or the gRPC fake of `talos-manager-fake-talos`.
//!
//! ```no_run
//! # async fn example(store: &talos_manager_core::Store, kubernetes_url: &str) {
//! use talos_manager_core::testing::fleet::{FleetBuilder, secrets_bundle};
//!
//! let bundle = secrets_bundle().await;
//! let fleet = FleetBuilder::new(&["control-plane-1", "worker-1"], kubernetes_url, &bundle)
//!     .build(store)
//!     .await
//!     .unwrap();
//! assert!(fleet.server("control-plane-1").control_plane);
//! # }
//! ```

use std::net::Ipv4Addr;

use base64::Engine as _;

use crate::ids::{ClusterId, ConfigId, ProviderAccountId, SchematicId, ServerId};
use crate::random::SystemRandom;
use crate::store::{
    ClusterFields, ConfigFields, MachineConfigFields, SchematicFields, ServerInventory, Store,
    StoreError,
};
use crate::talos::SecretsBundle;
use crate::{Architecture, ProviderKind, Secret};

/// The Image Factory schematic id of `customization: {}`, the fleet's default schematic.
pub const DEFAULT_SCHEMATIC_ID: &str =
    "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

/// A new secrets bundle for a test cluster (generated off the async runtime's threads).
///
/// # Panics
/// When the bundle cannot be generated.
pub async fn secrets_bundle() -> SecretsBundle {
    tokio::task::spawn_blocking(|| {
        SecretsBundle::generate(time::OffsetDateTime::now_utc(), &mut SystemRandom)
            .expect("generate a secrets bundle")
    })
    .await
    .expect("the secrets bundle generation runs")
}

/// Talos's base64-of-PEM (a secrets bundle's certificates and keys) as PEM text.
///
/// # Panics
/// When `b64` is not base64 of UTF-8.
pub fn pem(b64: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 PEM");
    String::from_utf8(bytes).expect("PEM text")
}

/// One stored server of a [`StoredFleet`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetServer {
    /// Its name (and hostname): names with `control-plane` are control planes.
    pub name: String,
    /// Its id.
    pub id: ServerId,
    /// Its Robot server number.
    pub provider_id: String,
    /// Its IPv4 address, on loopback.
    pub address: Ipv4Addr,
    /// Whether it is a control plane.
    pub control_plane: bool,
}

impl FleetServer {
    /// Its id in the admin API (`robot-<n>`).
    pub fn api_id(&self) -> String {
        format!("robot-{}", self.provider_id)
    }
}

/// What [`FleetBuilder::build`] stored.
#[derive(Debug, Clone)]
pub struct StoredFleet {
    /// The cluster.
    pub cluster: ClusterId,
    /// The config template every server's machine config uses.
    pub config: ConfigId,
    /// The settings' default schematic ([`DEFAULT_SCHEMATIC_ID`]).
    pub schematic: SchematicId,
    /// The servers, in the order of the names.
    pub servers: Vec<FleetServer>,
}

impl StoredFleet {
    /// The server called `name`.
    ///
    /// # Panics
    /// When the fleet has none.
    pub fn server(&self, name: &str) -> &FleetServer {
        self.servers
            .iter()
            .find(|server| server.name == name)
            .unwrap_or_else(|| panic!("no server {name} in the fleet"))
    }
}

/// Where the fleet's servers come from.
#[derive(Debug, Clone)]
enum Servers {
    /// Upserted as Robot servers numbered from `first_provider_id`, at consecutive addresses.
    New {
        first_address: Ipv4Addr,
        first_provider_id: u64,
        account: Option<String>,
    },
    /// Already stored (a sync made them), in the order of the names.
    Existing(Vec<ServerId>),
}

/// Builds a [`StoredFleet`]: the cluster (`prod`, at the Kubernetes API `endpoint`, with the
/// secrets bundle), a config template `default` (installer `ghcr.io/siderolabs/installer:<v>`,
/// Kubernetes 1.33.1, no patches), the default schematic and settings (Talos `v`, the
/// schematic), and per name a Robot server assigned to the cluster with a machine config
/// (install disk `/dev/nvme0n1`) and a served config request, so its node counts as
/// configured.
#[derive(Debug, Clone)]
pub struct FleetBuilder {
    names: Vec<String>,
    cluster_name: String,
    endpoint: String,
    secrets: String,
    talos_version: String,
    install_image: Option<String>,
    servers: Servers,
    private_ip: fn(usize, &str) -> String,
    record_config_request: bool,
    bootstrapped: bool,
}

/// The default private IP: `10.0.0.<n>` for control planes, `10.0.1.<n>` for the others,
/// `<n>` the number the name ends in.
fn private_ip_by_role(_index: usize, name: &str) -> String {
    let subnet = u8::from(!name.contains("control-plane"));
    let number = name.rsplit('-').next().unwrap_or("1");
    format!("10.0.{subnet}.{number}")
}

impl FleetBuilder {
    /// A fleet of `names` in a cluster whose Kubernetes API is `endpoint` and whose secrets
    /// are `bundle`; Talos v1.10.4, Robot servers 1, 2, … at 127.0.0.2, 127.0.0.3, ….
    pub fn new(names: &[&str], endpoint: &str, bundle: &SecretsBundle) -> FleetBuilder {
        FleetBuilder {
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            cluster_name: "prod".into(),
            endpoint: endpoint.to_owned(),
            secrets: bundle.to_yaml(),
            talos_version: "v1.10.4".into(),
            install_image: None,
            servers: Servers::New {
                first_address: Ipv4Addr::new(127, 0, 0, 2),
                first_provider_id: 1,
                account: None,
            },
            private_ip: private_ip_by_role,
            record_config_request: true,
            bootstrapped: true,
        }
    }

    /// The cluster's name.
    pub fn cluster_name(mut self, name: &str) -> FleetBuilder {
        self.cluster_name = name.to_owned();
        self
    }

    /// The Talos version of the settings and the config template's installer.
    pub fn talos_version(mut self, version: &str) -> FleetBuilder {
        self.talos_version = version.to_owned();
        self
    }

    /// The config template's installer image (else `ghcr.io/siderolabs/installer:<version>`).
    pub fn install_image(mut self, image: &str) -> FleetBuilder {
        self.install_image = Some(image.to_owned());
        self
    }

    /// New Robot servers numbered from `first_provider_id`, at `first_address` and the
    /// addresses after it, in a provider account called `account` (else the first Robot
    /// account, or a new one called `hetzner_robot`).
    pub fn new_servers(
        mut self,
        first_address: Ipv4Addr,
        first_provider_id: u64,
        account: Option<&str>,
    ) -> FleetBuilder {
        self.servers = Servers::New {
            first_address,
            first_provider_id,
            account: account.map(str::to_owned),
        };
        self
    }

    /// These stored servers (a sync made them), one per name, in order.
    pub fn existing_servers(mut self, ids: Vec<ServerId>) -> FleetBuilder {
        self.servers = Servers::Existing(ids);
        self
    }

    /// The private IP of the server at `index` called `name` (default: `10.0.0.<n>` for
    /// control planes, `10.0.1.<n>` for workers, `<n>` the number the name ends in).
    pub fn private_ip(mut self, private_ip: fn(usize, &str) -> String) -> FleetBuilder {
        self.private_ip = private_ip;
        self
    }

    /// Whether each server has asked for its config (so it counts as configured); default yes.
    pub fn record_config_request(mut self, record: bool) -> FleetBuilder {
        self.record_config_request = record;
        self
    }

    /// Whether the cluster is recorded as bootstrapped (its etcd runs); default yes. `false`:
    /// a new cluster whose first control plane's config fetch queues its bootstrap.
    pub fn bootstrapped(mut self, bootstrapped: bool) -> FleetBuilder {
        self.bootstrapped = bootstrapped;
        self
    }

    /// Stores the fleet.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn build(self, store: &Store) -> Result<StoredFleet, StoreError> {
        let cluster = store
            .create_cluster_bootstrapped(
                &ClusterFields {
                    name: self.cluster_name.clone(),
                    endpoint: self.endpoint.clone(),
                    vswitch_id: None,
                },
                &Secret::new(self.secrets.clone()),
                self.bootstrapped,
            )
            .await?;
        let install_image = self
            .install_image
            .clone()
            .unwrap_or_else(|| format!("ghcr.io/siderolabs/installer:{}", self.talos_version));
        let config = store
            .create_config(&ConfigFields {
                name: "default".into(),
                install_image,
                kubernetes_version: "1.33.1".into(),
                kubespan: false,
                patch: String::new(),
                patch_control_plane: String::new(),
                patch_worker: String::new(),
            })
            .await?;
        // Robot servers get the settings' default schematic.
        let schematic = store
            .create_schematic(&SchematicFields {
                name: "default".into(),
                body: "customization: {}\n".into(),
                factory_id: Some(DEFAULT_SCHEMATIC_ID.into()),
            })
            .await?;
        store
            .update_settings(&self.talos_version, Some(schematic.id))
            .await?;
        let mut servers = Vec::new();
        for (index, name) in self.names.iter().enumerate() {
            let row = match &self.servers {
                Servers::Existing(ids) => store.get_server(ids[index]).await?,
                Servers::New {
                    first_address,
                    first_provider_id,
                    account,
                } => {
                    let account =
                        provider_account(store, ProviderKind::HetznerRobot, account.as_deref())
                            .await?;
                    let address = Ipv4Addr::from(u32::from(*first_address) + index as u32);
                    let provider_id = (first_provider_id + index as u64).to_string();
                    let inventory = server_inventory(
                        ProviderKind::HetznerRobot,
                        &provider_id,
                        name,
                        &address.to_string(),
                    );
                    store.upsert_server(account, &inventory).await?.0
                }
            };
            store
                .update_server_assignment(row.id, name, Some(cluster.id), None, None)
                .await?;
            store
                .put_machine_config(
                    row.id,
                    &MachineConfigFields {
                        config_id: config.id,
                        hostname: name.clone(),
                        private_ip: (self.private_ip)(index, name),
                        install_disk: "/dev/nvme0n1".into(),
                        ephemeral_disk_identifier: None,
                    },
                )
                .await?;
            if self.record_config_request {
                store
                    .record_config_request(row.id, time::OffsetDateTime::now_utc(), true)
                    .await?;
            }
            let address = row
                .inventory
                .ipv4
                .as_deref()
                .and_then(|ip| ip.parse().ok())
                .unwrap_or(Ipv4Addr::LOCALHOST);
            servers.push(FleetServer {
                name: name.clone(),
                id: row.id,
                provider_id: row.inventory.provider_id.clone(),
                address,
                control_plane: name.contains("control-plane"),
            });
        }
        Ok(StoredFleet {
            cluster: cluster.id,
            config: config.id,
            schematic: schematic.id,
            servers,
        })
    }
}

/// A ready AX41 in FSN1-DC1 (amd64, no vSwitch) as a provider lists it.
pub fn server_inventory(
    provider: ProviderKind,
    provider_id: &str,
    name: &str,
    ipv4: &str,
) -> ServerInventory {
    ServerInventory {
        provider,
        provider_id: provider_id.into(),
        name: name.into(),
        ipv4: Some(ipv4.to_owned()),
        ipv6: None,
        product: "AX41".into(),
        data_center: "FSN1-DC1".into(),
        status: "ready".into(),
        cancelled: false,
        architecture: Architecture::Amd64,
        vswitch_id: None,
    }
}

/// Stores a server as the provider sync would ([`server_inventory`]), in the first account of
/// `provider` (made, called as the provider, when there is none); returns it.
///
/// # Errors
/// When the store fails.
pub async fn add_server(
    store: &Store,
    provider: ProviderKind,
    provider_id: &str,
    name: &str,
    ipv4: &str,
) -> Result<crate::store::Server, StoreError> {
    let account = provider_account(store, provider, None).await?;
    let inventory = server_inventory(provider, provider_id, name, ipv4);
    Ok(store.upsert_server(account, &inventory).await?.0)
}

/// The account of `provider` called `name` (made when missing), else its first account, or a
/// new one called as the provider (`hetzner_robot`).
async fn provider_account(
    store: &Store,
    provider: ProviderKind,
    name: Option<&str>,
) -> Result<ProviderAccountId, StoreError> {
    let accounts = store.list_provider_accounts().await?;
    let found = accounts.iter().find(|account| {
        account.provider == provider && name.is_none_or(|name| account.name == name)
    });
    if let Some(account) = found {
        return Ok(account.id);
    }
    let name = name.unwrap_or(provider.as_str());
    let account = store
        .create_provider_account(provider, name, &Secret::new("secret".into()))
        .await?;
    Ok(account.id)
}
