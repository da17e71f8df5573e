//! [`probe`]: what a rescue system tells about its server (SMBIOS UUID, disks, network).

use std::time::Duration;

use serde::Deserialize;

use super::shell::{Exit, RemoteShell, ShellError, capture};
use super::uuid::{InvalidUuid, check_smbios_uuid};

/// The `lsblk` call whose JSON [`parse_lsblk`] reads.
pub const LSBLK_COMMAND: &str = "lsblk --output NAME,TYPE,SIZE,UUID,MODEL,WWN --bytes --json";

const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the probe learned about a server in rescue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The SMBIOS system UUID (`dmidecode -s system-uuid`), lowercase.
    pub smbios_uuid: String,
    /// `dmidecode -t system`, for support requests about a bad UUID.
    pub dmidecode_system: String,
    /// Top-level block devices, in `lsblk` order.
    pub block_devices: Vec<BlockDevice>,
    /// The raw `lsblk` JSON, as the service stores it.
    pub lsblk_json: String,
    /// Network interfaces other than loopback.
    pub interfaces: Vec<NetworkInterface>,
    /// The default IPv4 gateway, when there is one.
    pub default_gateway: Option<String>,
}

impl Probe {
    /// Checks the SMBIOS UUID against the rules of [`check_smbios_uuid`]; `fleet` lists the
    /// other servers' names and UUIDs.
    pub fn check_uuid<'a>(
        &self,
        fleet: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), InvalidUuid> {
        check_smbios_uuid(&self.smbios_uuid, fleet).map_err(|problem| InvalidUuid {
            uuid: self.smbios_uuid.clone(),
            problem,
            dmidecode_system: self.dmidecode_system.clone(),
        })
    }

    /// What the store records about the probe ([`Store::record_probe`](crate::Store::record_probe)).
    pub fn store_record(&self) -> crate::store::ProbeResult {
        crate::store::ProbeResult {
            accessible: true,
            uuid: Some(self.smbios_uuid.clone()),
            lsblk: Some(self.lsblk_json.clone()),
        }
    }

    /// The device a bootstrap request names: by WWID (`naa.…`, `eui.…`, or lsblk's `0x…`),
    /// by name (`nvme0n1`, `md0`) or by path (`/dev/nvme0n1`).
    pub fn find_device(&self, id: &str) -> Option<&BlockDevice> {
        let id = id.strip_prefix("/dev/").unwrap_or(id);
        let wwid = normalize_wwn(id);
        self.block_devices
            .iter()
            .find(|d| d.name == id || d.wwid().as_deref() == Some(wwid.as_str()))
    }
}

/// A top-level block device as `lsblk` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name, such as `nvme0n1`.
    pub name: String,
    /// `disk`, `loop`, `raid1`…
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Filesystem or RAID member UUID.
    pub uuid: Option<String>,
    /// Model, for people.
    pub model: Option<String>,
    /// WWN as lsblk prints it (`eui.…`, `0x…`).
    pub wwn: Option<String>,
    /// md arrays this device belongs to, such as `md0`.
    pub raid_arrays: Vec<String>,
    /// How many partitions it has.
    pub partitions: usize,
}

impl BlockDevice {
    /// `/dev/<name>`.
    pub fn path(&self) -> String {
        format!("/dev/{}", self.name)
    }

    /// The WWID in Talos's form (SCSI `0x…` becomes `naa.…`); `None` when lsblk gave none
    /// or one that is not a WWID ([`is_valid_wwid`]): the rescue host's answer goes into
    /// configs, so nothing else gets through.
    pub fn wwid(&self) -> Option<String> {
        self.wwn
            .as_deref()
            .map(normalize_wwn)
            .filter(|wwid| is_valid_wwid(wwid))
    }
}

/// Turns lsblk's SCSI `0x5000c500a1b2c3d4` into Talos's `naa.5000c500a1b2c3d4`; other forms
/// (`eui.…`, `naa.…`) stay as they are.
pub fn normalize_wwn(wwn: &str) -> String {
    match wwn.strip_prefix("0x") {
        Some(hex) => format!("naa.{hex}"),
        None => wwn.to_owned(),
    }
}

/// Whether `wwid` is a disk WWID as Talos spells it: `naa.`, `eui.`, `t10.` or `nvme.`, then
/// 1 to 200 letters, digits and `.`, `_`, `-`, `:` (no spaces, quotes or line breaks, so it
/// cannot change the YAML it is put into).
pub fn is_valid_wwid(wwid: &str) -> bool {
    let Some((kind, id)) = wwid.split_once('.') else {
        return false;
    };
    matches!(kind, "naa" | "eui" | "t10" | "nvme")
        && (1..=200).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
}

/// A network interface of the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    /// Name, such as `eth0`.
    pub name: String,
    /// MAC address.
    pub mac: Option<String>,
}

#[derive(Deserialize)]
struct Lsblk {
    blockdevices: Vec<LsblkDevice>,
}

#[derive(Deserialize)]
struct LsblkDevice {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    size: u64,
    uuid: Option<String>,
    model: Option<String>,
    wwn: Option<String>,
    #[serde(default)]
    children: Vec<LsblkDevice>,
}

/// Reads the JSON of [`LSBLK_COMMAND`]. RAID membership comes from the children of type `raid*`.
pub fn parse_lsblk(json: &str) -> Result<Vec<BlockDevice>, serde_json::Error> {
    let lsblk: Lsblk = serde_json::from_str(json)?;
    Ok(lsblk
        .blockdevices
        .into_iter()
        .map(|d| BlockDevice {
            raid_arrays: d
                .children
                .iter()
                .filter(|c| c.kind.starts_with("raid"))
                .map(|c| c.name.clone())
                .collect(),
            partitions: d.children.iter().filter(|c| c.kind == "part").count(),
            name: d.name,
            kind: d.kind,
            size: d.size,
            uuid: d.uuid,
            model: d.model.map(|m| m.trim().to_owned()),
            wwn: d.wwn,
        })
        .collect())
}

/// Why a server could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The hostname is not `rescue`: the server runs something else, and nothing is touched.
    #[error("the server is not in the rescue system (its hostname is {hostname:?})")]
    NotInRescue {
        /// The hostname it reported.
        hostname: String,
    },
    /// A probe command failed.
    #[error("`{command}` failed on the rescue system ({exit}): {stderr}")]
    CommandFailed {
        /// The command.
        command: String,
        /// How it ended.
        exit: super::shell::Exit,
        /// Its standard error.
        stderr: String,
    },
    /// The command could not be run.
    #[error("`{command}` could not be run on the rescue system")]
    Shell {
        /// The command.
        command: String,
        /// Why.
        #[source]
        source: ShellError,
    },
    /// lsblk's JSON was not understood.
    #[error("the output of lsblk could not be read")]
    Lsblk {
        /// The parser's report.
        #[source]
        source: serde_json::Error,
    },
}

/// The commands the probe runs after `hostname`, by section name, in order.
const PROBE_COMMANDS: [(&str, &str); 5] = [
    ("uuid", "dmidecode -s system-uuid"),
    ("system", "dmidecode -t system"),
    ("lsblk", LSBLK_COMMAND),
    ("link", "ip -j link"),
    ("route", "ip -j route show default"),
];

/// The marker lines of the probe script's output; no command it runs prints them.
const SECTION: &str = "@@talos-manager-probe ";
const EXIT: &str = "@@talos-manager-exit ";

/// One shell script for the whole probe, so that it costs one exec and one round trip: it
/// prints the hostname, stops unless it is `rescue`, then runs each of [`PROBE_COMMANDS`]
/// between marker lines that carry the section's name and the command's exit status.
fn probe_script() -> String {
    let mut script = String::from(
        "h=$(hostname) || exit 1\nprintf '%s\\n' \"$h\"\n[ \"$h\" = rescue ] || exit 0\n",
    );
    for (name, command) in PROBE_COMMANDS {
        script.push_str(&format!(
            "printf '\\n{SECTION}{name}\\n'; {command}; printf '\\n{EXIT}%s\\n' $?\n"
        ));
    }
    script
}

/// The probe script's output, split: the hostname, and per section its standard output and
/// exit status.
struct ScriptOutput<'a> {
    hostname: &'a str,
    sections: Vec<(&'a str, &'a str, Option<u32>)>,
}

fn split_script_output(stdout: &str) -> ScriptOutput<'_> {
    let (hostname, mut rest) = stdout.split_once('\n').unwrap_or((stdout, ""));
    let mut sections = Vec::new();
    while let Some(start) = rest.find(SECTION) {
        let after = &rest[start + SECTION.len()..];
        let Some((name, body)) = after.split_once('\n') else {
            break;
        };
        let exit_marker = format!("\n{EXIT}");
        let Some(end) = body.find(&exit_marker) else {
            break;
        };
        let status_text = &body[end + exit_marker.len()..];
        let status_line = status_text.split('\n').next().unwrap_or_default();
        sections.push((name, &body[..end], status_line.trim().parse().ok()));
        rest = &status_text[status_line.len()..];
    }
    ScriptOutput {
        hostname: hostname.trim(),
        sections,
    }
}

/// Probes a server in rescue.
///
/// # Expected flow
/// `hostname` must print `rescue`; then `dmidecode -s system-uuid`, `dmidecode -t system`,
/// [`LSBLK_COMMAND`], `ip -j link` and `ip -j route show default`, all in one shell script
/// (one exec on the rescue system, one round trip).
///
/// # Guarantees
/// Reads only: nothing on the server changes. When the hostname is not `rescue` nothing else runs.
///
/// # Errors
/// [`ProbeError::NotInRescue`], a failed command (with the script's standard error), or
/// unreadable lsblk output. Network facts are best effort: a missing `ip` leaves them empty.
pub async fn probe(shell: &dyn RemoteShell) -> Result<Probe, ProbeError> {
    let script = capture(shell, &probe_script(), PROBE_TIMEOUT)
        .await
        .map_err(|source| ProbeError::Shell {
            command: "hostname".to_owned(),
            source,
        })?;
    let stderr = script.stderr.trim();
    if !script.exit.success() {
        return Err(ProbeError::CommandFailed {
            command: "hostname".to_owned(),
            exit: script.exit,
            stderr: stderr.to_owned(),
        });
    }
    let output = split_script_output(&script.stdout);
    if output.hostname != "rescue" {
        return Err(ProbeError::NotInRescue {
            hostname: output.hostname.to_owned(),
        });
    }
    let section = |name: &str| -> Result<&str, ProbeError> {
        let command = PROBE_COMMANDS
            .iter()
            .find(|(section, _)| *section == name)
            .map_or(name, |(_, command)| command)
            .to_owned();
        match output
            .sections
            .iter()
            .find(|(section, ..)| *section == name)
        {
            Some((_, text, Some(0))) => Ok(text),
            Some((_, _, status)) => Err(ProbeError::CommandFailed {
                command,
                exit: status.map_or(Exit::Disconnected, Exit::Status),
                stderr: stderr.to_owned(),
            }),
            None => Err(ProbeError::CommandFailed {
                command,
                exit: Exit::Disconnected,
                stderr: stderr.to_owned(),
            }),
        }
    };
    let smbios_uuid = section("uuid")?.trim().to_ascii_lowercase();
    let dmidecode_system = section("system")?.trim_end().to_owned();
    let lsblk_json = section("lsblk")?.to_owned();
    let block_devices = parse_lsblk(&lsblk_json).map_err(|source| ProbeError::Lsblk { source })?;
    let interfaces = section("link").map(parse_ip_link).unwrap_or_default();
    let default_gateway = section("route").ok().and_then(parse_default_gateway);
    Ok(Probe {
        smbios_uuid,
        dmidecode_system,
        block_devices,
        lsblk_json,
        interfaces,
        default_gateway,
    })
}

fn parse_ip_link(json: &str) -> Vec<NetworkInterface> {
    #[derive(Deserialize)]
    struct Link {
        ifname: String,
        link_type: Option<String>,
        address: Option<String>,
    }
    let links: Vec<Link> = serde_json::from_str(json).unwrap_or_default();
    links
        .into_iter()
        .filter(|l| l.link_type.as_deref() != Some("loopback"))
        .map(|l| NetworkInterface {
            name: l.ifname,
            mac: l.address,
        })
        .collect()
}

fn parse_default_gateway(json: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Route {
        gateway: Option<String>,
    }
    let routes: Vec<Route> = serde_json::from_str(json).unwrap_or_default();
    routes.into_iter().find_map(|r| r.gateway)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review #17: a rescue host that answers with YAML in a disk's wwn.
    #[test]
    fn wwids_from_the_rescue_host_are_validated() {
        let json = r#"{"blockdevices": [
            {"name": "sda", "type": "disk", "size": 1, "wwn": "0x5000c500a1b2c3d4"},
            {"name": "sdb", "type": "disk", "size": 1, "wwn": "eui.1\nmachine:\n  foo: bar"},
            {"name": "sdc", "type": "disk", "size": 1, "wwn": "naa.1' || true"},
            {"name": "nvme0n1", "type": "disk", "size": 1, "wwn": "eui.0025388b81b2c3d4"}
        ]}"#;
        let disks = parse_lsblk(json).unwrap();
        let wwids: Vec<Option<String>> = disks.iter().map(BlockDevice::wwid).collect();
        assert_eq!(
            wwids,
            [
                Some("naa.5000c500a1b2c3d4".to_owned()),
                None,
                None,
                Some("eui.0025388b81b2c3d4".to_owned())
            ]
        );
        assert!(is_valid_wwid("t10.ATA_SAMSUNG_MZ7LH480-S45PNA0M"));
        assert!(!is_valid_wwid("eui."));
        assert!(!is_valid_wwid("x.1"));
        assert!(!is_valid_wwid("naa.a b"));
    }

    #[test]
    fn reads_ip_json() {
        let links = r#"[{"ifname":"lo","link_type":"loopback","address":"00:00:00:00:00:00"},
            {"ifname":"eth0","link_type":"ether","address":"a8:a1:59:0e:1b:2c"}]"#;
        assert_eq!(
            parse_ip_link(links),
            [NetworkInterface {
                name: "eth0".into(),
                mac: Some("a8:a1:59:0e:1b:2c".into())
            }]
        );
        let routes = r#"[{"dst":"default","gateway":"172.31.1.1","dev":"eth0"}]"#;
        assert_eq!(parse_default_gateway(routes).as_deref(), Some("172.31.1.1"));
    }

    #[test]
    fn splits_the_probe_scripts_output() {
        let stdout = format!(
            "rescue\n\n{SECTION}uuid\nABC\n\n{EXIT}0\n\n{SECTION}system\n\n{EXIT}127\n\n{SECTION}lsblk\n{{}}\n{EXIT}0\n"
        );
        let output = split_script_output(&stdout);
        assert_eq!(output.hostname, "rescue");
        assert_eq!(
            output.sections,
            [
                ("uuid", "ABC\n", Some(0)),
                ("system", "", Some(127)),
                ("lsblk", "{}", Some(0))
            ]
        );
        // Cut short (the connection dropped mid-script): only whole sections count.
        let cut = format!("rescue\n\n{SECTION}uuid\nAB");
        assert!(split_script_output(&cut).sections.is_empty());
    }

    /// Runs the probe script with `sh` and stub commands that note their calls; returns the
    /// script's standard output and the calls noted.
    fn run_script_with_hostname(hostname: &str) -> (String, String) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        for command in ["hostname", "dmidecode", "lsblk", "ip"] {
            let output = if command == "hostname" {
                hostname
            } else {
                "{}"
            };
            let stub = dir.path().join(command);
            std::fs::write(
                &stub,
                format!(
                    "#!/bin/sh\necho \"{command} $*\" >> {}\necho '{output}'\n",
                    calls.display()
                ),
            )
            .unwrap();
            std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(probe_script())
            .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        (
            String::from_utf8(output.stdout).unwrap(),
            std::fs::read_to_string(&calls).unwrap_or_default(),
        )
    }

    #[test]
    fn the_script_runs_nothing_after_another_hostname() {
        let (stdout, calls) = run_script_with_hostname("node-1");
        assert_eq!(stdout, "node-1\n");
        assert_eq!(calls, "hostname \n");
    }

    #[test]
    fn the_script_runs_every_command_in_rescue() {
        let (stdout, calls) = run_script_with_hostname("rescue");
        assert_eq!(
            calls,
            format!(
                "hostname \ndmidecode -s system-uuid\ndmidecode -t system\n{}\nip -j link\nip -j route show default\n",
                LSBLK_COMMAND
            )
        );
        let output = split_script_output(&stdout);
        assert_eq!(output.hostname, "rescue");
        let names: Vec<_> = output.sections.iter().map(|(name, ..)| *name).collect();
        assert_eq!(names, ["uuid", "system", "lsblk", "link", "route"]);
        assert!(
            output
                .sections
                .iter()
                .all(|(_, text, status)| *text == "{}\n" && *status == Some(0)),
            "{:?}",
            output.sections
        );
    }

    #[test]
    fn normalizes_scsi_wwns() {
        assert_eq!(normalize_wwn("0x5000c500a1b2c3d4"), "naa.5000c500a1b2c3d4");
        assert_eq!(normalize_wwn("eui.3433"), "eui.3433");
    }
}
