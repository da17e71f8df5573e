//! Golden tests of the Talos engine: every case is a directory under `tests/data/talos/`.

use std::fs;
use std::path::{Path, PathBuf};

use talos_manager_core::talos::{
    Cni, ConfigEngine, ConfigError, ConfigPatches, EphemeralDisk, GenerateInput, GenerateOptions,
    MachineConfig, MachineType, Patch, SecretsBundle, SecretsError, Substitutions, TalosVersion,
    ValidationMode, append_volume_config, ephemeral_volume_config, validate, validate_for, yaml,
};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/talos")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

/// Compares two texts line by line, naming the first difference.
#[track_caller]
fn assert_same_text(actual: &str, expected: &str, what: &str) {
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e);
        panic!(
            "{what}: output differs (first differing line {:?})\n--- actual ---\n{actual}\n--- expected ---\n{expected}",
            line.map(|l| l + 1)
        );
    }
}

/// Options of the stability goldens: `base-*` uses the defaults, `overrides-*` every option
/// the Talos test sets.
fn stability_options(case: &str, version: TalosVersion) -> GenerateOptions {
    let mut options = GenerateOptions::new("base", "https://base:6443", "1.28.0");
    options.talos_version = version;
    if case == "overrides" {
        options.additional_sans = vec!["foo".into(), "bar".into()];
        options.allow_scheduling_on_control_planes = true;
        options.dns_domain = "example.com".into();
        options.install_disk = Some("/dev/vda".into());
        options.extra_kernel_args = vec!["foo=bar".into(), "bar=baz".into()];
        options.local_api_server_port = Some(5443);
        options.sysctls = vec![("foo".into(), "bar".into())];
        options.cni = Some(Cni {
            name: "custom".into(),
            urls: vec!["https://example.com/cni.yaml".into()],
        });
        options.registry_mirrors = vec![("ghcr.io".into(), "https://ghcr.io.my-mirror.com".into())];
    }
    options
}

#[test]
fn stability_goldens_are_reproduced_byte_for_byte() {
    let dir = data_dir().join("stability");
    let secrets = SecretsBundle::parse(&read(&dir.join("secrets.yaml"))).unwrap();
    // Talos's overrides goldens use another patch from 1.14 on (a KubeletConfig document).
    let patch = read(&dir.join("patch.yaml"));
    let patch_v1_14 = read(&dir.join("patch-v1.14.yaml"));
    let mut n_cases = 0;
    for version_dir in sorted_entries(&dir).into_iter().filter(|p| p.is_dir()) {
        let version_name = version_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let version = TalosVersion::parse(&version_name).unwrap();
        for golden in sorted_entries(&version_dir) {
            let stem = golden.file_stem().unwrap().to_string_lossy().into_owned();
            let (case, machine) = stem.split_once('-').unwrap();
            let machine_type = match machine {
                "controlplane" => MachineType::ControlPlane,
                "worker" => MachineType::Worker,
                other => panic!("unknown machine type {other} in {}", golden.display()),
            };
            let mut input = GenerateInput::new(stability_options(case, version), machine_type);
            if case == "overrides" {
                let patch = if version.typed_documents() {
                    &patch_v1_14
                } else {
                    &patch
                };
                input.patches.all.push(patch.clone());
            }
            let actual = ConfigEngine::generate(&input, &secrets).unwrap();
            assert_same_text(&actual, &read(&golden), &format!("{version_name}/{stem}"));
            n_cases += 1;
        }
    }
    assert_eq!(
        n_cases,
        4 * TalosVersion::ALL.len(),
        "expected four goldens for each version"
    );
}

/// Applies the patches of `dir/patches/` in name order to `dir/input.yaml`.
fn apply_case(dir: &Path) -> Result<String, String> {
    let mut config =
        MachineConfig::parse(&read(&dir.join("input.yaml"))).map_err(|e| e.to_string())?;
    for patch_path in sorted_entries(&dir.join("patches")) {
        let patch = Patch::parse(&read(&patch_path)).map_err(|e| error_text(&e))?;
        config.apply_patch(&patch).map_err(|e| error_text(&e))?;
    }
    Ok(config.to_yaml())
}

fn error_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[test]
fn patch_cases_match_talos() {
    let cases = sorted_entries(&data_dir().join("patch"));
    assert!(cases.len() >= 7);
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expected_error = case.join("expected-error.txt");
        match apply_case(&case) {
            Ok(actual) if !expected_error.exists() => {
                assert_same_text(&actual, &read(&case.join("expected.yaml")), &name);
            }
            Ok(actual) => panic!("{name}: expected an error, got\n{actual}"),
            Err(error) => {
                assert!(expected_error.exists(), "{name}: unexpected error: {error}");
                let wanted = read(&expected_error);
                assert!(
                    error.contains(wanted.trim()),
                    "{name}: error {error:?} lacks {wanted:?}"
                );
            }
        }
    }
}

#[track_caller]
fn check_patch(base: &str, patch: &str, expect: &str) {
    let mut config = MachineConfig::parse(base).unwrap();
    config.apply_patch(&Patch::parse(patch).unwrap()).unwrap();
    assert_same_text(&config.to_yaml(), expect, "patched config");
}

#[test]
fn strategic_merge_list_rules() {
    // Nameservers append, pod subnets are replaced, vlans merge by id.
    check_patch(
        "machine:\n  network:\n    nameservers: [1.1.1.1]\n    interfaces:\n      - interface: eth0\n        vlans: [{vlanId: 5, mtu: 1400}]\ncluster:\n  network:\n    podSubnets: [10.0.0.0/8]\n",
        "machine:\n  network:\n    nameservers: [8.8.8.8]\n    interfaces:\n      - interface: eth0\n        vlans: [{vlanId: 5, addresses: [10.0.0.1/24]}]\ncluster:\n  network:\n    podSubnets: [10.1.0.0/16]\n",
        "version: \"\"\nmachine:\n    type: \"\"\n    token: \"\"\n    certSANs: []\n    network:\n        interfaces:\n            - interface: eth0\n              vlans:\n                - addresses:\n                    - 10.0.0.1/24\n                  routes: []\n                  vlanId: 5\n                  mtu: 1400\n        nameservers:\n            - 1.1.1.1\n            - 8.8.8.8\ncluster:\n    controlPlane: null\n    network:\n        dnsDomain: \"\"\n        podSubnets:\n            - 10.1.0.0/16\n        serviceSubnets: []\n",
    );
    // `$patch: delete` removes a map key.
    check_patch(
        "machine:\n  nodeLabels:\n    a: \"1\"\n    b: \"2\"\n",
        "machine:\n  nodeLabels:\n    a:\n      $patch: delete\n",
        "version: \"\"\nmachine:\n    type: \"\"\n    token: \"\"\n    certSANs: []\n    nodeLabels:\n        b: \"2\"\ncluster: null\n",
    );
}

/// `${…}` variables are plain text substitution before a patch is loaded, so they work in every
/// document of a multi-document patch: v1alpha1 keys, typed documents and named documents (in
/// their names too).
#[test]
fn substitution_variables_work_in_every_document() {
    let mut options = GenerateOptions::new("demo", "https://10.0.0.1:6443", "1.35.0");
    options.talos_version = TalosVersion::V1_13;
    let mut input = GenerateInput::new(options, MachineType::Worker);
    input.patches.all = vec![
        "machine:\n  nodeLabels:\n    vlan: \"${vlan}\"\n---\napiVersion: v1alpha1\nkind: HostnameConfig\n$patch: delete\n".into(),
        "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: ${hostname}\n---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: ${hostname}-data\nprovisioning:\n  diskSelector:\n    match: disk.wwid == \"${bootstrap_disk_wwid}\"\n  maxSize: 10GB\n".into(),
    ];
    input.substitutions = Substitutions::new()
        .hostname("worker-7")
        .vlan("4000")
        .bootstrap_disk_wwid("naa.5000c500a1b2c3d4");
    let secrets = SecretsBundle::parse(&read(&data_dir().join("stability/secrets.yaml"))).unwrap();
    let yaml = ConfigEngine::generate(&input, &secrets).unwrap();
    let tail = &yaml[yaml.find("---\n").unwrap()..];
    assert!(yaml.contains("        vlan: \"4000\"\n"), "{yaml}");
    assert_eq!(
        tail,
        "---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: worker-7\n---\napiVersion: v1alpha1\nkind: UserVolumeConfig\nname: worker-7-data\nprovisioning:\n    diskSelector:\n        match: disk.wwid == \"naa.5000c500a1b2c3d4\"\n    maxSize: 10GB\n"
    );
    assert!(!yaml.contains("${"), "{yaml}");
}

#[test]
fn patch_kind_detection() {
    let dir = data_dir().join("patch-detect");
    assert!(
        matches!(Patch::parse(&read(&dir.join("patch.json"))).unwrap(), Patch::Json(ops) if ops.len() == 1)
    );
    assert!(
        matches!(Patch::parse(&read(&dir.join("patch.yaml"))).unwrap(), Patch::Json(ops) if ops.len() == 1)
    );
    assert!(matches!(
        Patch::parse(&read(&dir.join("strategic.yaml"))).unwrap(),
        Patch::Strategic(_)
    ));
    assert_eq!(Patch::parse("# only a comment\n\n").unwrap(), Patch::Empty);
}

fn worker_case_input(dir: &Path) -> (GenerateInput, Substitutions) {
    let inputs = yaml::parse(&read(&dir.join("inputs.yaml"))).unwrap();
    let text = |key: &str| inputs.get(key).unwrap().to_string();
    let mut options = GenerateOptions::new(
        text("cluster_name"),
        text("endpoint"),
        text("kubernetes_version"),
    );
    options.talos_version = TalosVersion::parse(&text("talos_version")).unwrap();
    options.install_disk = Some(text("install_disk"));
    options.install_image = Some(text("install_image"));
    options.kubespan = inputs.get("kubespan") == Some(&yaml::Value::Bool(true));
    let machine_type = match text("machine_type").as_str() {
        "worker" => MachineType::Worker,
        _ => MachineType::ControlPlane,
    };
    let mut vars = Substitutions::new();
    for (name, value) in inputs.get("variables").unwrap().as_map().unwrap() {
        vars = vars.set(name.clone(), value.to_string());
    }
    (GenerateInput::new(options, machine_type), vars)
}

#[test]
fn original_app_worker_is_reproduced() {
    let dir = data_dir().join("original-app/worker-case");
    let (mut input, vars) = worker_case_input(&dir);
    input.substitutions = vars;
    input.patches = ConfigPatches {
        all: vec![read(&dir.join("patch.yaml"))],
        control_plane: vec![read(&dir.join("patch-control-plane.yaml"))],
        worker: vec![read(&dir.join("patch-worker.yaml"))],
    };
    let secrets =
        SecretsBundle::parse(&read(&data_dir().join("secrets/original-app-secrets.yaml"))).unwrap();
    let actual = ConfigEngine::generate(&input, &secrets).unwrap();
    // Ruby re-serialised the expected file, so only values and key order are comparable.
    let expected = yaml::parse(&read(&dir.join("expected-worker.yaml"))).unwrap();
    let actual_value = yaml::parse(&actual).unwrap();
    assert!(actual_value == expected, "worker config differs:\n{actual}");
    assert_eq!(validate(&actual, ValidationMode::Metal, true), []);
}

#[test]
fn invalid_nameservers_patch_is_rejected_like_talosctl() {
    let patch = read(&data_dir().join("original-app/invalid-nameservers-patch.yaml"));
    let secrets = SecretsBundle::parse(&read(&data_dir().join("stability/secrets.yaml"))).unwrap();
    let mut input = GenerateInput::new(
        GenerateOptions::new("c", "https://c:6443", "1.30.1"),
        MachineType::Worker,
    );
    input.patches.all.push(patch);
    let error = ConfigEngine::generate(&input, &secrets).unwrap_err();
    assert!(matches!(error, ConfigError::LoadPatch { .. }));
    let text = error_text(&error);
    assert!(text.contains("error parsing config JSON patch"), "{text}");
    assert!(
        text.contains("machine.network.nameservers: cannot unmarshal !!map into []string"),
        "{text}"
    );
}

#[test]
fn volume_config_matches_original_app() {
    let dir = data_dir().join("original-app/volume-config");
    let inputs = yaml::parse(&read(&dir.join("inputs.yaml"))).unwrap();
    for (scheme, identifier) in inputs.as_map().unwrap() {
        let disk = EphemeralDisk::parse(&identifier.to_string()).unwrap();
        let expected = read(&dir.join(format!("expected-{scheme}.yaml")));
        assert_same_text(&ephemeral_volume_config(&disk), &expected, scheme);
        let combined = append_volume_config("version: v1alpha1\n", &disk);
        assert_eq!(combined, format!("version: v1alpha1\n---\n{expected}"));
        // Served configs carry it after the machine config, and still validate.
        let secrets =
            SecretsBundle::parse(&read(&data_dir().join("stability/secrets.yaml"))).unwrap();
        let mut options = GenerateOptions::new("c", "https://c:6443", "1.30.1");
        options.install_disk = Some("/dev/sda".into());
        options.talos_version = TalosVersion::V1_13;
        let mut input = GenerateInput::new(options, MachineType::Worker);
        input.ephemeral_disk = Some(disk.clone());
        let served = ConfigEngine::generate(&input, &secrets).unwrap();
        assert!(served.ends_with(&format!("---\n{expected}")));
        assert_eq!(validate(&served, ValidationMode::Metal, true), []);
        // Talos 1.14 configs have an EPHEMERAL VolumeConfig already: the disk is merged in.
        input.options.talos_version = TalosVersion::V1_14;
        let served = ConfigEngine::generate(&input, &secrets).unwrap();
        let config = MachineConfig::parse(&served).unwrap();
        let volumes: Vec<&yaml::Value> = config
            .documents()
            .iter()
            .filter(|d| {
                d.get("kind").map(yaml::Value::to_string).as_deref() == Some("VolumeConfig")
            })
            .collect();
        assert_eq!(volumes.len(), 1, "{served}");
        assert_eq!(
            volumes[0]
                .path("provisioning.diskSelector.match")
                .map(yaml::Value::to_string),
            Some(disk.disk_selector())
        );
        assert_eq!(
            volumes[0].path("mount.secure"),
            Some(&yaml::Value::Bool(true))
        );
        assert_eq!(validate(&served, ValidationMode::Metal, true), []);
    }
}

#[test]
fn secrets_bundle_round_trips_and_reports_every_problem() {
    let dir = data_dir().join("secrets");
    for name in ["secrets-bundle.yaml", "original-app-secrets.yaml"] {
        let text = read(&dir.join(name));
        let bundle = SecretsBundle::parse(&text).unwrap();
        let without_comments: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_same_text(&bundle.to_yaml(), &without_comments, name);
    }
    let error = SecretsBundle::parse(&read(&dir.join("invalid-secrets.yaml"))).unwrap_err();
    let SecretsError::Invalid { issues } = error else {
        panic!("unexpected error {error}")
    };
    let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "cluster.secret is required",
            "one of [secrets.secretboxencryptionsecret, secrets.aescbcencryptionsecret] is required",
            "trustdinfo is required",
            "certs.etcd is invalid: failed to parse PEM block",
            "certs.k8saggregator is required",
            "certs.os is invalid: unsupported key type: \"CERTIFICATE\"",
        ]
    );
}

/// A deterministic generator for tests (splitmix64), so failures reproduce.
struct TestRandom(u64);

impl talos_manager_core::random::RandomSource for TestRandom {
    fn fill_bytes(
        &mut self,
        dest: &mut [u8],
    ) -> Result<(), talos_manager_core::random::RandomError> {
        for byte in dest {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            *byte = (z ^ (z >> 31)) as u8;
        }
        Ok(())
    }
}

/// A deterministic source that fails from its `fail_at`-th draw on (counting from 0), as an
/// operating system generator without entropy would.
struct FailingRandom {
    inner: TestRandom,
    draws: usize,
    fail_at: usize,
}

impl FailingRandom {
    fn new(fail_at: usize) -> FailingRandom {
        FailingRandom {
            inner: TestRandom(3),
            draws: 0,
            fail_at,
        }
    }
}

impl talos_manager_core::random::RandomSource for FailingRandom {
    fn fill_bytes(
        &mut self,
        dest: &mut [u8],
    ) -> Result<(), talos_manager_core::random::RandomError> {
        let draw = self.draws;
        self.draws += 1;
        if draw >= self.fail_at {
            return Err(talos_manager_core::random::RandomError);
        }
        self.inner.fill_bytes(dest)
    }
}

/// An error and its causes, joined as the service logs them.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn a_failing_random_source_is_an_error_never_a_weak_secret() {
    use talos_manager_core::talos::talosconfig;
    let mut counting = FailingRandom::new(usize::MAX);
    SecretsBundle::generate(fixed_now(), &mut counting).unwrap();
    let draws = counting.draws;
    // The first CA key, the first serial number, and the last token character.
    for (fail_at, expected) in [
        (
            0,
            "failed to generate etcd ca: the operating system's random number generator failed",
        ),
        (
            1,
            "failed to generate etcd ca: the operating system's random number generator failed",
        ),
        (
            draws - 1,
            "the operating system's random number generator failed",
        ),
    ] {
        let error = SecretsBundle::generate(fixed_now(), &mut FailingRandom::new(fail_at))
            .expect_err("a bundle made without randomness");
        assert_eq!(error_chain(&error), expected, "failing at draw {fail_at}");
    }

    let bundle =
        SecretsBundle::parse(&read(&data_dir().join("secrets/original-app-secrets.yaml"))).unwrap();
    let error = talosconfig(
        &bundle,
        "demo",
        &[],
        &[],
        fixed_now(),
        &mut FailingRandom::new(0),
    )
    .expect_err("a client certificate made without randomness");
    assert_eq!(
        error_chain(&error),
        "failed to issue the talos api client certificate: the operating system's random number generator failed"
    );
}

fn fixed_now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-11-25 05:00:00 UTC)
}

fn pem_der(b64: &str) -> (String, Vec<u8>) {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let block = pem::parse(text).unwrap();
    (block.tag().to_owned(), block.contents().to_vec())
}

/// Checks that `cert_b64` is signed by the key of `issuer_b64` (both base64 PEM certificates).
#[track_caller]
fn check_signed_by(cert_b64: &str, issuer_b64: &str) {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1, ED25519, UnparsedPublicKey, VerificationAlgorithm,
    };
    let (_, cert_der) = pem_der(cert_b64);
    let (_, issuer_der) = pem_der(issuer_b64);
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    let (_, issuer) = x509_parser::parse_x509_certificate(&issuer_der).unwrap();
    assert_eq!(
        cert.issuer(),
        issuer.subject(),
        "issuer name must be the CA's subject"
    );
    let algorithm: &dyn VerificationAlgorithm =
        match cert.signature_algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => &ED25519,
            "1.2.840.10045.4.3.2" => &ECDSA_P256_SHA256_ASN1,
            other => panic!("unexpected signature algorithm {other}"),
        };
    UnparsedPublicKey::new(
        algorithm,
        issuer.public_key().subject_public_key.data.as_ref(),
    )
    .verify(
        cert.tbs_certificate.as_ref(),
        cert.signature_value.data.as_ref(),
    )
    .expect("signature verifies with the CA key");
}

fn subject_and_validity(cert_b64: &str) -> (String, i64) {
    let (_, der) = pem_der(cert_b64);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let validity = cert.validity();
    let hours = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 3600;
    (cert.subject().to_string(), hours)
}

#[test]
fn generated_bundle_is_talosctl_shaped_and_self_consistent() {
    let bundle = SecretsBundle::generate(fixed_now(), &mut TestRandom(7)).unwrap();
    assert_eq!(SecretsBundle::parse(&bundle.to_yaml()).unwrap(), bundle);
    let token_ok = |t: &str| {
        let (a, b) = t.split_once('.').unwrap();
        a.len() == 6
            && b.len() == 16
            && t.chars()
                .all(|c| c == '.' || c.is_ascii_digit() || c.is_ascii_lowercase())
    };
    assert!(token_ok(&bundle.bootstrap_token) && token_ok(&bundle.trustd_token));
    assert_eq!(bundle.cluster_id.len(), 44);
    // Standard base64 of 32 bytes, as talosctl 1.14 writes cluster ids.
    assert!(!bundle.cluster_id.contains(['-', '_']));
    assert!(base64_decodes(&bundle.cluster_id));
    assert_eq!(
        SecretsBundle::generate(fixed_now(), &mut TestRandom(7))
            .unwrap()
            .cluster_id,
        bundle.cluster_id
    );

    for (pair, subject, key_label) in [
        (&bundle.etcd, "O=etcd", "EC PRIVATE KEY"),
        (&bundle.k8s, "O=kubernetes", "EC PRIVATE KEY"),
        (&bundle.k8s_aggregator, "", "EC PRIVATE KEY"),
        (&bundle.os, "O=talos", "ED25519 PRIVATE KEY"),
    ] {
        assert_eq!(
            subject_and_validity(&pair.crt),
            (subject.to_owned(), 87_600)
        );
        assert_eq!(pem_der(&pair.key).0, key_label);
        check_signed_by(&pair.crt, &pair.crt);
    }
    assert_eq!(
        pem_der(&bundle.k8s_service_account_key).0,
        "RSA PRIVATE KEY"
    );
}

#[test]
fn client_configs_chain_to_the_bundle_cas() {
    use talos_manager_core::talos::{admin_kubeconfig, talosconfig};
    let bundle =
        SecretsBundle::parse(&read(&data_dir().join("secrets/original-app-secrets.yaml"))).unwrap();
    let text = talosconfig(
        &bundle,
        "demo",
        &["10.0.0.1".into()],
        &["10.0.0.2".into()],
        fixed_now(),
        &mut TestRandom(1),
    )
    .unwrap();
    let config = yaml::parse(&text).unwrap();
    let context = config.path("contexts.demo").unwrap();
    assert_eq!(config.get("context").unwrap().to_string(), "demo");
    assert_eq!(
        context.get("ca").unwrap().as_str(),
        Some(bundle.os.crt.as_str())
    );
    assert_eq!(
        context.get("nodes").unwrap(),
        &yaml::Value::Seq(vec![yaml::Value::str("10.0.0.2")])
    );
    let crt = context.get("crt").unwrap().to_string();
    check_signed_by(&crt, &bundle.os.crt);
    assert_eq!(subject_and_validity(&crt), ("O=os:admin".to_owned(), 8_760));
    assert_eq!(
        pem_der(&context.get("key").unwrap().to_string()).0,
        "ED25519 PRIVATE KEY"
    );

    let text = admin_kubeconfig(
        &bundle,
        "demo",
        "https://10.0.0.1:6443",
        fixed_now(),
        &mut TestRandom(2),
    )
    .unwrap();
    let kubeconfig = yaml::parse(&text).unwrap();
    assert_eq!(
        kubeconfig.get("current-context").unwrap().to_string(),
        "admin@demo"
    );
    let user = &kubeconfig.get("users").unwrap().as_seq().unwrap()[0];
    let crt = user
        .path("user.client-certificate-data")
        .unwrap()
        .to_string();
    check_signed_by(&crt, &bundle.k8s.crt);
    assert_eq!(subject_and_validity(&crt).0, "O=system:masters, CN=admin");
    // Valid from five minutes before now (Talos's own admin certificate: one minute), so an
    // API server whose clock is a minute behind ours does not answer 401.
    let (_, der) = pem_der(&crt);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.validity().not_before.timestamp(),
        (fixed_now() - time::Duration::minutes(5)).unix_timestamp()
    );
    let cluster = &kubeconfig.get("clusters").unwrap().as_seq().unwrap()[0];
    assert_eq!(
        cluster.path("cluster.server").unwrap().to_string(),
        "https://10.0.0.1:6443"
    );
}

#[test]
fn generated_configs_pass_strict_metal_validation() {
    let secrets = SecretsBundle::parse(&read(&data_dir().join("stability/secrets.yaml"))).unwrap();
    for version in TalosVersion::ALL {
        for machine_type in [MachineType::ControlPlane, MachineType::Worker] {
            let mut options = stability_options("overrides", version);
            options.cni = None;
            let yaml = ConfigEngine::generate(
                &GenerateInput::new(options.clone(), machine_type),
                &secrets,
            )
            .unwrap();
            // From 1.12 on, install kernel arguments and the UKI command line exclude each
            // other, as in `talosctl validate -m metal` (the overrides goldens set both).
            // 1.14's UnattendedInstallConfig has no kernel arguments: talosctl drops them.
            let expected: Vec<String> = if version >= TalosVersion::V1_12
                && !version.typed_documents()
            {
                vec!["machine.install.extraKernelArgs: install.extraKernelArgs and install.grubUseUKICmdline can't be used together".into()]
            } else {
                Vec::new()
            };
            let issues: Vec<String> = validate(&yaml, ValidationMode::Metal, true)
                .iter()
                .map(ToString::to_string)
                .collect();
            assert_eq!(issues, expected, "{version} {machine_type:?}");
            options.extra_kernel_args.clear();
            let yaml = ConfigEngine::generate(&GenerateInput::new(options, machine_type), &secrets)
                .unwrap();
            assert_eq!(
                validate(&yaml, ValidationMode::Metal, true),
                [],
                "{version} {machine_type:?}"
            );
        }
    }
}

/// Property tests: whatever a user writes as a patch or a config, the engine answers with a
/// result or an error, never a panic.
mod never_panics {
    use proptest::prelude::*;
    use talos_manager_core::talos::yaml::Value;

    use super::*;

    /// Keys that reach deep into the schema, plus the patch directives.
    const KEYS: &[&str] = &[
        "version",
        "machine",
        "cluster",
        "network",
        "interfaces",
        "interface",
        "vlans",
        "vlanId",
        "addresses",
        "routes",
        "network",
        "gateway",
        "install",
        "disk",
        "nodeLabels",
        "certSANs",
        "apiServer",
        "admissionControl",
        "name",
        "configuration",
        "auditPolicy",
        "kind",
        "apiVersion",
        "$patch",
        "op",
        "path",
        "value",
        "from",
        "deviceSelector",
        "kubelet",
        "extraMounts",
        "sysctls",
        "kubespan",
        "enabled",
        "controlPlane",
        "endpoint",
        "podSubnets",
        "VolumeConfig",
        "provisioning",
        "minSize",
        "maxSize",
        "inlineManifests",
        "contents",
    ];

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            prop::sample::select(vec![
                "delete",
                "add",
                "replace",
                "remove",
                "/machine/network",
                "v1alpha1",
                "VolumeConfig",
                "",
                "eth0",
                "-",
                "10.0.0.1/24"
            ])
            .prop_map(Value::str),
            "\\PC{0,12}".prop_map(Value::Str),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Seq),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..5).prop_map(
                    |entries| {
                        let mut map: Vec<(String, Value)> = Vec::new();
                        for (key, value) in entries {
                            if !map.iter().any(|(k, _)| k == key) {
                                map.push((key.to_owned(), value));
                            }
                        }
                        Value::Map(map)
                    }
                ),
            ]
        })
    }

    fn delete() -> Value {
        Value::Map(vec![("$patch".into(), Value::str("delete"))])
    }

    fn word() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "eth0",
            "eth1",
            "PodSecurity",
            "a",
            "b/c",
            "10.0.0.1/24",
            "fd00::1",
            "",
        ])
        .prop_map(str::to_owned)
    }

    fn strings() -> impl Strategy<Value = Value> {
        prop::collection::vec(word().prop_map(Value::Str), 0..3).prop_map(Value::Seq)
    }

    fn maybe_delete(value: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
        prop_oneof![4 => value, 1 => Just(delete())]
    }

    fn entries(entries: Vec<(&'static str, Option<Value>)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect(),
        )
    }

    fn interface() -> impl Strategy<Value = Value> {
        let vlan = (
            0i64..5,
            prop::option::of(strings()),
            prop::option::of(1200i64..1500),
        )
            .prop_map(|(id, addresses, mtu)| {
                entries(vec![
                    ("vlanId", Some(Value::Int(id))),
                    ("addresses", addresses),
                    ("mtu", mtu.map(Value::Int)),
                ])
            });
        (
            prop::option::of(word().prop_map(Value::Str)),
            prop::option::of(strings()),
            prop::option::of(prop::collection::vec(vlan, 0..3).prop_map(Value::Seq)),
            prop::option::of(any::<bool>().prop_map(Value::Bool)),
            prop::option::of(word().prop_map(|d| entries(vec![("driver", Some(Value::Str(d)))]))),
            any::<bool>(),
        )
            .prop_map(|(name, addresses, vlans, dhcp, selector, delete_it)| {
                let mut item = entries(vec![
                    ("interface", name),
                    ("deviceSelector", selector),
                    ("addresses", addresses),
                    ("vlans", vlans),
                    ("dhcp", dhcp),
                ]);
                if delete_it {
                    item.insert("$patch", Value::str("delete"));
                }
                item
            })
    }

    fn string_map() -> impl Strategy<Value = Value> {
        prop::collection::vec((word(), maybe_delete(word().prop_map(Value::Str))), 0..3).prop_map(
            |pairs| {
                let mut map = Value::Map(Vec::new());
                for (k, v) in pairs {
                    map.insert(&k, v);
                }
                map
            },
        )
    }

    /// Patches shaped like the schema, so most of them load and reach the merge rules.
    fn schema_patch() -> impl Strategy<Value = Value> {
        let admission = (word(), prop::option::of(value()), any::<bool>()).prop_map(
            |(name, configuration, delete_it)| {
                let mut item = entries(vec![
                    ("name", Some(Value::Str(name))),
                    ("configuration", configuration),
                ]);
                if delete_it {
                    item.insert("$patch", Value::str("delete"));
                }
                item
            },
        );
        (
            prop::option::of(maybe_delete(word().prop_map(Value::Str))),
            prop::option::of(prop::collection::vec(interface(), 0..3).prop_map(Value::Seq)),
            prop::option::of(string_map()),
            prop::option::of(strings()),
            prop::option::of(prop::collection::vec(admission, 0..2).prop_map(Value::Seq)),
            prop::option::of(strings()),
            prop::option::of(maybe_delete(value())),
        )
            .prop_map(
                |(hostname, interfaces, labels, kernel_args, admission, pod_subnets, audit)| {
                    let network = entries(vec![("hostname", hostname), ("interfaces", interfaces)]);
                    let install =
                        kernel_args.map(|args| entries(vec![("extraKernelArgs", Some(args))]));
                    let machine = entries(vec![
                        ("network", Some(network)),
                        ("nodeLabels", labels),
                        ("install", install),
                    ]);
                    let api_server = entries(vec![
                        ("admissionControl", admission),
                        ("auditPolicy", audit),
                    ]);
                    let cluster_network =
                        pod_subnets.map(|p| entries(vec![("podSubnets", Some(p))]));
                    let cluster = entries(vec![
                        ("apiServer", Some(api_server)),
                        ("network", cluster_network),
                    ]);
                    entries(vec![("machine", Some(machine)), ("cluster", Some(cluster))])
                },
            )
    }

    fn json_patch() -> impl Strategy<Value = Value> {
        let op = (
            prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test"]),
            prop::sample::select(vec![
                "/machine/network",
                "/machine/certSANs/-",
                "/machine/certSANs/0",
                "/cluster/network/podSubnets/0",
                "/machine/nodeLabels/x",
                "/machine/install/disk",
                "/nope/x",
                "",
            ]),
            value(),
        )
            .prop_map(|(op, path, value)| {
                entries(vec![
                    ("op", Some(Value::str(op))),
                    ("path", Some(Value::str(path))),
                    ("from", Some(Value::str("/machine/certSANs"))),
                    ("value", Some(value)),
                ])
            });
        prop::collection::vec(op, 1..4).prop_map(Value::Seq)
    }

    fn base_config() -> MachineConfig {
        let secrets =
            SecretsBundle::parse(&read(&data_dir().join("stability/secrets.yaml"))).unwrap();
        let options = GenerateOptions::new("c", "https://c:6443", "1.30.1");
        let mut input = GenerateInput::new(options, MachineType::ControlPlane);
        input.options.talos_version = TalosVersion::V1_10;
        ConfigEngine::generate_config(&input, &secrets).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn random_structured_patches(doc in prop_oneof![value(), schema_patch(), json_patch()]) {
            let text = yaml::emit_document(&doc);
            let mut config = base_config();
            if let Ok(patch) = Patch::parse(&text) {
                let _ = config.apply_patch(&patch);
            }
            let out = config.to_yaml();
            // Whatever the patch did, the result loads again and is already canonical.
            let reloaded = MachineConfig::parse(&out);
            prop_assert!(reloaded.is_ok(), "{:?} for\n{}", reloaded.err(), out);
            prop_assert_eq!(reloaded.unwrap().to_yaml(), out.clone());
            let _ = validate(&out, ValidationMode::Metal, true);
            let _ = validate(&text, ValidationMode::Metal, true);
        }

        /// Whatever strings the options hold, the output reads back as the same config and
        /// re-emits identically (so the quoting rules never change a value).
        #[test]
        fn any_string_round_trips(name in "\\PC{0,24}", label in "[ -~]{0,16}", text in "(?s).{0,40}") {
            let secrets = SecretsBundle::parse(&read(&data_dir().join("stability/secrets.yaml"))).unwrap();
            let mut options = GenerateOptions::new(name.clone(), "https://c:6443", "1.30.1");
            options.sysctls = vec![(label.clone(), text.clone())];
            options.additional_sans = vec![text.clone(), label.clone()];
            let Ok(yaml) = ConfigEngine::generate(&GenerateInput::new(options, MachineType::ControlPlane), &secrets) else {
                return Ok(());
            };
            let parsed = yaml::parse_documents(&yaml);
            prop_assert!(parsed.is_ok(), "unreadable output:\n{}", yaml);
            let parsed = parsed.unwrap();
            // An empty name is an empty field, which Talos leaves out.
            // Talos 1.14 writes the name in its KubeClusterConfig document.
            let cluster_name = parsed.iter().find_map(|d| {
                d.path("cluster.clusterName").or_else(|| {
                    (d.get("kind").map(Value::to_string).as_deref() == Some("KubeClusterConfig"))
                        .then(|| d.get("clusterName"))
                        .flatten()
                })
            });
            prop_assert_eq!(cluster_name.map(Value::to_string).unwrap_or_default(), name);
            prop_assert_eq!(parsed[0].path("machine.certSANs").and_then(Value::as_seq).map(|s| s[0].to_string()), Some(text.clone()));
            let config = MachineConfig::parse(&yaml).unwrap();
            prop_assert_eq!(config.to_yaml(), yaml);
        }

        #[test]
        fn random_text(text in "\\PC{0,200}") {
            let _ = Patch::parse(&text);
            let _ = MachineConfig::parse(&text);
            let _ = SecretsBundle::parse(&text);
            let _ = validate(&text, ValidationMode::Cloud, false);
        }
    }
}

/// `validate/<case>/config.yaml` gives exactly the issues of `issues.txt` (`path: message`,
/// one per line; strict metal mode), as talosctl of the version in `version.txt` (1.13 when
/// there is none) validates it. These texts are our own and may be blessed
/// (`UPDATE_EXPECT=1` rewrites them; review the diff).
#[test]
fn validation_cases() {
    let cases = sorted_entries(&data_dir().join("validate"));
    assert!(!cases.is_empty());
    for case in cases {
        let version = match fs::read_to_string(case.join("version.txt")) {
            Ok(text) => TalosVersion::parse(&text).unwrap(),
            Err(_) => TalosVersion::V1_13,
        };
        let issues = validate_for(
            &read(&case.join("config.yaml")),
            ValidationMode::Metal,
            true,
            version,
        );
        let actual: String = issues.iter().map(|issue| format!("{issue}\n")).collect();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            fs::write(case.join("issues.txt"), &actual).unwrap();
        }
        assert_same_text(
            &actual,
            &read(&case.join("issues.txt")),
            &case.display().to_string(),
        );
    }
}

/// Whether a text is standard (padded) base64.
fn base64_decodes(text: &str) -> bool {
    text.len().is_multiple_of(4)
        && text
            .trim_end_matches('=')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
}
