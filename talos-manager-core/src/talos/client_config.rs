//! Client configs made offline from the secrets bundle: talosconfig (as `talosctl gen config`
//! writes it) and the admin kubeconfig (as `talosctl kubeconfig` returns it).

use rcgen::KeyUsagePurpose;
use time::{Duration, OffsetDateTime};

use super::RandomSource;
use super::pki::{self, CertAndKey, ClientSubject, PkiError};
use super::secrets::SecretsBundle;
use super::yaml::{self, Value, emit_scalar};

/// Lifetime of the talosconfig and kubeconfig client certificates: 8 760 hours, as Talos sets
/// them.
pub const CLIENT_VALIDITY: Duration = Duration::hours(8_760);

/// How long before "now" the client certificates we present to a cluster's Kubernetes API
/// and Talos API become valid, so that a node whose clock runs behind ours still accepts
/// them (the API server answers 401 to a certificate that is not valid yet by its clock).
/// Talos backdates its own temporary admin certificate by one minute; five give a minute of
/// skew a margin.
pub const CLIENT_CERT_BACKDATE: Duration = Duration::minutes(5);

/// A client config that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    /// The bundle's CA cannot sign (unreadable certificate or key).
    #[error("failed to issue the {what} client certificate")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// The cause.
        #[source]
        source: PkiError,
    },
}

/// A talosconfig for `cluster_name` with an `os:admin` client certificate signed by the
/// bundle's Talos API CA (Ed25519 like the CA, valid from `now` for a year).
///
/// talosctl writes `endpoints: []` and no `nodes`; pass the servers to fill them in, as the
/// original app did.
pub fn talosconfig(
    secrets: &SecretsBundle,
    cluster_name: &str,
    endpoints: &[String],
    nodes: &[String],
    now: OffsetDateTime,
    rng: &mut dyn RandomSource,
) -> Result<String, ClientConfigError> {
    let client = os_admin_client_certificate(secrets, now, now + CLIENT_VALIDITY, rng)?;
    let list = |items: &[String]| Value::Seq(items.iter().map(Value::str).collect());
    let mut context = vec![("endpoints".to_owned(), list(endpoints))];
    if !nodes.is_empty() {
        context.push(("nodes".into(), list(nodes)));
    }
    context.push(("ca".into(), Value::str(&secrets.os.crt)));
    context.push(("crt".into(), Value::Str(client.crt)));
    context.push(("key".into(), Value::Str(client.key)));
    let root = Value::Map(vec![
        ("context".into(), Value::str(cluster_name)),
        (
            "contexts".into(),
            Value::Map(vec![(cluster_name.to_owned(), Value::Map(context))]),
        ),
    ]);
    Ok(yaml::emit_document(&root))
}

/// An `os:admin` client certificate for the Talos API, signed by the bundle's Talos API CA
/// (Ed25519 like the CA, extended key usage exactly `clientAuth`, as apid requires), valid from
/// `not_before` to `not_after`, as base64 PEM.
pub fn os_admin_client_certificate(
    secrets: &SecretsBundle,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    rng: &mut dyn RandomSource,
) -> Result<CertAndKey, ClientConfigError> {
    let subject = ClientSubject {
        organizations: &["os:admin"],
        common_name: None,
        key_usages: &[KeyUsagePurpose::DigitalSignature],
    };
    pki::client_certificate(rng, &secrets.os, &subject, not_before, not_after).map_err(|source| {
        ClientConfigError::Certificate {
            what: "talos api",
            source,
        }
    })
}

/// The admin kubeconfig a control-plane node would hand out: a `system:masters` / `admin`
/// client certificate signed by the bundle's Kubernetes CA (valid from
/// [`CLIENT_CERT_BACKDATE`] before `now` for a year), written in client-go's layout.
pub fn admin_kubeconfig(
    secrets: &SecretsBundle,
    cluster_name: &str,
    endpoint: &str,
    now: OffsetDateTime,
    rng: &mut dyn RandomSource,
) -> Result<String, ClientConfigError> {
    let client = admin_client_certificate(secrets, now, rng)?;
    let name = emit_scalar(cluster_name);
    let user = emit_scalar(&format!("admin@{cluster_name}"));
    let server = emit_scalar(endpoint);
    let ca = &secrets.k8s.crt;
    let (crt, key) = (&client.crt, &client.key);
    Ok(format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    namespace: default\n    user: {user}\n  name: {user}\ncurrent-context: {user}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {crt}\n    client-key-data: {key}\n"
    ))
}

/// The client certificate of the admin kubeconfig (`system:masters` / `admin`, signed by the
/// bundle's Kubernetes CA, valid from [`CLIENT_CERT_BACKDATE`] before `now` for a year), as
/// base64 PEM.
pub(crate) fn admin_client_certificate(
    secrets: &SecretsBundle,
    now: OffsetDateTime,
    rng: &mut dyn RandomSource,
) -> Result<CertAndKey, ClientConfigError> {
    let subject = ClientSubject {
        organizations: &["system:masters"],
        common_name: Some("admin"),
        key_usages: &[
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ],
    };
    pki::client_certificate(
        rng,
        &secrets.k8s,
        &subject,
        now - CLIENT_CERT_BACKDATE,
        now + CLIENT_VALIDITY,
    )
    .map_err(|source| ClientConfigError::Certificate {
        what: "kubernetes admin",
        source,
    })
}
