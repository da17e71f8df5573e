//! A config template's Talos minor newer than every version contract talos-manager knows: the
//! check a client makes before it asks the service, given the newest contract.

/// A target Talos version newer than every version contract talos-manager knows: its configs
/// are written for the newest contract, which newer Talos releases accept. The message is the
/// service's (`talos_manager_core::talos::NewerTalosVersion`, the API's `warnings`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Talos {release} is newer than the newest config format talos-manager knows ({latest}); \
     its configs are generated for {latest}"
)]
pub struct NewerTalosMinor {
    /// The target minor version (`v1.15`).
    pub release: String,
    /// The newest contract's minor version, used instead (`v1.14`).
    pub latest: String,
}

/// The [`NewerTalosMinor`] of an installer image whose tag is a Talos 1.x minor newer than
/// `newest`, the newest version contract as a minor or a release (`v1.14`, `v1.14.1`: the first
/// release of `GET /api/v1/talos-versions/supported`); else `None`, also for a tag or a
/// `newest` that is not a Talos 1.x version. The service applies the same rule with its own
/// newest contract.
///
/// ```
/// use talos_manager_api_types::newer_talos_minor_of;
///
/// let newer = newer_talos_minor_of("ghcr.io/siderolabs/installer:v1.15.0", "v1.14.1").unwrap();
/// assert_eq!(
///     newer.to_string(),
///     "Talos v1.15 is newer than the newest config format talos-manager knows (v1.14); \
///      its configs are generated for v1.14"
/// );
/// assert_eq!(newer_talos_minor_of("ghcr.io/siderolabs/installer:v1.14.0", "v1.14.1"), None);
/// assert_eq!(newer_talos_minor_of("registry:5000/installer", "v1.14.1"), None);
/// ```
pub fn newer_talos_minor_of(install_image: &str, newest: &str) -> Option<NewerTalosMinor> {
    let (_, tag) = install_image.rsplit_once(':')?;
    let minor = talos_minor(tag)?;
    let latest = talos_minor(newest)?;
    (minor > latest).then(|| NewerTalosMinor {
        release: format!("v1.{minor}"),
        latest: format!("v1.{latest}"),
    })
}

/// The minor of a Talos 1.x version: `v1.14.1`, `1.14`, `v1.15.0-alpha.1`.
fn talos_minor(text: &str) -> Option<u32> {
    let text = text.trim().trim_start_matches('v');
    let mut parts = text.split('.');
    let (major, minor) = (parts.next()?, parts.next()?);
    if major != "1" {
        return None;
    }
    minor.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_newer_1_x_minor_is_newer() {
        let newer = |image| newer_talos_minor_of(image, "v1.14.1").map(|n| n.release);
        assert_eq!(
            newer("ghcr.io/siderolabs/installer:v1.15.0"),
            Some("v1.15".into())
        );
        assert_eq!(
            newer("factory.talos.dev/metal-installer/abc:v1.16.0-alpha.1"),
            Some("v1.16".into())
        );
        assert_eq!(
            newer("ghcr.io/siderolabs/installer:1.15"),
            Some("v1.15".into())
        );
        for same_or_older in [
            "ghcr.io/siderolabs/installer:v1.14.9",
            "ghcr.io/siderolabs/installer:v1.10.4",
            "ghcr.io/siderolabs/installer:v1.7.0",
            "ghcr.io/siderolabs/installer:v2.0.0",
            "ghcr.io/siderolabs/installer:latest",
            "ghcr.io/siderolabs/installer",
            "",
        ] {
            assert_eq!(newer(same_or_older), None, "{same_or_older}");
        }
        assert_eq!(
            newer_talos_minor_of("ghcr.io/siderolabs/installer:v1.15.0", "v1.15"),
            None
        );
        assert_eq!(
            newer_talos_minor_of("ghcr.io/siderolabs/installer:v1.15.0", "nonsense"),
            None
        );
    }
}
