//! [`plan`]: a bootstrap request turned into the exact list of steps the installer will run.

use std::fmt;
use std::time::Duration;

use super::probe::BlockDevice;
use super::shell::shell_quote;
use crate::provider::Architecture;

/// Where the Talos image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    /// An Image Factory image, whose schematic carries the `talos.config=` kernel argument.
    Factory {
        /// Base URL (`TALOS_IMAGE_FACTORY_URL`), such as `https://factory.talos.dev`.
        base_url: String,
        /// Schematic id.
        schematic: String,
        /// Talos version, such as `v1.10.4`.
        version: String,
        /// Architecture ([`Architecture`](crate::provider::Architecture)).
        architecture: Architecture,
    },
    /// A stock or custom image (`TALOS_AMD64_IMAGE_URL`, `TALOS_ARM64_IMAGE_URL`): the installer
    /// writes `talos.config=` into its grub.cfg.
    Custom {
        /// The image URL; its suffix selects the decompressor.
        url: String,
    },
}

impl ImageSource {
    /// The URL the rescue system downloads.
    pub fn url(&self) -> String {
        match self {
            ImageSource::Factory {
                base_url,
                schematic,
                version,
                architecture,
            } => format!(
                "{}/image/{schematic}/{version}/metal-{}.raw.zst",
                base_url.trim_end_matches('/'),
                architecture.as_str()
            ),
            ImageSource::Custom { url } => url.clone(),
        }
    }
}

/// How the downloaded image is unpacked on its way to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decompressor {
    /// `.zst`: `zstd -d -c`.
    Zstd,
    /// `.xz`: `xz -d -c`.
    Xz,
    /// `.tar.gz`: the archive's single file, `tar -xzOf -`.
    TarGz,
    /// Anything else: written as it comes.
    None,
}

impl Decompressor {
    /// Chooses by the URL's path suffix (query and fragment ignored).
    pub fn for_url(url: &str) -> Decompressor {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        if path.ends_with(".zst") {
            Decompressor::Zstd
        } else if path.ends_with(".xz") {
            Decompressor::Xz
        } else if path.ends_with(".tar.gz") || path.ends_with(".tgz") {
            Decompressor::TarGz
        } else {
            Decompressor::None
        }
    }

    fn command(self) -> Option<&'static str> {
        match self {
            Decompressor::Zstd => Some("zstd -d -c"),
            Decompressor::Xz => Some("xz -d -c"),
            Decompressor::TarGz => Some("tar -xzOf -"),
            Decompressor::None => None,
        }
    }
}

/// What to install where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapRequest {
    /// The server's name, for the plan's heading.
    pub server: String,
    /// The target disk, from the probe ([`Probe::find_device`](super::Probe::find_device)).
    pub disk: BlockDevice,
    /// The image.
    pub image: ImageSource,
    /// The `talos.config=` URL, such as `https://tm.example/config?uuid=${uuid}`.
    pub talos_config_url: String,
    /// The decompressed image size, when known, for progress percentages.
    pub image_size: Option<u64>,
}

/// One step of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What the step does, for people and job logs.
    pub name: String,
    /// How it runs.
    pub action: Action,
}

/// How a [`Step`] runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A shell command.
    Run {
        /// The command line.
        command: String,
        /// Whether a non-zero exit is expected and harmless.
        tolerate_failure: bool,
        /// Time limit.
        timeout: Duration,
    },
    /// The image pipeline, whose dd progress becomes [`Progress`](super::Progress) events.
    WriteImage {
        /// The command line.
        command: String,
        /// The decompressed image size, when known.
        size: Option<u64>,
        /// Time limit.
        timeout: Duration,
        /// The step fails when the pipeline prints nothing for this long (dd reports progress
        /// every second while data flows; Image Factory may take a minute to build an image).
        stall_timeout: Duration,
    },
    /// Adds `talos.config=` to `grub/grub.cfg` on the disk's partition named BOOT: finds it with
    /// `sfdisk -J`, attaches it with `losetup -o/--sizelimit`, mounts, edits, unmounts, detaches.
    InjectGrub {
        /// The disk.
        disk: String,
        /// The URL.
        talos_config_url: String,
    },
    /// `reboot`; the connection dropping is success.
    Reboot,
}

impl Step {
    /// The command line this step runs (a summary for [`Action::InjectGrub`]).
    pub fn command(&self) -> String {
        match &self.action {
            Action::Run { command, .. } | Action::WriteImage { command, .. } => command.clone(),
            Action::InjectGrub { disk, .. } => format!(
                "sfdisk -J {disk}; losetup -f --show -o <BOOT start> --sizelimit <BOOT size> {disk}; \
                 mount; edit grub/grub.cfg; umount; losetup -d"
            ),
            Action::Reboot => REBOOT.to_owned(),
        }
    }
}

const REBOOT: &str = "reboot";
const SHORT: Duration = Duration::from_secs(120);
const IMAGE_WRITE: Duration = Duration::from_secs(3 * 3600);
const IMAGE_STALL: Duration = Duration::from_secs(5 * 60);

/// The steps that bootstrap one server. `Display` prints it as a dry run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The server's name.
    pub server: String,
    /// The disk written to.
    pub disk: String,
    /// The image URL.
    pub image_url: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// Wraps a long pipeline so that it stops when the SSH channel goes away.
///
/// Without a terminal, sshd sends no hangup: a pipeline whose connection dropped would go on
/// writing the disk. So the pipeline runs in its own process group, and a watcher waits for
/// the end of our (never written) standard input, which comes when the channel closes or the
/// connection dies, and then terminates that group.
fn stoppable(pipeline: &str) -> String {
    format!(
        "exec 3<&0; setsid bash -c {} </dev/null & job=$!; \
         setsid sh -c \"cat >/dev/null; kill -TERM -$job\" <&3 >/dev/null 2>&1 & watcher=$!; \
         wait $job; status=$?; kill -TERM -$watcher 2>/dev/null; exit $status",
        shell_quote(pipeline)
    )
}

/// Builds the plan for a request. Pure: nothing runs.
pub fn plan(request: &BootstrapRequest) -> Plan {
    let disk = request.disk.path();
    let quoted_disk = shell_quote(&disk);
    let url = request.image.url();
    let mut steps = Vec::new();
    for array in &request.disk.raid_arrays {
        steps.push(Step {
            name: format!("stop md array {array}"),
            action: Action::Run {
                command: format!("mdadm --stop {}", shell_quote(&format!("/dev/{array}"))),
                tolerate_failure: false,
                timeout: SHORT,
            },
        });
    }
    steps.push(Step {
        name: "delete the partition table".to_owned(),
        action: Action::Run {
            command: format!("sfdisk --delete {quoted_disk}"),
            // sfdisk exits non-zero on a disk without partitions.
            tolerate_failure: true,
            timeout: SHORT,
        },
    });
    steps.push(Step {
        name: "erase filesystem signatures".to_owned(),
        action: Action::Run {
            command: format!("wipefs -a -f {quoted_disk}"),
            tolerate_failure: false,
            timeout: SHORT,
        },
    });
    let quoted_url = shell_quote(&url);
    let decompress = match Decompressor::for_url(&url).command() {
        Some(command) => format!(" | {command}"),
        None => String::new(),
    };
    steps.push(Step {
        name: "write the Talos image".to_owned(),
        action: Action::WriteImage {
            command: stoppable(&format!(
                "set -o pipefail; if command -v wget >/dev/null; then wget -nv -O - {quoted_url}; \
                 else curl -fsSL {quoted_url}; fi{decompress} \
                 | dd of={quoted_disk} bs=4M iflag=fullblock status=progress"
            )),
            size: request.image_size,
            timeout: IMAGE_WRITE,
            stall_timeout: IMAGE_STALL,
        },
    });
    steps.push(Step {
        name: "flush the disk".to_owned(),
        action: Action::Run {
            command: "sync".to_owned(),
            tolerate_failure: false,
            timeout: SHORT,
        },
    });
    if matches!(request.image, ImageSource::Custom { .. }) {
        steps.push(Step {
            name: "add talos.config to grub.cfg".to_owned(),
            action: Action::InjectGrub {
                disk: disk.clone(),
                talos_config_url: request.talos_config_url.clone(),
            },
        });
    }
    steps.push(Step {
        name: "reboot into Talos".to_owned(),
        action: Action::Reboot,
    });
    Plan {
        server: request.server.clone(),
        disk,
        image_url: url,
        steps,
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Bootstrap plan for {}: write {} to {}",
            self.server, self.image_url, self.disk
        )?;
        for (index, step) in self.steps.iter().enumerate() {
            let note = match &step.action {
                Action::Run {
                    tolerate_failure: true,
                    ..
                } => " (a failure is ignored)",
                _ => "",
            };
            writeln!(f, "{}. {}{note}", index + 1, step.name)?;
            writeln!(f, "   $ {}", step.command())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompressor_by_suffix() {
        assert_eq!(
            Decompressor::for_url("https://x/metal-amd64.raw.zst"),
            Decompressor::Zstd
        );
        assert_eq!(
            Decompressor::for_url("https://x/metal-amd64.raw.xz?sig=1"),
            Decompressor::Xz
        );
        assert_eq!(
            Decompressor::for_url("https://x/disk.tar.gz"),
            Decompressor::TarGz
        );
        assert_eq!(
            Decompressor::for_url("https://x/disk.raw"),
            Decompressor::None
        );
    }

    #[test]
    fn factory_url() {
        let image = ImageSource::Factory {
            base_url: "https://factory.talos.dev/".into(),
            schematic: "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba".into(),
            version: "v1.10.4".into(),
            architecture: Architecture::Arm64,
        };
        assert_eq!(
            image.url(),
            "https://factory.talos.dev/image/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.10.4/metal-arm64.raw.zst"
        );
    }
}
