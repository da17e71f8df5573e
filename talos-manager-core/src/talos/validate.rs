//! `talosctl validate`: strict decoding, then Talos's semantic checks, returning every issue
//! with its path instead of stopping at the first.
//!
//! Covered: the checks of `talosctl validate -m <mode>` that concern fields talos-manager users
//! set (cluster endpoint and DNS domain, install section in metal mode with the 1.12+ rule that
//! `extraKernelArgs` and `grubUseUKICmdline` exclude each other, machine type and CAs,
//! control-plane and worker restrictions, CNI, discovery and KubeSpan, network interfaces,
//! VLAN addresses, routes, kubelet node IPs, node labels (in Talos's words) and taints, inline
//! manifests, registries, VolumeConfig names and sizes, UserVolumeConfig provisioning, bond modes, WireGuard keys, duplicate
//! extensions). Like talosctl, it does not check nameservers, extra host entries or VLAN ids.
//! `tests/core/talos_differential.rs` compares it with Talos's own machinery. Not covered yet (TODO-coverage): bond tuning options, bridge and link
//! membership checks, system-disk encryption, logging destinations, apiserver authorization
//! config, protected kubelet extraConfig fields, CEL type checking of disk selectors.

use std::net::IpAddr;

use super::Issue;
use super::document::{LoadError, MachineConfig};
use super::generate::{TalosVersion, endpoint_host};
use super::yaml::Value;

/// The runtime mode a config is validated for (`talosctl validate -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationMode {
    /// Bare metal: an install section is required.
    Metal,
    /// A cloud VM.
    Cloud,
    /// A container.
    Container,
}

impl ValidationMode {
    /// Parses `metal`, `cloud`, `container` (and `metal-agent` as metal).
    pub fn parse(text: &str) -> Option<ValidationMode> {
        match text {
            "metal" | "metal-agent" => Some(ValidationMode::Metal),
            "cloud" => Some(ValidationMode::Cloud),
            "container" => Some(ValidationMode::Container),
            _ => None,
        }
    }
}

/// Validates a machine config text as the newest supported talosctl does (see
/// [`validate_for`]).
pub fn validate(text: &str, mode: ValidationMode, strict: bool) -> Vec<Issue> {
    validate_for(text, mode, strict, TalosVersion::LATEST)
}

/// Validates a machine config text as talosctl of `version` does (`talosctl validate -m
/// <mode> [--strict]`); only some texts differ between versions. With `strict`, the warnings
/// of the v1alpha1 document are issues too (as `warning: <text>`, like `--strict`); the
/// warnings of other documents never are (see [`validate_report`]). An empty result means the
/// config is valid.
pub fn validate_for(
    text: &str,
    mode: ValidationMode,
    strict: bool,
    version: TalosVersion,
) -> Vec<Issue> {
    validate_report(text, mode, strict, version).errors
}

/// What `talosctl validate` reports: errors (the config is refused) and warnings, apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    /// Errors, each with its path; none means the config is valid.
    pub errors: Vec<Issue>,
    /// Warnings, each with its path: the v1alpha1 document's (unless `strict` made them
    /// errors), the typed documents' and the whole config's (Talos 1.14's deprecations and
    /// advice, which `--strict` leaves as warnings).
    pub warnings: Vec<Issue>,
}

impl ValidationReport {
    /// Whether Talos accepts the config (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates as [`validate_for`] does, keeping the warnings apart from the errors.
pub fn validate_report(
    text: &str,
    mode: ValidationMode,
    strict: bool,
    version: TalosVersion,
) -> ValidationReport {
    let config = match MachineConfig::parse(text) {
        Ok(config) => config,
        Err(LoadError::Decode { problems, .. } | LoadError::UnknownKeys { problems, .. }) => {
            return ValidationReport {
                errors: problems
                    .into_iter()
                    .map(|p| Issue {
                        path: p.path,
                        message: p.message,
                    })
                    .collect(),
                warnings: Vec::new(),
            };
        }
        Err(other) => {
            return ValidationReport {
                errors: vec![Issue::new("", other.to_string())],
                warnings: Vec::new(),
            };
        }
    };
    // Our schema knows every release's kinds; an earlier Talos does not load the newer ones.
    if !version.typed_documents()
        && let Some(doc) = config.documents().iter().find(|d| {
            d.get("kind")
                .and_then(Value::as_str)
                .is_some_and(|kind| KINDS_SINCE_V1_14.contains(&kind))
        })
    {
        let error = LoadError::UnknownKind {
            kind: doc.get("kind").map(Value::to_string).unwrap_or_default(),
            api_version: doc
                .get("apiVersion")
                .map(Value::to_string)
                .unwrap_or_default(),
        };
        return ValidationReport {
            errors: vec![Issue::new("", error.to_string())],
            warnings: Vec::new(),
        };
    }
    let mut checker = Checker {
        issues: Vec::new(),
        warnings: Vec::new(),
        document_warnings: Vec::new(),
        version,
    };
    if let Some(doc) = config.v1alpha1() {
        checker.v1alpha1(doc, mode);
    }
    for doc in config.documents() {
        match doc.get("kind").and_then(Value::as_str) {
            Some("VolumeConfig") => checker.volume_config(doc),
            Some("HostnameConfig") => checker.hostname_config(doc, config.v1alpha1()),
            Some("UserVolumeConfig") => checker.user_volume_config(doc),
            Some("UnattendedInstallConfig") => checker.unattended_install_config(doc),
            Some(kind) if version.typed_documents() => checker.kubernetes_document_v1_14(kind, doc),
            _ => {}
        }
    }
    if version.typed_documents() {
        checker.conflicts_v1_14(&config);
        checker.container_v1_14(&config);
    }
    let Checker {
        mut issues,
        warnings,
        document_warnings,
        ..
    } = checker;
    let mut all_warnings = Vec::new();
    if strict {
        issues.extend(warnings.into_iter().map(|w| Issue {
            path: w.path,
            message: format!("warning: {}", w.message),
        }));
    } else {
        all_warnings = warnings;
    }
    all_warnings.extend(document_warnings);
    ValidationReport {
        errors: issues,
        warnings: all_warnings,
    }
}

struct Checker {
    issues: Vec<Issue>,
    /// Warnings of the v1alpha1 document (errors under `--strict`).
    warnings: Vec<Issue>,
    /// Warnings of the other documents and of the whole config (never errors).
    document_warnings: Vec<Issue>,
    version: TalosVersion,
}

fn text(value: Option<&Value>) -> Option<String> {
    value.filter(|v| !v.is_empty_value()).map(Value::to_string)
}

fn seq(value: Option<&Value>) -> &[Value] {
    value.and_then(Value::as_seq).unwrap_or_default()
}

fn is_true(value: Option<&Value>) -> bool {
    value == Some(&Value::Bool(true))
}

fn is_prefix(text: &str) -> bool {
    let Some((ip, bits)) = text.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max)
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// A Kubernetes qualified name (`[prefix/]name`), as label and annotation keys must be.
fn is_qualified_name(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_name) && is_label_value(name) && !name.is_empty()
}

/// Why an interface address is refused, in Go's words: a prefix as `net.ParseCIDR` reports
/// it, a bare address as Talos's `validateIPOrCIDR` does.
fn ip_or_cidr_error(address: &str) -> Option<String> {
    if address.contains('/') {
        (!is_prefix(address)).then(|| format!("invalid CIDR address: {address}"))
    } else {
        (address.parse::<IpAddr>().is_err())
            .then(|| format!("failed to parse IP address {}", go_quote(address)))
    }
}

/// Go's `%q` of a string (close enough for the ASCII texts of configs).
fn go_quote(text: &str) -> String {
    format!("{text:?}")
}

/// Whether `text` matches Kubernetes' qualified-name pattern
/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name_part(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Why `value` is not a DNS-1123 subdomain (lowercase labels joined by dots), as Talos's
/// `labels.ValidateDNS1123Subdomain` words it.
fn dns1123_subdomain_error(value: &str) -> Option<String> {
    if value.len() > 253 {
        return Some(format!(
            "domain name length exceeds limit of 253: {}",
            go_quote(value)
        ));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (!value.split('.').all(label_ok))
        .then(|| format!("domain doesn't match required format: {}", go_quote(value)))
}

/// Why `value` is not a Kubernetes qualified name, as Talos's `labels.ValidateQualifiedName`
/// words it.
fn qualified_name_error(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                return Some(format!("prefix cannot be empty: {}", go_quote(value)));
            }
            if let Some(problem) = dns1123_subdomain_error(prefix) {
                return Some(format!("prefix {} is invalid: {problem}", go_quote(prefix)));
            }
            *name
        }
        _ => {
            return Some(format!(
                "invalid format: too many slashes: {}",
                go_quote(value)
            ));
        }
    };
    if name.is_empty() {
        Some(format!("name cannot be empty: {}", go_quote(value)))
    } else if name.len() > 63 {
        Some(format!(
            "name is too long: {} (limit is 63)",
            go_quote(value)
        ))
    } else if !is_qualified_name_part(name) {
        Some(format!("name {} is invalid", go_quote(name)))
    } else {
        None
    }
}

/// Why `value` is not a Kubernetes label value, as Talos's `labels.ValidateLabelValue` words it.
fn label_value_error(value: &str) -> Option<String> {
    if value.len() > 63 {
        Some(format!(
            "label value length exceeds limit of 63: {}",
            go_quote(value)
        ))
    } else if !value.is_empty() && !is_qualified_name_part(value) {
        Some(format!("label value {} is invalid", go_quote(value)))
    } else {
        None
    }
}

/// A Kubernetes label value: at most 63 characters, alphanumerics with `-_.` inside.
fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && (value.is_empty()
            || (value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && value.starts_with(|c: char| c.is_ascii_alphanumeric())
                && value.ends_with(|c: char| c.is_ascii_alphanumeric())))
}

/// The bonding modes Linux (and so Talos) knows.
const BOND_MODES: &[&str] = &[
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
];

/// A WireGuard key: standard base64 of 32 bytes.
fn is_wireguard_key(key: &str) -> bool {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(key)
        .is_ok_and(|bytes| bytes.len() == 32)
}

/// Parses a go-humanize byte size (`10GB`, `2.5TiB`, `512`).
fn parse_byte_size(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let power = |base: f64, exp: i32| Some(number * base.powi(exp));
    match unit.as_str() {
        "" | "b" => Some(number),
        "k" | "kb" => power(1000.0, 1),
        "m" | "mb" => power(1000.0, 2),
        "g" | "gb" => power(1000.0, 3),
        "t" | "tb" => power(1000.0, 4),
        "p" | "pb" => power(1000.0, 5),
        "ki" | "kib" => power(1024.0, 1),
        "mi" | "mib" => power(1024.0, 2),
        "gi" | "gib" => power(1024.0, 3),
        "ti" | "tib" => power(1024.0, 4),
        "pi" | "pib" => power(1024.0, 5),
        _ => None,
    }
}

impl Checker {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(Issue::new(path, message));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Issue::new(path, message));
    }

    fn document_warn(&mut self, path: &str, message: impl Into<String>) {
        self.document_warnings.push(Issue::new(path, message));
    }

    /// `UnattendedInstallConfig` (Talos 1.14): a disk selector is required; without an
    /// installer image only a node booted from an Image Factory asset can install.
    fn unattended_install_config(&mut self, doc: &Value) {
        if text(doc.path("installer.image")).is_none() {
            self.document_warn(
                "UnattendedInstallConfig.installer.image",
                "installer.image is not set, if Talos is not booted from asset built by Image Factory, installation will fail",
            );
        }
        if text(doc.path("provisioning.diskSelector.match")).is_none() {
            self.error(
                "UnattendedInstallConfig.provisioning.diskSelector.match",
                "provisioning.diskSelector.match is required",
            );
        }
    }

    /// The checks of Talos 1.14's Kubernetes component documents (client-side: image tags are
    /// not checked against the Talos release).
    fn kubernetes_document_v1_14(&mut self, kind: &str, doc: &Value) {
        let disabled = doc.get("enabled") == Some(&Value::Bool(false));
        let image = |name: &'static str| (name, text(doc.get("image")).is_none());
        let (component, image_missing) = match kind {
            "KubeAPIServerConfig" => image("kube-apiserver"),
            "KubeControllerManagerConfig" if !disabled => image("kube-controller-manager"),
            "KubeSchedulerConfig" if !disabled => image("scheduler"),
            "KubeProxyConfig" if !disabled => image("proxy"),
            "KubeletConfig" => image("kubelet"),
            _ => return,
        };
        if image_missing {
            self.error(
                &format!("{kind}.image"),
                format!("{component} image cannot be empty"),
            );
        }
        if kind == "KubeProxyConfig" && !disabled {
            match text(doc.get("mode")).as_deref() {
                None | Some("nftables") => {}
                Some(mode @ ("iptables" | "ipvs")) => self.document_warn(
                    "KubeProxyConfig.mode",
                    format!("proxy mode \"{mode}\" is not recommended, please switch to nftables if possible"),
                ),
                Some(mode) => self.error(
                    "KubeProxyConfig.mode",
                    format!("invalid proxy mode \"{mode}\": supported modes are iptables, ipvs and nftables"),
                ),
            }
            if doc.get("extraArgs").is_some_and(|a| !a.is_empty_value()) {
                self.document_warn(
                    "KubeProxyConfig.extraArgs",
                    "extra arguments for kube-proxy may not work as expected, please use configuration instead",
                );
            }
        }
    }

    fn v1alpha1(&mut self, doc: &Value, mode: ValidationMode) {
        let Some(machine) = doc.get("machine").filter(|m| !matches!(m, Value::Null)) else {
            self.error("machine", "machine instructions are required");
            return;
        };
        let machine_type = machine
            .get("type")
            .map(Value::to_string)
            .unwrap_or_default();
        let control_plane = matches!(machine_type.as_str(), "init" | "controlplane");
        self.cluster(doc.get("cluster"), control_plane);
        if mode == ValidationMode::Metal {
            match machine.get("install").filter(|v| !matches!(v, Value::Null)) {
                // Talos 1.14: `.machine.install` gave way to UnattendedInstallConfig and is
                // only checked when present.
                None if self.version.typed_documents() => {}
                None => self.error(
                    "machine.install",
                    "install instructions are required in \"metal\" mode",
                ),
                Some(install) => {
                    if text(install.get("disk")).is_none() && install.get("diskSelector").is_none()
                    {
                        self.error(
                            "machine.install.disk",
                            "either install disk or diskSelector should be defined",
                        );
                    }
                    // Talos 1.12 on (the first to write grubUseUKICmdline): with the UKI's
                    // own command line, GRUB ignores extraKernelArgs, so Talos refuses both.
                    // Kernel arguments belong in the Image Factory schematic instead.
                    if !seq(install.get("extraKernelArgs")).is_empty()
                        && is_true(install.get("grubUseUKICmdline"))
                    {
                        self.error(
                            "machine.install.extraKernelArgs",
                            "install.extraKernelArgs and install.grubUseUKICmdline can't be used together",
                        );
                    }
                }
            }
        }
        match machine_type.as_str() {
            "init" | "controlplane" | "worker" => {}
            "" | "join" => self.warn(
                "machine.type",
                format!("use \"worker\" instead of \"{machine_type}\" for machine type"),
            ),
            other => self.error("machine.type", format!("unknown machine type \"{other}\"")),
        }
        let ca_crt = text(machine.path("ca.crt"));
        let ca_key = text(machine.path("ca.key"));
        if ca_crt.is_none() && seq(machine.get("acceptedCAs")).is_empty() {
            self.error(
                "machine.ca",
                "issuing CA or some accepted CAs are required (.machine.ca, machine.acceptedCAs)",
            );
        }
        if control_plane {
            self.cni(doc.path("cluster.network.cni"));
            if ca_crt.is_none() {
                self.error("machine.ca", "issuing CA is required (.machine.ca)");
            }
            if ca_key.is_none() {
                self.error(
                    "machine.ca.key",
                    "issuing CA key is required for controlplane nodes (.machine.ca.key)",
                );
            }
        } else {
            if ca_key.is_some() {
                self.error("machine.ca.key", "issuing Talos API CA key is not allowed on non-controlplane nodes (.machine.ca)");
            }
            if text(doc.path("cluster.ca.key")).is_some() {
                self.error("cluster.ca.key", "issuing Kubernetes API CA key is not allowed on non-controlplane nodes (.cluster.ca)");
            }
        }
        self.network(machine.get("network"), control_plane);
        self.kubespan(doc);
        for (idx, subnet) in seq(machine.path("kubelet.nodeIP.validSubnets"))
            .iter()
            .enumerate()
        {
            let subnet = subnet.to_string();
            if !is_prefix(subnet.trim_start_matches('!')) {
                self.error(
                    &format!("machine.kubelet.nodeIP.validSubnets[{idx}]"),
                    format!("kubelet nodeIP subnet is not valid: \"{subnet}\""),
                );
            }
        }
        self.node_metadata(machine);
        let mut extensions: Vec<String> = Vec::new();
        for (idx, extension) in seq(machine.path("install.extensions")).iter().enumerate() {
            let image = text(extension.get("image")).unwrap_or_default();
            if extensions.contains(&image) {
                self.error(
                    &format!("machine.install.extensions[{idx}].image"),
                    format!("duplicate system extension \"{image}\""),
                );
            }
            extensions.push(image);
        }
        // talosctl checks neither extraHostEntries' IPs nor nameservers nor VLAN ids (the
        // differential test against Talos's machinery showed it): neither do we.
        if !seq(machine.path("install.extensions")).is_empty() {
            let docs = if self.version >= TalosVersion::V1_13 {
                "https://docs.siderolabs.com/talos/latest/platform-specific-installations/boot-assets"
            } else {
                "https://www.talos.dev/latest/talos-guides/install/boot-assets/"
            };
            self.warn(
                "machine.install.extensions",
                format!(".machine.install.extensions is deprecated, please see {docs}"),
            );
        }
        for section in ["config", "mirrors"] {
            if let Some(entries) = machine
                .path(&format!("registries.{section}"))
                .and_then(Value::as_map)
            {
                for (host, value) in entries {
                    if matches!(value, Value::Null) {
                        self.error(
                            &format!("machine.registries.{section}"),
                            format!("registries.{section}[\"{host}\"] is null"),
                        );
                    }
                }
            }
        }
        if doc.get("persist") == Some(&Value::Bool(false)) {
            self.error("persist", ".persist should be enabled");
        }
    }

    fn cluster(&mut self, cluster: Option<&Value>, control_plane: bool) {
        let Some(cluster) = cluster.filter(|c| !matches!(c, Value::Null)) else {
            self.error("cluster", "cluster instructions are required");
            return;
        };
        let typed = self.version.typed_documents();
        let control_plane_section = cluster
            .get("controlPlane")
            .filter(|c| !matches!(c, Value::Null));
        if typed
            && control_plane_section
                .is_some_and(|c| c.get("endpoint").is_none_or(|e| matches!(e, Value::Null)))
        {
            // Talos 1.14 stops at this one.
            self.error(
                "cluster.controlPlane.endpoint",
                "cluster controlplane endpoint is required (.cluster.controlPlane.endpoint); \
                 when the endpoint is migrated to the KubeClusterConfig document, the whole \
                 .cluster.controlPlane section should be removed \
                 (.cluster.controlPlane.localAPIServerPort is migrated to the KubeAPIServerConfig document)",
            );
            return;
        }
        if typed
            && cluster
                .get("serviceAccount")
                .is_some_and(|v| !matches!(v, Value::Null))
            && text(cluster.path("controlPlane.endpoint")).is_none()
        {
            self.error(
                "cluster.serviceAccount",
                ".cluster.serviceAccount requires the cluster endpoint to be set in the same document \
                 (.cluster.controlPlane.endpoint); when the cluster endpoint is migrated to the \
                 KubeClusterConfig document, .cluster.serviceAccount should be migrated to the \
                 KubeServiceAccountConfig document as well",
            );
        }
        match text(cluster.path("controlPlane.endpoint")) {
            None if typed => {}
            None => self.error(
                "cluster.controlPlane.endpoint",
                "cluster controlplane endpoint is required",
            ),
            Some(endpoint) => {
                if let Err(err) = endpoint_host(&endpoint) {
                    let reason = err.to_string();
                    let reason = reason
                        .strip_prefix("error validating the cluster endpoint URL: ")
                        .unwrap_or(&reason);
                    self.error(
                        "cluster.controlPlane.endpoint",
                        format!("invalid controlplane endpoint: {reason}"),
                    );
                }
            }
        }
        if let Some(domain) = text(cluster.path("network.dnsDomain"))
            && !is_dns_name(&domain)
        {
            self.error(
                "cluster.network.dnsDomain",
                format!("\"{domain}\" is not a valid DNS name"),
            );
        }
        if control_plane {
            if cluster.get("etcd").is_some_and(|e| {
                text(e.path("ca.crt")).is_none() || text(e.path("ca.key")).is_none()
            }) {
                self.error(
                    "cluster.etcd.ca",
                    "key/cert combination should not be empty",
                );
            }
        } else if cluster.get("etcd").is_some_and(|e| !e.is_empty_value()) {
            self.error(
                "cluster.etcd",
                "etcd config is only allowed on control plane machines",
            );
        }
        let mut names: Vec<String> = Vec::new();
        for (idx, manifest) in seq(cluster.get("inlineManifests")).iter().enumerate() {
            let path = format!("cluster.inlineManifests[{idx}].name");
            match text(manifest.get("name")) {
                None => self.error(&path, "inline manifest name can't be empty"),
                Some(name) if names.contains(&name) => {
                    self.error(
                        &path,
                        format!("inline manifest name \"{name}\" is duplicate"),
                    );
                }
                Some(name) => names.push(name),
            }
        }
        let discovery = cluster.get("discovery");
        if is_true(discovery.and_then(|d| d.get("enabled")))
            && !is_true(discovery.and_then(|d| d.path("registries.service.disabled")))
        {
            if text(cluster.get("id")).is_none() {
                self.error(
                    "cluster.id",
                    "cluster discovery service requires .cluster.id",
                );
            }
            if text(cluster.get("secret")).is_none() {
                self.error(
                    "cluster.secret",
                    "cluster discovery service requires .cluster.secret",
                );
            }
        }
    }

    fn cni(&mut self, cni: Option<&Value>) {
        let name = text(cni.and_then(|c| c.get("name"))).unwrap_or_else(|| "flannel".to_owned());
        let urls = seq(cni.and_then(|c| c.get("urls")));
        let path = "cluster.network.cni";
        match name.as_str() {
            "flannel" | "none" if !urls.is_empty() => {
                self.error(
                    path,
                    format!("\"urls\" field should be empty for \"{name}\" CNI"),
                );
            }
            "flannel" | "none" => {}
            "custom" if urls.is_empty() => self.warn(
                path,
                "\"urls\" field should not be empty for \"custom\" CNI",
            ),
            "custom" => {}
            _ => self.error(
                path,
                "cni name should be one of [\"flannel\", \"custom\", \"none\"]",
            ),
        }
    }

    fn network(&mut self, network: Option<&Value>, control_plane: bool) {
        let Some(network) = network else { return };
        for (idx, device) in seq(network.get("interfaces")).iter().enumerate() {
            let path = format!("machine.network.interfaces[{idx}]");
            if is_true(device.get("ignore")) {
                continue;
            }
            let name = text(device.get("interface"));
            let has_selector = device.get("deviceSelector").is_some();
            match (&name, has_selector) {
                (None, false) => self.error(
                    &path,
                    "[networking.os.device.interface], [networking.os.device.deviceSelector]: required either config section to be set",
                ),
                (Some(_), true) => self.error(
                    &path,
                    "[networking.os.device.interface], [networking.os.device.deviceSelector]: config sections are mutually exclusive",
                ),
                _ => {}
            }
            let label = name.clone().unwrap_or_default();
            if device.get("bond").is_some() && device.get("bridge").is_some() {
                self.error(&path, format!("interface has both bridge and bond sections set \"{label}\": config sections are mutually exclusive"));
            }
            if let Some(bond) = device.get("bond") {
                let mode = text(bond.get("mode")).unwrap_or_default();
                if !BOND_MODES.contains(&mode.as_str()) {
                    self.error(
                        &format!("{path}.bond.mode"),
                        format!(
                            "[networking.os.device.bond] \"{label}\": invalid bond mode \"{mode}\""
                        ),
                    );
                }
                if !seq(bond.get("interfaces")).is_empty() && bond.get("deviceSelectors").is_some()
                {
                    self.error(
                        &format!("{path}.bond"),
                        format!("[networking.os.device.bond] \"{label}\": interfaces and deviceSelectors are mutually exclusive"),
                    );
                }
            }
            if let Some(wireguard) = device.get("wireguard") {
                if let Some(key) = text(wireguard.get("privateKey"))
                    && !is_wireguard_key(&key)
                {
                    self.error(
                        &format!("{path}.wireguard.privateKey"),
                        format!(
                            "[networking.os.device.wireguard] \"{label}\": invalid private key"
                        ),
                    );
                }
                for (peer_idx, peer) in seq(wireguard.get("peers")).iter().enumerate() {
                    if !text(peer.get("publicKey")).is_some_and(|k| is_wireguard_key(&k)) {
                        self.error(
                            &format!("{path}.wireguard.peers[{peer_idx}].publicKey"),
                            format!("[networking.os.device.wireguard] \"{label}\": invalid peer public key"),
                        );
                    }
                }
            }
            let addresses = seq(device.get("addresses"));
            if text(device.get("cidr")).is_some() {
                if !addresses.is_empty() {
                    self.error(&path, format!("[networking.os.device] \"{label}\": interface can't have both .cidr and .addresses set"));
                }
                self.warn(&format!("{path}.cidr"), format!("\"{label}\": machine.network.interface.cidr is deprecated, please use machine.network.interface.addresses"));
            }
            for (addr_idx, address) in addresses.iter().enumerate() {
                let address = address.to_string();
                if let Some(problem) = ip_or_cidr_error(&address) {
                    self.error(
                        &format!("{path}.addresses[{addr_idx}]"),
                        format!(
                            "[networking.os.device.addresses] {}: {problem}",
                            go_quote(&label)
                        ),
                    );
                }
            }
            self.routes(device.get("routes"), &format!("{path}.routes"));
            if device.get("vip").is_some() && !control_plane {
                self.error(
                    &format!("{path}.vip"),
                    "virtual (shared) IP is not allowed on non-controlplane nodes",
                );
            }
            for (vlan_idx, vlan) in seq(device.get("vlans")).iter().enumerate() {
                let vlan_path = format!("{path}.vlans[{vlan_idx}]");
                let vlan_id = vlan.get("vlanId").map(Value::to_string).unwrap_or_default();
                let vlan_addresses = seq(vlan.get("addresses"));
                if text(vlan.get("cidr")).is_some() && !vlan_addresses.is_empty() {
                    self.error(&vlan_path, format!("[networking.os.device.vlan] {label}.{vlan_id}: vlan can't have both .cidr and .addresses set"));
                }
                for (addr_idx, address) in vlan_addresses.iter().enumerate() {
                    let address = address.to_string();
                    if let Some(problem) = ip_or_cidr_error(&address) {
                        self.error(
                            &format!("{vlan_path}.addresses[{addr_idx}]"),
                            format!(
                                "[networking.os.device.vlan.addresses] {label}.{vlan_id}: {problem}"
                            ),
                        );
                    }
                }
                self.routes(vlan.get("routes"), &format!("{vlan_path}.routes"));
                if vlan.get("vip").is_some() && !control_plane {
                    self.error(
                        &format!("{vlan_path}.vip"),
                        "virtual (shared) IP is not allowed on non-controlplane nodes",
                    );
                }
            }
        }
    }

    fn routes(&mut self, routes: Option<&Value>, path: &str) {
        for (idx, route) in seq(routes).iter().enumerate() {
            let route_path = format!("{path}[{idx}]");
            let network = text(route.get("network"));
            let gateway = text(route.get("gateway"));
            if network.is_none() && gateway.is_none() {
                self.error(&route_path, format!("[networking.os.device.route[{idx}]]: either network or gateway should be set"));
            }
            if let Some(network) = network.filter(|n| !is_prefix(n)) {
                self.error(&format!("{route_path}.network"), format!("[networking.os.device.route[{idx}].network] \"{network}\": invalid network address"));
            }
            if let Some(gateway) = gateway.filter(|g| g.parse::<IpAddr>().is_err()) {
                self.error(&format!("{route_path}.gateway"), format!("[networking.os.device.route[{idx}].gateway] \"{gateway}\": invalid gateway address"));
            }
            if let Some(source) = text(route.get("source")).filter(|s| s.parse::<IpAddr>().is_err())
            {
                self.error(&format!("{route_path}.source"), format!("[networking.os.device.route[{idx}].source] \"{source}\": invalid source address"));
            }
        }
    }

    fn kubespan(&mut self, doc: &Value) {
        if !is_true(doc.path("machine.network.kubespan.enabled")) {
            return;
        }
        if let Some(Value::Int(mtu)) = doc.path("machine.network.kubespan.mtu")
            && *mtu < 1280
        {
            self.error(
                "machine.network.kubespan.mtu",
                "kubespan link MTU must be at least 1280",
            );
        }
        // Talos 1.14 checks discovery and the cluster identity across documents
        // (`container_v1_14`).
        if self.version.typed_documents() {
            self.kubespan_filters(doc);
            return;
        }
        if !is_true(doc.path("cluster.discovery.enabled")) {
            self.error(
                "cluster.discovery.enabled",
                ".cluster.discovery should be enabled when .machine.network.kubespan is enabled",
            );
        }
        if text(doc.path("cluster.id")).is_none() {
            self.error(
                "cluster.id",
                ".cluster.id should be set when .machine.network.kubespan is enabled",
            );
        }
        if text(doc.path("cluster.secret")).is_none() {
            self.error(
                "cluster.secret",
                ".cluster.secret should be set when .machine.network.kubespan is enabled",
            );
        }
        self.kubespan_filters(doc);
    }

    fn kubespan_filters(&mut self, doc: &Value) {
        for (idx, filter) in seq(doc.path("machine.network.kubespan.filters.endpoints"))
            .iter()
            .enumerate()
        {
            let filter = filter.to_string();
            if !is_prefix(filter.trim_start_matches('!')) {
                self.error(
                    &format!("machine.network.kubespan.filters.endpoints[{idx}]"),
                    format!("KubeSpan endpoint filer is not valid: \"{filter}\""),
                );
            }
        }
    }

    fn node_metadata(&mut self, machine: &Value) {
        if let Some(labels) = machine.get("nodeLabels").and_then(Value::as_map) {
            // Talos checks the labels sorted by key: the name, then the value.
            let mut labels: Vec<_> = labels.iter().collect();
            labels.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, value) in labels {
                let value = value.to_string();
                for problem in [qualified_name_error(key), label_value_error(&value)]
                    .into_iter()
                    .flatten()
                {
                    self.error(
                        &format!("machine.nodeLabels.{key}"),
                        format!("invalid machine node labels: {problem}"),
                    );
                }
            }
        }
        if let Some(annotations) = machine.get("nodeAnnotations").and_then(Value::as_map) {
            for (key, _) in annotations {
                if !is_qualified_name(key) {
                    self.error(
                        &format!("machine.nodeAnnotations.{key}"),
                        format!(
                            "invalid machine node annotations: invalid annotation key \"{key}\""
                        ),
                    );
                }
            }
        }
        if let Some(taints) = machine.get("nodeTaints").and_then(Value::as_map) {
            for (key, value) in taints {
                let value = value.to_string();
                let (taint_value, effect) = value.split_once(':').unwrap_or((value.as_str(), ""));
                let effect_ok = matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute");
                if !is_qualified_name(key) || !is_label_value(taint_value) || !effect_ok {
                    self.error(
                        &format!("machine.nodeTaints.{key}"),
                        format!("invalid machine node taints: invalid taint \"{key}={value}\""),
                    );
                }
            }
        }
    }

    /// `HostnameConfig` (Talos 1.12+) and its conflicts with the v1alpha1 document: a static
    /// `machine.network.hostname` or `machine.features.stableHostname` next to it is refused.
    fn hostname_config(&mut self, doc: &Value, v1alpha1: Option<&Value>) {
        let auto = doc.get("auto").map(Value::to_string);
        let hostname = text(doc.get("hostname"));
        // Talos 1.12 (the oracle's v1.12.0) also counts `auto: off` as unset; 1.13 only a
        // missing `auto`.
        let auto_unset = auto.is_none()
            || (self.version <= TalosVersion::V1_12 && auto.as_deref() == Some("off"));
        if auto_unset && hostname.is_none() {
            self.error("HostnameConfig", "either 'auto' or 'hostname' must be set");
        }
        let auto_kind = auto.as_deref().unwrap_or("off");
        if auto_kind != "off" && hostname.is_some() {
            self.error(
                "HostnameConfig.auto",
                "'auto' and 'hostname' cannot be set at the same time",
            );
        }
        if !matches!(auto_kind, "off" | "stable") {
            self.error(
                "HostnameConfig.auto",
                format!("invalid value for 'auto': {auto_kind}"),
            );
        }
        if let Some(hostname) = &hostname {
            if hostname.len() > 253 {
                self.error(
                    "HostnameConfig.hostname",
                    format!("fqdn is too long: {}", hostname.len()),
                );
            }
            let first = hostname.split('.').next().unwrap_or_default();
            if first.is_empty() || first.len() > 63 {
                self.error(
                    "HostnameConfig.hostname",
                    format!("invalid hostname {}", go_quote(first)),
                );
            }
        }
        let Some(v1alpha1) = v1alpha1 else { return };
        if text(v1alpha1.path("machine.network.hostname")).is_some() {
            self.error(
                "machine.network.hostname",
                "static hostname is already set in v1alpha1 config",
            );
        } else if is_true(v1alpha1.path("machine.features.stableHostname")) {
            self.error(
                "machine.features.stableHostname",
                "stable hostname is already set in v1alpha1 config",
            );
        }
    }

    /// `UserVolumeConfig`: its name (a partition label after `u-`), its volume type and, for
    /// partitions and disks, a disk selector and (partitions) a size; the filesystem type.
    /// Not covered yet: encryption, project quota support, CEL type checking.
    fn user_volume_config(&mut self, doc: &Value) {
        const MAX_NAME: usize = 36 - "u-".len();
        let name = text(doc.get("name")).unwrap_or_default();
        let path = format!("UserVolumeConfig/{name}");
        let name_path = format!("{path}.name");
        if name.is_empty() {
            self.error(&name_path, "name is required");
        }
        if name.is_empty() || name.len() > MAX_NAME {
            self.error(
                &name_path,
                format!("name must be between 1 and {MAX_NAME} characters long"),
            );
        }
        if name
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-'))
        {
            self.error(
                &name_path,
                "name can only contain lowercase and uppercase ASCII letters, digits, and hyphens",
            );
        }
        let volume_type = text(doc.get("volumeType")).unwrap_or_else(|| "partition".into());
        match volume_type.as_str() {
            "directory" => {
                for (key, what) in [
                    ("provisioning", "provisioning"),
                    ("encryption", "encryption"),
                    ("filesystem", "filesystem"),
                    ("mount", "mount"),
                ] {
                    if doc.get(key).is_some_and(|v| !v.is_empty_value()) {
                        self.error(
                            &format!("{path}.{key}"),
                            format!("{what} spec is invalid for volumeType directory"),
                        );
                    }
                }
            }
            "disk" | "partition" => {
                self.provisioning(doc.get("provisioning"), &path, volume_type == "partition");
                let filesystem = text(doc.path("filesystem.type")).unwrap_or_default();
                if !matches!(filesystem.as_str(), "" | "none" | "xfs" | "ext4") {
                    self.error(
                        &format!("{path}.filesystem.type"),
                        format!("unsupported filesystem type: {filesystem}"),
                    );
                }
            }
            other => self.error(
                &format!("{path}.volumeType"),
                format!("unsupported volume type {}", go_quote(other)),
            ),
        }
    }

    /// A required `ProvisioningSpec` of a user volume: a disk selector, and where sizes are
    /// supported a minimum or maximum size, the minimum not above the maximum.
    fn provisioning(&mut self, spec: Option<&Value>, path: &str, sizes: bool) {
        let field = |key: &str| text(spec.and_then(|s| s.path(key)));
        let path = format!("{path}.provisioning");
        if field("diskSelector.match").is_none() {
            self.error(&format!("{path}.diskSelector"), "disk selector is required");
        }
        let (min, max) = (field("minSize"), field("maxSize"));
        if !sizes {
            if min.is_some() || max.is_some() || spec.and_then(|s| s.get("grow")).is_some() {
                self.error(&path, "min size, max size and grow are not supported");
            }
            return;
        }
        match (&min, &max) {
            (Some(min), Some(max)) if !max.ends_with('%') && !max.starts_with('-') => {
                if let (Some(min), Some(max)) = (parse_byte_size(min), parse_byte_size(max))
                    && min > max
                {
                    self.error(&path, "min size is greater than max size");
                }
            }
            (None, None) => self.error(&path, "min size or max size is required"),
            _ => {}
        }
    }

    fn volume_config(&mut self, doc: &Value) {
        let name = doc.get("name").map(Value::to_string).unwrap_or_default();
        let path = format!("VolumeConfig/{name}");
        if !matches!(name.as_str(), "EPHEMERAL" | "IMAGECACHE" | "STATE") {
            self.error(
                &format!("{path}.name"),
                "only [\"EPHEMERAL\" \"IMAGECACHE\" \"STATE\"] volumes are supported",
            );
        }
        let size = |key: &str| text(doc.path(&format!("provisioning.{key}")));
        let mut parsed = Vec::new();
        for key in ["minSize", "maxSize"] {
            if let Some(value) = size(key) {
                match parse_byte_size(&value) {
                    Some(bytes) => parsed.push(bytes),
                    None => self.error(
                        &format!("{path}.provisioning.{key}"),
                        format!("invalid size \"{value}\""),
                    ),
                }
            }
        }
        if let [min, max] = parsed[..]
            && min > max
        {
            self.error(
                &format!("{path}.provisioning"),
                "min size is greater than max size",
            );
        }
    }
}

/// Talos 1.14's cross-document checks: the typed documents against the v1alpha1 document
/// (`V1Alpha1ConflictValidate`) and the container as a whole (`validateContainer`).
impl Checker {
    /// A typed document next to the v1alpha1 setting it replaces is refused (the first
    /// conflict of each document, as Talos reports it).
    fn conflicts_v1_14(&mut self, config: &MachineConfig) {
        let Some(v1) = config.v1alpha1() else { return };
        let present = |path: &str| v1.path(path).is_some_and(|v| !matches!(v, Value::Null));
        let non_empty = |path: &str| v1.path(path).is_some_and(|v| !v.is_empty_value());
        let admission = non_empty("cluster.apiServer.admissionControl");
        for doc in config.documents() {
            let Some(kind) = doc.get("kind").and_then(Value::as_str) else {
                continue;
            };
            let checks: Vec<(bool, &str, &str)> = match kind {
                "UnattendedInstallConfig" => vec![(
                    present("machine.install"),
                    "machine.install",
                    "UnattendedInstallConfig config is incompatible with v1alpha1 config (.machine.install)",
                )],
                "KubeAdmissionControlConfig" | "KubeAuthorizerConfig" => vec![(
                    admission,
                    "cluster.apiServer.admissionControl",
                    "admission control plugin config is already set in v1alpha1 config",
                )],
                "KubeAggregatorCAConfig" => vec![(
                    present("cluster.aggregatorCA"),
                    "cluster.aggregatorCA",
                    "kube-apiserver aggregator CA is already set in v1alpha1 config (.cluster.aggregatorCA), please remove it and use the new KubeAggregatorCAConfig document instead",
                )],
                "KubeAPIServerConfig" => vec![
                    (
                        present("cluster.apiServer"),
                        "cluster.apiServer",
                        "kube-apiserver config is already set in v1alpha1 config (.cluster.apiServer)",
                    ),
                    (
                        non_empty("cluster.controlPlane.localAPIServerPort"),
                        "cluster.controlPlane.localAPIServerPort",
                        "kube-apiserver API port is already set in v1alpha1 config (.cluster.controlPlane.localAPIServerPort)",
                    ),
                ],
                "KubeAPIServerCAConfig" => vec![(
                    present("cluster.ca"),
                    "cluster.ca",
                    "kube-apiserver CA is already set in v1alpha1 config (.cluster.ca)",
                )],
                "KubeAuditPolicyConfig" => vec![(
                    non_empty("cluster.apiServer.auditPolicy"),
                    "cluster.apiServer.auditPolicy",
                    "audit policy config is already set in v1alpha1 config",
                )],
                "KubeClusterConfig" => vec![
                    (
                        non_empty("cluster.clusterName"),
                        "cluster.clusterName",
                        "cluster name is already set in the v1alpha1 config (.cluster.clusterName). Please remove it and use only the new KubeClusterConfig document to avoid conflicts",
                    ),
                    (
                        present("cluster.controlPlane.endpoint"),
                        "cluster.controlPlane.endpoint",
                        "cluster endpoint is already set in the v1alpha1 config (.cluster.controlPlane.endpoint). Please remove it and use only the new KubeClusterConfig document to avoid conflicts",
                    ),
                ],
                "KubeControllerManagerConfig" => vec![
                    (
                        present("cluster.controllerManager"),
                        "cluster.controllerManager",
                        "kube-controller-manager config is already set in v1alpha1 config (.cluster.controllerManager)",
                    ),
                    (
                        present("machine.controlPlane.controllerManager"),
                        "machine.controlPlane.controllerManager",
                        "kube-controller-manager config is already set in v1alpha1 config (.machine.controlplane.controllerManager)",
                    ),
                ],
                "KubeCoreDNSConfig" => vec![(
                    present("cluster.coreDNS"),
                    "cluster.coreDNS",
                    "CoreDNS config is already set in v1alpha1 config (.cluster.coreDNS)",
                )],
                "KubeCredentialProviderConfig" => vec![(
                    present("machine.kubelet"),
                    "machine.kubelet",
                    "cannot use KubeCredentialProviderConfig with legacy kubelet configuration (.machine.kubelet)",
                )],
                "KubeEtcdEncryptionConfig" => vec![(
                    non_empty("cluster.secretboxEncryptionSecret")
                        || non_empty("cluster.aescbcEncryptionSecret"),
                    "cluster.secretboxEncryptionSecret",
                    "etcd encryption config is already set in v1alpha1 config",
                )],
                "KubeFlannelCNIConfig" => vec![(
                    present("cluster.network"),
                    "cluster.network",
                    "cluster network config in v1alpha1 config (.machine.cluster.network) can't be used with KubeFlannelCNIConfig document, please remove it to avoid conflicts",
                )],
                "KubeletConfig" => vec![(
                    present("machine.kubelet"),
                    "machine.kubelet",
                    "kubelet config is already set in v1alpha1 config (.machine.kubelet)",
                )],
                "KubePrismConfig" => vec![(
                    present("machine.features.kubePrism"),
                    "machine.features.kubePrism",
                    "KubePrism config in v1alpha1 config (.machine.features.kubePrism) can't be used with KubePrismConfig document, please remove it to avoid conflicts",
                )],
                "KubeNetworkConfig" => vec![(
                    present("cluster.network"),
                    "cluster.network",
                    "cluster network config is already set in the v1alpha1 config (.machine.cluster.network). Please remove it and use only the new KubeNetworkConfig document to avoid conflicts",
                )],
                "KubeNodeConfig" => vec![
                    (
                        present("cluster.allowSchedulingOnControlPlanes"),
                        "cluster.allowSchedulingOnControlPlanes",
                        ".cluster.allowSchedulingOnControlPlanes is already set in v1alpha1 config",
                    ),
                    (
                        present("cluster.allowSchedulingOnMasters"),
                        "cluster.allowSchedulingOnMasters",
                        ".cluster.allowSchedulingOnMasters is already set in v1alpha1 config",
                    ),
                    (
                        present("machine.kubelet.skipNodeRegistration"),
                        "machine.kubelet.skipNodeRegistration",
                        ".machine.kubelet.skipNodeRegistration is already set in v1alpha1 config",
                    ),
                    (
                        present("machine.kubelet.registerWithFQDN"),
                        "machine.kubelet.registerWithFQDN",
                        ".machine.kubelet.registerWithFQDN is already set in v1alpha1 config",
                    ),
                    (
                        present("machine.kubelet.nodeIP"),
                        "machine.kubelet.nodeIP",
                        ".machine.kubelet.nodeIP is already set in v1alpha1 config",
                    ),
                    (
                        present("machine.nodeLabels"),
                        "machine.nodeLabels",
                        ".machine.nodeLabels is already set in v1alpha1 config",
                    ),
                    (
                        present("machine.nodeAnnotations"),
                        "machine.nodeAnnotations",
                        ".machine.nodeAnnotations is already set in v1alpha1 config",
                    ),
                    (
                        present("machine.nodeTaints"),
                        "machine.nodeTaints",
                        ".machine.nodeTaints is already set in v1alpha1 config",
                    ),
                ],
                "KubeProxyConfig" => vec![(
                    present("cluster.proxy"),
                    "cluster.proxy",
                    "cluster proxy config in v1alpha1 config (.machine.cluster.proxy) can't be used with KubeProxyConfig document, please remove it to avoid conflicts",
                )],
                "KubeSchedulerConfig" => vec![
                    (
                        present("cluster.scheduler"),
                        "cluster.scheduler",
                        "kube-scheduler config is already set in v1alpha1 config (.cluster.scheduler)",
                    ),
                    (
                        present("machine.controlPlane.scheduler"),
                        "machine.controlPlane.scheduler",
                        "kube-scheduler config is already set in v1alpha1 config (.machine.controlplane.scheduler)",
                    ),
                ],
                "KubeServiceAccountConfig" => vec![(
                    present("cluster.serviceAccount"),
                    "cluster.serviceAccount",
                    "service account is already set in v1alpha1 config (.cluster.serviceAccount)",
                )],
                "KubeTalosAPIAccessConfig" => vec![(
                    present("machine.features.kubernetesTalosAPIAccess"),
                    "machine.features.kubernetesTalosAPIAccess",
                    ".machine.features.kubernetesTalosAPIAccess is already set in v1alpha1 config",
                )],
                "ResolverConfig" => vec![
                    (
                        present("machine.network.searchDomains"),
                        "machine.network.searchDomains",
                        ".machine.network.searchDomains is already set in v1alpha1 config",
                    ),
                    (
                        // Talos counts the nameservers that are IP addresses.
                        seq(v1.path("machine.network.nameservers"))
                            .iter()
                            .any(|ns| ns.to_string().parse::<IpAddr>().is_ok()),
                        "machine.network.nameservers",
                        ".machine.network.nameservers is already set in v1alpha1 config",
                    ),
                    (
                        is_true(v1.path("machine.network.disableSearchDomain")),
                        "machine.network.disableSearchDomain",
                        ".machine.network.disableSearchDomain is already set in v1alpha1 config",
                    ),
                    (
                        doc.get("hostDNS").is_some_and(|h| !h.is_empty_value())
                            && present("machine.features.hostDNS"),
                        "machine.features.hostDNS",
                        ".machine.features.hostDNS is already set in v1alpha1 config",
                    ),
                ],
                "KubeSpanConfig" => vec![(
                    present("machine.network.kubespan"),
                    "machine.network.kubespan",
                    "kubespan is already configured in v1alpha1 machine.network.kubespan",
                )],
                "DiscoveryIdentityConfig" => vec![(
                    non_empty("cluster.id") || non_empty("cluster.secret"),
                    "cluster.id",
                    "cluster identity is already configured in .cluster.id/.cluster.secret of the v1alpha1 config",
                )],
                "DiscoveryServiceConfig" => vec![(
                    present("cluster.discovery"),
                    "cluster.discovery",
                    "discovery service is already configured in .cluster.discovery of the v1alpha1 config",
                )],
                "ImageCacheConfig" => vec![(
                    present("machine.features.imageCache"),
                    "machine.features.imageCache",
                    "image cache config is already set in v1alpha1 config",
                )],
                "CRIBaseRuntimeSpecConfig" => vec![(
                    present("machine.baseRuntimeSpecOverrides"),
                    "machine.baseRuntimeSpecOverrides",
                    "base runtime spec overrides are already set in v1alpha1 config",
                )],
                _ => Vec::new(),
            };
            if let Some((_, path, message)) = checks.into_iter().find(|(hit, _, _)| *hit) {
                self.error(path, message);
            }
        }
    }

    /// The checks of the whole config: discovery needs a cluster identity, KubeSpan needs
    /// discovery, a control plane running kube-apiserver needs etcd encryption, Kubernetes needs
    /// a cluster name and endpoint, and control-plane-only documents stay off workers.
    fn container_v1_14(&mut self, config: &MachineConfig) {
        let v1 = config.v1alpha1();
        let v1_path = |path: &str| {
            v1.and_then(|d| d.path(path))
                .filter(|v| !matches!(v, Value::Null))
        };
        let docs_of = |kind: &str| -> Vec<&Value> {
            config
                .documents()
                .iter()
                .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
                .collect()
        };
        // Discovery: the v1alpha1 settings when they yield a service, else the documents.
        let legacy_discovery = is_true(v1_path("cluster.discovery.enabled"))
            && !is_true(v1_path("cluster.discovery.registries.service.disabled"));
        let discovery = legacy_discovery || !docs_of("DiscoveryServiceConfig").is_empty();
        if discovery {
            let legacy_id = text(v1_path("cluster.id"));
            let legacy_secret = text(v1_path("cluster.secret"));
            let (id, secret) = if legacy_id.is_some() || legacy_secret.is_some() {
                (legacy_id, legacy_secret)
            } else {
                let identity = docs_of("DiscoveryIdentityConfig");
                let identity = identity.first();
                (
                    text(identity.and_then(|d| d.get("clusterID"))),
                    text(identity.and_then(|d| d.get("clusterSecret"))),
                )
            };
            if id.is_none() {
                self.error(
                    "DiscoveryIdentityConfig.clusterID",
                    "cluster ID (.cluster.id or DiscoveryIdentityConfig) should be set when cluster discovery (DiscoveryServiceConfig) is enabled",
                );
            }
            if secret.is_none() {
                self.error(
                    "DiscoveryIdentityConfig.clusterSecret",
                    "cluster secret (.cluster.secret or DiscoveryIdentityConfig) should be set when cluster discovery (DiscoveryServiceConfig) is enabled",
                );
            }
        }
        let kubespan = match docs_of("KubeSpanConfig").first() {
            Some(doc) => is_true(doc.get("enabled")),
            None => is_true(v1_path("machine.network.kubespan.enabled")),
        };
        if kubespan && !discovery {
            self.error(
                "KubeSpanConfig.enabled",
                "KubeSpan requires cluster discovery to be enabled",
            );
        }
        let machine_type = text(v1_path("machine.type")).unwrap_or_default();
        let control_plane = matches!(machine_type.as_str(), "init" | "controlplane");
        let api_server_ca = !docs_of("KubeAPIServerCAConfig").is_empty()
            || v1_path("cluster.ca").is_some()
            || v1_path("cluster.acceptedCAs").is_some();
        if control_plane {
            if !docs_of("KubeAPIServerCAConfig").is_empty()
                || v1_path("cluster.ca").is_some()
                || v1_path("cluster.acceptedCAs").is_some()
            {
                let legacy_encryption = text(v1_path("cluster.secretboxEncryptionSecret"))
                    .is_some()
                    || text(v1_path("cluster.aescbcEncryptionSecret")).is_some();
                if !legacy_encryption && docs_of("KubeEtcdEncryptionConfig").is_empty() {
                    self.error(
                        "KubeEtcdEncryptionConfig",
                        "etcd encryption config is required for control plane machines running kube-apiserver",
                    );
                }
            }
            if let Some(node) = docs_of("KubeNodeConfig").first() {
                let labelled = node
                    .get("labels")
                    .and_then(Value::as_map)
                    .is_some_and(|m| m.iter().any(|(k, _)| k == CONTROL_PLANE_LABEL));
                if !labelled && !is_true(node.get("skipNodeRegistration")) {
                    self.document_warn(
                        "KubeNodeConfig.labels",
                        format!(
                            "KubeNodeConfig document should set the \"{CONTROL_PLANE_LABEL}\" node label on control plane machines \
                             (and, unless scheduling on control planes is allowed, the \"{CONTROL_PLANE_LABEL}: NoSchedule\" taint): \
                             unlike .machine.nodeLabels/.machine.nodeTaints, the document contents are used as-is"
                        ),
                    );
                }
            }
        }
        if api_server_ca
            && docs_of("KubeClusterConfig").is_empty()
            && v1_path("cluster.controlPlane.endpoint").is_none()
        {
            self.error(
                "KubeClusterConfig",
                "cluster name and endpoint are required when Kubernetes is configured: \
                 either .cluster.clusterName/.cluster.controlPlane.endpoint or the KubeClusterConfig document",
            );
        }
        if !control_plane {
            let mut kinds: Vec<&str> = config
                .documents()
                .iter()
                .filter_map(|d| d.get("kind").and_then(Value::as_str))
                .filter(|kind| CONTROL_PLANE_ONLY_KINDS.contains(kind))
                .collect();
            kinds.sort_unstable();
            kinds.dedup();
            if !kinds.is_empty() {
                self.error(
                    "",
                    format!(
                        "the following document kinds are only allowed on control plane machines: [{}]",
                        kinds.join(" ")
                    ),
                );
            }
        }
    }
}

/// The document kinds Talos 1.14 added (in its schema, not in 1.13's): talosctl 1.13 and
/// earlier refuse them as not registered.
const KINDS_SINCE_V1_14: &[&str] = &[
    "BGPInstanceConfig",
    "CRIBaseRuntimeSpecConfig",
    "CRICustomizationConfig",
    "ContainerConfig",
    "DiscoveryIdentityConfig",
    "DiscoveryServiceConfig",
    "EtcFileConfig",
    "FilesystemScrubConfig",
    "FilesystemTrimConfig",
    "HTTPProbeConfig",
    "ImageCacheConfig",
    "KernelModuleConfig",
    "KubeAPIServerCAConfig",
    "KubeAPIServerConfig",
    "KubeAdmissionControlConfig",
    "KubeAggregatorCAConfig",
    "KubeAuditPolicyConfig",
    "KubeAuthenticationConfig",
    "KubeAuthorizerConfig",
    "KubeClusterConfig",
    "KubeControllerManagerConfig",
    "KubeCoreDNSConfig",
    "KubeCredentialProviderConfig",
    "KubeEtcdEncryptionConfig",
    "KubeExternalManifestConfig",
    "KubeFlannelCNIConfig",
    "KubeInlineManifestConfig",
    "KubeNetworkConfig",
    "KubeNodeConfig",
    "KubePrismConfig",
    "KubeProxyConfig",
    "KubeSchedulerConfig",
    "KubeServiceAccountConfig",
    "KubeStaticPodConfig",
    "KubeTalosAPIAccessConfig",
    "KubeletConfig",
    "LVMLogicalVolumeConfig",
    "LVMVolumeGroupConfig",
    "RAIDArrayConfig",
    "SecurityProfileConfig",
    "SysctlConfig",
    "SysfsConfig",
    "UdevRulesConfig",
    "UnattendedInstallConfig",
    "VethConfig",
];

/// Kubernetes's control-plane node role label.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// The Talos 1.14 document kinds only a control plane may carry (`ControlplaneOnlyDocument`).
const CONTROL_PLANE_ONLY_KINDS: &[&str] = &[
    "KubeAPIServerConfig",
    "KubeAdmissionControlConfig",
    "KubeAggregatorCAConfig",
    "KubeAuditPolicyConfig",
    "KubeAuthenticationConfig",
    "KubeAuthorizerConfig",
    "KubeControllerManagerConfig",
    "KubeCoreDNSConfig",
    "KubeEtcdEncryptionConfig",
    "KubeFlannelCNIConfig",
    "KubeProxyConfig",
    "KubeSchedulerConfig",
    "KubeServiceAccountConfig",
    "KubeTalosAPIAccessConfig",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_validate(yaml: &str, expect: &[(&str, &str)]) {
        // These configs have the v1alpha1 layout of Talos 1.13 and earlier.
        let issues = validate_for(yaml, ValidationMode::Metal, true, TalosVersion::V1_13);
        let actual: Vec<(&str, &str)> = issues
            .iter()
            .map(|i| (i.path.as_str(), i.message.as_str()))
            .collect();
        assert_eq!(actual, expect);
    }

    const WORKER: &str = "version: v1alpha1\npersist: true\nmachine:\n  type: worker\n  token: abc\n  ca:\n    crt: Y3J0\n  install:\n    disk: /dev/sda\ncluster:\n  id: x\n  secret: y\n  controlPlane:\n    endpoint: https://c:6443\n  discovery:\n    enabled: true\n";

    #[test]
    fn valid_worker_has_no_issues() {
        check_validate(WORKER, &[]);
    }

    #[test]
    fn every_issue_is_reported_with_its_path() {
        let yaml = WORKER.replace("  install:\n    disk: /dev/sda\n", "  network:\n    nameservers: [1.1.1.1, nope]\n    interfaces:\n      - interface: eth0\n        addresses: [10.0.0.1/33]\n        vip:\n          ip: 10.0.0.9\n").replace("https://c:6443", "https://c:99999");
        check_validate(
            &yaml,
            &[
                (
                    "cluster.controlPlane.endpoint",
                    "invalid controlplane endpoint: port number must be between 1 and 65535",
                ),
                (
                    "machine.install",
                    "install instructions are required in \"metal\" mode",
                ),
                (
                    "machine.network.interfaces[0].addresses[0]",
                    "[networking.os.device.addresses] \"eth0\": invalid CIDR address: 10.0.0.1/33",
                ),
                (
                    "machine.network.interfaces[0].vip",
                    "virtual (shared) IP is not allowed on non-controlplane nodes",
                ),
            ],
        );
    }

    #[test]
    fn schema_problems_come_first_and_all_of_them() {
        check_validate(
            "machine:\n  type: worker\n  foo: bar\n  network:\n    nameservers:\n      addresses: [1.1.1.1]\n",
            &[
                ("machine.foo", "unknown key"),
                (
                    "machine.network.nameservers",
                    "cannot unmarshal !!map into []string",
                ),
            ],
        );
    }

    #[test]
    fn kinds_of_talos_1_14_are_unknown_to_earlier_releases() {
        let config = format!("{WORKER}---\napiVersion: v1alpha1\nkind: KubeletConfig\nimage: k\n");
        assert_eq!(
            validate_for(&config, ValidationMode::Metal, true, TalosVersion::V1_13),
            [Issue::new(
                "",
                "\"KubeletConfig\" \"v1alpha1\": not registered"
            )]
        );
        assert!(
            !validate_for(&config, ValidationMode::Metal, true, TalosVersion::V1_14)
                .iter()
                .any(|i| i.message.contains("not registered"))
        );
    }

    #[test]
    fn strict_turns_warnings_into_issues() {
        let yaml = WORKER.replace("type: worker", "type: \"\"");
        check_validate(
            &yaml,
            &[(
                "machine.type",
                "warning: use \"worker\" instead of \"\" for machine type",
            )],
        );
        assert!(validate(&yaml, ValidationMode::Metal, false).is_empty());
    }

    #[test]
    fn report_keeps_warnings_apart_from_errors_with_their_paths() {
        let yaml =
            format!("{WORKER}---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: data\n")
                .replace("type: worker", "type: \"\"");
        let report = validate_report(&yaml, ValidationMode::Metal, false, TalosVersion::V1_13);
        assert_eq!(
            report.warnings,
            [Issue::new(
                "machine.type",
                "use \"worker\" instead of \"\" for machine type"
            )]
        );
        assert_eq!(
            report.errors,
            [
                Issue::new(
                    "UserVolumeConfig/data.provisioning.diskSelector",
                    "disk selector is required"
                ),
                Issue::new(
                    "UserVolumeConfig/data.provisioning",
                    "min size or max size is required"
                ),
            ]
        );
        assert!(!report.is_valid());
    }

    #[test]
    fn volume_config_sizes() {
        let yaml = format!(
            "{WORKER}---\napiVersion: v1alpha1\nkind: VolumeConfig\nname: EPHEMERAL\nprovisioning:\n  minSize: 10GB\n  maxSize: 1GiB\n"
        );
        check_validate(
            &yaml,
            &[(
                "VolumeConfig/EPHEMERAL.provisioning",
                "min size is greater than max size",
            )],
        );
    }
}
