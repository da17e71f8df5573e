//! [`SshPublicKey`]: our SSH public key with the fingerprints Hetzner shows for it.

use md5::{Digest, Md5};
use russh::keys::{HashAlg, PublicKey};

use super::ProviderError;

/// The public half of talos-manager's SSH key, parsed once, with its fingerprints.
///
/// Both Hetzner APIs identify SSH keys by the **MD5** fingerprint of the key blob, written as
/// colon-separated lower-case hex (`3c:41:03:…`), which is what [`md5_fingerprint`] returns.
/// [`sha256_fingerprint`] is the `SHA256:…` form `ssh-keygen -l` prints, for logs and messages.
///
/// [`md5_fingerprint`]: SshPublicKey::md5_fingerprint
/// [`sha256_fingerprint`]: SshPublicKey::sha256_fingerprint
///
/// ```
/// use talos_manager_core::SshPublicKey;
///
/// let key = SshPublicKey::parse(
///     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9uR4m5+mneWPpJTHO9a+r1GCrFW/Q10j4Q4myNRRJ1 me@host",
/// )?;
/// assert_eq!(key.md5_fingerprint(), "3c:41:03:c3:b4:6a:f4:30:9d:cd:30:03:49:28:17:4c");
/// # Ok::<(), talos_manager_core::ProviderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshPublicKey {
    openssh: String,
    md5_fingerprint: String,
    sha256_fingerprint: String,
}

impl SshPublicKey {
    /// Parses an OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
    pub fn parse(openssh: &str) -> Result<Self, ProviderError> {
        let public_key = PublicKey::from_openssh(openssh.trim()).map_err(|source| {
            ProviderError::InvalidSshKey {
                source: Box::new(source),
            }
        })?;
        let blob = public_key
            .to_bytes()
            .map_err(|source| ProviderError::InvalidSshKey {
                source: Box::new(source),
            })?;
        let md5_fingerprint = Md5::digest(&blob)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        let sha256_fingerprint = public_key.fingerprint(HashAlg::Sha256).to_string();
        Ok(SshPublicKey {
            openssh: openssh.trim().to_owned(),
            md5_fingerprint,
            sha256_fingerprint,
        })
    }

    /// The key as given, in OpenSSH format: what is uploaded to the provider.
    pub fn openssh(&self) -> &str {
        &self.openssh
    }

    /// MD5 fingerprint, colon-separated hex, as Hetzner Robot and Cloud show it.
    pub fn md5_fingerprint(&self) -> &str {
        &self.md5_fingerprint
    }

    /// SHA-256 fingerprint in `ssh-keygen` form, `SHA256:<base64>`.
    pub fn sha256_fingerprint(&self) -> &str {
        &self.sha256_fingerprint
    }
}

/// The name our key gets when we upload it, and the name we recognise as ours.
pub(crate) const KEY_NAME: &str = "talos-manager";

/// What to do when our key is not at the provider: fail with how to add it by hand
/// ([`MissingKey::Fail`](super::MissingKey::Fail)), or name it for upload — `talos-manager`,
/// unless a key of that name with another fingerprint (`stale_key_name`) is there already, then
/// `talos-manager-<first 8 hex digits of the fingerprint>`.
pub(crate) fn upload_name(
    provider: super::ProviderKind,
    fingerprint: &str,
    stale_key_name: Option<String>,
    missing: super::MissingKey,
    how: &'static str,
) -> Result<String, ProviderError> {
    if missing == super::MissingKey::Fail {
        return Err(ProviderError::SshKeyMissing {
            provider,
            fingerprint: fingerprint.to_owned(),
            stale_key_name,
            how,
        });
    }
    Ok(match stale_key_name {
        Some(_) => format!("{KEY_NAME}-{}", &fingerprint.replace(':', "")[..8]),
        None => KEY_NAME.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fingerprints below were printed by `ssh-keygen -l -E md5` and `ssh-keygen -l` for these keys.
    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH9uR4m5+mneWPpJTHO9a+r1GCrFW/Q10j4Q4myNRRJ1 talos-manager@test";
    const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQD4BCeLhkpT7Sf8FqMZFNlgu9sBbllR0XkvA+xWR1wS2D5xZUDc2eTztUB75lsIJBDF5FC2reN1YLWLTMHfX6Hy03wbNg4sM+pN1Xbli0dUtmS0mGQMofVoaTiCFsw1aM7VIScRPfOjfJU4wZx8kP1KiwbiJPDB1s2Sdmm4RlMNnt71b5TZd0J/51KQKkr2rhfObSGyI7Dvqiya2joQbVTvH5aBiMNmEefqY6GPrDCeMaCApO3KfyrZHCHkn/bNAQCEuZPvU4mNAyzYvBEH7EAH0TycWMVyEg5Bbkvu/yk7UpGFtRIU0S69JVDGs1TmLfUA5Qv7HinHR45/fMJHwtXz rsa@test";

    #[test]
    fn fingerprints_match_ssh_keygen() {
        let key = SshPublicKey::parse(ED25519).unwrap();
        assert_eq!(
            key.md5_fingerprint(),
            "3c:41:03:c3:b4:6a:f4:30:9d:cd:30:03:49:28:17:4c"
        );
        assert_eq!(
            key.sha256_fingerprint(),
            "SHA256:WlMBmCHxCrU7MuBmEQU8LfklA4e8KkqCSdrekFQb8U4"
        );
        let key = SshPublicKey::parse(&format!("{RSA}\n")).unwrap();
        assert_eq!(
            key.md5_fingerprint(),
            "e4:6b:f2:09:1b:b3:84:f0:b3:2e:41:09:6a:91:cb:a7"
        );
        assert_eq!(
            key.sha256_fingerprint(),
            "SHA256:MWrP42KPO3kFrAqGVMABgMUv8eLdiARBF2lgHKPiHgE"
        );
        assert_eq!(key.openssh(), RSA);
    }

    #[test]
    fn garbage_is_refused() {
        let error = SshPublicKey::parse("ssh-ed25519 not-base64").unwrap_err();
        assert!(
            matches!(error, ProviderError::InvalidSshKey { .. }),
            "{error:?}"
        );
    }
}
