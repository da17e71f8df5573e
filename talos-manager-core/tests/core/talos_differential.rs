//! The differential test: random but valid inputs (generator options, Kubernetes versions,
//! patches of several shapes, broken patches, configs with one field mutated) run through our
//! engine and through Talos's own `pkg/machinery` (the oracle of `tests/talos-oracle/`, built by
//! `scripts/test`), version by version. `gen config` must be byte-equal, patches must give the
//! same document (or both fail), validation must give the same verdict and the same issues.
//!
//! Bounded for CI: `TALOS_DIFFERENTIAL_CASES` cases per version (default 200), seeded by
//! `TALOS_DIFFERENTIAL_SEED` (default fixed, so CI is reproducible); `scripts/differential N
//! [seed]` runs more. Every divergence found this way became a data case of the golden tests.

use std::path::Path;
use std::time::Instant;

use serde_json::{Value as Json, json};
use talos_manager_core::talos::{
    Cni, ConfigEngine, GenerateInput, GenerateOptions, MachineConfig, MachineType, Patch,
    SecretsBundle, TalosVersion, ValidationMode, ValidationReport, validate_report,
    yaml::{self, Value as YamlValue},
};

/// The versions with an oracle (see tests/talos-oracle/README.md for 1.14).
const VERSIONS: &[TalosVersion] = &[
    TalosVersion::V1_12,
    TalosVersion::V1_13,
    TalosVersion::V1_14,
];

/// Runs a batch of requests through the oracle of `version` (the shared runner of the `tests`
/// crate: `$TALOS_MANAGER_TALOS_ORACLE_DIR/talos-oracle-v1.N`; missing is a failure, never a
/// skip).
fn ask(version: TalosVersion, requests: &[Json]) -> Vec<Json> {
    talos_manager_e2e::talos_oracle::ask(version, requests)
}

/// SplitMix64: small, seedable, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A random subset of `items`, in their order.
    fn subset<T: Clone>(&mut self, items: &[T]) -> Vec<T> {
        items.iter().filter(|_| self.chance(40)).cloned().collect()
    }
}

fn secrets_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/talos/stability/secrets.yaml"),
    )
    .unwrap()
}

const KUBERNETES: &[&str] = &[
    "1.28.0", "1.30.1", "v1.31.4", "1.32.4", "1.33.6", "1.34.1", "1.35.0",
];

/// Random generator options for `version`.
fn random_options(rng: &mut Rng, version: TalosVersion) -> GenerateOptions {
    let name = *rng.pick(&["demo", "prod-1", "a", "my.cluster", "Cluster_X"]);
    let endpoint = *rng.pick(&[
        "https://10.0.0.1:6443",
        "https://cp.example.com:6443",
        "https://[2001:db8::1]:6443",
        "https://cp.example.com",
        "https://cp.example.com:443",
    ]);
    let mut options = GenerateOptions::new(name, endpoint, *rng.pick(KUBERNETES));
    options.talos_version = version;
    options.install_disk = rng
        .pick(&[None, Some("/dev/sda"), Some("/dev/nvme0n1")])
        .map(str::to_owned);
    options.install_image = rng
        .pick(&[
            None,
            Some("ghcr.io/siderolabs/installer:v1.12.0"),
            Some("factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.13.9"),
            Some("factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.1"),
        ])
        .map(str::to_owned);
    options.kubespan = rng.chance(30);
    options.cluster_discovery = !rng.chance(20);
    options.additional_sans = rng.subset(&["10.0.0.2".to_owned(), "cp.example.org".to_owned()]);
    if rng.chance(20) {
        options.dns_domain = "example.com".into();
    }
    // Sorted by host, as talosctl 1.12.11 and 1.13 write them. talosctl 1.12.0 (the 1.12
    // oracle) writes them in Go's random map order, so 1.12 gets one at most.
    options.registry_mirrors = rng.subset(&[
        (
            "docker.io".to_owned(),
            "https://mirror.example.com/docker".to_owned(),
        ),
        (
            "ghcr.io".to_owned(),
            "https://ghcr.io.my-mirror.com".to_owned(),
        ),
    ]);
    if version == TalosVersion::V1_12 {
        options.registry_mirrors.truncate(1);
    }
    // Talos 1.14 sorts the mirror documents itself and gives a host all its endpoints.
    if version.typed_documents() {
        if rng.chance(30) {
            options.registry_mirrors.push((
                "docker.io".to_owned(),
                "https://mirror2.example.com".to_owned(),
            ));
        }
        if rng.chance(50) {
            options.registry_mirrors.reverse();
        }
    }
    options.allow_scheduling_on_control_planes = rng.chance(20);
    if rng.chance(20) {
        options.extra_kernel_args = vec!["cpufreq.default_governor=performance".into()];
    }
    if rng.chance(15) {
        options.local_api_server_port = Some(5443);
    }
    // Sorted by key, as Go writes a map.
    options.sysctls = rng.subset(&[
        ("net.core.somaxconn".to_owned(), "65535".to_owned()),
        ("vm.max_map_count".to_owned(), "262144".to_owned()),
    ]);
    options.cni = match rng.below(6) {
        0 => Some(Cni {
            name: "none".into(),
            urls: Vec::new(),
        }),
        1 => Some(Cni {
            name: "custom".into(),
            urls: vec!["https://example.com/cni.yaml".into()],
        }),
        2 => Some(Cni {
            name: "flannel".into(),
            urls: Vec::new(),
        }),
        _ => None,
    };
    options
}

/// A patch for Talos 1.14's typed documents: merged by kind (and name), deleting a document
/// or a key, mixed with v1alpha1 keys, or adding a control-plane-only document to any node.
fn random_typed_patch(rng: &mut Rng) -> String {
    let label = *rng.pick(&["zone", "topology.kubernetes.io/zone", "tier"]);
    match rng.below(12) {
        0 => "apiVersion: v1alpha1\nkind: KubeletConfig\nclusterDNS:\n  - 10.96.0.10\n".into(),
        1 => format!("apiVersion: v1alpha1\nkind: KubeNodeConfig\nlabels:\n  {label}: x\n"),
        2 => "apiVersion: v1alpha1\nkind: KubeAPIServerConfig\ncertExtraSANs:\n  - api.example.com\n".into(),
        3 => "apiVersion: v1alpha1\nkind: KubeFlannelCNIConfig\n$patch: delete\n".into(),
        4 => "apiVersion: v1alpha1\nkind: ResolverConfig\nnameservers:\n  - address: 1.1.1.1\n".into(),
        5 => "apiVersion: v1alpha1\nkind: KubeletConfig\nextraArgs:\n  rotate-server-certificates: \"true\"\n".into(),
        6 => "machine:\n  certSANs:\n    - 10.0.0.9\n---\napiVersion: v1alpha1\nkind: KubeNetworkConfig\ndnsDomain: example.org\n".into(),
        7 => "apiVersion: v1alpha1\nkind: UnattendedInstallConfig\ninstaller:\n  image: factory.talos.dev/metal-installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.14.1\n".into(),
        8 => "apiVersion: v1alpha1\nkind: KubeNodeConfig\nlabels:\n  node-role.kubernetes.io/control-plane:\n    $patch: delete\n".into(),
        9 => "apiVersion: v1alpha1\nkind: KubeSpanConfig\nenabled: true\n".into(),
        10 => "apiVersion: v1alpha1\nkind: KubeProxyConfig\nmode: ipvs\n".into(),
        _ => "apiVersion: v1alpha1\nkind: SysctlConfig\nparams:\n  vm.swappiness: \"10\"\n".into(),
    }
}

/// A patch of one of several shapes for `version`; some are broken on purpose.
fn random_patch_for(rng: &mut Rng, version: TalosVersion) -> String {
    if version.typed_documents() && rng.chance(50) {
        random_typed_patch(rng)
    } else {
        random_patch(rng)
    }
}

/// A patch of one of several shapes; some are broken on purpose.
fn random_patch(rng: &mut Rng) -> String {
    let label = *rng.pick(&["zone", "topology.kubernetes.io/zone", "tier"]);
    let value = *rng.pick(&["a", "eu-central", "\"1\"", "''"]);
    let ip = *rng.pick(&["1.1.1.1", "9.9.9.9", "2606:4700:4700::1111"]);
    if rng.chance(45) {
        return random_document_patch(rng);
    }
    match rng.below(22) {
        0 => format!("machine:\n  nodeLabels:\n    {label}: {value}\n"),
        1 => format!("machine:\n  network:\n    nameservers:\n      - {ip}\n"),
        2 => "machine:\n  network:\n    interfaces:\n      - deviceSelector:\n          physical: true\n        dhcp: true\n".into(),
        3 => format!(
            "machine:\n  network:\n    interfaces:\n      - interface: eth0\n        addresses:\n          - 10.0.0.{}/24\n        routes:\n          - network: 0.0.0.0/0\n            gateway: 10.0.0.254\n",
            rng.below(250) + 1
        ),
        4 => "cluster:\n  apiServer:\n    certSANs:\n      - api.example.com\n".into(),
        5 => "machine:\n  kubelet:\n    extraArgs:\n      rotate-server-certificates: \"true\"\n".into(),
        6 => "machine:\n  install:\n    disk: /dev/vdb\n    wipe: true\n".into(),
        7 => "cluster:\n  discovery:\n    $patch: delete\n".into(),
        8 => format!("[{{\"op\": \"add\", \"path\": \"/machine/nodeLabels\", \"value\": {{\"{label}\": \"x\"}}}}]"),
        9 => "- op: replace\n  path: /cluster/clusterName\n  value: renamed\n".into(),
        10 => "apiVersion: v1alpha1\nkind: VolumeConfig\nname: EPHEMERAL\nprovisioning:\n  diskSelector:\n    match: disk.transport == \"nvme\"\n  maxSize: 100GB\n".into(),
        11 => "machine:\n  sysctls:\n    net.ipv4.ip_forward: \"1\"\n".into(),
        12 => "machine:\n  tokn: typo\n".into(),
        13 => "machine:\n  network:\n    nameservers:\n      a: b\n".into(),
        14 => "machine: [\n".into(),
        15 => "[{\"op\": \"frobnicate\", \"path\": \"/machine\"}]".into(),
        16 => "machine:\n  network:\n    hostname: node-1\n".into(),
        17 => "machine:\n  kubelet:\n    extraMounts:\n      - source: /var/opt\n        destination: /var/opt\n        type: bind\n        options:\n          - rshared\n".into(),
        18 => "machine:\n  nodeLabels:\n    missing:\n      $patch: delete\n".into(),
        19 => "cluster:\n  proxy:\n    disabled: true\n".into(),
        20 => format!(
            "machine:\n  certSANs:\n    - {ip}\n---\napiVersion: v1alpha1\nkind: VolumeConfig\nname: EPHEMERAL\nprovisioning:\n  minSize: 10GB\n"
        ),
        _ => "apiVersion: v1alpha1\nkind: HostnameConfig\nauto: off\nhostname: worker-7\n".into(),
    }
}

/// A patch across documents (Talos 1.12+ configs are multi-document): typed documents next to
/// v1alpha1 keys, named documents added, merged and deleted, whole documents deleted, deletes
/// of missing keys, JSON patches where Talos allows them (a single-document config) and where
/// it does not, and broken ones.
fn random_document_patch(rng: &mut Rng) -> String {
    let name = *rng.pick(&["data", "logs"]);
    let size = *rng.pick(&["10GB", "50GB", "1TiB"]);
    match rng.below(20) {
        // v1alpha1 keys and typed documents in one patch
        0 => format!(
            "machine:\n  nodeLabels:\n    tier: mixed\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: off\nhostname: node-{}\n",
            rng.below(9)
        ),
        1 => format!(
            "apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: {name}\nprovisioning:\n  diskSelector:\n    match: disk.transport == \"nvme\"\n  maxSize: {size}\n---\ncluster:\n  proxy:\n    disabled: true\n"
        ),
        // named documents: merged into the one of the same kind and name, else added
        2 => format!(
            "apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: {name}\nprovisioning:\n  diskSelector:\n    match: \"true\"\n  minSize: {size}\n"
        ),
        3 => format!(
            "apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: {name}\nfilesystem:\n  type: xfs\n"
        ),
        4 => "apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: foo\nconfigFiles:\n  - content: hello\n    mountPath: /etc/foo\nenvironment:\n  - FOO=BAR\n".into(),
        5 => "apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: foo\nconfigFiles:\n  - content: bye\n    mountPath: /etc/foo\n  - content: more\n    mountPath: /etc/bar\n".into(),
        // whole documents deleted: by kind, by kind and name (missing ones too)
        6 => "apiVersion: v1alpha1\nkind: HostnameConfig\n$patch: delete\n".into(),
        7 => format!("apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: {name}\n$patch: delete\n"),
        8 => "apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: foo\n$patch: delete\n".into(),
        // deletes of keys, present or missing, in typed and named documents
        9 => "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname:\n  $patch: delete\n".into(),
        10 => "apiVersion: v1alpha1\nkind: HostnameConfig\nauto:\n  $patch: delete\n---\nmachine:\n  nodeLabels:\n    tier: after-delete\n".into(),
        11 => format!(
            "apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: {name}\nprovisioning:\n  maxSize:\n    $patch: delete\n"
        ),
        12 => "machine:\n  nodeLabels:\n    tier:\n      $patch: delete\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: deleted-label\n".into(),
        // a merge and a delete of the same key in one patch (Talos applies v1alpha1 deletes first)
        13 => "machine:\n  nodeLabels:\n    tier: x\n---\nmachine:\n  nodeLabels:\n    tier:\n      $patch: delete\n".into(),
        // the whole document replaced: deleted, then written anew
        14 => "apiVersion: v1alpha1\nkind: HostnameConfig\n$patch: delete\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: replaced\n".into(),
        // JSON patches: refused on multi-document configs, applied once only v1alpha1 is left
        15 => "[{\"op\": \"add\", \"path\": \"/machine/nodeLabels/json\", \"value\": \"yes\"}]".into(),
        16 => "- op: remove\n  path: /machine/nodeLabels/tier\n".into(),
        // broken
        17 => "apiVersion: v1alpha1\nkind: UserVolumeConfig\nname: data\nprovisioning:\n  maxSize: [1]\n".into(),
        18 => "apiVersion: v1alpha1\nkind: HostnameConfig\nhostnam: typo\n".into(),
        _ => "kind: HostnameConfig\n$patch: delete\n".into(),
    }
}

/// One field changed in a valid Talos 1.14 config (as a strategic patch): a document the
/// others need removed, or a setting that conflicts with the typed documents.
fn random_typed_mutation(rng: &mut Rng) -> &'static str {
    match rng.below(7) {
        0 => "apiVersion: v1alpha1\nkind: KubeEtcdEncryptionConfig\n$patch: delete\n",
        1 => "apiVersion: v1alpha1\nkind: DiscoveryIdentityConfig\n$patch: delete\n",
        2 => "apiVersion: v1alpha1\nkind: KubeClusterConfig\n$patch: delete\n",
        3 => "apiVersion: v1alpha1\nkind: DiscoveryServiceConfig\nname: default\n$patch: delete\n",
        4 => "cluster:\n  controlPlane:\n    localAPIServerPort: 7443\n",
        5 => "apiVersion: v1alpha1\nkind: UnattendedInstallConfig\ninstaller:\n  image: \"\"\n",
        _ => "machine:\n  features:\n    kubePrism:\n      enabled: true\n",
    }
}

/// One field changed in a valid config (as a strategic patch), or nothing.
fn random_mutation_for(rng: &mut Rng, version: TalosVersion) -> Option<&'static str> {
    if version.typed_documents() && rng.chance(40) {
        Some(random_typed_mutation(rng))
    } else {
        random_mutation(rng)
    }
}

/// One field changed in a valid config (as a strategic patch), or nothing.
fn random_mutation(rng: &mut Rng) -> Option<&'static str> {
    Some(match rng.below(14) {
        0 => {
            "machine:\n  install:\n    extraKernelArgs:\n      - cpufreq.default_governor=performance\n"
        }
        1 => "cluster:\n  network:\n    dnsDomain: -bad-\n",
        2 => "machine:\n  network:\n    nameservers:\n      - dns.example.com\n",
        3 => "machine:\n  nodeLabels:\n    bad label: x\n",
        4 => "cluster:\n  network:\n    cni:\n      name: weird\n",
        5 => {
            "machine:\n  network:\n    interfaces:\n      - interface: eth1\n        addresses:\n          - 300.1.1.1/24\n"
        }
        6 => "cluster:\n  discovery:\n    enabled: false\n",
        7 => "machine:\n  install:\n    disk: \"\"\n",
        8 => {
            "machine:\n  network:\n    extraHostEntries:\n      - ip: ten\n        aliases:\n          - x\n"
        }
        9 => {
            "machine:\n  network:\n    interfaces:\n      - interface: eth1\n        vlans:\n          - vlanId: 5000\n"
        }
        10 => "machine:\n  install:\n    extensions:\n      - image: ghcr.io/siderolabs/gvisor:1\n",
        11 => "cluster:\n  controlPlane:\n    endpoint: https://cp.example.com:99999\n",
        _ => return None,
    })
}

/// Compares one oracle response with our answer: `Some((what, ours, Talos's))` when they differ.
type Check = Box<dyn Fn(&Json) -> Option<(String, String, String)>>;

/// Asks for `validate -m metal --strict` and `validate -m metal` of `config` and compares both
/// answers with our reports: the same verdict and errors, and the same warnings (`--strict`
/// makes the v1alpha1 document's warnings errors; Talos 1.14's typed documents still warn apart).
fn push_validate(
    requests: &mut Vec<Json>,
    ours: &mut Vec<Check>,
    config: &str,
    version: TalosVersion,
) {
    for strict in [true, false] {
        requests
            .push(json!({"op": "validate", "config": config, "mode": "metal", "strict": strict}));
        ours.push(validate_check(
            validate_report(config, ValidationMode::Metal, strict, version),
            strict,
            version,
        ));
    }
}

/// Compares Talos's validation answer with our report: same verdict, same errors, and the same
/// warnings (under `--strict` only from Talos 1.14 on, whose documents warn apart from it).
fn validate_check(report: ValidationReport, strict: bool, version: TalosVersion) -> Check {
    let label = if strict {
        "validate -m metal --strict"
    } else {
        "validate -m metal"
    };
    let issues = report.errors;
    let our_warnings: Vec<String> = report.warnings.iter().map(|w| w.message.clone()).collect();
    Box::new(move |response| {
        if !strict || version.typed_documents() {
            let mut talos: Vec<String> = response["warnings"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|w| w.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut ours = our_warnings.clone();
            talos.sort();
            ours.sort();
            if talos != ours {
                return Some((
                    format!("{label} (warnings)"),
                    ours.join("\n"),
                    talos.join("\n"),
                ));
            }
        }
        let valid = response["valid"].as_bool().expect("a validate response");
        let errors: Vec<String> = response["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mine: Vec<String> = issues.iter().map(|i| i.message.clone()).collect();
        let agree = if valid {
            mine.is_empty()
        } else if errors.len() == 1 && errors[0].contains("decoding") {
            // A config that does not even load: only the verdict is compared.
            !mine.is_empty()
        } else {
            // A document's `errors.Join` is one leaf whose lines are separate issues for us.
            let errors: Vec<&str> = errors.iter().flat_map(|e| e.lines()).collect();
            mine.len() == errors.len()
                && errors.iter().all(|t| mine.iter().any(|o| same_issue(t, o)))
        };
        (!agree).then(|| {
            let mut mine = mine.clone();
            let mut errors = errors.clone();
            mine.sort();
            errors.sort();
            (
                label.into(),
                format!("valid: {}\n{}", issues.is_empty(), mine.join("\n")),
                format!("valid: {valid}\n{}", errors.join("\n")),
            )
        })
    })
}

/// A divergence between our engine and Talos.
struct Divergence {
    what: String,
    request: Json,
    ours: String,
    talos: String,
}

fn gen_request(
    options: &GenerateOptions,
    machine_type: MachineType,
    patches: &[String],
    secrets: &str,
) -> Json {
    json!({
        "op": "gen",
        "gen": {
            "cluster_name": options.cluster_name,
            "endpoint": options.endpoint,
            "kubernetes_version": options.kubernetes_version,
            "talos_version": options.talos_version.to_string(),
            "secrets": secrets,
            "machine_type": machine_type.as_str(),
            "install_disk": options.install_disk.clone().unwrap_or_default(),
            "install_image": options.install_image.clone().unwrap_or_default(),
            "kubespan": options.kubespan,
            "cluster_discovery": options.cluster_discovery,
            "additional_sans": options.additional_sans,
            "dns_domain": options.dns_domain,
            "registry_mirrors": options.registry_mirrors.iter().map(|(h, u)| json!([h, u])).collect::<Vec<_>>(),
            "allow_scheduling_on_control_planes": options.allow_scheduling_on_control_planes,
            "extra_kernel_args": options.extra_kernel_args,
            "local_api_server_port": options.local_api_server_port.unwrap_or(0),
            "sysctls": options.sysctls.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "cni_name": options.cni.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
            "cni_urls": options.cni.as_ref().map(|c| c.urls.clone()).unwrap_or_default(),
            "patches": patches,
        }
    })
}

/// Our `machineconfig patch`: the config loaded, every patch loaded and applied in order.
fn our_patch(config: &str, patches: &[String]) -> Result<String, String> {
    let mut config = MachineConfig::parse(config).map_err(|e| e.to_string())?;
    let patches = patches
        .iter()
        .map(|p| Patch::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    config.apply_patches(&patches).map_err(|e| e.to_string())?;
    Ok(config.to_yaml())
}

fn output(response: &Json) -> Result<String, String> {
    match (response.get("output"), response.get("error")) {
        (Some(Json::String(out)), _) => Ok(out.clone()),
        (_, Some(Json::String(error))) => Err(error.clone()),
        _ => panic!("unexpected oracle response {response}"),
    }
}

/// Talos's error for a JSON patch on a multi-document config, which ours must equal.
const JSON6902_MULTI_DOCUMENT: &str =
    "JSON6902 patches are not supported for multi-document machine configuration";

/// Our error for a `$patch: delete` of a document the config does not hold.
const DELETE_OF_MISSING_DOCUMENT: &str = "is not in the machine config";

/// Whether our `machineconfig patch` answer is Talos's:
/// - the same bytes, or both an error (with Talos's exact text for a JSON patch on a
///   multi-document config);
/// - after a final JSON patch, the same documents: talosctl prints that patch's output as
///   ghodss/yaml converts it back from JSON (keys sorted, 2-space indentation), we print the
///   canonical form (docs/talos-versions.md);
/// - our error for a `$patch: delete` of a document the config does not hold, where talosctl's
///   answer is undefined: it writes an empty `{}` document, crashes (which the oracle reports
///   as an error), or a second delete of the same missing document cancels the first.
fn same_patch_result(
    ours: &Result<String, String>,
    talos: &Result<String, String>,
    json_last: bool,
) -> bool {
    match (ours, talos) {
        (Err(a), _) if a.contains(DELETE_OF_MISSING_DOCUMENT) => true,
        (Ok(a), Ok(b)) => a == b || (json_last && same_documents(a, b)),
        (Err(a), Err(b)) => b != JSON6902_MULTI_DOCUMENT || a == b,
        (Err(_), Ok(_)) | (Ok(_), Err(_)) => false,
    }
}

/// Whether two multi-document YAML texts hold the same documents, whatever their key order.
fn same_documents(a: &str, b: &str) -> bool {
    fn same(a: &YamlValue, b: &YamlValue) -> bool {
        match (a, b) {
            (YamlValue::Map(x), YamlValue::Map(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
            }
            (YamlValue::Seq(x), YamlValue::Seq(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w))
            }
            (x, y) => x == y,
        }
    }
    match (yaml::parse_documents(a), yaml::parse_documents(b)) {
        (Ok(x), Ok(y)) => x.len() == y.len() && x.iter().zip(&y).all(|(v, w)| same(v, w)),
        _ => false,
    }
}

/// Whether a Talos issue text is ours: equal, or ours behind Talos's `document: ` prefix.
fn same_issue(talos: &str, ours: &str) -> bool {
    talos == ours || talos.ends_with(&format!(": {ours}"))
}

/// Runs `cases` random cases for `version`, returning the divergences.
fn run(version: TalosVersion, cases: usize, seed: u64) -> Vec<Divergence> {
    let secrets_text = secrets_text();
    let secrets = SecretsBundle::parse(&secrets_text).unwrap();
    let salt = version
        .to_string()
        .bytes()
        .fold(0_u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = Rng(seed ^ salt);
    let mut requests = Vec::new();
    let mut ours: Vec<Check> = Vec::new();
    for _ in 0..cases {
        let options = random_options(&mut rng, version);
        let machine_type = *rng.pick(&[MachineType::ControlPlane, MachineType::Worker]);
        let n_patches = rng.below(3);
        let patches: Vec<String> = (0..n_patches)
            .map(|_| random_patch_for(&mut rng, version))
            .collect();

        // gen config, with patches
        let mut input = GenerateInput::new(options.clone(), machine_type);
        input.patches.all = patches.clone();
        let generated = ConfigEngine::generate(&input, &secrets);
        requests.push(gen_request(&options, machine_type, &patches, &secrets_text));
        let mine = generated
            .clone()
            .map_err(|e| talos_manager_core::error_chain(&e).to_string());
        ours.push(Box::new(move |response| {
            let talos = output(response);
            match (&mine, &talos) {
                (Ok(a), Ok(b)) if a == b => None,
                (Err(_), Err(_)) => None,
                (Err(a), Ok(_)) if a.contains(DELETE_OF_MISSING_DOCUMENT) => None,
                _ => Some(("gen config".into(), fmt(&mine), fmt(&talos))),
            }
        }));

        // machineconfig patch, on the unpatched config
        let base =
            ConfigEngine::generate(&GenerateInput::new(options.clone(), machine_type), &secrets);
        let Ok(base) = base else { continue };
        let patch: Vec<String> = (0..=rng.below(3))
            .map(|_| random_patch_for(&mut rng, version))
            .collect();
        requests.push(json!({"op": "patch", "config": base, "patches": patch}));
        let mine = our_patch(&base, &patch);
        let patched = mine.clone().ok();
        let json_last = patch
            .last()
            .is_some_and(|p| matches!(Patch::parse(p), Ok(Patch::Json(_))));
        ours.push(Box::new(move |response| {
            let talos = output(response);
            (!same_patch_result(&mine, &talos, json_last))
                .then(|| ("machineconfig patch".into(), fmt(&mine), fmt(&talos)))
        }));

        // validate -m metal --strict, of the patched config
        if let Some(patched) = patched {
            push_validate(&mut requests, &mut ours, &patched, version);
        }

        // validate -m metal --strict, of the config with one field mutated
        let config = match random_mutation_for(&mut rng, version) {
            Some(mutation) => match our_patch(&base, &[mutation.to_owned()]) {
                Ok(config) => config,
                Err(_) => continue,
            },
            None => base.clone(),
        };
        push_validate(&mut requests, &mut ours, &config, version);
    }
    let responses = ask(version, &requests);
    requests
        .into_iter()
        .zip(responses)
        .zip(ours)
        .filter_map(|((request, response), check)| {
            check(&response).map(|(what, ours, talos)| Divergence {
                what,
                request,
                ours,
                talos,
            })
        })
        .collect()
}

/// The first line where two answers differ: (line number, ours, Talos's).
fn first_difference(ours: &str, talos: &str) -> (String, String, String) {
    let (a, b): (Vec<&str>, Vec<&str>) = (ours.lines().collect(), talos.lines().collect());
    let idx = (0..a.len().max(b.len()))
        .find(|&i| a.get(i) != b.get(i))
        .unwrap_or(0);
    (
        format!("line {}", idx + 1),
        a.get(idx).copied().unwrap_or("<end>").to_owned(),
        b.get(idx).copied().unwrap_or("<end>").to_owned(),
    )
}

fn fmt(result: &Result<String, String>) -> String {
    match result {
        Ok(text) => text.clone(),
        Err(error) => format!("ERROR: {error}"),
    }
}

#[test]
fn engine_agrees_with_talos_machinery() {
    let cases: usize = std::env::var("TALOS_DIFFERENTIAL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("TALOS_DIFFERENTIAL_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(17);
    let mut report = String::new();
    let mut total = 0;
    let dump_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("talos-differential");
    std::fs::create_dir_all(&dump_dir).unwrap();
    // `TALOS_DIFFERENTIAL_VERSIONS=v1.14` (comma-separated) runs only those versions.
    let only: Option<Vec<String>> = std::env::var("TALOS_DIFFERENTIAL_VERSIONS")
        .ok()
        .map(|list| list.split(',').map(|v| v.trim().to_owned()).collect());
    for &version in VERSIONS {
        if only
            .as_ref()
            .is_some_and(|only| !only.contains(&version.to_string()))
        {
            continue;
        }
        let started = Instant::now();
        let divergences = run(version, cases, seed);
        eprintln!(
            "talos differential {version}: {cases} cases (seed {seed}), {} divergences, {:.1?}",
            divergences.len(),
            started.elapsed()
        );
        total += divergences.len();
        // Every divergence in full (request, both answers), for turning into data cases.
        let dump = dump_dir.join(format!("{version}.json"));
        let full: Vec<Json> = divergences
            .iter()
            .map(
                |d| json!({"what": d.what, "request": d.request, "ours": d.ours, "talos": d.talos}),
            )
            .collect();
        std::fs::write(&dump, serde_json::to_string_pretty(&full).unwrap()).unwrap();
        for d in divergences.iter().take(8) {
            let (line, ours, talos) = first_difference(&d.ours, &d.talos);
            report.push_str(&format!(
                "\n=== {version} {}: {line}\n    ours:  {ours}\n    talos: {talos}",
                d.what
            ));
        }
        if !divergences.is_empty() {
            report.push_str(&format!(
                "\n(all {version} divergences: {})",
                dump.display()
            ));
        }
    }
    assert!(
        total == 0,
        "{total} divergences from Talos's machinery:{report}"
    );
}
