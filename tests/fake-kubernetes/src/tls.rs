//! TLS as a kube-apiserver does it: the server *requests* a client certificate but does not
//! require one, and judges the certificate after the handshake, so a missing, foreign, expired
//! or not-yet-valid certificate gets HTTP 401, never a failed handshake. The judgement rides
//! to the request handler in the connection's remote address ([`ClientCert::from_remote`]).

use std::borrow::Cow;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, http::uri::Scheme};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The `Addr::Custom` tag carrying a connection's client-certificate judgement.
const TAG: &str = "client-cert";
/// How long a client may take over the handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the client presented on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientCert {
    /// A certificate of the cluster's CA, valid by the server's clock.
    Valid,
    /// No certificate: an anonymous request (Talos disables anonymous auth: 401).
    Missing,
    /// A certificate the server does not accept, and why (foreign CA, expired, not yet valid).
    Invalid(String),
}

impl ClientCert {
    fn into_remote(self, remote: &RemoteAddr) -> RemoteAddr {
        let text = match self {
            ClientCert::Valid => "valid".to_owned(),
            ClientCert::Missing => "missing".to_owned(),
            ClientCert::Invalid(why) => format!("invalid:{why}"),
        };
        RemoteAddr(Addr::Custom(
            TAG,
            Cow::Owned(format!("{text}|{}", remote.0)),
        ))
    }

    /// The judgement made at the handshake of the request's connection.
    pub(crate) fn from_remote(remote: &RemoteAddr) -> ClientCert {
        match &remote.0 {
            Addr::Custom(TAG, text) => {
                let judgement = text.split('|').next().unwrap_or_default();
                match judgement {
                    "valid" => ClientCert::Valid,
                    "missing" => ClientCert::Missing,
                    other => ClientCert::Invalid(
                        other.strip_prefix("invalid:").unwrap_or(other).to_owned(),
                    ),
                }
            }
            _ => ClientCert::Missing,
        }
    }
}

/// Accepts every presented certificate at the handshake (its possession still proven by the
/// handshake signature); the chain and validity are judged afterwards.
#[derive(Debug)]
struct RequestClientCert(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// TLS over a TCP acceptor, judging client certificates against the CA by a clock that may
/// run behind the real one.
pub(crate) struct ClientCertAcceptor {
    inner: TcpAcceptor,
    tls: TlsAcceptor,
    verifier: Arc<dyn ClientCertVerifier>,
    clock_behind: Arc<Mutex<Duration>>,
}

impl ClientCertAcceptor {
    /// `serving_crt`/`serving_key` and `ca_crt` are PEM text.
    pub(crate) fn new(
        inner: TcpAcceptor,
        serving_crt: &str,
        serving_key: &str,
        ca_crt: &str,
        clock_behind: Arc<Mutex<Duration>>,
    ) -> io::Result<ClientCertAcceptor> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_crt.as_bytes()) {
            roots
                .add(certificate.map_err(io::Error::other)?)
                .map_err(io::Error::other)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(io::Error::other)?;
        let chain = CertificateDer::pem_slice_iter(serving_crt.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(io::Error::other)?;
        let key =
            PrivateKeyDer::from_pem_slice(serving_key.as_bytes()).map_err(io::Error::other)?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_client_cert_verifier(Arc::new(RequestClientCert(verifier.clone())))
            .with_single_cert(chain, key)
            .map_err(io::Error::other)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ClientCertAcceptor {
            inner,
            tls: TlsAcceptor::from(Arc::new(config)),
            verifier,
            clock_behind,
        })
    }

    fn judge(&self, certificates: Option<&[CertificateDer<'static>]>) -> ClientCert {
        let Some((end_entity, intermediates)) = certificates.and_then(|chain| chain.split_first())
        else {
            return ClientCert::Missing;
        };
        let behind = *self
            .clock_behind
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = SystemTime::now()
            .checked_sub(behind)
            .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        match self.verifier.verify_client_cert(
            end_entity,
            intermediates,
            UnixTime::since_unix_epoch(now),
        ) {
            Ok(_) => ClientCert::Valid,
            Err(error) => ClientCert::Invalid(error.to_string().replace('|', "/")),
        }
    }
}

impl Acceptor for ClientCertAcceptor {
    type Io = TlsStream<TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (stream, local, remote, _) = self.inner.accept().await?;
            // A client that fails the handshake (it does not trust our serving certificate)
            // loses its connection; the server goes on.
            let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, self.tls.accept(stream)).await
            else {
                continue;
            };
            let judgement = self.judge(stream.get_ref().1.peer_certificates());
            let remote = judgement.into_remote(&remote);
            return Ok((stream, local, remote, Scheme::HTTPS));
        }
    }
}
