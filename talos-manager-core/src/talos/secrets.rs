//! The secrets bundle of `talosctl gen secrets`: parsing, validation, emission and native
//! generation with the same algorithms, subjects, validity and encodings as talosctl.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use time::{Duration, OffsetDateTime};

use super::pki::{self, CertAndKey, KeyAlgorithm, PkiError};
use super::yaml::{self, Value};
use super::{Issue, RandomSource, format_issues};
use crate::random::{RandomError, random_bytes};

/// A cluster's secrets bundle, as `talosctl gen secrets` writes it.
///
/// Certificates and keys are kept as talosctl stores them: standard base64 of the PEM text.
/// `Debug` never prints a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretsBundle {
    /// `cluster.id`: URL-safe base64 of 32 random bytes.
    pub cluster_id: String,
    /// `cluster.secret`: base64 of 32 random bytes.
    pub cluster_secret: String,
    /// `secrets.bootstraptoken`, the Kubernetes bootstrap token (`abcdef.0123456789abcdef`).
    pub bootstrap_token: String,
    /// `secrets.secretboxencryptionsecret` (Talos 1.3+ bundles).
    pub secretbox_encryption_secret: Option<String>,
    /// `secrets.aescbcencryptionsecret` (bundles of Talos 1.2 and older).
    pub aescbc_encryption_secret: Option<String>,
    /// `trustdinfo.token`, the machine token.
    pub trustd_token: String,
    /// `certs.etcd`: the etcd CA.
    pub etcd: CertAndKey,
    /// `certs.k8s`: the Kubernetes CA.
    pub k8s: CertAndKey,
    /// `certs.k8saggregator`: the front-proxy CA.
    pub k8s_aggregator: CertAndKey,
    /// `certs.k8sserviceaccount.key`: the service-account signing key.
    pub k8s_service_account_key: String,
    /// `certs.os`: the Talos API CA.
    pub os: CertAndKey,
}

impl fmt::Debug for SecretsBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsBundle { <redacted> }")
    }
}

/// A secrets bundle that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SecretsError {
    /// The text is not YAML.
    #[error("secrets bundle is not valid yaml: {message}")]
    Syntax {
        /// The parser's message.
        message: String,
    },
    /// The bundle is incomplete or holds unusable values; every problem is listed.
    #[error("failed to validate secrets bundle: {}", format_issues(issues))]
    Invalid {
        /// Every problem, with the field it concerns.
        issues: Vec<Issue>,
    },
    /// Creating a key or certificate failed.
    #[error("failed to generate {what}")]
    Generate {
        /// The key or certificate being made.
        what: &'static str,
        /// The cause.
        #[source]
        source: PkiError,
    },
    /// The random source failed, so no secret was made.
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
}

/// Validity of the CAs in a bundle: 87 600 hours.
const CA_VALIDITY: Duration = Duration::hours(87_600);

impl SecretsBundle {
    /// Parses and validates a bundle in the `talosctl gen secrets` YAML format. Unknown keys
    /// are ignored, as talosctl does; every missing or unusable field is reported.
    pub fn parse(text: &str) -> Result<SecretsBundle, SecretsError> {
        let root = yaml::parse(text).map_err(|e| SecretsError::Syntax {
            message: crate::error_chain(&e).to_string(),
        })?;
        let mut issues = Vec::new();
        let text_at = |path: &str| -> Option<String> {
            root.path(path)
                .filter(|v| !v.is_empty_value())
                .map(Value::to_string)
        };
        let required = |path: &str, issues: &mut Vec<Issue>| -> String {
            text_at(path).unwrap_or_else(|| {
                issues.push(Issue::new(path, format!("{path} is required")));
                String::new()
            })
        };
        let section = |name: &str, issues: &mut Vec<Issue>| -> bool {
            let present = root.get(name).is_some_and(|v| !matches!(v, Value::Null));
            if !present {
                issues.push(Issue::new(name, format!("{name} is required")));
            }
            present
        };

        let (mut cluster_id, mut cluster_secret) = (String::new(), String::new());
        if section("cluster", &mut issues) {
            cluster_id = required("cluster.id", &mut issues);
            cluster_secret = required("cluster.secret", &mut issues);
        }
        let (mut bootstrap_token, mut secretbox, mut aescbc) = (String::new(), None, None);
        if section("secrets", &mut issues) {
            bootstrap_token = required("secrets.bootstraptoken", &mut issues);
            secretbox = text_at("secrets.secretboxencryptionsecret");
            aescbc = text_at("secrets.aescbcencryptionsecret");
            const BOTH: &str =
                "[secrets.secretboxencryptionsecret, secrets.aescbcencryptionsecret]";
            match (&secretbox, &aescbc) {
                (None, None) => {
                    issues.push(Issue::new("secrets", format!("one of {BOTH} is required")))
                }
                (Some(_), Some(_)) => issues.push(Issue::new(
                    "secrets",
                    format!("only one of {BOTH} is allowed"),
                )),
                _ => {}
            }
        }
        let mut trustd_token = String::new();
        if section("trustdinfo", &mut issues) {
            trustd_token = required("trustdinfo.token", &mut issues);
        }
        let empty = || CertAndKey {
            crt: String::new(),
            key: String::new(),
        };
        let (mut etcd, mut k8s, mut k8s_aggregator, mut os) = (empty(), empty(), empty(), empty());
        let mut k8s_service_account_key = String::new();
        if section("certs", &mut issues) {
            for (name, slot) in [
                ("etcd", &mut etcd),
                ("k8s", &mut k8s),
                ("k8saggregator", &mut k8s_aggregator),
                ("os", &mut os),
            ] {
                let path = format!("certs.{name}");
                match root.path(&path).filter(|v| !matches!(v, Value::Null)) {
                    None => issues.push(Issue::new(&path, format!("{path} is required"))),
                    Some(value) => {
                        let pair = CertAndKey {
                            crt: value.get("crt").map(Value::to_string).unwrap_or_default(),
                            key: value.get("key").map(Value::to_string).unwrap_or_default(),
                        };
                        if let Err(err) = pair.check() {
                            issues.push(Issue::new(&path, format!("{path} is invalid: {err}")));
                        }
                        *slot = pair;
                    }
                }
            }
            match root.path("certs.k8sserviceaccount") {
                None | Some(Value::Null) => issues.push(Issue::new(
                    "certs.k8sserviceaccount",
                    "certs.k8sserviceaccount is required",
                )),
                Some(value) => {
                    k8s_service_account_key =
                        value.get("key").map(Value::to_string).unwrap_or_default();
                    if let Err(err) = pki::check_key(&k8s_service_account_key) {
                        issues.push(Issue::new(
                            "certs.k8sserviceaccount.key",
                            format!("certs.k8sserviceaccount.key is invalid: {err}"),
                        ));
                    }
                }
            }
        }
        if !issues.is_empty() {
            return Err(SecretsError::Invalid { issues });
        }
        Ok(SecretsBundle {
            cluster_id,
            cluster_secret,
            bootstrap_token,
            secretbox_encryption_secret: secretbox,
            aescbc_encryption_secret: aescbc,
            trustd_token,
            etcd,
            k8s,
            k8s_aggregator,
            k8s_service_account_key,
            os,
        })
    }

    /// Generates a new bundle as `talosctl gen secrets` does for Talos 1.7 and later: random
    /// ids and tokens, ECDSA P-256 CAs for etcd, Kubernetes and the aggregator (the latter with
    /// an empty subject), an Ed25519 Talos API CA and an RSA-4096 service-account key. All CAs
    /// are valid from `now` for 87 600 hours.
    ///
    /// Everything random is drawn from `rng`, except the RSA key, which the crypto library
    /// generates from the operating system's generator (it takes no seed).
    pub fn generate(
        now: OffsetDateTime,
        rng: &mut dyn RandomSource,
    ) -> Result<SecretsBundle, SecretsError> {
        let ca = |rng: &mut dyn RandomSource,
                  what: &'static str,
                  organization: Option<&str>,
                  algorithm| {
            pki::self_signed_ca(rng, organization, algorithm, now, now + CA_VALIDITY)
                .map_err(|source| SecretsError::Generate { what, source })
        };
        let etcd = ca(rng, "etcd ca", Some("etcd"), KeyAlgorithm::EcdsaP256)?;
        let k8s = ca(
            rng,
            "kubernetes ca",
            Some("kubernetes"),
            KeyAlgorithm::EcdsaP256,
        )?;
        let k8s_aggregator = ca(rng, "aggregator ca", None, KeyAlgorithm::EcdsaP256)?;
        let os = ca(rng, "talos api ca", Some("talos"), KeyAlgorithm::Ed25519)?;
        let k8s_service_account_key =
            pki::rsa_4096_key().map_err(|source| SecretsError::Generate {
                what: "service account key",
                source,
            })?;
        Ok(SecretsBundle {
            // Standard base64, as talosctl 1.14 writes it (`cluster.ClusterIDEncoding`;
            // earlier releases used the URL alphabet, which every release still reads).
            cluster_id: STANDARD.encode(random_bytes::<32>(rng)?),
            cluster_secret: STANDARD.encode(random_bytes::<32>(rng)?),
            bootstrap_token: random_token(rng)?,
            secretbox_encryption_secret: Some(STANDARD.encode(random_bytes::<32>(rng)?)),
            aescbc_encryption_secret: None,
            trustd_token: random_token(rng)?,
            etcd,
            k8s,
            k8s_aggregator,
            k8s_service_account_key,
            os,
        })
    }

    /// Writes the bundle in talosctl's format (go-yaml, 4-space indentation).
    pub fn to_yaml(&self) -> String {
        let pair = |p: &CertAndKey| {
            Value::Map(vec![
                ("crt".into(), Value::str(&p.crt)),
                ("key".into(), Value::str(&p.key)),
            ])
        };
        let mut secrets = vec![(
            "bootstraptoken".to_owned(),
            Value::str(&self.bootstrap_token),
        )];
        if let Some(aescbc) = &self.aescbc_encryption_secret {
            secrets.push(("aescbcencryptionsecret".into(), Value::str(aescbc)));
        }
        if let Some(secretbox) = &self.secretbox_encryption_secret {
            secrets.push(("secretboxencryptionsecret".into(), Value::str(secretbox)));
        }
        let root = Value::Map(vec![
            (
                "cluster".into(),
                Value::Map(vec![
                    ("id".into(), Value::str(&self.cluster_id)),
                    ("secret".into(), Value::str(&self.cluster_secret)),
                ]),
            ),
            ("secrets".into(), Value::Map(secrets)),
            (
                "trustdinfo".into(),
                Value::Map(vec![("token".into(), Value::str(&self.trustd_token))]),
            ),
            (
                "certs".into(),
                Value::Map(vec![
                    ("etcd".into(), pair(&self.etcd)),
                    ("k8s".into(), pair(&self.k8s)),
                    ("k8saggregator".into(), pair(&self.k8s_aggregator)),
                    (
                        "k8sserviceaccount".into(),
                        Value::Map(vec![(
                            "key".into(),
                            Value::str(&self.k8s_service_account_key),
                        )]),
                    ),
                    ("os".into(), pair(&self.os)),
                ]),
            ),
        ]);
        yaml::emit_document(&root)
    }
}

/// A kubeadm-style token: 6 and 16 characters of `[a-z0-9]` joined by a dot. Each character
/// comes from one random byte; bytes of 252 and above are drawn again so every character is
/// equally likely.
fn random_token(rng: &mut dyn RandomSource) -> Result<String, RandomError> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut pick = |n: usize| -> Result<String, RandomError> {
        let mut out = String::with_capacity(n);
        while out.len() < n {
            let [byte] = random_bytes::<1>(rng)?;
            if byte < 252 {
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
        Ok(out)
    };
    Ok(format!("{}.{}", pick(6)?, pick(16)?))
}
