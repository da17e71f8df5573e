//! Encryption of secrets at rest: AES-256-GCM with a random nonce per value.
//!
//! A stored value is `version (1 byte) || nonce (12 bytes) || ciphertext+tag`. The name of the
//! column a value belongs to is bound in as associated data, so a ciphertext copied into
//! another column fails to decrypt instead of being accepted.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::Secret;

const FORMAT_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

/// Why a key could not be loaded or a value not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The key is not 32 bytes of base64.
    #[error(
        "the encryption key must be 32 bytes encoded as base64 (make one with `openssl rand -base64 32`)"
    )]
    InvalidKey,
    /// The key file could not be read or written.
    #[error("failed to access the encryption key file {path}")]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A stored value did not decrypt: another key, or a damaged value.
    #[error(
        "failed to decrypt {column}: the database was written with another encryption key, or the value is damaged"
    )]
    Decrypt {
        /// The column the value came from.
        column: &'static str,
    },
}

/// A 256-bit key for secrets at rest, never printed.
#[derive(Clone)]
pub struct EncryptionKey(Secret<[u8; KEY_LEN]>);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// Where a key came from, so the service can warn about a generated key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// Read from an existing key file.
    ExistingFile(PathBuf),
    /// Generated and written to a new key file.
    NewFile(PathBuf),
}

impl EncryptionKey {
    /// Parses a base64-encoded 32-byte key, as given in `TALOS_MANAGER_ENCRYPTION_KEY`.
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| CryptoError::InvalidKey)?;
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::InvalidKey)?;
        Ok(EncryptionKey(Secret::new(key)))
    }

    /// A new random key.
    pub fn generate() -> Self {
        let key = Key::<Aes256Gcm>::generate();
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(key.as_slice());
        EncryptionKey(Secret::new(bytes))
    }

    /// The key as base64, for writing it to a key file or showing it once to an operator.
    pub fn to_base64(&self) -> Secret<String> {
        Secret::new(BASE64.encode(self.0.expose()))
    }

    /// Reads the key from `path`, or generates one and writes it there (mode 0600) when the file
    /// does not exist yet.
    pub fn load_or_create_file(path: &Path) -> Result<(Self, KeySource), CryptoError> {
        let key_file_error = |source| CryptoError::KeyFile {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok((
                Self::from_base64(&text)?,
                KeySource::ExistingFile(path.to_owned()),
            )),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private_file(path, key.to_base64().expose().as_bytes())
                    .map_err(key_file_error)?;
                Ok((key, KeySource::NewFile(path.to_owned())))
            }
            Err(error) => Err(key_file_error(error)),
        }
    }
}

fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Encrypts and decrypts the secret columns of the store.
#[derive(Clone)]
pub(crate) struct Cipher {
    aead: Aes256Gcm,
    key: EncryptionKey,
}

impl Cipher {
    pub(crate) fn new(key: &EncryptionKey) -> Self {
        let aead_key = Key::<Aes256Gcm>::from(*key.0.expose());
        Cipher {
            aead: Aes256Gcm::new(&aead_key),
            key: key.clone(),
        }
    }

    /// The AES-256-GCM key of one backup file: HKDF-SHA256 of the store's key with the file's
    /// random `salt`, so that no two backups share a key (and their counter nonces never
    /// collide) and a backup key is never a secret column's key.
    pub(crate) fn backup_aead(&self, salt: &[u8]) -> Aes256Gcm {
        use aws_lc_rs::hkdf::{HKDF_SHA256, KeyType, Salt};
        struct Len;
        impl KeyType for Len {
            fn len(&self) -> usize {
                KEY_LEN
            }
        }
        let prk = Salt::new(HKDF_SHA256, salt).extract(self.key.0.expose());
        let mut derived = [0u8; KEY_LEN];
        prk.expand(&[b"talos-manager backup v1".as_slice()], Len)
            .and_then(|okm| okm.fill(&mut derived))
            // HKDF-SHA256 fails only for outputs over 255 blocks.
            .expect("32 bytes are a valid HKDF-SHA256 output");
        Aes256Gcm::new(&Key::<Aes256Gcm>::from(derived))
    }

    /// Encrypts `plaintext` for storage in `column`.
    pub(crate) fn encrypt(&self, column: &'static str, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Nonce::generate();
        let ciphertext = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: column.as_bytes(),
                },
            )
            // AES-GCM encryption fails only for messages over 64 GiB.
            .expect("a secret fits in one AES-GCM message");
        let mut stored = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        stored.push(FORMAT_VERSION);
        stored.extend_from_slice(nonce.as_slice());
        stored.extend_from_slice(&ciphertext);
        stored
    }

    /// Decrypts a value read from `column`.
    pub(crate) fn decrypt(
        &self,
        column: &'static str,
        stored: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let error = || CryptoError::Decrypt { column };
        let (&version, rest) = stored.split_first().ok_or_else(error)?;
        if version != FORMAT_VERSION || rest.len() < NONCE_LEN {
            return Err(error());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| error())?;
        self.aead
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: column.as_bytes(),
                },
            )
            .map_err(|_| error())
    }

    /// Encrypts a UTF-8 secret.
    pub(crate) fn encrypt_str(&self, column: &'static str, plaintext: &Secret<String>) -> Vec<u8> {
        self.encrypt(column, plaintext.expose().as_bytes())
    }

    /// Decrypts a UTF-8 secret.
    pub(crate) fn decrypt_str(
        &self,
        column: &'static str,
        stored: &[u8],
    ) -> Result<Secret<String>, CryptoError> {
        let bytes = self.decrypt(column, stored)?;
        String::from_utf8(bytes)
            .map(Secret::new)
            .map_err(|_| CryptoError::Decrypt { column })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_column_binding() {
        let cipher = Cipher::new(&EncryptionKey::generate());
        let stored = cipher.encrypt("clusters.secrets", b"cluster-secret");
        assert!(!stored.windows(14).any(|w| w == b"cluster-secret"));
        assert_eq!(
            cipher.decrypt("clusters.secrets", &stored).unwrap(),
            b"cluster-secret"
        );
        // The same ciphertext read as another column is refused.
        assert!(cipher.decrypt("provider_accounts.secret", &stored).is_err());
        // Two encryptions of the same value differ (fresh nonce).
        assert_ne!(
            stored,
            cipher.encrypt("clusters.secrets", b"cluster-secret")
        );
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let stored = Cipher::new(&EncryptionKey::generate()).encrypt("c", b"x");
        let error = Cipher::new(&EncryptionKey::generate())
            .decrypt("c", &stored)
            .unwrap_err();
        assert!(
            error.to_string().contains("another encryption key"),
            "{error}"
        );
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let cipher = Cipher::new(&EncryptionKey::generate());
        for stored in [&b""[..], &[1], &[1; 12], &[2; 40], &[1; 29]] {
            assert!(cipher.decrypt("c", stored).is_err());
        }
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_only() {
        let key = EncryptionKey::generate();
        let text = key.to_base64();
        assert!(EncryptionKey::from_base64(text.expose()).is_ok());
        assert!(EncryptionKey::from_base64("c2hvcnQ=").is_err());
        assert!(EncryptionKey::from_base64("not base64!").is_err());
        assert_eq!(format!("{key:?}"), "EncryptionKey(<redacted>)");
    }

    #[test]
    fn key_file_is_created_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("encryption.key");
        let (first, source) = EncryptionKey::load_or_create_file(&path).unwrap();
        assert_eq!(source, KeySource::NewFile(path.clone()));
        let (second, source) = EncryptionKey::load_or_create_file(&path).unwrap();
        assert_eq!(source, KeySource::ExistingFile(path.clone()));
        assert_eq!(first.to_base64(), second.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
