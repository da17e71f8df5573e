//! TLS for the Talos API, done with rustls and aws-lc-rs (tonic's own TLS features stay off):
//! mutual TLS against a cluster's OS CA, the unverified TLS of maintenance mode, and the tonic
//! connector that dials one node's address and runs the handshake.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use talos_manager_core::talos_api::TalosCredentials;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::codegen::{Service, http};

/// Why a TLS configuration could not be built from a cluster's credentials.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA certificate is not PEM.
    #[error("the Talos API CA is not a PEM certificate")]
    CaCertificate(#[source] rustls::pki_types::pem::Error),
    /// The CA certificate is PEM but not a usable trust anchor.
    #[error("the Talos API CA cannot be used as a trust root")]
    TrustRoot(#[source] rustls::Error),
    /// The client certificate is not PEM.
    #[error("the client certificate is not a PEM certificate")]
    ClientCertificate(#[source] rustls::pki_types::pem::Error),
    /// The client key is not a PEM private key (its text is never shown).
    #[error("the client key is not a PEM private key")]
    ClientKey(#[source] rustls::pki_types::pem::Error),
    /// rustls refused the configuration (for instance a key that does not match the certificate).
    #[error("rustls refused the TLS configuration")]
    Config(#[source] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Talos's own `ED25519 PRIVATE KEY` label as the standard `PRIVATE KEY` (the DER is the same
/// PKCS#8), so keys taken straight from a talosconfig load too.
fn standard_key_label(pem: &str) -> String {
    pem.replace("BEGIN ED25519 PRIVATE KEY", "BEGIN PRIVATE KEY")
        .replace("END ED25519 PRIVATE KEY", "END PRIVATE KEY")
}

/// Mutual TLS for a configured node: trusts only the cluster's OS CA, presents the `os:admin`
/// client certificate, offers ALPN `h2` (Talos 1.9+ refuses TLS without it).
pub(crate) fn mutual_tls_config(
    credentials: &TalosCredentials,
) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(credentials.ca_pem.as_bytes()) {
        let ca = ca.map_err(TlsSetupError::CaCertificate)?;
        roots.add(ca).map_err(TlsSetupError::TrustRoot)?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError::CaCertificate(
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    let chain = CertificateDer::pem_slice_iter(credentials.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsSetupError::ClientCertificate)?;
    if chain.is_empty() {
        return Err(TlsSetupError::ClientCertificate(
            rustls::pki_types::pem::Error::NoItemsFound,
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(standard_key_label(credentials.key_pem.expose()).as_bytes())
            .map_err(TlsSetupError::ClientKey)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Config)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(TlsSetupError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// TLS for a node in maintenance mode: its certificate comes from a per-boot CA nobody else
/// knows, so it is accepted unverified (the handshake signature is still checked); no client
/// certificate; ALPN `h2`.
pub(crate) fn maintenance_tls_config() -> Arc<rustls::ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(AnyServerCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Accepts any server certificate, like `talosctl --insecure`, but still verifies that the
/// server holds the certificate's key.
#[derive(Debug)]
struct AnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
}

/// The tonic connector for one node: TCP to its address, then the TLS handshake with the
/// server name set to its IP address (what the node's certificate carries as a SAN).
#[derive(Clone)]
pub(crate) struct NodeConnector {
    pub(crate) node: SocketAddr,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

impl fmt::Debug for NodeConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The TLS configuration holds the client key: never print it.
        f.debug_struct("NodeConnector")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Service<http::Uri> for NodeConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let node = self.node;
        talos_manager_core::dial_guard::enforce_ip("Talos API", node.ip());
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        Box::pin(async move {
            let tcp = TcpStream::connect(node).await?;
            tcp.set_nodelay(true)?;
            let tls = connector
                .connect(ServerName::IpAddress(node.ip().into()), tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
