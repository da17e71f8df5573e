//! Keys and certificates for the secrets bundle and client configs, built with rcgen and
//! aws-lc-rs, and PEM-in-base64 encoding as Talos stores them.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsDer, EcPrivateKeyRfc5915Der, Pkcs8V1Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;

use super::RandomSource;

/// A certificate and its private key, each as standard base64 of the PEM text (Talos's
/// encoding in bundles and machine configs). The key may be empty (worker configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertAndKey {
    /// base64 of the certificate PEM.
    pub crt: String,
    /// base64 of the private key PEM.
    pub key: String,
}

/// A key or certificate that cannot be read or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    /// Not base64 of a PEM block.
    #[error("failed to parse PEM block")]
    NotPem,
    /// A PEM block of a kind that is not a private key.
    #[error("unsupported key type: {label:?}")]
    UnsupportedKeyType {
        /// The PEM label found.
        label: String,
    },
    /// A PEM block that is not a certificate where one is expected.
    #[error("unsupported certificate type: {label:?}")]
    NotACertificate {
        /// The PEM label found.
        label: String,
    },
    /// The certificate's DER does not parse.
    #[error("failed to parse certificate")]
    BadCertificate,
    /// The private key's DER does not parse or is of an unsupported algorithm.
    #[error("failed to parse private key")]
    BadKey,
    /// The crypto library refused an operation.
    #[error("crypto operation failed: {operation}")]
    Crypto {
        /// What was being done.
        operation: &'static str,
    },
    /// The random source failed, so no key or serial number was made.
    #[error(transparent)]
    Random(#[from] crate::random::RandomError),
}

/// PEM labels Talos accepts for private keys.
const KEY_LABELS: &[&str] = &[
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "ED25519 PRIVATE KEY",
    "PRIVATE KEY",
];

fn decode_pem(b64: &str) -> Result<pem::Pem, PkiError> {
    let bytes = STANDARD.decode(b64.trim()).map_err(|_| PkiError::NotPem)?;
    pem::parse(bytes).map_err(|_| PkiError::NotPem)
}

fn encode_pem(label: &str, der: Vec<u8>) -> String {
    let text = pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    STANDARD.encode(text)
}

/// Checks that a base64 PEM value is a private key Talos can read.
pub(crate) fn check_key(b64: &str) -> Result<(), PkiError> {
    let block = decode_pem(b64)?;
    if !KEY_LABELS.contains(&block.tag()) {
        return Err(PkiError::UnsupportedKeyType {
            label: block.tag().to_owned(),
        });
    }
    Ok(())
}

/// The certificate DER of a base64 PEM value.
pub(crate) fn certificate_der(b64: &str) -> Result<Vec<u8>, PkiError> {
    let block = decode_pem(b64)?;
    if block.tag() != "CERTIFICATE" {
        return Err(PkiError::NotACertificate {
            label: block.tag().to_owned(),
        });
    }
    x509_parser::parse_x509_certificate(block.contents()).map_err(|_| PkiError::BadCertificate)?;
    Ok(block.contents().to_vec())
}

impl CertAndKey {
    /// Checks both halves (the key first, as Talos does).
    pub(crate) fn check(&self) -> Result<(), PkiError> {
        check_key(&self.key)?;
        certificate_der(&self.crt)?;
        Ok(())
    }

    /// The rcgen key pair of the private key (any of the PEM forms Talos accepts).
    fn key_pair(&self) -> Result<KeyPair, PkiError> {
        let block = decode_pem(&self.key)?;
        KeyPair::try_from(block.contents()).map_err(|_| PkiError::BadKey)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let der = certificate_der(&self.crt)?;
        Issuer::from_ca_cert_der(&der.into(), self.key_pair()?)
            .map_err(|_| PkiError::BadCertificate)
    }

    /// The algorithm of the private key.
    pub(crate) fn algorithm(&self) -> Result<KeyAlgorithm, PkiError> {
        let block = decode_pem(&self.key)?;
        match block.tag() {
            "ED25519 PRIVATE KEY" => Ok(KeyAlgorithm::Ed25519),
            _ => {
                let pair = KeyPair::try_from(block.contents()).map_err(|_| PkiError::BadKey)?;
                if pair.algorithm() == &rcgen::PKCS_ED25519 {
                    Ok(KeyAlgorithm::Ed25519)
                } else if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
                    Ok(KeyAlgorithm::EcdsaP256)
                } else {
                    Err(PkiError::BadKey)
                }
            }
        }
    }
}

/// Key algorithms Talos uses for its CAs and client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyAlgorithm {
    EcdsaP256,
    Ed25519,
}

/// A fresh key of `algorithm` from `rng`: the rcgen key pair and its PEM (base64) in Talos's
/// encoding (`EC PRIVATE KEY` SEC1, or PKCS#8 under `ED25519 PRIVATE KEY`).
fn new_key(
    rng: &mut dyn RandomSource,
    algorithm: KeyAlgorithm,
) -> Result<(KeyPair, String), PkiError> {
    let crypto = |operation| PkiError::Crypto { operation };
    match algorithm {
        KeyAlgorithm::Ed25519 => {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed)?;
            let pair =
                Ed25519KeyPair::from_seed_unchecked(&seed).map_err(|_| crypto("ed25519 key"))?;
            let pkcs8 = pair.to_pkcs8v1().map_err(|_| crypto("ed25519 pkcs8"))?;
            let key = KeyPair::try_from(pkcs8.as_ref()).map_err(|_| PkiError::BadKey)?;
            Ok((
                key,
                encode_pem("ED25519 PRIVATE KEY", pkcs8.as_ref().to_vec()),
            ))
        }
        KeyAlgorithm::EcdsaP256 => {
            // A random scalar is out of range with negligible probability; draw again then.
            for _ in 0..16 {
                let mut scalar = [0u8; 32];
                rng.fill_bytes(&mut scalar)?;
                let Ok(private) =
                    agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &scalar)
                else {
                    continue;
                };
                let sec1: EcPrivateKeyRfc5915Der<'_> =
                    private.as_der().map_err(|_| crypto("ec key encoding"))?;
                let pair = EcdsaKeyPair::from_private_key_der(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    sec1.as_ref(),
                )
                .map_err(|_| crypto("ec key"))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(|_| crypto("ec pkcs8"))?;
                let key = KeyPair::try_from(pkcs8.as_ref()).map_err(|_| PkiError::BadKey)?;
                return Ok((key, encode_pem("EC PRIVATE KEY", sec1.as_ref().to_vec())));
            }
            Err(crypto("ec key"))
        }
    }
}

/// A random positive 128-bit serial number, without leading zero bytes.
fn serial(rng: &mut dyn RandomSource) -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes)?;
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(15);
    Ok(SerialNumber::from_slice(&bytes[first..]))
}

fn organizations(orgs: &[&str]) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    for org in orgs {
        name.push(DnType::OrganizationName, *org);
    }
    name
}

/// A self-signed CA as Talos makes them: subject with only an Organization (or empty),
/// KeyUsage digitalSignature + keyCertSign, ExtKeyUsage serverAuth + clientAuth, CA:TRUE.
pub(crate) fn self_signed_ca(
    rng: &mut dyn RandomSource,
    organization: Option<&str>,
    algorithm: KeyAlgorithm,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertAndKey, PkiError> {
    let (key, key_pem) = new_key(rng, algorithm)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = organizations(organization.as_slice());
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(serial(rng)?);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key).map_err(|_| PkiError::Crypto {
        operation: "self-sign ca",
    })?;
    Ok(CertAndKey {
        crt: STANDARD.encode(cert.pem()),
        key: key_pem,
    })
}

/// What a client certificate says about its holder.
pub(crate) struct ClientSubject<'a> {
    pub(crate) organizations: &'a [&'a str],
    pub(crate) common_name: Option<&'a str>,
    pub(crate) key_usages: &'a [KeyUsagePurpose],
}

/// A client certificate (ExtKeyUsage clientAuth) signed by `ca`, with a fresh key of the CA's
/// algorithm, as Talos issues them for talosconfig and the admin kubeconfig.
pub(crate) fn client_certificate(
    rng: &mut dyn RandomSource,
    ca: &CertAndKey,
    subject: &ClientSubject<'_>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertAndKey, PkiError> {
    let issuer = ca.issuer()?;
    let (key, key_pem) = new_key(rng, ca.algorithm()?)?;
    let mut params = CertificateParams::default();
    let mut name = organizations(subject.organizations);
    if let Some(cn) = subject.common_name {
        name.push(DnType::CommonName, cn);
    }
    params.distinguished_name = name;
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(serial(rng)?);
    params.key_usages = subject.key_usages.to_vec();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|_| PkiError::Crypto {
            operation: "sign client certificate",
        })?;
    Ok(CertAndKey {
        crt: STANDARD.encode(cert.pem()),
        key: key_pem,
    })
}

/// A new RSA-4096 key as PEM `RSA PRIVATE KEY` (PKCS#1), base64-encoded.
pub(crate) fn rsa_4096_key() -> Result<String, PkiError> {
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    let crypto = |operation| PkiError::Crypto { operation };
    let pair = RsaKeyPair::generate(KeySize::Rsa4096).map_err(|_| crypto("rsa key"))?;
    let pkcs8: Pkcs8V1Der<'_> = pair.as_der().map_err(|_| crypto("rsa pkcs8"))?;
    let pkcs1 = pkcs1_from_pkcs8(pkcs8.as_ref()).ok_or_else(|| crypto("rsa pkcs1"))?;
    Ok(encode_pem("RSA PRIVATE KEY", pkcs1))
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (its `privateKey` octet string).
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::der_parser::ber::BerObjectContent;
    let (_, info) = x509_parser::der_parser::parse_der(pkcs8).ok()?;
    let BerObjectContent::Sequence(items) = info.content else {
        return None;
    };
    match &items.get(2)?.content {
        BerObjectContent::OctetString(bytes) => Some(bytes.to_vec()),
        _ => None,
    }
}
