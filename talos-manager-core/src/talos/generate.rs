//! Native `talosctl gen config`: the controlplane and worker documents for a version contract,
//! built from a secrets bundle and the generator options, before patches.

use super::document::MachineConfig;
use super::secrets::SecretsBundle;
use super::yaml::{Mapping, Value};

/// A Talos version contract: which Talos release the generated config targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TalosVersion {
    /// Talos 1.8.
    V1_8,
    /// Talos 1.9.
    V1_9,
    /// Talos 1.10.
    V1_10,
    /// Talos 1.11.
    V1_11,
    /// Talos 1.12 (multi-document output).
    V1_12,
    /// Talos 1.13: no empty `machine.network`, KubeSpan as a `KubeSpanConfig` document,
    /// always persisted.
    V1_13,
    /// Talos 1.14: most of `machine.*` and `cluster.*` as typed documents (`KubeletConfig`,
    /// `KubeAPIServerConfig`, `UnattendedInstallConfig`, …), PEM text keys, the Image
    /// Factory's installer.
    V1_14,
}

impl TalosVersion {
    /// Every supported contract, oldest first.
    pub const ALL: [TalosVersion; 7] = [
        TalosVersion::V1_8,
        TalosVersion::V1_9,
        TalosVersion::V1_10,
        TalosVersion::V1_11,
        TalosVersion::V1_12,
        TalosVersion::V1_13,
        TalosVersion::V1_14,
    ];

    /// The newest contract, talosctl's default and the default of new configs.
    pub const LATEST: TalosVersion = TalosVersion::V1_14;

    /// Parses `v1.10`, `1.10` or a full version such as `v1.10.4`.
    pub fn parse(text: &str) -> Option<TalosVersion> {
        let text = text.trim().trim_start_matches('v');
        let mut parts = text.split('.');
        let (major, minor) = (parts.next()?, parts.next()?);
        if major != "1" {
            return None;
        }
        TalosVersion::ALL
            .into_iter()
            .find(|v| v.minor().to_string() == minor)
    }

    /// The contract for a target Talos version (an installer tag, a schematic's or the
    /// settings' version: `v1.13.9`, `1.13`): the one of its minor version; for a 1.x minor
    /// newer than every contract, the newest contract together with a [`NewerTalosVersion`]
    /// to show. `None` for text that is not a Talos version or a minor older than 1.8.
    pub fn for_target(text: &str) -> Option<(TalosVersion, Option<NewerTalosVersion>)> {
        if let Some(version) = TalosVersion::parse(text) {
            return Some((version, None));
        }
        let trimmed = text.trim().trim_start_matches('v');
        let mut parts = trimmed.split('.');
        let (major, minor) = (parts.next()?, parts.next()?);
        let minor: u32 = minor.parse().ok()?;
        (major == "1" && minor > TalosVersion::LATEST.minor()).then(|| {
            (
                TalosVersion::LATEST,
                Some(NewerTalosVersion {
                    release: format!("v1.{minor}"),
                    latest: TalosVersion::LATEST,
                }),
            )
        })
    }

    const fn minor(self) -> u32 {
        match self {
            TalosVersion::V1_8 => 8,
            TalosVersion::V1_9 => 9,
            TalosVersion::V1_10 => 10,
            TalosVersion::V1_11 => 11,
            TalosVersion::V1_12 => 12,
            TalosVersion::V1_13 => 13,
            TalosVersion::V1_14 => 14,
        }
    }

    /// The newest release of this line talos-manager knows, the tag of its installer image
    /// (`ghcr.io/siderolabs/installer:<tag>`) and of its Image Factory images.
    pub const fn release(self) -> &'static str {
        match self {
            TalosVersion::V1_8 => "v1.8.4",
            TalosVersion::V1_9 => "v1.9.6",
            TalosVersion::V1_10 => "v1.10.9",
            TalosVersion::V1_11 => "v1.11.6",
            TalosVersion::V1_12 => "v1.12.11",
            TalosVersion::V1_13 => "v1.13.9",
            TalosVersion::V1_14 => "v1.14.1",
        }
    }

    /// The Kubernetes version the last talosctl release of this line uses by default
    /// (`--kubernetes-version` unset): 1.8.4, 1.9.6, 1.10.9, 1.11.6, 1.12.0, 1.13.9 and 1.14.1
    /// (`constants.DefaultKubernetesVersion`).
    pub const fn default_kubernetes_version(self) -> &'static str {
        match self {
            TalosVersion::V1_8 => "1.31.4",
            TalosVersion::V1_9 => "1.32.4",
            TalosVersion::V1_10 => "1.33.6",
            TalosVersion::V1_11 => "1.34.1",
            TalosVersion::V1_12 => "1.35.0",
            TalosVersion::V1_13 => "1.36.3",
            TalosVersion::V1_14 => "1.37.0",
        }
    }

    /// The installer image talosctl's `--install-image` defaults to: Sidero's
    /// `ghcr.io/siderolabs/installer:<release>` up to 1.13; from 1.14 on (whose installer is
    /// no longer published there) the Image Factory's `metal-installer` of the vanilla
    /// schematic ([`VANILLA_SCHEMATIC`]) at the release.
    pub fn default_installer_image(self) -> String {
        if self.typed_documents() {
            format!(
                "factory.talos.dev/metal-installer/{VANILLA_SCHEMATIC}:{}",
                self.release()
            )
        } else {
            format!("ghcr.io/siderolabs/installer:{}", self.release())
        }
    }

    /// Whether `machine.*` and `cluster.*` are typed documents (`KubeletConfig`, …) and the
    /// install settings an `UnattendedInstallConfig`: 1.14 on
    /// (`MultidocKubernetesConfigSupported` of Talos's version contract).
    pub fn typed_documents(self) -> bool {
        self >= TalosVersion::V1_14
    }

    /// Whether generated configs are multi-document (HostnameConfig, RegistryMirrorConfig).
    pub fn multi_document(self) -> bool {
        self >= TalosVersion::V1_12
    }

    /// Whether KubeSpan is its own `KubeSpanConfig` document (and an unused `machine.network`
    /// is left out): 1.13 on (`KubeSpanMultidocConfig` of Talos's version contract).
    pub fn kubespan_document(self) -> bool {
        self >= TalosVersion::V1_13
    }
}

/// The Image Factory's schematic without customisation (no extensions, no kernel arguments).
pub const VANILLA_SCHEMATIC: &str =
    "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

impl std::fmt::Display for TalosVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v1.{}", self.minor())
    }
}

/// A target Talos version newer than every contract talos-manager knows: its configs are
/// written for the newest contract, which newer Talos releases accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Talos {release} is newer than the newest config format talos-manager knows ({latest}); \
     its configs are generated for {latest}"
)]
pub struct NewerTalosVersion {
    /// The target minor version (`v1.15`).
    pub release: String,
    /// The contract used instead.
    pub latest: TalosVersion,
}

/// The machine types `gen config` produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MachineType {
    /// A control-plane node.
    ControlPlane,
    /// A worker node.
    Worker,
}

impl MachineType {
    /// `controlplane` or `worker`, as in `machine.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            MachineType::ControlPlane => "controlplane",
            MachineType::Worker => "worker",
        }
    }

    /// `controlplane` or `worker` (as [`MachineType::as_str`] spells them).
    pub fn parse(text: &str) -> Result<MachineType, UnknownMachineType> {
        match text {
            "controlplane" => Ok(MachineType::ControlPlane),
            "worker" => Ok(MachineType::Worker),
            other => Err(UnknownMachineType(other.to_owned())),
        }
    }
}

/// A machine type that is neither `controlplane` nor `worker`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither \"controlplane\" nor \"worker\"")]
pub struct UnknownMachineType(pub String);

impl TryFrom<String> for MachineType {
    type Error = UnknownMachineType;

    fn try_from(text: String) -> Result<MachineType, UnknownMachineType> {
        MachineType::parse(&text)
    }
}

/// A CNI choice (`cluster.network.cni`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cni {
    /// `flannel`, `custom` or `none`.
    pub name: String,
    /// Manifest URLs for `custom`.
    pub urls: Vec<String>,
}

/// The options of `talosctl gen config` (and the generator options it does not expose as
/// flags, which the stability goldens use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Cluster name (`cluster.clusterName`).
    pub cluster_name: String,
    /// Cluster endpoint, `https://host:port`.
    pub endpoint: String,
    /// Kubernetes version (a leading `v` is dropped); empty leaves every image out.
    pub kubernetes_version: String,
    /// The version contract.
    pub talos_version: TalosVersion,
    /// `machine.install.disk` (`--install-disk`); from 1.14 on the disk selector of the
    /// `UnattendedInstallConfig` document, which is only written when a disk is set.
    pub install_disk: Option<String>,
    /// `machine.install.image` (`--install-image`); from 1.14 on `installer.image` of the
    /// `UnattendedInstallConfig` document.
    pub install_image: Option<String>,
    /// `--with-kubespan`.
    pub kubespan: bool,
    /// `--with-cluster-discovery` (default on).
    pub cluster_discovery: bool,
    /// `--additional-sans`.
    pub additional_sans: Vec<String>,
    /// `--dns-domain` (default `cluster.local`).
    pub dns_domain: String,
    /// `--registry-mirror host=url`, in order.
    pub registry_mirrors: Vec<(String, String)>,
    /// `cluster.allowSchedulingOnControlPlanes`.
    pub allow_scheduling_on_control_planes: bool,
    /// `machine.install.extraKernelArgs`; Talos 1.14's generator has no place for them and
    /// drops them (they belong in the Image Factory schematic).
    pub extra_kernel_args: Vec<String>,
    /// `cluster.controlPlane.localAPIServerPort`.
    pub local_api_server_port: Option<u16>,
    /// `machine.sysctls`.
    pub sysctls: Vec<(String, String)>,
    /// `cluster.network.cni`; from 1.14 on only `custom` with a URL changes anything (a
    /// `KubeExternalManifestConfig` named `custom-cni` replaces the Flannel document), as
    /// Talos 1.14's generator has only a custom CNI URL.
    pub cni: Option<Cni>,
}

impl GenerateOptions {
    /// The generator's defaults for a cluster name, endpoint and Kubernetes version: newest
    /// contract, discovery on, `cluster.local`, no install disk or image.
    ///
    /// talosctl's *command line* additionally defaults `--install-disk` to `/dev/sda` and
    /// `--install-image` to its own installer; a CLI mirroring it sets those fields.
    pub fn new(
        cluster_name: impl Into<String>,
        endpoint: impl Into<String>,
        kubernetes_version: impl Into<String>,
    ) -> Self {
        GenerateOptions {
            cluster_name: cluster_name.into(),
            endpoint: endpoint.into(),
            kubernetes_version: kubernetes_version.into(),
            talos_version: TalosVersion::LATEST,
            install_disk: None,
            install_image: None,
            kubespan: false,
            cluster_discovery: true,
            additional_sans: Vec::new(),
            dns_domain: "cluster.local".to_owned(),
            registry_mirrors: Vec::new(),
            allow_scheduling_on_control_planes: false,
            extra_kernel_args: Vec::new(),
            local_api_server_port: None,
            sysctls: Vec::new(),
            cni: None,
        }
    }
}

/// A cluster endpoint that talosctl would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// No scheme and no port.
    #[error(
        "no scheme and port specified for the cluster endpoint URL\ntry: \"https://{endpoint}:6443\""
    )]
    NoSchemeNoPort {
        /// The endpoint given.
        endpoint: String,
    },
    /// No scheme.
    #[error("no scheme specified for the cluster endpoint URL\ntry: \"https://{endpoint}\"")]
    NoScheme {
        /// The endpoint given.
        endpoint: String,
    },
    /// A scheme other than https.
    #[error("the control plane endpoint URL should have scheme https://\ntry: \"https://{rest}\"")]
    NotHttps {
        /// The endpoint without its scheme.
        rest: String,
    },
    /// An empty host.
    #[error("error validating the cluster endpoint URL: hostname must not be blank")]
    BlankHost,
    /// A port that is not a number in 1..=65535.
    #[error("error validating the cluster endpoint URL: port number must be between 1 and 65535")]
    BadPort,
    /// An IPv6 address without brackets.
    #[error(
        "error validating the cluster endpoint URL: IPv6 addresses MUST be enclosed by square brackets"
    )]
    UnbracketedIpv6,
}

/// Checks an endpoint as talosctl does and returns its host (without port and brackets).
pub fn endpoint_host(endpoint: &str) -> Result<String, EndpointError> {
    let Some((scheme, rest)) = endpoint.split_once("://") else {
        let has_port = endpoint
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty());
        return Err(if has_port {
            EndpointError::NoScheme {
                endpoint: endpoint.to_owned(),
            }
        } else {
            EndpointError::NoSchemeNoPort {
                endpoint: endpoint.to_owned(),
            }
        });
    };
    if scheme != "https" {
        return Err(EndpointError::NotHttps {
            rest: rest.to_owned(),
        });
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or(EndpointError::UnbracketedIpv6)?;
        (host, after.strip_prefix(':'))
    } else if authority.matches(':').count() > 1 {
        return Err(EndpointError::UnbracketedIpv6);
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(EndpointError::BlankHost);
    }
    if let Some(port) = port {
        match port.parse::<u32>() {
            Ok(1..=65535) => {}
            _ => return Err(EndpointError::BadPort),
        }
    }
    Ok(host.to_owned())
}

/// A YAML mapping with its keys in the order given.
pub(super) fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// A YAML sequence of strings.
pub(super) fn strs(items: &[String]) -> Value {
    Value::Seq(items.iter().map(Value::str).collect())
}

fn pair(crt: &str, key: &str) -> Value {
    map(vec![("crt", Value::str(crt)), ("key", Value::str(key))])
}

/// Builds the config `gen config` makes for `machine_type` before any patch.
pub(crate) fn generate(
    options: &GenerateOptions,
    secrets: &SecretsBundle,
    machine_type: MachineType,
) -> Result<MachineConfig, EndpointError> {
    let host = endpoint_host(&options.endpoint)?;
    let version = options.talos_version;
    if version.typed_documents() {
        return Ok(super::generate_v1_14::generate(
            options,
            secrets,
            machine_type,
        ));
    }
    let control_plane = machine_type == MachineType::ControlPlane;
    let k8s = options.kubernetes_version.trim_start_matches('v');
    let image = |repo: &str| (!k8s.is_empty()).then(|| Value::str(format!("{repo}:v{k8s}")));

    // machine
    let mut machine: Mapping = vec![
        ("type".into(), Value::str(machine_type.as_str())),
        ("token".into(), Value::str(&secrets.trustd_token)),
        (
            "ca".into(),
            pair(
                &secrets.os.crt,
                if control_plane { &secrets.os.key } else { "" },
            ),
        ),
        ("certSANs".into(), strs(&options.additional_sans)),
    ];
    let mut kubelet = Vec::new();
    if let Some(image) = image("ghcr.io/siderolabs/kubelet") {
        kubelet.push(("image".to_owned(), image));
    }
    kubelet.push((
        "defaultRuntimeSeccompProfileEnabled".into(),
        Value::Bool(true),
    ));
    kubelet.push(("disableManifestsDirectory".into(), Value::Bool(true)));
    machine.push(("kubelet".into(), Value::Map(kubelet)));
    if options.kubespan && !version.kubespan_document() {
        machine.push((
            "network".into(),
            map(vec![(
                "kubespan",
                map(vec![("enabled", Value::Bool(true))]),
            )]),
        ));
    } else if !version.kubespan_document() {
        machine.push(("network".into(), Value::Map(Vec::new())));
    }
    let mut install = Vec::new();
    if let Some(disk) = options.install_disk.as_deref().filter(|d| !d.is_empty()) {
        install.push(("disk".to_owned(), Value::str(disk)));
    }
    if !options.extra_kernel_args.is_empty() {
        install.push(("extraKernelArgs".into(), strs(&options.extra_kernel_args)));
    }
    if let Some(image) = options.install_image.as_deref().filter(|i| !i.is_empty()) {
        install.push(("image".into(), Value::str(image)));
    }
    install.push(("wipe".into(), Value::Bool(false)));
    if version >= TalosVersion::V1_12 {
        install.push(("grubUseUKICmdline".into(), Value::Bool(true)));
    }
    machine.push(("install".into(), Value::Map(install)));
    if !options.sysctls.is_empty() {
        let sysctls = options
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), Value::str(v)))
            .collect();
        machine.push(("sysctls".into(), Value::Map(sysctls)));
    }
    if !options.registry_mirrors.is_empty() && !version.multi_document() {
        let mirrors = options
            .registry_mirrors
            .iter()
            .map(|(host, url)| {
                (
                    host.clone(),
                    map(vec![("endpoints", Value::Seq(vec![Value::str(url)]))]),
                )
            })
            .collect();
        machine.push((
            "registries".into(),
            map(vec![("mirrors", Value::Map(mirrors))]),
        ));
    }
    let mut features = Vec::new();
    if version < TalosVersion::V1_12 {
        features.push(("rbac".to_owned(), Value::Bool(true)));
        features.push(("stableHostname".into(), Value::Bool(true)));
        features.push(("apidCheckExtKeyUsage".into(), Value::Bool(true)));
    }
    features.push(("diskQuotaSupport".into(), Value::Bool(true)));
    features.push((
        "kubePrism".into(),
        map(vec![
            ("enabled", Value::Bool(true)),
            ("port", Value::Int(7445)),
        ]),
    ));
    features.push((
        "hostDNS".into(),
        map(vec![
            ("enabled", Value::Bool(true)),
            ("forwardKubeDNSToHost", Value::Bool(true)),
        ]),
    ));
    machine.push(("features".into(), Value::Map(features)));
    if control_plane {
        machine.push((
            "nodeLabels".into(),
            map(vec![(
                "node.kubernetes.io/exclude-from-external-load-balancers",
                Value::str(""),
            )]),
        ));
    }

    // cluster
    let mut control_plane_section = vec![("endpoint".to_owned(), Value::str(&options.endpoint))];
    if let (true, Some(port)) = (control_plane, options.local_api_server_port) {
        control_plane_section.push(("localAPIServerPort".into(), Value::Int(i64::from(port))));
    }
    let mut cluster: Mapping = vec![
        ("id".into(), Value::str(&secrets.cluster_id)),
        ("secret".into(), Value::str(&secrets.cluster_secret)),
        ("controlPlane".into(), Value::Map(control_plane_section)),
        ("clusterName".into(), Value::str(&options.cluster_name)),
    ];
    let mut network = Vec::new();
    if let Some(cni) = &options.cni {
        let mut cni_map = vec![("name".to_owned(), Value::str(&cni.name))];
        if !cni.urls.is_empty() {
            cni_map.push(("urls".into(), strs(&cni.urls)));
        }
        network.push(("cni".to_owned(), Value::Map(cni_map)));
    }
    network.push(("dnsDomain".into(), Value::str(&options.dns_domain)));
    network.push((
        "podSubnets".into(),
        Value::Seq(vec![Value::str("10.244.0.0/16")]),
    ));
    network.push((
        "serviceSubnets".into(),
        Value::Seq(vec![Value::str("10.96.0.0/12")]),
    ));
    cluster.push(("network".into(), Value::Map(network)));
    cluster.push(("token".into(), Value::str(&secrets.bootstrap_token)));
    if control_plane {
        if let Some(secret) = &secrets.aescbc_encryption_secret {
            cluster.push(("aescbcEncryptionSecret".into(), Value::str(secret)));
        }
        if let Some(secret) = &secrets.secretbox_encryption_secret {
            cluster.push(("secretboxEncryptionSecret".into(), Value::str(secret)));
        }
    }
    cluster.push((
        "ca".into(),
        pair(
            &secrets.k8s.crt,
            if control_plane { &secrets.k8s.key } else { "" },
        ),
    ));
    if control_plane {
        cluster.push((
            "aggregatorCA".into(),
            pair(&secrets.k8s_aggregator.crt, &secrets.k8s_aggregator.key),
        ));
        cluster.push((
            "serviceAccount".into(),
            map(vec![("key", Value::str(&secrets.k8s_service_account_key))]),
        ));
        let mut api_server = Vec::new();
        if let Some(image) = image("registry.k8s.io/kube-apiserver") {
            api_server.push(("image".to_owned(), image));
        }
        let mut sans = Vec::new();
        if version < TalosVersion::V1_12 {
            sans.push(host.clone());
        }
        sans.extend(options.additional_sans.iter().cloned());
        api_server.push(("certSANs".into(), strs(&sans)));
        if version < TalosVersion::V1_12 {
            api_server.push(("disablePodSecurityPolicy".into(), Value::Bool(true)));
        }
        api_server.push((
            "admissionControl".into(),
            Value::Seq(vec![pod_security_admission()]),
        ));
        api_server.push((
            "auditPolicy".into(),
            map(vec![
                ("apiVersion", Value::str("audit.k8s.io/v1")),
                ("kind", Value::str("Policy")),
                (
                    "rules",
                    Value::Seq(vec![map(vec![("level", Value::str("Metadata"))])]),
                ),
            ]),
        ));
        cluster.push(("apiServer".into(), Value::Map(api_server)));
        for (key, repo) in [
            (
                "controllerManager",
                "registry.k8s.io/kube-controller-manager",
            ),
            ("proxy", "registry.k8s.io/kube-proxy"),
            ("scheduler", "registry.k8s.io/kube-scheduler"),
        ] {
            let section = image(repo)
                .map(|i| vec![("image".to_owned(), i)])
                .unwrap_or_default();
            cluster.push((key.into(), Value::Map(section)));
        }
    }
    cluster.push((
        "discovery".into(),
        map(vec![
            ("enabled", Value::Bool(options.cluster_discovery)),
            (
                "registries",
                map(vec![
                    ("kubernetes", map(vec![("disabled", Value::Bool(true))])),
                    ("service", Value::Map(Vec::new())),
                ]),
            ),
        ]),
    ));
    if control_plane {
        cluster.push((
            "etcd".into(),
            map(vec![("ca", pair(&secrets.etcd.crt, &secrets.etcd.key))]),
        ));
        if options.allow_scheduling_on_control_planes {
            cluster.push(("allowSchedulingOnControlPlanes".into(), Value::Bool(true)));
        }
    }

    let mut documents = vec![map(vec![
        ("version", Value::str("v1alpha1")),
        ("debug", Value::Bool(false)),
        ("persist", Value::Bool(true)),
        ("machine", Value::Map(machine)),
        ("cluster", Value::Map(cluster)),
    ])];
    if version.multi_document() {
        for (host, url) in &options.registry_mirrors {
            documents.push(map(vec![
                ("apiVersion", Value::str("v1alpha1")),
                ("kind", Value::str("RegistryMirrorConfig")),
                ("name", Value::str(host)),
                (
                    "endpoints",
                    Value::Seq(vec![map(vec![("url", Value::str(url))])]),
                ),
            ]));
        }
        documents.push(map(vec![
            ("apiVersion", Value::str("v1alpha1")),
            ("kind", Value::str("HostnameConfig")),
            ("auto", Value::str("stable")),
        ]));
    }
    if options.kubespan && version.kubespan_document() {
        documents.push(map(vec![
            ("apiVersion", Value::str("v1alpha1")),
            ("kind", Value::str("KubeSpanConfig")),
            ("enabled", Value::Bool(true)),
        ]));
    }
    Ok(MachineConfig::from_documents(documents))
}

pub(crate) fn pod_security_admission() -> Value {
    let latest = || Value::str("latest");
    map(vec![
        ("name", Value::str("PodSecurity")),
        (
            "configuration",
            map(vec![
                (
                    "apiVersion",
                    Value::str("pod-security.admission.config.k8s.io/v1alpha1"),
                ),
                ("kind", Value::str("PodSecurityConfiguration")),
                (
                    "defaults",
                    map(vec![
                        ("enforce", Value::str("baseline")),
                        ("enforce-version", latest()),
                        ("audit", Value::str("restricted")),
                        ("audit-version", latest()),
                        ("warn", Value::str("restricted")),
                        ("warn-version", latest()),
                    ]),
                ),
                (
                    "exemptions",
                    map(vec![
                        ("usernames", Value::Seq(Vec::new())),
                        ("runtimeClasses", Value::Seq(Vec::new())),
                        ("namespaces", Value::Seq(vec![Value::str("kube-system")])),
                    ]),
                ),
            ]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talos_1_14_is_the_newest_contract_with_the_factory_installer() {
        assert_eq!(TalosVersion::LATEST, TalosVersion::V1_14);
        assert_eq!(TalosVersion::parse("v1.14.1"), Some(TalosVersion::V1_14));
        assert_eq!(TalosVersion::V1_14.default_kubernetes_version(), "1.37.0");
        assert_eq!(
            TalosVersion::V1_14.default_installer_image(),
            format!("factory.talos.dev/metal-installer/{VANILLA_SCHEMATIC}:v1.14.1")
        );
        assert_eq!(
            TalosVersion::V1_13.default_installer_image(),
            "ghcr.io/siderolabs/installer:v1.13.9"
        );
        assert!(TalosVersion::V1_14.typed_documents() && !TalosVersion::V1_13.typed_documents());
    }
}
