//! The `VolumeConfig` document that puts Talos's EPHEMERAL volume on a chosen disk, appended to
//! a machine config as the original app did.

/// The disk chosen for the EPHEMERAL volume, as the original app's `ephemeral_disk_identifier`
/// spells it: `wwid:<wwid>` or `uuid:<md RAID uuid>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EphemeralDisk {
    /// A disk by its WWID (`disk.wwid`).
    Wwid(String),
    /// An md RAID array by its UUID (as `lsblk` prints it, with dashes).
    MdUuid(String),
}

/// An ephemeral-disk identifier that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EphemeralDiskError {
    /// Not `wwid:…` or `uuid:…`.
    #[error("ephemeral disk identifier {identifier:?} must start with \"wwid:\" or \"uuid:\"")]
    UnknownScheme {
        /// The identifier given.
        identifier: String,
    },
    /// A value with characters that would break the CEL expression, or empty.
    #[error("ephemeral disk identifier {identifier:?} has an invalid value")]
    InvalidValue {
        /// The identifier given.
        identifier: String,
    },
    /// A uuid that is not 32 hexadecimal digits.
    #[error("md uuid {uuid:?} is not 32 hexadecimal digits")]
    BadUuid {
        /// The uuid given.
        uuid: String,
    },
}

impl EphemeralDisk {
    /// Parses `wwid:<wwid>` or `uuid:<uuid>`.
    pub fn parse(identifier: &str) -> Result<EphemeralDisk, EphemeralDiskError> {
        let invalid = || EphemeralDiskError::InvalidValue {
            identifier: identifier.to_owned(),
        };
        let (scheme, value) =
            identifier
                .split_once(':')
                .ok_or_else(|| EphemeralDiskError::UnknownScheme {
                    identifier: identifier.to_owned(),
                })?;
        if value.is_empty() || value.contains(['\'', '"', '\\', '\n']) {
            return Err(invalid());
        }
        match scheme {
            "wwid" => Ok(EphemeralDisk::Wwid(value.to_owned())),
            "uuid" => {
                let hex: String = value.chars().filter(|c| *c != '-').collect();
                if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(EphemeralDiskError::BadUuid {
                        uuid: value.to_owned(),
                    });
                }
                Ok(EphemeralDisk::MdUuid(value.to_owned()))
            }
            _ => Err(EphemeralDiskError::UnknownScheme {
                identifier: identifier.to_owned(),
            }),
        }
    }

    /// The CEL expression selecting this disk.
    pub fn disk_selector(&self) -> String {
        match self {
            EphemeralDisk::Wwid(wwid) => format!("disk.wwid == '{wwid}'"),
            EphemeralDisk::MdUuid(uuid) => {
                // mdadm names arrays in /dev/disk/by-id with the uuid as four colon-separated
                // groups of eight hex digits.
                let hex: Vec<char> = uuid.chars().filter(|c| *c != '-').collect();
                let groups: Vec<String> = hex.chunks(8).map(|c| c.iter().collect()).collect();
                format!(
                    "'/dev/disk/by-id/md-uuid-{}' in disk.symlinks",
                    groups.join(":")
                )
            }
        }
    }
}

/// The VolumeConfig document (without `---`) as the original app wrote it: EPHEMERAL on the
/// chosen disk, at least 10 GB, growing to fill it.
pub fn ephemeral_volume_config(disk: &EphemeralDisk) -> String {
    let selector = disk.disk_selector();
    format!(
        "apiVersion: v1alpha1\nkind: VolumeConfig\nname: EPHEMERAL\nprovisioning:\n  diskSelector:\n    match: \"{selector}\"\n  minSize: 10GB\n  grow: true\n"
    )
}

/// Appends the VolumeConfig document to a machine config text.
pub fn append_volume_config(config_yaml: &str, disk: &EphemeralDisk) -> String {
    let mut out = String::with_capacity(config_yaml.len() + 200);
    out.push_str(config_yaml);
    if !config_yaml.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("---\n");
    out.push_str(&ephemeral_volume_config(disk));
    out
}
