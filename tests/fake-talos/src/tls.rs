//! The fake nodes' TLS: a serving certificate signed by the cluster's OS CA (configured nodes,
//! client certificates required and checked as apid checks them), or a self-signed one per boot
//! (maintenance mode, no client certificate).

use std::net::Ipv4Addr;
use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The role a client certificate's Organization grants (Talos's RBAC, simplified to three
/// levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Role {
    Reader,
    Operator,
    Admin,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn other(error: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

/// The OS CA as rcgen wants it (Talos's `ED25519 PRIVATE KEY` label is accepted).
pub(crate) struct OsCa {
    crt_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl OsCa {
    pub(crate) fn new(crt_pem: &str, key_pem: &str) -> std::io::Result<OsCa> {
        let key_pem = key_pem
            .replace("BEGIN ED25519 PRIVATE KEY", "BEGIN PRIVATE KEY")
            .replace("END ED25519 PRIVATE KEY", "END PRIVATE KEY");
        // Check both now, so a bad CA fails at start and not at the first node.
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(other)?;
        rcgen::Issuer::from_ca_cert_pem(crt_pem, key).map_err(other)?;
        use rustls::pki_types::pem::PemObject as _;
        let der = CertificateDer::from_pem_slice(crt_pem.as_bytes()).map_err(other)?;
        Ok(OsCa {
            crt_pem: crt_pem.to_owned(),
            key_pem,
            der,
        })
    }

    /// A configured node's TLS: a serving certificate for its address signed by the OS CA,
    /// a client certificate required.
    pub(crate) fn configured_config(
        &self,
        address: Ipv4Addr,
    ) -> std::io::Result<Arc<rustls::ServerConfig>> {
        let ca_key = rcgen::KeyPair::from_pem(&self.key_pem).map_err(other)?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.crt_pem, ca_key).map_err(other)?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(other)?;
        params.subject_alt_names = vec![rcgen::SanType::IpAddress(address.into())];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().map_err(other)?;
        let certificate = params.signed_by(&key, &issuer).map_err(other)?;

        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).map_err(other)?;
        let webpki = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(other)?;
        let verifier = Arc::new(ExactlyClientAuth { inner: webpki });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(other)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// A maintenance-mode boot's TLS: a fresh self-signed certificate, no client certificate.
pub(crate) fn maintenance_config(address: Ipv4Addr) -> std::io::Result<Arc<rustls::ServerConfig>> {
    let certified = rcgen::generate_simple_self_signed(vec![address.to_string()]).map_err(other)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                certified.signing_key.serialize_der(),
            )),
        )
        .map_err(other)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The highest role a client certificate's Organization values grant (`None`: no role).
pub(crate) fn role_of(certificate: &CertificateDer<'_>) -> Option<Role> {
    let (_, certificate) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    certificate
        .subject()
        .iter_organization()
        .filter_map(|organization| organization.as_str().ok())
        .filter_map(|organization| match organization {
            "os:admin" => Some(Role::Admin),
            "os:operator" => Some(Role::Operator),
            "os:reader" => Some(Role::Reader),
            _ => None,
        })
        .max()
}

/// webpki's chain check, plus apid's rule that the client certificate's extended key usage is
/// exactly `clientAuth`.
#[derive(Debug)]
struct ExactlyClientAuth {
    inner: Arc<dyn ClientCertVerifier>,
}

fn eku_is_exactly_client_auth(certificate: &CertificateDer<'_>) -> bool {
    let Ok((_, certificate)) = x509_parser::parse_x509_certificate(certificate.as_ref()) else {
        return false;
    };
    match certificate.extended_key_usage() {
        Ok(Some(eku)) => {
            let eku = eku.value;
            eku.client_auth
                && !eku.any
                && !eku.server_auth
                && !eku.code_signing
                && !eku.email_protection
                && !eku.time_stamping
                && !eku.ocsp_signing
                && eku.other.is_empty()
        }
        _ => false,
    }
}

impl ClientCertVerifier for ExactlyClientAuth {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if !eku_is_exactly_client_auth(end_entity) {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::InvalidPurpose,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}
