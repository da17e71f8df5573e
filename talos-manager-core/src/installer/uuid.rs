//! SMBIOS UUIDs that cannot identify a node, and the support request that gets them fixed.
//!
//! Talos fetches its config with `?uuid=${uuid}`, its SMBIOS UUID, so two servers with the same
//! or a placeholder UUID would get each other's config. Some Hetzner boards ship with such
//! UUIDs; Hetzner support writes a proper one on request.

use std::fmt;

/// Placeholder UUIDs that board vendors ship instead of a real one.
const KNOWN_PLACEHOLDERS: [&str; 2] = [
    "03000200-0400-0500-0006-000700080009",
    "12345678-1234-5678-90ab-cddeefaabbcc",
];

/// Why an SMBIOS UUID cannot identify a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UuidProblem {
    /// Not of the form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    Malformed,
    /// All zeros.
    Nil,
    /// One digit repeated (such as all `f`).
    OneDigit,
    /// Ends in `000000000000`: a known board defect.
    ZeroSuffix,
    /// A placeholder that vendors ship on many boards.
    KnownPlaceholder,
    /// Another server of the fleet has the same UUID.
    SharedWith(String),
}

impl fmt::Display for UuidProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UuidProblem::Malformed => f.write_str("it is not a UUID"),
            UuidProblem::Nil => f.write_str("it is the nil UUID"),
            UuidProblem::OneDigit => f.write_str("it repeats a single digit"),
            UuidProblem::ZeroSuffix => {
                f.write_str("it ends in 000000000000 (a known board defect)")
            }
            UuidProblem::KnownPlaceholder => f.write_str("it is a vendor placeholder"),
            UuidProblem::SharedWith(other) => write!(f, "server {other} has the same UUID"),
        }
    }
}

/// Checks an SMBIOS UUID (as `dmidecode -s system-uuid` prints it). `fleet` lists the other
/// servers' names and UUIDs.
///
/// ```
/// use talos_manager_core::installer::{check_smbios_uuid, UuidProblem};
///
/// assert_eq!(check_smbios_uuid("4c4c4544-0042-3510-8057-b4c04f4e3432", []), Ok(()));
/// assert_eq!(
///     check_smbios_uuid("4c4c4544-0042-3510-8057-000000000000", []),
///     Err(UuidProblem::ZeroSuffix)
/// );
/// ```
pub fn check_smbios_uuid<'a>(
    uuid: &str,
    fleet: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), UuidProblem> {
    let uuid = uuid.trim().to_ascii_lowercase();
    let groups: Vec<&str> = uuid.split('-').collect();
    let well_formed = groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(UuidProblem::Malformed);
    }
    let digits: Vec<u8> = uuid.bytes().filter(|&b| b != b'-').collect();
    if digits.iter().all(|&b| b == b'0') {
        return Err(UuidProblem::Nil);
    }
    if digits.iter().all(|&b| b == digits[0]) {
        return Err(UuidProblem::OneDigit);
    }
    if uuid.ends_with("000000000000") {
        return Err(UuidProblem::ZeroSuffix);
    }
    if KNOWN_PLACEHOLDERS.contains(&uuid.as_str()) {
        return Err(UuidProblem::KnownPlaceholder);
    }
    if let Some((name, _)) = fleet
        .into_iter()
        .find(|(_, other)| other.eq_ignore_ascii_case(&uuid))
    {
        return Err(UuidProblem::SharedWith(name.to_owned()));
    }
    Ok(())
}

/// A server whose SMBIOS UUID cannot identify it: bootstrap is refused until Hetzner fixes it.
/// The message carries a support request ready to send, with the `dmidecode -t system` output.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server's SMBIOS UUID {uuid} cannot identify it ({problem}); \
     ask Hetzner support to fix it:\n\n{}", support_request(.uuid, .dmidecode_system)
)]
pub struct InvalidUuid {
    /// The UUID read from the server.
    pub uuid: String,
    /// What is wrong with it.
    pub problem: UuidProblem,
    /// The output of `dmidecode -t system` on the server.
    pub dmidecode_system: String,
}

/// The text of a support request asking Hetzner to set a unique SMBIOS UUID.
pub fn support_request(uuid: &str, dmidecode_system: &str) -> String {
    format!(
        "Subject: Invalid SMBIOS system UUID on this server\n\
         \n\
         Hello,\n\
         \n\
         the SMBIOS system UUID of this server is {uuid}, which is not unique (it is a \
         placeholder or all zeros in its last part). We identify our machines by this UUID, so \
         we cannot put this server into service. Could you please set a unique system UUID \
         (a BIOS/firmware update or a DMI write by your technicians) and tell us when it is \
         done? The server can be taken offline for this at any time.\n\
         \n\
         Output of `dmidecode -t system` from the rescue system:\n\
         \n\
         {dmidecode_system}\n\
         \n\
         Thank you!\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_invalid_kind() {
        let check =
            |uuid| check_smbios_uuid(uuid, [("other", "a1b2c3d4-0000-1111-2222-333344445555")]);
        assert_eq!(check("not-a-uuid"), Err(UuidProblem::Malformed));
        assert_eq!(
            check("00000000-0000-0000-0000-000000000000"),
            Err(UuidProblem::Nil)
        );
        assert_eq!(
            check("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"),
            Err(UuidProblem::OneDigit)
        );
        assert_eq!(
            check("4c4c4544-0042-3510-8057-000000000000"),
            Err(UuidProblem::ZeroSuffix)
        );
        assert_eq!(
            check("03000200-0400-0500-0006-000700080009"),
            Err(UuidProblem::KnownPlaceholder)
        );
        assert_eq!(
            check("A1B2C3D4-0000-1111-2222-333344445555"),
            Err(UuidProblem::SharedWith("other".into()))
        );
        assert_eq!(check("4c4c4544-0042-3510-8057-b4c04f4e3432"), Ok(()));
    }

    #[test]
    fn the_error_carries_the_support_request() {
        let error = InvalidUuid {
            uuid: "4c4c4544-0042-3510-8057-000000000000".into(),
            problem: UuidProblem::ZeroSuffix,
            dmidecode_system: "System Information\n\tManufacturer: Hetzner".into(),
        };
        let text = error.to_string();
        assert!(text.contains("ends in 000000000000"), "{text}");
        assert!(
            text.contains("Subject: Invalid SMBIOS system UUID"),
            "{text}"
        );
        assert!(text.contains("\tManufacturer: Hetzner"), "{text}");
    }
}
