//! Talos versions as the Image Factory lists them (`v1.10.4`, `v1.11.0-alpha.1`), ordered by
//! semantic versioning.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A Talos version: `v<major>.<minor>.<patch>` with an optional pre-release (`-alpha.1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TalosRelease {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<PreRelease>,
}

/// One dot-separated identifier of a pre-release.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PreRelease {
    Numeric(u64),
    Text(String),
}

impl Ord for PreRelease {
    fn cmp(&self, other: &Self) -> Ordering {
        // Semantic versioning: numbers compare numerically and sort before text.
        match (self, other) {
            (PreRelease::Numeric(a), PreRelease::Numeric(b)) => a.cmp(b),
            (PreRelease::Numeric(_), PreRelease::Text(_)) => Ordering::Less,
            (PreRelease::Text(_), PreRelease::Numeric(_)) => Ordering::Greater,
            (PreRelease::Text(a), PreRelease::Text(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for PreRelease {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl TalosRelease {
    /// Whether this is a pre-release (`-alpha.0`, `-rc.1`, …).
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    /// The release line, `(major, minor)`: `v1.14.1` and `v1.14.0-rc.1` are `(1, 14)`.
    /// Behaviour that changes between Talos releases is decided on it.
    pub fn release_line(&self) -> (u64, u64) {
        (self.major, self.minor)
    }

    /// Whether Talos publishes this version's installer only through the Image Factory:
    /// from 1.14 on, `ghcr.io/siderolabs/installer` is no longer published and Talos's own
    /// default installer is the factory's `metal-installer/<empty schematic>:<tag>`.
    pub fn installer_only_from_factory(&self) -> bool {
        self.release_line() >= (1, 14)
    }

    /// Whether this version can keep etcd, containerd, the kubelet's and the log data on
    /// volumes of their own (`ETCD`, `CRI`, `KUBELET`, `LOG`: 1.14 and later), which a reset
    /// must then name besides `EPHEMERAL`.
    pub fn has_dedicated_system_volumes(&self) -> bool {
        self.release_line() >= (1, 14)
    }
}

impl Ord for TalosRelease {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A release is newer than its pre-releases.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for TalosRelease {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for TalosRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, id) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match id {
                PreRelease::Numeric(n) => write!(f, "{n}")?,
                PreRelease::Text(t) => f.write_str(t)?,
            }
        }
        Ok(())
    }
}

/// A string that is not a Talos version `vX.Y.Z[-pre]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a talos version (vX.Y.Z)")]
pub struct InvalidTalosRelease(pub String);

impl FromStr for TalosRelease {
    type Err = InvalidTalosRelease;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidTalosRelease(s.to_owned());
        let rest = s.strip_prefix('v').ok_or_else(invalid)?;
        let (core, pre) = match rest.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (rest, None),
        };
        let number = |part: &str| -> Result<u64, InvalidTalosRelease> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse().map_err(|_| invalid())
        };
        let mut parts = core.split('.');
        let (Some(major), Some(minor), Some(patch), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                        Err(invalid())
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        id.parse().map(PreRelease::Numeric).map_err(|_| invalid())
                    } else {
                        Ok(PreRelease::Text(id.to_owned()))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(TalosRelease {
            major: number(major)?,
            minor: number(minor)?,
            patch: number(patch)?,
            pre,
        })
    }
}

/// Orders versions for offering them: stable versions newest first, then pre-releases newest
/// first. Duplicates are removed.
pub fn order_for_display(mut versions: Vec<TalosRelease>) -> Vec<TalosRelease> {
    versions.sort_by(|a, b| {
        a.is_prerelease()
            .cmp(&b.is_prerelease())
            .then_with(|| b.cmp(a))
    });
    versions.dedup();
    versions
}

/// Parses a `/versions` answer (a JSON array of strings) into [`order_for_display`] order.
/// Entries that are not versions are skipped (the factory only lists tags, but a future tag
/// scheme must not break the list).
pub fn parse_versions(json: &[u8]) -> Result<Vec<TalosRelease>, serde_json::Error> {
    let raw: Vec<String> = serde_json::from_slice(json)?;
    Ok(order_for_display(
        raw.iter().filter_map(|v| v.parse().ok()).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> TalosRelease {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints() {
        for s in ["v1.10.4", "v1.11.0-alpha.3", "v2.0.0-rc.1", "v1.2.0-beta"] {
            assert_eq!(v(s).to_string(), s);
        }
        for s in [
            "1.10.4",
            "v1.10",
            "v1.10.4.1",
            "v1.x.0",
            "v1.2.3-",
            "v1.2.3-a..b",
            "",
        ] {
            assert!(s.parse::<TalosRelease>().is_err(), "{s}");
        }
    }

    #[test]
    fn semver_ordering() {
        let ordered = [
            "v1.2.9",
            "v1.10.0-alpha.0",
            "v1.10.0-alpha.2",
            "v1.10.0-alpha.10",
            "v1.10.0-beta.0",
            "v1.10.0-rc.1",
            "v1.10.0",
            "v1.10.1",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn stable_first_then_prereleases() {
        let out = order_for_display(
            [
                "v1.9.0",
                "v1.11.0-alpha.1",
                "v1.10.0",
                "v1.11.0-alpha.0",
                "v1.10.0",
            ]
            .map(v)
            .to_vec(),
        );
        let out: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(
            out,
            ["v1.10.0", "v1.9.0", "v1.11.0-alpha.1", "v1.11.0-alpha.0"]
        );
    }

    #[test]
    fn real_factory_answer() {
        let json =
            include_bytes!("../../talos-manager-core/tests/data/image-factory/versions.json");
        let out: Vec<String> = parse_versions(json)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(out.len(), 73);
        assert_eq!(&out[..3], ["v1.10.5", "v1.10.4", "v1.10.3"]);
        // v1.10.0 comes before v1.9.6: numeric, not lexical.
        let pos = |s: &str| out.iter().position(|v| v == s).unwrap();
        assert!(pos("v1.10.0") < pos("v1.9.6"));
        assert_eq!(out[68], "v1.2.0");
        assert_eq!(
            &out[69..],
            [
                "v1.11.0-alpha.3",
                "v1.11.0-alpha.2",
                "v1.11.0-alpha.1",
                "v1.11.0-alpha.0"
            ]
        );
    }
}
