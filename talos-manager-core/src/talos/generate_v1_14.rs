//! Native `talosctl gen config` for Talos 1.14 on: most of `machine.*` and `cluster.*` move
//! into typed documents (discovery, resolver, volumes, security profile, the Kubernetes
//! components, `UnattendedInstallConfig`), keys and certificates of the new documents are PEM
//! text, and the v1alpha1 document keeps only the machine identity, its CA and the etcd CA.
//!
//! The documents come in the order Talos's generator writes them; field order, empty fields and
//! map order are left to the canonical emission ([`MachineConfig::to_yaml`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::document::MachineConfig;
use super::generate::{GenerateOptions, MachineType, map, strs};
use super::secrets::SecretsBundle;
use super::yaml::Value;

/// Talos's discovery service (`constants.DefaultDiscoveryServiceEndpoint`).
const DISCOVERY_SERVICE: &str = "https://discovery.talos.dev/";

/// A typed document: `apiVersion: v1alpha1`, its kind, then its fields.
fn document(kind: &str, fields: Vec<(&str, Value)>) -> Value {
    let mut entries = vec![
        ("apiVersion", Value::str("v1alpha1")),
        ("kind", Value::str(kind)),
    ];
    entries.extend(fields);
    map(entries)
}

/// The PEM text of a bundle value (base64 of PEM, as the secrets bundle stores it).
fn pem(base64_pem: &str) -> String {
    STANDARD
        .decode(base64_pem.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}

fn pair(crt: &str, key: &str) -> Value {
    map(vec![("crt", Value::str(crt)), ("key", Value::str(key))])
}

/// Go's `%q` of a string (`strconv.Quote`): the install disk in the disk selector.
fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The registry mirrors as Talos 1.14 writes them: one `RegistryMirrorConfig` per host (the
/// endpoints of a host in order), sorted by host.
fn registry_mirrors(mirrors: &[(String, String)]) -> Vec<Value> {
    let mut hosts: Vec<(&str, Vec<&str>)> = Vec::new();
    for (host, url) in mirrors {
        match hosts.iter_mut().find(|(h, _)| h == host) {
            Some((_, urls)) => urls.push(url),
            None => hosts.push((host, vec![url])),
        }
    }
    hosts.sort_by(|a, b| a.0.cmp(b.0));
    hosts
        .into_iter()
        .map(|(host, urls)| {
            document(
                "RegistryMirrorConfig",
                vec![
                    ("name", Value::str(host)),
                    (
                        "endpoints",
                        Value::Seq(
                            urls.into_iter()
                                .map(|url| map(vec![("url", Value::str(url))]))
                                .collect(),
                        ),
                    ),
                ],
            )
        })
        .collect()
}

/// The URL of a custom CNI manifest (`custom` with a URL); Talos 1.14's generator has no
/// other CNI choice, every other one keeps Flannel.
fn custom_cni_url(options: &GenerateOptions) -> Option<&str> {
    options
        .cni
        .as_ref()
        .filter(|cni| cni.name == "custom")
        .and_then(|cni| cni.urls.first())
        .map(String::as_str)
        .filter(|url| !url.is_empty())
}

/// Builds the Talos 1.14 config `gen config` makes for `machine_type` before any patch.
pub(crate) fn generate(
    options: &GenerateOptions,
    secrets: &SecretsBundle,
    machine_type: MachineType,
) -> MachineConfig {
    let control_plane = machine_type == MachineType::ControlPlane;
    let k8s = options.kubernetes_version.trim_start_matches('v');
    let image = |repo: &str| Value::str(format!("{repo}:v{k8s}"));

    // v1alpha1: the machine identity, its CA and (control plane) the etcd CA.
    let machine = map(vec![
        ("type", Value::str(machine_type.as_str())),
        ("token", Value::str(&secrets.trustd_token)),
        (
            "ca",
            pair(
                &secrets.os.crt,
                if control_plane { &secrets.os.key } else { "" },
            ),
        ),
        ("certSANs", strs(&options.additional_sans)),
        (
            "features",
            map(vec![("diskQuotaSupport", Value::Bool(true))]),
        ),
    ]);
    let mut cluster = vec![("token", Value::str(&secrets.bootstrap_token))];
    if control_plane {
        cluster.push((
            "etcd",
            map(vec![("ca", pair(&secrets.etcd.crt, &secrets.etcd.key))]),
        ));
    }
    let mut documents = vec![map(vec![
        ("version", Value::str("v1alpha1")),
        ("debug", Value::Bool(false)),
        ("persist", Value::Bool(true)),
        ("machine", machine),
        ("cluster", map(cluster)),
    ])];

    if options.cluster_discovery {
        documents.push(document(
            "DiscoveryServiceConfig",
            vec![
                ("name", Value::str("default")),
                ("endpoint", Value::str(DISCOVERY_SERVICE)),
            ],
        ));
    }
    documents.push(document(
        "DiscoveryIdentityConfig",
        vec![
            ("clusterID", Value::str(&secrets.cluster_id)),
            ("clusterSecret", Value::str(&secrets.cluster_secret)),
        ],
    ));
    if let Some(disk) = options.install_disk.as_deref().filter(|d| !d.is_empty()) {
        let mut installer = Vec::new();
        if let Some(image) = options.install_image.as_deref().filter(|i| !i.is_empty()) {
            installer.push(("image", Value::str(image)));
        }
        documents.push(document(
            "UnattendedInstallConfig",
            vec![
                ("installer", map(installer)),
                (
                    "provisioning",
                    map(vec![
                        (
                            "diskSelector",
                            map(vec![(
                                "match",
                                Value::str(format!("disk.dev_path == {}", go_quote(disk))),
                            )]),
                        ),
                        ("wipe", Value::Bool(false)),
                    ]),
                ),
            ],
        ));
    }
    documents.push(document(
        "ResolverConfig",
        vec![(
            "hostDNS",
            map(vec![
                ("enabled", Value::Bool(true)),
                ("forwardKubeDNSToHost", Value::Bool(true)),
            ]),
        )],
    ));
    if !options.sysctls.is_empty() {
        let params = options
            .sysctls
            .iter()
            .map(|(k, v)| (k.clone(), Value::str(v)))
            .collect();
        documents.push(document(
            "SysctlConfig",
            vec![("params", Value::Map(params))],
        ));
    }
    documents.push(document(
        "VolumeConfig",
        vec![
            ("name", Value::str("EPHEMERAL")),
            ("mount", map(vec![("secure", Value::Bool(true))])),
        ],
    ));
    documents.push(document(
        "FilesystemTrimConfig",
        vec![("interval", Value::str("168h0m0s"))],
    ));
    documents.push(document(
        "SecurityProfileConfig",
        vec![("workloadIsolation", Value::Bool(true))],
    ));
    documents.extend(registry_mirrors(&options.registry_mirrors));
    documents.push(document(
        "HostnameConfig",
        vec![("auto", Value::str("stable"))],
    ));
    if options.kubespan {
        documents.push(document(
            "KubeSpanConfig",
            vec![("enabled", Value::Bool(true))],
        ));
    }

    // Kubernetes, on every node.
    documents.push(document(
        "KubeClusterConfig",
        vec![
            ("clusterName", Value::str(&options.cluster_name)),
            ("endpoint", Value::str(&options.endpoint)),
        ],
    ));
    let mut node = vec![("nodeIP", Value::Map(Vec::new()))];
    if control_plane {
        node.push((
            "labels",
            map(vec![
                ("node-role.kubernetes.io/control-plane", Value::str("")),
                (
                    "node.kubernetes.io/exclude-from-external-load-balancers",
                    Value::str(""),
                ),
            ]),
        ));
        if !options.allow_scheduling_on_control_planes {
            node.push((
                "taints",
                map(vec![(
                    "node-role.kubernetes.io/control-plane",
                    Value::str("NoSchedule"),
                )]),
            ));
        }
    }
    documents.push(document("KubeNodeConfig", node));
    documents.push(document(
        "KubeletConfig",
        vec![
            ("image", image("ghcr.io/siderolabs/kubelet")),
            ("defaultRuntimeSeccompProfileEnabled", Value::Bool(true)),
        ],
    ));
    documents.push(document(
        "KubeNetworkConfig",
        vec![
            ("dnsDomain", Value::str(&options.dns_domain)),
            ("podSubnets", Value::Seq(vec![Value::str("10.244.0.0/16")])),
            (
                "serviceSubnets",
                Value::Seq(vec![Value::str("10.96.0.0/12")]),
            ),
        ],
    ));
    let k8s_ca = pem(&secrets.k8s.crt);
    documents.push(document(
        "KubeAPIServerCAConfig",
        if control_plane {
            vec![(
                "issuingCA",
                map(vec![
                    ("cert", Value::str(&k8s_ca)),
                    ("key", Value::str(pem(&secrets.k8s.key))),
                ]),
            )]
        } else {
            vec![("acceptedCAs", Value::Seq(vec![Value::str(&k8s_ca)]))]
        },
    ));
    documents.push(document(
        "KubePrismConfig",
        vec![("port", Value::Int(7445))],
    ));
    if !control_plane {
        return MachineConfig::from_documents(documents);
    }

    // The control plane's Kubernetes components.
    documents.push(document(
        "KubeAggregatorCAConfig",
        vec![(
            "issuingCA",
            map(vec![
                ("cert", Value::str(pem(&secrets.k8s_aggregator.crt))),
                ("key", Value::str(pem(&secrets.k8s_aggregator.key))),
            ]),
        )],
    ));
    documents.push(document(
        "KubeAdmissionControlConfig",
        vec![
            ("name", Value::str("PodSecurity")),
            (
                "configuration",
                super::generate::pod_security_admission()
                    .get("configuration")
                    .cloned()
                    .unwrap_or(Value::Null),
            ),
        ],
    ));
    documents.push(document(
        "KubeAuditPolicyConfig",
        vec![(
            "configuration",
            map(vec![
                ("apiVersion", Value::str("audit.k8s.io/v1")),
                ("kind", Value::str("Policy")),
                (
                    "rules",
                    Value::Seq(vec![map(vec![("level", Value::str("Metadata"))])]),
                ),
            ]),
        )],
    ));
    documents.push(document(
        "KubeAuthenticationConfig",
        vec![(
            "configuration",
            map(vec![
                (
                    "anonymous",
                    map(vec![
                        (
                            "conditions",
                            Value::Seq(
                                ["/livez", "/readyz", "/healthz"]
                                    .into_iter()
                                    .map(|path| map(vec![("path", Value::str(path))]))
                                    .collect(),
                            ),
                        ),
                        ("enabled", Value::Bool(true)),
                    ]),
                ),
                ("jwt", Value::Seq(Vec::new())),
            ]),
        )],
    ));
    for (name, kind) in [("node", "Node"), ("rbac", "RBAC")] {
        documents.push(document(
            "KubeAuthorizerConfig",
            vec![("name", Value::str(name)), ("type", Value::str(kind))],
        ));
    }
    // Talos keeps the providers' names and order of its pre-1.14 API server template (an
    // AES-CBC secret is written as a secretbox key named key1, as Talos does).
    let mut providers = Vec::new();
    for (name, secret) in [
        ("key2", &secrets.secretbox_encryption_secret),
        ("key1", &secrets.aescbc_encryption_secret),
    ] {
        if let Some(secret) = secret.as_deref().filter(|s| !s.is_empty()) {
            providers.push(map(vec![(
                "secretbox",
                map(vec![(
                    "keys",
                    Value::Seq(vec![map(vec![
                        ("name", Value::str(name)),
                        ("secret", Value::str(secret)),
                    ])]),
                )]),
            )]));
        }
    }
    documents.push(document(
        "KubeEtcdEncryptionConfig",
        vec![(
            "config",
            map(vec![(
                "resources",
                Value::Seq(vec![map(vec![
                    ("providers", Value::Seq(providers)),
                    ("resources", Value::Seq(vec![Value::str("secrets")])),
                ])]),
            )]),
        )],
    ));
    documents.push(document(
        "KubeServiceAccountConfig",
        vec![(
            "issuer",
            map(vec![
                (
                    "privateKey",
                    Value::str(pem(&secrets.k8s_service_account_key)),
                ),
                ("issuerURL", Value::str(&options.endpoint)),
            ]),
        )],
    ));
    let mut api_server = vec![("image", image("registry.k8s.io/kube-apiserver"))];
    if let Some(port) = options.local_api_server_port {
        api_server.push(("apiPort", Value::Int(i64::from(port))));
    }
    api_server.push(("certExtraSANs", strs(&options.additional_sans)));
    documents.push(document("KubeAPIServerConfig", api_server));
    documents.push(document(
        "KubeControllerManagerConfig",
        vec![("image", image("registry.k8s.io/kube-controller-manager"))],
    ));
    documents.push(document(
        "KubeSchedulerConfig",
        vec![("image", image("registry.k8s.io/kube-scheduler"))],
    ));
    documents.push(document(
        "KubeProxyConfig",
        vec![("image", image("registry.k8s.io/kube-proxy"))],
    ));
    let custom_cni = custom_cni_url(options);
    if custom_cni.is_none() {
        documents.push(document(
            "KubeFlannelCNIConfig",
            vec![
                ("backendType", Value::str("vxlan")),
                ("backendPort", Value::Int(4789)),
            ],
        ));
    }
    documents.push(document(
        "KubeCoreDNSConfig",
        vec![("enabled", Value::Bool(true))],
    ));
    if let Some(url) = custom_cni {
        documents.push(document(
            "KubeExternalManifestConfig",
            vec![("name", Value::str("custom-cni")), ("url", Value::str(url))],
        ));
    }
    MachineConfig::from_documents(documents)
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("/dev/sda"), "\"/dev/sda\"");
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_quote("\u{1}"), "\"\\x01\"");
    }
}
