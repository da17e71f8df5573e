//! The default versions, which the API documents as the defaults of a config template.

/// The Talos version new configs (`…/installer:<this>`) and bootstraps default to; with
/// [`DEFAULT_KUBERNETES_VERSION`] the one place every default version comes from (API,
/// dashboard, Terraform; `talos_manager_core::store` re-exports both). Not yet the newest
/// contract (`talos_manager_core::talos::TalosVersion::LATEST`,
/// `TalosVersion::LATEST.release()` and `.default_kubernetes_version()`): from Talos 1.12 on a
/// node's own hostname must be a `HostnameConfig` document, and talos-manager's per-server
/// hostname (the getting-started guide, existing configs) is still `machine.network.hostname`,
/// which Talos 1.12+ refuses next to the generated `HostnameConfig`.
pub const DEFAULT_TALOS_VERSION: &str = "v1.10.4";

/// The Kubernetes version of new configs when nothing else was chosen (see
/// [`DEFAULT_TALOS_VERSION`]).
pub const DEFAULT_KUBERNETES_VERSION: &str = "1.30.1";
