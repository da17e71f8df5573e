//! AutoMTLS for the plugin connection: a fresh self-signed server certificate per start, and a
//! client-certificate verifier that accepts exactly the certificate Terraform passed in
//! `PLUGIN_CLIENT_CERT`.
//!
//! Terraform's client certificate is a self-signed CA certificate with an ECDSA P-521 key.
//! webpki refuses a CA certificate as a client's leaf (`CaUsedAsEndEntity`), so the usual
//! verifier cannot be used; pinning the exact DER is also stricter. aws-lc-rs verifies P-521
//! signatures (ring does not, and Go then sends no certificate at all).

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `PLUGIN_CLIENT_CERT` holds no PEM certificate.
    #[error("PLUGIN_CLIENT_CERT is not a PEM certificate")]
    ClientCertificate(#[source] rustls::pki_types::pem::Error),
    /// The server certificate could not be made.
    #[error("failed to generate the plugin's certificate")]
    Generate(#[source] rcgen::Error),
    /// rustls refused the configuration.
    #[error("failed to configure TLS")]
    Config(#[source] rustls::Error),
}

/// The server's TLS configuration and its certificate (for the handshake line).
pub struct ServerTls {
    /// The rustls configuration: TLS with ALPN `h2`, the pinned client certificate required.
    pub config: Arc<rustls::ServerConfig>,
    /// The server certificate's DER.
    pub certificate: Vec<u8>,
}

/// The TLS configuration for a connection from the Terraform that passed `client_pem`.
pub fn server_tls(client_pem: &str) -> Result<ServerTls, TlsError> {
    let client = CertificateDer::from_pem_slice(client_pem.as_bytes())
        .map_err(TlsError::ClientCertificate)?;
    let key = rcgen::KeyPair::generate().map_err(TlsError::Generate)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(TlsError::Generate)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "terraform-provider-talosmanager",
    );
    // Some slack for clock differences between the two processes.
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(1);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let certificate = params.self_signed(&key).map_err(TlsError::Generate)?;
    let certificate_der = certificate.der().to_vec();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedClientCertificate {
        pinned: client.into_owned(),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(certificate_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        certificate: certificate_der,
    })
}

/// Accepts exactly one client certificate, byte for byte.
#[derive(Debug)]
struct PinnedClientCertificate {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: the client then sends its only certificate.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed() -> rcgen::CertifiedKey<rcgen::KeyPair> {
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap()
    }

    #[test]
    fn only_the_pinned_client_certificate_is_accepted() {
        let terraform = self_signed();
        let other = self_signed();
        let verifier = PinnedClientCertificate {
            pinned: terraform.cert.der().clone(),
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
        };
        let now = UnixTime::now();
        assert!(
            verifier
                .verify_client_cert(terraform.cert.der(), &[], now)
                .is_ok()
        );
        assert!(
            verifier
                .verify_client_cert(other.cert.der(), &[], now)
                .is_err()
        );
        assert!(verifier.client_auth_mandatory());
        // P-521, which Terraform's certificate uses, must be verifiable.
        assert!(
            verifier
                .supported_verify_schemes()
                .contains(&SignatureScheme::ECDSA_NISTP521_SHA512)
        );
    }

    #[test]
    fn server_tls_takes_terraforms_pem_and_speaks_h2() {
        let terraform = self_signed();
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(terraform.cert.der());
        let pem = format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n");
        let tls = server_tls(&pem).unwrap();
        assert_eq!(tls.config.alpn_protocols, vec![b"h2".to_vec()]);
        assert!(!tls.certificate.is_empty());
        assert!(server_tls("not a certificate").is_err());
    }
}
